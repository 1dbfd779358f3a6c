"""HeadClusterWidget: attention heads' refined-LLC signatures, their clusters, embedding and behaviour, linked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import traitlets

from devinterp_viz.widgets._base import DvzWidget
from devinterp_viz.widgets._transport import PackedTrait


class HeadClusterWidget(DvzWidget):
    """Explore how attention heads cluster by their refined-LLC curves over training.

    Views: every head's signature as a small multiple and as a row of a heads × checkpoints
    heatmap ordered by the dendrogram (drawn beside it); the 2-D embedding of the heads coloured
    by cluster; the behavioural scores beside each head's cluster; and, for the selected head,
    its curve under every distribution, its scores and its attention pattern on a probe
    sequence, beside an overview of every head's pattern. Clicking a head in any view selects it
    everywhere (the ``selected_head`` trait). Clusters are numbered as
    :attr:`HeadClustering.labels_` (from 0); a cluster keeps its colour across reclusterings
    when it is mostly the same heads (matched by overlap).
    The number of clusters, the distribution switch and the normalisation of the curves
    recluster in Python (:class:`devinterp_viz.HeadSignatures` and
    :class:`devinterp_viz.HeadClustering` on the chosen signatures).

    Parameters
    ----------
    sweep : SweepResult, optional
        A head sweep (``sweep_llc(..., selections="heads")``); its signatures are fitted with
        :class:`devinterp_viz.HeadSignatures` (``normalize``).
    signatures : HeadSignatures, optional
        Fitted signatures (instead of ``sweep``).
    clustering : HeadClustering, optional
        A fitted clustering of ``signatures`` to show first (its method and ``max_clusters`` are
        kept when reclustering).
    scores : dict of str to array, optional
        Behavioural scores per head (e.g. ``zoo.transformer.head_scores(model)``): arrays of shape
        (heads,) or (layers, heads per layer), in the heads' order.
    attention : array, optional
        Attention patterns on one probe sequence: (heads, query, key), (layers, heads, query,
        key) or ``zoo.transformer.attention_patterns`` output (layers, batch, heads, query, key),
        whose first sequence is used.
    tokens : sequence, optional
        The probe sequence's tokens (axis labels of the attention pattern): strings, or token
        ids turned into labels by ``token_text``. Characters that do not print (control
        characters) are shown escaped, a space as "␣".
    token_text : callable, optional
        ``token_text(token_id) -> str`` for the labels of token ids, e.g.
        :func:`devinterp_viz.zoo.languages.token_text` for the zoo's languages; default: the id.
    normalize : {"max", "zscore", None}
        For signatures fitted from ``sweep`` (the ``normalize`` trait; None = "none").
    method, max_clusters, random_state
        Of the :class:`HeadClustering` used when reclustering.

    Traits (synced)
    ---------------
    selected_head : str
        Label of the selected head ("" = none).
    n_clusters : int, default 0
        Number of clusters; 0 = the silhouette score's suggestion.
    distribution : str, default "all"
        Cluster on the signatures under this distribution only ("all" = all concatenated).
    normalize : {"max", "zscore", "none"}, default "max"
        How each head's curves are scaled before clustering: by their maximum, to zero mean and
        unit variance, or not at all (raw refined LLCs: heads that grow more stand apart).
        Switchable only for a widget built from a sweep (``can_renormalize``).
    data : dict (read-only)
        ``heads``, ``steps``, ``distributions``, ``curves``, ``normalized`` and ``verdicts`` (heads,
        distributions, checkpoints; verdicts 1 healthy, 0 unhealthy, -1 undefined, None without a
        sweep), ``scores`` {``names``, ``values`` (scores, heads)},
        ``attention`` (heads, query, key) or None, ``tokens``.
    clusters : dict (read-only)
        ``labels``, ``order``, ``embedding`` (heads, 2), ``n_clusters``, ``silhouette``,
        ``embedding_method``, ``dendrogram`` {``icoord``, ``dcoord``} (merges, 4), ``colors``
        (n_clusters,): the palette index of each cluster label, kept by overlap across reclusterings.
    error : str (read-only)
    """

    _view = traitlets.Unicode("HeadClusterWidget").tag(sync=True)
    _read_only = ("data", "clusters", "error", "can_recluster", "can_renormalize")
    _extra_kwargs = ("sweep", "signatures", "clustering", "scores", "attention", "tokens", "token_text", "method",
                     "max_clusters", "random_state")

    selected_head = traitlets.Unicode("").tag(sync=True)
    n_clusters = traitlets.Int(0).tag(sync=True)
    distribution = traitlets.Unicode("all").tag(sync=True)
    normalize = traitlets.Unicode("max").tag(sync=True)
    data = PackedTrait()
    clusters = PackedTrait()
    error = traitlets.Unicode("").tag(sync=True)
    can_recluster = traitlets.Bool(True).tag(sync=True)
    can_renormalize = traitlets.Bool(False).tag(sync=True)

    def __init__(self, sweep: Any = None, *, signatures: Any = None, clustering: Any = None, scores: Mapping | None = None,
                 attention: Any = None, tokens: Any = None, token_text: Any = None, normalize: str | None = "max",
                 method: str = "agglomerative",
                 max_clusters: int = 8, random_state: int = 0, **traits: Any):
        from devinterp_viz.analysis.heads import HeadSignatures

        if (sweep is None) == (signatures is None):
            raise TypeError("HeadClusterWidget needs a head sweep or fitted signatures (one of them)")
        self.signatures = signatures if signatures is not None else HeadSignatures(normalize=normalize).fit(sweep)
        self.sweep = sweep
        traits["normalize"] = _NORMALIZE_NAMES.get(getattr(self.signatures, "normalize", None), "none")
        self.method = getattr(clustering, "method", method)
        self.max_clusters = getattr(clustering, "max_clusters", max_clusters)
        self.random_state = getattr(clustering, "random_state", random_state)
        self.clustering = clustering
        heads = list(self.signatures.heads_)
        self._scores = _head_scores(scores, len(heads))
        self._attention = _attention(attention, len(heads))
        super().__init__(**traits)
        self.set_trait("can_renormalize", sweep is not None)
        if self.distribution != "all" and self.distribution not in self.signatures.distributions_:
            raise ValueError(f"distribution {self.distribution!r} is not in the signatures; they have {self.signatures.distributions_}")
        if self.selected_head and self.selected_head not in heads:
            raise ValueError(f"selected_head {self.selected_head!r} is not one of the heads {heads}")
        self._tokens = token_labels(tokens, token_text)
        self._colours: tuple[np.ndarray, np.ndarray] | None = None  # (labels, palette index per label) shown last
        self.data = self._panel_data(self._tokens)
        if clustering is not None and self.n_clusters == 0 and self.distribution == "all":
            self._show(clustering, suggested=clustering.n_clusters_ if clustering.n_clusters is None else None)
        else:
            self.recluster()
        self.observe(lambda change: self.recluster(), names=["n_clusters", "distribution"])
        self.observe(lambda change: self._renormalize(), names=["normalize"])

    @property
    def heads(self) -> list[str]:
        return list(self.signatures.heads_)

    # ------------------------------------------------------------ validation
    @traitlets.validate("selected_head")
    def _valid_head(self, proposal: Any) -> str:
        if proposal.value and hasattr(self, "signatures") and proposal.value not in self.signatures.heads_:
            raise traitlets.TraitError(f"{proposal.value!r} is not one of the heads")
        return proposal.value

    @traitlets.validate("n_clusters")
    def _valid_k(self, proposal: Any) -> int:
        k = int(proposal.value)
        if hasattr(self, "signatures") and not 0 <= k <= len(self.signatures.heads_):
            raise traitlets.TraitError(f"n_clusters must be 0 (suggested) or 1..{len(self.signatures.heads_)}, got {k}")
        return k

    @traitlets.validate("distribution")
    def _valid_distribution(self, proposal: Any) -> str:
        if hasattr(self, "signatures") and proposal.value != "all" and proposal.value not in self.signatures.distributions_:
            raise traitlets.TraitError(f"distribution must be 'all' or one of {self.signatures.distributions_}")
        return proposal.value

    @traitlets.validate("normalize")
    def _valid_normalize(self, proposal: Any) -> str:
        value = proposal.value
        if value not in _NORMALIZE_NAMES.values():
            raise traitlets.TraitError(f"normalize must be one of {sorted(_NORMALIZE_NAMES.values())}, got {value!r}")
        fitted = _NORMALIZE_NAMES.get(getattr(getattr(self, "signatures", None), "normalize", None), "none")
        if hasattr(self, "sweep") and self.sweep is None and value != fitted:
            raise traitlets.TraitError(
                "this widget was built from fitted signatures; build it from the head sweep "
                "(HeadClusterWidget(sweep)) to switch the normalisation"
            )
        return value

    # ------------------------------------------------------------ clustering
    def features(self) -> np.ndarray:
        """The signatures clustered now: all distributions concatenated, or one distribution's."""
        sig = self.signatures
        if self.distribution == "all":
            return sig.signatures_
        per = np.asarray(sig.signatures_).reshape(len(sig.heads_), len(sig.distributions_), -1)
        return per[:, sig.distributions_.index(self.distribution), :]

    def recluster(self) -> Any:
        """Fit :class:`HeadClustering` with the current ``n_clusters`` and ``distribution``; returns it."""
        from devinterp_viz.analysis.heads import HeadClustering

        try:
            fitted = HeadClustering(n_clusters=self.n_clusters or None, method=self.method, max_clusters=self.max_clusters,
                                    random_state=self.random_state).fit(self.features())
        except ValueError as err:
            self.error = str(err)
            return None
        self.clustering = fitted
        self._show(fitted, suggested=fitted.n_clusters_ if not self.n_clusters else None)
        return fitted

    def _renormalize(self) -> None:
        """Refit the signatures from the sweep with the chosen normalisation, then recluster."""
        from devinterp_viz.analysis.heads import HeadSignatures

        mode = {name: key for key, name in _NORMALIZE_NAMES.items()}[self.normalize]
        if getattr(self.signatures, "normalize", None) == mode:
            return
        self.signatures = HeadSignatures(normalize=mode, distributions=self.signatures.distributions_).fit(self.sweep)
        self.data = self._panel_data(self._tokens)
        self.recluster()

    def _show(self, fitted: Any, suggested: int | None) -> None:
        from scipy.cluster.hierarchy import dendrogram

        tree = dendrogram(fitted.linkage_, no_plot=True)
        silhouette = {str(k): float(v) for k, v in fitted.silhouette_.items()}
        best = max(fitted.silhouette_, key=fitted.silhouette_.get) if fitted.silhouette_ else None
        colours = stable_colours(*(self._colours or (None, None)), fitted.labels_)
        self._colours = (np.asarray(fitted.labels_), colours)
        with self.hold_sync():
            self.error = ""
            self.clusters = {
                "colors": colours.astype(np.float32),
                "labels": np.asarray(fitted.labels_, np.float32),
                "order": np.asarray(fitted.order_, np.float32),
                "embedding": np.asarray(fitted.embedding_, np.float32),
                "embedding_method": fitted.embedding_method_,
                "n_clusters": int(fitted.n_clusters_),
                "suggested": suggested if suggested is not None else best,
                "silhouette": silhouette,
                "dendrogram": {"icoord": np.asarray(tree["icoord"], np.float32), "dcoord": np.asarray(tree["dcoord"], np.float32)},
                "distribution": self.distribution,
            }

    def _panel_data(self, tokens: Any) -> dict[str, Any]:
        sig = self.signatures
        curves = np.asarray(sig.curves_, np.float32)
        normalized = np.asarray(sig.signatures_, np.float32).reshape(curves.shape)
        return {
            "heads": list(sig.heads_),
            "steps": np.asarray(sig.steps_, np.float32),
            "distributions": list(sig.distributions_),
            "normalize": str(getattr(sig, "normalize", "")),
            "curves": curves,
            "normalized": normalized,
            "verdicts": self._verdicts(sig),
            "scores": {"names": list(self._scores), "values": np.stack(list(self._scores.values())).astype(np.float32)} if self._scores else None,
            "attention": self._attention,
            "tokens": tokens,
        }

    def _verdicts(self, sig: Any) -> np.ndarray | None:
        """Each estimate's verdict, shape (heads, distributions, checkpoints) float32: 1 healthy, 0
        unhealthy, -1 undefined (w* is not a local minimum); None without the sweep."""
        sweep = getattr(self, "sweep", None)
        if sweep is None:
            return None
        columns = [sweep.distributions.index(d) for d in sig.distributions_]
        rows = [sweep.selections.index(h) for h in sig.heads_]
        verdict = np.where(sweep.undefined, -1.0, sweep.healthy.astype(float))
        return verdict[np.ix_(rows, columns)].astype(np.float32)

    # ------------------------------------------------------------- reading
    def head_index(self, head: str | None = None) -> int:
        return self.heads.index(head or self.selected_head)

    def cluster_of(self, head: str | None = None) -> int:
        """Cluster label of a head (default: the selected one)."""
        return int(self.clustering.labels_[self.head_index(head)])


