"""SusceptibilityExplorer: response matrix, per-token susceptibilities and influences, their embedding and the loss kernel, linked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import traitlets

from devinterp_viz.analysis.covariance_views import (
    EMBEDDING_FEATURES,
    EMBEDDING_METHODS,
    embed,
    kernel_view,
    response_grid,
    result_grid,
    susceptibility_grid,
    token_features,
)
from devinterp_viz.widgets._base import DvzWidget
from devinterp_viz.widgets._transport import PackedTrait

COLOR_BY = ("class", "checkpoint", "susceptibility")
TEXT_VALUES = ("susceptibility", "influence")


class SusceptibilityExplorer(DvzWidget):
    """Explore posterior covariances of recorded observables: which component responds to which data, token by token.

    Views, linked by one selected component, checkpoint and sample (token or example): the
    component × probe response matrix (:func:`devinterp_viz.response_matrix`, standard errors on
    hover; a click selects a component); the text with every token coloured by its susceptibility
    (:func:`devinterp_viz.susceptibilities`) under the selected component, or by its influence
    (:func:`devinterp_viz.bif`) with the selected token; a 2-D embedding of the samples (their
    susceptibility vectors across components, or with one component their loss-kernel rows) with
    lasso selection synced to ``selected_tokens``; the selected token's top influences; and the
    loss kernel's correlations in hierarchical-clustering order. With several checkpoints a
    scrubber moves every view through training. Every number is computed by
    :mod:`devinterp_viz.analysis.covariance_views`; the widget only shows it.

    Parameters
    ----------
    results : LLCResult, mapping of str to LLCResult, or SweepResult
        Estimated with ``observables=`` and ``per_sample_loss=``: one result, one per component
        (``estimate_llc_selections``), or a sweep whose selections are the components.
    observable : str, optional
        The observable shown as text and embedded (default: the only one recorded, else the first).
    probes : sequence of str, optional
        Columns of the response matrix (default: every recorded observable).
    loss_observable : str, optional
        A recorded observable of training samples whose mean stands for L in every susceptibility
        (see :func:`devinterp_viz.susceptibilities`; without it, minibatch runs shift every χ by
        the same amount).
    tokens : array, optional
        What each sample is: token ids or strings of shape (sequences, positions) for a per-token
        observable, or (samples,) for a per-sample one (default: ``#index`` labels).
    vocabulary : sequence of str or callable, optional
        How a token id reads: ``vocabulary[id]`` or ``vocabulary(id)`` (e.g. a tokenizer's decode).
    classes : array, optional
        A class per sample (shape like ``tokens``), to colour the embedding by.
    distribution : str, optional
        Which of a sweep's data distributions to read.
    embedding : {"auto", "umap", "pca", "tsne"}
        Embedding method (``"auto"``: UMAP when umap-learn is installed, else PCA). UMAP's first
        call in a process compiles (numba) for up to a minute; ``"pca"`` is instant.
    embedding_features : {"auto", "susceptibility", "kernel"}
        What places the samples (:func:`~devinterp_viz.analysis.covariance_views.token_features`):
        their susceptibility vectors across components, or their loss-kernel rows (standardised
        draws above ``max_kernel_samples``, the same geometry). ``"auto"``: susceptibility vectors
        with several components, the kernel with one; the panel's caption and
        ``data["embedding"]["features"]`` name the choice.
    top_k : int
        Influences listed for the selected token.
    max_kernel_samples : int
        The loss kernel and influences (samples × samples) are sent up to this many samples;
        above it only the top influences travel and the text shows susceptibilities only.
    random_state : int

    Traits (synced)
    ---------------
    selected_component : str
        The component whose susceptibilities and influences are shown.
    checkpoint : int
        Index of the checkpoint shown.
    selected_token : int
        Index of the selected sample (-1: none); its influences are listed.
    selected_tokens : list of int
        Samples picked with the embedding's lasso (or box) selection.
    color_by : {"class", "checkpoint", "susceptibility"}
        What colours the embedding's points.
    text_values : {"susceptibility", "influence"}
        What colours the text: each token's susceptibility, or its influence with the selected token.
    data : dict (read-only)
        ``components``, ``probes``, ``steps``, ``observable``, ``per_token``, ``response`` and
        ``chi`` {``value``, ``stderr``} of shape (checkpoints, components, probes | samples),
        ``labels``, ``sequence`` and ``position`` (samples,), ``classes`` {``codes``, ``names``}
        or None, ``embedding`` {``xy`` (checkpoints, samples, 2), ``method``, ``features``}.
    detail : dict (read-only)
        For the selected component and checkpoint (:func:`kernel_view`): ``component``,
        ``checkpoint``, ``top_index``/``top_value``/``top_stderr`` (samples, k) and, up to
        ``max_kernel_samples``, ``correlation``, ``order``, ``bif``, ``bif_stderr``.
    error : str (read-only)
    """

    _view = traitlets.Unicode("SusceptibilityExplorer").tag(sync=True)
    _read_only = ("data", "detail", "error")
    _extra_kwargs = ("results", "observable", "probes", "loss_observable", "tokens", "vocabulary", "classes", "distribution", "embedding",
                     "embedding_features", "top_k", "max_kernel_samples", "random_state")

    selected_component = traitlets.Unicode("").tag(sync=True)
    checkpoint = traitlets.Int(0).tag(sync=True)
    selected_token = traitlets.Int(-1).tag(sync=True)
    selected_tokens = traitlets.List(traitlets.Int()).tag(sync=True)
    color_by = traitlets.Enum(COLOR_BY, "class").tag(sync=True)
    text_values = traitlets.Enum(TEXT_VALUES, "susceptibility").tag(sync=True)
    data = PackedTrait()
    detail = PackedTrait()
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, results: Any, *, observable: str | None = None, probes: Sequence[str] | None = None,
                 loss_observable: str | None = None, tokens: Any = None,
                 vocabulary: Sequence[str] | Callable[[Any], str] | None = None, classes: Any = None,
                 distribution: str | None = None, embedding: str = "auto", embedding_features: str = "auto", top_k: int = 8, max_kernel_samples: int = 600,
                 random_state: int = 0, **traits: Any):
        self.grid = result_grid(results, distribution)
        recorded = self.grid.observables
        self.observable = _observable_name(observable, recorded)
        self.probes = _probe_names(probes, recorded)
        if embedding not in EMBEDDING_METHODS:
            raise ValueError(f"embedding={embedding!r}; choose one of {', '.join(EMBEDDING_METHODS)}.")
        if embedding_features not in EMBEDDING_FEATURES:
            raise ValueError(f"embedding_features={embedding_features!r}; choose one of {', '.join(EMBEDDING_FEATURES)}.")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer (influences listed per token), got {top_k!r}.")
        if isinstance(max_kernel_samples, bool) or not isinstance(max_kernel_samples, int) or max_kernel_samples < 0:
            raise ValueError(f"max_kernel_samples must be a non-negative integer (0: never send the kernel), got {max_kernel_samples!r}.")
        self.top_k, self.max_kernel_samples = top_k, max_kernel_samples
        self.chi = susceptibility_grid(self.grid, self.observable, loss_observable)
        self.response = response_grid(self.grid, self.probes, loss_observable)
        features, description = token_features(self.grid, self.observable, self.chi, max_kernel_samples, embedding_features)
        self.embedding, method = embed(features, embedding, random_state)
        index = next(r.observable_index.get(self.observable) for r in self.grid.results.values())
        samples = self.chi.shape[-1]
        traits.setdefault("selected_component", self.grid.components[0])
        traits.setdefault("color_by", "class" if classes is not None else "susceptibility")
        super().__init__(**traits)
        self.data = {
            "components": list(self.grid.components),
            "probes": list(self.probes),
            "steps": np.asarray(self.grid.steps, np.float32),
            "observable": self.observable,
            "per_token": index is not None,
            "response": {"value": self.response.value, "stderr": self.response.stderr},
            "chi": {"value": self.chi.value, "stderr": self.chi.stderr},
            **_token_layout(index, samples, tokens, vocabulary),
            "classes": _classes(classes, index, samples),
            "embedding": {"xy": self.embedding, "method": method, "features": description},
            "max_kernel_samples": max_kernel_samples,
        }
        self._show_detail()
        self.observe(lambda change: self._show_detail(), names=["selected_component", "checkpoint"])

    # ------------------------------------------------------------ validation
    @traitlets.validate("selected_component")
    def _valid_component(self, proposal: Any) -> str:
        if hasattr(self, "grid") and proposal.value not in self.grid.components:
            raise traitlets.TraitError(f"selected_component {proposal.value!r} is not one of the components {self.grid.components}")
        return proposal.value

    @traitlets.validate("checkpoint")
    def _valid_checkpoint(self, proposal: Any) -> int:
        if hasattr(self, "grid") and not 0 <= proposal.value < len(self.grid.steps):
            raise traitlets.TraitError(f"checkpoint must be an index in 0..{len(self.grid.steps) - 1}, got {proposal.value}")
        return proposal.value

    @traitlets.validate("selected_token")
    def _valid_token(self, proposal: Any) -> int:
        if hasattr(self, "chi") and not -1 <= proposal.value < self.chi.shape[-1]:
            raise traitlets.TraitError(f"selected_token must be -1 (none) or a sample index in 0..{self.chi.shape[-1] - 1}, got {proposal.value}")
        return proposal.value

    @traitlets.validate("selected_tokens")
    def _valid_tokens(self, proposal: Any) -> list[int]:
        if hasattr(self, "chi") and any(not 0 <= i < self.chi.shape[-1] for i in proposal.value):
            raise traitlets.TraitError(f"selected_tokens must be sample indices in 0..{self.chi.shape[-1] - 1}")
        return sorted(set(proposal.value))

    # ------------------------------------------------------------ reading
    @property
    def components(self) -> list[str]:
        return list(self.grid.components)

    @property
    def step(self) -> float:
        """Training step of the checkpoint shown."""
        return float(self.grid.steps[self.checkpoint])

    def token_values(self) -> tuple[np.ndarray, np.ndarray]:
        """What the text shows now: (value, stderr) of shape (samples,), susceptibilities or the selected token's influences."""
        c = self.grid.components.index(self.selected_component)
        if self.text_values == "influence" and self.selected_token >= 0 and "bif" in self.detail:
            return np.asarray(self.detail["bif"][self.selected_token]), np.asarray(self.detail["bif_stderr"][self.selected_token])
        return self.chi.value[self.checkpoint, c], self.chi.stderr[self.checkpoint, c]

    # ------------------------------------------------------------ detail
    def _show_detail(self) -> None:
        key = (self.selected_component, self.checkpoint)
        result = self.grid.results.get(key)
        if result is None:
            self.error = f"no estimate of {key[0]!r} at checkpoint {key[1]} (the sweep did not compute it)"
            self.detail = {"component": key[0], "checkpoint": key[1]}
            return
        view = kernel_view(result, self.observable, self.top_k, self.max_kernel_samples)
        with self.hold_sync():
            self.error = ""
            self.detail = {"component": key[0], "checkpoint": key[1], **{k: np.asarray(v, np.float32) for k, v in view.items()}}


def _observable_name(observable: str | None, recorded: list[str]) -> str:
    if not recorded:
        raise ValueError("the results share no recorded observable; record the same observables= in every estimate.")
    if observable is None:
        return recorded[0]
    if observable not in recorded:
        raise ValueError(f"observable={observable!r} was not recorded in every result; recorded: {', '.join(recorded)}.")
    return observable


def _probe_names(probes: Sequence[str] | None, recorded: list[str]) -> list[str]:
    if probes is None:
        return list(recorded)
    if isinstance(probes, str):
        raise TypeError(f"probes must be a list of observable names, e.g. probes=[{probes!r}]; got the string {probes!r}.")
    missing = [p for p in probes if p not in recorded]
    if missing or not probes:
        raise ValueError(f"probes {missing or list(probes)} are not recorded observables; choose among {', '.join(recorded)}.")
    return list(probes)


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _per_sample(value: Any, index: np.ndarray | None, samples: int, name: str) -> np.ndarray:
    """``value`` given per sample (samples,) or per (sequence, position), read at every recorded sample."""
    array = _as_numpy(value)
    if array.ndim == 1 and len(array) == samples:
        return array
    if index is not None and array.ndim == 2 and array.shape[0] > index[:, 0].max() and array.shape[1] > index[:, 1].max():
        return array[index[:, 0], index[:, 1]]
    layout = "(samples,)" if index is None else "(sequences, positions) or (samples,)"
    raise ValueError(f"{name} has shape {array.shape}; the observable has {samples} samples: give it as {layout}.")


def _token_layout(index: np.ndarray | None, samples: int, tokens: Any, vocabulary: Any) -> dict[str, Any]:
    """Each sample's readable label and its (sequence, position) in the text."""
    sequence = index[:, 0] if index is not None else np.zeros(samples)
    position = index[:, 1] if index is not None else np.arange(samples)
    if tokens is None:
        labels = [f"#{i}" for i in range(samples)]
    else:
        labels = [_read(t, vocabulary) for t in _per_sample(tokens, index, samples, "tokens")]
    return {"labels": labels, "sequence": np.asarray(sequence, np.float32), "position": np.asarray(position, np.float32)}


def _read(token: Any, vocabulary: Any) -> str:
    if vocabulary is None:
        return str(token.item() if hasattr(token, "item") else token)
    if callable(vocabulary):
        return str(vocabulary(token.item() if hasattr(token, "item") else token))
    try:
        return str(vocabulary[int(token)])
    except (IndexError, ValueError, TypeError) as err:
        raise ValueError(f"token {token!r} has no entry in the vocabulary ({len(vocabulary)} entries); pass a longer "
                         "vocabulary or a callable vocabulary=lambda id: ...") from err


def _classes(classes: Any, index: np.ndarray | None, samples: int) -> dict[str, Any] | None:
    if classes is None:
        return None
    per_sample = _per_sample(classes, index, samples, "classes")
    names, codes = np.unique(per_sample.astype(str), return_inverse=True)
    return {"codes": codes.astype(np.float32), "names": [str(n) for n in names]}
