"""HeadClusterWidget's Python side without a browser: signatures, reclustering, the distribution switch, scores, attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

import devinterp_viz as dvz
from tests.widget_fakes import synthetic_head_sweep
from devinterp_viz.widgets._transport import ARRAY_TAG, pack
from devinterp_viz.widgets.heads import HeadClusterWidget, stable_colours, token_labels
from devinterp_viz.zoo.languages import VOCAB_SIZE, make_distribution, token_text, token_texts
from devinterp_viz.zoo.transformer import AttentionOnlyTransformer, TransformerConfig, attention_patterns, head_scores


@pytest.fixture(scope="module")
def sweep():
    return synthetic_head_sweep(num_checkpoints=16)


def test_views_show_the_signatures_and_clustering_of_the_analysis_objects(sweep):
    widget = HeadClusterWidget(sweep)
    signatures = dvz.HeadSignatures().fit(sweep)
    reference = dvz.HeadClustering().fit(signatures)
    data, clusters = widget.data, widget.clusters
    assert data["heads"] == sweep.selections and data["distributions"] == ["full", "code"]
    np.testing.assert_allclose(data["curves"], signatures.curves_.astype(np.float32))
    np.testing.assert_allclose(data["normalized"].reshape(8, -1), signatures.signatures_.astype(np.float32))
    np.testing.assert_array_equal(clusters["labels"], reference.labels_)
    np.testing.assert_array_equal(clusters["order"], reference.order_)
    assert clusters["n_clusters"] == reference.n_clusters_ == 3  # three kinds of curves
    assert clusters["dendrogram"]["icoord"].shape == (7, 4)
    assert pack(data)["normalized"][ARRAY_TAG] == 1


def test_changing_the_number_of_clusters_reclusters_in_python(sweep):
    widget = HeadClusterWidget(sweep)
    widget.n_clusters = 2
    assert widget.clusters["n_clusters"] == 2 and len(set(widget.clusters["labels"].tolist())) == 2
    assert widget.clustering.n_clusters == 2
    widget.n_clusters = 0
    assert widget.clusters["n_clusters"] == widget.clusters["suggested"] == 3
    with pytest.raises(traitlets.TraitError, match="n_clusters"):
        widget.n_clusters = 9


def test_the_distribution_switch_clusters_one_distributions_signatures(sweep):
    widget = HeadClusterWidget(sweep)
    widget.distribution = "code"
    per = dvz.HeadSignatures().fit(sweep).signatures_.reshape(8, 2, -1)[:, 1]
    np.testing.assert_array_equal(widget.features(), per)
    np.testing.assert_array_equal(widget.clusters["labels"], dvz.HeadClustering().fit(per).labels_)
    assert widget.clusters["distribution"] == "code"
    with pytest.raises(traitlets.TraitError):
        widget.distribution = "brackets"


def test_selected_head_is_a_checked_trait(sweep):
    widget = HeadClusterWidget(sweep, selected_head="blocks.1.attn.head2")
    assert widget.cluster_of() == widget.clustering.labels_[6]
    with pytest.raises(traitlets.TraitError, match="not one of the heads"):
        widget.selected_head = "blocks.9.attn.head0"


def test_given_signatures_and_clustering_are_shown_first(sweep):
    signatures = dvz.HeadSignatures(normalize="zscore").fit(sweep)
    clustering = dvz.HeadClustering(n_clusters=4, method="kmeans").fit(signatures)
    widget = HeadClusterWidget(signatures=signatures, clustering=clustering)
    np.testing.assert_array_equal(widget.clusters["labels"], clustering.labels_)
    widget.n_clusters = 2
    assert widget.clustering.method == "kmeans" and widget.clusters["n_clusters"] == 2
    with pytest.raises(TypeError, match="one of them"):
        HeadClusterWidget()


def test_scores_and_attention_of_the_zoo_transformer_line_up_with_the_heads(sweep):
    model = AttentionOnlyTransformer(TransformerConfig(n_layers=2, n_heads=4, d_model=16, d_head=4, seq_len=16))
    scores = head_scores(model, num_sequences=4)
    tokens = torch.arange(16)[None] % 7
    patterns = attention_patterns(model, tokens)  # (layers, batch, heads, q, k)
    widget = HeadClusterWidget(sweep, scores=scores, attention=patterns, tokens=tokens[0])
    values = widget.data["scores"]["values"]
    assert widget.data["scores"]["names"] == list(scores) and values.shape == (3, 8)
    np.testing.assert_allclose(values[0], scores[list(scores)[0]].reshape(-1), rtol=1e-6)
    attention = widget.data["attention"]
    assert attention.shape == (8, 16, 16)
    np.testing.assert_allclose(attention[5], patterns[1, 0, 1].numpy(), rtol=1e-6)  # layer 1, head 1 = blocks.1.attn.head1
    assert widget.data["tokens"][:3] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="for 8 heads"):
        HeadClusterWidget(sweep, scores={"induction": np.zeros(5)})
    with pytest.raises(ValueError, match="one \\(query, key\\) pattern per head"):
        HeadClusterWidget(sweep, attention=np.zeros((3, 4, 4)))


def test_the_normalisation_switch_refits_the_signatures_and_reclusters(sweep):
    widget = HeadClusterWidget(sweep, normalize=None)
    assert widget.normalize == "none" and widget.can_renormalize
    for trait, mode in (("zscore", "zscore"), ("max", "max"), ("none", None)):
        widget.normalize = trait
        signatures = dvz.HeadSignatures(normalize=mode).fit(sweep)
        assert widget.data["normalize"] == str(mode)
        np.testing.assert_allclose(widget.data["normalized"].reshape(8, -1), signatures.signatures_.astype(np.float32))
        np.testing.assert_array_equal(widget.clusters["labels"], dvz.HeadClustering().fit(signatures).labels_)
    with pytest.raises(traitlets.TraitError, match="normalize must be one of"):
        widget.normalize = "softmax"


def test_a_widget_built_from_signatures_cannot_switch_normalisation(sweep):
    widget = HeadClusterWidget(signatures=dvz.HeadSignatures(normalize="zscore").fit(sweep))
    assert widget.normalize == "zscore" and not widget.can_renormalize
    with pytest.raises(traitlets.TraitError, match="build it from the head sweep"):
        widget.normalize = "max"


def colour_of_each_head(widget):
    clusters = widget.clusters
    return clusters["colors"][clusters["labels"].astype(int)].astype(int)


def test_a_cluster_keeps_its_colour_when_reclustering_keeps_most_of_its_heads(sweep):
    widget = HeadClusterWidget(sweep)  # 3 clusters: colour = label at first
    np.testing.assert_array_equal(widget.clusters["colors"], np.arange(3))
    before = colour_of_each_head(widget)
    for k in (2, 4, 3):
        widget.n_clusters = k
        after = colour_of_each_head(widget)
        labels = widget.clustering.labels_
        assert len(set(widget.clusters["colors"].tolist())) == k  # one colour per cluster
        for cluster in range(k):  # the new cluster takes the colour most of its heads had, when free
            heads = labels == cluster
            shared = np.bincount(before[heads], minlength=10).argmax()
            if (before == shared).sum() <= heads.sum():  # that colour's old cluster fits inside this one
                assert after[heads][0] == shared, (k, cluster)
        before = after
    widget.n_clusters = 0  # auto: the same three clusters again, so the same colours
    np.testing.assert_array_equal(colour_of_each_head(widget), before)


def test_colours_match_by_overlap_whatever_the_labels_are_called():
    # the same three groups, renumbered: each keeps its colour
    previous = np.array([0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(stable_colours(previous, np.array([5, 3, 7]), np.array([2, 2, 0, 0, 1, 1])), [3, 7, 5])
    # a group split in two: the larger part keeps the colour, the other takes the first free one
    np.testing.assert_array_equal(stable_colours(np.array([0, 0, 0, 1]), np.array([0, 1]), np.array([0, 0, 2, 1])), [0, 1, 2])
    np.testing.assert_array_equal(stable_colours(None, None, np.array([1, 0, 2])), [0, 1, 2])


def test_the_zoo_languages_tokens_all_have_printable_distinct_labels():
    labels = [token_text(t) for t in range(VOCAB_SIZE)]
    assert len(set(labels)) == VOCAB_SIZE and all(label.isprintable() and label.strip() for label in labels)
    assert (token_text(ord("a")), token_text(0), token_text(10), token_text(32), token_text(127)) == ("a", "NUL", "\\n", "␣", "DEL")
    probe = make_distribution("repeated", 1, 16)[0]
    assert token_texts(probe) == [token_text(t) for t in probe.tolist()]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        token_text(VOCAB_SIZE)


def test_token_labels_are_printable_for_any_vocabulary(sweep):
    probe = make_distribution("repeated", 1, 16)[0]
    widget = HeadClusterWidget(sweep, attention=np.ones((8, 16, 16)) / 16, tokens=probe, token_text=token_text)
    assert widget.data["tokens"] == token_texts(probe)
    as_characters = HeadClusterWidget(sweep, tokens=[chr(int(t)) for t in probe]).data["tokens"]  # chr() of control codes
    assert all(label.isprintable() and label for label in as_characters)
    assert token_labels(["\x01", " ", "ab", ""]) == ["\\x01", "␣", "ab", "∅"]
    with pytest.raises(TypeError, match="token_text must be a function"):
        HeadClusterWidget(sweep, tokens=probe, token_text="ascii")


def test_each_estimates_verdict_is_sent_with_the_curves_and_none_without_a_sweep():
    from devinterp_viz.engine.results import LLCResult

    sweep = synthetic_head_sweep(num_checkpoints=16)
    rng = np.random.default_rng(3)
    diverged = 1.05 + 0.01 * rng.standard_normal((4, 40))
    diverged[0, 20:] = np.inf
    sweep.results[("blocks.0.attn.head1", "code", 3)] = LLCResult.from_traces(diverged, 1.0, 10.0, config={"lr": 1e-3})
    sweep.results[("blocks.1.attn.head0", "full", 5)] = LLCResult.from_traces(0.9 + 0.001 * rng.standard_normal((4, 40)), 1.0, 10.0, config={"lr": 1e-3})
    verdicts = HeadClusterWidget(sweep).data["verdicts"]
    n = len(sweep.steps)
    assert verdicts.shape == (8, 2, n) and verdicts.dtype == np.float32
    expected = np.ones((8, 2, n), np.float32)
    expected[sweep.selections.index("blocks.0.attn.head1"), 1, 3] = 0.0  # unhealthy
    expected[sweep.selections.index("blocks.1.attn.head0"), 0, 5] = -1.0  # undefined: no LLC
    np.testing.assert_array_equal(verdicts, expected)
    assert HeadClusterWidget(signatures=dvz.HeadSignatures().fit(sweep)).data["verdicts"] is None
