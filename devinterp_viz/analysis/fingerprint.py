"""Fingerprints of what a stored LLC estimate depends on: code with what it reads, data, the template model."""

from __future__ import annotations

import builtins
import dataclasses
import enum
import functools
import hashlib
import logging
import pickle
import sys
import threading
import types
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, TensorDataset
from torch.utils.data._utils.collate import default_collate

#: Hops followed from code into the code it reads (a function's globals, a class's methods).
MAX_DEPTH = 8
#: Elements of a tensor hashed per chunk (bounds the host copy of a GPU tensor).
TENSOR_CHUNK = 1 << 24
#: Items of a map-style Dataset read and stacked at a time.
DATASET_CHUNK = 1024
_LIBRARY_MARKERS = ("site-packages", "dist-packages")
_SKIPPED_CLASS_ATTRIBUTES = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__",
                                       "__slots__", "__annotations__", "__orig_bases__", "__parameters__",
                                       "__firstlineno__", "__static_attributes__", "_is_protocol",
                                       # a dataclass's fields live on in the code of the methods it generates
                                       "__dataclass_fields__", "__dataclass_params__", "__match_args__",
                                       # copyreg's cache, set on a class the first time one of its objects is
                                       # copied or pickled (copy.deepcopy of a model whose config is a default)
                                       "__slotnames__"})
_PLAIN = (type(None), bool, int, float, complex, str, bytes)
#: Objects that cannot change what a loss computes, hashed by their type alone (a logger a loss
#: function writes to, a lock it holds).
_NO_CONTENT = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Event,
               threading.Semaphore, logging.Logger, logging.Handler, logging.LoggerAdapter)


class FingerprintWarning(UserWarning):
    """Something an estimate depends on has no stable content, so stored estimates are not reused."""


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """A digest and the parts that could not be fingerprinted.

    Attributes
    ----------
    digest : str
        32 hex digits of a SHA-256 over everything that could be read.
    opaque : tuple of str
        The parts with no readable content (``"loss_fn → global 'db' (sqlite3.Connection)"``);
        when not empty the digest cannot tell whether they changed.
    """

    digest: str
    opaque: tuple[str, ...] = ()


