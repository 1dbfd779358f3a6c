"""Fakes for widget tests and benchmarks: a synthetic engine, and sweeps built from synthetic traces.

It draws synthetic loss traces (a chain rising from L(w*) and flattening, an exploding chain
when ``lr`` is too large, a flat one when it is tiny) at a chosen pace, honours ``on_draw``,
``stop`` and ``on_cell`` (streaming a constant MALA acceptance), and builds real :class:`LLCResult` objects (real diagnostics).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devinterp_viz.engine.progress import stop_requested
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.engine.settings import SamplerSettings

#: The MALA acceptance the fake streams for every move (to a three-parameter ``on_draw``, as the driver does).
FAKE_ACCEPTANCE = 0.875


@dataclass
class FakeEngine:
    """Stands in for the engine entry points ``devinterp_viz.widgets.sampler`` calls (see :func:`install`).

    Parameters
    ----------
    seconds_per_draw : float
        Sleep between draws (0 = as fast as possible).
    fail_with : Exception, optional
        Raised by ``estimate_llc`` after ``fail_after`` draws.
    confirm : bool
        Whether ``calibrate`` confirms its recommendation as the engine does: a fresh-seed run with
        a longer burn-in and twice the grid cell's draws (False: as ``calibrate(confirm=False)``).
    burnin : bool
        Whether ``estimate_llc`` streams burn-in losses to ``on_burnin`` and keeps them, as the engine
        does (False: a run without a burn-in trace).
    """

    seconds_per_draw: float = 0.0
    fail_with: Exception | None = None
    fail_after: int = 0
    confirm: bool = False
    burnin: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)

    def estimate_llc(self, model, data, loss_fn, *, on_draw=None, stop=None, progress=True, params=None,
                     on_start=None, on_burnin=None, **kwargs) -> LLCResult:
        settings, run_options = SamplerSettings.split(kwargs)  # the engine's own keyword API and checks
        self.calls.append(dict(settings.to_config(), params=params, **run_options))
        lr, nbeta, localization = settings.lr, settings.nbeta, settings.localization
        num_chains, num_draws, seed = settings.num_chains, settings.num_draws, settings.seed
        used_nbeta = 10.0 if nbeta is None else float(nbeta)
        init_loss = 1.0
        losses = synthetic_traces(lr, used_nbeta, localization, num_chains, num_draws, seed)
        if on_start is not None:
            on_start(init_loss, used_nbeta)
        burnin_steps = np.unique(np.linspace(0, settings.num_burnin_steps - 1, 64).astype(int)) if self.burnin and settings.num_burnin_steps else []
        for step in burnin_steps:  # from above L(w*) down to the draws' level, as a burn-in settles
            if on_burnin is not None:
                on_burnin(int(step), losses[:, 0] + 0.5 * (1 - step / settings.num_burnin_steps))
        partial = False
        drawn = num_draws
        streams_acceptance = on_draw is not None and len(inspect.signature(on_draw).parameters) >= 3
        for t in range(num_draws):
            if stop_requested(stop):
                partial, drawn = True, t
                break
            if self.fail_with is not None and t >= self.fail_after:
                raise self.fail_with
            if self.seconds_per_draw:
                time.sleep(self.seconds_per_draw)
            if on_draw is not None and streams_acceptance:  # as the driver does: the move from draw t − 1
                on_draw(t, losses[:, t].copy(), np.full(num_chains, FAKE_ACCEPTANCE if t else np.nan))
            elif on_draw is not None:
                on_draw(t, losses[:, t].copy())
        config = {**settings.to_config(), "nbeta": used_nbeta}
        result = LLCResult.from_traces(losses[:, :drawn], init_loss, used_nbeta, config=config, partial=partial)
        if len(burnin_steps) and on_burnin is not None:  # the burn-in it streamed, kept as the engine keeps it
            result.burnin_steps = np.asarray(burnin_steps)
            result.burnin_loss_trace = np.stack([losses[:, 0] + 0.5 * (1 - s / settings.num_burnin_steps) for s in burnin_steps], 1)
        return result

    def calibrate(self, model, data, loss_fn, *, lrs, nbetas=None, localizations=None, on_cell=None, stop=None,
                  settings=None, **kwargs) -> Any:
        from devinterp_viz.analysis.calibration import CalibrationResult

        axis = "nbeta" if nbetas is not None else "localization"
        values = np.asarray(nbetas if nbetas is not None else localizations, dtype=float)
        cal = CalibrationResult(axis=axis, values=values, user_lrs=np.unique(np.asarray(lrs, dtype=float)))
        for i, value in enumerate(values):
            for lr in cal.user_lrs:
                if stop_requested(stop):
                    cal.partial = True
                    break
                cal.cells[(i, float(lr))] = self.estimate_llc(model, data, loss_fn, settings=settings, lr=float(lr),
                                                              **{axis: float(value)}, **kwargs)
                if on_cell is not None:
                    on_cell(cal, i, float(lr))
        good = [(i, lr) for (i, lr), res in cal.cells.items() if res.diagnostics.healthy]
        if good:
            i, lr = max(good, key=lambda c: (c[1], -c[0]))
            res = cal.cells[(i, lr)]
            chosen = {"lr": lr, axis: float(values[i]), "num_burnin_steps": 0, "num_draws": res.num_draws}
            if self.confirm:
                chosen.update(num_burnin_steps=int(res.config.get("num_burnin_steps") or 0) + 50, num_draws=2 * res.num_draws)
                seed = SamplerSettings.split({"settings": settings, **kwargs})[0].seed + 1000  # a fresh seed
                fresh = {**kwargs, "seed": seed, **chosen}
                cal.confirmation = self.estimate_llc(model, data, loss_fn, settings=settings, **fresh)
            check = cal.confirmation
            cal.recommended = {**chosen, "llc": res.llc_mean, "llc_se": res.llc_se,
                               "confirmed_llc": check.llc_mean if check is not None else float("nan"),
                               "confirmed_se": check.llc_se if check is not None else float("nan"),
                               "confirmed": check is not None, "reasons": ["largest healthy step size"]}
        else:  # why not, and which way to widen the grid, as calibrate says it
            from devinterp_viz.analysis.calibration import _no_recommendation_reasons

            cal.recommendation_reasons = _no_recommendation_reasons(cal)
        return cal

    def describe_selection(self, model, params=None, print_table=False):
        from devinterp_viz.engine.selection import describe_selection

        return describe_selection(model, params, print_table=print_table)


def install(fake: FakeEngine, setattr: Any = setattr) -> FakeEngine:
    """Make the SamplerWidget call ``fake`` for its estimates and calibrations.

    Pass pytest's ``monkeypatch.setattr`` to undo it after the test; a kernel (UI tests) passes none.
    """
    from devinterp_viz.widgets import sampler

    setattr(sampler, "estimate_llc", fake.estimate_llc)
    setattr(sampler, "calibrate", fake.calibrate)
    return fake


def synthetic_traces(lr: float, nbeta: float, localization: float, chains: int, draws: int, seed: int) -> np.ndarray:
    """Loss traces that look like SGLD's: healthy for 1e-5 <= lr <= 1e-2, exploding above, flat below."""
    rng = np.random.default_rng(seed)
    t = np.arange(draws)
    rise = 0.5 / nbeta * (1 - np.exp(-t * max(lr, 1e-12) * 2e3))
    noise = 0.02 / np.sqrt(nbeta) * rng.standard_normal((chains, draws)) * min(1.0, lr * 1e4)
    losses = 1.0 + rise + np.abs(noise)
    if lr > 1e-2:  # diverge: exponential blow-up, then non-finite
        blow = np.exp(np.clip((t - 20) * lr * 5, 0, 800))
        losses = losses * blow
        losses[:, t > 40] = np.inf
    return losses


