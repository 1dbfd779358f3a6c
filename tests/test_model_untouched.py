"""The user's model is never changed or used by sampling, and the user's own errors are never swallowed."""

from __future__ import annotations

import copy
import threading
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import devinterp_viz as dvz
from devinterp_viz.engine.potential import FlatLoss
from devinterp_viz.engine.selection import resolve_selection
from tests.conftest import mse_loss
from tests.fault_scenarios import counting_estimates
from tests.sweep_helpers import make_model, mse, regression_problem, train_trajectory

FAST = dict(lr=1e-3, nbeta=20.0, localization=100.0, num_chains=3, num_draws=30, batch_size=32, progress=False)


def full_snapshot(model: nn.Module) -> dict:
    """Every parameter, buffer, requires_grad flag and every module's training flag, copied."""
    return {
        "tensors": {n: t.detach().clone() for n, t in [*model.named_parameters(), *model.named_buffers()]},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
    }


def assert_identical(model: nn.Module, before: dict) -> None:
    after = full_snapshot(model)
    assert after["training"] == before["training"] and after["requires_grad"] == before["requires_grad"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for name, value in before["tensors"].items():
        assert torch.equal(after["tensors"][name], value), f"{name} changed"


class BatchNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 8)
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(torch.tanh(self.norm(self.lin(x))))


def dropout_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Dropout(0.5), nn.Linear(32, 1))


# ---------------------------------------------------------------------- A: the model is not changed
def test_another_thread_using_the_model_sees_only_its_own_weights_while_sampling_runs(trained_mlp, regression_data):
    x = regression_data[0][:64]
    with torch.no_grad():
        expected_out = trained_mlp(x).clone()
    expected_state = {k: v.clone() for k, v in trained_mlp.state_dict().items()}
    done = threading.Event()
    failure: list[BaseException] = []

    def sample():
        try:
            dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=False, **{**FAST, "num_draws": 400})
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            failure.append(err)
        finally:
            done.set()

    worker = threading.Thread(target=sample)
    worker.start()
    forwards = wrong_forwards = states = wrong_states = 0
    while not done.is_set():
        with torch.no_grad():
            wrong_forwards += not torch.equal(trained_mlp(x), expected_out)
        forwards += 1
        state = trained_mlp.state_dict()
        wrong_states += any(not torch.equal(state[k], v) for k, v in expected_state.items())
        states += 1
    worker.join()
    assert not failure, failure
    assert forwards > 50, "the run ended before the main thread could look"
    assert wrong_forwards == 0 and wrong_states == 0, (
        f"{wrong_forwards} of {forwards} forward passes and {wrong_states} of {states} state dicts saw perturbed weights")


@pytest.mark.parametrize("model_mode", ["eval", "as_is"])
def test_batchnorm_statistics_and_training_flags_are_identical_after_sampling(model_mode, regression_data):
    torch.manual_seed(0)
    model = BatchNormNet().train()
    model.head.eval()  # a mixed model: the flag of every module must come back as it was
    before = full_snapshot(model)
    res = dvz.estimate_llc(model, regression_data, mse_loss, model_mode=model_mode, vectorize=False, **FAST)
    assert np.isfinite(res.loss_trace).all() and res.config["model_mode"] == model_mode
    assert_identical(model, before)
    assert int(model.norm.num_batches_tracked) == 0


def test_a_dropout_model_in_train_mode_is_sampled_in_eval_mode_by_default_and_says_nothing(regression_data):
    model = dropout_net().train()
    twin_in_eval = copy.deepcopy(model).eval()
    before = full_snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # eval mode is the documented default: nothing to warn about
        default = dvz.estimate_llc(model, regression_data, mse_loss, seed=1, **FAST)
    in_eval = dvz.estimate_llc(twin_in_eval, regression_data, mse_loss, seed=1, **FAST)
    np.testing.assert_array_equal(default.loss_trace, in_eval.loss_trace)
    assert default.init_loss == in_eval.init_loss and default.config["model_mode"] == "eval"
    assert_identical(model, before)