class _Hasher:
    """Feeds Python objects into one SHA-256, following code into what it reads.

    ``meta_only`` holds the ids of tensors whose values do not matter (a template model's
    weights, replaced by each checkpoint's); only their dtype, shape, device and
    ``requires_grad`` are hashed.
    """

    def __init__(self, meta_only: frozenset[int] = frozenset()):
        self.digest = hashlib.sha256()
        self.opaque: list[str] = []
        self.meta_only = meta_only
        self._seen: dict[int, int] = {}  # id -> order of first visit
        self._visits = 0
        self._alive: list[Any] = []  # keeps every object seen alive, so its id is never reused

    def result(self) -> Fingerprint:
        return Fingerprint(self.digest.hexdigest()[:32], tuple(dict.fromkeys(self.opaque)))

    # ------------------------------------------------------------------ primitives
    def tag(self, *parts: Any) -> None:
        """Hash a few plain values: their tuple's repr, length-prefixed so no two sequences collide."""
        data = repr(parts).encode()
        self.digest.update(len(data).to_bytes(8, "little"))
        self.digest.update(data)

    def mark_opaque(self, value: Any, path: str, why: str = "no readable content") -> None:
        self.opaque.append(f"{path} ({_type_name(value)}: {why})")
        self.tag("opaque", _type_name(value))

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Forget the objects first seen inside (a data set's items are made afresh on each access)."""
        alive = len(self._alive)
        try:
            yield
        finally:
            for value in self._alive[alive:]:
                del self._seen[id(value)]
            del self._alive[alive:]

    def _first_visit(self, value: Any) -> bool:
        if id(value) in self._seen:
            self.tag("ref", self._seen[id(value)])
            return False
        self._seen[id(value)] = self._visits
        self._visits += 1
        self._alive.append(value)
        return True

    # ------------------------------------------------------------------ dispatch
    def feed(self, value: Any, path: str, depth: int = 0) -> None:
        """Hash ``value`` (recursively); ``path`` names it in warnings."""
        if isinstance(value, _PLAIN):
            self.tag(type(value).__name__, value)
            return
        if isinstance(value, (torch.dtype, torch.device, torch.layout, torch.memory_format, np.dtype, enum.Enum,
                              range, slice, PurePath, type(Ellipsis))):
            self.tag(_type_name(value), str(value))
            return
        if isinstance(value, _NO_CONTENT):
            self.tag("no content", _type_name(value))
            return
        if isinstance(value, np.generic):
            self.tag(_type_name(value), value.item() if value.dtype.kind != "O" else repr(value))
            return
        if not self._first_visit(value):
            return
        for kind, handler in _HANDLERS:
            if isinstance(value, kind):
                handler(self, value, path, depth)
                return
        self._feed_object(value, path, depth)

    def _feed_object(self, value: Any, path: str, depth: int) -> None:
        """An instance of a class we know nothing about: its class, then its attributes or pickle."""
        self.tag("object")
        self.feed(type(value), f"{path}.__class__", depth)
        if hasattr(value, "__dict__") and not isinstance(value, type):
            state = vars(value)
            self.tag("attributes", len(state))
            for name, item in state.items():
                self.tag(name)
                self.feed(item, f"{path}.{name}", depth)
            if not _has_c_state(value):
                return
        try:
            payload = pickle.dumps(value, protocol=4)
        except Exception:  # noqa: BLE001 - anything pickle refuses has no content we can read
            self.mark_opaque(value, path)
            return
        self.tag("pickle", payload)


# ---------------------------------------------------------------------- handlers
def _feed_tensor(hasher: _Hasher, tensor: torch.Tensor, path: str, depth: int) -> None:
    hasher.tag("tensor", str(tensor.dtype), tuple(tensor.shape), tensor.device.type, str(tensor.layout),
               tensor.requires_grad)
    if id(tensor) in hasher.meta_only or tensor.device.type == "meta":
        return
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    if tensor.is_quantized:
        hasher.tag("quantized", repr(tensor.qscheme()))
        tensor = tensor.int_repr()
    flat = tensor.detach().reshape(-1)
    if flat.dtype.is_complex:
        flat = torch.view_as_real(flat).reshape(-1)
    if flat.numel() <= TENSOR_CHUNK:
        hasher.digest.update(flat.contiguous().view(torch.uint8).cpu().numpy())
        return
    for chunk in flat.split(TENSOR_CHUNK):
        hasher.digest.update(chunk.contiguous().view(torch.uint8).cpu().numpy())


def _feed_array(hasher: _Hasher, array: np.ndarray, path: str, depth: int) -> None:
    hasher.tag("ndarray", array.dtype.str, array.shape)
    if array.dtype.kind == "O":
        for index, item in enumerate(array.ravel()):
            hasher.feed(item, f"{path}[{index}]", depth)
        return
    hasher.digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))


def _feed_mapping(hasher: _Hasher, mapping: Mapping, path: str, depth: int) -> None:
    hasher.tag(_type_name(mapping), len(mapping))
    for key, item in mapping.items():
        hasher.feed(key, f"{path} key", depth)
        hasher.feed(item, f"{path}[{key!r}]", depth)


def _feed_sequence(hasher: _Hasher, sequence: list | tuple, path: str, depth: int) -> None:
    hasher.tag(_type_name(sequence), len(sequence))
    for index, item in enumerate(sequence):
        hasher.feed(item, f"{path}[{index}]", depth)


def _feed_set(hasher: _Hasher, items: set | frozenset, path: str, depth: int) -> None:
    """Sets iterate in an order that changes between processes: hash each item alone, sorted."""
    digests = []
    for item in items:
        inner = _Hasher(hasher.meta_only)
        inner.feed(item, f"{path} item", depth)
        hasher.opaque.extend(inner.opaque)
        digests.append(inner.digest.hexdigest())
    hasher.tag(_type_name(items), *sorted(digests))


