"""Fault and stale-cache scenarios, shared by tests/test_faults.py (which asserts them) and bench/faults.py.

Each scenario takes a fresh folder and returns an :class:`Outcome`: ``ok`` when the toolkit
survived the fault (nothing lost, torn or silently reused) or recomputed a stale estimate. Run as a
script, this module is the other process of the multi-process scenarios (a writer killed during a
save, a sweep writing while another process opens its store).
"""

from __future__ import annotations

import contextlib
import html.parser
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, SubsetRandomSampler, TensorDataset
from torch.utils.data._utils.collate import default_collate

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import devinterp_viz as dvz  # noqa: E402
from devinterp_viz.analysis import store as store_module  # noqa: E402
from devinterp_viz.analysis import sweep as sweep_module  # noqa: E402
from devinterp_viz.analysis.fingerprint import FingerprintWarning  # noqa: E402
from devinterp_viz.analysis.store import StoreWarning, summary_problem  # noqa: E402
from devinterp_viz.engine.results import LLCResult  # noqa: E402
from tests.sweep_helpers import make_model, mse, regression_problem, train_trajectory  # noqa: E402

FAST = dict(lr=1e-4, nbeta=20.0, localization=100.0, num_chains=2, num_draws=20, batch_size=32, seed=0)
#: A weight the module-level loss below reads as a global (the "global changed" scenario edits it).
LOSS_WEIGHT = 1.0


@dataclass
class Outcome:
    """What a scenario found: ``ok`` (survived / recomputed), in words; ``skipped`` when it could not run."""

    ok: bool
    detail: str
    skipped: bool = False

    def __post_init__(self) -> None:
        self.ok = bool(self.ok)


# ---------------------------------------------------------------------- counting estimates
class _Count:
    def __init__(self) -> None:
        self.calls = 0

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls


@contextlib.contextmanager
def counting_estimates() -> Iterator[_Count]:
    """Count the checkpoint estimates the sweep really computes (not those read from a store)."""
    count, real = _Count(), sweep_module._estimate_checkpoint

    def counted(task, **shared):
        count.calls += 1
        return real(task, **shared)

    sweep_module._estimate_checkpoint = counted
    try:
        yield count
    finally:
        sweep_module._estimate_checkpoint = real


def stale_check(run: Callable[[], object], change: Callable[[], object], expected: int) -> Outcome:
    """``run()`` computes; ``run()`` again must reuse everything, silently; after ``change()``,
    ``run()`` must recompute ``expected`` checkpoint estimates."""
    with counting_estimates() as count, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
        first = count.take()
        run()
        reused = count.take()
        change()
        run()
        recomputed = count.take()
    noisy = [str(w.message) for w in caught if issubclass(w.category, (FingerprintWarning, StoreWarning))]
    ok = first > 0 and reused == 0 and recomputed == expected and not noisy
    return Outcome(ok, f"first run {first}, unchanged rerun {reused} (want 0), after the change {recomputed} "
                       f"(want {expected}) estimates computed" + (f"; unexpected warnings {noisy}" if noisy else ""))


def _trajectory(num: int = 2) -> dvz.Trajectory:
    return dvz.Trajectory(train_trajectory(None, num_checkpoints=num, steps=20))


def _sweeper(store: Path, trajectory, **fixed) -> Callable[..., object]:
    def sweep(**override):
        args = {"trajectory": trajectory, "model": make_model(), "data": regression_problem(), "loss_fn": mse, **fixed,
                **override}
        return dvz.sweep_llc(args.pop("trajectory"), args.pop("model"), args.pop("data"), args.pop("loss_fn"),
                             store=store, progress=False, **{**FAST, **args})
    return sweep


# ---------------------------------------------------------------------- stale scenarios
def stale_loss_closure(folder: Path) -> Outcome:
    def scaled_loss(scale: float):
        return lambda model, batch: scale * mse(model, batch)

    holder = {"loss_fn": scaled_loss(1.0)}
    sweep = _sweeper(folder, _trajectory())
    return stale_check(lambda: sweep(loss_fn=holder["loss_fn"]), lambda: holder.update(loss_fn=scaled_loss(2.0)), 2)


