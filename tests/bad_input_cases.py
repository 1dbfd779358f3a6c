"""Bad inputs to the public functions, shared by tests/test_bad_input.py (which asserts them) and bench/bad_inputs.py.

Each case calls one public function with one thing wrong. It is handled clearly when the call
raises a ValueError or TypeError before any sampling, with a message that names what is wrong
(``expect``: regular expressions the message must match), and leaves the user's model as it was.
A few cases are not errors by design (a sweep marks a checkpoint with NaN weights failed and goes
on); they carry their own check.
"""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import devinterp_viz as dvz  # noqa: E402
from devinterp_viz.engine import llc as llc_module  # noqa: E402
from tests.conftest import snapshot  # noqa: E402
from tests.sweep_helpers import make_model, mse, regression_problem, train_trajectory  # noqa: E402

FAST = dict(lr=1e-4, nbeta=20.0, localization=100.0, num_chains=2, num_draws=10, batch_size=32, seed=0, progress=False)


@dataclass
class Outcome:
    """What a case did: ``clear`` when handled as promised, in words; the error's type and message."""

    clear: bool
    detail: str
    error: str = ""
    message: str = ""


@dataclass
class Case:
    """One bad input: ``call(folder, holder)`` makes the call (putting the user's model in ``holder``
    with :func:`_watched`, to be checked unchanged).

    ``expect`` are patterns the error message must match (the argument's name first); ``check``,
    when given, replaces the error check (for inputs that are handled without an error).
    """

    call: Callable[[Path, dict], object] | None
    expect: tuple[str, ...] = ()
    check: Callable[[Path], Outcome] | None = None


# ---------------------------------------------------------------------- watching sampling
class _Sampling:
    def __init__(self) -> None:
        self.started = 0


@contextlib.contextmanager
def watching_sampling() -> Iterator[_Sampling]:
    """Count the sampling runs that start (the engine's driver called)."""
    seen, real = _Sampling(), llc_module.run_chains

    def counted(*args, **kwargs):
        seen.started += 1
        return real(*args, **kwargs)

    llc_module.run_chains = counted
    try:
        yield seen
    finally:
        llc_module.run_chains = real


def try_case(case: Case, folder: Path) -> Outcome:
    """Run one case and judge it (see the module docstring)."""
    if case.check is not None:
        return case.check(folder)
    holder: dict[str, object] = {}
    with watching_sampling() as sampling, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            case.call(folder, holder)
        except (ValueError, TypeError) as err:
            return _judge(case, err, sampling.started, holder)
        except Exception as err:  # noqa: BLE001 - an unclear error is the finding
            return Outcome(False, f"raised {type(err).__name__}, not ValueError/TypeError", type(err).__name__, str(err))
    return Outcome(False, "accepted silently" + (" (and sampled)" if sampling.started else ""))


def _judge(case: Case, err: BaseException, sampled: int, holder: dict) -> Outcome:
    message = str(err)
    missing = [pattern for pattern in case.expect if not re.search(pattern, message, re.IGNORECASE | re.DOTALL)]
    changed = _changed(holder)
    problems = []
    if sampled:
        problems.append("raised after sampling started")
    if missing:
        problems.append(f"message lacks {missing}")
    if changed:
        problems.append(f"changed the model: {changed}")
    detail = "; ".join(problems) if problems else "clear error before sampling"
    return Outcome(not problems, detail, type(err).__name__, message)


def _changed(holder: dict) -> list[str]:
    model, before = holder.get("model"), holder.get("before")
    if model is None:
        return []
    after = snapshot(model)
    out = [name for kind in ("params", "buffers") for name, value in before[kind].items()
           if not _same(value, after[kind][name])]
    return out + (["training flag"] if before["training"] != after["training"] else [])


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values (NaN equal to NaN: a model given with NaN weights is unchanged when they stay NaN)."""
    if a.is_meta or b.is_meta:
        return a.shape == b.shape and a.dtype == b.dtype
    if a.is_floating_point():
        return a.shape == b.shape and bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0)))
    return torch.equal(a, b)


def _watched(holder: dict, model: nn.Module) -> nn.Module:
    holder["model"], holder["before"] = model, snapshot(model)
    return model


# ---------------------------------------------------------------------- the engine's inputs
def _estimate(holder: dict, model: nn.Module | None = None, data=None, loss_fn=mse, **overrides):
    model = _watched(holder, make_model()) if model is None else model
    data = regression_problem() if data is None else data
    return dvz.estimate_llc(model, data, loss_fn, **{**FAST, **overrides})


class WithIndex(nn.Module):
    """A model holding an integer parameter (a lookup table that is not trained)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.index = nn.Parameter(torch.arange(4), requires_grad=False)

    def forward(self, x):
        return self.lin(x[:, self.index])


