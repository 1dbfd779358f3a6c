"""What the SusceptibilityExplorer shows, computed from results with observables: grids over components and checkpoints, embeddings, kernel orders, top influences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from devinterp_viz.analysis.covariances import Covariance, bif, cross_covariance, loss_kernel, response_matrix, susceptibilities
from devinterp_viz.analysis.sweep import SweepResult
from devinterp_viz.engine.results import LLCResult

EMBEDDING_METHODS = ("auto", "umap", "pca", "tsne")
EMBEDDING_FEATURES = ("auto", "susceptibility", "kernel")
UMAP_MIN_SAMPLES = 15  # below this UMAP's neighbour graph is too thin to mean much; PCA is used


@dataclass
class ResultGrid:
    """Results with observables laid out by component and checkpoint.

    Attributes
    ----------
    components : list of str
        The weight selections each sampled on its own (``"all"`` for one whole-model result).
    steps : np.ndarray, shape (checkpoints,)
    results : dict of (str, int) to LLCResult
        ``(component, checkpoint index) -> result``; missing keys were not computed.
    """

    components: list[str]
    steps: np.ndarray
    results: dict[tuple[str, int], LLCResult]

    def at(self, checkpoint: int) -> dict[str, LLCResult]:
        """The results of one checkpoint, by component (in the components' order)."""
        return {c: self.results[(c, checkpoint)] for c in self.components if (c, checkpoint) in self.results}

    @property
    def observables(self) -> list[str]:
        """Names of the observables every result recorded, in the first result's order."""
        first, *rest = self.results.values()
        return [name for name in first.observables if all(name in r.observables for r in rest)]


def result_grid(results: LLCResult | Mapping[str, LLCResult] | SweepResult, distribution: str | None = None) -> ResultGrid:
    """Lay out one result, a ``{component: result}`` mapping or a sweep by component and checkpoint.

    Parameters
    ----------
    results : LLCResult, mapping of str to LLCResult, or SweepResult
        Estimated with ``observables=`` and ``per_sample_loss=``; a sweep's selections are the
        components (``sweep_llc(..., selections="heads")``).
    distribution : str, optional
        Which of a sweep's data distributions to read (default: its first).
    """
    if isinstance(results, LLCResult):
        return ResultGrid(["all"], np.zeros(1), {("all", 0): _checked(results, "results")})
    if isinstance(results, SweepResult):
        dist = distribution if distribution is not None else results.distributions[0]
        if dist not in results.distributions:
            raise ValueError(f"distribution={dist!r} is not in the sweep; it has {results.distributions}.")
        found = {(sel, index): _checked(res, f"sweep result {(sel, dist, index)}") for (sel, d, index), res in results.results.items()
                 if d == dist and not res.config.get("failed")}
        if not found:
            raise ValueError(f"the sweep has no finished estimate under distribution {dist!r}; run it (or resume it) first.")
        return ResultGrid(list(results.selections), np.asarray(results.steps, dtype=float), found)
    if isinstance(results, Mapping) and results and all(isinstance(r, LLCResult) for r in results.values()):
        return ResultGrid([str(c) for c in results], np.zeros(1),
                          {(str(c), 0): _checked(r, f"results[{c!r}]") for c, r in results.items()})
    raise TypeError(
        "results must be an LLCResult, a non-empty {component: LLCResult} mapping (estimate_llc_selections) or a "
        f"SweepResult, each estimated with observables= and per_sample_loss=; got {type(results).__name__}."
    )


def _checked(result: LLCResult, what: str) -> LLCResult:
    if not result.observables:
        raise ValueError(f"{what} recorded no observables; estimate it with observables={{'name': data}} and per_sample_loss=...")
    return result


def susceptibility_grid(grid: ResultGrid, name: str, loss_observable: str | None = None) -> Covariance:
    """Per-sample susceptibilities of observable ``name`` for every component at every checkpoint.

    ``loss_observable`` is passed to :func:`susceptibilities` (the observable whose mean stands for L).

    Returns
    -------
    Covariance
        ``value`` and ``stderr`` of shape (checkpoints, components, samples); NaN where not computed.
    """
    found = {key: susceptibilities(result, name, loss_observable) for key, result in grid.results.items()}
    samples = next(iter(found.values())).shape[0]
    value = np.full((len(grid.steps), len(grid.components), samples), np.nan)
    stderr = value.copy()
    for (component, checkpoint), chi in found.items():
        value[checkpoint, grid.components.index(component)] = chi.value
        stderr[checkpoint, grid.components.index(component)] = chi.stderr
    return Covariance(value, stderr)


def response_grid(grid: ResultGrid, probes: Sequence[str], loss_observable: str | None = None) -> Covariance:
    """The component × probe response matrix (:func:`response_matrix`) at every checkpoint.

    Returns
    -------
    Covariance
        ``value`` and ``stderr`` of shape (checkpoints, components, probes); NaN where not computed.
    """
    value = np.full((len(grid.steps), len(grid.components), len(probes)), np.nan)
    stderr = value.copy()
    for checkpoint in range(len(grid.steps)):
        present = grid.at(checkpoint)
        if not present:
            continue
        matrix = response_matrix(present, probes, loss_observable)
        rows = [grid.components.index(c) for c in present]
        value[checkpoint, rows], stderr[checkpoint, rows] = matrix.value, matrix.stderr
    return Covariance(value, stderr)


def token_features(grid: ResultGrid, name: str, chi: Covariance, max_kernel_samples: int = 2000,
                   kind: str = "auto") -> tuple[np.ndarray, str]:
    """What each sample is embedded by, at every checkpoint.

    ``kind="susceptibility"``: each sample's susceptibility vector (its χ under every component,
    Baker et al. 2025). ``kind="kernel"``: its row of the loss kernel's correlations (Adam et al.
    2025) under the first component or, above ``max_kernel_samples`` samples (the kernel would be samples × samples), its
    standardised loss draws (:func:`standardized_draws`), whose inner products are that kernel:
    the same geometry. ``kind="auto"``: susceptibility vectors with several components, the
    kernel with one (a single χ per sample is a line, not a map). The description says which,
    and why.

    Returns
    -------
    features : np.ndarray, shape (checkpoints, samples, features)
        Non-finite entries (estimates not computed) set to 0.
    description : str
    """
    if kind not in EMBEDDING_FEATURES:
        raise ValueError(f"embedding_features={kind!r}; choose one of {', '.join(EMBEDDING_FEATURES)}.")
    chosen = kind if kind != "auto" else ("susceptibility" if len(grid.components) > 1 else "kernel")
    why = "" if kind != "auto" else f" (auto: {len(grid.components)} component{'s' if len(grid.components) > 1 else ''})"
    first = {checkpoint: result for (component, checkpoint), result in grid.results.items() if component == grid.components[0]}
    if chosen == "susceptibility":
        features, description = np.moveaxis(chi.value, 1, 2), "susceptibility vectors (χ under each component)"
    elif chi.shape[-1] > max_kernel_samples:
        draws = {checkpoint: standardized_draws(result, name) for checkpoint, result in first.items()}
        width = max(d.shape[1] for d in draws.values())
        features = np.zeros((len(grid.steps), chi.shape[-1], width))
        for checkpoint, d in draws.items():
            features[checkpoint, :, : d.shape[1]] = d
        description = (f"standardised loss draws (the loss kernel's geometry: {chi.shape[-1]} samples, "
                       f"above max_kernel_samples={max_kernel_samples})")
    else:
        features = np.full((len(grid.steps), chi.shape[-1], chi.shape[-1]), np.nan)
        for checkpoint, result in first.items():
            features[checkpoint] = loss_kernel(result, name, correlation=True).value
        description = "loss-kernel correlation rows"
    if chosen == "kernel" and len(grid.components) > 1:
        description += f" under {grid.components[0]}"
    return np.where(np.isfinite(features), features, 0.0), description + why


def standardized_draws(result: LLCResult, name: str) -> np.ndarray:
    """Each sample's loss draws, centred per chain and scaled so that their inner products are the loss kernel's correlations.

    Returns
    -------
    np.ndarray, shape (samples, chains · draws)
        ``Z Zᵀ`` equals ``loss_kernel(result, name, correlation=True).value``.
    """
    values = np.asarray(result.observables[name], dtype=np.float64)
    chains, draws, samples = values.shape
    centred = values - values.mean(axis=1, keepdims=True)
    scale = np.sqrt(np.clip((centred**2).sum(axis=(0, 1)), 1e-300, None))
    return (centred / scale).reshape(chains * draws, samples).T


def embed(features: np.ndarray, method: str = "auto", random_state: int = 0) -> tuple[np.ndarray, str]:
    """A 2-D embedding of every checkpoint's samples together (so positions compare across checkpoints).

    Parameters
    ----------
    features : np.ndarray, shape (checkpoints, samples, features)
    method : {"auto", "umap", "pca", "tsne"}
        ``"auto"``: UMAP when umap-learn is installed and there are at least
        ``UMAP_MIN_SAMPLES`` points, else PCA.
    random_state : int

    Returns
    -------
    embedding : np.ndarray, shape (checkpoints, samples, 2)
    method : str
        The method used.
    """
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"embedding={method!r}; choose one of {', '.join(EMBEDDING_METHODS)}.")
    checkpoints, samples, width = features.shape
    points = features.reshape(checkpoints * samples, width)
    if method == "auto":
        method = "umap" if _has_umap() and len(points) >= UMAP_MIN_SAMPLES else "pca"
    if method == "umap":
        if not _has_umap():
            raise ValueError("embedding='umap' needs umap-learn (pip install umap-learn); or pass embedding='pca' or 'tsne'.")
        import umap

        embedded = umap.UMAP(n_components=2, n_neighbors=min(15, len(points) - 1), random_state=random_state, n_jobs=1).fit_transform(points)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        embedded = TSNE(n_components=2, perplexity=min(30.0, (len(points) - 1) / 3), random_state=random_state).fit_transform(points)
    else:
        embedded = _pca(points, random_state)
    return np.asarray(embedded, dtype=float).reshape(checkpoints, samples, 2), method


