"""Deep linear networks with a chosen true rank, their data and Aoyagi's learning coefficient."""

from __future__ import annotations

import math

import torch
from torch import nn


class DeepLinearNetwork(nn.Module):
    """x ↦ W_L ⋯ W_1 x without biases.

    Parameters
    ----------
    widths : sequence of int
        ``[input, hidden..., output]``; ``len(widths) - 1`` weight matrices.
    """

    def __init__(self, widths: list[int]):
        super().__init__()
        if len(widths) < 2:
            raise ValueError("a deep linear network needs at least [input, output] widths")
        self.widths = list(widths)
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def product(self) -> torch.Tensor:
        """The end-to-end matrix W_L ⋯ W_1, shape (output, input)."""
        out = self.layers[0].weight
        for layer in self.layers[1:]:
            out = layer.weight @ out
        return out


def true_parameter_dln(widths: list[int], rank: int, seed: int = 0) -> DeepLinearNetwork:
    """A network whose weights realise a random end-to-end map of rank ``rank`` exactly.

    Each layer is ``U_l diag(1_rank, 0) V_l`` with random orthogonal-ish factors, so the
    product has rank ``rank`` and the first ``rank`` hidden directions are used in every
    layer (a generic point of the true-parameter set when ``rank == min(hidden widths)``).
    """
    if rank > min(widths):
        raise ValueError(f"rank {rank} exceeds the narrowest width {min(widths)}")
    gen = torch.Generator().manual_seed(seed)
    net = DeepLinearNetwork(widths)
    with torch.no_grad():
        for layer in net.layers:
            out_dim, in_dim = layer.weight.shape
            left, _ = torch.linalg.qr(torch.randn(out_dim, out_dim, generator=gen))
            right, _ = torch.linalg.qr(torch.randn(in_dim, in_dim, generator=gen))
            core = torch.zeros(out_dim, in_dim)
            core[range(rank), range(rank)] = 1.0 + torch.rand(rank, generator=gen)
            layer.weight.copy_(left @ core @ right)
    return net


def make_dln_data(teacher: nn.Module, num_examples: int, noise: float = 0.0, seed: int = 0, whiten: bool = False):
    """Gaussian inputs and the teacher's outputs (plus optional Gaussian noise): ``(x, y)``.

    With ``whiten=True`` the inputs are rotated and scaled so that ``xᵀx / n = I`` exactly; then
    :func:`mse_loss` on the whole data set equals the population loss ``½ |W_L ⋯ W_1 − T|_F²``
    (T the teacher's product), whose localized posterior :func:`gibbs_localized_llc` samples exactly.
    """
    gen = torch.Generator().manual_seed(seed)
    in_dim = teacher.widths[0]
    x = torch.randn(num_examples, in_dim, generator=gen)
    if whiten:
        if num_examples < in_dim:
            raise ValueError(f"whitening needs at least {in_dim} examples, got {num_examples}")
        eigenvalues, eigenvectors = torch.linalg.eigh(x.double().T @ x.double() / num_examples)
        x = (x.double() @ eigenvectors @ torch.diag(eigenvalues.rsqrt()) @ eigenvectors.T).float()
    with torch.no_grad():
        y = teacher(x)
    return x, y + noise * torch.randn(y.shape, generator=gen)


def mse_loss(model: nn.Module, batch) -> torch.Tensor:
    """Half the mean over examples of the squared error summed over outputs (Gaussian likelihood)."""
    x, y = batch
    return 0.5 * (model(x) - y).square().sum(dim=-1).mean()


