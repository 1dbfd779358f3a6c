"""Budgets of the widget layer, measured in a real JupyterLab + chromium (see bench/RESULTS.md).

    .venv/bin/python bench/widget_bench.py                  # prints a markdown table and JSON
    .venv/bin/python bench/widget_bench.py --stream-only    # live streaming only (JSON)
    .venv/bin/python bench/widget_bench.py --notebook-only  # executed notebook sizes only (JSON)
    .venv/bin/python bench/widget_bench.py --dashboard-only # DevelopmentDashboard at 1000 checkpoints (JSON + table)

Measures: the bundle's size; the SamplerWidget's first render after its cell runs (cold: fresh
page; warm: a second widget in the same page); the executed notebooks/sampler_tuning.ipynb size;
live streaming: frames drawn per second while the kernel pushes traces at push_hz, the cost of one live
(canvas) frame and of one plotly figure, how late the last frame lands after the run ends, and the
kernel's reply latency during the run.
Needs /usr/bin/chromium, Playwright, JupyterLab and the built bundle.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ui"))
sys.path.insert(0, str(REPO))

from dvz_lab import CHROMIUM, CHROMIUM_ARGS, Lab, kernel_eval, write_notebook  # noqa: E402

ROOT = '[data-dvz-widget="SamplerWidget"] .dvz-sampler'

RENDER_SETUP = """
import numpy as np
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.widgets import SamplerWidget
rng = np.random.default_rng(0)
res = LLCResult.from_traces(1 + 0.05 * rng.random((4, 500)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 500})
"""
RENDER_CELL = "SamplerWidget.from_result(res)"

IMPORT_FAKES = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"  # the kernel finds tests/widget_fakes.py
STREAM_CELL = IMPORT_FAKES + """
import torch
from devinterp_viz.widgets import SamplerWidget
from tests.widget_fakes import FakeEngine, install
install(FakeEngine(seconds_per_draw=SECONDS_PER_DRAW))
w = SamplerWidget(torch.nn.Linear(3, 1), torch.zeros(8, 3), lambda m, b: m(b).pow(2).mean(),
                  num_chains=CHAINS, num_draws=DRAWS)
