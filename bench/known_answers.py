"""Known-answer benchmark: the health verdict as a classifier, against exact finite-nβ references.

Usage (project venv)::

    .venv/bin/python bench/known_answers.py                 # run the grid (cached), print and write tables
    .venv/bin/python bench/known_answers.py --rejudge       # re-diagnose the cached chains with today's verdict
    .venv/bin/python bench/known_answers.py --models gauss4 nc11 --no-write
    .venv/bin/python bench/known_answers.py --recheck 12    # rerun 12 cached cells per model with today's engine

Every model has an exact answer for the estimator's target ``nβ E_p[L − L(w*)]`` at each
(nβ, γ): a closed form (|w|²), quadrature (Σ w^{2k}, normal crossings) or a blocked Gibbs
sampler with symmetry moves (deep linear networks on whitened data, whose empirical loss is the
population loss ``½|W_L⋯W_1 − T|²``); tests/test_references.py checks the references against
each other. A grid of settings that contains bad ones (lr over four decades below the stability
edge, nβ over three, γ over two, with and without burn-in, short and long chains) is run with
``dvz.estimate_llc`` as a user would, one seed per cell, and every run is judged:

- accurate: ``|λ̂ − truth| ≤ max(10% of truth, 2 SE)`` with SE = ``result.llc_se``;
- healthy: ``result.diagnostics.healthy``.

The verdict was tuned on the "tune" models only; the "held-out" ones (other exponents, other
network shapes, minibatch gradients, a w* that is not a minimum) test it on cases it was not
fitted to. Runs are cached under ``bench/.known_answers/`` (their traces and settings), so
``--rejudge`` re-scores a changed verdict in seconds, and ``--recheck N`` reruns N cached cells
per model (same seeds) with today's engine and compares estimate and verdict with the cache: a
changed engine that should not change the numbers is checked without rerunning the grid.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import devinterp_viz as dvz
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.zoo.dln import gibbs_localized_llc, make_dln_data, mse_loss, true_parameter_dln
from devinterp_viz.zoo.potentials import GaussianPotential, NormalCrossing, SumOfPowers, potential_loss
from results_file import cpu_name, write_section

CACHE = Path(__file__).with_name(".known_answers")
SECTION = "## known_answers (the verdict against exact answers)"
RECHECK_SECTION = "## known_answers --recheck (today's engine against the cached runs)"
NBETAS = (10.0, 100.0, 1e3, 1e4)
LOCALIZATIONS = (1.0, 10.0, 100.0)
SCHEDULES = ((0, 200), (500, 200), (0, 1000), (2000, 1000))  # (burn-in steps, draws)
LR_STEPS = 9  # lrs from the stability edge down, a factor √10 apart: four decades
CHAINS = 4
UNDEFINED = float("nan")  # the truth of a w* that is not a local minimum: there is no LLC


@dataclass
class KnownAnswer:
    """A model with data, loss and an exact finite-nβ answer."""

    name: str
    group: str  # "tune" or "held-out"
    build: Callable[[], tuple]  # () -> (model, data, loss_fn, batch_size)
    truth: Callable[[float, float], float]  # (nβ, γ) -> target, NaN when undefined
    curvature: float  # largest curvature of L near w* (for the lr grid's top: lr·(2 nβ c + γ) ≈ 4)


def _potential(model) -> Callable[[], tuple]:
    return lambda: (model, torch.zeros(1, 1), potential_loss, 1)


def _dln(widths: list[int], rank: int, seed: int, batch: int | None = None, offset: float = 0.0) -> KnownAnswer:
    name = f"dln{'-'.join(map(str, widths))}r{rank}" + (f"b{batch}" if batch else "") + ("-off" if offset else "")
    net = true_parameter_dln(widths, rank, seed=seed)
    teacher = true_parameter_dln(widths, rank, seed=seed)
    x, y = make_dln_data(teacher, 40, seed=seed, whiten=True)
    if offset:  # move w* off the minimum along a random direction: the loss still falls there
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for layer in net.layers:
                layer.weight.add_(offset * torch.randn(layer.weight.shape, generator=gen))
    def truth(nbeta: float, gamma: float) -> float:
        if offset:
            return UNDEFINED
        return _cached_truth(name, nbeta, gamma, lambda: gibbs_localized_llc(
            net, nbeta, gamma, num_chains=128, num_sweeps=800, num_burnin=200)[0])  # SE ≈ 0.3–0.5%

    scale = float(max(torch.linalg.matrix_norm(layer.weight.detach(), ord=2) for layer in net.layers)) ** (2 * (len(widths) - 2))
    return KnownAnswer(name, "held-out", lambda: (net, (x, y), mse_loss, batch or len(x)), truth, max(scale, 1.0))


def _cached_truth(name: str, nbeta: float, gamma: float, compute: Callable[[], float]) -> float:
    """A Gibbs reference, computed once and kept in the cache folder (truths.json)."""
    path = CACHE / "truths.json"
    key = f"{name} nb{nbeta:g} g{gamma:g}"
    known = json.loads(path.read_text()) if path.exists() else {}
    if key not in known:
        value = compute()
        known = json.loads(path.read_text()) if path.exists() else {}  # another worker may have written meanwhile
        known[key] = value
        CACHE.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(known, indent=0, sort_keys=True))
        os.replace(temp, path)
    return float(known[key])


def models() -> dict[str, KnownAnswer]:
    """Every known-answer model, the tune set first."""
    entries = [
        KnownAnswer("gauss4", "tune", _potential(GaussianPotential(4)), GaussianPotential(4).localized_llc, 1.0),
        KnownAnswer("sop123", "tune", _potential(SumOfPowers([1, 2, 3])), SumOfPowers([1, 2, 3]).localized_llc, 1.0),
        KnownAnswer("nc11", "tune", _potential(NormalCrossing([1, 1])), NormalCrossing([1, 1]).localized_llc, 1.0),
        _dln([3, 3, 3], 1, seed=0),
        _dln([2, 3, 2], 1, seed=0),
        _dln([3, 3, 3, 3], 1, seed=0),
        KnownAnswer("gauss20", "held-out", _potential(GaussianPotential(20)), GaussianPotential(20).localized_llc, 1.0),
        KnownAnswer("sop224", "held-out", _potential(SumOfPowers([2, 2, 4])), SumOfPowers([2, 2, 4]).localized_llc, 1.0),
        KnownAnswer("nc12", "held-out", _potential(NormalCrossing([1, 2])), NormalCrossing([1, 2]).localized_llc, 1.0),
        _dln([4, 3, 4], 2, seed=1),
        _dln([2, 2, 2], 0, seed=1),
        _dln([2, 2, 2, 2], 1, seed=2),
        _dln([3, 3, 3], 1, seed=3, batch=10),
        _dln([3, 3, 3], 1, seed=4, offset=0.3),
    ]
    for entry in entries[3:6]:
        entry.group = "tune"
    return {entry.name: entry for entry in entries}


def grid(entry: KnownAnswer) -> list[dict]:
    """The settings every model is run at: lr × nβ × γ × (burn-in, draws)."""
    cells = []
    for nbeta in NBETAS:
        for gamma in LOCALIZATIONS:
            edge = 4.0 / (2 * nbeta * entry.curvature + gamma)
            for k in range(LR_STEPS):
                lr = float(f"{edge * 10 ** (-k / 2):.3g}")
                for burnin, draws in SCHEDULES:
                    cells.append(dict(lr=lr, nbeta=nbeta, localization=gamma, num_burnin_steps=burnin, num_draws=draws))
    return cells


def _cell_key(cell: dict) -> str:
    return "lr{lr:g}_nb{nbeta:g}_g{localization:g}_b{num_burnin_steps}_d{num_draws}".format(**cell)


def run_model(entry: KnownAnswer, seed: int = 0) -> list[dict]:
    """Run (or read from the cache) every grid cell of one model; one row per cell."""
    folder = CACHE / entry.name
    folder.mkdir(parents=True, exist_ok=True)
    model, data, loss_fn, batch_size = entry.build()
    rows = []
    for index, cell in enumerate(grid(entry)):
        path = folder / f"{_cell_key(cell)}.npz"
        if path.exists():
            result = LLCResult.load(path)
        else:
            result = dvz.estimate_llc(model, data, loss_fn, num_chains=CHAINS, batch_size=batch_size,
                                      seed=seed + index, progress=False, **cell)
            result.save(path)
        rows.append(_row(entry, cell, result))
    return rows


CALIBRATION_LRS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]  # the README's style: a decade apart
CALIBRATIONS = {"γ rows": dict(localizations=[1.0, 10.0, 100.0], nbeta=100.0),
                "nβ rows": dict(nbetas=[10.0, 100.0, 1000.0], localization=10.0)}
CALIBRATION_DRAWS = 500


def calibrate_model(entry: KnownAnswer, seed: int = 0) -> list[dict]:
    """``dvz.calibrate`` from a decade grid, then a fresh-seed run at its recommendation, judged against the truth."""
    model, data, loss_fn, batch_size = entry.build()
    rows = []
    for label, grid in CALIBRATIONS.items():
        tick = time.perf_counter()
        cal = dvz.calibrate(model, data, loss_fn, lrs=CALIBRATION_LRS, num_draws=CALIBRATION_DRAWS, batch_size=batch_size,
                            seed=seed, progress=False, **grid)
        seconds = time.perf_counter() - tick
        row = dict(model=entry.name, group=entry.group, grid=label, cells=len(cal.cells), seconds=seconds,
                   recommended=cal.recommended is not None, accurate=False, truth=float("nan"), estimate=float("nan"),
                   se=float("nan"), lr=float("nan"), value=float("nan"), why="; ".join(cal.recommendation_reasons))
        if cal.recommended is None:  # where w* is not a minimum there is no LLC: the right answer is no recommendation
            row["right"] = not math.isfinite(entry.truth(grid.get("nbeta", 100.0), grid.get("localization", 10.0)))
        else:
            rec = cal.recommended
            settings = {k: rec[k] for k in ("lr", "num_burnin_steps", "num_draws")}
            settings[cal.axis] = rec[cal.axis]
            other = "localization" if cal.axis == "nbeta" else "nbeta"
            settings[other] = grid[other]
            fresh = dvz.estimate_llc(model, data, loss_fn, num_chains=CHAINS, batch_size=batch_size, seed=seed + 10**6,
                                     progress=False, **settings)
            truth = entry.truth(settings["nbeta"], settings["localization"])
            row.update(truth=truth, estimate=fresh.llc_mean, se=fresh.llc_se, lr=rec["lr"], value=rec[cal.axis],
                       accurate=bool(math.isfinite(truth) and abs(fresh.llc_mean - truth) <= max(0.1 * truth, 2 * fresh.llc_se)))
            row["right"] = row["accurate"]
        rows.append(row)
    return rows


def calibration_table(rows: list[dict]) -> str:
    """Markdown: calibrate's recommendation per model and grid, and whether a fresh run there is accurate."""
    lines = ["| model | group | grid | cells run | recommended lr, value | fresh-seed λ̂ ± SE | truth | right |",
             "|---|---|---|---:|---|---|---:|---|"]
    for r in rows:
        pick = f"{r['lr']:.3g}, {r['value']:g}" if r["recommended"] else f"none ({r['why'][:80]})"
        fresh = f"{r['estimate']:.4g} ± {r['se']:.2g}" if r["recommended"] else "–"
        truth = "undefined" if r["recommended"] and not math.isfinite(r["truth"]) else (f"{r['truth']:.4g}" if r["recommended"] else "–")
        lines.append(f"| {r['model']} | {r['group']} | {r['grid']} | {r['cells']} | {pick} | {fresh} | {truth} | "
                     f"{'yes' if r['right'] else 'no'} |")
    lines.append("\nright: a fresh-seed run at the recommendation is within max(10 %, 2 SE) of the truth, or, where "
                 "w* is not a minimum, nothing is recommended")
    for group in ("tune", "held-out"):
        group_rows = [r for r in rows if r["group"] == group]
        models = sorted({r["model"] for r in group_rows})
        good = sorted({r["model"] for r in group_rows if r["right"]})
        lines.append(f"\n{group}: right on {len(good)} of {len(models)} models "
                     f"({sum(r['right'] for r in group_rows)} of {len(group_rows)} calibrations)")
    return "\n".join(lines)


