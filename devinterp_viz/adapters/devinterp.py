"""Read LLC results of devinterp (1.x result dicts, 2.x xarray DataTrees and Datasets) as :class:`LLCResult`."""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from devinterp_viz.engine.results import LLCResult

__all__ = ["from_devinterp", "susceptibilities_from_devinterp"]

_V2_SAMPLERS = {"sgmcmc_sgld": "sgld", "rmsprop_sgld": "rmsprop_sgld"}
_CHAIN_KEY = re.compile(r"^llc-chain/(\d+)$")


def from_devinterp(
    obj: Any,
    *,
    nbeta: float | None = None,
    init_loss: float | None = None,
    config: Mapping[str, Any] | None = None,
) -> LLCResult:
    """Convert a devinterp LLC result into an :class:`LLCResult` (estimate, traces, diagnostics).

    Parameters
    ----------
    obj : dict, xarray.DataTree, xarray.Dataset, str or os.PathLike
        One of

        - the dict returned by devinterp 1.x's ``estimate_learning_coeff_with_summary`` (or
          by ``sample`` with an ``LLCEstimator`` / ``OnlineLLCEstimator`` callback): it must
          hold ``"loss/trace"`` of shape (chains, draws); ``"llc-chain/{i}"``, ``"llc/mean"``,
          ``"llc/trace"``, ``"llc/means"``, ``"init_loss"`` and ``"mala_accept/trace"`` are
          used when present. Arrays may be numpy arrays, torch tensors or nested lists.
        - the ``xarray.DataTree`` returned by devinterp 2.x's ``devinterp.slt.sampling.sample``
          (or its root ``Dataset``): draws are read from ``sampling_loss`` (chain, draw, batch,
          token_pos), averaged over everything but (chain, draw); L(w*) is the mean of
          ``init_loss``; nβ and the settings come from ``attrs["metadata"]["config"]["sampler"]``.
          Each observable's per-token losses ``loss_<name>`` (chain, draw, batch, token_pos)
          become ``result.observables[name]`` (chains, draws, batch · token_pos) with
          ``result.observable_index[name]`` = (sequence, token_pos) per column, so
          ``dvz.loss_kernel``, ``dvz.bif`` and ``dvz.susceptibilities`` run on devinterp's draws.
        - the ``xarray.Dataset`` returned by devinterp 2.x's ``compute_llc`` or ``llc``
          (``llc_per_chain``, ``loss_trace`` (chain, step), ``init_loss``); nβ is recovered
          from ``llc_per_chain``.
        - a path to a devinterp 2.x zarr store (needs ``zarr``) or a netCDF file holding one
          of the datasets above.
    nbeta : float, optional
        The inverse temperature nβ the chains were sampled at. Needed only where devinterp did
        not store it and it cannot be recovered from the stored LLC values; a value given here
        wins over the stored one.
    init_loss : float, optional
        L(w*). Needed only where devinterp did not store it and it cannot be recovered; a
        value given here wins over the stored one (e.g. to put several results on one L(w*)).
    config : mapping, optional
        Extra settings to record in ``result.config`` (they override what was read).

    Returns
    -------
    LLCResult
        ``llc_per_chain = nbeta * (mean(loss_trace[c]) - init_loss)``; devinterp's own
        reported numbers are kept in ``config`` under ``"devinterp_*"`` keys.

    Raises
    ------
    ValueError
        When ``obj`` lacks the loss traces, has arrays of inconsistent shapes, or when nβ or
        L(w*) is neither stored nor recoverable (the message names the argument to pass).
    TypeError
        When ``obj`` is of none of the kinds above.

    Notes
    -----
    devinterp 1.x's non-online estimator stores neither nβ nor L(w*), only
    ``llc-chain/i = nβ (mean(loss/trace[i]) − L(w*))``; with two or more chains of different
    mean loss both are recovered by a least-squares line through those points (exact up to
    float32 rounding), and an nβ within float32 rounding of devinterp's default
    ``batch_size / ln(batch_size)`` is snapped to it. The online estimator stores L(w*) and
    the per-draw ``llc/trace``.

    devinterp's MALA callback stores (chains, draws − 1) acceptance probabilities whose first
    column is never written (zero); the probability of the move into draw ``d`` sits at
    column ``d − 1``. Here ``mala_trace`` is (chains, draws) with NaN for draws 0 and 1.

    devinterp 2.x's ``compute_llc`` averages the loss over every sampler step, burn-in
    included, and reports a standard deviation with ``ddof=0``; this result uses the draws
    only and ``ddof=1``, so its numbers agree with devinterp's only without burn-in and
    thinning (and its ``llc_std`` is larger by ``sqrt(chains / (chains - 1))``).

    Examples
    --------
    >>> from devinterp.slt.sampler import estimate_learning_coeff_with_summary  # doctest: +SKIP
    >>> res = from_devinterp(estimate_learning_coeff_with_summary(...))  # doctest: +SKIP
    >>> res.llc_mean, res.diagnostics.verdict  # doctest: +SKIP
    """
    extra = dict(config or {})
    if nbeta is not None:
        nbeta = _positive_float(nbeta, "nbeta")
    if init_loss is not None:
        init_loss = float(init_loss)
        if not math.isfinite(init_loss):
            raise ValueError(f"init_loss must be a finite number, got {init_loss!r}.")
    if isinstance(obj, (str, os.PathLike)):
        obj = _open_path(obj)
    kind = _xarray_kind(obj)  # before Mapping: xarray objects are mappings too
    if kind is not None:
        return _from_v2(obj, kind, nbeta, init_loss, extra)
    if isinstance(obj, Mapping):
        return _from_v1(obj, nbeta, init_loss, extra)
    raise TypeError(
        f"from_devinterp reads devinterp 1.x result dicts and devinterp 2.x xarray results "
        f"(DataTree/Dataset or a path to one); got {type(obj).__name__}."
    )


