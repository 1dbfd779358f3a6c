"""Diagnostics from traces: divergence, a local minimum, step bias, equilibrium, mixing — in words, with one next step."""

from __future__ import annotations

import numpy as np
import pytest

from devinterp_viz import LLCResult
from devinterp_viz.engine.diagnostics import CAUSES, Finding, RunFacts, next_step, step_bias


def _traces(seed=0, chains=4, draws=200, level=1.05):
    rng = np.random.default_rng(seed)
    return level + 0.01 * rng.standard_normal((chains, draws))


def _equilibrium_traces(num_params, chains=4, draws=200, seed=0):
    """Sampler traces of chains in equilibrium: the virial averages d, nothing descends."""
    rng = np.random.default_rng(seed)
    return {
        "virial": num_params + np.sqrt(2 * num_params) * rng.standard_normal((chains, draws)),
        "stein": np.zeros((chains, draws)),
        "drift_sq": np.zeros((chains, draws)),
        "descent": 1e-3 * rng.standard_normal((chains, draws)),
    }


CONFIG = {"sampler": "sgld", "lr": 1e-3, "localization": 10.0, "num_burnin_steps": 500, "num_draws": 200}


def test_divergent_chain_is_excluded_from_the_mean_and_named_and_the_next_step_lowers_lr():
    trace = _traces()
    trace[2, 41:] = np.nan
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100, config=CONFIG)
    d = res.diagnostics
    assert d.divergent.tolist() == [False, False, True, False] and d.divergence_draw[2] == 41
    assert "chain 2 diverged (became non-finite) at draw 41" in d.reasons
    expected = 10.0 * (trace[[0, 1, 3]].mean(axis=1) - 1.0)
    assert np.isclose(res.llc_mean, expected.mean()) and np.isnan(res.llc_per_chain[2])
    assert not d.healthy and d.status == "unhealthy" and d.causes[0] == "diverged"
    assert d.next_step["settings"]["lr"] == pytest.approx(2.5e-4)


def test_several_divergent_chains_are_counted_in_the_headline():
    trace = _traces()
    trace[1, 30:], trace[3, 12:], trace[0, 50:] = np.nan, np.inf, np.nan
    d = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100, config=CONFIG).diagnostics
    assert d.verdict == "unhealthy: 3 of 4 chains diverged, the first (chain 3) at draw 12"
    assert d.reasons[1:] == ["chain 0 diverged (became non-finite) at draw 50", "chain 1 diverged (became non-finite) at draw 30",
                             "chain 3 diverged (became non-finite) at draw 12"]
    assert d.causes == ["diverged"] * 4


def test_exploding_chain_is_divergent_even_when_finite():
    trace = _traces()
    trace[1, 100:] = 1e5
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100)
    assert res.diagnostics.divergent[1] and "exploded" in res.diagnostics.reasons[0]


def test_a_negative_estimate_means_w_star_is_not_a_minimum_and_the_llc_is_undefined():
    res = LLCResult.from_traces(_traces(level=0.95), init_loss=1.0, nbeta=10.0)
    d = res.diagnostics
    assert d.status == "undefined" and not d.healthy and "undefined" in d.verdict
    assert any("not a local minimum" in r for r in d.reasons)
    assert "undefined" in d.next_step["text"] and d.next_step["settings"] == {}


def test_chains_descending_along_the_gradient_at_w_star_make_the_llc_undefined_whatever_the_sign():
    traces = _equilibrium_traces(100)
    traces["descent"] = -0.5 + 0.01 * np.random.default_rng(1).standard_normal((4, 200))  # λ̂ = 0.5: half of it descent
    res = LLCResult.from_traces(_traces(), 1.0, 10.0, num_params=100, sampler_traces=traces, config=CONFIG)
    assert res.llc_mean > 0 and res.diagnostics.status == "undefined"
    assert res.diagnostics.descent == pytest.approx(-0.5, abs=0.01)


def test_estimate_above_half_the_parameter_count_is_a_step_too_large():
    res = LLCResult.from_traces(_traces(level=3.0), init_loss=1.0, nbeta=10.0, num_params=10)
    assert any("exceeds d/2" in r for r in res.diagnostics.reasons) and res.diagnostics.causes[0] == "step_too_large"


