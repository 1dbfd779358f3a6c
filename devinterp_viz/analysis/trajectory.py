"""Training trajectories: ordered (step, checkpoint) pairs, loaded lazily and checked against a model."""

from __future__ import annotations

import copy
import hashlib
import json
import numbers
import os
import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import nn

Checkpoint = Union[Mapping[str, torch.Tensor], str, Path]
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
#: A Hugging Face model folder (``save_pretrained``, a Trainer's ``checkpoint-N/``): its weights files, in the order looked for.
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
HF_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")  # sharded weights
#: Where training loops keep the model's state dict inside a checkpoint dict, in the order looked for.
NESTED_STATE_KEYS = ("model_state_dict", "state_dict", "model", "model_state", "module", "net")
_STEP_PATTERN = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a file name


class Trajectory:
    """Checkpoints of one training run, in step order.

    Parameters
    ----------
    checkpoints : sequence of (int, checkpoint)
        ``(step, state_dict)`` pairs or ``(step, path)`` pairs pointing to ``.pt`` / ``.pth`` /
        ``.bin`` files (read with ``torch.load(weights_only=True)``: a pickle that would run code
        is refused), ``.safetensors`` files, or Hugging Face model folders (``save_pretrained``,
        a Trainer's ``checkpoint-N/``; sharded weights too). A training loop's checkpoint dict
        (``{"model_state_dict": ..., "optimizer_state_dict": ...}``, ``{"model": ..., "step": n}``)
        gives its model's state dict. Files are read only when a checkpoint is used.

    Raises
    ------
    ValueError
        On an empty trajectory, steps that are not strictly increasing integers, or a state
        dict holding something other than tensors.
    TypeError
        When a checkpoint is neither a state dict nor a path (a model, say).
    """

    def __init__(self, checkpoints: Sequence[tuple[int, Checkpoint]]):
        checkpoints = list(checkpoints)
        if not checkpoints:
            raise ValueError("the trajectory is empty: give at least one (step, checkpoint) pair.")
        for item in checkpoints:
            _check_pair(item)
        steps = [int(step) for step, _ in checkpoints]
        duplicates = sorted({s for s in steps if steps.count(s) > 1})
        if duplicates:
            raise ValueError(f"duplicate steps in the trajectory: {duplicates[:5]}; each checkpoint needs its own step.")
        if steps != sorted(steps):
            first = next(i for i in range(1, len(steps)) if steps[i] < steps[i - 1])
            raise ValueError(
                f"trajectory steps must increase; step {steps[first]} comes after {steps[first - 1]}. "
                "Sort the checkpoints by step."
            )
        self._steps = np.asarray(steps, dtype=np.int64)
        self._sources = [source for _, source in checkpoints]
        self._file_fingerprints: dict[tuple, str] = {}

    @classmethod
    def from_folder(cls, folder: str | Path, pattern: str = "*", allow_links_outside: bool = False) -> Trajectory:
        """A trajectory of the checkpoints in ``folder``, the step read from each name.

        The step is the last number in the name (``step_000120.safetensors`` → 120,
        ``checkpoint-500/`` → 500). Files ending in .pt, .pth, .bin or .safetensors are used, and
        sub-folders holding a Hugging Face model (``model.safetensors``, ``pytorch_model.bin`` or
        a sharded index: what ``save_pretrained`` and the Trainer write); other files and folders
        are ignored. Weights a model ties (an unembedding saved once, as its embedding) are
        restored from the model's own tying when the checkpoint is used.

        Parameters
        ----------
        folder : str or Path
        pattern : str
            Glob pattern of the files inside ``folder``.
        allow_links_outside : bool
            Read checkpoints that are symbolic links to files outside ``folder``. Off by
            default: such a link is refused with an error naming it.

        Raises
        ------
        ValueError
            When ``folder`` is not a folder, holds no checkpoint, a name has no step, or a
            checkpoint is a link out of the folder (and ``allow_links_outside`` is False).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder of checkpoints.")
        found = []
        for path in sorted(folder.glob(pattern)):
            if path.is_dir() and _is_model_folder(path):
                pass
            elif path.suffix not in CHECKPOINT_SUFFIXES:
                continue
            elif path.is_dir():
                raise ValueError(
                    f"{path} is a folder, not a checkpoint file, and holds no Hugging Face model ({', '.join(HF_WEIGHTS)}); "
                    "move it out (or rename it), or pass pattern= to choose the checkpoints."
                )
            if not allow_links_outside:
                for file in weights_files(path):
                    _check_inside(file, folder)
            match = _STEP_PATTERN.search(path.stem)
            if match is None:
                raise ValueError(f"cannot read a training step from the file name {path.name!r}; put the step in its name.")
            found.append((int(match.group(1)), path))
        if not found:
            raise ValueError(f"{folder} holds no checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}) and no Hugging Face "
                             f"model folder ({' or '.join(HF_WEIGHTS)} inside, e.g. a Trainer's checkpoint-500/).")
        return cls(sorted(found, key=lambda item: item[0]))

    @property
    def steps(self) -> np.ndarray:
        """Training steps, shape (checkpoints,)."""
        return self._steps.copy()

    def __len__(self) -> int:
        return len(self._sources)

    def __repr__(self) -> str:
        return f"Trajectory({len(self)} checkpoints, steps {self._steps[0]}..{self._steps[-1]})"

    def __iter__(self) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        for index in range(len(self)):
            yield int(self._steps[index]), self.state_dict(index)

    def state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """The state dict of checkpoint ``index`` (read from disk now if it is a file)."""
        source = self._sources[index]
        if isinstance(source, Mapping):
            return dict(source)
        return load_checkpoint(Path(source))

    def tensor_shapes(self, index: int) -> dict[str, tuple[int, ...]]:
        """Name → shape of checkpoint ``index``'s tensors, read without loading their values where the file allows.

        safetensors headers, and ``.pt`` files memory-mapped (their values are not read); legacy
        ``.pt`` files are loaded whole.
        """
        source = self._sources[index]
        if isinstance(source, Mapping):
            return {name: tuple(tensor.shape) for name, tensor in source.items()}
        return checkpoint_shapes(Path(source))

    def describe(self, index: int) -> str:
        """"checkpoint at step S" and its file, for messages."""
        source = self._sources[index]
        where = "" if isinstance(source, Mapping) else f" ({source})"
        return f"checkpoint at step {self._steps[index]}{where}"

    def fingerprint(self, index: int) -> str:
        """A hash of checkpoint ``index``'s tensors (names, shapes, dtypes and values).

        In-memory state dicts are hashed on every call (their tensors can change in place). A
        file is hashed again whenever its size, modification time, change time or inode differ
        from the last hash's (an overwritten or replaced file is never served an old hash).
        """
        source = self._sources[index]
        if isinstance(source, Mapping):
            return state_dict_fingerprint(source)
        path = Path(source)
        before = _file_identity(path)
        if before in self._file_fingerprints:
            return self._file_fingerprints[before]
        value = state_dict_fingerprint(load_checkpoint(path))
        if _file_identity(path) == before:  # not rewritten while it was read
            self._file_fingerprints[before] = value
        return value

    def source(self, index: int) -> str:
        """Where checkpoint ``index`` comes from: its file, or "in memory"."""
        source = self._sources[index]
        return "in memory" if isinstance(source, Mapping) else str(source)

    def model_at(self, model: nn.Module, index: int) -> nn.Module:
        """A copy of ``model`` holding checkpoint ``index``'s weights; ``model`` is not touched.

        Raises
        ------
        ValueError
            When the checkpoint's keys or shapes do not match the model, naming them.
        """
        state = check_compatible(model, self.state_dict(index), where=f"checkpoint at step {self._steps[index]}")
        copied = copy.deepcopy(model)
        copied.load_state_dict(state)
        return copied


def _file_identity(path: Path) -> tuple:
    """What changes when a checkpoint's file(s) are rewritten or replaced: path, size, mtime, ctime and inode of each."""
    identities = []
    for file in weights_files(path) if path.exists() else [path]:
        try:
            stat = file.stat()
        except OSError as err:
            raise ValueError(f"checkpoint file {file} cannot be read ({err}).") from err
        identities.append((str(file.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev))
    return tuple(identities)


def _is_model_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in (*HF_WEIGHTS, *HF_INDEXES))


