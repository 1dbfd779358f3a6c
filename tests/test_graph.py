"""Traced value-and-grad graphs: same chains as eager evaluation, reused across checkpoints, refused when unsafe."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.fx.experimental import proxy_tensor

import devinterp_viz as dvz
from devinterp_viz.engine import graph
from tests.conftest import assert_unchanged, mse_loss, snapshot
from tests.sweep_helpers import SWEEP_SETTINGS, make_model, mse, regression_problem, train_trajectory

FAST = dict(lr=1e-4, nbeta=20.0, localization=100.0, num_chains=3, num_draws=30, batch_size=32, progress=False)


@pytest.fixture(autouse=True)
def fresh_cache():
    graph.clear_graph_cache()
    yield
    graph.clear_graph_cache()


@pytest.fixture
def count_traces(monkeypatch):
    """How many graphs make_fx has traced since the test began."""
    calls = []
    real = proxy_tensor.make_fx

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(proxy_tensor, "make_fx", counting)
    return calls


def test_a_traced_graph_gives_the_same_chains_as_eager_evaluation(trained_mlp, regression_data):
    before = snapshot(trained_mlp)
    eager = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=False, **FAST)
    traced = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=True, **FAST)
    assert eager.config["graph"] == "eager" and traced.config["graph"] == "graph"
    assert isinstance(next(iter(graph._CACHE.values())).graph.script, torch.jit.ScriptModule)  # run without Python
    np.testing.assert_allclose(traced.loss_trace, eager.loss_trace, rtol=1e-6, atol=0)
    np.testing.assert_allclose(traced.distance_trace, eager.distance_trace, rtol=1e-6, atol=0)
    assert_unchanged(trained_mlp, before)


def test_weight_refined_runs_of_every_head_agree_with_eager():
    # the per-row masks of a multi-selection run never enter the graph; the frozen weights do
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 1))
    x = torch.randn(128, 6, generator=torch.Generator().manual_seed(1))
    data = (x, x.sum(1, keepdim=True))
    selections = {"first": ["0.weight"], "last": ["2.*"]}
    kwargs = dict(lr=1e-4, nbeta=20.0, num_chains=2, num_draws=20, batch_size=16, progress=False)
    eager = dvz.estimate_llc_selections(model, data, mse_loss, selections, graph=False, **kwargs)
    traced = dvz.estimate_llc_selections(model, data, mse_loss, selections, graph=True, **kwargs)
    for name in selections:
        assert traced[name].config["graph"] == "graph"
        np.testing.assert_allclose(traced[name].loss_trace, eager[name].loss_trace, rtol=1e-6, atol=0)


def test_a_graph_traced_at_one_checkpoint_serves_the_next(trained_mlp, regression_data, count_traces):
    # a sweep deep-copies the model per checkpoint: new weights are graph inputs, not constants
    first = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=True, **FAST)
    later = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        for p in later.parameters():
            p.mul_(1.5)
    traced = dvz.estimate_llc(later, regression_data, mse_loss, graph=True, **FAST)
    eager = dvz.estimate_llc(later, regression_data, mse_loss, graph=False, **FAST)
    assert len(count_traces) == 1 and first.config["graph"] == traced.config["graph"] == "graph"
    np.testing.assert_allclose(traced.loss_trace, eager.loss_trace, rtol=1e-6, atol=0)
    assert not np.allclose(traced.loss_trace, first.loss_trace)


def test_another_architecture_or_mode_gets_its_own_graph(trained_mlp, regression_data, count_traces):
    dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=True, **FAST)
    wider = nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Linear(32, 1))
    dvz.estimate_llc(wider, regression_data, mse_loss, graph=True, **FAST)
    dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=True, **{**FAST, "batch_size": 16})
    assert len(count_traces) == 3


class Branching(nn.Module):
    """Takes its path from a buffer's value (vmap allows it: buffers are not batched); a graph
    traced with real values would bake one path in for every later checkpoint."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 1)
        self.register_buffer("sign", torch.ones(()))

    def forward(self, x):
        out = self.linear(x)
        return out if self.sign.item() > 0 else -out


def test_data_dependent_control_flow_is_refused_and_runs_eagerly(regression_data):
    torch.manual_seed(0)
    model = Branching()
    traced = dvz.estimate_llc(model, regression_data, mse_loss, graph=True, **FAST)
    eager = dvz.estimate_llc(model, regression_data, mse_loss, graph=False, **FAST)
    assert traced.config["graph"].startswith("eager (graph cannot be traced")
    np.testing.assert_array_equal(traced.loss_trace, eager.loss_trace)