class Uncopyable(nn.Module):
    """A model with an attribute that refuses to be deep-copied."""

    class Handle:
        def __deepcopy__(self, memo):
            raise TypeError("cannot copy an open handle")

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.handle = Uncopyable.Handle()

    def forward(self, x):
        return self.lin(x)


def _nan_data():
    x, y = regression_problem()
    x = x.clone()
    x[7, 2] = float("nan")
    return x, y


def _inf_loader():
    x, y = regression_problem()
    y = y.clone()
    y[3] = float("inf")
    return DataLoader(TensorDataset(x, y), batch_size=32)


def _meta_model():
    with torch.device("meta"):
        return make_model()


def _nan_model():
    model = make_model()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    return model


def _pairs_of_two_shapes():
    x, y = regression_problem()
    pairs = [(x[i], y[i]) for i in range(64)]
    pairs[5] = (x[5, :3], y[5])
    return pairs


ENGINE: dict[str, Case] = {
    "seed=None": Case(lambda f, h: _estimate(h, seed=None), ("seed", "non-negative integer")),
    "seed=-1": Case(lambda f, h: _estimate(h, seed=-1), ("seed", "non-negative integer")),
    "seed=1.0 (a float)": Case(lambda f, h: _estimate(h, seed=1.0), ("seed",)),
    "num_chains=2.0 (a float)": Case(lambda f, h: _estimate(h, num_chains=2.0), ("num_chains", "integer", "num_chains=2")),
    "num_draws=1.5": Case(lambda f, h: _estimate(h, num_draws=1.5), ("num_draws", "integer")),
    "num_draws=1": Case(lambda f, h: _estimate(h, num_draws=1), ("num_draws", "at least 2")),
    "num_burnin_steps=2.5": Case(lambda f, h: _estimate(h, num_burnin_steps=2.5), ("num_burnin_steps", "integer")),
    "num_steps_bw_draws=0": Case(lambda f, h: _estimate(h, num_steps_bw_draws=0), ("num_steps_bw_draws", "positive")),
    "batch_size=True": Case(lambda f, h: _estimate(h, batch_size=True), ("batch_size", "positive integer")),
    "batch_size=0": Case(lambda f, h: _estimate(h, batch_size=0), ("batch_size", "positive integer")),
    "batch_size=16.0 (a float)": Case(lambda f, h: _estimate(h, batch_size=16.0), ("batch_size", "positive integer")),
    "chain_chunk_size=0": Case(lambda f, h: _estimate(h, chain_chunk_size=0), ("chain_chunk_size", "positive integer")),
    "chain_chunk_size=-1": Case(lambda f, h: _estimate(h, chain_chunk_size=-1), ("chain_chunk_size", "positive integer")),
    "localization=None": Case(lambda f, h: _estimate(h, localization=None), ("localization",)),
    "lr='1e-3' (a string)": Case(lambda f, h: _estimate(h, lr="1e-3"), ("lr", "positive number")),
    "model_mode='train'": Case(lambda f, h: _estimate(h, model_mode="train"), ("model_mode", "'eval' or 'as_is'")),
    "on_draw=5 (not a function)": Case(lambda f, h: _estimate(h, on_draw=5), ("on_draw", "function")),
    "model is a function, not an nn.Module": Case(
        lambda f, h: dvz.estimate_llc(lambda x: x, regression_problem(), mse, **FAST), ("model", "nn.Module")),
    "model on the meta device": Case(lambda f, h: _estimate(h, model=_meta_model()), ("meta device", "load")),
    "model with NaN weights": Case(lambda f, h: _estimate(h, model=_watched(h, _nan_model())), ("not finite", r"0\.weight")),
    "model that cannot be deep-copied": Case(
        lambda f, h: _estimate(h, model=_watched(h, Uncopyable())), ("Uncopyable", "deep-copied", "cannot copy an open handle")),
    "integer-dtype parameter selected by params=": Case(
        lambda f, h: _estimate(h, model=_watched(h, WithIndex()), params=["index"]), ("params=", "index", "int64")),
    "params= a tensor": Case(
        lambda f, h: (lambda m: _estimate(h, model=_watched(h, m), params=m[0].weight))(make_model()),
        ("params=", "names", r"\['0\.weight'\]")),
    "params= a list of tensors": Case(
        lambda f, h: (lambda m: _estimate(h, model=_watched(h, m), params=list(m.parameters())))(make_model()),
        ("params=", "names", "0.bias")),
    "params= a name that matches nothing": Case(lambda f, h: _estimate(h, params="0.wieght"), ("params", "0.weight")),
    "loss_fn is not callable": Case(lambda f, h: _estimate(h, loss_fn="mse"), ("loss_fn", "function")),
    "loss_fn returns an integer tensor": Case(
        lambda f, h: _estimate(h, loss_fn=lambda m, b: (m(b[0]) > 0).sum()), ("loss_fn", "int64", "floating-point")),
    "loss_fn returns a detached tensor": Case(
        lambda f, h: _estimate(h, loss_fn=lambda m, b: mse(m, b).detach()), ("loss_fn", "depend on the weights")),
    "loss_fn is nn.MSELoss() (a criterion)": Case(
        lambda f, h: _estimate(h, loss_fn=nn.MSELoss()), ("loss_fn", "criterion", re.escape("model(batch[0]), batch[1]"))),
    "loss_fn is F.mse_loss (input, target)": Case(
        lambda f, h: _estimate(h, loss_fn=F.mse_loss), ("loss_fn", "criterion", re.escape("model(batch[0]), batch[1]"))),
    "loss_fn is a criterion(a, b) with other names": Case(
        lambda f, h: _estimate(h, loss_fn=lambda a, b: (a - b).square().mean()),
        ("loss_fn", "criterion", re.escape("model(batch[0]), batch[1]"))),
    "loss_fn uses a model from the enclosing scope": Case(
        lambda f, h: (lambda m: _estimate(h, model=_watched(h, m), loss_fn=lambda model, b: mse(m, b)))(make_model()),
        ("loss_fn", "other than the one it is given")),
    "loss_fn sums over the batch (reduction='sum')": Case(
        lambda f, h: _estimate(h, loss_fn=lambda m, b: F.mse_loss(m(b[0]), b[1], reduction="sum")),
        ("loss_fn", "sum", "mean")),
    "data is None": Case(lambda f, h: dvz.estimate_llc(_watched(h, make_model()), None, mse, **FAST), ("data", "tensor")),
    "data is a string": Case(lambda f, h: _estimate(h, data="train.csv"), ("data", "str")),
    "NaN in the input tensor": Case(lambda f, h: _estimate(h, data=_nan_data()), (r"data\[0\]", "NaN", "example 7")),
    "inf in a DataLoader's targets": Case(
        lambda f, h: _estimate(h, data=_inf_loader(), batch_size=None), ("DataLoader", r"element \[1\]", "infinite")),
    "a list of (x, y) examples of two shapes": Case(
        lambda f, h: _estimate(h, data=_pairs_of_two_shapes()), ("data", "example 5", re.escape("torch.stack(xs)"))),
    "batch_size larger than the data": Case(lambda f, h: _estimate(h, batch_size=1000), ("batch_size", "larger")),
    "device='cuda:7'": Case(lambda f, h: _estimate(h, device="cuda:7"), ("device",)),
}


