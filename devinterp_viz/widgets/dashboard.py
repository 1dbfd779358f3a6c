"""DevelopmentDashboard: scrub training checkpoints across linked loss, LLC and essential-dynamics views."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import traitlets

from devinterp_viz.analysis.sweep import SweepResult, sweep_llc
from devinterp_viz.widgets._base import DvzWidget
from devinterp_viz.widgets._jobs import BackgroundJobs
from devinterp_viz.widgets._transport import PackedTrait, Throttle


class DevelopmentDashboard(BackgroundJobs, DvzWidget):
    """Training checkpoints on one scrubber, driving linked panels.

    The panels: the training (and any other) loss over steps; the LLC estimates, each with its
    ± SE bar and nothing drawn between them, a red ✕ on unhealthy ones, a grey tick where there is
    no LLC, and the detected stages shaded (each labelled with its change in SE); the essential-dynamics
    trajectory in a chosen PC-pair plane with its milestones. The current checkpoint is
    highlighted in every panel, hovering any panel highlights the same checkpoint everywhere, and
    scrubbing (slider, play/pause, step box, arrow keys) is answered in the browser from data
    already sent; the chosen checkpoint comes back to Python as the ``checkpoint`` trait.

    Parameters
    ----------
    sweep : SweepResult, optional
        LLC estimates over the trajectory (:func:`devinterp_viz.sweep_llc`), at some or all of the
        checkpoints.
    dynamics : EssentialDynamics, optional
        A fitted essential dynamics (``steps_``, ``trajectory_``, ``explained_variance_ratio_``,
        ``geometry_`` with milestones).
    losses : array, dict, optional
        A loss per checkpoint (array (checkpoints,)), or ``{name: values}`` with values of shape
        (checkpoints,) or ``(steps, values)`` pairs for series recorded at other steps (a test loss
        evaluated less often).
    stages : bool or StageDetector, optional
        True (default): detect the stages of every LLC curve with :func:`devinterp_viz.stages`;
        False: none; a fitted StageDetector: shown for the first curve.
    steps : array, optional
        Training steps of further checkpoints. The dashboard's checkpoints are every step at which
        any panel has data: the union of these, the sweep's, the dynamics' and the loss series'
        steps, so the scrubber visits a checkpoint that has a loss or a dynamics point but no LLC
        (the LLC readout then names the nearest estimate, see :meth:`nearest_estimate`).
    **traits
        Initial values of the traits below.

    Traits (synced)
    ---------------
    checkpoint : int, default 0
        Index of the selected checkpoint (into ``steps``).
    selection, distribution : str
        Which LLC curve of the sweep is shown ("" = the first).
    plane : list of two int, default [0, 1]
        The PC pair of the essential-dynamics panel.
    log_x : bool, default True
        Training steps on a log axis.
    log_y : bool, default False
        The loss on a log axis (the browser offers it when every loss is positive).
    smoothing : float, default 0
        Display-only exponential moving average of the loss curves, in [0, 1): the weight of the
        previous smoothed value (0 = raw). The raw curve stays drawn faintly; readouts are raw.
    data : dict (read-only)
        Everything the panels draw, as float32 buffers (see :meth:`_panel_data`).
    status, error : str (read-only)
        Of a background computation (:meth:`from_trajectory`).
    """

    _view = traitlets.Unicode("DevelopmentDashboard").tag(sync=True)
    _read_only = ("data", "status", "error", "can_run", "progress")
    _extra_kwargs = ("sweep", "dynamics", "losses", "stages", "steps")

    checkpoint = traitlets.Int(0).tag(sync=True)
    selection = traitlets.Unicode("").tag(sync=True)
    distribution = traitlets.Unicode("").tag(sync=True)
    plane = traitlets.List(traitlets.Int(), default_value=[0, 1]).tag(sync=True)
    log_x = traitlets.Bool(True).tag(sync=True)
    log_y = traitlets.Bool(False).tag(sync=True)
    smoothing = traitlets.Float(0.0).tag(sync=True)

    data = PackedTrait()
    can_run = traitlets.Bool(False).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    progress = traitlets.Unicode("").tag(sync=True)

    push_hz = 10.0

    def __init__(self, sweep: Any = None, dynamics: Any = None, losses: Any = None, *, stages: Any = True,
                 steps: Any = None, **traits: Any):
        _check_sources(sweep, dynamics)
        self.sweep, self.dynamics, self.stages = sweep, dynamics, stages
        self._losses = _loss_series(losses, _own_steps(sweep, dynamics, losses, steps))
        self._steps = _master_steps(sweep, dynamics, self._losses, steps)
        self._source: dict[str, Any] | None = None
        self._lock = threading.RLock()  # the job's thread adds results while a push reads them
        super().__init__(**traits)
        self._throttle = Throttle(self._push_data, hz=self.push_hz)
        self._listen({"run": lambda message: self.run(), "stop": lambda message: self.stop(wait=False)})
        self.data = self._panel_data()
        self._check_traits()

    # ----------------------------------------------------------------- building
    @classmethod
    def from_trajectory(cls, trajectory: Any, model: Any, data: Any, loss_fn: Any, *, store: Any = None,
                        probe: Any = None, output_fn: Any = None, n_components: int = 3, losses: Any = None,
                        run: bool = True, **sweep_settings: Any) -> DevelopmentDashboard:
        """A dashboard that computes its panels from a trajectory, in the background.

        The loss of every checkpoint on ``data`` comes first, then the essential dynamics on
        ``probe`` (when given), then :func:`devinterp_viz.sweep_llc` with ``store``: estimates
        already in the store appear at once, the others stream in as checkpoints finish. Stop
        keeps what was computed.

        Parameters
        ----------
        trajectory, model, data, loss_fn
            As for :func:`devinterp_viz.sweep_llc`.
        store : str, Path or ResultStore, optional
        probe : optional
            Fixed inputs for the essential dynamics (none without it).
        output_fn, n_components
            For :func:`essential_dynamics`.
        losses : optional
            Loss series to show instead of computing ``loss_fn`` on ``data`` at each checkpoint.
        run : bool
            Start computing now (else call :meth:`run`).
        **sweep_settings
            Sampler settings for the sweep (lr, nbeta, localization, num_chains, num_draws,
            batch_size, seed, ...).
        """
        widget = cls(losses=losses, steps=trajectory.steps)
        widget._source = dict(trajectory=trajectory, model=model, data=data, loss_fn=loss_fn, store=store, probe=probe,
                              output_fn=output_fn, n_components=n_components, settings=sweep_settings,
                              losses_given=losses is not None)
        widget.can_run = True
        if run:
            widget.run()
        return widget

    # ------------------------------------------------------------------ reading
    @property
    def steps(self) -> np.ndarray:
        """Training step of every checkpoint, shape (checkpoints,)."""
        return self._steps.copy()

    @property
    def step(self) -> int:
        """Training step of the selected checkpoint."""
        return int(self._steps[self.checkpoint])

    def select(self, step: int | None = None, index: int | None = None) -> DevelopmentDashboard:
        """Select the checkpoint nearest to training ``step`` (or at ``index``)."""
        if (step is None) == (index is None):
            raise TypeError("select(step=...) or select(index=...)")
        self.checkpoint = int(index) if index is not None else _nearest(self._steps, step)
        return self

    def result_at(self, checkpoint: int | None = None, selection: str | None = None, distribution: str | None = None):
        """The :class:`LLCResult` behind the LLC panel at a checkpoint (default: the selected one).

        ``SamplerWidget.from_result(dash.result_at())`` shows its chains and diagnostics.
        """
        if self.sweep is None:
            raise ValueError("this dashboard has no LLC sweep")
        index = self.checkpoint if checkpoint is None else int(checkpoint)
        sel, dist = self.sweep._names(selection or self.selection or None, distribution or self.distribution or None)
        at = np.flatnonzero(np.asarray(self.sweep.steps) == self._steps[index])
        result = self.sweep.results.get((sel, dist, int(at[0]))) if at.size else None
        if result is None:
            raise ValueError(f"no estimate at checkpoint {index} (step {self._steps[index]}) for {sel!r} / {dist!r}; "
                             "nearest_estimate() gives the nearest checkpoint that has one")
        return result

    def nearest_estimate(self, checkpoint: int | None = None, selection: str | None = None,
                         distribution: str | None = None) -> tuple[int, Any] | None:
        """The LLC estimate nearest to a checkpoint (default: the selected one) on the log step axis.

        Returns ``(step, LLCResult)`` of the sweep checkpoint nearest to it in log(step + 1), as the
        dashboard draws steps, that has an estimate (the earlier one on a tie), or None when the curve has none yet. This is what the LLC
        readout names at a checkpoint without its own estimate.
        """
        if self.sweep is None:
            raise ValueError("this dashboard has no LLC sweep")
        index = self.checkpoint if checkpoint is None else int(checkpoint)
        sel, dist = self.sweep._names(selection or self.selection or None, distribution or self.distribution or None)
        done = np.array([k for k in range(len(self.sweep.steps)) if (sel, dist, k) in self.sweep.results], dtype=np.int64)
        if done.size == 0:
            return None
        done_steps = np.asarray(self.sweep.steps, dtype=np.int64)[done]
        k = int(done[_nearest(np.log1p(done_steps), float(np.log1p(self._steps[index])))])  # nearest on the log step axis
        return int(self.sweep.steps[k]), self.sweep.results[(sel, dist, k)]

    # ---------------------------------------------------------------- validation
    @traitlets.validate("checkpoint")
    def _valid_checkpoint(self, proposal: Any) -> int:
        value, n = int(proposal.value), len(self._steps)
        if not 0 <= value < n:
            raise traitlets.TraitError(f"checkpoint must be an index in [0, {n - 1}], got {value}")
        return value

    @traitlets.validate("plane")
    def _valid_plane(self, proposal: Any) -> list[int]:
        plane = [int(v) for v in proposal.value]
        k = _n_components(self.dynamics)
        if len(plane) != 2 or plane[0] == plane[1] or min(plane) < 0 or (k and max(plane) >= k):
            raise traitlets.TraitError(f"plane must be two different PC indices in [0, {max(k, 2) - 1}], got {plane}")
        return plane

    @traitlets.validate("smoothing")
    def _valid_smoothing(self, proposal: Any) -> float:
        value = float(proposal.value)
        if not 0.0 <= value < 1.0:
            raise traitlets.TraitError(f"smoothing must be in [0, 1) (0 = raw curves, 0.9 = heavy), got {value}")
        return value

    def _check_traits(self) -> None:
        if self.sweep is not None:
            if self.selection and self.selection not in self.sweep.selections:
                raise ValueError(f"selection {self.selection!r} is not in the sweep; it has {self.sweep.selections}")
            if self.distribution and self.distribution not in self.sweep.distributions:
                raise ValueError(f"distribution {self.distribution!r} is not in the sweep; it has {self.sweep.distributions}")

    # ------------------------------------------------------------------- panels
    def _panel_data(self) -> dict[str, Any]:
        """What the browser draws: steps, loss series, LLC curves with chains, stages, dynamics."""
        steps = self._steps
        with self._lock:
            return self._panel_data_locked(steps)

    def _panel_data_locked(self, steps: np.ndarray) -> dict[str, Any]:
        return {
            "steps": steps.astype(np.float32),
            "losses": [{"name": name, "steps": s.astype(np.float32), "values": v.astype(np.float32),
                        "index": _nearest_indices(steps, s)} for name, (s, v) in self._losses.items()],
            "llc": _llc_data(self.sweep, steps) if self.sweep is not None else None,
            "stages": _stage_data(self.sweep, self.stages) if self.sweep is not None and self.stages is not False else [],
            "dynamics": _dynamics_data(self.dynamics, steps) if self.dynamics is not None else None,
        }

    def _push_data(self) -> None:
        self.data = self._panel_data()

    # ------------------------------------------------------------------ compute
    def run(self, wait: bool = False) -> Any:
        """Compute the panels from the trajectory given to :meth:`from_trajectory` (background)."""
        if self._source is None:
            raise RuntimeError("this dashboard shows finished results; build it with from_trajectory() to compute")
        self._start_job(self._job, "dashboard")
        return self._wait_job(wait)

    def _job(self, stop: Any) -> None:
        from devinterp_viz.analysis.essential_dynamics import essential_dynamics

        src = self._source
        trajectory = src["trajectory"]
        if not src["losses_given"]:
            self.progress = "loss at each checkpoint"
            values = np.full(len(trajectory), np.nan)
            for index in range(len(trajectory)):
                if stop.is_set():
                    return
                values[index] = _full_loss(trajectory.model_at(src["model"], index), src["data"], src["loss_fn"])
            self._losses = {"loss": (np.asarray(trajectory.steps, dtype=np.int64), values)}
            self._throttle.request()
        if src["probe"] is not None and self.dynamics is None and not stop.is_set():
            self.progress = "essential dynamics"
            self.dynamics = essential_dynamics(trajectory, src["model"], src["probe"], output_fn=src["output_fn"],
                                               n_components=src["n_components"], progress=False)
            self._throttle.request()
        if stop.is_set():
            return
        self.progress = "LLC sweep"
        live = SweepResult(np.asarray(trajectory.steps, dtype=np.int64), [], [], config=dict(src["settings"]))

        def on_result(sel: str, dist: str, index: int, result: Any) -> None:
            with self._lock:
                for names, name in ((live.selections, sel), (live.distributions, dist)):
                    if name not in names:
                        names.append(name)
                live.results[(sel, dist, index)] = result
                self.sweep = live
            self._throttle.request()

        finished = sweep_llc(trajectory, src["model"], src["data"], src["loss_fn"], store=src["store"],
                                   on_result=on_result, stop=stop, progress=False, **src["settings"])
        with self._lock:
            self.sweep = finished

    def _on_job_end(self) -> None:
        self.progress = ""
        self._throttle.cancel()
        self._push_data()


# ------------------------------------------------------------------------- helpers


def _check_sources(sweep: Any, dynamics: Any) -> None:
    """A TypeError unless ``sweep`` is a SweepResult and ``dynamics`` a fitted EssentialDynamics (or None)."""

    if sweep is not None and not isinstance(sweep, SweepResult):
        raise TypeError(f"sweep must be a SweepResult (from dvz.sweep_llc), got a {type(sweep).__name__}; to compute "
                        "one from a trajectory, use DevelopmentDashboard.from_trajectory(trajectory, model, data, loss_fn).")
    if dynamics is not None and not all(hasattr(dynamics, name) for name in ("steps_", "trajectory_")):
        raise TypeError(f"dynamics must be a fitted EssentialDynamics (dvz.EssentialDynamics(...).fit(...)), got a "
                        f"{type(dynamics).__name__}" + (" that is not fitted" if hasattr(dynamics, "fit") else "") + ".")


def _own_steps(sweep: Any, dynamics: Any, losses: Any, steps: Any) -> np.ndarray:
    """The steps a loss series given as bare values (no steps of its own) belongs to."""
    for candidate in (steps, getattr(sweep, "steps", None), getattr(dynamics, "steps_", None)):
        if candidate is not None:
            return np.asarray(candidate, dtype=np.int64).reshape(-1)
    if isinstance(losses, Mapping):
        pairs = [v for v in losses.values() if isinstance(v, tuple)]
        if pairs:
            return np.asarray(pairs[0][0], dtype=np.int64).reshape(-1)
        return np.arange(len(np.asarray(next(iter(losses.values())))), dtype=np.int64)
    if losses is not None:
        return np.arange(len(np.asarray(losses)), dtype=np.int64)
    raise ValueError("DevelopmentDashboard needs a sweep, dynamics or losses to show")


def _master_steps(sweep: Any, dynamics: Any, losses: dict[str, tuple[np.ndarray, np.ndarray]], steps: Any) -> np.ndarray:
    """Every step at which some panel has data, shape (checkpoints,): the scrubber's checkpoints."""
    sources = [("steps", steps), ("the sweep's steps", getattr(sweep, "steps", None)),
               ("the dynamics' steps_", getattr(dynamics, "steps_", None))]
    sources += [(f"loss {name!r}", s) for name, (s, _) in losses.items()]
    found = []
    for label, candidate in sources:
        if candidate is None:
            continue
        values = np.asarray(candidate, dtype=np.int64).reshape(-1)
        if np.any(np.diff(values) <= 0):
            raise ValueError(f"{label} must be strictly increasing training steps, got {values[:8].tolist()}...")
        found.append(values)
    out = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    if out.size == 0:
        raise ValueError("the dashboard needs at least one checkpoint")
    return out


