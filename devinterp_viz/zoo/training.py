"""A shared training loop for the zoo that keeps log-spaced checkpoints in memory and on disk."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from devinterp_viz.engine.progress import progress_bar

CONFIG_FILE = "trajectory.json"


def log_spaced_steps(last_step: int, num_checkpoints: int = 100) -> list[int]:
    """``num_checkpoints`` distinct integer steps from 0 to ``last_step``, log-spaced after 0.

    Parameters
    ----------
    last_step : int
        The final training step (included).
    num_checkpoints : int
        How many steps to return, at most ``last_step + 1``.

    Returns
    -------
    list of int, length ``min(num_checkpoints, last_step + 1)``
        Sorted, starting with 0 and ending with ``last_step``. Rounding merges early steps,
        so the grid is geometric from the point where consecutive steps differ by more than 1
        and dense (every step) before it.
    """
    if last_step < 1 or num_checkpoints < 2:
        raise ValueError(f"need last_step >= 1 and num_checkpoints >= 2, got {last_step}, {num_checkpoints}")
    wanted = min(num_checkpoints, last_step + 1) - 1  # steps after 0
    grid_size = wanted
    while True:
        steps = np.unique(np.round(np.geomspace(1, last_step, grid_size)).astype(int))
        if len(steps) >= wanted:
            break
        grid_size += max(1, wanted - len(steps))
    steps = _thin_to(steps, wanted)
    return [0, *map(int, steps)]


def _thin_to(steps: np.ndarray, count: int) -> np.ndarray:
    """Keep ``count`` of the sorted ``steps``, evenly in log-space, always keeping the last."""
    if len(steps) == count:
        return steps
    picks = np.unique(np.round(np.linspace(0, len(steps) - 1, count)).astype(int))
    return steps[picks]


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint at ``step``: ``step_000123.safetensors``."""
    return f"step_{step:06d}.safetensors"


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model.state_dict()``."""
    return {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}


def train_with_checkpoints(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    next_batch: Callable[[int], Any],
    optimizer: torch.optim.Optimizer,
    steps: int,
    checkpoint_steps: Iterable[int],
    eval_loss: Callable[[nn.Module], float],
    config: dict,
    out_dir: str | os.PathLike | None = None,
    num_threads: int | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """Train ``model`` for ``steps`` optimiser steps, keeping a checkpoint at each chosen step.

    Parameters
    ----------
    model : nn.Module
        Trained in place; left in eval mode at the end.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor`` to minimise.
    next_batch : callable
        ``next_batch(step) -> batch`` for the update taken at ``step``.
    optimizer : torch.optim.Optimizer
    steps : int
        Number of updates; the checkpoint at step ``s`` holds the weights after ``s`` updates.
    checkpoint_steps : iterable of int
        Steps in ``[0, steps]`` at which to keep the weights.
    eval_loss : callable
        ``eval_loss(model) -> float``, recorded with each checkpoint (a fixed evaluation set).
    config : dict
        JSON-serialisable training configuration, written next to the checkpoints.
    out_dir : path, optional
        When given, each checkpoint is saved as ``out_dir/step_XXXXXX.safetensors`` and
        ``out_dir/trajectory.json`` holds ``config``, the steps and their losses.
    num_threads : int, optional
        Torch CPU threads while training (restored afterwards). Tiny models train fastest on
        one thread; extra threads only add contention on a busy machine.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped after every update.

    Returns
    -------
    list of (int, dict)
        ``(step, state_dict)`` pairs in step order; tensors are CPU copies.
    """
    wanted = sorted(set(int(s) for s in checkpoint_steps))
    if not wanted or wanted[0] < 0 or wanted[-1] > steps:
        raise ValueError(f"checkpoint steps must lie in [0, {steps}]; got {wanted[:3]}...{wanted[-3:]}")
    folder = Path(out_dir) if out_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    with cpu_threads(num_threads):
        losses, trajectory = _train(model, loss_fn, next_batch, optimizer, scheduler, steps, wanted, eval_loss, folder)
    if folder is not None:
        record = {"config": config, "steps": wanted, "loss": losses}
        _atomic_write_text(folder / CONFIG_FILE, json.dumps(record, indent=1))
    return trajectory


@contextlib.contextmanager
def cpu_threads(num_threads: int | None):
    """Temporarily set ``torch.set_num_threads`` (no change when None)."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train(model, loss_fn, next_batch, optimizer, scheduler, steps, wanted, eval_loss, folder):
    trajectory: list[tuple[int, dict[str, torch.Tensor]]] = []
    losses: list[float] = []
    pending = iter(wanted)
    next_keep = next(pending)
    with progress_bar(steps, "training", True) as bar:  # tqdm.auto: a notebook widget or a terminal bar
        for step in range(steps + 1):
            if step == next_keep:
                model.eval()
                trajectory.append((step, state_copy(model)))
                losses.append(float(eval_loss(model)))
                if folder is not None:
                    _save_checkpoint(folder / checkpoint_name(step), trajectory[-1][1])
                next_keep = next(pending, None)
                model.train()
            if step == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model, next_batch(step)).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            bar.update(1)
    model.eval()
    return losses, trajectory


def read_losses(out_dir: str | os.PathLike) -> tuple[list[int], list[float], dict]:
    """Steps, per-checkpoint losses and config from a folder written by :func:`train_with_checkpoints`."""
    record = json.loads((Path(out_dir) / CONFIG_FILE).read_text())
    return record["steps"], record["loss"], record["config"]


def _save_checkpoint(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({name: value.contiguous() for name, value in state.items()}, str(tmp))
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
