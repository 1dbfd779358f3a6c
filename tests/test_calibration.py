"""Calibration: from a coarse grid to a confirmed accurate setting, cells judged, refined, streamed, stopped."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import devinterp_viz as dvz
from devinterp_viz.zoo.potentials import GaussianPotential, SumOfPowers, potential_loss

DUMMY = torch.zeros(1, 1)
DECADES = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


@pytest.fixture(scope="module")
def gaussian_calibration():
    model = GaussianPotential(10)  # the localized target at (nβ, γ) is 10 nβ / (2 nβ + γ)
    seen = []
    cal = dvz.calibrate(model, DUMMY, potential_loss, lrs=DECADES, nbetas=[10.0, 30.0], localization=1.0,
                        num_chains=4, num_draws=400, batch_size=1, seed=0, progress=False,
                        on_cell=lambda c, i, lr: seen.append((c, i, lr, len(c.cells))))
    return model, cal, seen


def test_every_user_lr_is_a_column_and_refinement_adds_lrs_between(gaussian_calibration):
    _, cal, _ = gaussian_calibration
    assert set(DECADES) <= set(cal.lrs.tolist()) and cal.lrs.size > len(DECADES)
    assert cal.llc_mean.shape == cal.healthy.shape == (2, cal.lrs.size)
    refined = sorted(set(cal.lrs.tolist()) - set(DECADES))
    assert all(1e-6 < lr < 1e-1 for lr in refined)
    table = cal.to_pandas()
    assert len(table) == len(cal.cells) and {"lr", "nbeta", "llc_mean", "healthy", "num_burnin_steps", "reasons"} <= set(table.columns)


def test_cells_have_their_own_seeds_and_a_burnin_from_the_localization_time(gaussian_calibration):
    _, cal, _ = gaussian_calibration
    seeds = [res.config["seed"] for res in cal.cells.values()]
    assert len(set(seeds)) == len(seeds)
    for (i, lr), res in cal.cells.items():
        wanted = int(np.ceil(2 * 2 / (lr * 1.0)))  # 2 × 2/(lr·γ), capped at 4 × the draws
        assert res.config["num_burnin_steps"] == min(wanted, 4 * 400)


def test_the_recommendation_is_confirmed_and_accurate(gaussian_calibration):
    model, cal, _ = gaussian_calibration
    rec = cal.recommended
    assert rec is not None, cal.recommendation_reasons
    truth = model.localized_llc(rec["nbeta"], 1.0)
    assert abs(rec["llc"] - truth) <= max(0.1 * truth, 2 * rec["llc_se"])
    assert cal.confirmation is not None and cal.confirmation.diagnostics.healthy
    assert cal.confirmation.config["seed"] not in [res.config["seed"] for res in cal.cells.values()]
    # the discretised law at the recommended step is within 5% of the continuum target: low bias by design
    assert abs(model.exact_sgld_llc(rec["lr"], rec["nbeta"], 1.0) / truth - 1) < 0.05
    assert "confirmed with a fresh seed" in rec["reasons"][-1] and "recommended" in cal.summary()
    assert rec["num_burnin_steps"] >= 2 * 2 / (rec["lr"] * 1.0) and rec["num_draws"] >= 400


def test_a_fresh_run_at_the_recommended_setting_is_accurate(gaussian_calibration):
    # seed 12345, not used by the calibration; tolerance as in bench/known_answers.py
    model, cal, _ = gaussian_calibration
    rec = cal.recommended
    res = dvz.estimate_llc(model, DUMMY, potential_loss, lr=rec["lr"], nbeta=rec["nbeta"], localization=1.0,
                           num_burnin_steps=rec["num_burnin_steps"], num_draws=rec["num_draws"], batch_size=1,
                           seed=12345, progress=False)
    truth = model.localized_llc(rec["nbeta"], 1.0)
    assert abs(res.llc_mean - truth) <= max(0.1 * truth, 2 * res.llc_se)


def test_too_large_and_unsettled_cells_say_why(gaussian_calibration):
    _, cal, _ = gaussian_calibration
    results = cal.results
    j = list(cal.lrs).index(1e-1)  # ρ = 1 − 0.1 (nβ + γ/2) ≤ −0.05: biased or diverging
    assert not cal.healthy[:, j].any()
    assert {results[(i, j)].diagnostics.causes[0] for i in range(2)} <= {"diverged", "step_too_large"}
    j = list(cal.lrs).index(1e-6)  # the chains barely move in 1600 steps
    assert not cal.healthy[:, j].any() and all(results[(i, j)].diagnostics.reasons for i in range(2))


def test_on_cell_sees_the_calibration_filling_in(gaussian_calibration):
    _, cal, seen = gaussian_calibration
    assert all(c is cal for c, *_ in seen)
    assert [count for *_, count in seen] == list(range(1, len(cal.cells) + 1))


def test_plot_shows_every_computed_cells_value(gaussian_calibration):
    _, cal, _ = gaussian_calibration
    fig = cal.plot()
    text = np.array(fig.data[0].text)
    i, j = 0, list(cal.lrs).index(1e-2)
    if np.isfinite(cal.llc_mean[i, j]) and not cal.healthy[i, j]:
        assert text[i, j].startswith(f"{cal.llc_mean[i, j]:.3g}") and text[i, j].endswith("✕")
    assert all(text[a, b] == "" for a in range(2) for b in range(cal.lrs.size) if not cal.computed[a, b])


def test_calibration_over_localization_in_a_low_dimensional_model():
    # sum of powers [1, 2, 3]: acceptance hardly reacts to the step here, the step-bias check does
    model = SumOfPowers([1, 2, 3])
    cal = dvz.calibrate(model, DUMMY, potential_loss, lrs=[1e-4, 1e-3, 1e-2, 1e-1], localizations=[1.0, 10.0],
                        nbeta=100.0, num_draws=400, batch_size=1, seed=1, progress=False)
    assert cal.axis == "localization"
    rec = cal.recommended
    assert rec is not None, cal.recommendation_reasons
    truth = model.localized_llc(100.0, rec["localization"])
    assert abs(rec["confirmed_llc"] - truth) <= 0.15 * truth


def test_a_grid_of_steps_all_too_large_says_to_add_smaller_ones():
    cal = dvz.calibrate(GaussianPotential(4), DUMMY, potential_loss, lrs=[0.5, 1.0], nbetas=[10.0], num_draws=50,
                        batch_size=1, progress=False)
    assert cal.recommended is None and "add smaller lrs" in cal.recommendation_reasons[-1]
    assert "no recommendation" in cal.summary()


def test_calibration_stops_early_and_says_partial():
    stop = threading.Event()
    cal = dvz.calibrate(GaussianPotential(4), DUMMY, potential_loss, lrs=[1e-3, 2e-3, 3e-3], nbetas=[10.0],
                        num_chains=2, num_draws=40, batch_size=1, progress=False, stop=stop,
                        on_cell=lambda c, i, lr: stop.set())
    assert cal.partial and len(cal.cells) == 1 and cal.recommended is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"nbetas": [10.0], "localizations": [1.0]}, "exactly one"),
        ({}, "exactly one"),
        ({"nbetas": [10.0], "nbeta": 3.0}, "swept by the grid"),
        ({"nbetas": [0.0]}, "positive"),
        ({"nbetas": 10.0}, "must be a sequence"),
        ({"nbetas": [10.0], "num_draws": 0}, "num_draws must be at least 2"),
        ({"nbetas": [10.0], "lr": 1e-3}, "lrs="),
    ],
)
def test_calibration_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dvz.calibrate(GaussianPotential(2), DUMMY, potential_loss, lrs=[1e-3], batch_size=1, **kwargs)


def test_a_scalar_lr_grid_is_refused_with_an_example():
    with pytest.raises(ValueError, match=r"lrs must be a sequence of numbers, e\.g\."):
        dvz.calibrate(GaussianPotential(2), DUMMY, potential_loss, lrs=1e-3, nbetas=[10.0], batch_size=1)


# ---------------------------------------------------------------- which cells may be recommended, and how confirmed
def _synthetic(mean: float, se: float, *, config: dict | None = None, seed: int = 0) -> dvz.LLCResult:
    """A result whose 8 chains × 400 draws are i.i.d. normal around ``mean`` (nβ = 1, L(w*) = 0), so its
    estimate is ``mean`` and its SE ``se`` up to sampling (≈ 25% of ``se``); no sampler traces, so it is
    "healthy as far as checked"."""
    rng = np.random.default_rng(seed)
    trace = mean + se * np.sqrt(8 * 400) * rng.standard_normal((8, 400))
    trace += mean - trace.mean()  # the estimate exactly at mean
    return dvz.LLCResult.from_traces(trace, 0.0, 1.0, config=config)


def test_a_cell_healthy_as_far_as_checked_is_a_candidate_and_a_reference_like_a_healthy_one():
    from devinterp_viz.analysis.calibration import CalibrationResult, _candidates, _unfit_reference

    config = {"lr": 1e-3, "localization": 10.0, "num_burnin_steps": 400}  # the rule asks 2 × 2/(1e-3·10) = 400
    res = _synthetic(5.0, 0.1, config=config)
    assert res.diagnostics.healthy and res.diagnostics.label == "healthy as far as checked"
    cal = CalibrationResult(axis="nbeta", values=np.array([1.0]), user_lrs=np.array([1e-3]), cells={(0, 1e-3): res})
    assert _candidates(cal) == [(0, 1e-3)] and _unfit_reference(res) is None
    capped = _synthetic(5.0, 0.1, config={**config, "num_burnin_steps": 399})
    assert "capped" in _unfit_reference(capped)


def test_agreement_is_by_combined_standard_error_without_a_relative_slack():
    from devinterp_viz.analysis.calibration import _rejection

    # 8% apart with SEs of 1%: within 10% of each other, but 5.7 combined SEs apart
    cell, check = _synthetic(1.08, 0.01, seed=1), _synthetic(1.0, 0.01, seed=2)
    assert "differ" in _rejection(check, cell, cell)
    assert "differ" in _rejection(_synthetic(1.02, 0.01, seed=3), cell, cell)  # 4.2 SEs: still apart
    assert _rejection(_synthetic(1.07, 0.01, seed=3), cell, cell) is None  # 0.7 SE: agree


def test_a_check_against_a_cell_with_a_huge_standard_error_confirms_nothing():
    from devinterp_viz.analysis.calibration import _informative, _rejection

    # 7.9 ± 1.5 against 7.2 ± 0.24: within 2 combined SEs, but the combined SE is 20% of λ̂ (> 15%)
    noisy_cell, check = _synthetic(7.9, 1.5, seed=1), _synthetic(7.2, 0.24, seed=2)
    assert not _informative(noisy_cell, check)
    assert _rejection(check, noisy_cell, noisy_cell) is None  # no evidence either way: calibrate runs a second check
    assert _informative(_synthetic(7.9, 0.75, seed=1), check)  # 10% of λ̂: a comparison that can tell


def test_a_step_bias_within_two_of_its_own_standard_errors_does_not_reject_a_confirmation():
    from types import SimpleNamespace

    from devinterp_viz.analysis.calibration import _significant_failure
    from devinterp_viz.engine.verdict import Diagnostics

    def check(bias: float, bias_se: float) -> SimpleNamespace:  # a check the verdict failed on its step bias alone
        d = Diagnostics(rhat=1.0, ess=400.0, mala_acceptance=np.full(4, 0.95), fraction_below_init=np.zeros(4),
                        divergent=np.zeros(4, bool), divergence_draw=np.full(4, -1), healthy=False,
                        reasons=[f"the step biases the estimate by about +{bias:.3g}"], causes=["step_too_large"],
                        step_bias=bias, step_bias_se=bias_se, llc=8.0)
        return SimpleNamespace(diagnostics=d)

    assert _significant_failure(check(3.19, 1.5)) is None  # over the 0.8 limit by 1.6 SEs: noise
    assert "step biases" in _significant_failure(check(3.19, 0.5))  # by 4.8 SEs: a rejection


def test_a_cell_whose_burnin_was_capped_below_the_rule_never_confirms_its_own_setting():
    # |w|² in 4 dimensions, nβ 30, γ 1: at lr 2e-3 the rule asks 2 × 2/(lr·γ) = 2000 burn-in steps, the grid
    # caps it at 4 × 200 draws = 800; the stiff directions relax in ~8 steps, so the capped cell looks healthy.
    # Its setting is confirmed by two fresh runs with the rule's burn-in, compared with each other.
    kwargs = dict(lrs=[2e-3], nbetas=[30.0], localization=1.0, num_chains=8, num_draws=200, batch_size=1, seed=0,
                  progress=False)
    cal = dvz.calibrate(GaussianPotential(4), DUMMY, potential_loss, **kwargs)
    assert cal.healthy.all() and cal.burnin[0, 0] == 800
    rec = cal.recommended
    assert rec is not None and rec["num_burnin_steps"] == 2000, cal.summary()
    assert "second fresh-seed check" in rec["reasons"][-1] and "capped" in rec["reasons"][-1]
    assert "cannot confirm themselves" in cal.summary() and "max_burnin_steps" in cal.summary()
    truth = GaussianPotential(4).localized_llc(30.0, 1.0)  # 4·30/61 = 1.967; the step's own bias is ≈ ε·a/4 = 3%
    assert abs(rec["confirmed_llc"] - truth) <= max(0.1 * truth, 2 * rec["confirmed_se"])
    full = dvz.calibrate(GaussianPotential(4), DUMMY, potential_loss, max_burnin_steps=2000, **kwargs)
    assert full.recommended is not None, full.summary()
    assert full.recommended["num_burnin_steps"] == 2000 and "of the grid cell" in full.recommended["reasons"][-1]


@pytest.fixture(scope="module")
def tampered_calibration():
    """|w|² in 4 dimensions (target 4 nβ/(2 nβ + γ) = 1.905 at nβ 10, γ 1 ... here γ 10: 1.333), whose first
    confirmation is run at γ 100 instead (target 0.333), as an unlucky check would differ: it must be
    rejected, listed, and the next candidate confirmed on its own."""
    import importlib

    llc = importlib.import_module("devinterp_viz.engine.llc")
    real, computed, tampered = llc.estimate_llc, set(), []

    def estimate(model, data, loss_fn, *, settings, **options):
        key = (settings.lr, settings.nbeta)
        if key in computed and not tampered:  # a re-run of a grid cell: the first confirmation
            tampered.append(key)
            settings = settings.replace(localization=100.0)
        computed.add(key)
        return real(model, data, loss_fn, settings=settings, **options)

    patch = pytest.MonkeyPatch()
    patch.setattr(llc, "estimate_llc", estimate)
    try:
        cal = dvz.calibrate(GaussianPotential(4), DUMMY, potential_loss, lrs=[1e-4, 1e-3, 1e-2], nbetas=[10.0],
                            localization=10.0, num_draws=200, batch_size=1, seed=0, progress=False)
    finally:
        patch.undo()
    return cal, tampered


def test_a_rejected_confirmation_is_listed_with_its_value_se_and_reason(tampered_calibration):
    cal, tampered = tampered_calibration
    assert len(tampered) == 1 and len(cal.rejected) == 1
    rejected = cal.rejected[0]
    assert rejected["lr"] == tampered[0][0] and rejected["reference"] in ("grid cell", "second check")
    assert rejected["llc"] < 0.5 < 1.0 < rejected["reference_llc"]  # ≈ 0.33 against ≈ 1.33 (its cell or a second check)
    text = cal.summary()
    assert f"rejected lr={rejected['lr']:.3g}" in text and f"{rejected['llc']:.4g} ± {rejected['llc_se']:.2g}" in text
    assert rejected["reason"] and rejected["reason"] in text  # it differs, or the γ-100 run fails its verdict


def test_after_a_rejection_the_next_candidate_passes_its_own_confirmation(tampered_calibration):
    from devinterp_viz.analysis.calibration import _rejection

    cal, tampered = tampered_calibration
    rec = cal.recommended
    assert rec is not None, cal.summary()
    assert rec["lr"] < tampered[0][0] and cal.confirmation.config["lr"] == rec["lr"]
    cell = cal.cells[(0, rec["lr"])]
    assert _rejection(cal.confirmation, cell, cell) is None
    assert any("tried first and rejected" in r for r in rec["reasons"])
    truth = GaussianPotential(4).localized_llc(10.0, 10.0)
    assert abs(rec["confirmed_llc"] - truth) <= max(0.1 * truth, 2 * rec["confirmed_se"])


def test_a_deep_linear_network_is_calibrated_to_its_exact_localized_target():
    # 3→3→3 rank-1 network on 40 whitened examples, full batch: the empirical loss is the population loss
    # ½|W₂W₁ − T|², whose localized target at (nβ, γ) the blocked Gibbs sampler gives exactly (up to its SE)
    from devinterp_viz.engine.diagnostics import rule_burnin
    from devinterp_viz.zoo.dln import gibbs_localized_llc, make_dln_data, mse_loss, true_parameter_dln

    net = true_parameter_dln([3, 3, 3], 1, seed=0)
    data = make_dln_data(true_parameter_dln([3, 3, 3], 1, seed=0), 40, seed=0, whiten=True)
    cal = dvz.calibrate(net, data, mse_loss, lrs=[1e-5, 1e-4, 1e-3, 1e-2], nbetas=[100.0], localization=10.0,
                        num_draws=300, batch_size=40, seed=0, progress=False)
    rec = cal.recommended
    assert rec is not None, cal.summary()
    assert rec["num_burnin_steps"] >= rule_burnin(rec["lr"], 10.0) and "confirmed with a fresh seed" in rec["reasons"][-1]
    truth, truth_se = gibbs_localized_llc(net, 100.0, 10.0, num_chains=64, num_sweeps=400, num_burnin=100)
    se = float(np.hypot(rec["confirmed_se"], truth_se))
    assert abs(rec["confirmed_llc"] - truth) <= max(0.1 * truth, 2 * se), cal.summary()
