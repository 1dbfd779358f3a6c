"""devinterp_viz: see and touch developmental interpretability in JupyterLab."""

from devinterp_viz.analysis import (
    CalibrationResult,
    EssentialDynamics,
    HeadClustering,
    JointEssentialDynamics,
    StageComparison,
    TrajectoryGeometry,
    compare_with_stages,
    essential_dynamics,
    joint_essential_dynamics,
    HeadSignatures,
    ResultStore,
    StageDetector,
    SweepResult,
    Trajectory,
    calibrate,
    stages,
    sweep_llc,
)
from devinterp_viz.engine import (
    Diagnostics,
    HeadSelection,
    LLCResult,
    attention_heads,
    default_nbeta,
    describe_selection,
    estimate_llc,
    estimate_llc_selections,
    register_head_adapter,
    resolve_selection,
)

from devinterp_viz._version import __version__
from devinterp_viz.adapters import from_devinterp
from devinterp_viz.widgets import DevelopmentDashboard, HeadClusterWidget, RefinedLLCWidget, SamplerWidget


__all__ = [
    "CalibrationResult",
    "EssentialDynamics",
    "JointEssentialDynamics",
    "StageComparison",
    "TrajectoryGeometry",
    "compare_with_stages",
    "essential_dynamics",
    "joint_essential_dynamics",
    "HeadClustering",
    "HeadSignatures",
    "ResultStore",
    "StageDetector",
    "SweepResult",
    "Trajectory",
    "stages",
    "sweep_llc",
    "Diagnostics",
    "HeadSelection",
    "LLCResult",
    "DevelopmentDashboard",
    "HeadClusterWidget",
    "RefinedLLCWidget",
    "SamplerWidget",
    "attention_heads",
    "calibrate",
    "default_nbeta",
    "describe_selection",
    "estimate_llc",
    "estimate_llc_selections",
    "from_devinterp",
    "register_head_adapter",
    "resolve_selection",
]