w
"""


def open_notebook(page, lab: Lab, name: str) -> None:
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some((e) => /Idle/.test(e.textContent))",
        timeout=90_000,
    )


def run_all(page) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")


def bench_bundle() -> dict:
    js = REPO / "devinterp_viz" / "widgets" / "static" / "index.js"
    return {"bundle_bytes": js.stat().st_size, "bundle_mb": round(js.stat().st_size / 2**20, 2)}


def bench_render(browser, lab: Lab, repeats: int = 3) -> dict:
    """Time from pressing Shift+Enter on a cell that makes a widget to the widget drawn (its plot
    rendered). Cold: the first widget of a fresh page (bundle loaded, plotly evaluated); warm: a
    second widget in the same page. The imports run in an earlier cell, as in a real notebook."""
    name = write_notebook(lab, "bench_render.ipynb", [RENDER_SETUP, RENDER_CELL, RENDER_CELL])
    cold, warm = [], []
    for _ in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_notebook(page, lab, name)
            page.click(".jp-Notebook .jp-Cell >> nth=0 >> .jp-InputPrompt")
            page.keyboard.press("Shift+Enter")  # setup; selects the next cell
            page.wait_for_function("/\\[1\\]/.test(document.querySelectorAll('.jp-InputPrompt')[0].textContent)")
            for index, bucket in ((1, cold), (2, warm)):
                widget = f".jp-Notebook .jp-CodeCell >> nth={index} >> {ROOT}[data-dvz-frames]"
                t0 = page.evaluate("performance.now()")
                page.keyboard.press("Shift+Enter")
                page.wait_for_selector(widget, timeout=60_000)
                bucket.append(page.evaluate("performance.now()") - t0)
        finally:
            page.close()
        _restart_kernels(lab)
    return {
        "render_cold_ms": round(statistics.median(cold)),
        "render_cold_all_ms": [round(x) for x in cold],
        "render_warm_ms": round(statistics.median(warm)),
        "render_warm_all_ms": [round(x) for x in warm],
    }


def bench_stream(browser, lab: Lab, seconds_per_draw: float = 0.002, chains: int = 4, draws: int = 5000) -> dict:
    """Live run pushing at push_hz: browser frames/s, redraw costs, lag of the last frame, kernel reply latency."""
    cell = (STREAM_CELL.replace("SECONDS_PER_DRAW", str(seconds_per_draw))
            .replace("CHAINS", str(chains)).replace("DRAWS", str(draws)))
    name = write_notebook(lab, "bench_stream.ipynb", cell)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    client = None
    try:
        open_notebook(page, lab, name)
        run_all(page)
        page.wait_for_selector(f'{ROOT}[data-dvz-ready="1"]', timeout=90_000)
        client = lab.kernel_client(name)
        page.evaluate(f"""window.__samples = []; window.__timer = setInterval(() => {{
            const r = document.querySelector({json.dumps(ROOT)});
            window.__samples.push([performance.now(), Number(r.dataset.dvzFrames || 0), Number(r.dataset.dvzDraws || 0), r.dataset.status]);
        }}, 25);""")
        page.click(f"{ROOT} [data-dvz-role='run']")
        latencies = []
        start = time.monotonic()
        while kernel_eval(client, "w.status") in ("running", "stopping") or time.monotonic() - start < 0.5:
            t0 = time.perf_counter()
            kernel_eval(client, "1 + 1")
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.1)
        page.wait_for_function(
            f"Number(document.querySelector({json.dumps(ROOT)}).dataset.dvzDraws) === {draws}", timeout=60_000
        )
        time.sleep(0.3)
        samples = page.evaluate("clearInterval(window.__timer), window.__samples")
        pushes = kernel_eval(client, "w._throttle.num_pushes")
        push_hz = kernel_eval(client, "w.push_hz")
        live_ms = page.get_attribute(ROOT, "data-dvz-live-ms")  # canvas frames while streaming
        plotly_ms = page.get_attribute(ROOT, "data-dvz-plotly-ms")  # plotly figures (idle, final)
    finally:
        if client is not None:
            client.stop_channels()
        page.close()
        _restart_kernels(lab)
    streaming = [s for s in samples if 0 < s[2] < draws]
    t0, t1 = streaming[0][0], streaming[-1][0]
    frames = streaming[-1][1] - streaming[0][1]
    done_at = next(s[0] for s in samples if s[2] == draws)
    last_partial = streaming[-1][0]
    draws_per_s = (streaming[-1][2] - streaming[0][2]) / ((t1 - t0) / 1000)
    return {
        "push_hz": push_hz,
        "stream_chains": chains,
        "stream_draws": draws,
        "stream_draws_per_s": round(draws_per_s),
        "stream_seconds": round((t1 - t0) / 1000, 2),
        "frames_per_s": round(frames / ((t1 - t0) / 1000), 1),
        "live_redraw_ms": float(live_ms) if live_ms else None,
        "plotly_redraw_ms": float(plotly_ms) if plotly_ms else None,
        "python_pushes_per_s": round(pushes / ((t1 - t0) / 1000), 1),
        "final_frame_after_last_live_ms": round(done_at - last_partial),
        "kernel_reply_ms_median": round(1000 * statistics.median(latencies), 1),
        "kernel_reply_ms_max": round(1000 * max(latencies), 1),
    }


#: Cells of notebooks/sampler_tuning.ipynb that show a further widget (the bad and the timid run).
EXTRA_WIDGET_CELL = "SamplerWidget.from_result("


def bench_notebook_size(widgets: int = 3) -> dict:
    """Execute notebooks/sampler_tuning.ipynb with nbclient (widget state stored) and measure it.

    The notebook shows three widgets (the live one, and the bad and the timid run reopened from
    their results); ``widgets=1`` drops the two ``from_result`` cells, to see what each extra
    widget adds to the saved notebook.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "notebooks" / "sampler_tuning.ipynb", as_version=4)
    extra = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(EXTRA_WIDGET_CELL)]
    assert len(extra) == 2, "the notebook's two from_result cells moved: update bench_notebook_size"
    if widgets == 1:
        nb.cells = [c for c in nb.cells if c not in extra]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        seconds = time.monotonic() - start
        out = Path(tmp) / "executed.ipynb"
        nbformat.write(nb, out)
        size = out.stat().st_size
    return {f"notebook_{widgets}w_bytes": size, f"notebook_{widgets}w_mb": round(size / 2**20, 2),
            f"notebook_{widgets}w_exec_s": round(seconds, 1)}