def _has_umap() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def _pca(points: np.ndarray, random_state: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    components = min(2, *points.shape)
    embedded = PCA(n_components=components, random_state=random_state).fit_transform(points)
    return np.column_stack([embedded, np.zeros((len(points), 2 - components))])


def kernel_order(correlation: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering of samples by correlation distance 1 − ρ.

    Parameters
    ----------
    correlation : np.ndarray, shape (samples, samples)

    Returns
    -------
    np.ndarray of int, shape (samples,)
        Samples that move together under the posterior sit next to each other.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if len(correlation) < 3:
        return np.arange(len(correlation))
    distance = np.clip(1.0 - np.nan_to_num(correlation, nan=0.0), 0.0, 2.0)
    distance = (distance + distance.T) / 2
    np.fill_diagonal(distance, 0.0)
    return leaves_list(linkage(squareform(distance, checks=False), method="average"))


def top_influences(influence: Covariance, k: int, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each sample's ``k`` largest influences by magnitude (its BIF row, itself left out).

    Parameters
    ----------
    influence : Covariance
        :func:`bif` of one observable, ``value`` of shape (rows, samples).
    k : int
    rows : np.ndarray of int, shape (rows,), optional
        Which samples the rows are (default: all, in order).

    Returns
    -------
    dict
        ``index`` (rows, k) of the other samples, ``value`` and ``stderr`` (rows, k) of
        their BIF, in decreasing |BIF|.
    """
    value = np.array(influence.value, dtype=float)
    rows = np.arange(len(value)) if rows is None else np.asarray(rows)
    value[np.arange(len(value)), rows] = 0.0
    k = min(k, value.shape[1] - 1)
    order = np.argsort(-np.abs(value), axis=1, kind="stable")[:, :k]
    at = np.arange(len(value))[:, None]
    return {"index": order, "value": influence.value[at, order], "stderr": influence.stderr[at, order]}


def kernel_view(result: LLCResult, name: str, k: int, max_samples: int | None = None, chunk: int = 256) -> dict[str, np.ndarray]:
    """The loss-kernel and influence panels of one estimate.

    Parameters
    ----------
    result : LLCResult
    name : str
    k : int
        Influences kept per sample.
    max_samples : int, optional
        Above this many samples only the top influences are computed, ``chunk`` rows of the BIF
        at a time (memory chunk × samples, never samples × samples).

    Returns
    -------
    dict
        ``correlation`` (samples, samples) of the loss kernel, ``order`` (samples,) from
        :func:`kernel_order`, ``bif`` and ``bif_stderr`` (samples, samples), and the
        :func:`top_influences` as ``top_index``, ``top_value``, ``top_stderr`` (samples, k);
        above ``max_samples`` the last three only.
    """
    samples = result.observables[name].shape[-1]
    if max_samples is not None and samples > max_samples:
        values = np.asarray(result.observables[name], dtype=np.float64)
        parts = []
        for start in range(0, samples, chunk):
            rows = np.arange(start, min(start + chunk, samples))
            cov = cross_covariance(values[..., rows], values)
            parts.append(top_influences(Covariance(-cov.value, cov.stderr), k, rows))
        return {f"top_{key}": np.concatenate([p[key] for p in parts]) for key in ("index", "value", "stderr")}
    correlation = loss_kernel(result, name, correlation=True).value
    influence = bif(result, name)
    top = top_influences(influence, k)
    return {"correlation": correlation, "order": kernel_order(correlation), "bif": influence.value,
            "bif_stderr": influence.stderr, "top_index": top["index"], "top_value": top["value"], "top_stderr": top["stderr"]}