def _feed_code(hasher: _Hasher, code: types.CodeType, path: str, depth: int) -> None:
    """Bytecode and constants, without file names or line numbers (a moved cell is the same code)."""
    hasher.tag("code", code.co_name, code.co_code, code.co_names, code.co_varnames, code.co_freevars,
               code.co_cellvars, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(hasher, const, path, depth)
        else:
            hasher.feed(const, f"{path} constant", depth)


def _feed_function(hasher: _Hasher, function: types.FunctionType, path: str, depth: int) -> None:
    """Library functions by name and version; the user's by code, defaults, closure and the globals read."""
    module = getattr(function, "__module__", None) or ""
    hasher.tag("function", function.__qualname__)
    if _is_library(module):  # the user's code is known by its content, wherever it was imported from
        hasher.tag(module, _library_version(module))
        return
    if depth >= MAX_DEPTH:
        hasher.mark_opaque(function, path, f"called more than {MAX_DEPTH} functions deep")
        return
    depth += 1
    code = function.__code__
    _feed_code(hasher, code, path, depth)
    hasher.feed(function.__defaults__, f"{path} defaults", depth)
    hasher.feed(function.__kwdefaults__, f"{path} keyword defaults", depth)
    for name, cell in zip(code.co_freevars, function.__closure__ or ()):
        try:
            contents = cell.cell_contents
        except ValueError:  # a cell not yet filled
            hasher.tag("empty cell", name)
            continue
        hasher.feed(contents, f"{path} → closure variable '{name}'", depth)
    names = _global_names(code)
    for name in sorted(names):
        if name in function.__globals__:
            _feed_global(hasher, function.__globals__[name], names, f"{path} → global '{name}'", depth)
        elif not hasattr(builtins, name):
            hasher.tag("unbound", name)  # an attribute name, or a global not defined yet


def _feed_global(hasher: _Hasher, value: Any, names: frozenset[str], path: str, depth: int) -> None:
    """A global a function reads; for one of the user's modules, the attributes the code names."""
    if isinstance(value, types.ModuleType) and not _is_library(value.__name__):
        hasher.tag("user module")
        for name in sorted(names):
            if name in vars(value):
                hasher.feed(vars(value)[name], f"{path}.{name}", depth)
        return
    hasher.feed(value, path, depth)


def _feed_module_object(hasher: _Hasher, module: types.ModuleType, path: str, depth: int) -> None:
    hasher.tag("module", module.__name__, _library_version(module.__name__))


def _feed_builtin(hasher: _Hasher, function: Any, path: str, depth: int) -> None:
    """A function written in C: its name; bound to an object (``obj.method``), that object too."""
    module = getattr(function, "__module__", None)
    hasher.tag("builtin", module, getattr(function, "__qualname__", repr(function)),
               _library_version(module) if isinstance(module, str) else None)
    owner = getattr(function, "__self__", None)
    if owner is not None and not isinstance(owner, (type, types.ModuleType)):
        hasher.feed(owner, f"{path}.__self__", depth)


def _feed_method(hasher: _Hasher, method: types.MethodType, path: str, depth: int) -> None:
    hasher.tag("method")
    hasher.feed(method.__func__, path, depth)
    hasher.feed(method.__self__, f"{path}.__self__", depth)


def _feed_partial(hasher: _Hasher, partial: functools.partial, path: str, depth: int) -> None:
    hasher.tag("partial")
    hasher.feed(partial.func, f"{path}.func", depth)
    hasher.feed(partial.args, f"{path}.args", depth)
    hasher.feed(partial.keywords, f"{path}.keywords", depth)


def _feed_class(hasher: _Hasher, cls: type, path: str, depth: int) -> None:
    """A library class by name and version; the user's by the code and values of its own attributes."""
    hasher.tag("class", cls.__qualname__)
    if _is_library(cls.__module__):
        hasher.tag(cls.__module__, _library_version(cls.__module__))
        return
    if depth >= MAX_DEPTH:
        hasher.mark_opaque(cls, path, f"reached through more than {MAX_DEPTH} functions")
        return
    depth += 1
    for base in cls.__mro__[1:]:
        hasher.feed(base, f"{path} base {base.__qualname__}", depth)
    for name, member in vars(cls).items():
        if name in _SKIPPED_CLASS_ATTRIBUTES or name.startswith("_abc_") or _is_c_descriptor(member):
            continue
        hasher.tag(name)
        member = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
        if isinstance(member, property):
            member = (member.fget, member.fset, member.fdel)
        hasher.feed(member, f"{path}.{name}", depth)


def _feed_module(hasher: _Hasher, module: nn.Module, path: str, depth: int) -> None:
    """An nn.Module: its class, train/eval mode, parameters, buffers, hooks and plain attributes."""
    hasher.tag("nn.Module")
    hasher.feed(type(module), f"{path}.__class__", depth)
    for name, item in vars(module).items():
        hasher.tag(name)
        if name.startswith("_") and isinstance(item, dict):  # _parameters, _buffers, _modules, hooks
            hasher.tag(len(item))
            for key, value in item.items():
                if "hook" not in name:  # a hook's key is a process-wide counter, not content
                    hasher.feed(key, path, depth)
                hasher.feed(value, f"{path}.{key}" if "hook" not in name else f"{path}.{name}", depth)
        else:
            hasher.feed(item, f"{path}.{name}", depth)


def _feed_generator(hasher: _Hasher, generator: torch.Generator, path: str, depth: int) -> None:
    hasher.tag("torch.Generator", generator.device.type)
    _feed_tensor(hasher, generator.get_state(), path, depth)


def _feed_weakref(hasher: _Hasher, reference: weakref.ref, path: str, depth: int) -> None:
    hasher.tag("weakref")
    hasher.feed(reference(), path, depth)  # None once the referent is gone


def _feed_iterator(hasher: _Hasher, value: Any, path: str, depth: int) -> None:
    hasher.mark_opaque(value, path, "an iterator, consumed as it is read")


_HANDLERS: tuple[tuple[Any, Any], ...] = (
    (torch.Tensor, _feed_tensor),
    (np.ndarray, _feed_array),
    (nn.Module, _feed_module),
    (torch.Generator, _feed_generator),
    (Mapping, _feed_mapping),
    ((list, tuple), _feed_sequence),
    ((set, frozenset), _feed_set),
    (types.FunctionType, _feed_function),
    (types.MethodType, _feed_method),
    ((types.BuiltinFunctionType, types.BuiltinMethodType, types.WrapperDescriptorType,
      types.MethodWrapperType, types.MethodDescriptorType, types.ClassMethodDescriptorType), _feed_builtin),
    (functools.partial, _feed_partial),
    (weakref.ref, _feed_weakref),
    (types.CodeType, lambda h, code, path, depth: _feed_code(h, code, path, depth)),
    (types.ModuleType, _feed_module_object),
    (type, _feed_class),
    ((types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType), _feed_iterator),
    (IterableDataset, _feed_iterator),
)


# ---------------------------------------------------------------------- entry points
def value_fingerprint(value: Any, path: str = "value", meta_only: frozenset[int] = frozenset()) -> Fingerprint:
    """Fingerprint of any Python value: content for data, code and what it reads for functions.

    Parameters
    ----------
    value : object
    path : str
        How warnings name the value (``"loss_fn"``).
    meta_only : frozenset of int
        Ids of tensors hashed by dtype, shape and device only.

    Returns
    -------
    Fingerprint

    Notes
    -----
    A function (a ``loss_fn``, a ``collate_fn``, a hook) is hashed by its bytecode and constants,
    defaults, closure cells and every global its code (or code nested in it) names, following
    into the functions, classes and objects those hold, at most ``MAX_DEPTH`` references deep.
    Functions and classes of installed libraries (under site-packages, or the standard
    library) are hashed by qualified name and their package's version. Tensors and arrays are
    hashed by dtype, shape and every byte; other objects by their class and attributes, or by
    pickle; loggers and locks by their type alone. Whatever has no readable content (a
    generator, an open connection, a C object that pickle refuses) is listed in
    :attr:`Fingerprint.opaque`.
    """
    hasher = _Hasher(meta_only)
    _guarded(hasher, lambda: hasher.feed(value, path), value, path)
    return hasher.result()


def model_fingerprint(model: nn.Module, path: str = "model") -> Fingerprint:
    """Fingerprint of a template model whose weights each checkpoint replaces.

    Everything but the values of the state dict's entries: the class code of every user-defined
    submodule, each submodule's train/eval mode, hooks and plain attributes (``model.scale``
    read in ``forward``), non-persistent buffers' values, and the dtype, shape, device and
    ``requires_grad`` of every parameter and buffer (a ``.double()`` model differs).
    """
    replaced = frozenset(id(tensor) for tensor in model.state_dict(keep_vars=True).values())
    return value_fingerprint(model, path, meta_only=replaced)


def data_fingerprint(data: Any, path: str = "data") -> Fingerprint:
    """Fingerprint of a data set in any form the engine takes, reading all of its content.

    Tensors, arrays and trees of them: every byte. A ``TensorDataset``: its tensors. Another
    map-style ``Dataset``: its class and every item ``data[i]``. A ``DataLoader``: its dataset,
    batch size, ``drop_last``, whether it shuffles, its sampler and batch sampler (their class
    and state), ``collate_fn`` and ``worker_init_fn`` (their code). An ``IterableDataset`` has
    no content that can be read without consuming it: it is opaque.
    """
    hasher = _Hasher()
    _guarded(hasher, lambda: _feed_data(hasher, data, path), data, path)
    return hasher.result()


def _guarded(hasher: _Hasher, feed: Any, value: Any, path: str) -> None:
    """Run ``feed``; a structure nested deeper than Python can recurse is opaque, not an error."""
    try:
        feed()
    except RecursionError:
        hasher.mark_opaque(value, path, "nested too deeply to read")


def _feed_data(hasher: _Hasher, data: Any, path: str) -> None:
    if isinstance(data, DataLoader):
        hasher.tag("DataLoader", data.batch_size, data.drop_last, isinstance(data.sampler, RandomSampler))
        _feed_data(hasher, data.dataset, f"{path}.dataset")
        for name in ("sampler", "batch_sampler", "collate_fn", "worker_init_fn"):
            hasher.tag(name)
            hasher.feed(getattr(data, name), f"{path}.{name}")
        return
    if isinstance(data, TensorDataset):
        hasher.tag("TensorDataset")
        hasher.feed(tuple(data.tensors), path)
        return
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset) and hasattr(data, "__len__"):
        _feed_dataset_items(hasher, data, path)
        return
    hasher.feed(data, path)


