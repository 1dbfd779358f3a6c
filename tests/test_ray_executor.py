"""The Ray executor on a real local cluster started by the test: same numbers as local."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import devinterp_viz as dvz
from devinterp_viz.analysis.executors import RayExecutor
from tests.sweep_helpers import SWEEP_SETTINGS, make_model, mse, regression_problem, train_trajectory

ray = pytest.importorskip("ray")


def test_ray_sweep_gives_the_same_numbers_as_local_and_fills_the_store(tmp_path):
    traj = dvz.Trajectory(train_trajectory(None, num_checkpoints=4, steps=100))
    local = dvz.sweep_llc(traj, make_model(), regression_problem(), mse, progress=False, **SWEEP_SETTINGS)
    arrived = []
    on_ray = dvz.sweep_llc(traj, make_model(), regression_problem(), mse, executor="ray", num_cpus=2,
                           store=tmp_path / "store", progress=False, on_result=lambda *a: arrived.append(a[2]),
                           **SWEEP_SETTINGS)
    assert not ray.is_initialized()  # the cluster the sweep started is stopped again
    assert sorted(arrived) == list(range(len(traj)))
    for index in range(len(traj)):
        np.testing.assert_allclose(on_ray.results[("all", "data", index)].loss_trace,
                                   local.results[("all", "data", index)].loss_trace, rtol=1e-6)
    assert len(dvz.ResultStore(tmp_path / "store")) == len(traj)


def test_a_ray_address_that_does_not_answer_is_a_clear_error():
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ValueError, match="nothing answers at the Ray address"):
        RayExecutor(address=f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match="not of the form host:port"):
        RayExecutor(address="nonsense")


def test_ray_holds_only_a_window_of_prepared_tasks():
    # each sweep task carries its checkpoint: a long sweep must not read them all before the first result
    def _square(task):  # defined here, so Ray ships it by value (workers cannot import test modules)
        return task * task

    executor = RayExecutor(num_cpus=2, max_in_flight=2)
    try:
        prepared, results = [], []

        def prepare(task):
            prepared.append(task)
            return task

        for task, result in executor.run(_square, list(range(6)), {}, prepare=prepare):
            results.append((task, result))
            assert len(prepared) - len(results) <= 1  # the window of 2, less the one just collected
        assert sorted(results) == [(i, i * i) for i in range(6)] and sorted(prepared) == list(range(6))
    finally:
        executor.close()
