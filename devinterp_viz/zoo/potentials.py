"""Potentials with known learning coefficients, as modules: for teaching and for exact tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import integrate
from torch import nn


class PotentialModel(nn.Module):
    """A single weight vector ``w`` whose loss is a closed-form potential K(w), minimum at w = 0.

    The loss ignores the data: pass any tensor of the right length as ``data`` and
    ``batch_size=len(data)`` (or any batch size), with :func:`potential_loss` as ``loss_fn``.
    """

    def __init__(self, dim: int, init: torch.Tensor | None = None):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(dim) if init is None else init.clone().float())

    def potential(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def learning_coefficient(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def localized_llc(self, nbeta: float, localization: float) -> float:  # pragma: no cover - abstract
        """The estimator's exact target ``nβ E_p[K(w)]`` under ``p ∝ exp(−nβ K(w) − γ/2 |w|²)``, at w* = 0."""
        raise NotImplementedError


class GaussianPotential(PotentialModel):
    """K(w) = |w|² (regular): λ = d/2, multiplicity 1.

    For SGLD at step ε with γ = localization the chain is linear,
    ``w' = ρ w + √ε ξ`` with ``ρ = 1 − ε (nβ + γ/2)``, so started at w* = 0 each coordinate
    has variance ``ε (1 − ρ^{2t}) / (1 − ρ²)`` after t steps: the estimator's exact
    expectation is :meth:`exact_sgld_llc`.
    """

    def potential(self) -> torch.Tensor:
        return self.w.square().sum()

    def learning_coefficient(self) -> float:
        return self.w.numel() / 2

    def localized_llc(self, nbeta: float, localization: float) -> float:
        """``d nβ / (2 nβ + γ)``: each coordinate is Gaussian with variance 1/(2nβ + γ)."""
        return self.w.numel() * nbeta / (2 * nbeta + localization)

    def exact_sgld_llc(
        self, lr: float, nbeta: float, localization: float, draw_steps: torch.Tensor | list[int] | None = None
    ) -> float:
        """Expected LLC estimate of SGLD chains started at 0, averaged over the draw steps.

        Parameters
        ----------
        lr, nbeta, localization : float
        draw_steps : sequence of int, optional
            Step index of every recorded draw (the loss is taken before that step's update);
            None gives the stationary value.
        """
        rho = 1.0 - lr * (nbeta + localization / 2)
        if abs(rho) >= 1:
            return float("inf")
        stationary = lr / (1 - rho**2)
        if draw_steps is None:
            variance = stationary
        else:
            steps = torch.as_tensor(draw_steps, dtype=torch.float64)
            variance = float((stationary * (1 - rho ** (2 * steps))).mean())
        return nbeta * self.w.numel() * variance


class SumOfPowers(PotentialModel):
    """Quasi-homogeneous K(w) = Σ_i w_i^{2 k_i}: with γ = 0, nβ E[K] = Σ_i 1/(2 k_i) exactly, for any nβ.

    Parameters
    ----------
    exponents : sequence of int
        The k_i (≥ 1).

    Notes
    -----
    Under ``p(w) ∝ exp(−nβ K(w))`` the coordinates are independent and
    ``E[nβ w^{2k}] = 1/(2k)`` (substitute ``t = nβ w^{2k}``: a Gamma(1/(2k)) variable).
    """

    def __init__(self, exponents: list[int]):
        super().__init__(len(exponents))
        self.register_buffer("powers", 2 * torch.as_tensor(exponents, dtype=torch.float32))

    def potential(self) -> torch.Tensor:
        return (self.w ** self.powers).sum()

    def learning_coefficient(self) -> float:
        return float((1.0 / self.powers).sum())

    def localized_llc(self, nbeta: float, localization: float) -> float:
        """A sum of one-dimensional quadratures (the coordinates are independent under p)."""
        return sum(_power_moment(float(power), nbeta, localization) for power in self.powers)


class NormalCrossing(PotentialModel):
    """K(w) = Π_i w_i^{2 k_i}: λ = min_i 1/(2 k_i), multiplicity = how many i reach it.

    Parameters
    ----------
    exponents : sequence of int
        The k_i (≥ 1).
    """

    def __init__(self, exponents: list[int]):
        super().__init__(len(exponents))
        self.register_buffer("powers", 2 * torch.as_tensor(exponents, dtype=torch.float32))

    def potential(self) -> torch.Tensor:
        return (self.w ** self.powers).prod()

    def learning_coefficient(self) -> float:
        return float((1.0 / self.powers).min())

    def localized_llc(self, nbeta: float, localization: float) -> float:
        """Nested quadrature of ``nβ E_p[w_1^{2k_1} w_2^{2k_2}]`` (two coordinates, γ > 0).

        The inner integral over w_2 at fixed w_1 is a one-dimensional power moment with
        coefficient ``nβ w_1^{2k_1}``; the outer one runs over w_1 within 12 prior widths.
        """
        if self.w.numel() != 2 or localization <= 0:
            raise ValueError("the quadrature reference covers two coordinates with localization > 0")
        first, second = (float(p) for p in self.powers)

        def weighted(w1: float, moment: int) -> float:
            coefficient = nbeta * abs(w1) ** first
            inner = _power_integral(second, coefficient, localization, moment)
            return inner * math.exp(-0.5 * localization * w1 * w1)

        width = 12.0 / math.sqrt(localization)
        options = dict(points=[0.0], limit=400, epsrel=1e-10)
        norm = integrate.quad(weighted, -width, width, args=(0,), **options)[0]
        mean = integrate.quad(weighted, -width, width, args=(1,), **options)[0]
        return mean / norm

    def multiplicity(self) -> int:
        lam = self.learning_coefficient()
        return int(torch.isclose(1.0 / self.powers, torch.tensor(lam)).sum())


def _power_integral(power: float, coefficient: float, localization: float, moment: int) -> float:
    """``∫ (c w^p)^m exp(−c w^p − γ w²/2) dw`` over the real line, for m in {0, 1}.

    Integrated in units of the density's own width, so narrow and wide densities are both resolved.
    """
    widths = [coefficient ** (-1.0 / power)] if coefficient > 0 else []
    if localization > 0:
        widths.append(localization**-0.5)
    if not widths:
        raise ValueError("the density is flat: give a positive coefficient or localization")
    scale = min(widths)

    def integrand(u: float) -> float:
        energy = coefficient * (scale * u) ** power
        return energy**moment * math.exp(-energy - 0.5 * localization * (scale * u) ** 2)

    return scale * integrate.quad(integrand, -np.inf, np.inf, epsabs=0.0, epsrel=1e-11, limit=200)[0]


def _power_moment(power: float, coefficient: float, localization: float) -> float:
    """``E[c w^p]`` under ``exp(−c w^p − γ w²/2)``, as a ratio of two quadratures."""
    return _power_integral(power, coefficient, localization, 1) / _power_integral(power, coefficient, localization, 0)


def potential_loss(model: PotentialModel, batch: Any) -> torch.Tensor:
    """``loss_fn`` for potential models: K(w), whatever the batch."""
    return model.potential()
