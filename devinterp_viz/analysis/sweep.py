"""LLC and refined LLC over a training trajectory, resumable through a store, locally or on Ray."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devinterp_viz.analysis.executors import make_executor
from devinterp_viz.analysis.store import ResultStore, code_fingerprint, data_fingerprint, result_key
from devinterp_viz.analysis.trajectory import Trajectory, check_compatible
from devinterp_viz.engine.results import LLCResult
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
        computed (a stopped sweep).
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
    def complete(self) -> bool:
        return len(self.results) == len(self.selections) * len(self.distributions) * len(self.steps)

    def loss_traces(self, selection: str | None = None, distribution: str | None = None) -> np.ndarray:
        """Loss traces of one curve, shape (checkpoints, chains, draws); NaN where not computed."""
        sel, dist = self._names(selection, distribution)
        found = [self.results.get((sel, dist, i)) for i in range(len(self.steps))]
        shape = next((r.loss_trace.shape for r in found if r is not None), (0, 0))
        return np.stack([r.loss_trace if r is not None else np.full(shape, np.nan) for r in found])

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
    stop: threading.Event | Callable[[], bool] | None = None,
    on_result: Callable[[str, str, int, LLCResult], None] | None = None,
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
        Folder of finished estimates: each is written as soon as its checkpoint finishes,
        and estimates whose settings, checkpoint and data fingerprints all match are reused.
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
    **estimate_kwargs
        Sampler settings for every estimate (lr, nbeta, localization, num_chains, num_draws,
        batch_size, sampler, seed, ...).

    Returns
    -------
    SweepResult
    """
    from tqdm.auto import tqdm

    from devinterp_viz.engine.driver import show_progress

    if not isinstance(trajectory, Trajectory):
        raise TypeError("trajectory must be a devinterp_viz Trajectory (e.g. Trajectory.from_folder(path)).")
    named_selections = _named_selections(model, params, selections)
    named_data = _named_distributions(data, distributions)
    check_compatible(model, trajectory.state_dict(0), where=f"checkpoint at step {trajectory.steps[0]}")
    estimate_kwargs = {k: v for k, v in estimate_kwargs.items() if k not in ("progress", "on_draw")}
    for forbidden in ("params", "stop"):
        if forbidden in estimate_kwargs:
            raise ValueError(f"{forbidden}= is not an estimate setting of a sweep here; see sweep_llc's parameters.")
    store = ResultStore(store) if store is not None and not isinstance(store, ResultStore) else store
    settings = {  # graph= is left out: a traced graph gives the eager numbers (checked every run)
        **{k: v for k, v in sorted(estimate_kwargs.items()) if k != "graph"},
        "loss_fn": code_fingerprint(loss_fn),
        "model": f"{type(model).__qualname__}:{repr(model)}",
    }
    data_prints = {name: data_fingerprint(value) for name, value in named_data.items()}
    sweep = SweepResult(trajectory.steps, list(named_selections), list(named_data), config=dict(estimate_kwargs))

    def key_of(sel: str, dist: str, index: int) -> str:
        spec = named_selections[sel]
        exact = data_fingerprint(spec) if isinstance(spec, Mapping) else _describe(spec)  # masks hashed whole
        sel_settings = {**settings, "selection": exact, "selection_name": sel}
        return result_key(sel_settings, trajectory.fingerprint(index), data_prints[dist])

    tasks = []
    for index in range(len(trajectory)):
        for dist in named_data:
            keys = {sel: key_of(sel, dist, index) for sel in named_selections}
            if store is not None and all(k in store for k in keys.values()):
                for sel, key in keys.items():
                    _record(sweep, sel, dist, index, store.get(key), on_result)
            else:
                tasks.append((index, dist, keys))
    runner = make_executor(executor, address=address, num_cpus=num_cpus)
    shared = {"model": model, "loss_fn": loss_fn, "named_data": named_data, "selections": named_selections,
              "estimate_kwargs": estimate_kwargs}
    bar = tqdm(total=len(tasks), desc=f"LLC sweep ({runner.name})", disable=not show_progress(progress), leave=False)
    try:
        payload = [(index, dist, keys, _LazyState(trajectory, index), int(trajectory.steps[index]))
                   for index, dist, keys in tasks]
        for (index, dist, keys, _, step), results in runner.run(_estimate_checkpoint, payload, shared, prepare=_loaded):
            for sel, res in results.items():
                res.config["sweep"] = {"step": step, "selection": sel, "distribution": dist}
                if store is not None:
                    store.put(keys[sel], res)
                _record(sweep, sel, dist, index, res, on_result)
            bar.update(1)
            if _stopped(stop):
                break
    finally:
        bar.close()
        runner.close()
    return sweep


class _LazyState:
    """A checkpoint read only when its task is about to run (or, on Ray, to be submitted)."""

    def __init__(self, trajectory: Trajectory, index: int):
        self.trajectory, self.index = trajectory, index

    def load(self):
        return self.trajectory.state_dict(self.index)


def _loaded(task):
    """The task with its checkpoint read: what is shipped to the worker that runs it."""
    index, dist, keys, state, step = task
    return index, dist, keys, state.load(), step


def _estimate_checkpoint(task, *, model, loss_fn, named_data, selections, estimate_kwargs) -> dict[str, LLCResult]:
    """One checkpoint × distribution: every selection in one vectorised engine run."""
    import copy

    from devinterp_viz.engine.llc import estimate_llc_selections

    _, dist, _, state, _ = task
    at_checkpoint = copy.deepcopy(model)
    at_checkpoint.load_state_dict(state)
    return estimate_llc_selections(at_checkpoint, named_data[dist], loss_fn, selections, progress=False, **estimate_kwargs)


def _record(sweep: SweepResult, sel: str, dist: str, index: int, res: LLCResult, on_result) -> None:
    sweep.results[(sel, dist, index)] = res
    if on_result is not None:
        on_result(sel, dist, index, res)


def _stopped(stop) -> bool:
    if stop is None:
        return False
    return stop.is_set() if isinstance(stop, threading.Event) else bool(stop())


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
