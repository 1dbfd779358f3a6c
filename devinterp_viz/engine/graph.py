"""Traced value-and-grad graphs of the vmapped loss, reused across runs on models of one architecture."""

from __future__ import annotations

import sys
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

# A traced graph runs the same aten ops as eager vmap + autograd without their per-op batching
# rules, autograd bookkeeping and (run as TorchScript) Python between ops: measured 50% faster
# per step on bench/llc_speed.py's MLP, 70% on its deep linear network and 13% on the zoo
# transformer (torch 2.13, 1 CPU thread; bench/llc_breakdown.py). Tracing costs about
# GRAPH_TRACE_STEPS eager steps, plus GRAPH_IMPORT_SECONDS the first time in a process (make_fx
# imports torch._inductor). "auto" traces once the time a model's architecture has spent in eager
# steps plus what the run in progress still has to do, times a conservative GRAPH_SAVING, pays
# for that: one short run stays eager, a sweep or a long run gets the graph.
GRAPH_SAVING = 0.3
GRAPH_TRACE_STEPS = 80
GRAPH_IMPORT_SECONDS = 1.5
GRAPH_CACHE_SIZE = 16  # architectures kept per process, least recently used dropped

Eager = Callable[[], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class _Entry:
    """What the process knows about one architecture + loss + batch layout."""

    eager_seconds: float = 0.0
    eager_steps: int = 0
    graph: Callable | None = None
    refused: str | None = None  # why this layout runs eagerly for good
    lock: threading.Lock = field(default_factory=threading.Lock)


_MISSING = object()
_CACHE: OrderedDict[tuple, _Entry] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def clear_graph_cache() -> None:
    """Forget every traced graph and eager timing (tests; or after editing a model's code in place)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _entry(key: tuple) -> _Entry:
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            entry = _CACHE[key] = _Entry()
            while len(_CACHE) > GRAPH_CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)
        return entry


def _simple(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    return isinstance(value, tuple) and all(_simple(v) for v in value)


def _module_signature(module: nn.Module) -> tuple:
    """Class, mode, plain settings and hooks of one module: what can change its forward code path."""
    settings = []
    for name, value in vars(module).items():
        if name in ("_parameters", "_buffers", "_modules") or name.startswith("_state_dict"):
            continue
        if isinstance(value, dict) and name.endswith("hooks"):
            settings.append((name, tuple(id(hook) for hook in value.values())))
        elif _simple(value):
            settings.append((name, value))
        elif isinstance(value, torch.Tensor):
            settings.append((name, tuple(value.shape), value.dtype, value.device))
        elif callable(value):
            settings.append((name, id(value)))
        else:
            settings.append((name, type(value)))
    return (type(module), tuple(settings))


def architecture_key(model: nn.Module, loss_fn: Callable) -> tuple | None:
    """What a traced graph of ``loss_fn(model, batch)`` depends on besides its tensor inputs.

    Two models of the same class tree, settings and tensor shapes (e.g. a sweep's deep copies
    of one model at different checkpoints) share a key; None when ``loss_fn`` cannot be
    weakly referenced (its identity could then not be checked, so nothing is cached).
    """
    try:
        loss_ref = weakref.ref(loss_fn)
    except TypeError:
        return None
    modules = tuple((name, _module_signature(m)) for name, m in model.named_modules(remove_duplicate=False))
    tensors = tuple(
        (name, tuple(t.shape), t.dtype, t.device)
        for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    )
    hooks = tuple(
        id(h) for table in (nn.modules.module._global_forward_hooks, nn.modules.module._global_forward_pre_hooks)
        for h in table.values()
    )
    return (id(loss_fn), loss_ref, modules, tensors, hooks)


class GraphRunner:
    """Evaluate losses and gradients of stacked chains through a traced graph when it pays.

    One runner serves one sampling run. Each batch layout (tree structure, shapes, dtypes, shared
    or per-chain) has a process-wide entry under the architecture's key; a graph traced in one
    run is reused by later runs (new weights are graph inputs, not constants). The first step of
    every run that uses a graph is also evaluated eagerly and compared, so a graph that does not
    reproduce eager results is dropped, never used.

    Parameters
    ----------
    flat_loss : FlatLoss
    mode : True, False or "auto"
        Trace after the first (eager) step (True), never (False), or once it pays (see GRAPH_SAVING).
    planned_steps : int
        Evaluations the run will ask for (what tracing now would speed up).
    """

    def __init__(self, flat_loss, mode: bool | str, planned_steps: int = 0):
        self.flat_loss = flat_loss
        self.mode = mode
        self.planned_steps = planned_steps
        self.status = "eager"
        self._key = architecture_key(flat_loss.model, flat_loss.loss_fn) if mode is not False else None
        self._verified: set[int] = set()
        self._eager_steps = 0
        self._entries: dict[tuple, _Entry | None] = {}  # this run's layouts: no global lookup per step

    def __call__(self, flats: torch.Tensor, batch: Any, shared: bool, eager: Eager) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses (chains,) and gradients (chains, n); ``eager()`` computes the same without a graph."""
        if self.mode is False:
            return eager()
        if self.flat_loss.randomness != "error":  # known after the first eager step
            self.status = "eager (the model draws random numbers)"
            return eager()
        leaves, spec = tree_flatten(batch)
        local = (spec, shared, flats.shape, tuple((getattr(x, "shape", None), getattr(x, "dtype", None)) for x in leaves))
        entry = self._entries.get(local, _MISSING)
        if entry is _MISSING:
            entry = self._entries[local] = self._layout_entry(flats, leaves, spec, shared)
        if entry is None:
            return eager()
        graph = entry.graph  # read once: another run may drop it meanwhile
        if graph is None and entry.refused is None:
            if not self._should_trace(entry):
                start = time.perf_counter()
                out = eager()
                entry.eager_seconds += time.perf_counter() - start
                entry.eager_steps += 1
                self._eager_steps += 1
                return out
            with entry.lock:
                if entry.graph is None and entry.refused is None:
                    self._trace(entry, flats, leaves, spec, shared)
            graph = entry.graph
        if graph is None:
            self.status = f"eager (graph {entry.refused})"
            return eager()
        if id(entry) not in self._verified:
            return self._verify(entry, graph, flats, leaves, eager)
        return graph(flats, *self.flat_loss.frozen_tensors, *leaves)

    def _layout_entry(self, flats, leaves, spec, shared) -> _Entry | None:
        if self._key is None:
            self.status = "eager (loss_fn cannot be weakly referenced, so no graph is kept for it)"
            return None
        if not all(isinstance(leaf, torch.Tensor) for leaf in leaves):
            return None
        layout = (
            spec, shared, tuple(flats.shape), flats.dtype, flats.device,
            tuple((tuple(x.shape), x.dtype, x.device) for x in leaves),
            tuple(self.flat_loss.names),
        )
        return _entry((self._key, layout))

    def _should_trace(self, entry: _Entry) -> bool:
        if self.mode is True:  # after one eager step, which shows whether the model draws random numbers
            return self._eager_steps >= 1
        if entry.eager_steps < 2:
            return False
        step_seconds = entry.eager_seconds / entry.eager_steps
        cost = GRAPH_TRACE_STEPS * step_seconds
        if "torch._inductor.config" not in sys.modules:
            cost += GRAPH_IMPORT_SECONDS
        remaining = max(0, self.planned_steps - self._eager_steps) * step_seconds
        return GRAPH_SAVING * (entry.eager_seconds + remaining) >= cost

    def _trace(self, entry: _Entry, flats, leaves, spec, shared) -> None:
        from torch.fx.experimental.proxy_tensor import make_fx

        fn = _value_and_grad_on_inputs(self.flat_loss, spec, shared)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # fake tensors: data-dependent Python control flow raises instead of being baked in
                inputs = (flats, *self.flat_loss.frozen_tensors, *leaves)
                traced = make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*inputs)
        except Exception as err:  # any model make_fx cannot trace runs eagerly, as before
            entry.refused = f"cannot be traced ({type(err).__name__})"
            return
        entry.graph = _without_python_between_ops(traced, inputs)

    def _verify(self, entry: _Entry, graph: Callable, flats, leaves, eager: Eager):
        expected = eager()
        try:
            got = graph(flats, *self.flat_loss.frozen_tensors, *leaves)
            for a, b in zip(got, expected):
                torch.testing.assert_close(a, b)
        except Exception as err:
            entry.graph, entry.refused = None, f"differs from eager ({type(err).__name__})"
            self.status = f"eager (graph {entry.refused})"
            return expected
        self._verified.add(id(entry))
        self.status = "graph"
        return expected


