"""LLC and refined LLC over a training trajectory, resumable through a store, locally or on Ray."""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from devinterp_viz.analysis.executors import make_executor
from devinterp_viz.analysis.fingerprint import (
    Fingerprint,
    FingerprintWarning,
    data_fingerprint,
    model_fingerprint,
    value_fingerprint,
)
from devinterp_viz.analysis.covariances import Covariance, susceptibilities
from devinterp_viz.analysis.store import ResultStore, code_fingerprint, result_key
from devinterp_viz.analysis.trajectory import Trajectory, check_compatible, state_dict_fingerprint
from devinterp_viz.engine.llc import estimate_llc_selections
from devinterp_viz.engine.progress import Stop, progress_bar, stop_requested
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.engine.settings import SamplerSettings
from devinterp_viz.engine.selection import HeadSelection

Key = tuple[str, str, int]  # (selection, distribution, checkpoint index)


@dataclass
class SweepResult:
    """LLC estimates over a trajectory, per selection of weights and per data distribution.

    Attributes
    ----------
    steps : np.ndarray, shape (checkpoints,)
    selections : list of str
        Names of the weight selections (``"all"`` for the whole model).
    distributions : list of str
        Names of the data distributions (``"data"`` when one data set was given).
    results : dict
        ``(selection, distribution, checkpoint index) -> LLCResult``; missing keys were not
        computed (a stopped sweep). A checkpoint that could not be sampled (its weights are not
        finite) holds failed results: NaN estimates, unhealthy, the reason in their verdict and
        in ``config["failed"]`` (see :attr:`failed`).
    config : dict
        The sampler settings shared by every estimate.
    """

    steps: np.ndarray
    selections: list[str]
    distributions: list[str]
    results: dict[Key, LLCResult] = field(default_factory=dict, repr=False)
    config: dict[str, Any] = field(default_factory=dict)

    def _grid(self, value: Callable[[LLCResult], float], fill: float = np.nan) -> np.ndarray:
        out = np.full((len(self.selections), len(self.distributions), len(self.steps)), fill, dtype=float)
        for (sel, dist, index), res in self.results.items():
            out[self.selections.index(sel), self.distributions.index(dist), index] = value(res)
        return out

    @property
    def llc_mean(self) -> np.ndarray:
        """Estimates, shape (selections, distributions, checkpoints); NaN where not computed."""
        return self._grid(lambda r: r.llc_mean)

    @property
    def llc_std(self) -> np.ndarray:
        """Standard deviation across chains, shape (selections, distributions, checkpoints)."""
        return self._grid(lambda r: r.llc_std)

    @property
    def healthy(self) -> np.ndarray:
        """Health verdicts, shape (selections, distributions, checkpoints); False where not computed."""
        return self._grid(lambda r: float(r.diagnostics.healthy), fill=0.0).astype(bool)

    @property
    def undefined(self) -> np.ndarray:
        """Bool (selections, distributions, checkpoints): where w* is not a local minimum, so there is no LLC."""
        return self._grid(lambda r: float(r.diagnostics.status == "undefined"), fill=0.0).astype(bool)

    @property
    def llc_se(self) -> np.ndarray:
        """Standard errors of the estimates, shape (selections, distributions, checkpoints)."""
        return self._grid(lambda r: r.llc_se)

    @property
    def failed(self) -> dict[Key, str]:
        """``(selection, distribution, checkpoint index) -> reason`` of the estimates that could not be made."""
        return {key: res.config["failed"] for key, res in self.results.items() if res.config.get("failed")}

    @property
    def complete(self) -> bool:
        return len(self.results) == len(self.selections) * len(self.distributions) * len(self.steps)

    def loss_traces(self, selection: str | None = None, distribution: str | None = None) -> np.ndarray:
        """Loss traces of one curve, shape (checkpoints, chains, draws); NaN where not computed."""
        sel, dist = self._names(selection, distribution)
        found = [self.results.get((sel, dist, i)) for i in range(len(self.steps))]
        shape = next((r.loss_trace.shape for r in found if r is not None), (0, 0))
        return np.stack([r.loss_trace if r is not None else np.full(shape, np.nan) for r in found])

    def susceptibilities(self, name: str) -> Covariance:
        """Per-sample susceptibilities of observable ``name`` at every estimate (see :func:`susceptibilities`).

        Returns
        -------
        Covariance
            ``value`` and ``stderr`` of shape (selections, distributions, checkpoints, samples); NaN where
            not computed — with heads as selections, each head's response to each sample through training.
        """
        found = {key: susceptibilities(res, name) for key, res in self.results.items() if not res.config.get("failed")}
        width = next((cov.shape[0] for cov in found.values()), 0)
        value = np.full((len(self.selections), len(self.distributions), len(self.steps), width), np.nan)
        stderr = value.copy()
        for (sel, dist, index), cov in found.items():
            at = (self.selections.index(sel), self.distributions.index(dist), index)
            value[at], stderr[at] = cov.value, cov.stderr
        return Covariance(value, stderr)

    def curve(self, selection: str | None = None, distribution: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, llc_mean, llc_std)`` of one selection under one distribution."""
        sel, dist = self._names(selection, distribution)
        i, j = self.selections.index(sel), self.distributions.index(dist)
        return self.steps.copy(), self.llc_mean[i, j], self.llc_std[i, j]

    def _names(self, selection: str | None, distribution: str | None) -> tuple[str, str]:
        sel = selection if selection is not None else self.selections[0]
        dist = distribution if distribution is not None else self.distributions[0]
        if sel not in self.selections:
            raise ValueError(f"no selection {sel!r} in this sweep; it has {self.selections}.")
        if dist not in self.distributions:
            raise ValueError(f"no distribution {dist!r} in this sweep; it has {self.distributions}.")
        return sel, dist

    def to_pandas(self):
        """One row per estimate: step, selection, distribution, llc_mean, llc_std, healthy, verdict."""
        import pandas as pd

        rows = [
            {
                "step": int(self.steps[index]),
                "selection": sel,
                "distribution": dist,
                "llc_mean": res.llc_mean,
                "llc_std": res.llc_std,
                "healthy": res.diagnostics.healthy,
                "verdict": res.diagnostics.verdict,
            }
            for (sel, dist, index), res in sorted(self.results.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
        ]
        return pd.DataFrame(rows)

    def plot(self, normalize: bool = False):
        """LLC curves over training (log step axis), one per (selection, distribution)."""
        from devinterp_viz.plotting import plot_sweep

        return plot_sweep(self, normalize=normalize)


def sweep_llc(
    trajectory: Trajectory,
    model,
    data,
    loss_fn,
    *,
    params=None,
    selections: Mapping[str, Any] | None = None,
    distributions: Mapping[str, Any] | None = None,
    store: str | ResultStore | None = None,
    executor: str = "local",
    address: str | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
    stop: Stop = None,
    on_result: Callable[[str, str, int, LLCResult], None] | None = None,
    cache_key: str | None = None,
    **estimate_kwargs: Any,
) -> SweepResult:
    """Estimate the (refined) LLC at every checkpoint of a trajectory.

    Parameters
    ----------
    trajectory : Trajectory
    model : nn.Module
        The architecture; each checkpoint is loaded into a copy, ``model`` is never changed.
    data : data set or None
        The data (any form :func:`estimate_llc` takes); None when ``distributions`` is given.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar``.
    params : optional
        One weight selection (default: every parameter). Exclusive with ``selections``.
    selections : mapping of str to params specifications, optional
        Several selections (e.g. every attention head) estimated in one vectorised run per
        checkpoint. ``"heads"`` is a shortcut for every attention head of the model.
    distributions : mapping of str to data, optional
        Named data distributions for data-refined LLC; each gets its own estimates.
    store : str, Path or ResultStore, optional
        Folder of finished estimates: each is written as soon as its checkpoint finishes, and
        reused only when everything it depends on matches: the settings, the checkpoint's
        weights, the data's content (every item), the loader's sampler, ``collate_fn``,
        ``shuffle`` and ``drop_last``, ``loss_fn``'s code with its closure and the globals it
        reads, the template model's class code, dtypes, train/eval modes and plain attributes,
        and this library's version. A store that cannot be written is refused before anything
        is computed when estimates are missing from it.
    executor : {"local", "ray"}
        Run checkpoints in this process, or as Ray tasks (an existing cluster at
        ``address``, or a local cluster of ``num_cpus`` CPUs started for the sweep).
    progress : bool
        A progress bar over checkpoints.
    stop : threading.Event or callable, optional
        Ends the sweep after the checkpoint in progress (local executor).
    on_result : callable, optional
        ``on_result(selection, distribution, checkpoint_index, result)`` as estimates arrive
        (from the store or freshly computed).
    cache_key : str, optional
        A name for the current version of what cannot be fingerprinted (an object with no
        readable content that ``loss_fn`` calls, an ``IterableDataset``, a generator). Without
        it such sweeps warn (:class:`~devinterp_viz.analysis.fingerprint.FingerprintWarning`)
        and recompute every estimate; with it they are stored and reused under that name, so
        change it whenever that object changes. It is part of every key of the sweep.
    **estimate_kwargs
        For every estimate: ``settings=`` (a :class:`~devinterp_viz.engine.settings.SamplerSettings`),
        any of its fields (lr, nbeta, localization, num_chains, num_draws, batch_size, sampler,
        seed, ...) and the run options of :func:`estimate_llc` (device, model_mode, vectorize, ...).

    Returns
    -------
    SweepResult
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError("trajectory must be a devinterp_viz Trajectory (e.g. Trajectory.from_folder(path)).")
    if cache_key is not None and (not isinstance(cache_key, str) or not cache_key.strip()):
        raise ValueError("cache_key= must be a non-empty string naming the current version of what cannot be "
                         "fingerprinted, e.g. cache_key='tokenizer-v3'.")
    named_selections = _named_selections(model, params, selections)
    named_data = _named_distributions(data, distributions)
    check_trajectory_fits(trajectory, model)
    estimate_kwargs = _estimate_kwargs(estimate_kwargs)
    store = ResultStore(store) if store is not None and not isinstance(store, ResultStore) else store
    plain = {**estimate_kwargs["settings"].to_config(), **_run_options(estimate_kwargs)}
    keys = (_StoreKeys(trajectory, model, loss_fn, named_selections, named_data, plain, cache_key)
            if store is not None else None)
    sweep = SweepResult(trajectory.steps, list(named_selections), list(named_data), config=plain)

    tasks = _read_stored(sweep, trajectory, store, keys, on_result)
    keyed = [task for task in tasks if keys is not None and keys.of(task[1], task[2].fingerprint) is not None]
    if keyed:
        store.check_writable(missing=len(keyed) * len(named_selections))
    shared = {"model": model, "loss_fn": loss_fn, "named_data": named_data, "selections": named_selections,
              "estimate_kwargs": estimate_kwargs}
    runner = make_executor(executor, address=address, num_cpus=num_cpus)
    try:
        with progress_bar(len(tasks), _bar_title(model, len(tasks), len(trajectory) * len(named_data), named_data, named_selections, runner.name), progress) as bar:
            for (index, dist, state, step), results in runner.run(_estimate_checkpoint, tasks, shared, prepare=_loaded):
                failed = _failure(results)
                if failed:
                    _warn_failed(trajectory, index, failed)
                task_keys = keys.of(dist, state.fingerprint) if keys is not None and not failed else None
                for sel, res in results.items():
                    res.config["sweep"] = {"step": step, "selection": sel, "distribution": dist}
                    if task_keys is not None:
                        store.put(task_keys[sel], res)
                        if res.observables:  # held from here on as a read-only map of the stored file, not in memory
                            res = store.get(task_keys[sel]) or res
                    _record(sweep, sel, dist, index, res, on_result)
                bar.update(1)
                if stop_requested(stop):
                    break
    finally:
        runner.close()
    return sweep


