"""SamplerWidget in a real JupyterLab + chromium: render, Run, live traces, verdict, lr slider, Stop, dark theme."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dvz_lab import ARTIFACTS, kernel_eval, plot_background_luminance, q, wait_python, write_notebook

WIDGET = '[data-dvz-widget="SamplerWidget"]'
ROOT = f"{WIDGET} .dvz-sampler"
REPO = Path(__file__).resolve().parents[2]
IMPORT_FAKES = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"  # the kernel finds tests/widget_fakes.py

SETUP_REAL = """
import torch
torch.set_num_threads(1)
from devinterp_viz.widgets import SamplerWidget
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
x = torch.randn(256, 4)
y = model(x).detach() + 0.1 * torch.randn(256, 1)
def loss_fn(m, batch):
    xb, yb = batch
    return ((m(xb) - yb) ** 2).mean()
w = SamplerWidget(model, (x, y), loss_fn, batch_size=64, lr=1e-3, nbeta=10.0, num_draws=1500)
w
"""

SETUP_FAKE = IMPORT_FAKES + """
import torch
from devinterp_viz.widgets import SamplerWidget
from tests.widget_fakes import FakeEngine, install
install(FakeEngine(seconds_per_draw=0.0005, confirm=True))
w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(), num_draws=100,
                  grid_lrs=[1e-6, 1e-4, 1e-3, 0.1], grid_values=[1.0, 10.0, 100.0])
w
"""




def open_and_run(page, lab, name: str) -> None:
    """Open the notebook in JupyterLab, run all cells, wait for the widget to render."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    # the kernel must be running and idle before Run All
    page.wait_for_selector(".jp-Toolbar-kernelStatus, .jp-Notebook-ExecutionIndicator", timeout=90_000)
    page.wait_for_function(
        "document.querySelector('.jp-Notebook-toolbarCellType') !== null && "
        "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some((e) => /Idle/.test(e.textContent))",
        timeout=90_000,
    )
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    page.wait_for_selector(f"{ROOT}[data-dvz-ready='1']", timeout=90_000)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"sampler-{name}.png"))




def role(name: str) -> str:
    return f"{ROOT} [data-dvz-role='{name}']"




