"""DevelopmentDashboard in a real JupyterLab + chromium: shared step axis, scrubbing every checkpoint, labels, controls."""

from __future__ import annotations

import base64
import json
import math
import re

from dvz_lab import ARTIFACTS, kernel_eval
from dvz_lab import open_and_run, q, switch_theme, to_dark_theme, wait_python, write_notebook
from test_linked_widgets_ui import DASH, IMPORT_FAKES

# As in the essential-dynamics notebook: a loss and a dynamics point at all 60 checkpoints, an LLC
# at 10 of them, neither the first (step 0) nor the last (none between steps 36 and 1124, 1124 and
# 5355); milestones at neighbouring checkpoints, whose labels collide if each is put above its star.
CELL = IMPORT_FAKES + """
import numpy as np
from devinterp_viz.analysis.essential_dynamics import essential_dynamics
from devinterp_viz.analysis.sweep import SweepResult
from devinterp_viz.widgets.dashboard import DevelopmentDashboard
from tests.widget_fakes import synthetic_sweep
every = synthetic_sweep(60, unhealthy=(5,))
steps = every.steps
estimated = [1, 2, 3, 5, 8, 12, 20, 39, 49, 55]
sweep = SweepResult(steps[estimated], ["all"], ["data"], config=every.config)
for k, i in enumerate(estimated):
    sweep.results[("all", "data", k)] = every.results[("all", "data", i)]
rng = np.random.default_rng(1)
t = np.linspace(0, 1, 60)
loss = (2 * np.exp(-8 * t) + 0.01) * np.exp(0.15 * rng.standard_normal(60))
corners = np.array([[0, 0, 0], [4, 0, 0], [4, 3, 0], [1, 3, 1], [1, 0, 3], [3, 1, 4]], float)
path = np.stack([np.interp(np.arange(60.0), [0, 20, 26, 32, 45, 59], corners[:, d]) for d in range(3)], 1)
ed = essential_dynamics(path @ rng.standard_normal((3, 20)), steps=steps, n_components=3, progress=False)
ed.geometry_.milestones_ = np.array([18, 19, 20, 21, 32, 46])
d = DevelopmentDashboard(sweep=sweep, dynamics=ed, losses={"train": (steps, loss)})
d
"""

LOSS, LLC, ED = (f"{DASH} [data-dvz-role='{role}']" for role in ("loss-plot", "llc-plot", "ed-plot"))


def open_dashboard(lab, page, name):
    write_notebook(lab, name, CELL)
    open_and_run(page, lab, name, DASH)
    page.wait_for_function(f"{q(ED)}._fullLayout !== undefined && {q(LLC)}._fullLayout !== undefined")
    page.evaluate(f"{q(DASH)}.scrollIntoView({{block: 'start'}})")
    return lab.kernel_client(name)


