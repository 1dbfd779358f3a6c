"""Engine behaviour users rely on: modes agree, seeds reproduce, streaming, stopping, bad input."""

from __future__ import annotations

import json
import math
import threading
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import devinterp_viz as dvz
from devinterp_viz.analysis.store import ResultStore
from devinterp_viz.engine.potential import FlatLoss
from devinterp_viz.engine.selection import resolve_selection
from devinterp_viz.zoo.potentials import GaussianPotential, potential_loss
from tests.conftest import assert_unchanged, mse_loss, snapshot

FAST = dict(lr=1e-4, nbeta=20.0, localization=100.0, num_chains=3, num_draws=30, batch_size=32, progress=False)


def test_vectorised_and_sequential_chains_give_the_same_numbers(trained_mlp, regression_data):
    vec = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, vectorize=True, **FAST)
    seq = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, vectorize=False, **FAST)
    assert vec.config["vectorized"] and not seq.config["vectorized"]
    np.testing.assert_allclose(vec.loss_trace, seq.loss_trace, rtol=1e-4, atol=1e-6)


def test_chunked_chains_give_the_same_numbers(trained_mlp, regression_data):
    whole = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    chunked = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, chain_chunk_size=2, **FAST)
    np.testing.assert_allclose(whole.loss_trace, chunked.loss_trace, rtol=1e-4, atol=1e-6)


def test_same_seed_same_numbers_and_other_seed_other_numbers(trained_mlp, regression_data):
    a = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, seed=7, **FAST)
    b = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, seed=7, **FAST)
    c = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, seed=8, **FAST)
    np.testing.assert_array_equal(a.loss_trace, b.loss_trace)
    assert not np.allclose(a.loss_trace[:, 1:], c.loss_trace[:, 1:])


def test_a_chain_does_not_depend_on_how_many_chains_run_beside_it(trained_mlp, regression_data):
    three = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    five = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **{**FAST, "num_chains": 5})
    np.testing.assert_allclose(three.loss_trace, five.loss_trace[:3], rtol=1e-4, atol=1e-6)
    assert not np.allclose(five.loss_trace[0, 1:], five.loss_trace[1, 1:])  # chains differ


def test_tensor_dataset_and_plain_dataset_give_the_same_numbers(trained_mlp, regression_data):
    x, y = regression_data

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], y[i]

    ref = dvz.estimate_llc(trained_mlp, (x, y), mse_loss, **FAST)
    for data in (TensorDataset(x, y), Pairs()):
        res = dvz.estimate_llc(trained_mlp, data, mse_loss, **FAST)
        np.testing.assert_allclose(res.loss_trace, ref.loss_trace, rtol=1e-5)


def test_dataloader_is_reproducible_and_uses_its_batch_size(trained_mlp, regression_data):
    loader = DataLoader(TensorDataset(*regression_data), batch_size=16, shuffle=True)
    kwargs = {k: v for k, v in FAST.items() if k != "batch_size"}
    a = dvz.estimate_llc(trained_mlp, loader, mse_loss, seed=1, **kwargs)
    b = dvz.estimate_llc(trained_mlp, loader, mse_loss, seed=1, **kwargs)
    np.testing.assert_array_equal(a.loss_trace, b.loss_trace)
    assert a.config["batch_size"] == 16
    assert not np.allclose(a.loss_trace[0, 1:], a.loss_trace[1, 1:])  # own order per chain
    with torch.no_grad():
        full = float(mse_loss(trained_mlp, regression_data))
    assert a.init_loss == pytest.approx(full, rel=1e-5)  # 16 batches of 16 = the whole data set


def test_default_nbeta_is_batch_size_over_log_batch_size(trained_mlp, regression_data):
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **{**FAST, "nbeta": None})
    assert res.nbeta == pytest.approx(32 / np.log(32))


def test_on_draw_streams_every_draw_in_order(trained_mlp, regression_data):
    seen = []
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, on_draw=lambda i, losses: seen.append((i, losses)), **FAST)
    assert [i for i, _ in seen] == list(range(FAST["num_draws"]))
    np.testing.assert_allclose(np.stack([l for _, l in seen], axis=1), res.loss_trace)