def test_sampler_widget_live_in_jupyterlab(lab, page):
    name = write_notebook(lab, "sampler_live.ipynb", SETUP_REAL)
    open_and_run(page, lab, name)
    assert page.locator(role("error")).is_hidden()
    shot(page, "01-rendered")
    client = lab.kernel_client(name)
    try:
        # --- Run: traces stream in, then the verdict fills in
        page.click(role("run"))
        page.wait_for_function(
            f"Number({q(ROOT)}.dataset.dvzDraws || 0) > 0", timeout=60_000
        )
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=120_000)
        assert page.locator(f"{role('trace-plot')} .scatterlayer .trace").count() >= 4
        page.wait_for_selector(f"{role('verdict')}[data-healthy='true'], {role('verdict')}[data-healthy='false']")
        verdict = page.inner_text(role("verdict"))
        assert verdict == kernel_eval(client, "w.result.diagnostics.verdict")
        frames = int(page.get_attribute(ROOT, "data-dvz-frames"))
        assert frames >= 2, "the traces were drawn only once: nothing streamed"
        # while streaming the traces were drawn on the live canvas; the finished run is the plotly figure
        assert page.get_attribute(ROOT, "data-dvz-live-ms") is not None, "no live canvas frame was drawn"
        assert page.locator(role("live-plot")).is_hidden() and page.locator(role("trace-plot")).is_visible()
        assert page.evaluate("globalThis.__dvz_runtime_loads") == 1
        shot(page, "02-after-run")

        # --- lr slider: a click on its track changes the Python-side value
        before = kernel_eval(client, "w.lr")
        slider = page.locator(role("lr"))
        box = slider.bounding_box()
        slider.click(position={"x": box["width"] * 0.8, "y": box["height"] / 2})
        shown = float(page.input_value(role("lr-value")))
        page.wait_for_function(
            f"{q(role('lr-value'))}.value !== ''", timeout=10_000
        )
        after = wait_python(client, "w.lr", lambda v: v != before)
        assert after == pytest.approx(shown, rel=1e-2)
        assert 10 ** (-8 + 8 * 0.7) < after < 10 ** (-8 + 8 * 0.9)  # the track maps log10(lr) in [-8, 0]

        # --- Stop: a long run is cancelled and keeps what was drawn
        page.fill(role("lr-value"), "0.001")
        page.press(role("lr-value"), "Enter")
        page.fill(role("num-draws"), "1000000")
        page.press(role("num-draws"), "Tab")
        wait_python(client, "w.num_draws", lambda v: v == 1_000_000)
        page.click(role("run"))
        # the previous run's draw count shows until the new run's first frame: wait for the new run
        page.wait_for_selector(f"{ROOT}[data-status='running']", timeout=60_000)
        wait_python(client, "int(w.trace['loss'].shape[1])", lambda v: v > 20, timeout=60)
        page.wait_for_function(
            f"Number({q(ROOT)}.dataset.dvzDraws || 0) > 20", timeout=60_000
        )
        page.click(role("stop"))
        page.wait_for_selector(f"{ROOT}[data-status='stopped']", timeout=60_000)
        assert kernel_eval(client, "w.result.partial") is True
        kept = kernel_eval(client, "w.result.num_draws")
        assert 20 < kept < 1_000_000
        assert f"kept {kept} draws" in page.inner_text(role("status"))
        # the kept draws fill the loss panel (no range left over from the figure drawn before the run)
        low, high = kernel_eval(client, "[float(w.result.loss_trace.min()), float(w.result.loss_trace.max())]")
        page.wait_for_function(f"{q(role('trace-plot'))}._fullLayout.yaxis.range[1] < {high + 2 * (high - low)}")
        y0, y1 = page.evaluate(f"{q(role('trace-plot'))}._fullLayout.yaxis.range")
        assert y0 <= low and y1 >= high, (y0, y1, low, high)
        shot(page, "03-stopped")

        # --- dark theme: the plot follows JupyterLab's theme
        assert page.evaluate(plot_background_luminance(role("trace-plot"))) > 0.5
        page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
        page.hover(".lm-Menu-itemLabel:text-is('Theme')")
        page.click(".lm-Menu-itemLabel:text-is('JupyterLab Dark')")
        page.wait_for_selector(f"{ROOT}[data-dvz-theme='dark']", timeout=30_000)
        page.wait_for_function(f"{plot_background_luminance(role('trace-plot'))} < 0.3", timeout=30_000)
        shot(page, "04-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        # back to light for the other tests in this session
        page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
        page.hover(".lm-Menu-itemLabel:text-is('Theme')")
        page.click(".lm-Menu-itemLabel:text-is('JupyterLab Light')")


def test_calibration_tab_pick_a_cell_and_use_it(lab, page):
    name = write_notebook(lab, "sampler_calibrate.ipynb", SETUP_FAKE)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        page.click(role("tab-calibrate"))
        page.wait_for_selector(f"{ROOT}[data-tab='calibrate']")
        page.click(role("calibrate"))
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=60_000)
        page.wait_for_function(f"{q(role('grid-progress'))}.textContent === '12 of 12 grid cells done'")
        # unhealthy cells (lr = 0.1 diverges) are marked
        assert kernel_eval(client, "w.calibration['healthy'][:, 3].tolist()") == [0.0, 0.0, 0.0]
        # every computed cell shows its number; a cross after it marks the untrusted ones, none hides it
        # the estimates' layer and the layer of cells without a finite estimate: each cell's text is in one
        texts = page.evaluate(f"(() => {{ const [a, b] = {q(role('heatmap'))}.data; return a.text.map((r, i) => r.map((t, j) => (t || (b ? b.text[i][j] : '')).replace(/<[^>]*>/g, ''))); }})()")
        healthy = kernel_eval(client, "w.calibration['healthy'].tolist()")
        for row_text, row_healthy in zip(texts, healthy):
            for text, ok in zip(row_text, row_healthy):
                assert text and (text.endswith("✕") != bool(ok)), (text, ok)
        assert page.evaluate(f"{q(role('heatmap'))}.data.every((d) => d.type === 'heatmap')")  # no markers drawn over the values
        # one number format along each axis and in the step-size box (not 1e-6 beside 0.001)
        assert page.evaluate(f"{q(role('heatmap'))}.layout.xaxis.ticktext") == ["1e-6", "1e-4", "1e-3", "1e-1"]
        assert page.input_value(role("grid-lrs")) == "1e-6, 1e-4, 1e-3, 1e-1"
        # the key says what the grey "n/a ✕" cells are
        assert "n/a ✕ (grey): the cell ran but gave no finite estimate, its chains diverged" in page.inner_text(role("grid-key"))
        # the recommendation says it was confirmed by a fresh full run, what that means, and the two runs' lengths
        page.wait_for_selector(f"{role('recommended')}[data-confirmed='true']")
        rec = kernel_eval(client, "{k: v for k, v in w.calibration_result.recommended.items() if k != 'reasons'}")
        assert rec["confirmed"] is True
        text = page.inner_text(role("confirmation"))
        assert text.startswith(f"✓ confirmed: a fresh-seed run at the recommended settings ({rec['num_burnin_steps']} burn-in steps and {rec['num_draws']} draws)"), text
        assert "the setting reproduces, it is not one lucky seed" in text
        i, j = kernel_eval(client, "[int(v) for v in (w.calibration['values'].tolist().index(w.calibration_result.recommended['nbeta']), w.calibration['lrs'].tolist().index(w.calibration_result.recommended['lr']))]")
        cell_burnin, cell_draws = kernel_eval(client, f"[w.calibration['burnin'][{i}][{j}], w.calibration['draws'][{i}][{j}]]")
        lengths = (f"the grid cell ran shorter ({cell_burnin} burn-in steps and {cell_draws} draws) than the confirming run "
                   f"({rec['num_burnin_steps']} burn-in steps and {rec['num_draws']} draws)")
        assert page.inner_text(role("rec-lengths")).startswith(lengths)
        # the recommendation wraps in its own column: it never runs under the button beside it
        rec_box, button_box = page.locator(role("recommended")).bounding_box(), page.locator(role("use-recommended")).bounding_box()
        assert rec_box["x"] + rec_box["width"] <= button_box["x"], (rec_box, button_box)
        overflow = page.evaluate(f"[...{q(role('recommended'))}.querySelectorAll('*')].some((e) => e.scrollWidth > e.clientWidth + 1)")
        assert not overflow
        # the hover box of a cell with long reasons stays compact (its reasons wrap)
        page.locator(role("heatmap")).scroll_into_view_if_needed()
        cell_xy = f"""(() => {{
            const gd = {q(role('heatmap'))}, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
            return [box.left + xa._offset + xa.l2p(3), box.top + ya._offset + ya.l2p(1)];
        }})()"""
        for _ in range(5):  # a redraw arriving meanwhile (the grid's last update) clears plotly's hover: point again
            x, y = page.evaluate(cell_xy)
            page.mouse.move(x - 10, y)
            page.mouse.move(x, y, steps=3)
            try:
                page.wait_for_selector(f"{role('heatmap')} .hoverlayer .hovertext", timeout=3_000)
                break
            except Exception:
                continue
        hover_width = page.evaluate(f"{q(role('heatmap') + ' .hoverlayer .hovertext')}.getBoundingClientRect().width")
        grid_width = page.evaluate(f"{q(role('heatmap'))}._fullLayout.xaxis._length")
        assert "diverged" in page.text_content(f"{role('heatmap')} .hoverlayer")
        assert hover_width < 0.45 * grid_width, (hover_width, grid_width)
        shot(page, "05-calibration-hover")
        page.mouse.move(0, 0)
        shot(page, "05-calibration")
        # click the cell (nbeta=10, lr=1e-3): value row 1, lr column 2
        x, y = page.evaluate(
            f"""(() => {{
                const gd = {q(role('heatmap'))};
                const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                const box = gd.getBoundingClientRect();
                return [box.left + xa._offset + xa.l2p(2), box.top + ya._offset + ya.l2p(1)];
            }})()"""
        )
        page.mouse.click(x, y)
        page.wait_for_function(f"{q(role('cell-info'))}.textContent.includes('lr 1e-3')")
        assert wait_python(client, "w.selected_cell", lambda v: v == [1, 2]) == [1, 2]
        assert page.locator(f"{role('cell-plot')} .scatterlayer .trace").count() >= 4
        shot(page, "06-cell")
        # the recommended cell's ring: a success-coloured ring over a halo of the background, drawn in both themes
        ring = f"[...{q(role('heatmap'))}.querySelectorAll('.layer-above .shapelayer path')].map((p) => [getComputedStyle(p).stroke, parseFloat(getComputedStyle(p).strokeWidth)])"
        for theme in ("Light", "Dark"):
            switch_theme(page, theme)
            page.wait_for_timeout(500)
            strokes = page.evaluate(ring)
            assert len(strokes) >= 3 and strokes[-1][1] >= 5 and strokes[-3][1] > strokes[-1][1], (theme, strokes)
            assert strokes[-1][0] != strokes[-3][0] == strokes[-2][0], (theme, strokes)  # the ring, edged by the halo
            shot(page, f"05-calibration-ring-{theme.lower()}")
            # every cell's number is in the theme's text or background colour, whichever reads on the cell
            page.wait_for_function(f"({CELL_INKS}).every(([, , fill, font, bg]) => fill === font || fill === bg)")
            for label, z, fill, font, background in page.evaluate(CELL_INKS):
                ground = viridis_at(z, *page.evaluate(f"[{q(role('heatmap'))}.data[0].zmin, {q(role('heatmap'))}.data[0].zmax]"))
                assert wcag_contrast(fill, ground) >= 4.5, (theme, label, fill, ground)
        # the recommended cell's panel: its step bias beside the confirming run's, and that the cell ran shorter
        kernel_exec(client, f"w.selected_cell = [{i}, {j}]")
        page.wait_for_selector(role("cell-lengths"))
        assert page.inner_text(role("cell-lengths")).startswith(lengths)
        assert page.inner_text(role("confirm-bias")).startswith("confirming run: LLC ")
        assert page.inner_text(role("cell-bias")).startswith("step bias ")
        shot(page, "06-cell-confirmed-dark")
        switch_theme(page, "Light")
        shot(page, "06-cell-confirmed-light")
        # the refinement's cells are counted apart from the grid's: the count's total never grows
        kernel_exec(client, 'w.calibration = {**w.calibration, "done": 14}')
        page.wait_for_function(f"{q(role('grid-progress'))}.textContent === '12 grid cells + 2 refinement cells done'")
        kernel_exec(client, f"w.selected_cell = [1, 2]")
        page.wait_for_function(f"{q(role('cell-info'))}.textContent.includes('nβ 10')")
        page.click(role("use-cell"))
        page.wait_for_selector(f"{ROOT}[data-tab='run']")
        assert kernel_eval(client, "[w.lr, w.nbeta]") == [0.001, 10.0]
        assert page.input_value(role("lr-value")) == "0.001"
        assert page.input_value(role("nbeta")) == "10"
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


