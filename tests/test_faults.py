"""Fault injection: stale-cache scenarios must recompute; killed saves, concurrent opens, torn, foreign
and hand-edited entries, read-only stores, unsafe keys, links and script-breaking names must be survived.

The scenarios live in tests/fault_scenarios.py, which bench/faults.py runs too and tabulates.
"""

from __future__ import annotations

import pytest

from tests import fault_scenarios as scenarios


@pytest.mark.parametrize("name", list(scenarios.STALE))
def test_a_changed_dependency_recomputes_and_an_unchanged_one_is_reused(name, tmp_path):
    outcome = scenarios.STALE[name](tmp_path)
    assert outcome.ok, f"{name}: {outcome.detail}"


@pytest.mark.parametrize("name", [n for n in scenarios.FAULTS if not n.startswith("kill during save")])
def test_the_fault_is_survived(name, tmp_path):
    outcome = scenarios.FAULTS[name](tmp_path)
    if outcome.skipped:
        pytest.skip(outcome.detail)
    assert outcome.ok, f"{name}: {outcome.detail}"


def test_a_writer_killed_during_a_save_leaves_a_whole_entry(tmp_path):
    outcome = scenarios.kill_during_save(tmp_path, rounds=3, seed=1)
    assert outcome.ok, outcome.detail


FINGERPRINTS = """
import sys
from devinterp_viz.analysis.fingerprint import data_fingerprint, model_fingerprint, value_fingerprint
from tests.sweep_helpers import make_model, mse, regression_problem
print(value_fingerprint(mse).digest, model_fingerprint(make_model()).digest, data_fingerprint(regression_problem()).digest)
"""


def test_fingerprints_are_the_same_in_a_fresh_process_whatever_its_hash_seed():
    # a key that changed between processes would make every store useless after a restart
    import os
    import subprocess
    import sys

    from devinterp_viz.analysis.fingerprint import data_fingerprint, model_fingerprint, value_fingerprint
    from tests.sweep_helpers import make_model, mse, regression_problem

    here = " ".join([value_fingerprint(mse).digest, model_fingerprint(make_model()).digest,
                     data_fingerprint(regression_problem()).digest])
    for seed in ("1", "2"):
        fresh = subprocess.run([sys.executable, "-c", FINGERPRINTS], capture_output=True, text=True, cwd=scenarios.ROOT,
                               env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(scenarios.ROOT)})
        assert fresh.returncode == 0, fresh.stderr[-2000:]
        assert fresh.stdout.split() == here.split()


def test_copying_a_model_does_not_change_its_fingerprint():
    # copy.deepcopy (Trajectory.model_at, a user's own copy) caches __slotnames__ on the classes it meets, here the
    # config dataclass a model's __init__ takes as its default: a fresh process, which has copied nothing, must make
    # the same store keys as one that has (the README tour copies its model before its sweep)
    import copy
    import dataclasses

    from torch import nn

    from devinterp_viz.analysis.fingerprint import model_fingerprint

    @dataclasses.dataclass(frozen=True)
    class Config:
        width: int = 3

    class Net(nn.Module):
        def __init__(self, config: Config = Config()):
            super().__init__()
            self.config, self.layer = config, nn.Linear(config.width, 1)

        def forward(self, x):
            return self.layer(x)

    model = Net()
    before = model_fingerprint(model).digest
    copy.deepcopy(model)
    assert "__slotnames__" in vars(Config)  # what the copy left behind on the class
    assert model_fingerprint(model).digest == before


def test_a_loss_with_a_logger_and_a_lock_is_fingerprinted_without_warning():
    import logging
    import threading

    from devinterp_viz.analysis.fingerprint import value_fingerprint
    from tests.sweep_helpers import mse

    log, lock = logging.getLogger("dvz-test"), threading.Lock()

    def logged_loss(model, batch):
        with lock:
            log.debug("a step")
            return mse(model, batch)

    assert value_fingerprint(logged_loss).opaque == ()


@pytest.mark.parametrize("cache_key", ["", "   ", 3])
def test_a_cache_key_must_be_a_non_empty_string(cache_key, tmp_path):
    import devinterp_viz as dvz
    from tests.sweep_helpers import make_model, mse, regression_problem

    with pytest.raises(ValueError, match="cache_key= must be a non-empty string"):
        dvz.sweep_llc(scenarios._trajectory(1), make_model(), regression_problem(), mse, store=tmp_path,
                      cache_key=cache_key, progress=False, **scenarios.FAST)
