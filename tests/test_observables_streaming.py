"""Long runs' observables: written draw by draw to files (observable_folder=), and a sweep's kept and resumed in its store."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import devinterp_viz as dvz


def problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    y = (x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))[:, None]
    model = torch.nn.Linear(3, 1, bias=False).double()
    return model, x, y


def per_sample_loss(model, batch):
    return 0.5 * (model(batch[0]) - batch[1]).squeeze(-1) ** 2


def loss_fn(model, batch):
    return per_sample_loss(model, batch).mean()


RUN = dict(lr=0.01, nbeta=10.0, num_chains=3, num_draws=7, batch_size=4, seed=5, progress=False)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_recording_written_to_files_equals_the_one_held_in_memory(tmp_path, dtype):
    model, x, y = problem()
    kwargs = dict(observables={"train": (x, y), "probe": (x[:5], y[:5])}, per_sample_loss=per_sample_loss,
                  observable_dtype=dtype, **RUN)
    in_memory = dvz.estimate_llc(model, (x, y), loss_fn, **kwargs)
    on_disk = dvz.estimate_llc(model, (x, y), loss_fn, observable_folder=tmp_path / "obs", **kwargs)
    for name, shape in (("train", (3, 7, 12)), ("probe", (3, 7, 5))):
        mapped = on_disk.observables[name]
        assert isinstance(mapped, np.memmap) and mapped.shape == shape and mapped.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(mapped, in_memory.observables[name])
        np.testing.assert_array_equal(np.load(tmp_path / "obs" / f"{name}.npy"), in_memory.observables[name])
    np.testing.assert_array_equal(dvz.loss_kernel(on_disk, "train").value, dvz.loss_kernel(in_memory, "train").value)
    loaded = dvz.LLCResult.load(on_disk.save(tmp_path / "r.npz"))  # saved from the mapped files
    np.testing.assert_array_equal(loaded.observables["train"], in_memory.observables["train"])


def test_a_stopped_run_leaves_its_unreached_draws_nan_in_the_files(tmp_path):
    model, x, y = problem()
    stop = threading.Event()
    result = dvz.estimate_llc(model, (x, y), loss_fn, observables={"train": (x, y)}, per_sample_loss=per_sample_loss,
                              observable_folder=tmp_path, stop=stop, on_draw=lambda draw, losses: draw == 2 and stop.set(),
                              **RUN)
    kept = result.loss_trace.shape[1]
    assert 3 <= kept < 7 and result.observables["train"].shape == (3, kept, 12)
    written = np.load(tmp_path / "train.npy")
    assert np.isfinite(written[:, :kept]).all() and np.isnan(written[:, kept:]).all()


def test_observable_folder_never_overwrites_and_is_refused_where_it_has_no_meaning(tmp_path):
    model, x, y = problem()
    (tmp_path / "train.npy").write_bytes(b"a user's file")
    with pytest.raises(FileExistsError, match="never overwrites"):
        dvz.estimate_llc(model, (x, y), loss_fn, observables={"train": (x, y)}, per_sample_loss=per_sample_loss,
                         observable_folder=tmp_path, **RUN)
    assert (tmp_path / "train.npy").read_bytes() == b"a user's file"
    with pytest.raises(ValueError, match="not a file name"):
        dvz.estimate_llc(model, (x, y), loss_fn, observables={"a/b": (x, y)}, per_sample_loss=per_sample_loss,
                         observable_folder=tmp_path / "new", **RUN)
    with pytest.raises(ValueError, match="give observables= and per_sample_loss= too"):
        dvz.estimate_llc(model, (x, y), loss_fn, observable_folder=tmp_path / "new", **RUN)


def test_a_stopped_and_resumed_sweep_gives_the_observables_of_an_uninterrupted_one_and_other_data_other_keys(tmp_path):
    from sweep_helpers import make_model, mse, regression_problem, train_trajectory

    x, y = regression_problem()
    trajectory = dvz.Trajectory(train_trajectory(num_checkpoints=4, steps=50))

    def squared_error(model, batch):
        return (model(batch[0]) - batch[1]).square().squeeze(-1)

    def sweep(store, probe, **kwargs):  # eager throughout: graph="auto" is timed, so earlier tests could switch it on
        return dvz.sweep_llc(trajectory, make_model(), (x, y), mse, store=store, observables={"probe": probe},
                             per_sample_loss=squared_error, lr=1e-4, nbeta=20.0, num_chains=2, num_draws=6,
                             batch_size=32, progress=False, graph=False, **kwargs)

    whole = sweep(tmp_path / "whole", (x[:10], y[:10]))
    stop = threading.Event()
    first = sweep(tmp_path / "resumed", (x[:10], y[:10]), stop=stop, on_result=lambda *args: stop.set())
    assert not first.complete and len(dvz.ResultStore(tmp_path / "resumed")) == 1
    resumed = sweep(tmp_path / "resumed", (x[:10], y[:10]))
    assert resumed.complete and len(dvz.ResultStore(tmp_path / "resumed")) == len(trajectory)
    for i in range(len(trajectory)):
        np.testing.assert_array_equal(resumed.results[("all", "data", i)].observables["probe"],
                                      whole.results[("all", "data", i)].observables["probe"])
    np.testing.assert_array_equal(resumed.susceptibilities("probe").value, whole.susceptibilities("probe").value)
    for sweep_result in (whole, resumed):  # computed or reused, a stored result's observables are read from its file
        assert all(isinstance(r.observables["probe"], np.memmap) for r in sweep_result.results.values())
    # one changed number in the observable's data: a new key for every checkpoint, nothing reused
    changed_y = y[:10].clone()
    changed_y[3] += 1.0
    sweep(tmp_path / "resumed", (x[:10], changed_y))
    assert len(dvz.ResultStore(tmp_path / "resumed")) == 2 * len(trajectory)
    with pytest.raises(ValueError, match="keeps each checkpoint's observables in its store"):
        sweep(tmp_path / "other", (x[:10], y[:10]), observable_folder=tmp_path / "obs")


class _Attention(torch.nn.Module):
    """Causal self-attention over (batch, heads, positions, 4) inputs: CPU attention of 4-d inputs has no vmap batching rule."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(4, 12)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).sum(-1)