@pytest.mark.parametrize("batch_size", [32, None])  # minibatches (measured at some draws), the full batch (every draw)
def test_on_draw_of_three_parameters_streams_the_mala_acceptance_of_the_move_before(batch_size, trained_mlp, regression_data):
    seen = {}
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **{**FAST, "batch_size": batch_size or len(regression_data[0])},
                           on_draw=lambda i, losses, acceptance: seen.setdefault(i, acceptance))
    streamed = np.stack([seen[i] for i in range(FAST["num_draws"])], axis=1)
    assert np.isnan(streamed[:, 0]).all()  # no move before the first draw
    np.testing.assert_array_equal(streamed[:, 1:], res.mala_trace[:, :-1])  # the same numbers as the result's trace, NaN alike
    assert np.isfinite(streamed).sum() >= 3 * 14  # measured at about half the draws or more


def test_stop_event_returns_a_partial_result_that_says_so(trained_mlp, regression_data):
    stop = threading.Event()
    before = snapshot(trained_mlp)

    def on_draw(i, losses):
        if i == 9:
            stop.set()

    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, on_draw=on_draw, stop=stop, **FAST)
    assert res.partial and res.num_draws == 10
    assert "PARTIAL" in res.summary() and np.isfinite(res.llc_mean)
    assert_unchanged(trained_mlp, before)


@pytest.mark.parametrize("sampler", ["sgld", "rmsprop_sgld", "sgnht"])
def test_every_sampler_leaves_the_model_unchanged_and_returns_finite_traces(sampler, trained_mlp, regression_data):
    trained_mlp.eval()
    trained_mlp[0].weight.requires_grad_(False)
    before = snapshot(trained_mlp)
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, sampler=sampler, params=["0", "2"], **FAST)
    assert res.loss_trace.shape == (3, 30) and np.isfinite(res.loss_trace).all()
    assert_unchanged(trained_mlp, before)


@pytest.mark.parametrize(
    "sampler, lr, nbeta",
    [
        # RMSProp-SGLD's adaptive G makes its stationary law ∝ exp(−U)/G rather than exp(−U)
        # (no Γ correction term; see rmsprop_sgld_step). Where gradients are small next to its
        # eps = 0.1, G is nearly constant and the estimate must be the Gaussian's.
        ("rmsprop_sgld", 2e-8, 1e5),
        ("sgnht", 1e-4, 10.0),
    ],
)
def test_other_samplers_estimate_the_gaussian_llc(sampler, lr, nbeta):
    # |w|² in 10 dimensions, γ = 0: λ = 5. seed 0; 16 chains; SE ≈ 0.02–0.07;
    # tolerance 4 SE + 0.25 (5%: the residual variation of G, the thermostat's transient).
    model = GaussianPotential(10)
    res = dvz.estimate_llc(
        model, torch.zeros(1, 1), potential_loss, sampler=sampler, lr=lr, nbeta=nbeta, localization=0.0,
        num_chains=16, num_draws=1000, num_burnin_steps=1000, num_steps_bw_draws=4, batch_size=1, seed=0,
        progress=False,
    )
    se = np.std(res.llc_per_chain, ddof=1) / 4
    assert abs(res.llc_mean - 5.0) < 4 * se + 0.25, (res.llc_mean, se)


def test_mala_acceptance_falls_as_the_step_grows():
    model = GaussianPotential(20)
    accept = []
    for lr in (1e-4, 1e-3, 1e-2):
        res = dvz.estimate_llc(model, torch.zeros(1, 1), potential_loss, lr=lr, nbeta=20.0, localization=0.0,
                               num_chains=4, num_draws=300, batch_size=1, progress=False)
        accept.append(float(np.mean(res.diagnostics.mala_acceptance)))
    assert accept[0] > accept[1] > accept[2]
    assert accept[0] > 0.99


class _ShiftedQuadratic(nn.Module):
    """L_batch(w) = ½ mean |w − x|² over the batch rows x: each minibatch has its own minimum."""

    def __init__(self, dim: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.w - x).square().sum(-1).mean()