# ---------------------------------------------------------------------------- devinterp 1.x
def _from_v1(d: Mapping[str, Any], nbeta: float | None, init_loss: float | None, extra: dict) -> LLCResult:
    keys = sorted(map(str, d.keys()))
    if "loss/trace" not in d:
        raise ValueError(
            "this dict has no 'loss/trace' (the (chains, draws) minibatch losses), so it is not a "
            "devinterp 1.x result of estimate_learning_coeff_with_summary / LLCEstimator; keys "
            f"found: {keys}."
        )
    loss = _array(d["loss/trace"], "loss/trace")
    if loss.ndim != 2 or loss.shape[0] < 1 or loss.shape[1] < 1:
        raise ValueError(f"'loss/trace' must have shape (chains, draws) with at least one of each, got {loss.shape}.")
    chains, draws = loss.shape

    chain_llc = _chain_values(d, chains)
    llc_trace = _optional(d, "llc/trace", (chains, draws))
    llc_means = _optional(d, "llc/means", (draws,))
    _optional(d, "llc/stds", (draws,))
    mala_raw = d.get("mala_accept/trace")
    llc_mean = _scalar(d, "llc/mean")

    cfg: dict[str, Any] = {"source": "devinterp 1.x", "devinterp_keys": keys}
    cfg["devinterp_estimator"] = "OnlineLLCEstimator" if llc_trace is not None or llc_means is not None else "LLCEstimator"
    if llc_mean is not None:
        cfg["devinterp_llc_mean"] = llc_mean
    if _scalar(d, "llc/std") is not None:
        cfg["devinterp_llc_std"] = _scalar(d, "llc/std")
    if chain_llc is not None:
        cfg["devinterp_llc_per_chain"] = chain_llc.tolist()

    stored_init = _scalar(d, "init_loss")
    init_source = "argument" if init_loss is not None else None
    if init_loss is None and stored_init is not None:
        init_loss, init_source = stored_init, "stored (init_loss)"

    # Equations llc = nbeta * (m - init_loss), most precise source first.
    if llc_trace is not None:
        m, llc, what = loss.ravel(), llc_trace.ravel(), "llc/trace"
    elif chain_llc is not None:
        m, llc, what = _f32_mean(loss, axis=1), chain_llc, "llc-chain/*"
    elif llc_means is not None:
        m, llc, what = _f32_mean(loss, axis=0), llc_means, "llc/means"
    elif llc_mean is not None:
        m, llc, what = np.array([_f32_mean(_f32_mean(loss, axis=1), axis=0)]), np.array([llc_mean]), "llc/mean"
    else:
        m = llc = what = None

    nbeta_source = "argument" if nbeta is not None else None
    if nbeta is None or init_loss is None:
        if what is None:
            raise ValueError(_missing_message(nbeta, init_loss, "the dict holds no LLC values ('llc-chain/i', 'llc/mean', 'llc/trace')"))
        nbeta_fit, init_fit = _solve(m, llc, nbeta, init_loss, what)
        if nbeta is None:
            nbeta, nbeta_source = _snap_nbeta(nbeta_fit), f"inferred from {what}"
        if init_loss is None:
            init_loss, init_source = init_fit, f"inferred from {what}"
    if what is not None:
        _check_consistent(m, llc, nbeta, init_loss, what, inferred=nbeta_source != "argument" or init_source != "argument")
    cfg["nbeta_source"], cfg["init_loss_source"] = nbeta_source, init_source

    mala = None
    if mala_raw is not None:
        mala = _mala_v1(_array(mala_raw, "mala_accept/trace"), chains, draws)
    cfg.update(extra)
    return LLCResult.from_traces(loss, init_loss, nbeta, config=cfg, mala_trace=mala)


