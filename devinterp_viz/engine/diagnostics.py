"""Chain health: divergence, drift, mixing and acceptance checks turned into a verdict in words."""

from __future__ import annotations

import numpy as np
from scipy.special import stdtr, stdtrit

from devinterp_viz.engine.convergence import bulk_ess, split_rhat
from devinterp_viz.engine.results import Diagnostics

# Thresholds, stated once. Each is a rule of thumb of the field or of MCMC practice.
EXPLOSION_FACTOR = 100.0  # nβ·(L − L*) above this × max(d, 10) at any draw: the chain exploded
EXPLOSION_ABSOLUTE = 1e6  # used instead when the parameter count d is unknown (imported results)
RHAT_WARN, RHAT_FAIL = 1.1, 1.3  # split R-hat of the loss traces (Vehtari et al. 2021)
MALA_FAIL, MALA_LOW, MALA_HIGH = 0.5, 0.8, 0.99  # Lau et al. aim for ≈0.9 (0.86–0.93)
DRIFT_T = 4.0  # t statistic across chains for a rise between the last two quarters, set for 4 chains ...
DRIFT_FALSE_ALARM = float(stdtr(3, -DRIFT_T))  # ... where stationary chains exceed it 1.4% of the time
DRIFT_RELATIVE = 0.05  # ... that also moves the estimate by more than this fraction
ESS_WARN = 50.0
ESTIMATE_SE = 3.0  # an estimate outside [0, d/2] by more than this many standard errors fails
BELOW_INIT_WARN = 0.5  # fraction of a chain's draws below L(w*)
FREE_FAIL, FREE_WARN = 0.5, 0.25  # |w − w*|² at the end as a fraction of force-free diffusion


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
    return rise, (rise / se if se > 0 else float("inf") * np.sign(rise))


def diagnose(
    loss_trace: np.ndarray,
    init_loss: float,
    nbeta: float,
    mala_trace: np.ndarray,
    num_params: int | None = None,
    distance_trace: np.ndarray | None = None,
    free_diffusion: float | None = None,
) -> Diagnostics:
    """Judge a set of chains from their loss traces.

    Parameters
    ----------
    loss_trace : np.ndarray, shape (chains, draws)
    init_loss : float
        L(w*).
    nbeta : float
    mala_trace : np.ndarray, shape (chains, draws)
        MALA acceptance probabilities (NaN where undefined).
    num_params : int, optional
        Number of moving parameters d.
    distance_trace : np.ndarray, shape (chains, draws), optional
        |w − w*|² of the moving weights at each draw.
    free_diffusion : float, optional
        The |w − w*|² the chains would reach at the last draw if no force acted (noise
        alone, e.g. ``d ε T`` for SGLD). Chains whose distance is a large fraction of it have
        not yet felt the loss or the localization: the step is timid.

    Returns
    -------
    Diagnostics

    Notes
    -----
    Failures (``healthy=False``): a divergent chain (excluded from the estimate), a negative
    estimate, an estimate above d/2 (impossible for a true posterior), a loss still rising
    at the end of the chains (above :func:`drift_threshold`, stricter with fewer than 4
    chains), split R-hat above ``RHAT_FAIL``, mean MALA acceptance below ``MALA_FAIL``,
    chains whose distance from w* is over ``FREE_FAIL`` of force-free diffusion (a timid
    step). Warnings: R-hat above ``RHAT_WARN``, acceptance outside [``MALA_LOW``,
    ``MALA_HIGH``], low bulk ESS, many draws below L(w*), a falling loss, a rise too weak
    for fewer than 4 chains to judge.
    """
    chains, draws = loss_trace.shape
    first_bad = divergence(loss_trace, init_loss, nbeta, num_params)
    divergent = first_bad >= 0
    good = loss_trace[~divergent]
    with np.errstate(invalid="ignore"):
        below = (loss_trace < init_loss).mean(axis=1) if draws else np.full(chains, np.nan)
        mala_mean = np.array([_nanmean(row) for row in mala_trace]) if draws else np.full(chains, np.nan)
    rhat = split_rhat(good) if good.shape[0] >= 2 else float("nan")
    ess = bulk_ess(good) if good.shape[0] >= 1 else float("nan")
    reasons: list[str] = []
    warnings: list[str] = []

    if draws == 0:
        reasons.append("no draws were recorded: let the chains run longer before stopping")
    for chain in np.flatnonzero(divergent):
        kind = "became non-finite" if not np.isfinite(loss_trace[chain, first_bad[chain]]) else "exploded"
        reasons.append(f"chain {chain} diverged ({kind}) at draw {first_bad[chain]}: lower lr")
    if good.shape[0] and draws:
        per_chain = nbeta * (good.mean(axis=1) - init_loss)
        llc = float(per_chain.mean())
        se = float(per_chain.std(ddof=1) / np.sqrt(per_chain.size)) if per_chain.size > 1 else 0.0
        _judge_estimate(llc, se, num_params, reasons)
        _judge_drift(good, nbeta, llc, reasons, warnings)
    if distance_trace is not None and free_diffusion:
        _judge_timid(distance_trace[~divergent], free_diffusion, reasons, warnings)
    _judge_rhat(rhat, reasons, warnings)
    _judge_mala(mala_mean[~divergent], reasons, warnings)
    if np.isfinite(ess) and ess < ESS_WARN:
        warnings.append(f"bulk ESS is {ess:.0f}: few effectively independent draws; sample more draws")
    for chain in np.flatnonzero(~divergent & (below > BELOW_INIT_WARN)):
        warnings.append(
            f"chain {chain} spent {100 * below[chain]:.0f}% of its draws below L(w*): w* may not be a "
            "local minimum (train longer) or nβ is too small for the minibatch noise"
        )
    return Diagnostics(
        rhat=float(rhat),
        ess=float(ess),
        mala_acceptance=mala_mean,
        fraction_below_init=below,
        divergent=divergent,
        divergence_draw=first_bad,
        healthy=not reasons,
        reasons=reasons,
        warnings=warnings,
    )


