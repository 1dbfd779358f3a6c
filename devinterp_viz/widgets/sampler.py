"""SamplerWidget: tune and diagnose the LLC sampler visually, live or from a finished result."""

from __future__ import annotations

import math
import threading
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import traitlets

from devinterp_viz.analysis.calibration import CalibrationResult, calibrate
from devinterp_viz.engine.llc import estimate_llc
from devinterp_viz.engine.selection import describe_selection
from devinterp_viz.widgets._jobs import BackgroundJobs
from devinterp_viz.widgets._base import DvzWidget
from devinterp_viz.widgets._transport import PackedTrait, Throttle

SAMPLERS = ("sgld", "rmsprop_sgld", "sgnht")

#: Engine keyword arguments the widget passes through untouched (not controls).
PASSTHROUGH = ("batch_size", "num_steps_bw_draws", "seed", "device", "model_mode")


class SettingError(ValueError, traitlets.TraitError):
    """An invalid sampler setting (a ``ValueError``; also a ``TraitError`` for traitlets)."""


class SamplerWidget(BackgroundJobs, DvzWidget):
    """Tune and diagnose the SGMCMC sampler behind an LLC estimate, live, in JupyterLab.

    Controls set the sampler's hyperparameters; Run samples in a background thread while the
    per-chain loss traces and running LLC estimates stream in; the health panel gives R-hat,
    ESS, MALA acceptance, the fraction of draws below L(w*), divergent chains and one verdict
    with its reasons. The Calibrate tab sweeps lr × nβ (or lr × localization) and draws the
    estimate as a heatmap with unhealthy cells marked; picking a cell shows its traces and
    "use these" copies its setting into the controls.

    Parameters
    ----------
    model, data, loss_fn
        As for :func:`devinterp_viz.estimate_llc`. Omit all three (see :meth:`from_result`) for a
        read-only widget over finished results.
    **defaults
        Initial settings: any control trait below, plus ``params`` (a selection spec) and the
        engine options ``batch_size``, ``num_steps_bw_draws``, ``seed``, ``device``, ``model_mode``.

    Traits (synced)
    ---------------
    sampler : {"sgld", "rmsprop_sgld", "sgnht"}, default "sgld"
    lr : float > 0, default 1e-4
        Step size ε.
    nbeta : float > 0 or None, default None
        Inverse temperature nβ; None uses the engine's default (batch_size / ln batch_size).
    localization : float >= 0, default 100.0
        γ, strength of the pull back to w*.
    num_chains : int >= 1, default 4
    num_draws : int >= 1, default 200
    num_burnin_steps : int >= 0, default 0
    params : str, default ""
        Comma-separated parameter names or globs that move; "" = all.
    grid_axis : {"nbeta", "localization"}, default "nbeta"
    grid_lrs : list of float > 0
        Step sizes of the calibration grid.
    grid_values : list of float
        nβ (> 0) or localization (>= 0) values of the calibration grid.
    tab : {"run", "calibrate"}
    status : str (read-only)
        "idle", "running", "stopping", "done", "stopped" or "error".
    activity : str (read-only)
        What the last job was: "run" or "calibrate".
    error : str (read-only)
        Message of the exception that ended the last job, "" if none.
    trace : dict (read-only)
        ``loss`` float32 (chains, draws so far), ``init_loss``, ``nbeta``, ``total_draws``.
    health : dict (read-only)
        Estimate and diagnostics of the shown run; {} until it ends.
    calibration : dict (read-only)
        Calibration grid: ``lrs`` (n_lr,), ``values`` (n_values,), ``llc_mean`` / ``llc_std`` /
        ``healthy`` / ``init_loss`` / ``nbeta`` (n_values, n_lr) (NaN while pending), ``loss``
        (n_values, n_lr, chains, draws), ``reasons``, ``recommended``, ``done``, ``total``.
    selected_cell : list of int
        ``[i, j]`` of the picked calibration cell, or [].
    """

    _view = traitlets.Unicode("SamplerWidget").tag(sync=True)
    _read_only = ("status", "activity", "error", "trace", "health", "calibration", "can_run", "selection")
    _extra_kwargs = PASSTHROUGH

    sampler = traitlets.Unicode("sgld").tag(sync=True)
    lr = traitlets.Float(1e-4).tag(sync=True)
    nbeta = traitlets.Float(None, allow_none=True).tag(sync=True)
    localization = traitlets.Float(100.0).tag(sync=True)
    num_chains = traitlets.Int(4).tag(sync=True)
    num_draws = traitlets.Int(200).tag(sync=True)
    num_burnin_steps = traitlets.Int(0).tag(sync=True)
    params = traitlets.Unicode("").tag(sync=True)

    grid_axis = traitlets.Unicode("nbeta").tag(sync=True)
    grid_lrs = traitlets.List(traitlets.Float(), default_value=[1e-6, 1e-5, 1e-4, 1e-3]).tag(sync=True)
    grid_values = traitlets.List(traitlets.Float(), default_value=[1.0, 10.0, 100.0]).tag(sync=True)
    tab = traitlets.Unicode("run").tag(sync=True)
    selected_cell = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)

    can_run = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    activity = traitlets.Unicode("run").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    selection = PackedTrait()
    trace = PackedTrait()
    health = PackedTrait()
    calibration = PackedTrait()

    #: Pushes per second while a job streams (the budget: 10–30 Hz). The browser draws each push on
    #: the live canvas in a few ms; 30 leaves headroom over the 20 frames/s budget when pushes
    #: and animation frames drift apart on a loaded machine.
    push_hz = 30.0

    def __init__(self, model: Any = None, data: Any = None, loss_fn: Callable | None = None, **defaults: Any):
        given = [x is not None for x in (model, data, loss_fn)]
        if any(given) and not all(given):
            raise TypeError("SamplerWidget needs model, data and loss_fn together (or none, see from_result)")
        self._engine_kwargs = {k: defaults.pop(k) for k in PASSTHROUGH if k in defaults}
        self._params_spec: Any = None
        params = defaults.pop("params", None)
        if params is not None and not isinstance(params, str):
            if isinstance(params, (list, tuple)) and all(isinstance(p, str) for p in params):
                params = ", ".join(params)
            else:  # a head selection or mask dict: keep the object, show its description
                self._params_spec, params = params, ""
        if params is not None:
            defaults["params"] = params
        self.model, self.data, self.loss_fn = model, data, loss_fn
        self.result = None
        self.calibration_result = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._live: dict[str, Any] = {}
        super().__init__(**defaults)
        self.can_run = all(given)
        self._throttle = Throttle(self._push_live, hz=self.push_hz)
        self.on_msg(self._on_frontend_msg)
        self.observe(self._on_params_change, names="params")
        self._describe_selection()

    # ----------------------------------------------------------------- results
    @classmethod
    def from_result(cls, result: Any, **defaults: Any) -> SamplerWidget:
        """A read-only widget showing a finished :class:`LLCResult` or ``CalibrationResult``."""
        widget = cls(**defaults)
        if hasattr(result, "loss_trace"):
            widget._set_controls_from_config(result.config, nbeta=result.nbeta)
            widget._show_result(result)
            widget.status = "stopped" if result.partial else "done"
        elif hasattr(result, "llc_mean") and hasattr(result, "lrs"):
            widget.calibration_result = result
            widget.grid_axis = result.axis
            widget.grid_lrs = [float(x) for x in result.user_lrs]
            widget.grid_values = [float(x) for x in result.values]
            widget.calibration = calibration_state(result)
            widget.activity, widget.status, widget.tab = "calibrate", "done", "calibrate"
        else:
            raise TypeError(f"from_result expects an LLCResult or CalibrationResult, got {type(result).__name__}")
        return widget

    # ---------------------------------------------------------------- settings
    def settings(self) -> dict[str, Any]:
        """The engine keyword arguments the controls describe now."""
        out = {
            "sampler": self.sampler,
            "lr": self.lr,
            "nbeta": self.nbeta,
            "localization": self.localization,
            "num_chains": self.num_chains,
            "num_draws": self.num_draws,
            "num_burnin_steps": self.num_burnin_steps,
            "params": self._params_argument(),
        }
        out.update(self._engine_kwargs)
        return out

    def _params_argument(self) -> Any:
        if self._params_spec is not None and not self.params:
            return self._params_spec
        names = [p.strip() for p in self.params.split(",") if p.strip()]
        return names or None

    @traitlets.validate("sampler")
    def _valid_sampler(self, proposal: Any) -> str:
        if proposal.value not in SAMPLERS:
            raise SettingError(f"sampler must be one of {', '.join(SAMPLERS)}; got {proposal.value!r}")
        return proposal.value

    @traitlets.validate("lr")
    def _valid_lr(self, proposal: Any) -> float:
        return _positive("lr", proposal.value)

    @traitlets.validate("nbeta")
    def _valid_nbeta(self, proposal: Any) -> float | None:
        return None if proposal.value is None else _positive("nbeta", proposal.value)

    @traitlets.validate("localization")
    def _valid_localization(self, proposal: Any) -> float:
        value = float(proposal.value)
        if not (math.isfinite(value) and value >= 0):
            raise SettingError(f"localization must be a finite number >= 0; got {proposal.value!r}")
        return value

    @traitlets.validate("num_chains", "num_draws", "num_burnin_steps")
    def _valid_counts(self, proposal: Any) -> int:
        name, value = proposal.trait.name, proposal.value
        low = 0 if name == "num_burnin_steps" else 1
        if value < low:
            raise SettingError(f"{name} must be an integer >= {low}; got {value!r}")
        return int(value)

    @traitlets.validate("grid_axis")
    def _valid_axis(self, proposal: Any) -> str:
        if proposal.value not in ("nbeta", "localization"):
            raise SettingError(f"grid_axis must be 'nbeta' or 'localization'; got {proposal.value!r}")
        return proposal.value

    @traitlets.validate("grid_lrs")
    def _valid_grid_lrs(self, proposal: Any) -> list[float]:
        if not proposal.value:
            raise SettingError("grid_lrs needs at least one step size")
        return [_positive("grid_lrs entry", v) for v in proposal.value]

    @traitlets.validate("grid_values")
    def _valid_grid_values(self, proposal: Any) -> list[float]:
        if not proposal.value:
            raise SettingError("grid_values needs at least one value")
        return [float(v) for v in proposal.value]

    @traitlets.validate("tab")
    def _valid_tab(self, proposal: Any) -> str:
        if proposal.value not in ("run", "calibrate"):
            raise SettingError(f"tab must be 'run' or 'calibrate'; got {proposal.value!r}")
        return proposal.value

    def set(self, **settings: Any) -> SamplerWidget:
        """Change several controls at once (validated; unknown names raise ``TypeError``)."""
        self._reject_unknown(settings)
        with self.hold_sync():
            for name, value in settings.items():
                setattr(self, name, value)
        return self

    def _set_controls_from_config(self, config: dict[str, Any], nbeta: float | None = None) -> None:
        known = {k: config[k] for k in ("sampler", "lr", "localization", "num_chains", "num_draws", "num_burnin_steps") if config.get(k) is not None}
        if nbeta is not None or config.get("nbeta") is not None:
            known["nbeta"] = nbeta if nbeta is not None else config["nbeta"]
        params = config.get("params")
        if isinstance(params, str):
            known["params"] = params
        elif isinstance(params, (list, tuple)) and all(isinstance(p, str) for p in params):
            known["params"] = ", ".join(params)
        try:
            self.set(**known)
        except (ValueError, TypeError):
            pass  # a foreign config: keep the defaults rather than refuse to show the result

    # -------------------------------------------------------------- selection
    def _on_params_change(self, change: Any) -> None:
        if change["new"]:
            self._params_spec = None
        self._describe_selection()

    def _describe_selection(self) -> None:
        if self.model is None:
            self.selection = {}
            return
        try:
            described = describe_selection(self.model, self._params_argument(), print_table=False)
            self.selection = {
                "num_selected": int(described.num_selected),
                "num_total": int(sum(row[-1] for row in described.rows)),
                "rows": [[str(r[0]), "×".join(map(str, r[1])) or "scalar", int(r[2]), int(r[-1])] for r in described.rows],
                "error": "",
            }
        except Exception as err:  # noqa: BLE001 - shown in the widget
            self.selection = {"error": f"{err}"}

    # --------------------------------------------------------------- running

    def run(self, wait: bool = False, **settings: Any) -> Any:
        """Start sampling with the current controls (after applying ``settings``).

        Returns the :class:`LLCResult` when ``wait=True``, else the background thread. The
        result is also kept as ``widget.result``.
        """
        self._require_model()
        if settings:
            self.set(**settings)
        settings = dict(self.settings())
        self._begin_run(settings)
        self._start(self._run_job, settings, activity="run")
        return self._finish(wait, "result")

    def calibrate(
        self,
        lrs: list[float] | None = None,
        values: list[float] | None = None,
        axis: str | None = None,
        wait: bool = False,
    ) -> Any:
        """Run the calibration grid lr × nβ (or lr × localization) with the other controls.

        Returns the ``CalibrationResult`` when ``wait=True`` (also kept as
        ``widget.calibration_result``), else the background thread.
        """
        self._require_model()
        self.set(**{k: v for k, v in (("grid_lrs", lrs), ("grid_values", values), ("grid_axis", axis)) if v is not None})
        if self.grid_axis == "nbeta":
            for v in self.grid_values:
                _positive("nbeta grid value", v)
        elif any(v < 0 for v in self.grid_values):
            raise SettingError(f"localization grid values must be >= 0; got {self.grid_values}")
        self.grid_lrs = sorted(self.grid_lrs)  # the engine's grid columns run in increasing lr
        settings = dict(self.settings())
        self.calibration_result = None
        with self.hold_sync():
            self.selected_cell = []
            self.calibration = calibration_state(CalibrationResult(
                axis=self.grid_axis, values=np.array(self.grid_values, float), user_lrs=np.array(self.grid_lrs, float)))
        self._start(self._calibrate_job, settings, activity="calibrate")
        self.tab = "calibrate"
        return self._finish(wait, "calibration_result")

    def use_cell(self, i: int, j: int) -> None:
        """Copy calibration cell (value ``i``, lr ``j``: its step, value and burn-in) into the controls and show the Run tab."""
        cal = self.calibration
        if not cal:
            raise ValueError("no calibration grid to take a cell from: run calibrate() first")
        lrs, values = cal["lrs"], cal["values"]
        if not (0 <= i < len(values) and 0 <= j < len(lrs)):
            raise ValueError(f"cell ({i}, {j}) is outside the {len(values)}×{len(lrs)} grid")
        burnin = int(cal["burnin"][i][j])
        self.set(lr=float(lrs[j]), **{cal["axis"]: float(values[i])}, num_burnin_steps=burnin, tab="run")
        self.selected_cell = [i, j]

    def use_recommended(self) -> None:
        """Copy the calibration's recommended setting (step, value, burn-in, draws) into the controls."""
        rec = (self.calibration or {}).get("recommended")
        if not rec:
            raise ValueError("the calibration has no recommended setting (no healthy cell)")
        axis = self.calibration["axis"]
        self.set(lr=float(rec["lr"]), **{axis: float(rec[axis])}, num_burnin_steps=int(rec["num_burnin_steps"]),
                 num_draws=int(rec["num_draws"]), tab="run")

    def _require_model(self) -> None:
        if not self.can_run:
            raise RuntimeError(
                "this widget shows a finished result; create SamplerWidget(model, data, loss_fn) to sample"
            )
        if self.running:
            raise RuntimeError("a job is already running: stop() it or join() it first")

    def _start(self, job: Callable[[dict[str, Any]], None], settings: dict[str, Any], activity: str) -> None:
        self._stop_event = threading.Event()
        self._throttle.cancel()
        with self.hold_sync():
            self.activity, self.status, self.error = activity, "running", ""
        self._thread = threading.Thread(target=self._guarded, args=(job, settings), daemon=True, name=f"dvz-{activity}")
        self._thread.start()

    def _finish(self, wait: bool, attribute: str) -> Any:
        if not wait:
            return self._thread
        try:
            self._thread.join()
        except KeyboardInterrupt:  # interrupting the cell stops the job, keeping its draws
            self.stop()
        if self.status == "error":
            raise RuntimeError(f"the {self.activity} failed: {self.error}")
        return getattr(self, attribute)

    def _guarded(self, job: Callable[[dict[str, Any]], None], settings: dict[str, Any]) -> None:
        try:
            job(settings)
        except Exception as err:  # noqa: BLE001 - the widget shows it; nothing is lost in a log
            self._throttle.flush()
            tail = "".join(traceback.format_exception_only(type(err), err)).strip()
            with self.hold_sync():
                self.error = tail
                self.status = "error"
            self._job_error = err

    # ------------------------------------------------------------------- jobs
    def _begin_run(self, settings: dict[str, Any]) -> None:
        """Reset the shown traces for a new run (before its thread starts)."""
        chains, draws = settings["num_chains"], settings["num_draws"]
        with self._lock:
            self._live = {"kind": "run", "loss": np.full((chains, draws), np.nan, np.float32), "n": 0,
                          "init_loss": None, "nbeta": settings["nbeta"], "total": draws}
        self.result = None
        with self.hold_sync():
            self.health = {}
            self.trace = {"loss": np.zeros((chains, 0), np.float32), "init_loss": None, "nbeta": settings["nbeta"], "total_draws": draws}

    def _run_job(self, settings: dict[str, Any]) -> None:
        def on_start(init_loss: float, nbeta: float) -> None:
            with self._lock:
                self._live["init_loss"], self._live["nbeta"] = float(init_loss), float(nbeta)

        def on_draw(draw_index: int, losses: Any) -> None:
            with self._lock:
                buf = self._live["loss"]
                if draw_index >= buf.shape[1]:
                    grown = np.full((buf.shape[0], max(2 * buf.shape[1], draw_index + 1)), np.nan, np.float32)
                    grown[:, : buf.shape[1]] = buf
                    self._live["loss"] = buf = grown
                buf[:, draw_index] = np.asarray(losses, dtype=np.float32).reshape(-1)
                self._live["n"] = max(self._live["n"], draw_index + 1)
            self._throttle.request()

        result = estimate_llc(
            self.model, self.data, self.loss_fn, **settings, on_draw=on_draw, on_start=on_start, stop=self._stop_event,
            progress=False,
        )
        self._throttle.cancel()
        self.result = result
        with self.hold_sync():
            self._show_result(result)
            self.status = "stopped" if result.partial else "done"

    def _push_live(self) -> None:
        """Send the newest live state (called by the throttle, at most ``push_hz`` per second)."""
        with self._lock:
            if self._live.get("kind") == "calibration":
                state = {"calibration": self._live["state"]}
            else:
                live = self._live
                state = {"trace": {"loss": live["loss"][:, : live["n"]].copy(), "init_loss": live["init_loss"],
                                   "nbeta": live["nbeta"], "total_draws": live["total"]}}
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

    def _show_result(self, result: Any) -> None:
        with self.hold_sync():
            self.trace = {
                "loss": result.loss_trace,
                "init_loss": result.init_loss,
                "nbeta": result.nbeta,
                "total_draws": int(result.config.get("num_draws", result.num_draws)),
            }
            self.health = health_state(result)

    def _calibrate_job(self, settings: dict[str, Any]) -> None:
        axis, lrs, values = self.grid_axis, list(self.grid_lrs), list(self.grid_values)
        engine_kwargs = {k: v for k, v in settings.items() if k not in ("lr", axis)}
        grid = {"nbetas": values} if axis == "nbeta" else {"localizations": values}

        def on_cell(calibration: Any, i: int, lr: float) -> None:
            state = calibration_state(calibration)  # built here, in the thread that fills it in
            with self._lock:
                self._live = {"kind": "calibration", "state": state}
            self._throttle.request()

        result = calibrate(
            self.model, self.data, self.loss_fn, lrs=lrs, **grid, on_cell=on_cell, stop=self._stop_event,
            progress=False, **engine_kwargs,
        )
        self._throttle.cancel()
        self.calibration_result = result
        with self.hold_sync():
            self.calibration = calibration_state(result)
            self.status = "stopped" if getattr(result, "partial", False) or self._stop_event.is_set() else "done"

    # ------------------------------------------------------------- frontend
    def _on_frontend_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind == "run":
                self.run()
            elif kind == "calibrate":
                self.calibrate()
            elif kind == "stop":
                self.stop(wait=False)
            elif kind == "use_cell":
                self.use_cell(int(content["i"]), int(content["j"]))
            elif kind == "use_recommended":
                self.use_recommended()
        except Exception as err:  # noqa: BLE001 - a button press must not raise into a lost log
            with self.hold_sync():
                self.error = f"{type(err).__name__}: {err}"
                if not self.running:
                    self.status = "error"


