"""The sampling driver: loops, per-chain random streams, recording, streaming and cancellation."""

from __future__ import annotations

import inspect
import os
import re
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils._pytree import tree_flatten, tree_map

from devinterp_viz.engine.data import LoaderBatches, TensorBatches
from devinterp_viz.engine.graph import GraphRunner
from devinterp_viz.engine.potential import FlatLoss
from devinterp_viz.engine.progress import Stop, progress_bar, stop_requested
from devinterp_viz.engine.samplers import Hyper, Sampler, mala_log_acceptance

NOISE_BLOCK_ELEMENTS = 1 << 20  # per chain: noise is drawn in blocks of about this many numbers
MAX_BLOCK_STEPS = 64
DIVERGENCE_CHECK_EVERY = 50  # steps between checks that some chain is still finite
GATHER_BLOCK_BYTES = 1 << 26  # minibatches of several steps are gathered at once, up to 64 MiB
CUDA_STREAM_EVERY = 32  # draws copied to the host at once on a GPU (no per-step sync)
DRIFT_BLOCK_ELEMENTS = 1 << 22  # (chains × coordinates) per block of δ = w − w* while the drift is built
MALA_DRAWS = 16  # minibatch runs: draws at which the MALA acceptance is measured (their next step reuses the batch)
BURNIN_TRACE_POINTS = 256  # burn-in steps at which the loss is kept, evenly spaced (display and diagnosis only)

OnDraw = Callable[..., None]  # on_draw(draw_index, losses) or on_draw(draw_index, losses, acceptance)
OnBurnin = Callable[[int, np.ndarray], None]  # on_burnin(step, losses) at the burn-in steps kept

# What the driver records at every draw besides the loss, over the moving coordinates, with
# δ = w − w*, ∇U = nβ ∇L_batch + γ δ (the drift) and g* = ∇L(w*):
SAMPLER_TRACES = {
    "virial": "δ · ∇U, whose posterior mean is exactly the number of moving weights",
    "stein": "∇U · ∇L_batch, for the first-order step-size bias of the estimate",
    "drift_sq": "|∇U|², for the same",
    "descent": "nβ g* · δ, the first-order part of nβ (L − L(w*)): zero on average at a local minimum",
}


@dataclass
class ChainRun:
    """Raw output of :func:`run_chains`.

    Attributes
    ----------
    loss_trace : np.ndarray, shape (chains, draws_done)
    mala_trace : np.ndarray, shape (chains, draws_done)
    distance_trace : np.ndarray, shape (chains, draws_done)
        Squared distance |w − w*|² of the moving coordinates at each draw.
    sampler_traces : dict of str to np.ndarray, shape (chains, draws_done)
        Per-draw quantities of the moving coordinates that the diagnostics judge the sampler by
        (see :data:`SAMPLER_TRACES`).
    partial : bool
        True when a stop request ended sampling early.
    vectorized : bool
        Whether the chains ran through one vmapped call per step.
    graph : str
        "graph" when a traced graph evaluated the chains, else "eager" (and why, if a graph was refused).
    burnin_steps : np.ndarray of int, shape (points,)
        Burn-in steps at which ``burnin_loss_trace`` was taken: at most :data:`BURNIN_TRACE_POINTS`
        evenly spaced ones that ran, and the last finite step of each chain that went non-finite.
    burnin_loss_trace : np.ndarray, shape (chains, points)
        Minibatch loss at those steps (NaN at another chain's last finite step).
    burnin_divergence_step : np.ndarray of int, shape (chains,)
        First burn-in step at which each chain's loss was non-finite, -1 where it stayed finite.
    """

    loss_trace: np.ndarray
    mala_trace: np.ndarray
    distance_trace: np.ndarray
    sampler_traces: dict[str, np.ndarray]
    partial: bool
    vectorized: bool
    graph: str
    burnin_steps: np.ndarray
    burnin_loss_trace: np.ndarray
    burnin_divergence_step: np.ndarray


