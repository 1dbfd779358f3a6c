"""RefinedLLCWidget and HeadClusterWidget as a user drives them in JupyterLab + chromium: what Run runs, settings, ticks, colours, labels, layout."""

from __future__ import annotations

import json

from dvz_lab import ARTIFACTS, kernel_eval
from dvz_lab import open_and_run, q, switch_theme, to_dark_theme, wait_python, write_notebook
from test_linked_widgets_ui import HEADS, IMPORT_FAKES, REFINED

TRANSFORMER_CELL = """
import torch
torch.set_num_threads(1)
import devinterp_viz as dvz
from devinterp_viz.widgets.refined import RefinedLLCWidget
from devinterp_viz.zoo.languages import make_distribution
from devinterp_viz.zoo.transformer import AttentionOnlyTransformer, TransformerConfig, lm_loss
config = TransformerConfig(n_layers=1, n_heads=2, d_model=16, d_head=8, seq_len=16)
states = []
for step in (1, 10, 100, 1000):
    torch.manual_seed(step)
    states.append((step, AttentionOnlyTransformer(config).state_dict()))
w = RefinedLLCWidget(dvz.Trajectory(states), AttentionOnlyTransformer(config), make_distribution("full", 64, 16), lm_loss,
                     lr=1e-4, num_chains=2, num_draws=8, batch_size=32)
w
"""

HEADS_ZOO_CELL = IMPORT_FAKES + """
import numpy as np
from devinterp_viz.widgets.heads import HeadClusterWidget
from devinterp_viz.zoo.languages import make_distribution, token_text, token_texts
from tests.widget_fakes import synthetic_head_sweep
rng = np.random.default_rng(0)
probe = make_distribution("repeated", 1, 24)[0]  # random words: control characters among them
attention = np.tril(rng.random((8, 24, 24)))
attention /= attention.sum(-1, keepdims=True)
scores = {"previous_token": rng.random(8), "current_token": rng.random(8), "induction": rng.random(8)}
w = HeadClusterWidget(synthetic_head_sweep(16), scores=scores, attention=attention, tokens=probe, token_text=token_text,
                      selected_head="blocks.0.attn.head1")
w
"""

# every visible, non-empty text of a figure (tick labels, titles, annotations, colour-bar titles, legend)
TEXT_BOXES = """(root) => [...root.querySelectorAll('svg text')].filter((t) => t.textContent.trim())
    .map((t) => { const r = t.getBoundingClientRect(); return {text: t.textContent, x0: r.left, x1: r.right, y0: r.top, y1: r.bottom}; })
    .filter((b) => b.x1 - b.x0 > 0 && b.y1 - b.y0 > 0)"""


def shot(page, root: str, name: str) -> None:
    """A screenshot of the whole widget (scrolled into view) to test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(root).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def overlapping_texts(page, selector: str) -> list[tuple[str, str]]:
    """Pairs of text elements of the figure at ``selector`` whose bounding boxes overlap (by more than 1 px)."""
    boxes = page.eval_on_selector(selector, TEXT_BOXES)
    assert boxes, f"no text drawn in {selector}"
    return [(a["text"], b["text"]) for k, a in enumerate(boxes) for b in boxes[k + 1:]
            if min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > 1 and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > 1]


def controls_without_tooltip(page, root: str) -> list[str]:
    """Controls (inputs, selects, buttons, clickable rows and cells) with no tooltip on them or on their label."""
    return page.eval_on_selector(root, """(root) => [...root.querySelectorAll(
        'input, select, button, summary, [data-dvz-role=tree-toggle], [data-dvz-role=multiple], tr[data-head]')]
        .filter((e) => !(e.title || e.dataset.title || e.closest('label[title]')?.title))
        .map((e) => e.outerHTML.slice(0, 80))""")


def tick_texts(page, plot: str, axis: str = "x") -> list[str]:
    """The tick labels of every ``axis`` ("x" or "y") of a figure's subplots (not its colour bar)."""
    return page.eval_on_selector_all(f"{plot} .cartesianlayer .{axis}axislayer-above text", "(ts) => ts.map((t) => t.textContent)")