def _feed_dataset_items(hasher: _Hasher, dataset: Dataset, path: str) -> None:
    """Every item, stacked ``DATASET_CHUNK`` at a time as the engine stacks them (``default_collate``);
    items that do not stack are hashed one by one."""
    size = len(dataset)  # type: ignore[arg-type]
    hasher.tag("Dataset", size)
    hasher.feed(type(dataset), f"{path}.__class__")
    hasher._first_visit(dataset)  # a sampler's data_source refers back to it
    for start in range(0, size, DATASET_CHUNK):
        items = [dataset[index] for index in range(start, min(start + DATASET_CHUNK, size))]
        with hasher.scope():
            try:
                stacked = default_collate(items)
            except Exception:  # noqa: BLE001 - items of varying shapes or types: one by one
                hasher.tag("items", start)
                hasher.feed(items, f"{path}[{start}:]")
            else:
                hasher.tag("stacked", start)
                hasher.feed(stacked, f"{path}[{start}:]")


def combine(*parts: Fingerprint, extra: Any = None) -> Fingerprint:
    """One fingerprint of several (and of a JSON-able ``extra``), their opaque parts together."""
    hasher = _Hasher()
    for part in parts:
        hasher.tag(part.digest)
    hasher.feed(extra, "extra")
    opaque = tuple(dict.fromkeys(item for part in parts for item in part.opaque))
    return Fingerprint(hasher.result().digest, opaque)


