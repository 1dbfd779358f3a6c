"""Time and peak memory of a 4-chain LLC estimate on language models of 1M to ~160M weights (random init, HF GPT-NeoX configs).

Each size runs in its own process (peak RSS is per process); "added" is the peak resident memory
over what the process held just before the estimate (Python, torch, the model, its data, and the
modules a warm-up estimate of a 3-weight model imported).
"Needed" is what the chains cannot do without: per chain its weights, their gradient and the
sampler's noise, all float32 — 3 × chains × weights × 4 bytes — plus the activations of one
forward and backward pass over the rows all chains evaluate at once (chains × batch), measured in
a process of its own with a plain ``loss.backward()``: the raw floor any sampler pays. Usage:

    python bench/scale.py                       # the sizes that fit this machine, results to bench/RESULTS.md
    python bench/scale.py --sizes 1M,14M --no-write
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from results_file import cpu_name, write_section

# GPT-NeoX configs at the sizes of Pythia's (hidden, layers, heads), vocabulary cut for the 1M one
SIZES = {
    "1M": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=4096),
    "14M": dict(hidden_size=128, num_hidden_layers=6, num_attention_heads=4, vocab_size=50304),
    "70M": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, vocab_size=50304),
    "160M": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, vocab_size=50304),
}

SETUP = r"""
import json, resource, sys, time
import torch, transformers
size, chains, draws, seq, batch, chunk = json.loads(sys.argv[1])
torch.manual_seed(0)
cfg = transformers.GPTNeoXConfig(intermediate_size=4 * size["hidden_size"], max_position_embeddings=seq, **size)
model = transformers.GPTNeoXForCausalLM(cfg).eval()
n = sum(p.numel() for p in model.parameters())
"""

CHILD = SETUP + r"""
import devinterp_viz as dvz
tokens = torch.randint(0, size["vocab_size"], (8 * batch, seq))
loss_fn = lambda m, b: m(input_ids=b, labels=b).loss
tiny = torch.nn.Linear(2, 1)  # a warm-up: the modules an estimate imports are not its memory
dvz.estimate_llc(tiny, (torch.randn(8, 2), torch.randn(8, 1)), lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
                 num_chains=2, num_draws=2, batch_size=4, progress=False)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started = time.perf_counter()
res = dvz.estimate_llc(model, tokens, loss_fn, lr=1e-6, nbeta=10.0, num_chains=chains, num_draws=draws, batch_size=batch,
                       chain_chunk_size=chunk, progress=False, graph=False)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"weights": n, "seconds": seconds, "steps": draws, "peak": peak, "before": base,
                  "vectorized": res.config["vectorized"], "finite": bool(torch.isfinite(torch.tensor(res.loss_trace)).all())}))
"""

FLOOR = SETUP + r"""
tokens = torch.randint(0, size["vocab_size"], ((chunk or chains) * batch, seq))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model(input_ids=tokens, labels=tokens).loss.backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"activations": peak - base - 4 * n}))
"""


def child(script: str, args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, args], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1][:200])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(size: str, chains: int, draws: int, seq: int, batch: int, chunk: int | None) -> dict:
    args = json.dumps([SIZES[size], chains, draws, seq, batch, chunk])
    started = time.perf_counter()
    try:
        out = child(CHILD, args)
        out.update(child(FLOOR, args))
    except RuntimeError as err:
        return {"size": size, "error": str(err), "wall": time.perf_counter() - started}
    return {"size": size, "chunk": chunk, **out}


def table(rows: list[dict], chains: int, seq: int, batch: int) -> str:
    lines = [f"Machine: {cpu_name()}, CPU only (torch {__import__('torch').__version__}). {chains} chains, batch {batch} × "
             f"{seq} tokens, eager evaluation; time per sampler step includes L(w*) and set-up spread over the steps.",
             "", "| model | weights | chain chunk | s / step | peak RSS | added by the estimate | need 3·chains·n·4 B "
             "| + activations = floor | added / need | added / floor | vmapped |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['size']} | – | – | – | – | – | – | – | – | – | failed: {row['error']} |")
            continue
        need, added = 3 * chains * row["weights"] * 4, row["peak"] - row["before"]
        floor = need + row["activations"]
        lines.append(f"| GPT-NeoX {row['size']} | {row['weights'] / 1e6:.1f}M | {row['chunk'] or 'all'} | "
                     f"{row['seconds'] / row['steps']:.2f} | {row['peak'] / 2**30:.2f} GiB | {added / 2**30:.2f} GiB | "
                     f"{need / 2**30:.2f} GiB | {floor / 2**30:.2f} GiB | {added / need:.2f} | {added / floor:.2f} | "
                     f"{row['vectorized']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,14M,70M")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--chunks", default="all", help="chain_chunk_size values to try, e.g. all,1")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        for chunk in args.chunks.split(","):
            row = run(size, args.chains, args.draws, args.seq, args.batch, None if chunk == "all" else int(chunk))
            print(row, flush=True)
            rows.append(row)
    text = table(rows, args.chains, args.seq, args.batch)
    print(text)
    if not args.no_write:
        write_section("## Scale: 4-chain estimates of 1M–160M-weight language models (`bench/scale.py`)", text)


if __name__ == "__main__":
    main()
