"""SamplerWidget's Python side without a browser: traits, validation, messages, throttling, buffers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers

from devinterp_viz.engine.results import LLCResult
from devinterp_viz.widgets import SamplerWidget, SettingError
from devinterp_viz.widgets import sampler as sampler_module
from devinterp_viz.widgets._base import bundle_is_built
from devinterp_viz.widgets._transport import Throttle, embed_state, pack, unpack
from tests.widget_fakes import FakeEngine, install


@pytest.fixture
def engine(monkeypatch):
    return install(FakeEngine(), monkeypatch.setattr)


@pytest.fixture
def widget(engine):
    model = torch.nn.Linear(3, 1)
    return SamplerWidget(model, torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(), num_draws=50)


def record_messages(widget):
    """Replace the comm's send with a recorder of (message, buffers)."""
    sent = []
    widget.comm.send = lambda data=None, buffers=None, **kw: sent.append((data, buffers or []))
    return sent


def wait_for_draws(widget, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while widget.trace["loss"].shape[1] < n and time.monotonic() < deadline:
        time.sleep(0.01)


def result_with(chains=4, draws=100, seed=0, **config):
    rng = np.random.default_rng(seed)
    trace = 1.0 + 0.05 * (1 - np.exp(-np.arange(draws) / 10)) + 0.01 * rng.random((chains, draws))
    cfg = dict(sampler="sgld", lr=1e-3, localization=100.0, num_chains=chains, num_draws=draws) | config
    return LLCResult.from_traces(trace, 1.0, 10.0, config=cfg)


# ----------------------------------------------------------------------------- construction
def test_unknown_keyword_is_rejected_with_suggestion(engine):
    with pytest.raises(TypeError, match="Did you mean lr"):
        SamplerWidget(lrr=1e-3)


def test_read_only_traits_cannot_be_passed(engine):
    with pytest.raises(TypeError, match="read-only"):
        SamplerWidget(status="done")


def test_model_data_loss_fn_go_together(engine):
    with pytest.raises(TypeError, match="together"):
        SamplerWidget(torch.nn.Linear(2, 1))


def test_defaults_set_controls_and_pass_engine_options_through(engine):
    w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).sum(), lr=1e-3, nbeta=5.0,
                      num_chains=2, batch_size=4, seed=3)
    assert (w.lr, w.nbeta, w.num_chains) == (1e-3, 5.0, 2)
    settings = w.settings()
    assert settings["batch_size"] == 4 and settings["seed"] == 3 and settings["params"] is None
    assert w.can_run


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("lr", 0.0, "lr must be a positive number"),
        ("lr", -1e-3, "lr must be a positive number"),
        ("lr", float("nan"), "lr must be a positive number"),
        ("nbeta", 0.0, "nbeta must be"),
        ("localization", -1.0, "localization must be"),
        ("num_draws", 0, "num_draws must be at least 2"),
        ("num_chains", 0, "num_chains must be a positive integer"),
        ("num_burnin_steps", -1, "num_burnin_steps must be a non-negative integer"),
        ("sampler", "adam", "sampler=.adam. is unknown; choose one of"),
        ("grid_lrs", [], "at least one"),
        ("grid_lrs", [1e-3, 0.0], "calibration grid: lr must be a positive number"),
        ("grid_axis", "temperature", "grid_axis must be"),
    ],
)
def test_invalid_settings_raise_clear_value_errors(widget, name, value, message):
    before = getattr(widget, name)
    with pytest.raises(ValueError, match=message):
        setattr(widget, name, value)
    assert getattr(widget, name) == before
    with pytest.raises(SettingError):
        widget.set(**{name: value})


def test_nbeta_none_means_engine_default(widget):
    widget.nbeta = 3.0
    widget.nbeta = None
    assert widget.settings()["nbeta"] is None


def test_settings_from_the_browser_update_python(widget):
    widget.set_state({"lr": 0.01, "num_chains": 2, "params": "weight"})
    assert widget.lr == 0.01 and widget.num_chains == 2
    assert widget.settings()["params"] == ["weight"]
    assert widget.selection["num_selected"] == 3


def test_selection_error_is_shown_not_raised(widget):
    widget.params = "no_such_weight"
    assert "no_such_weight" in widget.selection["error"]