class BurninRecorder:
    """The loss during burn-in, kept on the device: at evenly spaced steps, and where each chain went non-finite.

    Per step it costs one copy of the (chains,) losses into a window of the last
    :data:`DIVERGENCE_CHECK_EVERY` steps, and no host sync; each full window is scanned on the device
    for the first non-finite loss of each chain. The host sees the kept losses when they are streamed
    (in blocks on a GPU) and at the end.

    Parameters
    ----------
    num_chains, num_burnin_steps : int
    like : torch.Tensor
        Gives the dtype and device.
    on_burnin : callable, optional
        ``on_burnin(step, losses)`` with ``losses`` (chains,) at each kept step, in blocks of
        ``stream_every``.
    stream_every : int
    """

    def __init__(self, num_chains: int, num_burnin_steps: int, like: torch.Tensor, on_burnin: OnBurnin | None,
                 stream_every: int):
        points = min(num_burnin_steps, BURNIN_TRACE_POINTS)
        steps = np.unique(np.linspace(0, num_burnin_steps - 1, points).round().astype(int)) if points else np.zeros(0, int)
        self.steps, self.num_burnin_steps = steps, num_burnin_steps
        self._column = {int(step): column for column, step in enumerate(steps)}
        self.losses = torch.full((num_chains, steps.size), float("nan"), dtype=like.dtype, device=like.device)
        self._window = torch.full((num_chains, DIVERGENCE_CHECK_EVERY), float("nan"), dtype=like.dtype, device=like.device)
        self._before_window = torch.full((num_chains,), float("nan"), dtype=like.dtype, device=like.device)
        self.first_nonfinite = torch.full((num_chains,), -1, dtype=torch.long, device=like.device)
        self.last_finite = torch.full((num_chains,), float("nan"), dtype=like.dtype, device=like.device)
        self._on_burnin, self._stream_every = on_burnin, stream_every
        self._kept = self._streamed = 0

    def record(self, step: int, loss: torch.Tensor) -> None:
        """Note the loss (chains,) of burn-in step ``step``; keep it if ``step`` is one of the kept steps."""
        self._window[:, step % DIVERGENCE_CHECK_EVERY] = loss.detach()
        if step % DIVERGENCE_CHECK_EVERY == DIVERGENCE_CHECK_EVERY - 1:
            self._scan(step)
        column = self._column.get(step)
        if column is None:
            return
        self.losses[:, column] = loss.detach()
        self._kept = column + 1
        if self._on_burnin is not None and self._kept - self._streamed >= self._stream_every:
            self.stream()

    def _scan(self, last: int) -> None:
        """Find, on the device, the first non-finite loss of each chain in the window ending at step ``last``."""
        window = self._window[:, : last % DIVERGENCE_CHECK_EVERY + 1]
        bad = ~torch.isfinite(window)
        column = bad.to(torch.uint8).argmax(dim=1)  # the first non-finite step of the window (0 when none)
        newly = bad.any(dim=1) & self.first_nonfinite.lt(0)
        self.first_nonfinite = torch.where(newly, column + (last - last % DIVERGENCE_CHECK_EVERY), self.first_nonfinite)
        before = torch.where(column > 0, window.gather(1, (column - 1).clamp(min=0)[:, None])[:, 0], self._before_window)
        self.last_finite = torch.where(newly, before, self.last_finite)
        self._before_window = window[:, -1].clone()

    def stream(self) -> None:
        """Hand the kept losses not yet streamed to ``on_burnin``."""
        if self._on_burnin is None or self._streamed == self._kept:
            return
        block = self.losses[:, self._streamed:self._kept].cpu().double().numpy()
        for offset in range(block.shape[1]):
            self._on_burnin(int(self.steps[self._streamed + offset]), block[:, offset].copy())
        self._streamed = self._kept

    def result(self, steps_run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, losses, first non-finite step) of the burn-in: the kept steps that ran (< ``steps_run``)
        and, for each chain that went non-finite after step 0, its last finite step and loss."""
        last = min(steps_run, self.num_burnin_steps) - 1
        if last >= 0 and last % DIVERGENCE_CHECK_EVERY != DIVERGENCE_CHECK_EVERY - 1:
            self._scan(last)  # the window the run ended in
        ran = self.steps < steps_run
        steps, losses = self.steps[ran], self.losses[:, : int(ran.sum())].cpu().double().numpy()
        first = self.first_nonfinite.cpu().numpy().astype(int)
        last_finite = self.last_finite.cpu().double().numpy()
        extra = sorted({int(s) - 1 for s in first if s > 0} - set(steps.tolist()))
        if not extra:
            return steps, losses, first
        merged = np.union1d(steps, extra).astype(int)
        out = np.full((losses.shape[0], merged.size), np.nan)
        out[:, np.searchsorted(merged, steps)] = losses
        for chain in np.flatnonzero(first > 0):
            out[chain, np.searchsorted(merged, first[chain] - 1)] = last_finite[chain]
        return merged, out, first


def chain_seeds(seed: int, chain: int) -> tuple[int, int]:
    """Seeds of chain ``chain``'s noise and minibatch streams; independent of the chain count."""
    noise_seed, batch_seed = np.random.SeedSequence(seed, spawn_key=(chain,)).generate_state(2, dtype=np.uint64)
    return int(noise_seed), int(batch_seed)


