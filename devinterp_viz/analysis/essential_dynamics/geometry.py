"""The trajectory's geometry: smoothing, osculating circles, evolute cusps and milestones."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import find_peaks, peak_prominences
from sklearn.base import BaseEstimator


STRAIGHT_RADIUS = 1e6
"""A radius of curvature above this many times the plane's extent is a straight stretch (centre at infinity)."""

STILL_SPEED = 1e-12
"""A central-difference speed below this fraction of the plane's extent is a standstill (no tangent)."""


def smoothing_widths(n: int, smoothing: float, smoothing_late: float | None = None,
                     smoothing_ramp: tuple[float, float] = (0.2, 1.0)) -> np.ndarray:
    """Gaussian width σ_t (in checkpoints) at each of ``n`` checkpoints, shape (n,).

    σ is ``smoothing`` up to the fraction ``smoothing_ramp[0]`` of the trajectory, grows linearly
    to ``smoothing_late`` at the fraction ``smoothing_ramp[1]``, and stays there (Hoogland et al.
    smooth late training more). ``smoothing_late=None`` keeps σ constant.
    """
    late = smoothing if smoothing_late is None else smoothing_late
    start, end = smoothing_ramp
    position = np.arange(n) / max(n - 1, 1)
    if end > start:
        ramp = np.clip((position - start) / (end - start), 0.0, 1.0)
    else:
        ramp = (position >= start).astype(float)
    return smoothing + (late - smoothing) * ramp