def _nanmean(row: np.ndarray) -> float:
    finite = row[np.isfinite(row)]
    return float(finite.mean()) if finite.size else float("nan")


def _judge_estimate(llc: float, se: float, num_params: int | None, reasons: list[str]) -> None:
    """Fail estimates below 0 or above d/2 by more than ``ESTIMATE_SE`` standard errors."""
    if llc + ESTIMATE_SE * se < 0:
        reasons.append(
            f"the estimate {llc:.3g} is negative: the chains found lower loss than L(w*), so w* is not a "
            "local minimum (train longer) or the localization is too weak (raise it)"
        )
    if num_params is not None and llc - ESTIMATE_SE * se > num_params / 2:
        reasons.append(
            f"the estimate {llc:.3g} exceeds d/2 = {num_params / 2:g}, impossible for the posterior: "
            "the step is too large (lower lr)"
        )


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


def _judge_drift(good: np.ndarray, nbeta: float, llc: float, reasons: list[str], warnings: list[str]) -> None:
    rise, t = drift_statistic(good, nbeta)
    if not np.isfinite(rise) or abs(rise) <= DRIFT_RELATIVE * max(abs(llc), 1e-12):
        return
    threshold = drift_threshold(good.shape[0])
    if t > threshold:
        reasons.append(
            f"the loss is still rising at the end of the chains (the estimate grew by {rise:.3g} over the "
            "last quarter): the chains have not settled; raise lr or add burn-in / draws"
        )
    elif t > DRIFT_T:
        warnings.append(
            f"the estimate grew by {rise:.3g} over the last quarter, which {good.shape[0]} chains cannot tell "
            "from noise: run 4 or more chains to judge whether they have settled"
        )
    elif t < -threshold:
        warnings.append(
            f"the loss is falling at the end of the chains (by {-rise:.3g} in nβ units): w* may not be a "
            "local minimum"
        )


def _judge_timid(distance: np.ndarray, free_diffusion: float, reasons: list[str], warnings: list[str]) -> None:
    if distance.shape[0] == 0 or distance.shape[1] == 0 or not np.isfinite(distance[:, -1]).all():
        return
    fraction = float(distance[:, -1].mean() / free_diffusion)
    message = (
        f"the chains wandered from w* as far as noise alone would ({100 * fraction:.0f}% of force-free "
        "diffusion): they have not yet felt the loss or the localization"
    )
    if fraction > FREE_FAIL:
        reasons.append(f"{message}; the step is timid: raise lr")
    elif fraction > FREE_WARN:
        warnings.append(f"{message} in every direction; raise lr or add burn-in")


def _judge_rhat(rhat: float, reasons: list[str], warnings: list[str]) -> None:
    if not np.isfinite(rhat):
        return
    if rhat > RHAT_FAIL:
        reasons.append(f"split R-hat is {rhat:.2f} (> {RHAT_FAIL}): the chains disagree; sample longer or lower lr")
    elif rhat > RHAT_WARN:
        warnings.append(f"split R-hat is {rhat:.2f} (> {RHAT_WARN}): the chains have not fully mixed")


def _judge_mala(mala_mean: np.ndarray, reasons: list[str], warnings: list[str]) -> None:
    finite = mala_mean[np.isfinite(mala_mean)]
    if not finite.size:
        return
    mean = float(finite.mean())
    if mean < MALA_FAIL:
        reasons.append(f"MALA acceptance is {mean:.2f} (< {MALA_FAIL}): the step is far too large; lower lr")
    elif mean < MALA_LOW:
        warnings.append(f"MALA acceptance is {mean:.2f}: lower lr for less discretisation bias (aim near 0.9)")
    elif mean > MALA_HIGH:
        warnings.append(f"MALA acceptance is {mean:.3f}: the step may be timid; a larger lr explores faster")