def calibration_state(cal: Any) -> dict[str, Any]:
    """The calibration tab's data for a :class:`CalibrationResult`, finished or filling in.

    Arrays are (n_values, n_lr) over every lr tried so far; ``healthy`` is NaN where a cell has
    not run; ``loss`` holds each cell's chains, (n_values, n_lr, chains, draws).
    """
    results = cal.results
    shape = (cal.values.size, cal.lrs.size)
    chains = max((r.loss_trace.shape[0] for r in results.values()), default=0)
    draws = max((r.loss_trace.shape[1] for r in results.values()), default=0)
    loss = np.full(shape + (chains, draws), np.nan, np.float32)
    healthy = np.full(shape, np.nan, np.float32)
    for (i, j), res in results.items():
        loss[i, j, : res.loss_trace.shape[0], : res.loss_trace.shape[1]] = res.loss_trace
        healthy[i, j] = float(res.diagnostics.healthy)
    rec = cal.recommended
    return {
        "axis": cal.axis, "lrs": np.asarray(cal.lrs, float), "values": np.asarray(cal.values, float),
        "llc_mean": cal.llc_mean.astype(np.float32), "llc_std": cal.llc_std.astype(np.float32),
        "llc_se": cal.llc_se.astype(np.float32), "healthy": healthy,
        "init_loss": cal._grid(lambda r: r.init_loss).astype(np.float32),
        "nbeta": cal._grid(lambda r: r.nbeta).astype(np.float32), "loss": loss,
        "burnin": cal.burnin.tolist(), "reasons": cal.reasons,
        "recommended": None if rec is None else {k: (list(v) if k == "reasons" else v) for k, v in rec.items()},
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


def _positive(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a number > 0; got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise SettingError(f"{name} must be a finite number > 0; got {value!r}")
    return number