def test_disagreeing_chains_widen_the_error_bar_and_are_said():
    trace = _traces()
    trace[0] += 0.2
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, config=CONFIG)
    d = res.diagnostics
    assert d.rhat > 1.1 and any("R-hat" in w for w in d.warnings) and any("imprecise" in w for w in d.warnings)
    assert res.llc_se >= res.llc_std / 2  # the chains' disagreement is in the standard error


def test_chains_that_barely_moved_fail_and_ask_for_more_draws():
    rng = np.random.default_rng(0)
    ramps = np.linspace(0, 1, 200)[None, :] * np.array([[0.01], [-0.02], [0.015], [-0.005]])
    trace = 1.05 + ramps + 1e-6 * rng.standard_normal((4, 200))  # each chain creeps its own way: ESS of a few
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, config=CONFIG)
    d = res.diagnostics
    assert d.ess < 5 and d.causes == ["too_few_draws"]
    assert d.next_step["settings"] == {"num_draws": 800}


def test_low_mala_acceptance_is_a_step_too_large():
    low = LLCResult.from_traces(_traces(), 1.0, 10.0, mala_trace=np.full((4, 200), 0.3))
    assert any("MALA acceptance is 0.30" in r for r in low.diagnostics.reasons)
    assert low.diagnostics.causes == ["step_too_large"]


def test_a_virial_excess_is_read_as_step_bias():
    # every one of 4 coordinates 50% too spread: (E[δ·∇U] − d/(1 − εγ/4)) / 2 ≈ 1 against λ̂ = 0.5
    traces = _equilibrium_traces(4)
    traces["virial"] = traces["virial"] * 1.5
    res = LLCResult.from_traces(_traces(), 1.0, 10.0, num_params=4, sampler_traces=traces, config=CONFIG)
    assert res.diagnostics.causes[0] == "step_too_large" and res.diagnostics.step_bias > 0.5
    assert res.diagnostics.next_step["settings"]["lr"] < CONFIG["lr"]


def test_the_first_order_bias_of_a_gaussian_is_its_exact_discretisation_bias():
    # U = (a/2)|δ|² in d dims sampled exactly from SGLD's stationary law N(0, 1/(a(1 − εa/4))):
    # the first-order formula gives (ε/4)·nβ·E[∇U·∇L] − (ε/8)·Cov(nβL, |∇U|²) = εa/4 · λ to first order.
    rng = np.random.default_rng(0)
    d, nbeta, gamma, lr = 6, 50.0, 10.0, 1e-3
    a = 2 * nbeta + gamma
    delta = rng.standard_normal((8, 4000, d)) / np.sqrt(a * (1 - lr * a / 4))
    loss = (delta**2).sum(-1)
    grad_loss = 2 * delta
    drift = nbeta * grad_loss + gamma * delta
    traces = {"virial": (delta * drift).sum(-1), "stein": (drift * grad_loss).sum(-1), "drift_sq": (drift**2).sum(-1)}
    facts = RunFacts("sgld", lr, gamma, 0, 1, d)
    bias = step_bias(loss, nbeta, traces, facts)
    exact = nbeta * d / a * (1 / (1 - lr * a / 4) - 1)
    assert bias.first_order == pytest.approx(exact, rel=0.1)
    assert bias.virial == pytest.approx(exact, abs=4 * bias.virial_se)


def test_chains_not_yet_spread_into_the_posterior_need_burn_in_from_the_localization_time():
    traces = _equilibrium_traces(100)
    traces["virial"] = traces["virial"] * 0.5
    config = {**CONFIG, "num_burnin_steps": 0}
    res = LLCResult.from_traces(_traces(), 1.0, 10.0, num_params=100, sampler_traces=traces, config=config)
    d = res.diagnostics
    assert d.causes[0] == "not_equilibrated" and "50%" in d.reasons[0]
    assert d.next_step["settings"] == {"num_burnin_steps": 400}  # 2 × 2/(lr·γ)
    burned = LLCResult.from_traces(_traces(), 1.0, 10.0, num_params=100, sampler_traces=traces,
                                   config={**CONFIG, "num_burnin_steps": 1000})
    assert burned.diagnostics.causes == ["not_equilibrated"]  # a burn-in beyond the rule 2 × 2/(lr·γ) that did not help
    assert burned.diagnostics.next_step["settings"] == {"num_burnin_steps": 2000}
    traces["virial"] = traces["virial"] / 0.5 * 0.75
    spread = LLCResult.from_traces(_traces(), 1.0, 10.0, num_params=100, sampler_traces=traces, config=config)
    assert spread.diagnostics.healthy  # 75% of d: within what the benchmark found harmless