def gaussian_smooth(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Smooth the rows of ``values`` (n, d) with a Gaussian of width ``widths[t]`` around row t.

    ``ĉ_t = Σ_s w_ts c_s / Σ_s w_ts`` with ``w_ts = exp(−(s − t)² / 2σ_t²)`` for ``|s − t| ≤ 4σ_t``
    (the kernel is cut at the ends of the trajectory and renormalised); σ_t = 0 leaves row t.
    """
    values = np.asarray(values, dtype=float)
    out = values.copy()
    n = len(values)
    for t, sigma in enumerate(widths):
        if sigma <= 0:
            continue
        reach = int(math.ceil(4 * sigma))
        lo, hi = max(0, t - reach), min(n, t + reach + 1)
        weights = np.exp(-0.5 * ((np.arange(lo, hi) - t) / sigma) ** 2)
        out[t] = weights @ values[lo:hi] / weights.sum()
    return out


@dataclass
class _Plane:
    curvature: np.ndarray  # (n,)
    centres: np.ndarray  # (n, 2)
    centre_speed: np.ndarray  # (n,)
    cusps: np.ndarray  # (c,)


def _plane_geometry(xy: np.ndarray, widths: np.ndarray, prominence: float, min_turn: float, min_travel: float,
                    margins: tuple[int, int]) -> _Plane:
    """Curvature, osculating centres, relative centre speed and evolute cusps of one planar curve."""
    n = len(xy)
    curvature = np.full(n, np.nan)
    centres = np.full((n, 2), np.nan)
    centre_speed = np.full(n, np.nan)
    tangents = np.full((n, 2), np.nan)
    if n < 3:
        return _Plane(curvature, centres, centre_speed, np.array([], dtype=int))
    extent = float(np.ptp(xy, axis=0).max()) or 1.0
    d1 = (xy[2:] - xy[:-2]) / 2  # r'
    d2 = xy[2:] - 2 * xy[1:-1] + xy[:-2]  # r''
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    speed2 = (d1**2).sum(axis=1)
    moving = np.sqrt(speed2) > STILL_SPEED * extent
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.abs(cross) / speed2**1.5
        straight = moving & ~(kappa * STRAIGHT_RADIUS * extent > 1)
        curved = moving & ~straight
        # centre = c + n̂/κ = c + rot90(r')·|r'|²/(r' × r''), rot90(x, y) = (−y, x)
        offset = np.stack([-d1[:, 1], d1[:, 0]], axis=1) * (speed2 / cross)[:, None]
    curvature[1:-1] = np.where(moving, np.where(straight, 0.0, kappa), np.nan)
    centres[1:-1] = np.where(curved[:, None], xy[1:-1] + offset, np.nan)
    tangents[1:-1] = np.where(moving[:, None], d1, np.nan)
    is_straight = np.zeros(n, dtype=bool)
    is_straight[1:-1] = straight
    is_moving = np.zeros(n, dtype=bool)
    is_moving[1:-1] = moving
    if n >= 5:
        t = np.arange(2, n - 2)
        with np.errstate(invalid="ignore"):
            centre_step = np.linalg.norm(centres[t + 1] - centres[t - 1], axis=1) / 2
            relative = centre_step / _local_speed(np.sqrt(speed2), widths)[t - 1]
        runaway = is_straight[t - 1] | is_straight[t] | is_straight[t + 1]
        defined = is_moving[t - 1] & is_moving[t] & is_moving[t + 1]
        centre_speed[t] = np.where(defined, np.where(runaway, np.inf, relative), np.nan)
    cusps = np.union1d(_evolute_cusps(centre_speed, curvature, tangents, widths, prominence, min_turn),
                       _hairpins(xy, curvature)).astype(int)
    keep = (cusps >= 2 + margins[0]) & (cusps <= n - 3 - margins[1])
    travel = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    for i, at in enumerate(cusps):
        half = cusp_window(widths[at])
        moved = travel[min(n - 1, at + half)] - travel[max(0, at - half)]
        keep[i] &= moved >= min_travel * extent
    return _Plane(curvature, centres, centre_speed, cusps[keep])


def _local_speed(speed: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Mean of ``speed`` (at checkpoints 1..n-2) over each checkpoint's cusp neighbourhood."""
    total = np.concatenate([[0.0], np.cumsum(np.nan_to_num(speed))])
    out = np.empty_like(speed)
    for i in range(len(speed)):
        half = cusp_window(widths[i + 1])
        lo, hi = max(0, i - half), min(len(speed), i + half + 1)
        out[i] = (total[hi] - total[lo]) / (hi - lo)
    return out


def cusp_window(width: float) -> int:
    """Half-width (checkpoints) of the neighbourhood a cusp is judged in: the kernel's reach, at least 3."""
    return max(3, int(math.ceil(4 * width)))


def _turn_degrees(tangents: np.ndarray, at: int, half: int) -> float:
    """Angle between the tangents ``half`` checkpoints before and after ``at`` (nearest defined ones)."""
    defined = np.flatnonzero(np.isfinite(tangents).all(axis=1))
    before, after = defined[defined <= at - half], defined[defined >= at + half]
    before = before[-1] if len(before) else defined[0]
    after = after[0] if len(after) else defined[-1]
    a, b = tangents[before], tangents[after]
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


def _evolute_cusps(centre_speed: np.ndarray, curvature: np.ndarray, tangents: np.ndarray, widths: np.ndarray,
                   prominence: float, min_turn: float) -> np.ndarray:
    """Checkpoints where the osculating centre stands still at a sharp turn (see TrajectoryGeometry)."""
    with np.errstate(invalid="ignore"):
        stillness = np.where(np.isinf(centre_speed), 1.0, centre_speed / (1 + centre_speed))  # in [0, 1]
    n = len(stillness)
    found = []
    index = 0
    while index < n:  # each maximal stretch where the centre speed is defined
        if not np.isfinite(stillness[index]):
            index += 1
            continue
        end = index
        while end < n and np.isfinite(stillness[end]):
            end += 1
        depth = -stillness[index:end]
        for peak in find_peaks(depth)[0]:
            at = index + int(peak)
            half = cusp_window(widths[at])
            height, left, right = peak_prominences(depth, [peak], wlen=2 * half + 1)
            if height[0] < prominence:
                continue
            sides = np.nan_to_num(curvature[[index + int(left[0]), index + int(right[0])]], nan=0.0)
            if curvature[at] > sides.max() and _turn_degrees(tangents, at, half) >= min_turn:
                found.append(at)
        index = end
    return np.array(found, dtype=int)


def _hairpins(xy: np.ndarray, curvature: np.ndarray) -> np.ndarray:
    """Curvature maxima where the curve turns by 90° or more within one checkpoint (unresolved turns)."""
    if len(xy) < 3:
        return np.array([], dtype=int)
    before, after = xy[1:-1] - xy[:-2], xy[2:] - xy[1:-1]
    kappa = np.nan_to_num(curvature, nan=0.0)
    at = np.arange(1, len(xy) - 1)
    peak = (kappa[at] > 0) & (kappa[at] >= kappa[at - 1]) & (kappa[at] >= kappa[at + 1])
    reverses = (before * after).sum(axis=1) <= 0  # the angle between consecutive steps is >= 90°
    return at[peak & reverses & np.isfinite(curvature[at])]


class TrajectoryGeometry(BaseEstimator):
    """Smoothing, osculating circles, evolute cusps and milestones of a trajectory in PC space.

    Parameters
    ----------
    smoothing : float
        Width σ (standard deviation, in checkpoints) of the Gaussian smoothing at the start; 0
        disables smoothing. With log-spaced checkpoints a width in checkpoints is a width in
        log-time.
    smoothing_late : float or None
        Width at the end of the trajectory; None keeps ``smoothing`` throughout.
    smoothing_ramp : (float, float)
        Fractions of the trajectory between which the width grows linearly from ``smoothing``
        to ``smoothing_late`` (see :func:`smoothing_widths`).
    cusp_prominence : float
        How far (on the stillness scale ``v/(1+v)`` ∈ [0, 1], see Notes) the centre speed must
        rise on both sides of a dip, within the cusp's neighbourhood, for it to be a cusp.
    min_turn : float
        Degrees the tangent must turn across the cusp's neighbourhood (filters wiggles of a curve
        moving fast in one direction).
    min_travel : float
        Fraction of the plane's extent the smoothed curve must travel within the cusp's
        neighbourhood (filters the residual motion of a trajectory that has come to rest).
    tolerance : int
        Cusps in different planes within this many checkpoints of each other (chained) are one
        event.
    min_planes : int
        A milestone needs cusps in at least this many PC planes (capped at the number of planes).

    Attributes
    ----------
    steps_ : np.ndarray, shape (checkpoints,)
    trajectory_ : np.ndarray, shape (checkpoints, n_components)
        The trajectory as given (before smoothing).
    smoothing_widths_ : np.ndarray, shape (checkpoints,)
        σ_t used at each checkpoint.
    smoothed_ : np.ndarray, shape (checkpoints, n_components)
        The smoothed trajectory.
    planes_ : list of (int, int)
        The PC-pair planes (i, j), i < j, in order.
    curvature_ : np.ndarray, shape (planes, checkpoints)
        κ of the smoothed curve in each plane; 0 on straight stretches, NaN at the two ends and
        where the curve stands still.
    centres_ : np.ndarray, shape (planes, checkpoints, 2)
        Centres of the osculating circles (the evolute); NaN where undefined or at infinity.
    radius_ : np.ndarray, shape (planes, checkpoints)
        Radii 1/κ of the osculating circles (inf on straight stretches).
    centre_speed_ : np.ndarray, shape (planes, checkpoints)
        Speed of the centre relative to the curve's mean speed around it (inf when the centre is
        at infinity; NaN where undefined).
    cusps_ : list of np.ndarray
        Per plane, the checkpoint indices of the evolute cusps at sharp turns (milestone candidates).
    milestones_ : np.ndarray of int, shape (milestones,)
        Checkpoint indices where cusps of at least ``min_planes`` planes agree.
    milestone_steps_ : np.ndarray, shape (milestones,)
        Their training steps.
    milestone_planes_ : list of list of (int, int)
        The planes that agree on each milestone.

    Notes
    -----
    In each plane, with the smoothed curve ``c_t`` and central differences
    ``r' = (c_{t+1} − c_{t−1})/2``, ``r'' = c_{t+1} − 2c_t + c_{t−1}``, the curvature is
    ``κ = |r' × r''| / |r'|³`` and the osculating circle has radius ``1/κ`` and centre
    ``e_t = c_t + n̂/κ`` with ``n̂`` the unit normal towards the turn; in closed form
    ``e_t = c_t + rot90(r')·|r'|²/(r' × r'')``. The centres trace the evolute. Along arc length s,
    ``de/ds = (dρ/ds) n̂`` with ρ = 1/κ, so the centre stands still exactly where the curvature
    is extremal: a cusp of the evolute, a vertex of the curve.

    Cusp rule. Each checkpoint t is judged in its neighbourhood of ``w_t = max(3, ceil(4σ_t))``
    checkpoints on each side (the smoothing kernel's reach). The relative centre speed
    ``v_t = |e_{t+1} − e_{t−1}| / (2 s̄_t)``, with ``s̄_t`` the mean curve speed ``|r'|`` over
    ``t ± w_t``, is scale-free (it is |dρ/ds| where the curve moves evenly); normalising by the
    neighbourhood's speed rather than the speed at t keeps a turn taken while the trajectory
    slows down (a stage transition through a saddle) visible. It is mapped to the stillness
    scale ``u_t = v_t/(1+v_t)`` ∈ [0, 1]; on straight stretches (radius > 10⁶ × the plane's
    extent) the centre is at infinity and ``u = 1``. A cusp is a local minimum of u

    1. whose topographic prominence within that neighbourhood
       (:func:`scipy.signal.peak_prominences` of −u, ``wlen = 2w_t + 1``) is at least
       ``cusp_prominence``: the centre is nearly still at t and, on both sides, moves at least
       ``cusp_prominence/(1 − cusp_prominence)`` times as fast as the curve (0.5: as fast);
    2. where κ exceeds κ at both bases of the dip: a sharp turn, not the flattest point of a bend;
    3. where the tangents at ``t − w_t`` and ``t + w_t`` differ by at least ``min_turn`` degrees;
    Where the curve turns faster than the checkpoints resolve (a hairpin: a component reverses
    while the other barely moves, so κ spikes at one checkpoint and the neighbours' centres are far
    away), the still centre cannot be seen; such a turn counts too: a curvature maximum where
    consecutive steps ``c_t − c_{t−1}`` and ``c_{t+1} − c_t`` make an angle of 90° or more. Cusps
    of either kind are dropped at fewer than ``ceil(σ) + 2`` checkpoints from an end (where the
    smoothing kernel is cut off), and where the smoothed curve travels less than ``min_travel``
    × the plane's extent within ``t ± w_t`` (a standstill, e.g. a converged model: the shape of
    its residual motion is invisible at the scale of the trajectory).

    Judging prominence locally makes a long stretch of constant curvature (the centre still
    throughout) no cusp. A circle (constant κ) and a planar spiral (monotone κ: the centre always
    moves, Tait–Kneser) have no cusps; a smoothed corner has one, at the corner.

    Milestones. All planes' cusps are sorted and chained when consecutive ones are at most
    ``tolerance`` checkpoints apart; a chain touching at least ``min_planes`` distinct planes is a
    milestone at its median checkpoint.

    References
    ----------
    Hoogland, Wang, Farrugia-Roberts, Carroll, Wei, Murfet. The Developmental Landscape of
    In-Context Learning. 2024.
    """

    def __init__(self, smoothing: float = 2.0, smoothing_late: float | None = None,
                 smoothing_ramp: tuple[float, float] = (0.2, 1.0), cusp_prominence: float = 0.5,
                 min_turn: float = 15.0, min_travel: float = 0.01, tolerance: int = 3, min_planes: int = 2):
        self.smoothing = smoothing
        self.smoothing_late = smoothing_late
        self.smoothing_ramp = smoothing_ramp
        self.cusp_prominence = cusp_prominence
        self.min_turn = min_turn
        self.min_travel = min_travel
        self.tolerance = tolerance
        self.min_planes = min_planes

    def fit(self, trajectory: Any, steps: Any = None) -> TrajectoryGeometry:
        """Fit on a trajectory in PC space, shape (checkpoints, n_components ≥ 2).

        ``steps`` (checkpoints,) defaults to 0, 1, 2, ...
        """
        coords = np.asarray(trajectory, dtype=float)
        self._check_params(coords)
        n, k = coords.shape
        self.steps_ = np.arange(n) if steps is None else np.asarray(steps)
        if self.steps_.shape != (n,):
            raise ValueError(f"steps must have shape ({n},), got {self.steps_.shape}.")
        self.trajectory_ = coords
        self.smoothing_widths_ = smoothing_widths(n, self.smoothing, self.smoothing_late, tuple(self.smoothing_ramp))
        self.smoothed_ = gaussian_smooth(coords, self.smoothing_widths_)
        margins = (int(math.ceil(self.smoothing_widths_[0])), int(math.ceil(self.smoothing_widths_[-1]))) if n else (0, 0)
        self.planes_ = list(itertools.combinations(range(k), 2))
        planes = [_plane_geometry(self.smoothed_[:, list(plane)], self.smoothing_widths_, self.cusp_prominence,
                                  self.min_turn, self.min_travel, margins) for plane in self.planes_]
        self.curvature_ = np.array([p.curvature for p in planes])
        self.centres_ = np.array([p.centres for p in planes])
        with np.errstate(divide="ignore"):
            self.radius_ = 1.0 / self.curvature_
        self.centre_speed_ = np.array([p.centre_speed for p in planes])
        self.cusps_ = [p.cusps for p in planes]
        self._find_milestones()
        return self

    def _check_params(self, coords: np.ndarray) -> None:
        if coords.ndim != 2 or coords.shape[1] < 2:
            raise ValueError(f"the trajectory must have shape (checkpoints, components >= 2), got {coords.shape}.")
        if not np.isfinite(coords).all():
            raise ValueError("the trajectory holds non-finite values.")
        late = self.smoothing if self.smoothing_late is None else self.smoothing_late
        if not (self.smoothing >= 0 and late >= 0):
            raise ValueError(f"smoothing widths must be >= 0, got {self.smoothing} and {self.smoothing_late}.")
        ramp = tuple(self.smoothing_ramp)
        if len(ramp) != 2 or not 0 <= ramp[0] <= ramp[1] <= 1:
            raise ValueError(f"smoothing_ramp must be two fractions 0 <= start <= end <= 1, got {self.smoothing_ramp}.")
        if not 0 < self.cusp_prominence < 1:
            raise ValueError(f"cusp_prominence must lie in (0, 1), got {self.cusp_prominence}.")
        if not 0 <= self.min_turn <= 180:
            raise ValueError(f"min_turn must be an angle in degrees in [0, 180], got {self.min_turn}.")
        if not 0 <= self.min_travel < 1:
            raise ValueError(f"min_travel must be a fraction in [0, 1), got {self.min_travel}.")
        if self.tolerance < 0 or self.min_planes < 1:
            raise ValueError("tolerance must be >= 0 and min_planes >= 1.")

    def _find_milestones(self) -> None:
        candidates = sorted((int(t), plane) for plane, cusps in zip(self.planes_, self.cusps_) for t in cusps)
        needed = min(self.min_planes, len(self.planes_))
        chains: list[list[tuple[int, tuple[int, int]]]] = []
        for candidate in candidates:
            if chains and candidate[0] - chains[-1][-1][0] <= self.tolerance:
                chains[-1].append(candidate)
            else:
                chains.append([candidate])
        milestones, planes = [], []
        for chain in chains:
            agreeing = sorted({plane for _, plane in chain})
            if len(agreeing) >= needed:
                milestones.append(int(round(float(np.median([t for t, _ in chain])))))
                planes.append(agreeing)
        self.milestones_ = np.array(milestones, dtype=int)
        self.milestone_steps_ = self.steps_[self.milestones_] if len(milestones) else self.steps_[:0]
        self.milestone_planes_ = planes

    def plot(self, planes: Sequence[tuple[int, int]] | None = None, circles: bool = False, evolute: bool = False):
        """The smoothed trajectory in each PC plane with cusps and milestones.

        See :func:`devinterp_viz.plotting.plot_trajectory_geometry`.
        """
        from devinterp_viz.plotting import plot_trajectory_geometry

        return plot_trajectory_geometry(self, planes=planes, circles=circles, evolute=evolute)
