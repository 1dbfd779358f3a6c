"""A crash-safe folder of finished LLC results: one atomic file per estimate plus a manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from devinterp_viz._version import __version__
from devinterp_viz.analysis.fingerprint import Fingerprint, data_fingerprint, value_fingerprint
from devinterp_viz.engine.results import LLCResult

STORE_FORMAT_VERSION = 1
KEY_FORMAT_VERSION = 2  # keys made by result_key; bumped when what they cover changes
MANIFEST = "manifest.json"
TEMP_PREFIX = ".tmp-"
#: A temporary file whose writer cannot be identified is a leftover once it is this old.
STALE_TEMP_SECONDS = 24 * 3600
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_TEMP_WRITER = re.compile(r"\.tmp-(\d+)@([A-Za-z0-9._-]*)~")


class StoreWarning(UserWarning):
    """A file in a store folder was skipped: unreadable, inconsistent, or not a store entry."""


class ResultStore:
    """A folder of LLC results keyed by everything that determines them.

    Each finished estimate is written to its own ``<key>.npz`` through a temporary file and an
    atomic rename (:meth:`LLCResult.save`), so a process killed at any moment leaves either the
    whole file or the previous one. ``manifest.json`` records the format version and an index
    (step, selection, distribution per key); the result files are the source of truth, so an
    index missing the last entry (killed between the two writes) is repaired on the next open.

    Temporary files are named ``.tmp-<pid>@<host>~...``; opening a store removes only those whose
    writer is gone (its process no longer runs on this host, or the file is older than
    ``STALE_TEMP_SECONDS``), never one another live process is writing. An entry that cannot be
    read, or whose estimate disagrees with its own loss traces (a torn or hand-edited file),
    is skipped with a :class:`StoreWarning` naming the file, and recomputed. Other files in
    the folder (a foreign ``.npz``) are left alone.

    Parameters
    ----------
    folder : str or Path
        Created if missing. A folder that cannot be written is opened read-only
        (:attr:`writable` is False): its results can be read, :meth:`put` raises.

    Raises
    ------
    ValueError
        When the folder holds a store of another format version or an unreadable manifest, or
        cannot be created.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"cannot create the store folder {self.folder} ({err}); give a folder you can write.") from err
        if not self.folder.is_dir():
            raise ValueError(f"the store path {self.folder} is not a folder; give a folder for store=.")
        self.index: dict[str, dict] = self._read_manifest()
        self.writable = _can_write(self.folder)
        if self.writable:
            self._remove_dead_temporaries()
        self._reconcile()

    # ------------------------------------------------------------------ opening
    def _read_manifest(self) -> dict[str, dict]:
        manifest_path = self.folder / MANIFEST
        if not manifest_path.exists():
            return {}
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{manifest_path} is not valid JSON ({err}); is this folder a devinterp_viz store?") from err
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if version != STORE_FORMAT_VERSION:
            raise ValueError(
                f"the store at {self.folder} was written in format {version}; this version of devinterp_viz "
                f"reads format {STORE_FORMAT_VERSION}. Use a new store folder (the old one is left as it is)."
            )
        entries = manifest.get("entries", {})
        return {key: dict(value) for key, value in entries.items() if valid_key(key) and isinstance(value, dict)}

    def _remove_dead_temporaries(self) -> None:
        for leftover in self.folder.glob(TEMP_PREFIX + "*"):
            if leftover.is_file() and _writer_is_gone(leftover):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:  # another user's file in a shared folder: theirs to remove
                    continue

    def _reconcile(self) -> None:
        on_disk = set()
        for path in self.folder.glob("*.npz"):
            if path.name.startswith("."):  # a temporary file (or another hidden one): not an entry
                continue
            if valid_key(path.stem):
                on_disk.add(path.stem)
            else:
                warnings.warn(f"{path} is not a store entry (its name is not a key); it is ignored and left as it is.",
                              StoreWarning, stacklevel=3)
        changed = False
        for key in list(self.index):
            if key not in on_disk:
                del self.index[key]
                changed = True
        for key in sorted(on_disk - set(self.index)):
            result = self._read(key)
            if result is not None:
                self.index[key] = dict(result.config.get("sweep", {}))
                changed = True
        if self.writable and (changed or not (self.folder / MANIFEST).exists()):
            self._write_manifest()

    # ------------------------------------------------------------------ reading
    def __contains__(self, key: str) -> bool:
        return valid_key(key) and (key in self.index or self._path(key).exists())

    def __len__(self) -> int:
        return len(self.index)

    def get(self, key: str) -> LLCResult | None:
        """The stored result under ``key``; None when there is none or its file is unreadable or
        inconsistent (then with a :class:`StoreWarning` naming the file)."""
        self._check_key(key)
        if not self._path(key).exists():
            self.index.pop(key, None)
            return None
        return self._read(key)

    def _read(self, key: str) -> LLCResult | None:
        path = self._path(key)
        try:
            result = LLCResult.load(path)
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001 - a torn or foreign file fails in many ways; all mean "skip"
            problem = f"cannot be read ({type(err).__name__}: {err})"
        else:
            problem = summary_problem(result)
            if problem is None:
                return result
        self.index.pop(key, None)
        warnings.warn(f"store entry {path} {problem}; it is skipped and its estimate recomputed.", StoreWarning, stacklevel=3)
        return None

    # ------------------------------------------------------------------ writing
    def put(self, key: str, result: LLCResult) -> None:
        """Store ``result`` under ``key`` atomically (temporary file, fsync, rename), then index it.

        Raises
        ------
        ValueError
            On a key that is not a safe file name, or a store that cannot be written.
        """
        self._check_key(key)
        self.check_writable()
        result.save(self._path(key))
        self.index[key] = dict(result.config.get("sweep", {}))
        self._write_manifest()

    def check_writable(self, missing: int | None = None) -> None:
        """Raise a ValueError saying what to do when this store cannot be written."""
        if self.writable:
            return
        what = f"{missing} estimate(s) this sweep needs are not in it" if missing else "results cannot be added to it"
        raise ValueError(
            f"the store folder {self.folder} is read-only and {what}. Make the folder writable, pass another "
            "store= folder, or store=None to compute without storing."
        )

    def _write_manifest(self) -> None:
        payload = {"format_version": STORE_FORMAT_VERSION, "written_by": f"devinterp_viz {__version__}", "entries": self.index}
        temp = self.folder / temporary_name(".json")
        try:
            with open(temp, "x") as fh:
                json.dump(payload, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.folder / MANIFEST)
        finally:
            temp.unlink(missing_ok=True)

    # ------------------------------------------------------------------ keys
    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    @staticmethod
    def _check_key(key: str) -> None:
        if not valid_key(key):
            raise ValueError(
                f"store key {key!r} is not a safe file name: use 1-128 letters, digits, '_' or '-' "
                "(keys from result_key are 32 hex digits)."
            )


