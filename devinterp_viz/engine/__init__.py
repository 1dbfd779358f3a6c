"""The sampling engine (torch): samplers, driver, selections, diagnostics and results."""

from devinterp_viz.engine.llc import default_nbeta, estimate_llc, estimate_llc_selections
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.engine.settings import SamplerSettings
from devinterp_viz.engine.verdict import Diagnostics
from devinterp_viz.engine.components import layer_selections
from devinterp_viz.engine.selection import (
    HeadSelection,
    KVGroupSelection,
    attention_heads,
    describe_selection,
    kv_groups,
    register_head_adapter,
    resolve_selection,
)

__all__ = [
    "Diagnostics",
    "HeadSelection",
    "KVGroupSelection",
    "LLCResult",
    "SamplerSettings",
    "attention_heads",
    "default_nbeta",
    "describe_selection",
    "estimate_llc",
    "estimate_llc_selections",
    "kv_groups",
    "layer_selections",
    "register_head_adapter",
    "resolve_selection",
]
