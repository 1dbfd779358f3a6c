"""Checks of an estimate's inputs before any sampling: settings, the model, loss_fn and its first value."""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

from devinterp_viz.engine.data import TensorBatches
from devinterp_viz.engine.potential import MODEL_MODES, FlatLoss

#: First and second argument names of a criterion(outputs, targets) (torch's losses, common spellings).
OUTPUT_NAMES = {"input", "inputs", "output", "outputs", "pred", "preds", "prediction", "predictions", "logits",
                "y_pred", "yhat", "y_hat", "scores"}
TARGET_NAMES = {"target", "targets", "y", "y_true", "label", "labels"}
WRAPPER = "loss_fn = lambda model, batch: criterion(model(batch[0]), batch[1])"
SUM_CHECK_ROWS = 256  # the reduction check compares the loss on at most this many rows with its two halves
SUM_TOLERANCE = 1e-3  # relative: a mean loss is the mean of its halves', a summed one their sum


def check_run_options(*, chain_chunk_size: Any, model_mode: Any, vectorize: Any, graph: Any) -> None:
    """Clear errors for run options of the wrong type or value (sampler settings check themselves)."""
    if chain_chunk_size is not None:
        if isinstance(chain_chunk_size, bool) or not isinstance(chain_chunk_size, numbers.Integral) or chain_chunk_size < 1:
            raise ValueError(
                f"chain_chunk_size must be None (all chains in one vmapped call) or a positive integer, got "
                f"{chain_chunk_size!r}."
            )
    if model_mode not in MODEL_MODES:
        raise ValueError(
            f"model_mode must be 'eval' or 'as_is', got {model_mode!r}: 'eval' (the default) samples with dropout "
            "off and BatchNorm on its running statistics, 'as_is' keeps each module's own train/eval mode."
        )
    for name, value in (("vectorize", vectorize), ("graph", graph)):
        if value not in (True, False, "auto"):
            raise ValueError(f"{name} must be True, False or 'auto', got {value!r}.")


def check_callbacks(**callbacks: Any) -> None:
    """A TypeError for a callback (on_draw, on_start, stop) that is neither None nor callable."""
    for name, value in callbacks.items():
        if value is not None and not callable(value) and not hasattr(value, "is_set"):
            raise TypeError(f"{name} must be a function (or None), got a {type(value).__name__}.")


def check_model(model: Any) -> None:
    """The model is an nn.Module whose weights exist (not on the meta device) and are finite."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got a {type(model).__name__}.")
    tensors = [*model.named_parameters(), *model.named_buffers()]
    on_meta = [name for name, tensor in tensors if tensor.is_meta]
    if on_meta:
        raise ValueError(
            f"the model's weights are on the meta device (they have shapes but no values: {on_meta[:3]}); load "
            "real weights first, e.g. model.to_empty(device='cpu') then model.load_state_dict(state), or load the "
            "model without device_map='meta' / low_cpu_mem_usage."
        )
    # parameters must be finite; buffers may hold ±inf on purpose (attention masks), never NaN
    parameters = {name for name, _ in model.named_parameters()}
    floating = [(name, tensor) for name, tensor in tensors if tensor.is_floating_point() and tensor.numel()]
    if not floating:
        return
    finite = torch.stack([
        (torch.isfinite(tensor) if name in parameters else ~torch.isnan(tensor)).all() for name, tensor in floating
    ]).cpu()
    bad = [name for (name, _), ok in zip(floating, finite.tolist()) if not ok]
    if bad:
        raise ValueError(
            f"the model's weights are not finite: {bad[:5]} hold NaN or inf values. The LLC is measured at a finite "
            "point w*: load weights from before training diverged (an earlier checkpoint)."
        )


def check_loss_fn(loss_fn: Any) -> None:
    """loss_fn is callable as loss_fn(model, batch): not a criterion(outputs, targets)."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function loss_fn(model, batch) -> scalar tensor, got a {type(loss_fn).__name__}.")
    if isinstance(loss_fn, nn.modules.loss._Loss):
        raise TypeError(
            f"loss_fn is a criterion ({type(loss_fn).__name__}(), called as criterion(outputs, targets)), but the "
            f"engine calls loss_fn(model, batch). Wrap it: {WRAPPER}"
        )
    names = _positional_names(loss_fn)
    if len(names) >= 2 and names[0] in OUTPUT_NAMES and names[1] in TARGET_NAMES:
        raise TypeError(
            f"loss_fn takes ({names[0]}, {names[1]}), like a criterion(outputs, targets), but the engine calls "
            f"loss_fn(model, batch). Wrap it: {WRAPPER}"
        )


def _positional_names(function: Callable) -> list[str]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name.lower() for p in signature.parameters.values() if p.kind in kinds]


def float_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter (what numpy data is converted to)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


