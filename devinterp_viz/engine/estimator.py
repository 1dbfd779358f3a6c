"""The LLC estimator, in one place: λ̂ = nβ (mean loss − L(w*)) per chain, and its running value."""

from __future__ import annotations

import numpy as np


def llc_per_chain(loss_trace: np.ndarray, init_loss: float, nbeta: float) -> np.ndarray:
    """Each chain's estimate ``nβ (mean(L) − L(w*))``.

    Parameters
    ----------
    loss_trace : np.ndarray, shape (chains, draws)
    init_loss : float
        L(w*).
    nbeta : float

    Returns
    -------
    np.ndarray, shape (chains,)
        NaN for every chain when there are no draws.
    """
    loss_trace = np.asarray(loss_trace, dtype=np.float64)
    if loss_trace.shape[1] == 0:
        return np.full(loss_trace.shape[0], np.nan)
    return nbeta * (loss_trace.mean(axis=1) - init_loss)


def running_llc(loss_trace: np.ndarray, init_loss: float, nbeta: float) -> np.ndarray:
    """The estimate after each draw, per chain: ``nβ (cumulative mean of L − L(w*))``, shape (chains, draws)."""
    loss_trace = np.asarray(loss_trace, dtype=np.float64)
    draws = np.arange(1, loss_trace.shape[1] + 1)
    return nbeta * (np.cumsum(loss_trace, axis=1) / draws - init_loss)
