"""Sampler calibration: sweep lr against nβ or γ, refine around the accurate region, recommend a confirmed setting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from devinterp_viz.engine.diagnostics import (
    DIVERGED,
    NOISE_Z,
    NOT_EQUILIBRATED,
    STEP_BIAS_FAIL,
    STEP_TOO_LARGE,
    rule_burnin,
)
from devinterp_viz.engine.progress import Stop, progress_bar, stop_requested
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.engine.settings import SamplerSettings

AGREE_SE = 2.0  # a confirmation agrees when within this many combined standard errors ...
INFORMATIVE_SE = 0.15  # ... and that comparison counts only when the combined SE is at most this fraction of λ̂
REFERENCE_ESS = 20.0  # a grid cell is compared against only with at least this bulk ESS ...
REFERENCE_RHAT = 1.2  # ... and split R-hat at most this (the verdict warns above RHAT_WARN; this is far past it)
BIAS_REJECT_Z = 2.0  # a step bias rejects a confirmation only when over the limit by this many of its own SEs
PREFERRED_BIAS = 0.5 * STEP_BIAS_FAIL  # recommend steps whose estimated bias is below this fraction
REFINE_FACTOR = 10 ** (1 / 3)  # refinement fills a decade with lrs this factor apart
MAX_BURNIN_DRAWS = 4  # a grid cell's burn-in is capped at this many times the steps spent drawing
TARGET_PRECISION = 0.05  # the recommendation draws enough for a standard error this fraction of λ̂ ...
MAX_DRAWS_FACTOR = 10  # ... but at most this many times the grid's draws
#: The settings a grid can sweep against lr, and the keyword of :func:`calibrate` giving the values.
AXES = {"nbeta": "nbetas", "localization": "localizations"}


@dataclass
class CalibrationResult:
    """A grid of LLC estimates over (value × lr), filled in as cells finish, and a recommendation.

    The lr axis grows as the calibration refines: every lr tried, from the user's grid or in
    between, is a column.

    Attributes
    ----------
    axis : {"nbeta", "localization"}
        The hyperparameter swept against lr.
    values : np.ndarray, shape (n_values,)
        The nβ or γ values (rows of the grid).
    cells : dict
        ``(row index, lr) -> LLCResult`` of every computed cell.
    user_lrs : np.ndarray
        The lrs the user asked for (the others came from refinement).
    recommended : dict or None
        ``{"lr", axis, "num_burnin_steps", "num_draws", "llc", "llc_se", "confirmed_llc",
        "confirmed_se", "confirmed", "reasons"}``: the settings to use (``llc`` is the grid cell's
        estimate, ``confirmed_llc`` that of the fresh-seed run at these settings; ``confirmed`` is
        False when that run's comparison was too imprecise to tell, which ``reasons`` says). None when no cell
        qualifies (``recommendation_reasons`` says why).
    confirmation : LLCResult or None
        The fresh-seed re-run of the recommended setting.
    rejected : list of dict
        Every confirmation that did not hold up, in the order tried: ``{"lr", axis, "llc", "llc_se"
        (the check run's), "reference", "reference_llc", "reference_se" (what it was compared
        with: "grid cell" or "second check"), "reason"}``.
    partial : bool
        True when the calibration was stopped before it finished.
    """

    axis: str
    values: np.ndarray
    user_lrs: np.ndarray
    cells: dict = field(default_factory=dict, repr=False)
    recommended: dict | None = None
    recommendation_reasons: list[str] = field(default_factory=list)
    confirmation: LLCResult | None = field(default=None, repr=False)
    rejected: list[dict] = field(default_factory=list)
    partial: bool = False

    # ------------------------------------------------------------------ the grid
    @property
    def lrs(self) -> np.ndarray:
        """Every lr tried, sorted, shape (n_lr,)."""
        return np.array(sorted({float(lr) for lr in self.user_lrs} | {lr for _, lr in self.cells}))

    @property
    def results(self) -> dict[tuple[int, int], LLCResult]:
        """``(i, j) -> LLCResult`` with j the column of :attr:`lrs`."""
        column = {lr: j for j, lr in enumerate(self.lrs)}
        return {(i, column[lr]): res for (i, lr), res in self.cells.items()}

    def _grid(self, value: Callable[[LLCResult], Any], fill: Any = np.nan, dtype: Any = float) -> np.ndarray:
        out = np.full((self.values.size, self.lrs.size), fill, dtype=dtype)
        for (i, j), res in self.results.items():
            out[i, j] = value(res)
        return out

    @property
    def llc_mean(self) -> np.ndarray:
        """Estimates, shape (n_values, n_lr); NaN where not computed."""
        return self._grid(lambda r: r.llc_mean)

    @property
    def llc_std(self) -> np.ndarray:
        """Standard deviations across chains, shape (n_values, n_lr)."""
        return self._grid(lambda r: r.llc_std)

    @property
    def llc_se(self) -> np.ndarray:
        """Standard errors of the estimates, shape (n_values, n_lr)."""
        return self._grid(lambda r: r.llc_se)

    @property
    def healthy(self) -> np.ndarray:
        """Verdicts, bool (n_values, n_lr); False where not computed."""
        return self._grid(lambda r: r.diagnostics.healthy, fill=False, dtype=bool)

    @property
    def computed(self) -> np.ndarray:
        """Bool (n_values, n_lr): which cells have a result."""
        return self._grid(lambda r: True, fill=False, dtype=bool)

    @property
    def reasons(self) -> list[list[list[str]]]:
        """``reasons[i][j]``: the failures of cell (i, j) in words (``["not computed"]`` where none ran)."""
        out = [[["not computed"] for _ in self.lrs] for _ in self.values]
        for (i, j), res in self.results.items():
            out[i][j] = list(res.diagnostics.reasons)
        return out

    @property
    def draws(self) -> np.ndarray:
        """Draws per chain behind each cell, int (n_values, n_lr); 0 where not computed."""
        return self._grid(lambda r: r.num_draws, fill=0, dtype=int)

    @property
    def burnin(self) -> np.ndarray:
        """Burn-in steps behind each cell, int (n_values, n_lr); 0 where not computed."""
        return self._grid(lambda r: int(r.config.get("num_burnin_steps", 0)), fill=0, dtype=int)

    def cell_settings(self, i: int, j: int) -> dict[str, Any]:
        """The setting changes that rerun cell (value ``i``, lr column ``j``): its lr, value and burn-in."""
        if not (0 <= i < self.values.size and 0 <= j < self.lrs.size):
            raise ValueError(f"cell ({i}, {j}) is outside the {self.values.size}×{self.lrs.size} grid")
        return {"lr": float(self.lrs[j]), self.axis: float(self.values[i]), "num_burnin_steps": int(self.burnin[i, j])}

    @property
    def recommended_settings(self) -> dict[str, Any] | None:
        """The recommendation as setting changes (lr, the swept value, burn-in, draws); None without one."""
        if self.recommended is None:
            return None
        return {name: value for name, value in self.recommended.items() if name in SamplerSettings.names()}

    # ------------------------------------------------------------------ output
    def __repr__(self) -> str:
        rec = self.recommended
        pick = f"recommended lr={rec['lr']:.3g}, {self.axis}={rec[self.axis]:.3g}" if rec else "no recommendation"
        return (f"CalibrationResult({self.axis} × lr: {len(self.cells)} cells over {self.values.size} × "
                f"{self.lrs.size}, {int(self.healthy.sum())} healthy, {pick}{', partial' if self.partial else ''})")

    def to_pandas(self):
        """One row per computed cell: lr, the swept value, estimate, std, health, burn-in, draws, reasons."""
        import pandas as pd

        rows = [
            {
                "lr": float(lr),
                self.axis: float(self.values[i]),
                "llc_mean": float(res.llc_mean),
                "llc_std": float(res.llc_std),
                "llc_se": float(res.llc_se),
                "healthy": bool(res.diagnostics.healthy),
                "num_burnin_steps": int(res.config.get("num_burnin_steps", 0)),
                "draws": int(res.num_draws),
                "reasons": "; ".join(res.diagnostics.reasons),
            }
            for (i, lr), res in sorted(self.cells.items())
        ]
        return pd.DataFrame(rows)

    def plot(self):
        """Heatmap of the grid (see :func:`devinterp_viz.plotting.plot_calibration`)."""
        from devinterp_viz.plotting import plot_calibration

        return plot_calibration(self)

    def summary(self) -> str:
        """Lines: the count of healthy cells, those that were no candidates and why, every rejected
        confirmation (its value, SE and reason), and the recommendation or why there is none."""
        healthy = int(self.healthy.sum())
        lines = [f"calibration over lr × {self.axis}: {healthy} of {len(self.cells)} computed cells healthy"]
        unfit = [(i, lr, why) for (i, lr), res in sorted(self.cells.items())
                 if res.diagnostics.healthy and (why := _unfit_reference(res))]
        if unfit:
            lines.append(f"healthy cells that cannot confirm themselves ({len(unfit)}; two fresh runs would instead):")
            lines += [f"  lr={lr:.3g}, {self.axis}={self.values[i]:.3g}: {why}" for i, lr, why in unfit]
        for r in self.rejected:
            lines.append(f"rejected lr={r['lr']:.3g}, {self.axis}={r[self.axis]:.3g}: check λ̂ = {r['llc']:.4g} ± "
                         f"{r['llc_se']:.2g} vs {r['reference']} {r['reference_llc']:.4g} ± {r['reference_se']:.2g}: "
                         f"{r['reason']}")
        if self.recommended is not None:
            rec = self.recommended
            lines.append(
                f"recommended: lr={rec['lr']:.3g}, {self.axis}={rec[self.axis]:.3g}, "
                f"num_burnin_steps={rec['num_burnin_steps']}, num_draws={rec['num_draws']} "
                f"(λ̂ = {rec['llc']:.4g} ± {rec['llc_se']:.2g}; "
                f"{'confirmed' if rec.get('confirmed', True) else 'not confirmed, check'} {rec['confirmed_llc']:.4g})"
            )
            lines += [f"  {reason}" for reason in rec["reasons"]]
        else:
            lines.append("no recommendation:")
            lines += [f"  {reason}" for reason in self.recommendation_reasons]
        return "\n".join(lines)


def calibrate(
    model,
    data,
    loss_fn,
    *,
    lrs,
    nbetas=None,
    localizations=None,
    settings: SamplerSettings | None = None,
    refine: bool = True,
    confirm: bool = True,
    max_burnin_steps: int | None = None,
    on_cell: Callable[[CalibrationResult, int, float], None] | None = None,
    stop: Stop = None,
    progress: bool = True,
    **estimate_kwargs: Any,
) -> CalibrationResult:
    """Find an lr (and nβ or γ) at which the LLC estimate is accurate, starting from a coarse grid.

    1. Every cell of the user's grid runs with its own seed and a burn-in of
       ``2 × 2/(lr·γ)`` steps (the time the localization needs to pull free directions into
       equilibrium; at least any ``num_burnin_steps`` given, at most ``max_burnin_steps``), and
       is judged by the verdict (:func:`devinterp_viz.engine.diagnostics.diagnose`).
    2. ``refine``: in each row, lrs a factor ``10^(1/3)`` apart are added between the largest
       healthy lr and the next larger one (where the step became too large), or, when no cell
       was healthy, between the last lr whose step was too large and the first whose chains had
       not equilibrated.
    3. The recommendation is, in the row with the most healthy cells (healthy as far as checked
       included), the largest healthy lr whose estimated step-size bias is under
       ``PREFERRED_BIAS`` of its estimate (else the largest healthy one), with the full burn-in
       its localization time asks for (uncapped) and draws enough for a standard error near
       ``TARGET_PRECISION`` of the estimate (at most ``MAX_DRAWS_FACTOR`` times the grid's).
       ``confirm``: it is run at those settings with a fresh seed and kept only if that run is
       healthy (a step bias over the limit by less than ``BIAS_REJECT_Z`` of its own standard
       errors does not reject it) and agrees with the grid cell within ``AGREE_SE`` combined
       standard errors. The grid cell counts as a reference only if its burn-in met the rule
       (not capped), its bulk ESS is at least ``REFERENCE_ESS``, its R-hat at most
       ``REFERENCE_RHAT`` and the comparison is informative (combined SE at most
       ``INFORMATIVE_SE`` of λ̂); otherwise a second fresh-seed check at the same settings is
       run and the two checks are compared on the same terms (when even they are too imprecise to
       tell, the recommendation stands with ``confirmed`` False and says so: imprecision is no
       evidence against a setting). A rejected candidate is listed in ``rejected`` and the next
       one is tried, confirmed on the same terms.

    Parameters
    ----------
    model, data, loss_fn
        As for :func:`devinterp_viz.estimate_llc`.
    lrs : sequence of float
        Step sizes to start from (a decade apart is enough).
    nbetas, localizations : sequence of float
        Exactly one of them: the rows of the grid. The other hyperparameter is taken from
        ``estimate_kwargs`` (or its default).
    settings : SamplerSettings, optional
        The settings of every cell but the swept ones (lr, the axis, burn-in); cell k runs with
        seed ``settings.seed + k`` (independent chains in every cell).
    refine, confirm : bool
    max_burnin_steps : int, optional
        Cap on a cell's burn-in; default ``MAX_BURNIN_DRAWS`` × the steps spent drawing.
    on_cell : callable, optional
        ``on_cell(calibration, i, lr)`` as each cell finishes: ``calibration`` is this result,
        filling in (its ``lrs`` grow as refinement adds columns).
    stop : threading.Event or callable, optional
        Ends the calibration after the cell in progress; the result is then ``partial``.
    progress : bool
        Show a progress bar over cells.
    **estimate_kwargs
        Sampler settings overriding ``settings`` (``num_chains``, ``num_draws``, ``batch_size``,
        ``sampler``, ``seed``, ...; ``num_burnin_steps`` is a floor under each cell's burn-in) and
        run options of :func:`estimate_llc` (``params``, ``device``, ...), for every cell.

    Returns
    -------
    CalibrationResult
    """
    from devinterp_viz.engine.llc import estimate_llc

    axis, values, user_lrs = _check_grid(lrs, nbetas, localizations, estimate_kwargs)
    base, run_options = SamplerSettings.split({**estimate_kwargs, "settings": settings})
    run_options.setdefault("progress", False)
    cal = CalibrationResult(axis=axis, values=values, user_lrs=user_lrs)
    floor = base.num_burnin_steps
    cap = max_burnin_steps if max_burnin_steps is not None else MAX_BURNIN_DRAWS * base.num_draws * base.num_steps_bw_draws
    counter = iter(range(10**9))

    def cell_settings(i: int, lr: float) -> dict[str, Any]:
        gamma = values[i] if axis == "localization" else base.localization
        burnin = max(floor, min(cap, rule_burnin(lr, gamma)))
        return {"lr": float(lr), axis: float(values[i]), "num_burnin_steps": burnin, "num_draws": base.num_draws}

    def run(i: int, lr: float, confirming: dict[str, Any] | None = None) -> LLCResult | None:
        if stop_requested(stop):
            cal.partial = True
            return None
        chosen = cell_settings(i, lr) if confirming is None else confirming
        res = estimate_llc(model, data, loss_fn, settings=base.replace(**chosen, seed=base.seed + next(counter)),
                           **run_options)
        if confirming is None:
            cal.cells[(i, float(lr))] = res
            if on_cell is not None:
                on_cell(cal, i, float(lr))
        bar.update(1)
        return res

    with progress_bar(values.size * user_lrs.size, "calibration", progress) as bar:
        for i in range(values.size):
            for lr in user_lrs:
                if run(i, lr) is None:
                    return _finish(cal)
        if refine:
            for i in range(values.size):
                extra = _refinement(cal, i)
                bar.total += len(extra)
                for lr in extra:
                    if run(i, lr) is None:
                        return _finish(cal)
        for i, lr in _candidates(cal):
            chosen = _recommended_settings(cal, i, lr)
            if not confirm:
                cal.recommended = _recommendation(cal, i, lr, chosen, None)
                break
            check = run(i, lr, confirming=chosen)
            reference = cal.cells[(i, lr)]
            if check is not None and (_unfit_reference(reference) or not _informative(reference, check)):
                reference = run(i, lr, confirming=chosen)  # a capped or noisy cell agrees with anything
            if check is None or reference is None:
                return _finish(cal)
            why = _rejection(check, reference, cal.cells[(i, lr)])
            if why is None:
                cal.confirmation = check
                cal.recommended = _recommendation(cal, i, lr, chosen, check, reference)
                break
            cal.rejected.append(_rejected(cal, i, lr, check, reference, why))
            cal.recommendation_reasons.append(
                f"lr={lr:.3g}, {axis}={values[i]:.3g} did not hold up when re-run with a fresh seed "
                f"(λ̂ {check.llc_mean:.4g} ± {check.llc_se:.2g}): {why}; trying the next candidate"
            )
    return _finish(cal)


def _finish(cal: CalibrationResult) -> CalibrationResult:
    if cal.recommended is None:
        cal.recommendation_reasons = cal.recommendation_reasons + _no_recommendation_reasons(cal)
    return cal


def _check_grid(lrs, nbetas, localizations, estimate_kwargs) -> tuple[str, np.ndarray, np.ndarray]:
    if (nbetas is None) == (localizations is None):
        raise ValueError("pass exactly one of nbetas= or localizations= to sweep against lr.")
    axis = "nbeta" if nbetas is not None else "localization"
    if axis in estimate_kwargs:
        raise ValueError(f"{axis} is swept by the grid; do not also pass {axis}=.")
    if "lr" in estimate_kwargs:
        raise ValueError("lr is swept by the grid; pass the step sizes as lrs=[...].")
    grid = {"lrs": lrs, f"{axis} values": nbetas if nbetas is not None else localizations}
    arrays = {}
    for name, given in grid.items():
        if np.isscalar(given) or isinstance(given, (str, bytes)):
            raise ValueError(f"{name} must be a sequence of numbers, e.g. [1e-5, 1e-4, 1e-3]; got {given!r}.")
        try:
            arrays[name] = np.asarray(list(given), dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a sequence of numbers; got {given!r}.") from None
        if arrays[name].size == 0:
            raise ValueError(f"{name} must hold at least one number.")
        if not np.isfinite(arrays[name]).all():
            raise ValueError(f"{name} must be finite numbers; got {given!r}.")
    user_lrs, values = np.unique(arrays["lrs"]), arrays[f"{axis} values"]
    if np.any(user_lrs <= 0) or np.any(values < 0) or (axis == "nbeta" and np.any(values <= 0)):
        raise ValueError(f"lrs must be > 0 and {axis} values must be positive; got lrs={user_lrs}, {axis}={values}.")
    return axis, values, user_lrs


def _row(cal: CalibrationResult, i: int) -> list[tuple[float, LLCResult]]:
    """The computed cells of row ``i``, by increasing lr."""
    return sorted((lr, res) for (row, lr), res in cal.cells.items() if row == i)


def _cause(res: LLCResult) -> str | None:
    causes = res.diagnostics.causes
    return causes[0] if causes else None


def _too_large(res: LLCResult) -> bool:
    return any(c in (DIVERGED, STEP_TOO_LARGE) for c in res.diagnostics.causes)


def _refinement(cal: CalibrationResult, i: int) -> list[float]:
    """lrs to add to row ``i``: between the largest healthy lr and the next larger one, or, with
    none healthy, between the last too-small step and the first too-large one."""
    row = _row(cal, i)
    healthy = [lr for lr, res in row if res.diagnostics.healthy]
    larger = [lr for lr, res in row if _too_large(res)]
    if healthy:
        low = max(healthy)
        above = [lr for lr, _ in row if lr > low]
        high = min(above) if above else None
    else:
        unsettled = [lr for lr, res in row if not _too_large(res)]
        if not larger or not unsettled:
            return []
        high = min(larger)
        below = [lr for lr in unsettled if lr < high]
        low = max(below) if below else None
    if low is None or high is None:
        return []
    count = int(math.floor(math.log(high / low) / math.log(REFINE_FACTOR) + 1e-9))
    return [float(f"{low * REFINE_FACTOR ** k:.3g}") for k in range(1, count) if low * REFINE_FACTOR**k < high * 0.999]


def _unfit_reference(res: LLCResult) -> str | None:
    """Why a grid cell cannot confirm a check run of its setting (None when it can): its burn-in was
    capped below the rule, or its chains are too few or too unmixed to compare against."""
    d = res.diagnostics
    burnin = int(res.config.get("num_burnin_steps", 0))
    lr, gamma = res.config.get("lr"), float(res.config.get("localization", 0.0))
    wanted = rule_burnin(float(lr), gamma) if lr else 0
    if burnin < wanted:
        return (f"its burn-in was capped at {burnin} steps, below the {wanted} the rule 2 × 2/(lr·γ) asks for "
                "(allow it with max_burnin_steps)")
    if not (np.isfinite(d.ess) and d.ess >= REFERENCE_ESS):
        return f"bulk ESS {d.ess:.0f} is below {REFERENCE_ESS:.0f}: too few independent draws to compare against"
    if np.isfinite(d.rhat) and d.rhat > REFERENCE_RHAT:
        return f"R-hat {d.rhat:.2f} is above {REFERENCE_RHAT}: the chains disagree too much to compare against"
    return None


def _candidates(cal: CalibrationResult) -> list[tuple[int, float]]:
    """Cells to recommend, best first: the healthy cells of the row with the most of them, those of
    small estimated bias first, each group from the largest lr down."""
    rows = [[(lr, res) for lr, res in _row(cal, i) if res.diagnostics.healthy] for i in range(cal.values.size)]
    counts = [len(row) for row in rows]
    if not counts or max(counts) == 0:
        return []
    best = np.flatnonzero(np.array(counts) == max(counts))
    i = int(best[len(best) // 2])
    small_bias = [lr for lr, res in rows[i] if _relative_bias(res) <= PREFERRED_BIAS]
    others = [lr for lr, _ in rows[i] if lr not in small_bias]
    return [(i, lr) for lr in sorted(small_bias, reverse=True) + sorted(others, reverse=True)]


def _relative_bias(res: LLCResult) -> float:
    bias = res.diagnostics.step_bias
    if not np.isfinite(bias) or not res.llc_mean:
        return 0.0 if not np.isfinite(bias) else math.inf
    return bias / abs(res.llc_mean)


def _combined_se(first: LLCResult, second: LLCResult) -> float:
    return math.hypot(first.llc_se, second.llc_se)


def _informative(first: LLCResult, second: LLCResult) -> bool:
    """Whether comparing two estimates can tell anything: their combined SE is finite and at most
    ``INFORMATIVE_SE`` of their mean size."""
    se = _combined_se(first, second)
    return bool(np.isfinite(se) and se <= INFORMATIVE_SE * (abs(first.llc_mean) + abs(second.llc_mean)) / 2)


def _significant_failure(res: LLCResult) -> str | None:
    """The verdict's failure of a check run, unless its only failure is a step bias over the limit
    by less than ``BIAS_REJECT_Z`` of the bias's own standard errors (None: no failure that counts)."""
    d = res.diagnostics
    if d.healthy:
        return None
    limit, se = STEP_BIAS_FAIL * abs(d.llc), d.step_bias_se
    # one finding, and the bias is over the limit by the verdict's NOISE_Z SEs: that finding is the bias
    only_bias = d.causes == [STEP_TOO_LARGE] and np.isfinite(se) and d.step_bias - NOISE_Z * se > limit
    return None if only_bias and d.step_bias - BIAS_REJECT_Z * se <= limit else d.verdict


def _rejection(check: LLCResult, reference: LLCResult, cell: LLCResult) -> str | None:
    """Why a check run does not confirm its cell (None when it does): a significant failure of the
    check (or of a second check), or a disagreement. A comparison that cannot tell (two checks
    whose draws could not reach the precision, :func:`_informative`) rejects nothing: it is no
    evidence against the setting, and rejecting on it would select the settings that are precise
    rather than right; the recommendation then says it is unconfirmed."""
    runs = [("the check", check)] + ([("the second check", reference)] if reference is not cell else [])
    for name, res in runs:
        failure = _significant_failure(res)
        if failure is not None:
            return f"{name} is {failure}"
    se = _combined_se(check, reference)
    gap = abs(check.llc_mean - reference.llc_mean)
    if gap > AGREE_SE * se:
        return f"they differ by {gap:.3g}, {gap / se:.1f} combined SEs (over {AGREE_SE:g})"
    return None


def _rejected(cal: CalibrationResult, i: int, lr: float, check: LLCResult, reference: LLCResult, why: str) -> dict:
    return {"lr": float(lr), cal.axis: float(cal.values[i]), "llc": float(check.llc_mean), "llc_se": float(check.llc_se),
            "reference": "grid cell" if reference is cal.cells[(i, lr)] else "second check",
            "reference_llc": float(reference.llc_mean), "reference_se": float(reference.llc_se), "reason": why}


def _recommended_settings(cal: CalibrationResult, i: int, lr: float) -> dict[str, Any]:
    """The cell's settings with the burn-in the localization needs (uncapped) and draws enough for
    a standard error of ``TARGET_PRECISION`` of the estimate."""
    res = cal.cells[(i, lr)]
    burnin = int(res.config.get("num_burnin_steps", 0))
    gamma = float(res.config.get("localization", 0.0))
    if gamma:
        burnin = max(burnin, rule_burnin(lr, gamma))
    draws = res.num_draws
    if np.isfinite(res.llc_se) and res.llc_mean:
        wanted = draws * (res.llc_se / (TARGET_PRECISION * abs(res.llc_mean))) ** 2
        draws = int(np.clip(math.ceil(wanted), draws, MAX_DRAWS_FACTOR * draws))
    return {"lr": float(lr), cal.axis: float(cal.values[i]), "num_burnin_steps": burnin, "num_draws": draws}


def _recommendation(cal: CalibrationResult, i: int, lr: float, chosen: dict[str, Any], check: LLCResult | None,
                    reference: LLCResult | None = None) -> dict[str, Any]:
    res = cal.cells[(i, lr)]
    d = res.diagnostics
    mala = d.mala_acceptance[np.isfinite(d.mala_acceptance)]
    health = f"R-hat {d.rhat:.2f}, bulk ESS {d.ess:.0f}" + (f", MALA acceptance {mala.mean():.2f}" if mala.size else "")
    reasons = [f"healthy at lr={lr:.3g}: {health}, estimated step bias {d.step_bias_text}"]
    larger = [(other, r) for other, r in _row(cal, i) if other > lr]
    if larger:
        other, r = larger[0]
        reasons.append(f"the next larger lr={other:.3g} is " + ("healthy but more biased" if r.diagnostics.healthy
                                                                else f"{r.diagnostics.status}: {r.diagnostics.reasons[0]}"))
    if (chosen["num_burnin_steps"], chosen["num_draws"]) != (int(res.config.get("num_burnin_steps", 0)), res.num_draws):
        reasons.append(f"run with {chosen['num_burnin_steps']} burn-in steps (at least 2 × 2/(lr·γ)) and "
                       f"{chosen['num_draws']} draws (for a standard error near {100 * TARGET_PRECISION:.0f}% of λ̂)")
    for r in cal.rejected:
        reasons.append(f"lr={r['lr']:.3g}, {cal.axis}={r[cal.axis]:.3g} was tried first and rejected: {r['reason']}")
    if check is not None:
        if not check.diagnostics.healthy:
            reasons.append(f"the check's step bias {check.diagnostics.step_bias_text} is over the limit by less than "
                           f"{BIAS_REJECT_Z:g} of its SEs: not significant, so not a rejection")
        against = ("the grid cell" if reference is res else
                   f"a second fresh-seed check ({reference.llc_mean:.4g} ± {reference.llc_se:.2g}; the grid cell could not "
                   f"confirm it: {_unfit_reference(res) or 'its SE is too large for the comparison to tell'})")
        se, size = _combined_se(check, reference), (abs(check.llc_mean) + abs(reference.llc_mean)) / 2
        if not _informative(check, reference):
            reasons.append(f"not confirmed: the fresh-seed check (λ̂ = {check.llc_mean:.4g} ± {check.llc_se:.2g}) and "
                           f"{against} have a combined SE of {100 * se / max(size, 1e-12):.0f}% of λ̂ (over "
                           f"{100 * INFORMATIVE_SE:.0f}%), too wide to tell: sample more draws to confirm")
        else:
            reasons.append(f"confirmed with a fresh seed at these settings: λ̂ = {check.llc_mean:.4g} ± {check.llc_se:.2g}, "
                           f"within {AGREE_SE:g} combined SEs of {against}")
    return {
        **chosen,
        "llc": float(res.llc_mean),
        "llc_se": float(res.llc_se),
        "confirmed_llc": float(check.llc_mean) if check is not None else float("nan"),
        "confirmed_se": float(check.llc_se) if check is not None else float("nan"),
        "confirmed": check is not None and _informative(check, reference),
        "reasons": reasons,
    }


def _no_recommendation_reasons(cal: CalibrationResult) -> list[str]:
    if not cal.cells:
        return ["no cell was computed"]
    causes = [_cause(res) for res in cal.cells.values()]
    undefined = sum(res.diagnostics.status == "undefined" for res in cal.cells.values())
    if undefined and not any(res.diagnostics.healthy for res in cal.cells.values()) and undefined >= len(cal.cells) / 3:
        return [f"w* is not a local minimum (the chains descend along ∇L(w*) in {undefined} of {len(cal.cells)} cells): "
                "the LLC is undefined here"]
    if all(c in (DIVERGED, STEP_TOO_LARGE) for c in causes):
        return [f"every lr was too large: add smaller lrs (below {min(lr for _, lr in cal.cells):.3g})"]
    if all(c == NOT_EQUILIBRATED for c in causes):
        return [f"at every lr the chains had not equilibrated: add larger lrs (above {max(lr for _, lr in cal.cells):.3g}) "
                "or allow a longer burn-in (max_burnin_steps)"]
    if not any(res.diagnostics.healthy for res in cal.cells.values()):
        first = next(res.diagnostics.reasons[0] for res in cal.cells.values() if res.diagnostics.reasons)
        return [f"no setting was healthy (e.g. {first}): see each cell's reasons"]
    return ["no candidate held up when re-run with a fresh seed: sample more draws (num_draws)"]
