"""SamplerWidget in a real JupyterLab + chromium: render, Run, live traces, verdict, lr slider, Stop, dark theme."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from dvz_lab import ARTIFACTS, kernel_eval

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
install(FakeEngine(seconds_per_draw=0.0005))
w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(), num_draws=100,
                  grid_lrs=[1e-6, 1e-4, 1e-3, 0.1], grid_values=[1.0, 10.0, 100.0])
w
"""


def write_notebook(lab, name: str, source: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source.strip())]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab.root / name)
    return name


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


def q(selector: str) -> str:
    """JS expression for the element matching ``selector``."""
    return f"document.querySelector({json.dumps(selector)})"


def role(name: str) -> str:
    return f"{ROOT} [data-dvz-role='{name}']"


def plot_background_luminance(selector: str) -> str:
    """JS expression: relative luminance (0 black .. 1 white) of a plotly figure's paper colour."""
    return f"""(() => {{
        const probe = document.createElement("span");
        probe.style.color = {q(selector)}._fullLayout.paper_bgcolor;
        document.body.appendChild(probe);
        const [r, g, b] = getComputedStyle(probe).color.match(/[\\d.]+/g).map(Number);
        probe.remove();
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    }})()"""


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
        after = _wait_python(client, "w.lr", lambda v: v != before)
        assert after == pytest.approx(shown, rel=1e-2)
        assert 10 ** (-8 + 8 * 0.7) < after < 10 ** (-8 + 8 * 0.9)  # the track maps log10(lr) in [-8, 0]

        # --- Stop: a long run is cancelled and keeps what was drawn
        page.fill(role("lr-value"), "0.001")
        page.press(role("lr-value"), "Enter")
        page.fill(role("num-draws"), "1000000")
        page.press(role("num-draws"), "Tab")
        _wait_python(client, "w.num_draws", lambda v: v == 1_000_000)
        page.click(role("run"))
        # the previous run's draw count shows until the new run's first frame: wait for the new run
        page.wait_for_selector(f"{ROOT}[data-status='running']", timeout=60_000)
        _wait_python(client, "int(w.trace['loss'].shape[1])", lambda v: v > 20, timeout=60)
        page.wait_for_function(
            f"Number({q(ROOT)}.dataset.dvzDraws || 0) > 20", timeout=60_000
        )
        page.click(role("stop"))
        page.wait_for_selector(f"{ROOT}[data-status='stopped']", timeout=60_000)
        assert kernel_eval(client, "w.result.partial") is True
        kept = kernel_eval(client, "w.result.num_draws")
        assert 20 < kept < 1_000_000
        assert f"kept {kept} draws" in page.inner_text(role("status"))
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
        page.wait_for_function(f"{q(role('grid-progress'))}.textContent === '12/12 cells'")
        # unhealthy cells (lr = 0.1 diverges) are marked
        assert kernel_eval(client, "w.calibration['healthy'][:, 3].tolist()") == [0.0, 0.0, 0.0]
        # every computed cell shows its number; a cross after it marks the untrusted ones, none hides it
        texts = page.evaluate(f"{q(role('heatmap'))}.data[0].text")
        healthy = kernel_eval(client, "w.calibration['healthy'].tolist()")
        for row_text, row_healthy in zip(texts, healthy):
            for text, ok in zip(row_text, row_healthy):
                assert text and (text.endswith("✕") != bool(ok)), (text, ok)
        assert page.evaluate(f"{q(role('heatmap'))}.data.length") == 1  # no markers drawn over the values
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
        page.wait_for_function(f"{q(role('cell-info'))}.textContent.includes('lr 0.001')")
        assert _wait_python(client, "w.selected_cell", lambda v: v == [1, 2]) == [1, 2]
        assert page.locator(f"{role('cell-plot')} .scatterlayer .trace").count() >= 4
        shot(page, "06-cell")
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
        assert page.inner_text(role("verdict")).startswith(res.diagnostics.verdict.split(" ")[0])
        assert page.locator(role("run")).is_disabled()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "sampler-07-saved-html.png"))
    finally:
        context.close()


def _wait_python(client, expression, predicate, timeout=15.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = kernel_eval(client, expression)
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)