def aoyagi_reduced_rank_lambda(inputs: int, hidden: int, outputs: int, rank: int) -> float:
    """Learning coefficient of a two-layer linear network (reduced-rank regression).

    Parameters
    ----------
    inputs, hidden, outputs : int
        M, H, N: widths of the network x ∈ R^M ↦ B A x, A ∈ R^{H×M}, B ∈ R^{N×H}.
    rank : int
        r, the rank of the true map (r ≤ H).

    Notes
    -----
    Aoyagi & Watanabe (2005), Theorem 1. With M, N, H, r as above:

    - if N + r ≤ M + H, M + r ≤ N + H and H + r ≤ M + N:
      λ = [2(H+r)(M+N) − (M−N)² − (H+r)²] / 8, plus 1/8 when M + N + H + r is odd;
    - if M + H < N + r: λ = (HM − Hr + Nr) / 2;
    - if N + H < M + r: λ = (HN − Hr + Mr) / 2;
    - if M + N < H + r: λ = MN / 2.

    References
    ----------
    Aoyagi, Watanabe. Stochastic complexities of reduced rank regression in Bayesian
    estimation. Neural Networks 18 (2005). Aoyagi. Consideration on the learning efficiency
    of multiple-layered neural networks with linear units. Neural Networks (2024).
    """
    m, h, n, r = inputs, hidden, outputs, rank
    if not 0 <= r <= h:
        raise ValueError(f"rank must satisfy 0 <= rank <= hidden, got rank={r}, hidden={h}")
    if n + r <= m + h and m + r <= n + h and h + r <= m + n:
        value = 2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2
        if (m + n + h + r) % 2:
            value += 1
        return value / 8
    if m + h < n + r:
        return (h * m - h * r + n * r) / 2
    if n + h < m + r:
        return (h * n - h * r + m * r) / 2
    return m * n / 2


def gibbs_localized_llc(
    network: DeepLinearNetwork,
    nbeta: float,
    localization: float,
    num_chains: int = 256,
    num_sweeps: int = 1500,
    num_burnin: int = 300,
    seed: int = 0,
) -> tuple[float, float]:
    """Exact reference for ``nβ E_p[L]`` of a deep linear network at its own weights w*.

    ``L(W) = ½ |W_L ⋯ W_1 − T|_F²`` with T the network's product at w* (the population loss of
    :func:`mse_loss` on whitened data, so L(w*) = 0), and
    ``p(W) ∝ exp(−nβ L(W) − γ/2 Σ_l |W_l − W_l*|²)``.

    Parameters
    ----------
    network : DeepLinearNetwork
        Its weights are w*.
    nbeta, localization : float
        nβ and γ > 0.
    num_chains, num_sweeps, num_burnin : int
        Independent chains run side by side; sweeps per chain; sweeps discarded first.
    seed : int

    Returns
    -------
    mean, standard_error : float
        The estimate of ``nβ E_p[L]`` and its standard error across chains.

    Notes
    -----
    Blocked Gibbs: with the other layers fixed, the product is linear in one layer W_l
    (``A W_l B``), so its conditional is Gaussian with precision ``nβ (AᵀA ⊗ BBᵀ) + γ I`` and is
    drawn exactly. Gibbs moves alone mix slowly along the symmetry ``W_{l+1} G⁻¹, G W_l`` that
    leaves the product unchanged, so each sweep adds a Metropolis–Hastings move along it
    (``G = exp(sZ)``, Z Gaussian, so G and G⁻¹ are equally likely; the Jacobian of the move is
    ``det(G)^{n_{l−1} − n_{l+1}}``), with s adapted during burn-in for an acceptance near 0.4.
    Unlike SGLD this sampler has no step-size bias: it is the reference the engine's
    estimates are judged against (bench/known_answers.py).
    """
    if localization <= 0:
        raise ValueError("the Gibbs reference needs localization > 0 (a proper localized posterior)")
    gen = torch.Generator().manual_seed(seed)
    stars = [layer.weight.detach().double() for layer in network.layers]
    target = _chain_product(stars)
    layers = [star.expand(num_chains, *star.shape).clone() for star in stars]
    scales = [0.1] * (len(layers) - 1)
    values = []
    for sweep in range(num_sweeps):
        for index in range(len(layers)):
            _gibbs_layer(layers, index, target, stars, nbeta, localization, gen)
        for index in range(len(layers) - 1):
            accepted = _symmetry_move(layers, index, target, stars, nbeta, localization, scales[index], gen)
            if sweep < num_burnin:
                scales[index] *= math.exp(0.05 * (accepted - 0.4))
        if sweep >= num_burnin:
            values.append(0.5 * nbeta * (_chain_product(layers) - target).square().sum((-1, -2)))
    per_chain = torch.stack(values).mean(0)
    return float(per_chain.mean()), float(per_chain.std() / math.sqrt(num_chains))