def _chain_values(d: Mapping[str, Any], chains: int) -> np.ndarray | None:
    found = {}
    for key in d:
        match = _CHAIN_KEY.match(str(key))
        if match:
            found[int(match.group(1))] = _scalar(d, key)
    if not found:
        return None
    if sorted(found) != list(range(chains)):
        raise ValueError(
            f"'loss/trace' has {chains} chains but the dict has llc-chain values for chains "
            f"{sorted(found)}; they must be llc-chain/0 .. llc-chain/{chains - 1}."
        )
    return np.array([found[i] for i in range(chains)], dtype=np.float64)


def _mala_v1(raw: np.ndarray, chains: int, draws: int) -> np.ndarray:
    if raw.ndim != 2 or raw.shape[0] != chains or raw.shape[1] not in (draws - 1, draws):
        raise ValueError(
            f"'mala_accept/trace' must have shape ({chains}, {draws - 1}) (devinterp's MALA callback: "
            f"chains, draws - 1) to match 'loss/trace' {(chains, draws)}, got {raw.shape}."
        )
    if raw.shape[1] == draws:  # already one value per draw
        return raw.copy()
    out = np.full((chains, draws), np.nan)
    out[:, 2:] = raw[:, 1:]  # column 0 is never written by devinterp; column k is the move into draw k+1
    return out


# ---------------------------------------------------------------------------- devinterp 2.x
def _from_v2(obj: Any, kind: str, nbeta: float | None, init_loss: float | None, extra: dict) -> LLCResult:
    ds = obj.to_dataset() if kind == "DataTree" else obj
    attrs = dict(getattr(obj, "attrs", {}) or {})
    attrs.update({k: v for k, v in ds.attrs.items() if k not in attrs})
    sampler_cfg = _v2_sampler_config(attrs)
    cfg: dict[str, Any] = {"source": "devinterp 2.x"}
    cfg.update(_v2_config(sampler_cfg))
    if "sampling_loss" in ds.data_vars or "sampling_loss_micro" in ds.data_vars:
        loss, nbeta, init_loss = _v2_samples(ds, sampler_cfg, nbeta, init_loss, cfg)
        partial = "metadata" in attrs and attrs.get("completed") != 1  # sample() marks finished stores
    elif "loss_trace" in ds.data_vars:
        loss, nbeta, init_loss = _v2_llc(ds, sampler_cfg, nbeta, init_loss, cfg)
        partial = False
    else:
        raise ValueError(
            "this xarray object holds none of devinterp 2.x's loss variables ('sampling_loss' or "
            "'sampling_loss_micro' from sample(), 'loss_trace' from compute_llc()); variables "
            f"found: {sorted(map(str, ds.data_vars))}."
        )
    cfg.update(extra)
    num_params = attrs.get("metrics_numel")
    observables, index = _v2_observables(ds, draws=loss.shape[1])
    return LLCResult.from_traces(
        loss, init_loss, nbeta, config=cfg, partial=bool(partial),
        num_params=int(num_params) if num_params is not None else None,
        observables=observables, observable_index=index,
    )


