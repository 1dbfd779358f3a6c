"""The loops' two hooks for whoever watches them: a progress bar, and a request to stop (one home for each)."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from tqdm.auto import tqdm

Stop = threading.Event | Callable[[], bool] | None


def show_progress(progress: bool) -> bool:
    """Whether to draw a progress bar: asked for, and not under CI (the ``CI`` variable)."""
    return bool(progress) and not os.environ.get("CI")


def progress_bar(total: int, desc: str, progress: bool) -> Any:
    """A tqdm bar over ``total`` items (notebook or terminal), drawn only when :func:`show_progress`."""
    return tqdm(total=total, desc=desc, disable=not show_progress(progress), leave=False)


def stop_requested(stop: Stop) -> bool:
    """Whether ``stop`` (None, a ``threading.Event`` or a function returning a bool) asks to stop now."""
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())
