"""The verdict on a set of chains (Diagnostics) and the JSON form results are saved in."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from devinterp_viz.plotting import format_step_bias

BURNIN_DIVERGED = "diverged during burn-in"  # how every message says it (burnin_divergence_words)


def burnin_divergence_words(step: int, num_burnin_steps: int | None) -> str:
    """Where a chain diverged during burn-in, as reasons and next steps say it: "diverged during burn-in at step N of B"."""
    return f"{BURNIN_DIVERGED} at step {step}" + (f" of {num_burnin_steps}" if num_burnin_steps else "")


@dataclass
class Diagnostics:
    """Health of a set of SGMCMC chains, computed from their loss traces.

    Attributes
    ----------
    rhat : float
        Rank-normalised split R-hat of the loss traces across chains (Vehtari et al. 2021);
        NaN when there are too few draws.
    ess : float
        Bulk effective sample size of the loss traces, all chains together.
    mala_acceptance : np.ndarray, shape (chains,)
        Mean MALA acceptance probability per chain (Lau et al. 2023); NaN where the sampler
        has no Metropolis-adjusted counterpart (SGNHT).
    fraction_below_init : np.ndarray, shape (chains,)
        Fraction of each chain's draws whose loss lies below L(w*).
    divergent : np.ndarray of bool, shape (chains,)
        Chains whose loss became non-finite or exploded; excluded from the LLC mean.
    divergence_draw : np.ndarray of int, shape (chains,)
        First divergent draw of each chain, -1 where it never diverged.
    healthy : bool
        True when no failure was found (``status == "healthy"``); warnings do not make a run
        unhealthy. A healthy run with ``unchecked`` checks is healthy only as far as checked.
    reasons : list of str
        Failures, in plain words ("chain 3 diverged (exploded) at draw 41").
    warnings : list of str
        Things worth a look that do not by themselves invalidate the estimate.
    status : {"healthy", "unhealthy", "undefined"}
        "undefined" when w* is not a local minimum: the LLC does not exist there, whatever the
        chains did.
    causes : list of str
        The cause of each reason (``devinterp_viz.engine.diagnostics.CAUSES``), same order.
    next_step : dict
        ``{"cause", "text", "settings"}``: the one change to make next, with the settings to run
        with (empty when healthy).
    mcse : float
        Monte Carlo standard error of the estimate, from the effective sample size of all draws.
    step_bias : float
        Estimated step-size bias of the estimate (NaN when the sampler traces are missing).
    step_bias_se : float
        Standard error of ``step_bias`` across chains (NaN with one chain or no traces).
    llc : float
        The estimate the verdict judged (mean over the non-divergent chains), for the bias's share of it.
    descent : float
        ``nβ E[∇L(w*)·(w − w*)]``: the first-order part of the estimate, zero at a local minimum.
    unchecked : list of str
        Checks that could not run or could not tell, with why ("the step-size bias and equilibrium
        (the run's sampler traces are missing)", "step bias too noisy to tell: ..."); empty when every
        check ran and told. Results imported without the driver's sampler traces (``from_result`` of
        a loss trace, ``from_devinterp``) have them, and so do runs too short to tell a step bias over
        the limit from its noise.
    burnin_divergence_step : np.ndarray of int, shape (chains,)
        Burn-in step at which each divergent chain first went non-finite, -1 where it did not
        diverge during burn-in (or the run kept no burn-in trace).
    """

    rhat: float
    ess: float
    mala_acceptance: np.ndarray
    fraction_below_init: np.ndarray
    divergent: np.ndarray
    divergence_draw: np.ndarray
    healthy: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: str = ""
    causes: list[str] = field(default_factory=list)
    next_step: dict[str, Any] = field(default_factory=dict)
    mcse: float = float("nan")
    step_bias: float = float("nan")
    descent: float = float("nan")
    unchecked: list[str] = field(default_factory=list)
    step_bias_se: float = float("nan")
    llc: float = float("nan")
    burnin_divergence_step: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "healthy" if self.healthy else "unhealthy"
        if self.burnin_divergence_step is None or np.size(self.burnin_divergence_step) != np.size(self.divergent):
            self.burnin_divergence_step = np.full(np.size(self.divergent), -1, dtype=int)

    @property
    def label(self) -> str:
        """The status in words: ``status``, or "healthy as far as checked" when a check could not run."""
        return "healthy as far as checked" if self.healthy and self.unchecked else self.status

    @property
    def verdict(self) -> str:
        """One line: the label with what was not checked, the first failure or the warnings, for a badge or a log."""
        if self.healthy:
            text = self.label + (f": not checked: {'; '.join(self.unchecked)}" if self.unchecked else "")
            return text + (f" (warning: {self.warnings[0]})" if len(self.warnings) == 1 else
                           f" ({len(self.warnings)} warnings: {self.warnings[0]}; …)" if self.warnings else "")
        return f"{self.status}: {self.reasons[0]}"

    def __repr__(self) -> str:
        return (f"Diagnostics({self.verdict}; R-hat {self.rhat:.3f}, ESS {self.ess:.0f}, step bias {self.step_bias_text}, "
                f"{int(np.sum(self.divergent))}/{len(self.divergent)} chains divergent)")

    @property
    def burnin_message(self) -> str:
        """What a trace panel says when chains diverged during burn-in: the next step where it is about that
        (where, and the lr to try), else the reason; "" when no chain did."""
        return next((text for text in [self.next_step.get("text", ""), *self.reasons] if BURNIN_DIVERGED in text), "")

    @property
    def step_bias_text(self) -> str:
        """The step bias as every view writes it (``+0.41 ± 0.3 (5.3% of λ̂)``; :func:`~devinterp_viz.plotting.format_step_bias`)."""
        return format_step_bias(self.step_bias, self.step_bias_se, self.llc)

    def summary(self) -> str:
        """Several lines describing the chains' health, for printing."""
        lines = [
            f"verdict: {self.verdict}",
            f"R-hat {self.rhat:.3f} · bulk ESS {self.ess:.0f} · Monte Carlo error ±{self.mcse:.3g} (λ̂'s ± is it or the chains' spread, the larger) · "
            f"step bias {self.step_bias_text} · MALA acceptance {_fmt_mean(self.mala_acceptance)} · "
            f"draws below L(w*) {_fmt_mean(self.fraction_below_init, percent=True)} · "
            f"divergent chains {int(np.sum(self.divergent))}/{len(self.divergent)}",
        ]
        lines += [f"  failure: {r}" for r in self.reasons]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  not checked: {u}" for u in self.unchecked]
        if self.next_step:
            lines.append(f"  next step: {self.next_step['text']}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (arrays as lists)."""
        return {k: to_jsonable(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnostics:
        """Inverse of :meth:`to_dict` (results saved before ``unchecked`` existed said it in a warning)."""
        old = "the step-size bias and equilibrium were not checked: the run's sampler traces are missing"
        warnings = [w for w in data["warnings"] if w != old]
        unchecked = list(data.get("unchecked", ["the step-size bias and equilibrium (the run's sampler traces are "
                                                 "missing)"] if len(warnings) < len(data["warnings"]) else []))
        return cls(
            rhat=float(data["rhat"]),
            ess=float(data["ess"]),
            mala_acceptance=np.asarray(data["mala_acceptance"], dtype=float),
            fraction_below_init=np.asarray(data["fraction_below_init"], dtype=float),
            divergent=np.asarray(data["divergent"], dtype=bool),
            divergence_draw=np.asarray(data["divergence_draw"], dtype=int),
            healthy=bool(data["healthy"]),
            reasons=list(data["reasons"]),
            warnings=warnings,
            status=str(data.get("status", "")),
            causes=list(data.get("causes", [])),
            next_step=dict(data.get("next_step", {})),
            mcse=float(data.get("mcse", float("nan"))),
            step_bias=float(data.get("step_bias", float("nan"))),
            descent=float(data.get("descent", float("nan"))),
            unchecked=unchecked,
            step_bias_se=float(data.get("step_bias_se", float("nan"))),
            llc=float(data.get("llc", float("nan"))),
            burnin_divergence_step=np.asarray(data.get("burnin_divergence_step", []), dtype=int),
        )


def _fmt_mean(values: np.ndarray, percent: bool = False) -> str:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return "n/a"
    mean = float(finite.mean())
    return f"{100 * mean:.1f}%" if percent else f"{mean:.3f}"


def to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays (nested in dicts/lists) to plain JSON types."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return value  # json.dumps writes NaN/Infinity, which json.loads reads back
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
