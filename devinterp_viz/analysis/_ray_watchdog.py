"""Stops a local Ray cluster's processes once the driver that started them is gone (run as a script).

Usage: ``python _ray_watchdog.py PID [PID ...]`` with the pids of the processes ``ray.init`` started
(GCS, raylet, monitors). The driver keeps the write end of this process's stdin; reading end of
file there means the driver closed it or died (even by SIGKILL). Until then the watchdog records,
twice a second, those processes and all their descendants (the agents and workers the raylet
starts) with their start times; at the end it terminates the recorded ones still running (same
pid *and* start time, so a reused pid is never touched), and kills any left after a grace period.
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
    """Watch the given root pids until stdin ends, then stop everything recorded under them."""
    roots = [int(pid) for pid in argv]
    seen: dict[int, float] = {}
    _collect(roots, seen)
    while not _driver_gone():
        _collect(roots, seen)
    _collect(roots, seen)
    _stop(seen)
    return 0


def _driver_gone() -> bool:
    ready, _, _ = select.select([0], [], [], POLL_SECONDS)
    return bool(ready) and os.read(0, 4096) == b""


def _collect(roots: list[int], seen: dict[int, float]) -> None:
    """Add the roots and their descendants, as (pid -> start time), to ``seen``."""
    for pid in roots + list(seen):
        try:
            process = psutil.Process(pid)
            if seen.setdefault(pid, process.create_time()) != process.create_time():
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
            if process.create_time() == started:
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
