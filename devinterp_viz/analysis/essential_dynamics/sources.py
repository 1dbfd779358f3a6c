"""Model outputs over training, one checkpoint at a time: from a trajectory and a model, an array, or several runs stacked."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from devinterp_viz.analysis.trajectory import Trajectory, check_compatible


MAX_DENSE_BYTES = 2**30
"""Default size (bytes) above which the float32 checkpoints × outputs matrix is not built: 1 GiB."""

OutputFn = Callable[[nn.Module, Any], Any]


def default_output_fn(model: nn.Module, probe: Any) -> Any:
    """The model's forward output on ``probe``: ``model(probe)``.

    A tuple or list probe is unpacked (``model(*probe)``), a dict is passed as keyword arguments
    (``model(**probe)``). For an output with a ``.logits`` attribute (Hugging Face models) the
    logits are taken, for a tuple output its first element. A sequence model returning
    (batch, seq, vocab) logits thus gives per-token logits, flattened per checkpoint.
    """
    if isinstance(probe, Mapping):
        out = model(**probe)
    elif isinstance(probe, (tuple, list)):
        out = model(*probe)
    else:
        out = model(probe)
    if hasattr(out, "logits"):
        out = out.logits
    elif isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _as_float32(values: Any) -> np.ndarray:
    """An output (tensor or array) as a float32 numpy array of the same shape (no float64 copy)."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float32).numpy()
    return np.asarray(values, dtype=np.float32)


def _to_device(probe: Any, device: Any) -> Any:
    if device is None:
        return probe
    if isinstance(probe, torch.Tensor):
        return probe.to(device)
    if isinstance(probe, Mapping):
        return {k: _to_device(v, device) for k, v in probe.items()}
    if isinstance(probe, (tuple, list)):
        return type(probe)(_to_device(v, device) for v in probe)
    return probe


class _OutputSource:
    """Output vectors of a sequence of checkpoints, read one at a time and checked.

    Subclasses give ``__len__``, ``steps`` (checkpoints,), ``label(i)`` and ``raw(i)``; ``row(i)``
    returns the checked, flattened float32 output of checkpoint ``i``. The first row read fixes
    the shape every other checkpoint must have.
    """

    def __init__(self):
        self.shape: tuple[int, ...] | None = None
        self._shape_label = ""

    def row(self, index: int) -> np.ndarray:
        values = _as_float32(self.raw(index))
        if self.shape is None:
            self.shape, self._shape_label = tuple(values.shape), self.label(index)
        elif tuple(values.shape) != self.shape:
            raise ValueError(
                f"the outputs at {self.label(index)} have shape {tuple(values.shape)} but those at "
                f"{self._shape_label} have shape {self.shape}: the probe's outputs must keep one shape "
                "across training (same probe, same output_fn)."
            )
        values = values.reshape(-1)
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(values.size - finite.sum())
            raise ValueError(
                f"the outputs at {self.label(index)} hold {bad} non-finite value(s) (NaN or inf) of "
                f"{values.size}; PCA needs finite outputs. Did training diverge at this checkpoint?"
            )
        return values


class _ModelOutputs(_OutputSource):
    """``output_fn(model at checkpoint i, probe)`` for each checkpoint of a trajectory."""

    def __init__(self, trajectory: Trajectory, model: nn.Module, probe: Any, output_fn: OutputFn | None,
                 device: Any = None, run: str | None = None):
        super().__init__()
        if not isinstance(trajectory, Trajectory):
            raise TypeError(f"expected a Trajectory, got {type(trajectory).__name__}.")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module (the architecture of the checkpoints), got {type(model).__name__}.")
        self.trajectory, self.model, self.run = trajectory, model, run
        self.output_fn = output_fn or default_output_fn
        self.probe = _to_device(probe, device)
        self.device = device
        self._work: nn.Module | None = None

    def __len__(self) -> int:
        return len(self.trajectory)

    @property
    def steps(self) -> np.ndarray:
        return self.trajectory.steps

    def label(self, index: int) -> str:
        where = f"checkpoint {index} (step {self.trajectory.steps[index]})"
        return where if self.run is None else f"run {self.run!r}, {where}"

    def raw(self, index: int) -> Any:
        if self._work is None:  # one working copy; each checkpoint is loaded into it in turn
            self._work = copy.deepcopy(self.model).eval()
            if self.device is not None:
                self._work.to(self.device)
        state = check_compatible(self.model, self.trajectory.state_dict(index), where=self.label(index))
        self._work.load_state_dict(state)
        with torch.no_grad():
            return self.output_fn(self._work, self.probe)


class _ArrayOutputs(_OutputSource):
    """Precomputed outputs: an array (checkpoints, ...) or a sequence of per-checkpoint arrays."""

    def __init__(self, outputs: Any, steps: Any = None, run: str | None = None):
        super().__init__()
        if isinstance(outputs, (np.ndarray, torch.Tensor)):
            if outputs.ndim < 1:
                raise ValueError("outputs must have a leading checkpoint axis: shape (checkpoints, ...).")
        elif isinstance(outputs, Sequence) and not isinstance(outputs, (str, bytes)):
            outputs = list(outputs)
        else:
            raise TypeError(f"outputs must be an array (checkpoints, ...) or a list of arrays, got {type(outputs).__name__}.")
        self.outputs, self.run = outputs, run
        n = len(outputs)
        self._steps = np.arange(n, dtype=np.int64) if steps is None else np.asarray(steps)
        if self._steps.shape != (n,):
            raise ValueError(f"steps must have shape ({n},) to match the outputs' checkpoints, got {self._steps.shape}.")
        if n > 1 and np.any(np.diff(self._steps) <= 0):
            raise ValueError("steps must be strictly increasing.")

    def __len__(self) -> int:
        return len(self.outputs)

    @property
    def steps(self) -> np.ndarray:
        return self._steps.copy()

    def label(self, index: int) -> str:
        where = f"checkpoint {index} (step {self._steps[index]})"
        return where if self.run is None else f"run {self.run!r}, {where}"

    def raw(self, index: int) -> Any:
        return self.outputs[index]


class _StackedOutputs(_OutputSource):
    """Several runs' sources one after the other (the rows of a joint PCA)."""

    def __init__(self, sources: Sequence[_OutputSource]):
        super().__init__()
        self.sources = list(sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def steps(self) -> np.ndarray:
        return np.concatenate([s.steps for s in self.sources])

    def _locate(self, index: int) -> tuple[_OutputSource, int]:
        which = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.sources[which], index - int(self.offsets[which])

    def label(self, index: int) -> str:
        source, local = self._locate(index)
        return source.label(local)

    def raw(self, index: int) -> Any:
        source, local = self._locate(index)
        return source.raw(local)