# ----------------------------------------------------------------------------- transport
def test_trace_travels_as_float32_binary_buffers(engine):
    w = SamplerWidget.from_result(result_with(chains=4, draws=100))
    state, paths, buffers = _remove_buffers(w.get_state())
    assert ["trace", "loss", "data"] in paths
    loss_buffer = buffers[paths.index(["trace", "loss", "data"])]
    assert bytes(loss_buffer) == np.asarray(w.result.loss_trace if w.result else w.trace["loss"], np.float32).tobytes()
    assert state["trace"]["loss"]["shape"] == [4, 100] and state["trace"]["loss"]["dtype"] == "float32"

    def no_number_lists(value, path=""):
        if isinstance(value, dict):
            for k, v in value.items():
                no_number_lists(v, f"{path}.{k}")
        elif isinstance(value, list):
            assert not (len(value) > 8 and all(isinstance(x, float) for x in value)), f"JSON number list at {path}"
            for v in value:
                no_number_lists(v, path)

    no_number_lists(state)


def test_pack_round_trips_arrays_tensors_and_nan():
    tree = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "t": torch.ones(2), "x": float("nan"), "n": np.int64(3)}
    packed = pack(tree)
    assert packed["x"] is None and packed["n"] == 3 and isinstance(packed["n"], int)
    back = unpack(packed)
    np.testing.assert_array_equal(back["a"], tree["a"].astype(np.float32))
    np.testing.assert_array_equal(back["t"], np.ones(2, np.float32))


def test_throttle_limits_rate_and_never_loses_the_last_state():
    pushes = []
    throttle = Throttle(lambda: pushes.append(time.monotonic()), hz=20)
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        throttle.request()
        time.sleep(0.001)
    time.sleep(0.1)  # the trailing push lands within one interval
    assert 6 <= len(pushes) <= 13  # 0.5 s at 20 Hz: about 10
    gaps = np.diff(pushes)
    assert gaps.min() >= 0.045
    assert pushes[-1] >= start + 0.45


def test_throttle_flush_pushes_pending_state_once():
    pushes = []
    throttle = Throttle(lambda: pushes.append(1), hz=1)
    throttle.request()
    throttle.request()
    assert len(pushes) == 1
    throttle.flush()
    throttle.flush()
    assert len(pushes) == 2


# ----------------------------------------------------------------------------- running
def test_run_streams_throttled_batched_updates_and_ends_with_the_verdict(widget, engine):
    engine.seconds_per_draw = 0.004
    widget.num_draws = 100  # ~0.4 s at 20 Hz: about 8 live pushes
    sent = record_messages(widget)
    started = time.monotonic()
    result = widget.run(wait=True)
    elapsed = time.monotonic() - started
    assert widget.status == "done" and widget.result is result
    assert widget.trace["loss"].shape == (4, 100)
    assert widget.health["verdict"] == result.diagnostics.verdict
    updates = [m for m, _ in sent if m.get("method") == "update"]
    trace_updates = [m for m in updates if "trace" in m["state"]]
    # throttled: at most push_hz a second while it ran, plus the first, the trailing and the final push
    assert 3 <= len(trace_updates) <= widget.push_hz * elapsed + 3, (len(trace_updates), elapsed)
    # each push is one message (hold_sync), and arrays ride as buffers
    assert all(m["buffer_paths"] for m in trace_updates)
    final = [m for m in updates if "health" in m["state"]][-1]
    assert "trace" in final["state"]


def test_stop_keeps_what_was_drawn(widget, engine):
    engine.seconds_per_draw = 0.005
    widget.num_draws = 2000
    widget.run()
    wait_for_draws(widget, 5)
    widget.stop()
    assert widget.status == "stopped"
    assert widget.result.partial
    kept = widget.trace["loss"].shape[1]
    assert 0 < kept < 2000 and kept == widget.result.num_draws
    assert widget.health["partial"] is True


def test_engine_exception_is_shown_in_the_widget(widget, engine):
    engine.fail_with, engine.fail_after = RuntimeError("CUDA out of memory"), 3
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        widget.run(wait=True)
    assert widget.status == "error"
    assert "RuntimeError: CUDA out of memory" in widget.error
    engine.fail_with = None
    widget.run(wait=True)  # a new run clears the error
    assert widget.error == "" and widget.status == "done"


