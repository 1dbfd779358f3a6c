"""Milestones of essential dynamics against LLC stage boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StageComparison:
    """Milestones of the essential dynamics paired with LLC stage boundaries, distances in log-step.

    Attributes
    ----------
    milestones : np.ndarray, shape (m,)
        Milestone steps.
    boundaries : np.ndarray, shape (b,)
        Stage-boundary steps.
    nearest_boundary : np.ndarray, shape (m,)
        For each milestone, the nearest boundary (NaN without boundaries).
    log_distance : np.ndarray, shape (m,)
        ``log(milestone + 1) − log(nearest boundary + 1)``: positive when the milestone comes later.
    nearest_milestone : np.ndarray, shape (b,)
        For each boundary, the nearest milestone (NaN without milestones).
    boundary_log_distance : np.ndarray, shape (b,)
        ``log(boundary + 1) − log(nearest milestone + 1)``.
    pairs : list of (float, float, float)
        ``(milestone, boundary, log distance)`` for mutual nearest neighbours, one to one.
    stages : list of dict
        The LLC stages between the boundaries (``stages_`` of the stage detector: ``start``, ``end``,
        ``type``, ``change``, ``z``); empty when only boundary steps were given.
    """

    milestones: np.ndarray
    boundaries: np.ndarray
    nearest_boundary: np.ndarray
    log_distance: np.ndarray
    nearest_milestone: np.ndarray
    boundary_log_distance: np.ndarray
    pairs: list = field(default_factory=list)
    stages: list = field(default_factory=list)

    def matched(self, tolerance: float = 0.25) -> list[tuple[float, float, float]]:
        """The pairs at most ``tolerance`` apart in log-step."""
        return [pair for pair in self.pairs if abs(pair[2]) <= tolerance]

    def plot(self):
        """Milestones and boundaries on one log-step axis, pairs joined (see plotting.plot_stage_comparison)."""
        from devinterp_viz.plotting import plot_stage_comparison

        return plot_stage_comparison(self)


def _nearest(source: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index and value of the nearest target in log1p for each source, and the signed log distance."""
    if len(targets) == 0:
        nan = np.full(len(source), np.nan)
        return np.full(len(source), -1), nan, nan
    gaps = np.log1p(source)[:, None] - np.log1p(targets)[None, :]
    index = np.argmin(np.abs(gaps), axis=1)
    return index, targets[index].astype(float), gaps[np.arange(len(source)), index]


def compare_with_stages(milestones: Any, stage_boundaries: Any) -> StageComparison:
    """Pair essential-dynamics milestones with LLC stage boundaries, nearest in log-step.

    Parameters
    ----------
    milestones : array of steps, TrajectoryGeometry or EssentialDynamics
        Milestone steps (``milestone_steps_`` of a fitted geometry or essential dynamics).
    stage_boundaries : array of steps or StageDetector
        Stage-boundary steps (``boundaries_`` of :func:`devinterp_viz.stages`); a fitted detector
        also gives its stages, which the plot draws.

    Returns
    -------
    StageComparison

    Notes
    -----
    Distances are differences of ``log(step + 1)``, the time axis of the LLC stage detector, so a
    distance of 0.1 is a 10% difference in step. Pairs are mutual nearest neighbours.
    """
    milestone_steps = np.asarray(getattr(milestones, "milestone_steps_", milestones), dtype=float).reshape(-1)
    boundary_steps = np.asarray(getattr(stage_boundaries, "boundaries_", stage_boundaries), dtype=float).reshape(-1)
    for name, values in (("milestones", milestone_steps), ("stage_boundaries", boundary_steps)):
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError(f"{name} must be finite, non-negative training steps.")
    to_boundary, nearest_boundary, log_distance = _nearest(milestone_steps, boundary_steps)
    to_milestone, nearest_milestone, boundary_distance = _nearest(boundary_steps, milestone_steps)
    pairs = [
        (float(milestone_steps[i]), float(boundary_steps[j]), float(log_distance[i]))
        for i, j in enumerate(to_boundary)
        if j >= 0 and to_milestone[j] == i
    ]
    stages = [dict(stage) for stage in getattr(stage_boundaries, "stages_", [])]
    return StageComparison(milestone_steps, boundary_steps, nearest_boundary, log_distance, nearest_milestone,
                           boundary_distance, pairs, stages)
