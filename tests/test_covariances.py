"""Posterior covariances (loss kernel, BIF, susceptibilities) against closed forms of a linear-Gaussian model.

Full-batch SGLD at step ε on U(w) = nβ L(w) + γ/2 |w − w*|², with L(w) = mean_i ½(x_i·w − y_i)² and w*
the least-squares solution, is the AR(1) chain δ' = (I − εP/2) δ + √ε ξ with P = nβ H + γ I, H = XᵀX / n.
Its stationary law is exactly N(w*, Σ), Σ = [P (I − εP/4)]⁻¹, so with s_ij = x_iᵀ Σ x_j and residuals
r_i = x_i·w* − y_i every covariance of per-sample losses ℓ_i = ½(x_i·δ + r_i)² is a Gaussian quadratic form:
Cov(ℓ_i, ℓ_j) = ½ s_ij² + r_i r_j s_ij. The estimates are compared with these within their Monte Carlo
error (batch means across chains), and the closed form itself with a direct numpy sample of N(0, Σ).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import devinterp_viz as dvz

N, D, NBETA, GAMMA, LR = 12, 3, 10.0, 1.0, 0.05
CHAINS, DRAWS, SEED = 16, 8000, 7


def problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=gen, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.5 * torch.randn(N, generator=gen, dtype=torch.float64)
    w_star = torch.linalg.lstsq(x, y[:, None]).solution[:, 0]
    model = torch.nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w_star[None])
    return model, x, y[:, None]


def per_sample_loss(model, batch):
    x, y = batch
    return 0.5 * (model(x) - y).squeeze(-1) ** 2


def loss_fn(model, batch):
    return per_sample_loss(model, batch).mean()


def closed_form(model, x, y):
    """(Cov(ℓ_i, ℓ_j), Σ) of the chain's stationary law, from the formulas above."""
    x, y = x.numpy(), y.numpy()[:, 0]
    hessian = x.T @ x / N
    precision = NBETA * hessian + GAMMA * np.eye(D)
    sigma = np.linalg.inv(precision @ (np.eye(D) - LR * precision / 4))
    s = x @ sigma @ x.T
    residual = x @ model.weight.detach().numpy()[0] - y
    return 0.5 * s**2 + np.outer(residual, residual) * s, sigma


@pytest.fixture(scope="module")
def run():
    model, x, y = problem()
    result = dvz.estimate_llc(model, (x, y), loss_fn, observables={"train": (x, y)}, per_sample_loss=per_sample_loss,
                              lr=LR, nbeta=NBETA, localization=GAMMA, num_chains=CHAINS, num_draws=DRAWS,
                              num_burnin_steps=100, batch_size=N, seed=SEED, progress=False)
    return model, x, y, result


def within_error(estimate: dvz.Covariance, exact: np.ndarray, relative_limit: float) -> None:
    """|estimate − exact| within 4 standard errors in the Frobenius norm (E|err|² ≈ Σ SE² when the SEs are right),
    and that bound tight enough to mean something."""
    error = np.linalg.norm(estimate.value - exact)
    bound = 4 * np.sqrt(np.sum(estimate.stderr**2))
    assert error < bound, (error, bound)
    assert bound < relative_limit * np.linalg.norm(exact), (bound, np.linalg.norm(exact))


def test_the_closed_form_matches_a_direct_gaussian_sample():
    model, x, y = problem()
    cov, sigma = closed_form(model, x, y)
    draws = np.random.default_rng(0).multivariate_normal(np.zeros(D), sigma, size=400_000)
    losses = 0.5 * (draws @ x.numpy().T + (x.numpy() @ model.weight.detach().numpy()[0] - y.numpy()[:, 0])) ** 2
    sample = np.cov(losses, rowvar=False)
    # 400k independent draws: the relative error of these entries is ~ sqrt(2/400k) ≈ 0.2 %; allow 2 %
    np.testing.assert_allclose(sample, cov, rtol=0.02, atol=0.02 * np.abs(cov).max())


def test_the_loss_kernel_of_sgld_draws_is_the_gaussian_quadratic_form_covariance(run):
    model, x, y, result = run
    assert result.observables["train"].shape == (CHAINS, DRAWS, N) and result.observable_index["train"] is None
    exact, _ = closed_form(model, x, y)
    kernel = dvz.loss_kernel(result, "train")
    within_error(kernel, exact, relative_limit=0.1)
    correlation = dvz.loss_kernel(result, "train", correlation=True).value
    np.testing.assert_allclose(np.diag(correlation), 1.0, atol=1e-12)
    exact_correlation = exact / np.sqrt(np.outer(np.diag(exact), np.diag(exact)))
    assert np.abs(correlation - exact_correlation).max() < 0.1