def probe_loss(flat_loss: FlatLoss, source: Any, seed: int) -> None:
    """Evaluate ``loss_fn`` once at w* on the first evaluation batch, for clear errors before sampling.

    Raises when ``loss_fn`` is a criterion(outputs, targets) called with (model, batch), returns
    something other than a floating-point scalar that depends on the weights, computes with
    another model than the one it is given, or sums over the batch instead of averaging.
    """
    batch, _ = next(iter(source.init_loss_batches(seed)))
    flat = flat_loss.w_star.detach().requires_grad_()
    with torch.enable_grad():
        value = _first_call(flat_loss, flat, batch)
        check_loss_value(value)
        (grad,) = torch.autograd.grad(value, flat, allow_unused=True, retain_graph=True)
    if grad is None:
        _check_uses_given_model(flat_loss, value)
    if isinstance(source, TensorBatches):
        _check_mean_reduction(flat_loss, batch)


def _first_call(flat_loss: FlatLoss, flat: torch.Tensor, batch: Any) -> Any:
    """``flat_loss(flat, batch)``; a criterion(outputs, targets) given as loss_fn gets a clear TypeError.

    The call counts as a criterion's when it fails with a TypeError or AttributeError before any
    module of the model ran (a criterion never calls the model: it takes it for its outputs).
    """
    entered: list[bool] = []
    handles = [module.register_forward_pre_hook(lambda *_: entered.append(True)) for module in flat_loss.model.modules()]
    try:
        return flat_loss(flat, batch)
    except (TypeError, AttributeError) as err:
        if entered:
            raise
        raise TypeError(
            f"loss_fn(model, batch) failed ({type(err).__name__}: {err}) without calling the model. It looks like a "
            "criterion(outputs, targets), such as nn.MSELoss() or F.cross_entropy, but the engine calls "
            f"loss_fn(model, batch) with the model and one batch of data. Wrap it: {WRAPPER}"
        ) from err
    finally:
        for handle in handles:
            handle.remove()


def _check_uses_given_model(flat_loss: FlatLoss, value: torch.Tensor) -> None:
    """A clear error when the loss reaches the user's own parameters: loss_fn used a model from elsewhere."""
    users = [p for p in flat_loss.model.parameters() if p.requires_grad]
    if not users or not value.requires_grad:
        return
    reached = torch.autograd.grad(value, users, allow_unused=True)
    if any(g is not None for g in reached):
        raise ValueError(
            "loss_fn computes the loss with a model other than the one it is given (e.g. a model from the "
            "enclosing scope): the engine passes the model to evaluate as the first argument, so write "
            "loss_fn = lambda model, batch: ... model(batch[0]) ..., using that argument."
        )


def _check_mean_reduction(flat_loss: FlatLoss, batch: Any) -> None:
    """A clear error when the loss on a batch is the sum of its halves' losses (reduction='sum').

    A mean loss on rows [0, 2h) is exactly the mean of its values on [0, h) and [h, 2h); a summed
    one is their sum. Only run when no module of the evaluated copy is in train mode (dropout and
    batch statistics would break the identity).
    """
    if any(module.training for module in flat_loss.model.modules()):
        return
    leaves = tree_leaves(batch)
    rows = min(int(leaves[0].shape[0]), SUM_CHECK_ROWS) // 2 if leaves and leaves[0].dim() else 0
    if rows < 1:
        return
    spans = [(0, 2 * rows), (0, rows), (rows, 2 * rows)]
    with torch.no_grad():
        whole, first, second = (
            float(flat_loss(flat_loss.w_star, tree_map(lambda x, a=a, b=b: x[a:b], batch)))
            for a, b in spans
        )
    tolerance = SUM_TOLERANCE * abs(whole)
    summed = abs(whole - (first + second)) <= tolerance
    averaged = abs(whole - (first + second) / 2) <= tolerance
    if whole != 0 and summed and not averaged:
        raise ValueError(
            f"loss_fn returns a loss that grows with the batch size (on {2 * rows} examples it is {whole:.6g}, the sum "
            f"of its values on the two halves, {first:.6g} + {second:.6g}), as reduction='sum' does. The LLC needs the "
            "mean loss per example: use reduction='mean' (the default), or divide by the batch size."
        )


def check_loss_value(value: Any) -> None:
    """A clear error unless ``value`` is a floating-point scalar tensor that depends on the weights."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1 or value.dim() > 1:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            f"loss_fn must return a scalar tensor (the mean loss on the batch); it returned {shape}. "
            "Reduce it, e.g. with .mean()."
        )
    if not value.is_floating_point():
        raise ValueError(f"loss_fn returned a {value.dtype} tensor; the loss must be a floating-point tensor.")
    if not value.requires_grad:
        raise ValueError(
            "loss_fn returned a tensor that does not depend on the weights (it was detached, computed "
            "under torch.no_grad(), or converted with .item()/numpy): return the loss tensor itself."
        )
