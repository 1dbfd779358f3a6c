"""Observables recorded at every draw: per-sample (or per-token) losses on named data sets, vectorised over chains."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from devinterp_viz.engine.data import as_tensors
from devinterp_viz.engine.driver import is_vmap_limitation
from devinterp_viz.engine.potential import FlatLoss

PerSampleLoss = Callable[[nn.Module, Any], torch.Tensor]
OBSERVABLE_DTYPES = {"float32": np.float32, "float16": np.float16}
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_observables(observables: Any, per_sample_loss: Any, observable_dtype: Any, folder: Any = None) -> None:
    """A clear error for observables given without a per-sample loss (or the other way), bad names, dtype or folder."""
    if observables is None and per_sample_loss is None:
        if folder is not None:
            raise ValueError("observable_folder= is where observables= are written; give observables= and per_sample_loss= too.")
        return
    if observables is None or per_sample_loss is None:
        raise ValueError(
            "observables= and per_sample_loss= go together: observables={'name': data} names the data sets, "
            "per_sample_loss(model, batch) -> tensor of shape (batch,) or (batch, positions) says what to record "
            "on them, e.g. per_sample_loss=lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(-1)."
        )
    if not isinstance(observables, Mapping) or not observables or not all(isinstance(k, str) for k in observables):
        raise TypeError(f"observables must be a non-empty dict {{name: data}} with string names; got {type(observables).__name__}.")
    if not callable(per_sample_loss):
        raise TypeError(f"per_sample_loss must be a callable (model, batch) -> tensor; got {type(per_sample_loss).__name__}.")
    if observable_dtype not in OBSERVABLE_DTYPES:
        raise ValueError(f"observable_dtype={observable_dtype!r}; choose one of {', '.join(OBSERVABLE_DTYPES)}.")
    if folder is not None:
        bad = [name for name in observables if not _FILE_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"observable_folder= writes each observable to <name>.npy; {bad[0]!r} is not a file name "
                             "(letters, digits, '_', '-', '.'; up to 128 characters).")
        taken = [str(Path(folder) / f"{name}.npy") for name in observables if (Path(folder) / f"{name}.npy").exists()]
        if taken:
            raise FileExistsError(f"{taken[0]} exists; observable_folder= never overwrites a file: choose an empty folder.")


class Observables:
    """Per-sample losses ``ℓ_i(w)`` of named data sets at every draw of every chain.

    Evaluated without gradients per chunk of rows, all chains in one ``torch.func.vmap`` call, or one
    chain at a time where the first chunk shows vmap refusing the model or falling back to its slow
    loop for an operation with no batching rule (e.g. CPU scaled-dot-product attention). The choice
    depends on the model alone, never on a timing, so a rerun or a resumed sweep records the same
    bits. Values are copied to host memory at once: into arrays in memory,
    or, with ``folder``, into ``<folder>/<name>.npy`` files mapped into memory, written draw by
    draw (a long run's recording then lives on disk; the process holds only one draw's values).

    Parameters
    ----------
    data : dict of str to data
        Each a tensor or tuple/dict of tensors with a leading example axis (numpy arrays converted).
    per_sample_loss : callable
        ``per_sample_loss(model, batch) -> tensor`` of shape (batch,), or (batch, positions) for
        per-token losses, which are flattened to (batch · positions,) with :attr:`index` back to
        (sequence, position).
    flat_loss : FlatLoss
        The run's loss, whose private model copy and weight layout the observables share.
    num_chains, num_draws : int
    dtype : {"float32", "float16"}
        Storage of the recorded values (float16 halves the memory of long per-token runs).
    chunk_rows : int
        Rows evaluated at once.
    folder : str or Path, optional
        Where to write the recording as ``<name>.npy`` (created if missing; existing files are
        never overwritten). Draws not reached (a stopped run) stay NaN.

    Attributes
    ----------
    values : dict of str to np.ndarray, shape (chains, draws, samples)
        ``np.memmap`` arrays with ``folder``.
    index : dict of str to np.ndarray or None, shape (samples, 2)
        (sequence, position) of each recorded token; None for per-sample observables.
    """

    def __init__(self, data: Mapping[str, Any], per_sample_loss: PerSampleLoss, flat_loss: FlatLoss, *,
                 num_chains: int, num_draws: int, dtype: str = "float32", chunk_rows: int = 64,
                 folder: str | Path | None = None):
        self.flat_loss, self.per_sample_loss = flat_loss, per_sample_loss
        self.folder = None if folder is None else Path(folder)
        self.num_chains, self.num_draws, self.dtype, self.chunk_rows = num_chains, num_draws, OBSERVABLE_DTYPES[dtype], chunk_rows
        device = flat_loss.w_star.device
        self.sources = {}
        for name, value in data.items():
            leaves, spec = tree_flatten(as_tensors(value, flat_loss.dtype))
            if not leaves or not all(isinstance(x, torch.Tensor) and x.dim() for x in leaves):
                raise TypeError(f"observables[{name!r}] must be a tensor or a tuple/dict of tensors with an example axis.")
            self.sources[name] = ([x.to(device) for x in leaves], spec)
        self.values: dict[str, np.ndarray] = {}
        self.index: dict[str, np.ndarray | None] = {}
        self._vectorized: bool | None = None  # decided on the first chunk

    def record(self, positions: torch.Tensor, draw: int) -> None:
        """Evaluate every observable at the chains' ``positions`` (chains, n) and store them as draw ``draw``."""
        for name in self.sources:
            values = self.evaluate(name, positions)
            if name not in self.values:
                self.values[name] = self._allocate(name, (self.num_chains, self.num_draws, values.shape[1]))
            self.values[name][:, draw] = values.cpu().numpy()
            if self.folder is not None:
                self.values[name].flush()

    def _allocate(self, name: str, shape: tuple[int, int, int]) -> np.ndarray:
        """NaN-filled storage of one observable: in memory, or a new ``<folder>/<name>.npy`` mapped into memory."""
        if self.folder is None:
            return np.full(shape, np.nan, dtype=self.dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.npy"
        if path.exists():
            raise FileExistsError(f"{path} exists; observable_folder= never overwrites a file: choose an empty folder.")
        mapped = np.lib.format.open_memmap(path, mode="w+", dtype=self.dtype, shape=shape)
        mapped[:] = np.nan
        return mapped

    def evaluate(self, name: str, positions: torch.Tensor) -> torch.Tensor:
        """The observable ``name`` at each row of ``positions`` (chains, n): shape (chains, samples)."""
        leaves, spec = self.sources[name]
        rows = leaves[0].shape[0]
        parts = []
        for start in range(0, rows, self.chunk_rows):
            batch = tree_unflatten([x[start : start + self.chunk_rows] for x in leaves], spec)
            parts.append(self._per_chain(name, positions, batch))
        out = torch.cat(parts, dim=1)
        if out.dim() == 3:  # per token: (chains, sequences, positions)
            if name not in self.index:
                sequence, position = np.meshgrid(np.arange(out.shape[1]), np.arange(out.shape[2]), indexing="ij")
                self.index[name] = np.stack([sequence.ravel(), position.ravel()], axis=1)
            out = out.reshape(out.shape[0], -1)
        else:
            self.index.setdefault(name, None)
        return out

    def _per_chain(self, name: str, positions: torch.Tensor, batch: Any) -> torch.Tensor:
        def one(flat):
            return self._checked(name, self.flat_loss.evaluate(self.per_sample_loss, flat, batch), batch)

        def vectorized():
            return vmap(one, randomness=self.flat_loss.randomness)(positions)

        def looped():
            return torch.stack([one(flat) for flat in positions])

        with torch.no_grad():
            if self._vectorized is None:
                self._vectorized = self._vmap_serves(vectorized)
            return vectorized() if self._vectorized else looped()

    @staticmethod
    def _vmap_serves(vectorized: Callable[[], torch.Tensor]) -> bool:
        """Whether one vmap call evaluates all chains without vmap's per-operation fallback loop."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                vectorized()
            except RuntimeError as err:
                if not is_vmap_limitation(err):
                    raise
                return False
        return not any("There is a performance drop" in str(w.message) for w in caught)

    @staticmethod
    def _checked(name: str, value: Any, batch: Any) -> torch.Tensor:
        rows = tree_flatten(batch)[0][0].shape[0]
        if not isinstance(value, torch.Tensor) or value.dim() not in (1, 2) or value.shape[0] != rows:
            got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"per_sample_loss on observables[{name!r}] returned {got} for a batch of {rows} rows; it must return "
                f"one loss per row, shape ({rows},), or per token, shape ({rows}, positions) — e.g. "
                "F.cross_entropy(logits.transpose(1, 2), targets, reduction='none') for a language model."
            )
        return value.to(torch.float32)

    def results(self, rows: slice, keep: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
        """The values of chains ``rows`` over the first ``keep`` draws, and the token indices."""
        return {name: values[rows, :keep] for name, values in self.values.items()}, dict(self.index)