def test_an_impractical_burn_in_becomes_a_larger_lr():
    from devinterp_viz.engine.diagnostics import Finding, RunFacts, next_step

    stuck = [Finding("not_equilibrated", "the chains have not spread")]
    timid = next_step(stuck, RunFacts("sgld", 1e-7, 100.0, 100, 1, None), bias=0.0, llc=1.0, draws=300)
    # 2 × 2/(lr·γ) = 400 000 steps is over 10 × 300: the lr whose burn-in fits in 3000 steps, rounded up
    assert timid["settings"] == {"lr": 1.4e-5, "num_burnin_steps": 2858}  # ceil(4 / (1.4e-5 · 100))
    assert timid["text"].startswith("raise lr to 1.4e-05 with 2858 burn-in steps") and "400000" in timid["text"]
    fits = next_step(stuck, RunFacts("sgld", 1e-4, 100.0, 0, 1, None), bias=0.0, llc=1.0, draws=300)
    assert fits["settings"] == {"num_burnin_steps": 400}  # within 3000: the burn-in, as before


def test_healthy_traces_are_healthy_and_summarised():
    res = LLCResult.from_traces(_traces(), init_loss=1.0, nbeta=10.0, mala_trace=np.full((4, 200), 0.9), num_params=100,
                                sampler_traces=_equilibrium_traces(100), config=CONFIG)
    d = res.diagnostics
    assert d.healthy and d.reasons == [] and d.next_step == {} and d.status == "healthy"
    text = res.summary()
    assert "verdict: healthy" in text and "R-hat" in text and "MALA acceptance 0.900" in text and "step bias" in text


def test_missing_sampler_traces_make_the_verdict_healthy_only_as_far_as_checked():
    res = LLCResult.from_traces(_traces(), init_loss=1.0, nbeta=10.0)
    d = res.diagnostics
    assert d.unchecked == ["the step-size bias and equilibrium (the run's sampler traces are missing)"]
    assert d.healthy and d.status == "healthy" and d.label == "healthy as far as checked"
    assert d.verdict.startswith("healthy as far as checked: not checked: the step-size bias and equilibrium")
    assert not any("not checked" in w for w in d.warnings)  # said once, not also as a warning
    assert "  not checked: the step-size bias" in res.summary()
    assert type(d).from_dict(d.to_dict()).unchecked == d.unchecked
    saved_before = {**d.to_dict(), "warnings": ["the step-size bias and equilibrium were not checked: the run's "
                                                "sampler traces are missing"]}
    del saved_before["unchecked"]
    reread = type(d).from_dict(saved_before)  # a result saved before `unchecked`: its warning becomes it
    assert reread.unchecked == d.unchecked and reread.warnings == [] and reread.verdict == d.verdict
    checked = LLCResult.from_traces(_traces(), 1.0, 10.0, mala_trace=np.full((4, 200), 0.9), num_params=100,
                                    sampler_traces=_equilibrium_traces(100), config=CONFIG).diagnostics
    assert checked.unchecked == [] and checked.label == "healthy" and checked.verdict == "healthy"


def test_empty_traces_say_so_instead_of_nan():
    res = LLCResult.from_traces(np.zeros((3, 0)), init_loss=1.0, nbeta=10.0)
    assert np.isnan(res.llc_mean) and not res.diagnostics.healthy
    assert "no draws" in res.diagnostics.reasons[0]


def test_a_too_large_step_is_lowered_by_its_measured_curvature_and_a_diverged_run_keeps_its_draws():
    facts = RunFacts("sgld", 0.019, 100.0, 100, 1, 60)
    biased = next_step([Finding("step_too_large", "c")], facts, bias=1.0, llc=10.0, draws=300, curvature=0.89)
    # ε·ā/4 = 0.89 against the 0.05 limit: to half the limit in one step, 0.019 · 0.025 / 0.89
    assert biased["settings"]["lr"] == float(f"{0.019 * 0.025 / 0.89:.2g}")
    assert biased["settings"]["num_draws"] == 4 * 300  # the smaller step's draws grow at most 4×
    mild = next_step([Finding("step_too_large", "c")], facts, bias=1.0, llc=10.0, draws=300, curvature=0.01)
    assert mild["settings"]["lr"] == float(f"{0.019 * 0.5:.2g}")  # curvature within its limit: the bias decides
    diverged = next_step([Finding("diverged", "d")], facts, bias=float("nan"), llc=float("nan"), draws=300)
    assert diverged["settings"]["lr"] == float(f"{0.019 / 4:.2g}") and "num_draws" not in diverged["settings"]