def test_bif_is_minus_the_loss_covariance_and_susceptibilities_its_row_mean_times_nbeta(run):
    model, x, y, result = run
    exact, _ = closed_form(model, x, y)
    within_error(dvz.bif(result, "train"), -exact, relative_limit=0.1)
    # full batch: the recorded loss is L(w) = mean_i ℓ_i, so χ_j = −nβ Cov(L, ℓ_j − L) = −nβ (mean_i K_ij − mean_ij K_ij)
    # (differences of row means, small next to their Monte Carlo error: 4 SE ≈ 19 % of it here)
    within_error(dvz.susceptibilities(result, "train"), -NBETA * (exact.mean(axis=0) - exact.mean()), relative_limit=0.25)


def test_the_response_matrix_is_the_susceptibility_to_a_probes_mean_loss(run):
    import dataclasses

    model, x, y, result = run
    exact, _ = closed_form(model, x, y)
    # a probe of the first six training examples (recorded with the others): its mean loss ℓ_q
    probed = dataclasses.replace(result, observables={"train": result.observables["train"],
                                                      "first": result.observables["train"][..., :6]})
    matrix = dvz.response_matrix({"all": probed, "again": probed}, ["first", "train"])
    assert matrix.shape == (2, 2)
    np.testing.assert_allclose(matrix.value[:, 0], dvz.susceptibilities(probed, "first").value.mean(), rtol=1e-9)
    # χ_q = −nβ Cov(L, ℓ_q − L) = −nβ (mean_{i, j<6} K_ij − mean_ij K_ij)
    expected = -NBETA * (exact[:, :6].mean() - exact.mean())
    assert abs(matrix.value[0, 0] - expected) < 4 * matrix.stderr[0, 0] < 0.5 * abs(expected)
    # shifting the data towards the training set itself changes nothing: χ = −nβ Cov(L, L − L) = 0 exactly
    np.testing.assert_allclose(matrix.value[:, 1], 0.0, atol=1e-9 * NBETA * exact.mean())


def test_minibatch_susceptibilities_carry_a_uniform_noise_offset_that_a_training_observable_removes():
    """With minibatches L_b = L + ε (E[ε | w] = 0), Cov(L_b, ℓ_i − L_b) = Cov(L, ℓ_i − L) + E[Var ε]: the same offset
    for every sample. Over the training samples themselves χ should average to 0; with L_b it averages to exactly
    nβ(Var L_b − Cov(L_b, L_train)), with the training set recorded as an observable and used for L to exactly 0."""
    model, x, y = problem()
    result = dvz.estimate_llc(model, (x, y), loss_fn, observables={"train": (x, y)}, per_sample_loss=per_sample_loss,
                              lr=LR, nbeta=NBETA, localization=GAMMA, num_chains=4, num_draws=400, batch_size=3,
                              seed=SEED, progress=False)
    plain, with_train = dvz.susceptibilities(result, "train"), dvz.susceptibilities(result, "train", loss_observable="train")
    assert abs(with_train.value.mean()) < 1e-12
    loss_b = result.loss_trace[..., None]
    loss_train = result.observables["train"].astype(np.float64).mean(axis=2, keepdims=True)
    variance = dvz.analysis.covariances.cross_covariance(loss_b, loss_b).value[0, 0]
    covariance = dvz.analysis.covariances.cross_covariance(loss_b, loss_train).value[0, 0]
    offset = NBETA * (variance - covariance)
    np.testing.assert_allclose(plain.value.mean(), offset, rtol=1e-9)
    assert offset > 10 * with_train.stderr.mean()  # the offset is real, not noise
    response = dvz.response_matrix({"all": result}, ["train"], loss_observable="train")
    assert abs(response.value[0, 0]) < 1e-12


