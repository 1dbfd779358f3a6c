"""Bad input is a clear ValueError/TypeError before any sampling, naming what is wrong; convertible input is converted.

The cases live in tests/bad_input_cases.py, which bench/bad_inputs.py runs too and tabulates.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

import devinterp_viz as dvz
from tests import bad_input_cases as cases
from tests.sweep_helpers import make_model, mse, regression_problem

FAST = dict(cases.FAST)


@pytest.mark.parametrize("name", list(cases.CASES))
def test_bad_input_is_a_clear_error_before_sampling_and_leaves_the_model_alone(name, tmp_path):
    outcome = cases.try_case(cases.CASES[name], tmp_path)
    assert outcome.clear, f"{name}: {outcome.detail} ({outcome.error}: {outcome.message})"


@pytest.mark.parametrize("name", [n for n, case in cases.CASES.items() if case.check is None])
def test_the_error_message_names_the_argument_and_the_fix(name, tmp_path):
    case = cases.CASES[name]
    with pytest.raises((ValueError, TypeError)) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.call(tmp_path, {})
    for pattern in case.expect:
        assert re.search(pattern, str(caught.value), re.IGNORECASE | re.DOTALL), f"{pattern!r} not in {caught.value}"


def test_numpy_arrays_are_sampled_as_the_tensors_they_hold():
    x, y = regression_problem()
    as_tensors = dvz.estimate_llc(make_model(), (x, y), mse, **FAST)
    as_numpy = dvz.estimate_llc(make_model(), (x.numpy().astype(np.float64), y.numpy()), mse, **FAST)
    np.testing.assert_array_equal(as_numpy.loss_trace, as_tensors.loss_trace)


def test_a_list_of_x_y_examples_is_stacked():
    x, y = regression_problem()
    stacked = dvz.estimate_llc(make_model(), (x, y), mse, **FAST)
    listed = dvz.estimate_llc(make_model(), [(x[i], y[i]) for i in range(len(x))], mse, **FAST)
    np.testing.assert_array_equal(listed.loss_trace, stacked.loss_trace)


def test_a_mean_loss_with_a_penalty_is_not_taken_for_a_summed_one():
    # the reduction check compares the batch's loss with its halves': a mean plus a penalty is the
    # mean of its halves' values, neither their sum nor anything that scales with the batch
    def penalised(model, batch):
        return mse(model, batch) + 0.5 * sum(p.square().sum() for p in model.parameters())

    res = dvz.estimate_llc(make_model(), regression_problem(), penalised, **FAST)
    assert np.isfinite(res.llc_mean)


@pytest.mark.parametrize("loss_fn", [lambda m, b: (m(b[0]) > 0).sum(), lambda m, b: mse(m, b).detach()],
                         ids=["integer tensor", "detached tensor"])
def test_a_bad_loss_value_is_reported_without_a_vmap_fallback_warning_first(loss_fn):
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError, match="loss_fn returned"):
        warnings.simplefilter("always")
        dvz.estimate_llc(make_model(), regression_problem(), loss_fn, vectorize="auto", **FAST)
    assert not [w for w in caught if "vmap" in str(w.message)]


def test_a_criterion_that_fails_on_its_first_call_keeps_the_original_error_as_its_cause():
    with pytest.raises(TypeError, match="criterion") as caught:
        dvz.estimate_llc(make_model(), regression_problem(), lambda a, b: (a - b).square().mean(), **FAST)
    assert isinstance(caught.value.__cause__, TypeError) and "Sequential" in str(caught.value.__cause__)


def test_a_users_own_type_error_in_loss_fn_is_not_blamed_on_the_criterion_convention():
    def typo(model, batch):
        x, y = batch
        return mse(model, (x, y)) + len(3)  # the user's own bug, not a criterion

    with pytest.raises(TypeError, match="object of type 'int' has no len"):
        dvz.estimate_llc(make_model(), regression_problem(), typo, **FAST)


def test_a_loss_fn_that_calls_the_model_wrongly_gets_its_own_error_not_the_criterion_hint():
    # the batch passed whole to the model (not unpacked): the model ran, so this is no criterion
    with pytest.raises(TypeError, match="must be Tensor, not tuple") as caught:
        dvz.estimate_llc(make_model(), regression_problem(), lambda model, batch: model(batch).mean(), **FAST)
    assert "criterion" not in str(caught.value)


def test_a_failed_checkpoint_keeps_the_sweeps_arrays_consistent(tmp_path):
    outcome = cases.nan_checkpoint_sweep(tmp_path)
    assert outcome.clear, outcome.detail


def test_a_sweep_checks_every_checkpoint_before_sampling_any(monkeypatch):
    from devinterp_viz.analysis import sweep as sweep_module

    started = []
    monkeypatch.setattr(sweep_module, "_estimate_checkpoint", lambda *a, **k: started.append(1))
    with pytest.raises(ValueError, match="step 120"):
        dvz.sweep_llc(cases._mixed_architectures(), make_model(), regression_problem(), mse, progress=False,
                      **{k: v for k, v in FAST.items() if k != "progress"})
    assert not started


def test_checkpoint_shapes_are_read_without_loading_the_values(tmp_path, monkeypatch):
    cases.train_trajectory(tmp_path, num_checkpoints=2, steps=5)
    trajectory = dvz.Trajectory.from_folder(tmp_path)
    loaded = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded.append(k.get("mmap")) or real(*a, **k))
    shapes = trajectory.tensor_shapes(0)
    assert shapes == {k: tuple(v.shape) for k, v in make_model().state_dict().items()}
    assert loaded == [True]  # memory-mapped: the values are not read


class Masked(torch.nn.Module):
    """A model with a persistent additive mask buffer holding -inf on purpose."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 1)
        self.register_buffer("mask", torch.tensor([0.0, 0.0, 0.0, float("-inf")]))

    def forward(self, x):
        return self.head(torch.softmax(self.lin(x) + self.mask, dim=-1))


def test_a_sweep_does_not_take_a_mask_buffer_holding_minus_inf_for_broken_weights():
    torch.manual_seed(0)
    model = Masked()
    states = [(step, {k: v.clone() for k, v in model.state_dict().items()}) for step in (1, 2)]
    sweep = dvz.sweep_llc(dvz.Trajectory(states), model, regression_problem(), mse, progress=False,
                          **{k: v for k, v in FAST.items() if k != "progress"})
    assert not sweep.failed and np.isfinite(sweep.llc_mean).all()
