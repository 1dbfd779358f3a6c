"""What the SamplerWidget shows, as synced state: the live trace of a run, the calibration grid, the health panel, the run history."""

from __future__ import annotations

import csv
import io
import threading
import time
from typing import Any

import numpy as np

from devinterp_viz.engine.convergence import bulk_ess, split_rhat
from devinterp_viz.engine.chain_statistics import divergence
from devinterp_viz.engine.estimator import running_llc

#: Seconds between two live diagnostics of a streaming run (R-hat and ESS cost more than a frame).
LIVE_DIAGNOSTICS_EVERY = 0.5
#: Points of a run's mean running-LLC curve kept for the history's comparison plot (display only).
CURVE_POINTS = 1000
#: Points per chain of a calibration cell's traces as sent for its small plot (display only:
#: every k-th draw; the cell's estimate and verdict use all of its draws).
CELL_POINTS = 100
#: Significant digits of the numbers in the history table and its CSV.
DIGITS = 4


class LiveTrace:
    """The draws of a running estimate as they arrive: a (chains, draws) loss buffer, L(w*) and nβ.

    ``add`` runs in the sampling thread, ``state`` in the throttle's; a lock keeps them apart.

    Parameters
    ----------
    num_chains, num_draws : int
        The buffer's shape (it grows if more draws arrive).
    nbeta : float or None
        nβ as asked for (None until the engine reports the one it uses).
    num_burnin_steps, num_steps_bw_draws : int
        Where the burn-in losses the engine streams (``add_burnin``) lie before draw 0.
    """

    def __init__(self, num_chains: int, num_draws: int, nbeta: float | None, num_burnin_steps: int = 0,
                 num_steps_bw_draws: int = 1):
        self._loss = np.full((num_chains, num_draws), np.nan, np.float32)
        self._acceptance = np.full((num_chains, num_draws), np.nan, np.float32)
        self._burnin_steps: list[int] = []
        self._burnin_loss: list[np.ndarray] = []
        self._burnin_schedule = (num_burnin_steps, num_steps_bw_draws)
        self._count = 0
        self._init_loss: float | None = None
        self._nbeta = nbeta
        self._total = num_draws
        self._lock = threading.Lock()
        self._diagnosed_at = -np.inf
        self._diagnostics: dict[str, Any] = {}

    def start(self, init_loss: float, nbeta: float) -> None:
        """Record L(w*) and the nβ in use (the engine's ``on_start``)."""
        with self._lock:
            self._init_loss, self._nbeta = float(init_loss), float(nbeta)

    def add(self, draw_index: int, losses: Any, acceptance: Any = None) -> None:
        """Record draw ``draw_index`` of every chain (the engine's ``on_draw``), losses shape (chains,).

        ``acceptance`` (chains,), when the engine streams it, is the MALA acceptance of the move
        from draw ``draw_index − 1``.
        """
        with self._lock:
            if draw_index >= self._loss.shape[1]:
                size = max(2 * self._loss.shape[1], draw_index + 1)
                self._loss, self._acceptance = (np.pad(a, ((0, 0), (0, size - a.shape[1])), constant_values=np.nan)
                                                for a in (self._loss, self._acceptance))
            self._loss[:, draw_index] = np.asarray(losses, dtype=np.float32).reshape(-1)
            if acceptance is not None and draw_index > 0:
                self._acceptance[:, draw_index - 1] = np.asarray(acceptance, dtype=np.float32).reshape(-1)
            self._count = max(self._count, draw_index + 1)

    def add_burnin(self, step: int, losses: Any) -> None:
        """Record the losses (chains,) of burn-in step ``step`` (the engine's ``on_burnin``; at most 256 of them)."""
        with self._lock:
            self._burnin_steps.append(int(step))
            self._burnin_loss.append(np.asarray(losses, dtype=np.float32).reshape(-1))

    def state(self) -> dict[str, Any]:
        """The ``trace`` trait's value now: see :func:`trace_state`."""
        with self._lock:
            loss, init_loss, nbeta = self._loss[:, : self._count].copy(), self._init_loss, self._nbeta
            acceptance = self._acceptance[:, : self._count].copy()
            steps = np.asarray(self._burnin_steps, np.float32)
            burnin_loss = np.stack(self._burnin_loss, axis=1) if self._burnin_loss else np.zeros((loss.shape[0], 0), np.float32)
        state = trace_state(loss, init_loss, nbeta, self._total, burnin_state(steps, burnin_loss, *self._burnin_schedule))
        if time.monotonic() - self._diagnosed_at >= LIVE_DIAGNOSTICS_EVERY:
            self._diagnostics = live_diagnostics(loss, init_loss, nbeta, acceptance)
            self._diagnosed_at = time.monotonic()
        state["live"] = self._diagnostics
        return state


