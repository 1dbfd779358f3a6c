"""``estimate_llc``: the local learning coefficient of a model at its current weights."""

from __future__ import annotations

import difflib
import inspect
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from devinterp_viz.engine.checks import (
    check_callbacks,
    check_loss_fn,
    check_loss_value,
    check_model,
    check_run_options,
    float_dtype,
    probe_loss,
)
from devinterp_viz.engine.data import make_batches
from devinterp_viz.engine.driver import OnBurnin, OnDraw, run_chains
from devinterp_viz.engine.observables import Observables, PerSampleLoss, check_observables
from devinterp_viz.engine.potential import FlatLoss
from devinterp_viz.engine.progress import Stop
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.engine.samplers import Hyper, get_sampler
from devinterp_viz.engine.selection import ParamSpec, resolve_selection
from devinterp_viz.engine.settings import SamplerSettings

LossFn = Callable[[nn.Module, Any], torch.Tensor]
MODEL_RNG_STREAM = 1  # seeds the model's own random ops: [seed, 1], apart from the chains' streams


def default_nbeta(batch_size: int) -> float:
    """devinterp's default inverse temperature ``batch_size / ln(batch_size)`` (1 for batch size 1)."""
    return batch_size / math.log(batch_size) if batch_size > 1 else 1.0


