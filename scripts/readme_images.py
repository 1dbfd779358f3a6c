"""Regenerate the README's widget images (``docs/img/*.png``) from the zoo's real models.

Each widget is built as the notebooks build it (the same models, data and sampler settings, no
test fakes), saved as a standalone offline page (``widget.save_html``), opened in Debian's
chromium through Playwright (light theme, 1100 px wide) and screenshotted into ``docs/img/``::

    PYTHONPATH=$PWD .venv/bin/python scripts/readme_images.py            # every image
    PYTHONPATH=$PWD .venv/bin/python scripts/readme_images.py heads      # only some

Training runs come from the zoo's cache (:func:`devinterp_viz.zoo.cached_run`) and the transformer
sweeps from a result store under the same cache root (``$DVZ_CACHE`` or
``~/.cache/devinterp_viz``, folder ``readme-store``), so a rerun after a widget change only
samples the deep linear network and the small classifier again (under two minutes on a busy
two-core machine); the first run also trains the transformer and sweeps its heads (about 25
minutes there).
The pages are kept in ``test-artifacts/readme/`` (gitignored) for a look in a browser.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import devinterp_viz as dvz
from devinterp_viz.zoo import (AttentionOnlyTransformer, TransformerConfig, cached_run, head_scores, lm_loss,
                               make_distribution, transformer_from_state)
from devinterp_viz.zoo.cache import cache_root
from devinterp_viz.zoo.languages import token_text
from devinterp_viz.zoo.transformer import attention_patterns, probe_batch

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "img"
PAGES = REPO / "test-artifacts" / "readme"
CHROMIUM = "/usr/bin/chromium"
WIDTH = 1100
# the transformer's settings of notebooks/essential_dynamics.ipynb and refined_llc_and_heads.ipynb
TRANSFORMER_SGLD = dict(lr=1e-4, nbeta=30.0, localization=200.0, num_chains=4, num_burnin_steps=200,
                        num_draws=150, batch_size=16)
HEAD_SGLD = dict(lr=3e-5, nbeta=30.0, localization=200.0, num_chains=4, num_burnin_steps=300, num_draws=100,
                 batch_size=16)


def _store() -> dvz.ResultStore:
    return dvz.ResultStore(cache_root() / "readme-store")


def _transformer():
    torch.set_num_threads(1)  # tiny models: one thread is fastest
    trajectory, losses = cached_run("transformer", steps=3000, seed=0)
    return trajectory, losses, AttentionOnlyTransformer(TransformerConfig())


def _head_run():
    """The per-head refined-LLC sweep of ``refined_llc_and_heads.ipynb`` (stored)."""
    trajectory, _, model = _transformer()
    index = [i for i, step in enumerate(trajectory.steps) if step >= 200][::10]
    subset = dvz.Trajectory([(int(trajectory.steps[i]), trajectory.state_dict(i)) for i in index])
    distributions = {name: make_distribution(name, 256, 16, seed=1) for name in ("full", "induction")}
    heads = dvz.sweep_llc(subset, model, None, lm_loss, selections="heads", distributions=distributions,
                          store=_store(), **HEAD_SGLD)
    return trajectory, model, subset, distributions, heads


def sampler_and_calibration() -> dict[str, dvz.SamplerWidget]:
    """``sampler_tuning.ipynb``'s deep linear network: the calibration grid, then its recommendation run."""
    from devinterp_viz.widgets import SamplerWidget
    from devinterp_viz.zoo.dln import make_dln_data, mse_loss, true_parameter_dln

    torch.manual_seed(0)
    model = true_parameter_dln([6, 4, 6], rank=2)
    data = make_dln_data(model, num_examples=2000, noise=0.1)
    w = SamplerWidget(model, data, mse_loss, batch_size=100, num_chains=4, num_draws=300)
    w.run(wait=True)  # the widget's defaults first: the history then holds two runs
    w.calibrate(lrs=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2], values=[10.0, 30.0, 100.0], axis="nbeta", wait=True)
    calibration = SamplerWidget.from_result(w.calibration_result)
    w.use_recommended()
    w.run(wait=True)
    return {"sampler": w, "calibration": calibration}


def dashboard() -> dvz.DevelopmentDashboard:
    """``essential_dynamics.ipynb``'s transformer: LLC sweep (stored), essential dynamics, losses."""
    trajectory, losses, model = _transformer()
    index = np.unique(np.geomspace(1, len(trajectory) - 1, 12).astype(int))
    subset = dvz.Trajectory([(int(trajectory.steps[i]), trajectory.state_dict(i)) for i in index])
    data = make_distribution("full", 512, 16, seed=1)
    sweep = dvz.sweep_llc(subset, model, data, lm_loss, store=_store(), **TRANSFORMER_SGLD)
    dynamics = dvz.essential_dynamics(trajectory, model, probe_batch("full", 16, 32))
    widget = dvz.DevelopmentDashboard(sweep=sweep, dynamics=dynamics, losses={"train": (trajectory.steps, losses)})
    widget.checkpoint = int(np.searchsorted(widget.steps, 1500))  # mid-transition
    return widget