def test_divergent_run_ends_with_an_unhealthy_verdict_not_a_traceback(widget, engine):
    result = widget.run(wait=True, lr=0.5)
    assert widget.status == "done"
    assert not result.diagnostics.healthy
    assert widget.health["healthy"] is False and widget.health["reasons"]


def test_run_and_stop_buttons_send_messages(widget, engine):
    engine.seconds_per_draw = 0.005
    widget.num_draws = 2000
    widget._on_frontend_msg(widget, {"type": "run"}, [])
    assert widget.running and widget.status == "running"
    wait_for_draws(widget, 3)
    widget._on_frontend_msg(widget, {"type": "stop"}, [])
    widget.join(5)
    assert widget.status == "stopped"


def test_second_run_while_running_is_refused(widget, engine):
    engine.seconds_per_draw = 0.005
    widget.num_draws = 2000
    widget.run()
    with pytest.raises(RuntimeError, match="already running"):
        widget.run()
    widget._on_frontend_msg(widget, {"type": "run"}, [])  # the button press shows it instead
    assert "already running" in widget.error
    widget.stop()


def test_from_result_is_read_only(engine):
    w = SamplerWidget.from_result(result_with(lr=3e-3, num_draws=100))
    assert not w.can_run and w.lr == 3e-3 and w.nbeta == 10.0 and w.status == "done"
    with pytest.raises(RuntimeError, match="finished result"):
        w.run()
    w._on_frontend_msg(w, {"type": "run"}, [])
    assert "finished result" in w.error


def test_from_result_names_the_settings_its_result_does_not_record(engine):
    res = LLCResult.from_traces(1.0 + 0.01 * np.random.default_rng(0).random((4, 50)), 1.0, 10.0,
                                config={"lr": 3e-3, "num_draws": 50})
    w = SamplerWidget.from_result(res)
    assert "localization" in w.unrecorded and "num_burnin_steps" in w.unrecorded and "sampler" in w.unrecorded
    assert "lr" not in w.unrecorded and "num_draws" not in w.unrecorded and "nbeta" not in w.unrecorded
    assert "num_chains" not in w.unrecorded and w.num_chains == 4  # read from the trace's shape
    assert w.health["label"] == "healthy as far as checked" and w.health["unchecked"]
    assert w.history["rows"][0]["status"] == "healthy as far as checked"
    full = LLCResult.from_traces(res.loss_trace, 1.0, 10.0, config=SamplerWidget().sampler_settings().to_config())
    assert SamplerWidget.from_result(full).unrecorded == []  # an engine run's config records every setting


# ----------------------------------------------------------------------------- calibration
def test_calibration_fills_the_grid_and_use_cell_sets_controls(widget, engine):
    cal = widget.calibrate(lrs=[1e-6, 1e-4, 1e-3, 0.1], values=[1.0, 10.0], axis="nbeta", wait=True)
    state = widget.calibration
    assert state["llc_mean"].shape == (2, 4) and state["healthy"].shape == (2, 4)
    assert state["loss"].shape == (2, 4, 4, 50)
    assert state["done"] == state["total"] == 8
    assert state["healthy"][:, 3].tolist() == [0.0, 0.0]  # lr=0.1 diverges
    assert widget.tab == "calibrate" and cal is widget.calibration_result
    widget._on_frontend_msg(widget, {"type": "use_cell", "i": 1, "j": 2}, [])
    assert (widget.lr, widget.nbeta, widget.tab) == (1e-3, 10.0, "run")
    widget.use_recommended()
    assert widget.lr == cal.recommended["lr"] and widget.num_draws == cal.recommended["num_draws"]
    assert widget.num_burnin_steps == cal.recommended["num_burnin_steps"]


def test_calibration_sends_each_cells_traces_thinned_to_every_kth_draw(widget, engine, monkeypatch):
    from devinterp_viz.engine.estimator import running_llc
    from devinterp_viz.widgets import _sampler_state

    monkeypatch.setattr(_sampler_state, "CELL_POINTS", 20)
    cal = widget.calibrate(lrs=[1e-4, 1e-3], values=[10.0], axis="nbeta", wait=True)
    state = _sampler_state.calibration_state(cal)
    assert state["cell_stride"] == 3 and state["loss"].shape[-1] == 17  # 50 draws: 0, 3, …, 48
    (i, j), res = next(iter(cal.results.items()))
    np.testing.assert_array_equal(state["loss"][i, j], res.loss_trace[:, ::3].astype(np.float32))
    full = running_llc(res.loss_trace, res.init_loss, res.nbeta)  # over every draw, then thinned
    np.testing.assert_allclose(state["llc"][i, j], full[:, ::3], rtol=1e-6)


