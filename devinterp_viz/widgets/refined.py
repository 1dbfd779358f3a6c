"""RefinedLLCWidget: pick weights (a module tree down to attention heads) and data, sweep the refined LLC live."""

from __future__ import annotations

import fnmatch
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import traitlets

from devinterp_viz.analysis.sweep import sweep_llc
from devinterp_viz.engine.selection import attention_heads, resolve_selection
from devinterp_viz.widgets._base import DvzWidget
from devinterp_viz.widgets._jobs import BackgroundJobs
from devinterp_viz.widgets._settings import settings_traits
from devinterp_viz.widgets._transport import PackedTrait, Throttle

#: Run options passed through to every estimate (or to the sweep: ``cache_key``) untouched (not controls).
RUN_OPTIONS = ("device", "model_mode", "cache_key")


class RefinedLLCWidget(BackgroundJobs, settings_traits(), DvzWidget):
    """Weight- and data-refined LLC over a training trajectory, chosen in a tree and run live.

    The model's parameters are shown as its module tree (attention modules known to an
    engine head adapter expand into their heads) with checkboxes, the number of weights the
    checked nodes move and which tensors they touch, resolved by
    :func:`devinterp_viz.resolve_selection` (what :func:`devinterp_viz.describe_selection`
    prints). The ticks are the selection being built: "Add selection" keeps them as a named
    selection and clears them; Run first adds ticks not yet kept (so Run always runs what is
    ticked), then sweeps every (selection × chosen distribution) over the trajectory with
    :func:`devinterp_viz.sweep_llc` in a background thread, streaming each curve in as
    checkpoints finish and writing every estimate to the store, so reopening the widget with
    the same store and selections shows them at once.

    Parameters
    ----------
    trajectory : Trajectory
    model : nn.Module
        The architecture (never changed).
    data : optional
        The data set (any form :func:`estimate_llc` takes), shown as the distribution "data".
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar``.
    distributions : mapping of str to data, optional
        Named data distributions to choose from (instead of ``data``).
    store : str, Path or ResultStore, optional
        Where estimates are kept (default: a temporary folder for this widget's lifetime).
    selections : mapping of str to params specification, or "heads", optional
        Initial named selections: names, module names, globs, ``HeadSelection`` objects or lists
        of those; "heads" adds every attention head.
    run : bool, optional
        Start the sweep now; default: when ``store`` and ``selections`` are both given (the
        stored estimates then show at once, missing ones are computed).
    **settings
        Initial values of the traits below, and the run options ``device`` and ``model_mode`` for
        every estimate and ``cache_key`` for the sweep (see :func:`devinterp_viz.sweep_llc`).

    Raises
    ------
    TypeError
        When ``trajectory`` is not a Trajectory, ``model`` not an nn.Module, or ``loss_fn`` missing.
    ValueError
        When a checkpoint of the trajectory does not fit the model (naming its step and the keys).

    Traits (synced)
    ---------------
    checked : list of str
        Tree node ids checked now: ``"m:<module>"``, ``"p:<parameter>"``, ``"h:<module>:<head>"``
        (``"m:"`` is the whole model).
    selections : list of dict
        ``{"name": str, "items": [node ids]}`` for every selection that Run sweeps.
    chosen_distributions : list of str
        The distributions Run uses (of ``available``); default the first.
    normalize : bool, default False
        Draw each curve divided by its largest absolute value.
    log_x : bool, default True
    sampler, lr, nbeta, localization, num_chains, num_draws, num_burnin_steps, num_steps_bw_draws, batch_size, seed
        One trait per field of :class:`~devinterp_viz.engine.settings.SamplerSettings`, with its
        default, checked by it; every estimate of the sweep uses them.
    setting_spec : list of dict (read-only)
        The settings' labels, hints and bounds the browser's controls are made from.
    tree : dict (read-only)
        ``nodes``: ``{id, label, kind ("module" | "param" | "head"), parent, numel, shape, type}``.
    count : dict (read-only)
        ``num_selected``, ``num_total`` of ``checked``, an ``error`` message ("" if none) and
        ``tensors``: ``{name, shape, selected, numel}`` of every tensor the ticks move.
    previews : dict (read-only)
        Selection name → ``{num_selected, tensors}``, the same breakdown for every selection.
    available : list of str (read-only)
    curves : dict (read-only)
        ``steps`` (checkpoints,), ``selections``, ``distributions``, ``mean`` / ``se`` (standard
        error) / ``healthy`` (selections, distributions, checkpoints) float32 (NaN = not computed;
        healthy 1, 0 unhealthy, -1 undefined),
        ``counts`` (weights per selection), ``done``, ``total``.
    status, error : str (read-only)
    """

    _view = traitlets.Unicode("RefinedLLCWidget").tag(sync=True)
    _read_only = ("tree", "count", "previews", "available", "curves", "status", "error", "can_run", "setting_spec")
    _extra_kwargs = ("trajectory", "model", "data", "loss_fn", "store", "run") + RUN_OPTIONS

    checked = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    selections = traitlets.List(traitlets.Dict(), default_value=[]).tag(sync=True)
    chosen_distributions = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    normalize = traitlets.Bool(False).tag(sync=True)
    log_x = traitlets.Bool(True).tag(sync=True)

    tree = PackedTrait()
    count = PackedTrait()
    previews = traitlets.Dict().tag(sync=True)
    available = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    curves = PackedTrait()
    can_run = traitlets.Bool(True).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    push_hz = 10.0

    def __init__(self, trajectory: Any, model: Any, data: Any = None, loss_fn: Any = None, *,
                 distributions: Mapping[str, Any] | None = None, store: Any = None,
                 selections: Mapping[str, Any] | str | None = None, run: bool | None = None, **settings: Any):
        if loss_fn is None:
            raise TypeError("RefinedLLCWidget needs loss_fn(model, batch)")
        if (data is None) == (distributions is None):
            raise TypeError("give data=... or distributions={name: data}, not both")
        if distributions is not None and (not isinstance(distributions, Mapping) or not distributions):
            raise ValueError("distributions must be a non-empty {name: data} mapping")
        _check_trajectory_and_model(trajectory, model)
        self.trajectory, self.model, self.loss_fn = trajectory, model, loss_fn
        self._data = {"data": data} if data is not None else dict(distributions)
        self._run_options = {k: settings.pop(k) for k in RUN_OPTIONS if k in settings}
        self._tmp_store = None
        if store is None:
            self._tmp_store = tempfile.TemporaryDirectory(prefix="dvz-refined-")
            store = self._tmp_store.name
        self.store = store
        self.sweep = None
        self.results: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.RLock()
        self._nodes = parameter_tree(model)
        self._node_ids = {node["id"] for node in self._nodes}
        settings.setdefault("chosen_distributions", list(self._data)[:1])
        super().__init__(**settings)
        self.available = list(self._data)
        self.tree = {"nodes": self._nodes}
        self._throttle = Throttle(self._push_curves, hz=self.push_hz)
        self._listen({
            "run": lambda message: self.run(name=message.get("name") or None),
            "stop": lambda message: self.stop(wait=False),
            "add_selection": lambda message: self.add_selection(message.get("name") or None),
            "add_heads": lambda message: self.add_selections("heads"),
            "remove_selection": lambda message: self.remove_selection(str(message.get("name"))),
        })
        self.observe(self._update_count, names="checked")
        self.observe(self._update_previews, names="selections")
        if selections is not None:
            self.add_selections(selections)
        self._update_count()
        self._update_previews()
        self._push_curves()
        if run or (run is None and store is not None and self._tmp_store is None and selections is not None):
            self.run()

    # ------------------------------------------------------------ validation
    @traitlets.validate("checked")
    def _valid_checked(self, proposal: Any) -> list[str]:
        unknown = [i for i in proposal.value if i not in self._node_ids]
        if unknown:
            raise traitlets.TraitError(f"unknown tree nodes {unknown[:3]}; ids look like 'm:blocks.0', 'p:blocks.0.attn.W_Q', 'h:blocks.0.attn:1'")
        return list(dict.fromkeys(proposal.value))

    @traitlets.validate("chosen_distributions")
    def _valid_distributions(self, proposal: Any) -> list[str]:
        unknown = [d for d in proposal.value if d not in self._data]
        if unknown:
            raise traitlets.TraitError(f"unknown distributions {unknown}; available: {list(self._data)}")
        return list(dict.fromkeys(proposal.value))

    @traitlets.validate("selections")
    def _valid_selections(self, proposal: Any) -> list[dict]:
        out, names = [], set()
        for entry in proposal.value:
            name, items = str(entry.get("name", "")).strip(), list(entry.get("items", []))
            if not name or not items:
                raise traitlets.TraitError("each selection needs a name and at least one tree node")
            if name in names:
                raise traitlets.TraitError(f"two selections are named {name!r}")
            unknown = [i for i in items if i not in self._node_ids]
            if unknown:
                raise traitlets.TraitError(f"selection {name!r}: unknown tree nodes {unknown[:3]}")
            names.add(name)
            out.append({"name": name, "items": items})
        return out

    # ------------------------------------------------------------ selections
    def spec(self, items: list[str] | None = None) -> Any:
        """The ``params=`` specification of tree nodes (default: the checked ones)."""
        return spec_of(self._nodes, self.checked if items is None else items)

    def add_selection(self, name: str | None = None, items: list[str] | None = None) -> str:
        """Keep ``items`` (default: the checked nodes, then unchecked) as a named selection; returns its name."""
        from_ticks = items is None
        items = list(self.checked if items is None else items)
        if not items:
            raise ValueError("tick at least one weight, module or head in the parameter tree first")
        resolve_selection(self.model, self.spec(items))  # raises on an empty selection
        name = (name or describe_items(self._nodes, items)).strip()
        taken = {s["name"] for s in self.selections}
        base, k = name, 2
        while name in taken:
            name, k = f"{base} ({k})", k + 1
        self.selections = [*self.selections, {"name": name, "items": items}]
        if from_ticks:
            self.checked = []
        return name

    def pending(self) -> bool:
        """Whether the ticks are a selection not kept yet (Run adds it first)."""
        kept = {frozenset(s["items"]) for s in self.selections}
        return bool(self.checked) and frozenset(self.checked) not in kept

    def add_selections(self, selections: Mapping[str, Any] | str) -> None:
        """Add named selections given as params specifications (or "heads": every attention head)."""
        if selections == "heads":
            heads = [n for n in self._nodes if n["kind"] == "head"]
            if not heads:
                raise ValueError(f"{type(self.model).__name__} has no attention heads any adapter knows")
            for node in heads:
                self.add_selection(head_label(node["id"]), [node["id"]])
            return
        if not isinstance(selections, Mapping):
            raise TypeError("selections must be a {name: params} mapping or 'heads'")
        for name, spec in selections.items():
            self.add_selection(str(name), items_of(self._nodes, spec))

    def remove_selection(self, name: str) -> None:
        self.selections = [s for s in self.selections if s["name"] != name]

    def preview(self, items: list[str] | None = None) -> dict[str, Any]:
        """What tree nodes (default: the checked ones) move: ``{num_selected, tensors}``.

        ``tensors`` lists ``{name, shape, selected, numel}`` for every tensor with a moving
        weight, in the model's order (:attr:`Selection.rows` of :func:`resolve_selection`).
        """
        chosen = resolve_selection(self.model, self.spec(items))
        tensors = [{"name": name, "shape": list(shape), "selected": int(selected), "numel": int(numel)}
                   for name, shape, selected, numel in chosen.rows if selected]
        return {"num_selected": int(chosen.num_selected), "tensors": tensors}

    def _update_count(self, change: Any = None) -> None:
        total = int(sum(n["numel"] for n in self._nodes if n["kind"] == "param"))
        if not self.checked:
            self.count = {"num_selected": 0, "num_total": total, "error": "", "tensors": []}
            return
        try:
            self.count = {**self.preview(), "num_total": total, "error": ""}
        except (ValueError, TypeError) as err:
            self.count = {"num_selected": 0, "num_total": total, "error": str(err), "tensors": []}

    def _update_previews(self, change: Any = None) -> None:
        previews = {}
        for entry in self.selections:
            try:
                previews[entry["name"]] = self.preview(entry["items"])
            except (ValueError, TypeError):
                previews[entry["name"]] = {"num_selected": 0, "tensors": []}
        self.previews = previews

    # ------------------------------------------------------------------ run
    def settings(self) -> dict[str, Any]:
        """The keyword arguments of the sweep for every estimate: the settings and run options."""
        return {**self.sampler_settings().to_config(), **self._run_options}

    def run(self, wait: bool = False, name: str | None = None) -> Any:
        """Sweep every selection × chosen distribution over the trajectory (background thread).

        Ticks not kept as a selection yet are added first (named ``name``, default after their
        nodes), so Run always runs what is ticked. Estimates already in the store come back at
        once; the rest stream in. Returns the :class:`SweepResult` when ``wait=True`` (also kept
        as ``widget.sweep``).
        """
        if self.pending():
            self.add_selection(name)
        if not self.selections:
            raise ValueError("nothing to run: tick weights, modules or heads in the tree first")
        if not self.chosen_distributions:
            raise ValueError("choose at least one data distribution")
        plan = {
            "selections": {s["name"]: self.spec(s["items"]) for s in self.selections},
            "distributions": list(self.chosen_distributions),
            "settings": self.settings(),
        }
        with self._lock:
            self._plan = plan
        self._push_curves()
        self._start_job(lambda stop: self._job(plan, stop), "refined")
        self._wait_job(wait)
        return self.sweep if wait else self._thread

    def _job(self, plan: dict[str, Any], stop: threading.Event) -> None:
        def on_result(sel: str, dist: str, index: int, result: Any) -> None:
            with self._lock:
                self.results[(sel, dist, index)] = result
            self._throttle.request()

        named = plan["distributions"]
        data_kwargs = ({"data": self._data[named[0]]} if list(self._data) == ["data"]
                       else {"data": None, "distributions": {d: self._data[d] for d in named}})
        self.sweep = sweep_llc(
            self.trajectory, self.model, loss_fn=self.loss_fn, selections=plan["selections"], store=self.store,
            on_result=on_result, stop=stop, progress=False, **data_kwargs, **plan["settings"],
        )

    def _on_job_end(self) -> None:
        self._throttle.cancel()
        self._push_curves()

    def _push_curves(self) -> None:
        with self._lock:
            plan = getattr(self, "_plan", None)
            sels = [s["name"] for s in self.selections]
            dists = list(self.chosen_distributions)
            if plan is not None:  # the running (or last) plan's curves first, then any added since
                sels = list(dict.fromkeys([*plan["selections"], *sels]))
                dists = list(dict.fromkeys([*plan["distributions"], *dists]))
            steps = np.asarray(self.trajectory.steps)
            shape = (len(sels), len(dists), len(steps))
            mean, se, healthy = (np.full(shape, np.nan, np.float32) for _ in range(3))
            for (sel, dist, index), res in self.results.items():
                if sel in sels and dist in dists:
                    i, j = sels.index(sel), dists.index(dist)
                    mean[i, j, index], se[i, j, index] = res.llc_mean, res.llc_se
                    # 1 healthy, 0 unhealthy, -1 undefined (w* is not a local minimum: no LLC)
                    healthy[i, j, index] = -1.0 if res.diagnostics.status == "undefined" else float(bool(res.diagnostics.healthy))
            counts = []
            for name in sels:
                entry = next((s for s in self.selections if s["name"] == name), None)
                counts.append(self._count_of(entry["items"]) if entry else 0)
            planned = len(plan["selections"]) * len(plan["distributions"]) * len(steps) if plan else 0
            done = sum(1 for (s, d, _) in self.results if plan and s in plan["selections"] and d in plan["distributions"])
        self.curves = {"steps": steps.astype(np.float32), "selections": sels, "distributions": dists, "mean": mean,
                       "se": se, "healthy": healthy, "counts": counts, "done": done, "total": planned}

    def _count_of(self, items: list[str]) -> int:
        try:
            return int(resolve_selection(self.model, self.spec(items)).num_selected)
        except (ValueError, TypeError):
            return 0

    def curve(self, selection: str, distribution: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, llc_mean, llc_std)`` of one selection (NaN where not computed)."""
        dist = distribution or self.chosen_distributions[0]
        steps = np.asarray(self.trajectory.steps)
        mean, std = np.full(len(steps), np.nan), np.full(len(steps), np.nan)
        with self._lock:
            for (sel, d, index), res in self.results.items():
                if sel == selection and d == dist:
                    mean[index], std[index] = res.llc_mean, res.llc_std
        return steps, mean, std


def _check_trajectory_and_model(trajectory: Any, model: Any) -> None:
    """A Trajectory whose every checkpoint fits the model (names and shapes, read without the values)."""
    from torch import nn

    from devinterp_viz.analysis.sweep import check_trajectory_fits
    from devinterp_viz.analysis.trajectory import Trajectory

    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"RefinedLLCWidget needs a Trajectory first (e.g. dvz.Trajectory.from_folder(path)), got a "
                        f"{type(trajectory).__name__}.")
    if not isinstance(model, nn.Module):
        raise TypeError(f"RefinedLLCWidget needs the model (an nn.Module of the trajectory's architecture), got a "
                        f"{type(model).__name__}.")
    check_trajectory_fits(trajectory, model)


# ---------------------------------------------------------------------- the tree


def parameter_tree(model: Any) -> list[dict[str, Any]]:
    """The model's modules, their own parameters and (for attention modules) their heads, in order.

    Each node: ``id`` ("m:<module>", "p:<parameter>", "h:<module>:<head>"), ``label``, ``kind``,
    ``parent`` (id or None), ``numel`` (weights it moves, a head's counted through its adapter's
    masks), ``shape`` (parameters), ``type`` (modules' class name).
    """
    try:
        heads = attention_heads(model)
    except ValueError:
        heads = []
    heads_of: dict[str, list[Any]] = {}
    for head in heads:
        heads_of.setdefault(head.module, []).append(head)
    nodes: list[dict[str, Any]] = []
    for name, module in model.named_modules():
        numel = sum(p.numel() for p in module.parameters())
        if numel == 0:
            continue
        parent = None if name == "" else "m:" + name.rsplit(".", 1)[0] if "." in name else "m:"
        label = type(module).__name__ if name == "" else name.rsplit(".", 1)[-1]
        nodes.append({"id": f"m:{name}", "label": label, "kind": "module", "parent": parent, "numel": int(numel),
                      "type": type(module).__name__})
        for head in heads_of.get(name, []):
            count = resolve_selection(model, head).num_selected
            nodes.append({"id": f"h:{name}:{head.head}", "label": f"head {head.head}", "kind": "head",
                          "parent": f"m:{name}", "numel": int(count)})
        for pname, param in module.named_parameters(recurse=False):
            full = f"{name}.{pname}" if name else pname
            nodes.append({"id": f"p:{full}", "label": pname, "kind": "param", "parent": f"m:{name}",
                          "numel": int(param.numel()), "shape": list(param.shape)})
    return nodes


def _ancestors(nodes_by_id: dict[str, dict], node_id: str) -> list[str]:
    out, parent = [], nodes_by_id[node_id]["parent"]
    while parent is not None:
        out.append(parent)
        parent = nodes_by_id[parent]["parent"]
    return out


def spec_of(nodes: list[dict[str, Any]], items: list[str]) -> Any:
    """A ``params=`` specification for tree node ids: names, module names and ``HeadSelection`` s.

    Nodes inside a chosen module are dropped (the module covers them); the whole model is None.
    """
    from devinterp_viz.engine.selection import HeadSelection

    by_id = {n["id"]: n for n in nodes}
    chosen = set(items)
    order = [n["id"] for n in nodes if n["id"] in chosen and not chosen.intersection(_ancestors(by_id, n["id"]))]
    if "m:" in order:
        return None
    spec: list[Any] = []
    for node_id in order:
        kind, _, rest = node_id.partition(":")
        if kind == "h":
            module, _, head = rest.rpartition(":")
            spec.append(HeadSelection(module, int(head)))
        else:
            spec.append(rest)
    return spec[0] if len(spec) == 1 else spec


def items_of(nodes: list[dict[str, Any]], spec: Any) -> list[str]:
    """Tree node ids for a ``params=`` specification (names, module names, globs, heads, lists)."""
    from devinterp_viz.engine.selection import HeadSelection

    if spec is None:
        return ["m:"]
    if isinstance(spec, HeadSelection):
        node_id = f"h:{spec.module}:{spec.head}"
        if node_id not in {n["id"] for n in nodes}:
            raise ValueError(f"{spec!r} is not a head of this model")
        return [node_id]
    if isinstance(spec, str):
        ids = {n["id"] for n in nodes}
        for prefix in ("p:", "m:"):
            if prefix + spec in ids:
                return [prefix + spec]
        matches = [n["id"] for n in nodes if n["kind"] == "param" and fnmatch.fnmatchcase(n["id"][2:], spec)]
        if not matches:
            raise ValueError(f"{spec!r} matches no parameter or module of the model")
        return matches
    if isinstance(spec, (list, tuple)):
        return [i for item in spec for i in items_of(nodes, item)]
    raise TypeError(f"cannot show {type(spec).__name__} in the parameter tree; use names, globs or HeadSelection")


def head_label(node_id: str) -> str:
    module, _, head = node_id[2:].rpartition(":")
    return f"{module}.head{head}" if module else f"head{head}"


def describe_items(nodes: list[dict[str, Any]], items: list[str]) -> str:
    """A short name for a selection: its nodes' names, joined (the whole model: "all")."""
    spec = spec_of(nodes, items)
    if spec is None:
        return "all"
    names = [head_label(i) if i.startswith("h:") else i[2:] for i in items]
    by_id = {n["id"]: n for n in nodes}
    top = [n for i, n in zip(items, names) if not set(items).intersection(_ancestors(by_id, i))]
    return " + ".join(top[:3]) + (f" + {len(top) - 3} more" if len(top) > 3 else "")
