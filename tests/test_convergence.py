"""Rank-normalised split R-hat and bulk ESS: agreement with arviz-stats and edge-case behaviour."""

import numpy as np
import pytest

from devinterp_viz.engine.convergence import bulk_ess, mcse_mean, split_rhat

# Same formulas, different kernels (numpy ranks, ndtri, FFT length): agreement is at rounding
# level in practice; 1e-6 leaves room without hiding a formula change.
ORACLE_RTOL = 1e-6


def _ar1_chains(phi, shape, seed):
    """AR(1) chains x_t = phi x_{t-1} + e_t, started from the stationary distribution."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=shape)
    chains = np.empty(shape)
    chains[:, 0] = noise[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, shape[1]):
        chains[:, t] = phi * chains[:, t - 1] + noise[:, t]
    return chains


def _shifted_means(seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4, 500)) + np.array([[0.0], [0.0], [0.0], [1.5]])


def _with_infinities(seed):
    chains = np.random.default_rng(seed).normal(size=(4, 300))
    chains[0, 10], chains[2, 200], chains[3, 5] = np.inf, -np.inf, np.inf
    return chains


def _mostly_infinite(seed):
    """Over half the draws +inf: the median is infinite, so the folded (tail) R-hat is undefined."""
    rng = np.random.default_rng(seed)
    chains = rng.normal(size=(4, 200))
    chains[rng.random(chains.shape) < 0.6] = np.inf
    return chains


ORACLE_INPUTS = {
    "iid_normal": lambda: np.random.default_rng(0).normal(size=(4, 500)),
    "ar1_strong_autocorrelation": lambda: _ar1_chains(0.95, (4, 1000), seed=1),
    "ar1_antithetic": lambda: _ar1_chains(-0.6, (4, 400), seed=2),
    "shifted_means": lambda: _shifted_means(seed=3),
    "heavy_tails_cauchy": lambda: np.random.default_rng(4).standard_cauchy(size=(4, 500)),
    "odd_draws_with_ties": lambda: np.random.default_rng(5).integers(0, 5, size=(3, 101)),
    "with_infinities": lambda: _with_infinities(seed=6),
    "mostly_infinite": lambda: _mostly_infinite(seed=7),
    "minimum_size": lambda: np.random.default_rng(8).normal(size=(2, 4)),
}


@pytest.fixture(scope="module")
def oracle():
    """arviz-stats' array-level diagnostics, the reference implementation."""
    pytest.importorskip("arviz_stats")
    from arviz_stats.base import array_stats

    return array_stats


@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")
@pytest.mark.parametrize("name", ORACLE_INPUTS)
def test_split_rhat_matches_arviz_stats_rank_rhat(oracle, name):
    chains = ORACLE_INPUTS[name]()
    expected = float(oracle.rhat(chains, chain_axis=0, draw_axis=1, method="rank"))
    np.testing.assert_allclose(split_rhat(chains), expected, rtol=ORACLE_RTOL)


@pytest.mark.parametrize("name", ORACLE_INPUTS)
def test_bulk_ess_matches_arviz_stats_bulk_ess(oracle, name):
    chains = ORACLE_INPUTS[name]()
    expected = float(oracle.ess(chains, chain_axis=0, draw_axis=1, method="bulk"))
    np.testing.assert_allclose(bulk_ess(chains), expected, rtol=ORACLE_RTOL)


def test_bulk_ess_of_a_single_chain_matches_arviz_stats(oracle):
    chain = _ar1_chains(0.5, (1, 300), seed=9)
    expected = float(oracle.ess(chain, chain_axis=0, draw_axis=1, method="bulk"))
    np.testing.assert_allclose(bulk_ess(chain), expected, rtol=ORACLE_RTOL)


def test_split_rhat_flags_chains_with_shifted_means():
    assert split_rhat(_shifted_means(seed=3)) > 1.1


def test_split_rhat_of_iid_chains_is_close_to_one():
    chains = np.random.default_rng(0).normal(size=(4, 500))
    assert abs(split_rhat(chains) - 1) < 0.01


def test_bulk_ess_of_iid_chains_is_close_to_draw_count():
    chains = np.random.default_rng(0).normal(size=(4, 500))
    assert 0.8 * chains.size < bulk_ess(chains) < 1.2 * chains.size