def test_minibatch_mala_acceptance_compares_a_move_on_its_own_batch():
    # Rows at ±3 per coordinate: two different batches' losses at the same point differ by
    # about nβ·6|w|·√dim, so an acceptance computed across batches would be near 0, while at
    # lr = 1e-5 the step's own-batch acceptance is above 0.99. seed 0.
    rows = 3.0 * torch.sign(torch.randn(64, 5, generator=torch.Generator().manual_seed(0)))
    res = dvz.estimate_llc(
        _ShiftedQuadratic(5), rows, lambda m, x: m(x), lr=1e-5, nbeta=20.0, localization=1.0,
        num_chains=2, num_draws=64, batch_size=1, seed=0, progress=False,
    )
    measured = np.isfinite(res.mala_trace).all(axis=0)
    assert measured.sum() == 16 and not measured[-1]
    assert res.mala_trace[:, measured].min() > 0.99


def test_models_that_draw_random_numbers_still_run_vectorised(regression_data):
    # Dropout in train mode (model_mode="as_is") is a random op inside vmap: the engine switches
    # vmap to per-chain randomness instead of falling back to one chain at a time.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.2), nn.Linear(16, 1)).train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to sequential chains would warn
        res = dvz.estimate_llc(model, regression_data, mse_loss, model_mode="as_is", **FAST)
    assert res.config["vectorized"] and np.isfinite(res.loss_trace).all()


def test_models_that_draw_random_numbers_are_reproducible_and_leave_the_users_stream_alone(regression_data):
    # dropout draws from torch's default generator: the estimate seeds it from seed= and restores it
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.2), nn.Linear(16, 1)).train()
    users_stream = torch.get_rng_state()
    a = dvz.estimate_llc(model, regression_data, mse_loss, seed=3, model_mode="as_is", **FAST)
    assert torch.equal(torch.get_rng_state(), users_stream)
    b = dvz.estimate_llc(model, regression_data, mse_loss, seed=3, model_mode="as_is", **FAST)
    c = dvz.estimate_llc(model, regression_data, mse_loss, seed=4, model_mode="as_is", **FAST)
    np.testing.assert_array_equal(a.loss_trace, b.loss_trace)
    assert a.init_loss == b.init_loss and a.init_loss != c.init_loss  # L(w*) too is drawn with dropout
    assert not np.allclose(a.loss_trace[:, 1:], c.loss_trace[:, 1:])


def test_tied_weights_move_together(regression_data):
    # A weight used twice (as GPT-2 ties its embedding and unembedding) is one parameter: the
    # loss at w must be the loss of the model with that one tensor set to w, at both uses.
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encode = nn.Linear(5, 5, bias=False)
            self.decode = nn.Linear(5, 5, bias=False)
            self.decode.weight = self.encode.weight
            self.head = nn.Linear(5, 1)

        def forward(self, x):
            return self.head(self.decode(torch.tanh(self.encode(x))))

    torch.manual_seed(0)
    model = Tied()
    before = snapshot(model)
    selection = resolve_selection(model, ["encode.weight"])
    flat_loss = FlatLoss(model, mse_loss, selection, torch.device("cpu"))
    moved = flat_loss.w_star + 0.1 * torch.randn(flat_loss.w_star.shape, generator=torch.Generator().manual_seed(1))
    expected_model = Tied()
    expected_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected_model.encode.weight.copy_(moved.view(5, 5))
    expected = mse_loss(expected_model, regression_data)
    torch.testing.assert_close(flat_loss(moved, regression_data), expected)
    batched, _ = flat_loss.batched_value_and_grad(moved[None], regression_data, shared_batch=True, chunk_size=None)
    torch.testing.assert_close(batched[0], expected)
    assert_unchanged(model, before)


def test_divergent_chains_are_named_and_excluded():
    model = GaussianPotential(10)
    res = dvz.estimate_llc(model, torch.zeros(1, 1), potential_loss, lr=0.5, nbeta=20.0, localization=0.0,
                           num_chains=2, num_draws=200, batch_size=1, progress=False)
    diag = res.diagnostics
    assert diag.divergent.all() and not diag.healthy
    assert any("chain 0 diverged" in r for r in diag.reasons)
    assert diag.next_step["cause"] == "diverged" and diag.next_step["settings"]["lr"] < 0.5
    assert np.isnan(res.llc_mean) and "unhealthy" in repr(res)


def test_timid_chains_are_flagged_as_still_rising():
    model = GaussianPotential(50)
    res = dvz.estimate_llc(model, torch.zeros(1, 1), potential_loss, lr=1e-6, nbeta=10.0, localization=0.0,
                           num_chains=4, num_draws=200, batch_size=1, progress=False)
    assert not res.diagnostics.healthy
    assert any("still rising" in r for r in res.diagnostics.reasons)


