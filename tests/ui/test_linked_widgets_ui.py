"""DevelopmentDashboard, RefinedLLCWidget and HeadClusterWidget in a real JupyterLab + chromium."""

from __future__ import annotations

import json
from pathlib import Path


from dvz_lab import ARTIFACTS, kernel_eval, open_and_run, plot_background_luminance, q, switch_theme, wait_python, write_notebook  # noqa: F401 - re-exported to the other browser tests

DASH = '[data-dvz-widget="DevelopmentDashboard"] .dvz-dashboard'
REFINED = '[data-dvz-widget="RefinedLLCWidget"] .dvz-refined'
HEADS = '[data-dvz-widget="HeadClusterWidget"] .dvz-heads'
REPO = Path(__file__).resolve().parents[2]
IMPORT_FAKES = f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"  # the kernel finds tests/widget_fakes.py

DASHBOARD_CELL = IMPORT_FAKES + """
import numpy as np
from devinterp_viz.analysis.essential_dynamics import essential_dynamics
from devinterp_viz.widgets.dashboard import DevelopmentDashboard
from tests.widget_fakes import synthetic_sweep
sweep = synthetic_sweep(60, unhealthy=(4,))
t = np.linspace(0, 1, 60)
outputs = np.stack([np.cos(3 * t), np.sin(3 * t), t ** 2], 1) @ np.random.default_rng(0).standard_normal((3, 20))
ed = essential_dynamics(outputs, steps=sweep.steps, n_components=3, progress=False)
d = DevelopmentDashboard(sweep=sweep, dynamics=ed, losses={"train": 0.3 * np.exp(-t * 3) + 0.05})
d
"""

REFINED_CELL = """
import torch
torch.set_num_threads(1)
import devinterp_viz as dvz
from devinterp_viz.widgets.refined import RefinedLLCWidget
from devinterp_viz.zoo.tms import ToyModelOfSuperposition, tms_data, tms_loss, train_tms
trajectory = dvz.Trajectory(train_tms(steps=300, num_checkpoints=6))
w = RefinedLLCWidget(trajectory, ToyModelOfSuperposition(6, 2), tms_data(6, 256, 8), tms_loss,
                     lr=1e-3, nbeta=30.0, num_chains=2, num_draws=400, batch_size=256)
w
"""

HEADS_CELL = IMPORT_FAKES + """
import numpy as np
from devinterp_viz.widgets.heads import HeadClusterWidget
from tests.widget_fakes import synthetic_head_sweep
rng = np.random.default_rng(0)
attention = np.tril(rng.random((8, 12, 12)))
attention /= attention.sum(-1, keepdims=True)
scores = {"previous_token": rng.random(8), "current_token": rng.random(8), "induction": rng.random(8)}
w = HeadClusterWidget(synthetic_head_sweep(16), scores=scores, attention=attention, tokens=list("the cat sat."))
w
"""








def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))




def highlighted(page, role_prefix: str = "cursor") -> dict:
    """Which checkpoint each panel's highlight shows (and whether it is visible)."""
    return page.evaluate(
        f"""Object.fromEntries([...document.querySelectorAll({json.dumps(DASH + f" [data-dvz-role^='{role_prefix}-']")})]
            .map((e) => [e.dataset.dvzRole, e.hidden ? null : Number(e.dataset.checkpoint)]))"""
    )