def shot(page, name: str) -> None:
    """A screenshot of the whole dashboard (scrolled into view) in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(DASH).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def cursor_x(page) -> dict:
    return json.loads(page.get_attribute(DASH, "data-dvz-cursor-x"))


def x_axis(page, plot: str) -> dict:
    return page.evaluate(f"(() => {{ const xa = {q(plot)}._fullLayout.xaxis; return {{range: [...xa.range], offset: xa._offset, length: xa._length, type: xa.type}}; }})()")


def plot_box(page, plot: str) -> dict:
    """The plot area of a figure in page pixels."""
    return page.evaluate(f"""(() => {{ const gd = {q(plot)}; const fl = gd._fullLayout; const b = gd.getBoundingClientRect();
        return {{left: b.left + fl.xaxis._offset, top: b.top + fl.yaxis._offset, width: fl.xaxis._length, height: fl.yaxis._length}}; }})()""")


def scrub_to(page, index: int) -> None:
    page.focus(DASH)
    page.keyboard.press("Home")
    for _ in range(index):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"{q(DASH)}.dataset.checkpoint === '{index}'")


def test_the_same_step_is_the_same_pixel_in_every_step_panel_and_zoom_is_shared(lab, page):
    client = open_dashboard(lab, page, "dash-axis.ipynb")
    try:
        loss_axis, llc_axis = x_axis(page, LOSS), x_axis(page, LLC)
        assert loss_axis == llc_axis and loss_axis["type"] == "log"
        # step 0 (no log) drawn at the same place, and checkpoints with and without an LLC
        for index in (0, 4, 30, 59):
            scrub_to(page, index)
            xs = cursor_x(page)
            assert xs["loss"] is not None and abs(xs["loss"] - xs["llc"]) < 0.5, (index, xs)
        title = page.evaluate(f"{q(LOSS)}._fullLayout.xaxis.title.text")
        assert title.startswith("training step") and "step 0" in title
        shot(page, "dashboard-axis-light")

        # zoom the loss panel by dragging across it: the LLC panel follows to the same range
        box = plot_box(page, LOSS)
        y = box["top"] + box["height"] / 2
        page.mouse.move(box["left"] + 0.3 * box["width"], y)
        page.mouse.down()
        page.mouse.move(box["left"] + 0.5 * box["width"], y + 2, steps=8)
        page.mouse.move(box["left"] + 0.7 * box["width"], y + 2, steps=8)
        page.mouse.up()
        page.wait_for_function(f"Math.abs({q(LLC)}._fullLayout.xaxis.range[0] - {q(LOSS)}._fullLayout.xaxis.range[0]) < 1e-9 && {q(LOSS)}._fullLayout.xaxis.range[0] > {loss_axis['range'][0] + 0.1}")
        zoomed = x_axis(page, LOSS)
        assert x_axis(page, LLC)["range"] == zoomed["range"]
        assert zoomed["range"][1] - zoomed["range"][0] < 0.6 * (loss_axis["range"][1] - loss_axis["range"][0])
        scrub_to(page, 30)
        xs = cursor_x(page)
        assert xs["loss"] is not None and abs(xs["loss"] - xs["llc"]) < 0.5
        shot(page, "dashboard-zoomed-light")

        # a double-click on the other panel resets both to every checkpoint
        box = plot_box(page, LLC)
        page.mouse.dblclick(box["left"] + box["width"] / 2, box["top"] + box["height"] / 2)
        page.wait_for_function(f"Math.abs({q(LOSS)}._fullLayout.xaxis.range[0] - {loss_axis['range'][0]}) < 1e-9")
        assert x_axis(page, LLC)["range"] == x_axis(page, LOSS)["range"] == loss_axis["range"]
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


def test_the_scrubber_reaches_checkpoints_without_an_llc_and_names_the_nearest_estimate(lab, page):
    client = open_dashboard(lab, page, "dash-scrub.ipynb")
    try:
        assert page.get_attribute(f"{DASH} [data-dvz-role='scrubber']", "max") == "59"
        scrub_to(page, 12)  # step 16 has its own estimate
        assert page.get_attribute(DASH, "data-llc-exact") == "true"
        assert page.is_hidden(f"{DASH} [data-dvz-role='nearest-llc']")
        page.keyboard.press("ArrowRight")  # step 19: a loss and a dynamics point, no LLC
        page.wait_for_function(f"{q(DASH)}.dataset.checkpoint === '13'")
        assert wait_python(client, "d.checkpoint", lambda v: v == 13) == 13
        assert page.get_attribute(DASH, "data-llc-exact") == "false"
        readout = page.inner_text(f"{DASH} [data-dvz-role='readout']")
        nearest_step, nearest_llc = kernel_eval(client, "[d.nearest_estimate()[0], d.nearest_estimate()[1].llc_mean]")
        assert f"step {kernel_eval(client, 'd.step')}" in readout and f"nearest estimate, step {nearest_step}" in readout
        shown = float(re.search(r"nearest estimate, step \d+: ([-\d.e]+)", readout).group(1))
        assert nearest_step == 16 and math.isclose(shown, nearest_llc, rel_tol=1e-3)
        ring = page.locator(f"{DASH} [data-dvz-role='nearest-llc']")
        assert ring.is_visible() and ring.inner_text() == "nearest estimate"  # the ring says what it marks
        assert page.is_hidden(f"{DASH} [data-dvz-role='cursor-llc'] .dvz-cursor-dot")  # no dot where no estimate is
        highlighted = page.evaluate(f"[...document.querySelectorAll({json.dumps(DASH + ' [data-dvz-role^=cursor-]')})].map((e) => e.hidden ? null : Number(e.dataset.checkpoint))")
        assert highlighted == [13, 13, 13]  # loss, LLC (a rule without a dot) and dynamics panels
        shot(page, "dashboard-nearest-llc-light")
        # the transition between steps 1124 and 5355, where the notebook's scrubber had nothing
        scrub_to(page, 44)
        assert page.get_attribute(DASH, "data-llc-exact") == "false"
        assert wait_python(client, "d.step", lambda v: v == 2453) == 2453
    finally:
        client.stop_channels()


def test_choosing_the_component_already_on_the_other_axis_swaps_the_axes_and_says_so(lab, page):
    client = open_dashboard(lab, page, "dash-plane.ipynb")
    try:
        page.select_option(f"{DASH} [data-dvz-role='plane-y']", "0")  # PC1 × PC1 asked for
        assert wait_python(client, "d.plane", lambda v: v == [1, 0]) == [1, 0]
        assert page.input_value(f"{DASH} [data-dvz-role='plane-x']") == "1"
        note = page.inner_text(f"{DASH} [data-dvz-role='plane-note']")
        assert "PC1 was already on the other axis" in note and "swapped" in note
        page.wait_for_function(f"{q(ED)}._fullLayout.xaxis.title.text.startsWith('PC2')")
        page.click(f"{DASH} [data-dvz-role='plane-swap']")
        assert wait_python(client, "d.plane", lambda v: v == [0, 1]) == [0, 1]
    finally:
        client.stop_channels()


def _contrast(page, plot: str) -> list[float]:
    """Contrast ratio (WCAG) of the first and last colours of the time colour scale against the plot's background."""
    return page.evaluate(f"""(() => {{
        const gd = {q(plot)}; const scale = gd.data.find((t) => t.name === 'trajectory').marker.colorscale;
        const rgb = (c) => {{ const p = document.createElement('span'); p.style.color = c; document.body.append(p);
            const v = getComputedStyle(p).color.match(/[\\d.]+/g).slice(0, 3).map(Number); p.remove(); return v; }};
        const lum = (c) => {{ const [r, g, b] = rgb(c).map((v) => v / 255).map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; }};
        const bg = lum(gd._fullLayout.plot_bgcolor);
        return [scale[0][1], scale[scale.length - 1][1]].map((c) => {{ const l = lum(c); return (Math.max(l, bg) + 0.05) / (Math.min(l, bg) + 0.05); }});
    }})()""")


