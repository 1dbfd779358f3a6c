"""Head signatures, clustering, embedding and behavioural scores on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

import devinterp_viz as dvz
from devinterp_viz.analysis.heads import (
    HeadClustering,
    HeadSignatures,
    behaviour_labels,
    current_token_score,
    induction_score,
    previous_token_score,
    repeated_random_tokens,
)


def synthetic_head_sweep(seed=0, per_group=4, checkpoints=40):
    """Three groups of heads whose rLLC curves rise early, rise late, or rise then fall (+5% noise)."""
    rng = np.random.default_rng(seed)
    steps = np.unique(np.geomspace(1, 10_000, checkpoints).astype(int))
    x = np.log1p(steps) / np.log1p(steps[-1])
    shapes = [1 / (1 + np.exp(-20 * (x - 0.3))), 1 / (1 + np.exp(-20 * (x - 0.8))), np.exp(-((x - 0.5) / 0.15) ** 2)]
    sweep = dvz.SweepResult(steps, [], ["full"])
    truth = []
    for group, shape in enumerate(shapes):
        for member in range(per_group):
            name = f"head{group}.{member}"
            sweep.selections.append(name)
            truth.append(group)
            curve = (1 + member) * (shape + 0.05 * rng.standard_normal(shape.size))
            for index, value in enumerate(curve):
                sweep.results[(name, "full", index)] = dvz.LLCResult.from_traces(np.full((2, 3), value), 0.0, 1.0)
    return sweep, np.array(truth)


def test_clustering_recovers_known_groups_and_suggests_their_number():
    sweep, truth = synthetic_head_sweep()
    signatures = HeadSignatures().fit(sweep)
    assert signatures.signatures_.shape == (12, len(sweep.steps))
    assert np.allclose(np.abs(signatures.signatures_).max(axis=1), 1.0)  # max-normalised: scale removed
    for method in ("agglomerative", "kmeans"):
        clusters = HeadClustering(method=method).fit(signatures)
        assert clusters.n_clusters_ == 3, clusters.silhouette_
        assert clusters.agreement(truth) == pytest.approx(1.0)
    assert sorted(clusters.order_) == list(range(12)) and clusters.linkage_.shape == (11, 4)
    assert clusters.embedding_.shape == (12, 2) and clusters.embedding_method_ == "pca"


def test_raw_signatures_group_by_scale_instead_of_shape():
    sweep, truth = synthetic_head_sweep()
    raw = HeadClustering(n_clusters=3).fit(HeadSignatures(normalize=None).fit(sweep))
    assert raw.agreement(truth) < 0.5  # without normalisation the heads' scales dominate


def test_umap_embeds_many_heads():
    pytest.importorskip("umap")
    sweep, _ = synthetic_head_sweep(per_group=6)
    clusters = HeadClustering().fit(HeadSignatures().fit(sweep))
    assert clusters.embedding_method_ == "umap" and clusters.embedding_.shape == (18, 2)


def test_behavioural_scores_on_hand_built_patterns():
    seq, period = 8, 4
    eye = np.eye(seq)
    previous = np.eye(seq, k=-1)
    previous[0, 0] = 1.0
    induction = np.zeros((seq, seq))
    for i in range(seq):
        induction[i, i - period + 1 if i >= period else i] = 1.0
    uniform = np.tril(np.ones((seq, seq))) / np.arange(1, seq + 1)[:, None]
    attention = np.stack([eye, previous, induction, uniform])[None].repeat(2, axis=0)  # (batch, heads, q, k)
    np.testing.assert_allclose(current_token_score(attention)[:2], [1.0, 0.0])
    np.testing.assert_allclose(previous_token_score(attention)[:2], [0.0, 1.0])
    scores = induction_score(attention, period)
    assert scores[2] == 1.0 and scores[0] == 0.0 and 0 < scores[3] < 0.3
    labels = behaviour_labels({"current": current_token_score(attention), "previous": previous_token_score(attention),
                               "induction": scores}, threshold=0.5)
    assert labels.tolist() == ["current", "previous", "induction", "other"]
    layered = np.stack([attention, attention[:, ::-1]])  # leading axes (layers) are kept
    assert previous_token_score(layered).shape == (2, 4) and previous_token_score(layered)[1, 2] == 1.0


def test_repeated_random_tokens_repeat_distinct_blocks():
    tokens = repeated_random_tokens(5, period=6, repeats=3, vocab_size=20, seed=1)
    assert tokens.shape == (5, 18)
    assert np.array_equal(tokens[:, :6], tokens[:, 6:12]) and np.array_equal(tokens[:, :6], tokens[:, 12:])
    assert all(len(set(row[:6])) == 6 for row in tokens)


def test_head_analysis_bad_input():
    sweep, _ = synthetic_head_sweep()
    with pytest.raises(ValueError, match="not in the sweep"):
        HeadSignatures(distributions=["code"]).fit(sweep)
    with pytest.raises(ValueError, match="at least 3 heads"):
        HeadClustering().fit(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="n_clusters must be between"):
        HeadClustering(n_clusters=40).fit(HeadSignatures().fit(sweep))
    with pytest.raises(ValueError, match="hold no repeat"):
        induction_score(np.zeros((1, 1, 4, 4)), period=4)
    sweep.results.pop(("head0.0", "full", 3))
    with pytest.raises(ValueError, match="missing or non-finite"):
        HeadSignatures().fit(sweep)


def test_role_summary_says_which_roles_share_clusters():
    clusters = HeadClustering(n_clusters=2).fit(np.array([[0.0], [0.1], [5.0], [5.1], [5.2]]))
    roles = np.array(["previous_token", "previous_token", "induction", "induction", "other"])
    lines = clusters.role_summary(roles)
    assert len(lines) == 2  # "other" is not a role to describe
    assert lines[0].startswith("previous_token heads: cluster ") and lines[0].endswith("a cluster of their own")
    assert lines[1].startswith("induction heads: cluster ") and lines[1].endswith("shared with other heads")
    assert clusters.role_summary(roles, roles=["name_mover"]) == ["no name_mover heads"]
    with pytest.raises(ValueError, match="one label per head"):
        clusters.role_summary(roles[:3])


def test_signatures_and_clustering_are_scikit_learn_estimators():
    from sklearn.base import clone

    clustering = clone(HeadClustering(n_clusters=3, method="kmeans"))
    assert clustering.get_params()["n_clusters"] == 3 and clustering.get_params()["method"] == "kmeans"
    assert not hasattr(clustering, "labels_")  # a clone is unfitted
    signatures = HeadSignatures(normalize=None).set_params(normalize="zscore")
    assert repr(signatures) == "HeadSignatures(normalize='zscore')"
    sweep, truth = synthetic_head_sweep()
    assert clustering.fit(signatures.fit(sweep)) is clustering and clustering.labels_.shape == truth.shape


def test_signatures_say_which_heads_rest_on_untrusted_estimates_and_can_drop_those_checkpoints():
    from tests.widget_fakes import synthetic_head_sweep as healthy_head_sweep

    sweep = healthy_head_sweep(num_checkpoints=12, distributions=("full",))
    assert sweep.healthy.all()
    disagreeing = 1.05 + 0.003 * np.random.default_rng(1).standard_normal((2, 40))
    disagreeing[1] += 0.05  # the two chains settle at different levels: R-hat far above 1
    sweep.results[("blocks.1.attn.head2", "full", 5)] = dvz.LLCResult.from_traces(disagreeing, 1.0, 10.0)
    assert not sweep.healthy[sweep.selections.index("blocks.1.attn.head2"), 0, 5]
    kept = HeadSignatures().fit(sweep)
    assert kept.untrusted_heads_ == ["blocks.1.attn.head2"] and kept.trusted_.sum() == kept.trusted_.size - 1
    assert kept.signatures_.shape == (8, len(sweep.steps))
    dropped = HeadSignatures(untrusted="drop").fit(sweep)
    assert dropped.untrusted_heads_ == [] and dropped.trusted_.all()
    np.testing.assert_array_equal(dropped.steps_, np.delete(sweep.steps, 5))
    with pytest.raises(ValueError, match="'keep' or 'drop'"):
        HeadSignatures(untrusted="ignore").fit(sweep)