SETUP_SLOW_FAKE = IMPORT_FAKES + """
import torch
from devinterp_viz.widgets import SamplerWidget
from tests.widget_fakes import FakeEngine, install
install(FakeEngine(seconds_per_draw=0.01))
w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(), num_draws=400)
w
"""


def test_live_run_draws_on_a_canvas_then_hands_over_to_plotly(lab, page):
    name = write_notebook(lab, "sampler_canvas.ipynb", SETUP_SLOW_FAKE)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        page.click(role("run"))
        page.wait_for_function(f"!{q(role('live-plot'))}.hidden && Number({q(ROOT)}.dataset.dvzDraws || 0) > 50")
        assert page.evaluate(f"getComputedStyle({q(role('trace-plot'))}).visibility") == "hidden"
        live_ms = float(page.get_attribute(ROOT, "data-dvz-live-ms"))
        assert live_ms < 40, f"a live frame took {live_ms} ms"
        shot(page, "08-live-canvas")
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=60_000)
        page.wait_for_function(f"{q(role('live-plot'))}.hidden")
        assert page.evaluate(f"getComputedStyle({q(role('trace-plot'))}).visibility") == "visible"
        page.wait_for_function(f"Number({q(ROOT)}.dataset.dvzDraws) === 400")
        assert page.locator(f"{role('trace-plot')} .scatterlayer .trace").count() == 8
        assert kernel_eval(client, "w.status") == "done"
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


