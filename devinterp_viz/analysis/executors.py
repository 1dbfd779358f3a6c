"""Where sweep tasks run: in this process (``"local"``) or on a Ray cluster (``"ray"``)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Task = Any


class LocalExecutor:
    """Runs tasks one after another in this process."""

    name = "local"

    def run(self, function: Callable, tasks: Sequence[Task], shared: dict[str, Any],
            prepare: Callable[[Task], Task] | None = None) -> Iterator[tuple[Task, Any]]:
        """Yield ``(task, function(prepare(task), **shared))`` in task order, one task at a time."""
        for task in tasks:
            yield task, function(prepare(task) if prepare else task, **shared)

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs one task per checkpoint on a Ray cluster; results come back as they finish.

    Parameters
    ----------
    address : str, optional
        An existing cluster (``"host:port"``, ``"ray://host:port"`` or ``"auto"``); None starts
        a local cluster (``num_cpus`` CPUs) for this process and stops it on :meth:`close`. A
        cluster started here listens on 127.0.0.1 only, has no dashboard, and is watched by a
        small process that stops all of it if this process dies without closing it (even by
        SIGKILL).
    num_cpus : int, optional
        CPUs of the local cluster (default: all).
    cpus_per_task : float
        CPUs Ray reserves for each task.
    max_in_flight : int, optional
        Tasks submitted but not yet collected; default twice the tasks the cluster runs at once.
        Each submitted task carries its checkpoint, so this bounds the checkpoints held in the
        driver and the object store, not the length of the sweep.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_task: float = 1.0,
                 max_in_flight: int | None = None):
        try:
            import ray
        except ImportError as err:
            raise ImportError("executor='ray' needs Ray: pip install 'devinterp_viz[ray]'") from err
        self._ray = ray
        self.cpus_per_task = cpus_per_task
        self.max_in_flight = max_in_flight
        self._started_here = False
        self._watchdog: subprocess.Popen | None = None
        if address is not None and address != "auto":
            _check_reachable(address)
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
        if address is not None:
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ValueError(f"could not connect to the Ray cluster at {address!r}: {err}") from err
            return
        before = {pid for pid, _ in _started_processes()}
        with _loopback_only():
            ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
        self._started_here = True
        _check_loopback(ray)
        self._watchdog = _start_watchdog(ray, [(pid, start) for pid, start in _started_processes() if pid not in before])

    def run(self, function: Callable, tasks: Sequence[Task], shared: dict[str, Any],
            prepare: Callable[[Task], Task] | None = None) -> Iterator[tuple[Task, Any]]:
        """Yield ``(task, function(prepare(task), **shared))`` in the order the tasks finish.

        ``prepare`` (e.g. reading the task's checkpoint) runs in this process just before a task
        is submitted; at most ``max_in_flight`` tasks are submitted and not yet yielded.
        """
        ray = self._ray
        remote = ray.remote(num_cpus=self.cpus_per_task)(function)
        shared_refs = {name: ray.put(value) for name, value in shared.items()}
        window = self.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_task))
        waiting = iter(tasks)
        pending: dict[Any, Task] = {}
        try:
            while True:
                for task in waiting:
                    pending[remote.remote(prepare(task) if prepare else task, **shared_refs)] = task
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                task = pending.pop(ref)
                yield task, ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Stop the cluster this executor started (and its watchdog); a cluster given by address stays."""
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.stdin.close()  # end of file: the watchdog stops what is left, then exits
            try:
                watchdog.wait(timeout=30)
            except subprocess.TimeoutExpired:
                watchdog.kill()


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Keep a node address of 127.0.0.1 as it is while Ray starts a local cluster.

    Ray replaces 127.0.0.1 by the machine's outward address (and its servers then listen on
    every interface) unless its ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` setting says multi-node
    clusters are off; that setting is read when ray is imported, so it is switched off here for
    the duration of ``ray.init`` only. :func:`_check_loopback` verifies the outcome.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # another Ray layout: _check_loopback will tell
        yield
        return
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved is None:
            del ray_constants.ENABLE_RAY_CLUSTER
        else:
            ray_constants.ENABLE_RAY_CLUSTER = saved


def _check_loopback(ray) -> None:
    node_ip = ray.util.get_node_ip_address()
    try:
        loopback = ipaddress.ip_address(node_ip).is_loopback
    except ValueError:
        loopback = node_ip == "localhost"
    if not loopback:
        warnings.warn(f"the local Ray cluster started for this sweep listens on {node_ip}, not only on 127.0.0.1; "
                      "start one yourself (ray start --head --node-ip-address=127.0.0.1) and pass its address= "
                      "to keep it off the network.", stacklevel=3)


def _started_processes() -> list[tuple[int, float]]:
    """This process's descendants with their start times (psutil comes with Ray, in its
    thirdparty_files when not installed on its own)."""
    try:
        import psutil
    except ImportError:
        return []
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            found.append((child.pid, child.create_time()))
        except psutil.Error:
            continue
    return found


def _start_watchdog(ray, processes: list[tuple[int, float]]) -> subprocess.Popen | None:
    """A process that stops ``processes`` (what ray.init started) and their descendants when this
    one ends, however it ends."""
    if not processes or sys.platform == "win32":
        warnings.warn("could not find the processes of the local Ray cluster to watch; if this process is killed, "
                      "stop them with `ray stop`.", stacklevel=3)
        return None
    psutil_home = Path(ray.__file__).parent / "thirdparty_files"  # Ray ships psutil there
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(psutil_home), os.environ.get("PYTHONPATH")]))}
    script = Path(__file__).with_name("_ray_watchdog.py")
    return subprocess.Popen([sys.executable, str(script), *(f"{pid}:{start!r}" for pid, start in processes)],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when nothing answers at a Ray address."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} is not of the form host:port (or ray://host:port, or 'auto').")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ValueError(
            f"nothing answers at the Ray address {address!r} ({err}); start the cluster (`ray start --head`) "
            "or pass address=None to start a local one."
        ) from err


def make_executor(executor: str | LocalExecutor | RayExecutor, address: str | None = None, num_cpus: int | None = None):
    """An executor from its name ("local" or "ray") or an executor object."""
    if isinstance(executor, (LocalExecutor, RayExecutor)):
        return executor
    if executor == "local":
        if address is not None:
            raise ValueError("address= is for executor='ray'; the local executor runs in this process.")
        return LocalExecutor()
    if executor == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus)
    raise ValueError(f"executor={executor!r} is unknown; use 'local' or 'ray'.")