# ---------------------------------------------------------------------- helpers
def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def _global_names(code: types.CodeType) -> frozenset[str]:
    """Names a code object (and the code nested in it: lambdas, comprehensions) may read as globals."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def _is_library(module_name: str) -> bool:
    """Whether a module belongs to an installed package or the standard library (not the user's code)."""
    top = module_name.split(".")[0]
    if top == "__main__":
        return False
    if top in sys.builtin_module_names or top in getattr(sys, "stdlib_module_names", ()):
        return True
    module = sys.modules.get(top)
    files = [getattr(module, "__file__", None), *getattr(module, "__path__", ())]
    return any(marker in PurePath(file).parts for file in files if file for marker in _LIBRARY_MARKERS)


@functools.lru_cache(maxsize=None)
def _library_version(module_name: str) -> str:
    top = module_name.split(".")[0]
    version = getattr(sys.modules.get(top), "__version__", None)
    return str(version) if version is not None else sys.version.split()[0]


def _is_c_descriptor(member: Any) -> bool:
    return isinstance(member, (types.GetSetDescriptorType, types.MemberDescriptorType, types.WrapperDescriptorType,
                               types.MethodDescriptorType))


def _has_c_state(value: Any) -> bool:
    """Whether an object with a ``__dict__`` also keeps state in C (a subclass of a built-in type)."""
    for base in type(value).__mro__:
        if base is object:
            return False
        if not hasattr(base, "__dict__") or base.__flags__ & (1 << 9) == 0:  # Py_TPFLAGS_HEAPTYPE
            return True
    return False
