"""from_devinterp against real devinterp 1.3.2 / 2.0.1 outputs stored in tests/data.

The fixtures are written by bench/make_interop_fixtures.py (devinterp itself is not needed
here). Tolerances: devinterp computes in float32, so per-chain LLCs are compared to
``rtol=1e-5, atol=1e-5`` (float32 rounding of losses ~1 times nβ ~10 gives ~1e-6); covariances of
float32 losses (~1) over 240 draws to ``atol=1e-6`` (their own float32 sums round at ~1e-7).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import devinterp_viz as dvz
from devinterp_viz.adapters import from_devinterp, susceptibilities_from_devinterp
from devinterp_viz.engine.results import LLCResult

DATA = Path(__file__).parent / "data"
TOL = dict(rtol=1e-5, atol=1e-5)


def _decode(value):
    if isinstance(value, dict) and "__array__" in value:
        return np.asarray(value["__array__"], dtype=value["dtype"])
    return value


@pytest.fixture(scope="module")
def v1_runs():
    runs = json.loads((DATA / "devinterp1_results.json").read_text())["runs"]
    return {name: ({k: _decode(v) for k, v in run["result"].items()}, run["truth"]) for name, run in runs.items()}


def _dataset(encoded):
    xr = pytest.importorskip("xarray")
    ds = xr.Dataset.from_dict(encoded)
    for name, var in encoded["data_vars"].items():
        ds[name] = ds[name].astype(var["dtype"])
    return ds


@pytest.fixture(scope="module")
def v2_runs():
    xr = pytest.importorskip("xarray")
    runs = json.loads((DATA / "devinterp2_results.json").read_text())["runs"]
    return {
        name: (xr.DataTree(dataset=_dataset(run["sample"]["root"])), _dataset(run["compute_llc"]["dataset"]), run["settings"])
        for name, run in runs.items()
    }


# ----------------------------------------------------------------------------- devinterp 1.x
def test_v1_summary_reproduces_devinterp_and_recovers_nbeta_init_loss(v1_runs):
    d, truth = v1_runs["summary_mala"]
    res = from_devinterp(d)
    assert isinstance(res, LLCResult)
    chains, draws = d["loss/trace"].shape
    assert res.loss_trace.shape == (chains, draws) == (3, 20)
    theirs = np.array([d[f"llc-chain/{i}"] for i in range(chains)])
    np.testing.assert_allclose(res.llc_per_chain, theirs, **TOL)
    assert res.llc_mean == pytest.approx(d["llc/mean"], rel=1e-5)
    assert res.llc_std == pytest.approx(d["llc/std"], rel=1e-4)  # both ddof=1 (torch's default)
    # neither is stored: both recovered from llc-chain/i; nβ snapped to devinterp's 32/ln 32
    assert res.nbeta == pytest.approx(truth["nbeta"], rel=1e-12)
    assert res.nbeta == pytest.approx(32 / math.log(32), rel=1e-12)
    assert res.init_loss == pytest.approx(truth["init_loss"], rel=1e-5)
    assert res.config["nbeta_source"].startswith("inferred")
    assert res.config["devinterp_llc_mean"] == d["llc/mean"]


def test_v1_mala_trace_is_realigned_to_draws(v1_runs):
    d, _ = v1_runs["summary_mala"]
    raw = d["mala_accept/trace"]
    assert raw.shape == (3, 19) and np.all(raw[:, 0] == 0)  # devinterp never writes column 0
    res = from_devinterp(d)
    assert res.mala_trace.shape == res.loss_trace.shape
    assert np.all(np.isnan(res.mala_trace[:, :2]))
    np.testing.assert_array_equal(res.mala_trace[:, 2:], raw[:, 1:].astype(float))
    assert res.diagnostics.mala_acceptance.shape == (3,)
    np.testing.assert_allclose(res.diagnostics.mala_acceptance, raw[:, 1:].mean(axis=1), rtol=1e-6)


def test_v1_online_reproduces_per_draw_means_and_stds(v1_runs):
    d, truth = v1_runs["online"]
    res = from_devinterp(d)
    assert res.loss_trace.shape == (4, 20)
    assert res.nbeta == 10.0  # recovered from llc/trace, L(w*) stored
    assert res.init_loss == truth["init_loss"] == d["init_loss"]
    inst = res.nbeta * (res.loss_trace - res.init_loss)  # devinterp's llc/trace is per draw, not running
    np.testing.assert_allclose(inst, d["llc/trace"], **TOL)
    np.testing.assert_allclose(inst.mean(axis=0), d["llc/means"], **TOL)
    np.testing.assert_allclose(inst.std(axis=0, ddof=1), d["llc/stds"], **TOL)
    np.testing.assert_allclose(res.llc_per_chain, d["llc/trace"].mean(axis=1), **TOL)
    assert np.all(np.isnan(res.mala_trace))


def test_v1_explicit_arguments_win_and_are_recorded(v1_runs):
    d, truth = v1_runs["summary_mala"]
    res = from_devinterp(d, nbeta=truth["nbeta"], init_loss=truth["init_loss"], config={"model": "tiny mlp"})
    assert res.nbeta == truth["nbeta"] and res.init_loss == truth["init_loss"]
    assert res.config["nbeta_source"] == res.config["init_loss_source"] == "argument"
    assert res.config["model"] == "tiny mlp"
    np.testing.assert_allclose(res.llc_per_chain, [d[f"llc-chain/{i}"] for i in range(3)], **TOL)
    with pytest.warns(UserWarning, match="not nbeta"):
        from_devinterp(d, nbeta=2 * truth["nbeta"], init_loss=truth["init_loss"])


def test_v1_diagnostics_exist(v1_runs):
    for d, _ in v1_runs.values():
        diag = from_devinterp(d).diagnostics
        assert np.isfinite(diag.ess) and diag.divergent.shape == (d["loss/trace"].shape[0],)
        assert isinstance(diag.healthy, bool) and isinstance(diag.verdict, str)
        assert isinstance(diag.reasons, list)


def test_v1_one_chain_needs_an_argument(v1_runs):
    d, truth = v1_runs["summary_mala"]
    one = {"loss/trace": d["loss/trace"][:1], "llc-chain/0": d["llc-chain/0"], "llc/mean": d["llc-chain/0"]}
    with pytest.raises(ValueError, match=r"Pass nbeta=\.\.\. and init_loss=\.\.\."):
        from_devinterp(one)
    res = from_devinterp(one, nbeta=truth["nbeta"])
    assert res.init_loss == pytest.approx(truth["init_loss"], rel=1e-5)
    with pytest.raises(ValueError, match=r"Pass nbeta=\.\.\. and init_loss=\.\.\."):
        from_devinterp({"loss/trace": d["loss/trace"]})  # no LLC values at all
    res = from_devinterp({"loss/trace": d["loss/trace"]}, nbeta=truth["nbeta"], init_loss=truth["init_loss"])
    assert res.llc_mean == pytest.approx(d["llc/mean"], rel=1e-5)


def test_v1_accepts_torch_tensors_and_lists(v1_runs):
    torch = pytest.importorskip("torch")
    d, _ = v1_runs["summary_mala"]
    as_tensors = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in d.items()}
    as_lists = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in d.items()}
    base = from_devinterp(d)
    for variant in (as_tensors, as_lists):
        np.testing.assert_allclose(from_devinterp(variant).llc_per_chain, base.llc_per_chain)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("loss/trace"), "no 'loss/trace'"),
        (lambda d: d.update({"loss/trace": d["loss/trace"][0]}), r"shape \(chains, draws\)"),
        (lambda d: d.update({"loss/trace": d["loss/trace"][None]}), r"shape \(chains, draws\)"),
        (lambda d: d.update({"loss/trace": d["loss/trace"][:, :0]}), r"shape \(chains, draws\)"),
        (lambda d: d.pop("llc-chain/1"), "llc-chain/0 .. llc-chain/2"),
        (lambda d: d.update({"llc-chain/3": 0.1}), "llc-chain/0 .. llc-chain/2"),
        (lambda d: d.update({"mala_accept/trace": d["mala_accept/trace"][:, :5]}), "mala_accept/trace"),
        (lambda d: d.update({"llc/trace": np.zeros((2, 20))}), "'llc/trace' must have shape"),
        (lambda d: d.update({"llc/mean": [1.0, 2.0]}), "single number"),
        (lambda d: d.update({"llc-chain/0": 5.0, "llc-chain/1": -3.0, "llc-chain/2": 40.0}), "not nbeta"),
        (lambda d: d.update({"loss/trace": np.full((3, 20), "x")}), "not a numeric array"),
    ],
)
def test_v1_bad_input_raises_clear_value_error(v1_runs, mutate, message):
    d = dict(v1_runs["summary_mala"][0])
    mutate(d)
    with pytest.raises(ValueError, match=message):
        from_devinterp(d)


def test_bad_arguments_and_types():
    with pytest.raises(TypeError, match="devinterp 1.x result dicts"):
        from_devinterp(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="nbeta must be a positive number"):
        from_devinterp({"loss/trace": np.ones((2, 3))}, nbeta=-1.0, init_loss=0.0)
    with pytest.raises(ValueError, match="init_loss must be a finite number"):
        from_devinterp({"loss/trace": np.ones((2, 3))}, nbeta=1.0, init_loss=float("nan"))
    with pytest.raises(ValueError, match="does not exist"):
        from_devinterp("/nonexistent/samples.zarr")


# ----------------------------------------------------------------------------- devinterp 2.x
def test_v2_datatree_reproduces_compute_llc(v2_runs):
    tree, llc, settings = v2_runs["lm"]
    res = from_devinterp(tree)
    chains, draws = settings["num_chains"], settings["num_draws"]
    assert res.loss_trace.shape == (chains, draws) == (3, 20)
    np.testing.assert_allclose(res.loss_trace, llc["loss_trace"].values, **TOL)
    np.testing.assert_allclose(res.llc_per_chain, llc["llc_per_chain"].values, **TOL)
    assert res.llc_mean == pytest.approx(float(llc["llc_mean"]), abs=1e-5)
    # devinterp 2 reports xarray's std (ddof=0); ours is ddof=1
    assert res.llc_std * math.sqrt((chains - 1) / chains) == pytest.approx(float(llc["llc_std"]), rel=1e-4)
    assert res.nbeta == settings["n_beta"] == 10.0
    assert res.init_loss == pytest.approx(float(llc["init_loss"]), rel=1e-6)
    cfg = res.config
    assert cfg["source"] == "devinterp 2.x" and cfg["sampler"] == "sgld"
    assert cfg["lr"] == settings["lr"] and cfg["localization"] == settings["localization"]
    assert cfg["num_chains"] == chains and cfg["seed"] == settings["init_seed"]
    assert not res.partial
    assert np.all(np.isnan(res.mala_trace)) and res.diagnostics.mala_acceptance.shape == (chains,)
    assert isinstance(res.diagnostics.healthy, bool) and np.isfinite(res.diagnostics.ess)


def test_v2_root_dataset_works_like_the_tree(v2_runs):
    tree, _, _ = v2_runs["lm"]
    a, b = from_devinterp(tree), from_devinterp(tree.to_dataset())
    np.testing.assert_array_equal(a.loss_trace, b.loss_trace)
    assert a.nbeta == b.nbeta and a.init_loss == b.init_loss


def test_v2_compute_llc_dataset_recovers_nbeta(v2_runs):
    _, llc, settings = v2_runs["lm"]
    res = from_devinterp(llc)
    assert res.nbeta == settings["n_beta"]  # inferred from llc_per_chain, snapped to 10
    assert res.config["nbeta_source"] == "inferred from llc_per_chain"
    assert res.init_loss == float(llc["init_loss"])
    np.testing.assert_allclose(res.llc_per_chain, llc["llc_per_chain"].values, **TOL)
    assert res.llc_mean == pytest.approx(float(llc["llc_mean"]), abs=1e-5)


def test_v2_burnin_uses_draws_only(v2_runs):
    tree, llc, settings = v2_runs["lm_burnin"]
    res = from_devinterp(tree)
    burnin, every, draws = settings["num_burnin_steps"], settings["num_steps_bw_draws"], settings["num_draws"]
    assert res.loss_trace.shape == (2, draws)
    assert llc["loss_trace"].shape == (2, burnin + every * draws)  # devinterp's trace: every step
    steps = burnin + every * np.arange(draws)
    np.testing.assert_allclose(res.loss_trace, llc["loss_trace"].values[:, steps], **TOL)
    # devinterp's own number (every step, burn-in included) is kept in the config
    np.testing.assert_allclose(res.config["devinterp_llc_per_chain"], llc["llc_per_chain"].values, **TOL)
    # without sampling_loss the draws are picked out of sampling_loss_micro
    micro_only = from_devinterp(tree.to_dataset().drop_vars("sampling_loss"))
    np.testing.assert_allclose(micro_only.loss_trace, res.loss_trace, **TOL)


def test_v2_missing_metadata_needs_nbeta(v2_runs):
    tree, llc, _ = v2_runs["lm"]
    bare = tree.to_dataset()
    bare.attrs = {}
    with pytest.raises(ValueError, match=r"Pass nbeta=\.\.\."):
        from_devinterp(bare)
    assert from_devinterp(bare, nbeta=10.0).llc_mean == pytest.approx(float(llc["llc_mean"]), abs=1e-5)
    with pytest.raises(ValueError, match="init_loss"):
        from_devinterp(bare.drop_vars("init_loss"), nbeta=10.0)
    with pytest.raises(ValueError, match=r"nbeta=\.\.\."):
        from_devinterp(llc.drop_vars("llc_per_chain"))
    with pytest.warns(UserWarning, match="overrides"):
        from_devinterp(tree, nbeta=20.0)


def test_v2_bad_datasets_raise(v2_runs):
    tree, llc, _ = v2_runs["lm"]
    with pytest.raises(ValueError, match="none of devinterp 2.x's loss variables"):
        from_devinterp(llc[["llc_mean"]])
    wrong = tree.to_dataset().rename_dims({"draw": "sample"}).drop_vars("sampling_loss_micro")
    with pytest.raises(ValueError, match=r"must have dimensions \('chain', 'draw'\)"):
        from_devinterp(wrong)


def test_v2_netcdf_path(v2_runs, tmp_path):
    _, llc, _ = v2_runs["lm"]
    path = tmp_path / "llc.nc"
    try:
        llc.to_netcdf(path)
    except (ValueError, ImportError) as err:  # no netCDF engine installed
        pytest.skip(f"cannot write netCDF here: {err}")
    res = from_devinterp(path)
    np.testing.assert_allclose(res.llc_per_chain, llc["llc_per_chain"].values, **TOL)


# ----------------------------------------------------------------------------- devinterp 2.x observables
def test_v2_observables_become_per_token_observables(v2_runs):
    tree, _, settings = v2_runs["lm"]
    res = from_devinterp(tree)
    probe = tree.to_dataset()["loss_probe"].values  # (chain, draw, batch_probe, token_pos)
    chains, draws, sequences, positions = probe.shape
    assert set(res.observables) == {"probe"} and res.observables["probe"].shape == (chains, draws, sequences * positions)
    index = res.observable_index["probe"]
    for column in (0, 5, sequences * positions - 1):
        b, t = index[column]
        np.testing.assert_array_equal(res.observables["probe"][:, :, column], probe[:, :, b, t])


@pytest.fixture(scope="module")
def v2_covariances():
    xr = pytest.importorskip("xarray")
    d = json.loads((DATA / "devinterp2_covariances.json").read_text())
    samples = {name: xr.DataTree(dataset=_dataset(tree["root"])) for name, tree in d["samples"].items()}
    sus = xr.DataTree.from_dict({f"/{name}": _dataset(ds) for name, ds in d["susceptibilities"]["children"].items()})
    return samples, sus, _dataset(d["bif_covariance"]["dataset"]), _dataset(d["bif_correlation"]["dataset"]), d["settings"]


def _between_chain_term(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_c (ā_c − ā)(b̄_c − b̄)ᵀ of (chains, draws, p) and (chains, draws, q) arrays."""
    da = a.mean(axis=1) - a.mean(axis=(0, 1))
    db = b.mean(axis=1) - b.mean(axis=(0, 1))
    return da.T @ db


