"""Background jobs for widgets that compute: one thread, Stop, errors shown in the widget."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

RUNNING = ("running", "stopping")


class BackgroundJobs:
    """Mixin for a :class:`DvzWidget` with synced ``status`` and ``error`` traits and a ``_throttle``.

    ``_start_job(job)`` runs ``job(stop_event)`` in a daemon thread with status "running"; it
    ends "done", or "stopped" when :meth:`stop` was called, or "error" with the exception's
    message in ``error`` (never only in a log). ``_on_job_end()`` (optional) runs in the thread
    after the job, whatever happened, before the status changes.
    """

    _thread: threading.Thread | None = None
    _stop_event: threading.Event | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, wait: bool = True) -> None:
        """Stop the running job after the step in progress; what was computed is kept."""
        if not self.running:
            return
        self._stop_event.set()
        self.status = "stopping"
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running job to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _start_job(self, job: Callable[[threading.Event], None], name: str) -> threading.Thread:
        if self.running:
            raise RuntimeError("a job is already running: stop() it or join() it first")
        self._stop_event = threading.Event()
        with self.hold_sync():
            self.status, self.error = "running", ""
        self._thread = threading.Thread(target=self._guarded, args=(job, self._stop_event), daemon=True, name=f"dvz-{name}")
        self._thread.start()
        return self._thread

    def _wait_job(self, wait: bool) -> Any:
        if not wait:
            return self._thread
        try:
            self._thread.join()
        except KeyboardInterrupt:  # interrupting the cell stops the job, keeping its results
            self.stop()
        if self.status == "error":
            raise RuntimeError(f"the computation failed: {self.error}")
        return None

    def _guarded(self, job: Callable[[threading.Event], None], stop: threading.Event) -> None:
        status, error = "done", ""
        try:
            job(stop)
            if stop.is_set():
                status = "stopped"
        except Exception as err:  # noqa: BLE001 - the widget shows it; nothing is lost in a log
            status, error = "error", "".join(traceback.format_exception_only(type(err), err)).strip()
        try:
            self._on_job_end()
        except Exception as err:  # noqa: BLE001
            status, error = "error", error or f"{type(err).__name__}: {err}"
        self._throttle.flush()
        with self.hold_sync():
            self.error = error
            self.status = status

    def _on_job_end(self) -> None:
        """Hook: push the final state (runs in the job's thread)."""

    def _listen(self, handlers: dict[str, Callable[[dict[str, Any]], Any]]) -> None:
        """Answer front-end messages ``{"type": kind, ...}`` with ``handlers[kind](message)``."""
        self._message_handlers = handlers
        self.on_msg(self._on_frontend_msg)

    def _on_frontend_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        """Run a message's handler; other messages are ignored.

        An error is shown in the widget (a button press must not raise into a lost log); a message
        answered without one clears the last message's error.
        """
        handler = self._message_handlers.get(content.get("type")) if isinstance(content, dict) else None
        if handler is None:
            return
        try:
            handler(content)
        except Exception as err:  # noqa: BLE001 - shown in the widget
            with self.hold_sync():
                self.error = f"{type(err).__name__}: {err}"
                if not self.running:
                    self.status = "error"
            return
        if self.error and not self.running:
            self.error = ""
