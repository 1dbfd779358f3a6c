"""Convergence diagnostics for (chain, draw) traces: rank-normalised split R-hat and bulk ESS."""

# Why this module exists rather than a dependency on arviz-stats: the engine needs two numbers
# per run (R-hat and bulk ESS of the loss traces), and the engine's import path is meant to stay
# torch + numpy + scipy. arviz-stats pulls in xarray (and with it pandas) at import time, which is
# heavy for a diagnostic that is ~60 lines of numpy. We also avoid `scipy.stats` (about a second to
# import) by ranking with numpy and using `scipy.special.ndtri`. The maths follows Vehtari et al.
# (2021) exactly as ArviZ implements it, including Geyer's truncation details that change the
# answer; tests/test_convergence.py uses arviz-stats as the oracle so the two cannot drift apart.

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri

__all__ = ["bulk_ess", "split_rhat"]

_MIN_DRAWS = 4
_BLOM_OFFSET = 3 / 8


def split_rhat(x: ArrayLike, chain_axis: int = 0, draw_axis: int = 1) -> float:
    r"""Rank-normalised split R-hat of a set of chains.

    Parameters
    ----------
    x : array_like, shape (chains, draws)
        Draws of one scalar quantity (e.g. a loss trace), laid out along `chain_axis` and
        `draw_axis`; any 2-D layout is accepted.
    chain_axis : int, default 0
        Axis of `x` that indexes chains.
    draw_axis : int, default 1
        Axis of `x` that indexes draws within a chain.

    Returns
    -------
    float
        ``max(R-hat_bulk, R-hat_tail)``; values near 1 mean the chains agree, above ~1.01 they
        have not mixed. NaN when it cannot be computed: fewer than 2 chains, fewer than 4 draws,
        any NaN in `x`, or all (split) draws equal. ``inf`` when every split chain is constant but
        the chains sit at different values.

    Raises
    ------
    ValueError
        If `x` is not 2-D, or `chain_axis` and `draw_axis` are out of range or name the same
        axis.

    Notes
    -----
    Each chain of ``N`` draws is split into two halves of ``n = N // 2`` draws (the middle draw
    of an odd-length chain is dropped), giving ``M`` split chains. All draws are ranked jointly
    (ties get their average rank ``r``) and mapped to normal scores
    ``z = Phi^{-1}((r - 3/8) / (S + 1/4))`` with ``S = M n`` (Blom, 1958). With the split-chain
    means ``zbar_m``, variances ``s_m^2`` and

    .. math::

        B = n \operatorname{Var}_m(\bar z_m), \quad W = \frac{1}{M}\sum_m s_m^2, \quad
        \hat R = \sqrt{\frac{B / W + n - 1}{n}},

    ``R-hat_bulk`` is this on ``z`` and ``R-hat_tail`` is this on the normal scores of the folded
    draws ``|x - median(x)|``. The result is their maximum, as ArviZ's ``method="rank"``.

    Infinite draws are handled through their ranks: ``+inf`` ranks highest and ``-inf`` lowest,
    so the result is finite and well defined. If the folded draws are undefined (the median is
    infinite, i.e. at least half the draws are infinite) or constant, ``R-hat_tail`` is NaN and
    only ``R-hat_bulk`` is returned, which is what ArviZ's ``max`` does too.

    One chain gives NaN (as ArviZ), although its two halves could be compared: between-chain
    disagreement is what R-hat is for.

    References
    ----------
    .. [1] Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. & Bürkner, P.-C. (2021).
       Rank-normalization, folding, and localization: An improved R-hat for assessing
       convergence of MCMC. Bayesian Analysis 16(2), 667-718. doi:10.1214/20-BA1221
    .. [2] Blom, G. (1958). Statistical Estimates and Transformed Beta-Variables. Wiley.
    """
    draws = _as_chain_draw(x, chain_axis, draw_axis)
    if not _has_enough_draws(draws, min_chains=2):
        return float("nan")
    split = _split_chains(draws)
    if _is_constant(split):
        return float("nan")
    rhat_bulk = _rhat(_z_scale(split))
    rhat_tail = _rhat(_z_scale(_fold(split)))
    return float(np.fmax(rhat_bulk, rhat_tail))


