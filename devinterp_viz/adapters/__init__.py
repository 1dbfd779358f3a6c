"""Adapters to other libraries' models and files: their attention heads, devinterp's results; they build on the engine only."""

from devinterp_viz.adapters import heads  # noqa: F401 - registers the head adapters of Hugging Face and TransformerLens layouts
from devinterp_viz.adapters.devinterp import from_devinterp, susceptibilities_from_devinterp

__all__ = ["from_devinterp", "susceptibilities_from_devinterp"]
