"""devinterp_viz: see and touch developmental interpretability in JupyterLab."""

from devinterp_viz._version import __version__

# engine: estimating the LLC
from devinterp_viz.engine import (
    Diagnostics,
    HeadSelection,
    LLCResult,
    SamplerSettings,
    attention_heads,
    default_nbeta,
    describe_selection,
    estimate_llc,
    estimate_llc_selections,
    register_head_adapter,
    resolve_selection,
)

# adapters: other libraries' results
from devinterp_viz.adapters import from_devinterp

# analysis: calibration, trajectories and sweeps, stages, essential dynamics, heads
from devinterp_viz.analysis import (
    CalibrationResult,
    EssentialDynamics,
    HeadClustering,
    HeadSignatures,
    JointEssentialDynamics,
    ResultStore,
    StageComparison,
    StageDetector,
    SweepResult,
    Trajectory,
    TrajectoryGeometry,
    calibrate,
    compare_with_stages,
    essential_dynamics,
    joint_essential_dynamics,
    stages,
    sweep_llc,
)

# widgets: the views
from devinterp_viz.widgets import DevelopmentDashboard, HeadClusterWidget, RefinedLLCWidget, SamplerWidget

__all__ = [
    "__version__",
    # engine
    "Diagnostics",
    "HeadSelection",
    "LLCResult",
    "SamplerSettings",
    "attention_heads",
    "default_nbeta",
    "describe_selection",
    "estimate_llc",
    "estimate_llc_selections",
    "register_head_adapter",
    "resolve_selection",
    # adapters
    "from_devinterp",
    # analysis
    "CalibrationResult",
    "EssentialDynamics",
    "HeadClustering",
    "HeadSignatures",
    "JointEssentialDynamics",
    "ResultStore",
    "StageComparison",
    "StageDetector",
    "SweepResult",
    "Trajectory",
    "TrajectoryGeometry",
    "calibrate",
    "compare_with_stages",
    "essential_dynamics",
    "joint_essential_dynamics",
    "stages",
    "sweep_llc",
    # widgets
    "DevelopmentDashboard",
    "HeadClusterWidget",
    "RefinedLLCWidget",
    "SamplerWidget",
]
