"""Interactive JupyterLab widgets (anywidget) over the engine's results; one JS bundle for all."""

from devinterp_viz.widgets._base import DvzWidget
from devinterp_viz.widgets.dashboard import DevelopmentDashboard
from devinterp_viz.widgets.heads import HeadClusterWidget
from devinterp_viz.widgets.refined import RefinedLLCWidget
from devinterp_viz.widgets.sampler import SamplerWidget, SettingError
from devinterp_viz.widgets.susceptibility import SusceptibilityExplorer

__all__ = ["DevelopmentDashboard", "DvzWidget", "HeadClusterWidget", "RefinedLLCWidget", "SamplerWidget", "SettingError",
           "SusceptibilityExplorer"]
