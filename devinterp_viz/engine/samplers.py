"""SGLD-family samplers as pure update functions over a stacked-chain state.

Every sampler is a pair ``init(position, noise, hyper) -> state`` and
``step(state, loss_grad, drift, noise, hyper) -> (state, info)`` acting on tensors whose
leading axis is the chain axis; ``info`` is a :class:`StepInfo` for samplers with a
Metropolis-adjusted counterpart (for the MALA acceptance diagnostic), else None. The driver owns the loop, the random streams and the
recording; a sampler never draws random numbers itself, so the same noise gives the same
chain whether chains run vectorised, in chunks or one by one. ``step`` owns the ``state``,
``drift`` and ``noise`` it is given: it may update their tensors in place (the driver never
reads them again; each noise slot is used once), so a step needs no weight-sized memory beyond
the state, the gradient, the drift and the noise, and the move it reports lives in the noise's.
A sampler that does not read ``loss_grad`` says so (``Sampler.uses_loss_grad``): it is given
None, and the driver builds the drift in the gradient's memory (one weight-sized tensor less).

The target is the tempered, localised posterior
``p(w) ∝ exp(-nβ L(w) - γ/2 |w - w*|²)`` (Lau et al. 2023); only the selected coordinates
move (``mask``), the others stay exactly at w*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

RMSPROP_ALPHA = 0.99  # devinterp's defaults, so settings carry over
RMSPROP_EPS = 0.1
SGNHT_DIFFUSION = 0.01
MALA_BLOCK_ELEMENTS = 1 << 22  # (chains × coordinates) per float64 block of the MALA acceptance


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters shared by the samplers.

    Attributes
    ----------
    lr : float
        Step size ε.
    nbeta : float
        Inverse temperature nβ multiplying the minibatch loss gradient.
    localization : float
        Strength γ of the Gaussian pull towards ``w_star``.
    w_star : torch.Tensor, shape (n,)
        The flat parameter vector the chains start from and are localised at.
    mask : torch.Tensor or None, shape (n,) or (chains, n)
        1.0 on coordinates that move, 0.0 on frozen ones; None when all move. A per-chain
        mask lets chains of different selections (e.g. every attention head) share one run.
    settings : SamplerSettings or None
        The run's settings, for any option a sampler reads besides lr, nβ and γ.
    """

    lr: float
    nbeta: float
    localization: float
    w_star: torch.Tensor
    mask: torch.Tensor | None
    settings: Any = None  # a SamplerSettings (settings.py imports this module for the samplers' names)

    def masked(self, update: torch.Tensor) -> torch.Tensor:
        return update if self.mask is None else update * self.mask


class StepInfo(NamedTuple):
    """What a Langevin step did, for the MALA acceptance of the move it made.

    Attributes
    ----------
    delta : torch.Tensor, shape (chains, n)
        ``w' − w`` (zero on frozen coordinates).
    noise_sq : torch.Tensor, shape (chains,), float64
        ``|ξ|²`` over the moving coordinates of the standard normal ξ the step used.
    precond : torch.Tensor or None, shape (chains, n)
        Diagonal preconditioner G of the step (None = identity).
    """

    delta: torch.Tensor
    noise_sq: torch.Tensor
    precond: torch.Tensor | None