def weights_files(path: Path) -> list[Path]:
    """The files holding a checkpoint's weights: the file itself, or a model folder's weights (and shard index)."""
    if not path.is_dir():
        return [path]
    for index_name in HF_INDEXES:
        index = path / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{index} is not a weights index (a 'weight_map' of tensor → shard file): {err}") from err
            return [index, *(path / shard for shard in shards)]
    for name in HF_WEIGHTS:
        if (path / name).is_file():
            return [path / name]
    raise ValueError(f"{path} is a folder without model weights ({', '.join(HF_WEIGHTS)} or a sharded index).")


def _check_inside(path: Path, folder: Path) -> None:
    """Refuse a checkpoint that resolves (through a symbolic link) to a file outside ``folder``."""
    target, root = path.resolve(), folder.resolve()
    if os.path.commonpath([target, root]) != str(root):
        raise ValueError(
            f"{path} is a link to {target}, outside the checkpoint folder {folder}; it was not read. "
            "Copy the file into the folder, or pass allow_links_outside=True to Trajectory.from_folder "
            "if the link is meant."
        )


def _check_pair(item) -> None:
    """One ``(step, checkpoint)`` pair: an integer step and a state dict of tensors or a path."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"a trajectory is a list of (step, checkpoint) pairs; got {item!r:.80}.")
    step, source = item
    if isinstance(step, bool) or not isinstance(step, (numbers.Integral, np.integer)):
        raise ValueError(f"the step of a checkpoint must be an integer (the training step), got {step!r}.")
    if isinstance(source, (str, Path)):
        return
    if not isinstance(source, Mapping):
        fix = ("pass a copy of model.state_dict() per step" if isinstance(source, nn.Module)
               else "pass a {name: tensor} state dict or the path of a .pt/.safetensors file")
        raise TypeError(f"the checkpoint at step {step} is a {type(source).__name__}, not a state dict or a file path; {fix}.")
    others = {name: type(value).__name__ for name, value in source.items() if not isinstance(value, torch.Tensor)}
    if others:
        name, kind = next(iter(others.items()))
        raise ValueError(
            f"the checkpoint at step {step} holds {len(others)} value(s) that are not tensors ({name!r} is a {kind}); "
            "a state dict maps names to tensors: convert with torch.tensor(value), or pass model.state_dict()."
        )


def checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Name → shape of a checkpoint's tensors, without reading their values where possible."""
    if path.is_dir():
        return {name: shape for file in weights_files(path) if not file.name.endswith(".json")
                for name, shape in checkpoint_shapes(file).items()}
    if path.suffix == ".safetensors" and path.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
        except Exception:  # an unreadable file: load_checkpoint says why
            pass
    state = load_checkpoint(path, mmap=path.suffix != ".safetensors")
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def load_checkpoint(path: Path, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pt`` checkpoint safely; a clear error when it cannot be read.

    ``mmap=True`` maps a ``.pt`` file's tensors instead of reading them (legacy files are read whole).
    A model folder's weight files (shards) are read and merged; a training loop's checkpoint dict gives
    the state dict under one of ``NESTED_STATE_KEYS``.
    """
    if path.is_dir():
        state = {}
        for file in weights_files(path):
            if not file.name.endswith(".json"):
                state.update(load_checkpoint(file, mmap))
        return state
    if not path.is_file():
        raise ValueError(f"checkpoint file {path} does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = _torch_load(path, mmap)
    except pickle.UnpicklingError as err:
        if "global" not in str(err).lower():  # only a GLOBAL (code to import and call) is a refusal
            raise ValueError(f"cannot read checkpoint {path}: it is not a torch or safetensors file ({err})") from err
        raise ValueError(
            f"{path} is a pickle that holds more than tensors and would run code to load; it was refused "
            "(weights_only=True). Save plain state dicts (model.state_dict()) or .safetensors files."
        ) from err
    except Exception as err:
        raise ValueError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    return _state_dict_in(state, path)


def _state_dict_in(state: object, path: Path) -> dict[str, torch.Tensor]:
    """The state dict a loaded checkpoint holds: itself, or a training loop's dict's model state."""
    if isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return dict(state)
    if isinstance(state, Mapping):
        for key in NESTED_STATE_KEYS:
            inner = state.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        keys = ", ".join(repr(k) for k in list(state)[:8])
        raise ValueError(
            f"{path} holds a dict ({keys}) with no state dict of tensors in it (looked under "
            f"{', '.join(NESTED_STATE_KEYS)}). Save model.state_dict(), or give the trajectory that part: "
            f"Trajectory([(step, torch.load(path, weights_only=True)['<key>']), ...])."
        )
    raise ValueError(f"{path} does not hold a state dict of tensors (got {type(state).__name__}).")


def _torch_load(path: Path, mmap: bool):
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # a legacy (non-zip) file cannot be mapped
            if "mmap" not in str(err):
                raise
    return torch.load(path, map_location="cpu", weights_only=True)


def tied_keys(model: nn.Module) -> dict[str, list[str]]:
    """State-dict keys of ``model`` that name one tensor (tied weights), each mapped to the others."""
    groups: dict[tuple, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if tensor.numel():
            groups.setdefault((tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride())), []).append(name)
    return {name: [other for other in group if other != name] for group in groups.values() if len(group) > 1
            for name in group}


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor | tuple], where: str = "checkpoint") -> dict:
    """``state`` with the model's tied duplicates filled in; a ValueError naming the missing,
    unexpected and mis-shaped keys, if any.

    ``state`` maps names to tensors, or to shapes (:meth:`Trajectory.tensor_shapes`). A key the
    checkpoint lacks whose tensor the model ties to one it holds (``lm_head.weight`` to
    ``transformer.wte.weight``, saved once by ``save_pretrained`` and ``safetensors.save_model``)
    is taken from that one.
    """
    expected = model.state_dict()
    state = dict(state)
    for name, others in tied_keys(model).items():
        if name not in state:
            present = next((other for other in others if other in state), None)
            if present is not None:
                state[name] = state[present]

    def shape(value) -> tuple:
        return tuple(value.shape) if hasattr(value, "shape") else tuple(value)

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {shape(state[k])} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and shape(state[k]) != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:6]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:6]}")
        if wrong:
            parts.append(f"shape mismatches {wrong[:6]}")
        raise ValueError(
            f"the {where} does not fit {type(model).__name__}: " + "; ".join(parts)
            + ". Is it from another architecture or configuration?"
        )
    return state


def state_dict_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, shapes, dtypes and bytes (order-independent)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, list(tensor.shape), str(tensor.dtype)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:32]