def _v2_observables(ds, draws: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray | None]]:
    """``loss_<name>`` (chain, draw, batch_<name>[, token_pos]) of ``sample``'s DataTree as observables.

    Returns
    -------
    observables : dict of str to np.ndarray, shape (chains, draws, samples)
        float32, tokens flattened sequence-major (batch · token_pos).
    index : dict of str to np.ndarray or None, shape (samples, 2)
        (sequence, token_pos) of each column; None for per-sequence losses.
    """
    observables: dict[str, np.ndarray] = {}
    index: dict[str, np.ndarray | None] = {}
    for var in map(str, ds.data_vars):
        if not var.startswith("loss_") or ds[var].dims[:2] != ("chain", "draw"):
            continue
        name = var[len("loss_"):]
        values = np.asarray(ds[var].values, dtype=np.float32)
        if values.shape[1] != draws:
            raise ValueError(f"{var!r} has {values.shape[1]} draws but the sampling loss has {draws}.")
        if values.ndim == 4:
            chains, _, sequences, positions = values.shape
            observables[name] = values.reshape(chains, draws, sequences * positions)
            sequence, position = np.meshgrid(np.arange(sequences), np.arange(positions), indexing="ij")
            index[name] = np.stack([sequence.ravel(), position.ravel()], axis=1)
        elif values.ndim == 3:
            observables[name], index[name] = values, None
    return observables, index


def susceptibilities_from_devinterp(tree: Any) -> dict[str, dict[str, np.ndarray]]:
    """Per-token susceptibilities from devinterp 2.x's ``susceptibilities`` / ``compute_susceptibilities``.

    Parameters
    ----------
    tree : xarray.DataTree, str or os.PathLike
        The DataTree they return (its ``/susceptibilities`` node: ``sus`` (sus_flat, wr) with
        ``dataset_id``, ``batch`` and ``target_position`` coordinates), or a path to it.

    Returns
    -------
    dict of str to dict of str to np.ndarray, shape (sequences, target positions)
        ``values[restriction][observable][b, t]``: devinterp's χ of sequence ``b``'s token at
        target position ``t + 1`` (the token it predicts; its index in ``input_ids``).

    Notes
    -----
    devinterp computes χ = E_r[φ·(L − ℓ)] − E_r[φ]·E_full[L − ℓ] with φ = L − L(w*), L the
    sampling task's per-draw loss and ``E_r`` over the restricted run's draws. That is
    Cov_r(L, L − ℓ) plus a term E_r[φ]·(E_r − E_full)[L − ℓ] (the restricted and full posteriors'
    means differ), with no factor nβ. ``dvz.susceptibilities`` is −nβ·Cov_r(L, ℓ − L), the
    first-order response of the posterior mean loss (Baker et al. 2025): divided by nβ it is
    devinterp's χ up to that centring term (and to which loss stands for L: there the sampling
    task's observable, here the run's minibatch loss).
    """
    if isinstance(tree, (str, os.PathLike)):
        tree = _open_path(tree)
    node = tree["susceptibilities"] if _xarray_kind(tree) == "DataTree" and "susceptibilities" in tree.children else tree
    ds = node.to_dataset() if _xarray_kind(node) == "DataTree" else node
    if "sus" not in ds.data_vars or "wr" not in ds["sus"].dims:
        raise ValueError(
            "this is not devinterp 2.x's susceptibilities output: it needs a 'sus' variable over "
            f"(sus_flat, wr) (the '/susceptibilities' node); found {sorted(map(str, ds.data_vars))}."
        )
    names = list(ds.attrs.get("dataset_id_to_name", []))
    sus = np.asarray(ds["sus"].transpose("sus_flat", "wr").values, dtype=np.float64)
    dataset_id = np.asarray(ds["dataset_id"].values, dtype=np.int64)
    batch = np.asarray(ds["batch"].values, dtype=np.int64)
    position = np.asarray(ds["target_position"].values, dtype=np.int64) - 1
    values: dict[str, dict[str, np.ndarray]] = {}
    for column, restriction in enumerate(map(str, ds["wr"].values)):
        values[restriction] = {}
        for i in np.unique(dataset_id):
            rows = dataset_id == i
            grid = np.full((batch[rows].max() + 1, position[rows].max() + 1), np.nan)
            grid[batch[rows], position[rows]] = sus[rows, column]
            values[restriction][names[i] if i < len(names) else str(i)] = grid
    return values


