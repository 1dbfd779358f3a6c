"""The shared runtime in a real JupyterLab: a saved notebook reopens its widgets from stored state,
loading plotly and the views once for all of them."""

from __future__ import annotations

import nbformat
from nbformat.sign import NotebookNotary

from dvz_lab import ARTIFACTS

WIDGET = '[data-dvz-widget="SamplerWidget"]'
ROOT = f"{WIDGET} .dvz-sampler"

CELLS = [
    """
import numpy as np
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.widgets import SamplerWidget
def finished(seed):
    rng = np.random.default_rng(seed)
    return LLCResult.from_traces(1 + 0.05 * rng.random((4, 300)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 300})
""",
    "SamplerWidget.from_result(finished(0))",
    "SamplerWidget.from_result(finished(1))",
    "SamplerWidget.from_result(finished(2))",
]


def ready_count(n: int) -> str:
    """JS condition: ``n`` SamplerWidgets have rendered."""
    return f"document.querySelectorAll({ROOT!r} + '[data-dvz-ready=\"1\"]').length === {n}"


def executed_notebook(lab, name: str) -> str:
    """Run the cells headless (nbclient stores the widget state, as CI does) into the lab's folder."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source.strip()) for source in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(lab.root)}}).execute()
    # JupyterLab renders widget outputs of trusted notebooks only (as when you save your own work)
    NotebookNotary().sign(nb)
    nbformat.write(nb, lab.root / name)
    return name


def test_saved_notebook_reopens_its_widgets_from_stored_state_with_one_runtime(lab, page):
    name = executed_notebook(lab, "saved_widgets.ipynb")
    saved = nbformat.read(lab.root / name, as_version=4).metadata["widgets"]
    state = saved["application/vnd.jupyter.widget-state+json"]
    esm_sizes = sorted(len(s["state"].get("_esm", "")) for s in state["state"].values() if "_esm" in s["state"])
    assert len(esm_sizes) == 4 and esm_sizes[-2] < 4096 < esm_sizes[-1]  # 3 small views + the runtime

    # open it without running anything: the widgets come back from the notebook's widget state
    page.goto(lab.notebook_url(name))
    page.wait_for_function(ready_count(3), timeout=90_000)
    page.wait_for_function(
        f"[...document.querySelectorAll({ROOT!r})].every((r) => Number(r.dataset.dvzDraws) === 300)", timeout=30_000
    )
    assert page.locator(f"{WIDGET} [data-dvz-role='trace-plot'] .scatterlayer .trace").count() == 3 * 8
    assert page.evaluate("globalThis.__dvz_runtime_loads") == 1
    verdicts = page.locator(f"{WIDGET} [data-dvz-role='verdict']").all_inner_texts()
    assert len(verdicts) == 3 and all(v for v in verdicts)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runtime-01-reopened-notebook.png"))
    assert not page.dvz_errors, page.dvz_errors


FALLBACK_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<div id="a"></div><div id="b"></div>
<script type="module">
const state = @STATE@;
const runtimeModel = { get: (k) => ({ _esm: @RUNTIME@, bundle_hash: "test" })[k] };
const widget_manager = { get_model: async (id) => { if (id !== "rt") throw new Error("no model " + id); return runtimeModel; } };
const model = () => ({ get: (k) => state[k], set() {}, save_changes() {}, send() {}, on() {}, off() {}, widget_manager });
const url = URL.createObjectURL(new Blob([@VIEW@], { type: "text/javascript" }));
const view = (await import(url)).default;
// no `host` (anywidget < 0.11): the view module imports the runtime model's _esm itself, once
await Promise.all([view.render({ model: model(), el: document.getElementById("a") }),
                   view.render({ model: model(), el: document.getElementById("b") })]);
</script></body></html>"""


def test_without_anywidget_host_the_view_module_imports_the_runtime_once(browser, tmp_path):
    """Front ends with anywidget < 0.11 have no host.getWidget: the view module falls back to the
    widget manager, imports the runtime widget's _esm itself, and shares it between views."""
    import json
    import re

    import numpy as np

    from devinterp_viz.engine.results import LLCResult
    from devinterp_viz.widgets import SamplerWidget
    from devinterp_viz.widgets._base import bundle
    from devinterp_viz.widgets._transport import embed_state

    rng = np.random.default_rng(0)
    res = LLCResult.from_traces(1 + 0.05 * rng.random((4, 200)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 200})
    state = embed_state(SamplerWidget.from_result(res)) | {"_static": True, "_runtime": "IPY_MODEL_rt"}
    runtime, view = bundle()
    values = {"STATE": state, "RUNTIME": runtime, "VIEW": view}

    def inline(match):
        return json.dumps(values[match[1]]).replace("</", "<\\/")

    page_text = re.sub(r"@(STATE|RUNTIME|VIEW)@", inline, FALLBACK_PAGE)
    path = tmp_path / "fallback.html"
    path.write_text(page_text, encoding="utf-8")
    context = browser.new_context(offline=True)
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        page.wait_for_function(ready_count(2), timeout=30_000)
        assert page.evaluate("globalThis.__dvz_runtime_loads") == 1
        assert page.locator(f"{WIDGET} [data-dvz-role='trace-plot']").count() == 2
        looks = page.evaluate("""(root) => [...document.querySelectorAll(`${root} .dvz-controls input:not([type=range]), ${root} .dvz-controls select`)]
            .map((el) => [el.disabled, getComputedStyle(el).cursor, getComputedStyle(el).borderTopStyle, el.outerHTML.slice(0, 120)])""", WIDGET)
        assert looks and all(look[:3] == [True, "not-allowed", "dashed"] for look in looks), looks  # a snapshot's sampler settings look fixed
        grid = page.evaluate("""(root) => ["grid-lrs", "grid-values", "grid-axis"].map(
            (role) => document.querySelector(`${root} [data-dvz-role=${role}]`).disabled)""", WIDGET)
        assert grid == [True, True, True]  # nothing to calibrate in a snapshot
    finally:
        context.close()



def open_until_idle(page, lab, name: str) -> None:
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some((e) => /Idle/.test(e.textContent))", timeout=90_000
    )


def test_a_shipped_notebook_opens_unmodified(lab, page):
    """Opening a notebook must not mark it modified: JupyterLab writes the kernel's name and language
    (kernelspec, language_info) into a notebook that lacks them, so every notebook carries them."""
    import json
    import platform
    import shutil
    import time
    from pathlib import Path

    import pytest

    source = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"
    shipped = json.loads(source.read_text())
    recorded = shipped["metadata"]["language_info"]["version"]
    if recorded != platform.python_version():  # JupyterLab rewrites another Python's version, as for any notebook
        pytest.skip(f"the notebooks record Python {recorded}; this kernel runs {platform.python_version()}")
    # the control: the same notebook without language_info is marked modified once the kernel answers
    del shipped["metadata"]["language_info"]
    (lab.root / "bare.ipynb").write_text(json.dumps(shipped))
    open_until_idle(page, lab, "bare.ipynb")
    start = time.monotonic()
    page.wait_for_selector(".lm-TabBar-tab.jp-mod-dirty", timeout=60_000)
    lag = time.monotonic() - start
    shutil.copy(source, lab.root / "shipped.ipynb")
    open_until_idle(page, lab, "shipped.ipynb")
    page.wait_for_timeout(1000 * (2 * lag + 2))  # twice as long as the control took to be marked
    dirty = page.evaluate("[...document.querySelectorAll('.lm-TabBar-tab.jp-mod-dirty')].map((t) => t.textContent)")
    assert not any("shipped" in tab for tab in dirty), dirty