DASH_ROOT = '[data-dvz-widget="DevelopmentDashboard"] .dvz-dashboard'
DASH_SETUP = IMPORT_FAKES + """
import numpy as np
from devinterp_viz.analysis.essential_dynamics import essential_dynamics
from devinterp_viz.widgets.dashboard import DevelopmentDashboard
from tests.widget_fakes import synthetic_sweep
sweep = synthetic_sweep(CHECKPOINTS, chains=4, draws=40, unhealthy=(10, 500))
t = np.linspace(0, 1, CHECKPOINTS)
outputs = np.stack([np.cos(3 * t), np.sin(3 * t), t ** 2, np.sin(9 * t)], 1) @ np.random.default_rng(0).standard_normal((4, 50))
ed = essential_dynamics(outputs, steps=sweep.steps, n_components=3, progress=False)
losses = {"train": 0.3 * np.exp(-3 * t) + 0.05, "test": (sweep.steps[::10], 0.3 * np.exp(-3 * t[::10]) + 0.06)}
"""
DASH_CELL = "DevelopmentDashboard(sweep=sweep, dynamics=ed, losses=losses)"

#: In the page: move the slider ``n`` times (as a user dragging it does: set value, fire input) and
#: time each move to the next painted frame (rAF, then a task after the paint).
SCRUB_JS = """async ([root, n]) => {
  const r = document.querySelector(root);
  const slider = r.querySelector("[data-dvz-role='scrubber']");
  const max = Number(slider.max);
  const frame = () => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  await frame();
  const times = [];
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    slider.value = String(Math.round(((k * 37) % n) / n * max));
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    await frame();
    times.push(performance.now() - t0);
  }
  const cursors = [...r.querySelectorAll("[data-dvz-role^='cursor-']")].map((e) => e.dataset.checkpoint);
  return { times, handler_ms: Number(r.dataset.dvzScrubMs), cursors, checkpoint: r.dataset.checkpoint };
}"""


def bench_dashboard(browser, lab: Lab, checkpoints: int = 1000, repeats: int = 3, moves: int = 200) -> dict:
    """DevelopmentDashboard with ``checkpoints`` checkpoints × 3 panels (loss, LLC with 4 chains and stages,
    essential dynamics): first render after Shift+Enter (cold page), scrub-to-redraw in the browser,
    and the size of its saved standalone page."""
    setup = DASH_SETUP.replace("CHECKPOINTS", str(checkpoints))
    name = write_notebook(lab, "bench_dashboard.ipynb", [setup, DASH_CELL])
    renders, scrubs, handler = [], [], []
    for repeat in range(repeats):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_notebook(page, lab, name)
            page.click(".jp-Notebook .jp-Cell >> nth=0 >> .jp-InputPrompt")
            page.keyboard.press("Shift+Enter")
            page.wait_for_function("/\\[1\\]/.test(document.querySelectorAll('.jp-InputPrompt')[0].textContent)", timeout=120_000)
            t0 = page.evaluate("performance.now()")
            page.keyboard.press("Shift+Enter")
            page.wait_for_function(
                f"(() => {{ const r = document.querySelector({json.dumps(DASH_ROOT)}); return r && Number(r.dataset.dvzDrawn || 0) > 0 && "
                "[...r.querySelectorAll('.dvz-plot')].every((g) => g._fullLayout && g.querySelector('.scatterlayer .trace')); })()",
                timeout=60_000, polling="raf")
            renders.append(page.evaluate("performance.now()") - t0)
            if repeat == 0:
                result = page.evaluate(SCRUB_JS, [DASH_ROOT, moves])
                scrubs = result["times"]
                handler.append(result["handler_ms"])
                assert len(set(result["cursors"])) == 1 and result["cursors"][0] == result["checkpoint"], result
                page.screenshot(path=str(REPO / "test-artifacts" / "bench-dashboard-1000.png"))
        finally:
            page.close()
        _restart_kernels(lab)
    import numpy as np

    namespace: dict = {}
    exec(setup, namespace)  # the same widget, saved as a page
    with tempfile.TemporaryDirectory() as tmp:
        path = namespace["DevelopmentDashboard"](sweep=namespace["sweep"], dynamics=namespace["ed"], losses=namespace["losses"]).save_html(Path(tmp) / "dash.html")
        page_bytes = path.stat().st_size
    scrubs = np.asarray(scrubs)
    return {
        "dash_checkpoints": checkpoints,
        "dash_render_cold_ms": round(statistics.median(renders)),
        "dash_render_all_ms": [round(x) for x in renders],
        "dash_scrub_moves": len(scrubs),
        "dash_scrub_median_ms": round(float(np.median(scrubs)), 1),
        "dash_scrub_p95_ms": round(float(np.percentile(scrubs, 95)), 1),
        "dash_scrub_max_ms": round(float(scrubs.max()), 1),
        "dash_scrub_handler_ms": handler[0],
        "dash_page_bytes": page_bytes,
        "dash_page_mb": round(page_bytes / 2**20, 2),
    }