ENGINE["calibrate(num_chains=2.5)"] = Case(
    lambda f, h: dvz.calibrate(_watched(h, make_model()), regression_problem(), mse, lrs=[1e-4], nbetas=[20.0],
                               num_chains=2.5, num_draws=10, batch_size=32, progress=False),
    ("num_chains", "integer"))


# ---------------------------------------------------------------------- trajectories, sweeps, widgets
def _trajectory(num: int = 3) -> dvz.Trajectory:
    return dvz.Trajectory(train_trajectory(None, num_checkpoints=num, steps=20))


def _wider_state() -> dict:
    wider = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    return {k: v.detach().clone() for k, v in wider.state_dict().items()}


def _mixed_architectures() -> dvz.Trajectory:
    checkpoints = train_trajectory(None, num_checkpoints=3, steps=20)
    return dvz.Trajectory([*checkpoints[:-1], (checkpoints[-1][0] + 100, _wider_state())])


def _sweep_mixed(folder: Path, holder: dict):
    return dvz.sweep_llc(_mixed_architectures(), _watched(holder, make_model()), regression_problem(), mse, progress=False,
                         **{k: v for k, v in FAST.items() if k != "progress"})


def _folder_named_like_a_checkpoint(folder: Path, holder: dict):
    train_trajectory(folder, num_checkpoints=2, steps=5)
    (folder / "step_5.pt").mkdir()
    return dvz.Trajectory.from_folder(folder)


