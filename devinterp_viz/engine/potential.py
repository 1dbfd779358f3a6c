"""The user's loss as a pure function of a flat vector of the selected weights, for torch.func."""

from __future__ import annotations

import copy
import threading
import warnings
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from devinterp_viz.engine.selection import Selection

Slot = tuple[dict, str]  # a module's ``_parameters`` or ``_buffers`` dict and a key in it
MODEL_MODES = ("eval", "as_is")


def private_copy(model: nn.Module, model_mode: str = "eval") -> nn.Module:
    """The model's own module objects, copied, sharing its parameter tensors; the model is untouched.

    ``copy.deepcopy`` with the parameters (and the hooks, and non-leaf tensor attributes such as
    the weight ``torch.nn.utils.weight_norm`` recomputes) pre-entered in its memo: the copy's
    modules and their ``_parameters`` / ``_buffers`` dicts are its own, its buffers are clones
    (a BatchNorm in train mode updates them in place), its parameters are the model's tensors
    (no memory is doubled), tied weights stay tied and hooks are the same functions.

    Parameters
    ----------
    model : nn.Module
    model_mode : {"eval", "as_is"}
        "eval" puts every module of the copy in eval mode (no dropout, BatchNorm uses its running
        statistics); "as_is" keeps each module's own ``training`` flag.

    Raises
    ------
    TypeError
        When the model cannot be deep-copied (an attribute that refuses it), naming the cause.
    """
    memo: dict[int, object] = {id(p): p for p in model.parameters()}
    own = {id(module) for module in model.modules()}
    for module in model.modules():
        for name, value in vars(module).items():
            if isinstance(value, dict) and name.endswith("hooks"):  # a module's own method is re-bound to its copy
                memo.update((id(hook), hook) for hook in value.values()
                            if callable(hook) and id(getattr(hook, "__self__", None)) not in own)
            elif isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value
    try:
        copied = copy.deepcopy(model, memo)
    except Exception as err:
        raise TypeError(
            f"{type(model).__name__} cannot be deep-copied ({type(err).__name__}: {err}). The engine samples a "
            "private copy of the model's modules (sharing its weights) so that the model itself is never "
            "touched; give the offending attribute a __deepcopy__, or keep it outside the module."
        ) from err
    if model_mode == "eval":
        copied.eval()
    return copied


_FUSED_ATTENTION = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerEncoder)
_fast_path_lock = threading.Lock()
_fast_path_users = [0, True]  # evaluations in progress, and the setting they found


@contextmanager
def _fused_attention_off() -> Iterator[None]:
    """torch's fused attention kernel (the eval-mode "fast path" of MultiheadAttention and
    TransformerEncoder) off while a loss is evaluated, back as it was when the last one ends.

    The kernel has no derivative, and under vmap the check that would skip it when weights
    require grad cannot see that they do; the unfused path computes the same attention.
    """
    with _fast_path_lock:
        if _fast_path_users[0] == 0:
            _fast_path_users[1] = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
        _fast_path_users[0] += 1
    try:
        yield
    finally:
        with _fast_path_lock:
            _fast_path_users[0] -= 1
            if _fast_path_users[0] == 0:
                torch.backends.mha.set_fastpath_enabled(_fast_path_users[1])


def _slots(model: nn.Module) -> dict[str, list[Slot]]:
    """Every place each parameter and buffer lives, by its canonical name (tied weights: several).

    Found once per run; swapping tensors through these dicts is what
    ``torch.func.functional_call`` does on every call after re-walking the module tree and
    untying weights, work that costs more than a small model's forward pass.
    """
    canonical: dict[int, str] = {}
    slots: dict[str, list[Slot]] = {}
    for kind in ("parameters", "buffers"):
        named = getattr(model, f"named_{kind}")(remove_duplicate=False)
        for name, tensor in named:
            if tensor is None:
                continue
            owner_name, _, key = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            home = canonical.setdefault(id(tensor), name)
            slots.setdefault(home, []).append((getattr(owner, f"_{kind}"), key))
    return slots


def _move_grad(target: torch.Tensor, written: list[bool], index: int, piece: torch.Tensor) -> None:
    """Copy a weight tensor's finished gradient into its slice of the flat gradient, free it and
    mark slice ``index`` as ``written``."""
    target.copy_(piece.grad)
    piece.grad = None
    written[index] = True


