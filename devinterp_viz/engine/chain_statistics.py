"""Statistics of loss traces the verdict reads: where chains diverged, and whether they still drift."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import stdtr, stdtrit

EXPLOSION_FACTOR = 100.0  # nβ·(L − L*) above this × max(d, 10) at any draw: the chain exploded
EXPLOSION_ABSOLUTE = 1e6  # used instead when the parameter count d is unknown (imported results)
DRIFT_T = 4.0  # t statistic across chains for a rise between the last two quarters, set for 4 chains ...
DRIFT_FALSE_ALARM = float(stdtr(3, -DRIFT_T))  # ... where stationary chains exceed it 1.4% of the time


def divergence(loss_trace: np.ndarray, init_loss: float, nbeta: float, num_params: int | None) -> np.ndarray:
    """First divergent draw of each chain, -1 when it never diverged.

    Parameters
    ----------
    loss_trace : np.ndarray, shape (chains, draws)
    init_loss, nbeta : float
    num_params : int or None
        Number of moving parameters d. The LLC is at most d/2, so a single draw with
        ``nβ (L − L*) > EXPLOSION_FACTOR · max(d, 10)`` is an explosion, not a fluctuation.

    Returns
    -------
    np.ndarray of int, shape (chains,)
    """
    if loss_trace.shape[1] == 0:
        return np.full(loss_trace.shape[0], -1, dtype=int)
    limit = EXPLOSION_ABSOLUTE if num_params is None else EXPLOSION_FACTOR * max(num_params, 10)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(loss_trace) | (nbeta * (loss_trace - init_loss) > limit)
    first = np.where(bad.any(axis=1), bad.argmax(axis=1), -1)
    return first.astype(int)


def drift_statistic(loss_trace: np.ndarray, nbeta: float) -> tuple[float, float]:
    """Rise of the estimate between the third and last quarter of the draws.

    Returns
    -------
    rise : float
        Mean over chains of ``nβ (mean of last quarter − mean of third quarter)``.
    t : float
        ``rise`` divided by its standard error across chains (NaN with fewer than 2 chains
        or 8 draws).
    """
    chains, draws = loss_trace.shape
    if chains < 2 or draws < 8:
        return float("nan"), float("nan")
    quarter = draws // 4
    third = loss_trace[:, draws - 2 * quarter : draws - quarter].mean(axis=1)
    last = loss_trace[:, draws - quarter :].mean(axis=1)
    per_chain = nbeta * (last - third)
    se = per_chain.std(ddof=1) / np.sqrt(chains)
    rise = float(per_chain.mean())
    if se > 0:
        return rise, rise / se
    return rise, (math.copysign(math.inf, rise) if rise else 0.0)


def drift_threshold(chains: int) -> float:
    """Critical value of the drift t statistic for ``chains`` chains.

    The statistic of stationary chains follows Student's t with ``chains − 1`` degrees of
    freedom: ``DRIFT_T`` = 4 is exceeded 1.4% of the time with 4 chains but 7.8% with 2, so
    with fewer than 4 chains the threshold rises to keep the false-alarm rate at
    ``DRIFT_FALSE_ALARM`` (22.7 for 2 chains, 5.9 for 3); with more it stays at ``DRIFT_T``.
    """
    if chains < 2:
        return float("inf")
    return max(DRIFT_T, float(stdtrit(chains - 1, 1.0 - DRIFT_FALSE_ALARM)))
