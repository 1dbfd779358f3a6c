"""Diagnostics from traces: divergence exclusion, verdicts in words, never a silent NaN."""

from __future__ import annotations

import numpy as np

from devinterp_viz import LLCResult


def _traces(seed=0, chains=4, draws=200, level=1.05):
    rng = np.random.default_rng(seed)
    return level + 0.01 * rng.standard_normal((chains, draws))


def test_divergent_chain_is_excluded_from_the_mean_and_named():
    trace = _traces()
    trace[2, 41:] = np.nan
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100)
    assert res.diagnostics.divergent.tolist() == [False, False, True, False]
    assert res.diagnostics.divergence_draw[2] == 41
    assert "chain 2 diverged (became non-finite) at draw 41: lower lr" in res.diagnostics.reasons
    expected = 10.0 * (trace[[0, 1, 3]].mean(axis=1) - 1.0)
    assert np.isclose(res.llc_mean, expected.mean()) and np.isnan(res.llc_per_chain[2])
    assert np.isfinite(res.llc_mean) and not res.diagnostics.healthy


def test_exploding_chain_is_divergent_even_when_finite():
    trace = _traces()
    trace[1, 100:] = 1e5
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100)
    assert res.diagnostics.divergent[1] and "exploded" in res.diagnostics.reasons[0]


def test_negative_estimate_is_a_failure_with_advice():
    res = LLCResult.from_traces(_traces(level=0.95), init_loss=1.0, nbeta=10.0)
    assert not res.diagnostics.healthy
    assert any("negative" in r and "local minimum" in r for r in res.diagnostics.reasons)
    assert (res.diagnostics.fraction_below_init > 0.9).all()


def test_estimate_above_half_the_parameter_count_is_a_failure():
    res = LLCResult.from_traces(_traces(level=3.0), init_loss=1.0, nbeta=10.0, num_params=10)
    assert any("exceeds d/2" in r for r in res.diagnostics.reasons)


def test_disagreeing_chains_fail_on_rhat():
    trace = _traces()
    trace[0] += 0.2
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0)
    assert res.diagnostics.rhat > 1.3 and any("R-hat" in r for r in res.diagnostics.reasons)


def test_low_mala_acceptance_is_a_failure_and_high_a_warning():
    low = LLCResult.from_traces(_traces(), 1.0, 10.0, mala_trace=np.full((4, 200), 0.3))
    assert any("MALA acceptance is 0.30" in r for r in low.diagnostics.reasons)
    high = LLCResult.from_traces(_traces(), 1.0, 10.0, mala_trace=np.full((4, 200), 0.999))
    assert high.diagnostics.healthy and any("timid" in w for w in high.diagnostics.warnings)


def test_healthy_traces_are_healthy_and_summarised():
    res = LLCResult.from_traces(_traces(), init_loss=1.0, nbeta=10.0, mala_trace=np.full((4, 200), 0.9), num_params=100)
    assert res.diagnostics.healthy and res.diagnostics.reasons == []
    text = res.summary()
    assert "verdict: healthy" in text and "R-hat" in text and "MALA acceptance 0.900" in text


def test_empty_traces_say_so_instead_of_nan():
    res = LLCResult.from_traces(np.zeros((3, 0)), init_loss=1.0, nbeta=10.0)
    assert np.isnan(res.llc_mean) and not res.diagnostics.healthy
    assert "no draws" in res.diagnostics.reasons[0]


def test_drift_check_keeps_its_false_alarm_rate_with_few_chains():
    # Stationary iid chains: each chain's rise between the last two quarters is normal, so the
    # drift statistic is exactly Student's t with chains − 1 degrees of freedom, and the rate of
    # "still rising" must be DRIFT_FALSE_ALARM (1.4%) whatever the chain count. seed 0, 6000
    # replicates per count: SE = √(0.014·0.986/6000) = 0.15%, tolerance 4 SE. (A fixed t > 4
    # would flag 7.8% of 2-chain runs.)
    from devinterp_viz.engine.diagnostics import DRIFT_FALSE_ALARM, drift_statistic, drift_threshold

    rng = np.random.default_rng(0)
    replicates = 6000
    tolerance = 4 * np.sqrt(DRIFT_FALSE_ALARM * (1 - DRIFT_FALSE_ALARM) / replicates)
    for chains in (2, 3, 4):
        t = np.array([drift_statistic(rng.standard_normal((chains, 40)), 1.0)[1] for _ in range(replicates)])
        rate = float(np.mean(t > drift_threshold(chains)))
        assert abs(rate - DRIFT_FALSE_ALARM) < tolerance, (chains, rate)


def _stepped(rises, nbeta=10.0, draws=80, level=1.05):
    """Chains flat at ``level`` that step up by rise/nβ in their last quarter."""
    trace = np.full((len(rises), draws), level)
    for chain, rise in enumerate(rises):
        trace[chain, 3 * draws // 4 :] += rise / nbeta
    return trace


def test_two_chains_rising_together_fail_and_a_weak_rise_is_only_a_warning():
    # per-chain rises r1, r2 give t = (r1 + r2) / |r1 − r2| with 2 chains
    clear = LLCResult.from_traces(_stepped([1.0, 1.01]), init_loss=1.0, nbeta=10.0, num_params=100)  # t = 201
    assert any("still rising" in r for r in clear.diagnostics.reasons)
    weak = LLCResult.from_traces(_stepped([1.0, 0.8]), init_loss=1.0, nbeta=10.0, num_params=100)  # t = 9
    assert not any("still rising" in r for r in weak.diagnostics.reasons)
    assert any("run 4 or more chains" in w for w in weak.diagnostics.warnings)
    four = LLCResult.from_traces(_stepped([1.0, 0.8, 0.9, 0.85]), init_loss=1.0, nbeta=10.0, num_params=100)
    assert any("still rising" in r for r in four.diagnostics.reasons)  # t ≈ 20 > 4 with 4 chains