def estimate_llc(
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    *,
    settings: SamplerSettings | None = None,
    params: ParamSpec = None,
    device: str | torch.device | None = None,
    on_draw: OnDraw | None = None,
    stop: Stop = None,
    progress: bool = True,
    vectorize: bool | str = "auto",
    chain_chunk_size: int | None = None,
    graph: bool | str = "auto",
    on_start: Callable[[float, float], None] | None = None,
    model_mode: str = "eval",
    observables: Mapping[str, Any] | None = None,
    per_sample_loss: PerSampleLoss | None = None,
    observable_dtype: str = "float32",
    observable_folder: str | os.PathLike | None = None,
    on_burnin: OnBurnin | None = None,
    **sampler_settings: Any,
) -> LLCResult:
    """Estimate the local learning coefficient of ``model`` at its current weights w*.

    Chains of an SGLD-family sampler explore the tempered, localised posterior
    ``p(w) ∝ exp(−nβ L(w) − γ/2 |w − w*|²)`` and the estimate is
    ``λ̂ = nβ (mean over draws of L_batch(w_t) − L(w*))``.

    Parameters
    ----------
    model : nn.Module
        Never touched, not even while sampling runs (another thread may use it): the chains
        evaluate a private copy of its modules that shares its weight tensors. Its weights,
        buffers (BatchNorm statistics), requires_grad flags and train/eval modes are exactly as
        they were, also on errors.
    data : DataLoader, Dataset, tensor or tuple/dict of tensors
        Tensors and Datasets are batched by the engine (``batch_size`` required); a
        DataLoader is used with its own batch size. Data refinement = passing another data set.
        numpy arrays are converted to tensors (floating-point ones to the model's dtype), and a
        list of ``(x, y)`` examples of one shape is stacked into ``(xs, ys)``.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor``, the mean loss on the batch, computed with
        the ``model`` it is given. It may also return devinterp's ``evaluate``-style
        ``(loss, outputs)`` or a Hugging Face output with a ``.loss`` (``lambda m, b: m(**b)``
        for batches holding ``labels``). A criterion ``criterion(outputs, targets)`` is refused
        with the one-line wrapper to write: ``lambda model, batch: criterion(model(batch[0]), batch[1])``.
    settings : SamplerSettings, optional
        The sampler's settings as one value (default: the defaults); keywords override it.
    **sampler_settings
        Any field of :class:`~devinterp_viz.engine.settings.SamplerSettings`, checked there
        (each chain has its own noise and minibatch streams from ``seed``):

%(sampler_settings)s
    params : optional
        Which weights move (weight-refined LLC): names, module names, globs,
        ``{name: bool mask}``, attention heads (``dvz.attention_heads(model)[i]``) or a list of
        those; None moves every parameter that requires grad. Others stay exactly at w*.
    device : str or torch.device, optional
        Where to sample; default the model's device. The model itself is not moved.
    on_draw : callable, optional
        ``on_draw(draw_index, losses)`` with losses of shape (chains,), called as draws arrive.
    stop : threading.Event or callable, optional
        Set it (or return True) to end sampling early; the result is then ``partial``.
    progress : bool
        Show a progress bar.
    vectorize : True, False or "auto"
        Run chains through one ``torch.func.vmap`` call per step; "auto" falls back to a
        sequential loop (same statistics) for modules vmap cannot run.
    chain_chunk_size : int, optional
        At most this many chains per vmapped call, to bound memory.
    graph : True, False or "auto"
        Evaluate the vmapped chains through a traced graph of the loss and its gradient
        (``torch.fx``, run as TorchScript; 13–70% faster evaluation, see
        :mod:`devinterp_viz.engine.graph`). "auto" traces once the time spent on models of this
        architecture plus this run's remaining steps would pay for the trace (so sweeps,
        calibration and long runs gain, one short run does not); the graph is reused by later
        runs and checked against eager evaluation at the first step of each.
        ``result.config["graph"]`` says which ran.
    on_start : callable, optional
        ``on_start(init_loss, nbeta)`` once L(w*) is known, before the first step (live views
        use it to draw running estimates as draws arrive).
    model_mode : {"eval", "as_is"}
        The mode the model is sampled in. "eval" (the default): every module in eval mode, so
        dropout is off and BatchNorm uses its running statistics, whatever mode the model is in
        (Hugging Face models, for one, load in train mode; nothing is said about it). The LLC is
        a property of the loss L(w), which dropout would make random. "as_is": each module keeps
        its own ``training`` flag (research on dropout posteriors, say); BatchNorm in train mode
        then updates the copy's statistics, never the model's. ``result.config["model_mode"]``
        records it.
    observables : dict of str to data, optional
        Named data sets (tensors or tuples/dicts of tensors, numpy arrays converted) on which
        ``per_sample_loss`` is evaluated at every draw of every chain, without gradients:
        ``result.observables[name]`` of shape (chains, draws, samples), the input of
        ``dvz.loss_kernel``, ``dvz.bif`` and ``dvz.susceptibilities``.
    per_sample_loss : callable, optional
        ``per_sample_loss(model, batch) -> tensor`` of shape (batch,), or (batch, positions)
        for per-token losses (flattened to tokens; ``result.observable_index[name]`` gives each
        token's (sequence, position)). Required with ``observables``.
    observable_dtype : {"float32", "float16"}
        How the recorded values are stored (float16 halves a long per-token run's memory).
    observable_folder : str or Path, optional
        Write each observable, draw by draw, to ``<folder>/<name>.npy`` mapped into memory
        instead of holding it in RAM (long runs); ``result.observables[name]`` is then that
        ``np.memmap``. Existing files are never overwritten.
    on_burnin : callable, optional
        ``on_burnin(step, losses)`` with losses of shape (chains,) at the burn-in steps kept in
        ``result.burnin_loss_trace`` (at most 256, evenly spaced), as they arrive.

    Returns
    -------
    LLCResult
        Estimate, per-chain values, (chains, draws) loss traces and diagnostics.

    Raises
    ------
    ValueError
        Before any sampling, on invalid settings (a count that is not an integer, fewer than
        two draws, a seed that is not a non-negative integer), a selection that matches nothing
        or holds integer parameters, empty data or data holding NaN or inf, weights that are
        not finite or on the meta device, a loss that is not a floating-point scalar depending
        on the weights, a summed (not mean) loss, a non-finite loss at w*, or an unavailable
        device.
    TypeError
        On a loss_fn that is a criterion(outputs, targets), tensors given as ``params=``, or
        a model that is not an nn.Module or cannot be deep-copied.

    References
    ----------
    Lau, Furman, Wang, Murfet, Wei. The Local Learning Coefficient: A Singularity-Aware
    Complexity Measure. AISTATS 2025.
    Wang, Hoogland, van Wingerden, Furman, Murfet. Differentiation and Specialization of
    Attention Heads via the Refined Local Learning Coefficient. 2024.
    """
    results = estimate_llc_selections(
        model, data, loss_fn, {"params": params}, settings=sampler_settings_of(settings, sampler_settings, estimate_llc),
        device=device, on_draw=on_draw, stop=stop, progress=progress, vectorize=vectorize,
        chain_chunk_size=chain_chunk_size, graph=graph, on_start=on_start, model_mode=model_mode,
        observables=observables, per_sample_loss=per_sample_loss, observable_dtype=observable_dtype,
        observable_folder=observable_folder, on_burnin=on_burnin,
    )
    return results["params"]


estimate_llc.__doc__ = estimate_llc.__doc__.replace("%(sampler_settings)s", SamplerSettings.summary(indent=8))