class Scaled(nn.Module):
    """Its output scale is a plain list attribute, which the architecture key sees only as a list."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 1)
        self.scale = [1.0]

    def forward(self, x):
        return self.linear(x) * self.scale[0]


def test_a_graph_that_no_longer_matches_eager_is_dropped(regression_data):
    torch.manual_seed(0)
    model = Scaled()
    dvz.estimate_llc(model, regression_data, mse_loss, graph=True, **FAST)  # bakes scale 1.0 in
    model.scale[0] = 3.0
    checked = dvz.estimate_llc(model, regression_data, mse_loss, graph=True, **FAST)
    eager = dvz.estimate_llc(model, regression_data, mse_loss, graph=False, **FAST)
    assert checked.config["graph"].startswith("eager (graph differs from eager")
    np.testing.assert_array_equal(checked.loss_trace, eager.loss_trace)


def test_models_that_draw_random_numbers_are_not_traced(regression_data, count_traces):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.2), nn.Linear(16, 1)).train()
    res = dvz.estimate_llc(model, regression_data, mse_loss, graph=True, model_mode="as_is", **FAST)
    assert res.config["vectorized"] and res.config["graph"] == "eager (the model draws random numbers)"
    assert not count_traces
    assert np.isfinite(res.loss_trace).all()


def test_auto_traces_once_eager_steps_would_have_paid_for_it(trained_mlp, regression_data, monkeypatch, count_traces):
    # trace when GRAPH_SAVING × (eager time so far + the run's remaining steps) pays for
    # GRAPH_TRACE_STEPS steps (+ the first import): a 10-step run alone gives 0.2 × 10 = 2 < 5
    # steps; a 40-step run after it 0.2 × (10 + 40) = 10 ≥ 5
    monkeypatch.setattr(graph, "GRAPH_IMPORT_SECONDS", 0.0)
    monkeypatch.setattr(graph, "GRAPH_TRACE_STEPS", 5)
    monkeypatch.setattr(graph, "GRAPH_SAVING", 0.2)
    short = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **{**FAST, "num_draws": 10})
    assert short.config["graph"] == "eager" and not count_traces
    longer = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **{**FAST, "num_draws": 40})
    assert longer.config["graph"] == "graph" and len(count_traces) == 1
    eager = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=False, **{**FAST, "num_draws": 40})
    np.testing.assert_allclose(longer.loss_trace, eager.loss_trace, rtol=1e-6, atol=0)


def test_without_torchscript_the_fx_graph_runs_and_gives_the_same_chains(trained_mlp, regression_data, monkeypatch):
    def unavailable(*args, **kwargs):
        raise RuntimeError("torch.jit is not available")

    monkeypatch.setattr(torch.jit, "trace", unavailable)
    traced = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=True, **FAST)
    eager = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=False, **FAST)
    assert traced.config["graph"] == "graph"
    assert isinstance(next(iter(graph._CACHE.values())).graph, torch.fx.GraphModule)
    np.testing.assert_allclose(traced.loss_trace, eager.loss_trace, rtol=1e-6, atol=0)


def test_auto_never_traces_a_single_short_run(trained_mlp, regression_data, count_traces):
    res = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, **FAST)
    assert res.config["graph"] == "eager" and not count_traces


def test_a_sweep_traces_once_and_gives_the_eager_numbers(tmp_path, count_traces):
    traj = dvz.Trajectory(train_trajectory(None, 3, 40))
    data = regression_problem()
    eager = dvz.sweep_llc(traj, make_model(), data, mse, graph=False, progress=False, **SWEEP_SETTINGS)
    traced = dvz.sweep_llc(traj, make_model(), data, mse, graph=True, progress=False, **SWEEP_SETTINGS)
    assert len(count_traces) == 1
    assert {r.config["graph"] for r in traced.results.values()} == {"graph"}
    np.testing.assert_allclose(traced.llc_mean, eager.llc_mean, rtol=1e-6, atol=0)
    # graph= does not change the numbers, so it is not part of a stored estimate's key
    store = tmp_path / "store"
    dvz.sweep_llc(traj, make_model(), data, mse, graph=False, store=store, progress=False, **SWEEP_SETTINGS)
    graph.clear_graph_cache()
    reused = dvz.sweep_llc(traj, make_model(), data, mse, graph=True, store=store, progress=False, **SWEEP_SETTINGS)
    assert len(count_traces) == 1  # nothing was sampled again
    np.testing.assert_array_equal(reused.llc_mean, eager.llc_mean)


def test_full_batch_runs_share_one_batch_in_the_graph_too(trained_mlp, regression_data):
    full = {**FAST, "batch_size": len(regression_data[0])}
    traced = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=True, **full)
    eager = dvz.estimate_llc(trained_mlp, regression_data, mse_loss, graph=False, **full)
    assert traced.config["graph"] == "graph"
    np.testing.assert_allclose(traced.loss_trace, eager.loss_trace, rtol=1e-6, atol=0)
