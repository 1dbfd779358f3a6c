"""``SamplerSettings``: the one home of the sampler's settings, their defaults, bounds, labels and checks."""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devinterp_viz.engine.samplers import SAMPLERS


@dataclass(frozen=True)
class Setting:
    """What a setting is, for its check, its error messages and the widgets' control.

    Attributes
    ----------
    label : str
        Short name a control shows ("step size lr").
    hint : str
        One sentence a tooltip shows: what it does, what a value means.
    kind : {"choice", "real", "count"}
        A string of ``choices``, a finite real number, or an integer.
    minimum : float
        The smallest value allowed (``exclusive``: values must exceed it).
    exclusive : bool
    optional : bool
        None is allowed (the hint says what it means).
    choices : tuple of (value, label), or a function returning one
        The allowed strings of a "choice" and how a control names them (a function: looked up at
        each check, so a registry such as ``SAMPLERS`` stays the one place they are listed).
    log : bool
        A control sweeps it on a log scale (a slider over ``log_range`` decades).
    log_range : tuple of int
        log10 of the slider's ends.
    why : str
        Said with the bound (" (the estimate needs two draws per chain)").
    advanced : bool
        A control shows it folded away, under "more settings".
    """

    label: str
    hint: str
    kind: str
    minimum: float = 0
    exclusive: bool = False
    optional: bool = False
    choices: tuple[tuple[str, str], ...] | Callable[[], tuple[tuple[str, str], ...]] = ()
    log: bool = False
    log_range: tuple[int, int] = (-8, 0)
    why: str = ""
    advanced: bool = False

    def check(self, name: str, value: Any) -> Any:
        """``value`` as the setting's type (float, int or str), or a ValueError saying what is allowed."""
        if value is None and self.optional:
            return None
        if self.kind == "choice":
            allowed = [choice for choice, _ in self.options()]
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is unknown; choose one of {', '.join(allowed)}.")
            return value
        if self.kind == "count":
            return self._check_count(name, value)
        return self._check_real(name, value)

    def _check_real(self, name: str, value: Any) -> float:
        if self.exclusive and self.minimum == 0:
            allowed = "a positive number"
        else:
            allowed = f"a finite number {'>' if self.exclusive else '>='} {self.minimum:g}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name} must be {allowed}, got {value!r}.")
        if value < self.minimum or (self.exclusive and value == self.minimum):
            raise ValueError(f"{name} must be {allowed}, got {value!r}.")
        return float(value)

    def _check_count(self, name: str, value: Any) -> int:
        allowed = {0: "a non-negative integer", 1: "a positive integer"}.get(self.minimum, "an integer")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            kind = type(value).__name__
            example = f"; pass {name}={int(value)}" if isinstance(value, float) and value.is_integer() else ""
            raise ValueError(f"{name} must be {allowed}{self.why}, got {value!r} (a {kind}){example}.")
        if value >= self.minimum:
            return int(value)
        if self.minimum > 1:
            raise ValueError(f"{name} must be at least {self.minimum:g}, got {value!r}{self.why}.")
        raise ValueError(f"{name} must be {allowed}{self.why}, got {value!r}.")

    def options(self) -> tuple[tuple[str, str], ...]:
        """The (value, label) choices now."""
        return self.choices() if callable(self.choices) else self.choices

    def to_spec(self, name: str, default: Any) -> dict[str, Any]:
        """The setting as JSON for a front end's control (name, default and every attribute)."""
        spec = {"name": name, "default": default, **dataclasses.asdict(self)}
        spec["choices"] = [list(choice) for choice in self.options()]
        spec["log_range"] = list(self.log_range)
        return spec


def _setting(default: Any, **meta: Any) -> Any:
    return field(default=default, metadata={"setting": Setting(**meta)})