def weighted_mse(model, batch):
    """``mse`` times the module global ``LOSS_WEIGHT``."""
    return LOSS_WEIGHT * mse(model, batch)


def stale_loss_global(folder: Path) -> Outcome:
    global LOSS_WEIGHT
    sweep = _sweeper(folder, _trajectory(), loss_fn=weighted_mse)
    saved = LOSS_WEIGHT
    try:
        return stale_check(sweep, lambda: globals().update(LOSS_WEIGHT=2.0), 2)
    finally:
        LOSS_WEIGHT = saved


class PairDataset(Dataset):
    """A map-style Dataset over a list of (x, y) items."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def stale_dataset_item(folder: Path) -> Outcome:
    x, y = regression_problem()
    dataset = PairDataset([(x[i], y[i]) for i in range(len(x))])  # items 0, 128 and 255 stay as they are

    def change():
        dataset.items[1] = (x[1], y[1] + 5.0)

    return stale_check(lambda: _sweeper(folder, _trajectory(), data=dataset)(), change, 2)


def _loader(**kwargs) -> DataLoader:
    x, y = regression_problem()
    return DataLoader(TensorDataset(x, y), batch_size=32, **kwargs)


def doubled_targets(batch):
    """A collate_fn that doubles the targets."""
    x, y = default_collate(batch)
    return x, 2 * y


def stale_loader_shuffle(folder: Path) -> Outcome:
    holder = {"data": _loader(shuffle=False)}
    sweep = _sweeper(folder, _trajectory())
    return stale_check(lambda: sweep(data=holder["data"], batch_size=None),
                       lambda: holder.update(data=_loader(shuffle=True)), 2)


def stale_loader_collate(folder: Path) -> Outcome:
    holder = {"data": _loader(collate_fn=default_collate)}
    sweep = _sweeper(folder, _trajectory())
    return stale_check(lambda: sweep(data=holder["data"], batch_size=None),
                       lambda: holder.update(data=_loader(collate_fn=doubled_targets)), 2)


def stale_loader_sampler(folder: Path) -> Outcome:
    holder = {"data": _loader(sampler=SubsetRandomSampler(range(128)))}
    sweep = _sweeper(folder, _trajectory())
    change = lambda: holder.update(data=_loader(sampler=SubsetRandomSampler(range(128, 256))))  # noqa: E731
    return stale_check(lambda: sweep(data=holder["data"], batch_size=None), change, 2)


def cast_mse(model, batch):
    """Squared error in the dtype of the model's weights."""
    x, y = batch
    dtype = next(model.parameters()).dtype
    return (model(x.to(dtype)) - y.to(dtype)).square().mean()


def stale_model_double(folder: Path) -> Outcome:
    holder = {"model": make_model()}
    sweep = _sweeper(folder, _trajectory(), loss_fn=cast_mse)
    return stale_check(lambda: sweep(model=holder["model"]), lambda: holder.update(model=make_model().double()), 2)


class ScaledNet(nn.Module):
    """``scale * net(x)``: ``scale`` is a plain attribute, outside the state dict."""

    def __init__(self):
        super().__init__()
        self.net = make_model()
        self.scale = 1.0

    def forward(self, x):
        return self.scale * self.net(x)


def stale_model_attribute(folder: Path) -> Outcome:
    run = [(step, {f"net.{k}": v for k, v in state.items()}) for step, state in train_trajectory(None, 2, 20)]
    model = ScaledNet()
    sweep = _sweeper(folder, dvz.Trajectory(run))
    return stale_check(lambda: sweep(model=model), lambda: setattr(model, "scale", 2.0), 2)


def stale_checkpoint_file(folder: Path) -> Outcome:
    run_folder = folder / "run"
    run_folder.mkdir()
    for step, state in train_trajectory(None, 2, 20):
        torch.save(state, run_folder / f"step_{step:04d}.pt")
    trajectory = dvz.Trajectory.from_folder(run_folder)
    path = sorted(run_folder.glob("*.pt"))[0]

    def overwrite():
        state = torch.load(path, weights_only=True)
        torch.save({k: v + 0.05 for k, v in state.items()}, path)

    return stale_check(_sweeper(folder / "store", trajectory), overwrite, 1)


