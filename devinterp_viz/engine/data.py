"""Per-chain minibatch streams over tensors, Datasets or DataLoaders, and the fixed batches for L(w*)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset
from torch.utils.data._utils.collate import default_collate
from torch.utils._pytree import keystr, tree_flatten, tree_flatten_with_path, tree_map, tree_unflatten

MAX_FULL_EVAL_ROWS = 200_000  # L(w*) is evaluated on the whole data set up to this many rows
NUM_INIT_LOSS_BATCHES = 32  # otherwise on this many fixed, seeded batches


class TensorBatches:
    """Minibatches drawn from in-memory tensors; each chain walks its own permutations.

    The data is a pytree (tensor, tuple/list/dict of tensors) whose leaves share their first
    dimension. A chain's index stream is the concatenation of random permutations of
    ``range(n)`` from the chain's own generator, cut into consecutive batches, so every
    example is seen equally often and no batch is ragged. With ``batch_size == n`` every
    step uses the whole data set, the same for all chains (full-batch gradient).

    Parameters
    ----------
    data : pytree of tensors, leading dimension n
    batch_size : int
    device : torch.device
    """

    def __init__(self, data: Any, batch_size: int, device: torch.device):
        leaves, self._spec = tree_flatten(data)
        if not leaves or not all(isinstance(leaf, torch.Tensor) for leaf in leaves):
            kinds = sorted({type(leaf).__name__ for leaf in leaves if not isinstance(leaf, torch.Tensor)})
            got = f"a {type(data).__name__}" + (f" holding {', '.join(kinds)}" if kinds and leaves != [data] else "")
            raise TypeError(
                f"data must be a DataLoader, a Dataset, a tensor or a tuple/list/dict of tensors (or numpy arrays); "
                f"got {got}. E.g. data=(x, y) with x of shape (examples, ...) and y of shape (examples, ...)."
            )
        sizes = {leaf.shape[0] if leaf.dim() else None for leaf in leaves}
        if None in sizes or len(sizes) != 1:
            raise ValueError(
                f"the data tensors must share their first (example) dimension; got shapes "
                f"{[tuple(leaf.shape) for leaf in leaves]}."
            )
        self.num_examples = sizes.pop()
        if self.num_examples == 0:
            raise ValueError("the data set is empty: pass at least one example.")
        if batch_size > self.num_examples:
            raise ValueError(
                f"batch_size={batch_size} is larger than the data set ({self.num_examples} examples); "
                f"use batch_size <= {self.num_examples}."
            )
        self.batch_size = batch_size
        self.device = device
        self._leaves = [leaf.detach().to(device) for leaf in leaves]
        check_finite(data, self._leaves, "data{path}")
        self.full_batch = batch_size == self.num_examples
        self.row_bytes = sum(leaf[:1].numel() * leaf.element_size() for leaf in self._leaves)

    def _build(self, leaves: list[torch.Tensor]) -> Any:
        return tree_unflatten(leaves, self._spec)

    def whole(self) -> Any:
        """The whole data set as one batch."""
        return self._build(self._leaves)

    def index_block(self, generator: torch.Generator, carry: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the next ``steps`` batches of one chain, shape (steps, batch_size).

        ``carry`` holds the unused tail of the chain's current permutation; the new tail is
        returned with the indices.
        """
        needed = steps * self.batch_size
        pieces, have = [carry], carry.numel()
        while have < needed:
            perm = torch.randperm(self.num_examples, generator=generator, device=generator.device)
            pieces.append(perm.to(self.device))
            have += self.num_examples
        stream = torch.cat(pieces)
        return stream[:needed].view(steps, self.batch_size), stream[needed:]

    def gather(self, index: torch.Tensor) -> Any:
        """The batch(es) at ``index`` (any shape); leaves get ``index.shape`` as leading dims."""
        return self._build([leaf[index] for leaf in self._leaves])

    def init_loss_batches(self, seed: int, chunk_rows: int | None = None) -> Iterator[tuple[Any, int]]:
        """Fixed batches on which L(w*) is evaluated, with their sizes.

        The whole data set (in chunks of ``chunk_rows`` rows, one minibatch when None; the
        chunks' mean losses are weighted by their sizes) when it has at most ``MAX_FULL_EVAL_ROWS``
        examples, otherwise ``NUM_INIT_LOSS_BATCHES`` batches drawn with a generator seeded by
        ``seed``. L(w*) is evaluated with its gradient, so a chunk holds the activations of
        ``chunk_rows`` rows: as many as one sampler step of all chains keeps it within a step's memory.
        """
        if self.num_examples <= MAX_FULL_EVAL_ROWS:
            chunk = chunk_rows or self.batch_size
            for start in range(0, self.num_examples, chunk):
                stop = min(start + chunk, self.num_examples)
                yield self._build([leaf[start:stop] for leaf in self._leaves]), stop - start
            return
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(self.num_examples, generator=gen)[: NUM_INIT_LOSS_BATCHES * self.batch_size]
        for chunk in order.to(self.device).split(self.batch_size):
            yield self.gather(chunk), chunk.numel()


