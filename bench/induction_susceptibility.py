"""Per-half susceptibilities of the zoo transformer's heads before and after its induction bump, sampled long.

posterior_covariances.ipynb samples three heads at 4 chains × 100 draws, too few to tell the copied
half of a repeated sequence from its fresh half. This runs the same design (the same checkpoints,
probe, observables, per-head sampler settings and ``loss_observable="train"``) with more chains and
draws, and reports χ ± SE of each half and of their difference (copied − fresh, from the per-token
susceptibilities of one run, so their covariance is kept), per head and checkpoint. Beside it, a readout
that cannot cancel: the per-token posterior variance Var(ℓ_i) (the loss kernel's diagonal), averaged over
each half, with the copied/fresh ratio. Var(ℓ_i) follows the loss level (dℓ/dz = p − onehot: a confidently
predicted token's loss hardly moves), so two readouts divide it out: the posterior variance of each token's
correct-token logit margin (target logit − mean logit, free of the softmax's shift), recorded at the same draws,
and each head's copied/fresh ratio over a reference head's on the same tokens (a ratio of ratios). Usage::

    python bench/induction_susceptibility.py                         # results to bench/RESULTS.md
    python bench/induction_susceptibility.py --burnin 700 --probes 16 --section "..."   # a separate section
    python bench/induction_susceptibility.py --chains 4 --draws 20 --heads blocks.1.attn.head0 --no-write
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import cpu_name, write_section  # noqa: E402

import devinterp_viz as dvz  # noqa: E402
from devinterp_viz.analysis.covariances import cross_covariance  # noqa: E402
from devinterp_viz.zoo import AttentionOnlyTransformer, TransformerConfig, cached_run, lm_loss, make_distribution  # noqa: E402
from devinterp_viz.zoo.transformer import probe_batch  # noqa: E402

SECTION = "## induction_susceptibility (the zoo transformer's heads on copied vs fresh tokens, across the bump)"
STEPS = (1027, 2645)
HEADS = ("blocks.1.attn.head0", "blocks.0.attn.head0", "blocks.0.attn.head2")
REFERENCE = "blocks.0.attn.head2"  # the unspecialised head the contrast divides by


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=12)
    parser.add_argument("--draws", type=int, default=150)
    parser.add_argument("--burnin", type=int, default=300, help="burn-in steps (the README's rule: 2·2/(lr·γ) ≈ 667)")
    parser.add_argument("--probes", type=int, default=4, help="repeated probe sequences (64 tokens each)")
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--section", default="", help="a suffix naming a separate RESULTS section (a longer run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trajectory, _ = cached_run("transformer", steps=3000, seed=0)
    steps = [int(s) for s in trajectory.steps]
    around_bump = dvz.Trajectory([(step, trajectory.state_dict(steps.index(step))) for step in STEPS])
    heads = {h.label: h for h in dvz.attention_heads(AttentionOnlyTransformer(TransformerConfig()))}
    chosen = {name: heads[name] for name in args.heads.split(",")}
    repeated = probe_batch("repeated", args.probes, 64)  # (probes, 64 tokens): second half = first half
    half = repeated.shape[1] // 2

    def losses_and_margins(m, tokens):
        # one per-sample function per run: ℓ per token, then the correct-token logit margin (the target's logit minus
        # the mean logit, which the softmax's shift freedom leaves unchanged), side by side, (batch, 2 · (positions − 1))
        logits, targets = m(tokens)[:, :-1], tokens[:, 1:]
        losses = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        margins = logits.gather(-1, targets[..., None])[..., 0] - logits.mean(-1)
        return torch.cat([losses, margins], dim=1)

    start = time.perf_counter()
    sweep = dvz.sweep_llc(around_bump, AttentionOnlyTransformer(TransformerConfig()), make_distribution("full", 256, 64, seed=1),
                          lm_loss, selections=chosen, per_sample_loss=losses_and_margins,
                          observables={"repeated": repeated, "train": make_distribution("full", 32, 64, seed=2)},
                          lr=3e-5, nbeta=30.0, localization=200.0, num_chains=args.chains, num_burnin_steps=args.burnin,
                          num_draws=args.draws, batch_size=16, progress=False)
    seconds = time.perf_counter() - start
    # token t of a sequence predicts token t + 1: positions half … 62 predict copied tokens, 0 … half-2 fresh ones
    position = np.tile(np.arange(repeated.shape[1] - 1), repeated.shape[0])
    copied, fresh = position >= half, position < half - 1  # as the notebook: the half boundary's token in neither
    width = repeated.shape[1] - 1  # predicted positions per sequence
    rows, variance_rows, margin_rows, per_chain_of = [], [], [], {}
    for name in chosen:
        for index, step in enumerate(STEPS):
            result = sweep.results[(name, "data", index)]
            train = result.observables["train"].astype(np.float64)  # (chains, draws, sequences · 2 · width)
            loss = train.reshape(*train.shape[:2], -1, 2 * width)[..., :width].mean(axis=(2, 3))[..., None]  # L, (chains, draws, 1)
            both = result.observables["repeated"].astype(np.float64)
            both = both.reshape(*both.shape[:2], -1, 2 * width)  # (chains, draws, sequences, 2 · width)
            tokens = both[..., :width].reshape(*both.shape[:2], -1)  # ℓ per token, (chains, draws, tokens)
            margins = both[..., width:].reshape(*both.shape[:2], -1)  # logit margin per token, same shape
            halves = np.stack([tokens[..., copied].mean(-1), tokens[..., fresh].mean(-1)], axis=-1)
            chi = cross_covariance(loss, halves - loss)  # χ = −nβ Cov(L, ℓ − L) of each half's mean loss
            diff = cross_covariance(loss, halves[..., :1] - halves[..., 1:])  # of copied − fresh: its own error
            early, late = (-result.nbeta * cross_covariance(loss[:, part], (halves[..., :1] - halves[..., 1:])[:, part]).value[0, 0]
                           for part in (slice(None, args.draws // 2), slice(args.draws // 2, None)))
            values = np.append(-result.nbeta * chi.value[0], -result.nbeta * diff.value[0])
            errors = np.append(result.nbeta * chi.stderr[0], result.nbeta * diff.stderr[0])
            cells = [f"{v:+.2e} ± {e:.1e}" for v, e in zip(values, errors)]
            z = values[-1] / errors[-1]
            rows.append(f"| {name} | {step} | {result.diagnostics.status} | " + " | ".join(cells)
                        + f" | {z:+.1f} | {early:+.2e} / {late:+.2e} |")
            variance_rows.append(f"| {name} | {step} | " + variance_cells(result, tokens, copied, fresh, args.draws, width) + " |")
            margin_rows.append(f"| {name} | {step} | " + half_cells(margins, copied, fresh, args.draws) + " |")
            per_chain_of[name, step] = half_variances(tokens, copied, fresh), half_variances(margins, copied, fresh)
    reference = REFERENCE if REFERENCE in chosen else list(chosen)[-1]
    contrast_rows = [f"| {name} | {step} | " + contrast_cells(per_chain_of[name, step], per_chain_of[reference, step]) + " |"
                     for name in chosen if name != reference for step in STEPS]
    body = "\n".join([
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, CPU only (no GPU), 1 torch thread (other work ran at the same time). {args.chains} chains × "
        f"{args.draws} draws per head and checkpoint, {args.burnin} burn-in steps, lr 3e-5, nβ 30, γ 200, batch 16, "
        f"only the head's weights moving; {seconds:.0f} s in all. χ = −nβ·Cov(L, ℓ − L) per token of {args.probes} repeated "
        "sequences (L = the mean loss on 32 training sequences), averaged over the tokens predicted in the "
        "copied half and in the fresh half; ± is the batch-means standard error across chains (per-chain covariances), and z the "
        "difference over its own error (the two halves' errors are correlated: the difference's is computed from the run itself). "
        f"`python bench/induction_susceptibility.py {shlex.join(sys.argv[1:])}`",
        "",
        "| head | step | verdict | χ copied half | χ fresh half | copied − fresh | z | copied − fresh, first / second half of the draws |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Per-token posterior variance Var(ℓ_i) (the diagonal of `dvz.loss_kernel` on the same draws, = −BIF(z_i, z_i)), "
        "averaged over the same copied and fresh tokens; ± is the batch-means standard error across chains (per-chain "
        "variances; the ratio's by the delta method on the per-chain pairs), z the copied − fresh difference over its "
        "own error, the ratio from the first / second half of the draws, and the posterior mean loss of each half.",
        "",
        "| head | step | Var(ℓ) copied half | Var(ℓ) fresh half | copied − fresh (z) | ratio copied / fresh | ratio, first / second half of the draws | mean ℓ copied / fresh |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *variance_rows,
        "",
        "The loss level divided out: the posterior variance of each token's correct-token logit margin m_i = z_i[target] − "
        "mean_v z_i[v] (unchanged by adding a constant to all logits; ℓ_i's own variance carries a factor of order (1 − p_i)² that "
        "makes confidently predicted tokens move little whatever the perturbation), recorded at the same draws of the same "
        "run (one per-sample function returning ℓ and m side by side), averaged over the same halves; errors as above.",
        "",
        "| head | step | Var(m) copied half | Var(m) fresh half | copied − fresh (z) | ratio copied / fresh | ratio, first / second half of the draws | mean m copied / fresh |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *margin_rows,
        "",
        f"Head-specific contrast: each head's copied/fresh ratio over the reference head {reference}'s on the same tokens "
        "and checkpoint (a ratio of ratios; 1 = the same split as the reference). The heads' runs have independent chains, "
        "so the error combines the two ratios' delta-method errors in quadrature; z = (ratio of ratios − 1) / error.",
        "",
        "| head | step | Var(ℓ): ratio / reference ratio (z) | Var(m): ratio / reference ratio (z) |",
        "|---|---:|---:|---:|",
        *contrast_rows,
    ])
    print(body)
    if not args.no_write:
        write_section(f"{SECTION} — {args.section}" if args.section else SECTION, body)


def half_variances(tokens: np.ndarray, copied: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """Each chain's Var(ℓ_i) averaged over the copied and over the fresh tokens.

    Parameters
    ----------
    tokens : np.ndarray, shape (chains, draws, tokens)
    copied, fresh : np.ndarray of bool, shape (tokens,)

    Returns
    -------
    np.ndarray, shape (chains, 2): (copied, fresh) per chain.
    """
    variance = tokens.var(axis=1, ddof=1)  # each chain's loss-kernel diagonal, (chains, tokens)
    return np.stack([variance[:, copied].mean(axis=1), variance[:, fresh].mean(axis=1)], axis=1)


def ratio_with_error(per_chain: np.ndarray) -> tuple[float, float]:
    """The ratio of the chain-mean copied and fresh variances and its batch-means (delta-method) error.

    Parameters
    ----------
    per_chain : np.ndarray, shape (chains, 2)
    """
    copied, fresh = per_chain.mean(axis=0)
    ratio = copied / fresh
    linearised = (per_chain[:, 0] - ratio * per_chain[:, 1]) / fresh
    return ratio, linearised.std(ddof=1) / np.sqrt(len(per_chain))


def variance_cells(result, tokens: np.ndarray, copied: np.ndarray, fresh: np.ndarray, draws: int, width: int) -> str:
    """One table row's cells of the variance readout: each half's Var(ℓ), their difference, their ratio, split halves.

    Parameters
    ----------
    result : LLCResult
        One head and checkpoint, with the ``"repeated"`` observable.
    tokens : np.ndarray, shape (chains, draws, tokens)
        ℓ per token (the observable's ℓ columns) as float64.
    copied, fresh : np.ndarray of bool, shape (tokens,)
    draws : int
    width : int
        Predicted positions per sequence (the observable holds ℓ then m, each ``width`` wide, per sequence).
    """
    diagonal = np.diag(dvz.loss_kernel(result, "repeated").value)  # ℓ and m side by side per sequence
    sequences = result.observables["repeated"].shape[-1] // (2 * width)
    diagonal = diagonal.reshape(sequences, 2, width)[:, 0].ravel()  # ℓ's columns, (sequences · width,)
    per_chain = half_variances(tokens, copied, fresh)
    if not np.allclose(per_chain.mean(axis=0), [diagonal[copied].mean(), diagonal[fresh].mean()]):
        raise AssertionError("the per-chain variances do not average to the loss kernel's diagonal")
    return half_cells(tokens, copied, fresh, draws)


def half_cells(values: np.ndarray, copied: np.ndarray, fresh: np.ndarray, draws: int) -> str:
    """One table row's cells of a per-token variance readout: each half's Var, their difference, ratio, split halves, means.

    Parameters
    ----------
    values : np.ndarray, shape (chains, draws, tokens)
        A per-token observable (ℓ or the logit margin m) at every draw.
    copied, fresh : np.ndarray of bool, shape (tokens,)
    draws : int
    """
    per_chain = half_variances(values, copied, fresh)
    means, errors = per_chain.mean(axis=0), per_chain.std(axis=0, ddof=1) / np.sqrt(len(per_chain))
    difference = per_chain[:, 0] - per_chain[:, 1]
    difference_error = difference.std(ddof=1) / np.sqrt(len(difference))
    ratio, ratio_error = ratio_with_error(per_chain)
    early, late = (ratio_with_error(half_variances(values[:, part], copied, fresh))[0]
                   for part in (slice(None, draws // 2), slice(draws // 2, None)))
    return " | ".join([
        f"{means[0]:.2e} ± {errors[0]:.1e}", f"{means[1]:.2e} ± {errors[1]:.1e}",
        f"{difference.mean():+.2e} ± {difference_error:.1e} ({difference.mean() / difference_error:+.1f})",
        f"{ratio:.2f} ± {ratio_error:.2f}", f"{early:.2f} / {late:.2f}",
        f"{values[..., copied].mean():.3f} / {values[..., fresh].mean():.3f}",
    ])


def contrast_cells(head: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]) -> str:
    """A head's copied/fresh ratios over a reference head's, for Var(ℓ) and Var(m), with errors from the two runs.

    Parameters
    ----------
    head, reference : tuple of np.ndarray, each shape (chains, 2)
        The per-chain (copied, fresh) half variances of ℓ and of m.
    """
    cells = []
    for own, other in zip(head, reference):
        (a, a_error), (b, b_error) = ratio_with_error(own), ratio_with_error(other)
        value = a / b
        error = value * np.hypot(a_error / a, b_error / b)
        cells.append(f"{value:.2f} ± {error:.2f} ({(value - 1) / error:+.1f})")
    return " | ".join(cells)


if __name__ == "__main__":
    main()
