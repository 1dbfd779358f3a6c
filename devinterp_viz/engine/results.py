"""Result objects of the engine: an LLC estimate with its traces, diagnostics and provenance."""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devinterp_viz.engine.diagnostics import diagnose
from devinterp_viz.engine.estimator import llc_per_chain, running_llc
from devinterp_viz.engine.verdict import Diagnostics, to_jsonable
from devinterp_viz.plotting import fmt, format_estimate

TRACE_PREFIX = "trace_"  # sampler traces are stored as trace_<name> arrays
OBSERVABLE_PREFIX = "obs_"  # observables as obs_<name> (chains, draws, samples) arrays
INDEX_PREFIX = "obsindex_"  # and their token indices as obsindex_<name> (samples, 2)
RESULT_FORMAT_VERSION = 2  # 2: sampler traces and the verdict's status, causes and next step


@dataclass
class LLCResult:
    """An LLC estimate with everything needed to judge and re-plot it.

    Attributes
    ----------
    llc_mean : float
        Mean of the per-chain estimates over the non-divergent chains (NaN if none is left).
    llc_std : float
        Standard deviation of the per-chain estimates (ddof=1) over the same chains.
    llc_per_chain : np.ndarray, shape (chains,)
        ``nbeta * (mean(loss_trace[c]) - init_loss)``; NaN for divergent chains.
    loss_trace : np.ndarray, shape (chains, draws)
        Minibatch loss at each draw, burn-in excluded.
    init_loss : float
        L(w*) over the fixed evaluation batches.
    nbeta : float
        The inverse temperature used (nβ).
    config : dict
        Every setting of the run (sampler, lr, localization, seed, selection, ...).
    diagnostics : Diagnostics
        Chain health computed from the traces.
    mala_trace : np.ndarray, shape (chains, draws)
        Acceptance probability a Metropolis-adjusted version of the step out of each draw's
        position would have had, both ends on the same data (Lau et al. 2023's tuning aid).
        Full-batch runs measure it at every draw but the last; minibatch runs at 16 draws
        spread over the run (the step after each reuses its minibatch, so both ends of the
        move see the same data); NaN elsewhere and for samplers without one (SGNHT).
    distance_trace : np.ndarray, shape (chains, draws)
        Squared distance |w − w*|² of the moving weights at each draw (NaN when unknown,
        e.g. for imported results). A healthy chain's distance levels off.
    partial : bool
        True when sampling was stopped before ``num_draws`` draws; ``loss_trace`` then holds
        only the draws completed.
    sampler_traces : dict of str to np.ndarray, shape (chains, draws)
        What the driver recorded for the diagnostics at every draw (``virial``, ``stein``,
        ``drift_sq``, ``descent``: see ``devinterp_viz.engine.driver.SAMPLER_TRACES``); empty
        for imported results.
    observables : dict of str to np.ndarray, shape (chains, draws, samples)
        Per-sample (or per-token) losses of the named data sets at every draw, when the run was
        given ``observables=`` and ``per_sample_loss=``; the input of ``dvz.loss_kernel``,
        ``dvz.bif`` and ``dvz.susceptibilities``.
    observable_index : dict of str to np.ndarray or None, shape (samples, 2)
        (sequence, position) of each token of a per-token observable; None for per-sample ones.
    burnin_steps : np.ndarray of int, shape (points,)
        Burn-in steps at which ``burnin_loss_trace`` was taken: at most 256 evenly spaced steps
        that ran, and the last finite step of each chain that went non-finite (where
        ``diagnostics.burnin_divergence_step`` says); empty for results without a burn-in trace.
    burnin_loss_trace : np.ndarray, shape (chains, points)
        Minibatch loss at those steps (NaN at another chain's last finite step). Display and
        diagnosis only: the estimate uses the draws.

    Notes
    -----
    The estimator is λ̂ = nβ (E_w[L_n(w)] − L_n(w*)) (Lau et al. 2023). ``llc_trace`` gives its
    running value per chain, the curve a healthy chain flattens out on.

    References
    ----------
    Lau, Furman, Wang, Murfet, Wei. The Local Learning Coefficient: A Singularity-Aware
    Complexity Measure. AISTATS 2025.
    """

    llc_mean: float
    llc_std: float
    llc_per_chain: np.ndarray
    loss_trace: np.ndarray
    init_loss: float
    nbeta: float
    config: dict[str, Any]
    diagnostics: Diagnostics
    mala_trace: np.ndarray
    distance_trace: np.ndarray | None = None
    partial: bool = False
    sampler_traces: dict[str, np.ndarray] = field(default_factory=dict)
    observables: dict[str, np.ndarray] = field(default_factory=dict)
    observable_index: dict[str, np.ndarray | None] = field(default_factory=dict)
    burnin_steps: np.ndarray | None = None
    burnin_loss_trace: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.distance_trace is None:
            self.distance_trace = np.full(self.loss_trace.shape, np.nan)
        if self.burnin_steps is None:
            self.burnin_steps = np.zeros(0, dtype=int)
        if self.burnin_loss_trace is None:
            self.burnin_loss_trace = np.full((self.loss_trace.shape[0], 0), np.nan)

    @property
    def llc_se(self) -> float:
        """Standard error of ``llc_mean``: the larger of the Monte Carlo error from all draws and
        the spread of the chain means (``llc_std / sqrt(chains)``)."""
        spread = self.llc_std / np.sqrt(max(int(np.isfinite(self.llc_per_chain).sum()), 1))
        known = [value for value in (self.diagnostics.mcse, spread) if np.isfinite(value)]
        return float(max(known)) if known else float("nan")

    @classmethod
    def from_traces(
        cls,
        loss_trace: np.ndarray,
        init_loss: float,
        nbeta: float,
        config: dict[str, Any] | None = None,
        mala_trace: np.ndarray | None = None,
        distance_trace: np.ndarray | None = None,
        partial: bool = False,
        num_params: int | None = None,
        sampler_traces: dict[str, np.ndarray] | None = None,
        observables: dict[str, np.ndarray] | None = None,
        observable_index: dict[str, np.ndarray | None] | None = None,
        burnin_steps: np.ndarray | None = None,
        burnin_loss_trace: np.ndarray | None = None,
        burnin_divergence_step: np.ndarray | None = None,
    ) -> LLCResult:
        """Build a result (estimate and diagnostics) from loss traces.

        Parameters
        ----------
        loss_trace : array_like, shape (chains, draws)
            Minibatch loss at each draw, burn-in excluded.
        init_loss : float
            L(w*).
        nbeta : float
            Inverse temperature nβ the chains were sampled at.
        config : dict, optional
            Settings of the run, kept verbatim.
        mala_trace : array_like, shape (chains, draws), optional
            MALA acceptance probabilities; NaN (unknown) when omitted.
        distance_trace : array_like, shape (chains, draws), optional
            Squared distances |w − w*|²; NaN (unknown) when omitted.
        partial : bool
            Whether sampling stopped before all requested draws.
        num_params : int, optional
            Number of sampled parameters; sharpens the explosion test of the diagnostics.
        sampler_traces : dict of str to array_like (chains, draws), optional
            The driver's per-draw diagnostic traces (see :attr:`sampler_traces`).
        observables, observable_index : dict, optional
            Recorded per-sample losses and token indices (see :attr:`observables`).
        burnin_steps, burnin_loss_trace : array_like, shape (points,) and (chains, points), optional
            The loss during burn-in (see :attr:`burnin_loss_trace`).
        burnin_divergence_step : array_like of int, shape (chains,), optional
            First burn-in step at which each chain's loss was non-finite, -1 where it stayed
            finite; the verdict then says the chain diverged during burn-in.
        """
        loss_trace = np.asarray(loss_trace, dtype=np.float64)
        if loss_trace.ndim != 2:
            raise ValueError(f"loss_trace must have shape (chains, draws), got {loss_trace.shape}")
        mala = (
            np.full(loss_trace.shape, np.nan)
            if mala_trace is None
            else np.asarray(mala_trace, dtype=np.float64)
        )
        distance = (
            np.full(loss_trace.shape, np.nan)
            if distance_trace is None
            else np.asarray(distance_trace, dtype=np.float64)
        )
        traces = {name: np.asarray(trace, dtype=np.float64) for name, trace in (sampler_traces or {}).items()}
        burnin_steps = np.zeros(0, dtype=int) if burnin_steps is None else np.asarray(burnin_steps, dtype=int)
        burnin_loss = (np.full((loss_trace.shape[0], burnin_steps.size), np.nan) if burnin_loss_trace is None
                       else np.asarray(burnin_loss_trace, dtype=np.float64))
        if burnin_loss.shape != (loss_trace.shape[0], burnin_steps.size):
            raise ValueError(f"burnin_loss_trace must have shape (chains, burn-in points) = {(loss_trace.shape[0], burnin_steps.size)}, "
                             f"got {burnin_loss.shape}")
        diagnostics = diagnose(loss_trace, init_loss, nbeta, mala, num_params=num_params, sampler_traces=traces, config=config,
                               burnin_divergence_step=burnin_divergence_step)
        per_chain = np.where(diagnostics.divergent, np.nan, llc_per_chain(loss_trace, init_loss, nbeta))
        kept = per_chain[np.isfinite(per_chain)]
        mean = float(kept.mean()) if kept.size else float("nan")
        std = float(kept.std(ddof=1)) if kept.size > 1 else float("nan")
        return cls(
            llc_mean=mean,
            llc_std=std,
            llc_per_chain=per_chain,
            loss_trace=loss_trace,
            init_loss=float(init_loss),
            nbeta=float(nbeta),
            config=dict(config or {}),
            diagnostics=diagnostics,
            mala_trace=mala,
            distance_trace=distance,
            partial=partial,
            sampler_traces=traces,
            observables=dict(observables or {}),
            observable_index=dict(observable_index or {}),
            burnin_steps=burnin_steps,
            burnin_loss_trace=burnin_loss,
        )

    @property
    def num_chains(self) -> int:
        return int(self.loss_trace.shape[0])

    @property
    def num_draws(self) -> int:
        return int(self.loss_trace.shape[1])

    @property
    def llc_trace(self) -> np.ndarray:
        """Running LLC estimate per chain, shape (chains, draws)."""
        return running_llc(self.loss_trace, self.init_loss, self.nbeta)

    def __repr__(self) -> str:
        state = "partial, " if self.partial else ""
        return (
            f"LLCResult(llc={format_estimate(self.llc_mean, self.llc_se)} (± SE), {state}"
            f"{self.num_chains} chains × {self.num_draws} draws, nbeta={self.nbeta:.4g}, "
            f"{self.diagnostics.verdict})"
        )

    def summary(self) -> str:
        """Estimate, settings and health in a few printable lines."""
        cfg = self.config
        head = (
            f"LLC {format_estimate(self.llc_mean, self.llc_se)} (± SE; std across chains {fmt(self.llc_std, 2)})"
            + (" [PARTIAL: stopped early]" if self.partial else "")
        )
        setting = (
            f"sampler={cfg.get('sampler')} lr={cfg.get('lr')} nbeta={self.nbeta:.4g} "
            f"localization={cfg.get('localization')} chains={self.num_chains} draws={self.num_draws}"
        )
        return "\n".join([head, setting, f"L(w*) = {self.init_loss:.6g}", self.diagnostics.summary()])

    # ------------------------------------------------------------------ export
    def to_pandas(self):
        """Long table with one row per (chain, draw): loss, running llc and MALA acceptance."""
        import pandas as pd

        chains, draws = np.meshgrid(np.arange(self.num_chains), np.arange(self.num_draws), indexing="ij")
        return pd.DataFrame(
            {
                "chain": chains.ravel(),
                "draw": draws.ravel(),
                "loss": self.loss_trace.ravel(),
                "llc": self.llc_trace.ravel(),
                "mala_acceptance": self.mala_trace.ravel(),
                "distance": self.distance_trace.ravel(),
            }
        )

    def to_xarray(self):
        """``xarray.Dataset`` with (chain, draw) variables, the burn-in losses ``burnin_loss`` (chain, burnin_step)
        and the scalars as attributes."""
        try:
            import xarray as xr
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_xarray needs xarray: pip install 'devinterp_viz[xarray]'"
            ) from err
        coords = {"chain": np.arange(self.num_chains), "draw": np.arange(self.num_draws), "burnin_step": self.burnin_steps}
        return xr.Dataset(
            {
                "loss": (("chain", "draw"), self.loss_trace),
                "llc": (("chain", "draw"), self.llc_trace),
                "mala_acceptance": (("chain", "draw"), self.mala_trace),
                "distance": (("chain", "draw"), self.distance_trace),
                **{name: (("chain", "draw"), trace) for name, trace in self.sampler_traces.items()},
                "llc_per_chain": (("chain",), self.llc_per_chain),
                "burnin_loss": (("chain", "burnin_step"), self.burnin_loss_trace),
            },
            coords=coords,
            attrs={
                "llc_mean": self.llc_mean,
                "llc_std": self.llc_std,
                "init_loss": self.init_loss,
                "nbeta": self.nbeta,
                "partial": int(self.partial),
                "healthy": int(self.diagnostics.healthy),
                "config": json.dumps(to_jsonable(self.config)),
            },
        )

    def plot(self):
        """Static plotly figure of the traces with the diagnostics summary."""
        from devinterp_viz.plotting import plot_llc_result

        return plot_llc_result(self)

    # ------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write the result to ``path`` (a ``.npz`` file holding arrays and JSON metadata), atomically.

        The file is written under a temporary name in the same folder
        (``.tmp-<pid>@<host>~<random>.npz``, so a store can tell a live writer's file from a dead
        one's), flushed and fsynced, then renamed over ``path``: a process killed at any moment
        leaves either the previous file or the new one, never a torn one.
        """
        import os
        import re
        import secrets
        import socket

        path = Path(path)
        meta = {
            "format_version": RESULT_FORMAT_VERSION,
            "llc_mean": self.llc_mean,
            "llc_std": self.llc_std,
            "init_loss": self.init_loss,
            "nbeta": self.nbeta,
            "partial": self.partial,
            "config": to_jsonable(self.config),
            "diagnostics": self.diagnostics.to_dict(),
        }
        host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"
        temp = path.parent / f".tmp-{os.getpid()}@{host}~{secrets.token_hex(8)}.npz"
        try:
            with open(temp, "xb") as fh:  # "x": created here, with the permissions open() gives
                np.savez(
                    fh,
                    loss_trace=self.loss_trace,
                    llc_per_chain=self.llc_per_chain,
                    mala_trace=self.mala_trace,
                    distance_trace=self.distance_trace,
                    burnin_steps=self.burnin_steps,
                    burnin_loss_trace=self.burnin_loss_trace,
                    meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                    **{TRACE_PREFIX + name: trace for name, trace in self.sampler_traces.items()},
                    **{OBSERVABLE_PREFIX + name: values for name, values in self.observables.items()},
                    **{INDEX_PREFIX + name: index for name, index in self.observable_index.items() if index is not None},
                )
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LLCResult:
        """Read a result written by :meth:`save`; its observables are mapped read-only from the file, not read
        (files written before the burn-in trace was kept have none)."""
        with np.load(Path(path), allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            observables = {key[len(OBSERVABLE_PREFIX):]: _mapped_member(Path(path), key) for key in data.files
                           if key.startswith(OBSERVABLE_PREFIX)}
            if meta.get("format_version") != RESULT_FORMAT_VERSION:
                raise ValueError(
                    f"{path} was written by result format {meta.get('format_version')}, this "
                    f"version reads format {RESULT_FORMAT_VERSION}: recompute the result."
                )
            return cls(
                llc_mean=float(meta["llc_mean"]),
                llc_std=float(meta["llc_std"]),
                llc_per_chain=np.array(data["llc_per_chain"]),
                loss_trace=np.array(data["loss_trace"]),
                init_loss=float(meta["init_loss"]),
                nbeta=float(meta["nbeta"]),
                config=meta["config"],
                diagnostics=Diagnostics.from_dict(meta["diagnostics"]),
                mala_trace=np.array(data["mala_trace"]),
                distance_trace=np.array(data["distance_trace"]),
                partial=bool(meta["partial"]),
                sampler_traces={
                    key[len(TRACE_PREFIX) :]: np.array(data[key]) for key in data.files if key.startswith(TRACE_PREFIX)
                },
                observables=observables,
                observable_index={name: np.array(data[INDEX_PREFIX + name]) if INDEX_PREFIX + name in data.files else None
                                  for name in observables},
                burnin_steps=np.array(data["burnin_steps"]) if "burnin_steps" in data.files else None,
                burnin_loss_trace=np.array(data["burnin_loss_trace"]) if "burnin_loss_trace" in data.files else None,
            )


def _mapped_member(path: Path, name: str) -> np.ndarray:
    """The array ``name`` of an ``np.savez`` file, memory-mapped read-only (read whole where it cannot be).

    ``np.savez`` stores each array as an uncompressed ``.npy`` member, so its data lie contiguously in
    the file after the member's zip header and ``.npy`` header: a long run's observables are then read
    from disk as they are used, not held in memory.
    """
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name + ".npy")
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if info.compress_type != zipfile.ZIP_STORED or version not in ((1, 0), (2, 0)):
                return np.lib.format.read_array(archive.open(info), allow_pickle=False)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(member)
            header_size = member.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: member {name} holds Python objects; observables are numbers.")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        signature, *_, name_length, extra_length = struct.unpack("<4s5H3L2H", fh.read(30))
    if signature != b"PK\x03\x04":
        raise ValueError(f"{path}: member {name} has no local zip header where its index says.")
    if not np.prod(shape):
        return np.zeros(shape, dtype)
    offset = info.header_offset + 30 + name_length + extra_length + header_size
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