def bulk_ess(x: ArrayLike, chain_axis: int = 0, draw_axis: int = 1) -> float:
    r"""Bulk effective sample size of a set of chains, all chains together.

    Parameters
    ----------
    x : array_like, shape (chains, draws)
        Draws of one scalar quantity, laid out along `chain_axis` and `draw_axis`.
    chain_axis : int, default 0
        Axis of `x` that indexes chains.
    draw_axis : int, default 1
        Axis of `x` that indexes draws within a chain.

    Returns
    -------
    float
        Effective number of independent draws for estimating the centre of the distribution;
        at most ``S log10(S)`` for ``S`` split draws, and above ``S`` for antithetic chains.
        NaN when it cannot be computed: no chains, fewer than 4 draws, any NaN in `x`, or all
        (split) draws equal (ArviZ returns ``S`` for a constant array; a stuck sampler should not
        look perfectly mixed, so we return NaN).

    Raises
    ------
    ValueError
        If `x` is not 2-D, or `chain_axis` and `draw_axis` are out of range or name the same
        axis.

    Notes
    -----
    Chains are split in halves and rank-normalised to ``z`` as in :func:`split_rhat` (infinite
    draws are ranked, so they are allowed). With ``M`` split chains of ``n`` draws, per-chain
    autocovariances ``gamma_m(t)`` (FFT, biased ``1/n`` estimator), ``W`` as in R-hat and

    .. math::

        \widehat{\operatorname{var}}^+ = \frac{n - 1}{n} W + \operatorname{Var}_m(\bar z_m),
        \qquad
        \hat\rho_t = 1 - \frac{W - \frac{1}{M}\sum_m \gamma_m(t)}
        {\widehat{\operatorname{var}}^+}.

    The sum of ``rho_t`` is truncated with Geyer's initial positive sequence (stop at the first
    pair ``rho_{2k} + rho_{2k+1}`` that is negative) and made monotone (each pair sum no larger
    than the previous one), giving ``tau = -1 + 2 sum_{t <= T} rho_t + rho_{T+1}`` and
    ``ESS = S / max(tau, 1 / log10(S))``, exactly as ArviZ and Stan compute it.

    References
    ----------
    .. [1] Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. & Bürkner, P.-C. (2021).
       Rank-normalization, folding, and localization: An improved R-hat for assessing
       convergence of MCMC. Bayesian Analysis 16(2), 667-718. doi:10.1214/20-BA1221
    .. [2] Geyer, C. J. (1992). Practical Markov chain Monte Carlo. Statistical Science 7(4),
       473-483.
    """
    draws = _as_chain_draw(x, chain_axis, draw_axis)
    if not _has_enough_draws(draws, min_chains=1):
        return float("nan")
    split = _split_chains(draws)
    if _is_constant(split):
        return float("nan")
    return _ess(_z_scale(split))


def mcse_mean(x: ArrayLike, chain_axis: int = 0, draw_axis: int = 1) -> float:
    """Monte Carlo standard error of the mean of all draws, from their effective sample size.

    Parameters
    ----------
    x : array_like, shape (chains, draws)
    chain_axis, draw_axis : int

    Returns
    -------
    float
        ``sd / sqrt(ESS_mean)`` with ``ESS_mean`` the effective sample size of the raw (split,
        not rank-normalised) draws, as ArviZ's ``mcse(method="mean")``; NaN when it cannot be
        computed (see :func:`bulk_ess`). Unlike the spread of a few chain means, it uses every
        draw, so with 4 chains it is a far steadier estimate of the error of the mean.
    """
    draws = _as_chain_draw(x, chain_axis, draw_axis)
    if not _has_enough_draws(draws, min_chains=1) or not np.isfinite(draws).all():
        return float("nan")
    split = _split_chains(draws)
    if _is_constant(split):
        return float("nan")
    return float(np.std(draws, ddof=1) / np.sqrt(_ess(split)))


