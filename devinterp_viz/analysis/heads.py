"""Attention-head analysis: refined-LLC signatures, their clustering and embedding, behavioural scores."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from devinterp_viz.analysis.sweep import SweepResult


class HeadSignatures(BaseEstimator):
    """Each head's refined-LLC curve over training, normalised: the features heads are clustered on.

    Parameters
    ----------
    normalize : {"max", "zscore", None}
        Per head and per distribution: divide by the curve's maximum absolute value
        (compares shapes, Wang et al.'s choice), standardise, or keep raw values.
    distributions : list of str, optional
        Which data distributions of the sweep to use (default all), concatenated per head.
    untrusted : {"keep", "drop"}
        What to do with checkpoints where some head's estimate is one the verdict does not trust
        (unhealthy, or undefined: w* not a local minimum): keep them in the features (``trusted_``
        says which they are), or drop those checkpoints for every head.

    Attributes
    ----------
    signatures_ : np.ndarray, shape (heads, distributions × checkpoints)
    heads_ : list of str
        Head labels (the sweep's selections), one per row.
    steps_ : np.ndarray, shape (checkpoints,)
    distributions_ : list of str
    curves_ : np.ndarray, shape (heads, distributions, checkpoints)
        The unnormalised curves.
    trusted_ : np.ndarray of bool, shape (heads, distributions, checkpoints)
        Where the verdict trusts the estimate (healthy, not undefined).
    untrusted_heads_ : list of str
        Heads whose kept curve rests on an estimate the verdict does not trust.

    References
    ----------
    Wang, Hoogland, van Wingerden, Furman, Murfet. Differentiation and Specialization of
    Attention Heads via the Refined Local Learning Coefficient. 2024.
    """

    def __init__(self, normalize: str | None = "max", distributions: list[str] | None = None, untrusted: str = "keep"):
        self.normalize = normalize
        self.distributions = distributions
        self.untrusted = untrusted

    def fit(self, sweep: SweepResult) -> HeadSignatures:
        """Read the per-head curves of a sweep (``sweep_llc(..., selections="heads")``)."""
        if self.normalize not in ("max", "zscore", None):
            raise ValueError(f"normalize must be 'max', 'zscore' or None, got {self.normalize!r}.")
        if self.untrusted not in ("keep", "drop"):
            raise ValueError(f"untrusted must be 'keep' or 'drop', got {self.untrusted!r}.")
        names = self.distributions or sweep.distributions
        missing = [d for d in names if d not in sweep.distributions]
        if missing:
            raise ValueError(f"distributions {missing} are not in the sweep; it has {sweep.distributions}.")
        columns = [sweep.distributions.index(d) for d in names]
        curves = sweep.llc_mean[:, columns, :]
        if not np.isfinite(curves).all():
            raise ValueError("the sweep has missing or non-finite estimates; finish the sweep (or drop those checkpoints) first.")
        if len(sweep.selections) < 2:
            raise ValueError("head analysis needs a sweep over at least two heads (selections='heads').")
        trusted = sweep.healthy[:, columns, :] & ~sweep.undefined[:, columns, :]
        steps = np.asarray(sweep.steps)
        if self.untrusted == "drop":
            kept = trusted.all(axis=(0, 1))
            if not kept.any():
                raise ValueError("every checkpoint has an estimate the verdict does not trust, so untrusted='drop' leaves "
                                 "nothing to cluster: sample longer or lower lr (see sweep.healthy), or use untrusted='keep'.")
            curves, trusted, steps = curves[..., kept], trusted[..., kept], steps[kept]
        self.curves_, self.trusted_ = curves, trusted
        self.heads_ = list(sweep.selections)
        self.untrusted_heads_ = [head for head, ok in zip(self.heads_, trusted.all(axis=(1, 2))) if not ok]
        self.steps_ = steps
        self.distributions_ = list(names)
        self.signatures_ = _normalise(curves, self.normalize).reshape(len(self.heads_), -1)
        return self


def _normalise(curves: np.ndarray, how: str | None) -> np.ndarray:
    if how is None:
        return curves.copy()
    if how == "max":
        scale = np.abs(curves).max(axis=-1, keepdims=True)
        return curves / np.where(scale > 0, scale, 1.0)
    centred = curves - curves.mean(axis=-1, keepdims=True)
    spread = curves.std(axis=-1, keepdims=True)
    return centred / np.where(spread > 0, spread, 1.0)


class HeadClustering(BaseEstimator):
    """Cluster heads by their signatures; suggest the number of clusters; embed heads in 2-D.

    Parameters
    ----------
    n_clusters : int, optional
        Number of clusters; None picks the one with the best silhouette score in
        ``2..max_clusters``.
    method : {"agglomerative", "kmeans"}
        Ward-linkage agglomerative clustering (with a dendrogram) or k-means.
    max_clusters : int
        Largest number of clusters the suggestion considers.
    random_state : int
        Seed for k-means and the embedding.

    Attributes
    ----------
    labels_ : np.ndarray of int, shape (heads,)
    n_clusters_ : int
    silhouette_ : dict of int to float
        Silhouette score of every candidate number of clusters.
    linkage_ : np.ndarray, shape (heads − 1, 4)
        scipy linkage matrix (Ward) for the dendrogram, whatever the method.
    order_ : np.ndarray of int, shape (heads,)
        Leaf order of the dendrogram (for heatmaps of heads × checkpoints).
    embedding_ : np.ndarray, shape (heads, 2)
        UMAP of the signatures when there are at least ``UMAP_MIN_HEADS`` heads, else PCA.
    embedding_method_ : str
    """

    UMAP_MIN_HEADS = 15  # below this UMAP's neighbour graph is too thin to mean much; PCA is used

    def __init__(self, n_clusters: int | None = None, method: str = "agglomerative", max_clusters: int = 8,
                 random_state: int = 0):
        self.n_clusters = n_clusters
        self.method = method
        self.max_clusters = max_clusters
        self.random_state = random_state

    def fit(self, signatures: HeadSignatures | np.ndarray) -> HeadClustering:
        """Cluster the rows of ``signatures`` (a fitted HeadSignatures or an array (heads, features))."""
        from scipy.cluster.hierarchy import leaves_list, linkage
        from sklearn.metrics import silhouette_score

        features = signatures.signatures_ if isinstance(signatures, HeadSignatures) else np.asarray(signatures, float)
        heads = features.shape[0]
        if self.method not in ("agglomerative", "kmeans"):
            raise ValueError(f"method must be 'agglomerative' or 'kmeans', got {self.method!r}.")
        if isinstance(self.max_clusters, bool) or not isinstance(self.max_clusters, numbers.Integral) or self.max_clusters < 2:
            raise ValueError(f"max_clusters must be an integer >= 2 (the most clusters the suggestion tries), got "
                             f"{self.max_clusters!r}; to put every head in one cluster pass n_clusters=1.")
        if self.n_clusters is not None and (isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, numbers.Integral)):
            raise ValueError(f"n_clusters must be None (suggested) or an integer, got {self.n_clusters!r}.")
        if heads < 3:
            raise ValueError(f"clustering needs at least 3 heads, got {heads}.")
        candidates = range(2, min(self.max_clusters, heads - 1) + 1)
        if self.n_clusters is not None and not 1 <= self.n_clusters <= heads:
            raise ValueError(f"n_clusters must be between 1 and the number of heads ({heads}), got {self.n_clusters}.")
        self.silhouette_ = {}
        for k in candidates:
            labels = self._cluster(features, k)
            self.silhouette_[k] = float(silhouette_score(features, labels)) if len(set(labels)) > 1 else -1.0
        self.n_clusters_ = self.n_clusters or max(self.silhouette_, key=self.silhouette_.get)
        self.labels_ = self._cluster(features, self.n_clusters_)
        self.linkage_ = linkage(features, method="ward")
        self.order_ = leaves_list(self.linkage_)
        self.embedding_, self.embedding_method_ = self._embed(features)
        return self

    def _cluster(self, features: np.ndarray, k: int) -> np.ndarray:
        if k == 1:
            return np.zeros(features.shape[0], dtype=int)
        if self.method == "kmeans":
            from sklearn.cluster import KMeans

            return KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit_predict(features)
        from sklearn.cluster import AgglomerativeClustering

        return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(features)

    def _embed(self, features: np.ndarray) -> tuple[np.ndarray, str]:
        if features.shape[0] >= self.UMAP_MIN_HEADS:
            try:
                import umap
            except ImportError:
                pass  # umap-learn is optional: pip install 'devinterp_viz[analysis]'
            else:
                reducer = umap.UMAP(n_components=2, n_neighbors=min(15, features.shape[0] - 1),
                                    random_state=self.random_state)
                return reducer.fit_transform(features), "umap"
        from sklearn.decomposition import PCA

        components = min(2, features.shape[0], features.shape[1])
        embedded = PCA(n_components=components, random_state=self.random_state).fit_transform(features)
        if components < 2:
            embedded = np.column_stack([embedded, np.zeros(features.shape[0])])
        return embedded, "pca"

    def agreement(self, reference_labels: Any) -> float:
        """Adjusted Rand index between the clusters and reference labels (e.g. behavioural types)."""
        from sklearn.metrics import adjusted_rand_score

        return float(adjusted_rand_score(np.asarray(reference_labels), self.labels_))

    def role_summary(self, reference_labels: Any, roles: list[str] | None = None) -> list[str]:
        """One sentence per role: the clusters its heads fall in, and which other roles share them.

        Parameters
        ----------
        reference_labels : array-like of str, shape (heads,)
            E.g. :func:`behaviour_labels`.
        roles : list of str, optional
            The roles to describe (default every label but ``"other"``).
        """
        reference = np.asarray(reference_labels)
        if reference.shape != self.labels_.shape:
            raise ValueError(f"reference_labels needs one label per head ({self.labels_.size}), got shape {reference.shape}.")
        lines = []
        for role in roles or [r for r in dict.fromkeys(reference.tolist()) if r != "other"]:
            own = sorted({int(c) for c in self.labels_[reference == role]})
            if not own:
                lines.append(f"no {role} heads")
                continue
            shared = sorted(set(reference[np.isin(self.labels_, own)].tolist()) - {role})
            where = f"cluster{'s' if len(own) > 1 else ''} {', '.join(map(str, own))}"
            lines.append(f"{role} heads: {where}, " + (f"shared with {', '.join(shared)} heads" if shared else "a cluster of their own"))
        return lines


# ----------------------------------------------------------------- behavioural scores


def _diagonal_mean(attention: np.ndarray, offset: int, skip: int = 0) -> np.ndarray:
    """Mean over batch and query positions of the (offset) diagonal; (..., batch, heads, q, k) → (..., heads)."""
    diagonal = np.diagonal(np.asarray(attention), offset=offset, axis1=-2, axis2=-1)[..., skip:]
    return diagonal.mean(axis=-1).mean(axis=-2)


def previous_token_score(attention: np.ndarray) -> np.ndarray:
    """Mean attention from each position to the one before it.

    Parameters
    ----------
    attention : array_like, shape (..., batch, heads, query, key)
        Attention patterns (rows sum to 1) on any probe text; leading axes (e.g. layers) are kept.

    Returns
    -------
    np.ndarray, shape (..., heads)
        1 for a perfect previous-token head.
    """
    return _diagonal_mean(attention, offset=-1)


def current_token_score(attention: np.ndarray) -> np.ndarray:
    """Mean attention from each position to itself, position 0 (which has no other choice) left out.

    Shapes as in :func:`previous_token_score`.
    """
    return _diagonal_mean(attention, offset=0, skip=1)


def induction_score(attention: np.ndarray, period: int) -> np.ndarray:
    """Mean attention to the token after the previous occurrence, on repeated random sequences.

    Parameters
    ----------
    attention : array_like, shape (..., batch, heads, query, key)
        Patterns on sequences made of a random block of length ``period`` repeated (the
        block's tokens distinct, so each token's previous occurrence is unique).
    period : int
        Length of the repeated block.

    Returns
    -------
    np.ndarray, shape (..., heads)
        For query positions ``i ≥ period``, the attention on key ``i − period + 1``: what an
        induction head attends to (Olsson et al. 2022; TransformerLens' induction score).
    """
    attention = np.asarray(attention)
    if attention.shape[-2] <= period:
        raise ValueError(f"sequences of length {attention.shape[-2]} hold no repeat of a block of length {period}.")
    return _diagonal_mean(attention, offset=-(period - 1), skip=1)


def repeated_random_tokens(num_sequences: int, period: int, repeats: int, vocab_size: int, seed: int = 0) -> np.ndarray:
    """Random blocks of distinct tokens repeated ``repeats`` times: the induction-score probe.

    Returns
    -------
    np.ndarray of int64, shape (num_sequences, period × repeats)
    """
    if period > vocab_size:
        raise ValueError(f"a block of {period} distinct tokens needs a vocabulary of at least {period}.")
    rng = np.random.default_rng(seed)
    blocks = np.stack([rng.permutation(vocab_size)[:period] for _ in range(num_sequences)])
    return np.tile(blocks, (1, repeats)).astype(np.int64)


def behaviour_labels(scores: dict[str, np.ndarray], threshold: float) -> np.ndarray:
    """Each head's dominant behaviour among ``scores`` (name → (heads,)) if above ``threshold``, else "other"."""
    names = list(scores)
    table = np.stack([np.asarray(scores[n], float) for n in names])
    best = table.argmax(axis=0)
    return np.array([names[b] if table[b, h] >= threshold else "other" for h, b in enumerate(best)])