def estimate_llc_selections(
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    selections: Mapping[str, ParamSpec],
    *,
    settings: SamplerSettings | None = None,
    device: str | torch.device | None = None,
    on_draw: OnDraw | None = None,
    stop: Stop = None,
    progress: bool = True,
    vectorize: bool | str = "auto",
    chain_chunk_size: int | None = None,
    graph: bool | str = "auto",
    on_start: Callable[[float, float], None] | None = None,
    model_mode: str = "eval",
    observables: Mapping[str, Any] | None = None,
    per_sample_loss: PerSampleLoss | None = None,
    observable_dtype: str = "float32",
    observable_folder: str | os.PathLike | None = None,
    on_burnin: OnBurnin | None = None,
    **sampler_settings: Any,
) -> dict[str, LLCResult]:
    """Weight-refined LLCs of several selections (e.g. every attention head) in one run.

    The chains of all selections advance together: the chain axis is (selection × chain),
    each row moving only its selection's weights (a per-row mask), so one vmapped call per
    step serves every head of a checkpoint. Arguments are those of :func:`estimate_llc`;
    ``on_draw`` and ``on_burnin`` receive losses of shape (selections × chains,).

    Parameters
    ----------
    selections : mapping of str to a ``params`` specification
        Name → which weights move (names, globs, masks, a ``HeadSelection``...).
    settings, **sampler_settings
        The sampler's settings, as for :func:`estimate_llc`.

    Returns
    -------
    dict of str to LLCResult
        One result per selection, in the order given. Row ``s·num_chains + c`` of the run is
        chain ``c`` of selection ``s``; every row has its own random streams.
    """
    settings = sampler_settings_of(settings, sampler_settings, estimate_llc_selections)
    check_model(model)
    check_loss_fn(loss_fn)
    check_run_options(chain_chunk_size=chain_chunk_size, model_mode=model_mode, vectorize=vectorize, graph=graph)
    check_callbacks(on_draw=on_draw, on_start=on_start, stop=stop, on_burnin=on_burnin)
    check_observables(observables, per_sample_loss, observable_dtype, observable_folder)
    if not selections:
        raise ValueError("selections is empty: name at least one selection of weights to sample.")
    chosen_sampler = get_sampler(settings.sampler)
    target = _resolve_device(model, device)
    resolved = {name: resolve_selection(model, spec) for name, spec in selections.items()}
    union = resolved if len(resolved) == 1 else {"union": resolve_selection(model, list(selections.values()))}
    source = make_batches(data, settings.batch_size, target, float_dtype(model))
    flat_loss = FlatLoss(model, loss_fn, next(iter(union.values())), target, model_mode)
    with seeded_model_randomness(settings.seed, target):  # its own fork: the run's random numbers are as without it
        probe_loss(flat_loss, source, settings.seed)
    used_nbeta = settings.nbeta if settings.nbeta is not None else default_nbeta(source.batch_size)
    if len(resolved) == 1:  # the loss's own mask (None when every weight moves: no weight-sized ones)
        row_mask, moving = flat_loss.mask, [flat_loss.num_moving]
    else:
        masks = [flat_loss.flat_mask(sel) for sel in resolved.values()]
        row_mask = torch.stack(masks).repeat_interleave(settings.num_chains, dim=0)
        moving = [int(mask.sum(dtype=torch.float64).item()) for mask in masks]  # exact past 2**24
        del masks
    hyper = Hyper(settings.lr, used_nbeta, settings.localization, flat_loss.w_star, row_mask, settings)
    with seeded_model_randomness(settings.seed, target):
        step_rows = source.batch_size * (chain_chunk_size or settings.num_chains * len(resolved))
        recorder = None if observables is None else Observables(
            observables, per_sample_loss, flat_loss, num_chains=settings.num_chains * len(resolved),
            num_draws=settings.num_draws, dtype=observable_dtype, chunk_rows=step_rows,
            folder=observable_folder)
        init_loss, init_grad = evaluate_init_loss(flat_loss, source, settings.seed, step_rows)
        if on_start is not None:
            on_start(init_loss, used_nbeta)
        run = run_chains(
            flat_loss,
            chosen_sampler,
            hyper,
            source,
            num_chains=settings.num_chains * len(resolved),
            num_draws=settings.num_draws,
            num_burnin_steps=settings.num_burnin_steps,
            num_steps_bw_draws=settings.num_steps_bw_draws,
            seed=settings.seed,
            on_draw=on_draw,
            stop=stop,
            progress=progress,
            vectorize=vectorize,
            chain_chunk_size=chain_chunk_size,
            graph=graph,
            init_grad=init_grad,
            observe=None if recorder is None else recorder.record,
            on_burnin=on_burnin,
        )
    results = {}
    for index, (name, selection) in enumerate(resolved.items()):
        rows = slice(index * settings.num_chains, (index + 1) * settings.num_chains)
        num_moving = moving[index]
        values, token_index = ({}, {}) if recorder is None else recorder.results(rows, run.loss_trace.shape[1])
        config = {
            **settings.to_config(),
            "nbeta": used_nbeta,
            "batch_size": source.batch_size,
            "device": str(target),
            "params": [_describe_param(n, selection) for n in selection.names],
            "num_params": num_moving,
            "vectorized": run.vectorized,
            "graph": run.graph,
            "model_mode": model_mode,
        }
        if len(resolved) > 1:
            config["selection"] = name
        results[name] = LLCResult.from_traces(
            run.loss_trace[rows],
            init_loss,
            used_nbeta,
            config=config,
            mala_trace=run.mala_trace[rows],
            distance_trace=run.distance_trace[rows],
            partial=run.partial,
            num_params=num_moving,
            sampler_traces={name: trace[rows] for name, trace in run.sampler_traces.items()},
            observables=values,
            observable_index=token_index,
            burnin_steps=run.burnin_steps,
            burnin_loss_trace=run.burnin_loss_trace[rows],
            burnin_divergence_step=run.burnin_divergence_step[rows],
        )
    return results