def test_the_live_canvas_keeps_the_burn_in_before_draw_0(lab, page):
    slow = SETUP_SLOW_FAKE.replace("num_draws=400", "num_draws=3000, num_burnin_steps=300").replace("seconds_per_draw=0.01", "seconds_per_draw=0.01, burnin=True")
    name = write_notebook(lab, "sampler_live_burnin.ipynb", slow)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    canvas = role("live-plot")
    try:
        page.click(role("run"))
        page.wait_for_function(f"!{q(canvas)}.hidden && Number({q(ROOT)}.dataset.dvzDraws || 0) > 20", timeout=60_000)
        # the draws stream on the canvas, and the burn-in losses stay drawn, faint, from step 0 (x = −300) to draw 0
        assert page.get_attribute(canvas, "data-dvz-x-min") == "-300"
        assert page.get_attribute(canvas, "data-dvz-burnin-lines") == "4"
        coloured = page.evaluate(f"""(() => {{
            const c = {q(canvas)}, gd = {q(role('trace-plot'))}, dpr = window.devicePixelRatio || 1;
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;  // the loss panel's box (the canvas draws in plotly's)
            const x0 = xa._offset + 4, w = xa._length * 0.25;  // the left quarter: burn-in only (x from −300 to about −200)
            const px = c.getContext('2d').getImageData(x0 * dpr, ya._offset * dpr, w * dpr, ya._length * dpr).data;
            let n = 0;
            for (let k = 0; k < px.length; k += 4) if (Math.max(px[k], px[k + 1], px[k + 2]) - Math.min(px[k], px[k + 1], px[k + 2]) > 40) n++;
            return n;
        }})()""")
        assert coloured > 20, coloured  # chain-coloured lines there, not only the grey band
        assert kernel_eval(client, "w.trace['burnin']['steps'].size") > 0
        shot(page, "23-live-burnin-light")
        switch_theme(page, "Dark")
        page.wait_for_function("!document.querySelector('#jupyterlab-splash')", timeout=30_000)
        page.wait_for_function(f"!{q(canvas)}.hidden && {q(canvas)}.dataset.dvzBurninLines === '4'")
        shot(page, "23-live-burnin-dark")
        switch_theme(page, "Light")
        page.click(role("stop"))
        page.wait_for_selector(f"{ROOT}[data-status='stopped']", timeout=60_000)
        # the finished figure draws the same burn-in
        page.wait_for_function(f"{BURNIN_LINES}.length === 4")
        assert page.evaluate(f"{q(role('trace-plot'))}._fullLayout.xaxis2.range[0]") == -300
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "Light")


def test_saved_html_page_renders_offline(browser, tmp_path):
    """save_html writes one self-contained page: it renders from file:// with the network off."""
    import numpy as np

    from devinterp_viz.engine.results import LLCResult
    from devinterp_viz.widgets import SamplerWidget

    rng = np.random.default_rng(0)
    res = LLCResult.from_traces(1 + 0.05 * rng.random((4, 300)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 300})
    path = SamplerWidget.from_result(res).save_html(tmp_path / "sampler.html")
    context = browser.new_context(offline=True)
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(f"{ROOT}[data-dvz-ready='1']", timeout=30_000)
        page.wait_for_function(f"Number({q(ROOT)}.dataset.dvzDraws || 0) === 300")
        assert page.locator(f"{role('trace-plot')} .scatterlayer .trace").count() == 8
        # no sampler traces: the verdict says what it could not check, in amber, not as plain "healthy"
        verdict = page.locator(role("verdict"))
        assert verdict.inner_text() == res.diagnostics.verdict
        assert verdict.inner_text().startswith("healthy as far as checked: not checked: the step-size bias")
        assert verdict.get_attribute("data-healthy") == "unchecked"
        assert page.locator(role("run")).is_disabled()
        # settings the result does not record are not shown as the widget's defaults; none is editable
        gamma = page.locator(role("localization"))
        assert gamma.input_value() == "" and gamma.get_attribute("placeholder") == "not recorded" and gamma.is_disabled()
        assert page.locator(role("lr-value")).input_value() == "0.001" and page.locator(role("lr-value")).is_disabled()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sampler-07-saved-html.png"))
    finally:
        context.close()




SETUP_FAKE_DEFAULTS = IMPORT_FAKES + """
import torch
from devinterp_viz.widgets import SamplerWidget
from tests.widget_fakes import FakeEngine, install
install(FakeEngine(seconds_per_draw=0.0005))
w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(), num_draws=200)
w
"""


def kernel_exec(client, code: str) -> None:
    reply = client.execute_interactive(code, timeout=30)
    assert reply["content"]["status"] == "ok", reply["content"]


def switch_theme(page, name: str) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
    page.hover(".lm-Menu-itemLabel:text-is('Theme')")
    page.click(f".lm-Menu-itemLabel:text-is('JupyterLab {name}')")
    page.wait_for_selector(f"{ROOT}[data-dvz-theme='{name.lower()}']", timeout=30_000)


# every visible control with no tooltip (plotly's mode bar buttons carry theirs in data-title)
UNTITLED_CONTROLS = f"""[...document.querySelectorAll({json.dumps(ROOT + ' input, ' + ROOT + ' select, ' + ROOT + ' button, ' + ROOT + ' summary')})]
    .filter((el) => el.offsetParent !== null && !(el.title || el.closest('[title]')?.title || el.dataset.title))
    .map((el) => el.dataset.dvzRole || el.outerHTML.slice(0, 80))"""


# [label, z, its rendered fill, the theme's text colour, its background colour] of every estimate cell's number
CELL_INKS = f"""(() => {{
    const gd = {q(role('heatmap'))}, d = gd.data[0];
    const css = (value) => {{ const s = document.createElement('span'); s.style.color = value; {q(ROOT)}.append(s); const c = getComputedStyle(s).color; s.remove(); return c; }};
    const font = css('var(--jp-ui-font-color1)'), bg = css('var(--jp-layout-color0)');
    const cells = new Map();
    d.text.forEach((row, i) => row.forEach((t, j) => {{ if (d.z[i][j] !== null && t) cells.set(t.replace(/<[^>]*>/g, ''), d.z[i][j]); }}));
    return [...gd.querySelectorAll('.heatmaplayer text')].filter((t) => cells.has(t.textContent))
      .map((t) => [t.textContent, cells.get(t.textContent), getComputedStyle(t.querySelector('tspan[style]') || t).fill, font, bg]);
}})()"""

VIRIDIS = ["#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e", "#21918c", "#1fa088",
           "#28ae80", "#3fbc73", "#5ec962", "#84d44b", "#addc30", "#d8e219", "#fde725"]  # plotly's Viridis