@pytest.mark.parametrize("attention", [False, True])
def test_how_chains_are_evaluated_depends_on_the_model_only_and_reruns_record_the_same_bits(attention):
    torch.manual_seed(0)
    if attention:  # vmap would fall back to its slow loop: one chain at a time
        model, x = _Attention(), torch.randn(6, 2, 5, 4)
        y = torch.zeros(6, 2, 5)
    else:
        model, x, y = problem()
    run = dict(observables={"probe": (x, y)}, per_sample_loss=lambda m, b: (m(b[0]) - b[1]).square().reshape(len(b[0]), -1).mean(-1),
               lr=1e-3, nbeta=10.0, num_chains=3, num_draws=4, batch_size=4, seed=1, progress=False)
    loss = lambda m, b: (m(b[0]) - b[1]).square().mean()
    first, second = (dvz.estimate_llc(model, (x, y), loss, **run) for _ in range(2))
    np.testing.assert_array_equal(first.observables["probe"], second.observables["probe"])
    from devinterp_viz.engine.observables import Observables
    from devinterp_viz.engine.potential import FlatLoss
    flat_loss = FlatLoss(model, loss, dvz.resolve_selection(model), torch.device("cpu"))
    recorder = Observables({"probe": (x, y)}, run["per_sample_loss"], flat_loss, num_chains=3, num_draws=1)
    recorder.record(recorder.flat_loss.w_star.expand(3, -1).clone(), 0)
    assert recorder._vectorized is (not attention)


def test_a_loaded_result_maps_its_observables_from_the_file_and_reads_a_compressed_one_whole(tmp_path):
    model, x, y = problem()
    result = dvz.estimate_llc(model, (x, y), loss_fn, observables={"train": (x, y)}, per_sample_loss=per_sample_loss, **RUN)
    loaded = dvz.LLCResult.load(result.save(tmp_path / "r.npz"))
    mapped = loaded.observables["train"]
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable and str(mapped.filename) == str(tmp_path / "r.npz")
    np.testing.assert_array_equal(mapped, result.observables["train"])
    with np.load(tmp_path / "r.npz") as data:  # the same members, deflated by another writer
        np.savez_compressed(tmp_path / "deflated.npz", **{key: data[key] for key in data.files})
    read = dvz.LLCResult.load(tmp_path / "deflated.npz").observables["train"]
    assert not isinstance(read, np.memmap)
    np.testing.assert_array_equal(read, result.observables["train"])
