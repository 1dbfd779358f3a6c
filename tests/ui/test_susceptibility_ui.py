"""SusceptibilityExplorer in a real JupyterLab + chromium: response cells, token text, lasso, influences, themes, offline page."""

from __future__ import annotations

import json

from dvz_lab import open_and_run, plot_background_luminance, q, switch_theme, wait_python, write_notebook
from test_linked_widgets_ui import point_on

from dvz_lab import ARTIFACTS, kernel_eval

ROOT = '[data-dvz-widget="SusceptibilityExplorer"] .dvz-suscept'

# a next-token model on a five-word language: per-token losses under the embedding and the unembedding
CELL = """
import numpy as np
import torch
import torch.nn.functional as F
torch.set_num_threads(1)
import devinterp_viz as dvz
WORDS = ["the", "cat", "sat", "on", "mat"]
sequences = torch.tensor([[0, 1, 2, 3, 0, 4, 0, 1, 2]] * 4)  # "the cat sat on the mat the cat sat"
sequences[2:, 5] = 1  # ... "on the cat" in the last two
inputs, targets = sequences[:, :-1], sequences[:, 1:]
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5))
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for _ in range(150):
    optimizer.zero_grad()
    F.cross_entropy(model(inputs).transpose(1, 2), targets).backward()
    optimizer.step()
def per_token(m, batch):
    return F.cross_entropy(m(batch[0]).transpose(1, 2), batch[1], reduction="none")
results = dvz.estimate_llc_selections(
    model, (inputs, targets), lambda m, b: per_token(m, b).mean(), {"embedding": "0.*", "unembedding": "1.*"},
    observables={"text": (inputs, targets), "first two": (inputs[:2], targets[:2]), "last two": (inputs[2:], targets[2:])},
    per_sample_loss=per_token, lr=1e-3, nbeta=20.0, num_chains=3, num_draws=150, batch_size=4, seed=0, progress=False)
w = dvz.SusceptibilityExplorer(results, observable="text", tokens=inputs, vocabulary=WORDS, classes=np.array(WORDS)[targets],
                               embedding="pca", selected_token=-1)
w
"""