def point_on(page, plot: str, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of data point (x, y) of a plotly figure."""
    return page.evaluate(
        f"""(() => {{ const gd = {q(plot)}; const fl = gd._fullLayout; const box = gd.getBoundingClientRect();
            return [box.left + fl.xaxis._offset + fl.xaxis.c2p({x}), box.top + fl.yaxis._offset + fl.yaxis.c2p({y})]; }})()"""
    )




def test_dashboard_scrubbed_by_slider_keyboard_and_hover_moves_every_panel_and_the_trait(lab, page):
    name = write_notebook(lab, "dashboard.ipynb", DASHBOARD_CELL)
    open_and_run(page, lab, name, DASH)
    client = lab.kernel_client(name)
    try:
        page.wait_for_function(f"{q(DASH + ' [data-dvz-role=ed-plot]')}._fullLayout !== undefined")
        assert highlighted(page) == {"cursor-loss": 0, "cursor-llc": 0, "cursor-ed": 0}
        assert page.get_attribute(f"{DASH} [data-dvz-role='llc-plot']", "data-stages") == "3"  # shaded stages
        assert page.get_attribute(f"{DASH} [data-dvz-role='llc-plot']", "data-unhealthy") == "1"
        shot(page, "dashboard-01-rendered")

        # --- the slider: a click on its track moves every panel's highlight, then Python's trait
        slider = page.locator(f"{DASH} [data-dvz-role='scrubber']")
        box = slider.bounding_box()
        slider.click(position={"x": box["width"] * 0.5, "y": box["height"] / 2})
        index = int(page.get_attribute(DASH, "data-checkpoint"))
        assert 20 < index < 40
        assert highlighted(page) == {"cursor-loss": index, "cursor-llc": index, "cursor-ed": index}
        assert wait_python(client, "d.checkpoint", lambda v: v == index) == index
        assert f"step {kernel_eval(client, 'd.step')}" in page.inner_text(f"{DASH} [data-dvz-role='readout']")
        shot(page, "dashboard-02-slider")

        # --- the keyboard: arrows (and shift+arrow = 10) on the focused dashboard
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Shift+ArrowRight")
        assert highlighted(page) == {"cursor-loss": index + 12, "cursor-llc": index + 12, "cursor-ed": index + 12}
        assert wait_python(client, "d.checkpoint", lambda v: v == index + 12) == index + 12
        page.keyboard.press("Home")
        assert wait_python(client, "d.checkpoint", lambda v: v == 0) == 0

        # --- hover a point of the essential-dynamics panel: the same checkpoint lights up everywhere
        xy = page.evaluate(f"(() => {{ const t = {q(DASH + ' [data-dvz-role=ed-plot]')}.data.find((d) => d.name === 'trajectory'); return [t.x[45], t.y[45]]; }})()")
        page.mouse.move(*point_on(page, f"{DASH} [data-dvz-role='ed-plot']", *xy))
        page.wait_for_function(f"{q(DASH)}.dataset.hover === '45'")
        assert highlighted(page, "hover") == {"hover-loss": 45, "hover-llc": 45, "hover-ed": 45}
        shot(page, "dashboard-03-hover")

        # --- Python sets the checkpoint: the browser follows
        kernel_eval(client, "d.select(step=int(d.steps[17])) and None")
        page.wait_for_function(f"{q(DASH)}.dataset.checkpoint === '17'")
        assert highlighted(page)["cursor-ed"] == 17

        # --- dark theme
        switch_theme(page, "JupyterLab Dark")
        page.wait_for_selector(f"{DASH}[data-dvz-theme='dark']", timeout=30_000)
        page.wait_for_function(
            f"{plot_background_luminance(DASH + ' [data-dvz-role=llc-plot]')} < 0.3",
            timeout=30_000,
        )
        shot(page, "dashboard-04-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


def test_refined_selection_in_the_tree_runs_a_sweep_that_streams_curves(lab, page):
    name = write_notebook(lab, "refined.ipynb", REFINED_CELL)
    open_and_run(page, lab, name, REFINED)
    client = lab.kernel_client(name)
    try:
        page.click(f"{REFINED} [data-dvz-role='tree-check'][data-node='p:W']")
        page.wait_for_function(f"{q(REFINED)}.dataset.numSelected === '12'")
        assert kernel_eval(client, "w.checked") == ["p:W"]
        page.fill(f"{REFINED} [data-dvz-role='selection-name']", "encoder W")
        page.click(f"{REFINED} [data-dvz-role='add-selection']")
        page.wait_for_selector(f"{REFINED} [data-selection='encoder W']")
        page.evaluate(f"""window.__points = []; window.__timer = setInterval(() =>
            window.__points.push(Number({q(REFINED)}.dataset.dvzEstimates || 0)), 20);""")
        page.click(f"{REFINED} [data-dvz-role='run']")
        page.wait_for_selector(f"{REFINED}[data-status='done']", timeout=120_000)
        page.wait_for_function(f"{q(REFINED)}.dataset.dvzEstimates === '6'")  # points, or marks where there is no LLC
        points = page.evaluate("clearInterval(window.__timer), window.__points")
        streamed = sorted(set(points) - {0, 6})
        assert streamed, f"the curve appeared all at once: {sorted(set(points))}"
        assert kernel_eval(client, "[w.curves['done'], w.curves['total'], w.curves['selections']]") == [6, 6, ["encoder W"]]
        assert page.locator(f"{REFINED} [data-dvz-role='curves-plot'] .scatterlayer .trace").count() >= 2
        page.click(f"{REFINED} [data-dvz-role='normalize']")
        assert wait_python(client, "w.normalize", bool) is True
        shot(page, "refined-01-streamed")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


def test_clicking_a_head_anywhere_selects_it_in_every_view(lab, page):
    name = write_notebook(lab, "heads.ipynb", HEADS_CELL)
    open_and_run(page, lab, name, HEADS)
    client = lab.kernel_client(name)

    def selected_everywhere(head: str) -> None:
        page.wait_for_function(f"{q(HEADS)}.dataset.selected === {json.dumps(head)}")
        assert page.get_attribute(f"{HEADS} [data-dvz-role='multiple'][data-selected='true']", "data-head") == head
        assert page.get_attribute(f"{HEADS} [data-dvz-role='scores'] tr[data-selected='true']", "data-head") == head
        for role in ("heatmap", "embedding"):
            assert page.get_attribute(f"{HEADS} [data-dvz-role='{role}']", "data-selected") == head
        for role in ("head-curve", "attention"):
            assert page.get_attribute(f"{HEADS} [data-dvz-role='{role}']", "data-head") == head
        assert page.inner_text(f"{HEADS} [data-dvz-role='detail-title']").startswith(head)
        assert wait_python(client, "w.selected_head", lambda v: v == head) == head

    try:
        page.wait_for_function(f"{q(HEADS + ' [data-dvz-role=embedding]')}._fullLayout !== undefined")
        # the embedding: click head 5's point
        xy = page.evaluate(f"(() => {{ const t = {q(HEADS + ' [data-dvz-role=embedding]')}.data[0]; return [t.x[5], t.y[5]]; }})()")
        page.mouse.click(*point_on(page, f"{HEADS} [data-dvz-role='embedding']", *xy))
        selected_everywhere("blocks.1.attn.head1")
        shot(page, "heads-01-embedding-click")
        # the heatmap: click the first row (the first head in dendrogram order)
        first = kernel_eval(client, "w.heads[int(w.clustering.order_[0])]")
        page.mouse.click(*point_on(page, f"{HEADS} [data-dvz-role='heatmap']", 3, 0))
        selected_everywhere(first)
        # a small multiple, then a row of the scores table
        page.click(f"{HEADS} [data-dvz-role='multiple'][data-head='blocks.0.attn.head2']")
        selected_everywhere("blocks.0.attn.head2")
        page.click(f"{HEADS} [data-dvz-role='scores'] tr[data-head='blocks.1.attn.head3']")
        selected_everywhere("blocks.1.attn.head3")
        # the number of clusters reclusters in Python
        page.select_option(f"{HEADS} [data-dvz-role='n-clusters']", "2")
        page.wait_for_function(f"{q(HEADS)}.dataset.clusters === '2'")
        assert kernel_eval(client, "w.clustering.n_clusters_") == 2
        shot(page, "heads-02-two-clusters")
        # raw curves instead of max-normalised ones: Python refits the signatures, the heatmap
        # shows refined LLCs above 1 (max-normalised rows never exceed 1)
        heatmap_max = f"Math.max(...{q(HEADS + ' [data-dvz-role=heatmap]')}.data[0].z.flat().filter((v) => v !== null))"
        assert page.evaluate(heatmap_max) <= 1.0 + 1e-6
        page.select_option(f"{HEADS} [data-dvz-role='normalize']", "none")
        assert wait_python(client, "w.signatures.normalize is None", lambda v: v is True)
        page.wait_for_function(f"{heatmap_max} > 1.01")
        shot(page, "heads-03-raw-curves")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


def test_saved_dashboard_page_scrubs_offline(browser, tmp_path):
    import numpy as np

    from devinterp_viz.widgets.dashboard import DevelopmentDashboard
    from tests.widget_fakes import synthetic_sweep

    sweep = synthetic_sweep(50)
    path = DevelopmentDashboard(sweep=sweep, losses=np.linspace(1, 0, 50)).save_html(tmp_path / "dash.html")
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(f"{DASH}[data-dvz-ready='1']", timeout=30_000)
        page.focus(DASH)
        page.keyboard.press("End")
        assert highlighted(page) == {"cursor-loss": 49, "cursor-llc": 49, "cursor-ed": None}
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-05-saved-html.png"))
    finally:
        context.close()