def live_diagnostics(loss: np.ndarray, init_loss: float | None, nbeta: float | None,
                     acceptance: np.ndarray | None = None) -> dict[str, Any]:
    """R-hat, bulk ESS, MALA acceptance and divergent chains of the draws streamed so far, by the engine's own functions.

    Parameters
    ----------
    loss : np.ndarray, shape (chains, draws so far)
    init_loss, nbeta : float or None
        L(w*) and nβ (None until the engine reports them: no divergence count then).
    acceptance : np.ndarray, shape (chains, draws so far), optional
        The streamed MALA acceptance probabilities (NaN where not measured).

    Returns
    -------
    dict
        ``draws``, ``rhat`` and ``ess`` (NaN with too few draws), ``divergent`` (chains, or None),
        ``mala_acceptance``: the mean over chains of each non-divergent chain's mean acceptance, as
        :func:`~devinterp_viz.engine.diagnostics.diagnose` averages it (NaN until one is measured).
    """
    loss = np.asarray(loss, dtype=np.float64)
    known = init_loss is not None and nbeta is not None
    diverged = divergence(loss, init_loss, nbeta, None) >= 0 if known else None
    settled = loss[~diverged] if diverged is not None and diverged.any() else loss
    finite = settled.size > 0 and bool(np.isfinite(settled).all())
    return {
        "draws": int(loss.shape[1]),
        "rhat": float(split_rhat(settled)) if finite else float("nan"),
        "ess": float(bulk_ess(settled)) if finite else float("nan"),
        "divergent": None if diverged is None else int(diverged.sum()),
        "mala_acceptance": mean_acceptance(acceptance, diverged),
    }


def mean_acceptance(acceptance: np.ndarray | None, diverged: np.ndarray | None) -> float:
    """Mean over the non-divergent chains of each chain's mean MALA acceptance (chains, draws); NaN if none measured."""
    if acceptance is None:
        return float("nan")
    rows = np.asarray(acceptance, np.float64)[~diverged] if diverged is not None else np.asarray(acceptance, np.float64)
    per_chain = [row[np.isfinite(row)].mean() for row in rows if np.isfinite(row).any()]
    return float(np.mean(per_chain)) if per_chain else float("nan")