def synthetic_sweep(num_checkpoints: int = 60, selections=("all",), distributions=("data",), chains: int = 4,
                    draws: int = 40, unhealthy=(), last_step: int = 10_000, seed: int = 0):
    """A :class:`SweepResult` of real :class:`LLCResult` objects built from synthetic loss traces.

    The LLC rises in two steps over log-time and dips between them (so stage detection finds
    rising and falling stages); checkpoints in ``unhealthy`` get diverging chains. For widget
    tests and benchmarks that must not sample.
    """
    from devinterp_viz.analysis.sweep import SweepResult

    rng = np.random.default_rng(seed)
    steps = np.unique(np.concatenate([[0], np.geomspace(1, last_step, num_checkpoints)]).astype(int))
    while len(steps) < num_checkpoints:  # log spacing collapses early steps: fill in at the end
        steps = np.append(steps, steps[-1] + 1)
    steps = steps[:num_checkpoints]
    sweep = SweepResult(steps, list(selections), list(distributions), config={"lr": 1e-3, "nbeta": 10.0})
    x = np.log1p(steps)
    for a, sel in enumerate(selections):
        for b, dist in enumerate(distributions):
            level = (1 + 3 / (1 + np.exp(-(x - 2.5 - a))) - 2.5 / (1 + np.exp(-2 * (x - 5)))
                     + 3 / (1 + np.exp(-2 * (x - 7.5 + b))))
            for index in range(num_checkpoints):
                trace = 1.0 + level[index] / 10.0 + 0.01 * rng.standard_normal((chains, draws))  # equilibrated chains
                if index in unhealthy:
                    trace[0, draws // 2:] = np.inf
                sweep.results[(sel, dist, index)] = LLCResult.from_traces(trace, 1.0, 10.0, config={"lr": 1e-3})
    return sweep


def synthetic_head_sweep(num_checkpoints: int = 20, layers: int = 2, heads: int = 4, distributions=("full", "code"),
                         seed: int = 0):
    """A head sweep (selections named ``blocks.{layer}.attn.head{h}``) with three kinds of curves:
    early risers, late risers and transient bumps (head ``k`` is of kind ``k % 3``)."""
    from devinterp_viz.analysis.sweep import SweepResult

    rng = np.random.default_rng(seed)
    steps = np.unique(np.geomspace(1, 5000, num_checkpoints).astype(int))
    names = [f"blocks.{layer}.attn.head{h}" for layer in range(layers) for h in range(heads)]
    sweep = SweepResult(steps, names, list(distributions), config={"lr": 1e-3, "nbeta": 10.0})
    x = np.log(steps)
    shapes = [1 / (1 + np.exp(-(x - 3))), 1 / (1 + np.exp(-(x - 6))), np.exp(-((x - 5) ** 2))]
    for k, name in enumerate(names):
        for b, dist in enumerate(distributions):
            level = 0.1 + shapes[k % 3] * (1 + 0.5 * b)
            for index in range(len(steps)):
                trace = 1 + level[index] / 10 + 0.003 * rng.standard_normal((2, 40))
                sweep.results[(name, dist, index)] = LLCResult.from_traces(trace, 1.0, 10.0)
    return sweep
