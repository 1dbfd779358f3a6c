"""PCA over streamed outputs: dense or incremental fits, orientation, projection of new outputs."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.decomposition import PCA, IncrementalPCA
from torch import nn

from devinterp_viz.analysis.essential_dynamics.geometry import TrajectoryGeometry
from devinterp_viz.analysis.essential_dynamics.sources import (
    MAX_DENSE_BYTES,
    OutputFn,
    _as_float32,
    _OutputSource,
    _to_device,
    default_output_fn,
)
from devinterp_viz.engine.progress import progress_bar


BLOCK_BYTES = 2**24
"""Default size (bytes) of one float32 block of checkpoints fed to IncrementalPCA.partial_fit: 16 MiB."""

OVERSAMPLE = 10
"""Extra components IncrementalPCA tracks between blocks, so the leading ones are not truncated early."""

SOLVERS = ("auto", "full", "randomized", "incremental")


@dataclass
class _PCAFit:
    solver: str
    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    singular_values: np.ndarray
    projections: np.ndarray
    n_outputs: int
    output_shape: tuple[int, ...]


def _choose_solver(solver: str, n: int, p: int, k: int, max_dense_bytes: float) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    if solver != "auto":
        return solver
    if n * p * 4 > max_dense_bytes:
        return "incremental"
    return "randomized" if max(n, p) > 500 and k < 0.8 * min(n, p) else "full"


def _check_pca_params(n_components: Any, n: int, max_dense_bytes: Any, block_size: Any) -> int:
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}.")
    if n < n_components:
        raise ValueError(
            f"{n} checkpoint(s) cannot give {n_components} principal components: PCA needs at least as many "
            f"checkpoints as components. Use n_components <= {n} or a trajectory with more checkpoints."
        )
    if not (isinstance(max_dense_bytes, (int, float)) and max_dense_bytes >= 0):
        raise ValueError(f"max_dense_bytes must be a number of bytes >= 0, got {max_dense_bytes!r}.")
    if block_size is not None and (not isinstance(block_size, (int, np.integer)) or block_size < 1):
        raise ValueError(f"block_size must be a positive integer or None, got {block_size!r}.")
    return int(n_components)


def _fit_pca(source: _OutputSource, n_components: int, solver: str, max_dense_bytes: float,
             block_size: int | None, random_state: Any, progress: bool, desc: str) -> _PCAFit:
    """PCA of the rows of ``source``, reading each row once (dense) or twice (incremental)."""
    n = len(source)
    k = _check_pca_params(n_components, n, max_dense_bytes, block_size)
    first = source.row(0)
    p = first.size
    if p < k:
        raise ValueError(f"the probe gives {p} output value(s) per checkpoint, fewer than n_components={k}.")
    chosen = _choose_solver(solver, n, p, k, max_dense_bytes)
    bar = progress_bar(n if chosen != "incremental" else 2 * n, desc, progress)
    try:
        if chosen == "incremental":
            fit = _fit_incremental(source, first, k, block_size, bar)
        else:
            fit = _fit_dense(source, first, k, chosen, random_state, bar)
    finally:
        bar.close()
    fit.output_shape = source.shape
    _orient(fit)
    return fit


def _fit_dense(source: _OutputSource, first: np.ndarray, k: int, svd_solver: str, random_state: Any, bar) -> _PCAFit:
    n, p = len(source), first.size
    outputs = np.empty((n, p), dtype=np.float32)
    outputs[0] = first
    bar.update(1)
    for index in range(1, n):
        outputs[index] = source.row(index)
        bar.update(1)
    pca = PCA(n_components=k, svd_solver=svd_solver, random_state=random_state, copy=False)
    projections = pca.fit_transform(outputs)  # copy=False: centred (and overwritten) in place
    del outputs
    return _PCAFit(svd_solver, pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
                   pca.explained_variance_.astype(float), pca.explained_variance_ratio_.astype(float),
                   pca.singular_values_.astype(float), projections.astype(float), p, ())


def _blocks(n: int, p: int, k_tracked: int, block_size: int | None) -> list[np.ndarray]:
    size = block_size or max(2 * k_tracked, BLOCK_BYTES // (4 * p))
    size = max(size, k_tracked)
    return np.array_split(np.arange(n), max(1, n // size))


def _fit_incremental(source: _OutputSource, first: np.ndarray, k: int, block_size: int | None, bar) -> _PCAFit:
    n, p = len(source), first.size
    k_tracked = min(k + OVERSAMPLE, n, p)
    blocks = _blocks(n, p, k_tracked, block_size)
    buffer = np.empty((max(len(b) for b in blocks), p), dtype=np.float32)
    ipca = IncrementalPCA(n_components=k_tracked, copy=False)
    for block in blocks:  # pass 1: fit, one block of checkpoints in memory at a time
        for row, index in enumerate(block):
            buffer[row] = first if index == 0 else source.row(int(index))
            bar.update(1)
        ipca.partial_fit(buffer[: len(block)])
    mean = ipca.mean_.astype(np.float32)
    components = ipca.components_[:k].astype(np.float32)
    projections = np.empty((n, k))
    for block in blocks:  # pass 2: project (the outputs are computed again, never stored)
        for row, index in enumerate(block):
            buffer[row] = first if index == 0 else source.row(int(index))
            bar.update(1)
        chunk = buffer[: len(block)]
        chunk -= mean
        projections[block] = chunk @ components.T
    return _PCAFit("incremental", mean, components, ipca.explained_variance_[:k].astype(float),
                   ipca.explained_variance_ratio_[:k].astype(float), ipca.singular_values_[:k].astype(float),
                   projections, p, ())


def _orient(fit: _PCAFit) -> None:
    """Flip each component so that the trajectory moves towards + along it from first to last checkpoint."""
    flip = fit.projections[-1] < fit.projections[0]
    fit.components[flip] *= -1
    fit.projections[:, flip] *= -1


class _ProjectionMixin:
    """``transform`` and ``transform_model`` for fitted essential-dynamics results."""

    def transform(self, outputs: Any) -> np.ndarray:
        """Project outputs on the fitted components; the fit is not changed.

        Parameters
        ----------
        outputs : array or tensor
            One output of shape ``output_shape_`` (or flattened, (n_outputs_,)), or several of
            shape (m, \\*output_shape_) or (m, n_outputs_).

        Returns
        -------
        np.ndarray
            Shape (n_components,) for one output, (m, n_components) for several.
        """
        self._check_fitted()
        values = _as_float32(outputs)
        single = values.shape in (self.output_shape_, (self.n_outputs_,))
        if single:
            values = values.reshape(1, -1)
        elif values.ndim >= 1 and values.shape[1:] in (self.output_shape_, (self.n_outputs_,)):
            values = values.reshape(len(values), -1)
        else:
            raise ValueError(
                f"outputs of shape {tuple(values.shape)} do not match the fitted outputs {self.output_shape_} "
                f"(one output) or (m, *{self.output_shape_}) (several)."
            )
        if not np.isfinite(values).all():
            raise ValueError("outputs to project hold non-finite values (NaN or inf).")
        projected = ((values - self.mean_) @ self.components_.T).astype(float)
        return projected[0] if single else projected

    def transform_model(self, model: nn.Module, probe: Any, device: Any = None) -> np.ndarray:
        """Project a model's outputs on ``probe`` (the same ``output_fn``), shape (n_components,).

        For a reference predictor (a baseline, a hand-built solution) that must not enter the fit.
        """
        self._check_fitted()
        fn = self.output_fn or default_output_fn
        if model.training or device is not None:  # a copy in eval mode; the caller's model is not touched
            model = copy.deepcopy(model).eval()
            if device is not None:
                model.to(device)
        with torch.no_grad():
            values = fn(model, _to_device(probe, device))
        return self.transform(values)

    def _project_references(self, references: Mapping[str, Any] | None, probe: Any, device: Any) -> dict[str, np.ndarray]:
        projected = {}
        for name, ref in (references or {}).items():
            if isinstance(ref, nn.Module):
                if probe is None:
                    raise ValueError(f"reference {name!r} is a model; projecting it needs the probe (fit with a probe).")
                projected[name] = self.transform_model(ref, probe, device).reshape(1, -1)
            else:
                projected[name] = np.atleast_2d(self.transform(ref))
        return projected

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit first.")

    def _set_pca(self, fit: _PCAFit) -> None:
        self.solver_ = fit.solver
        self.mean_ = fit.mean
        self.components_ = fit.components
        self.explained_variance_ = fit.explained_variance
        self.explained_variance_ratio_ = fit.explained_variance_ratio
        self.singular_values_ = fit.singular_values
        self.n_outputs_ = fit.n_outputs
        self.output_shape_ = fit.output_shape


class _TrajectoryPCA(_ProjectionMixin, BaseEstimator):
    """The settings shared by single-run and joint essential dynamics (scikit-learn style: stored only)."""

    def __init__(self, n_components: int = 3, output_fn: OutputFn | None = None, solver: str = "auto",
                 max_dense_bytes: float = MAX_DENSE_BYTES, block_size: int | None = None, geometry: Any = None,
                 random_state: Any = 0, device: Any = None, progress: bool = True):
        self.n_components = n_components
        self.output_fn = output_fn
        self.solver = solver
        self.max_dense_bytes = max_dense_bytes
        self.block_size = block_size
        self.geometry = geometry
        self.random_state = random_state
        self.device = device
        self.progress = progress


def _make_geometry(geometry: Any) -> TrajectoryGeometry:
    if geometry is None:
        return TrajectoryGeometry()
    if isinstance(geometry, Mapping):
        return TrajectoryGeometry(**geometry)
    if isinstance(geometry, TrajectoryGeometry):
        return clone(geometry)
    raise TypeError(f"geometry must be a TrajectoryGeometry, a dict of its parameters or None, got {type(geometry).__name__}.")