def viridis_at(z: float, zmin: float, zmax: float) -> tuple[float, float, float]:
    t = min(1.0, max(0.0, (z - zmin) / (zmax - zmin)))
    k = min(len(VIRIDIS) - 2, int(t * (len(VIRIDIS) - 1)))
    a, b = ([int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in VIRIDIS[k:k + 2])
    f = t * (len(VIRIDIS) - 1) - k
    return tuple(x + f * (y - x) for x, y in zip(a, b))


def wcag_contrast(fill: str, ground: tuple[float, float, float]) -> float:
    """WCAG contrast of a CSS rgb()/rgba() text colour (its alpha blended over ``ground``) on ``ground``."""
    r, g, b, *alpha = (float(v) for v in fill[fill.index("(") + 1:-1].split(","))
    a = alpha[0] if alpha else 1.0
    ink = [a * c + (1 - a) * u for c, u in zip((r, g, b), ground)]

    def luminance(rgb):
        lin = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(ink), luminance(ground)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def axis_type(panel: str) -> str:
    return f"{q(role('trace-plot'))}._fullLayout.{panel}.type"


def test_empty_state_tooltips_log_axis_hover_zoom_and_fields(lab, page):
    name = write_notebook(lab, "sampler_states.ipynb", SETUP_FAKE_DEFAULTS)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        # --- a new widget: both panels framed, and a message saying what Run will draw
        page.wait_for_function(f"{q(role('trace-plot'))}._fullLayout !== undefined")
        subplots = page.evaluate(f"[...{q(role('trace-plot'))}.querySelectorAll('.cartesianlayer .subplot')].map((s) => s.classList[1])")
        assert sorted(subplots) == ["x2y2", "xy"], subplots
        assert "Press ▶ Run" in page.text_content(f"{role('trace-plot')} .annotation")
        assert "no run yet" in page.inner_text(role("verdict"))
        assert page.evaluate(f"{q(role('trace-plot'))}._fullLayout.xaxis2.range") == [0, 199]  # the draws Run will take
        # --- every control says what it does
        untitled = page.evaluate(UNTITLED_CONTROLS)
        assert untitled == [], untitled
        page.click(role("tab-calibrate"))
        untitled = page.evaluate(UNTITLED_CONTROLS)
        assert untitled == [], untitled
        page.click(role("tab-run"))
        shot(page, "09-empty-light")
        switch_theme(page, "Dark")
        page.wait_for_function(f"{plot_background_luminance(role('trace-plot'))} < 0.3", timeout=30_000)
        shot(page, "09-empty-dark")
        switch_theme(page, "Light")

        # --- nβ as the engine computes it shows to 4 significant digits
        kernel_exec(client, "import math; w.nbeta = 100 / math.log(100)")
        page.wait_for_function(f"{q(role('nbeta'))}.value === '21.71'")

        # --- an invalid lr is marked; Run resets the fields to Python's values and clears the mark
        page.fill(role("lr-value"), "0")
        page.press(role("lr-value"), "Enter")
        assert "dvz-invalid" in page.get_attribute(role("lr-value"), "class")
        page.click(role("run"))
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=60_000)
        assert page.input_value(role("lr-value")) == "0.001" == str(kernel_eval(client, "w.lr"))
        assert "dvz-invalid" not in page.get_attribute(role("lr-value"), "class")

        # --- hover on the finished figure names the chain, draw and loss; a drag zooms
        page.wait_for_function(f"{q(role('trace-plot'))}.data.length === 8")
        x, y = page.evaluate(f"""(() => {{
            const gd = {q(role('trace-plot'))}, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.getBoundingClientRect(), trace = gd.data[0];
            return [box.left + xa._offset + xa.c2p(trace.x[100]), box.top + ya._offset + ya.c2p(trace.y[100])];
        }})()""")
        page.mouse.move(x, y)
        page.wait_for_selector(f"{role('trace-plot')} .hoverlayer .hovertext", timeout=10_000)
        hover = page.text_content(f"{role('trace-plot')} .hoverlayer")
        assert "chain" in hover and "draw" in hover and "loss" in hover, hover
        before = page.evaluate(f"{q(role('trace-plot'))}._fullLayout.xaxis.range.slice()")
        page.mouse.move(x - 120, y - 30)
        page.mouse.down()
        page.mouse.move(x - 40, y + 30, steps=5)
        page.mouse.up()
        page.wait_for_function(f"{q(role('trace-plot'))}._fullLayout.xaxis.range[1] < {before[1] * 0.9}")

        # --- a diverged run: log y by itself, and the user's choice of scale wins
        assert page.evaluate(axis_type("yaxis")) == "linear"
        kernel_exec(client, "w.lr = 0.5")
        page.click(role("run"))
        page.wait_for_selector(f"{role('verdict')}[data-healthy='false']", timeout=60_000)
        page.wait_for_function(f"{axis_type('yaxis')} === 'log'")
        span = page.evaluate(f"{q(role('trace-plot'))}._fullLayout.yaxis.range")
        assert span[1] - span[0] > 10, span  # decades, every one of them readable
        shot(page, "10-diverged-log")
        page.select_option(role("y-scale"), "linear")
        page.wait_for_function(f"{axis_type('yaxis')} === 'linear'")
        page.select_option(role("y-scale"), "log")
        page.wait_for_function(f"{axis_type('yaxis')} === 'log'")
        page.select_option(role("y-scale"), "auto")

        # --- smoothing: the loss lines are an EMA, the raw draws stay faint underneath
        kernel_exec(client, "w.lr = 1e-3")
        page.click(role("run"))
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=60_000)
        page.wait_for_function(f"{q(role('trace-plot'))}.data.length === 8")
        slider = page.locator(role("smoothing"))
        box = slider.bounding_box()
        slider.click(position={"x": box["width"] * 0.9, "y": box["height"] / 2})
        page.wait_for_function(f"{q(role('trace-plot'))}.data.length === 12")
        raw, smooth = page.evaluate(f"(() => {{ const d = {q(role('trace-plot'))}.data; return [Array.from(d[0].y), Array.from(d[1].y)]; }})()")
        import numpy as np

        assert np.std(np.diff(smooth)) < 0.5 * np.std(np.diff(raw)), "the smoothed line is not smoother"
        assert kernel_eval(client, "float(w.result.llc_mean)") == pytest.approx(
            kernel_eval(client, "float(w.runs[-1].llc_mean)"))  # display only: the result is untouched
        shot(page, "11-smoothing")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


