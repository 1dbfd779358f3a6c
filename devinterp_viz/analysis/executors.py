"""Where sweep tasks run: in this process (``"local"``) or on a Ray cluster (``"ray"``)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
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
        a local cluster (``num_cpus`` CPUs) for this process and stops it on :meth:`close`.
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
        if address is not None and address != "auto":
            _check_reachable(address)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus
                self._started_here = True
            else:
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise ValueError(f"could not connect to the Ray cluster at {address!r}: {err}") from err

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
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


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