def test_calibration_state_counts_the_grid_apart_from_refinement_and_sends_the_confirming_run(engine):
    from devinterp_viz.widgets import _sampler_state

    fake = FakeEngine(confirm=True)
    cal = fake.calibrate(None, None, None, lrs=[1e-4, 1e-3], nbetas=[3.0], num_draws=30, num_burnin_steps=20)
    refined = fake.estimate_llc(None, None, None, lr=5e-4, nbeta=3.0, num_draws=30)
    cal.cells[(0, 5e-4)] = refined  # a cell the refinement adds between the grid's lrs
    state = _sampler_state.calibration_state(cal)
    assert state["grid_cells"] == 2 and state["done"] == 3  # the grid as set stays 2 cells; the refinement's are counted apart
    assert state["recommended"]["confirmed"] is True
    check = cal.confirmation
    assert state["confirmation"] == {
        "llc": check.llc_mean, "llc_se": check.llc_se, "step_bias": check.diagnostics.step_bias,
        "step_bias_se": check.diagnostics.step_bias_se, "healthy": bool(check.diagnostics.healthy),
        "num_draws": 60, "num_burnin_steps": 70}  # longer than its grid cell (20 burn-in steps, 30 draws)
    assert state["draws"] == [[30, 30, 30]] and state["burnin"] == [[20, 0, 20]]
    assert state["step_bias"].shape == (1, 3)
    assert _sampler_state.calibration_state(FakeEngine().calibrate(None, None, None, lrs=[1e-4], nbetas=[3.0]))["confirmation"] is None


def test_calibration_over_localization(widget, engine):
    widget.calibrate(lrs=[1e-4], values=[0.0, 100.0], axis="localization", wait=True)
    widget.use_cell(0, 0)
    assert widget.localization == 0.0 and engine.calls[-1]["localization"] == 100.0


def test_calibration_result_opens_read_only(engine):
    cal = FakeEngine().calibrate(None, None, None, lrs=[1e-5, 1e-3], nbetas=[3.0], num_draws=30)
    w = SamplerWidget.from_result(cal)
    assert w.calibration["done"] == 2 and w.tab == "calibrate" and not w.can_run


# ----------------------------------------------------------------------------- export
@pytest.mark.skipif(not bundle_is_built(), reason="JS bundle not built (npm --prefix js run build)")
def test_save_html_inlines_bundle_and_state(tmp_path, engine):
    w = SamplerWidget.from_result(result_with())
    page = w.save_html(tmp_path / "w.html").read_text()
    assert "plotly" in page and '"_view": "SamplerWidget"' in page and '"encoding": "base64"' in page
    assert "https://" not in page.split("<script")[0]  # nothing fetched at load
    state = embed_state(w)
    assert state["trace"]["loss"]["encoding"] == "base64"


# ----------------------------------------------------------------------------- real engine
def test_real_engine_run_stop_and_calibrate():
    import devinterp_viz as dvz

    if not hasattr(dvz, "calibrate"):
        pytest.skip("the engine's calibrate() is not available")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(256, 4)
    y = model(x).detach() + 0.1 * torch.randn(256, 1)

    def loss_fn(m, batch):
        xb, yb = batch
        return ((m(xb) - yb) ** 2).mean()

    w = SamplerWidget(model, (x, y), loss_fn, batch_size=64, nbeta=10.0, num_draws=100)
    res = w.run(lr=1e-3, wait=True)
    assert w.status == "done" and w.trace["loss"].shape == (4, 100) and w.health["verdict"] == res.diagnostics.verdict
    assert w.trace["init_loss"] == pytest.approx(res.init_loss)
    diverged = w.run(lr=1.0, wait=True)
    assert not diverged.diagnostics.healthy and "diverged" in w.health["verdict"]
    cal = w.calibrate(lrs=[1e-2, 1e-4, 1e-3], values=[10.0, 30.0], wait=True)
    assert w.grid_lrs == [1e-4, 1e-3, 1e-2]  # sorted like the engine's columns
    # the grid grows as calibrate refines it: every user lr is a column, refined ones sit between
    assert w.calibration["llc_mean"].shape == (2, cal.lrs.size) and set(w.grid_lrs) <= set(cal.lrs.tolist())
    np.testing.assert_allclose(w.calibration["llc_mean"], cal.llc_mean, rtol=1e-5)
    computed = ~np.isnan(w.calibration["healthy"])
    assert computed.sum() == len(cal.cells) and np.isfinite(w.calibration["llc_mean"][computed]).any()