def sampler_settings_of(settings: SamplerSettings | None, keywords: Mapping[str, Any], function: Callable) -> SamplerSettings:
    """``settings`` with the keyword settings applied; a TypeError naming close valid keywords for a typo."""
    unknown = [name for name in keywords if name not in SamplerSettings.names()]
    if unknown:
        valid = sorted({*SamplerSettings.names(), *inspect.signature(function).parameters} - {"sampler_settings"})
        close = difflib.get_close_matches(unknown[0], valid, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise TypeError(f"{function.__name__}() got an unexpected keyword argument {unknown[0]!r}.{hint} "
                        f"Valid: {', '.join(valid)}.")
    return SamplerSettings.build(settings, **keywords)


@contextmanager
def seeded_model_randomness(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the generator the model's own random ops (dropout) draw from, and restore it after.

    Random ops inside the model use torch's default generator of ``device`` (under vmap too), so
    seeding it from ``seed`` makes such models reproducible, and the fork leaves the user's own
    random stream where it was.
    """
    model_seed = int(np.random.SeedSequence([seed, MODEL_RNG_STREAM]).generate_state(1)[0])
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(model_seed)
        if cuda:
            index = device.index if device.index is not None else torch.cuda.current_device()
            torch.cuda.default_generators[index].manual_seed(model_seed)
        yield


def evaluate_init_loss(flat_loss: FlatLoss, source, seed: int, chunk_rows: int | None = None) -> tuple[float, torch.Tensor]:
    """L(w*) and ∇L(w*) over the source's fixed evaluation batches, weighted by batch size.

    ``chunk_rows`` rows are evaluated at once (see ``init_loss_batches``).

    Returns
    -------
    init_loss : float
    init_grad : torch.Tensor, shape (n,)
        The gradient in the flat layout of the selected weights (the diagnostics' test of
        whether w* is a local minimum).

    Raises a clear error when ``loss_fn`` does not return a finite floating-point scalar that
    depends on the weights.
    """
    total, rows = 0.0, 0
    grad_total = torch.zeros_like(flat_loss.w_star)
    for batch, size in source.init_loss_batches(seed, chunk_rows):
        flat = flat_loss.w_star.detach().requires_grad_()
        with torch.enable_grad():
            value = flat_loss(flat, batch)
            check_loss_value(value)
            (grad,) = torch.autograd.grad(value, flat, allow_unused=True)
        total += float(value.detach()) * size
        if grad is not None:
            grad_total += grad * size
        rows += size
    init_loss = total / rows
    if not math.isfinite(init_loss):
        raise ValueError(
            f"L(w*) is not finite ({init_loss}): the model's loss at its current weights is NaN or infinite; "
            "check the model and loss_fn before estimating the LLC."
        )
    return init_loss, grad_total / rows


def _describe_param(name: str, selection) -> str:
    if name in selection.masks:
        return f"{name}[{int(selection.masks[name].sum())} of {selection.masks[name].numel()}]"
    return name


def _resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is None:
        first = next(model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device name (try 'cpu' or 'cuda').") from err
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was asked for but CUDA is not available here; use device='cpu'.")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    elif target.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was asked for but MPS is not available here; use device='cpu'.")
    return target
