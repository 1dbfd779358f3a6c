"""Developmental stages: the turns of an LLC curve that its standard errors say are real."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

NOISE_FROM_SECOND_DIFFERENCES = 1.4826 / np.sqrt(6.0)  # MAD → σ for iid noise, whose 2nd differences have variance 6σ²


class StageDetector(BaseEstimator):
    """Split a training trajectory into stages where the LLC rises or falls significantly.

    Parameters
    ----------
    significance : float
        A stage is kept only when the LLC changes over it by more than this many standard
        errors of the difference between its two ends (``|λ̂_b − λ̂_a| / √(se_a² + se_b²)``).
    bandwidth : float, optional
        Width, in units of ``log(step + 1)``, of a Gaussian smoothing applied before the turns
        are found (their standard errors are propagated). None (the default) uses the
        estimates themselves: the standard errors alone decide which turns are real.

    Attributes
    ----------
    smoothed_ : np.ndarray, shape (checkpoints,)
        The curve the turns were found on (the estimates, or their smoothing); NaN where a
        checkpoint was left out.
    standard_error_ : np.ndarray, shape (checkpoints,)
        Its standard errors: the ones given, or the noise level estimated from the curve.
    boundaries_ : np.ndarray, shape (n_boundaries,)
        Training steps of the stage boundaries: the checkpoints where the curve turns.
    stages_ : list of dict
        ``{"start", "end", "type", "change", "z", "estimates"}`` per stage: its first and last step,
        ``"rising"`` or ``"falling"``, the LLC change over it, that change in standard errors and the
        number of estimates it rests on (its two ends included).

    Notes
    -----
    The curve's local extrema cut it into monotone runs. The run whose change is least
    significant is merged into its neighbours (an interior run takes both of its boundaries
    with it), until every run changes by more than ``significance`` standard errors. Without
    standard errors the noise level is estimated from the curve's second differences
    (median absolute deviation, robust to the turns themselves). Stage boundaries thus sit
    at the critical points of λ̂ over log-time that the data support (Hoogland et al. 2024: LLC
    plateaus and peaks separate stages in which the LLC increases, type A, or decreases, type B).

    References
    ----------
    Hoogland, Wang, Farrugia-Roberts, Carroll, Wei, Murfet. The Developmental Landscape of
    In-Context Learning. 2024.
    """

    def __init__(self, significance: float = 3.0, bandwidth: float | None = None):
        self.significance = significance
        self.bandwidth = bandwidth

    def fit(self, steps: Any, llc: Any, llc_se: Any = None) -> StageDetector:
        """Find the stages of ``llc`` (checkpoints,) over ``steps``; ``llc_se`` its standard errors.

        Non-finite estimates (checkpoints with no trustworthy LLC) are left out.
        """
        steps, llc, se = self._validated(steps, llc, llc_se)
        keep = np.isfinite(llc) & np.isfinite(se)
        x = np.log1p(steps[keep])
        curve, curve_se = self._smoothed(x, llc[keep], se[keep])
        runs = _merge(curve, curve_se, _extrema(curve), self.significance)
        self.smoothed_ = np.full(steps.shape, np.nan)
        self.smoothed_[keep] = curve
        self.standard_error_ = np.full(steps.shape, np.nan)
        self.standard_error_[keep] = curve_se
        kept_steps = steps[keep]
        self.boundaries_ = kept_steps[runs[1:-1]].astype(float)
        self.stages_ = [
            {
                "start": float(kept_steps[a]),
                "end": float(kept_steps[b]),
                "type": "rising" if curve[b] >= curve[a] else "falling",
                "change": float(curve[b] - curve[a]),
                "z": float(_z(curve, curve_se, a, b)),
                "estimates": int(b - a + 1),
            }
            for a, b in zip(runs[:-1], runs[1:])
        ]
        return self

    def __str__(self) -> str:
        """The stages found, one line each (``print(dvz.stages(sweep))``); the parameters before ``fit``."""
        if not hasattr(self, "stages_"):
            return repr(self)
        count = len(self.stages_)
        lines = [f"{count} stage{'s' * (count != 1)} of the LLC curve (a change is kept when over {self.significance:g} SE):"]
        lines += [f"  steps {s['start']:g}–{s['end']:g}: {s['type']}, {s['change']:+.3g} ({s['z']:.1f} SE, {s['estimates']} estimates)"
                  for s in self.stages_]
        return "\n".join(lines)

    def _validated(self, steps: Any, llc: Any, llc_se: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        steps = np.asarray(steps, dtype=float)
        llc = np.asarray(llc, dtype=float)
        if steps.ndim != 1 or steps.shape != llc.shape:
            raise ValueError(f"steps and llc must be 1-D of equal length; got shapes {steps.shape} and {llc.shape}.")
        if np.any(np.diff(steps) <= 0) or steps[0] < 0:
            raise ValueError("steps must be non-negative and strictly increasing.")
        if np.isfinite(llc).sum() < 3:
            raise ValueError("stage detection needs at least 3 finite LLC values.")
        if not self.significance > 0 or (self.bandwidth is not None and not self.bandwidth > 0):
            raise ValueError(f"significance must be > 0 and bandwidth > 0 or None; got {self.significance}, {self.bandwidth}.")
        if llc_se is None:
            return steps, llc, np.full(llc.shape, _noise_level(llc[np.isfinite(llc)]))
        se = np.asarray(llc_se, dtype=float)
        if se.shape != llc.shape:
            raise ValueError(f"llc_se must have the shape of llc {llc.shape}; got {se.shape}.")
        if np.any(se[np.isfinite(se)] < 0):
            raise ValueError("llc_se must be standard errors (>= 0).")
        return steps, llc, se

    def _smoothed(self, x: np.ndarray, llc: np.ndarray, se: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.bandwidth is None:
            return llc, se
        weights = np.exp(-0.5 * ((x[:, None] - x[None, :]) / self.bandwidth) ** 2)
        weights /= weights.sum(axis=1, keepdims=True)
        return weights @ llc, np.sqrt((weights**2) @ se**2)

    def plot(self, steps: Any, llc: Any):
        """The curve, the curve the turns were found on and the stages (see :func:`devinterp_viz.plotting.plot_stages`)."""
        from devinterp_viz.plotting import plot_stages

        return plot_stages(self, steps, llc)


def _noise_level(values: np.ndarray) -> float:
    """σ of iid noise on a smooth curve, from the median absolute second difference."""
    if values.size < 3:
        return 0.0
    second = np.diff(values, 2)
    return float(NOISE_FROM_SECOND_DIFFERENCES * np.median(np.abs(second - np.median(second))))


def _extrema(curve: np.ndarray) -> list[int]:
    """Indices of the ends and of every interior point where the curve changes direction."""
    turns = [0]
    direction = 0.0
    for i in range(1, curve.size):
        step = np.sign(curve[i] - curve[i - 1])
        if step == 0:
            continue
        if direction and step != direction:
            turns.append(i - 1)
        direction = step
    turns.append(curve.size - 1)
    return sorted(set(turns))


def _z(curve: np.ndarray, se: np.ndarray, a: int, b: int) -> float:
    spread = float(np.hypot(se[a], se[b]))
    change = abs(float(curve[b] - curve[a]))
    return change / spread if spread > 0 else (np.inf if change > 0 else 0.0)


def _merge(curve: np.ndarray, se: np.ndarray, turns: list[int], significance: float) -> list[int]:
    """Drop turns until every run between consecutive ones is significant; ends are kept."""
    turns = list(turns)
    while len(turns) > 2:
        scores = [_z(curve, se, a, b) for a, b in zip(turns[:-1], turns[1:])]
        weakest = int(np.argmin(scores))
        if scores[weakest] >= significance:
            break
        if weakest == 0:
            del turns[1]
        elif weakest == len(scores) - 1:
            del turns[-2]
        else:  # an interior wiggle: both of its turns go, and the runs beside it join
            del turns[weakest : weakest + 2]
        turns = _keep_alternating(curve, turns)
    return turns


def _keep_alternating(curve: np.ndarray, turns: list[int]) -> list[int]:
    """After a merge, keep only turns where the direction really changes (a run may have joined its like)."""
    kept = [turns[0]]
    for index in range(1, len(turns) - 1):
        before = np.sign(curve[turns[index]] - curve[kept[-1]])
        after = np.sign(curve[turns[index + 1]] - curve[turns[index]])
        if before != after and before != 0 and after != 0:
            kept.append(turns[index])
    kept.append(turns[-1])
    return kept


def stages(sweep_or_steps, llc=None, llc_se=None, *, selection: str | None = None, distribution: str | None = None,
           significance: float = 3.0, bandwidth: float | None = None) -> StageDetector:
    """Developmental stages of an LLC curve: ``stages(sweep)`` or ``stages(steps, llc[, llc_se])``.

    From a sweep, the estimates' own standard errors are used and checkpoints whose verdict is
    not healthy (no trustworthy LLC there) are left out. Returns a fitted :class:`StageDetector`
    (``boundaries_``, ``stages_``, ``smoothed_``).
    """
    if llc is None:
        sweep = sweep_or_steps
        steps, llc, _ = sweep.curve(selection, distribution)
        sel, dist = sweep._names(selection, distribution)
        found = [sweep.results.get((sel, dist, k)) for k in range(len(steps))]
        llc_se = np.array([np.nan if r is None else r.llc_se for r in found])
        llc = np.array([np.nan if r is None or not r.diagnostics.healthy else r.llc_mean for r in found])
    else:
        steps = sweep_or_steps
    return StageDetector(significance=significance, bandwidth=bandwidth).fit(steps, llc, llc_se)
