"""devinterp 2.x contender; runs inside bench/.envs/devinterp-2.0.1 (see bench/llc_speed.py).

devinterp 2 samples language models only: its data set is a HuggingFace ``datasets.Dataset``
with an ``input_ids`` column and its loss is per token, ``loss_fn(model, input_ids) ->
(batch, seq-1)``. To run it on the benchmark's regression problems each row's
``input_ids`` is ``[i, 0]`` (the row index and a dummy second token, so one "token position")
and the loss function looks the rows up: ``(model(X[i]) - y[i])**2`` averaged over outputs.
The sampler, minibatching, zarr writing and init-loss computation are devinterp's own.

Modes
-----
bench    time ``devinterp.slt.sampling.sample`` + ``compute_llc`` on the problem file
         (warm-up + repeats) and write times, LLCs and traces to ``--out`` (JSON).
fixture  write the DataTree of ``sample`` and the Dataset of ``compute_llc`` of tiny
         language-model runs as JSON (``xarray``'s ``to_dict``) for tests/data; see
         bench/make_interop_fixtures.py.
covariances  write the sample DataTrees of two weight restrictions ("full" and "unembed") with
         two observables, devinterp's ``compute_susceptibilities`` of them and its
         ``compute_bif`` (covariance and correlation) of the full run, as JSON for tests/data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_problem, quiet_env, set_threads, timed  # noqa: E402

quiet_env()
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

from devinterp.slt.bif import compute_bif  # noqa: E402
from devinterp.slt.llc import compute_llc  # noqa: E402
from devinterp.slt.susceptibilities import compute_susceptibilities  # noqa: E402
from devinterp.slt.sampling import sample  # noqa: E402


def _version() -> str:
    from importlib.metadata import version

    return version("devinterp")


def bench(args) -> None:
    set_threads(args.threads)
    model, X, y, meta = load_problem(args.problem, args.device)
    n = X.shape[0]
    ids = np.stack([np.arange(n), np.zeros(n, dtype=np.int64)], axis=1)
    dataset = Dataset.from_dict({"input_ids": ids})
    dataset.set_format("torch")

    def loss_fn(m, input_ids):
        idx = input_ids[:, 0]
        return ((m(X[idx]) - y[idx]) ** 2).mean(dim=-1, keepdim=True)  # (batch, 1 token)

    tmp = tempfile.mkdtemp(prefix="dvz-bench-di2-")

    def run(k=[0]):
        k[0] += 1
        path = os.path.join(tmp, f"samples{k[0]}.zarr")
        samples = sample(
            model, dataset, observables={}, lr=args.lr, n_beta=args.nbeta,
            num_chains=args.chains, num_draws=args.draws, batch_size=args.batch,
            localization=args.localization, init_seed=args.seed, device=args.device,
            output_path=path, loss_fn=loss_fn,
        )
        return compute_llc(samples)

    try:
        run()  # warm-up
        times = []
        for _ in range(args.repeats):
            res, t = timed(run, args.device)
            times.append(t)
        res = res.load()
        out = {
            "contender": f"devinterp {_version()}",
            "times": times,
            "llc_per_chain": res["llc_per_chain"].values.astype(float).tolist(),
            "llc_mean": float(res["llc_mean"]),
            "llc_std": float(res["llc_std"]),
            "init_loss": float(res["init_loss"]),
            "loss_trace": res["loss_trace"].values.astype(float).tolist(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh)


class TinyLM(torch.nn.Module):
    """A bigram language model: embedding then unembedding (vocab 6, width 4)."""

    def __init__(self, vocab: int = 6, width: int = 4):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.unembed = torch.nn.Linear(width, vocab)

    def forward(self, input_ids):
        return self.unembed(self.embed(input_ids))


def _tiny_lm_problem():
    torch.manual_seed(0)
    vocab, seq, n = 6, 5, 128
    trans = torch.softmax(3 * torch.randn(vocab, vocab), dim=-1)
    ids = torch.zeros(n, seq, dtype=torch.long)
    ids[:, 0] = torch.randint(vocab, (n,))
    for t in range(1, seq):
        ids[:, t] = torch.multinomial(trans[ids[:, t - 1]], 1)[:, 0]
    model = TinyLM(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(300):
        opt.zero_grad()
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
    dataset = Dataset.from_dict({"input_ids": ids.numpy()})
    dataset.set_format("torch")
    probe = Dataset.from_dict({"input_ids": ids[:8].numpy()})
    probe.set_format("torch")
    return model, dataset, probe


def _to_json(obj) -> dict:
    import xarray as xr

    def encode(ds):
        ds = ds.load()
        out = ds.to_dict(data="list")
        for name, var in out["data_vars"].items():
            var["dtype"] = str(ds[name].dtype)  # to_dict drops it; tests restore float32
        return out

    if isinstance(obj, xr.DataTree):
        if obj.children:
            return {"type": "DataTree", "children": {name: encode(child.to_dataset()) for name, child in obj.children.items()}}
        return {"type": "DataTree", "root": encode(obj.to_dataset())}
    return {"type": "Dataset", "dataset": encode(obj)}


def fixture(args) -> None:
    set_threads(1)
    model, dataset, probe = _tiny_lm_problem()
    tmp = tempfile.mkdtemp(prefix="dvz-fixture-di2-")
    runs = {}
    try:
        specs = {
            # devinterp 2's canonical use: a language model, default (cross-entropy) loss,
            # one observable, no burn-in
            "lm": dict(num_chains=3, num_draws=20, num_burnin_steps=0, num_steps_bw_draws=1,
                       observables={"probe": (probe, 1)}),
            # burn-in and thinning: sampling_loss holds the draws, sampling_loss_micro every step
            "lm_burnin": dict(num_chains=2, num_draws=10, num_burnin_steps=4,
                              num_steps_bw_draws=2, observables={}),
        }
        for name, spec in specs.items():
            observables = spec.pop("observables")
            settings = dict(lr=1e-3, n_beta=10.0, batch_size=4, localization=100.0,
                            num_init_loss_batches=4, init_seed=100, **spec)
            samples = sample(model, dataset, observables=observables, device="cpu",
                             output_path=os.path.join(tmp, f"{name}.zarr"), **settings)
            llc = compute_llc(samples)
            runs[name] = {
                "call": "devinterp.slt.sampling.sample(...) and devinterp.slt.llc.compute_llc(samples)",
                "settings": settings,
                "sample": _to_json(samples),
                "compute_llc": _to_json(llc),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "producer": "bench/make_interop_fixtures.py",
        "devinterp_version": _version(),
        "torch": torch.__version__,
        "runs": runs,
    }
    with open(args.out, "w") as fh:
        json.dump(out, fh, default=_default)


def covariances(args) -> None:
    set_threads(1)
    model, dataset, probe = _tiny_lm_problem()
    train = dataset.select(range(8, 16))  # the sampling task as an observable: a fixed set of training rows
    observables = {"train": (train, 1), "probe": (probe, 1)}
    restrictions = {"full": None, "unembed": {"unembed.weight": None, "unembed.bias": None}}
    settings = dict(lr=1e-3, n_beta=10.0, batch_size=4, localization=100.0, num_init_loss_batches=4,
                    init_seed=100, num_chains=4, num_draws=60, num_burnin_steps=0, num_steps_bw_draws=1)
    tmp = tempfile.mkdtemp(prefix="dvz-fixture-di2-")
    try:
        samples = {
            name: sample(model, dataset, observables=observables, param_masks=masks, device="cpu",
                         output_path=os.path.join(tmp, f"{name}.zarr"), **settings)
            for name, masks in restrictions.items()
        }
        sus = compute_susceptibilities(samples, "train")
        out = {
            "producer": "bench/make_interop_fixtures.py",
            "devinterp_version": _version(),
            "torch": torch.__version__,
            "call": "sample(..., param_masks=restriction) per restriction; compute_susceptibilities(samples, 'train'); "
                    "compute_bif(samples['full'], compute_covariance=...)",
            "settings": settings,
            "restrictions": {name: None if masks is None else sorted(masks) for name, masks in restrictions.items()},
            "samples": {name: _to_json(tree) for name, tree in samples.items()},
            "susceptibilities": _to_json(sus),
            "bif_covariance": _to_json(compute_bif(samples["full"], compute_covariance=True, device="cpu")),
            "bif_correlation": _to_json(compute_bif(samples["full"], compute_covariance=False, device="cpu")),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(args.out, "w") as fh:
        json.dump(out, fh, default=_default)


def _default(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["bench", "fixture", "covariances"])
    p.add_argument("--problem")
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
    {"bench": bench, "fixture": fixture, "covariances": covariances}[args.mode](args)


if __name__ == "__main__":
    main()