_NORMALIZE_NAMES = {"max": "max", "zscore": "zscore", None: "none"}  # HeadSignatures' value -> trait value
PALETTE_SIZE = 10  # colours of the browser's categorical palette (js/src/views/linked.js)


def stable_colours(previous_labels: np.ndarray | None, previous_colours: np.ndarray | None,
                   labels: np.ndarray) -> np.ndarray:
    """Palette index of each cluster of ``labels``, matched to the colours shown before by overlap.

    Parameters
    ----------
    previous_labels : array of int, shape (heads,), or None
        The cluster of each head shown before (None: nothing shown yet, colour = label).
    previous_colours : array of int, shape (previous clusters,), or None
        The palette index of each previous cluster.
    labels : array of int, shape (heads,)
        The new clusters.

    Returns
    -------
    np.ndarray of int, shape (clusters,)
        Palette index per new label: the new clusters and the old colours are paired to share
        the most heads (the assignment problem, solved exactly); clusters left over take the
        lowest unused indices.
    """
    from scipy.optimize import linear_sum_assignment

    labels = np.asarray(labels, dtype=int)
    k = int(labels.max()) + 1 if labels.size else 0
    if previous_labels is None:
        return np.arange(k) % PALETTE_SIZE
    old = np.asarray(previous_colours, dtype=int)[np.asarray(previous_labels, dtype=int)]  # colour of each head
    overlap = np.zeros((k, PALETTE_SIZE), dtype=int)
    np.add.at(overlap, (labels, old % PALETTE_SIZE), 1)
    rows, cols = linear_sum_assignment(-overlap)
    colours = np.full(k, -1)
    for row, col in zip(rows, cols):
        if overlap[row, col] > 0:
            colours[row] = col
    free = [c for c in range(PALETTE_SIZE) if c not in set(colours.tolist())]
    for row in np.flatnonzero(colours < 0):
        colours[row] = free.pop(0) if free else row % PALETTE_SIZE
    return colours