def test_healthy_setting_is_called_healthy():
    model = GaussianPotential(10)
    res = dvz.estimate_llc(model, torch.zeros(1, 1), potential_loss, lr=2e-3, nbeta=20.0, localization=0.0,
                           num_chains=4, num_draws=400, num_burnin_steps=300, batch_size=1, seed=0, progress=False)
    assert res.diagnostics.healthy, res.diagnostics.reasons


def test_result_round_trips_through_save_and_load(tmp_path, trained_mlp, regression_data):
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    loaded = dvz.LLCResult.load(res.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(loaded.loss_trace, res.loss_trace)
    assert loaded.llc_mean == res.llc_mean and loaded.config == res.config
    assert loaded.diagnostics.reasons == res.diagnostics.reasons


def test_result_exports_to_pandas_and_xarray(trained_mlp, regression_data):
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    table = res.to_pandas()
    assert len(table) == 3 * 30 and set(table.columns) >= {"chain", "draw", "loss", "llc"}
    ds = res.to_xarray()
    assert ds["loss"].dims == ("chain", "draw") and ds.attrs["nbeta"] == res.nbeta


def test_plot_shows_traces_and_verdict(trained_mlp, regression_data):
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    fig = res.plot()
    assert len([t for t in fig.data if t.name and t.name.startswith("chain")]) >= 3
    assert res.diagnostics.status in fig.layout.title.text
    notes = " ".join(note.text.replace("<br>", " ") for note in fig.layout.annotations)
    assert all(note in notes for note in res.diagnostics.reasons + res.diagnostics.warnings)  # each in full


def test_plot_of_an_imported_trace_says_what_was_not_checked():
    from devinterp_viz.engine.results import LLCResult

    rng = np.random.default_rng(0)
    res = LLCResult.from_traces(1.0 + 0.01 * rng.standard_normal((4, 200)) ** 2 + 0.01, init_loss=1.0, nbeta=10.0)
    fig = res.plot()
    assert "healthy as far as checked" in fig.layout.title.text and "warning" not in fig.layout.title.text
    notes = " ".join(note.text.replace("<br>", " ") for note in fig.layout.annotations)
    assert "not checked: the step-size bias and equilibrium" in notes


# ------------------------------------------------------------------------ bad input


def _raises(match, model, data, **overrides):
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        dvz.estimate_llc(model, data, mse_loss, **{**FAST, **overrides})
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"lr": 0.0}, "lr must be a positive number"),
        ({"lr": -1e-3}, "lr must be a positive number"),
        ({"nbeta": 0.0}, "nbeta must be a positive number"),
        ({"num_draws": 0}, "num_draws must be at least 2"),
        ({"num_chains": -2}, "num_chains must be a positive integer"),
        ({"localization": -1.0}, "localization must be a finite number >= 0"),
        ({"sampler": "hmc"}, "sampler='hmc' is unknown"),
        ({"graph": "yes"}, "graph must be True, False or 'auto'"),
        ({"batch_size": None}, "batch_size is required"),
        ({"batch_size": 1000}, "larger than the data set"),
        ({"device": "cuda:7"}, "device='cuda:7'"),
        ({"device": "warp-drive"}, "not a device name"),
        ({"params": ["0.wieght"]}, "matches no parameter.*Close names: 0.weight"),
        ({"params": []}, "empty list"),
        ({"params": {"0.weight": torch.zeros(16, 5, dtype=torch.bool)}}, "moves no parameter"),
    ],
)
def test_bad_settings_raise_clear_errors_and_leave_the_model_alone(overrides, match, trained_mlp, regression_data):
    _raises(match, trained_mlp, regression_data, **overrides)


def test_empty_data_is_a_clear_error(trained_mlp):
    _raises("empty", trained_mlp, (torch.zeros(0, 5), torch.zeros(0, 1)))


def test_non_scalar_loss_is_a_clear_error(trained_mlp, regression_data):
    with pytest.raises(ValueError, match="scalar tensor"):
        dvz.estimate_llc(trained_mlp, regression_data, lambda m, b: (m(b[0]) - b[1]).square(), **FAST)


