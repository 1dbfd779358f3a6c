"""Essential dynamics: PCA of a model's outputs over training, the trajectory's geometry, and its milestones.

``sources`` reads the outputs one checkpoint at a time, ``pca`` fits the basis (dense or streamed),
``estimators`` holds the two estimators, ``geometry`` the curve's smoothing, osculating circles and
milestones, ``comparison`` matches milestones with LLC stage boundaries.
"""

from devinterp_viz.analysis.essential_dynamics.comparison import StageComparison, compare_with_stages
from devinterp_viz.analysis.essential_dynamics.estimators import (
    EssentialDynamics,
    JointEssentialDynamics,
    essential_dynamics,
    joint_essential_dynamics,
)
from devinterp_viz.analysis.essential_dynamics.geometry import TrajectoryGeometry, cusp_window, gaussian_smooth, smoothing_widths
from devinterp_viz.analysis.essential_dynamics.sources import default_output_fn

__all__ = [
    "EssentialDynamics",
    "JointEssentialDynamics",
    "StageComparison",
    "TrajectoryGeometry",
    "compare_with_stages",
    "cusp_window",
    "default_output_fn",
    "essential_dynamics",
    "gaussian_smooth",
    "joint_essential_dynamics",
    "smoothing_widths",
]