def stale_tensor_in_place(folder: Path) -> Outcome:
    run = train_trajectory(None, 2, 20)
    trajectory = dvz.Trajectory(run)
    return stale_check(_sweeper(folder, trajectory), lambda: run[0][1]["0.weight"].add_(0.05), 1)


def stale_train_eval(folder: Path) -> Outcome:
    model = make_model()
    sweep = _sweeper(folder, _trajectory())
    return stale_check(lambda: sweep(model=model), model.eval, 2)


def stale_library_version(folder: Path) -> Outcome:
    saved = store_module.__version__
    try:
        return stale_check(_sweeper(folder, _trajectory()), lambda: setattr(store_module, "__version__", "99.0.0"), 2)
    finally:
        store_module.__version__ = saved


def opaque_loss_fn(folder: Path) -> Outcome:
    """A loss calling an object with no readable content: warned about, recomputed, never stored;
    with cache_key= stored and reused under that name."""
    connection = sqlite3.connect(":memory:")
    loss_fn = lambda model, batch: mse(model, batch) + 0.0 * connection.execute("select 0").fetchone()[0]  # noqa: E731
    sweep = _sweeper(folder, _trajectory(), loss_fn=loss_fn)
    with counting_estimates() as count, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep()
        sweep()
        unkeyed = count.take()
        named = [w for w in caught if issubclass(w.category, FingerprintWarning) and "connection" in str(w.message)]
        stored = len(dvz.ResultStore(folder))
        sweep(cache_key="db-v1")
        sweep(cache_key="db-v1")
        keyed = count.take()
        sweep(cache_key="db-v2")
        renamed = count.take()
    ok = unkeyed == 4 and named and stored == 0 and keyed == 2 and renamed == 2
    return Outcome(bool(ok), f"without cache_key: {unkeyed} of 4 computed, {stored} stored, warning naming it: "
                             f"{bool(named)}; cache_key='db-v1' twice: {keyed} computed (want 2); 'db-v2': {renamed}")


class Stream(IterableDataset):
    """Rows of the regression problem, read as a stream (no length, no random access)."""

    def __iter__(self):
        x, y = regression_problem()
        return iter(zip(x, y))


def opaque_iterable_dataset(folder: Path) -> Outcome:
    sweep = _sweeper(folder, _trajectory(1), data=DataLoader(Stream(), batch_size=32), batch_size=None)
    with counting_estimates() as count, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep()
        sweep()
    named = [w for w in caught if issubclass(w.category, FingerprintWarning) and "Stream" in str(w.message)]
    return Outcome(count.calls == 2 and bool(named), f"{count.calls} of 2 computed; warning naming the stream: {bool(named)}")


STALE = {
    "loss_fn closure variable changed": stale_loss_closure,
    "global read by loss_fn changed": stale_loss_global,
    "Dataset item (not first/middle/last) changed": stale_dataset_item,
    "DataLoader shuffle changed": stale_loader_shuffle,
    "DataLoader collate_fn changed": stale_loader_collate,
    "DataLoader sampler changed": stale_loader_sampler,
    "model .double()": stale_model_double,
    "model attribute read in forward changed": stale_model_attribute,
    "checkpoint file overwritten (same Trajectory)": stale_checkpoint_file,
    "checkpoint tensor changed in place (same Trajectory)": stale_tensor_in_place,
    "template model train -> eval": stale_train_eval,
    "library version changed": stale_library_version,
    "loss_fn calling an opaque C object (warn; cache_key=)": opaque_loss_fn,
    "IterableDataset data (warn, recompute)": opaque_iterable_dataset,
}


# ---------------------------------------------------------------------- file faults
def _big_result(chains: int = 8, draws: int = 60_000) -> LLCResult:
    rng = np.random.default_rng(0)
    return LLCResult.from_traces(1.0 + 0.01 * rng.random((chains, draws)), 1.0, 10.0, config={"version": 0})


def _version(result: LLCResult, version: int) -> LLCResult:
    """The same estimate with every loss shifted by ``version`` (consistent with its own summary)."""
    shifted = LLCResult(**{**result.__dict__, "loss_trace": result.loss_trace + version,
                           "init_loss": result.init_loss + version, "config": {"version": version}})
    return shifted