@dataclass(frozen=True)
class SamplerSettings:
    """The sampler's settings: what an estimate's numbers depend on besides the model and data.

    Every field is checked when the value is built (a clear ``ValueError`` naming the field and
    what is allowed); its label, hint and bounds (:class:`Setting`, in the field's metadata) are
    what the widgets' controls show and check. To add a setting, add a field here.

    Parameters
    ----------
    sampler : {"sgld", "rmsprop_sgld", "sgnht"}
    lr : float > 0
        Step size ε.
    nbeta : float > 0, optional
        Inverse temperature nβ; None: ``batch_size / ln(batch_size)``.
    localization : float >= 0
        γ, the strength of the pull towards w*.
    num_chains : int >= 1
    num_draws : int >= 2
        Recorded draws per chain.
    num_burnin_steps : int >= 0
        Steps discarded before the first draw.
    num_steps_bw_draws : int >= 1
        Steps per recorded draw.
    batch_size : int >= 1, optional
        Minibatch size for tensor or Dataset data (a DataLoader brings its own).
    seed : int >= 0
        Same seed, same numbers.

    Examples
    --------
    >>> settings = SamplerSettings(lr=3e-4, num_chains=8)
    >>> settings.replace(num_draws=400).num_draws
    400
    """

    sampler: str = _setting(
        "sgld", label="sampler", kind="choice",
        choices=lambda: tuple((name, sampler.label) for name, sampler in SAMPLERS.items()),
        hint="the update rule: SGLD, SGLD with an RMSProp preconditioner, or SGNHT (a thermostat)")
    lr: float = _setting(
        1e-4, label="step size lr", kind="real", exclusive=True, log=True,
        hint="step size ε of each update: larger explores faster, too large biases the estimate")
    nbeta: float | None = _setting(
        None, label="nβ", kind="real", exclusive=True, optional=True,
        hint="inverse temperature nβ; empty = batch_size / ln(batch_size)")
    localization: float = _setting(
        100.0, label="localization γ", kind="real",
        hint="strength γ of the pull back to w* (≥ 0); larger keeps chains closer")
    num_chains: int = _setting(
        4, label="chains", kind="count", minimum=1,
        hint="independent chains; their spread gives R-hat and the standard error")
    num_draws: int = _setting(
        200, label="draws", kind="count", minimum=2,
        why=" (the estimate and its diagnostics need two draws per chain)",
        hint="recorded draws per chain, after the burn-in")
    num_burnin_steps: int = _setting(
        0, label="burn-in steps", kind="count", minimum=0,
        hint="steps discarded before the first draw, while chains equilibrate")
    num_steps_bw_draws: int = _setting(
        1, label="steps per draw", kind="count", minimum=1, advanced=True,
        hint="sampler steps between recorded draws (thinning)")
    batch_size: int | None = _setting(
        None, label="batch size", kind="count", minimum=1, optional=True, advanced=True,
        hint="minibatch size for tensor data; empty = a DataLoader's own (tensors need one)")
    seed: int = _setting(
        0, label="seed", kind="count", minimum=0, advanced=True,
        why=" (the same seed gives the same numbers, another seed an independent run)",
        hint="the same seed gives the same numbers; another seed gives independent chains")

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            object.__setattr__(self, item.name, item.metadata["setting"].check(item.name, getattr(self, item.name)))

    # ------------------------------------------------------------- building
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(item.name for item in dataclasses.fields(cls))

    @classmethod
    def build(cls, settings: SamplerSettings | None = None, **changes: Any) -> SamplerSettings:
        """``settings`` (default: the defaults) with ``changes``; unknown names raise TypeError."""
        if settings is not None and not isinstance(settings, SamplerSettings):
            raise TypeError(f"settings= must be a SamplerSettings, got a {type(settings).__name__}; "
                            "pass SamplerSettings(lr=..., ...) or the settings as keywords.")
        cls._reject_unknown(changes)
        return dataclasses.replace(settings, **changes) if settings is not None else cls(**changes)

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[SamplerSettings, dict[str, Any]]:
        """Keyword arguments as (the settings among them, with ``settings=``; everything else)."""
        rest = {name: value for name, value in kwargs.items() if name not in cls.names() and name != "settings"}
        fields = {name: kwargs[name] for name in cls.names() if name in kwargs}
        return cls.build(kwargs.get("settings"), **fields), rest

    def replace(self, **changes: Any) -> SamplerSettings:
        """A copy with ``changes`` (checked like any other value)."""
        return self.build(self, **changes)

    @classmethod
    def _reject_unknown(cls, changes: Mapping[str, Any]) -> None:
        unknown = [name for name in changes if name not in cls.names()]
        if unknown:
            close = difflib.get_close_matches(unknown[0], cls.names(), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise TypeError(f"{unknown[0]!r} is not a sampler setting.{hint} Settings: {', '.join(cls.names())}.")

    # --------------------------------------------------------------- config
    def to_config(self) -> dict[str, Any]:
        """The settings as a plain dict (what ``LLCResult.config`` records)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SamplerSettings:
        """The settings a result's ``config`` records (other keys, such as ``device``, ignored)."""
        return cls(**{name: config[name] for name in cls.names() if name in config})

    # ------------------------------------------------------------- controls
    @classmethod
    def setting(cls, name: str) -> Setting:
        """The :class:`Setting` of field ``name``."""
        cls._reject_unknown({name: None})
        return next(item.metadata["setting"] for item in dataclasses.fields(cls) if item.name == name)

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of field ``name``."""
        return getattr(cls(), name)

    @classmethod
    def summary(cls, indent: int = 0) -> str:
        """One line per setting, ``name (default): hint``, for docstrings and help text."""
        pad = " " * indent
        return "\n".join(f"{pad}- ``{name}`` (default {cls.default(name)!r}): {cls.setting(name).hint}" for name in cls.names())

    @classmethod
    def spec(cls, names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """JSON descriptions of the settings ``names`` (default all), in that order, for controls."""
        return [cls.setting(name).to_spec(name, cls.default(name)) for name in (names or cls.names())]