def _loss_series(losses: Any, steps: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if losses is None:
        return {}
    if not isinstance(losses, Mapping):
        losses = {"loss": losses}
    out = {}
    for name, value in losses.items():
        if isinstance(value, tuple) and len(value) == 2:
            s, v = np.asarray(value[0], dtype=np.int64).reshape(-1), np.asarray(value[1], dtype=float).reshape(-1)
            if s.shape != v.shape:
                raise ValueError(f"loss {name!r}: {len(s)} steps but {len(v)} values")
        else:
            v = np.asarray(value, dtype=float).reshape(-1)
            if v.shape != steps.shape:
                raise ValueError(f"loss {name!r} has {len(v)} values for {len(steps)} checkpoints; give (steps, values) "
                                 "for a series recorded at other steps")
            s = steps.copy()
        out[str(name)] = (s, v)
    return out


def _nearest(steps: np.ndarray, step: float) -> int:
    i = bisect.bisect_left(steps.tolist(), step)
    if i == 0:
        return 0
    if i == len(steps):
        return len(steps) - 1
    return i if steps[i] - step < step - steps[i - 1] else i - 1


def _nearest_indices(master: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """For each of ``steps``, the index of the nearest master checkpoint (float32 for transport)."""
    right = np.clip(np.searchsorted(master, steps), 0, len(master) - 1)
    left = np.clip(right - 1, 0, len(master) - 1)
    pick = np.where(np.abs(master[left] - steps) <= np.abs(master[right] - steps), left, right)
    return pick.astype(np.float32)


def _llc_data(sweep: Any, master: np.ndarray) -> dict[str, Any]:
    """LLC curves at the sweep's own checkpoints; ``index``: each one's checkpoint of the dashboard."""
    shape = (len(sweep.selections), len(sweep.distributions), len(sweep.steps))
    healthy = np.full(shape, np.nan, np.float32)
    mean = sweep.llc_mean.astype(np.float32)
    for (sel, dist, index), res in sweep.results.items():
        i, j = sweep.selections.index(sel), sweep.distributions.index(dist)
        if res.diagnostics.status == "undefined":  # not a local minimum: there is no LLC to draw
            healthy[i, j, index], mean[i, j, index] = -1.0, np.nan
            continue
        healthy[i, j, index] = float(bool(res.diagnostics.healthy))
    sweep_steps = np.asarray(sweep.steps, dtype=np.int64)
    return {
        "selections": list(sweep.selections),
        "distributions": list(sweep.distributions),
        "steps": sweep_steps.astype(np.float32),
        "index": _nearest_indices(master, sweep_steps),
        "mean": mean,
        "se": sweep.llc_se.astype(np.float32),
        "healthy": healthy,
    }


def _stage_data(sweep: Any, stages: Any) -> list[dict[str, Any]]:
    """Stages of each (selection, distribution) curve, in row-major order; {} where undetectable."""
    from devinterp_viz.analysis.stages import StageDetector, stages as detect

    out = []
    for sel in sweep.selections:
        for dist in sweep.distributions:
            fitted = None
            if isinstance(stages, StageDetector):
                fitted = stages if not out else None
            else:
                try:
                    fitted = detect(sweep, selection=sel, distribution=dist)
                except ValueError:  # fewer than 3 finite estimates so far
                    fitted = None
            out.append({} if fitted is None else {
                "boundaries": np.asarray(fitted.boundaries_, np.float32),
                "smoothed": np.asarray(fitted.smoothed_, np.float32),
                "stages": [dict(s) for s in fitted.stages_],
                "significance": float(fitted.significance),
            })
    return out


def _n_components(dynamics: Any) -> int:
    trajectory = getattr(dynamics, "trajectory_", None)
    return 0 if trajectory is None else int(np.asarray(trajectory).shape[1])


def _dynamics_data(dynamics: Any, master: np.ndarray) -> dict[str, Any]:
    steps = np.asarray(dynamics.steps_, dtype=np.int64)
    coords = np.asarray(dynamics.trajectory_, dtype=np.float32)
    geometry = getattr(dynamics, "geometry_", None)
    milestones = np.asarray(getattr(geometry, "milestones_", []), dtype=np.float32)
    return {
        "steps": steps.astype(np.float32),
        "coords": coords,
        "smoothed": np.asarray(geometry.smoothed_, np.float32) if geometry is not None else None,
        "explained": np.asarray(dynamics.explained_variance_ratio_, np.float32),
        "milestones": milestones,
        "index": _nearest_indices(master, steps),
    }


def _full_loss(model: Any, data: Any, loss_fn: Any) -> float:
    """``loss_fn`` on the whole data set: one call on tensors, the batch-size-weighted mean over a DataLoader."""
    import torch
    from torch.utils.data import DataLoader

    model.eval()  # a copy made by Trajectory.model_at
    with torch.no_grad():
        if isinstance(data, DataLoader):
            total, count = 0.0, 0
            for batch in data:
                size = len(batch[0] if isinstance(batch, (tuple, list)) else batch)
                total += float(loss_fn(model, batch)) * size
                count += size
            return total / max(count, 1)
        return float(loss_fn(model, data))