# ----------------------------------------------------------------------------- defaults
def test_default_settings_give_a_healthy_run_on_the_notebooks_network():
    """notebooks/sampler_tuning.ipynb's widget, run once with the defaults, must not start with advice."""
    from devinterp_viz.zoo.dln import make_dln_data, mse_loss, true_parameter_dln

    torch.manual_seed(0)
    model = true_parameter_dln([6, 4, 6], rank=2)
    data = make_dln_data(model, num_examples=2000, noise=0.1)
    w = SamplerWidget(model, data, mse_loss, batch_size=100, num_chains=4, num_draws=300)
    res = w.run(wait=True)
    assert res.diagnostics.status == "healthy", res.summary()
    assert w.health["next_step"] == "" and w.health["reasons"] == []


def test_widget_defaults_differ_from_the_engine_only_where_stated(engine):
    from devinterp_viz.engine.settings import SamplerSettings

    w = SamplerWidget()
    for name in SamplerSettings.names():
        expected = sampler_module.WIDGET_DEFAULTS.get(name, SamplerSettings.default(name))
        assert getattr(w, name) == expected, name
    assert SamplerWidget(lr=1e-2).lr == 1e-2  # a given value wins
    assert w.grid_lrs == sampler_module.DEFAULT_GRID_LRS and w.grid_values == sampler_module.DEFAULT_GRID_VALUES
    assert min(w.grid_lrs) < w.lr < max(w.grid_lrs)  # the grid brackets the default step


def test_data_without_a_batch_size_gets_the_widgets_stated_one_and_runs():
    """The README's call SamplerWidget(model, data, loss_fn) with tensors runs: the engine needs a batch size
    for data it batches itself, so the widget takes WIDGET_BATCH_SIZE (or all of a smaller data set)."""
    from torch.utils.data import DataLoader, TensorDataset

    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(200, 3), torch.randn(200, 1)
    size = sampler_module.WIDGET_BATCH_SIZE
    loss = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    assert SamplerWidget(model, (x, y), loss).batch_size == size
    assert SamplerWidget(model, {"x": x, "y": y}, loss).batch_size == size
    assert SamplerWidget(model, TensorDataset(x, y), loss).batch_size == size
    assert SamplerWidget(model, [(x[i], y[i]) for i in range(10)], loss).batch_size == 10  # fewer examples
    assert SamplerWidget(model, (x[:20].numpy(), y[:20].numpy()), loss).batch_size == 20
    assert SamplerWidget(model, (x, y), loss, batch_size=8).batch_size == 8  # a given value wins
    assert SamplerWidget(model, DataLoader(TensorDataset(x, y), batch_size=16), loss).batch_size is None  # its own
    res = SamplerWidget(model, (x, y), loss, num_chains=2, num_draws=20).run(wait=True)
    assert res.config["batch_size"] == size and np.isfinite(res.llc_mean)


# ----------------------------------------------------------------------------- history
def test_every_run_is_kept_with_its_settings_estimate_and_verdict(widget, engine):
    first = widget.run(wait=True)
    second = widget.run(lr=0.5, wait=True)  # the fake engine's chains explode at a large step
    assert widget.runs == [first, second]
    rows = widget.history["rows"]
    assert [r["run"] for r in rows] == [0, 1] and [r["lr"] for r in rows] == [1e-3, 0.5]
    assert rows[0]["llc_mean"] == pytest.approx(first.llc_mean, rel=1e-3)
    assert rows[0]["llc_se"] == pytest.approx(first.llc_se, rel=1e-3)
    assert rows[1]["status"] == second.diagnostics.status != "healthy"
    assert rows[1]["verdict"] == second.diagnostics.verdict
    assert widget.history["curves"][0].shape == (50,)
    np.testing.assert_allclose(widget.history["curves"][0][-1], first.llc_mean, rtol=1e-4)


