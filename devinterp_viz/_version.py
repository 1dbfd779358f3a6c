"""The version of devinterp_viz: one place, read by the package, the store's keys and pyproject.toml."""

__version__ = "0.1.0"