def test_the_next_step_attends_to_the_most_basic_cause_first():
    facts = RunFacts("sgld", 1e-3, 10.0, 0, 1, 10)
    findings = [Finding("too_few_draws", "a"), Finding("not_equilibrated", "b"), Finding("step_too_large", "c")]
    assert next_step(findings, facts, bias=1.0, llc=2.0, draws=100)["cause"] == "step_too_large"
    assert list(CAUSES) == ["not_a_minimum", "diverged", "step_too_large", "not_equilibrated", "too_few_draws"]


def test_drift_check_keeps_its_false_alarm_rate_with_few_chains():
    # Stationary iid chains: each chain's rise between the last two quarters is normal, so the
    # drift statistic is exactly Student's t with chains − 1 degrees of freedom, and the rate of
    # "still rising" must be DRIFT_FALSE_ALARM (1.4%) whatever the chain count. seed 0, 6000
    # replicates per count: SE = √(0.014·0.986/6000) = 0.15%, tolerance 4 SE.
    from devinterp_viz.engine.chain_statistics import DRIFT_FALSE_ALARM, drift_statistic, drift_threshold

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


def test_a_step_bias_over_the_limit_but_within_its_noise_is_unchecked_not_a_failure():
    from devinterp_viz.engine.diagnostics import StepBias, _judge_step

    nan = float("nan")
    findings, unchecked = [], []
    # +0.2 on an estimate of 0.36 (55%, over the 10% limit) with a standard error of 0.3: not significant
    _judge_step(0.36, StepBias(0.2, 0.3, nan, nan), np.full(4, nan), findings, unchecked)
    assert findings == [] and len(unchecked) == 1 and "sample longer" in unchecked[0]
    # the limit in the estimate's units, not a share of λ̂ that the noise makes meaningless (+0.2 ± 0.3 is "56%")
    assert unchecked[0].startswith("step bias too noisy to tell: its estimate +0.2 ± 0.3 cannot say whether it is over "
                                   "the limit of 0.036 (10% of λ̂)")
    _judge_step(0.36, StepBias(0.2, 0.01, nan, nan), np.full(4, nan), findings, unchecked := [])
    assert [f.cause for f in findings] == ["step_too_large"] and unchecked == []  # significant: a failure, said once
    _judge_step(0.36, StepBias(0.02, 0.3, nan, nan), np.full(4, nan), findings := [], unchecked := [])
    assert findings == [] and unchecked == []  # under the limit: nothing to say


def test_a_run_whose_step_bias_is_too_noisy_to_tell_is_healthy_only_as_far_as_checked():
    # seed 0; 4 chains whose virial excess (the step bias) is +0.6, −0.3, +0.7, −0.2 against λ̂ = 0.5:
    # mean +0.2 (40%, over the 10% limit), standard error across chains 0.25 — within its own noise
    traces = _equilibrium_traces(4)
    free = 4 / (1 - CONFIG["lr"] * CONFIG["localization"] / 4)
    excess = np.array([0.6, -0.3, 0.7, -0.2])
    traces["virial"] = traces["virial"] - traces["virial"].mean(axis=1, keepdims=True) + free + 2 * excess[:, None]
    res = LLCResult.from_traces(_traces(), 1.0, 10.0, num_params=4, sampler_traces=traces, config=CONFIG)
    d = res.diagnostics
    assert d.status == "healthy" and d.healthy  # status values stay as bench/known_answers.py reads them
    assert d.label == "healthy as far as checked"
    se = excess.std(ddof=1) / 2
    assert np.isclose(d.step_bias, 0.2) and np.isclose(d.step_bias_se, se)
    shown = f"+0.2 ± {se:.2g} ({100 * 0.2 / res.llc_mean:.2g}% of λ̂)"
    limit = 0.1 * res.llc_mean
    assert d.unchecked == [f"step bias too noisy to tell: its estimate +0.2 ± {se:.2g} cannot say whether it is over the "
                           f"limit of {limit:.2g} (10% of λ̂); sample longer (more draws) to tell whether the step is too large"]
    assert d.verdict.startswith("healthy as far as checked: not checked: step bias too noisy to tell: its estimate +0.2")
    assert f"step bias {shown}" in d.summary() and f"step bias {shown}" in repr(d)
    assert "healthy as far as checked" in repr(res) and "too noisy to tell" in res.summary()
    assert not d.warnings  # said once, as a check that could not tell, not also as a warning