def test_as_is_samples_each_module_in_its_own_mode(regression_data):
    model = dropout_net().train()
    before = full_snapshot(model)
    as_is = dvz.estimate_llc(model, regression_data, mse_loss, seed=1, model_mode="as_is", **FAST)
    again = dvz.estimate_llc(model, regression_data, mse_loss, seed=1, model_mode="as_is", **FAST)
    other_seed = dvz.estimate_llc(model, regression_data, mse_loss, seed=2, model_mode="as_is", **FAST)
    default = dvz.estimate_llc(model, regression_data, mse_loss, seed=1, **FAST)
    assert as_is.config["model_mode"] == "as_is"
    np.testing.assert_array_equal(as_is.loss_trace, again.loss_trace)  # dropout draws are seeded
    assert as_is.init_loss != other_seed.init_loss  # L(w*) itself is drawn with dropout on
    assert not np.allclose(as_is.loss_trace, default.loss_trace)
    # a model already in eval mode is sampled the same either way
    evaluated = copy.deepcopy(model).eval()
    np.testing.assert_array_equal(
        dvz.estimate_llc(evaluated, regression_data, mse_loss, seed=1, model_mode="as_is", **FAST).loss_trace,
        default.loss_trace)
    assert_identical(model, before)


def test_hooks_on_the_users_modules_run_on_the_sampled_copy(trained_mlp, regression_data):
    calls = []
    handle = trained_mlp[0].register_forward_hook(lambda module, inputs, output: calls.append(module))
    try:
        dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    finally:
        handle.remove()
    assert calls and all(module is not trained_mlp[0] for module in calls)  # ran, and on the engine's copy


