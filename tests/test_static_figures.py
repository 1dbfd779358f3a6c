"""Every static `.plot()` figure fills the output area and reads on light and dark notebooks alike.

JupyterLab's plotly renderer does not know the notebook's theme, so a figure must carry colours that read
on both: see-through backgrounds, a neutral grey for text, no black or white marks.
(tests/ui/test_static_figures_ui.py checks the same in a real JupyterLab, light and dark.)
"""

from __future__ import annotations

import numpy as np
import pytest

import devinterp_viz as dvz
from devinterp_viz.analysis.essential_dynamics import compare_with_stages, essential_dynamics, joint_essential_dynamics
from devinterp_viz.engine.results import LLCResult
from devinterp_viz.plotting import NEUTRAL, TRANSPARENT
from tests.widget_fakes import synthetic_sweep


def _outputs(seed: int) -> np.ndarray:
    t = np.linspace(0, 1, 60)
    return np.stack([np.cos(3 * t), np.sin(3 * t), t ** 2], 1) @ np.random.default_rng(seed).standard_normal((3, 20))


def _figures() -> dict:
    steps = np.arange(60) * 50
    dynamics = essential_dynamics(_outputs(0), steps=steps, n_components=3, progress=False)
    joint = joint_essential_dynamics({"a": _outputs(0), "b": _outputs(1)}, steps={"a": steps, "b": steps},
                                     progress=False)
    sweep = synthetic_sweep(30, unhealthy=(4,))
    found = dvz.stages(sweep)
    rng = np.random.default_rng(0)
    result = LLCResult.from_traces(1 + 0.05 * rng.random((4, 300)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 300})
    return {
        "llc result": result.plot(),
        "essential dynamics": dynamics.plot(circles=True, evolute=True),
        "trajectory geometry": dynamics.geometry_.plot(),
        "joint essential dynamics": joint.plot(),
        "sweep": sweep.plot(),
        "stages": found.plot(sweep.steps, sweep.llc_mean[0, 0]),
        "stage comparison": compare_with_stages(dynamics, found).plot(),
    }


@pytest.fixture(scope="module")
def figures():
    return _figures()


@pytest.mark.parametrize("name", ["llc result", "essential dynamics", "trajectory geometry", "joint essential dynamics",
                                  "sweep", "stages", "stage comparison"])
def test_static_figure_follows_the_output_width_and_reads_in_both_themes(figures, name):
    fig = figures[name]
    assert fig.layout.width is None  # the figure is as wide as the output area it lands in
    theme = fig.layout.template.layout
    assert theme.paper_bgcolor == TRANSPARENT and theme.plot_bgcolor == TRANSPARENT
    assert theme.font.color == NEUTRAL
    drawn = fig.to_json().lower()
    assert '"black"' not in drawn and '"#000000"' not in drawn  # black marks vanish on a dark notebook