def test_run_history_table_compare_and_csv(lab, page):
    name = write_notebook(lab, "sampler_history.ipynb", SETUP_FAKE_DEFAULTS)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        assert page.locator(role("history")).is_hidden()  # nothing to list yet
        for k, lr in enumerate(("0.001", "0.003", "0.5")):
            page.fill(role("lr-value"), lr)
            page.press(role("lr-value"), "Enter")  # Enter commits the box
            wait_python(client, "w.lr", lambda v, lr=lr: v == float(lr))
            page.click(role("run"))
            wait_python(client, "len(w.runs)", lambda v, k=k: v == k + 1, timeout=60)
            page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=60_000)
        page.wait_for_function(f"{q(role('history-table'))}.querySelectorAll('tbody tr').length === 3")
        rows = kernel_eval(client, "w.history['rows']")
        cells = page.evaluate(f"[...{q(role('history-table'))}.querySelectorAll('tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent))")
        for row, shown in zip(rows, cells):
            assert shown[3] == f"{row['lr']:g}" and shown[-1] == row["status"]
            assert shown[-2].startswith(f"{row['llc_mean']:.4g} ± " if math.isfinite(row["llc_mean"]) else "– ± –"), shown
        # tick two runs: their running LLCs overlay
        page.check(role("compare-0"))
        page.check(role("compare-1"))
        assert wait_python(client, "w.compared", lambda v: v == [0, 1]) == [0, 1]
        page.wait_for_function(f"!{q(role('compare-plot'))}.hidden && {q(role('compare-plot'))}.data?.length === 2")
        last = page.evaluate(f"{q(role('compare-plot'))}.data.map((d) => d.y[d.y.length - 1])")
        expected = kernel_eval(client, "[float(w.runs[i].llc_mean) for i in (0, 1)]")
        assert last == pytest.approx(expected, rel=1e-4)
        page.locator(role("compare-plot")).scroll_into_view_if_needed()
        shot(page, "12-history-light")
        switch_theme(page, "Dark")
        page.wait_for_function(f"{plot_background_luminance(role('compare-plot'))} < 0.3", timeout=30_000)
        shot(page, "12-history-dark")
        switch_theme(page, "Light")
        # export CSV: the download is the Python method's text
        with page.expect_download() as download:
            page.click(role("export-csv"))
        text = Path(download.value.path()).read_text()
        assert text == kernel_eval(client, "w.history_csv()") and text.count("\n") == 4
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


def test_live_diagnostics_stream_and_stop_ends_a_bad_run(lab, page):
    name = write_notebook(lab, "sampler_live_health.ipynb", SETUP_SLOW_FAKE.replace("num_draws=400", "num_draws=3000"))
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        page.click(role("run"))
        page.wait_for_function(f"!{q(role('live-health'))}.hidden && /R-hat\\s*\\d/.test({q(role('live-health'))}.innerText)", timeout=60_000)
        live = kernel_eval(client, "{k: v for k, v in w.trace['live'].items()}")
        assert live["draws"] > 0 and live["divergent"] == 0
        text = page.inner_text(role("live-health"))
        assert "ESS" in text and "divergent" in text and "0/4" in text
        shot(page, "13-live-health")
        page.click(role("stop"))
        page.wait_for_selector(f"{ROOT}[data-status='stopped']", timeout=60_000)
        assert kernel_eval(client, "w.result.partial") is True
        assert 0 < kernel_eval(client, "w.result.num_draws") < 3000
        page.wait_for_function(f"{q(role('live-health'))}.hidden")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


SETUP_FAKE_NO_RECOMMENDATION = IMPORT_FAKES + """
import torch
from devinterp_viz.widgets import SamplerWidget
from tests.widget_fakes import FakeEngine, install
install(FakeEngine())
w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(), num_draws=100,
                  grid_lrs=[0.1, 0.5], grid_values=[10.0])
w
"""


def test_no_recommendation_is_not_styled_as_success(lab, page):
    name = write_notebook(lab, "sampler_no_rec.ipynb", SETUP_FAKE_NO_RECOMMENDATION)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        page.click(role("tab-calibrate"))
        page.click(role("calibrate"))
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=60_000)
        page.wait_for_selector(f"{role('recommended')}[data-state='none']")
        assert kernel_eval(client, "w.calibration['recommended']") is None
        assert "no recommendation" in page.inner_text(role("recommended"))
        assert "every lr was too large: add smaller lrs (below 0.1)" in page.inner_text(role("recommended"))  # which way
        colour = page.evaluate(f"getComputedStyle({q(role('recommended'))}).color")
        success = page.evaluate("getComputedStyle(document.body).getPropertyValue('--jp-success-color1')")
        probe = page.evaluate(f"(() => {{ const s = document.createElement('span'); s.style.color = {json.dumps(success)} || '#388e3c'; document.body.append(s); const c = getComputedStyle(s).color; s.remove(); return c; }})()")
        assert colour != probe, f"'no recommendation' is drawn in the success colour {colour}"
        assert page.locator(role("use-recommended")).is_hidden()
        # the grid's last cell may reach the view before the "done" status: the verdict must follow "done"
        kernel_exec(client, 'last = w.calibration; w.status = "running"; w.calibration = {**last, "resent": 1}')
        page.wait_for_selector(f"{role('recommended')}[data-state='']", state="attached")
        kernel_exec(client, 'w.status = "done"')
        page.wait_for_selector(f"{role('recommended')}[data-state='none']")
        # every cell diverged: each still shows that it ran and is not trusted
        page.wait_for_function(f"[...{q(role('heatmap'))}.querySelectorAll('text')].filter((t) => t.textContent === 'n/a ✕').length === 2")
        shot(page, "14-no-recommendation")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


