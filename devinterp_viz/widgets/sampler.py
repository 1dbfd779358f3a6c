"""SamplerWidget: tune and diagnose the LLC sampler visually, live or from a finished result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import traitlets
from torch.utils._pytree import tree_flatten
from torch.utils.data import DataLoader, Dataset

from devinterp_viz.analysis.calibration import AXES, CalibrationResult, calibrate
from devinterp_viz.engine.llc import estimate_llc
from devinterp_viz.engine.selection import describe_selection
from devinterp_viz.engine.settings import SamplerSettings
from devinterp_viz.widgets._base import DvzWidget
from devinterp_viz.widgets._jobs import BackgroundJobs
from devinterp_viz.widgets._sampler_state import (
    LiveTrace,
    calibration_state,
    health_state,
    history_csv,
    history_state,
    result_burnin_state,
    trace_state,
)
from devinterp_viz.widgets._settings import Choice, SettingError, check_setting, settings_traits
from devinterp_viz.widgets._transport import PackedTrait, Throttle

#: Run options the widget passes to the engine untouched (not controls).
RUN_OPTIONS = ("device", "model_mode")
#: The controls a new widget starts with where they differ from SamplerSettings' defaults: a step
#: that equilibrates within a short run and the burn-in its localization time asks for
#: (2 × 2/(lr·γ) = 40 steps at γ = 100, with margin). Measured healthy, 4 chains × 200–300 draws,
#: on the deep linear network of notebooks/sampler_tuning.ipynb (seeds 0–2).
WIDGET_DEFAULTS = {"lr": 1e-3, "num_burnin_steps": 100}
#: The minibatch size a new widget takes for data that is not a DataLoader (the engine needs one
#: for tensors and Datasets; a DataLoader keeps its own), or the whole data set when smaller.
WIDGET_BATCH_SIZE = 64
#: The calibration grid a new widget starts with: it brackets WIDGET_DEFAULTS' step by a decade
#: or two each way and nβ around the default batch_size / ln(batch_size), so on that network it
#: shows both edges of the healthy region and recommends a setting.
DEFAULT_GRID_LRS = [1e-5, 1e-4, 1e-3, 1e-2]
DEFAULT_GRID_VALUES = [10.0, 30.0, 100.0]


class SamplerWidget(BackgroundJobs, settings_traits(), DvzWidget):
    """Tune and diagnose the SGMCMC sampler behind an LLC estimate, live, in JupyterLab.

    Controls set the sampler's settings; Run samples in a background thread while the
    per-chain loss traces and running LLC estimates stream in (hover reads a chain's value, drag
    zooms the draws, double-click resets), with R-hat, ESS, MALA acceptance and divergent chains of
    the draws so far; when it ends the health panel gives the estimate, step bias, R-hat, ESS, MALA
    acceptance, the fraction of draws below L(w*), divergent chains and one verdict with its
    reasons and next step. The Calibrate tab sweeps lr × nβ (or lr × localization) and draws the
    estimate as a heatmap with unhealthy cells marked; picking a cell shows its traces and
    "use these" copies its setting into the controls.

    Parameters
    ----------
    model, data, loss_fn
        As for :func:`devinterp_viz.estimate_llc`. Omit all three (see :meth:`from_result`) for a
        read-only widget over finished results.
    **defaults
        Initial values of the traits below, ``params`` (a selection spec) and the run options
        ``device`` and ``model_mode``.

    Traits (synced)
    ---------------
    sampler, lr, nbeta, localization, num_chains, num_draws, num_burnin_steps, num_steps_bw_draws, batch_size, seed
        One trait per field of :class:`~devinterp_viz.engine.settings.SamplerSettings`, with its
        default, checked by it (an invalid value raises :class:`SettingError`).
    setting_spec : list of dict (read-only)
        The settings' labels, hints and bounds the browser's controls are made from.
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
        ``loss`` and ``llc`` float32 (chains, draws so far), ``init_loss``, ``nbeta``, ``total_draws``,
        ``burnin`` (the burn-in losses, :func:`~devinterp_viz.widgets._sampler_state.burnin_state`)
        (see :func:`~devinterp_viz.widgets._sampler_state.trace_state`) and, while a run streams,
        ``live``: R-hat, ESS, MALA acceptance and divergent chains of the draws so far
        (:func:`~devinterp_viz.widgets._sampler_state.live_diagnostics`).
    health : dict (read-only)
        Estimate and diagnostics of the shown run; {} until it ends.
    calibration : dict (read-only)
        Calibration grid: ``lrs`` (n_lr,), ``values`` (n_values,), ``llc_mean`` / ``llc_se`` /
        ``healthy`` / ``init_loss`` / ``nbeta`` (n_values, n_lr) (NaN while pending), ``loss`` and
        ``llc`` (n_values, n_lr, chains, points) at every ``cell_stride``-th draw, ``reasons``,
        ``cell_settings``, ``recommended``, ``done``, ``total``.
    selected_cell : list of int
        ``[i, j]`` of the picked calibration cell, or [].
    history : dict (read-only)
        Every run of this widget (``widget.runs``): see
        :func:`~devinterp_viz.widgets._sampler_state.history_state`.
    compared : list of int
        Indices of the runs whose running LLCs the history panel overlays.
    unrecorded : list of str (read-only)
        Settings a result opened with :meth:`from_result` does not record (its controls show
        "not recorded" instead of the widget's defaults).
    """

    _view = traitlets.Unicode("SamplerWidget").tag(sync=True)
    _read_only = ("status", "activity", "error", "trace", "health", "calibration", "can_run", "selection",
                  "setting_spec", "history", "unrecorded")
    _extra_kwargs = RUN_OPTIONS

    params = traitlets.Unicode("").tag(sync=True)
    grid_axis = Choice(tuple(AXES), "nbeta").tag(sync=True)
    grid_lrs = traitlets.List(traitlets.Float(), default_value=DEFAULT_GRID_LRS).tag(sync=True)
    grid_values = traitlets.List(traitlets.Float(), default_value=DEFAULT_GRID_VALUES).tag(sync=True)
    tab = Choice(("run", "calibrate"), "run").tag(sync=True)
    selected_cell = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    compared = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    unrecorded = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)

    can_run = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    activity = traitlets.Unicode("run").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    selection = PackedTrait()
    trace = PackedTrait()
    health = PackedTrait()
    calibration = PackedTrait()
    history = PackedTrait()

    #: Pushes per second while a job streams (the budget: 10–30 Hz). The browser draws each push on
    #: the live canvas in a few ms; 30 leaves headroom over the 20 frames/s budget when pushes
    #: and animation frames drift apart on a loaded machine.
    push_hz = 30.0

    def __init__(self, model: Any = None, data: Any = None, loss_fn: Callable | None = None, **defaults: Any):
        given = [x is not None for x in (model, data, loss_fn)]
        if any(given) and not all(given):
            raise TypeError("SamplerWidget needs model, data and loss_fn together (or none, see from_result)")
        self._run_options = {k: defaults.pop(k) for k in RUN_OPTIONS if k in defaults}
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
        defaults = {**WIDGET_DEFAULTS, **defaults}
        if data is not None and not isinstance(data, DataLoader) and defaults.get("batch_size") is None:
            defaults["batch_size"] = min(WIDGET_BATCH_SIZE, _num_examples(data))
        self.result = None
        self.runs: list[Any] = []  # every LLCResult this widget ran or was shown, oldest first
        self.calibration_result = None
        self._live: LiveTrace | CalibrationResult | None = None  # what the throttle pushes while a job runs
        super().__init__(**defaults)
        self.can_run = all(given)
        self._throttle = Throttle(self._push_live, hz=self.push_hz)
        self._listen({
            "run": lambda content: self.run(),
            "calibrate": lambda content: self.calibrate(),
            "stop": lambda content: self.stop(wait=False),
            "use_cell": lambda content: self.use_cell(int(content["i"]), int(content["j"])),
            "use_recommended": lambda content: self.use_recommended(),
        })
        self.observe(self._on_params_change, names="params")
        self._describe_selection()

    # ----------------------------------------------------------------- results
    @classmethod
    def from_result(cls, result: Any, **defaults: Any) -> SamplerWidget:
        """A read-only widget showing a finished :class:`LLCResult` or ``CalibrationResult``."""
        widget = cls(**defaults)
        if hasattr(result, "loss_trace"):
            shown = {"num_chains": int(result.loss_trace.shape[0]), **result.config, "nbeta": result.nbeta}
            widget._set_controls_from_config(shown)
            widget.unrecorded = [name for name in SamplerSettings.names() if name not in shown]
            widget._show_result(result)
            widget._remember(result)
            widget.status = "stopped" if result.partial else "done"
        elif isinstance(result, CalibrationResult):
            widget.calibration_result = result
            widget.grid_axis = result.axis
            widget.grid_lrs = [float(x) for x in result.user_lrs]
            widget.grid_values = [float(x) for x in result.values]
            widget.calibration = calibration_state(result)
            widget.activity, widget.status, widget.tab = "calibrate", "done", "calibrate"
        else:
            raise TypeError(f"from_result expects an LLCResult or CalibrationResult, got {type(result).__name__}")
        return widget

    # ----------------------------------------------------------------- history
    def history_csv(self, path: Any = None) -> str:
        """The run history as CSV (one line per run: settings, λ̂, its SE, verdict); also written to ``path`` if given."""
        text = history_csv(self.runs)
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as file:
                file.write(text)
        return text

    def clear_history(self) -> None:
        """Forget every kept run (``widget.result`` stays)."""
        self.runs = []
        with self.hold_sync():
            self.compared = []
            self.history = history_state(self.runs)

    @traitlets.validate("compared")
    def _valid_compared(self, proposal: Any) -> list[int]:
        bad = [i for i in proposal.value if not 0 <= i < len(self.runs)]
        if bad:
            raise SettingError(f"compared: no run {bad[0]} in the history (it has runs 0–{len(self.runs) - 1})")
        return list(dict.fromkeys(proposal.value))

    def _remember(self, result: Any) -> None:
        self.runs.append(result)
        self.history = history_state(self.runs)

    # ---------------------------------------------------------------- settings
    def settings(self) -> dict[str, Any]:
        """The engine keyword arguments the controls describe now (settings, ``params``, run options)."""
        return {**self.sampler_settings().to_config(), "params": self._params_argument(), **self._run_options}

    def _params_argument(self) -> Any:
        if self._params_spec is not None and not self.params:
            return self._params_spec
        names = [p.strip() for p in self.params.split(",") if p.strip()]
        return names or None

    @traitlets.validate("grid_lrs")
    def _valid_grid_lrs(self, proposal: Any) -> list[float]:
        if not proposal.value:
            raise SettingError("grid_lrs needs at least one step size")
        return [self._grid_value("lr", v) for v in proposal.value]

    @traitlets.validate("grid_values")
    def _valid_grid_values(self, proposal: Any) -> list[float]:
        if not proposal.value:
            raise SettingError("grid_values needs at least one value")
        return [float(v) for v in proposal.value]

    def _grid_value(self, name: str, value: Any) -> float:
        return check_setting(name, value, context="calibration grid: ")

    def set(self, **settings: Any) -> SamplerWidget:
        """Change several controls at once (validated; unknown names raise ``TypeError``)."""
        self._reject_unknown(settings)
        with self.hold_sync():
            for name, value in settings.items():
                setattr(self, name, value)
        return self

    def _set_controls_from_config(self, config: dict[str, Any]) -> None:
        known = self.setting_changes(config)
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
        settings = self.sampler_settings()
        live = LiveTrace(settings.num_chains, settings.num_draws, settings.nbeta, settings.num_burnin_steps,
                         settings.num_steps_bw_draws)
        self.result = None
        with self.hold_sync():
            self._live = live
            self.health = {}
            self.trace = live.state()
            self.activity = "run"
        self._begin(lambda stop: self._run_job(settings, live, stop), "run")
        thread = self._wait_job(wait)
        return self.result if wait else thread

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
        for value in self.grid_values:
            self._grid_value(self.grid_axis, value)
        self.grid_lrs = sorted(self.grid_lrs)  # the engine's grid columns run in increasing lr
        settings = self.sampler_settings()
        empty = CalibrationResult(axis=self.grid_axis, values=np.array(self.grid_values, float),
                                  user_lrs=np.array(self.grid_lrs, float))
        self.calibration_result = None
        with self.hold_sync():
            self._live = empty
            self.selected_cell = []
            self.calibration = calibration_state(empty)
            self.activity = "calibrate"
        self._begin(lambda stop: self._calibrate_job(settings, stop), "calibrate")
        self.tab = "calibrate"
        thread = self._wait_job(wait)
        return self.calibration_result if wait else thread

    def use_cell(self, i: int, j: int) -> None:
        """Copy calibration cell (value ``i``, lr ``j``: its step, value and burn-in) into the controls and show the Run tab."""
        cal = self.calibration
        if not cal:
            raise ValueError("no calibration grid to take a cell from: run calibrate() first")
        cells = cal["cell_settings"]
        if not (0 <= i < len(cells) and 0 <= j < len(cells[0])):
            raise ValueError(f"cell ({i}, {j}) is outside the {len(cells)}×{len(cells[0])} grid")
        self.set(**cells[i][j], tab="run")
        self.selected_cell = [i, j]

    def use_recommended(self) -> None:
        """Copy the calibration's recommended setting (step, value, burn-in, draws) into the controls."""
        chosen = (self.calibration or {}).get("recommended_settings")
        if not chosen:
            raise ValueError("the calibration has no recommended setting (no healthy cell)")
        self.set(**chosen, tab="run")

    def _require_model(self) -> None:
        if not self.can_run:
            raise RuntimeError(
                "this widget shows a finished result; create SamplerWidget(model, data, loss_fn) to sample"
            )
        if self.running:
            raise RuntimeError("a job is already running: stop() it or join() it first")

    def _begin(self, job: Callable[[Any], None], name: str) -> None:
        self._throttle.cancel()
        self._start_job(job, name)

    # ------------------------------------------------------------------- jobs
    def _run_job(self, settings: SamplerSettings, live: LiveTrace, stop: Any) -> None:
        def on_draw(draw_index: int, losses: Any, acceptance: Any = None) -> None:
            live.add(draw_index, losses, acceptance)
            self._throttle.request()

        def on_burnin(step: int, losses: Any) -> None:
            live.add_burnin(step, losses)
            self._throttle.request()

        result = estimate_llc(self.model, self.data, self.loss_fn, settings=settings, params=self._params_argument(),
                              on_draw=on_draw, on_start=live.start, stop=stop, progress=False, on_burnin=on_burnin,
                              **self._run_options)
        self.result = result
        self._throttle.cancel()
        self._show_result(result)
        self._remember(result)

    def _calibrate_job(self, settings: SamplerSettings, stop: Any) -> None:
        grid = {"lrs": list(self.grid_lrs), AXES[self.grid_axis]: list(self.grid_values)}

        def on_cell(calibration: CalibrationResult, i: int, lr: float) -> None:
            self._live = calibration  # the grid being filled in
            self._throttle.request()

        result = calibrate(self.model, self.data, self.loss_fn, **grid, settings=settings, params=self._params_argument(),
                           on_cell=on_cell, stop=stop, progress=False, **self._run_options)
        self.calibration_result = result
        self._throttle.cancel()
        self.calibration = calibration_state(result)

    def _on_job_end(self) -> None:
        self._throttle.flush()  # a failed job's last draws are still shown
        self._live = None

    def _push_live(self) -> None:
        """Send the newest live state (called by the throttle, at most ``push_hz`` per second)."""
        live = self._live
        if isinstance(live, LiveTrace):
            self.trace = live.state()
        elif isinstance(live, CalibrationResult):
            self.calibration = calibration_state(live)

    def _show_result(self, result: Any) -> None:
        total = int(result.config.get("num_draws", result.num_draws))
        with self.hold_sync():
            self.trace = trace_state(result.loss_trace, result.init_loss, result.nbeta, total, result_burnin_state(result))
            self.health = health_state(result)


def _num_examples(data: Any) -> int:
    """Examples in data the engine batches itself: a Dataset or a list of examples, or tensors or
    arrays (alone, in a tuple or a dict) whose leading axis is the example."""
    if isinstance(data, (Dataset, list)):
        return len(data)
    return len(tree_flatten(data)[0][0])