def test_v2_bif_is_ours_with_chains_pooled_before_centring(v2_covariances):
    """devinterp's ``compute_bif(compute_covariance=True)`` centres over all draws of all chains (ddof 1);
    ours centres within each chain. On devinterp's own draws the two satisfy, exactly,
    (CT − 1)·theirs = C(T − 1)·(−ours) + T·Σ_c (ℓ̄_c − ℓ̄)(ℓ̄_c − ℓ̄)ᵀ."""
    samples, _, bif_cov, bif_corr, _ = v2_covariances
    res = from_devinterp(samples["full"])
    influences = bif_cov["influences"].values  # (batch_1, batch_2, target_position, target_position_T)
    # compute_bif concatenates the observables in sorted order along batch: probe (8 rows), then train
    rows = res.observable_index["probe"]
    theirs = influences[rows[:, 0][:, None], rows[:, 0][None, :], rows[:, 1][:, None], rows[:, 1][None, :]]
    values = res.observables["probe"].astype(np.float64)
    chains, draws, _ = values.shape
    ours = dvz.bif(res, "probe").value
    expected = (chains * (draws - 1) * -ours + draws * _between_chain_term(values, values)) / (chains * draws - 1)
    np.testing.assert_allclose(theirs, expected, rtol=1e-4, atol=1e-6)
    # their correlation's diagonal blocks are ours normalised the same way
    corr = bif_corr["influences"].values[rows[:, 0][:, None], rows[:, 0][None, :], rows[:, 1][:, None], rows[:, 1][None, :]]
    scale = np.sqrt(np.diag(theirs))
    np.testing.assert_allclose(corr, theirs / np.outer(scale, scale), atol=1e-4)