def trace_state(loss: np.ndarray, init_loss: float | None, nbeta: float | None, total_draws: int,
                burnin: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace panel's data: ``loss`` float32 (chains, draws), ``llc`` the running estimate of each
    chain (same shape; None until L(w*) is known), ``init_loss``, ``nbeta``, ``total_draws`` and
    ``burnin`` (:func:`burnin_state`, None without a burn-in trace)."""
    known = init_loss is not None and nbeta is not None
    llc = running_llc(loss, init_loss, nbeta).astype(np.float32) if known else None
    return {"loss": np.asarray(loss, np.float32), "llc": llc, "init_loss": init_loss, "nbeta": nbeta,
            "total_draws": int(total_draws), "burnin": burnin}


def burnin_state(steps: np.ndarray, loss: np.ndarray, num_burnin_steps: int, num_steps_bw_draws: int) -> dict[str, Any] | None:
    """The burn-in part of the trace panel: ``steps`` (points,), ``loss`` float32 (chains, points), and
    ``num_steps`` and ``steps_bw_draws`` (a burn-in step s lies at draw (s − num_steps) / steps_bw_draws);
    None when there is no burn-in point."""
    if np.size(steps) == 0:
        return None
    return {"steps": np.asarray(steps, np.float32), "loss": np.asarray(loss, np.float32),
            "num_steps": int(num_burnin_steps), "steps_bw_draws": int(num_steps_bw_draws)}


def result_burnin_state(result: Any) -> dict[str, Any] | None:
    """:func:`burnin_state` of a finished result (its burn-in settings from its config)."""
    config = result.config
    return burnin_state(result.burnin_steps, result.burnin_loss_trace, int(config.get("num_burnin_steps") or 0),
                        int(config.get("num_steps_bw_draws") or 1))


def calibration_state(cal: Any) -> dict[str, Any]:
    """The calibration tab's data for a :class:`CalibrationResult`, finished or filling in.

    Arrays are (n_values, n_lr) over every lr tried so far; ``healthy`` is NaN where a cell has
    not run; ``grid_cells`` counts the cells of the grid as asked (the refinement adds lrs beyond
    them); ``confirmation`` is :func:`run_summary` of the fresh-seed run that confirmed the
    recommendation (None without one); ``loss`` holds each cell's chains at every
    ``cell_stride``-th draw (draws 0, k, 2k, …, at most :data:`CELL_POINTS` of them), (n_values,
    n_lr, chains, points), and ``llc`` their running estimates over all draws, at the same draws
    (same shape).
    """
    results = cal.results
    shape = (cal.values.size, cal.lrs.size)
    chains = max((r.loss_trace.shape[0] for r in results.values()), default=0)
    draws = max((r.loss_trace.shape[1] for r in results.values()), default=0)
    stride = max(1, -(-draws // CELL_POINTS))
    points = -(-draws // stride)
    loss = np.full(shape + (chains, points), np.nan, np.float32)
    llc = np.full(shape + (chains, points), np.nan, np.float32)
    healthy = np.full(shape, np.nan, np.float32)
    for (i, j), res in results.items():
        kept = res.loss_trace[:, ::stride]
        loss[i, j, : kept.shape[0], : kept.shape[1]] = kept
        llc[i, j, : kept.shape[0], : kept.shape[1]] = running_llc(res.loss_trace, res.init_loss, res.nbeta)[:, ::stride]
        healthy[i, j] = float(res.diagnostics.healthy)
    rec = cal.recommended
    return {
        "axis": cal.axis, "lrs": np.asarray(cal.lrs, float), "values": np.asarray(cal.values, float),
        "llc_mean": cal.llc_mean.astype(np.float32), "llc_se": cal.llc_se.astype(np.float32), "healthy": healthy,
        "step_bias": cal._grid(lambda r: r.diagnostics.step_bias).astype(np.float32),
        "step_bias_se": cal._grid(lambda r: r.diagnostics.step_bias_se).astype(np.float32),
        "draws": cal.draws.tolist(), "confirmation": run_summary(getattr(cal, "confirmation", None)),
        "init_loss": cal._grid(lambda r: r.init_loss).astype(np.float32),
        "nbeta": cal._grid(lambda r: r.nbeta).astype(np.float32), "loss": loss, "llc": llc, "cell_stride": stride,
        "burnin": cal.burnin.tolist(), "reasons": cal.reasons,
        "cell_settings": [[cal.cell_settings(i, j) for j in range(shape[1])] for i in range(shape[0])],
        "recommended": None if rec is None else {k: (list(v) if k == "reasons" else v) for k, v in rec.items()},
        "recommended_settings": cal.recommended_settings,
        "recommendation_reasons": list(cal.recommendation_reasons),
        "done": len(results), "total": max(len(results), cal.values.size * cal.user_lrs.size),
        "grid_cells": int(cal.values.size * cal.user_lrs.size),
    }


def run_summary(result: Any) -> dict[str, Any] | None:
    """A run's estimate, step bias and length (the calibration's confirming run: shown beside its grid cell); None for none."""
    if result is None:
        return None
    d = result.diagnostics
    return {"llc": float(result.llc_mean), "llc_se": float(result.llc_se), "step_bias": float(d.step_bias),
            "step_bias_se": float(d.step_bias_se), "healthy": bool(d.healthy), "num_draws": int(result.num_draws),
            "num_burnin_steps": int(result.config.get("num_burnin_steps") or 0)}


def health_state(result: Any) -> dict[str, Any]:
    """The health panel's data for a result: estimate, diagnostics, verdict and the next step."""
    d = result.diagnostics
    return {
        "verdict": d.verdict,
        "healthy": bool(d.healthy),
        "status": d.status,
        "label": d.label,
        "unchecked": list(d.unchecked),
        "reasons": list(d.reasons),
        "next_step": d.next_step.get("text", "") if d.next_step else "",
        "warnings": list(d.warnings),
        "llc_se": float(result.llc_se),
        "step_bias": float(d.step_bias),
        "step_bias_se": float(d.step_bias_se),
        "rhat": float(d.rhat),
        "ess": float(d.ess),
        "mala_acceptance": np.asarray(d.mala_acceptance, np.float32),
        "fraction_below_init": np.asarray(d.fraction_below_init, np.float32),
        "divergent": np.asarray(d.divergent, np.float32),
        "llc_mean": float(result.llc_mean),
        "target": _target_label(result),
        "llc_std": float(result.llc_std),
        "llc_per_chain": np.asarray(result.llc_per_chain, np.float32),
        "partial": bool(result.partial),
        "burnin_divergence_step": np.asarray(d.burnin_divergence_step, np.float32),
        "burnin_message": d.burnin_message,
    }


