"""devinterp_viz and the raw forward+backward floor; run with the project's python by bench/llc_speed.py.

Modes
-----
ours   time ``devinterp_viz.estimate_llc`` on the problem file (warm-up + repeats).
ours-graph  the same with ``graph=True`` (the warm-up run traces the graph, the repeats reuse it).
floor  time chains x draws plain forward+backward passes (``torch.autograd.grad`` of the
       mean loss on pre-made minibatches of the same size, one model, no sampler): the cost
       any SGLD implementation has to pay.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_problem, mse, num_params, quiet_env, set_threads, timed  # noqa: E402

quiet_env()

import numpy as np  # noqa: E402
import torch  # noqa: E402


def ours(args, model, X, y, meta, graph="auto") -> dict:
    import devinterp_viz as dvz

    def run():
        return dvz.estimate_llc(
            model, (X, y), mse, lr=args.lr, nbeta=args.nbeta, localization=args.localization,
            num_chains=args.chains, num_draws=args.draws, batch_size=args.batch, seed=args.seed,
            device=args.device, progress=False, graph=graph,
        )

    run()  # warm-up
    times = []
    for _ in range(args.repeats):
        res, t = timed(run, args.device)
        times.append(t)
    return {
        "contender": f"devinterp_viz {getattr(dvz, '__version__', '?')}",
        "times": times,
        "llc_per_chain": np.asarray(res.llc_per_chain, dtype=float).tolist(),
        "llc_mean": res.llc_mean,
        "llc_std": res.llc_std,
        "init_loss": res.init_loss,
        "loss_trace": np.asarray(res.loss_trace, dtype=float).tolist(),
        "verdict": res.diagnostics.verdict,
        "vectorized": res.config.get("vectorized"),
        "graph": res.config.get("graph"),
    }


def floor(args, model, X, y, meta) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    index = torch.randint(X.shape[0], (args.chains * args.draws, args.batch), generator=gen).to(X.device)
    batches = [(X[i], y[i]) for i in index]
    params = [p for p in model.parameters() if p.requires_grad]

    def run():
        for batch in batches:
            torch.autograd.grad(mse(model, batch), params)

    run()  # warm-up
    times = [timed(run, args.device)[1] for _ in range(args.repeats)]
    return {"contender": "raw forward+backward floor", "times": times}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["ours", "ours-graph", "floor"])
    p.add_argument("--problem", required=True)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--nbeta", type=float, default=None)
    p.add_argument("--localization", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    set_threads(args.threads)
    model, X, y, meta = load_problem(args.problem, args.device)
    if args.mode == "floor":
        out = floor(args, model, X, y, meta)
    else:
        out = ours(args, model, X, y, meta, graph=True if args.mode == "ours-graph" else "auto")
    out.update(torch=torch.__version__, threads=torch.get_num_threads(), num_params=num_params(model))
    with open(args.out, "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
