"""Sampler-setting traits for widgets, made from ``SamplerSettings``' field metadata (the one place widgets name settings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import traitlets

from devinterp_viz.engine.settings import SamplerSettings


class SettingError(ValueError, traitlets.TraitError):
    """An invalid sampler setting (a ``ValueError``; also a ``TraitError`` for traitlets)."""


class Choice(traitlets.Enum):
    """A ``traitlets.Enum`` whose error is a :class:`SettingError` naming the choices."""

    def error(self, obj: Any, value: Any, error: Exception | None = None, info: str | None = None) -> None:
        raise SettingError(f"{self.name} must be one of {', '.join(map(repr, self.values))}; got {value!r}")


def check_setting(name: str, value: Any, context: str = "") -> Any:
    """``value`` checked as setting ``name`` by :class:`SamplerSettings`; a :class:`SettingError` if invalid."""
    try:
        return SamplerSettings.setting(name).check(name, value)
    except ValueError as err:
        raise SettingError(f"{context}{err}") from None


def setting_trait(name: str) -> traitlets.TraitType:
    """A synced trait for setting ``name``: its type, default and whether None is allowed."""
    setting, default = SamplerSettings.setting(name), SamplerSettings.default(name)
    kind = {"choice": traitlets.Unicode, "real": traitlets.Float, "count": traitlets.Int}[setting.kind]
    return kind(default, allow_none=setting.optional).tag(sync=True)


def settings_traits(names: tuple[str, ...] | None = None) -> type:
    """A mixin with one synced trait per sampler setting in ``names`` (default all), each checked by
    :class:`SamplerSettings`, and ``setting_spec``: the settings' labels, hints and bounds for the
    browser's controls (``js/src/controls.js``).

    The mixin's :meth:`sampler_settings` is the :class:`SamplerSettings` the traits describe;
    :meth:`setting_changes` picks the settings out of a mapping (a result's config, a
    calibration cell).
    """
    names = tuple(names or SamplerSettings.names())

    def check(self: Any, proposal: Any) -> Any:
        return check_setting(proposal.trait.name, proposal.value)

    def sampler_settings(self: Any) -> SamplerSettings:
        """The :class:`SamplerSettings` the controls describe now."""
        return SamplerSettings(**{name: getattr(self, name) for name in names})

    def setting_changes(self: Any, values: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of ``values`` that are settings of this widget (None values left out)."""
        return {name: values[name] for name in names if values.get(name) is not None}

    def spec_default(self: Any) -> list[dict[str, Any]]:
        return SamplerSettings.spec(names)  # at each widget's creation: a registry's current choices

    namespace = {name: setting_trait(name) for name in names}
    namespace.update(
        setting_spec=traitlets.List().tag(sync=True),
        _spec_default=traitlets.default("setting_spec")(spec_default),
        setting_names=names,
        _check_setting=traitlets.validate(*names)(check),
        sampler_settings=sampler_settings,
        setting_changes=setting_changes,
        __doc__=f"Synced traits for the sampler settings {', '.join(names)}.",
    )
    return type("SettingTraits", (traitlets.HasTraits,), namespace)