def rejudge(result: LLCResult) -> LLCResult:
    """The same chains judged by today's verdict."""
    return LLCResult.from_traces(
        result.loss_trace, result.init_loss, result.nbeta, config=result.config, mala_trace=result.mala_trace,
        distance_trace=result.distance_trace, partial=result.partial, num_params=result.config.get("num_params"),
        sampler_traces=result.sampler_traces,
    )


def _row(entry: KnownAnswer, cell: dict, result: LLCResult) -> dict:
    truth = entry.truth(cell["nbeta"], cell["localization"])
    error = result.llc_mean - truth
    se = result.llc_se
    finite = math.isfinite(result.llc_mean)
    accurate = bool(finite and math.isfinite(truth) and abs(error) <= max(0.1 * abs(truth), 2 * (se if math.isfinite(se) else 0)))
    return dict(
        model=entry.name, group=entry.group, **cell, truth=truth, estimate=result.llc_mean, se=se,
        relative_error=error / truth if math.isfinite(truth) and truth else float("nan"),
        accurate=accurate, within_10=bool(finite and math.isfinite(truth) and abs(error) <= 0.1 * abs(truth)),
        healthy=bool(result.diagnostics.healthy), status=result.diagnostics.status,
        cause=(result.diagnostics.causes or [""])[0],
    )


