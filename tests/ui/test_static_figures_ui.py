"""Static `.plot()` figures in a real JupyterLab: they fill the output area and read in light and dark themes."""

from __future__ import annotations

import contextlib

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dvz_lab import start_run_all, switch_theme, write_notebook
from test_linked_widgets_ui import shot

FIGURES_CELL = """
import numpy as np
from devinterp_viz.analysis.essential_dynamics import essential_dynamics
from devinterp_viz.engine.results import LLCResult
t = np.linspace(0, 1, 60)
outputs = np.stack([np.cos(3 * t), np.sin(3 * t), t ** 2], 1) @ np.random.default_rng(0).standard_normal((3, 20))
dynamics = essential_dynamics(outputs, steps=np.arange(60) * 50, n_components=3, progress=False)
dynamics.plot()
"""
RESULT_CELL = """
rng = np.random.default_rng(0)
LLCResult.from_traces(1 + 0.05 * rng.random((4, 300)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 300}).plot()
"""
FIGURE = ".jp-RenderedPlotly.js-plotly-plot"  # JupyterLab's plotly renderer draws into the output element itself

# For every figure: its width and its output area's (without padding), whether its paper and plot area are see-through,
# the colour behind it (the first opaque ancestor), and the lowest contrast of its texts against that.
MEASURE = """() => {
  const rgba = (css) => { const v = (css.match(/[\\d.]+/g) || []).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
  const lum = ([r, g, b]) => { const c = (x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * c(r) + 0.7152 * c(g) + 0.0722 * c(b); };
  const contrast = (a, b) => { const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x); return (hi + 0.05) / (lo + 0.05); };
  const behind = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
                           if (c[3] > 0) return c; } return [255, 255, 255, 1]; };
  return [...document.querySelectorAll(%r)].map((gd) => {
    const svg = gd.querySelector('.main-svg');
    const paper = rgba(getComputedStyle(svg).backgroundColor);
    const box = getComputedStyle(gd);
    const plotArea = gd.querySelector('.bglayer .bg');
    const plotAlpha = plotArea ? rgba(getComputedStyle(plotArea).fill)[3] * Number(getComputedStyle(plotArea).fillOpacity) : 0;
    const background = behind(gd);
    const texts = [...gd.querySelectorAll('.gtitle, .xtick text, .ytick text, .g-xtitle text, .legendtext')];
    return {
      width: svg.getBoundingClientRect().width,
      outputWidth: gd.clientWidth - parseFloat(box.paddingLeft) - parseFloat(box.paddingRight),
      paperAlpha: paper[3], plotAlpha, backgroundLuminance: lum(background), texts: texts.length,
      minContrast: Math.min(...texts.map((t) => contrast(rgba(getComputedStyle(t).fill), background))),
    };
  });
}""" % FIGURE




def run_all(page, lab, name: str) -> None:
    start_run_all(page, lab, name)
    page.wait_for_function(f"document.querySelectorAll({FIGURE!r} + ' .main-svg').length >= 2", timeout=120_000)


def wait_readable(page, dark: bool) -> None:
    """Wait (on the figures' state, not on time) until both figures fill their output and read in the theme;
    on a timeout the assertion that follows says what is wrong."""
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(f"""(({MEASURE})()).filter((f) => Math.abs(f.width - f.outputWidth) <= 2 && f.minContrast >= 4
                                     && (f.backgroundLuminance < 0.1) === {str(dark).lower()}).length === 2""", timeout=60_000)


def assert_readable_and_full_width(figures: list[dict], dark: bool) -> None:
    assert len(figures) == 2, figures
    for figure in figures:
        assert abs(figure["width"] - figure["outputWidth"]) <= 2, figure  # follows the output area, no fixed width
        assert figure["paperAlpha"] == 0 and figure["plotAlpha"] == 0, figure  # the notebook's colour shows through
        assert (figure["backgroundLuminance"] < 0.1) == dark, figure
        assert figure["texts"] >= 5 and figure["minContrast"] >= 4, figure  # every title, tick and legend reads


def test_static_figures_follow_the_output_width_and_the_theme(lab, page):
    page.set_viewport_size({"width": 1150, "height": 1000})  # narrower than the 1300 px essential dynamics once had
    run_all(page, lab, write_notebook(lab, "static_figures.ipynb", [FIGURES_CELL, RESULT_CELL]))
    wait_readable(page, dark=False)
    assert_readable_and_full_width(page.evaluate(MEASURE), dark=False)
    shot(page, "static-01-light-dynamics")
    # the estimate as the widgets write it (SamplerWidget.from_result of the same result: "0.2559 ± 0.005")
    titles = page.eval_on_selector_all(f"{FIGURE} .gtitle", "(ts) => ts.map((t) => t.textContent)")
    assert any(t.startswith("LLC 0.2559 ± 0.005 (± SE)") for t in titles), titles
    # the step colour bar's labels are round steps of the run (0 … 2950): no 999, and no 1 over the 0
    bar = page.eval_on_selector_all(f"{FIGURE} .colorbar .cbaxis text", "(ts) => ts.map((t) => t.textContent)")
    assert bar == ["0", "10", "100", "1000"], bar
    page.locator(FIGURE).nth(1).scroll_into_view_if_needed()
    shot(page, "static-02-light-llc-result")

    switch_theme(page, "JupyterLab Dark")
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    try:
        wait_readable(page, dark=True)  # the dark stylesheet lands a moment after the attribute flips
        assert_readable_and_full_width(page.evaluate(MEASURE), dark=True)
        shot(page, "static-04-dark-llc-result")
        page.locator(FIGURE).nth(0).scroll_into_view_if_needed()
        shot(page, "static-03-dark-dynamics")
    finally:
        switch_theme(page, "JupyterLab Light")  # the lab's settings outlive this test
    assert not page.dvz_errors, page.dvz_errors
