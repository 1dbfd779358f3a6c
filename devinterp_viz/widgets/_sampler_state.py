"""What the SamplerWidget shows, as synced state: the live trace of a run, the calibration grid, the health panel."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from devinterp_viz.engine.estimator import running_llc


class LiveTrace:
    """The draws of a running estimate as they arrive: a (chains, draws) loss buffer, L(w*) and nβ.

    ``add`` runs in the sampling thread, ``state`` in the throttle's; a lock keeps them apart.

    Parameters
    ----------
    num_chains, num_draws : int
        The buffer's shape (it grows if more draws arrive).
    nbeta : float or None
        nβ as asked for (None until the engine reports the one it uses).
    """

    def __init__(self, num_chains: int, num_draws: int, nbeta: float | None):
        self._loss = np.full((num_chains, num_draws), np.nan, np.float32)
        self._count = 0
        self._init_loss: float | None = None
        self._nbeta = nbeta
        self._total = num_draws
        self._lock = threading.Lock()

    def start(self, init_loss: float, nbeta: float) -> None:
        """Record L(w*) and the nβ in use (the engine's ``on_start``)."""
        with self._lock:
            self._init_loss, self._nbeta = float(init_loss), float(nbeta)

    def add(self, draw_index: int, losses: Any) -> None:
        """Record draw ``draw_index`` of every chain (the engine's ``on_draw``), losses shape (chains,)."""
        with self._lock:
            if draw_index >= self._loss.shape[1]:
                grown = np.full((self._loss.shape[0], max(2 * self._loss.shape[1], draw_index + 1)), np.nan, np.float32)
                grown[:, : self._loss.shape[1]] = self._loss
                self._loss = grown
            self._loss[:, draw_index] = np.asarray(losses, dtype=np.float32).reshape(-1)
            self._count = max(self._count, draw_index + 1)

    def state(self) -> dict[str, Any]:
        """The ``trace`` trait's value now: see :func:`trace_state`."""
        with self._lock:
            loss, init_loss, nbeta = self._loss[:, : self._count].copy(), self._init_loss, self._nbeta
        return trace_state(loss, init_loss, nbeta, self._total)


def trace_state(loss: np.ndarray, init_loss: float | None, nbeta: float | None, total_draws: int) -> dict[str, Any]:
    """The trace panel's data: ``loss`` float32 (chains, draws), ``llc`` the running estimate of each
    chain (same shape; None until L(w*) is known), ``init_loss``, ``nbeta``, ``total_draws``."""
    known = init_loss is not None and nbeta is not None
    llc = running_llc(loss, init_loss, nbeta).astype(np.float32) if known else None
    return {"loss": np.asarray(loss, np.float32), "llc": llc, "init_loss": init_loss, "nbeta": nbeta,
            "total_draws": int(total_draws)}


def calibration_state(cal: Any) -> dict[str, Any]:
    """The calibration tab's data for a :class:`CalibrationResult`, finished or filling in.

    Arrays are (n_values, n_lr) over every lr tried so far; ``healthy`` is NaN where a cell has
    not run; ``loss`` holds each cell's chains, (n_values, n_lr, chains, draws), and ``llc`` their
    running estimates (same shape).
    """
    results = cal.results
    shape = (cal.values.size, cal.lrs.size)
    chains = max((r.loss_trace.shape[0] for r in results.values()), default=0)
    draws = max((r.loss_trace.shape[1] for r in results.values()), default=0)
    loss = np.full(shape + (chains, draws), np.nan, np.float32)
    llc = np.full(shape + (chains, draws), np.nan, np.float32)
    healthy = np.full(shape, np.nan, np.float32)
    for (i, j), res in results.items():
        loss[i, j, : res.loss_trace.shape[0], : res.loss_trace.shape[1]] = res.loss_trace
        llc[i, j, : res.loss_trace.shape[0], : res.loss_trace.shape[1]] = running_llc(res.loss_trace, res.init_loss, res.nbeta)
        healthy[i, j] = float(res.diagnostics.healthy)
    rec = cal.recommended
    return {
        "axis": cal.axis, "lrs": np.asarray(cal.lrs, float), "values": np.asarray(cal.values, float),
        "llc_mean": cal.llc_mean.astype(np.float32), "llc_std": cal.llc_std.astype(np.float32),
        "llc_se": cal.llc_se.astype(np.float32), "healthy": healthy,
        "init_loss": cal._grid(lambda r: r.init_loss).astype(np.float32),
        "nbeta": cal._grid(lambda r: r.nbeta).astype(np.float32), "loss": loss, "llc": llc,
        "burnin": cal.burnin.tolist(), "reasons": cal.reasons,
        "cell_settings": [[cal.cell_settings(i, j) for j in range(shape[1])] for i in range(shape[0])],
        "recommended": None if rec is None else {k: (list(v) if k == "reasons" else v) for k, v in rec.items()},
        "recommended_settings": cal.recommended_settings,
        "recommendation_reasons": list(cal.recommendation_reasons),
        "done": len(results), "total": max(len(results), cal.values.size * cal.user_lrs.size),
    }


def health_state(result: Any) -> dict[str, Any]:
    """The health panel's data for a result: estimate, diagnostics, verdict and the next step."""
    d = result.diagnostics
    return {
        "verdict": d.verdict,
        "healthy": bool(d.healthy),
        "status": d.status,
        "reasons": list(d.reasons),
        "next_step": d.next_step.get("text", "") if d.next_step else "",
        "warnings": list(d.warnings),
        "llc_se": float(result.llc_se),
        "step_bias": float(d.step_bias),
        "rhat": float(d.rhat),
        "ess": float(d.ess),
        "mala_acceptance": np.asarray(d.mala_acceptance, np.float32),
        "fraction_below_init": np.asarray(d.fraction_below_init, np.float32),
        "divergent": np.asarray(d.divergent, np.float32),
        "llc_mean": float(result.llc_mean),
        "llc_std": float(result.llc_std),
        "llc_per_chain": np.asarray(result.llc_per_chain, np.float32),
        "partial": bool(result.partial),
    }
