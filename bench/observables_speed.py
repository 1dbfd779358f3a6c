"""Time and memory per draw of per-token observables, ours against devinterp 2.0.1's ``sample(observables=...)``.

The same random-init HF GPT-2 (sizes below), the same training and probe token sequences, the same
settings (4 chains, batch 8 × 32 tokens, lr 1e-4, nβ 10, γ 100); each contender samples with no
observable and with one per-token observable of 32 probe sequences (devinterp: ``(probe, 4)``, 4
batches of 8 per draw; ours: ``observables={"probe": ids}``, ``per_sample_loss`` = per-token
cross-entropy). The observable's cost per draw is the difference of the two runs' seconds per
draw; "added" is the peak resident memory over what the process held before sampling (after a
warm-up run of 2 draws). Every (contender, size, observable) runs in its own process,
interleaved, best of ``--repeats``. devinterp runs in bench/.envs/devinterp-2.0.1 (made if
missing, see bench/llc_speed.py). Usage::

    python bench/observables_speed.py                    # results to bench/RESULTS.md
    python bench/observables_speed.py --sizes 1M --draws 10 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from llc_speed import ensure_env  # noqa: E402
from results_file import cpu_name, write_section  # noqa: E402

SIZES = {  # GPT-2 configs: (width, layers, heads, vocabulary)
    "zoo-size 0.1M": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=64),
    "1M": dict(n_embd=128, n_layer=4, n_head=4, vocab_size=512),
    "10M": dict(n_embd=320, n_layer=6, n_head=5, vocab_size=8192),
}
SECTION = "## observables_speed (per-token observables per draw, against devinterp 2.0.1)"
SEQ, BATCH, PROBE, CHAINS = 32, 8, 32, 4

SETUP = r"""
import json, resource, sys, time
import torch, transformers
torch.set_num_threads(1)
size, draws, with_observable = json.loads(sys.argv[1])
torch.manual_seed(0)
cfg = transformers.GPT2Config(n_positions=SEQ, **size)
model = transformers.GPT2LMHeadModel(cfg).eval()
weights = sum(p.numel() for p in model.parameters())
tokens = torch.randint(0, size["vocab_size"], (16 * BATCH, SEQ))
probe = torch.randint(0, size["vocab_size"], (PROBE, SEQ))
SETTINGS = dict(lr=1e-4, nbeta=10.0, localization=100.0)
def per_token_loss(m, ids):
    logits = m(input_ids=ids).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # (batch, SEQ - 1)
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
""".replace("SEQ", str(SEQ)).replace("BATCH", str(BATCH)).replace("PROBE", str(PROBE))

OURS = SETUP + r"""
import devinterp_viz as dvz
loss_fn = lambda m, ids: per_token_loss(m, ids).mean()
def run(n):
    extra = dict(observables={"probe": probe}, per_sample_loss=per_token_loss) if with_observable else {}
    return dvz.estimate_llc(model, tokens, loss_fn, num_chains=CHAINS, num_draws=n, batch_size=BATCH,
                            lr=SETTINGS["lr"], nbeta=SETTINGS["nbeta"], localization=SETTINGS["localization"],
                            progress=False, seed=0, **extra)
""".replace("CHAINS", str(CHAINS)).replace("BATCH", str(BATCH))

DEVINTERP = SETUP + r"""
import os, shutil, tempfile, warnings
warnings.filterwarnings("ignore")
from datasets import Dataset
from devinterp.slt.sampling import sample
train, probe_set = Dataset.from_dict({"input_ids": tokens.numpy()}), Dataset.from_dict({"input_ids": probe.numpy()})
train.set_format("torch"); probe_set.set_format("torch")
tmp = tempfile.mkdtemp(prefix="dvz-obs-bench-")
def run(n, k=[0]):
    k[0] += 1
    observables = {"probe": (probe_set, PROBE // BATCH)} if with_observable else {}
    tree = sample(model, train, observables=observables, lr=SETTINGS["lr"], n_beta=SETTINGS["nbeta"],
                  localization=SETTINGS["localization"], num_chains=CHAINS, num_draws=n, batch_size=BATCH,
                  num_init_loss_batches=1, device="cpu", output_path=os.path.join(tmp, f"s{k[0]}.zarr"),
                  loss_fn=per_token_loss)
    return tree
""".replace("CHAINS", str(CHAINS)).replace("BATCH", str(BATCH)).replace("PROBE", str(PROBE))

MEASURE = r"""
run(2)  # warm-up: imports, allocator, zarr
before = rss()
tick = time.perf_counter()
run(draws)
seconds = time.perf_counter() - tick
print(json.dumps({"weights": weights, "seconds": seconds, "draws": draws, "added": rss() - before}))
"""


def child(contender: str, size: str, draws: int, with_observable: bool) -> dict:
    """One measurement in a fresh process."""
    if contender == "ours":
        python, script = sys.executable, OURS + MEASURE
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    else:
        python, script = str(ensure_env("devinterp-2.0.1")), DEVINTERP + MEASURE
        env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    out = subprocess.run([python, "-c", script, json.dumps([SIZES[size], draws, with_observable])],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{contender} {size} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: dict, sizes: list[str], draws: int) -> str:
    lines = ["| model | weights | contender | s / draw, no observable | s / draw, with observable | observable's cost / draw | "
             "peak added, no observable | with observable |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for size in sizes:
        for contender in ("ours", "devinterp 2.0.1"):
            plain, observed = rows[(contender, size, False)], rows[(contender, size, True)]
            per_draw = [plain["seconds"] / draws, observed["seconds"] / draws]
            lines.append(f"| {size} | {plain['weights'] / 1e6:.2f}M | {contender} | {per_draw[0]:.3f} | {per_draw[1]:.3f} | "
                         f"{per_draw[1] - per_draw[0]:.3f} s | {plain['added'] / 2**20:.0f} MiB | {observed['added'] / 2**20:.0f} MiB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: " + ", ".join(SIZES))
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    load_before = os.getloadavg()[0]
    rows: dict = {}
    for _ in range(args.repeats):
        for size in sizes:
            for with_observable in (False, True):
                for contender, label in (("ours", "ours"), ("devinterp", "devinterp 2.0.1")):
                    row = child(contender, size, args.draws, with_observable)
                    key = (label, size, with_observable)
                    if key not in rows or row["seconds"] < rows[key]["seconds"]:
                        rows[key] = row
                    print(label, size, with_observable, f"{row['seconds'] / args.draws:.3f} s/draw", flush=True)
    text = table(rows, sizes, args.draws)
    print(text)
    if not args.no_write:
        import torch

        stamp = time.strftime("%Y-%m-%d %H:%M")
        write_section(SECTION,
            f"Run {stamp} on {cpu_name()} ({os.cpu_count()} CPUs), torch {torch.__version__}, 1 torch thread per process; "
            f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after. {CHAINS} chains × {args.draws} "
            f"draws, batch {BATCH} × {SEQ} tokens, one per-token observable of {PROBE} sequences ({PROBE * (SEQ - 1)} tokens); "
            f"best of {args.repeats}, each in its own process, interleaved. `python bench/observables_speed.py`.\n\n" + text)


if __name__ == "__main__":
    main()