def heads() -> dvz.HeadClusterWidget:
    """``refined_llc_and_heads.ipynb``'s head clusters, raw curves, the previous-token head clicked."""
    trajectory, _, _, _, sweep = _head_run()
    final = transformer_from_state(trajectory.state_dict(len(trajectory) - 1))
    scores = {name: value.ravel() for name, value in head_scores(final).items()}
    repeated = probe_batch("repeated", 1, TransformerConfig().seq_len)
    widget = dvz.HeadClusterWidget(sweep, scores=scores, attention=attention_patterns(final, repeated).numpy(),
                                   tokens=repeated[0], token_text=token_text, normalize=None)
    widget.selected_head = sweep.selections[int(np.argmax(scores["previous_token"]))]
    return widget


def refined() -> dvz.RefinedLLCWidget:
    """The refined-LLC widget on three heads and both distributions (estimates from the store)."""
    _, model, subset, distributions, _ = _head_run()
    chosen = {h.label: h for h in dvz.attention_heads(model) if h.label.endswith(("0.attn.head0", "1.attn.head1",
                                                                                    "1.attn.head3"))}
    widget = dvz.RefinedLLCWidget(subset, model, None, lm_loss, distributions=distributions, store=_store(),
                                  selections=chosen, chosen_distributions=list(distributions), run=True, **HEAD_SGLD)
    widget.join()
    return widget


def susceptibility() -> dvz.SusceptibilityExplorer:
    """``posterior_covariances.ipynb``'s classifier with 20 planted mislabels, one clicked."""
    import dataclasses

    import torch.nn.functional as F

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=gen)
    margin = x[:, 0] + 0.5 * x[:, 1]
    labels = (margin > 0).long()
    far = torch.nonzero(margin.abs() > 0.8).squeeze(1)
    planted = far[torch.randperm(len(far), generator=gen)[:20]]
    labels[planted] = 1 - labels[planted]
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(600):
        optimizer.zero_grad()
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()

    def per_example(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1], reduction="none")

    result = dvz.estimate_llc(model, (x, labels), lambda m, b: per_example(m, b).mean(),
                              observables={"train": (x, labels)}, per_sample_loss=per_example,
                              lr=1e-3, nbeta=50.0, num_chains=4, num_draws=300, batch_size=50)
    losses = result.observables["train"]
    clean = np.setdiff1d(np.arange(len(x)), planted.numpy())
    probed = dataclasses.replace(result, observables={"train": losses, "planted": losses[..., planted.numpy()],
                                                      "clean": losses[..., clean]})
    kind = np.where(np.isin(np.arange(len(x)), planted.numpy()), "planted mislabel",
                    np.char.add("label ", labels.numpy().astype(str)))
    return dvz.SusceptibilityExplorer(probed, observable="train", loss_observable="train", classes=kind,
                                      embedding="pca", selected_token=int(planted[0]), text_values="influence")


BUILDERS = {"sampler": sampler_and_calibration, "calibration": sampler_and_calibration, "dashboard": dashboard,
            "heads": heads, "refined": refined, "susceptibility": susceptibility}


def screenshot(pages: dict[str, Path]) -> None:
    """Open each saved page offline in chromium and screenshot the widget into docs/img/<name>.png."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            for name, page_path in pages.items():
                context = browser.new_context(offline=True, viewport={"width": WIDTH, "height": 900},
                                              device_scale_factor=1, color_scheme="light")
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda err: errors.append(str(err)))
                page.goto(page_path.as_uri())
                page.wait_for_selector("[data-dvz-ready='1']", timeout=60_000)
                page.wait_for_timeout(1500)  # plotly's transitions settle
                if errors:
                    raise RuntimeError(f"{name}: the page raised {errors}")
                page.locator("#dvz-root").screenshot(path=str(IMAGES / f"{name}.png"))
                print(f"wrote {IMAGES / f'{name}.png'}", flush=True)
                context.close()
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"images to make, of {', '.join(BUILDERS)} (default: all)")
    names = parser.parse_args(argv).names or list(BUILDERS)
    unknown = sorted(set(names) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown image(s) {unknown}; choose from {', '.join(BUILDERS)}")
    PAGES.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    pages: dict[str, Path] = {}
    built: dict[str, object] = {}
    for name in names:
        if name in built:
            continue
        tick = time.perf_counter()
        made = BUILDERS[name]()
        made = made if isinstance(made, dict) else {name: made}
        for key, widget in made.items():
            built[key] = widget
            if key in names:
                pages[key] = widget.save_html(PAGES / f"{key}.html", title=f"devinterp_viz: {key}")
        print(f"{', '.join(made)}: built in {time.perf_counter() - tick:.0f} s", flush=True)
    screenshot(pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
