"""Stage detection: turns that the standard errors support are found, noise and wiggles are not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

import devinterp_viz as dvz


def log_spaced_steps(n=120, last=100_000):
    return np.unique(np.geomspace(1, last, n).astype(int))


def test_turning_points_of_a_known_curve_are_found_without_a_bandwidth():
    # λ(x) = sin(π x / 3) over x = log(t + 1) ∈ [0.7, 11.5] turns at x = 1.5, 4.5, 7.5, 10.5.
    # seed 0, noise σ = 0.05 given as the standard error; boundaries within 0.35 in log-time.
    steps = log_spaced_steps()
    x = np.log1p(steps)
    llc = np.sin(np.pi * x / 3) + 0.05 * np.random.default_rng(0).standard_normal(x.size)
    found = dvz.stages(steps, llc, np.full(x.size, 0.05))
    got = np.log1p(found.boundaries_)
    assert len(got) == 4, got
    assert np.all(np.abs(got - [1.5, 4.5, 7.5, 10.5]) < 0.35), got
    assert [s["type"] for s in found.stages_] == ["rising", "falling", "rising", "falling", "rising"]
    assert all(s["z"] >= 3 for s in found.stages_)


def test_the_noise_level_is_estimated_when_no_standard_errors_are_given():
    steps = log_spaced_steps()
    x = np.log1p(steps)
    llc = np.sin(np.pi * x / 3) + 0.05 * np.random.default_rng(0).standard_normal(x.size)
    found = dvz.stages(steps, llc)
    assert len(found.boundaries_) == 4
    assert 0.03 < found.standard_error_[0] < 0.08  # the σ = 0.05 put in, from second differences


def test_a_peak_and_fall_outside_the_error_bars_is_a_stage_of_its_own():
    # The zoo transformer's shape: rises to 20.6 ± 0.6 at step ≈ 1800 and falls to 16.0 ± 1.1 at 3000.
    steps = np.array([0, 100, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000, 2200, 2400, 2600, 2800, 3000])
    llc = np.array([0.8, 3, 6, 9, 12, 14, 16, 17.5, 18.5, 19.8, 20.6, 20.0, 19.1, 18.0, 17.2, 16.5, 16.0])
    se = np.array([0.1, 0.2, 0.3, 0.4, 0.4, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.1])
    found = dvz.stages(steps, llc, se)
    assert found.boundaries_.tolist() == [1800.0]
    assert [s["type"] for s in found.stages_] == ["rising", "falling"]


def test_a_fall_within_the_error_bars_is_not_a_stage():
    steps = np.arange(1, 11) * 100
    llc = np.array([1, 2, 3, 4, 5, 6, 7, 7.5, 7.2, 7.0])
    found = dvz.stages(steps, llc, np.full(10, 0.5))  # the 0.5 fall is 0.7 standard errors
    assert len(found.boundaries_) == 0 and found.stages_[0]["type"] == "rising"


def test_monotone_noisy_curve_is_one_rising_stage():
    steps = log_spaced_steps()
    llc = np.tanh(np.log1p(steps) - 5) + 0.01 * np.random.default_rng(1).standard_normal(steps.size)
    found = dvz.stages(steps, llc, np.full(steps.size, 0.01))
    assert len(found.boundaries_) == 0 and found.stages_[0]["type"] == "rising"
    assert found.stages_[0]["start"] == steps[0] and found.stages_[0]["end"] == steps[-1]


def test_smoothing_is_optional_and_propagates_standard_errors():
    steps = log_spaced_steps()
    x = np.log1p(steps)
    llc = x + 0.25 * np.sin(6 * x)  # wiggles with turning points, each a small change
    se = np.full(x.size, 0.2)
    assert len(dvz.stages(steps, llc, se).boundaries_) == 0  # every wiggle is within its errors
    assert len(dvz.stages(steps, llc, se / 100).boundaries_) > 10  # with tiny errors they are real
    smoothed = dvz.stages(steps, llc, se / 100, bandwidth=0.3)
    assert np.all(smoothed.standard_error_ < se / 100)  # averaging shrinks the error


def test_stages_from_a_sweep_use_its_errors_and_leave_unhealthy_checkpoints_out():
    steps = log_spaced_steps(30)
    x = np.log1p(steps)
    llc = np.exp(-((x - 6) ** 2))  # rises then falls: one boundary near x = 6
    sweep = dvz.SweepResult(steps, ["all"], ["data"])
    rng = np.random.default_rng(0)
    for index, value in enumerate(llc):
        trace = value / 10.0 + 1e-3 * rng.standard_normal((4, 200))
        sweep.results[("all", "data", index)] = dvz.LLCResult.from_traces(trace, init_loss=0.0, nbeta=10.0)
    bad = dvz.LLCResult.from_traces(np.full((4, 200), -1.0), init_loss=0.0, nbeta=10.0)  # negative: undefined
    sweep.results[("all", "data", 3)] = bad
    found = dvz.stages(sweep)
    assert len(found.boundaries_) == 1 and abs(np.log1p(found.boundaries_[0]) - 6) < 0.3
    assert np.isnan(found.smoothed_[3])
    fig = found.plot(steps, llc)
    assert len(fig.data) == 2


def test_stage_detector_is_a_scikit_learn_estimator():
    detector = dvz.StageDetector(significance=2.0)
    assert detector.get_params() == {"significance": 2.0, "bandwidth": None}
    copy = clone(detector)
    assert copy.get_params() == detector.get_params() and not hasattr(copy, "stages_")


@pytest.mark.parametrize(
    "steps, llc, match",
    [
        ([1, 2], [0.1, 0.2], "at least 3"),
        ([3, 2, 5], [0.1, 0.2, 0.3], "strictly increasing"),
        ([1, 2, 3], [0.1, 0.2], "equal length"),
    ],
)
def test_stage_bad_input(steps, llc, match):
    with pytest.raises(ValueError, match=match):
        dvz.stages(steps, llc)


def test_each_stage_says_how_many_estimates_it_rests_on():
    from devinterp_viz.analysis.stages import StageDetector

    steps = np.array([0, 10, 100, 1000, 10000], float)
    found = StageDetector(significance=3).fit(steps, [1.0, 2.0, 3.0, 2.0, 1.0], np.full(5, 0.01))
    assert [(s["type"], s["estimates"]) for s in found.stages_] == [("rising", 3), ("falling", 3)]
    two = StageDetector(significance=3).fit(steps, [1.0, 1.0, 1.0, 1.0, 5.0], [0.1, 0.1, 0.1, np.nan, 0.1])
    assert [(s["start"], s["end"], s["estimates"]) for s in two.stages_] == [(0.0, 10000.0, 4)]  # the NaN one is left out


def test_printing_a_fitted_detector_lists_its_stages():
    """print(dvz.stages(...)) shows the stages found, one line each, not only the parameters."""
    steps = np.arange(1.0, 13.0)
    llc = np.array([1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0.5])
    detector = dvz.StageDetector(bandwidth=None).fit(steps, llc, np.full(12, 0.05))
    text = str(detector).splitlines()
    assert text[0].startswith(f"{len(detector.stages_)} stages of the LLC curve") and len(text) == 1 + len(detector.stages_) == 3
    first = detector.stages_[0]
    assert text[1] == f"  steps {first['start']:g}–{first['end']:g}: rising, {first['change']:+.3g} ({first['z']:.1f} SE, {first['estimates']} estimates)"
    assert str(dvz.StageDetector()) == repr(dvz.StageDetector())  # unfitted: its parameters