def widget_shot(page, name: str) -> None:
    """The whole widget (it is taller than the window), scrolled into view."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(ROOT).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def token_colors(page) -> list[str]:
    return page.evaluate(f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-dvz-role=token]')})].map((e) => e.style.background)")


def test_a_response_cell_picks_the_component_whose_tokens_the_text_shows_and_the_lasso_reaches_python(lab, page):
    name = write_notebook(lab, "susceptibility.ipynb", CELL)
    open_and_run(page, lab, name, ROOT)
    client = lab.kernel_client(name)
    try:
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=embedding]')}._fullLayout !== undefined")
        assert page.locator(f"{ROOT} [data-dvz-role='token']").count() == 32
        assert page.inner_text(f"{ROOT} [data-dvz-role='token'][data-index='1']") == "cat"
        assert page.locator(f"{ROOT} .dvz-suscept-line").count() == 4  # one line per sequence
        assert page.get_attribute(f"{ROOT} [data-dvz-role='text']", "data-component") == "embedding"
        # the response matrix's hover text: χ ± its standard error, as Python computed them
        hover = page.evaluate(f"{q(ROOT + ' [data-dvz-role=response]')}.data[0].text[1][2]")
        chi, se = kernel_eval(client, "[float(w.response.value[0, 1, 2]), float(w.response.stderr[0, 1, 2])]")
        assert hover.startswith("unembedding · last two") and "±" in hover
        assert abs(float(hover.split("χ = ")[1].split(" ±")[0]) - chi) <= 0.01 * abs(chi)
        assert abs(float(hover.split("± ")[1]) - se) <= 0.05 * se  # two digits
        before = token_colors(page)
        widget_shot(page, "susceptibility-01-light")

        # --- a click on the unembedding row of the response matrix: the text shows that component's χ
        page.mouse.click(*point_on(page, f"{ROOT} [data-dvz-role='response']", 1, 1))
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=text]')}.dataset.component === 'unembedding'")
        assert wait_python(client, "w.selected_component", lambda v: v == "unembedding") == "unembedding"
        expected = kernel_eval(client, "[float(v) for v in w.token_values()[0]]")
        shown = page.evaluate(f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-dvz-role=token]')})].map((e) => Number(e.dataset.value))")
        assert max(abs(a - b) for a, b in zip(shown, expected)) <= 1e-5 * max(map(abs, expected))
        assert token_colors(page) != before
        assert "unembedding" in page.inner_text(f"{ROOT} [data-dvz-role='text-title']")

        # --- a real lasso over the points left of the widest gap between their x: their indices reach Python
        embedding = f"{ROOT} [data-dvz-role='embedding']"
        page.locator(embedding).scroll_into_view_if_needed()
        gd = q(embedding)
        xs = sorted(set(page.evaluate(f"{gd}.data.flatMap((t) => t.name === 'selected' ? [] : t.x)")))
        gap = max(range(len(xs) - 1), key=lambda k: xs[k + 1] - xs[k])
        middle = (xs[gap] + xs[gap + 1]) / 2
        area = page.evaluate(f"""(() => {{ const gd = {gd}; const fl = gd._fullLayout; const box = gd.getBoundingClientRect();
            return [box.left + fl.xaxis._offset + 3, box.top + fl.yaxis._offset + 3, box.top + fl.yaxis._offset + fl.yaxis._length - 3,
                    box.left + fl.xaxis._offset + fl.xaxis.c2p({middle})]; }})()""")
        left, top, bottom, right = area
        corners = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top + 1)]
        page.mouse.move(*corners[0])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(corners, corners[1:]):
            for k in range(1, 9):
                page.mouse.move(x0 + (x1 - x0) * k / 8, y0 + (y1 - y0) * k / 8)
        page.mouse.up()
        inside = page.evaluate(f"{gd}.data.flatMap((t) => t.name === 'selected' ? [] : t.customdata.filter((_, k) => t.x[k] < {middle}))")
        assert inside, "no point left of the middle"
        picked = wait_python(client, "w.selected_tokens", lambda v: len(v) > 0)
        assert sorted(set(inside)) == picked, (inside, picked)
        assert page.locator(f"{ROOT} [data-dvz-role='token'][data-picked='true']").count() == len(picked)
        widget_shot(page, "susceptibility-02-lasso")
        # ... and Python's picks reach the browser: the text underlines them, the embedding highlights them
        kernel_eval(client, "setattr(w, 'selected_tokens', [0, 9]) or None")
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=embedding]')}.dataset.picked === '2'")
        assert page.evaluate(f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-picked=true]')})].map((e) => Number(e.dataset.index))") == [0, 9]

        # --- a click on a token lists its top influences (the BIF row Python computed) and colours the text by it
        page.click(f"{ROOT} [data-dvz-role='token'][data-index='5']")
        assert wait_python(client, "w.selected_token", lambda v: v == 5) == 5
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=influences]')}.dataset.token === '5'")
        first = int(page.get_attribute(f"{ROOT} [data-dvz-role='influences'] tbody tr", "data-index"))
        assert first == kernel_eval(client, "int(w.detail['top_index'][5][0])")
        page.select_option(f"{ROOT} [data-dvz-role='text-values']", "influence")
        assert wait_python(client, "w.text_values", lambda v: v == "influence") == "influence"
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=text]')}.dataset.mode === 'influence'")
        expected = kernel_eval(client, "[float(v) for v in w.token_values()[0]]")
        shown = page.evaluate(f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-dvz-role=token]')})].map((e) => Number(e.dataset.value))")
        assert max(abs(a - b) for a, b in zip(shown, expected)) <= 1e-5 * max(map(abs, expected))
        assert page.evaluate(f"{q(ROOT + ' [data-dvz-role=kernel]')}.data[0].z.length") == 32
        widget_shot(page, "susceptibility-03-influence")
        # a row of the influence table, then a row of the clustered kernel, select that token
        page.click(f"{ROOT} [data-dvz-role='influences'] tbody tr[data-index='{first}']")
        assert wait_python(client, "w.selected_token", lambda v: v == first) == first
        kernel = f"{ROOT} [data-dvz-role='kernel']"
        page.locator(kernel).scroll_into_view_if_needed()
        row = kernel_eval(client, f"next(k for k, i in enumerate(w.detail['order']) if int(i) != {first})")
        row_token = kernel_eval(client, f"int(w.detail['order'][{row}])")
        page.mouse.click(*point_on(page, kernel, 10, row))
        assert wait_python(client, "w.selected_token", lambda v: v == row_token) == row_token
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=influences]')}.dataset.token === '{row_token}'")

        # --- dark theme
        switch_theme(page, "JupyterLab Dark")
        page.wait_for_selector(f"{ROOT}[data-dvz-theme='dark']", timeout=30_000)
        page.wait_for_function(
            f"{plot_background_luminance(ROOT + ' [data-dvz-role=kernel]')} < 0.3",
            timeout=30_000,
        )
        page.wait_for_timeout(500)
        widget_shot(page, "susceptibility-04-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")


def test_the_saved_page_scrubs_checkpoints_and_picks_points_offline(browser, tmp_path):
    from sweep_helpers import make_model, mse, regression_problem, train_trajectory

    import devinterp_viz as dvz

    x, y = regression_problem()
    sweep = dvz.sweep_llc(dvz.Trajectory(train_trajectory(num_checkpoints=3, steps=50)), make_model(), (x, y), mse,
                          observables={"probe": (x[:12], y[:12])}, per_sample_loss=lambda m, b: (m(b[0]) - b[1]).square().squeeze(-1),
                          lr=1e-4, nbeta=20.0, num_chains=2, num_draws=30, batch_size=32, progress=False)
    path = dvz.SusceptibilityExplorer(sweep, embedding="pca", color_by="checkpoint").save_html(tmp_path / "suscept.html")
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(f"{ROOT}[data-dvz-ready='1']", timeout=30_000)
        assert page.evaluate(f"{q(ROOT + ' [data-dvz-role=embedding]')}.data[0].x.length") == 3 * 12  # every checkpoint
        first = page.evaluate(f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-dvz-role=token]')})].map((e) => e.dataset.value)")
        page.fill(f"{ROOT} [data-dvz-role='scrubber']", "2")
        page.wait_for_function(f"{q(ROOT)}.dataset.checkpoint === '2'")
        assert f"step {int(sweep.steps[2])}" in page.inner_text(f"{ROOT} [data-dvz-role='step']")
        later = page.evaluate(f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-dvz-role=token]')})].map((e) => e.dataset.value)")
        assert later != first
        # influences stay those of the saved checkpoint, and say so
        page.click(f"{ROOT} [data-dvz-role='token'][data-index='3']")
        title = page.inner_text(f"{ROOT} [data-dvz-role='influence-title']")
        assert f"step {int(sweep.steps[0])}" in title and "saved page: computed for" in title
        assert page.evaluate(f"{q(ROOT + ' [data-dvz-role=influences]')}.style.opacity") == "0.35"  # greyed, not silently stale
        assert "saved page" in page.inner_text(f"{ROOT} [data-dvz-role='kernel-title']")
        page.screenshot(path=str(ARTIFACTS / "susceptibility-05-saved-html.png"))
        assert not errors, errors
    finally:
        context.close()


# a sweep of the same kind inside the kernel: three checkpoints of a regression net, 12 probe samples
SWEEP_CELL = """
import numpy as np
import torch
torch.set_num_threads(1)
import devinterp_viz as dvz
torch.manual_seed(0)
x = torch.randn(64, 3)
y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(64, 1)
model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
states = []
for step in range(61):
    if step % 30 == 0:
        states.append((step, {k: v.clone() for k, v in model.state_dict().items()}))
    optimizer.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    optimizer.step()
