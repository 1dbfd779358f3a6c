"""devinterp_viz: see and touch developmental interpretability in JupyterLab."""

from devinterp_viz import adapters, analysis, engine, widgets
from devinterp_viz._version import __version__
from devinterp_viz.adapters import *  # noqa: F403 - other libraries' results (from_devinterp)
from devinterp_viz.analysis import *  # noqa: F403 - calibration, trajectories and sweeps, stages, essential dynamics, heads
from devinterp_viz.engine import *  # noqa: F403 - estimating the LLC: settings, selections, results
from devinterp_viz.widgets import *  # noqa: F403 - the views

# by layer, each in its own order
__all__ = ["__version__", *engine.__all__, *adapters.__all__, *analysis.__all__, *widgets.__all__]