def _v2_samples(ds, sampler_cfg: dict, nbeta: float | None, init_loss: float | None, cfg: dict):
    """Draw losses, nβ and L(w*) of the DataTree (root dataset) written by ``sample``."""
    loss = _v2_draw_losses(ds, sampler_cfg)
    stored_init = _v2_init_loss(ds)
    stored_nbeta = sampler_cfg.get("n_beta")
    if "sampling_loss_micro" in ds.data_vars and stored_nbeta is not None and stored_init is not None:
        # what devinterp's compute_llc reports: every step (burn-in included), std with ddof=0
        micro = _reduce_to(ds["sampling_loss_micro"], ("chain", "step"))
        per_chain = float(stored_nbeta) * (micro.mean(axis=1) - stored_init)
        cfg["devinterp_llc_per_chain"] = per_chain.tolist()
        cfg["devinterp_llc_mean"] = float(per_chain.mean())
        cfg["devinterp_llc_std"] = float(per_chain.std(ddof=0))
    if nbeta is None and stored_nbeta is None:
        raise ValueError(_missing_message(
            None, init_loss, "the DataTree has no attrs['metadata']['config']['sampler']['n_beta']"))
    if nbeta is not None and stored_nbeta is not None and not math.isclose(nbeta, float(stored_nbeta), rel_tol=1e-9):
        warnings.warn(f"nbeta={nbeta} overrides the n_beta={stored_nbeta} the chains were sampled at.", stacklevel=4)
    cfg["nbeta_source"] = "argument" if nbeta is not None else "stored (metadata n_beta)"
    nbeta = nbeta if nbeta is not None else _positive_float(stored_nbeta, "n_beta")
    if init_loss is None and stored_init is None:
        raise ValueError(_missing_message(nbeta, None, "the DataTree has no 'init_loss' variable"))
    cfg["init_loss_source"] = "argument" if init_loss is not None else "stored (mean of init_loss)"
    return loss, nbeta, (init_loss if init_loss is not None else stored_init)


def _v2_llc(ds, sampler_cfg: dict, nbeta: float | None, init_loss: float | None, cfg: dict):
    """Loss trace, nβ and L(w*) of the Dataset returned by ``compute_llc`` / ``llc``."""
    loss = _reduce_to(ds["loss_trace"], ("chain", "step"))
    cfg["devinterp_trace"] = "compute_llc loss_trace: every sampler step, burn-in included"
    for key in ("llc_mean", "llc_std", "llc_scalar"):
        if key in ds.data_vars:
            cfg[f"devinterp_{key}"] = float(ds[key].values)
    chain_llc = None
    if "llc_per_chain" in ds.data_vars:
        chain_llc = np.asarray(ds["llc_per_chain"].values, dtype=np.float64).ravel()
        if chain_llc.shape != (loss.shape[0],):
            raise ValueError(f"'llc_per_chain' has shape {chain_llc.shape} but 'loss_trace' has {loss.shape[0]} chains.")
        cfg["devinterp_llc_per_chain"] = chain_llc.tolist()
    stored_init = _v2_init_loss(ds)
    init_source = "argument" if init_loss is not None else None
    if init_loss is None and stored_init is not None:
        init_loss, init_source = stored_init, "stored (init_loss)"
    nbeta_source = "argument" if nbeta is not None else None
    if nbeta is None and sampler_cfg.get("n_beta") is not None:
        nbeta, nbeta_source = _positive_float(sampler_cfg["n_beta"], "n_beta"), "stored (metadata n_beta)"
    means = _f32_mean(loss, axis=1)
    if nbeta is None or init_loss is None:
        if chain_llc is None:
            raise ValueError(_missing_message(nbeta, init_loss, "the Dataset has no 'llc_per_chain'"))
        nbeta_fit, init_fit = _solve(means, chain_llc, nbeta, init_loss, "llc_per_chain")
        if nbeta is None:
            nbeta, nbeta_source = _snap_nbeta(nbeta_fit), "inferred from llc_per_chain"
        if init_loss is None:
            init_loss, init_source = init_fit, "inferred from llc_per_chain"
    if chain_llc is not None:
        _check_consistent(means, chain_llc, nbeta, init_loss, "llc_per_chain",
                          inferred=nbeta_source != "argument" or init_source != "argument")
    cfg["nbeta_source"], cfg["init_loss_source"] = nbeta_source, init_source
    return loss, nbeta, init_loss