class LoaderBatches:
    """Minibatches from a user's DataLoader; each chain iterates its own copy of the loader.

    When the loader shuffles with a plain ``RandomSampler`` it is rebuilt per chain with the
    chain's own generator (same dataset, batch size, collate function, ``drop_last=True``), so
    chains see independent, reproducible batch orders. Other samplers are used as they are.
    """

    def __init__(self, loader: DataLoader, device: torch.device):
        self.loader = loader
        self.device = device
        if loader.batch_size is None:
            raise ValueError("the DataLoader has batch_size=None; give it a batch size or pass tensors.")
        self.batch_size = loader.batch_size
        try:
            self.num_examples = len(loader.dataset)  # type: ignore[arg-type]
        except TypeError:
            self.num_examples = None
        if self.num_examples == 0:
            raise ValueError("the DataLoader's dataset is empty: pass at least one example.")
        self.full_batch = False

    def chain_iterator(self, generator: torch.Generator) -> Iterator[Any]:
        """Endless batch stream for one chain."""
        loader = self.loader
        if isinstance(loader.sampler, RandomSampler) and loader.batch_sampler is not None:
            loader = DataLoader(
                loader.dataset,
                batch_size=loader.batch_size,
                shuffle=True,
                collate_fn=loader.collate_fn,
                drop_last=True,
                generator=generator,
                num_workers=loader.num_workers,
                pin_memory=loader.pin_memory,
            )
        while True:
            produced = False
            for batch in loader:
                produced = True
                yield self.to_device(batch)
            if not produced:
                raise ValueError("the DataLoader yielded no batch (is drop_last=True with fewer examples than batch_size?).")

    def to_device(self, batch: Any) -> Any:
        return tree_map(lambda x: x.to(self.device) if isinstance(x, torch.Tensor) else x, batch)

    def init_loss_batches(self, seed: int, chunk_rows: int | None = None) -> Iterator[tuple[Any, int]]:
        """The loader's first ``NUM_INIT_LOSS_BATCHES`` batches (all of them if fewer), order seeded."""
        gen = torch.Generator().manual_seed(seed)
        iterator = self.chain_iterator(gen)
        total = NUM_INIT_LOSS_BATCHES
        if self.num_examples is not None:
            total = min(total, max(1, math.ceil(self.num_examples / self.batch_size)))
        for index in range(total):
            batch = next(iterator)
            check_finite(batch, tree_flatten(batch)[0], f"element {{path}} of the DataLoader's batch {index}")
            yield batch, _batch_rows(batch)


def _batch_rows(batch: Any) -> int:
    leaves, _ = tree_flatten(batch)
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor) and leaf.dim() > 0:
            return int(leaf.shape[0])
    return 1


def check_finite(data: Any, leaves: list, name: str) -> None:
    """A ValueError naming the first floating-point tensor of ``data`` (flattened to ``leaves``) with NaN or inf.

    ``name`` is a format string with ``{path}``, the tensor's place in ``data`` (``[0]``, ``['x']``).
    """
    paths = [keystr(path) for path, _ in tree_flatten_with_path(data)[0]]
    for path, leaf in zip(paths, leaves):
        if not isinstance(leaf, torch.Tensor) or not leaf.is_floating_point() or bool(torch.isfinite(leaf).all()):
            continue
        bad = ~torch.isfinite(leaf.reshape(leaf.shape[0], -1) if leaf.dim() else leaf.reshape(1, 1))
        rows = bad.any(dim=1).nonzero().flatten()
        raise ValueError(
            f"{name.format(path=path)} holds {int(bad.sum())} NaN or infinite values (first in example {int(rows[0])}, "
            f"{rows.numel()} examples in all); a loss on such data is not finite. Drop or repair those examples "
            "before estimating, e.g. keep = torch.isfinite(x).flatten(1).all(1); x, y = x[keep], y[keep]."
        )