def token_labels(tokens: Any, token_text: Any = None) -> list[str] | None:
    """Printable axis labels for a probe sequence's tokens (strings or ids; see the widget's ``tokens``)."""
    if tokens is None:
        return None
    values = tokens.tolist() if hasattr(tokens, "tolist") else list(tokens)
    if token_text is not None:
        if not callable(token_text):
            raise TypeError(f"token_text must be a function token id -> str, got a {type(token_text).__name__}")
        return [printable(str(token_text(t))) for t in values]
    return [printable(t) if isinstance(t, str) else str(t) for t in values]


def printable(text: str) -> str:
    """``text`` with a space shown as "␣" and every character that does not print escaped (``\\x01``)."""
    if text == " ":
        return "␣"
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text) or "∅"


def _head_scores(scores: Mapping | None, heads: int) -> dict[str, np.ndarray]:
    if scores is None:
        return {}
    if not isinstance(scores, Mapping):
        raise TypeError("scores must be a {name: per-head array} mapping")
    out = {}
    for name, values in scores.items():
        flat = np.asarray(values, dtype=float).reshape(-1)
        if flat.size != heads:
            raise ValueError(f"scores[{name!r}] has {flat.size} values for {heads} heads")
        out[str(name)] = flat
    return out


def _attention(attention: Any, heads: int) -> np.ndarray | None:
    if attention is None:
        return None
    if hasattr(attention, "detach"):
        attention = attention.detach().cpu().numpy()
    pattern = np.asarray(attention, dtype=np.float32)
    if pattern.ndim == 5:  # (layers, batch, heads, query, key): the first probe sequence
        pattern = pattern[:, 0]
    if pattern.ndim == 4:  # (layers, heads, query, key)
        pattern = pattern.reshape(-1, *pattern.shape[-2:])
    if pattern.ndim != 3 or pattern.shape[0] != heads:
        raise ValueError(f"attention must hold one (query, key) pattern per head ({heads}); got shape {np.shape(attention)}")
    return pattern