def print_dashboard_table(results: dict) -> None:
    print("| measure | value | budget |")
    print("|---|---|---|")
    print(f"| first render after the cell runs (Shift+Enter → 3 panels drawn), cold page, median of "
          f"{len(results['dash_render_all_ms'])} ({results['dash_render_all_ms']}) | {results['dash_render_cold_ms']} ms | ≤ 1500 ms |")
    print(f"| scrub-to-redraw: slider moved → every panel's highlight painted, median of {results['dash_scrub_moves']} moves "
          f"| {results['dash_scrub_median_ms']} ms | ≤ 50 ms |")
    print(f"| the same, 95th percentile / max | {results['dash_scrub_p95_ms']} / {results['dash_scrub_max_ms']} ms | – |")
    print(f"| JS work per move (the input handler: readout + 3 overlays moved) | {results['dash_scrub_handler_ms']} ms | – |")
    print(f"| saved standalone page (`save_html`, runtime + state inlined) | {results['dash_page_mb']} MB | ≤ 5 MB |")


def _load_average() -> str:
    """The 1/5/15-minute load averages (as `uptime` shows them): other work on a shared machine."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _restart_kernels(lab: Lab) -> None:
    import urllib.request

    for session in lab.api("/api/sessions"):
        req = urllib.request.Request(f"{lab.url}/api/sessions/{session['id']}?token={lab.token}", method="DELETE")
        urllib.request.urlopen(req, timeout=10)


def main() -> None:
    results = {"machine": f"{os.cpu_count()} cores", "load_average": _load_average(), **bench_bundle()}
    if "--notebook-only" in sys.argv:
        results |= bench_notebook_size(widgets=1) | bench_notebook_size(widgets=3)
        print(json.dumps(results, indent=2))
        return
    if "--dashboard-only" in sys.argv:
        from playwright.sync_api import sync_playwright

        (REPO / "test-artifacts").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as home:
            lab = Lab(Path(root), Path(home))
            lab.start()
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                    try:
                        results |= bench_dashboard(browser, lab)
                    finally:
                        browser.close()
            finally:
                lab.stop()
        results["load_average_after"] = _load_average()
        print(json.dumps(results, indent=2))
        print()
        print_dashboard_table(results)
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as home:
        lab = Lab(Path(root), Path(home))
        lab.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                try:
                    if "--stream-only" not in sys.argv:
                        results |= bench_render(browser, lab)
                    results |= bench_stream(browser, lab)
                finally:
                    browser.close()
        finally:
            lab.stop()
    results["load_average_after"] = _load_average()
    if "--stream-only" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    results |= bench_notebook_size(widgets=1) | bench_notebook_size(widgets=3)
    print(json.dumps(results, indent=2))
    print()
    print("| measure | value | budget |")
    print("|---|---|---|")
    print(f"| runtime index.js (views + plotly core and heatmap + CSS, minified, gzipped, base64) | "
          f"{results['bundle_mb']} MB | ≤ 800 KB |")
    print(f"| first render after the cell runs, cold page (median of 3) | {results['render_cold_ms']} ms | ≤ 1500 ms |")
    print(f"| render of a further widget in the same page (median of 3) | {results['render_warm_ms']} ms | – |")
    print(f"| executed sampler_tuning.ipynb (3 widgets) | {results['notebook_3w_mb']} MB | ≤ 1 MB |")
    print(f"| the same with 1 widget (the from_result cells dropped) | {results['notebook_1w_mb']} MB | – |")
    print(f"| live traces: frames drawn per second ({results['stream_chains']} chains, "
          f"{results['stream_draws_per_s']} draws/s, {results['push_hz']:g} Hz pushes) | {results['frames_per_s']} | ≥ 20 |")
    print(f"| mean time of one live trace redraw (canvas) | {results['live_redraw_ms']} ms | – |")
    print(f"| mean time of one plotly trace figure (the cold first draw and the final one) | {results['plotly_redraw_ms']} ms | – |")
    print(f"| Python pushes per second during the run | {results['python_pushes_per_s']} | 10–30 |")
    print(f"| last frame after the run ends | {results['final_frame_after_last_live_ms']} ms | – |")
    print(f"| kernel reply during the run (median / max) | {results['kernel_reply_ms_median']} / "
          f"{results['kernel_reply_ms_max']} ms | – |")


if __name__ == "__main__":
    main()