def test_non_finite_loss_at_w_star_is_a_clear_error(trained_mlp, regression_data):
    with pytest.raises(ValueError, match="not finite"):
        dvz.estimate_llc(trained_mlp, regression_data, lambda m, b: mse_loss(m, b) * float("nan"), **FAST)


def test_no_trainable_parameter_is_a_clear_error(trained_mlp, regression_data):
    for p in trained_mlp.parameters():
        p.requires_grad_(False)
    _raises("none does", trained_mlp, regression_data)


def test_a_loss_fn_that_fails_mid_run_leaves_the_model_unchanged(trained_mlp, regression_data):
    calls = {"n": 0}

    def flaky(model, batch):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("data pipeline broke")
        return mse_loss(model, batch)

    before = snapshot(trained_mlp)
    with pytest.raises(RuntimeError, match="data pipeline broke"):
        dvz.estimate_llc(trained_mlp, regression_data, flaky, vectorize=False, **FAST)
    assert_unchanged(trained_mlp, before)


def test_modules_vmap_cannot_run_fall_back_to_sequential_chains(regression_data):
    class ItemUser(nn.Module):  # .item() inside forward is not vmappable
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 1)

        def forward(self, x):
            scale = 1.0 if self.lin.weight.sum().item() > -1e9 else 0.0
            return scale * self.lin(x)

    model = ItemUser()
    with pytest.warns(UserWarning, match="one at a time"):
        res = dvz.estimate_llc(model, regression_data, mse_loss, **FAST)
    assert not res.config["vectorized"] and np.isfinite(res.loss_trace).all()


def test_a_buffer_holding_minus_infinity_on_purpose_is_not_refused():
    # causal attention masks are -inf buffers; only parameters must be finite (and buffers not NaN)
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))
            self.register_buffer("mask", torch.tensor([0.0, -math.inf, 0.0]))

        def forward(self):
            return torch.softmax(self.w + self.mask, dim=0)

    res = dvz.estimate_llc(Masked(), torch.zeros(1, 1), lambda m, b: (m() - 0.5).square().sum(), lr=1e-3, nbeta=10.0,
                           num_draws=20, batch_size=1, progress=False)
    assert np.isfinite(res.llc_mean)


def test_results_and_their_diagnostics_have_one_line_reprs(trained_mlp, regression_data):
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    for obj, head, parts in ((res, "LLCResult(", ("llc=", "chains", "draws")),
                             (res.diagnostics, "Diagnostics(", ("R-hat", "ESS", "divergent")),
                             (dvz.SamplerSettings(lr=3e-4), "SamplerSettings(", ("lr=0.0003",))):
        text = repr(obj)
        assert text.startswith(head) and "\n" not in text and len(text) < 400, text
        assert all(part in text for part in parts), text
    assert res.diagnostics.verdict.split(" (")[0] in repr(res.diagnostics)


def test_flat_gradient_fills_every_slice_and_zeros_unused_tensors(monkeypatch):
    """The flat gradient starts unzeroed (memory): every used tensor's slice is written, an unused one's set to 0."""
    torch.manual_seed(0)
    model = nn.ModuleDict({"used": nn.Linear(3, 2), "unused": nn.Linear(3, 2)})
    loss_fn = lambda m, b: (m["used"](b) ** 2).mean()  # noqa: E731
    flat_loss = FlatLoss(model, loss_fn, resolve_selection(model), torch.device("cpu"))
    positions = flat_loss.w_star.expand(2, -1).clone()
    batch = torch.randn(2, 5, 3)
    real_empty_like = torch.empty_like
    monkeypatch.setattr(torch, "empty_like", lambda x, **k: real_empty_like(x, **k).fill_(float("nan")))
    _, grad = flat_loss.batched_value_and_grad(positions, batch, shared_batch=False, chunk_size=None)
    expected = torch.stack([flat_loss.value_and_grad(positions[c], batch[c])[1] for c in range(2)])
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, expected)
    for name, piece in zip(flat_loss.names, grad.split(flat_loss.sizes, dim=1)):
        assert bool((piece == 0).all()) == name.startswith("unused")