def valid_key(key: Any) -> bool:
    """Whether ``key`` names a file inside the store and nothing else (no separator, no dot)."""
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


def temporary_name(suffix: str) -> str:
    """A fresh temporary file name that says who writes it: ``.tmp-<pid>@<host>~<random><suffix>``."""
    return f"{TEMP_PREFIX}{os.getpid()}@{_host()}~{secrets.token_hex(8)}{suffix}"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _writer_is_gone(path: Path) -> bool:
    """A temporary file is a leftover when its writer's process is gone, or it is very old."""
    match = _TEMP_WRITER.match(path.name)
    if match is not None and match.group(2) == _host() and not _process_alive(int(match.group(1))):
        return True
    try:
        return time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS
    except FileNotFoundError:
        return False


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


def _can_write(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried, since permission bits do not bind root)."""
    probe = folder / temporary_name(".probe")
    try:
        probe.open("x").close()
    except OSError:
        return False
    probe.unlink(missing_ok=True)
    return True


def summary_problem(result: LLCResult) -> str | None:
    """What is wrong when a result's estimate disagrees with its own traces; None when it agrees.

    ``llc_per_chain`` must be ``nbeta * (mean(loss_trace[c]) - init_loss)`` (NaN for divergent
    chains), and ``llc_mean`` / ``llc_std`` the mean and standard deviation (ddof=1) of its
    finite entries, to 1e-9 of the value plus ``nbeta`` times the size of the losses (rounding
    in the difference of two means, whatever order they were summed in).
    """
    trace = np.asarray(result.loss_trace, dtype=np.float64)
    divergent = np.asarray(result.diagnostics.divergent, dtype=bool)
    if trace.ndim != 2 or divergent.shape != (trace.shape[0],):
        return f"has a loss_trace of shape {trace.shape} and {divergent.size} divergence flags"
    with np.errstate(invalid="ignore"):
        per_chain = result.nbeta * (trace.mean(axis=1) - result.init_loss) if trace.shape[1] else np.full(trace.shape[0], np.nan)
    per_chain = np.where(divergent, np.nan, per_chain)
    kept = per_chain[np.isfinite(per_chain)]
    finite = np.abs(trace[np.isfinite(trace)])
    slack = 1e-9 * abs(result.nbeta) * max(float(finite.max()) if finite.size else 0.0, abs(result.init_loss), 1e-12)
    expected = {
        "llc_mean": float(kept.mean()) if kept.size else float("nan"),
        "llc_std": float(kept.std(ddof=1)) if kept.size > 1 else float("nan"),
    }
    for name, value in expected.items():
        if not _close(getattr(result, name), value, slack):
            return f"says {name} = {getattr(result, name)!r}, but its loss traces give {value!r}"
    stored = np.asarray(result.llc_per_chain, dtype=np.float64)
    if stored.shape != per_chain.shape or not np.allclose(stored, per_chain, rtol=1e-9, atol=slack, equal_nan=True):
        return "has llc_per_chain values that its loss traces do not give"
    return None


def _close(stored: float, expected: float, slack: float) -> bool:
    if np.isnan(stored) or np.isnan(expected):
        return bool(np.isnan(stored) and np.isnan(expected))
    return bool(abs(stored - expected) <= 1e-9 * abs(expected) + slack)


def result_key(settings: Mapping[str, Any], checkpoint_fingerprint: str, data_fingerprint: str) -> str:
    """Store key: a hash of the settings, the checkpoint's weights, the data and this library's version."""
    blob = json.dumps({"settings": settings, "checkpoint": checkpoint_fingerprint, "data": data_fingerprint,
                       "devinterp_viz": __version__, "key_format": KEY_FORMAT_VERSION}, sort_keys=True,
                      default=_not_plain)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _not_plain(value: Any) -> Any:
    raise TypeError(
        f"a store key's settings must be plain JSON values; got {type(value).__name__}. Fingerprint it first "
        "(devinterp_viz.analysis.fingerprint.value_fingerprint) and pass its digest."
    )


def code_fingerprint(function: Any) -> Fingerprint:
    """Fingerprint of a function's code, closure cells, defaults and the globals it reads
    (see :func:`devinterp_viz.analysis.fingerprint.value_fingerprint`)."""
    return value_fingerprint(function, getattr(function, "__qualname__", "function"))


__all__ = ["ResultStore", "StoreWarning", "code_fingerprint", "data_fingerprint", "result_key", "summary_problem",
           "temporary_name", "valid_key"]
