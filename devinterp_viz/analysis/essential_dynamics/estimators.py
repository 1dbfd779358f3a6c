"""EssentialDynamics (one run) and JointEssentialDynamics (several runs in one basis)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from devinterp_viz.analysis.essential_dynamics.pca import _fit_pca, _make_geometry, _TrajectoryPCA
from devinterp_viz.analysis.essential_dynamics.sources import (
    MAX_DENSE_BYTES,
    OutputFn,
    _ArrayOutputs,
    _ModelOutputs,
    _OutputSource,
    _StackedOutputs,
)
from devinterp_viz.analysis.trajectory import Trajectory


class EssentialDynamics(_TrajectoryPCA):
    """Essential dynamics of one training run: PCA of the model's outputs on a fixed probe.

    Parameters
    ----------
    n_components : int
        Number of principal components kept.
    output_fn : callable or None
        ``output_fn(model, probe) -> tensor or array``, the outputs recorded at each checkpoint
        (flattened per checkpoint). None: :func:`default_output_fn`, the forward output, i.e.
        per-token logits (batch, seq, vocab) for a sequence model.
    solver : {"auto", "full", "randomized", "incremental"}
        "full" and "randomized" build the float32 checkpoints × outputs matrix and call
        scikit-learn's PCA with that ``svd_solver``; "incremental" never builds it (see Notes).
        "auto": "incremental" above ``max_dense_bytes``, else "randomized" for large matrices
        with few components and "full" for small ones (scikit-learn's rule).
    max_dense_bytes : float
        Size in bytes of the float32 matrix above which "auto" streams (default 1 GiB).
    block_size : int or None
        Checkpoints per ``IncrementalPCA.partial_fit`` block. None: as many as fill 16 MiB,
        at least 2 (n_components + 10).
    geometry : TrajectoryGeometry, dict or None
        The geometry fitted on the projected trajectory (``geometry_``); a dict gives its
        parameters; None: ``TrajectoryGeometry()``.
    random_state : int or None
        Seed of the randomized SVD.
    device : torch device or None
        Where the checkpoints' forward passes run (None: where the model is).
    progress : bool
        A progress bar over checkpoints (never under CI).

    Attributes
    ----------
    steps_ : np.ndarray, shape (checkpoints,)
        Training step of each checkpoint.
    trajectory_ : np.ndarray, shape (checkpoints, n_components)
        Each checkpoint's outputs projected on the components (float64).
    components_ : np.ndarray, shape (n_components, n_outputs_), float32
        Principal axes in output space, unit norm; each oriented so the trajectory moves towards
        + from its first to its last checkpoint.
    mean_ : np.ndarray, shape (n_outputs_,), float32
        Mean output over checkpoints.
    explained_variance_, explained_variance_ratio_, singular_values_ : np.ndarray, shape (n_components,)
        As in scikit-learn's PCA; the ratio is relative to the total variance over all outputs.
    n_outputs_ : int
        Output values per checkpoint.
    output_shape_ : tuple of int
        Shape of one checkpoint's outputs before flattening.
    solver_ : str
        The solver used: "full", "randomized" or "incremental".
    geometry_ : TrajectoryGeometry or None
        Smoothing, osculating circles, cusps and milestones of ``trajectory_`` (None when
        n_components < 2: there is no PC plane).
    references_ : dict of str to np.ndarray, shape (m, n_components)
        Reference predictors projected after the fit (they do not enter it).

    Notes
    -----
    With outputs ``X ∈ R^{T×P}`` (row t: the flattened outputs at checkpoint t) and mean
    ``μ = (1/T) Σ_t X_t``, the components are the leading right singular vectors of
    ``X − 1μᵀ = U S Vᵀ`` and the trajectory is ``(X − 1μᵀ) V_k = U_k S_k``; the explained variance
    of component i is ``s_i² / (T − 1)``.

    Memory: outputs are computed one checkpoint at a time and converted to float32 at once; the
    outputs of all checkpoints are never held in float64. Up to ``max_dense_bytes`` (the float32
    matrix's ``4·T·P`` bytes, 1 GiB by default) the matrix is filled row by row and decomposed in
    place: peak ≈ 1.2 × the matrix for "randomized", ≈ 4 × for "full" (LAPACK's copies). Above it
    the outputs are fed to :class:`sklearn.decomposition.IncrementalPCA` in blocks of checkpoints
    (tracking ``n_components + 10`` directions, so the leading ones are not truncated between
    blocks), then computed a second time and projected: two passes over the trajectory, the
    matrix never built; IncrementalPCA works on a float64 copy of one block, so the peak is
    ≈ 15 × a block (≈ 250 MB with the default 16 MiB blocks), whatever T. Measured on 1000 ×
    100 000 outputs by ``bench/essential_dynamics_memory.py`` (bench/RESULTS.md): randomized
    9 s / +470 MB, full 103 s / +1.6 GB, incremental 84 s / +300 MB.

    References
    ----------
    Hoogland, Wang, Farrugia-Roberts, Carroll, Wei, Murfet. The Developmental Landscape of
    In-Context Learning. 2024 (essential dynamics, Appendix on trajectory PCA).
    Carroll, Hoogland, Farrugia-Roberts, Murfet, et al. Dynamics of Transient Structure in
    In-Context Linear Regression Transformers. 2025 (joint trajectory PCA across runs).
    """

    def fit(self, trajectory: Trajectory, model: nn.Module, probe: Any,
            references: Mapping[str, Any] | None = None) -> EssentialDynamics:
        """Record ``output_fn(model at each checkpoint, probe)`` and fit the PCA.

        Parameters
        ----------
        trajectory : Trajectory
        model : torch.nn.Module
            The architecture; its weights are replaced by each checkpoint's in a copy, never in
            ``model`` itself.
        probe : tensor, tuple or dict
            The fixed inputs (same at every checkpoint).
        references : dict of str to (nn.Module or array), optional
            Reference predictors projected after the fit (a model: its outputs on ``probe``).

        Returns
        -------
        self
        """
        source = _ModelOutputs(trajectory, model, probe, self.output_fn, self.device)
        return self._fit_source(source, references, probe)

    def fit_outputs(self, outputs: Any, steps: Any = None, references: Mapping[str, Any] | None = None) -> EssentialDynamics:
        """Fit on precomputed outputs, an array (checkpoints, ...) or a list of per-checkpoint arrays.

        ``steps`` (checkpoints,) defaults to 0, 1, 2, ...; ``references`` must be arrays here.
        """
        return self._fit_source(_ArrayOutputs(outputs, steps), references, None)

    def _fit_source(self, source: _OutputSource, references, probe) -> EssentialDynamics:
        fit = _fit_pca(source, self.n_components, self.solver, self.max_dense_bytes, self.block_size,
                       self.random_state, self.progress, "essential dynamics")
        self._set_pca(fit)
        self.steps_ = source.steps
        self.trajectory_ = fit.projections
        self.geometry_ = None
        if self.n_components >= 2:
            self.geometry_ = _make_geometry(self.geometry).fit(self.trajectory_, self.steps_)
        self.references_ = self._project_references(references, probe, self.device)
        return self

    def fit_geometry(self, geometry: Any = None, **params: Any) -> EssentialDynamics:
        """Refit ``geometry_`` on the projected trajectory (no new forward passes); returns self.

        ``ed.fit_geometry(smoothing=4, smoothing_late=12)`` tries another smoothing.
        """
        self._check_fitted()
        estimator = _make_geometry(geometry if geometry is not None else (params or None))
        self.geometry_ = estimator.fit(self.trajectory_, self.steps_)
        return self

    @property
    def milestone_steps_(self) -> np.ndarray:
        """Training steps of the milestones found by ``geometry_``, shape (milestones,)."""
        self._check_fitted()
        return np.array([]) if self.geometry_ is None else self.geometry_.milestone_steps_

    def plot(self, planes: Sequence[tuple[int, int]] | None = None, circles: bool = False, evolute: bool = False):
        """Trajectory in PC planes (coloured by step, milestones marked) and explained variance.

        See :func:`devinterp_viz.plotting.plot_essential_dynamics`.
        """
        from devinterp_viz.plotting import plot_essential_dynamics

        self._check_fitted()
        return plot_essential_dynamics(self, planes=planes, circles=circles, evolute=evolute)


def essential_dynamics(trajectory: Trajectory | Any, model: nn.Module | None = None, probe: Any = None,
                       output_fn: OutputFn | None = None, n_components: int = 3, *, steps: Any = None,
                       references: Mapping[str, Any] | None = None, geometry: Any = None, solver: str = "auto",
                       max_dense_bytes: float = MAX_DENSE_BYTES, block_size: int | None = None,
                       random_state: Any = 0, device: Any = None, progress: bool = True) -> EssentialDynamics:
    """Essential dynamics of a trajectory: ``essential_dynamics(trajectory, model, probe)``.

    Or of precomputed outputs: ``essential_dynamics(outputs, steps=steps)`` with ``outputs`` of
    shape (checkpoints, ...). Returns a fitted :class:`EssentialDynamics` (``trajectory_``,
    ``explained_variance_ratio_``, ``components_``, ``steps_``, ``geometry_`` with the milestones);
    the other arguments are its parameters.
    """
    estimator = EssentialDynamics(n_components=n_components, output_fn=output_fn, solver=solver,
                                  max_dense_bytes=max_dense_bytes, block_size=block_size, geometry=geometry,
                                  random_state=random_state, device=device, progress=progress)
    if isinstance(trajectory, Trajectory):
        if model is None:
            raise ValueError("essential_dynamics(trajectory, model, probe): a trajectory needs the model architecture.")
        if steps is not None:
            raise ValueError("steps come from the trajectory; pass steps only with precomputed outputs.")
        return estimator.fit(trajectory, model, probe, references=references)
    if model is not None:
        raise TypeError(f"expected a Trajectory as the first argument when a model is given, got {type(trajectory).__name__}.")
    return estimator.fit_outputs(trajectory, steps=steps, references=references)


class JointEssentialDynamics(_TrajectoryPCA):
    """Joint trajectory PCA: several runs' outputs on the same probe, one basis, each run projected.

    Parameters are those of :class:`EssentialDynamics`.

    Attributes
    ----------
    run_names_ : list of str
    steps_ : dict of str to np.ndarray, shape (checkpoints_r,)
    trajectories_ : dict of str to np.ndarray, shape (checkpoints_r, n_components)
        Each run projected on the joint components.
    components_, mean_, explained_variance_, explained_variance_ratio_, singular_values_,
    n_outputs_, output_shape_, solver_
        As in :class:`EssentialDynamics`, fitted on all runs' checkpoints stacked.
    geometries_ : dict of str to TrajectoryGeometry
        Each run's geometry in the joint basis (empty when n_components < 2).
    references_ : dict of str to np.ndarray, shape (m, n_components)
        Reference predictors projected after the fit; they never enter it.

    Notes
    -----
    Rows of all runs are stacked, ``X = [X_1; X_2; …] ∈ R^{(Σ T_r)×P}``, centred on the mean over
    all of them, and decomposed once; run r's trajectory is ``(X_r − 1μᵀ) V_k``. Runs thereby
    share axes and can be compared in one plane. Components are oriented by the first run.

    References
    ----------
    Carroll, Hoogland, Farrugia-Roberts, Murfet, et al. Dynamics of Transient Structure in
    In-Context Linear Regression Transformers. 2025.
    """

    def fit(self, trajectories: Mapping[str, Trajectory], model: nn.Module | Mapping[str, nn.Module], probe: Any,
            references: Mapping[str, Any] | None = None) -> JointEssentialDynamics:
        """Fit on ``{run name: Trajectory}``; ``model`` is one architecture or ``{run name: model}``."""
        runs = self._check_runs(trajectories)
        models = model if isinstance(model, Mapping) else {name: model for name in runs}
        missing = [name for name in runs if name not in models]
        if missing:
            raise ValueError(f"no model given for run(s) {missing}.")
        sources = [_ModelOutputs(trajectories[name], models[name], probe, self.output_fn, self.device, run=name)
                   for name in runs]
        return self._fit_sources(runs, sources, references, probe)

    def fit_outputs(self, outputs: Mapping[str, Any], steps: Mapping[str, Any] | None = None,
                    references: Mapping[str, Any] | None = None) -> JointEssentialDynamics:
        """Fit on precomputed ``{run name: outputs (checkpoints, ...)}`` (steps per run optional)."""
        runs = self._check_runs(outputs)
        steps = steps or {}
        sources = [_ArrayOutputs(outputs[name], steps.get(name), run=name) for name in runs]
        return self._fit_sources(runs, sources, references, None)

    @staticmethod
    def _check_runs(runs: Any) -> list[str]:
        if not isinstance(runs, Mapping) or not runs:
            raise ValueError("give the runs as a non-empty dict {run name: trajectory or outputs}.")
        return [str(name) for name in runs]

    def _fit_sources(self, runs: list[str], sources: list[_OutputSource], references, probe) -> JointEssentialDynamics:
        stacked = _StackedOutputs(sources)
        fit = _fit_pca(stacked, self.n_components, self.solver, self.max_dense_bytes, self.block_size,
                       self.random_state, self.progress, "joint essential dynamics")
        self._set_pca(fit)
        self.run_names_ = runs
        offsets = stacked.offsets
        self.steps_ = {name: source.steps for name, source in zip(runs, sources)}
        self.trajectories_ = {name: fit.projections[offsets[i]:offsets[i + 1]] for i, name in enumerate(runs)}
        self.geometries_ = {}
        if self.n_components >= 2:
            self.geometries_ = {name: _make_geometry(self.geometry).fit(self.trajectories_[name], self.steps_[name])
                                for name in runs}
        self.references_ = self._project_references(references, probe, self.device)
        return self

    def plot(self, plane: tuple[int, int] = (0, 1)):
        """All runs (and references) in one PC plane, with the explained variance.

        See :func:`devinterp_viz.plotting.plot_joint_essential_dynamics`.
        """
        from devinterp_viz.plotting import plot_joint_essential_dynamics

        self._check_fitted()
        return plot_joint_essential_dynamics(self, plane=plane)


def joint_essential_dynamics(runs: Mapping[str, Any], model: nn.Module | Mapping[str, nn.Module] | None = None,
                             probe: Any = None, output_fn: OutputFn | None = None, n_components: int = 3, *,
                             steps: Mapping[str, Any] | None = None, references: Mapping[str, Any] | None = None,
                             geometry: Any = None, solver: str = "auto", max_dense_bytes: float = MAX_DENSE_BYTES,
                             block_size: int | None = None, random_state: Any = 0, device: Any = None,
                             progress: bool = True) -> JointEssentialDynamics:
    """Joint essential dynamics of several runs on one probe (Carroll et al. 2025).

    ``joint_essential_dynamics({name: trajectory}, model, probe)`` or, from precomputed outputs,
    ``joint_essential_dynamics({name: outputs (checkpoints, ...)}, steps={name: steps})``.
    Returns a fitted :class:`JointEssentialDynamics`; ``references`` (models or output arrays)
    are projected on the joint basis without entering the fit.
    """
    estimator = JointEssentialDynamics(n_components=n_components, output_fn=output_fn, solver=solver,
                                       max_dense_bytes=max_dense_bytes, block_size=block_size, geometry=geometry,
                                       random_state=random_state, device=device, progress=progress)
    if isinstance(runs, Mapping) and runs and all(isinstance(r, Trajectory) for r in runs.values()):
        if model is None:
            raise ValueError("joint_essential_dynamics({name: trajectory}, model, probe): trajectories need the model.")
        return estimator.fit(runs, model, probe, references=references)
    if model is not None:
        raise TypeError("with a model, every run must be a Trajectory; without one, every run must be an output array.")
    return estimator.fit_outputs(runs, steps=steps, references=references)
