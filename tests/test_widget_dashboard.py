"""DevelopmentDashboard's Python side without a browser: panel data, the checkpoint trait, background compute, store reuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

import devinterp_viz as dvz
from devinterp_viz.analysis.essential_dynamics import essential_dynamics
from devinterp_viz.widgets._base import bundle_is_built
from tests.widget_fakes import synthetic_sweep
from devinterp_viz.widgets._transport import ARRAY_TAG, pack
from devinterp_viz.widgets.dashboard import DevelopmentDashboard
from devinterp_viz.zoo.tms import ToyModelOfSuperposition, tms_data, tms_loss, train_tms

SWEEP_SETTINGS = dict(lr=1e-3, nbeta=30.0, localization=100.0, num_chains=2, num_draws=20, batch_size=256, seed=0)


def dynamics_for(steps, components=3):
    t = np.log1p(np.asarray(steps, float))
    t = (t - t.min()) / (t.max() - t.min())
    outputs = np.stack([np.cos(3 * t), np.sin(3 * t), t**2], 1) @ np.random.default_rng(0).standard_normal((3, 20))
    return essential_dynamics(outputs, steps=steps, n_components=components, progress=False)


@pytest.fixture(scope="module")
def sweep():
    return synthetic_sweep(40, unhealthy=(3,))


@pytest.fixture(scope="module")
def tms_run():
    torch.set_num_threads(1)
    return dvz.Trajectory(train_tms(steps=300, num_checkpoints=5)), ToyModelOfSuperposition(6, 2), tms_data(6, 256, 8)


def test_panels_hold_every_curve_as_float32_buffers(sweep):
    ed = dynamics_for(sweep.steps)
    loss = np.linspace(0.3, 0.05, len(sweep.steps))
    dash = DevelopmentDashboard(sweep=sweep, dynamics=ed, losses={"train": loss, "test": (sweep.steps[::4], loss[::4] + 0.01)})
    data = dash.data
    assert data["steps"].dtype == np.float32 and data["steps"].shape == (40,)
    assert [s["name"] for s in data["losses"]] == ["train", "test"]
    assert data["losses"][1]["index"].tolist() == list(range(0, 40, 4))  # each test-loss step maps to its checkpoint
    llc = data["llc"]
    assert llc["mean"].shape == llc["healthy"].shape == llc["se"].shape == (1, 1, 40)
    np.testing.assert_allclose(llc["mean"][0, 0], sweep.llc_mean[0, 0], rtol=1e-6)
    np.testing.assert_allclose(llc["se"][0, 0], sweep.llc_se[0, 0], rtol=1e-6)  # the error bars: standard errors
    assert llc["healthy"][0, 0, 3] == 0 and llc["healthy"][0, 0, 4] == 1
    np.testing.assert_array_equal(data["dynamics"]["coords"], ed.trajectory_.astype(np.float32))
    # every array travels as a binary leaf, never a JSON list of numbers
    packed = pack(data)
    assert packed["llc"]["se"][ARRAY_TAG] == 1 and packed["dynamics"]["coords"][ARRAY_TAG] == 1


def test_stages_of_the_curve_come_from_the_stage_detector(sweep):
    dash = DevelopmentDashboard(sweep=sweep)
    detected = dvz.stages(sweep)
    shown = dash.data["stages"][0]
    np.testing.assert_allclose(shown["boundaries"], detected.boundaries_.astype(np.float32))
    assert [s["type"] for s in shown["stages"]] == [s["type"] for s in detected.stages_]
    assert {"rising", "falling"} <= {s["type"] for s in shown["stages"]}
    assert DevelopmentDashboard(sweep=sweep, stages=False).data["stages"] == []


def test_checkpoint_is_a_validated_trait_python_can_set_and_read(sweep):
    dash = DevelopmentDashboard(sweep=sweep, checkpoint=5)
    assert dash.step == int(sweep.steps[5])
    seen = []
    dash.observe(lambda change: seen.append(change["new"]), names="checkpoint")
    dash.select(step=int(sweep.steps[20]) + 1)
    assert dash.checkpoint == 20 and seen == [20]
    with pytest.raises(traitlets.TraitError, match="checkpoint must be an index"):
        dash.checkpoint = 40


def test_result_at_gives_the_estimate_behind_the_selected_checkpoint(sweep):
    dash = DevelopmentDashboard(sweep=sweep, checkpoint=7)
    assert dash.result_at() is sweep.results[("all", "data", 7)]
    assert dash.result_at(3).diagnostics.healthy is False


def test_plane_and_curve_choices_are_checked(sweep):
    dash = DevelopmentDashboard(sweep=sweep, dynamics=dynamics_for(sweep.steps))
    dash.plane = [2, 0]
    with pytest.raises(traitlets.TraitError, match="two different PC"):
        dash.plane = [1, 1]
    with pytest.raises(traitlets.TraitError):
        dash.plane = [0, 3]
    with pytest.raises(ValueError, match="not in the sweep"):
        DevelopmentDashboard(sweep=sweep, selection="nope")
    with pytest.raises(TypeError, match="Did you mean checkpoint"):
        DevelopmentDashboard(sweep=sweep, checkpont=1)


def test_losses_alone_are_enough_and_mismatched_lengths_are_refused():
    dash = DevelopmentDashboard(losses=np.linspace(1, 0, 10))
    assert dash.steps.tolist() == list(range(10)) and dash.data["llc"] is None
    with pytest.raises(ValueError, match="give \\(steps, values\\)"):
        DevelopmentDashboard(losses={"train": np.ones(5)}, steps=np.arange(6))


def test_from_trajectory_computes_losses_dynamics_and_llc_then_reopens_from_the_store(tms_run, tmp_path):
    trajectory, model, data = tms_run
    probe = data[:64]
    dash = DevelopmentDashboard.from_trajectory(trajectory, model, data, tms_loss, store=tmp_path, probe=probe,
                                                **SWEEP_SETTINGS)
    dash.join(120)
    assert dash.status == "done", dash.error
    llc = dash.data["llc"]
    assert llc["mean"].shape == (1, 1, 5)
    # a checkpoint of this short run that is not a local minimum has no LLC: no number is sent for it
    undefined = np.array([dash.sweep.results[("all", "data", i)].diagnostics.status == "undefined" for i in range(5)])
    assert (llc["healthy"][0, 0] == -1).tolist() == undefined.tolist()
    assert np.isfinite(llc["mean"][0, 0][~undefined]).all() and np.isnan(llc["mean"][0, 0][undefined]).all()
    with torch.no_grad():
        expected = [float(tms_loss(trajectory.model_at(model, i), data)) for i in range(5)]
    np.testing.assert_allclose(dash.data["losses"][0]["values"], expected, rtol=1e-5)
    assert dash.data["dynamics"]["coords"].shape == (5, 3)
    stored = len(dvz.ResultStore(tmp_path))
    assert stored == 5

    again = DevelopmentDashboard.from_trajectory(trajectory, model, data, tms_loss, store=tmp_path, **SWEEP_SETTINGS)
    again.join(60)
    assert again.status == "done" and len(dvz.ResultStore(tmp_path)) == stored  # nothing recomputed
    np.testing.assert_array_equal(again.data["llc"]["mean"], dash.data["llc"]["mean"])


def test_a_failing_computation_is_shown_in_the_widget(tms_run):
    trajectory, model, data = tms_run

    def broken(model, batch):
        raise RuntimeError("loss exploded")

    dash = DevelopmentDashboard.from_trajectory(trajectory, model, data, broken, **SWEEP_SETTINGS)
    dash.join(30)
    assert dash.status == "error" and "loss exploded" in dash.error
    with pytest.raises(RuntimeError, match="finished results"):
        DevelopmentDashboard(losses=np.ones(3)).run()


def test_stop_ends_the_sweep_and_keeps_what_was_computed(tms_run):
    trajectory, model, data = tms_run
    dash = DevelopmentDashboard.from_trajectory(trajectory, model, data, tms_loss, losses=np.ones(5), run=False,
                                                **{**SWEEP_SETTINGS, "num_draws": 60})
    dash.run()
    while dash.sweep is None or not dash.sweep.results:
        dash.join(0.01)
    dash.stop()
    assert dash.status == "stopped"
    kept = (~np.isnan(dash.data["llc"]["healthy"])).sum()  # computed: healthy, unhealthy or undefined (-1)
    assert 1 <= kept < 5 and kept == len(dash.sweep.results)


@pytest.mark.skipif(not bundle_is_built(), reason="JS bundle not built")
def test_save_html_of_a_thousand_checkpoints_is_one_small_page(tmp_path):
    sweep = synthetic_sweep(1000, chains=4, draws=10)
    dash = DevelopmentDashboard(sweep=sweep, dynamics=dynamics_for(sweep.steps), losses=np.linspace(1, 0, 1000))
    page = dash.save_html(tmp_path / "dash.html").read_text()
    assert '"_view": "DevelopmentDashboard"' in page and "<script src=" not in page  # nothing fetched
    assert len(page.encode()) < 5 * 2**20


def test_the_checkpoints_are_every_step_with_data_and_the_llc_maps_onto_them(sweep):
    every = sweep.steps
    estimated = [0, 5, 20, 39]
    partial = dvz.SweepResult(every[estimated], ["all"], ["data"])
    for k, i in enumerate(estimated):
        partial.results[("all", "data", k)] = sweep.results[("all", "data", i)]
    late_test_loss = (np.array([every[-1] + 500]), np.array([0.2]))
    dash = DevelopmentDashboard(sweep=partial, dynamics=dynamics_for(every), losses={"test": late_test_loss})
    assert dash.steps.tolist() == every.tolist() + [int(every[-1]) + 500]
    assert dash.data["llc"]["index"].tolist() == estimated
    np.testing.assert_array_equal(dash.data["llc"]["steps"], every[estimated].astype(np.float32))
    assert dash.result_at(20) is sweep.results[("all", "data", 20)]
    with pytest.raises(ValueError, match="nearest_estimate"):
        dash.result_at(21)
    step, result = dash.nearest_estimate(23)  # steps 20 and 39 have estimates: 23 is nearer 20 in steps
    assert (step, result) == (int(every[20]), sweep.results[("all", "data", 20)])
    assert dash.nearest_estimate(len(every))[0] == int(every[39])
    middle = int(np.flatnonzero(every > np.sqrt(float(every[20]) * float(every[39])) * 0.9)[0])  # just below the log midpoint
    if every[middle] - every[20] > every[39] - every[middle]:  # nearer 39 in steps, nearer 20 on the log axis the panel draws
        assert dash.nearest_estimate(middle)[0] == int(every[20])


def test_display_options_are_checked():
    dash = DevelopmentDashboard(losses=np.linspace(1, 0.01, 10), smoothing=0.6, log_y=True)
    assert dash.smoothing == 0.6 and dash.log_y
    with pytest.raises(traitlets.TraitError, match=r"smoothing must be in \[0, 1\)"):
        dash.smoothing = 1.0
    with pytest.raises(ValueError, match="strictly increasing"):
        DevelopmentDashboard(losses={"train": (np.array([0, 5, 3]), np.ones(3))})