def test_run_runs_the_head_ticked_after_a_selection_exists_with_the_settings_typed(lab, page):
    page.set_viewport_size({"width": 1400, "height": 1500})  # the whole widget in view for its screenshots
    name = write_notebook(lab, "refined_heads_run.ipynb", TRANSFORMER_CELL)
    open_and_run(page, lab, name, REFINED)
    client = lab.kernel_client(name)
    try:
        for module in ("m:blocks", "m:blocks.0", "m:blocks.0.attn"):
            toggle = page.locator(f"{REFINED} [data-dvz-role='tree-toggle'][data-node='{module}']")
            if toggle.inner_text() == "▸":
                toggle.click()
        # tick head 0: the count and the preview of the tensors it moves (a quarter... of each of W_Q, W_K, W_V, W_O)
        page.click(f"{REFINED} [data-dvz-role='tree-check'][data-node='h:blocks.0.attn:0']")
        page.wait_for_function(f"{q(REFINED)}.dataset.numSelected === '512'")
        preview = page.eval_on_selector_all(f"{REFINED} [data-dvz-role='selection-preview'] li",
                                            "(rows) => rows.map((r) => [r.dataset.tensor, r.textContent])")
        expected = kernel_eval(client, "[[t['name'], t['selected'], t['numel']] for t in w.preview()['tensors']]")
        assert [tensor for tensor, _ in preview] == [row[0] for row in expected] == [
            f"blocks.0.attn.W_{m}" for m in "QKVO"]
        assert all(f"{selected} of {numel}" in text for (_, text), (_, selected, numel) in zip(preview, expected))
        # keep it as a named selection: the name box empties, the ticks clear
        page.fill(f"{REFINED} [data-dvz-role='selection-name']", "head zero")
        page.click(f"{REFINED} [data-dvz-role='add-selection']")
        page.wait_for_selector(f"{REFINED} [data-selection='head zero']")
        page.wait_for_function(f"{q(REFINED + ' [data-dvz-role=selection-name]')}.value === ''")
        assert wait_python(client, "w.checked", lambda v: v == []) == []
        # tick head 1: it is listed as what Run adds, and Run says it runs two selections
        page.click(f"{REFINED} [data-dvz-role='tree-check'][data-node='h:blocks.0.attn:1']")
        page.wait_for_selector(f"{REFINED} [data-dvz-role='pending-selection']")
        assert page.inner_text(f"{REFINED} [data-dvz-role='run']").strip() == "▶ Run 2 selections"
        # burn-in and batch size: shown (not folded away) and editable
        for role, value, trait in (("num-burnin-steps", "3", "num_burnin_steps"), ("batch-size", "16", "batch_size")):
            box = page.locator(f"{REFINED} [data-dvz-role='{role}']")
            assert box.is_visible() and box.is_editable(), role
            box.fill(value)
            box.press("Enter")
            assert wait_python(client, f"w.{trait}", lambda v, value=value: v == int(value)) == int(value)
        shot(page, REFINED, "refined-01-ticked-head-light")
        page.click(f"{REFINED} [data-dvz-role='run']")
        page.wait_for_selector(f"{REFINED}[data-status='done']", timeout=120_000)
        ran = kernel_eval(client, "[sorted(w.sweep.selections), sorted({(r.config['num_burnin_steps'], r.config['batch_size']) "
                                  "for r in w.sweep.results.values()})]")
        assert ran == [["blocks.0.attn.head1", "head zero"], [[3, 16]]]
        page.wait_for_function(f"{q(REFINED)}.dataset.dvzPoints === '8'")
        plot = f"{REFINED} [data-dvz-role='curves-plot']"
        assert tick_texts(page, plot) == ["1", "10", "100", "1000"]  # one label per decade, no "2 3 4 …"
        assert not overlapping_texts(page, plot)
        assert not controls_without_tooltip(page, REFINED)
        shot(page, REFINED, "refined-02-ran-light")
        to_dark_theme(page, REFINED)
        shot(page, REFINED, "refined-03-ran-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


def head_colours(page) -> dict[str, str]:
    """The colour of each head's cluster in the scores table (its swatch)."""
    return page.eval_on_selector_all(f"{HEADS} [data-dvz-role='scores'] tr[data-head]",
                                     "(rows) => Object.fromEntries(rows.map((r) => [r.dataset.head, r.querySelector('.dvz-swatch').style.background]))")


def clusters_of(client) -> dict[int, set[str]]:
    labels = kernel_eval(client, "dict(zip(w.heads, map(int, w.clustering.labels_)))")
    out: dict[int, set[str]] = {}
    for head, label in labels.items():
        out.setdefault(label, set()).add(head)
    return out


def test_heads_numbered_as_labels_keep_colours_and_read_cleanly_at_820_px(lab, page):
    page.set_viewport_size({"width": 820, "height": 3200})  # 820 px wide; tall enough for the whole widget's screenshots
    name = write_notebook(lab, "heads_zoo.ipynb", HEADS_ZOO_CELL)
    open_and_run(page, lab, name, HEADS)
    client = lab.kernel_client(name)
    try:
        page.wait_for_function(f"{q(HEADS + ' [data-dvz-role=attention-overview]')}._fullLayout !== undefined")
        # one numbering: the table's cluster numbers are HeadClustering.labels_
        labels = kernel_eval(client, "dict(zip(w.heads, map(int, w.clustering.labels_)))")
        shown = page.eval_on_selector_all(f"{HEADS} [data-dvz-role='scores'] tr[data-head]",
                                          "(rows) => Object.fromEntries(rows.map((r) => [r.dataset.head, r.querySelector('[data-dvz-role=cluster-cell]').textContent.trim()]))")
        assert shown == {head: str(label) for head, label in labels.items()}
        assert page.inner_text(f"{HEADS} [data-dvz-role='detail-title']").startswith(f"blocks.0.attn.head1 · cluster {labels['blocks.0.attn.head1']}")
        # the probe's tokens are printable labels of the zoo's vocabulary, on the detail and the overview
        tokens = kernel_eval(client, "token_texts(probe)")
        for plot in ("attention", "attention-overview"):
            for axis in ("x", "y"):
                texts = tick_texts(page, f"{HEADS} [data-dvz-role='{plot}']", axis)
                assert texts and set(texts) <= set(tokens) and all(t.isprintable() and t.strip() for t in texts), (plot, texts)
        assert "NUL" in tokens or any(len(t) > 1 for t in tokens)  # control characters were among them
        # colour-bar titles, axes and a key for the small multiples' line styles
        for plot in ("heatmap", "attention", "attention-overview"):
            assert page.eval_on_selector(f"{HEADS} [data-dvz-role='{plot}']", "(gd) => gd.querySelector('.cbtitle text')?.textContent || ''"), plot
        assert page.locator(f"{HEADS} [data-dvz-role='multiple-axes']").count() == 8
        key = page.eval_on_selector_all(f"{HEADS} [data-dvz-role='multiples-key-item']", "(items) => items.map((i) => [i.dataset.distribution, i.querySelector('line').getAttribute('stroke-dasharray')])")
        lines = page.eval_on_selector_all(f"{HEADS} [data-dvz-role='multiple'] polyline[data-distribution]", "(ls) => ls.map((l) => [l.dataset.distribution, l.getAttribute('stroke-dasharray') || ''])")
        assert len(key) == 2 and key[0][1] != key[1][1] and set(map(tuple, lines)) == set(map(tuple, key))
        # nothing overlaps: texts of every figure, and the dendrogram stays left of the row labels
        for plot in ("heatmap", "embedding", "attention", "head-curve", "attention-overview"):
            assert not overlapping_texts(page, f"{HEADS} [data-dvz-role='{plot}']"), plot
        dendrogram_right = page.eval_on_selector(f"{HEADS} [data-dvz-role='heatmap']", "(gd) => Math.max(...[...gd.querySelectorAll('.subplot.x2y .trace path')].map((p) => p.getBoundingClientRect().right))")
        labels_left = page.eval_on_selector(f"{HEADS} [data-dvz-role='heatmap']", "(gd) => Math.min(...[...gd.querySelectorAll('.ytick text')].map((t) => t.getBoundingClientRect().left))")
        assert dendrogram_right < labels_left, (dendrogram_right, labels_left)
        assert int(page.get_attribute(f"{HEADS} [data-dvz-role='embedding']", "data-labelled")) >= 4
        assert page.get_attribute(HEADS, "data-narrow") == "true"  # the notebook beside the file browser: one column
        assert not controls_without_tooltip(page, HEADS)
        shot(page, HEADS, "heads-01-820px-light")
        # recluster into 4: clusters that are the same heads as before keep their colour
        before, old = head_colours(page), clusters_of(client)
        page.select_option(f"{HEADS} [data-dvz-role='n-clusters']", "4")
        page.wait_for_function(f"{q(HEADS)}.dataset.clusters === '4'")
        after, new = head_colours(page), clusters_of(client)
        kept = [heads for heads in new.values() if heads in old.values()]
        assert kept, "no cluster survived the reclustering: the test needs another k"
        for heads in kept:
            assert {after[h] for h in heads} == {before[h] for h in heads}, heads
        assert len({after[next(iter(heads))] for heads in new.values()}) == 4  # still one colour per cluster
        # the overview: a click on a head's pattern selects it everywhere
        cell, other = kernel_eval(client, "next([k, w.heads[int(i)]] for k, i in enumerate(w.clustering.order_) if w.heads[int(i)] != w.selected_head)")
        subplot = "xy" if cell == 0 else f"x{cell + 1}y{cell + 1}"
        box = page.eval_on_selector(f"{HEADS} [data-dvz-role='attention-overview']",
                                    f"(gd) => {{ const r = gd.querySelector('.draglayer .{subplot} .nsewdrag').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }}")
        page.mouse.click(*box)
        assert wait_python(client, "w.selected_head", lambda v: v == other) == other
        page.wait_for_function(f"{q(HEADS)}.dataset.selected === {json.dumps(other)}")
        assert page.get_attribute(f"{HEADS} [data-dvz-role='attention']", "data-head") == other
        shot(page, HEADS, "heads-02-four-clusters-light")
        to_dark_theme(page, HEADS)
        for plot in ("heatmap", "embedding", "attention-overview"):
            assert not overlapping_texts(page, f"{HEADS} [data-dvz-role='{plot}']"), plot
        shot(page, HEADS, "heads-03-four-clusters-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


# Estimates put into the widget's results as a finished sweep would leave them (no sampling): per
# checkpoint a healthy positive one, one whose chains went below L(w*) (a negative estimate: no LLC),
# one with a diverging chain (unhealthy) and another healthy one.
REFINED_MARKS_CELL = TRANSFORMER_CELL.replace("\nw\n", "\n") + """
import numpy as np
from devinterp_viz.engine.results import LLCResult
rng = np.random.default_rng(0)
def estimate(level, diverge=False):
    trace = 1.0 + level / 10.0 + 0.01 * rng.standard_normal((2, 40))
    if diverge:
        trace[0, 20:] = np.inf
    return LLCResult.from_traces(trace, 1.0, 10.0, config={"lr": 1e-4})
name = w.add_selection("head 0", ["h:blocks.0.attn:0"])
for k, result in enumerate([estimate(2.0), estimate(-1.0), estimate(4.0, diverge=True), estimate(6.0)]):
    w.results[(name, "data", k)] = result
w._push_curves()
w
"""


def test_refined_curves_draw_se_bars_and_never_normalise_a_negative_estimate(lab, page):
    page.set_viewport_size({"width": 1400, "height": 1500})
    name = write_notebook(lab, "refined_marks.ipynb", REFINED_MARKS_CELL)
    open_and_run(page, lab, name, REFINED)
    client = lab.kernel_client(name)
    plot = f"{REFINED} [data-dvz-role='curves-plot']"
    try:
        assert kernel_eval(client, "[w.results[('head 0', 'data', k)].diagnostics.status for k in range(4)]") == [
            "healthy", "undefined", "unhealthy", "healthy"]
        page.wait_for_function(f"{q(REFINED)}.dataset.dvzPoints === '3'")  # the undefined estimate is no point
        assert page.get_attribute(REFINED, "data-dvz-undefined") == "1"
        assert page.get_attribute(REFINED, "data-dvz-unhealthy") == "1"
        se = kernel_eval(client, "[float(w.results[('head 0', 'data', k)].llc_se) for k in range(4)]")
        bars = page.evaluate(f"Array.from({q(plot)}.data[0].error_y.array)")
        assert all(abs(a - b) <= 1e-5 * abs(b) for a, b in zip(bars, se)), (bars, se)
        note = page.inner_text(f"{REFINED} [data-dvz-role='curves-note']")
        assert "± one standard error (SE)" in note and "✕ unhealthy estimate" in note and "grey tick: no LLC" in note
        assert "w.results[(selection, distribution, checkpoint index)]" in note
        heading = page.inner_text(f"{REFINED} .dvz-refined-side").split("\n")
        assert "Selections to sweep" in heading and not any("Selections Run sweeps" in line for line in heading)
        assert "then clears the ticks" in page.inner_text(f"{REFINED} [data-dvz-role='selections-hint']")
        legend = page.eval_on_selector_all(f"{plot} .legend .traces text", "(ts) => ts.map((t) => t.textContent)")
        assert "✕ unhealthy estimate" in legend and any(t.startswith("grey tick: no LLC") for t in legend), legend
        shot(page, REFINED, "refined-04-marks-light")
        # normalised: every drawn value in (0, 1], the largest positive estimate at 1
        page.click(f"{REFINED} [data-dvz-role='normalize']")
        assert wait_python(client, "w.normalize", bool) is True
        page.wait_for_function(f"{q(plot)}.layout.yaxis.title.text.startsWith('LLC ÷ curve')")
        y = page.evaluate(f"Array.from({q(plot)}.data[0].y).filter(Number.isFinite)")
        assert len(y) == 3 and max(y) == 1.0 and min(y) > 0, y
        assert not overlapping_texts(page, plot)
        shot(page, REFINED, "refined-05-marks-normalised-light")
        to_dark_theme(page, REFINED)
        shot(page, REFINED, "refined-06-marks-normalised-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


def marker_boxes(page, plot: str) -> list[dict]:
    """Page boxes of the points of a figure's first trace."""
    return page.eval_on_selector(plot, """(gd) => Array.from(gd.querySelector('.scatterlayer .trace').querySelectorAll('.points path'),
        (p) => { const r = p.getBoundingClientRect(); return {x0: r.left, x1: r.right, y0: r.top, y1: r.bottom}; })""")


# The zoo cell with two of head 1's estimates replaced: a diverging chain (unhealthy) at checkpoint 3
# and chains below L(w*) (no LLC) at checkpoint 5, both under "full".
HEADS_VERDICT_CELL = HEADS_ZOO_CELL.replace("w = HeadClusterWidget(synthetic_head_sweep(16),", """sweep = synthetic_head_sweep(16)
from devinterp_viz.engine.results import LLCResult
diverged = 1.05 + 0.01 * rng.standard_normal((4, 40))
diverged[0, 20:] = np.inf
sweep.results[("blocks.0.attn.head1", "full", 3)] = LLCResult.from_traces(diverged, 1.0, 10.0, config={"lr": 1e-3})
sweep.results[("blocks.0.attn.head1", "full", 5)] = LLCResult.from_traces(0.9 + 0.001 * rng.standard_normal((4, 40)), 1.0, 10.0, config={"lr": 1e-3})
w = HeadClusterWidget(sweep,""")


def test_heads_raw_switch_changes_the_thumbnails_points_never_hide_each_other_and_heatmap_ticks_are_regular(lab, page):
    page.set_viewport_size({"width": 1400, "height": 2400})
    name = write_notebook(lab, "heads_marks.ipynb", HEADS_VERDICT_CELL)
    open_and_run(page, lab, name, HEADS)
    client = lab.kernel_client(name)
    emb = f"{HEADS} [data-dvz-role='embedding']"
    try:
        page.wait_for_function(f"{q(emb)}._fullLayout !== undefined")
        # the marks of every view: the selected head's curve crosses its unhealthy estimate, ticks its undefined one
        assert kernel_eval(client, "[sweep.results[('blocks.0.attn.head1', 'full', k)].diagnostics.status for k in (3, 5)]") == ["unhealthy", "undefined"]
        curve = f"{HEADS} [data-dvz-role='head-curve']"
        page.wait_for_function(f"{q(curve)}.dataset.undefined === '1'")
        assert page.get_attribute(curve, "data-unhealthy") == "1"
        drawn = page.evaluate(f"Array.from({q(curve)}.data[0].y, Number.isFinite)")
        assert len(drawn) == kernel_eval(client, "len(sweep.steps)") and drawn == [k != 5 for k in range(len(drawn))], drawn  # "full": no point where there is no LLC
        legend = page.eval_on_selector_all(f"{curve} .legend .traces text", "(ts) => ts.map((t) => t.textContent)")
        assert "✕ unhealthy estimate" in legend and "grey tick: no LLC (undefined: w* is not a local minimum)" in legend, legend
        thumb = f"{HEADS} [data-dvz-role='multiple'][data-head='blocks.0.attn.head1']"
        assert page.inner_text(f"{thumb} [data-dvz-role='unhealthy-count']") == "✕1"
        assert page.inner_text(f"{thumb} [data-dvz-role='undefined-count']") == "|1"
        assert page.locator(f"{HEADS} [data-dvz-role='unhealthy-count']").count() == 1
        for k in ("2", "3", "4"):
            page.select_option(f"{HEADS} [data-dvz-role='n-clusters']", k)
            page.wait_for_function(f"{q(HEADS)}.dataset.clusters === '{k}'")
            boxes = marker_boxes(page, emb)
            assert len(boxes) == 8
            hidden = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                      if min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > 2 and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > 2]
            assert not hidden, (k, hidden)
            assert not overlapping_texts(page, emb), k
        assert "hover or click a point" in page.inner_text(f"{HEADS} [data-dvz-role='embedding-note']")
        # the heatmap: column ticks are checkpoint steps, the same ones in each distribution's block
        ticks = json.loads(page.get_attribute(f"{HEADS} [data-dvz-role='heatmap']", "data-ticks"))
        steps = [str(int(s)) for s in kernel_eval(client, "[int(s) for s in w.sweep.steps]")]
        blocks = [ticks[: len(ticks) // 2], ticks[len(ticks) // 2:]]
        plain = [[t.split("<br>")[-1] for t in block] for block in blocks]
        assert plain[0] == plain[1] and set(plain[0]) <= set(steps), ticks
        assert blocks[0][0] == f"full<br>{steps[0]}" and blocks[1][0] == f"code<br>{steps[0]}"
        assert not any("step" in t or "data" in t for t in ticks)
        # raw refined LLCs: the thumbnails (one y scale for all heads) and their caption change
        lines = f"[...{q(HEADS)}.querySelectorAll('[data-dvz-role=multiple] polyline[data-distribution]')].map((l) => l.getAttribute('points'))"
        before, key_before = page.evaluate(lines), page.inner_text(f"{HEADS} [data-dvz-role='multiples-key']")
        page.select_option(f"{HEADS} [data-dvz-role='normalize']", "none")
        assert wait_python(client, "w.signatures.normalize is None", lambda v: v is True)
        page.wait_for_function(f"!{q(HEADS + ' [data-dvz-role=multiples-key]')}.textContent.includes('÷ max')")
        after, key_after = page.evaluate(lines), page.inner_text(f"{HEADS} [data-dvz-role='multiples-key']")
        assert "rLLC ÷ max, one scale for every head" in key_before
        assert "refined LLC, one scale for every head" in key_after and key_after != key_before
        changed = sum(a != b for a, b in zip(before, after))
        assert changed >= len(before) // 2, f"only {changed} of {len(before)} thumbnails changed"
        lo, hi = json.loads(page.get_attribute(f"{HEADS} [data-dvz-role='multiples']", "data-y-range"))
        raw = kernel_eval(client, "[float(np.nanmin(w.signatures.signatures_)), float(np.nanmax(w.signatures.signatures_))]")
        assert abs(lo - raw[0]) <= 1e-4 * abs(raw[0]) + 1e-6 and abs(hi - raw[1]) <= 1e-4 * abs(raw[1]), (lo, hi, raw)
        shot(page, HEADS, "heads-04-raw-thumbnails-light")
        to_dark_theme(page, HEADS)
        shot(page, HEADS, "heads-05-raw-thumbnails-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


# twelve selections with the names a notebook gives them: the legend must stay readable in full
REFINED_MANY_CELL = REFINED_MARKS_CELL.replace("""name = w.add_selection("head 0", ["h:blocks.0.attn:0"])
for k, result in enumerate([estimate(2.0), estimate(-1.0), estimate(4.0, diverge=True), estimate(6.0)]):
    w.results[(name, "data", k)] = result""", """for s in range(12):
    name = w.add_selection(f"layer 0 head {s % 2} variant {s}", ["h:blocks.0.attn:%d" % (s % 2)])
    for k in range(4):
        w.results[(name, "data", k)] = estimate(2.0 + s / 3 + k, diverge=(s == 0 and k == 2))""")


def test_refined_legend_of_many_selections_is_drawn_whole_outside_the_plot_and_never_scrolls(lab, page):
    page.set_viewport_size({"width": 1400, "height": 1500})
    name = write_notebook(lab, "refined_many.ipynb", REFINED_MANY_CELL)
    open_and_run(page, lab, name, REFINED)
    client = lab.kernel_client(name)
    plot = f"{REFINED} [data-dvz-role='curves-plot']"
    try:
        page.wait_for_function(f"{q(REFINED)}.dataset.dvzCurves === '12'")
        boxes = page.evaluate(f"""(() => {{ const gd = {q(plot)}; const fl = gd._fullLayout; const b = gd.getBoundingClientRect();
            const area = {{top: b.top + fl._size.t, bottom: b.top + fl._size.t + fl._size.h}};
            const items = [...gd.querySelectorAll('.legend .traces')].map((t) => t.getBoundingClientRect())
                .map((r) => ({{left: r.left, right: r.right, top: r.top, bottom: r.bottom}}));
            const bar = gd.querySelector('.legend .scrollbar');
            return {{figure: {{left: b.left, right: b.right, top: b.top, bottom: b.bottom}}, area, items,
                     scrollbar: bar ? bar.getBoundingClientRect().height : 0}}; }})()""")
        names = page.eval_on_selector_all(f"{plot} .legend .traces text", "(ts) => ts.map((t) => t.textContent)")
        assert sum(n.startswith("layer 0 head") for n in names) == 12, names
        fig, area = boxes["figure"], boxes["area"]
        for item in boxes["items"]:  # inside the figure, below the plot area: none cut off, none over a curve
            assert fig["left"] - 0.5 <= item["left"] and item["right"] <= fig["right"] + 0.5, (item, fig)
            assert item["bottom"] <= fig["bottom"] + 0.5 and item["top"] >= area["bottom"], (item, area, fig)
        assert boxes["scrollbar"] == 0  # a legend that fits needs no scroll box
        assert not overlapping_texts(page, plot)
        shot(page, REFINED, "refined-07-many-selections-light")
        to_dark_theme(page, REFINED)
        shot(page, REFINED, "refined-08-many-selections-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


def test_a_chosen_cluster_count_survives_switching_the_curves_raw_then_max_then_raw(lab, page):
    # the notebook's path: a widget built from a head sweep (so "curves" reclusters), k chosen, then the curves switched
    page.set_viewport_size({"width": 1400, "height": 2000})
    name = write_notebook(lab, "heads_curves.ipynb", HEADS_ZOO_CELL)
    open_and_run(page, lab, name, HEADS)
    client = lab.kernel_client(name)
    try:
        assert kernel_eval(client, "w.can_renormalize") is True
        page.select_option(f"{HEADS} [data-dvz-role='n-clusters']", "3")
        page.wait_for_function(f"{q(HEADS)}.dataset.clusters === '3'")
        assert wait_python(client, "w.n_clusters", lambda v: v == 3) == 3
        shot(page, HEADS, "heads-curves-k3-light")
        for mode, fitted in (("none", "None"), ("max", "'max'"), ("none", "None")):
            page.select_option(f"{HEADS} [data-dvz-role='normalize']", mode)
            assert wait_python(client, f"repr(w.signatures.normalize) == {fitted!r}", bool) is True
            page.wait_for_function(f"{q(HEADS + ' [data-dvz-role=normalize]')}.value === '{mode}' && {q(HEADS)}.dataset.clusters === '3'")
            assert kernel_eval(client, "[w.n_clusters, int(w.clustering.n_clusters_)]") == [3, 3], mode
            assert page.input_value(f"{HEADS} [data-dvz-role='n-clusters']") == "3", mode
            # the drawn colours: one per cluster Python found, each head's swatch its cluster's colour
            colours = head_colours(page)
            clusters = clusters_of(client)
            assert len(set(colours.values())) == 3, (mode, colours)
            assert all(len({colours[h] for h in heads}) == 1 for heads in clusters.values()), (mode, colours, clusters)
        shot(page, HEADS, "heads-curves-raw-max-raw-light")
        to_dark_theme(page, HEADS)
        shot(page, HEADS, "heads-curves-raw-max-raw-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")