class SelfHooked(nn.Module):
    """A module whose own method, registered as a hook, reads its own parameter."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 1)
        self.gain = nn.Parameter(torch.tensor(1.5))
        self.register_forward_pre_hook(self.scale_input)

    def scale_input(self, module, inputs):
        return (inputs[0] * self.gain,)

    def forward(self, x):
        return self.lin(x)


def test_a_modules_own_method_as_a_hook_reads_the_moved_weights(regression_data):
    torch.manual_seed(0)
    model = SelfHooked()
    flat_loss = FlatLoss(model, mse_loss, resolve_selection(model, ["gain"]), torch.device("cpu"))
    moved = flat_loss.w_star + 0.25
    expected = SelfHooked()
    expected.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected.gain.fill_(float(moved))
    torch.testing.assert_close(flat_loss(moved, regression_data), mse_loss(expected, regression_data))


def test_the_sampled_copy_shares_the_weights_and_owns_its_buffers(regression_data):
    model = BatchNormNet()
    selection = resolve_selection(model)
    flat_loss = FlatLoss(model, mse_loss, selection, torch.device("cpu"))
    copied = dict(flat_loss.model.named_parameters())
    assert all(copied[name] is param for name, param in model.named_parameters())  # no weight is copied
    assert all(b.data_ptr() != model.get_buffer(n).data_ptr() for n, b in flat_loss.model.named_buffers())
    assert flat_loss.model is not model and flat_loss.model.lin is not model.lin


def test_old_style_weight_norm_models_are_sampled_and_left_alone(regression_data):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = nn.Sequential(nn.utils.weight_norm(nn.Linear(5, 8)), nn.Tanh(), nn.Linear(8, 1))
    before = full_snapshot(model)
    res = dvz.estimate_llc(model, regression_data, mse_loss, **FAST)
    assert np.isfinite(res.loss_trace).all()
    assert_identical(model, before)


def test_a_stored_sweep_is_not_reused_under_another_model_mode(tmp_path):
    trajectory = dvz.Trajectory(train_trajectory(None, num_checkpoints=2, steps=20))
    settings = dict(lr=1e-4, nbeta=20.0, num_chains=2, num_draws=10, batch_size=32, seed=0, progress=False)

    def sweep(**override):
        return dvz.sweep_llc(trajectory, make_model(), regression_problem(), mse, store=tmp_path, **settings, **override)

    with counting_estimates() as count:
        first = sweep()
        computed = count.take()
        sweep(model_mode="eval")  # the default, named: the same estimates
        reused = count.take()
        as_is = sweep(model_mode="as_is")
        recomputed = count.take()
    assert (computed, reused, recomputed) == (2, 0, 2)
    assert {r.config["model_mode"] for r in first.results.values()} == {"eval"}
    assert {r.config["model_mode"] for r in as_is.results.values()} == {"as_is"}


def test_calibrate_passes_the_model_mode_to_every_estimate(regression_data):
    model = dropout_net().train()
    before = full_snapshot(model)
    cal = dvz.calibrate(model, regression_data, mse_loss, lrs=[1e-4], nbetas=[20.0], num_chains=2, num_draws=10,
                        batch_size=32, refine=False, confirm=False, progress=False, model_mode="as_is")
    assert cal.cells and {res.config["model_mode"] for res in cal.cells.values()} == {"as_is"}
    assert_identical(model, before)


# ---------------------------------------------------------------------- B: errors are not swallowed
class Boom(ValueError):
    pass


def failing_at(call: int, error: Exception):
    """A loss that raises ``error`` at its ``call``-th evaluation after sampling starts (armed by on_start)."""
    state = {"armed": False, "calls": 0}

    def loss_fn(model, batch):
        if state["armed"]:
            state["calls"] += 1
            if state["calls"] == call:
                raise error
        return mse_loss(model, batch)

    def on_start(init_loss, nbeta):
        state["armed"] = True

    return loss_fn, on_start


@pytest.mark.parametrize("graph", [False, "auto"])
@pytest.mark.parametrize("call", [1, 5], ids=["first step", "fifth step"])
def test_a_users_exception_inside_loss_fn_propagates_unchanged(call, graph, trained_mlp, regression_data):
    loss_fn, on_start = failing_at(call, Boom("boom"))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(Boom, match="^boom$"):
        warnings.simplefilter("always")
        dvz.estimate_llc(trained_mlp, regression_data, loss_fn, on_start=on_start, vectorize="auto", graph=graph, **FAST)
    assert not [w for w in caught if "vmap" in str(w.message)]


def test_a_users_runtime_error_in_the_middle_of_a_run_propagates_unchanged(trained_mlp, regression_data):
    loss_fn, on_start = failing_at(5, RuntimeError("the data server went away"))
    with pytest.raises(RuntimeError, match="^the data server went away$"):
        dvz.estimate_llc(trained_mlp, regression_data, loss_fn, on_start=on_start, vectorize="auto", **FAST)


class ItemInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 1)

    def forward(self, x):
        return self.lin(x) * (1.0 if self.lin.weight.sum().item() > -1e9 else 0.0)


class BranchOnTensor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 1)

    def forward(self, x):
        out = self.lin(x)
        return out if self.lin.weight.sum() > -1e9 else -out  # data-dependent control flow


class MaskedByValue(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 1)

    def forward(self, x):
        weight = self.lin.weight
        return x @ weight[weight > -1e9].view(1, 5).T + self.lin.bias  # a dynamic shape


class AccumulatesInPlace(nn.Module):
    """Adds its outputs' mean into a buffer in place: under vmap torch's message does not say "vmap"."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 1)
        self.register_buffer("total", torch.zeros(1))

    def forward(self, x):
        out = self.lin(x)
        self.total.add_(out.detach().mean(0))
        return out


@pytest.mark.parametrize("module", [ItemInForward, BranchOnTensor, MaskedByValue, AccumulatesInPlace])
def test_a_model_vmap_cannot_run_falls_back_to_one_chain_at_a_time_with_the_same_numbers(module, regression_data):
    torch.manual_seed(0)
    model = module()
    before = full_snapshot(model)
    with pytest.warns(UserWarning, match="cannot run under torch.func.vmap.*one at a time"):
        auto = dvz.estimate_llc(model, regression_data, mse_loss, vectorize="auto", **FAST)
    sequential = dvz.estimate_llc(model, regression_data, mse_loss, vectorize=False, **FAST)
    assert not auto.config["vectorized"]
    np.testing.assert_allclose(auto.loss_trace, sequential.loss_trace, rtol=1e-6)
    assert_identical(model, before)  # an in-place buffer update lands in the engine's copy


def test_vectorize_true_reports_vmaps_refusal_instead_of_falling_back(regression_data):
    with pytest.raises(RuntimeError, match="vmap"):
        dvz.estimate_llc(ItemInForward(), regression_data, mse_loss, vectorize=True, **FAST)