def confusion(rows: list[dict]) -> dict:
    """Counts and rates of the verdict as a classifier of accurate runs."""
    healthy = [r for r in rows if r["healthy"]]
    accurate = [r for r in rows if r["accurate"]]
    within = [r for r in rows if r["within_10"]]
    both = [r for r in healthy if r["accurate"]]
    return dict(
        runs=len(rows), healthy=len(healthy), accurate=len(accurate),
        healthy_accurate=len(both), healthy_off=len(healthy) - len(both),
        unhealthy_accurate=len(accurate) - len(both), unhealthy_off=len(rows) - len(healthy) - len(accurate) + len(both),
        precision=len(both) / len(healthy) if healthy else float("nan"),
        recall=len(both) / len(accurate) if accurate else float("nan"),
        recall_within_10=sum(r["healthy"] for r in within) / len(within) if within else float("nan"),
    )


def tables(rows: list[dict]) -> str:
    """Markdown: the confusion table per group and per model."""
    lines = [
        "| models | runs | healthy & accurate | healthy & off | unhealthy & accurate | unhealthy & off | "
        "P(accurate \\| healthy) | P(healthy \\| accurate) | P(healthy \\| within 10 %) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = {"tune": [r for r in rows if r["group"] == "tune"], "held-out": [r for r in rows if r["group"] == "held-out"]}
    named = {**{f"**{g}**": rs for g, rs in groups.items()}, **{m: [r for r in rows if r["model"] == m] for m in dict.fromkeys(r["model"] for r in rows)}}
    for label, group_rows in named.items():
        if not group_rows:
            continue
        c = confusion(group_rows)
        lines.append(
            f"| {label} | {c['runs']} | {c['healthy_accurate']} | {c['healthy_off']} | {c['unhealthy_accurate']} | "
            f"{c['unhealthy_off']} | {_rate(c['precision'])} | {_rate(c['recall'])} | {_rate(c['recall_within_10'])} |"
        )
    return "\n".join(lines)


def _rate(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.2f}"


def recheck_model(name: str, cells: int, seed: int = 0) -> dict:
    """Rerun ``cells`` cached grid cells of one model (their own seeds) and compare with the cache."""
    torch.set_num_threads(1)
    entry = models()[name]
    model, data, loss_fn, batch_size = entry.build()
    cached_cells = [(i, c) for i, c in enumerate(grid(entry)) if (CACHE / entry.name / f"{_cell_key(c)}.npz").exists()]
    chosen = np.random.default_rng(seed).choice(len(cached_cells), min(cells, len(cached_cells)), replace=False)
    differences, same_verdict = [], 0
    for index, cell in (cached_cells[i] for i in sorted(chosen)):
        cached = rejudge(LLCResult.load(CACHE / entry.name / f"{_cell_key(cell)}.npz"))
        fresh = dvz.estimate_llc(model, data, loss_fn, num_chains=CHAINS, batch_size=batch_size,
                                 seed=seed + index, progress=False, **cell)
        if math.isfinite(cached.llc_mean) and math.isfinite(fresh.llc_mean):
            differences.append(abs(fresh.llc_mean - cached.llc_mean) / max(abs(cached.llc_mean), 1e-12))
        same_verdict += fresh.diagnostics.status == cached.diagnostics.status
    return dict(model=name, cells=len(chosen), finite=len(differences), same_verdict=same_verdict,
                median=float(np.median(differences)) if differences else float("nan"),
                max=float(np.max(differences)) if differences else float("nan"))


def recheck_table(rows: list[dict]) -> str:
    """Markdown: per model, how far today's engine is from the cached runs."""
    lines = ["| model | cells rerun | finite λ̂ | relative λ̂ difference, median | max | same verdict |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['cells']} | {r['finite']} | {r['median']:.1e} | {r['max']:.1e} | {r['same_verdict']}/{r['cells']} |"
              for r in rows]
    return "\n".join(lines)


def _recheck(args, chosen: list[str]) -> None:
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(recheck_model, chosen, [args.recheck] * len(chosen)))
    table = recheck_table(rows)
    print(table)
    if not args.no_write:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        write_section(RECHECK_SECTION,
            f"Run {stamp} on {cpu_name()} ({os.cpu_count()} CPUs), torch {torch.__version__}, "
            f"{time.perf_counter() - start:.0f} s: `known_answers.py --recheck {args.recheck}` reruns {args.recheck} "
            "randomly chosen cached cells per model with today's engine (each cell's own seed) and compares "
            "them with the cached runs, both judged by today's verdict.\n\n" + table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="model names (default: all)")
    parser.add_argument("--rejudge", action="store_true", help="re-diagnose cached runs with today's verdict")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="models run in parallel")
    parser.add_argument("--calibrate", action="store_true", help="also judge calibrate's recommendations")
    parser.add_argument("--recheck", type=int, metavar="N", help="rerun N cached cells per model and compare with the cache")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    chosen = args.models or list(models())
    if args.recheck:
        return _recheck(args, chosen)
    start = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for name, model_rows, seconds in pool.map(_model_rows, chosen, [args.rejudge] * len(chosen)):
            rows += model_rows
            c = confusion(model_rows)
            print(f"{name}: {len(model_rows)} runs, P(acc|healthy) {_rate(c['precision'])}, "
                  f"P(healthy|acc) {_rate(c['recall'])} ({seconds:.0f} s)", flush=True)
    table = tables(rows)
    print(table)
    calibration = ""
    if args.calibrate:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            calibration_rows = [row for rows_ in pool.map(_calibration_rows, chosen) for row in rows_]
        calibration = "\n\n### calibrate from a decade grid, judged by a fresh-seed run at its recommendation\n\n" + calibration_table(calibration_rows)
        print(calibration)
    (CACHE / "rows.json").write_text(json.dumps(rows, indent=0, default=float))
    if not args.no_write:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        write_section(SECTION,
            f"Run {stamp} on {cpu_name()} ({os.cpu_count()} CPUs), torch {torch.__version__}, "
            f"{time.perf_counter() - start:.0f} s. {CHAINS} chains per run, one seed per cell; "
            f"grid per model: {LR_STEPS} lrs × {len(NBETAS)} nβ × {len(LOCALIZATIONS)} γ × {len(SCHEDULES)} "
            "(burn-in, draws) schedules.\n\n" + table + calibration
        )


def _model_rows(name: str, rejudged: bool) -> tuple[str, list[dict], float]:
    """One model's rows (in a worker process), run or re-judged, and the seconds it took."""
    torch.set_num_threads(1)
    tick = time.perf_counter()
    entry = models()[name]
    return name, (_rejudged_rows(entry) if rejudged else run_model(entry)), time.perf_counter() - tick


def _calibration_rows(name: str) -> list[dict]:
    torch.set_num_threads(1)
    return calibrate_model(models()[name])


def _rejudged_rows(entry: KnownAnswer) -> list[dict]:
    folder = CACHE / entry.name
    rows = []
    for cell in grid(entry):
        path = folder / f"{_cell_key(cell)}.npz"
        if path.exists():
            rows.append(_row(entry, cell, rejudge(LLCResult.load(path))))
    return rows


if __name__ == "__main__":
    main()
