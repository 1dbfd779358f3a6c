"""Analyses over engine results (numpy/scikit-learn): calibration, trajectories, sweeps, stages."""

from devinterp_viz.analysis.calibration import CalibrationResult, calibrate
from devinterp_viz.analysis.covariances import (
    Covariance,
    bif,
    cross_covariance,
    loss_kernel,
    response_matrix,
    susceptibilities,
)
from devinterp_viz.analysis.essential_dynamics import (
    EssentialDynamics,
    JointEssentialDynamics,
    StageComparison,
    TrajectoryGeometry,
    compare_with_stages,
    default_output_fn,
    essential_dynamics,
    joint_essential_dynamics,
)
from devinterp_viz.analysis.heads import HeadClustering, HeadSignatures
from devinterp_viz.analysis.stages import StageDetector, stages
from devinterp_viz.analysis.store import ResultStore
from devinterp_viz.analysis.sweep import SweepResult, sweep_llc
from devinterp_viz.analysis.trajectory import Trajectory

__all__ = [
    "CalibrationResult",
    "Covariance",
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
    "bif",
    "calibrate",
    "compare_with_stages",
    "cross_covariance",
    "default_output_fn",
    "essential_dynamics",
    "joint_essential_dynamics",
    "loss_kernel",
    "response_matrix",
    "stages",
    "susceptibilities",
    "sweep_llc",
]