def test_history_csv_method_and_file(widget, engine, tmp_path):
    import csv
    import io

    widget.run(wait=True)
    widget.run(lr=2e-3, wait=True)
    text = widget.history_csv(tmp_path / "runs.csv")
    assert (tmp_path / "runs.csv").read_text() == text == widget.history["csv"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [float(r["lr"]) for r in rows] == [1e-3, 2e-3]
    assert float(rows[1]["llc_mean"]) == pytest.approx(widget.runs[1].llc_mean, rel=1e-3)
    assert rows[0]["verdict"] == widget.runs[0].diagnostics.verdict
    widget.clear_history()
    assert widget.runs == [] and widget.history_csv().count("\n") == 1  # the header only


def test_compared_runs_must_exist(widget, engine):
    widget.run(wait=True)
    widget.run(wait=True)
    widget.compared = [1, 0, 1]
    assert widget.compared == [1, 0]
    with pytest.raises(SettingError, match="no run 2 in the history"):
        widget.compared = [2]


def test_a_stopped_run_and_a_shown_result_join_the_history(engine):
    res = result_with()
    w = SamplerWidget.from_result(res)
    assert w.runs == [res] and w.history["rows"][0]["draws"] == 100


def test_history_numbers_have_sensible_significant_digits(engine):
    from devinterp_viz.widgets._sampler_state import significant

    w = SamplerWidget.from_result(result_with())
    w.runs[0].nbeta = 100 / np.log(100)  # 21.71472409516259
    w.history = sampler_module.history_state(w.runs)
    assert w.history["rows"][0]["nbeta"] == 21.71
    assert "21.71," in w.history_csv() and "21.714" not in w.history_csv()
    assert significant(0.000123456) == 0.0001235 and significant(None) is None and significant(7) == 7


# ----------------------------------------------------------------------------- live diagnostics
def test_live_diagnostics_are_the_engines_functions_of_the_streamed_draws():
    from devinterp_viz.engine.convergence import bulk_ess, split_rhat
    from devinterp_viz.widgets._sampler_state import LiveTrace, live_diagnostics

    rng = np.random.default_rng(1)
    loss = 1.0 + 0.01 * rng.random((4, 60))
    loss[3, 40:] = np.inf  # chain 3 diverges
    live = live_diagnostics(loss, 1.0, 10.0)
    assert live["divergent"] == 1 and live["draws"] == 60
    assert live["rhat"] == pytest.approx(split_rhat(loss[:3])) and live["ess"] == pytest.approx(bulk_ess(loss[:3]))
    assert live_diagnostics(loss[:, :2], None, None)["divergent"] is None  # L(w*) not known yet
    trace = LiveTrace(4, 60, None)
    trace.start(1.0, 10.0)
    for t in range(60):
        trace.add(t, loss[:, t])
    assert trace.state()["live"]["divergent"] == 1


def test_live_mala_acceptance_is_the_mean_of_the_non_divergent_chains_means():
    from devinterp_viz.widgets._sampler_state import LiveTrace

    loss = np.ones((4, 5))
    loss[3, 2:] = np.inf  # chain 3 diverges: left out, as the verdict leaves it out
    acceptance = np.full((4, 5), np.nan)
    acceptance[0, :2], acceptance[1, 1:3], acceptance[2, 3], acceptance[3, :] = (0.7, 0.9), (0.8, 1.0), 1.0, 0.0
    trace = LiveTrace(4, 5, None)
    trace.start(1.0, 10.0)
    assert np.isnan(trace.state()["live"]["mala_acceptance"])  # nothing measured yet
    trace = LiveTrace(4, 5, None)
    trace.start(1.0, 10.0)
    for t in range(5):  # the engine sends, with draw t, the acceptance of the move from draw t − 1
        trace.add(t, loss[:, t], acceptance[:, t - 1] if t else np.full(4, np.nan))
    assert trace.state()["live"]["mala_acceptance"] == pytest.approx((0.8 + 0.9 + 1.0) / 3)  # draw 4's move: not yet


def test_live_mala_acceptance_of_a_real_run_is_the_verdicts(trained_mlp, regression_data):
    from devinterp_viz.engine.llc import estimate_llc
    from devinterp_viz.widgets._sampler_state import LiveTrace
    from tests.conftest import mse_loss

    trace = LiveTrace(2, 40, None)
    res = estimate_llc(trained_mlp, regression_data, mse_loss, lr=1e-4, nbeta=20.0, num_chains=2, num_draws=40,
                       batch_size=256, progress=False, on_draw=trace.add, on_start=trace.start)
    expected = np.mean(res.diagnostics.mala_acceptance)  # the full batch: measured at every draw but the last
    assert np.isfinite(expected) and trace.state()["live"]["mala_acceptance"] == pytest.approx(expected, rel=1e-6)


def test_live_diagnostics_stream_with_the_trace(engine):
    engine.seconds_per_draw = 0.002
    w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(), num_draws=400)
    seen = []
    w.observe(lambda change: seen.append(change["new"].get("live")), names="trace")
    w.run(wait=True)
    streamed = [s for s in seen if s and np.isfinite(s["rhat"])]
    assert streamed, "no live R-hat was sent while the chains streamed"
    assert all(0 < s["draws"] <= 400 and s["divergent"] == 0 for s in streamed)