def test_bulk_ess_of_strongly_autocorrelated_chains_is_far_below_draw_count():
    # AR(1) with phi = 0.95 has ESS / N = (1 - phi) / (1 + phi) ~ 0.026.
    chains = _ar1_chains(0.95, (4, 1000), seed=1)
    assert bulk_ess(chains) < 0.1 * chains.size


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
@pytest.mark.parametrize("n_draws", [0, 1, 2, 3])
def test_fewer_than_four_draws_gives_nan(diagnostic, n_draws):
    chains = np.random.default_rng(0).normal(size=(4, n_draws))
    assert np.isnan(diagnostic(chains))


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
def test_four_draws_is_enough(diagnostic):
    chains = np.random.default_rng(0).normal(size=(4, 4))
    assert np.isfinite(diagnostic(chains))


def test_split_rhat_of_a_single_chain_is_nan():
    assert np.isnan(split_rhat(np.random.default_rng(0).normal(size=(1, 100))))


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
@pytest.mark.parametrize("value", [0.0, 3.5, np.inf])
def test_constant_draws_give_nan(diagnostic, value):
    assert np.isnan(diagnostic(np.full((4, 50), value)))


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
def test_nan_in_draws_gives_nan(diagnostic):
    chains = np.random.default_rng(0).normal(size=(4, 50))
    chains[2, 17] = np.nan
    assert np.isnan(diagnostic(chains))


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
def test_infinite_draws_give_a_finite_diagnostic(diagnostic):
    assert np.isfinite(diagnostic(_with_infinities(seed=6)))


def test_split_rhat_of_chains_stuck_at_different_values_is_infinite():
    chains = np.repeat(np.arange(4.0)[:, None], 50, axis=1)
    assert split_rhat(chains) == np.inf


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
@pytest.mark.parametrize("axes", [(1, 0), (-1, -2), (-1, 0)])
def test_draw_by_chain_layout_gives_same_value_with_swapped_axes(diagnostic, axes):
    chains = _ar1_chains(0.8, (4, 200), seed=10) + np.arange(4.0)[:, None] * 0.3
    chain_axis, draw_axis = axes
    assert diagnostic(chains.T, chain_axis=chain_axis, draw_axis=draw_axis) == diagnostic(chains)


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
def test_default_axes_read_chains_along_rows(diagnostic):
    # Rows as chains and rows as draws must differ, or the axis arguments would be ignored.
    chains = _ar1_chains(0.8, (4, 200), seed=10)[:, :40]
    assert diagnostic(chains) != diagnostic(chains, chain_axis=1, draw_axis=0)


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
@pytest.mark.parametrize("shape", [(100,), (2, 3, 50)])
def test_non_2d_input_raises(diagnostic, shape):
    with pytest.raises(ValueError, match="2-D"):
        diagnostic(np.zeros(shape))


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
def test_same_chain_and_draw_axis_raises(diagnostic):
    with pytest.raises(ValueError):
        diagnostic(np.zeros((4, 50)), chain_axis=0, draw_axis=-2)


@pytest.mark.parametrize("diagnostic", [split_rhat, bulk_ess])
def test_diagnostics_return_python_floats(diagnostic):
    value = diagnostic(np.random.default_rng(0).normal(size=(4, 50)))
    assert type(value) is float


@pytest.mark.parametrize("name", ORACLE_INPUTS)
def test_mcse_mean_matches_arviz_stats(oracle, name):
    chains = ORACLE_INPUTS[name]()
    if not np.isfinite(chains).all():
        assert np.isnan(mcse_mean(chains))
        return
    expected = float(oracle.mcse(chains, chain_axis=0, draw_axis=1, method="mean"))
    np.testing.assert_allclose(mcse_mean(chains), expected, rtol=ORACLE_RTOL)


def test_mcse_mean_of_iid_chains_is_the_standard_error_of_the_mean():
    # seed 0; 4 × 2000 iid N(0, 1): MCSE = 1/sqrt(8000) up to the ±3% of an ESS estimate
    chains = np.random.default_rng(0).normal(size=(4, 2000))
    assert mcse_mean(chains) == pytest.approx(1 / np.sqrt(chains.size), rel=0.05)