class ChainStreams:
    """Each chain's own Gaussian noise and minibatch streams, drawn in blocks.

    Chain ``c`` of a run with seed ``s`` sees the same numbers whatever the number of
    chains, the chunking or the execution mode: blocks have a size that depends only on the
    number of moving coordinates, and every chain owns its generators.
    """

    def __init__(
        self, seed: int, num_chains: int, dim: int, dtype: torch.dtype, device: torch.device, source, noise_draws: int
    ):
        self.num_chains, self.dim, self.source = num_chains, dim, source
        self.noise_steps = max(1, min(MAX_BLOCK_STEPS, NOISE_BLOCK_ELEMENTS // max(dim, 1)))
        seeds = [chain_seeds(seed, c) for c in range(num_chains)]
        self.noise_gens = [torch.Generator(device=device).manual_seed(s[0]) for s in seeds]
        self._noise = torch.empty(num_chains, self.noise_steps, dim, dtype=dtype, device=device)
        self._noise_next = 0
        self._noise_filled = 0
        self.remaining = noise_draws
        if isinstance(source, TensorBatches) and not source.full_batch:
            self.batch_gens = [torch.Generator(device=device).manual_seed(s[1]) for s in seeds]
            self._carry = [torch.empty(0, dtype=torch.long, device=device) for _ in range(num_chains)]
            self._index = torch.empty(num_chains, MAX_BLOCK_STEPS, source.batch_size, dtype=torch.long, device=device)
            self._index_next = MAX_BLOCK_STEPS
            row_bytes = max(1, source.row_bytes * source.batch_size * num_chains)
            self._gather_steps = _largest_divisor_at_most(MAX_BLOCK_STEPS, GATHER_BLOCK_BYTES // row_bytes)
        elif isinstance(source, LoaderBatches):
            self._iterators = [source.chain_iterator(torch.Generator().manual_seed(s[1])) for s in seeds]

    def noise(self) -> torch.Tensor:
        """Next noise, shape (chains, dim); blocks never run past ``self.remaining`` draws of noise."""
        if self._noise_next == self._noise_filled:
            steps = max(1, min(self.noise_steps, self.remaining))
            for chain, gen in enumerate(self.noise_gens):
                torch.randn(steps, self.dim, generator=gen, out=self._noise[chain, :steps])
            self._noise_next, self._noise_filled = 0, steps
            self.remaining -= steps
        out = self._noise[:, self._noise_next]
        self._noise_next += 1
        return out

    def batch(self) -> tuple[Any, bool]:
        """Next minibatch of every chain and whether it is shared by all chains.

        Returns a pytree whose tensor leaves have a leading chain axis, or, for loader batches
        that cannot be stacked, :class:`PerChainBatches`.
        """
        source = self.source
        if isinstance(source, TensorBatches):
            if source.full_batch:
                return source.whole(), True
            if self._index_next == MAX_BLOCK_STEPS:
                for chain, gen in enumerate(self.batch_gens):
                    block, self._carry[chain] = source.index_block(gen, self._carry[chain], MAX_BLOCK_STEPS)
                    self._index[chain] = block
                self._index_next = 0
            offset = self._index_next % self._gather_steps
            if offset == 0:  # gather several steps' batches at once: one indexing op, not one per step
                stop = min(self._index_next + self._gather_steps, MAX_BLOCK_STEPS)
                self._gathered = source.gather(self._index[:, self._index_next : stop])
            self._index_next += 1
            return tree_map(lambda leaf: leaf[:, offset], self._gathered), False
        batches = [next(it) for it in self._iterators]
        return _stack_or_list(batches), False


def _largest_divisor_at_most(number: int, limit: int) -> int:
    """The largest divisor of ``number`` that is at most ``limit`` (at least 1)."""
    return max(d for d in range(1, number + 1) if number % d == 0 and d <= max(limit, 1))


class PerChainBatches(list):
    """One batch per chain, for loader batches that cannot be stacked along a chain axis."""


def _stack_or_list(batches: list) -> Any:
    leaves = [tree_flatten(b)[0] for b in batches]
    stackable = all(isinstance(x, torch.Tensor) for x in leaves[0]) and all(
        [x.shape for x in ls] == [x.shape for x in leaves[0]] for ls in leaves
    )
    if not stackable:
        return PerChainBatches(batches)
    return tree_map(lambda *xs: torch.stack(xs), *batches)


# What torch.func.vmap says when a model does something it cannot batch (torch 2.x): ".item()",
# data-dependent control flow, dynamic shapes ("vmap: ..."), no batching rule, a tensor without
# storage (.numpy(), .tolist(), data_ptr), BatchNorm updating unbatched running statistics.
VMAP_LIMITATION = re.compile(
    r"vmap|functorch|batching rule|batchedtensor|batched tensor|doesn't have storage|storage of batched", re.IGNORECASE
)


def is_vmap_limitation(err: BaseException) -> bool:
    """Whether ``err`` is torch.func.vmap refusing an operation, not an error of the user's code.

    vmap's refusals are RuntimeErrors (NotImplementedError included) raised by torch with one of the
    messages of :data:`VMAP_LIMITATION`, or raised from torch's own ``_functorch`` code; anything else
    (a ValueError of a ``loss_fn``, a RuntimeError it raises itself) is not.
    """
    if isinstance(err, torch.OutOfMemoryError) or not isinstance(err, RuntimeError):
        return False
    if VMAP_LIMITATION.search(str(err)):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and f"{os.sep}_functorch{os.sep}" in frames[-1].filename


class _Evaluator:
    """Losses and gradients of all chains: vectorised when possible (through a traced graph when
    it pays), else one chain at a time.

    With ``vectorize="auto"`` the chains fall back to one at a time only when vmap itself refuses the
    model (:func:`is_vmap_limitation`), or, at the first vectorised step, when a RuntimeError of vmap's
    that names no known limitation does not happen when one chain is evaluated without vmap. Any other
    exception (the user's own, at any step) propagates unchanged.
    """

    def __init__(self, flat_loss: FlatLoss, vectorize: bool | str, chunk_size: int | None, graph: bool | str, steps: int):
        self.flat_loss = flat_loss
        self.mode = vectorize
        self.chunk_size = chunk_size
        self.graphs = GraphRunner(flat_loss, graph, planned_steps=steps)
        self.vmapped_steps = 0

    @property
    def vectorized(self) -> bool:
        return self.mode is not False

    def __call__(self, positions: torch.Tensor, batch: Any, shared: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, PerChainBatches):
            return self._sequential(positions, batch, shared=False, listed=True)
        if self.mode is False:
            return self._sequential(positions, batch, shared)
        def eager():
            return self.flat_loss.batched_value_and_grad(positions, batch, shared_batch=shared, chunk_size=self.chunk_size)

        try:
            if self.chunk_size and self.chunk_size < positions.shape[0]:
                out = eager()
            else:
                out = self.graphs(positions, batch, shared, eager)
        except torch.OutOfMemoryError:
            if not self.chunk_size or self.chunk_size > 1:
                self.chunk_size = max(1, (self.chunk_size or positions.shape[0]) // 2)
                warnings.warn(f"out of memory with all chains at once; retrying with chain chunks of {self.chunk_size}.")
                return self(positions, batch, shared)
            raise
        except RuntimeError as err:
            if self.mode != "auto" or not self._vmap_refused(err, positions, batch, shared):
                raise
            warnings.warn(
                f"the model cannot run under torch.func.vmap ({type(err).__name__}: {err}); chains run "
                "one at a time instead (same statistics, slower). Pass vectorize=False to silence this."
            )
            self.mode = False
            return self._sequential(positions, batch, shared)
        self.vmapped_steps += 1
        return out

    def _vmap_refused(self, err: RuntimeError, positions, batch, shared: bool) -> bool:
        """Whether ``err`` came from vmap: a known refusal, or (first step only) one chain runs without vmap."""
        if is_vmap_limitation(err):
            return True
        if self.vmapped_steps:
            return False
        chain_batch = batch if shared else tree_map(lambda x: x[0], batch)
        try:
            self.flat_loss.value_and_grad(positions[0], chain_batch)
        except Exception:
            return False
        return True

    def _sequential(self, positions, batch, shared, listed=False):
        values, grads = [], []
        for chain in range(positions.shape[0]):
            if listed:
                chain_batch = batch[chain]
            elif shared:
                chain_batch = batch
            else:
                chain_batch = tree_map(lambda x, c=chain: x[c], batch)
            value, grad = self.flat_loss.value_and_grad(positions[chain], chain_batch)
            values.append(value)
            grads.append(grad)
        return torch.stack(values), torch.stack(grads)


def run_chains(
    flat_loss: FlatLoss,
    sampler: Sampler,
    hyper: Hyper,
    source: TensorBatches | LoaderBatches,
    *,
    num_chains: int,
    num_draws: int,
    num_burnin_steps: int,
    num_steps_bw_draws: int,
    seed: int,
    on_draw: OnDraw | None = None,
    stop: Stop = None,
    progress: bool = True,
    vectorize: bool | str = "auto",
    chain_chunk_size: int | None = None,
    graph: bool | str = "auto",
    init_grad: torch.Tensor | None = None,
    observe: Callable[[torch.Tensor, int], None] | None = None,
    on_burnin: OnBurnin | None = None,
) -> ChainRun:
    """Advance ``num_chains`` chains from w* and record the minibatch loss at every draw.

    The loss recorded at a draw is the one computed at the chain's current position, before
    that step's update (so with no burn-in the first draw is L_batch(w*)), as devinterp does.

    Parameters
    ----------
    flat_loss, sampler, hyper, source
        The loss as a function of the flat selected weights, the update rule, its
        hyperparameters and the minibatch source.
    num_chains, num_draws, num_burnin_steps, num_steps_bw_draws : int
    seed : int
    on_draw : callable, optional
        ``on_draw(draw_index, losses)`` with ``losses`` of shape (chains,), called as draws
        are recorded (in blocks of ``CUDA_STREAM_EVERY`` on a GPU). A callback of three
        parameters also gets ``acceptance`` (chains,): the MALA acceptance probability of the
        move from draw ``draw_index − 1`` (NaN where it was not measured), as in ``mala_trace``.
    stop : threading.Event or callable, optional
        Checked every step; when set, sampling ends and the run is marked partial.
    progress : bool
        Show a tqdm progress bar (never when the ``CI`` environment variable is set).
    vectorize : True, False or "auto"
        vmap the chains; "auto" falls back to a sequential loop if the model cannot be vmapped.
    chain_chunk_size : int, optional
        Chains per vmapped call (memory); all at once when None.
    graph : True, False or "auto"
        Evaluate vectorised chains through a traced graph (see :mod:`devinterp_viz.engine.graph`).
    init_grad : torch.Tensor, shape (n,), optional
        ∇L(w*) over the fixed evaluation batches, for the ``descent`` trace (NaN without it).
    observe : callable, optional
        ``observe(positions, draw)`` at every draw, with the chains' positions (chains, n) the
        draw's losses are measured at (see :class:`~devinterp_viz.engine.observables.Observables`).
    on_burnin : callable, optional
        ``on_burnin(step, losses)`` with ``losses`` (chains,) at each burn-in step kept in
        ``burnin_loss_trace`` (:class:`BurninRecorder`), streamed as ``on_draw`` is.
    """
    device = hyper.w_star.device
    dim = hyper.w_star.numel()
    total_steps = num_burnin_steps + num_draws * num_steps_bw_draws
    streams = ChainStreams(seed, num_chains, dim, hyper.w_star.dtype, device, source, noise_draws=total_steps + 1)
    evaluator = _Evaluator(flat_loss, vectorize, chain_chunk_size, graph, total_steps)
    state = sampler.init(hyper.w_star.expand(num_chains, dim).clone(), streams.noise(), hyper)
    losses = torch.full((num_chains, num_draws), float("nan"), dtype=hyper.w_star.dtype, device=device)
    mala = torch.full_like(losses, float("nan"))
    distances = torch.full_like(losses, float("nan"))
    traces = {name: torch.full_like(losses, float("nan")) for name in SAMPLER_TRACES}
    stream_every = CUDA_STREAM_EVERY if device.type == "cuda" else 1
    burnin = BurninRecorder(num_chains, num_burnin_steps, hyper.w_star, on_burnin, stream_every)
    steps_run = 0
    streamed = 0
    draws_done = 0
    pending = None  # (step info, loss, |w − w*|², draw) of a move whose acceptance the next evaluation gives
    mala_every = max(1, -(-num_draws // MALA_DRAWS))
    reuse_batch = False
    partial = False
    bar = progress_bar(total_steps, "sampling", progress)
    try:
        for step in range(total_steps):
            if stop_requested(stop):
                partial = True
                break
            if not reuse_batch:
                batch, shared = streams.batch()
            loss, grad = evaluator(state.position, batch, shared)
            steps_run = step + 1
            since_burnin = step - num_burnin_steps
            if since_burnin < 0:
                burnin.record(step, loss)
            recording = since_burnin >= 0 and since_burnin % num_steps_bw_draws == 0
            draw = since_burnin // num_steps_bw_draws
            drift, sq_dist = potential_gradient(
                state.position, grad, hyper, keep_grad=sampler.uses_loss_grad,
                with_sq_dist=recording or pending is not None, traces=traces if recording else None, draw=draw,
                init_grad=init_grad)
            if not sampler.uses_loss_grad:
                grad = None  # its memory now holds the drift
            if pending is not None:  # the pending move's batch at both of its ends: exact, and no extra gradient
                info, old_loss, old_sq_dist, old_draw = pending
                mala[:, old_draw] = mala_log_acceptance(info, old_loss, loss, old_sq_dist, sq_dist, drift, hyper).exp()
                pending = info = None
            if recording:
                losses[:, draw] = loss.detach()
                distances[:, draw] = sq_dist
                if observe is not None:
                    observe(state.position, draw)
                draws_done = draw + 1
                if on_draw is not None and (draws_done - streamed >= stream_every or draws_done == num_draws):
                    streamed = _stream(on_draw, losses, mala, streamed, draws_done)
            state, info = sampler.step(state, grad, drift, streams.noise(), hyper)
            del grad, drift  # the step may have used their memory
            # A minibatch step's acceptance compares both ends on the step's own batch (different
            # batches would measure their disagreement, not the step), so at MALA_DRAWS draws the
            # next step reuses the batch and its evaluation serves both purposes.
            measure = recording and info is not None and step + 1 < total_steps and (shared or draw % mala_every == 0)
            pending = (info, loss, sq_dist, draw) if measure else None
            info = None  # a step's delta is held only while its acceptance is pending
            reuse_batch = measure and not shared
            bar.update(1)
            if step % DIVERGENCE_CHECK_EVERY == DIVERGENCE_CHECK_EVERY - 1 and not bool(torch.isfinite(loss).any()):
                break  # every chain is non-finite: nothing more to learn
    finally:
        bar.close()
    burnin.stream()
    if on_draw is not None and streamed < draws_done:
        _stream(on_draw, losses, mala, streamed, draws_done)
    keep = draws_done if partial else num_draws
    burnin_steps, burnin_losses, burnin_divergence = burnin.result(steps_run)
    return ChainRun(
        loss_trace=losses[:, :keep].cpu().double().numpy(),
        mala_trace=mala[:, :keep].cpu().double().numpy(),
        distance_trace=distances[:, :keep].cpu().double().numpy(),
        sampler_traces={name: trace[:, :keep].cpu().double().numpy() for name, trace in traces.items()},
        partial=partial,
        vectorized=evaluator.vectorized,
        graph=evaluator.graphs.status if evaluator.vectorized else "eager",
        burnin_steps=burnin_steps,
        burnin_loss_trace=burnin_losses,
        burnin_divergence_step=burnin_divergence,
    )


def potential_gradient(position: torch.Tensor, grad: torch.Tensor, hyper: Hyper, *, keep_grad: bool,
                       with_sq_dist: bool, traces: dict | None, draw: int, init_grad: torch.Tensor | None):
    """∇U = nβ ∇L + γ (w − w*) and |w − w*|², built over blocks of coordinates (δ = w − w* is never whole).

    Parameters
    ----------
    position, grad : torch.Tensor, shape (chains, n)
        The chains' positions and their loss gradients.
    hyper : Hyper
    keep_grad : bool
        Build ∇U in a tensor of its own; otherwise, above one block, in ``grad``'s memory (``grad``
        is then gone). In one block it is built in δ's memory either way.
    with_sq_dist : bool
        Also return |w − w*|² (frozen coordinates have δ = 0).
    traces : dict or None
        The driver's traces, whose column ``draw`` of ``virial``, ``descent``, ``stein`` and
        ``drift_sq`` is filled (virial = δ · ∇U; stein and drift_sq over the moving coordinates).
    draw : int
    init_grad : torch.Tensor, shape (n,), optional
        ∇L(w*) for the ``descent`` trace.

    Returns
    -------
    drift : torch.Tensor, shape (chains, n)
    sq_dist : torch.Tensor, shape (chains,), or None
    """
    chains, dim = position.shape
    columns = max(1, DRIFT_BLOCK_ELEMENTS // max(chains, 1))
    whole = columns >= dim
    drift = None if whole else (torch.empty_like(grad) if keep_grad else grad)  # one block: δ's memory
    zeros = lambda: position.new_zeros(chains)  # noqa: E731
    sq_dist = zeros() if with_sq_dist else None
    sums = {name: zeros() for name in ("offset_grad", "descent", "stein", "drift_sq")} if traces is not None else None
    for start in range(0, dim, columns):
        block = slice(start, start + columns)
        offset, block_grad = position[:, block] - hyper.w_star[block], grad[:, block]
        if sq_dist is not None:
            sq_dist += torch.linalg.vector_norm(offset, dim=1).square()
        if sums is not None:
            sums["offset_grad"] += torch.einsum("cn,cn->c", offset, block_grad)
            if init_grad is not None:
                sums["descent"] += offset @ init_grad[block]
        block_drift = offset.mul_(hyper.localization).add_(block_grad, alpha=hyper.nbeta)  # in δ's memory
        if sums is not None:
            moving = block_drift if hyper.mask is None else block_drift * hyper.mask[..., block]
            sums["stein"] += torch.einsum("cn,cn->c", moving, block_grad)
            sums["drift_sq"] += torch.linalg.vector_norm(moving, dim=1).square()
        if drift is None:
            drift = block_drift
        else:
            drift[:, block] = block_drift
    if sums is not None:
        traces["virial"][:, draw] = hyper.nbeta * sums["offset_grad"] + hyper.localization * sq_dist
        if init_grad is not None:
            traces["descent"][:, draw] = hyper.nbeta * sums["descent"]
        traces["stein"][:, draw] = sums["stein"]
        traces["drift_sq"][:, draw] = sums["drift_sq"]
    return drift, sq_dist


def _stream(on_draw: OnDraw, losses: torch.Tensor, mala: torch.Tensor, start: int, stop: int) -> int:
    block = losses[:, start:stop].cpu().double().numpy()
    if not _takes_acceptance(on_draw):
        for offset in range(block.shape[1]):
            on_draw(start + offset, block[:, offset].copy())
        return stop
    # the acceptance of the move from draw i − 1 is known once draw i is recorded
    accepted = torch.nn.functional.pad(mala[:, max(start - 1, 0):stop - 1], (int(start == 0), 0), value=float("nan"))
    accepted = accepted.cpu().double().numpy()
    for offset in range(block.shape[1]):
        on_draw(start + offset, block[:, offset].copy(), accepted[:, offset].copy())
    return stop


def _takes_acceptance(on_draw: OnDraw) -> bool:
    try:
        return len(inspect.signature(on_draw).parameters) >= 3
    except (TypeError, ValueError):  # a callable without a signature: the two-argument form
        return False
