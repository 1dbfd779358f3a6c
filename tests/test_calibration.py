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