# ----------------------------------------------------------------------------- burn-in
def test_a_run_that_diverges_in_burn_in_shows_its_burn_in_losses_and_says_what_to_do():
    from devinterp_viz.zoo.potentials import GaussianPotential, potential_loss

    w = SamplerWidget(GaussianPotential(10), torch.zeros(1, 1), potential_loss, batch_size=1, nbeta=20.0, localization=0.0,
                      num_chains=2, num_draws=50, num_burnin_steps=300)
    seen = []
    w.observe(lambda change: seen.append(change["new"].get("burnin")), names="trace")
    res = w.run(lr=0.5, wait=True)
    burnin = w.trace["burnin"]
    np.testing.assert_array_equal(burnin["steps"], res.burnin_steps)
    np.testing.assert_array_equal(burnin["loss"], res.burnin_loss_trace.astype(np.float32))
    assert burnin["num_steps"] == 300 and burnin["steps_bw_draws"] == 1
    assert any(s is not None and 0 < s["steps"].size for s in seen[:-1]), "no burn-in loss streamed before the end"
    step = int(res.diagnostics.burnin_divergence_step.min())
    assert w.health["burnin_message"].startswith(f"diverged during burn-in at step {step} of 300: lower lr to 0.05 (lr/10)")
    assert w.health["burnin_divergence_step"].tolist() == res.diagnostics.burnin_divergence_step.tolist()
    # the saved result reopens with the same burn-in panel
    shown = SamplerWidget.from_result(res)
    np.testing.assert_array_equal(shown.trace["burnin"]["loss"], burnin["loss"])
    assert shown.health["burnin_message"] == w.health["burnin_message"]


def test_a_result_without_a_burn_in_trace_sends_none():
    w = SamplerWidget.from_result(result_with())
    assert w.trace["burnin"] is None and w.health["burnin_message"] == ""
    assert w.health["burnin_divergence_step"].tolist() == [-1] * 4


def test_live_trace_keeps_the_streamed_burn_in_losses_in_order():
    from devinterp_viz.widgets._sampler_state import LiveTrace

    trace = LiveTrace(2, 10, None, num_burnin_steps=40, num_steps_bw_draws=2)
    assert trace.state()["burnin"] is None
    for step in (0, 13, 26, 39):
        trace.add_burnin(step, np.array([step, -step], float))
    burnin = trace.state()["burnin"]
    assert burnin["steps"].tolist() == [0, 13, 26, 39] and burnin["loss"].tolist() == [[0, 13, 26, 39], [0, -13, -26, -39]]
    assert burnin["num_steps"] == 40 and burnin["steps_bw_draws"] == 2


def test_the_health_panel_names_what_the_estimate_is_of_its_nbeta_and_localization():
    rng = np.random.default_rng(0)
    result = LLCResult.from_traces(1 + 0.05 * rng.random((4, 200)), 1.0, 21.71472409516259,
                                   config={"lr": 1e-3, "num_draws": 200, "localization": 100.0})
    assert SamplerWidget.from_result(result).health["target"] == "LLC at nβ 21.7, γ 100"
    imported = LLCResult.from_traces(1 + 0.05 * rng.random((4, 200)), 1.0, 10.0, config={"num_draws": 200})
    assert SamplerWidget.from_result(imported).health["target"] == "LLC at nβ 10"  # γ not recorded: not named