def _chain_product(layers: list[torch.Tensor]) -> torch.Tensor:
    """``W_L ⋯ W_1`` of (..., n_l, n_{l−1}) matrices."""
    out = layers[0]
    for layer in layers[1:]:
        out = layer @ out
    return out


def _product_or_identity(layers: list[torch.Tensor], size: int, chains: int, dtype: torch.dtype) -> torch.Tensor:
    """The product of ``layers``, or the (chains, size, size) identity when there are none."""
    return _chain_product(layers) if layers else torch.eye(size, dtype=dtype).expand(chains, size, size)


def _potential(layers, target, stars, nbeta: float, localization: float) -> torch.Tensor:
    """``nβ L + γ/2 Σ |W_l − W_l*|²`` per chain, shape (chains,)."""
    energy = 0.5 * nbeta * (_chain_product(layers) - target).square().sum((-1, -2))
    for layer, star in zip(layers, stars):
        energy = energy + 0.5 * localization * (layer - star).square().sum((-1, -2))
    return energy


def _gibbs_layer(layers, index: int, target, stars, nbeta: float, localization: float, gen) -> None:
    """Draw layer ``index`` of every chain from its Gaussian conditional, in place."""
    chains, rows, cols = layers[index].shape
    dtype = layers[index].dtype
    after = _product_or_identity(layers[index + 1 :], rows, chains, dtype)
    before = _product_or_identity(layers[:index], cols, chains, dtype)
    left, right = after.transpose(1, 2) @ after, before @ before.transpose(1, 2)
    size = rows * cols
    precision = nbeta * torch.einsum("cij,ckl->cikjl", left, right).reshape(chains, size, size)
    precision = precision + localization * torch.eye(size, dtype=dtype)
    linear = nbeta * (after.transpose(1, 2) @ target @ before.transpose(1, 2)).reshape(chains, size)
    linear = linear + localization * stars[index].reshape(1, size)
    factor = torch.linalg.cholesky(precision)
    mean = torch.cholesky_solve(linear.unsqueeze(-1), factor)
    noise = torch.randn(chains, size, 1, generator=gen, dtype=dtype)
    draw = mean + torch.linalg.solve_triangular(factor.transpose(1, 2), noise, upper=True)
    layers[index] = draw.reshape(chains, rows, cols)


def _symmetry_move(layers, index: int, target, stars, nbeta: float, localization: float, scale: float, gen) -> float:
    """Metropolis–Hastings move ``W_index → G W_index, W_index+1 → W_index+1 G⁻¹``; returns the acceptance rate."""
    chains, hidden = layers[index].shape[:2]
    generator_matrix = scale * torch.randn(chains, hidden, hidden, generator=gen, dtype=layers[index].dtype)
    group, inverse = torch.linalg.matrix_exp(generator_matrix), torch.linalg.matrix_exp(-generator_matrix)
    proposal = list(layers)
    proposal[index] = group @ layers[index]
    proposal[index + 1] = layers[index + 1] @ inverse
    log_jacobian = (layers[index].shape[2] - layers[index + 1].shape[1]) * torch.linalg.slogdet(group)[1]
    log_ratio = (
        _potential(layers, target, stars, nbeta, localization)
        - _potential(proposal, target, stars, nbeta, localization)
        + log_jacobian
    )
    accept = torch.rand(chains, generator=gen, dtype=log_ratio.dtype).log() < log_ratio
    for k in (index, index + 1):
        layers[k] = torch.where(accept[:, None, None], proposal[k], layers[k])
    return float(accept.double().mean())
