"""Adapters to other libraries' objects and files (devinterp's results); they build on the engine only."""

from devinterp_viz.adapters.devinterp import from_devinterp

__all__ = ["from_devinterp"]
