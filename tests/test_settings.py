"""SamplerSettings: the one home of the sampler's settings, and everything that is made from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import devinterp_viz as dvz
from devinterp_viz.engine import samplers
from devinterp_viz.engine.settings import SamplerSettings

FAST = dict(lr=1e-3, nbeta=10.0, num_chains=2, num_draws=12, batch_size=16)


def linear_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    return torch.nn.Linear(3, 1), (x, x @ torch.tensor([[1.0], [-2.0], [0.5]]))


def mse(model, batch):
    return torch.nn.functional.mse_loss(model(batch[0]), batch[1])


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("sampler", "hmc", "sampler='hmc' is unknown; choose one of sgld"),
        ("lr", 0.0, "lr must be a positive number"),
        ("lr", float("inf"), "lr must be a positive number"),
        ("lr", "1e-3", "lr must be a positive number"),
        ("nbeta", -1.0, "nbeta must be a positive number"),
        ("localization", -0.5, "localization must be a finite number >= 0"),
        ("localization", True, "localization must be a finite number >= 0"),
        ("num_chains", 0, "num_chains must be a positive integer"),
        ("num_chains", 2.0, "num_chains must be a positive integer.*pass num_chains=2"),
        ("num_draws", 1, "num_draws must be at least 2"),
        ("num_burnin_steps", -1, "num_burnin_steps must be a non-negative integer"),
        ("num_steps_bw_draws", 0, "num_steps_bw_draws must be a positive integer"),
        ("batch_size", 0, "batch_size must be a positive integer"),
        ("seed", -3, "seed must be a non-negative integer"),
        ("seed", None, "seed must be a non-negative integer"),
    ],
)
def test_every_setting_checks_itself_with_a_message_naming_it(name, value, message):
    with pytest.raises(ValueError, match=message):
        SamplerSettings(**{name: value})
    with pytest.raises(ValueError, match=message):
        SamplerSettings().replace(**{name: value})


def test_values_are_normalised_and_none_is_allowed_only_where_optional():
    settings = SamplerSettings(lr=1, localization=np.float32(3.0), num_chains=np.int64(3), nbeta=None, batch_size=None)
    assert type(settings.lr) is float and type(settings.localization) is float and type(settings.num_chains) is int
    assert settings.nbeta is None and settings.batch_size is None
    for name in ("lr", "localization", "num_chains", "num_draws", "num_burnin_steps", "seed", "sampler"):
        with pytest.raises(ValueError, match=name):
            SamplerSettings(**{name: None})


def test_unknown_names_are_a_type_error_suggesting_the_closest():
    with pytest.raises(TypeError, match="'num_draw' is not a sampler setting. Did you mean num_draws"):
        SamplerSettings.build(num_draw=5)
    with pytest.raises(TypeError, match="must be a SamplerSettings"):
        SamplerSettings.build({"lr": 1e-3})
    model, data = linear_problem()
    with pytest.raises(TypeError, match=r"estimate_llc\(\) got an unexpected keyword argument 'num_draw'.*num_draws"):
        dvz.estimate_llc(model, data, mse, num_draw=5)
    with pytest.raises(TypeError, match="'progres'.*progress"):
        dvz.estimate_llc(model, data, mse, progres=False)


def test_split_separates_settings_from_run_options_and_keywords_override_a_settings_value():
    base = SamplerSettings(lr=3e-4, seed=5)
    settings, rest = SamplerSettings.split({"settings": base, "seed": 6, "device": "cpu", "params": ["weight"]})
    assert settings == base.replace(seed=6) and rest == {"device": "cpu", "params": ["weight"]}


def test_config_round_trip_and_a_results_config_gives_back_its_settings():
    settings = SamplerSettings(sampler="rmsprop_sgld", lr=2e-4, num_chains=3, num_draws=7, seed=4)
    assert SamplerSettings.from_config(settings.to_config()) == settings
    assert SamplerSettings.from_config({**settings.to_config(), "device": "cpu", "graph": False}) == settings
    assert json.loads(json.dumps(settings.to_config())) == settings.to_config()
    model, data = linear_problem()
    result = dvz.estimate_llc(model, data, mse, settings=SamplerSettings(**FAST, seed=2), progress=False)
    assert SamplerSettings.from_config(result.config) == SamplerSettings(**FAST, seed=2)


def test_a_settings_value_and_the_same_keywords_give_the_same_numbers():
    model, data = linear_problem()
    by_keywords = dvz.estimate_llc(model, data, mse, **FAST, seed=3, progress=False)
    by_value = dvz.estimate_llc(model, data, mse, settings=SamplerSettings(**FAST, seed=3), progress=False)
    overridden = dvz.estimate_llc(model, data, mse, settings=SamplerSettings(**FAST, seed=9), seed=3, progress=False)
    np.testing.assert_array_equal(by_keywords.loss_trace, by_value.loss_trace)
    np.testing.assert_array_equal(by_keywords.loss_trace, overridden.loss_trace)


def test_the_spec_the_browser_gets_describes_every_setting_as_json():
    spec = SamplerSettings.spec()
    assert [entry["name"] for entry in spec] == list(SamplerSettings.names())
    assert json.loads(json.dumps(spec)) == spec
    for entry in spec:
        assert entry["label"] and entry["hint"] and entry["kind"] in ("choice", "real", "count"), entry
        assert entry["default"] == getattr(SamplerSettings(), entry["name"])
    by_name = {entry["name"]: entry for entry in spec}
    assert by_name["lr"]["log"] and by_name["lr"]["exclusive"]
    assert [value for value, _ in by_name["sampler"]["choices"]] == list(samplers.SAMPLERS)
    assert "sgld" in SamplerSettings.summary() and SamplerSettings.summary().count("\n") == len(spec) - 1
    assert "``num_draws`` (default 200)" in dvz.estimate_llc.__doc__


def test_a_sampler_added_to_the_registry_is_a_choice_everywhere(monkeypatch):
    """Adding a sampler is one entry of engine/samplers.py: the setting, the engine and the widgets follow."""
    from devinterp_viz.widgets import SamplerWidget

    twin = samplers.Sampler("sgld_twin", samplers.sgld_init, samplers.sgld_step, True, "SGLD twin")
    monkeypatch.setitem(samplers.SAMPLERS, "sgld_twin", twin)
    assert SamplerSettings(sampler="sgld_twin").sampler == "sgld_twin"
    model, data = linear_problem()
    ours = dvz.estimate_llc(model, data, mse, **FAST, sampler="sgld_twin", progress=False)
    reference = dvz.estimate_llc(model, data, mse, **FAST, sampler="sgld", progress=False)
    np.testing.assert_array_equal(ours.loss_trace, reference.loss_trace)
    widget = SamplerWidget(model, data, mse)
    widget.sampler = "sgld_twin"
    choices = next(entry["choices"] for entry in widget.setting_spec if entry["name"] == "sampler")
    assert ["sgld_twin", "SGLD twin"] in choices and widget.settings()["sampler"] == "sgld_twin"