def _label_boxes(page, plot: str) -> list[dict]:
    return page.evaluate(f"""[...{q(plot)}.querySelectorAll('.infolayer .annotation .annotation-text-g')].map((g) => {{
        const b = g.getBoundingClientRect(); return {{left: b.left, right: b.right, top: b.top, bottom: b.bottom, text: g.textContent}}; }})""")


def _overlaps(boxes: list[dict]) -> list[tuple[str, str]]:
    return [(a["text"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]]


def test_titles_colour_bar_stage_and_milestone_labels_and_hover_ring_read_in_both_themes(lab, page):
    client = open_dashboard(lab, page, "dash-labels.ipynb")
    try:
        for theme in ("light", "dark"):
            if theme == "dark":
                switch_theme(page, "JupyterLab Dark")
                page.wait_for_selector(f"{DASH}[data-dvz-theme='dark']", timeout=30_000)
                page.wait_for_function(f"{q(ED)}.data.find((t) => t.name === 'trajectory').marker.colorscale[0][1] === '#2a788e'", timeout=30_000)
            assert page.evaluate(f"{q(LOSS)}._fullLayout.xaxis.title.text").startswith("training step")
            trajectory = page.evaluate(f"(() => {{ const t = {q(ED)}.data.find((t) => t.name === 'trajectory'); return {{show: t.marker.showscale, title: t.marker.colorbar.title.text}}; }})()")
            assert trajectory == {"show": True, "title": "training step"}
            assert page.locator(f"{ED} .colorbar").count() == 1
            assert min(_contrast(page, ED)) >= 3.0, _contrast(page, ED)
            stages = page.evaluate(f"{q(LLC)}.layout.annotations.map((a) => [a.text, a.hovertext])")
            assert stages and all(text.startswith("stage ") and "the LLC" in hover for text, hover in stages)
            assert not _overlaps(_label_boxes(page, LLC))
            # six milestone labels, four at neighbouring checkpoints: none overlaps another
            page.wait_for_function(f"{q(ED)}.querySelectorAll('.infolayer .annotation').length === 6")
            boxes = _label_boxes(page, ED)
            assert len(boxes) == 6 and not _overlaps(boxes), _overlaps(boxes)
            # each simply put above its star (as before), they would
            naive = page.evaluate(f"""(() => {{ const gd = {q(ED)}; const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                return gd.layout.annotations.map((a) => {{ const x = xa.c2p(a.x), y = ya.c2p(a.y) - 18, w = 6.2 * a.text.length + 8;
                    return {{left: x - w / 2, right: x + w / 2, top: y - 8, bottom: y + 8, text: a.text}}; }}); }})()""")
            assert _overlaps(naive)
            # hovering a point of the plane: a ring that stands out from the points
            xy = page.evaluate(f"(() => {{ const t = {q(ED)}.data.find((d) => d.name === 'trajectory'); const fl = {q(ED)}._fullLayout; const b = {q(ED)}.getBoundingClientRect(); return [b.left + fl.xaxis._offset + fl.xaxis.c2p(t.x[40]), b.top + fl.yaxis._offset + fl.yaxis.c2p(t.y[40])]; }})()")
            page.mouse.move(*xy)
            page.wait_for_function(f"{q(DASH)}.dataset.hover === '40'")
            ring = page.locator(f"{DASH} [data-dvz-role='hover-ed']")
            assert ring.is_visible()
            assert float(ring.evaluate("(e) => getComputedStyle(e).borderTopWidth").removesuffix("px")) >= 3
            assert ring.evaluate("(e) => getComputedStyle(e).borderTopStyle") == "solid"
            shot(page, f"dashboard-{theme}")
            page.mouse.move(5, 5)
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


def _turns(values: list[float]) -> int:
    """How often a curve changes between going up and going down."""
    steps = [b - a for a, b in zip(values, values[1:])]
    return sum((a > 0) != (b > 0) for a, b in zip(steps, steps[1:]))


def test_smoothing_log_loss_tooltips_and_keyboard(lab, page):
    client = open_dashboard(lab, page, "dash-controls.ipynb")
    try:
        # every control says what it does
        untitled = page.evaluate(f"""[...document.querySelectorAll({json.dumps(DASH + ' button, ' + DASH + ' input, ' + DASH + ' select')})]
            .filter((e) => !e.closest('[hidden]') && !(e.title || e.dataset.title || e.closest('[title]')?.title)).map((e) => e.outerHTML.slice(0, 80))""")
        assert untitled == []
        # smoothing: the smoothed curve over the raw one, the raw values untouched
        raw = page.evaluate(f"Array.from({q(LOSS)}.data[0].y)")
        page.evaluate(f"""(() => {{ const s = {q(DASH + " [data-dvz-role='smoothing']")}; s.value = '0.8'; s.dispatchEvent(new Event('input', {{bubbles: true}})); }})()""")
        assert wait_python(client, "d.smoothing", lambda v: v == 0.8) == 0.8
        page.wait_for_function(f"{q(LOSS)}.data.length === 2")
        traces = page.evaluate(f"{q(LOSS)}.data.map((t) => [t.name, t.opacity, Array.from(t.y)])")
        assert traces[0][0] == "train" and traces[0][1] < 1 and traces[0][2] == raw
        assert traces[1][0] == "train (smoothed)"
        assert _turns(traces[1][2]) < 0.5 * _turns(raw)  # the noise's ups and downs are smoothed away
        # log loss: offered (the loss spans decades), and the axis follows
        assert "decades" in page.get_attribute(f"{DASH} [data-dvz-role='log-y-field']", "title")
        page.click(f"{DASH} [data-dvz-role='log-y']")
        assert wait_python(client, "d.log_y", bool) is True
        page.wait_for_function(f"{q(LOSS)}._fullLayout.yaxis.type === 'log'")
        shot(page, "dashboard-smoothed-log-light")
        # keyboard on the scrubber itself: one checkpoint per arrow, ten with shift, space plays
        page.focus(f"{DASH} [data-dvz-role='scrubber']")
        page.keyboard.press("Home")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Shift+ArrowRight")
        page.wait_for_function(f"{q(DASH)}.dataset.checkpoint === '11'")
        page.keyboard.press("End")
        page.wait_for_function(f"{q(DASH)}.dataset.checkpoint === '59'")
        page.keyboard.press("PageDown")
        page.wait_for_function(f"{q(DASH)}.dataset.checkpoint === '49'")
        page.keyboard.press(" ")
        page.wait_for_function(f"{q(DASH)}.dataset.playing === 'true'")
        page.keyboard.press(" ")
        page.wait_for_function(f"{q(DASH)}.dataset.playing === 'false'")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


# A TMS-like sweep: most checkpoints have no LLC (w* is not a local minimum: the chains went below
# L(w*)), one is unhealthy (a chain diverges); the run ends at step 10 006 (synthetic_sweep's last step).
MARKS_CELL = IMPORT_FAKES + """
import numpy as np
from devinterp_viz.analysis.essential_dynamics import essential_dynamics
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.widgets.dashboard import DevelopmentDashboard
from tests.widget_fakes import synthetic_sweep
sweep = synthetic_sweep(20, unhealthy=(15,))
below = LLCResult.from_traces(0.9 + 0.001 * np.random.default_rng(1).standard_normal((4, 40)), 1.0, 10.0, config={"lr": 1e-3})
for k in (2, 3, 4, 6, 7, 9, 10, 11):
    sweep.results[("all", "data", k)] = below
t = np.linspace(0, 1, 20)
outputs = np.stack([np.cos(3 * t), np.sin(3 * t), t ** 2], 1) @ np.random.default_rng(0).standard_normal((3, 20))
ed = essential_dynamics(outputs, steps=sweep.steps, n_components=3, progress=False)
d = DevelopmentDashboard(sweep=sweep, dynamics=ed, losses={"train": 0.3 * np.exp(-t * 3) + 0.05})
d
"""


def test_the_llc_panel_draws_estimates_only_and_names_every_mark_in_both_themes(lab, page):
    write_notebook(lab, "dash-marks.ipynb", MARKS_CELL)
    open_and_run(page, lab, "dash-marks.ipynb", DASH)
    page.wait_for_function(f"{q(ED)}._fullLayout !== undefined && {q(LLC)}._fullLayout !== undefined")
    page.evaluate(f"{q(DASH)}.scrollIntoView({{block: 'start'}})")
    client = lab.kernel_client("dash-marks.ipynb")
    try:
        undefined = kernel_eval(client, "[int(k) for k in np.flatnonzero(sweep.undefined[0, 0])]")
        assert undefined == [2, 3, 4, 6, 7, 9, 10, 11]
        # no trace joins estimates with a line: the estimates are markers, with ± SE bars
        traces = page.evaluate(f"{q(LLC)}.data.map((t) => ({{name: t.name, mode: t.mode, n: (t.x || []).filter((v) => v !== null).length, bar: t.error_y?.array ? Array.from(t.error_y.array) : null, symbol: t.marker?.symbol ?? null}}))")
        assert not [t for t in traces if "lines" in (t["mode"] or "")], traces
        llc = next(t for t in traces if t["name"] == "LLC estimate ± SE")
        se = kernel_eval(client, "[float(v) for v in sweep.llc_se[0, 0]]")
        assert llc["bar"] is not None and all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(llc["bar"], se) if math.isfinite(b))
        ticks = next(t for t in traces if t["name"].startswith("grey tick"))
        assert ticks["n"] == 8 and ticks["symbol"] == "line-ns-open"
        crosses = next(t for t in traces if t["name"] == "✕ unhealthy estimate")
        assert crosses["n"] == 1 and crosses["symbol"] == "x-thin"
        # the caption names every mark drawn, with its count
        note = page.inner_text(f"{DASH} [data-dvz-role='llc-note']")
        for text in ("± one standard error (SE)", "nothing is drawn between estimates", "✕ unhealthy estimate (1)",
                     "grey tick: no LLC (undefined: w* is not a local minimum) (8)", "dashed ring: the nearest estimate"):
            assert text in note, (text, note)
        # the cursor's dot sits on the LLC panel only at an estimate; elsewhere a labelled ring marks the nearest one
        scrub_to(page, 5)
        assert page.is_visible(f"{DASH} [data-dvz-role='cursor-llc'] .dvz-cursor-dot")
        assert page.is_hidden(f"{DASH} [data-dvz-role='nearest-llc']")
        scrub_to(page, 7)  # an estimate with no LLC: no dot, the readout says why
        assert page.is_hidden(f"{DASH} [data-dvz-role='cursor-llc'] .dvz-cursor-dot")
        assert "LLC none (w* not a local minimum)" in page.inner_text(f"{DASH} [data-dvz-role='readout']")
        # the colour bar's ticks are round steps of the run (its last checkpoint is step 10006)
        bar = page.evaluate(f"{q(ED)}.data.find((t) => t.name === 'trajectory').marker.colorbar.ticktext")
        assert bar == ["0", "10", "100", "1000", "10000"], bar
        shot(page, "dashboard-marks-light")
        to_dark_theme(page, DASH)
        assert not _overlaps(_label_boxes(page, LLC))
        shot(page, "dashboard-marks-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


# As in the essential-dynamics notebook: 60 checkpoints to step 3000, an LLC at 11 of them on a log
# grid that ends at the last checkpoint; the last estimate's chains disagree (a wide ± SE bar).
END_CELL = IMPORT_FAKES + """
import numpy as np
from devinterp_viz.analysis.sweep import SweepResult
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.widgets.dashboard import DevelopmentDashboard
from tests.widget_fakes import synthetic_sweep
steps = np.unique(np.r_[0, np.round(np.geomspace(1, 3000, 70))]).astype(int)  # 60 checkpoints, log-spaced
every = synthetic_sweep(60)
estimated = np.unique(np.geomspace(1, 59, 12).astype(int))
sweep = SweepResult(steps[estimated], ["all"], ["data"], config=every.config)
for k, i in enumerate(estimated):
    sweep.results[("all", "data", k)] = every.results[("all", "data", i)]
chains = 1.4 + np.array([[0.0], [0.06], [-0.06], [0.12]]) + 0.01 * np.random.default_rng(2).standard_normal((4, 40))
sweep.results[("all", "data", len(estimated) - 1)] = LLCResult.from_traces(chains, 1.0, 10.0, config={"lr": 1e-3})
t = np.linspace(0, 1, 60)
d = DevelopmentDashboard(sweep=sweep, losses={"train": (steps, 2 * np.exp(-8 * t) + 0.01)})
d
"""

# Page rectangles of the LLC panel's plot area, its estimates' markers and ± SE bars, and the nearest ring's label.
GEOMETRY = f"""(() => {{ const gd = {q(LLC)}; const fl = gd._fullLayout; const b = gd.getBoundingClientRect();
    const rect = (e) => {{ const r = e.getBoundingClientRect(); return {{left: r.left, right: r.right, top: r.top, bottom: r.bottom}}; }};
    const trace = [...gd.querySelectorAll('.scatterlayer .trace')][gd.data.findIndex((t) => t.name === 'LLC estimate ± SE')];
    return {{plot: {{left: b.left + fl.xaxis._offset, right: b.left + fl.xaxis._offset + fl.xaxis._length,
                     top: b.top + fl.yaxis._offset, bottom: b.top + fl.yaxis._offset + fl.yaxis._length}},
             points: [...trace.querySelectorAll('.points path')].map(rect), bars: [...trace.querySelectorAll('.errorbar path')].map(rect),
             ring: rect({q(DASH + " [data-dvz-role='nearest-llc']")}),
             label: rect({q(DASH + " [data-dvz-role='nearest-llc'] .dvz-cursor-label")})}}; }})()"""


def _inside(inner: dict, outer: dict) -> bool:
    return (inner["left"] >= outer["left"] - 0.5 and inner["right"] <= outer["right"] + 0.5
            and inner["top"] >= outer["top"] - 0.5 and inner["bottom"] <= outer["bottom"] + 0.5)


def _changed_pixels(page, png_a: bytes, png_b: bytes) -> list[list[int]]:
    """[x, y] of the pixels that differ between two PNG screenshots of the same size (decoded by the browser)."""
    return page.evaluate("""async ([a, b]) => {
        const pixels = async (data) => { const img = new Image(); img.src = 'data:image/png;base64,' + data; await img.decode();
            const c = document.createElement('canvas'); c.width = img.width; c.height = img.height; const g = c.getContext('2d');
            g.drawImage(img, 0, 0); return [c.width, g.getImageData(0, 0, c.width, c.height).data]; };
        const [[w, p], [, q]] = [await pixels(a), await pixels(b)];
        const out = []; for (let i = 0; i < p.length; i += 4)
            if (p[i] !== q[i] || p[i + 1] !== q[i + 1] || p[i + 2] !== q[i + 2]) out.push([(i / 4) % w, Math.floor(i / 4 / w)]);
        return out; }""", [base64.b64encode(png_a).decode(), base64.b64encode(png_b).decode()])


def test_end_estimates_the_nearest_ring_its_bar_and_its_label_show_fully_in_both_themes(lab, page):
    write_notebook(lab, "dash-end.ipynb", END_CELL)
    open_and_run(page, lab, "dash-end.ipynb", DASH)
    page.wait_for_function(f"{q(LLC)}._fullLayout !== undefined")
    page.evaluate(f"{q(DASH)}.scrollIntoView({{block: 'start'}})")
    try:
        for theme in ("light", "dark"):
            if theme == "dark":
                to_dark_theme(page, DASH)
            scrub_to(page, 55)  # no estimate here: the ring marks the last one (step 3000, at the axis end)
            assert page.get_attribute(f"{DASH} [data-dvz-role='nearest-llc']", "data-checkpoint") == "55"
            geometry = page.evaluate(GEOMETRY)
            assert len(geometry["points"]) == 11 and len(geometry["bars"]) == 11
            # every estimate, its marker and its whole ± SE bar (the first and last ones too) lie in the plot area
            outside = [r for r in geometry["points"] + geometry["bars"] if not _inside(r, geometry["plot"])]
            assert not outside, (outside, geometry["plot"])
            assert geometry["plot"]["right"] - geometry["points"][-1]["right"] >= 4
            assert _inside(geometry["ring"], geometry["plot"]), geometry
            assert _inside(geometry["label"], geometry["plot"]), geometry  # "nearest estimate" reads whole
            labels = _label_boxes(page, LLC)  # the stages' labels too, the last one at the axis end
            assert labels and all(_inside(b, {**geometry["plot"], "top": -1e9}) for b in labels), (labels, geometry["plot"])
            # the ring leaves the bar as it is: the bar's pixels are the same with the ring and without it
            bar = geometry["bars"][-1]
            assert bar["bottom"] - bar["top"] > 30  # longer than the ring is wide
            clip = {"x": bar["left"] - 1, "y": bar["top"] - 1, "width": bar["right"] - bar["left"] + 2, "height": bar["bottom"] - bar["top"] + 2}
            ring = f"{q(DASH + ' [data-dvz-role=nearest-llc]')}.style"
            with_ring = page.screenshot(clip=clip)
            page.evaluate(f"{ring}.visibility = 'hidden'")
            without_ring = page.screenshot(clip=clip)
            page.evaluate(f"{ring}.visibility = ''")
            changed = _changed_pixels(page, with_ring, without_ring)
            assert not changed, (changed, clip, geometry["ring"], geometry["label"])
            shot(page, f"dashboard-end-nearest-{theme}")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        switch_theme(page, "JupyterLab Light")


def test_on_open_the_cursor_at_step_0_sits_on_the_tick_labelled_0_as_the_slider_and_readout_say(lab, page):
    client = open_dashboard(lab, page, "dash-open.ipynb")
    try:
        assert kernel_eval(client, "[d.checkpoint, int(d.steps[0])]") == [0, 0]
        assert page.input_value(f"{DASH} [data-dvz-role='scrubber']") == "0"
        assert page.get_attribute(DASH, "data-checkpoint") == "0"
        assert "step 0 ·" in page.inner_text(f"{DASH} [data-dvz-role='readout']")
        xs = cursor_x(page)
        for plot, key in ((LOSS, "loss"), (LLC, "llc")):
            # every tick label of the log step axis, left to right, with its x within the figure
            ticks = page.evaluate(f"""(() => {{ const gd = {q(plot)}; const left = gd.getBoundingClientRect().left;
                return [...gd.querySelectorAll('.xtick text')].map((t) => {{ const r = t.getBoundingClientRect(); return [t.textContent, (r.left + r.right) / 2 - left]; }})
                    .sort((a, b) => a[1] - b[1]); }})()""")
            labels = [text for text, _ in ticks]
            assert labels[0] == "0", labels  # where step 0 is drawn reads 0, not 0.5's "5"
            values = [float(t.replace("k", "e3").replace("e", "e")) for t in labels]
            assert values == sorted(values), labels  # left to right, the steps only grow
            assert abs(ticks[0][1] - xs[key]) < 2, (key, ticks[0], xs)  # the cursor is on the "0" tick
        shot(page, "dashboard-open-step0-light")
        to_dark_theme(page, DASH)
        shot(page, "dashboard-open-step0-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")