def the_loss(value: Any) -> Any:
    """The loss in what a ``loss_fn`` returned: the value itself, the first of devinterp's
    ``evaluate``-style ``(loss, outputs)``, or a Hugging Face output's ``.loss``."""
    if isinstance(value, (tuple, list)) and value:
        return value[0]
    loss = getattr(value, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and not isinstance(value, torch.Tensor) else value


class FlatLoss:
    """``L(w)`` for a flat vector ``w`` of the selected weights; everything else fixed at w*.

    The user's model is never touched, not even for the length of a call (another thread may be
    using it): evaluations run on :func:`private_copy` of it, whose parameter and buffer slots
    (every alias of a tied weight) an evaluation fills with its own tensors, as
    ``torch.func.functional_call`` does, and puts back after. Frozen parameters are detached
    views of the model's on ``device``; buffers are the copy's clones.

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor``, the mean loss on the batch.
    selection : Selection
        Which weights move; partly selected tensors move entirely in the flat vector but
        their frozen entries get a zero mask (see :attr:`mask`).
    device : torch.device
    model_mode : {"eval", "as_is"}
        The mode of the copy evaluated (see :func:`private_copy`).

    Attributes
    ----------
    model : nn.Module
        The private copy that evaluations run on.
    w_star : torch.Tensor, shape (n,)
        The selected tensors at w*, flattened and concatenated.
    mask : torch.Tensor or None, shape (n,)
        1.0 where a coordinate moves, 0.0 where it is frozen; None when all move.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, selection: Selection, device: torch.device,
                 model_mode: str = "eval"):
        self.model, self.loss_fn, self.model_mode = private_copy(model, model_mode), loss_fn, model_mode
        named = dict(self.model.named_parameters())
        dtypes = {named[n].dtype for n in selection.names}
        if len(dtypes) != 1:
            raise ValueError(
                f"the selected parameters have mixed dtypes {sorted(map(str, dtypes))}; select "
                "parameters of one dtype (or cast the model) to sample them together."
            )
        self.dtype = dtypes.pop()
        self.names = list(selection.names)
        self.shapes = [named[n].shape for n in self.names]
        self.sizes = [named[n].numel() for n in self.names]
        with torch.no_grad():
            self.w_star = torch.cat([named[n].detach().reshape(-1) for n in self.names]).to(device, self.dtype)
            frozen = {n: p.detach().to(device) for n, p in named.items() if n not in selection.names}
            frozen.update({n: b.detach().to(device) for n, b in self.model.named_buffers()})  # the copy's clones
            if selection.masks:
                parts = [
                    selection.masks[n].reshape(-1).to(device, self.dtype)
                    if n in selection.masks
                    else torch.ones(size, device=device, dtype=self.dtype)
                    for n, size in zip(self.names, self.sizes)
                ]
                self.mask = torch.cat(parts)
            else:
                self.mask = None
        self.num_moving = int(self.w_star.numel() if self.mask is None else self.mask.sum(dtype=torch.float64).item())
        slots = _slots(self.model)
        self._fused_attention = any(isinstance(m, _FUSED_ATTENTION) for m in self.model.modules())
        self._selected_slots = [slots[n] for n in self.names]
        self.frozen_tensors = list(frozen.values())
        self._frozen_slots = [slots[n] for n in frozen]
        self._vmapped: dict[tuple, Callable] = {}
        # vmap's "different" randomness mode doubles its per-call cost, so it is used only once
        # the model turns out to draw random numbers (dropout in train mode)
        self.randomness = "error"

    def flat_mask(self, selection: Selection) -> torch.Tensor:
        """1.0 where ``selection`` (a subset of this loss's selection) moves, in the flat layout; shape (n,)."""
        parts = []
        for name, size in zip(self.names, self.sizes):
            if name not in selection.names:
                parts.append(torch.zeros(size, device=self.w_star.device, dtype=self.dtype))
            elif name in selection.masks:
                parts.append(selection.masks[name].reshape(-1).to(self.w_star.device, self.dtype))
            else:
                parts.append(torch.ones(size, device=self.w_star.device, dtype=self.dtype))
        return torch.cat(parts)

    def __call__(self, flat: torch.Tensor, batch: Any, frozen: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Loss at one flat weight vector (n,) on one batch; ``frozen`` replaces :attr:`frozen_tensors`."""
        return the_loss(self.evaluate(self.loss_fn, flat, batch, frozen))

    def evaluate(self, fn: Callable, flat: torch.Tensor | list[torch.Tensor], batch: Any,
                 frozen: list[torch.Tensor] | None = None) -> Any:
        """``fn(model, batch)`` with the model's selected weights at ``flat`` (n,), whatever ``fn`` returns.

        ``flat`` may also be given as its per-tensor pieces (``flat.split(self.sizes)``).
        """
        tensors = self.frozen_tensors if frozen is None else frozen
        swaps = [(slot, tensor) for slots, tensor in zip(self._frozen_slots, tensors) for slot in slots]
        pieces = flat if isinstance(flat, (list, tuple)) else flat.split(self.sizes)
        for slots, piece, shape in zip(self._selected_slots, pieces, self.shapes):
            swaps.extend((slot, piece.view(shape)) for slot in slots)
        originals = [(table, key, table[key]) for (table, key), _ in swaps]
        try:
            for (table, key), tensor in swaps:
                table[key] = tensor
            with _fused_attention_off() if self._fused_attention else nullcontext():
                return fn(self.model, batch)
        finally:
            for table, key, tensor in originals:
                table[key] = tensor

    def _vmapped_on_leaves(self, spec, shared_batch: bool) -> Callable:
        """``vmap`` of the loss over (flat, frozen, *batch leaves), built once per batch structure ``spec``."""
        key = (spec, shared_batch, self.randomness)
        if key not in self._vmapped:

            def on_leaves(flat, frozen, *leaves):
                return self(flat, tree_unflatten(list(leaves), spec), frozen)

            in_dims = (0, None) + (None if shared_batch else 0,) * spec.num_leaves
            self._vmapped[key] = vmap(on_leaves, in_dims=in_dims, randomness=self.randomness)
        return self._vmapped[key]

    def value_and_grad(self, flat: torch.Tensor, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and gradient at one flat vector: shapes () and (n,)."""
        flat = flat.detach().requires_grad_()
        with torch.enable_grad():
            value = self(flat, batch)
            (grad,) = torch.autograd.grad(value, flat)
        return value.detach(), grad

    def batched_value_and_grad(
        self, flats: torch.Tensor, batch: Any, *, shared_batch: bool, chunk_size: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses (chains,) and gradients (chains, n) of stacked vectors, chains vmapped.

        The forward pass of all chains (or of ``chunk_size`` chains at a time) is one
        ``torch.func.vmap`` call; one reverse-mode pass then gives every chain's gradient, as
        the chains' losses are independent. Each weight tensor's gradient is moved into the flat
        gradient as soon as it is complete, so the per-tensor gradients and the flat one never
        all coexist (a weight-sized tensor per chain less at the peak). (vmap over the forward plus plain autograd is
        measurably cheaper on small models than vmapping ``torch.func.grad``.)
        """
        leaves, spec = tree_flatten(batch)
        size = flats.shape[0] if not chunk_size else chunk_size
        values, grads = [], []
        for start in range(0, flats.shape[0], size):
            chunk_leaves = leaves if shared_batch or size == flats.shape[0] else [x[start : start + size] for x in leaves]
            try:
                value, grad = self.chunk_value_and_grad(flats[start : start + size], chunk_leaves, spec, shared_batch)
            except RuntimeError as err:
                if self.randomness != "error" or "randomness" not in str(err):
                    raise
                self.randomness = "different"  # each chain draws its own random numbers
                return self.batched_value_and_grad(flats, batch, shared_batch=shared_batch, chunk_size=chunk_size)
            values.append(value)
            grads.append(grad)
        if len(values) == 1:
            return values[0], grads[0]
        return torch.cat(values), torch.cat(grads)

    def chunk_value_and_grad(
        self, flats: torch.Tensor, leaves, spec, shared_batch: bool, frozen: list[torch.Tensor] | None = None,
        per_tensor_grads: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses (chains,) and gradients (chains, n) of stacked vectors on flat batch ``leaves``.

        ``frozen`` replaces :attr:`frozen_tensors` (a traced graph takes them as inputs).
        ``per_tensor_grads`` moves each tensor's gradient into the flat one as soon as it is done
        (a hook per tensor: less memory); a traced graph, which cannot record hooks, takes the
        gradient of the flat vector instead.
        """
        fn = self._vmapped_on_leaves(spec, shared_batch)
        frozen = self.frozen_tensors if frozen is None else frozen
        with torch.enable_grad(), warnings.catch_warnings():
            # torch falls back to a loop for fused CPU attention under vmap and says so every
            # step; the result is right, and users cannot act on the message
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented the batching rule")
            if not per_tensor_grads:
                flats = flats.detach().requires_grad_()
                value = fn(flats, frozen, *leaves)
                (grad,) = torch.autograd.grad(value.sum(), flats)
                return value.detach(), grad
            # Not zeroed: a large allocation's pages become resident only as each tensor's gradient
            # is written into its slice, so while the first (output-side) gradients arrive, at the
            # height of the activations, the rest of the flat gradient takes no memory.
            grad = torch.empty_like(flats)
            targets = grad.split(self.sizes, dim=1)
            written = [False] * len(targets)
            pieces = [piece.detach().requires_grad_() for piece in flats.split(self.sizes, dim=1)]
            for index, (piece, target) in enumerate(zip(pieces, targets)):
                piece.register_post_accumulate_grad_hook(partial(_move_grad, target, written, index))
            value = fn(pieces, frozen, *leaves)
            torch.autograd.backward(value.sum(), inputs=pieces)
        for target, done in zip(targets, written):
            if not done:  # a tensor the loss does not use has a zero gradient
                target.zero_()
        return value.detach(), grad
