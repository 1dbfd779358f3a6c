"""Every static `.plot()` figure fills the output area and reads on light and dark notebooks alike.

JupyterLab's plotly renderer does not know the notebook's theme, so a figure must carry colours that read
on both: see-through backgrounds, a neutral grey for text, no black or white marks.
(tests/ui/test_static_figures_ui.py checks the same in a real JupyterLab, light and dark.)
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import devinterp_viz as dvz
from devinterp_viz.analysis.essential_dynamics import compare_with_stages, essential_dynamics, joint_essential_dynamics
from devinterp_viz.engine.results import LLCResult
from devinterp_viz import plotting
from devinterp_viz.plotting import NEUTRAL, TRANSPARENT
from tests.widget_fakes import synthetic_sweep


def _outputs(seed: int) -> np.ndarray:
    t = np.linspace(0, 1, 60)
    return np.stack([np.cos(3 * t), np.sin(3 * t), t ** 2], 1) @ np.random.default_rng(seed).standard_normal((3, 20))


def _figures() -> dict:
    steps = np.arange(60) * 50
    dynamics = essential_dynamics(_outputs(0), steps=steps, n_components=3, progress=False)
    joint = joint_essential_dynamics({"a": _outputs(0), "b": _outputs(1)}, steps={"a": steps, "b": steps},
                                     progress=False)
    sweep = synthetic_sweep(30, unhealthy=(4,))
    found = dvz.stages(sweep)
    rng = np.random.default_rng(0)
    result = LLCResult.from_traces(1 + 0.05 * rng.random((4, 300)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 300})
    return {
        "llc result": result.plot(),
        "essential dynamics": dynamics.plot(circles=True, evolute=True),
        "trajectory geometry": dynamics.geometry_.plot(),
        "joint essential dynamics": joint.plot(),
        "sweep": sweep.plot(),
        "stages": found.plot(sweep.steps, sweep.llc_mean[0, 0]),
        "stage comparison": compare_with_stages(dynamics, found).plot(),
    }


@pytest.fixture(scope="module")
def figures():
    return _figures()


@pytest.mark.parametrize("name", ["llc result", "essential dynamics", "trajectory geometry", "joint essential dynamics",
                                  "sweep", "stages", "stage comparison"])
def test_static_figure_follows_the_output_width_and_reads_in_both_themes(figures, name):
    fig = figures[name]
    assert fig.layout.width is None  # the figure is as wide as the output area it lands in
    theme = fig.layout.template.layout
    assert theme.paper_bgcolor == TRANSPARENT and theme.plot_bgcolor == TRANSPARENT
    assert theme.font.color == NEUTRAL
    drawn = fig.to_json().lower()
    assert '"black"' not in drawn and '"#000000"' not in drawn  # black marks vanish on a dark notebook


@pytest.mark.parametrize("name", ["llc result", "essential dynamics", "trajectory geometry", "joint essential dynamics",
                                  "sweep", "stages", "stage comparison"])
def test_hover_finds_the_nearest_point_and_compares_curves_that_share_their_x(figures, name):
    fig = figures[name]
    theme = fig.layout.template.layout
    assert theme.hovermode == "closest" and theme.hoverdistance >= 20  # a point is found without pixel-hunting
    shared_x = name in ("llc result", "sweep")  # chains at one draw, selections at one step
    assert (fig.layout.hovermode == "x unified") is shared_x


# ---- one format for an estimate and one visual language for verdicts, in static figures and widgets ----

JS = Path(__file__).resolve().parents[1] / "js" / "src"
VALUES = [0.2559, 0.00503, 0.0049999, 12345.6, 99999.6, 123456.0, 1e-4, -3.25e-5, 0.0, -0.65, 8.1667, 19.2, 2.7, 1.0, 0.001, 0.000999]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the widgets' formatter")
def test_python_and_the_widgets_write_numbers_and_estimates_identically():
    script = (f"import {{ fmt }} from {json.dumps(str(JS / 'dom.js'))};"
              f"import {{ estimate }} from {json.dumps(str(JS / 'views' / 'conventions.js'))};"
              f"const v = {json.dumps(VALUES)};"
              "console.log(JSON.stringify({fmt2: v.map((x) => fmt(x, 2)), fmt4: v.map((x) => fmt(x, 4)), est: v.map((x) => estimate(x, x / 51))}));")
    js = json.loads(subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True).stdout)
    assert js["fmt2"] == [plotting.fmt(x, 2) for x in VALUES]
    assert js["fmt4"] == [plotting.fmt(x, 4) for x in VALUES]
    assert js["est"] == [plotting.format_estimate(x, x / 51) for x in VALUES]
    assert plotting.format_estimate(0.2559, 0.00503) == "0.2559 ± 0.005"  # the example of the README's conventions
    assert plotting.fmt(float("nan")) == "–" and plotting.fmt(123456.0, 4) == "1.235e5"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the widgets' formatter")
def test_python_and_the_widgets_write_a_step_bias_identically():
    # (bias, its standard error, the estimate): signs, NaN parts, a bias over the estimate, a zero estimate
    cases = [[0.41, 0.3, 7.7], [-0.02, 0.013, 0.36], [0.4284, 0.31, 0.36], [0.05, None, 1.0], [None, 0.1, 1.0],
             [0.003, 0.001, None], [2.5e-4, 1e-4, 0.3], [0.7, 0.2, 0.0], [12.0, 3.0, 0.01]]
    script = (f"import {{ stepBias }} from {json.dumps(str(JS / 'views' / 'conventions.js'))};"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(([b, s, l]) => stepBias(b ?? NaN, s ?? NaN, l ?? NaN))));")
    js = json.loads(subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True).stdout)
    nan = float("nan")
    assert js == [plotting.format_step_bias(*(nan if v is None else v for v in case)) for case in cases]
    assert plotting.format_step_bias(0.41, 0.3, 7.7) == "+0.41 ± 0.3 (5.3% of λ̂)"
    assert plotting.format_step_bias(0.4284, 0.31, 0.36) == "+0.43 ± 0.31 (119% of λ̂)"


def test_the_verdict_marks_and_their_labels_are_the_widgets():
    source = (JS / "views" / "conventions.js").read_text()
    assert re.search(r'UNHEALTHY_LABEL = "(.*)"', source).group(1) == plotting.UNHEALTHY_LABEL
    assert re.search(r'UNDEFINED_LABEL = "(.*)"', source).group(1) == plotting.UNDEFINED_LABEL
    assert 'symbol: "x-thin"' in source and plotting.UNHEALTHY_MARKER["symbol"] == "x-thin"
    assert 'symbol: "line-ns-open"' in source and plotting.UNDEFINED_MARKER["symbol"] == "line-ns-open"


def test_an_llc_result_figure_titles_its_estimate_with_the_standard_error():
    rng = np.random.default_rng(0)
    result = LLCResult.from_traces(1 + 0.05 * rng.random((4, 300)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 300})
    title = result.plot().layout.title.text
    assert title.startswith(f"LLC {plotting.format_estimate(result.llc_mean, result.llc_se)} (± SE)")
    assert plotting.fmt(result.llc_std, 2) != plotting.fmt(result.llc_se, 2)  # so the title could not show the std


def test_sweep_figure_marks_unhealthy_and_undefined_and_never_normalises_a_negative_estimate():
    sweep = synthetic_sweep(12, unhealthy=(4,))  # checkpoint 4: a chain diverges (unhealthy, a finite estimate)
    flat = LLCResult.from_traces(np.full((4, 40), 0.9) + 0.001 * np.random.default_rng(1).standard_normal((4, 40)), 1.0, 10.0, config={"lr": 1e-3})
    assert flat.llc_mean < 0 and flat.diagnostics.status == "undefined"
    sweep.results[("all", "data", 7)] = flat  # below L(w*): a negative estimate, no LLC
    fig = plotting.plot_sweep(sweep, normalize=True)
    curve = next(t for t in fig.data if t.name == "all")
    y = np.asarray(curve.y, float)
    assert np.nanmax(y) == pytest.approx(1.0) and np.nanmin(y) > 0 and np.isnan(y[7]) and np.isfinite(y[4])
    unhealthy = [t for t in fig.data if t.name == plotting.UNHEALTHY_LABEL]
    assert len(unhealthy) == 1 and list(unhealthy[0].x) == [sweep.steps[4]] and unhealthy[0].marker.symbol == "x-thin"
    assert list(unhealthy[0].y) == [y[4]]
    undefined = [t for t in fig.data if t.name == plotting.UNDEFINED_LABEL]
    assert len(undefined) == 1 and list(undefined[0].x) == [sweep.steps[7]] and undefined[0].marker.symbol == "line-ns-open"
    assert list(undefined[0].hovertext) == [f"step {sweep.steps[7]}: undefined, no LLC (w* is not a local minimum)"]
    assert list(curve.customdata) == list(sweep.steps) and "%{customdata}" in curve.hovertemplate  # step 0 hovers as 0
    shown = ~np.isnan(y)
    largest = np.nanmax(np.where(sweep.undefined[0, 0], np.nan, sweep.llc_mean[0, 0])[shown])
    assert np.allclose(np.asarray(curve.error_y.array, float)[shown], sweep.llc_se[0, 0][shown] / largest)
    assert fig.layout.title.text.startswith("LLC over training, ± one standard error")


def test_ed_colour_bar_ticks_are_round_steps_of_the_run():
    steps = np.arange(60) * 50  # 0 … 2950: 1 would sit 0.3 decades (9% of the bar) above 0, over its label
    _, bar = plotting._step_colorbar(steps)
    assert bar["ticktext"] == ["0", "10", "100", "1000"]
    assert np.allclose(bar["tickvals"], np.log10(np.array([0, 10, 100, 1000]) + 1))
    _, bar = plotting._step_colorbar(np.array([100, 300, 2000]))
    assert bar["ticktext"] == ["100", "200", "500", "1000", "2000"]


def test_the_stage_comparison_draws_every_llc_stage_so_a_stage_without_boundaries_shows():
    sweep = synthetic_sweep(30)
    found = dvz.stages(sweep)
    steps = np.arange(60) * 50
    dynamics = essential_dynamics(_outputs(0), steps=steps, n_components=3, progress=False)
    for detector in (found, type(found)().fit(sweep.steps[:8], sweep.llc_mean[0, 0, :8], sweep.llc_se[0, 0, :8])):
        fig = compare_with_stages(dynamics, detector).plot()
        segments = [t for t in fig.data if isinstance(t.text, str) and t.text.startswith("LLC stage, steps")]
        assert len(segments) == len(detector.stages_) >= 1
        assert [t.x[1] for t in segments] == [max(s["end"], 1) for s in detector.stages_]
