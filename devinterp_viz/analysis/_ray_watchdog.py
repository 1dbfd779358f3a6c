"""Stops a local Ray cluster's processes once the driver that started them is gone (run as a script).

Usage: ``python _ray_watchdog.py PID:START [PID:START ...]``: the processes ``ray.init`` started
(GCS, raylet, monitors, the raylet's agents) with their start times, as the driver saw them
(so they are known even if the driver dies before this process is up). The driver keeps the write
end of this process's stdin; end of file there means the driver closed it or died (even by
SIGKILL). Until then the watchdog adds, twice a second, every new descendant of those processes
(workers); at the end it terminates the recorded ones still running (same pid *and* start time, so
a reused pid is never touched), and kills any left after a grace period.
Ray's raylet and GCS follow a killed driver by themselves, but its dashboard and runtime-env
agents can hang on their way out for minutes; this makes sure nothing of the session survives.
"""

from __future__ import annotations

import os
import select
import sys

import psutil

POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0


def main(argv: list[str]) -> int:
    """Watch the given processes until stdin ends, then stop them and everything recorded under them."""
    seen = {int(pid): float(start) for pid, start in (item.split(":", 1) for item in argv)}
    while not _driver_gone():
        _collect(seen)
    _collect(seen)
    _stop(seen)
    return 0


def _driver_gone() -> bool:
    ready, _, _ = select.select([0], [], [], POLL_SECONDS)
    return bool(ready) and os.read(0, 4096) == b""


def _collect(seen: dict[int, float]) -> None:
    """Add the descendants of the processes in ``seen`` to it, as pid -> start time."""
    for pid in list(seen):
        try:
            process = psutil.Process(pid)
            if not same_start(process.create_time(), seen[pid]):
                continue  # a reused pid: not ours
            for child in process.children(recursive=True):
                seen.setdefault(child.pid, child.create_time())
        except psutil.Error:
            continue


def _stop(seen: dict[int, float]) -> None:
    running = []
    for pid, started in seen.items():
        if pid == os.getpid():
            continue
        try:
            process = psutil.Process(pid)
            if same_start(process.create_time(), started):
                process.terminate()
                running.append(process)
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(running, timeout=GRACE_SECONDS)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue


def same_start(first: float, second: float) -> bool:
    """Start times read twice of one process agree to the clock tick (psutil's are in ticks)."""
    return abs(first - second) < 0.05


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
