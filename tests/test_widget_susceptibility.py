"""SusceptibilityExplorer and the analysis behind it (covariance_views) on small real estimates with observables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import devinterp_viz as dvz
from devinterp_viz.analysis import covariance_views as views

N, D = 24, 4


def problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.3 * torch.randn(N, generator=gen)
    model = torch.nn.Sequential(torch.nn.Linear(D, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        ((model(x).squeeze(-1) - y) ** 2).mean().backward()
        optimizer.step()
    return model, x, y[:, None]


def per_sample_loss(model, batch):
    x, y = batch
    return 0.5 * (model(x) - y).squeeze(-1) ** 2


def loss_fn(model, batch):
    return per_sample_loss(model, batch).mean()


@pytest.fixture(scope="module")
def estimates():
    """Two components (the two layers) and one whole-model result, each recording the training set and two probes."""
    model, x, y = problem()
    observables = {"train": (x, y), "first half": (x[: N // 2], y[: N // 2]), "second half": (x[N // 2 :], y[N // 2 :])}
    kwargs = dict(observables=observables, per_sample_loss=per_sample_loss, lr=1e-3, nbeta=20.0, num_chains=3,
                  num_draws=120, batch_size=N, seed=1, progress=False)
    layers = dvz.estimate_llc_selections(model, (x, y), loss_fn, {"layer 0": "0.*", "layer 2": "2.*"}, **kwargs)
    whole = dvz.estimate_llc(model, (x, y), loss_fn, **kwargs)
    return layers, whole


def test_the_grids_are_the_covariance_functions_of_each_component(estimates):
    layers, _ = estimates
    grid = views.result_grid(layers)
    assert grid.components == ["layer 0", "layer 2"] and grid.observables == ["train", "first half", "second half"]
    chi = views.susceptibility_grid(grid, "train")
    assert chi.shape == (1, 2, N)
    for c, name in enumerate(grid.components):
        np.testing.assert_array_equal(chi.value[0, c], dvz.susceptibilities(layers[name], "train").value)
        np.testing.assert_array_equal(chi.stderr[0, c], dvz.susceptibilities(layers[name], "train").stderr)
    response = views.response_grid(grid, ["first half", "train"])
    np.testing.assert_array_equal(response.value[0], dvz.response_matrix(layers, ["first half", "train"]).value)
    # towards the training set itself nothing responds: χ = −nβ Cov(L, L − L) = 0 (batch = the data set)
    np.testing.assert_allclose(response.value[0, :, 1], 0.0, atol=1e-9)
    features, description = views.token_features(grid, "train", chi)
    assert features.shape == (1, N, 2) and description == "susceptibility vectors (χ under each component) (auto: 2 components)"
    np.testing.assert_array_equal(features[0, :, 1], chi.value[0, 1])
    # asked for, the kernel of the first component even with two: the choice is the user's and is named
    kernel, description = views.token_features(grid, "train", chi, kind="kernel")
    assert description == "loss-kernel correlation rows under layer 0"
    np.testing.assert_allclose(kernel[0], dvz.loss_kernel(layers["layer 0"], "train", correlation=True).value)
    with pytest.raises(ValueError, match="embedding_features='rows'; choose one of auto, susceptibility, kernel"):
        views.token_features(grid, "train", chi, kind="rows")
    w = dvz.SusceptibilityExplorer(layers, observable="train", embedding="pca", embedding_features="kernel")
    assert w.data["embedding"]["features"] == "loss-kernel correlation rows under layer 0"


def test_one_component_is_embedded_by_its_loss_kernel_rows_and_pca_is_its_first_two_principal_axes(estimates):
    _, whole = estimates
    grid = views.result_grid(whole)
    chi = views.susceptibility_grid(grid, "train")
    features, description = views.token_features(grid, "train", chi)
    np.testing.assert_allclose(features[0], dvz.loss_kernel(whole, "train", correlation=True).value)
    assert "loss-kernel" in description
    embedded, method = views.embed(features, "pca")
    assert method == "pca" and embedded.shape == (1, N, 2)
    centred = features[0] - features[0].mean(axis=0)
    _, singular, _ = np.linalg.svd(centred, full_matrices=False)
    # PCA coordinates: their variances are the top two squared singular values over (n − 1)
    np.testing.assert_allclose(embedded[0].var(axis=0, ddof=1), singular[:2] ** 2 / (N - 1), rtol=1e-6)
    with pytest.raises(ValueError, match="choose one of auto, umap, pca, tsne"):
        views.embed(features, "mds")
    # above max_kernel_samples: the standardised draws, whose inner products are the kernel (never built)
    draws, description = views.token_features(grid, "train", chi, max_kernel_samples=N - 1)
    assert draws.shape == (1, N, 3 * 120) and "standardised loss draws" in description
    np.testing.assert_allclose(draws[0] @ draws[0].T, features[0], atol=1e-9)


def test_the_kernel_order_puts_blocks_of_correlated_samples_together():
    rng = np.random.default_rng(0)
    groups = np.array([0, 1, 0, 2, 1, 2, 0, 1])
    latent = rng.standard_normal((500, 3))
    draws = latent[:, groups] + 0.1 * rng.standard_normal((500, len(groups)))
    order = views.kernel_order(np.corrcoef(draws, rowvar=False))
    assert sorted(order) == list(range(len(groups)))
    runs = np.count_nonzero(np.diff(groups[order]) != 0) + 1
    assert runs == 3, groups[order]  # each group contiguous


def test_top_influences_are_the_largest_bif_entries_of_each_row_by_magnitude():
    value = np.array([[9.0, -3.0, 1.0, 2.0], [-3.0, 9.0, 0.5, -4.0], [1.0, 0.5, 9.0, 0.1], [2.0, -4.0, 0.1, 9.0]])
    top = views.top_influences(dvz.Covariance(value, value / 10), k=2)
    np.testing.assert_array_equal(top["index"], [[1, 3], [3, 0], [0, 1], [1, 0]])  # itself never listed
    np.testing.assert_array_equal(top["value"][1], [-4.0, -3.0])
    np.testing.assert_array_equal(top["stderr"][1], [-0.4, -0.3])


def test_the_widget_sends_what_the_analysis_computes_and_follows_the_selected_component(estimates):
    layers, _ = estimates
    tokens = np.arange(N) % 5
    w = dvz.SusceptibilityExplorer(layers, observable="train", tokens=tokens, vocabulary=list("abcde"), classes=tokens % 2,
                                   embedding="pca", top_k=3)
    data = w.data
    assert data["components"] == ["layer 0", "layer 2"] and data["probes"] == ["train", "first half", "second half"]
    assert data["labels"][:6] == ["a", "b", "c", "d", "e", "a"] and data["classes"]["names"] == ["0", "1"]
    np.testing.assert_allclose(data["chi"]["value"][0, 1], dvz.susceptibilities(layers["layer 2"], "train").value, rtol=1e-6)
    assert data["embedding"]["method"] == "pca" and w.color_by == "class"
    assert w.detail["component"] == "layer 0"
    np.testing.assert_allclose(w.detail["bif"], dvz.bif(layers["layer 0"], "train").value, rtol=1e-5)
    w.selected_component = "layer 2"
    np.testing.assert_allclose(w.detail["bif"], dvz.bif(layers["layer 2"], "train").value, rtol=1e-5)
    np.testing.assert_allclose(w.token_values()[0], dvz.susceptibilities(layers["layer 2"], "train").value)
    w.selected_token, w.text_values = 4, "influence"
    np.testing.assert_allclose(w.token_values()[0], dvz.bif(layers["layer 2"], "train").value[4], rtol=1e-5)
    assert w.detail["top_index"].shape == (N, 3)
    w.selected_tokens = [5, 2, 2]
    assert w.selected_tokens == [2, 5]


def test_above_max_kernel_samples_only_the_top_influences_travel(estimates):
    _, whole = estimates
    w = dvz.SusceptibilityExplorer(whole, embedding="pca", max_kernel_samples=N - 1, selected_token=2, text_values="influence")
    assert set(w.detail) == {"component", "checkpoint", "top_index", "top_value", "top_stderr"}
    top = views.top_influences(dvz.bif(whole, "train"), 8)
    np.testing.assert_array_equal(w.detail["top_index"], top["index"])
    chunked = views.kernel_view(whole, "train", 8, max_samples=N - 1, chunk=5)  # BIF rows five at a time
    for key in ("index", "value", "stderr"):
        np.testing.assert_allclose(chunked[f"top_{key}"], top[key], rtol=1e-9)
    np.testing.assert_allclose(w.token_values()[0], dvz.susceptibilities(whole, "train").value)  # no BIF row to show
    with pytest.raises(ValueError, match="max_kernel_samples must be a non-negative integer"):
        dvz.SusceptibilityExplorer(whole, embedding="pca", max_kernel_samples=-1)


def test_a_sweep_of_two_components_gives_every_checkpoint_and_one_joint_embedding():
    from sweep_helpers import make_model, mse, regression_problem, train_trajectory

    x, y = regression_problem()
    trajectory = dvz.Trajectory(train_trajectory(num_checkpoints=3, steps=50))

    def squared_error(model, batch):
        return (model(batch[0]) - batch[1]).square().squeeze(-1)

    sweep = dvz.sweep_llc(trajectory, make_model(), (x, y), mse, selections={"hidden": "0.*", "readout": "2.*"},
                          observables={"probe": (x[:12], y[:12]), "rest": (x[12:40], y[12:40])}, per_sample_loss=squared_error,
                          lr=1e-4, nbeta=20.0, num_chains=2, num_draws=20, batch_size=32, progress=False)
    w = dvz.SusceptibilityExplorer(sweep, embedding="pca", tokens=np.arange(12), vocabulary=lambda i: f"x{i}")
    assert w.components == ["hidden", "readout"] and w.data["labels"][:2] == ["x0", "x1"]
    assert w.data["embedding"]["xy"].shape == (3, 12, 2) and w.color_by == "susceptibility"
    np.testing.assert_array_equal(w.data["chi"]["value"], np.moveaxis(sweep.susceptibilities("probe").value[:, 0], 0, 1))
    for t in range(3):
        at = {c: sweep.results[(c, "data", t)] for c in w.components}
        np.testing.assert_array_equal(w.data["response"]["value"][t], dvz.response_matrix(at, ["probe", "rest"]).value)
    # one PCA of every checkpoint's susceptibility vectors together: positions compare across checkpoints
    vectors = np.moveaxis(sweep.susceptibilities("probe").value[:, 0], 0, -1).reshape(3 * 12, 2)
    embedded, _ = views.embed(vectors.reshape(1, 36, 2), "pca")
    np.testing.assert_allclose(w.data["embedding"]["xy"].reshape(36, 2), embedded[0])
    w.selected_component, w.checkpoint = "readout", 2
    assert w.detail["checkpoint"] == 2 and w.detail["component"] == "readout" and w.step == float(sweep.steps[2])
    np.testing.assert_allclose(w.detail["bif"], dvz.bif(sweep.results[("readout", "data", 2)], "probe").value, rtol=1e-5)


def test_bad_input_gets_errors_that_say_how_to_fix_it(estimates):
    layers, whole = estimates
    with pytest.raises(TypeError, match="must be an LLCResult"):
        dvz.SusceptibilityExplorer([whole])
    with pytest.raises(ValueError, match="recorded: train, first half, second half"):
        dvz.SusceptibilityExplorer(whole, observable="test")
    with pytest.raises(TypeError, match=r"probes=\['train'\]"):
        dvz.SusceptibilityExplorer(whole, probes="train")
    with pytest.raises(ValueError, match=r"tokens has shape \(5,\).*give it as \(samples,\)"):
        dvz.SusceptibilityExplorer(whole, tokens=np.arange(5), embedding="pca")
    with pytest.raises(ValueError, match="no entry in the vocabulary"):
        dvz.SusceptibilityExplorer(whole, tokens=np.arange(N), vocabulary=["a"], embedding="pca")
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour_by'"):
        dvz.SusceptibilityExplorer(whole, colour_by="class", embedding="pca")
    model, x, y = problem()
    plain = dvz.estimate_llc(model, (x, y), loss_fn, lr=1e-3, nbeta=20.0, num_chains=2, num_draws=5, batch_size=N, progress=False)
    with pytest.raises(ValueError, match="recorded no observables"):
        dvz.SusceptibilityExplorer(plain)
    w = dvz.SusceptibilityExplorer(whole, embedding="pca")
    with pytest.raises(Exception, match="not one of the components"):
        w.selected_component = "layer 9"
    with pytest.raises(Exception, match=r"sample indices in 0..23"):
        w.selected_tokens = [N]