def test_observables_are_per_token_when_the_loss_is_float16_when_asked_and_survive_save_and_load(tmp_path):
    model, x, y = problem()
    tokens = torch.stack([x, 2 * x], dim=1)  # (rows, 2 positions, D): a per-position loss

    def per_position(m, batch):
        return 0.5 * m(batch).squeeze(-1) ** 2  # (rows, positions)

    result = dvz.estimate_llc(model, (x, y), loss_fn, observables={"tokens": tokens, "train": (x, y)},
                              per_sample_loss=lambda m, b: per_position(m, b) if isinstance(b, torch.Tensor) else per_sample_loss(m, b),
                              observable_dtype="float16", lr=LR, nbeta=NBETA, num_chains=2, num_draws=5,
                              batch_size=N, progress=False)
    values, index = result.observables["tokens"], result.observable_index["tokens"]
    assert values.shape == (2, 5, 2 * N) and values.dtype == np.float16
    np.testing.assert_array_equal(index[:4], [[0, 0], [0, 1], [1, 0], [1, 1]])
    # at the first draw every chain is at w*: the recorded per-token losses are those of the model
    expected = per_position(model, tokens).detach().numpy().ravel()
    np.testing.assert_allclose(values[:, 0].astype(np.float64), np.broadcast_to(expected, (2, 2 * N)), rtol=2e-3)
    loaded = dvz.LLCResult.load(result.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(loaded.observables["tokens"], values)
    np.testing.assert_array_equal(loaded.observable_index["tokens"], index)
    assert loaded.observable_index["train"] is None


def test_each_selection_gets_its_own_chains_observables():
    model, x, y = problem()
    results = dvz.estimate_llc_selections(model, (x, y), loss_fn, {"all": "weight", "same": "weight"},
                                          observables={"train": (x, y)}, per_sample_loss=per_sample_loss, lr=LR,
                                          nbeta=NBETA, num_chains=2, num_draws=4, batch_size=N, seed=3, progress=False)
    first, second = results["all"].observables["train"], results["same"].observables["train"]
    assert first.shape == second.shape == (2, 4, N)
    np.testing.assert_array_equal(first[:, 0], second[:, 0])  # both start at w*
    assert not np.array_equal(first[:, 1:], second[:, 1:])  # rows of their own chains (their own noise streams)


def test_observables_without_a_per_sample_loss_or_with_a_wrong_shape_get_clear_errors():
    model, x, y = problem()
    kwargs = dict(lr=LR, nbeta=NBETA, num_chains=2, num_draws=3, batch_size=N, progress=False)
    with pytest.raises(ValueError, match="per_sample_loss= go together"):
        dvz.estimate_llc(model, (x, y), loss_fn, observables={"train": (x, y)}, **kwargs)
    with pytest.raises(ValueError, match=r"must return one loss per row, shape \(12,\)"):
        dvz.estimate_llc(model, (x, y), loss_fn, observables={"train": (x, y)}, per_sample_loss=loss_fn, **kwargs)
    result = dvz.estimate_llc(model, (x, y), loss_fn, **kwargs)
    with pytest.raises(KeyError, match="recorded no observable 'train'"):
        dvz.loss_kernel(result, "train")


def test_a_sweep_records_observables_per_checkpoint_and_its_store_reuses_them_only_when_they_are_the_same(tmp_path):
    from sweep_helpers import make_model, mse, regression_problem, train_trajectory

    x, y = regression_problem()
    trajectory = dvz.Trajectory(train_trajectory(num_checkpoints=3, steps=50))
    probe = (x[:10], y[:10])

    def squared_error(model, batch):
        return (model(batch[0]) - batch[1]).square().squeeze(-1)

    def sweep(observables, per_sample_loss):
        return dvz.sweep_llc(trajectory, make_model(), (x, y), mse, store=tmp_path / "store", observables=observables,
                             per_sample_loss=per_sample_loss, lr=1e-4, nbeta=20.0, num_chains=2, num_draws=6,
                             batch_size=32, progress=False)

    first = sweep({"probe": probe}, squared_error)
    values = [first.results[("all", "data", i)].observables["probe"] for i in range(len(trajectory))]
    assert all(v.shape == (2, 6, 10) for v in values) and not np.array_equal(values[0], values[-1])
    over_training = first.susceptibilities("probe")
    assert over_training.shape == (1, 1, len(trajectory), 10)
    for i in range(len(trajectory)):
        np.testing.assert_array_equal(over_training.value[0, 0, i],
                                      dvz.susceptibilities(first.results[("all", "data", i)], "probe").value)
    again = sweep({"probe": probe}, squared_error)  # the same observables: read from the store
    for i, v in enumerate(values):
        np.testing.assert_array_equal(again.results[("all", "data", i)].observables["probe"], v)
    other_rows = sweep({"probe": (x[10:20], y[10:20])}, squared_error)
    assert not np.array_equal(other_rows.results[("all", "data", 0)].observables["probe"], values[0])

    def absolute_error(model, batch):
        return (model(batch[0]) - batch[1]).abs().squeeze(-1)

    other_loss = sweep({"probe": probe}, absolute_error)
    assert not np.array_equal(other_loss.results[("all", "data", 0)].observables["probe"], values[0])