def _v2_sampler_config(attrs: Mapping[str, Any]) -> dict[str, Any]:
    meta = attrs.get("metadata")
    if isinstance(meta, (str, bytes)):
        try:
            meta = json.loads(meta)
        except ValueError:
            return {}
    if not isinstance(meta, Mapping):
        return {}
    sampler = meta.get("config", {}).get("sampler", {}) if isinstance(meta.get("config"), Mapping) else {}
    return dict(sampler) if isinstance(sampler, Mapping) else {}


def _v2_config(s: Mapping[str, Any]) -> dict[str, Any]:
    if not s:
        return {}
    cfg = {
        "sampler": _V2_SAMPLERS.get(s.get("sampling_method"), s.get("sampling_method")),
        "lr": s.get("lr"),
        "localization": s.get("localization"),
        "num_chains": s.get("num_chains"),
        "num_draws": s.get("num_draws"),
        "num_burnin_steps": s.get("num_burnin_steps"),
        "num_steps_bw_draws": s.get("num_steps_bw_draws"),
        "batch_size": (s.get("batch_size") or 0) * (s.get("gradient_accumulation_steps") or 1) or None,
        "seed": s.get("init_seed"),
    }
    cfg["devinterp_config"] = dict(s)
    return cfg


def _v2_draw_losses(ds, s: Mapping[str, Any]) -> np.ndarray:
    if "sampling_loss" in ds.data_vars:
        return _reduce_to(ds["sampling_loss"], ("chain", "draw"))
    micro = _reduce_to(ds["sampling_loss_micro"], ("chain", "step"))
    burnin = int(s.get("num_burnin_steps") or 0)
    every = int(s.get("num_steps_bw_draws") or 1)
    draws = int(s.get("num_draws") or (micro.shape[1] - burnin) // every)
    steps = burnin + every * np.arange(draws)
    if steps.size and steps[-1] >= micro.shape[1]:
        raise ValueError(
            f"'sampling_loss_micro' has {micro.shape[1]} steps, fewer than the {draws} draws of the "
            f"sampler config need ({burnin} burn-in + {draws} x {every})."
        )
    return micro[:, steps]


def _v2_init_loss(ds) -> float | None:
    if "init_loss" not in ds.data_vars:
        return None
    value = float(np.asarray(ds["init_loss"].values, dtype=np.float64).mean())
    if not math.isfinite(value):
        raise ValueError(f"devinterp's init_loss is not finite ({value}); pass init_loss= explicitly.")
    return value


def _reduce_to(da, keep: tuple[str, str]) -> np.ndarray:
    missing = [dim for dim in keep if dim not in da.dims]
    if missing:
        raise ValueError(f"'{da.name}' must have dimensions {keep} (and any others), got {tuple(da.dims)}.")
    values = np.asarray(da.transpose(*keep, ...).values, dtype=np.float64)
    if values.shape[0] < 1 or values.shape[1] < 1:
        raise ValueError(f"'{da.name}' is empty: shape {values.shape}.")
    return values.reshape(values.shape[0], values.shape[1], -1).mean(axis=2)


def _xarray_kind(obj: Any) -> str | None:
    module = type(obj).__module__ or ""
    if not module.startswith("xarray"):
        return None
    name = type(obj).__name__
    return name if name in ("DataTree", "Dataset") else None


def _open_path(path: str | os.PathLike) -> Any:
    try:
        import xarray as xr
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("reading a devinterp 2.x file needs xarray: pip install 'devinterp_viz[xarray]'") from err
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path} does not exist.")
    if os.path.isdir(path) or path.endswith(".zarr"):
        return xr.open_datatree(path, engine="zarr", consolidated=False)
    return xr.open_dataset(path)


# ---------------------------------------------------------------------------- shared helpers
def _array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"'{name}' is not a numeric array: {err}") from err