@pytest.mark.parametrize("sampler", ["sgld", "rmsprop_sgld", "sgnht"])
def test_drift_built_in_blocks_gives_the_numbers_of_one_block(trained_mlp, regression_data, sampler, monkeypatch):
    """∇U and the traces built over blocks of a few coordinates (δ never whole) equal the one-block build:
    the same draws exactly, the traces to float32 summation order; with a selection (frozen coordinates)."""
    from devinterp_viz.engine import driver

    kw = dict(num_chains=3, num_draws=30, batch_size=32, lr=1e-3, nbeta=20.0, localization=10.0, seed=4,
              sampler=sampler, params=["0.*"], progress=False)
    whole = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **kw)
    monkeypatch.setattr(driver, "DRIFT_BLOCK_ELEMENTS", 3 * 7)  # 7 coordinates of 3 chains a block
    blocked = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **kw)
    np.testing.assert_array_equal(blocked.loss_trace, whole.loss_trace)
    assert blocked.llc_mean == whole.llc_mean
    for name, trace in whole.sampler_traces.items():
        np.testing.assert_allclose(blocked.sampler_traces[name], trace, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(blocked.mala_trace, whole.mala_trace, rtol=1e-4, atol=1e-6)


def test_printed_result_gives_the_standard_error_as_every_view_does(trained_mlp, regression_data):
    """repr and summary write λ̂ ± SE with the views' one format (plotting.format_estimate), not ± std."""
    from devinterp_viz.plotting import format_estimate

    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    written = format_estimate(res.llc_mean, res.llc_se)
    assert res.llc_se < res.llc_std and f"llc={written} (± SE)" in repr(res)
    assert res.summary().startswith(f"LLC {written} (± SE;")


def _diverging_run(num_burnin_steps, on_burnin=None):
    """Two chains on a 10-d Gaussian at lr 0.5: the loss grows ~80× a step and overflows in burn-in."""
    return dvz.estimate_llc(GaussianPotential(10), torch.zeros(1, 1), potential_loss, lr=0.5, nbeta=20.0, localization=0.0,
                            num_chains=2, num_draws=50, num_burnin_steps=num_burnin_steps, batch_size=1, seed=0,
                            progress=False, on_burnin=on_burnin)


def test_a_run_that_diverges_in_burn_in_keeps_its_burn_in_losses_and_the_step_it_diverged_at():
    every_step = _diverging_run(200)  # at most 256 burn-in steps: every one that ran is kept
    steps, losses = every_step.burnin_steps, every_step.burnin_loss_trace
    assert steps.tolist() == list(range(steps.size)) and losses.shape == (2, steps.size)
    first_bad = every_step.diagnostics.burnin_divergence_step
    for chain in range(2):  # the step recorded is the first whose loss is not finite
        finite = np.isfinite(losses[chain])
        assert 0 < first_bad[chain] < 200 and finite[: first_bad[chain]].all() and not finite[first_bad[chain]]
    assert losses[0, 0] == pytest.approx(every_step.init_loss, abs=1e-6)  # burn-in starts at w*
    assert np.isnan(every_step.diagnostics.fraction_below_init).all()  # no finite draw: no share below L(w*), not 0%
    # a long burn-in keeps evenly spaced steps (every 78th here), and each chain's last finite step before it diverged
    thinned = _diverging_run(20_000)
    np.testing.assert_array_equal(thinned.diagnostics.burnin_divergence_step, first_bad)  # same seed, same chains
    assert thinned.burnin_steps.size <= 256 + 2 and np.all(np.diff(thinned.burnin_steps) > 0)
    last_finite = thinned.burnin_steps.tolist().index(first_bad[0] - 1)
    np.testing.assert_allclose(thinned.burnin_loss_trace[0, last_finite], losses[0, first_bad[0] - 1], rtol=1e-6)
    # the run stops within 50 steps of every chain going non-finite: no burn-in step after it is kept
    assert thinned.burnin_steps.max() < first_bad.max() + 50


def test_a_long_burn_in_keeps_at_most_256_evenly_spaced_steps_and_streams_them():
    model = GaussianPotential(10)
    streamed = []
    res = dvz.estimate_llc(model, torch.zeros(1, 1), potential_loss, lr=2e-3, nbeta=20.0, localization=0.0, num_chains=2,
                           num_draws=20, num_burnin_steps=1000, batch_size=1, progress=False,
                           on_burnin=lambda step, losses: streamed.append((step, losses)))
    steps = res.burnin_steps
    assert steps.size == 256 and steps[0] == 0 and steps[-1] == 999
    assert np.ptp(np.diff(steps)) <= 1  # evenly spaced, to the nearest step
    assert [s for s, _ in streamed] == steps.tolist()
    np.testing.assert_allclose(np.stack([l for _, l in streamed], axis=1), res.burnin_loss_trace, rtol=1e-6)
    assert np.isfinite(res.burnin_loss_trace).all() and (res.diagnostics.burnin_divergence_step == -1).all()


def test_a_burn_in_trace_round_trips_through_save_and_load_and_older_files_still_load(tmp_path):
    res = _diverging_run(300)
    loaded = dvz.LLCResult.load(res.save(tmp_path / "diverged.npz"))
    np.testing.assert_array_equal(loaded.burnin_steps, res.burnin_steps)
    np.testing.assert_array_equal(loaded.burnin_loss_trace, res.burnin_loss_trace)
    np.testing.assert_array_equal(loaded.diagnostics.burnin_divergence_step, res.diagnostics.burnin_divergence_step)
    assert loaded.diagnostics.burnin_message == res.diagnostics.burnin_message != ""
    exported = res.to_xarray()["burnin_loss"]
    assert exported.dims == ("chain", "burnin_step") and exported["burnin_step"].values.tolist() == res.burnin_steps.tolist()
    store = ResultStore(tmp_path / "store")  # a sweep's store keeps it too
    store.put("diverged", res)
    stored = ResultStore(tmp_path / "store").get("diverged")
    np.testing.assert_array_equal(stored.burnin_loss_trace, res.burnin_loss_trace)
    assert stored.diagnostics.reasons == res.diagnostics.reasons
    # a file written before the burn-in trace was kept: no such arrays, no such diagnostics key
    with np.load(tmp_path / "diverged.npz") as data:
        arrays = {key: data[key] for key in data.files if not key.startswith("burnin_")}
    meta = json.loads(arrays["meta"].tobytes().decode())
    del meta["diagnostics"]["burnin_divergence_step"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    old = dvz.LLCResult.load(tmp_path / "old.npz")
    assert old.burnin_steps.shape == (0,) and old.burnin_loss_trace.shape == (2, 0)
    assert old.diagnostics.burnin_divergence_step.tolist() == [-1, -1]
    np.testing.assert_array_equal(old.loss_trace, res.loss_trace)


@pytest.mark.parametrize("first_bad", [0, 1, 49, 50, 51, 123, 998, 999])
def test_the_burn_in_record_finds_the_first_non_finite_step_wherever_it_falls_in_the_scanned_windows(first_bad):
    from devinterp_viz.engine.driver import BURNIN_TRACE_POINTS, BurninRecorder

    burnin = 1000  # windows of 50 steps are scanned on the device; the kept steps are every ~3.9th
    record = BurninRecorder(2, burnin, torch.zeros(1), None, stream_every=1)
    for step in range(burnin):  # chain 0 stays finite; chain 1's loss is its step until it overflows
        record.record(step, torch.tensor([1.0, float(step) if step < first_bad else float("inf")]))
    steps, losses, first = record.result(burnin)
    assert first.tolist() == [-1, first_bad]
    assert BURNIN_TRACE_POINTS <= steps.size <= BURNIN_TRACE_POINTS + 1 and np.all(np.diff(steps) > 0)
    if first_bad > 0:  # its last finite loss is kept at its own step
        assert losses[1, steps.tolist().index(first_bad - 1)] == first_bad - 1
    assert np.isfinite(losses[1, steps < first_bad]).all() and not np.isfinite(losses[1, steps >= first_bad]).any()


def test_the_burn_in_record_of_a_run_that_ended_mid_window_scans_that_window():
    from devinterp_viz.engine.driver import BurninRecorder

    record = BurninRecorder(1, 1000, torch.zeros(1), None, stream_every=1)
    for step in range(130):  # the run stopped at step 129, in the middle of its third window
        record.record(step, torch.tensor([float(step) if step < 117 else float("nan")]))
    steps, losses, first = record.result(130)
    assert first.tolist() == [117] and steps.max() < 130
    assert losses[0, steps.tolist().index(116)] == 116
