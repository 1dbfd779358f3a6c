"""Speed of one LLC estimate: devinterp_viz against devinterp 1.3.2, devinterp 2.0.1 and the raw floor.

Usage (from the repository root, with the project's venv)::

    .venv/bin/python bench/llc_speed.py                      # CPU, 4 chains, writes bench/RESULTS.md
    .venv/bin/python bench/llc_speed.py --device cuda --chains 4,16,64
    .venv/bin/python bench/llc_speed.py --contenders floor,ours --no-write   # quick look

What it does
------------
1. Creates, if missing, two throwaway venvs ``bench/.envs/devinterp-1.3.2`` and
   ``bench/.envs/devinterp-2.0.1`` (gitignored): ``torch==2.13.0`` is installed first (this
   machine's stored CPU build), then ``devinterp==X`` with torch pinned. Where no venv can be
   made (a GPU machine without network), ``--peer-site devinterp-1.3.2=DIR`` runs that peer
   with this python and ``PYTHONPATH=DIR`` (a ``pip install --target DIR`` of devinterp).
2. Makes two problems from fixed seeds, 8192 samples each, x ~ N(0, I_20), y = teacher(x) +
   0.1 N(0, I), the student trained to w* with Adam, saved to a temporary ``.pt`` that every
   contender loads:

   - ``mlp``: 20 -> 90 -> 90 -> 1 with biases and tanh, 10,171 parameters;
   - ``dln``: deep linear network 20 -> 20 -> 20 -> 20 -> 20 without biases, 1,600
     parameters (teacher of rank 4).
3. Times, each in a fresh subprocess with the same torch thread count (``--threads``, default
   1, also OMP/MKL_NUM_THREADS), a warm-up run and then ``--repeats`` runs of one LLC estimate,
   all contenders in turn for ``--rounds`` interleaved rounds (best and median over the pooled
   runs reported) with chains x draws, batch 64, the same lr / nβ / γ:

   - ``floor``: chains x draws plain forward+backward passes on pre-made batches
     (``bench/peers/ours_peer.py floor``), no sampler;
   - ``ours``: ``devinterp_viz.estimate_llc`` with its defaults (``bench/peers/ours_peer.py
     ours``); in a fresh process one short run on a small model stays eager (``graph="auto"``);
   - ``ours_graph``: the same with ``graph=True``: the warm-up run traces the value-and-grad
     graph (1-2 s the first time in a process, for the import), the timed runs reuse it — the
     steady state of a sweep or a calibration, where ``"auto"`` traces too;
   - ``devinterp1``: ``estimate_learning_coeff_with_summary`` with a shuffled DataLoader
     (``bench/peers/devinterp1_peer.py``); L(w*) passed in (the problem's full-data value);
   - ``devinterp2``: ``devinterp.slt.sampling.sample`` + ``compute_llc`` (zarr output in a
     temp dir), the rows fed as ``input_ids = [index, 0]`` since devinterp 2 takes language
     data only (``bench/peers/devinterp2_peer.py``); L(w*) is devinterp's own (32 batches).
4. Prints draws/s = chains x draws / best time, the ratios ours/floor, devinterp1/ours,
   devinterp2/ours against the targets (ours <= 1.3x floor, >= 2x faster than devinterp
   1.3.2, >= 15x faster than devinterp 2.0.1), checks that the LLC estimates agree within
   the chains' standard errors (z = difference / combined SE, |z| <= 2 counts as agreeing,
   all re-based on the common full-data L(w*)), and writes it all with the machine
   description to the section ``## llc_speed (CPU)`` (or ``(GPU)``) of bench/RESULTS.md.

Timings need a quiet machine: the 1-minute load average before and after is recorded and a
warning is written when it is above 0.5 per core.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
TORCH_SPEC = "torch==2.13.0"
ENVS = {"devinterp-1.3.2": "devinterp==1.3.2", "devinterp-2.0.1": "devinterp==2.0.1"}
CONTENDERS = {
    "floor": ("ours_peer.py", "floor", None),
    "ours": ("ours_peer.py", "ours", None),
    "ours_graph": ("ours_peer.py", "ours-graph", None),
    "devinterp1": ("devinterp1_peer.py", "bench", "devinterp-1.3.2"),
    "devinterp2": ("devinterp2_peer.py", "bench", "devinterp-2.0.1"),
}
ARCHS = {
    "mlp": {"kind": "mlp", "widths": [20, 90, 90, 1], "bias": True, "activation": "tanh"},
    "dln": {"kind": "dln", "widths": [20, 20, 20, 20, 20], "bias": False, "activation": "none"},
}
NUM_SAMPLES = 8192


# ------------------------------------------------------------------------------- peer venvs
def ensure_env(name: str, envs_dir: Path = HERE / ".envs", log=print) -> Path:
    """Python of the throwaway venv ``envs_dir/name`` with devinterp installed (made if missing)."""
    env = envs_dir / name
    python = env / "bin" / "python"
    ready = env / ".dvz-ready"
    if ready.exists() and python.exists():
        return python
    spec = ENVS[name]
    log(f"[env] creating {env} ({TORCH_SPEC} first, then {spec})")
    envs_dir.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(env)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [TORCH_SPEC], check=True)  # before anything else: never a CUDA build
    subprocess.run(pip + [spec, TORCH_SPEC], check=True)
    subprocess.run([str(python), "-c", "import devinterp, torch"], check=True)
    ready.write_text(spec + "\n")
    return python


def peer_command(name: str | None, args, envs_dir: Path) -> tuple[str, dict]:
    """(python, extra environment) to run a contender with."""
    env = {}
    if name is None:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return sys.executable, env
    sites = dict(item.split("=", 1) for item in args.peer_site)
    if name in sites:
        env["PYTHONPATH"] = sites[name]
        return sys.executable, env
    return str(ensure_env(name, envs_dir)), env


# ------------------------------------------------------------------------------- problems
def make_problems(out_dir: Path, models: list[str], seed: int = 0) -> dict[str, dict]:
    """Write one problem file per model; return {model: {path, num_params, init_loss}}."""
    import torch

    sys.path.insert(0, str(PEERS))
    from common import build_model, mse, num_params

    problems = {}
    for name in models:
        arch = ARCHS[name]
        torch.manual_seed(seed + 1000 * list(ARCHS).index(name))  # a model's problem does not depend on --models
        X = torch.randn(NUM_SAMPLES, arch["widths"][0])
        teacher = build_model(arch)
        if name == "dln":  # a singular teacher: its product has rank 4
            with torch.no_grad():
                for layer in teacher:
                    layer.weight.copy_(torch.randn_like(layer.weight) / math.sqrt(layer.weight.shape[1]))
                w = teacher[1].weight
                u, s, vh = torch.linalg.svd(w)
                teacher[1].weight.copy_(u[:, :4] @ torch.diag(s[:4]) @ vh[:4])
        with torch.no_grad():
            y = teacher(X) + 0.1 * torch.randn(NUM_SAMPLES, arch["widths"][-1])
        student = build_model(arch)
        if name == "dln":
            with torch.no_grad():
                for layer in student:
                    layer.weight.mul_(0.5)
        opt = torch.optim.Adam(student.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1500)
        gen = torch.Generator().manual_seed(seed + 7)
        for step in range(1500):
            idx = torch.randint(NUM_SAMPLES, (1024,), generator=gen)
            opt.zero_grad()
            mse(student, (X[idx], y[idx])).backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            init_loss = float(mse(student, (X, y)))
        path = out_dir / f"{name}.pt"
        torch.save(
            {"arch": json.dumps(arch), "state_dict": student.state_dict(), "X": X, "y": y, "init_loss": init_loss},
            path,
        )
        problems[name] = {"path": str(path), "num_params": num_params(student), "init_loss": init_loss,
                          "widths": arch["widths"]}
    return problems


# ------------------------------------------------------------------------------- running
def run_contender(key: str, problem: dict, chains: int, args, envs_dir: Path, work: Path) -> dict:
    script, mode, env_name = CONTENDERS[key]
    out = work / f"{key}-{Path(problem['path']).stem}-{chains}.json"
    log = work / f"{key}-{Path(problem['path']).stem}-{chains}.log"
    try:
        python, extra = peer_command(env_name, args, envs_dir)
    except (subprocess.CalledProcessError, OSError) as err:
        return {"error": f"could not set up {env_name}: {err}"}
    cmd = [python, str(PEERS / script), mode, "--problem", problem["path"], "--chains", str(chains),
           "--draws", str(args.draws), "--batch", str(args.batch), "--lr", str(args.lr),
           "--nbeta", repr(args.nbeta), "--localization", str(args.localization), "--seed", str(args.seed),
           "--repeats", str(args.repeats if env_name is None else args.peer_repeats), "--threads", str(args.threads), "--device", args.device,
           "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TQDM_DISABLE="1", PYTHONUNBUFFERED="1", **extra)
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=args.timeout)
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-5:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(out.read_text())


def run_rounds(keys: list[str], problem: dict, chains: int, args, envs_dir: Path, work: Path) -> dict[str, dict]:
    """Every contender ``args.rounds`` times, interleaved, each time in a fresh process.

    On a shared machine a neighbour's burst of work slows whichever process runs at that
    moment; interleaving the contenders spreads such bursts over all of them, and the best
    time of all rounds is each contender's least disturbed run. The timed runs of all rounds
    are pooled; estimates are the last round's (the same seed gives the same numbers).
    """
    pooled: dict[str, dict] = {}
    for round_index in range(args.rounds):
        for key in keys:
            print(f"[run] {chains} chains, {Path(problem['path']).stem}, {key} (round {round_index + 1}/{args.rounds}) ...", flush=True)
            result = run_contender(key, problem, chains, args, envs_dir, work)
            earlier = pooled.get(key)
            if earlier is not None and "error" not in earlier and "error" not in result:
                result["times"] = earlier["times"] + result["times"]
            if earlier is None or "error" not in earlier:
                pooled[key] = result
    return pooled


def stats(result: dict, chains: int, draws: int, init_loss: float, nbeta: float) -> dict:
    import numpy as np

    times = sorted(result["times"])
    best, median = times[0], times[len(times) // 2]
    row = {"best": best, "median": median, "draws_per_s": chains * draws / best}
    if result.get("graph"):
        row["graph"] = result["graph"]  # what devinterp_viz evaluated the chains with
    if "loss_trace" in result:
        trace = np.asarray(result["loss_trace"], dtype=float)
        own = np.asarray(result["llc_per_chain"], dtype=float)
        common = nbeta * (trace.mean(axis=1) - init_loss)
        for label, values in (("own", own), ("common", common)):
            finite = values[np.isfinite(values)]
            row[f"llc_{label}"] = float(finite.mean())
            row[f"se_{label}"] = float(finite.std(ddof=1) / math.sqrt(finite.size)) if finite.size > 1 else float("nan")
        row["init_loss_own"] = result.get("init_loss")
    return row


def machine(device: str) -> dict:
    import torch

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "load_before": os.getloadavg()[0]}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu)
        if model:
            info["cpu"] = model.group(1).strip()
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ------------------------------------------------------------------------------- report
def report(info: dict, problems: dict, rows: dict, args) -> str:
    lines = []
    chip = f"GPU {info['gpu']}, " if "gpu" in info else ""
    lines.append(
        f"Machine: {chip}CPU {info['cpu']}, {info['cores']} cores; torch {info['torch']} "
        + ("(every contender runs this python; devinterp from --peer-site folders)" if args.peer_site
           else "(project venv; the peers' venvs pin the same torch)")
        + f", python {info['python']}; {info['date']}. "
        f"torch threads: {args.threads} for every contender (torch.set_num_threads, OMP/MKL_NUM_THREADS). "
        f"Load average (1 min) {info['load_before']:.2f} before, {info['load_after']:.2f} after."
    )
    if max(info["load_before"], info["load_after"]) > 0.5 * (info["cores"] or 1):
        lines.append("")
        lines.append("**Warning: the machine was busy (load average above half the cores); timings are noisy.**")
    lines.append("")
    nb = args.nbeta
    lines.append(
        f"Settings: {args.draws} draws per chain, batch {args.batch}, lr {args.lr}, nβ {nb:.4f} "
        f"(= {args.batch}/ln {args.batch}), localization {args.localization}, seed {args.seed}; "
        f"{NUM_SAMPLES} samples, x ~ N(0, I_20), y = teacher(x) + 0.1·noise; {args.rounds} interleaved "
        f"round(s) of every contender, each a fresh process with a warm-up and {args.repeats} timed runs "
        f"(devinterp peers: {args.peer_repeats}); best and median over all rounds. Device: {args.device}."
    )
    for name, p in problems.items():
        lines.append(f"- `{name}`: widths {p['widths']}, {p['num_params']:,} parameters, L(w*) = {p['init_loss']:.6g} (full data)")
    lines.append("")
    for chains, by_model in rows.items():
        lines.append(f"### {chains} chains × {args.draws} draws")
        lines.append("")
        lines.append("| model | contender | best s | median s | draws/s | LLC (own L(w*)) ± SE | LLC (common L(w*)) ± SE | z vs ours |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
        ratio_lines = []
        for model, by_key in by_model.items():
            ours = by_key.get("ours", {})
            for key, row in by_key.items():
                if "error" in row:
                    lines.append(f"| {model} | {key} | failed: {row['error'][:150]} | | | | | |")
                    continue
                llc_own = f"{row['llc_own']:.3f} ± {row['se_own']:.3f}" if "llc_own" in row else "–"
                llc_common = f"{row['llc_common']:.3f} ± {row['se_common']:.3f}" if "llc_common" in row else "–"
                z = "–"
                if key != "ours" and "llc_common" in row and "llc_common" in ours:
                    se = math.hypot(row["se_common"], ours["se_common"])
                    zval = (row["llc_common"] - ours["llc_common"]) / se if se > 0 else float("nan")
                    z = f"{zval:+.2f} {'agrees' if abs(zval) <= 2 else 'DIFFERS'}"
                label = f"{key} ({row['graph']})" if "graph" in row else key
                lines.append(
                    f"| {model} | {label} | {row['best']:.3f} | {row['median']:.3f} | {row['draws_per_s']:,.0f} | "
                    f"{llc_own} | {llc_common} | {z} |"
                )
            parts = []
            for name in ("ours", "ours_graph"):
                mine = by_key.get(name, {})
                if "best" in mine and "best" in by_key.get("floor", {}):
                    r = mine["best"] / by_key["floor"]["best"]
                    parts.append(f"{name}/floor = {r:.2f}× (target ≤ 1.3×: {'met' if r <= 1.3 else 'NOT met'})")
                for key, target in (("devinterp1", 2.0), ("devinterp2", 15.0)):
                    if "best" in mine and "best" in by_key.get(key, {}):
                        r = by_key[key]["best"] / mine["best"]
                        parts.append(f"{key}/{name} = {r:.1f}× (target ≥ {target:g}×: {'met' if r >= target else 'NOT met'})")
            if parts:
                ratio_lines.append(f"- `{model}`: " + "; ".join(parts))
        lines.append("")
        lines.extend(ratio_lines)
        lines.append("")
    lines.append(
        "Notes: devinterp 1.3.2 runs chains one after another through a DataLoader (per-sample "
        "indexing + collate) and a per-parameter optimizer; devinterp 2.0.1 adds a HuggingFace "
        "Dataset, per-token losses and zarr writes (its progress bars are on, stderr discarded). "
        "\"own L(w*)\": each tool's own L(w*) (devinterp 1.3.2 was given the full-data value; "
        "devinterp 2.0.1 averages 32 shuffled batches per chain); \"common\": all re-based on the "
        "full-data L(w*). SE = std across chains (ddof=1) / √chains. `ours_graph`: `graph=True`, "
        "timed after a warm-up run that traced the graph (a sweep's or calibration's steady state; "
        "`graph=\"auto\"` traces there too, but not for one short run in a fresh process)."
    )
    return "\n".join(lines)


def write_results(path: Path, heading: str, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n\nRecorded by the scripts in bench/; newest run of each replaces the last.\n"
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--chains", default="4", help="comma-separated chain counts, e.g. 4,16,64")
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--nbeta", type=float, default=None, help="default batch/ln(batch)")
    p.add_argument("--localization", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all contenders (timed runs pooled)")
    p.add_argument("--peer-repeats", type=int, default=None, help="timed runs of the devinterp peers (default --repeats)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default="mlp,dln")
    p.add_argument("--contenders", default="floor,ours,ours_graph,devinterp1,devinterp2")
    p.add_argument("--envs-dir", default=str(HERE / ".envs"))
    p.add_argument("--peer-site", action="append", default=[], metavar="ENV=DIR",
                   help="run peer ENV (devinterp-1.3.2 / devinterp-2.0.1) with this python and PYTHONPATH=DIR")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per contender run")
    p.add_argument("--results", default=str(HERE / "RESULTS.md"))
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args(argv)
    if args.peer_repeats is None:
        args.peer_repeats = args.repeats
    if args.nbeta is None:
        args.nbeta = args.batch / math.log(args.batch)
    chain_counts = [int(c) for c in args.chains.split(",")]
    models = [m.strip() for m in args.models.split(",")]
    keys = [k.strip() for k in args.contenders.split(",")]
    unknown = [k for k in keys if k not in CONTENDERS] + [m for m in models if m not in ARCHS]
    if unknown:
        p.error(f"unknown contender/model: {unknown}")
    envs_dir = Path(args.envs_dir)
    sites = dict(item.split("=", 1) for item in args.peer_site)
    for key in keys:  # set the venvs up first, before any timing
        env_name = CONTENDERS[key][2]
        if env_name and env_name not in sites:
            ensure_env(env_name, envs_dir)

    info = machine(args.device)
    work = Path(tempfile.mkdtemp(prefix="dvz-llc-speed-"))
    try:
        print(f"[problems] training {models} ...", flush=True)
        problems = make_problems(work, models, seed=args.seed)
        rows: dict = {}
        for chains in chain_counts:
            rows[chains] = {}
            for model in models:
                rows[chains][model] = {}
                results = run_rounds(keys, problems[model], chains, args, envs_dir, work)
                for key, result in results.items():
                    if "error" in result:
                        row = result
                    else:
                        row = stats(result, chains, args.draws, problems[model]["init_loss"], args.nbeta)
                    rows[chains][model][key] = row
                    print(f"        {key}:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        info["load_after"] = os.getloadavg()[0]
        body = report(info, problems, rows, args)
        print()
        print(body)
        if not args.no_write:
            heading = "## llc_speed (GPU)" if args.device.startswith("cuda") else "## llc_speed (CPU)"
            write_results(Path(args.results), heading, body)
            print(f"\nwritten to {args.results} ({heading})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
