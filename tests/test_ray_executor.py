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


DRIVER = """
import json, sys, time
import psutil
from devinterp_viz.analysis.executors import RayExecutor
def negate(x):
    return -x
executor = RayExecutor(num_cpus=1)
print(list(executor.run(negate, [3], {})), flush=True)
print(json.dumps([[c.pid, c.create_time()] for c in psutil.Process().children(recursive=True)]), flush=True)
time.sleep(600)
"""


def _loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _alive(processes) -> list:
    psutil = pytest.importorskip("psutil")
    alive = []
    for pid, started in processes:
        try:
            process = psutil.Process(pid)
            if process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.Error:
            continue
    return alive


def test_a_local_cluster_listens_only_on_loopback():
    psutil = pytest.importorskip("psutil")

    def negate(x):  # defined here, so Ray ships it by value
        return -x

    executor = RayExecutor(num_cpus=1)
    try:
        assert list(executor.run(negate, [2], {})) == [(2, -2)]  # a worker is up too
        listening = [(process.name(), conn.laddr.ip) for process in psutil.Process().children(recursive=True)
                     for conn in process.net_connections(kind="inet") if conn.status == psutil.CONN_LISTEN]
    finally:
        executor.close()
    assert listening, "found no Ray server to check"
    assert all(_loopback(ip) for _, ip in listening), f"Ray servers listening beyond 127.0.0.1: {listening}"


def test_a_killed_driver_leaves_no_ray_process_behind(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    pytest.importorskip("psutil")
    root = Path(__file__).resolve().parents[1]
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True, cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})
    processes = []
    try:
        for line in driver.stdout:
            if line.startswith("[["):
                processes = json.loads(line)
                break
        assert len(processes) >= 3, "the driver did not start a Ray cluster"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.time() + 30
        while _alive(processes) and time.time() < deadline:
            time.sleep(1)
        survivors = [(p.pid, p.name()) for p in _alive(processes)]
        assert not survivors, f"Ray processes still running 30 s after the driver was killed: {survivors}"
    finally:
        driver.kill()
        for process in _alive(processes):  # leave the machine as it was, whatever happened
            process.kill()


def test_a_failing_sweep_stops_the_cluster_it_started():
    psutil = pytest.importorskip("psutil")

    def broken_loss(model, batch):
        raise ArithmeticError("the loss fails on purpose")

    traj = dvz.Trajectory(train_trajectory(None, num_checkpoints=2, steps=20))
    with pytest.raises(Exception, match="the loss fails on purpose"):
        dvz.sweep_llc(traj, make_model(), regression_problem(), broken_loss, executor="ray", num_cpus=1,
                      progress=False, **SWEEP_SETTINGS)
    assert not ray.is_initialized()
    names = {"raylet", "gcs_server"}
    left = [p.name() for p in psutil.Process().children(recursive=True) if p.name() in names]
    assert not left, f"the sweep's Ray cluster is still running: {left}"
