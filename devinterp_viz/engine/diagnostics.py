"""Chain health: whether an LLC estimate can be trusted, why not, and the one setting to change next."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from devinterp_viz.engine.chain_statistics import DRIFT_T, divergence, drift_statistic, drift_threshold
from devinterp_viz.engine.convergence import bulk_ess, mcse_mean, split_rhat
from devinterp_viz.engine.estimator import llc_per_chain
from devinterp_viz.engine.verdict import Diagnostics, burnin_divergence_words
from devinterp_viz.plotting import fmt, format_step_bias

# Thresholds, stated once. Each was measured as a classifier on bench/known_answers.py (models
# whose finite-nβ answer is known exactly); bench/RESULTS.md has its confusion table.
STEP_BIAS_FAIL = 0.1  # estimated step-size bias above this fraction of the estimate
STEP_CURVATURE_FAIL = 0.05  # ε ā / 4 above this: the step is too large for the mean curvature
MALA_FAIL = 0.5  # mean MALA acceptance below this: the step is far too large (high dimension)
VIRIAL_DEFICIT = 0.3  # E[δ·∇U] below (1 − this)·d: the chains have not spread into the posterior
SUGGESTED_BURNIN_TIMES = 2.0  # burn-in suggested: this many localization times
PRACTICAL_BURNIN_DRAWS = 10  # a burn-in over this many times the drawing steps is impractical: raise lr instead
RHAT_WARN = 1.1  # split R-hat of the loss traces (Vehtari et al. 2021) above this: said, and in the error bar
ESS_FAIL = 5.0  # bulk ESS below this: the chains barely moved, so not even the error bar can be estimated
PRECISION_WARN = 0.1  # standard error above this fraction of the estimate: said, with how to tighten it
DESCENT_FAIL = 0.1  # the first-order descent term above this fraction of the curvature part
DRIFT_RELATIVE = 0.05  # a drift (chain_statistics.DRIFT_T) counts when it also moves the estimate by more than this fraction
ESTIMATE_SE = 3.0  # an estimate outside [0, d/2] by more than this many standard errors fails
BELOW_INIT_WARN = 0.5  # fraction of a chain's draws below L(w*)
NOISE_Z = 1.0  # a bias or descent counts when it exceeds its threshold by this many of its own standard errors
MAX_DRAWS_GROWTH = 4.0  # a smaller step asks for at most this many times the draws
BURNIN_LR_FACTOR = 0.1  # chains that diverge during burn-in: the step was far too large, so lr/10 next

# Causes of an untrustworthy estimate, in the order the next step attends to them.
NOT_A_MINIMUM, DIVERGED, STEP_TOO_LARGE, NOT_EQUILIBRATED, TOO_FEW_DRAWS = (
    "not_a_minimum", "diverged", "step_too_large", "not_equilibrated", "too_few_draws"
)
CAUSES = (NOT_A_MINIMUM, DIVERGED, STEP_TOO_LARGE, NOT_EQUILIBRATED, TOO_FEW_DRAWS)


@dataclass(frozen=True)
class Finding:
    """One reason an estimate cannot be trusted: its cause (one of :data:`CAUSES`) and words."""

    cause: str
    message: str


@dataclass(frozen=True)
class RunFacts:
    """What the verdict knows about the run that produced the traces (from its config).

    Missing settings (imported results) are None; checks that need them are skipped.
    """

    sampler: str | None
    lr: float | None
    localization: float | None
    num_burnin_steps: int | None
    num_steps_bw_draws: int
    num_params: int | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, num_params: int | None) -> RunFacts:
        config = config or {}

        def number(key: str) -> float | None:
            value = config.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        burnin = number("num_burnin_steps")
        return cls(
            sampler=config.get("sampler"),
            lr=number("lr"),
            localization=number("localization"),
            num_burnin_steps=None if burnin is None else int(burnin),
            num_steps_bw_draws=int(number("num_steps_bw_draws") or 1),
            num_params=num_params,
        )

    def localization_time(self) -> float | None:
        """2/(εγ): steps the localization needs to pull a free direction into equilibrium."""
        if not self.lr or not self.localization:
            return None
        return 2.0 / (self.lr * self.localization)


class StepBias(NamedTuple):
    """The two estimates of the step-size bias of an LLC estimate (see :func:`step_bias`), with
    their standard errors across chains, and the step against the mean curvature
    (``step_curvature`` = ε ā / 4); NaN where an estimate does not apply."""

    first_order: float
    first_order_se: float
    virial: float
    virial_se: float
    step_curvature: float = float("nan")

    @property
    def value(self) -> float:
        """The larger estimate (NaN when neither applies)."""
        return self._larger()[0]

    @property
    def value_se(self) -> float:
        """The standard error of :attr:`value` (NaN when it has none)."""
        return self._larger()[1]

    def _larger(self) -> tuple[float, float]:
        known = [(v, se) for v, se in ((self.first_order, self.first_order_se), (self.virial, self.virial_se)) if np.isfinite(v)]
        return max(known, key=lambda pair: pair[0]) if known else (float("nan"), float("nan"))


def step_bias(loss_trace: np.ndarray, nbeta: float, traces: Mapping[str, np.ndarray], facts: RunFacts) -> StepBias:
    """Estimated step-size bias of the LLC estimate, two ways.

    Parameters
    ----------
    loss_trace : np.ndarray, shape (chains, draws)
    nbeta : float
    traces : mapping
        The driver's ``virial``, ``stein`` and ``drift_sq`` traces, shape (chains, draws).
    facts : RunFacts

    Returns
    -------
    StepBias

    Notes
    -----
    With ``U = nβ L + γ/2 |δ|²`` and ``h = ε/2`` the time step of unadjusted Langevin dynamics,
    its stationary law is ``∝ exp(−U + h(|∇U|²/4 − ΔU/2) + O(h²))``, so to first order the bias
    of ``E[nβ L]`` is ``h (E[∇U·∇(nβL)]/2 − Cov(nβL, |∇U|²)/4)`` (integrating ΔU by parts against
    the posterior): ``(ε/4) nβ E[∇U·∇L] − (ε/8) Cov(nβ L, |∇U|²)``, from quantities every step
    computes. It holds while the step is small against every curvature; past that it can turn
    negative, which :func:`diagnose` reports as a step far too large. The second estimate uses
    the virial identity ``E_p[δ·∇U] = d``, exact for the posterior: the step inflates each stiff
    direction's variance, and with it the loss, and a direction held only by γ contributes
    ``1/(1 − εγ/4)`` under SGLD, so ``(E[δ·∇U] − d/(1 − εγ/4)) / 2`` estimates the excess of the
    estimate (exactly, for a quadratic loss) and stays right where the expansion fails. For
    samplers other than SGLD only the virial estimate applies, without the γ-direction term.

    ``step_curvature`` is ``ε ā / 4`` with ``ā = E|∇U|² / E[δ·∇U]``, the mean curvature of U
    the chains feel (for a quadratic U in equilibrium, the mean eigenvalue of its Hessian, γ
    included): each direction's variance is inflated by about ``ε a / 4``, which biases the
    estimate wherever the loss depends on that direction beyond second order, and which neither
    estimate above sees once the expansion fails.
    """
    missing = StepBias(*(float("nan"),) * 4)
    virial = traces.get("virial")
    if facts.lr is None or facts.localization is None or facts.num_params is None:
        return missing
    if virial is None or not np.isfinite(virial).all() or virial.shape[1] < 2:
        return missing
    free_direction, first_order = 1.0, np.full(virial.shape[0], np.nan)
    if facts.sampler == "sgld":
        free_direction = 1.0 / (1.0 - facts.lr * facts.localization / 4)
        stein, drift_sq = traces.get("stein"), traces.get("drift_sq")
        if stein is not None and drift_sq is not None and np.isfinite(stein).all() and np.isfinite(drift_sq).all():
            covariance = _within_chain_covariance(nbeta * loss_trace, drift_sq)
            first_order = facts.lr / 4 * nbeta * stein.mean(axis=1) - facts.lr / 8 * covariance
    excess = (virial.mean(axis=1) - facts.num_params * free_direction) / 2
    curvature = float("nan")
    drift_sq = traces.get("drift_sq")
    if drift_sq is not None and np.isfinite(drift_sq).all() and virial.mean() > 0:
        curvature = facts.lr * float(drift_sq.mean() / virial.mean()) / 4
    return StepBias(float(first_order.mean()), _standard_error(first_order), float(excess.mean()), _standard_error(excess),
                    curvature)


def diagnose(
    loss_trace: np.ndarray,
    init_loss: float,
    nbeta: float,
    mala_trace: np.ndarray,
    num_params: int | None = None,
    sampler_traces: Mapping[str, np.ndarray] | None = None,
    config: Mapping[str, Any] | None = None,
    burnin_divergence_step: np.ndarray | None = None,
) -> Diagnostics:
    """Judge a set of chains: is their LLC estimate right, and if not, what to change.

    Parameters
    ----------
    loss_trace : np.ndarray, shape (chains, draws)
    init_loss : float
        L(w*).
    nbeta : float
    mala_trace : np.ndarray, shape (chains, draws)
        MALA acceptance probabilities (NaN where undefined).
    num_params : int, optional
        Number of moving parameters d.
    sampler_traces : mapping of str to np.ndarray (chains, draws), optional
        The driver's ``virial``, ``stein``, ``drift_sq`` and ``descent`` traces
        (:data:`devinterp_viz.engine.driver.SAMPLER_TRACES`); checks that need a missing one are
        skipped and listed in ``Diagnostics.unchecked`` (the label then reads "healthy as far as
        checked").
    config : mapping, optional
        The run's settings (``sampler``, ``lr``, ``localization``, ``num_burnin_steps``, ...).
    burnin_divergence_step : np.ndarray of int, shape (chains,), optional
        First burn-in step at which each chain's loss was non-finite (-1: never); the verdict says so.

    Returns
    -------
    Diagnostics
        ``status`` is "healthy", "unhealthy" or "undefined" (w* is not a local minimum, so
        the LLC does not exist there); ``next_step`` names one change of settings.

    Notes
    -----
    Failures: a divergent chain; w* not a local minimum (the first-order descent term
    ``nβ ∇L(w*)·δ`` is over ``DESCENT_FAIL`` of the curvature part, or the estimate is
    significantly negative); a step-size bias over ``STEP_BIAS_FAIL`` of the estimate
    (:func:`step_bias`), a mean MALA acceptance below ``MALA_FAIL``, or an estimate above d/2;
    chains that have not spread into the posterior (virial below ``1 − VIRIAL_DEFICIT`` of d), or
    still rising at the end;
    a bulk ESS below ``ESS_FAIL``. Slow mixing (R-hat above ``RHAT_WARN``) and a standard error
    above ``PRECISION_WARN`` of the estimate are warnings: they widen the error bar, which
    stays honest (bench/known_answers.py). The step is judged by the larger step-bias
    estimate (over ``STEP_BIAS_FAIL`` of the estimate), the step against the mean curvature
    (``STEP_CURVATURE_FAIL``) and, in high dimension, the MALA acceptance.
    """
    traces = {k: np.asarray(v, dtype=float) for k, v in (sampler_traces or {}).items()}
    facts = RunFacts.from_config(config, num_params)
    chains, draws = loss_trace.shape
    first_bad = divergence(loss_trace, init_loss, nbeta, num_params)
    divergent = first_bad >= 0
    good = loss_trace[~divergent]
    good_traces = {k: v[~divergent] for k, v in traces.items() if v.shape == loss_trace.shape}
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(loss_trace).sum(axis=1)  # of the finite draws; NaN for a chain that has none
        below = np.where(finite > 0, (loss_trace < init_loss).sum(axis=1) / np.maximum(finite, 1), np.nan)
        mala_mean = np.array([_nanmean(row) for row in mala_trace]) if draws else np.full(chains, np.nan)
    rhat = split_rhat(good) if good.shape[0] >= 2 else float("nan")
    ess = bulk_ess(good) if good.shape[0] >= 1 else float("nan")
    mcse = nbeta * mcse_mean(good) if good.size else float("nan")
    findings: list[Finding] = []
    warnings: list[str] = []
    unchecked: list[str] = []
    llc, descent, bias = float("nan"), float("nan"), StepBias(*(float("nan"),) * 4)

    if draws == 0:
        findings.append(Finding(TOO_FEW_DRAWS, "no draws were recorded: let the chains run longer before stopping"))
    in_burnin = np.full(chains, -1) if burnin_divergence_step is None else np.asarray(burnin_divergence_step, dtype=int)
    in_burnin = np.where(divergent, in_burnin, -1)
    findings += _divergence_findings(loss_trace, first_bad, in_burnin, facts.num_burnin_steps)
    if good.shape[0] and draws:
        per_chain = llc_per_chain(good, init_loss, nbeta)
        llc = float(per_chain.mean())
        se = _standard_error(per_chain)
        descent = _judge_descent(llc, good_traces, findings)
        _judge_estimate(llc, se, num_params, findings)
        bias = step_bias(good, nbeta, good_traces, facts)
        _judge_step(llc, bias, mala_mean[~divergent], findings, unchecked)
        _judge_equilibrium(good_traces, facts, findings)
        _judge_drift(good, nbeta, llc, findings, warnings)
        _judge_mixing(llc, rhat, ess, max(mcse, se) if np.isfinite(se) else mcse, findings, warnings)
        if "virial" not in good_traces or not np.isfinite(good_traces["virial"]).all():
            unchecked.append("the step-size bias and equilibrium (the run's sampler traces are missing)")
    for chain in np.flatnonzero(~divergent & (below > BELOW_INIT_WARN)):
        warnings.append(
            f"chain {chain} spent {100 * below[chain]:.0f}% of its draws below L(w*): w* may not be a "
            "local minimum, or nβ is too small for the minibatch noise"
        )
    causes = {f.cause for f in findings}
    status = "healthy" if not findings else ("undefined" if NOT_A_MINIMUM in causes else "unhealthy")
    return Diagnostics(
        rhat=float(rhat),
        ess=float(ess),
        mala_acceptance=mala_mean,
        fraction_below_init=below,
        divergent=divergent,
        divergence_draw=first_bad,
        healthy=status == "healthy",
        reasons=[f.message for f in findings],
        warnings=warnings,
        status=status,
        causes=[f.cause for f in findings],
        next_step=next_step(findings, facts, bias=bias.value, llc=llc, draws=draws, curvature=bias.step_curvature,
                            burnin_step=int(in_burnin[in_burnin >= 0].min()) if (in_burnin >= 0).any() else -1),
        mcse=float(mcse),
        step_bias=float(bias.value),
        descent=float(descent),
        unchecked=unchecked,
        step_bias_se=float(bias.value_se),
        llc=llc,
        burnin_divergence_step=in_burnin,
    )


def _divergence_findings(loss_trace: np.ndarray, first_bad: np.ndarray, burnin_step: np.ndarray,
                         num_burnin_steps: int | None) -> list[Finding]:
    """A headline when several chains diverged, then each divergent chain: where (burn-in step or draw) and how."""
    divergent = np.flatnonzero(first_bad >= 0)
    where = {c: burnin_divergence_words(burnin_step[c], num_burnin_steps).removeprefix("diverged ") if burnin_step[c] >= 0
             else f"at draw {first_bad[c]}" for c in divergent}
    findings = []
    if divergent.size > 1:  # the headline counts them (the first: in burn-in, else by draw); each chain's own line follows
        order = np.where(burnin_step[divergent] >= 0, burnin_step[divergent] - np.iinfo(np.int32).max, first_bad[divergent])
        first = int(divergent[np.argmin(order)])
        findings.append(Finding(DIVERGED, f"{divergent.size} of {loss_trace.shape[0]} chains diverged, the first "
                                          f"(chain {first}) {where[first]}"))
    for chain in divergent:
        kind = "became non-finite" if not np.isfinite(loss_trace[chain, first_bad[chain]]) else "exploded"
        findings.append(Finding(DIVERGED, f"chain {chain} diverged ({kind}) {where[chain]}"))
    return findings


def next_step(findings: list[Finding], facts: RunFacts, *, bias: float, llc: float, draws: int,
              burnin_step: int = -1, curvature: float = float("nan")) -> dict[str, Any]:
    """The one change of settings that addresses the most basic of ``findings``.

    ``burnin_step``: the first burn-in step at which a divergent chain went non-finite (-1: none); then lr/10.
    ``curvature``: the measured step against the mean curvature, ε ā / 4; a too-large step is lowered
    at least to half of ``STEP_CURVATURE_FAIL`` by it, so one run gets there instead of a chain of
    fixed factors.

    Returns
    -------
    dict
        ``{"cause": ..., "text": ..., "settings": {...}}`` — ``settings`` holds the values to run
        with next (``lr``, ``num_burnin_steps``, ``num_draws``; empty when no setting helps);
        an empty dict when nothing needs to change.
    """
    if not findings:
        return {}
    cause = min((f.cause for f in findings), key=CAUSES.index)
    if cause == NOT_A_MINIMUM:
        return {
            "cause": cause,
            "text": "w* is not a local minimum, so the LLC is undefined here: estimate it at a checkpoint "
            "where training has converged (or train this one further)",
            "settings": {},
        }
    if cause == DIVERGED and burnin_step >= 0:
        return _lower_lr(cause, BURNIN_LR_FACTOR, facts, draws, burnin_divergence_words(burnin_step, facts.num_burnin_steps))
    if cause in (DIVERGED, STEP_TOO_LARGE):
        factor = 0.25 if cause == DIVERGED else _step_factor(bias, llc)
        if np.isfinite(curvature) and curvature > STEP_CURVATURE_FAIL:
            factor = min(factor, max(0.5 * STEP_CURVATURE_FAIL / curvature, 1e-3))
        return _lower_lr(cause, factor, facts, draws)
    if cause == NOT_EQUILIBRATED:
        burnin = _suggested_burnin(facts, facts.lr)
        if burnin is None:
            return {"cause": cause, "text": "add burn-in steps", "settings": {}}
        why = "2 × 2/(lr·γ), the time the localization needs to pull free directions into equilibrium"
        if facts.num_burnin_steps and facts.num_burnin_steps >= burnin:  # that was not enough: twice as long
            burnin, why = 2 * facts.num_burnin_steps, "twice the burn-in that was not enough"
        cap = PRACTICAL_BURNIN_DRAWS * max(draws, 1) * facts.num_steps_bw_draws
        if burnin > cap:  # the equilibration time scales as 1/lr: a larger step gets there within the cap
            scale = 10.0 ** (math.floor(math.log10(facts.lr * burnin / cap)) - 1)
            lr = math.ceil(facts.lr * burnin / cap / scale) * scale  # two significant digits, rounded up
            lr = float(f"{lr:.2g}")
            settings = {"lr": lr, "num_burnin_steps": int(math.ceil(burnin * facts.lr / lr))}
            return {"cause": cause, "settings": settings,
                    "text": f"raise lr to {lr:.2g} with {settings['num_burnin_steps']} burn-in steps: at lr {facts.lr:.2g} "
                            f"the chains would need {burnin} burn-in steps ({why}), more than {PRACTICAL_BURNIN_DRAWS}× "
                            "the steps spent drawing; the verdict of the larger step then checks its bias (calibrate finds the "
                            "largest trustworthy step)"}
        return {"cause": cause, "text": f"add burn-in: {burnin} steps ({why})", "settings": {"num_burnin_steps": burnin}}
    more = 4 * max(draws, 1)
    return {"cause": cause, "text": f"sample more draws: {more} per chain", "settings": {"num_draws": more}}


def _lower_lr(cause: str, factor: float, facts: RunFacts, draws: int, words: str | None = None) -> dict[str, Any]:
    """``words``: what went wrong (default: the chains diverged, or the step biases the estimate)."""
    words = words or ("the chains diverged" if cause == DIVERGED else "the step biases the estimate")
    divisor = f" (lr/{1 / factor:.0f})" if factor == BURNIN_LR_FACTOR else ""
    if facts.lr is None:
        return {"cause": cause, "text": f"{words}: lower lr" + (f" (e.g. lr/{1 / factor:.0f})" if divisor else ""), "settings": {}}
    lr = float(f"{facts.lr * factor:.2g}")
    settings: dict[str, Any] = {"lr": lr}
    burnin = _suggested_burnin(facts, lr)
    if burnin is not None:
        settings["num_burnin_steps"] = max(burnin, facts.num_burnin_steps or 0)
    text = f"{words}: lower lr to {lr:.2g}{divisor}"
    if burnin is not None:
        text += f" with {settings['num_burnin_steps']} burn-in steps"
    if cause != DIVERGED:  # a diverged run says nothing about how long to sample: draws stay as they were
        settings["num_draws"] = int(math.ceil(max(draws, 1) * min(facts.lr / lr, MAX_DRAWS_GROWTH)))
        text += (f" and {settings['num_draws']} draws (more draws at the smaller step, at most "
                 f"{MAX_DRAWS_GROWTH:g}× as many)")
    return {"cause": cause, "text": text, "settings": settings}


def _step_factor(bias: float, llc: float) -> float:
    """lr multiplier that should bring a bias that is linear in lr to half of ``STEP_BIAS_FAIL``."""
    if not (np.isfinite(bias) and np.isfinite(llc)) or llc == 0 or bias <= 0:
        return 0.25
    return float(np.clip(0.5 * STEP_BIAS_FAIL * abs(llc) / bias, 0.05, 0.5))


def rule_burnin(lr: float, localization: float) -> int:
    """The burn-in rule ``2 × 2/(lr·γ)``: the localization time, twice (0 without localization)."""
    if not localization:
        return 0
    return int(math.ceil(round(SUGGESTED_BURNIN_TIMES * 2.0 / (lr * localization), 6)))  # 4/(1e-7·100) is 400000


def _suggested_burnin(facts: RunFacts, lr: float | None) -> int | None:
    return None if lr is None or not facts.localization else rule_burnin(lr, facts.localization)


def _nanmean(row: np.ndarray) -> float:
    finite = row[np.isfinite(row)]
    return float(finite.mean()) if finite.size else float("nan")


def _standard_error(per_chain: np.ndarray) -> float:
    return float(per_chain.std(ddof=1) / np.sqrt(per_chain.size)) if per_chain.size > 1 else float("nan")


def _within_chain_covariance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Covariance of two (chains, draws) traces within each chain, shape (chains,)."""
    return ((a - a.mean(axis=1, keepdims=True)) * (b - b.mean(axis=1, keepdims=True))).mean(axis=1)


def _judge_descent(llc: float, traces: Mapping[str, np.ndarray], findings: list[Finding]) -> float:
    """The descent term ``nβ E[∇L(w*)·δ]`` in LLC units; a finding when it is a large part of the estimate."""
    trace = traces.get("descent")
    if trace is None or not np.isfinite(trace).all() or trace.shape[1] == 0:
        return float("nan")
    per_chain = trace.mean(axis=1)
    descent = float(per_chain.mean())
    noise = NOISE_Z * (_standard_error(per_chain) if per_chain.size > 1 else 0.0)
    curvature = llc - descent  # λ̂ = descent + curvature part, to second order
    if -descent - noise > DESCENT_FAIL * max(abs(curvature), 1e-12):
        findings.append(Finding(
            NOT_A_MINIMUM,
            f"w* is not a local minimum: the chains descend along ∇L(w*) (first-order term {descent:.3g} "
            f"against {curvature:.3g} from curvature), so the estimate is not a learning coefficient",
        ))
    return descent


def _judge_estimate(llc: float, se: float, num_params: int | None, findings: list[Finding]) -> None:
    """Estimates below 0 or above d/2 by more than ``ESTIMATE_SE`` standard errors."""
    margin = ESTIMATE_SE * (se if np.isfinite(se) else 0.0)
    if llc + margin < 0 and not any(f.cause == NOT_A_MINIMUM for f in findings):
        findings.append(Finding(
            NOT_A_MINIMUM,
            f"the estimate {llc:.3g} is negative: the chains found lower loss than L(w*), so w* is not a local minimum",
        ))
    if num_params is not None and llc - margin > num_params / 2:
        findings.append(Finding(
            STEP_TOO_LARGE, f"the estimate {llc:.3g} exceeds d/2 = {num_params / 2:g}, impossible for the posterior"
        ))


def _judge_step(llc: float, bias: StepBias, mala_mean: np.ndarray, findings: list[Finding], unchecked: list[str]) -> None:
    """Step-size bias (:func:`step_bias`) and, in high dimension, a low MALA acceptance; a bias over
    the limit that is within its own noise is a check that could not tell (``unchecked``: a short run
    cannot tell yet, so the run is healthy only as far as checked)."""
    scale = STEP_BIAS_FAIL * max(abs(llc), 1e-12)
    significant = [
        value for value, se in ((bias.first_order, bias.first_order_se), (bias.virial, bias.virial_se))
        if np.isfinite(value) and value - NOISE_Z * np.nan_to_num(se) > scale
    ]
    noisy = [(value, se) for value, se in ((bias.first_order, bias.first_order_se), (bias.virial, bias.virial_se))
             if np.isfinite(value) and value > scale]
    if significant:
        found = max(significant)
        beyond = found > abs(llc)  # a first-order estimate over the estimate itself: only its sign and size class hold
        findings.append(Finding(
            STEP_TOO_LARGE,
            f"the step biases the estimate by about +{fmt(found, 2)} ({100 * found / max(abs(llc), 1e-12):.0f}% of it)"
            + ("; a bias this large is beyond the first-order expansion, so read it as 'far too large'" if beyond else ""),
        ))
    elif noisy:
        value, se = max(noisy, key=lambda pair: pair[0])
        unchecked.append(f"step bias too noisy to tell: its estimate {format_step_bias(value, se, float('nan'))} cannot say "
                         f"whether it is over the limit of {fmt(scale, 2)} ({100 * STEP_BIAS_FAIL:.0f}% of λ̂); sample "
                         "longer (more draws) to tell whether the step is too large")
    elif np.isfinite(bias.first_order) and bias.first_order + NOISE_Z * np.nan_to_num(bias.first_order_se) < -scale:
        findings.append(Finding(
            STEP_TOO_LARGE,
            "the step is too large for its bias to be estimated (the first-order expansion gives "
            f"{bias.first_order:.3g}): the estimate is not reliable",
        ))
    if np.isfinite(bias.step_curvature) and bias.step_curvature > STEP_CURVATURE_FAIL:
        findings.append(Finding(
            STEP_TOO_LARGE,
            f"the step is large against the curvature the chains feel (ε·ā/4 = {bias.step_curvature:.2f}, "
            f"above {STEP_CURVATURE_FAIL:g}): every direction's spread is inflated by about that fraction",
        ))
    finite = mala_mean[np.isfinite(mala_mean)]
    if finite.size and finite.mean() < MALA_FAIL:
        findings.append(Finding(
            STEP_TOO_LARGE, f"MALA acceptance is {finite.mean():.2f} (< {MALA_FAIL}): the step is far too large"
        ))


def _judge_equilibrium(traces: Mapping[str, np.ndarray], facts: RunFacts, findings: list[Finding]) -> None:
    """Chains that have not spread into the posterior: the virial ``E[δ·∇U]`` far below d.

    Measured on bench/known_answers.py: a deficit below ``1 − VIRIAL_DEFICIT`` marks inaccurate runs
    whatever the burn-in was (a rule that forgave it after one localization time 2/(εγ) let
    slowly mixing singular directions through).
    """
    virial = traces.get("virial")
    if virial is None or not np.isfinite(virial).all() or not facts.num_params or virial.shape[1] == 0:
        return
    ratio = float(virial.mean()) / facts.num_params
    if ratio < 1 - VIRIAL_DEFICIT:
        time = facts.localization_time()
        burned = "" if time is None or facts.num_burnin_steps is None else (
            f", after {facts.num_burnin_steps} burn-in steps (the rule 2 × 2/(lr·γ) asks for "
            f"{_suggested_burnin(facts, facts.lr)})")
        findings.append(Finding(
            NOT_EQUILIBRATED,
            f"the chains have not yet spread into the posterior: E[δ·∇U] is {100 * ratio:.0f}% of the "
            f"{facts.num_params} it equals in equilibrium{burned}",
        ))


def _judge_drift(good: np.ndarray, nbeta: float, llc: float, findings: list[Finding], warnings: list[str]) -> None:
    rise, t = drift_statistic(good, nbeta)
    if not np.isfinite(rise) or abs(rise) <= DRIFT_RELATIVE * max(abs(llc), 1e-12):
        return
    threshold = drift_threshold(good.shape[0])
    if t > threshold:
        findings.append(Finding(
            NOT_EQUILIBRATED,
            f"the loss is still rising at the end of the chains (the estimate grew by {rise:.3g} over the last quarter)",
        ))
    elif t > DRIFT_T:
        warnings.append(
            f"the estimate grew by {rise:.3g} over the last quarter, which {good.shape[0]} chains cannot tell "
            "from noise: run 4 or more chains to judge whether they have settled"
        )


def _judge_mixing(llc: float, rhat: float, ess: float, se: float, findings: list[Finding], warnings: list[str]) -> None:
    """Chains that barely moved fail; slow mixing and a wide error bar are said, not failed.

    Unmixed chains widen the standard error (the larger of the Monte Carlo error from all draws
    and the spread of the chain means), and bench/known_answers.py measured that estimates stay
    within two of those standard errors of the truth: the error bar carries the uncertainty.
    """
    if np.isfinite(ess) and ess < ESS_FAIL:
        findings.append(Finding(TOO_FEW_DRAWS, f"bulk ESS is {ess:.1f}: the chains barely moved, so not even the error bar can be estimated"))
    if np.isfinite(rhat) and rhat > RHAT_WARN:
        warnings.append(f"split R-hat is {rhat:.2f}: the chains have not fully mixed (their disagreement is in the error bar)")
    if np.isfinite(se) and se > PRECISION_WARN * max(abs(llc), 1e-12):
        warnings.append(f"the estimate is imprecise: ±{se:.2g} ({100 * se / max(abs(llc), 1e-12):.0f}% of it); sample more draws or chains to tighten it")