SETUP_NOTEBOOK_NETWORK = """
import torch
torch.set_num_threads(1)
from devinterp_viz.widgets import SamplerWidget
from devinterp_viz.zoo.dln import make_dln_data, mse_loss, true_parameter_dln
torch.manual_seed(0)
model = true_parameter_dln([6, 4, 6], rank=2)  # as in notebooks/sampler_tuning.ipynb
data = make_dln_data(model, num_examples=2000, noise=0.1)
w = SamplerWidget(model, data, mse_loss, batch_size=100, num_chains=4, num_draws=300)
w
"""


def test_defaults_run_healthy_and_the_default_grid_recommends_on_the_notebooks_network(lab, page):
    name = write_notebook(lab, "sampler_defaults.ipynb", SETUP_NOTEBOOK_NETWORK)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        page.click(role("run"))
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=120_000)
        page.wait_for_selector(f"{role('verdict')}[data-healthy='true']", timeout=30_000)
        assert page.inner_text(role("next-step")) == ""  # a healthy first run gives no advice
        assert kernel_eval(client, "w.result.diagnostics.status") == "healthy"
        page.click(role("tab-calibrate"))
        page.click(role("calibrate"))
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=300_000)
        page.wait_for_selector(f"{role('recommended')}[data-state='recommended']")
        healthy = kernel_eval(client, "[[h for h, lr in zip(row, w.calibration['lrs']) if lr in w.grid_lrs] for row in w.calibration['healthy'].tolist()]")
        cells = [h for row in healthy for h in row]
        assert len(cells) == 12 and sum(cells) >= 6, healthy  # most of the default grid is usable ...
        assert 0 < sum(cells) < 12  # ... and it shows where the settings stop working
        shot(page, "15-default-grid-light")
        switch_theme(page, "Dark")
        page.wait_for_function(f"{plot_background_luminance(role('heatmap'))} < 0.3", timeout=30_000)
        shot(page, "15-default-grid-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "Light")


def test_live_canvas_hover_zoom_reset_and_live_mala_acceptance(lab, page):
    # 3000 draws at 0.03 s: the chains stream for 90 s, longer than this test's hovering and theme switches
    slow = SETUP_SLOW_FAKE.replace("num_draws=400", "num_draws=3000").replace("seconds_per_draw=0.01", "seconds_per_draw=0.03")
    name = write_notebook(lab, "sampler_live_canvas_zoom.ipynb", slow)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    canvas = role("live-plot")
    try:
        page.click(role("run"))
        page.wait_for_function(f"!{q(canvas)}.hidden && Number({q(ROOT)}.dataset.dvzDraws || 0) > 100", timeout=60_000)
        # the live health line shows the acceptance the engine streamed (the fake's constant 0.875)
        page.wait_for_function(f"/MALA acc\\.\\s*0\\.875/.test({q(role('live-health'))}.innerText)", timeout=30_000)
        assert kernel_eval(client, "w.trace['live']['mala_acceptance']") == 0.875
        box = page.locator(canvas).bounding_box()
        # hover: the readout names a chain, its draw and the value the kernel holds for it
        x, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.25
        page.mouse.move(x, y)
        page.wait_for_function(f"!{q(role('live-tip'))}.hidden")
        tip = page.locator(role("live-tip"))
        draw, chain = int(tip.get_attribute("data-dvz-draw")), int(tip.get_attribute("data-dvz-series"))
        value = kernel_eval(client, f"float(w.trace['loss'][{chain}, {draw}])")
        text = tip.inner_text()
        assert f"chain {chain} · draw {draw} · loss" in text, text
        assert float(text.rsplit(" ", 1)[1]) == pytest.approx(value, rel=1e-4)
        shot(page, "16-live-hover-light")
        # the pointer stays still while the x axis grows with the draws: the readout follows what is under it
        page.wait_for_function(f"{q(role('live-tip'))}.dataset.dvzDraw !== '{draw}' && !{q(role('live-tip'))}.hidden", timeout=30_000)
        # drag across the plot: x zooms to the dragged span
        page.mouse.move(box["x"] + box["width"] * 0.3, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
        shot(page, "17-live-drag-light")
        page.mouse.up()
        view = [float(v) for v in page.get_attribute(canvas, "data-dvz-x-view").split(",")]
        assert 0 <= view[0] < view[1] and view[1] - view[0] >= 1
        page.mouse.move(x + 5, y)
        page.wait_for_function(f"!{q(role('live-tip'))}.hidden")
        zoomed_draw = int(tip.get_attribute("data-dvz-draw"))
        assert view[0] <= zoomed_draw <= view[1] + 1
        # double click: the whole run again
        page.mouse.dblclick(x, y)
        assert page.get_attribute(canvas, "data-dvz-x-view") == ""
        # zoomed again, in the dark theme
        page.mouse.move(box["x"] + box["width"] * 0.3, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
        page.mouse.up()
        assert page.get_attribute(canvas, "data-dvz-x-view") != ""
        switch_theme(page, "Dark")
        page.wait_for_function("!document.querySelector('#jupyterlab-splash')", timeout=30_000)  # Lab's theme splash
        page.mouse.move(x + 5, y)
        page.wait_for_function(f"!{q(role('live-tip'))}.hidden")  # hover works in the dark theme too
        shot(page, "18-live-zoomed-hover-dark")
        switch_theme(page, "Light")
        assert page.locator(canvas).is_visible(), "the run ended before the test did"
        page.click(role("stop"))
        page.wait_for_selector(f"{ROOT}[data-status='stopped']", timeout=60_000)
        # the fake engine's results carry no sampler traces: amber "healthy as far as checked", light and dark
        page.wait_for_function(f"{q(role('verdict'))}.dataset.healthy === 'unchecked'")
        assert "healthy as far as checked: not checked: the step-size bias" in page.inner_text(role("verdict"))
        shot(page, "19-unchecked-verdict-light")
        switch_theme(page, "Dark")
        page.wait_for_function("!document.querySelector('#jupyterlab-splash')", timeout=30_000)
        shot(page, "19-unchecked-verdict-dark")
        switch_theme(page, "Light")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


SETUP_BURNIN = SETUP_REAL.replace("lr=1e-3, nbeta=10.0, num_draws=1500", "lr=1e-3, nbeta=10.0, num_draws=200, num_burnin_steps=300")
BURNIN_LINES = f"{q(role('trace-plot'))}.data.filter((d) => d.name.endsWith(' burn-in'))"
PLOT_TEXTS = f"(({q(role('trace-plot'))}.layout.annotations || []).map((a) => a.text).join(' | ').replaceAll('<br>', ' '))"


def test_a_run_that_diverges_in_burn_in_shows_its_burn_in_losses_and_what_to_do(lab, page):
    name = write_notebook(lab, "sampler_burnin.ipynb", SETUP_BURNIN)
    open_and_run(page, lab, name)
    client = lab.kernel_client(name)
    try:
        # --- lr far too large, typed as a user would: the chains go non-finite long before draw 0
        page.fill(role("lr-value"), "1")
        page.press(role("lr-value"), "Enter")
        wait_python(client, "w.lr", lambda v: v == 1.0)
        page.click(role("run"))
        page.wait_for_selector(f"{ROOT}[data-status='done']", timeout=120_000)
        page.wait_for_selector(f"{role('verdict')}[data-healthy='false']")
        step = kernel_eval(client, "int(w.result.diagnostics.burnin_divergence_step.min())")
        message = kernel_eval(client, "w.health['burnin_message']")
        assert 0 < step < 300 and message.startswith(f"diverged during burn-in at step {step} of 300: lower lr to 0.1 (lr/10)")
        # the burn-in losses of every chain, before draw 0, on a log axis (they span decades)
        page.wait_for_function(f"{BURNIN_LINES}.length === 4")
        xs = page.evaluate(f"{BURNIN_LINES}.flatMap((d) => Array.from(d.x))")
        assert xs and max(xs) < 0 and min(xs) == -300, (min(xs), max(xs))
        assert page.evaluate(axis_type("yaxis")) == "log"
        # the panel the run left empty says what happened and what to do; the step it went non-finite is marked
        texts = page.evaluate(PLOT_TEXTS)
        assert f"non-finite at step {step}" in texts and "burn-in" in texts
        assert " ".join(message.split()) in " ".join(texts.split()), (message, texts)
        shapes = page.evaluate(f"{q(role('trace-plot'))}.layout.shapes.map((s) => s.name || '')")
        assert "burn-in" in shapes and "non-finite" in shapes
        assert page.inner_text(role("next-step")) == f"next step: {message}"
        shot(page, "20-burnin-diverged-light")
        switch_theme(page, "Dark")
        page.wait_for_function(f"{plot_background_luminance(role('trace-plot'))} < 0.3", timeout=30_000)
        assert page.evaluate(f"{BURNIN_LINES}.length") == 4 and message.split(":")[0] in page.evaluate(PLOT_TEXTS)
        shot(page, "20-burnin-diverged-dark")
        switch_theme(page, "Light")

        # --- a healthy run: its burn-in sits faint before draw 0, without a message
        page.fill(role("lr-value"), "0.001")
        page.press(role("lr-value"), "Enter")
        wait_python(client, "w.lr", lambda v: v == 0.001)
        page.click(role("run"))
        assert wait_python(client, "[len(w.runs), w.status]", lambda v: v == [2, "done"], timeout=120) == [2, "done"]
        page.wait_for_function(f"Number({q(ROOT)}.dataset.dvzDraws) === 200 && {q(ROOT)}.dataset.status === 'done'")
        page.wait_for_function(f"{BURNIN_LINES}.length === 4 && {q(role('trace-plot'))}.data.length === 12")
        assert page.locator(role("live-plot")).is_hidden()
        assert "diverged" not in page.evaluate(PLOT_TEXTS)
        assert page.evaluate(f"{q(role('trace-plot'))}._fullLayout.xaxis2.range[0]") == -300
        shot(page, "21-burnin-healthy-light")

        # --- the health cards: one row in a widget of a notebook's usual width (~900 px output area)
        viewport = page.viewport_size
        try:
            width = page.evaluate(f"{q(ROOT)}.getBoundingClientRect().width")
            page.set_viewport_size({"width": int(viewport["width"] - (width - 900)), "height": viewport["height"]})
            page.wait_for_function(f"Math.abs({q(ROOT)}.getBoundingClientRect().width - 900) < 20")
            tops = page.evaluate(f"[...document.querySelectorAll({json.dumps(role('metrics') + ' .dvz-metric')})].map((e) => e.getBoundingClientRect().top)")
            assert len(tops) == 7 and max(tops) - min(tops) < 1, tops
            assert "% of λ̂" in page.inner_text(role("metrics"))  # the step bias with its share, on a line of its own
            page.locator(role("metrics")).scroll_into_view_if_needed()
            shot(page, "22-health-cards-light")
            switch_theme(page, "Dark")
            page.wait_for_function(f"{plot_background_luminance(role('trace-plot'))} < 0.3", timeout=30_000)
            shot(page, "22-health-cards-dark")
            switch_theme(page, "Light")
        finally:
            page.set_viewport_size(viewport)
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "Light")