def _optional(d: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if key not in d:
        return None
    value = _array(d[key], key)
    if value.shape != shape:
        raise ValueError(f"'{key}' must have shape {shape} to match 'loss/trace', got {value.shape}.")
    return value


def _scalar(d: Mapping[str, Any], key: str) -> float | None:
    if key not in d or d[key] is None:
        return None
    value = _array(d[key], key)
    if value.size != 1:
        raise ValueError(f"'{key}' must be a single number, got an array of shape {value.shape}.")
    return float(value.reshape(()))


def _positive_float(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a positive number, got {value!r}.") from err
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return out


def _f32_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean as devinterp computes it (float32), returned as float64."""
    return np.asarray(values, dtype=np.float32).mean(axis=axis, dtype=np.float32).astype(np.float64)


def _missing_message(nbeta: float | None, init_loss: float | None, why: str) -> str:
    need = [name for name, value in (("nbeta", nbeta), ("init_loss", init_loss)) if value is None]
    args = " and ".join(f"{n}=..." for n in need)
    what = {"nbeta": "nbeta (the inverse temperature nβ the chains were sampled at)",
            "init_loss": "init_loss (L(w*), the loss at the weights the chains started from)"}
    return f"cannot recover {' and '.join(what[n] for n in need)}: {why}. Pass {args} to from_devinterp."


def _solve(m: np.ndarray, llc: np.ndarray, nbeta: float | None, init_loss: float | None, what: str) -> tuple[float, float]:
    """Fit llc = nbeta * (m - init_loss) for whichever of the two is unknown."""
    ok = np.isfinite(m) & np.isfinite(llc)
    m, llc = m[ok], llc[ok]
    if m.size == 0:
        raise ValueError(_missing_message(nbeta, init_loss, f"{what} holds no finite values"))
    if nbeta is not None:
        return nbeta, float(np.mean(m - llc / nbeta))
    if init_loss is not None:
        dm = m - init_loss
        denom = float(dm @ dm)
        if denom <= 0:
            raise ValueError(_missing_message(None, init_loss, f"every mean loss in {what} equals L(w*)"))
        return float(dm @ llc) / denom, init_loss
    # Neither: a line through the points needs two distinct mean losses, resolved beyond float32 rounding.
    spread = float(m.max() - m.min())
    scale = float(np.abs(m).max()) or 1.0
    if m.size < 2 or spread <= 1e-5 * scale:
        raise ValueError(_missing_message(
            None, None,
            f"{what} has {'one chain' if m.size < 2 else 'chains of (nearly) equal mean loss'}, too little to "
            "separate nβ from L(w*) (devinterp 1.x's summary stores neither)",
        ))
    slope, intercept = np.polyfit(m, llc, 1)
    if not (math.isfinite(slope) and slope > 0):
        raise ValueError(_missing_message(None, None, f"the values of {what} do not rise with the loss (fitted nβ = {slope:.3g})"))
    return float(slope), float(-intercept / slope)


def _snap_nbeta(value: float) -> float:
    """devinterp's default ``b / ln b`` (or a short decimal) when ``value`` is that up to float32 rounding."""
    if value > math.e:
        lo, hi = 3.0, 2.0
        while hi / math.log(hi) < value:
            hi *= 2
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if mid / math.log(mid) < value else (lo, mid)
        for b in (math.floor(lo), math.ceil(lo)):
            if b > 1 and abs(b / math.log(b) - value) <= 2e-6 * value:
                return b / math.log(b)
    for digits in range(1, 5):
        short = float(f"{value:.{digits}g}")
        if abs(short - value) <= 2e-6 * value:
            return short
    return value


def _check_consistent(m: np.ndarray, llc: np.ndarray, nbeta: float, init_loss: float, what: str, inferred: bool) -> None:
    ok = np.isfinite(m) & np.isfinite(llc)
    if not ok.any():
        return
    rebuilt = nbeta * (m[ok] - init_loss)
    err = float(np.max(np.abs(rebuilt - llc[ok])))
    tol = 1e-4 * (abs(nbeta) * float(np.max(np.abs(m[ok]))) + float(np.max(np.abs(llc[ok])))) + 1e-9
    if err <= tol:
        return
    message = (
        f"the values of {what} are not nbeta * (mean loss - init_loss) with nbeta={nbeta:.6g}, "
        f"init_loss={init_loss:.6g} (largest mismatch {err:.3g})"
    )
    if inferred:
        raise ValueError(message + "; is this a devinterp result? Pass nbeta=... and init_loss=... explicitly.")
    warnings.warn(message + "; using the nbeta and init_loss given.", stacklevel=4)