def as_tensors(data: Any, float_dtype: torch.dtype | None = None) -> Any:
    """User data with numpy arrays as tensors and a list of (x, y) examples stacked into (xs, ys).

    Floating-point numpy arrays become tensors of ``float_dtype`` (the model's) when it is given;
    other tensors are left as they are. DataLoaders and Datasets are returned unchanged.
    """
    if isinstance(data, (DataLoader, Dataset, torch.Tensor)):
        return data
    data = tree_map(lambda leaf: _numpy_to_tensor(leaf, float_dtype) if isinstance(leaf, np.ndarray) else leaf, data)
    return _stack_examples(data) if _is_example_list(data) else data


def _numpy_to_tensor(array: np.ndarray, float_dtype: torch.dtype | None) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_floating_point() and float_dtype is not None:
        tensor = tensor.to(float_dtype)
    return tensor


def _is_example_list(data: Any) -> bool:
    """A list of at least two examples, each a tuple, list or dict (``[(x0, y0), (x1, y1), ...]``)."""
    return isinstance(data, list) and len(data) >= 2 and all(isinstance(item, (tuple, list, Mapping)) for item in data)


def _stack_examples(examples: list) -> Any:
    """Stack a list of same-shaped examples along a new first (example) dimension."""
    leaves = [tree_flatten(example)[0] for example in examples]
    first_shapes = [_shape(leaf) for leaf in leaves[0]]
    for index, example_leaves in enumerate(leaves):
        if [_shape(leaf) for leaf in example_leaves] != first_shapes:
            raise ValueError(
                f"data is a list of examples, and example {index} has shapes {[_shape(x) for x in example_leaves]} "
                f"where example 0 has {first_shapes}; pad them to one shape and pass stacked tensors, "
                "(torch.stack(xs), torch.stack(ys))."
            )
    try:
        return default_collate(examples)
    except Exception as err:  # collate errors vary by item type
        raise TypeError(
            f"data is a list of examples that cannot be stacked into tensors ({err}); pass stacked tensors, "
            "(torch.stack(xs), torch.stack(ys))."
        ) from err


def _shape(leaf: Any) -> Any:
    return tuple(leaf.shape) if hasattr(leaf, "shape") else type(leaf).__name__


def make_batches(
    data: Any, batch_size: int | None, device: torch.device, float_dtype: torch.dtype | None = None
) -> TensorBatches | LoaderBatches:
    """Wrap user data (DataLoader, Dataset, tensor or tuple/dict of tensors) for the driver.

    numpy arrays are converted to tensors (floating-point ones to ``float_dtype`` when given) and
    a list of (x, y) examples is stacked (see :func:`as_tensors`).
    """
    data = as_tensors(data, float_dtype)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                   or batch_size <= 0):
        raise ValueError(
            f"batch_size must be a positive integer (examples per minibatch, e.g. batch_size=64), got {batch_size!r}."
        )
    if isinstance(data, DataLoader):
        if batch_size is not None and batch_size != data.batch_size:
            raise ValueError(
                f"batch_size={batch_size} disagrees with the DataLoader's batch_size={data.batch_size}; "
                "leave batch_size=None when passing a DataLoader."
            )
        return LoaderBatches(data, device)
    if batch_size is None:
        raise ValueError(
            "batch_size is required when data is a tensor, a tuple of tensors or a Dataset "
            "(the engine batches it itself), e.g. batch_size=64."
        )
    batch_size = int(batch_size)
    if isinstance(data, TensorDataset):
        data = tuple(data.tensors)
    elif isinstance(data, Dataset):
        data = _materialise(data)
    return TensorBatches(data, batch_size, device)


def _materialise(dataset: Dataset) -> Any:
    """Collate a map-style Dataset into tensors once, so the hot path never collates."""
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError as err:
        raise TypeError("an iterable Dataset has no length; wrap it in a DataLoader.") from err
    if size == 0:
        raise ValueError("the Dataset is empty: pass at least one example.")
    try:
        return default_collate([dataset[i] for i in range(size)])
    except Exception as err:  # collate errors vary by item type
        raise TypeError(
            f"could not stack the Dataset's items into tensors ({err}); pass a DataLoader with a "
            "collate_fn instead."
        ) from err