def _target_label(result) -> str:
    """What the estimate is of: the localized LLC at the run's nβ and γ (λ itself only as nβ → ∞, γ → 0)."""
    gamma = result.config.get("localization")
    parts = [f"nβ {result.nbeta:.3g}"] + ([f"γ {float(gamma):.3g}"] if gamma is not None else [])
    return "LLC at " + ", ".join(parts)


def significant(value: Any, digits: int = DIGITS) -> Any:
    """``value`` rounded to ``digits`` significant digits (None and non-numbers unchanged)."""
    if value is None or isinstance(value, (bool, str)) or not np.isfinite(value):
        return value
    return float(f"{float(value):.{digits}g}") if isinstance(value, float) else value


#: Columns of the run history: (name, how to read it from an LLCResult).
HISTORY_COLUMNS = (
    ("run", None),
    ("sampler", lambda r: r.config.get("sampler")),
    ("lr", lambda r: r.config.get("lr")),
    ("nbeta", lambda r: float(r.nbeta)),
    ("localization", lambda r: r.config.get("localization")),
    ("chains", lambda r: int(r.loss_trace.shape[0])),
    ("draws", lambda r: int(r.loss_trace.shape[1])),
    ("burnin", lambda r: r.config.get("num_burnin_steps")),
    ("seed", lambda r: r.config.get("seed")),
    ("llc_mean", lambda r: float(r.llc_mean)),
    ("llc_se", lambda r: float(r.llc_se)),
    ("status", lambda r: r.diagnostics.label + (" (partial)" if r.partial else "")),
    ("verdict", lambda r: r.diagnostics.verdict),
)


def history_rows(results: list[Any]) -> list[dict[str, Any]]:
    """One row per run: its settings, λ̂ ± SE and verdict, numbers to :data:`DIGITS` significant digits."""
    return [
        {name: index if read is None else significant(read(res)) for name, read in HISTORY_COLUMNS}
        for index, res in enumerate(results)
    ]


def history_csv(results: list[Any]) -> str:
    """The run history as CSV text, one line per run (columns of :data:`HISTORY_COLUMNS`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[name for name, _ in HISTORY_COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(history_rows(results))
    return out.getvalue()


def mean_running_llc(result: Any, points: int = CURVE_POINTS) -> np.ndarray:
    """The running estimate averaged over chains, every k-th draw so at most ``points``, float32 (points,)."""
    curve = running_llc(result.loss_trace, result.init_loss, result.nbeta).mean(axis=0)
    stride = max(1, -(-curve.size // points))
    return curve[::stride].astype(np.float32)


def history_state(results: list[Any]) -> dict[str, Any]:
    """The history panel's data: ``rows`` (:func:`history_rows`), ``curves`` (:func:`mean_running_llc`
    of each run), ``strides`` (draws between two curve points) and ``csv`` (:func:`history_csv`)."""
    curves = [mean_running_llc(res) for res in results]
    strides = [max(1, -(-res.loss_trace.shape[1] // CURVE_POINTS)) for res in results]
    return {"rows": history_rows(results), "curves": curves, "strides": strides, "csv": history_csv(results)}
