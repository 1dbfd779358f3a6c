"""Covariances under the localized posterior: loss kernels, Bayesian influence functions and susceptibilities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from devinterp_viz.engine.results import LLCResult


@dataclass
class Covariance:
    """A posterior covariance estimate with its standard error.

    Attributes
    ----------
    value : np.ndarray
        The estimate, pooled over chains (each chain centred on its own mean).
    stderr : np.ndarray
        Standard error by batch means across chains: the spread of the per-chain estimates
        over √chains (NaN with one chain).
    """

    value: np.ndarray
    stderr: np.ndarray

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.value, dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape


def _observable(result: LLCResult, name: str) -> np.ndarray:
    """``result.observables[name]`` as float64 (chains, draws, samples), with a clear error when absent."""
    if name not in result.observables:
        recorded = ", ".join(result.observables) or "none"
        raise KeyError(
            f"the result recorded no observable {name!r} (recorded: {recorded}); estimate it with "
            f"observables={{{name!r}: data}} and per_sample_loss=..."
        )
    values = np.asarray(result.observables[name], dtype=np.float64)
    if values.shape[1] < 2:
        raise ValueError(f"observable {name!r} has {values.shape[1]} draw(s); a covariance needs at least two.")
    return values


def cross_covariance(a: np.ndarray, b: np.ndarray) -> Covariance:
    """Within-chain cross-covariance of two sets of per-draw values, pooled over chains.

    Parameters
    ----------
    a : np.ndarray, shape (chains, draws, p)
    b : np.ndarray, shape (chains, draws, q)

    Returns
    -------
    Covariance
        ``value`` of shape (p, q): Σ_c Σ_t (a − ā_c)(b − b̄_c)ᵀ / (chains · (draws − 1)), with
        ``stderr`` from the per-chain covariances.
    """
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    per_chain = np.einsum("ctp,ctq->cpq", a, b) / (a.shape[1] - 1)
    chains = per_chain.shape[0]
    stderr = per_chain.std(axis=0, ddof=1) / np.sqrt(chains) if chains > 1 else np.full(per_chain.shape[1:], np.nan)
    return Covariance(per_chain.mean(axis=0), stderr)


def loss_kernel(result: LLCResult, name: str, correlation: bool = False) -> Covariance:
    """The loss kernel: covariance (or correlation) of per-sample losses across posterior draws.

    Parameters
    ----------
    result : LLCResult
        Estimated with ``observables={name: data}`` and ``per_sample_loss=``.
    name : str
    correlation : bool
        Normalise to correlations (Adam, Furman & Hoogland 2025 embed this matrix).

    Returns
    -------
    Covariance
        ``value`` of shape (samples, samples).
    """
    values = _observable(result, name)
    kernel = cross_covariance(values, values)
    if correlation:
        scale = np.sqrt(np.clip(np.diag(kernel.value), 1e-300, None))
        outer = np.outer(scale, scale)
        return Covariance(kernel.value / outer, kernel.stderr / outer)
    return kernel


def bif(result: LLCResult, a: str, b: str | None = None) -> Covariance:
    """Bayesian influence functions BIF(z_i, z_j) = −Cov(ℓ_i(w), ℓ_j(w)) (Kreer et al. 2025).

    Parameters
    ----------
    result : LLCResult
    a, b : str
        Observables whose samples are the rows and columns; ``b`` defaults to ``a``.

    Returns
    -------
    Covariance
        ``value`` of shape (len(a), len(b)).
    """
    cov = cross_covariance(_observable(result, a), _observable(result, a if b is None else b))
    return Covariance(-cov.value, cov.stderr)


def susceptibilities(result: LLCResult, name: str, loss_observable: str | None = None) -> Covariance:
    """Per-sample (or per-token) susceptibilities χ_i = −nβ · Cov(L(w), ℓ_i(w) − L(w)) (Baker et al. 2025).

    The first-order response of the posterior mean of the loss L to shifting the data distribution
    towards sample i (the direction ℓ_i − L: shifting towards the training distribution itself
    gives 0); with a run that moves only one component's weights (``params=`` a head in
    ``estimate_llc``), these are that component's susceptibilities.

    ``L`` at each draw is the mean of ``loss_observable``, an observable of training samples
    recorded in the same run (as devinterp's ``sampling_task``), or else the run's minibatch loss
    ``result.loss_trace``. The minibatch loss is an unbiased stand-in in Cov(L, ℓ_i) but not in
    the −Var(L) term: every χ_i is then shifted by the same +nβ·E[Var(minibatch noise)] (zero with
    full-batch runs), so compare samples with each other, or record a training observable and pass
    its name: the mean of χ over that observable's samples is then exactly 0.

    Parameters
    ----------
    result : LLCResult
    name : str
        The observable whose samples get a susceptibility each.
    loss_observable : str, optional
        An observable whose mean over its samples is used as L at each draw.

    Returns
    -------
    Covariance
        ``value`` of shape (samples,).
    """
    values = _observable(result, name)
    loss = _draw_loss(result, loss_observable)
    if loss.shape[:2] != values.shape[:2]:
        raise ValueError(f"loss_trace {loss.shape[:2]} and observable {name!r} {values.shape[:2]} differ in (chains, draws).")
    cov = cross_covariance(loss, values - loss)
    return Covariance(-result.nbeta * cov.value[0], result.nbeta * cov.stderr[0])


def _draw_loss(result: LLCResult, loss_observable: str | None) -> np.ndarray:
    """L at each draw, shape (chains, draws, 1): the minibatch loss trace or an observable's mean."""
    if loss_observable is not None:
        return _observable(result, loss_observable).mean(axis=2, keepdims=True)
    return np.asarray(result.loss_trace, dtype=np.float64)[..., None]


def response_matrix(results: Mapping[str, LLCResult], probes: Sequence[str], loss_observable: str | None = None) -> Covariance:
    """Component × probe susceptibilities χ[c, q] = −nβ · Cov_c(L(w), ℓ_q(w) − L(w)), ℓ_q the mean loss on probe q.

    Parameters
    ----------
    results : mapping of str to LLCResult
        One weight-refined result per component (e.g. ``estimate_llc_selections`` over heads with
        ``observables=``), each sampled with only that component's weights moving.
    probes : sequence of str
        Observables recorded in every result (the probe distributions).
    loss_observable : str, optional
        An observable of training samples whose mean stands for L, as in :func:`susceptibilities`
        (without it every entry carries the same minibatch-noise offset).

    Returns
    -------
    Covariance
        ``value`` of shape (components, probes), in the order given; the mean over a probe's
        samples of :func:`susceptibilities`, with its own batch-means error.
    """
    value = np.full((len(results), len(probes)), np.nan)
    stderr = np.full_like(value, np.nan)
    for row, result in enumerate(results.values()):
        loss = _draw_loss(result, loss_observable)
        for column, probe in enumerate(probes):
            cov = cross_covariance(loss, _observable(result, probe).mean(axis=2, keepdims=True) - loss)
            value[row, column], stderr[row, column] = -result.nbeta * cov.value[0, 0], result.nbeta * cov.stderr[0, 0]
    return Covariance(value, stderr)