def _without_python_between_ops(graph: Callable, inputs: tuple) -> Callable:
    """The fx graph as TorchScript, whose interpreter runs the ops back to back in C++.

    Calling an fx graph's ops one by one from Python costs a few microseconds each, which is
    a third of a small model's step. torch.jit is deprecated in favour of torch.compile, but
    compiling with inductor takes seconds per architecture, more than the short runs here save;
    TorchScript takes milliseconds. Where torch.jit fails or is gone, the fx graph runs as is.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice: users cannot act on it
            return _Unoptimized(torch.jit.trace(graph, inputs, check_trace=False))
    except Exception:
        return graph


class _Unoptimized:
    """A TorchScript function run without the JIT executor's own optimisations.

    The profiling executor would re-optimise it after a few calls (fusing elementwise ops on
    a GPU), so later steps could run other code than the step checked against eager
    evaluation; unoptimised, every step runs the traced ops, at the same speed on a CPU
    (measured on bench/llc_speed.py's models).
    """

    def __init__(self, script: Callable):
        self.script = script

    def __call__(self, *inputs):
        with torch.jit.optimized_execution(False):
            return self.script(*inputs)


def _value_and_grad_on_inputs(flat_loss, spec, shared: bool) -> Callable:
    """``(flats, *frozen, *leaves) -> (losses, grads)``: every tensor the graph reads is an input."""
    num_frozen = len(flat_loss.frozen_tensors)

    def value_and_grad(flats, *rest):
        return flat_loss.chunk_value_and_grad(flats, rest[num_frozen:], spec, shared, frozen=list(rest[:num_frozen]),
                                              per_tensor_grads=False)

    return value_and_grad