def kill_during_save(folder: Path, rounds: int = 10, seed: int = 0) -> Outcome:
    """SIGKILL a process saving results over one store entry, ``rounds`` times at random moments;
    each time the entry must still load, whole and consistent, and reopening the store must
    clear the dead writer's temporary file."""
    proc = subprocess.run([sys.executable, __file__, "kill-save", str(folder), str(rounds), str(seed)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    if proc.returncode != 0:
        return Outcome(False, f"the helper failed: {proc.stderr[-1500:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = report["intact"] == rounds and report["leftovers"] == 0
    return Outcome(ok, f"{report['intact']}/{rounds} kills left a whole, consistent entry (version "
                       f"{report['versions']}); {report['mid_write']} landed mid-write; temporary files left after "
                       f"reopening: {report['leftovers']}")


def _kill_save_rounds(folder: Path, rounds: int, seed: int) -> dict:
    """Run in a helper process: fork a writer per round, kill it at a random moment, check the entry."""
    rng = random.Random(seed)
    base, key = _big_result(), "a" * 32
    path = folder / f"{key}.npz"
    store = dvz.ResultStore(folder)
    store.put(key, _version(base, 0))
    intact, mid_write, leftovers, versions = 0, 0, 0, []
    for round_ in range(rounds):
        child = os.fork()
        if child == 0:  # the writer: save newer versions over the entry until killed
            version = 1 + 1000 * round_
            while True:
                _version(base, version).save(path)
                version += 1
        time.sleep(rng.uniform(0.1, 0.6))
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        mid_write += bool(list(folder.glob(".tmp-*")))
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            found = dvz.ResultStore(folder).get(key)
        leftovers += len(list(folder.glob(".tmp-*")))
        if found is not None and summary_problem(found) is None:
            version = found.config["version"]
            intact += bool(np.array_equal(found.loss_trace, base.loss_trace + version))
            versions.append(version)
    return {"intact": intact, "mid_write": mid_write, "leftovers": leftovers, "versions": versions}


def concurrent_store_open(folder: Path, puts: int = 60) -> Outcome:
    """Another process puts results while this one opens the same store again and again: the writer
    must not lose a file; a live writer's temporary file survives an open, a dead one's does not."""
    host = store_module._host()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = folder / f".tmp-{sleeper.pid}@{host}~live.npz"
        dead_pid = _dead_pid()
        dead = folder / f".tmp-{dead_pid}@{host}~dead.npz"
        young_unknown, old_unknown = folder / ".tmp-abcdef.npz", folder / ".tmp-ghijkl.npz"
        for path in (live, dead, young_unknown, old_unknown):
            path.write_bytes(b"partial")
        old = time.time() - 2 * store_module.STALE_TEMP_SECONDS
        os.utime(old_unknown, (old, old))
        dvz.ResultStore(folder)
        kept = live.exists() and young_unknown.exists() and not dead.exists() and not old_unknown.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    for path in folder.glob(".tmp-*"):
        path.unlink()
    writer = subprocess.Popen([sys.executable, __file__, "put-loop", str(folder), str(puts)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    opens = 0
    while writer.poll() is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dvz.ResultStore(folder)
        opens += 1
    _, err = writer.communicate()
    readable = sum(dvz.ResultStore(folder).get(f"{i:032x}") is not None for i in range(puts))
    ok = kept and writer.returncode == 0 and readable == puts
    return Outcome(ok, f"live/young temp kept and dead/old removed: {kept}; writer exit {writer.returncode} after "
                       f"{opens} opens by another process, {readable}/{puts} entries readable"
                       + (f"; writer error: {err.strip().splitlines()[-1]}" if writer.returncode else ""))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _put_loop(folder: Path, puts: int) -> None:
    store, result = dvz.ResultStore(folder), _big_result(4, 20_000)
    for index in range(puts):
        store.put(f"{index:032x}", result)


def _one_entry_sweep(folder: Path):
    """A one-checkpoint sweep into ``folder`` and a function sweeping it again (counting estimates)."""
    trajectory = _trajectory(1)

    def sweep():
        with counting_estimates() as count, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = dvz.sweep_llc(trajectory, make_model(), regression_problem(), mse, store=folder, progress=False, **FAST)
        return result, count.calls, [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]

    first, _, _ = sweep()
    (entry,) = folder.glob("*.npz")
    return first, entry, sweep


def torn_entry(folder: Path) -> Outcome:
    first, entry, sweep = _one_entry_sweep(folder)
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    again, computed, warned = sweep()
    named = any(str(entry) in message for message in warned)
    healed = summary_problem(LLCResult.load(entry)) is None
    ok = computed == 1 and named and healed and again.llc_mean[0, 0, 0] == first.llc_mean[0, 0, 0]
    return Outcome(ok, f"recomputed {computed}/1, warning naming the file: {named}, entry whole again: {healed}")


def foreign_files(folder: Path) -> Outcome:
    first, _, sweep = _one_entry_sweep(folder)
    notes, lookalike = folder / "notes.npz", folder / ("b" * 32 + ".npz")
    np.savez(notes, a=np.arange(3))
    np.savez(lookalike, a=np.arange(3))
    before = notes.read_bytes()
    again, computed, warned = sweep()
    named = any(str(notes) in m for m in warned) and any(str(lookalike) in m for m in warned)
    ok = computed == 0 and named and notes.read_bytes() == before and again.llc_mean[0, 0, 0] == first.llc_mean[0, 0, 0]
    return Outcome(ok, f"sweep ran ({computed} recomputed, want 0), warnings naming both files: {named}, "
                       f"foreign file untouched: {notes.read_bytes() == before}")


def hand_edited_entry(folder: Path) -> Outcome:
    first, entry, sweep = _one_entry_sweep(folder)
    with np.load(entry) as data:
        arrays = {name: np.array(data[name]) for name in data.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["llc_mean"] = meta["llc_mean"] + 100.0
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(entry, "wb") as fh:
        np.savez(fh, **arrays)
    again, computed, warned = sweep()
    named = any(str(entry) in m and "llc_mean" in m for m in warned)
    served = again.llc_mean[0, 0, 0]
    ok = computed == 1 and named and served == first.llc_mean[0, 0, 0]
    return Outcome(ok, f"recomputed {computed}/1, warning naming file and llc_mean: {named}, served {served:.4g} "
                       f"(the true {first.llc_mean[0, 0, 0]:.4g}, the edit {meta['llc_mean']:.4g})")


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[bool]:
    """Make ``folder`` read-only (chmod, and chattr +i where the user is root); yields whether it worked."""
    folder.chmod(0o555)
    immutable = False
    if _can_create(folder) and os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        yield not _can_create(folder)
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


def _can_create(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def read_only_store(folder: Path) -> Outcome:
    trajectory = _trajectory(2)
    partial = dvz.Trajectory([(int(trajectory.steps[0]), trajectory.state_dict(0))])
    dvz.sweep_llc(partial, make_model(), regression_problem(), mse, store=folder, progress=False, **FAST)
    with read_only(folder) as locked:
        if not locked:
            return Outcome(False, "cannot make a folder read-only here", skipped=True)
        with counting_estimates() as count:
            try:
                dvz.sweep_llc(trajectory, make_model(), regression_problem(), mse, store=folder, progress=False, **FAST)
                error = ""
            except ValueError as err:
                error = str(err)
            refused_before = count.take()
            served = dvz.sweep_llc(partial, make_model(), regression_problem(), mse, store=folder, progress=False, **FAST)
            read = count.take() == 0 and served.complete
    ok = "read-only" in error and str(folder) in error and refused_before == 0 and read
    return Outcome(ok, f"error up front: {error[:90]!r}; computed before the error: {refused_before}; "
                       f"complete part served read-only: {read}")


def path_traversal(folder: Path) -> Outcome:
    store = dvz.ResultStore(folder / "store")
    result = _big_result(2, 10)
    refused = 0
    for key in ("../../x", "../x", "/tmp/x", "a/b", ".hidden", "x.npz", ""):
        for call in (lambda k: store.put(k, result), store.get, store.__contains__):
            try:
                outcome = call(key)
            except ValueError:
                refused += 1
            else:
                refused += outcome is False  # __contains__ answers False for an unsafe key
    outside = [p for p in folder.rglob("*.npz") if p.parent != folder / "store"]
    return Outcome(refused == 21 and not outside, f"{refused}/21 unsafe key uses refused; files written outside: {outside}")


def symlink_out_of_folder(folder: Path) -> Outcome:
    run, elsewhere = folder / "run", folder / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    for step, state in train_trajectory(None, 2, 20):
        torch.save(state, run / f"step_{step:04d}.pt")
        torch.save(state, elsewhere / f"step_{step + 1000:04d}.pt")
    (run / "inside_0999.pt").symlink_to(run / sorted(p.name for p in run.glob("*.pt"))[0])
    link = run / "step_9999.pt"
    link.symlink_to(next(elsewhere.glob("*.pt")))
    try:
        dvz.Trajectory.from_folder(run)
        message = ""
    except ValueError as err:
        message = str(err)
    allowed = len(dvz.Trajectory.from_folder(run, allow_links_outside=True))
    ok = str(link) in message and "allow_links_outside=True" in message and allowed == 4
    return Outcome(ok, f"error naming the link: {str(link) in message}; with allow_links_outside=True "
                       f"{allowed} checkpoints (the link inside the folder is always fine)")


class _ScriptReader(html.parser.HTMLParser):
    """Collects the text of every script element as an HTML parser sees it."""

    def __init__(self):
        super().__init__()
        self.scripts: list[str] = []
        self._inside = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._inside = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.scripts[-1] += data


NASTY_NAME = "head</script><!--<script>\u2028 & </SCRIPT>"


def html_escaping(folder: Path) -> Outcome:
    from devinterp_viz.widgets._base import bundle_is_built

    if not bundle_is_built():
        return Outcome(False, "the JS bundle is not built", skipped=True)
    steps = np.array([1, 10, 100])
    results = {(NASTY_NAME, "data", i): LLCResult.from_traces(1.0 + 0.01 * np.random.default_rng(i).random((2, 30)),
                                                             1.0, 10.0) for i in range(3)}
    sweep = dvz.SweepResult(steps, [NASTY_NAME], ["data"], results=results)
    page = dvz.DevelopmentDashboard(sweep=sweep, stages=False).save_html(folder / "page.html").read_text()
    reader = _ScriptReader()
    reader.feed(page)
    script = reader.scripts[0] if len(reader.scripts) == 1 else ""
    # the HTML spec's restrictions on script contents: no "<!--", "<script" or "</script" anywhere
    safe = script and not re.search(r"<!--|<script|</script", script, flags=re.IGNORECASE)
    match = re.search(r"const state = (.*?);\nconst sources", script, flags=re.DOTALL)
    state = json.loads(match.group(1)) if match else {}
    intact = state.get("data", {}).get("llc", {}).get("selections") == [NASTY_NAME]
    whole = script.rstrip().endswith("host });")
    ok = bool(safe and intact and whole and len(reader.scripts) == 1)
    return Outcome(ok, f"{len(reader.scripts)} script element(s); contents within the HTML rules: {bool(safe)}; "
                       f"script complete: {whole}; name round-trips through the JSON: {intact}")


FAULTS = {
    "kill during save (x10, random moments)": kill_during_save,
    "concurrent store open while another process writes": concurrent_store_open,
    "truncated entry": torn_entry,
    "foreign .npz files in the store": foreign_files,
    "hand-edited llc_mean": hand_edited_entry,
    "read-only partial store": read_only_store,
    "path traversal in store keys": path_traversal,
    "symlink out of the checkpoint folder": symlink_out_of_folder,
    "head name with </script><!--<script> in save_html": html_escaping,
}


if __name__ == "__main__":
    mode, target = sys.argv[1], Path(sys.argv[2])
    if mode == "kill-save":
        print(json.dumps(_kill_save_rounds(target, int(sys.argv[3]), int(sys.argv[4]))))
    elif mode == "put-loop":
        _put_loop(target, int(sys.argv[3]))