def _head_clustering(folder: Path, holder: dict):
    from devinterp_viz.analysis.heads import HeadClustering

    return HeadClustering(max_clusters=1).fit(np.random.default_rng(0).random((6, 4)))


def _dashboard(folder: Path, holder: dict):
    from devinterp_viz.widgets.dashboard import DevelopmentDashboard

    return DevelopmentDashboard(sweep="x")


def _refined_without_trajectory(folder: Path, holder: dict):
    from devinterp_viz.widgets.refined import RefinedLLCWidget

    return RefinedLLCWidget(None, _watched(holder, make_model()), regression_problem(), mse)


def _refined_other_architecture(folder: Path, holder: dict):
    from devinterp_viz.widgets.refined import RefinedLLCWidget

    other = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    return RefinedLLCWidget(_trajectory(2), _watched(holder, other), regression_problem(), mse)


def nan_checkpoint_sweep(folder: Path) -> Outcome:
    """A sweep over a trajectory with NaN weights at one checkpoint: that one failed, named, the others computed."""
    checkpoints = train_trajectory(None, num_checkpoints=3, steps=20)
    bad_step, state = checkpoints[1]
    broken = {k: v.clone() for k, v in state.items()}
    broken["0.weight"][0, 0] = float("nan")
    checkpoints[1] = (bad_step, broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep = dvz.sweep_llc(dvz.Trajectory(checkpoints), make_model(), regression_problem(), mse, store=folder / "store",
                              progress=False, **{k: v for k, v in FAST.items() if k != "progress"})
    said = [str(w.message) for w in caught if f"step {bad_step}" in str(w.message) and "not finite" in str(w.message)]
    failed = sweep.failed
    others = [np.isfinite(sweep.llc_mean[0, 0, i]) for i in (0, 2)]
    stored = len(dvz.ResultStore(folder / "store"))
    ok = (bool(said) and list(failed) == [("all", "data", 1)] and all(others) and not sweep.healthy[0, 0, 1]
          and sweep.complete and stored == 2)
    detail = (f"warning naming step {bad_step}: {bool(said)}; failed {list(failed)}; other checkpoints computed: "
              f"{all(others)}; stored {stored} (want 2)")
    return Outcome(ok, detail, "RuntimeWarning" if said else "", said[0] if said else "")


ANALYSIS: dict[str, Case] = {
    "sweep_llc: a later checkpoint of another architecture": Case(
        _sweep_mixed, ("step 120", "0.weight", r"\(16, 4\)", "another architecture")),
    "sweep_llc: NaN weights in one checkpoint": Case(None, check=nan_checkpoint_sweep),
    "sweep_llc: trajectory is a list": Case(
        lambda f, h: dvz.sweep_llc([(0, {})], make_model(), regression_problem(), mse), ("trajectory", "Trajectory")),
    "Trajectory.from_folder: a folder named step_5.pt": Case(
        _folder_named_like_a_checkpoint, ("step_5.pt", "folder, not a checkpoint file")),
    "Trajectory([(1, {'w': [[1.0]]})])": Case(
        lambda f, h: dvz.Trajectory([(1, {"w": [[1.0]]})]), ("step 1", "'w' is a list", "torch.tensor")),
    "Trajectory([(1.5, state)]) (a float step)": Case(
        lambda f, h: dvz.Trajectory([(1.5, make_model().state_dict())]), ("step", "integer")),
    "Trajectory([(0, model)]) (a module)": Case(
        lambda f, h: dvz.Trajectory([(0, make_model())]), ("step 0", "Sequential", "state_dict")),
    "HeadClustering(max_clusters=1)": Case(_head_clustering, ("max_clusters", ">= 2", "n_clusters=1")),
    "DevelopmentDashboard(sweep='x')": Case(_dashboard, ("sweep", "SweepResult", "str")),
    "RefinedLLCWidget(None, ...)": Case(_refined_without_trajectory, ("Trajectory", "NoneType")),
    "RefinedLLCWidget over a trajectory of another architecture": Case(
        _refined_other_architecture, ("step", "0.weight", "another architecture")),
}

CASES: dict[str, Case] = {**ENGINE, **ANALYSIS}
