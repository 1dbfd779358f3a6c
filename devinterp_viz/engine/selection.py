"""Which weights move: parameter selections by name, glob, mask or attention head (refined LLC)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Callable, Protocol, Union

import torch
from torch import nn

# ----------------------------------------------------------------------------- heads


@dataclass(frozen=True)
class HeadSelection:
    """One attention head of one attention module, resolved to weight masks by an adapter.

    Parameters
    ----------
    module : str
        Qualified name of the attention module in the model (``model.get_submodule(module)``).
    head : int
        Head index, ``0 <= head < num_heads``.
    """

    module: str
    head: int

    @property
    def label(self) -> str:
        return f"{self.module}.head{self.head}" if self.module else f"head{self.head}"

    def __repr__(self) -> str:
        return f"HeadSelection({self.label})"


@dataclass(frozen=True)
class KVGroupSelection:
    """The key and value slices one group of heads shares (grouped-query attention), without their Q or O.

    Parameters
    ----------
    module : str
        Qualified name of the attention module.
    group : int
        K/V group index, ``0 <= group < num_kv_groups``; head ``h`` reads group
        ``h // (num_heads // num_kv_groups)``. Without grouping each head is its own group.
    """

    module: str
    group: int

    @property
    def label(self) -> str:
        return f"{self.module}.kv{self.group}" if self.module else f"kv{self.group}"

    def __repr__(self) -> str:
        return f"KVGroupSelection({self.label})"


class HeadAdapter(Protocol):
    """Tells the engine how an attention module's heads map onto its weights.

    An adapter answers two questions about a module of the type it is registered for: how
    many heads it has, and which entries of which of its own parameters belong to head ``h``
    (as boolean masks keyed by the parameter's name *local to the module*). A head's weights
    are its query, key, value and output slices; parameters shared by all heads (an output
    bias) belong to none.
    """

    def num_heads(self, module: nn.Module) -> int: ...

    def head_masks(self, module: nn.Module, head: int) -> dict[str, torch.Tensor]: ...

    # Optional, for K/V groups (see :func:`kv_groups`): ``num_kv_groups(module) -> int`` and
    # ``kv_masks(module, group) -> dict`` of the group's key and value slices.


class MultiheadAttentionAdapter:
    """Heads of :class:`torch.nn.MultiheadAttention` (packed or separate q/k/v projections)."""

    def num_heads(self, module: nn.MultiheadAttention) -> int:
        return module.num_heads

    def head_masks(self, module: nn.MultiheadAttention, head: int) -> dict[str, torch.Tensor]:
        embed, head_dim = module.embed_dim, module.head_dim
        rows = slice(head * head_dim, (head + 1) * head_dim)
        masks: dict[str, torch.Tensor] = {}
        if module.in_proj_weight is not None:  # packed [q; k; v] rows
            weight = torch.zeros_like(module.in_proj_weight, dtype=torch.bool)
            for block in range(3):
                weight[block * embed + rows.start : block * embed + rows.stop] = True
            masks["in_proj_weight"] = weight
        else:
            for proj in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                weight = torch.zeros_like(getattr(module, proj), dtype=torch.bool)
                weight[rows] = True
                masks[proj] = weight
        if module.in_proj_bias is not None:
            bias = torch.zeros_like(module.in_proj_bias, dtype=torch.bool)
            for block in range(3):
                bias[block * embed + rows.start : block * embed + rows.stop] = True
            masks["in_proj_bias"] = bias
        out = torch.zeros_like(module.out_proj.weight, dtype=torch.bool)
        out[:, rows] = True  # the output projection's input columns that read this head
        masks["out_proj.weight"] = out
        return masks


_HEAD_ADAPTERS: dict[type, HeadAdapter] = {nn.MultiheadAttention: MultiheadAttentionAdapter()}
#: Adapters that recognise a module by its layout: (predicate, adapter), tried in order after the types.
_LAYOUT_ADAPTERS: list[tuple[Callable[[nn.Module], bool], HeadAdapter]] = []


def register_head_adapter(module_type: type | Callable[[nn.Module], bool], adapter: HeadAdapter) -> None:
    """Teach the engine the heads of another attention module type (or layout).

    Parameters
    ----------
    module_type : type or callable
        The attention module class (e.g. a toy transformer's attention layer), or a predicate
        ``module -> bool`` recognising a layout (how :mod:`devinterp_viz.adapters.heads` finds
        Hugging Face and TransformerLens attention without importing them).
    adapter : HeadAdapter
        Object with ``num_heads(module)`` and ``head_masks(module, head)``.
    """
    if not (hasattr(adapter, "num_heads") and hasattr(adapter, "head_masks")):
        raise TypeError("a head adapter needs num_heads(module) and head_masks(module, head) methods")
    if isinstance(module_type, type):
        _HEAD_ADAPTERS[module_type] = adapter
    elif callable(module_type):
        _LAYOUT_ADAPTERS.append((module_type, adapter))
    else:
        raise TypeError(f"register_head_adapter needs a module class or a predicate, got a {type(module_type).__name__}")


def _adapter_for(module: nn.Module) -> HeadAdapter | None:
    for klass in type(module).__mro__:
        if klass in _HEAD_ADAPTERS:
            return _HEAD_ADAPTERS[klass]
    return next((adapter for matches, adapter in _LAYOUT_ADAPTERS if matches(module)), None)


def attention_heads(model: nn.Module) -> list[HeadSelection]:
    """Every attention head of ``model`` that a registered adapter knows, in module order.

    An attention module inside one already found (a wrapper's original module) is part of it.

    Raises
    ------
    ValueError
        When the model has no attention module any adapter knows.
    """
    heads, inside = [], None
    for name, module in model.named_modules():
        if inside is not None and name.startswith(inside):
            continue  # part of an attention module already found (a wrapper's original module)
        adapter = _adapter_for(module)
        if adapter is not None:
            heads += [HeadSelection(name, h) for h in range(adapter.num_heads(module))]
            inside = f"{name}." if name else ""
    if not heads:
        known = ", ".join([*sorted(t.__name__ for t in _HEAD_ADAPTERS), *(type(a).__name__ for _, a in _LAYOUT_ADAPTERS)])
        raise ValueError(
            f"{type(model).__name__} has no attention module with a registered head adapter "
            f"(known: {known}). Register one with dvz.register_head_adapter(ModuleType, adapter)."
        )
    return heads


def kv_groups(model: nn.Module) -> list[KVGroupSelection]:
    """Every K/V group of ``model``'s attention modules whose adapter knows them, in module order.

    With grouped-query attention (Llama, Mistral, Qwen) a head's selection moves its group's K/V
    slices, shared with the group's other heads; a ``KVGroupSelection`` moves those shared slices alone.

    Raises
    ------
    ValueError
        When no attention module of the model has an adapter that knows its K/V groups.
    """
    groups = []
    for head in attention_heads(model):
        if head.head == 0:
            module = model.get_submodule(head.module)
            adapter = _adapter_for(module)
            if hasattr(adapter, "kv_masks"):
                groups += [KVGroupSelection(head.module, g) for g in range(adapter.num_kv_groups(module))]
    if not groups:
        raise ValueError(
            f"no attention module of {type(model).__name__} has an adapter that knows its K/V groups (the "
            "separate-projection layouts of Llama/Mistral/Qwen, TransformerLens' bridge and HookedTransformer do); "
            "select the key and value weights by name instead."
        )
    return groups


def _head_param_masks(model: nn.Module, head: HeadSelection | KVGroupSelection) -> dict[str, torch.Tensor]:
    try:
        module = model.get_submodule(head.module)
    except AttributeError as err:
        raise ValueError(f"{head!r}: the model has no module named {head.module!r}") from err
    adapter = _adapter_for(module)
    if adapter is None:
        raise ValueError(
            f"{head!r}: module {head.module!r} is a {type(module).__name__}, which no head adapter "
            "knows; register one with dvz.register_head_adapter."
        )
    if isinstance(head, KVGroupSelection):
        if not hasattr(adapter, "kv_masks"):
            raise ValueError(f"{head!r}: the adapter of {head.module!r} ({type(adapter).__name__}) does not know K/V groups.")
        count, index, local_masks = adapter.num_kv_groups(module), head.group, adapter.kv_masks
    else:
        count, index, local_masks = adapter.num_heads(module), head.head, adapter.head_masks
    if not 0 <= index < count:
        kind = "K/V group" if isinstance(head, KVGroupSelection) else "head"
        raise ValueError(f"{head!r}: {kind} index {index} is out of range; {head.module!r} has {count} {kind}s "
                         f"(0..{count - 1}).")
    # the model's own name of each parameter (a wrapper such as TransformerLens' bridge may reach a
    # module by one path and name its parameters by another)
    names = {id(param): name for name, param in model.named_parameters()}
    return {names[id(module.get_parameter(local))]: mask for local, mask in local_masks(module, index).items()}


# ------------------------------------------------------------------------ resolution

ParamSpec = Union[None, str, HeadSelection, KVGroupSelection, Mapping[str, Union[bool, torch.Tensor]], Iterable]


@dataclass
class Selection:
    """A resolved parameter selection.

    Attributes
    ----------
    names : list of str
        Selected parameter names, in ``model.named_parameters()`` order.
    masks : dict
        ``name -> bool tensor`` for partly selected parameters; absent names move entirely.
    rows : list of (str, tuple, int, int)
        ``(name, shape, num_selected, numel)`` for every parameter of the model.
    """

    names: list[str]
    masks: dict[str, torch.Tensor]
    rows: list[tuple[str, tuple[int, ...], int, int]]

    @property
    def num_selected(self) -> int:
        return sum(row[2] for row in self.rows)

    @property
    def num_total(self) -> int:
        return sum(row[3] for row in self.rows)

    def __str__(self) -> str:
        width = max((len(r[0]) for r in self.rows), default=4)
        lines = [f"{'parameter':<{width}}  {'shape':<16} {'moving':>10} / total"]
        for name, shape, chosen, numel in self.rows:
            mark = "" if chosen else "  (frozen)"
            lines.append(f"{name:<{width}}  {str(tuple(shape)):<16} {chosen:>10} / {numel}{mark}")
        lines.append(f"{self.num_selected} of {self.num_total} parameters move")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Selection({len(self.names)} tensors, {self.num_selected} of {self.num_total} parameters move)"


def resolve_selection(model: nn.Module, params: ParamSpec = None) -> Selection:
    """Turn a ``params=`` specification into a :class:`Selection`.

    Parameters
    ----------
    model : nn.Module
    params : None, str, HeadSelection, dict or iterable of those
        ``None``: every parameter that requires grad. A string: a parameter name, a module
        name (all its parameters) or a glob (``"blocks.*.attn.*"``). A ``HeadSelection``:
        that head's weights; a ``KVGroupSelection``: a K/V group's shared slices. A dict ``{name: bool or bool mask}``. An iterable combines
        several specifications (their union).

    Raises
    ------
    ValueError
        When nothing is selected or a name matches nothing (with the closest names).
    """
    named = dict(model.named_parameters())
    if not named:
        raise ValueError(f"{type(model).__name__} has no parameters to sample.")
    chosen: dict[str, torch.Tensor | None] = {}  # None = whole tensor
    if params is None:
        chosen = {n: None for n, p in named.items() if p.requires_grad}
        if not chosen:
            raise ValueError(
                "params=None selects the parameters that require grad, and none does; pass "
                "params= explicitly (e.g. a list of names) to choose which weights move."
            )
    else:
        _refuse_tensors(model, params)
        for spec in _flatten_spec(params):
            for name, mask in _resolve_one(model, named, spec).items():
                chosen[name] = _union(chosen.get(name, False), mask) if name in chosen else mask
    masks: dict[str, torch.Tensor] = {}
    for name, mask in list(chosen.items()):
        if mask is None:
            continue
        if bool(mask.all()):
            chosen[name] = None
        elif not bool(mask.any()):
            del chosen[name]
        else:
            masks[name] = mask
    rows = []
    for name, param in named.items():
        count = 0
        if name in chosen:
            count = int(masks[name].sum()) if name in masks else param.numel()
        rows.append((name, tuple(param.shape), count, param.numel()))
    selection = Selection([n for n in named if n in chosen], masks, rows)
    if selection.num_selected == 0:
        raise ValueError("the selection moves no parameter: every mask given is all False.")
    not_float = [f"{n} ({named[n].dtype})" for n in selection.names if not named[n].is_floating_point()]
    if not_float:
        raise ValueError(
            f"params= selects parameters that are not floating-point: {', '.join(not_float[:5])}. Only real-valued "
            "weights can be sampled; leave these out of params= (or store them as buffers)."
        )
    return selection


def _refuse_tensors(model: nn.Module, params: ParamSpec) -> None:
    """A TypeError for tensors given as ``params=`` (``[model.fc.weight]``), naming the names to pass."""
    items = [params] if isinstance(params, torch.Tensor) else list(params) if isinstance(params, (list, tuple)) else []
    tensors = [item for item in items if isinstance(item, torch.Tensor)]
    if not tensors:
        return
    names = {id(p): n for n, p in model.named_parameters()}
    known = [names[id(t)] for t in tensors if id(t) in names]
    hint = f" Here: params={known!r}." if len(known) == len(tensors) else (
        " (Some of the tensors given are not parameters of this model.)")
    raise TypeError(
        "params= takes parameter names (or module names, globs, {name: mask} dicts, heads), not tensors: pass "
        f"the names from model.named_parameters().{hint}"
    )


def describe_selection(model: nn.Module, params: ParamSpec = None, *, print_table: bool = True) -> Selection:
    """Print (and return) which weights move and how many parameters that is."""
    selection = resolve_selection(model, params)
    if print_table:
        print(selection)
    return selection


def _flatten_spec(params: ParamSpec) -> list:
    if isinstance(params, (str, HeadSelection, KVGroupSelection, Mapping)):
        return [params]
    if isinstance(params, Iterable):
        items = list(params)
        if not items:
            raise ValueError("params is an empty list: name at least one parameter, module, glob or head.")
        out = []
        for item in items:
            out.extend(_flatten_spec(item))
        return out
    raise TypeError(
        f"params must be None, a name/glob string, a HeadSelection, a {{name: mask}} dict or a list "
        f"of those; got {type(params).__name__}."
    )


def _resolve_one(model: nn.Module, named: dict[str, nn.Parameter], spec) -> dict[str, torch.Tensor | None]:
    if isinstance(spec, (HeadSelection, KVGroupSelection)):
        return {n: m.to(named[n].device) for n, m in _head_param_masks(model, spec).items()}
    if isinstance(spec, Mapping):
        out = {}
        for name, mask in spec.items():
            if name not in named:
                raise ValueError(_no_match_message(name, named))
            out[name] = _as_mask(name, mask, named[name])
        return out
    if not isinstance(spec, str):
        raise TypeError(f"cannot select parameters with {spec!r} ({type(spec).__name__})")
    if spec in named:
        return {spec: None}
    prefix = spec.rstrip(".") + "."
    matches = [n for n in named if n.startswith(prefix) or fnmatch.fnmatchcase(n, spec)]
    if not matches:
        raise ValueError(_no_match_message(spec, named))
    return {n: None for n in matches}


def _as_mask(name: str, mask, param: torch.Tensor) -> torch.Tensor | None:
    if isinstance(mask, bool):
        return None if mask else torch.zeros_like(param, dtype=torch.bool)
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask for {name!r} must be a bool tensor, got dtype {mask.dtype}.")
    if tuple(mask.shape) != tuple(param.shape):
        raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, the parameter has shape {tuple(param.shape)}.")
    return mask.to(param.device)


def _union(current: torch.Tensor | None | bool, new: torch.Tensor | None) -> torch.Tensor | None:
    if current is None or new is None:
        return None
    return current | new


def _no_match_message(spec: str, named: dict) -> str:
    names = list(named)
    modules = sorted({n.rsplit(".", 1)[0] for n in names if "." in n})
    close = difflib.get_close_matches(spec, names + modules, n=5, cutoff=0.5)
    hint = f" Close names: {', '.join(close)}." if close else f" Parameters: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}."
    return f"params entry {spec!r} matches no parameter, module or glob of the model.{hint}"