def _as_chain_draw(x: ArrayLike, chain_axis: int, draw_axis: int) -> np.ndarray:
    """Return `x` as a float array of shape (chains, draws)."""
    values = np.asarray(x, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D (chain, draw) array, got shape {values.shape}")
    return np.moveaxis(values, (chain_axis, draw_axis), (0, 1))


def _has_enough_draws(draws: np.ndarray, min_chains: int) -> bool:
    """Whether (chains, draws) has the chains and draws needed and no NaN."""
    n_chains, n_draws = draws.shape
    return n_chains >= min_chains and n_draws >= _MIN_DRAWS and not np.isnan(draws).any()


def _is_constant(draws: np.ndarray) -> bool:
    """Whether every entry equals the first (``inf`` included)."""
    return bool(np.all(draws == draws.flat[0]))


def _split_chains(draws: np.ndarray) -> np.ndarray:
    """(chains, draws) -> (2 chains, draws // 2): first halves, then second halves."""
    half = draws.shape[1] // 2
    return np.concatenate((draws[:, :half], draws[:, draws.shape[1] - half :]))


def _fold(draws: np.ndarray) -> np.ndarray:
    """Absolute deviation from the pooled median; NaN where a draw equals an infinite median."""
    with np.errstate(invalid="ignore"):
        return np.abs(draws - np.median(draws))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of the flattened `values`, ties given their average rank (no NaN)."""
    flat = values.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_values = flat[order]
    starts_group = np.concatenate(([True], sorted_values[1:] != sorted_values[:-1]))
    group_of_sorted = np.cumsum(starts_group) - 1
    group_start = np.flatnonzero(starts_group)
    group_size = np.diff(np.append(group_start, flat.size))
    ranks = np.empty(flat.size)
    ranks[order] = (group_start + (group_size + 1) / 2)[group_of_sorted]
    return ranks.reshape(values.shape)


def _z_scale(draws: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks (Blom's offset); all NaN if any draw is NaN."""
    if np.isnan(draws).any():
        return np.full(draws.shape, np.nan)
    quantiles = (_average_ranks(draws) - _BLOM_OFFSET) / (draws.size - 2 * _BLOM_OFFSET + 1)
    return ndtri(quantiles)


def _rhat(draws: np.ndarray) -> float:
    """Gelman-Rubin R-hat of (chains, draws) without splitting or ranking."""
    n_draws = draws.shape[1]
    between = n_draws * np.var(draws.mean(axis=1), ddof=1)
    within = np.mean(np.var(draws, axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sqrt((between / within + n_draws - 1) / n_draws))


def _autocov(draws: np.ndarray) -> np.ndarray:
    """Biased (1/n) autocovariance of each chain at every lag, via a zero-padded FFT."""
    n_draws = draws.shape[1]
    n_fft = 1 << (2 * n_draws - 1).bit_length()
    centred = draws - draws.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=n_fft, axis=1)
    return np.fft.irfft(spectrum * spectrum.conj(), n=n_fft, axis=1)[:, :n_draws] / n_draws


def _ess(draws: np.ndarray) -> float:
    """Effective sample size of (chains, draws) with Geyer's initial monotone sequence."""
    n_chains, n_draws = draws.shape
    autocov = _autocov(draws)
    within = np.mean(autocov[:, 0]) * n_draws / (n_draws - 1)
    var_plus = within * (n_draws - 1) / n_draws
    if n_chains > 1:
        var_plus += np.var(draws.mean(axis=1), ddof=1)
    rho = 1 - (within - autocov.mean(axis=0)) / var_plus
    n_total = n_chains * n_draws
    tau = max(_geyer_autocorr_time(rho), 1 / np.log10(n_total))
    return float(n_total / tau)


def _geyer_autocorr_time(rho: np.ndarray) -> float:
    """Integrated autocorrelation time from autocorrelations `rho` (lag 0, 1, ...).

    Follows ArviZ/Stan line for line: initial positive sequence, then initial monotone sequence.
    """
    n_lags = rho.size
    kept = np.zeros(n_lags)
    kept[0] = rho_even = 1.0
    kept[1] = rho_odd = rho[1]
    t = 1
    while t < n_lags - 3 and rho_even + rho_odd > 0:
        rho_even, rho_odd = rho[t + 1], rho[t + 2]
        if rho_even + rho_odd >= 0:
            kept[t + 1], kept[t + 2] = rho_even, rho_odd
        t += 2
    last = t - 2
    if rho_even > 0:
        kept[last + 1] = rho_even
    for t in range(1, last - 1, 2):
        previous_pair = kept[t - 1] + kept[t]
        if kept[t + 1] + kept[t + 2] > previous_pair:
            kept[t + 1] = kept[t + 2] = previous_pair / 2
    return float(-1 + 2 * kept[: last + 1].sum() + kept[last + 1 : last + 2].sum())