mse = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
sweep = dvz.sweep_llc(dvz.Trajectory(states), model, (x, y), mse, observables={"probe": (x[:12], y[:12])},
                      per_sample_loss=lambda m, b: (m(b[0]) - b[1]).square().squeeze(-1),
                      lr=1e-4, nbeta=20.0, num_chains=2, num_draws=30, batch_size=32, progress=False)
w = dvz.SusceptibilityExplorer(sweep, embedding="pca", color_by="checkpoint", selected_token=3)
w
"""


def test_the_checkpoint_scrubber_moves_every_panel_in_jupyterlab_and_python_follows(lab, page):
    name = write_notebook(lab, "susceptibility_sweep.ipynb", SWEEP_CELL)
    open_and_run(page, lab, name, ROOT)
    client = lab.kernel_client(name)
    values = f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-dvz-role=token]')})].map((e) => Number(e.dataset.value))"
    try:
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=embedding]')}._fullLayout !== undefined")
        steps = kernel_eval(client, "[int(s) for s in sweep.steps]")
        assert steps == [0, 30, 60]
        for index in (2, 1):
            page.fill(f"{ROOT} [data-dvz-role='scrubber']", str(index))
            assert wait_python(client, "w.checkpoint", lambda v, i=index: v == i) == index
            assert f"step {steps[index]}" in page.inner_text(f"{ROOT} [data-dvz-role='step']")
            # the text shows Python's susceptibilities at that checkpoint, greyed where within 2 SE of 0
            expected, se = kernel_eval(client, "[[float(v) for v in a] for a in w.token_values()]")
            page.wait_for_function(f"(() => {{ const v = {values}; return Math.abs(v[0] - {expected[0]}) <= 1e-5 * Math.abs({expected[0]}); }})()")
            shown = page.evaluate(values)
            assert max(abs(a - b) for a, b in zip(shown, expected)) <= 1e-5 * max(map(abs, expected))
            unsure = page.evaluate(f"[...document.querySelectorAll({json.dumps(ROOT + ' [data-dvz-role=token]')})].map((e) => e.dataset.unsure)")
            assert unsure == [str(abs(v) < 2 * e).lower() for v, e in zip(expected, se)]
            # the influences and the kernel are recomputed by Python for that checkpoint (none stays behind)
            assert wait_python(client, "w.detail['checkpoint']", lambda v, i=index: v == i) == index
            page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=influence-title]')}.textContent.includes('step {steps[index]}')")
            first = int(page.get_attribute(f"{ROOT} [data-dvz-role='influences'] tbody tr", "data-index"))
            assert first == kernel_eval(client, "int(w.detail['top_index'][3][0])")
            assert f"step {steps[index]}" in page.inner_text(f"{ROOT} [data-dvz-role='kernel-title']")
            assert "saved page" not in page.inner_text(f"{ROOT} [data-dvz-role='kernel-title']")
        widget_shot(page, "susceptibility-06-lab-scrubbed")
        # the keyboard scrubs as in the dashboard: arrows step, Home / End jump, Python follows
        page.click(f"{ROOT} [data-dvz-role='text-title']")
        for key, index in (("Home", 0), ("ArrowRight", 1), ("End", 2), ("ArrowLeft", 1)):
            page.keyboard.press(key)
            page.wait_for_function(f"{q(ROOT)}.dataset.checkpoint === '{index}'")
            assert wait_python(client, "w.checkpoint", lambda v, i=index: v == i) == index
            assert page.input_value(f"{ROOT} [data-dvz-role='scrubber']") == str(index)
            assert f"step {steps[index]}" in page.inner_text(f"{ROOT} [data-dvz-role='step']")
        # the sweep's one selection is every parameter: the titles say so in English
        assert kernel_eval(client, "w.components") == ["all"]
        title = page.inner_text(f"{ROOT} [data-dvz-role='text-title']")
        assert "under all components" in title and "component all" not in title
        # ... and Python moves the scrubber
        kernel_eval(client, "setattr(w, 'checkpoint', 0) or None")
        page.wait_for_function(f"{q(ROOT)}.dataset.checkpoint === '0'")
        assert page.input_value(f"{ROOT} [data-dvz-role='scrubber']") == "0"
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()


# the first cell with a long component name and a very long word: labels and chips must fit their boxes
LONG_CELL = CELL.replace('"embedding": "0.*"', '"token embedding (layer 0, all rows)": "0.*"').replace('"mat"]', '"mat" + "x" * 160]')


def test_long_labels_fit_their_boxes_and_tokens_and_points_are_comfortable_to_click(lab, page):
    name = write_notebook(lab, "susceptibility_long.ipynb", LONG_CELL)
    open_and_run(page, lab, name, ROOT)
    client = lab.kernel_client(name)
    try:
        response = f"{ROOT} [data-dvz-role='response']"
        page.wait_for_function(f"{q(ROOT + ' [data-dvz-role=embedding]')}._fullLayout !== undefined && {q(response)}.querySelectorAll('.ytick text').length === 2")
        # every row label of the response matrix is drawn inside the figure, none clipped at its left edge
        clipped = page.evaluate(f"""(() => {{ const gd = {q(response)}; const left = gd.getBoundingClientRect().left;
            return [...gd.querySelectorAll('.ytick text')].map((t) => [t.textContent, t.getBoundingClientRect().left - left]); }})()""")
        assert {label for label, _ in clipped} == {"token embedding (layer 0, all rows)", "unembedding"}
        assert all(x >= 0 for _, x in clipped), clipped
        # the token strip holds its chips: no horizontal overflow, every chip inside the box
        box = f"{ROOT} [data-dvz-role='text']"
        fits = page.evaluate(f"""(() => {{ const box = {q(box)}; const r = box.getBoundingClientRect();
            const chips = [...box.querySelectorAll('[data-dvz-role=token]')].map((c) => c.getBoundingClientRect());
            return {{overflow: box.scrollWidth - box.clientWidth, outside: chips.filter((c) => c.left < r.left - 0.5 || c.right > r.right + 0.5).length,
                     small: chips.filter((c) => c.width < 22 || c.height < 22).length}}; }})()""")
        assert fits == {"overflow": 0, "outside": 0, "small": 0}, fits
        # the short chips ("on") are comfortable click targets: a click near the chip's edge selects it
        chip = page.locator(f"{box} [data-dvz-role='token'][data-index='3']")
        assert chip.inner_text() == "on"
        bbox = chip.bounding_box()
        page.mouse.click(bbox["x"] + 2, bbox["y"] + bbox["height"] - 2)
        assert wait_python(client, "w.selected_token", lambda v: v == 3) == 3
        # the embedding: lasso by default with the mode bar (zoom, pan, box) always shown, points big enough to hit
        embedding = q(ROOT + " [data-dvz-role=embedding]")
        assert page.evaluate(f"{embedding}._fullLayout.dragmode") == "lasso"
        assert page.evaluate(f"{embedding}.querySelector('.modebar-btn[data-attr=dragmode][data-val=zoom]') !== null")
        assert not page.evaluate(f"{embedding}.querySelector('.modebar').classList.contains('modebar--hover')")  # shown, not only on hover
        assert min(page.evaluate(f"{embedding}.data.filter((t) => t.name !== 'selected').map((t) => t.marker.size)")) >= 10
        widget_shot(page, "susceptibility-07-long-labels-light")
        switch_theme(page, "JupyterLab Dark")
        page.wait_for_selector(f"{ROOT}[data-dvz-theme='dark']", timeout=30_000)
        page.wait_for_function(f"{plot_background_luminance(ROOT + ' [data-dvz-role=response]')} < 0.3", timeout=30_000)
        widget_shot(page, "susceptibility-08-long-labels-dark")
        assert not page.dvz_errors, page.dvz_errors
    finally:
        client.stop_channels()
        switch_theme(page, "JupyterLab Light")