def test_v2_susceptibilities_read_and_related_to_ours(v2_covariances):
    """devinterp's χ = E_r[φ(L − ℓ)] − E_r[φ]·E_full[L − ℓ], φ = L − L(w*), no factor nβ; with L the
    sampling task's observable ours is nβ·Cov_r(L, L − ℓ) centred within chains. On devinterp's draws:
    theirs = [C(T − 1)·ours/nβ + T·Σ_c(L̄_c − L̄)(d̄_c − d̄)]/(CT) + E_r[φ]·(E_r[d] − E_full[d]), d = L − ℓ."""
    samples, sus, _, _, settings = v2_covariances
    values = susceptibilities_from_devinterp(sus)
    assert set(values) == {"unembed"} and set(values["unembed"]) == {"probe"}
    theirs = values["unembed"]["probe"]  # (sequences, target positions)
    restricted, full = from_devinterp(samples["unembed"]), from_devinterp(samples["full"])
    assert theirs.shape == samples["unembed"].to_dataset()["loss_probe"].shape[2:] and restricted.nbeta == settings["n_beta"]
    ours = dvz.susceptibilities(restricted, "probe", loss_observable="train").value
    loss = restricted.observables["train"].astype(np.float64).mean(axis=2, keepdims=True)
    d = loss - restricted.observables["probe"].astype(np.float64)
    d_full = full.observables["train"].astype(np.float64).mean(axis=2, keepdims=True) - full.observables["probe"]
    chains, draws, _ = d.shape
    phi_mean = loss.mean() - float(samples["full"].to_dataset()["init_loss"].values.mean())
    expected = ((chains * (draws - 1) * ours / restricted.nbeta + draws * _between_chain_term(loss, d)[0]) / (chains * draws)
                + phi_mean * (d.mean(axis=(0, 1)) - d_full.mean(axis=(0, 1))))
    index = restricted.observable_index["probe"]
    np.testing.assert_allclose(theirs[index[:, 0], index[:, 1]], expected, rtol=1e-4, atol=1e-6)


def test_susceptibilities_from_devinterp_rejects_other_objects(v2_runs):
    tree, llc, _ = v2_runs["lm"]
    with pytest.raises(ValueError, match="'sus' variable over"):
        susceptibilities_from_devinterp(llc)
    with pytest.raises(KeyError, match="recorded no observable 'nope'"):
        dvz.susceptibilities(from_devinterp(tree), "probe", loss_observable="nope")
