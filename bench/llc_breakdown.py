"""Where one LLC estimate's time goes: its parts timed on their own, against the raw floor.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python bench/llc_breakdown.py              # writes bench/RESULTS.md
    .venv/bin/python bench/llc_breakdown.py --no-write

On bench/llc_speed.py's problems (same seeds, same settings: 4 chains x 200 draws, batch 64), in
one process with 1 torch thread, best of ``--repeats`` runs of each part (timed in turn, so a
burst of a neighbour's work on a shared machine spreads over all of them):

- ``floor``: chains x draws plain forward+backward passes on pre-made batches (llc_speed's floor);
- ``evaluation (eager)`` / ``(graph)``: the engine's losses and gradients of all chains for every
  step (``FlatLoss.batched_value_and_grad``, and the traced graph of ``engine/graph.py``), on
  pre-gathered batches;
- ``Gaussian noise``: every chain's N(0, I) draws for every step (``ChainStreams.noise``), which
  any SGLD sampler needs and the floor does not;
- ``minibatches``: the chains' index streams and gathers (``ChainStreams.batch``);
- ``L(w*)``: the loss at w* on the whole data set (``evaluate_init_loss``);
- ``whole estimate``: ``estimate_llc`` with ``graph=False`` and with a traced graph; what is left
  after the parts above is the driver's own per-step work (drift, update, recording, MALA).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE.parent))

import llc_speed  # noqa: E402
from common import load_problem, mse, set_threads  # noqa: E402


def best_ms_interleaved(parts: dict, repeats: int) -> dict[str, float]:
    """Best time of each part in ms, the parts timed in turn ``repeats`` times (after one warm-up each).

    Interleaving spreads a neighbour's burst of work on a shared machine over all parts.
    """
    for fn in parts.values():
        fn()
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(repeats):
        for name, fn in parts.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: seconds * 1e3 for name, seconds in best.items()}


def parts(path: str, chains: int, draws: int, batch: int, lr: float, localization: float, repeats: int) -> dict[str, float]:
    """Milliseconds of each part of one estimate on the problem at ``path``."""
    import torch

    import devinterp_viz as dvz
    from devinterp_viz.engine.data import make_batches
    from devinterp_viz.engine.driver import ChainStreams
    from devinterp_viz.engine.graph import GraphRunner
    from devinterp_viz.engine.llc import evaluate_init_loss
    from devinterp_viz.engine.potential import FlatLoss
    from devinterp_viz.engine.selection import resolve_selection

    model, X, y, _ = load_problem(path)
    cpu = torch.device("cpu")
    flat_loss = FlatLoss(model, mse, resolve_selection(model, None), cpu)
    source = make_batches((X, y), batch, cpu)
    steps = draws + 1  # the driver evaluates once more than it records (the last draw's step)
    positions = flat_loss.w_star.expand(chains, -1).clone()
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(X.shape[0], (steps, chains, batch), generator=gen)
    batches = [(X[i], y[i]) for i in index]
    flat_index = index.reshape(-1, batch)[: chains * draws]
    floor_batches = [(X[i], y[i]) for i in flat_index]
    params = list(model.parameters())

    def floor():
        for b in floor_batches:
            torch.autograd.grad(mse(model, b), params)

    def eager():
        for b in batches:
            flat_loss.batched_value_and_grad(positions, b, shared_batch=False, chunk_size=None)

    runner = GraphRunner(flat_loss, True)

    def plain():
        return flat_loss.batched_value_and_grad(positions, batches[0], shared_batch=False, chunk_size=None)

    runner(positions, batches[0], False, plain)  # one eager step, then trace + check against eager
    runner(positions, batches[0], False, plain)
    assert runner.status == "graph", runner.status

    def traced():
        for b in batches:
            runner(positions, b, False, None)

    def streams() -> ChainStreams:
        return ChainStreams(0, chains, flat_loss.w_star.numel(), flat_loss.dtype, cpu, source, noise_draws=steps + 1)

    def noise():
        s = streams()
        for _ in range(steps + 1):
            s.noise()

    def minibatches():
        s = streams()
        for _ in range(steps):
            s.batch()

    settings = dict(lr=lr, localization=localization, num_chains=chains, num_draws=draws, batch_size=batch,
                    seed=0, progress=False)
    return best_ms_interleaved({
        "floor": floor,
        "evaluation (eager)": eager,
        "evaluation (graph)": traced,
        "Gaussian noise": noise,
        "minibatches": minibatches,
        "L(w*)": lambda: evaluate_init_loss(flat_loss, source, 0),
        "whole estimate (eager)": lambda: dvz.estimate_llc(model, (X, y), mse, graph=False, **settings),
        "whole estimate (graph)": lambda: dvz.estimate_llc(model, (X, y), mse, graph=True, **settings),
    }, repeats)


def report(by_model: dict[str, dict[str, float]], args, load: tuple[float, float]) -> str:
    import platform

    import torch

    info = llc_speed.machine("cpu")
    lines = [
        f"Machine: CPU {info['cpu']}, {info['cores']} cores; torch {torch.__version__}, python "
        f"{platform.python_version()}; {info['date']}; 1 torch thread. Load average (1 min) {load[0]:.2f} "
        f"before, {load[1]:.2f} after. llc_speed's problems and settings ({args.chains} chains × "
        f"{args.draws} draws, batch {args.batch}); best of {args.repeats} interleaved runs of each part, in one process.",
        "",
        "| part | " + " | ".join(f"{m} ms | {m} / floor" for m in by_model) + " |",
        "|---|" + "---:|---:|" * len(by_model),
    ]
    rows = list(next(iter(by_model.values())))
    derived = {}
    for model, ms in by_model.items():
        fixed = ms["Gaussian noise"] + ms["minibatches"] + ms["L(w*)"]
        derived[model] = {
            "driver's own work (eager estimate − eager evaluation − noise − minibatches − L(w*))":
                ms["whole estimate (eager)"] - ms["evaluation (eager)"] - fixed,
            "driver's own work (graph estimate − graph evaluation − noise − minibatches − L(w*))":
                ms["whole estimate (graph)"] - ms["evaluation (graph)"] - fixed,
        }
    for row in rows + list(next(iter(derived.values()))):
        cells = []
        for model, ms in by_model.items():
            value = ms.get(row, derived[model].get(row))
            cells.append(f"{value:.1f} | {value / ms['floor']:.2f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Reading it: noise and L(w*) are work every LLC estimate must do and the floor does not; "
        "with the evaluation itself at the floor's cost, they alone put a sampler above the floor "
        "by their share. The graph makes the vectorised evaluation cheaper than the floor's "
        "separate passes."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--localization", type=float, default=100.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--models", default="mlp,dln")
    p.add_argument("--results", default=str(HERE / "RESULTS.md"))
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    set_threads(1)
    models = [m.strip() for m in args.models.split(",")]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dvz-breakdown-") as work:
        problems = llc_speed.make_problems(Path(work), models)
        by_model = {m: parts(problems[m]["path"], args.chains, args.draws, args.batch, args.lr, args.localization,
                             args.repeats) for m in models}
    body = report(by_model, args, (load_before, os.getloadavg()[0]))
    print(body)
    if not args.no_write:
        llc_speed.write_results(Path(args.results), "## llc_breakdown (CPU)", body)
        print(f"\nwritten to {args.results} (## llc_breakdown (CPU))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