def test_a_step_bias_over_the_estimate_itself_is_read_as_far_too_large():
    from devinterp_viz.engine.diagnostics import StepBias, _judge_step

    nan = float("nan")
    findings = []
    _judge_step(0.357, StepBias(0.546, 0.01, nan, nan), np.full(4, nan), findings, [])
    assert findings[0].message.startswith("the step biases the estimate by about +0.55 (153% of it); a bias this large")
    _judge_step(0.357, StepBias(0.1, 0.01, nan, nan), np.full(4, nan), findings := [], [])
    assert findings[0].message == "the step biases the estimate by about +0.1 (28% of it)"


def test_chains_that_diverged_in_burn_in_say_at_which_step_of_the_burn_in_and_ask_for_a_tenth_of_the_lr():
    trace = np.full((4, 200), np.nan)  # no finite draw: the chains went non-finite before draw 0
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100, config=CONFIG,
                                burnin_divergence_step=np.array([37, 12, 40, 12]))
    d = res.diagnostics
    assert d.divergent.all() and d.burnin_divergence_step.tolist() == [37, 12, 40, 12]
    assert d.reasons[0] == "4 of 4 chains diverged, the first (chain 1) during burn-in at step 12 of 500"
    assert "chain 0 diverged (became non-finite) during burn-in at step 37 of 500" in d.reasons
    assert not any("at draw" in r for r in d.reasons)  # no draw was ever reached
    assert d.next_step["settings"]["lr"] == pytest.approx(CONFIG["lr"] / 10)
    assert d.next_step["text"].startswith("diverged during burn-in at step 12 of 500: lower lr to 0.0001 (lr/10)")
    assert d.burnin_message == d.next_step["text"]


def test_one_chain_diverging_in_burn_in_is_named_beside_chains_that_diverged_while_drawing():
    trace = _traces()
    trace[0] = np.nan
    trace[3, 50:] = np.nan
    res = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100, config=CONFIG,
                                burnin_divergence_step=np.array([7, -1, -1, -1]))
    d = res.diagnostics
    assert d.reasons[:3] == ["2 of 4 chains diverged, the first (chain 0) during burn-in at step 7 of 500",
                             "chain 0 diverged (became non-finite) during burn-in at step 7 of 500",
                             "chain 3 diverged (became non-finite) at draw 50"]
    assert d.burnin_divergence_step.tolist() == [7, -1, -1, -1] and "lr/10" in d.next_step["text"]
    # the same traces without a burn-in record: the draws are all the verdict can go by
    plain = LLCResult.from_traces(trace, init_loss=1.0, nbeta=10.0, num_params=100, config=CONFIG).diagnostics
    assert "chain 0 diverged (became non-finite) at draw 0" in plain.reasons and plain.burnin_message == ""
    assert "lr/10" not in plain.next_step["text"]


def test_a_burn_in_divergence_survives_the_diagnostics_json_and_older_json_reads_as_none():
    res = LLCResult.from_traces(np.full((2, 50), np.nan), init_loss=1.0, nbeta=10.0, config=CONFIG,
                                burnin_divergence_step=np.array([3, 5]))
    back = type(res.diagnostics).from_dict(res.diagnostics.to_dict())
    assert back.burnin_divergence_step.tolist() == [3, 5] and back.burnin_message == res.diagnostics.burnin_message
    older = {k: v for k, v in res.diagnostics.to_dict().items() if k != "burnin_divergence_step"}
    assert type(res.diagnostics).from_dict(older).burnin_divergence_step.tolist() == [-1, -1]


def test_without_lr_in_the_config_a_burn_in_divergence_still_says_what_to_do():
    res = LLCResult.from_traces(np.full((2, 50), np.nan), init_loss=1.0, nbeta=10.0, config={"num_burnin_steps": 100},
                                burnin_divergence_step=np.array([3, 5]))
    assert res.diagnostics.next_step["text"] == "diverged during burn-in at step 3 of 100: lower lr (e.g. lr/10)"
