"""The main job: train the zoo, sweep LLCs into a store, analyse, write an offline report, open JupyterLab."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import devinterp_viz as dvz
from devinterp_viz.analysis.heads import behaviour_labels
from devinterp_viz.zoo import (
    AttentionOnlyTransformer,
    TransformerConfig,
    ToyModelOfSuperposition,
    aoyagi_reduced_rank_lambda,
    cached_run,
    head_scores,
    lm_loss,
    make_distribution,
    make_dln_data,
    tms_data,
    tms_loss,
    transformer_from_state,
    true_parameter_dln,
)
from devinterp_viz.zoo.dln import gibbs_localized_llc, mse_loss
from devinterp_viz.zoo.languages import token_text
from devinterp_viz.zoo.tms import read_kgon
from devinterp_viz.zoo.transformer import attention_patterns, probe_batch

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@dataclass
class DemoSize:
    """How much the demo computes; ``QUICK`` and ``FULL`` below."""

    tms_checkpoints: int
    tms_chains: int
    tms_burnin: int
    tms_draws: int
    transformer_steps: int
    seq_len: int
    llc_checkpoints: int
    llc_burnin: int
    llc_draws: int
    head_checkpoints: int
    head_chains: int
    head_burnin: int
    head_draws: int


# The transformer's chains: lr 1e-4 with nβ 30 and γ 200 have a localization time 2/(lr·γ) = 100
# steps and a step-size bias under 10 % of the whole model's LLC. The full run burns in two
# localization times (200 steps), the burn-in the verdict's next step asks for; the quick run takes
# 150. The verdict itself does not go by the burn-in: it checks from the chains' virial whether they
# have spread into the localised posterior (engine/diagnostics.py). A single head's refined LLC is
# 10–100× smaller, so the same step biases it by 20–160 %: the heads take lr 3e-5 (localization time
# 2/(lr·γ) ≈ 330 steps; their 300 burn-in steps are about one, and the verdict checks the rest).
TRANSFORMER_SGLD = dict(lr=1e-4, nbeta=30.0, localization=200.0, batch_size=16)
HEAD_SGLD = dict(TRANSFORMER_SGLD, lr=3e-5)
# TMS: full-batch chains at nβ = 1e4, γ = 10 estimate λ itself, not a heavily localized quantity:
# at lr 1e-5 the step-size bias is a few percent and the final 5+-gon comes out 8.2 ± 0.3 (theory 8.5).
# Checkpoints on a plateau (the loss still falling, |∇L| ≈ 1e-2) are not local minima: no LLC there.
TMS_SGLD = dict(lr=1e-5, nbeta=1e4, localization=10.0, batch_size=1024)
INDUCTION_BUMP_END = 2300  # the zoo transformer's induction heads have formed by then (seed 0; zoo/transformer.py)
TMS_THEORY = {"5-gon": 7.0, "5+-gon": 8.5, "6-gon": 8.5}  # Chen et al. 2023 (SCIENCE.md)
QUICK = DemoSize(tms_checkpoints=12, tms_chains=4, tms_burnin=2000, tms_draws=500, transformer_steps=2000, seq_len=16,
                 llc_checkpoints=10, llc_burnin=150, llc_draws=150, head_checkpoints=4, head_chains=2, head_burnin=300,
                 head_draws=80)
FULL = DemoSize(tms_checkpoints=25, tms_chains=8, tms_burnin=4000, tms_draws=1000, transformer_steps=3000, seq_len=32,
                llc_checkpoints=20, llc_burnin=200, llc_draws=200, head_checkpoints=8, head_chains=4, head_burnin=300,
                head_draws=100)


def run_demo(out: Path, quick: bool = False, seed: int = 0, lab: bool = True) -> int:
    """Run the whole pipeline into ``out`` (re-running reuses its runs and its store).

    1. Known answers: a deep linear network's LLC against Aoyagi's λ.
    2. The toy model of superposition: train, sweep the LLC over its checkpoints, find stages,
       essential dynamics, a development dashboard.
    3. The toy transformer: train, sweep the LLC (≥ 20 checkpoints in the full run), per-head
       refined LLC, essential dynamics, head clusters against behavioural scores.
    4. An offline report (``out/report/index.html``): every widget as a standalone page.
    5. JupyterLab on the notebooks (skipped with ``lab=False``).
    """
    size = QUICK if quick else FULL
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report"
    report.mkdir(exist_ok=True)
    store = dvz.ResultStore(out / "store")
    torch.set_num_threads(1)  # the zoo's models are tiny: one thread beats two on a busy CPU
    start = time.perf_counter()
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"devinterp_viz demo ({'quick' if quick else 'full'}) → {out}")
    _known_answers(say, seed)
    pages = {}
    pages.update(_tms(say, out, store, report, size, seed))
    pages.update(_transformer(say, out, store, report, size, seed))
    index = _write_index(report, pages, lines)
    say(f"\nreport: {index} (opens offline, no kernel needed) · total {time.perf_counter() - start:.0f} s")
    if lab:
        return _start_lab()
    return 0


def _known_answers(say, seed: int) -> None:
    teacher = true_parameter_dln([3, 2, 2], rank=2, seed=seed)
    x, y = make_dln_data(teacher, 100, seed=seed, whiten=True)
    # γ = 10 and a burn-in of 2/(lr·γ) = 10⁴ steps let the directions the network's symmetry leaves flat
    # reach equilibrium, so the verdict can vouch for the estimate; the target is then within 1% of λ
    settings = dict(nbeta=1000.0, localization=10.0)
    res = dvz.estimate_llc(teacher, (x, y), mse_loss, lr=2e-5, num_chains=8, num_draws=500, num_burnin_steps=10_000,
                           num_steps_bw_draws=5, batch_size=100, seed=seed, progress=False, **settings)
    exact, _ = gibbs_localized_llc(teacher, settings["nbeta"], settings["localization"], seed=seed)
    lam = aoyagi_reduced_rank_lambda(3, 2, 2, 2)
    say(f"\n1. known answer: deep linear network 3→2→2 of rank 2: λ̂ = {res.llc_mean:.2f} ± {res.llc_se:.2f}; "
        f"exact at nβ = 1000, γ = 10 (Gibbs reference) {exact:.2f}; Aoyagi's λ = {lam:g} — {res.diagnostics.verdict}")


def _subset(trajectory: dvz.Trajectory, count: int, from_step: int = 0) -> dvz.Trajectory:
    """About ``count`` checkpoints evenly spaced in index from the first at or after ``from_step``."""
    first = int(np.searchsorted(trajectory.steps, from_step))
    index = np.unique(np.linspace(first, len(trajectory) - 1, count).astype(int))
    return dvz.Trajectory([(int(trajectory.steps[i]), trajectory.state_dict(i)) for i in index])


def _tms(say, out: Path, store, report: Path, size: DemoSize, seed: int) -> dict[str, str]:
    tick = time.perf_counter()
    trajectory, losses = cached_run("tms")  # the zoo's cache, which the notebooks read too: trained once for both
    data = tms_data(6, 1024, seed=8)
    model = ToyModelOfSuperposition(6, 2)
    sweep = dvz.sweep_llc(_subset(trajectory, size.tms_checkpoints), model, data, tms_loss, store=store,
                          num_chains=size.tms_chains, num_burnin_steps=size.tms_burnin, num_draws=size.tms_draws,
                          seed=seed, **TMS_SGLD)
    dynamics = dvz.essential_dynamics(trajectory, model, data[:256], progress=False)
    final = sweep.results[("all", "data", len(sweep.steps) - 1)]
    shape = _kgon_name(trajectory.state_dict(len(trajectory) - 1))
    say(f"\n2. toy model of superposition: {len(trajectory)} checkpoints, loss {losses[0]:.3f} → {losses[-1]:.3f}; "
        f"LLC at {len(sweep.steps)} checkpoints: {_status_counts(sweep)}; the final {shape}: "
        f"λ̂ = {final.llc_mean:.2f} ± {final.llc_se:.2f} ({final.diagnostics.status}; theory "
        + ", ".join(f"{name} {value:g}" for name, value in TMS_THEORY.items())
        + f"); {_stages_text(sweep)}; essential-dynamics milestones at steps {_steps_text(dynamics.milestone_steps_)} "
        f"({time.perf_counter() - tick:.0f} s)")
    dashboard = dvz.DevelopmentDashboard(sweep=sweep, dynamics=dynamics, losses={"train": (trajectory.steps, losses)})
    dashboard.save_html(report / "tms_dashboard.html", title="TMS development")
    dvz.SamplerWidget.from_result(final).save_html(report / "tms_sampler.html", title="TMS final checkpoint: chains")
    return {"tms_dashboard.html": "Toy model of superposition: development dashboard",
            "tms_sampler.html": "Toy model of superposition: the final checkpoint's chains and their health"}


def _kgon_name(state: dict) -> str:
    """"5-gon", or "5+-gon" when an unrepresented feature keeps a positive bias (SCIENCE.md's naming)."""
    shape = read_kgon(state)
    unused = [i for i in range(len(state["b"])) if i not in shape.features]
    return f"{shape.k}{'+' if any(float(state['b'][i]) > 0 for i in unused) else ''}-gon"


def _status_counts(sweep) -> str:
    """"18 undefined (not a local minimum), 7 healthy" for a sweep's verdicts."""
    counts: dict[str, int] = {}
    for res in sweep.results.values():
        counts[res.diagnostics.status] = counts.get(res.diagnostics.status, 0) + 1
    words = {"undefined": "undefined (w* not a local minimum)"}
    return ", ".join(f"{n} {words.get(status, status)}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _llc_range(sweep) -> str:
    """"0.8 (step 10) → 16.0 (step 3000)" over the checkpoints whose estimate is healthy."""
    steps, llc, _ = sweep.curve()
    good = np.flatnonzero(sweep.healthy[0, 0])
    if not good.size:
        return "(no healthy checkpoint)"
    first, last = good[0], good[-1]
    return f"{llc[first]:.1f} (step {steps[first]}) → {llc[last]:.1f} (step {steps[last]})"


def _stages_text(sweep) -> str:
    try:
        found = dvz.stages(sweep)
    except ValueError:
        return "too few checkpoints with an LLC for stages"
    count = len(found.stages_)
    return f"{count} LLC stage{'s' * (count != 1)} " + " ".join(
        f"[{s['type']} {s['start']:.0f}–{s['end']:.0f}]" for s in found.stages_)


def _transformer(say, out: Path, store, report: Path, size: DemoSize, seed: int) -> dict[str, str]:
    tick = time.perf_counter()
    trajectory, losses = cached_run("transformer", steps=size.transformer_steps, seed=seed)  # the notebooks' run at 3000
    model = AttentionOnlyTransformer(TransformerConfig())
    data = make_distribution("full", 512, size.seq_len, seed=1)
    sweep = dvz.sweep_llc(_subset(trajectory, size.llc_checkpoints), model, data, lm_loss, store=store,
                          num_chains=4, num_burnin_steps=size.llc_burnin, num_draws=size.llc_draws, seed=seed,
                          **TRANSFORMER_SGLD)
    steps = sweep.steps
    probe = probe_batch("full", 16, size.seq_len)
    dynamics = dvz.essential_dynamics(trajectory, model, probe, progress=False)
    say(f"\n3. toy transformer: {len(trajectory)} checkpoints, loss {losses[0]:.2f} → {losses[-1]:.2f} nats; "
        f"LLC {_llc_range(sweep)} over {len(steps)} checkpoints ({_status_counts(sweep)}); "
        f"{_stages_text(sweep)}; milestones at steps {_steps_text(dynamics.milestone_steps_)} "
        f"({time.perf_counter() - tick:.0f} s)")
    if size.transformer_steps < INDUCTION_BUMP_END:
        say(f"   (training stops at step {size.transformer_steps}, inside the induction bump — steps ~1300–{INDUCTION_BUMP_END} "
            "for seed 0, devinterp_viz/zoo/transformer.py — so the LLC shows its rise, not its end; the full demo trains to 3000)")
    dvz.DevelopmentDashboard(sweep=sweep, dynamics=dynamics, losses={"train": (trajectory.steps, losses)}).save_html(
        report / "transformer_dashboard.html", title="Toy transformer development")
    tick = time.perf_counter()
    # heads differ only once they start to specialise (after ~200 steps), and by how much their
    # refined LLC grows: raw curves put the previous-token head in a cluster of its own, while
    # max-normalised ones (the widget's default) mix it with the rest in this small model
    heads = dvz.sweep_llc(_subset(trajectory, size.head_checkpoints, from_step=200), model, data, lm_loss,
                          selections="heads", store=store, num_chains=size.head_chains,
                          num_burnin_steps=size.head_burnin, num_draws=size.head_draws, seed=seed, **HEAD_SGLD)
    final = transformer_from_state(trajectory.state_dict(len(trajectory) - 1))
    scores = {name: value.ravel() for name, value in head_scores(final).items()}
    repeated = probe_batch("repeated", 1, TransformerConfig().seq_len)
    widget = dvz.HeadClusterWidget(heads, scores=scores, attention=attention_patterns(final, repeated).numpy(),
                                   tokens=repeated[0], token_text=token_text, normalize=None)
    widget.save_html(report / "heads.html", title="Toy transformer: attention heads")
    clusters = widget.clustering
    labels = clusters.labels_ if clusters is not None else []
    roles = "; ".join(clusters.role_summary(behaviour_labels(scores, threshold=0.4))) if clusters is not None else "not clustered"
    say(f"   per-head refined LLC at {len(heads.steps)} checkpoints ({_status_counts(heads)}): {len(set(labels))} clusters "
        f"{dict(zip(heads.selections, map(int, labels)))}; behavioural scores: "
        + ", ".join(f"{name} max {np.max(v):.2f}" for name, v in scores.items())
        + f"; against behaviour: {roles} ({time.perf_counter() - tick:.0f} s)")
    untrusted = widget.signatures.untrusted_heads_
    if untrusted:
        say(f"   {len(untrusted)} of {len(heads.selections)} heads' curves rest on estimates the verdict does not trust "
            "(✕ and | in the widget's thumbnails), so their clusters are tentative: HeadSignatures(untrusted='drop') "
            "clusters on the checkpoints every head passes")
    return {"transformer_dashboard.html": "Toy transformer: development dashboard",
            "heads.html": "Toy transformer: attention heads clustered by refined LLC, beside their behaviour"}


def _steps_text(steps) -> str:
    steps = list(np.asarray(steps, dtype=int))
    return ", ".join(map(str, steps)) if steps else "none"


def _write_index(report: Path, pages: dict[str, str], lines: list[str]) -> Path:
    items = "\n".join(f'<li><a href="{name}">{html.escape(title)}</a></li>' for name, title in pages.items())
    body = html.escape("\n".join(lines))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>devinterp_viz report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
pre{{background:#f4f4f4;padding:1rem;white-space:pre-wrap}}</style></head><body>
<h1>devinterp_viz report</h1>
<p>Every page below is a standalone widget with its data inlined: it works offline, with no kernel.</p>
<ul>{items}</ul><h2>Summary</h2><pre>{body}</pre></body></html>"""
    index = report / "index.html"
    index.write_text(page)
    return index


def _start_lab() -> int:
    if shutil.which("jupyter") is None and not (Path(sys.executable).parent / "jupyter").exists():
        print("JupyterLab is not installed: pip install 'devinterp_viz[lab]' (or run with --no-lab)")
        return 1
    jupyter = str(Path(sys.executable).parent / "jupyter") if (Path(sys.executable).parent / "jupyter").exists() else "jupyter"
    command = [jupyter, "lab", "--ip=127.0.0.1", "--no-browser", f"--notebook-dir={NOTEBOOKS}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    print("\nstarting JupyterLab on the notebooks (Ctrl-C to stop): " + " ".join(command), flush=True)
    return subprocess.call(command)
