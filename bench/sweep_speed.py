"""Time an LLC sweep over a 100-checkpoint TMS trajectory: in process, and on a local 2-CPU Ray cluster.

Usage (project venv, quiet machine)::

    .venv/bin/python bench/sweep_speed.py            # prints a table and writes bench/RESULTS.md
    .venv/bin/python bench/sweep_speed.py --no-write

Both executors run the same sweep (4 chains × 200 draws per checkpoint, batch 64, same seed) and
must give the same numbers. Ray's overhead per checkpoint is the extra CPU time it spends:
``(ray wall × workers − local wall) / checkpoints``, the cluster's start-up timed separately.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import numpy as np
import torch

import devinterp_viz as dvz
from devinterp_viz.zoo.tms import ToyModelOfSuperposition, tms_data, tms_loss, train_tms
from results_file import cpu_name, write_section

SECTION = "## sweep_speed (CPU)"
SETTINGS = dict(lr=1e-3, localization=100.0, num_chains=4, num_draws=200, batch_size=64, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    trajectory = dvz.Trajectory(train_tms(num_checkpoints=args.checkpoints))
    data = tms_data(6, 1024, seed=8)
    model = ToyModelOfSuperposition(6, 2)
    load = os.getloadavg()[0]

    torch.set_num_threads(1)
    start = time.perf_counter()
    local = dvz.sweep_llc(trajectory, model, data, tms_loss, progress=False, **SETTINGS)
    local_wall = time.perf_counter() - start

    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - start
    start = time.perf_counter()
    on_ray = dvz.sweep_llc(trajectory, model, data, tms_loss, executor="ray", progress=False, **SETTINGS)
    ray_wall = time.perf_counter() - start
    ray.shutdown()

    same = all(np.allclose(on_ray.results[k].loss_trace, local.results[k].loss_trace, rtol=1e-6) for k in local.results)
    n = len(trajectory)
    overhead = (ray_wall * 2 - local_wall) / n
    healthy = int(local.healthy.sum())
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, ray {ray.__version__}, "
        f"python {platform.python_version()}; {dt.date.today()}; load average before the run {load:.2f}.",
        "",
        f"Sweep: TMS (6 features, 2 hidden) trajectory of {n} log-spaced checkpoints from `train_tms()`; "
        f"per checkpoint {SETTINGS['num_chains']} chains × {SETTINGS['num_draws']} draws, batch {SETTINGS['batch_size']}, "
        f"lr {SETTINGS['lr']}, localization {SETTINGS['localization']}; {healthy}/{n} checkpoints healthy. "
        "Local: one process, 1 torch thread. Ray: a local cluster of 2 CPUs, one task per checkpoint (1 CPU each).",
        "",
        "| executor | wall s | s per checkpoint | notes |",
        "|---|---:|---:|---|",
        f"| local | {local_wall:.1f} | {local_wall / n:.3f} | |",
        f"| ray (2 workers) | {ray_wall:.1f} | {ray_wall / n:.3f} | cluster start-up {startup:.1f} s, not included |",
        "",
        f"Ray overhead per checkpoint (extra CPU time: ray wall × 2 workers − local wall, per checkpoint): "
        f"{overhead * 1000:.0f} ms. Same numbers as local: {'yes' if same else 'NO'}.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        write_section(SECTION, report)


if __name__ == "__main__":
    main()