def squared_norms(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_j (mask · x)²`` per row of ``x`` (chains, n), accumulated in float64 over blocks of coordinates
    (no weight-sized float64 copy); shape (chains,)."""
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    columns = max(1, MALA_BLOCK_ELEMENTS // max(x.shape[0], 1))
    for start in range(0, x.shape[1], columns):
        block = x[:, start : start + columns].to(torch.float64, copy=True)  # a copy even when x is float64
        if mask is not None:
            block.mul_(mask[..., start : start + columns])
        total += block.square_().sum(1)
    return total


class SGLDState(NamedTuple):
    position: torch.Tensor  # (chains, n)


class RMSPropSGLDState(NamedTuple):
    position: torch.Tensor  # (chains, n)
    square_avg: torch.Tensor  # (chains, n) running mean of the squared loss gradient


class SGNHTState(NamedTuple):
    position: torch.Tensor  # (chains, n)
    momentum: torch.Tensor  # (chains, n) position increment per step
    thermostat: torch.Tensor  # (chains,)


# ------------------------------------------------------------------------------ SGLD


def sgld_init(position: torch.Tensor, noise: torch.Tensor, hyper: Hyper) -> SGLDState:
    return SGLDState(position)


def sgld_step(state: SGLDState, loss_grad: torch.Tensor, drift: torch.Tensor, noise: torch.Tensor, hyper: Hyper):
    """One SGLD step (Welling & Teh 2011) on the localised posterior.

    Parameters
    ----------
    state : SGLDState
    loss_grad : None
        Not read (the driver builds the drift in the gradient's memory).
    drift : torch.Tensor, shape (chains, n)
        ∇U = nβ ∇L + γ (w − w*), the gradient of the potential, computed once by the driver.
    noise : torch.Tensor, shape (chains, n)
        Standard normal draws.
    hyper : Hyper

    Notes
    -----
    ``Δw = −(ε/2)(nβ ∇L_batch(w) + γ (w − w*)) + √ε ξ``, ξ ~ N(0, I), on selected coordinates.
    """
    noise_sq = squared_norms(noise, hyper.mask)
    delta = noise.mul_(math.sqrt(hyper.lr)).add_(drift, alpha=-0.5 * hyper.lr)  # in the noise's memory
    if hyper.mask is not None:
        delta.mul_(hyper.mask)
    return SGLDState(state.position.add_(delta)), StepInfo(delta, noise_sq, None)


# ------------------------------------------------------------------- RMSProp-SGLD


def rmsprop_sgld_init(position: torch.Tensor, noise: torch.Tensor, hyper: Hyper) -> RMSPropSGLDState:
    return RMSPropSGLDState(position, torch.zeros_like(position))


def rmsprop_sgld_step(
    state: RMSPropSGLDState, loss_grad: torch.Tensor, drift: torch.Tensor, noise: torch.Tensor, hyper: Hyper
):
    """One RMSProp-preconditioned SGLD step (Li et al. 2016), devinterp's variant.

    Notes
    -----
    ``V ← αV + (1−α) (∇L_batch)²``, ``G = 1 / (√V + eps)``,
    ``Δw = −(ε/2) G (nβ ∇L_batch + γ (w − w*)) + √(εG) ξ``, with α = 0.99, eps = 0.1.

    Like devinterp's, it omits the Γ correction term for a state-dependent G, so where G
    follows the position its stationary law is ∝ exp(−U)/G rather than exp(−U): on |w|² with
    gradients comparable to eps the LLC comes out 15–50% high (tests/test_engine.py). It is
    exact where gradients are small next to eps (G ≈ 1/eps) and is often the better-behaved
    sampler on networks whose curvature varies by orders of magnitude across weights.
    """
    square_avg = state.square_avg.mul_(RMSPROP_ALPHA).addcmul_(loss_grad, loss_grad, value=1 - RMSPROP_ALPHA)
    precond = square_avg.sqrt().add_(RMSPROP_EPS).reciprocal_()
    noise_sq = squared_norms(noise, hyper.mask)
    delta = noise.mul_(precond.sqrt()).mul_(math.sqrt(hyper.lr)).addcmul_(precond, drift, value=-0.5 * hyper.lr)
    if hyper.mask is not None:
        delta.mul_(hyper.mask)
    return RMSPropSGLDState(state.position.add_(delta), square_avg), StepInfo(delta, noise_sq, precond)


# -------------------------------------------------------------------------- SGNHT


def sgnht_init(position: torch.Tensor, noise: torch.Tensor, hyper: Hyper) -> SGNHTState:
    momentum = hyper.masked(math.sqrt(hyper.lr) * noise)
    thermostat = torch.full(position.shape[:1], SGNHT_DIFFUSION, dtype=position.dtype, device=position.device)
    return SGNHTState(position, momentum, thermostat)


def sgnht_step(state: SGNHTState, loss_grad: torch.Tensor, drift: torch.Tensor, noise: torch.Tensor, hyper: Hyper):
    """One stochastic-gradient Nosé–Hoover thermostat step (Ding et al. 2014).

    Notes
    -----
    With ``v`` the position increment per step (momentum × step, so ``ε = h²``) and
    diffusion A = 0.01: ``v ← v − ε (nβ ∇L + γ (w − w*)) − ξ v + √(2Aε) η``, ``w ← w + v``,
    ``ξ ← ξ + mean(v²) − ε`` with the mean over the moving coordinates. The thermostat ξ
    absorbs the unknown minibatch-noise variance. It has no Metropolis-adjusted
    counterpart, so the step reports no MALA information.
    """
    momentum = state.momentum.mul_((1 - state.thermostat)[:, None]).sub_(drift, alpha=hyper.lr)
    momentum.add_(noise, alpha=math.sqrt(2 * SGNHT_DIFFUSION * hyper.lr))
    if hyper.mask is not None:
        momentum.mul_(hyper.mask)
    moving = momentum.shape[1] if hyper.mask is None else hyper.mask.sum(-1)
    thermostat = state.thermostat + torch.linalg.vector_norm(momentum, dim=1).square() / moving - hyper.lr
    return SGNHTState(state.position.add_(momentum), momentum, thermostat), None


# -------------------------------------------------------------------------- MALA


def mala_log_acceptance(
    step: StepInfo,
    loss: torch.Tensor,
    new_loss: torch.Tensor,
    sq_dist: torch.Tensor,
    new_sq_dist: torch.Tensor,
    new_drift: torch.Tensor,
    hyper: Hyper,
) -> torch.Tensor:
    """Log acceptance probability a Metropolis-adjusted version of a Langevin step would have had.

    Parameters
    ----------
    step : StepInfo
        The move w → w' (its ``delta``, ``noise`` and preconditioner).
    loss, new_loss : torch.Tensor, shape (chains,)
        Minibatch losses at w and w'.
    sq_dist, new_sq_dist : torch.Tensor, shape (chains,)
        ``|w − w*|²`` and ``|w' − w*|²`` over the moving coordinates.
    new_drift : torch.Tensor, shape (chains, n)
        ``∇U(w') = nβ ∇L(w') + γ (w' − w*)``.
    hyper : Hyper

    Returns
    -------
    torch.Tensor, shape (chains,)
        ``min(0, U(w) − U(w') + log q(w | w') − log q(w' | w))``.

    Notes
    -----
    The proposal is the Langevin step ``q(·|w) = N(w − (ε/2) G ∇U(w), ε G)`` with
    ``U = nβ L + γ/2 |w − w*|²``. The forward residual is ``√(εG) ξ``, so
    ``log q(w'|w) = −|ξ|²/2``; the backward residual is ``(ε/2) G ∇U(w') − (w' − w)``. G is
    taken as the step's preconditioner in both directions. Losses and gradients are the
    minibatch ones, as in Lau et al. (2023), who tune ε for an acceptance near 0.9.
    """
    # In float64: the two log-proposal terms are each ~ n/2 (n moving weights) and nearly cancel;
    # in float32 their rounding alone would swamp the acceptance of a large model's small step.
    # Summed over blocks of coordinates, so the float64 copies never exceed a block (|ξ|² likewise,
    # by the step: see squared_norms).
    backward_sq = torch.zeros(step.delta.shape[0], dtype=torch.float64, device=step.delta.device)
    columns = max(1, MALA_BLOCK_ELEMENTS // max(step.delta.shape[0], 1))
    for start in range(0, step.delta.shape[1], columns):
        block = slice(start, start + columns)
        # −(backward residual) = δ − (ε/2) G ∇U(w'), built in one float64 block (two with G)
        minus_backward = new_drift[:, block].to(torch.float64, copy=True)
        precond = None if step.precond is None else step.precond[:, block].double()
        if precond is not None:
            minus_backward.mul_(precond)
        minus_backward.mul_(-0.5 * hyper.lr).add_(step.delta[:, block])
        if hyper.mask is not None:
            minus_backward.mul_(hyper.mask[..., block])
        minus_backward.square_()
        backward_sq += (minus_backward if precond is None else minus_backward.div_(precond)).sum(1)
    loss, new_loss, sq_dist, new_sq_dist = (t.double() for t in (loss, new_loss, sq_dist, new_sq_dist))
    log_q_backward = backward_sq / (-2 * hyper.lr)
    log_q_forward = step.noise_sq * -0.5
    potential_drop = hyper.nbeta * (loss - new_loss) + 0.5 * hyper.localization * (sq_dist - new_sq_dist)
    return torch.clamp(potential_drop + log_q_backward - log_q_forward, max=0.0)


class Sampler(NamedTuple):
    """A sampler: its pure ``init`` and ``step``, whether MALA acceptance applies, its display label,
    and whether ``step`` reads the loss gradient besides the drift."""

    name: str
    init: Callable
    step: Callable
    has_mala: bool
    label: str
    uses_loss_grad: bool = True


SAMPLERS: dict[str, Sampler] = {
    "sgld": Sampler("sgld", sgld_init, sgld_step, True, "SGLD", uses_loss_grad=False),
    "rmsprop_sgld": Sampler("rmsprop_sgld", rmsprop_sgld_init, rmsprop_sgld_step, True, "RMSProp-SGLD"),
    "sgnht": Sampler("sgnht", sgnht_init, sgnht_step, False, "SGNHT", uses_loss_grad=False),
}


def get_sampler(name: str) -> Sampler:
    """The sampler called ``name`` (one of ``SAMPLERS``), or a clear error."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"sampler={name!r} is unknown; choose one of {', '.join(SAMPLERS)}.") from None
