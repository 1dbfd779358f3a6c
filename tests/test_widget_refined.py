"""RefinedLLCWidget's Python side without a browser: the parameter tree, selections, live counts, streaming runs, the store."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

import devinterp_viz as dvz
from devinterp_viz.widgets import refined as refined_module
from devinterp_viz.widgets.refined import RefinedLLCWidget, items_of, parameter_tree, spec_of
from devinterp_viz.zoo.tms import ToyModelOfSuperposition, tms_data, tms_loss, train_tms
from devinterp_viz.zoo.transformer import AttentionOnlyTransformer, TransformerConfig

SETTINGS = dict(lr=1e-3, nbeta=30.0, localization=100.0, num_chains=2, num_draws=20, batch_size=256, seed=0)
SMALL = TransformerConfig(n_layers=2, n_heads=2, d_model=16, d_head=8, seq_len=16)


@pytest.fixture(scope="module")
def tms_run():
    torch.set_num_threads(1)
    return dvz.Trajectory(train_tms(steps=300, num_checkpoints=5)), ToyModelOfSuperposition(6, 2), tms_data(6, 256, 8)


@pytest.fixture(scope="module")
def transformer():
    return AttentionOnlyTransformer(SMALL)


def widget_for(tms_run, **kwargs):
    trajectory, model, data = tms_run
    return RefinedLLCWidget(trajectory, model, data, tms_loss, **{**SETTINGS, **kwargs})


def test_attention_layers_expand_into_heads_counted_by_the_adapter(transformer):
    nodes = {n["id"]: n for n in parameter_tree(transformer)}
    heads = [i for i, n in nodes.items() if n["kind"] == "head"]
    assert heads == ["h:blocks.0.attn:0", "h:blocks.0.attn:1", "h:blocks.1.attn:0", "h:blocks.1.attn:1"]
    assert all(nodes[h]["parent"] == f"m:{h.split(':')[1]}" for h in heads)
    one_head = dvz.resolve_selection(transformer, dvz.HeadSelection("blocks.0.attn", 1)).num_selected
    assert nodes["h:blocks.0.attn:1"]["numel"] == one_head == 4 * 16 * 8
    assert nodes["m:"]["numel"] == sum(p.numel() for p in transformer.parameters())
    assert nodes["p:blocks.0.attn.W_Q"]["shape"] == [2, 16, 8]


def test_checked_nodes_become_a_params_spec_and_back(transformer):
    nodes = parameter_tree(transformer)
    spec = spec_of(nodes, ["h:blocks.0.attn:1", "m:blocks.1", "p:blocks.1.attn.W_Q"])
    assert spec == [dvz.HeadSelection("blocks.0.attn", 1), "blocks.1"]  # W_Q is inside blocks.1
    assert spec_of(nodes, ["m:", "p:unembed.bias"]) is None  # the whole model
    assert items_of(nodes, ["blocks.*.attn.W_O", dvz.HeadSelection("blocks.1.attn", 0)]) == [
        "p:blocks.0.attn.W_O", "p:blocks.1.attn.W_O", "h:blocks.1.attn:0"]
    with pytest.raises(ValueError, match="matches no parameter"):
        items_of(nodes, "nothing.here")


def test_the_weight_count_follows_the_checked_nodes_live(transformer):
    trajectory = dvz.Trajectory([(0, transformer.state_dict())])
    widget = RefinedLLCWidget(trajectory, transformer, torch.zeros(4, 16, dtype=torch.long), tms_loss)
    assert widget.count["num_selected"] == 0
    widget.checked = ["h:blocks.0.attn:1", "p:unembed.bias"]
    count = widget.count
    assert (count["num_selected"], count["num_total"], count["error"]) == (
        4 * 16 * 8 + 128, sum(p.numel() for p in transformer.parameters()), "")
    # the preview: every tensor the ticks touch, how many of its weights move (describe_selection's rows)
    rows = {name: (selected, numel) for name, _, selected, numel in dvz.describe_selection(
        transformer, widget.spec(), print_table=False).rows if selected}
    assert {t["name"]: (t["selected"], t["numel"]) for t in count["tensors"]} == rows
    assert rows["blocks.0.attn.W_Q"] == (16 * 8, 2 * 16 * 8) and rows["unembed.bias"] == (128, 128)
    with pytest.raises(traitlets.TraitError, match="unknown tree nodes"):
        widget.checked = ["p:nope"]


def test_selections_are_named_unique_and_heads_can_be_added_at_once(transformer):
    trajectory = dvz.Trajectory([(0, transformer.state_dict())])
    widget = RefinedLLCWidget(trajectory, transformer, torch.zeros(4, 16, dtype=torch.long), tms_loss,
                              selections={"layer 0": "blocks.0"})
    widget.checked = ["p:unembed.weight"]
    assert widget.add_selection() == "unembed.weight"
    assert widget.checked == []  # the ticks were kept: the tree is ready for the next selection
    with pytest.raises(ValueError, match="tick at least one"):
        widget.add_selection()
    widget.checked = ["p:unembed.weight"]
    assert widget.add_selection() == "unembed.weight (2)"
    assert widget.previews["unembed.weight (2)"]["tensors"] == [
        {"name": "unembed.weight", "shape": [128, 16], "selected": 128 * 16, "numel": 128 * 16}]
    widget.add_selections("heads")
    names = [s["name"] for s in widget.selections]
    assert names[:3] == ["layer 0", "unembed.weight", "unembed.weight (2)"] and "blocks.1.attn.head1" in names
    widget.remove_selection("unembed.weight (2)")
    assert len(widget.selections) == 2 + 4
    with pytest.raises(TypeError, match="not both"):
        RefinedLLCWidget(trajectory, transformer, torch.zeros(1), tms_loss, distributions={"a": torch.zeros(1)})


def test_run_streams_each_selection_curve_and_marks_health(tms_run):
    widget = widget_for(tms_run, selections={"W": "W", "bias": "b"})
    pushed = []
    widget.observe(lambda change: pushed.append(int(np.isfinite(change["new"]["mean"]).sum())), names="curves")
    sweep = widget.run(wait=True)
    assert widget.status == "done", widget.error
    curves = widget.curves
    assert curves["selections"] == ["W", "bias"] and curves["mean"].shape == (2, 1, 5)
    np.testing.assert_allclose(curves["mean"][:, 0], sweep.llc_mean[:, 0], rtol=1e-6)
    verdict = np.where(sweep.undefined, -1.0, sweep.healthy.astype(float))  # 1 healthy, 0 unhealthy, -1 no LLC
    np.testing.assert_array_equal(curves["healthy"][:, 0], verdict[:, 0].astype(np.float32))
    np.testing.assert_allclose(curves["se"][:, 0], sweep.llc_se[:, 0], rtol=1e-6)  # the error bars are standard errors
    assert curves["counts"] == [12, 6] and curves["done"] == curves["total"] == 10
    assert pushed == sorted(pushed) and pushed[-1] == 10 and len(pushed) >= 2  # the curves grew as checkpoints finished


def test_run_adds_the_ticks_first_so_it_runs_what_is_ticked(tms_run):
    widget = widget_for(tms_run, num_draws=10)
    widget.checked = ["p:W"]
    widget.run(wait=True)  # nothing kept yet: the ticks become the first selection
    assert [s["items"] for s in widget.selections] == [["p:W"]] and widget.curves["selections"] == ["W"]
    widget.checked = ["p:b"]  # a new tick after a selection exists
    assert widget.pending()
    widget.run(wait=True, name="bias")
    assert [s["name"] for s in widget.selections] == ["W", "bias"] and not widget.pending()
    assert sorted(widget.sweep.selections) == ["W", "bias"]
    assert np.isfinite(widget.curves["mean"][1]).all() and widget.curves["done"] == widget.curves["total"] == 10
    widget.run(wait=True)  # the ticks are kept already: nothing is added twice
    assert len(widget.selections) == 2


def test_data_refined_runs_every_chosen_distribution(tms_run):
    trajectory, model, data = tms_run
    widget = RefinedLLCWidget(trajectory, model, loss_fn=tms_loss, distributions={"first": data[:128], "second": data[128:]},
                              selections={"W": "W"}, **{**SETTINGS, "batch_size": 64})
    assert widget.available == ["first", "second"] and widget.chosen_distributions == ["first"]
    widget.chosen_distributions = ["first", "second"]
    widget.run(wait=True)
    assert widget.curves["distributions"] == ["first", "second"] and np.isfinite(widget.curves["mean"]).all()
    steps, mean, _ = widget.curve("W", "second")
    np.testing.assert_array_equal(steps, trajectory.steps)
    assert np.isfinite(mean).all()


def test_reopening_with_the_same_store_shows_the_curves_at_once(tms_run, tmp_path):
    first = widget_for(tms_run, store=tmp_path, selections={"W": "W"})  # store + selections: runs at once
    first.join(60)
    stored = len(dvz.ResultStore(tmp_path))
    assert first.status == "done" and stored == 5
    again = widget_for(tms_run, store=tmp_path, selections={"W": "W"})
    again.join(60)
    assert again.status == "done" and len(dvz.ResultStore(tmp_path)) == stored  # read, not recomputed
    np.testing.assert_array_equal(again.curves["mean"], first.curves["mean"])


def test_stop_keeps_the_finished_checkpoints_and_errors_are_shown(tms_run):
    widget = widget_for(tms_run, selections={"W": "W"}, num_draws=60)
    widget.run()
    while not widget.results:
        widget.join(0.01)
    widget.stop()
    assert widget.status == "stopped" and 1 <= widget.curves["done"] < 5

    def broken(model, batch):
        raise RuntimeError("no loss today")

    trajectory, model, data = tms_run
    failing = RefinedLLCWidget(trajectory, model, data, broken, selections={"W": "W"}, **SETTINGS)
    failing.run()
    failing.join(30)
    assert failing.status == "error" and "no loss today" in failing.error
    empty = widget_for(tms_run)
    empty._on_frontend_msg(empty, {"type": "run"}, [])
    assert empty.status == "error" and "nothing to run" in empty.error


def test_cache_key_and_model_mode_reach_the_sweep(tms_run, monkeypatch):
    seen = {}
    real = dvz.sweep_llc

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(refined_module, "sweep_llc", spy)
    widget = widget_for(tms_run, selections={"W": "W"}, cache_key="tms-v1", model_mode="as_is")
    sweep = widget.run(wait=True)
    assert widget.status == "done", widget.error
    assert seen["cache_key"] == "tms-v1" and seen["model_mode"] == "as_is"
    assert {res.config["model_mode"] for res in sweep.results.values()} == {"as_is"}


def test_a_trajectory_of_another_architecture_is_refused_naming_the_step(tms_run, transformer):
    trajectory, _, _ = tms_run
    with pytest.raises(ValueError, match=r"checkpoint at step \d+ does not fit AttentionOnlyTransformer"):
        RefinedLLCWidget(trajectory, transformer, torch.zeros(4, 16, dtype=torch.long), tms_loss)


def test_both_widgets_have_every_sampler_setting_with_the_engines_default_and_check():
    from devinterp_viz.engine.settings import SamplerSettings
    from devinterp_viz.widgets import SettingError
    from devinterp_viz.widgets.sampler import WIDGET_DEFAULTS, SamplerWidget

    defaults = SamplerSettings()
    for widget in (RefinedLLCWidget, SamplerWidget):
        traits = widget.class_traits()
        spec = SamplerSettings.spec(widget.setting_names)
        assert [entry["name"] for entry in spec] == list(SamplerSettings.names()), widget.__name__
        for entry in spec:
            name = entry["name"]
            assert traits[name].default_value == getattr(defaults, name) == entry["default"], (widget.__name__, name)
            assert entry["label"] and entry["hint"], name
    w = SamplerWidget()
    with pytest.raises(SettingError, match="num_steps_bw_draws must be a positive integer"):
        w.num_steps_bw_draws = 0
    w.batch_size, w.seed = 16, 7
    # a new SamplerWidget starts from its own stated defaults (a healthy first run), the rest the engine's
    assert w.sampler_settings() == defaults.replace(batch_size=16, seed=7, **WIDGET_DEFAULTS)