def _bar_title(model, to_compute: int, total: int, named_data: Mapping, named_selections: Mapping, where: str) -> str:
    """What the sweep's progress bar counts: one tick per checkpoint (and data distribution) to compute."""
    unit = "checkpoints × distributions" if len(named_data) > 1 else "checkpoints"
    heads = f", {len(named_selections)} selections at once" if len(named_selections) > 1 else ""
    reused = f", {total - to_compute} of {total} reused from the store" if to_compute < total else ""
    place = "" if where == "local" else f", on {where}"
    return f"LLC sweep of {type(model).__name__} ({unit}{heads}{reused}{place})"


def _estimate_kwargs(given: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep's keyword arguments for every estimate: ``settings`` (a SamplerSettings) and run options.

    Raises TypeError on a keyword no estimate takes, ValueError on ``params=``/``stop=`` (a sweep's own).
    """
    for forbidden in ("params", "stop"):
        if forbidden in given:
            raise ValueError(f"{forbidden}= is not an estimate setting of a sweep here; see sweep_llc's parameters.")
    if "observable_folder" in given:
        raise ValueError("observable_folder= names one estimate's files; a sweep keeps each checkpoint's observables "
                         "in its store= (written as each checkpoint finishes, reused when nothing changed).")
    settings, run_options = SamplerSettings.split({k: v for k, v in given.items() if k not in ("progress", "on_draw")})
    valid = set(inspect.signature(estimate_llc_selections).parameters) - {
        "model", "data", "loss_fn", "selections", "settings", "sampler_settings", "progress", "on_draw", "stop"}
    unknown = sorted(set(run_options) - valid)
    if unknown:
        close = difflib.get_close_matches(unknown[0], [*valid, *SamplerSettings.names()], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise TypeError(f"sweep_llc() got an unexpected keyword argument {unknown[0]!r}.{hint}")
    return {"settings": settings, **run_options}


def _run_options(estimate_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in estimate_kwargs.items() if name != "settings"}


class _StoreKeys:
    """The store keys of a sweep's estimates: settings, code, template model, selection, data, weights.

    Everything but the checkpoints' weights is fingerprinted once per sweep; each checkpoint's
    weights once per sweep too (files again whenever they change on disk). Parts that cannot be
    fingerprinted make their keys None (never reused, never stored) unless ``cache_key`` names
    their version, and are named in a :class:`FingerprintWarning`.
    """

    def __init__(self, trajectory: Trajectory, model, loss_fn, named_selections: dict[str, Any],
                 named_data: dict[str, Any], estimate_kwargs: dict[str, Any], cache_key: str | None):
        self.trajectory = trajectory
        settings, parts = _plain_settings({"model_mode": "eval", **estimate_kwargs})  # the engine's default mode
        loss_print, model_print = code_fingerprint(loss_fn), model_fingerprint(model)
        selection_prints = {sel: value_fingerprint(spec, f"selection {sel!r}") for sel, spec in named_selections.items()}
        self.settings = {**settings, "loss_fn": loss_print.digest, "model": model_print.digest, "cache_key": cache_key}
        self.selections = {sel: fp.digest for sel, fp in selection_prints.items()}
        data_prints = {dist: data_fingerprint(value, "data" if dist == "data" else f"distribution {dist!r}")
                       for dist, value in named_data.items()}
        self.data = {dist: fp.digest for dist, fp in data_prints.items()}
        shared_opaque = [item for fp in (*parts, loss_print, model_print, *selection_prints.values()) for item in fp.opaque]
        self.usable = {dist: cache_key is not None or not (shared_opaque or fp.opaque) for dist, fp in data_prints.items()}
        opaque = shared_opaque + [item for fp in data_prints.values() for item in fp.opaque]
        if opaque and cache_key is None:
            _warn_opaque(opaque)
        self._checkpoints: dict[int, str] = {}

    def checkpoint(self, index: int) -> str:
        if index not in self._checkpoints:
            self._checkpoints[index] = self.trajectory.fingerprint(index)
        return self._checkpoints[index]

    def of(self, dist: str, checkpoint: str | None) -> dict[str, str] | None:
        """``{selection: key}`` of one checkpoint under one distribution; None when not keyable."""
        if not self.usable[dist] or checkpoint is None:
            return None
        return {sel: result_key({**self.settings, "selection": exact, "selection_name": sel}, checkpoint, self.data[dist])
                for sel, exact in self.selections.items()}


def _read_stored(sweep: SweepResult, trajectory: Trajectory, store: ResultStore | None, keys: _StoreKeys | None,
                 on_result) -> list[tuple]:
    """Record every (checkpoint, distribution) the store holds; return the tasks of the others."""
    tasks = []
    for index in range(len(trajectory)):
        for dist in sweep.distributions:
            fingerprint = keys.checkpoint(index) if keys is not None else None
            found = _stored(store, keys.of(dist, fingerprint) if keys is not None else None)
            if found is None:
                tasks.append((index, dist, _LazyState(trajectory, index, fingerprint), int(trajectory.steps[index])))
                continue
            for sel, res in found.items():
                _record(sweep, sel, dist, index, res, on_result)
    return tasks


def _plain_settings(estimate_kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[Fingerprint]]:
    """Sampler settings as JSON values; others (a device, a tensor) replaced by their fingerprint."""
    settings, prints = {}, []
    for name, value in sorted(estimate_kwargs.items()):
        if name == "graph":  # a traced graph gives the eager numbers (checked every run)
            continue
        if _is_plain(value):
            settings[name] = value
        else:
            prints.append(value_fingerprint(value, f"setting {name}="))
            settings[name] = {"fingerprint": prints[-1].digest}
    return settings, prints


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain(item) for key, item in value.items())
    return False


def _warn_opaque(opaque: list[str]) -> None:
    names = list(dict.fromkeys(opaque))
    shown = "; ".join(names[:5]) + (f"; and {len(names) - 5} more" if len(names) > 5 else "")
    warnings.warn(
        f"sweep_llc cannot fingerprint {shown}. Nothing tells whether it changed since a stored estimate was made, "
        "so the estimates that depend on it are recomputed and not stored. Pass cache_key='<a name for its current "
        "version>' to sweep_llc to store and reuse them (change the name whenever it changes).",
        FingerprintWarning, stacklevel=4,
    )


def _stored(store: ResultStore | None, keys: dict[str, str] | None) -> dict[str, LLCResult] | None:
    """Every selection's stored result of one checkpoint and distribution, or None if any is missing."""
    if store is None or keys is None:
        return None
    found = {}
    for sel, key in keys.items():
        result = store.get(key)
        if result is None:
            return None
        found[sel] = result
    return found


class _LazyState:
    """A checkpoint read only when its task is about to run (or, on Ray, to be submitted).

    ``fingerprint`` is the hash of the weights the task's store keys were made from; when the
    checkpoint read differs (its file was rewritten after the sweep started), it becomes the
    hash of the weights actually used, so the estimate is stored under what it was computed from.
    """

    def __init__(self, trajectory: Trajectory, index: int, fingerprint: str | None = None):
        self.trajectory, self.index, self.fingerprint = trajectory, index, fingerprint

    def load(self):
        state = self.trajectory.state_dict(self.index)
        if self.fingerprint is not None:
            now = state_dict_fingerprint(state)
            if now != self.fingerprint:
                warnings.warn(f"checkpoint {self.trajectory.source(self.index)} changed after the sweep started; its "
                              "estimate is stored under the weights it was computed from.", FingerprintWarning, stacklevel=2)
                self.fingerprint = now
        return state


def _loaded(task):
    """The task with its checkpoint read: what is shipped to the worker that runs it."""
    index, dist, state, step = task
    return index, dist, state.load(), step


def _estimate_checkpoint(task, *, model, loss_fn, named_data, selections, estimate_kwargs) -> dict[str, LLCResult]:
    """One checkpoint × distribution: every selection in one vectorised engine run.

    A checkpoint whose weights are not finite is not sampled: every selection gets a failed
    result (:func:`failed_result`) saying so.
    """
    import copy


    _, dist, state, step = task
    state = check_compatible(model, state, where=f"checkpoint at step {step}")
    parameters = {name for name, _ in model.named_parameters()}  # buffers may hold ±inf on purpose (masks), never NaN
    not_finite = [name for name, tensor in state.items() if tensor.is_floating_point()
                  and not bool((torch.isfinite(tensor) if name in parameters else ~torch.isnan(tensor)).all())]
    if not_finite:
        reason = f"checkpoint weights are not finite: {', '.join(not_finite[:3])}{' ...' if len(not_finite) > 3 else ''} hold NaN or inf"
        return {sel: failed_result(reason, estimate_kwargs) for sel in selections}
    at_checkpoint = copy.deepcopy(model)
    at_checkpoint.load_state_dict(state)
    return estimate_llc_selections(at_checkpoint, named_data[dist], loss_fn, selections, progress=False, **estimate_kwargs)


def failed_result(reason: str, estimate_kwargs: Mapping[str, Any]) -> LLCResult:
    """An LLCResult for a checkpoint that could not be sampled: NaN estimate and traces, unhealthy, ``reason`` given.

    Its traces have the (chains, draws) shape of the sweep's other results; ``config["failed"]``
    holds ``reason``, which is also the diagnostics' one reason (its verdict).
    """
    from devinterp_viz.engine.verdict import Diagnostics

    settings = estimate_kwargs["settings"]
    chains, draws = settings.num_chains, settings.num_draws
    nan_trace, nan_chains = np.full((chains, draws), np.nan), np.full(chains, np.nan)
    diagnostics = Diagnostics(
        rhat=float("nan"), ess=float("nan"), mala_acceptance=nan_chains.copy(), fraction_below_init=nan_chains.copy(),
        divergent=np.zeros(chains, dtype=bool), divergence_draw=np.full(chains, -1), healthy=False, reasons=[reason],
        status="unhealthy", next_step={"cause": "failed", "text": "replace this checkpoint's weights (they are not "
                                       "finite) and rerun the sweep", "settings": {}},
    )
    return LLCResult(
        llc_mean=float("nan"), llc_std=float("nan"), llc_per_chain=nan_chains.copy(), loss_trace=nan_trace,
        init_loss=float("nan"), nbeta=float("nan"),
        config={**settings.to_config(), **_jsonable_settings(_run_options(estimate_kwargs)), "failed": reason},
        diagnostics=diagnostics, mala_trace=nan_trace.copy(), distance_trace=nan_trace.copy(),
    )


def _jsonable_settings(estimate_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in estimate_kwargs.items() if _is_plain(value)}


def _failure(results: Mapping[str, LLCResult]) -> str | None:
    """The reason a checkpoint's results are failed ones (see :func:`failed_result`), or None."""
    return next((res.config["failed"] for res in results.values() if res.config.get("failed")), None)


def _warn_failed(trajectory: Trajectory, index: int, reason: str) -> None:
    warnings.warn(
        f"{trajectory.describe(index)}: {reason}. It is marked failed (NaN estimate, unhealthy, not stored) and the "
        "sweep goes on with the other checkpoints.", RuntimeWarning, stacklevel=3,
    )


def check_trajectory_fits(trajectory: Trajectory, model) -> None:
    """A ValueError naming the first checkpoint (its step and file) whose keys or shapes do not fit ``model``.

    Reads only the checkpoints' names and shapes (safetensors headers, memory-mapped ``.pt`` files).
    """
    for index in range(len(trajectory)):
        check_compatible(model, trajectory.tensor_shapes(index), where=trajectory.describe(index))


def _record(sweep: SweepResult, sel: str, dist: str, index: int, res: LLCResult, on_result) -> None:
    sweep.results[(sel, dist, index)] = res
    if on_result is not None:
        on_result(sel, dist, index, res)


def _named_selections(model, params, selections) -> dict[str, Any]:
    if params is not None and selections is not None:
        raise ValueError("pass either params= (one selection) or selections= (several), not both.")
    if selections is None:
        return {"all" if params is None else _describe(params): params}
    if selections == "heads":
        from devinterp_viz.engine.selection import attention_heads

        return {head.label: head for head in attention_heads(model)}
    if not isinstance(selections, Mapping) or not selections:
        raise ValueError("selections= must be a non-empty {name: params} mapping or 'heads'.")
    return dict(selections)


def _named_distributions(data, distributions) -> dict[str, Any]:
    if distributions is None:
        if data is None:
            raise ValueError("give data, or distributions={name: data} for data-refined LLC.")
        return {"data": data}
    if data is not None:
        raise ValueError("pass data=None when giving distributions= (each distribution is a data set).")
    if not isinstance(distributions, Mapping) or not distributions:
        raise ValueError("distributions= must be a non-empty {name: data} mapping.")
    return dict(distributions)


def _describe(spec) -> str:
    if spec is None:
        return "all"
    if isinstance(spec, HeadSelection):
        return spec.label
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return ",".join(f"{k}[{int(v.sum()) if hasattr(v, 'sum') else v}]" for k, v in spec.items())
    return "+".join(_describe(s) for s in spec)
