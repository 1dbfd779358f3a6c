"""Static plotly figures of result objects (a leaf module: it imports no other devinterp_viz module)."""

from __future__ import annotations

import textwrap

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CHAIN_COLORS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC"]

# JupyterLab's plotly renderer does not know the notebook's theme, so every figure is drawn to read on
# both: transparent backgrounds (the output area's own colour shows through), text in a grey of equal
# contrast (about 4.3:1) on white and on JupyterLab Dark's #111, grid lines as translucent grey.
NEUTRAL = "#7a7a7a"
GRID = "rgba(128, 128, 128, 0.28)"
AXIS_LINE = "rgba(128, 128, 128, 0.6)"
TRANSPARENT = "rgba(0, 0, 0, 0)"
_AXIS = dict(gridcolor=GRID, zerolinecolor=AXIS_LINE, linecolor=AXIS_LINE, tickcolor=AXIS_LINE, automargin=True)
THEME = go.layout.Template(layout=dict(
    paper_bgcolor=TRANSPARENT, plot_bgcolor=TRANSPARENT, colorway=CHAIN_COLORS, autosize=True,
    hovermode="closest", hoverdistance=40,  # the nearest point within 40 px, not only one under the pointer
    font=dict(color=NEUTRAL), title=dict(x=0.02), xaxis=_AXIS, yaxis=_AXIS,
    legend=dict(bgcolor=TRANSPARENT), modebar=dict(bgcolor=TRANSPARENT, color=NEUTRAL, activecolor=CHAIN_COLORS[0]),
    colorscale=dict(sequential="Viridis")))

# One visual language for an estimate's verdict, in every static figure and widget (the widgets' copy
# is js/src/views/conventions.js; tests/test_static_figures.py checks that the two agree):
# undefined (w* is not a local minimum, so there is no LLC) is a grey hollow tick on the step axis and no
# point; unhealthy is a red ✕ at the estimate (on the step axis when the estimate is not finite).
UNHEALTHY_COLOR = "#E45756"
UNDEFINED_COLOR = "#8c8c8c"
UNHEALTHY_LABEL = "✕ unhealthy estimate"
UNDEFINED_LABEL = "grey tick: no LLC (undefined: w* is not a local minimum)"
UNHEALTHY_MARKER = dict(symbol="x-thin", size=11, color=UNHEALTHY_COLOR, line=dict(width=2.5, color=UNHEALTHY_COLOR))
UNDEFINED_MARKER = dict(symbol="line-ns-open", size=12, color=UNDEFINED_COLOR, line=dict(width=2, color=UNDEFINED_COLOR))


def fmt(x: float, digits: int = 3) -> str:
    """A number for a label, exactly as the widgets' ``fmt`` (js/src/dom.js) writes it.

    ``digits`` significant digits; scientific notation below 1e-3 and from 1e5 (``1.2e-4``,
    ``3e5``); trailing zeros dropped; "–" for None or NaN, "∞" / "−∞" for infinities.
    """
    if x is None or np.isnan(x):
        return "–"
    if not np.isfinite(x):
        return "∞" if x > 0 else "−∞"
    x = float(x)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        mantissa, exponent = f"{x:.{max(0, digits - 1)}e}".split("e")
        return f"{_shortest(float(mantissa))}e{int(exponent):+d}".replace("+", "")
    return _shortest(float(f"{x:.{digits}g}"))


def _shortest(x: float) -> str:
    """JavaScript's ``Number.prototype.toString`` for 1e-4 ≤ |x| < 1e16 (where both write no exponent)."""
    text = repr(x)
    return text[:-2] if text.endswith(".0") else text


def format_estimate(mean: float, se: float) -> str:
    """``"λ̂ ± SE"`` as every view writes an estimate: 4 significant digits, its standard error 2 (``0.2559 ± 0.005``)."""
    return f"{fmt(mean, 4)} ± {fmt(se, 2)}"


def format_step_bias(bias: float, se: float, llc: float) -> str:
    """The step-size bias as every view writes it: signed, ± its standard error, and its share of the
    estimate in brackets (``+0.41 ± 0.3 (5.3% of λ̂)``); the parts that are NaN are left out."""
    if bias is None or np.isnan(bias):
        return "–"
    text = ("+" if bias > 0 else "") + fmt(bias, 2) + ("" if se is None or np.isnan(se) else f" ± {fmt(se, 2)}")
    if llc is None or np.isnan(llc) or llc == 0:
        return text
    percent = 100 * bias / abs(llc)
    return f"{text} ({fmt(percent, 2 if abs(percent) < 100 else 3)}% of λ̂)"


def plot_llc_result(res) -> go.Figure:
    """Loss traces and running LLC per chain, L(w*) marked, the verdict in the title.

    Parameters
    ----------
    res : LLCResult

    Returns
    -------
    plotly.graph_objects.Figure
        Two panels sharing the draw axis: minibatch loss (chains × draws) with L(w*) as a
        dashed line, and the running estimate nβ (mean loss so far − L(w*)) per chain.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("minibatch loss", "running LLC estimate"))
    draws = np.arange(res.num_draws)
    llc_trace = res.llc_trace
    for chain in range(res.num_chains):
        color = CHAIN_COLORS[chain % len(CHAIN_COLORS)]
        divergent = bool(res.diagnostics.divergent[chain])
        name = f"chain {chain}" + (" (diverged)" if divergent else "")
        dash = "dot" if divergent else "solid"
        fig.add_trace(go.Scatter(x=draws, y=res.loss_trace[chain], name=name, legendgroup=name,
                                 line=dict(color=color, width=1, dash=dash)), row=1, col=1)
        fig.add_trace(go.Scatter(x=draws, y=llc_trace[chain], name=name, legendgroup=name, showlegend=False,
                                 line=dict(color=color, width=1, dash=dash)), row=2, col=1)
    fig.add_hline(y=res.init_loss, line=dict(color=NEUTRAL, dash="dash"), annotation_text="L(w*)", row=1, col=1)
    if np.isfinite(res.llc_mean):
        fig.add_hline(y=res.llc_mean, line=dict(color=NEUTRAL, dash="dash"), annotation_text=f"λ̂ = {res.llc_mean:.3g}", row=2, col=1)
    diagnostics = res.diagnostics
    counted = f" ({len(diagnostics.warnings)} warning{'s' * (len(diagnostics.warnings) > 1)})" if diagnostics.warnings else ""
    title = f"LLC {format_estimate(res.llc_mean, res.llc_se)} (± SE) — {diagnostics.label}{counted}" + (" — partial" if res.partial else "")
    # every failure, warning and check that could not run in full below the plot, wrapped to fit a narrow output area
    unchecked = [f"not checked: {u}" for u in diagnostics.unchecked]
    notes = [line for note in diagnostics.reasons + diagnostics.warnings + unchecked for line in textwrap.wrap(note, 100)]
    fig.update_layout(
        template=THEME,
        title=dict(text=title, font=dict(size=14)),
        hovermode="x unified",  # every chain's value at the draw under the pointer
        xaxis2_title="draw",
        height=560 + 16 * len(notes),
        margin=dict(t=70, b=110 + 16 * len(notes)),
        legend=dict(orientation="h", y=-0.12),
    )
    if notes:
        fig.add_annotation(text="<br>".join(notes), xref="paper", yref="paper", x=0, y=-0.2, showarrow=False,
                           align="left", xanchor="left", yanchor="top", font=dict(size=11))
    return fig


def plot_calibration(cal) -> go.Figure:
    """Heatmap of the estimate over the (lr × nβ or γ) grid: every computed cell shows its value.

    Parameters
    ----------
    cal : CalibrationResult

    Returns
    -------
    plotly.graph_objects.Figure
        lr on x (every lr tried, refinement included), the other hyperparameter on y, colour =
        LLC estimate; each cell's text is its estimate, with "✕" after it when the verdict is not
        healthy (the reasons on hover) and blank where no run was made; the recommended cell is
        circled.
    """
    means, healthy, computed, reasons = cal.llc_mean, cal.healthy, cal.computed, cal.reasons
    text = [
        [
            "" if not computed[i, j] else (f"{means[i, j]:.3g}" if np.isfinite(means[i, j]) else "nan")
            + ("" if healthy[i, j] else " ✕")
            for j in range(len(cal.lrs))
        ]
        for i in range(len(cal.values))
    ]
    hover = [
        [
            f"lr={cal.lrs[j]:.3g}, {cal.axis}={cal.values[i]:.3g}<br>"
            + ("not computed" if not computed[i, j] else f"λ̂ = {format_estimate(means[i, j], cal.llc_se[i, j])}<br>"
               + ("healthy" if healthy[i, j] else "<br>".join(reasons[i][j][:3])))
            for j in range(len(cal.lrs))
        ]
        for i in range(len(cal.values))
    ]
    x = [f"{lr:.3g}" for lr in cal.lrs]
    y = [f"{v:.3g}" for v in cal.values]
    fig = go.Figure(go.Heatmap(z=means, x=x, y=y, text=text, texttemplate="%{text}", hovertext=hover,
                               hoverinfo="text", colorscale="Viridis", colorbar=dict(title="λ̂")))
    if cal.recommended is not None:
        j = int(np.argmin(np.abs(cal.lrs - cal.recommended["lr"])))
        i = int(np.argmin(np.abs(cal.values - cal.recommended[cal.axis])))
        fig.add_trace(go.Scatter(x=[x[j]], y=[y[i]], mode="markers", name="recommended",
                                 marker=dict(symbol="circle-open", size=34, color="white", line=dict(width=3))))
    title = "calibration: LLC estimate per setting (✕ = not trustworthy)" + (
        "" if cal.recommended is not None else " — no recommendation")
    fig.update_layout(template=THEME, title=title, xaxis_title="lr (ε)", yaxis_title=cal.axis, height=420)
    return fig


def plot_sweep(sweep, normalize: bool = False) -> go.Figure:
    """LLC over training steps (log axis): each estimate with a ± one-standard-error bar.

    The marks are the widgets': a red ✕ on an unhealthy estimate, a grey hollow tick on the step axis
    where w* is not a local minimum (no LLC, no point). A negative estimate is no LLC either: it is
    drawn as unhealthy, and left out of (and, normalised, on the axis below) the normalised curve.

    Parameters
    ----------
    sweep : SweepResult
    normalize : bool
        Divide each curve by its largest positive estimate (compares the shapes of refined-LLC curves).
    """
    fig = go.Figure()
    steps = np.maximum(sweep.steps, 1)
    undefined = sweep.undefined
    mean, se_all = np.where(undefined, np.nan, sweep.llc_mean), sweep.llc_se
    computed = np.zeros(mean.shape, bool)
    for sel, dist, index in sweep.results:
        computed[sweep.selections.index(sel), sweep.distributions.index(dist), index] = True
    unhealthy = (computed & ~sweep.healthy & ~undefined) | (mean <= 0)
    color_index = 0
    axis_row: list[float] = []
    for i, sel in enumerate(sweep.selections):
        for j, dist in enumerate(sweep.distributions):
            curve, se = mean[i, j], se_all[i, j]
            positive = curve[curve > 0]
            scale = positive.max() if normalize and positive.size else 1.0
            shown = np.where(curve > 0, curve, np.nan) / scale if normalize else curve
            color = CHAIN_COLORS[color_index % len(CHAIN_COLORS)]
            color_index += 1
            name = sel if len(sweep.distributions) == 1 else f"{sel} · {dist}"
            text = [format_estimate(m, e) for m, e in zip(curve, se)]
            fig.add_trace(go.Scatter(x=steps, y=shown, name=name, legendgroup=name, mode="lines+markers", text=text,
                                     customdata=sweep.steps,  # the real step: step 0 is drawn at 1 on the log axis
                                     hovertemplate=f"{name}<br>step %{{customdata}}<br>LLC %{{text}} (± SE)<extra></extra>",
                                     error_y=dict(type="data", array=se / scale, visible=True, thickness=1, width=3),
                                     line=dict(color=color, width=1.2), marker=dict(size=5, color=color)))
            bad = unhealthy[i, j]
            on_curve = bad & np.isfinite(shown)
            axis_row.extend(steps[bad & ~np.isfinite(shown)])
            if on_curve.any():
                fig.add_trace(go.Scatter(x=steps[on_curve], y=shown[on_curve], mode="markers", name=UNHEALTHY_LABEL,
                                         legendgroup="unhealthy", showlegend=not any(t.legendgroup == "unhealthy" for t in fig.data),
                                         marker=UNHEALTHY_MARKER, hoverinfo="skip"))
    if axis_row:
        fig.add_trace(go.Scatter(x=axis_row, y=np.full(len(axis_row), 0.04), yaxis="y2", mode="markers", hoverinfo="text",
                                 hovertext=[f"step {s:.0f}: unhealthy, no finite estimate to draw" for s in axis_row],
                                 name=UNHEALTHY_LABEL + (" (negative: not normalised)" if normalize else " (not finite)"),
                                 legendgroup="unhealthy-axis", marker=UNHEALTHY_MARKER))
    if undefined.any():
        ticks = steps[undefined.any(axis=(0, 1))]
        fig.add_trace(go.Scatter(x=ticks, y=np.full(ticks.size, 0.04), yaxis="y2", mode="markers", hoverinfo="text",
                                 hovertext=[f"step {s}: undefined, no LLC (w* is not a local minimum)"
                                            for s in np.asarray(sweep.steps)[undefined.any(axis=(0, 1))]],
                                 name=UNDEFINED_LABEL, marker=UNDEFINED_MARKER))
    if axis_row or undefined.any():
        fig.update_layout(yaxis2=dict(overlaying="y", range=[0, 1], visible=False))
    fig.update_layout(template=THEME, title="LLC over training, ± one standard error" + (" (normalised)" if normalize else ""),
                      xaxis_type="log", xaxis_title="training step", hovermode="x unified",  # every curve at one step
                      yaxis_title="λ̂ / largest positive λ̂ of the curve" if normalize else "LLC λ̂", height=420)
    return fig


def plot_stages(stages, steps, llc) -> go.Figure:
    """An LLC curve with its smoothed version and the detected stages shaded by type.

    Parameters
    ----------
    stages : StageResult
    steps, llc : np.ndarray, shape (checkpoints,)
        The raw curve the stages were found on.
    """
    fig = go.Figure()
    x = np.maximum(np.asarray(steps, dtype=float), 1)
    fig.add_trace(go.Scatter(x=x, y=llc, mode="markers", name="λ̂", marker=dict(size=4, color="gray")))
    fig.add_trace(go.Scatter(x=x, y=stages.smoothed_, name="smoothed", line=dict(color=CHAIN_COLORS[0])))
    for stage in stages.stages_:
        fill = "rgba(84,162,75,0.15)" if stage["type"] == "rising" else "rgba(228,87,86,0.15)"
        fig.add_vrect(x0=max(stage["start"], 1), x1=max(stage["end"], 1), fillcolor=fill, line_width=0,
                      annotation_text=stage["type"], annotation_position="top left")
    for boundary in stages.boundaries_:
        fig.add_vline(x=max(boundary, 1), line=dict(color="gray", dash="dot"))
    fig.update_layout(template=THEME, title="developmental stages from the LLC curve", xaxis_type="log", xaxis_title="training step",
                      yaxis_title="λ̂", height=380)
    return fig


# ---- essential dynamics -------------------------------------------------------------------------

MILESTONE_COLOR = "#E45756"
PLANE_SPACING = 0.08  # between side-by-side panels: room for the right panel's axis title and ticks
CUSP_COLOR = "#F58518"


def _step_colorbar(steps: np.ndarray) -> tuple[np.ndarray, dict]:
    """Marker colours log10(step + 1) and a colour bar whose ticks are round steps of the run.

    The ticks are 0 (when checkpointed) and 1, 2, 5 × 10^k inside the run's steps, each drawn at its
    own log10(step + 1); only the powers of ten when that gives more than six.
    """
    steps = np.asarray(steps, dtype=float)
    colour = np.log10(steps + 1)
    first, last = float(steps.min()), float(steps.max())
    decades = range(int(np.log10(max(last, 1))) + 1)
    rounds = [m * 10**e for e in decades for m in (1, 2, 5)]
    ticks = [s for s in ([0] + rounds) if first <= s <= last]
    if len(ticks) > 6:
        ticks = [s for s in ([0] + [10**e for e in decades]) if first <= s <= last]
    if not ticks:
        ticks = [first]
    span = max(np.log10(last + 1) - np.log10(first + 1), 1e-9)
    spaced = [ticks[0]]
    for tick in ticks[1:]:  # labels closer than 12% of the bar overlap (0 and 1 sit 0.3 decades apart)
        if np.log10(tick + 1) - np.log10(spaced[-1] + 1) >= 0.12 * span:
            spaced.append(tick)
    ticks = spaced
    return colour, dict(title="step", tickvals=np.log10(np.asarray(ticks, float) + 1), ticktext=[f"{t:.0f}" for t in ticks], len=0.8)


def _circle_lines(centres: np.ndarray, radii: np.ndarray, every: int, limit: float) -> tuple[list, list]:
    """x, y of osculating circles (every ``every``-th checkpoint, radius ≤ ``limit``), None-separated."""
    theta = np.linspace(0, 2 * np.pi, 64)
    xs, ys = [], []
    for index in range(0, len(radii), every):
        radius = radii[index]
        if not (np.isfinite(radius) and radius <= limit and np.isfinite(centres[index]).all()):
            continue
        xs.extend(list(centres[index, 0] + radius * np.cos(theta)) + [None])
        ys.extend(list(centres[index, 1] + radius * np.sin(theta)) + [None])
    return xs, ys


def _add_geometry_plane(fig: go.Figure, geometry, plane: tuple[int, int], col: int, circles: bool, evolute: bool,
                        show_colorbar: bool) -> None:
    """One PC plane: raw checkpoints coloured by step, the smoothed curve, cusps, milestones, circles, evolute."""
    i, j = plane
    which = geometry.planes_.index((i, j))
    raw, smooth, steps = geometry.trajectory_, geometry.smoothed_, geometry.steps_
    colour, colorbar = _step_colorbar(steps)
    hover = [f"step {s}" for s in steps]
    fig.add_trace(go.Scatter(x=raw[:, i], y=raw[:, j], mode="markers", name="checkpoints", legendgroup="checkpoints",
                             showlegend=show_colorbar, text=hover, hoverinfo="text",
                             marker=dict(size=5, color=colour, colorscale="Viridis", showscale=show_colorbar,
                                         colorbar=colorbar)), row=1, col=col)
    fig.add_trace(go.Scatter(x=smooth[:, i], y=smooth[:, j], mode="lines", name="smoothed", legendgroup="smoothed",
                             showlegend=show_colorbar, line=dict(color="gray", width=1.5), hoverinfo="skip"),
                  row=1, col=col)
    extent = float(np.ptp(smooth[:, [i, j]], axis=0).max()) or 1.0
    if circles:
        every = max(1, len(steps) // 30)
        xs, ys = _circle_lines(geometry.centres_[which], geometry.radius_[which], every, limit=extent)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="osculating circles", legendgroup="circles",
                                 showlegend=show_colorbar, line=dict(color=GRID, width=0.7), hoverinfo="skip"),
                      row=1, col=col)
    if evolute:
        centres = geometry.centres_[which]
        lo, hi = smooth[:, [i, j]].min(axis=0) - 0.5 * extent, smooth[:, [i, j]].max(axis=0) + 0.5 * extent
        inside = np.isfinite(centres).all(axis=1) & np.all((centres >= lo) & (centres <= hi), axis=1)
        fig.add_trace(go.Scatter(x=centres[inside, 0], y=centres[inside, 1], mode="markers", name="evolute",
                                 legendgroup="evolute", showlegend=show_colorbar, hoverinfo="skip",
                                 marker=dict(size=2, color=NEUTRAL)), row=1, col=col)
    cusps = geometry.cusps_[which]
    if len(cusps):
        fig.add_trace(go.Scatter(x=smooth[cusps, i], y=smooth[cusps, j], mode="markers",
                                 name="evolute cusps (in this plane; not milestones)",
                                 legendgroup="cusps", showlegend=not any(t.legendgroup == "cusps" for t in fig.data),
                                 text=[f"cusp at step {steps[t]}" for t in cusps], hoverinfo="text",
                                 marker=dict(symbol="triangle-up", size=10, color=CUSP_COLOR)), row=1, col=col)
    milestones = geometry.milestones_
    if len(milestones):
        fig.add_trace(go.Scatter(x=smooth[milestones, i], y=smooth[milestones, j], mode="markers", name="milestones",
                                 legendgroup="milestones", showlegend=show_colorbar,
                                 text=[f"milestone at step {steps[t]}" for t in milestones], hoverinfo="text",
                                 marker=dict(symbol="star", size=14, color=MILESTONE_COLOR,
                                             line=dict(color=NEUTRAL, width=1))), row=1, col=col)
    fig.update_xaxes(title_text=f"PC{i + 1}", row=1, col=col)
    fig.update_yaxes(title_text=f"PC{j + 1}", row=1, col=col)


def _add_explained_variance(fig: go.Figure, ratio: np.ndarray, col: int) -> None:
    names = [f"PC{i + 1}" for i in range(len(ratio))]
    fig.add_trace(go.Bar(x=names, y=ratio, name="explained variance", showlegend=False, marker_color="#4C78A8",
                         text=[f"{r:.1%}" for r in ratio], textposition="outside"), row=1, col=col)
    fig.update_yaxes(title_text="variance ratio", tickformat=".0%", row=1, col=col)


def plot_trajectory_geometry(geometry, planes=None, circles: bool = False, evolute: bool = False) -> go.Figure:
    """A trajectory's smoothed curve in each PC plane, coloured by step, with cusps and milestones.

    Parameters
    ----------
    geometry : TrajectoryGeometry
        Fitted.
    planes : list of (int, int) or None
        PC pairs to draw (0-based); None: the first three planes.
    circles : bool
        Draw the osculating circles of about 30 checkpoints (radius at most the plane's extent).
    evolute : bool
        Draw the centres of the osculating circles near the curve.
    """
    planes = list(geometry.planes_[:3] if planes is None else planes)
    fig = make_subplots(rows=1, cols=max(len(planes), 1), horizontal_spacing=PLANE_SPACING,
                        subplot_titles=[f"PC{i + 1} vs PC{j + 1}" for i, j in planes])
    for col, plane in enumerate(planes, start=1):
        _add_geometry_plane(fig, geometry, tuple(plane), col, circles, evolute, show_colorbar=col == 1)
    title = f"trajectory geometry — {len(geometry.milestones_)} milestone(s)"
    fig.update_layout(template=THEME, title=title, height=420, legend=dict(orientation="h", y=-0.2))
    return fig


def plot_essential_dynamics(ed, planes=None, circles: bool = False, evolute: bool = False) -> go.Figure:
    """Essential dynamics: the trajectory in PC planes (coloured by step, milestones marked) and the
    explained variance per component.

    Parameters
    ----------
    ed : EssentialDynamics
        Fitted.
    planes, circles, evolute
        As in :func:`plot_trajectory_geometry`.
    """
    geometry = ed.geometry_
    if geometry is None:  # a single component: PC1 over training
        fig = make_subplots(rows=1, cols=2, subplot_titles=("PC1 over training", "explained variance"))
        fig.add_trace(go.Scatter(x=np.maximum(ed.steps_, 1), y=ed.trajectory_[:, 0], mode="lines+markers",
                                 name="PC1"), row=1, col=1)
        fig.update_xaxes(type="log", title_text="training step", row=1, col=1)
        _add_explained_variance(fig, ed.explained_variance_ratio_, col=2)
        fig.update_layout(template=THEME, title="essential dynamics", height=420)
        return fig
    planes = list(geometry.planes_[:3] if planes is None else planes)
    titles = [f"PC{i + 1} vs PC{j + 1}" for i, j in planes] + ["explained variance"]
    widths = [1.0] * len(planes) + [0.45]
    fig = make_subplots(rows=1, cols=len(planes) + 1, subplot_titles=titles, column_widths=widths,
                        horizontal_spacing=PLANE_SPACING)
    for col, plane in enumerate(planes, start=1):
        _add_geometry_plane(fig, geometry, tuple(plane), col, circles, evolute, show_colorbar=col == 1)
    _add_explained_variance(fig, ed.explained_variance_ratio_, col=len(planes) + 1)
    milestones = ", ".join(str(s) for s in geometry.milestone_steps_) or "none"
    fig.update_layout(template=THEME, title=f"essential dynamics ({ed.solver_} PCA) — milestones at steps: {milestones}", height=440,
                      legend=dict(orientation="h", y=-0.2))
    return fig


def plot_joint_essential_dynamics(joint, plane=(0, 1)) -> go.Figure:
    """Several runs in one plane of their joint PCA, with projected references and the explained variance.

    Parameters
    ----------
    joint : JointEssentialDynamics
        Fitted.
    plane : (int, int)
        The PC pair (0-based).
    """
    i, j = plane
    fig = make_subplots(rows=1, cols=2, column_widths=[1.0, 0.4], horizontal_spacing=PLANE_SPACING,
                        subplot_titles=(f"PC{i + 1} vs PC{j + 1} (joint basis)", "explained variance"))
    for index, name in enumerate(joint.run_names_):
        color = CHAIN_COLORS[index % len(CHAIN_COLORS)]
        path, steps = joint.trajectories_[name], joint.steps_[name]
        fig.add_trace(go.Scatter(x=path[:, i], y=path[:, j], mode="lines+markers", name=name, legendgroup=name,
                                 text=[f"{name}, step {s}" for s in steps], hoverinfo="text",
                                 line=dict(color=color, width=1.5), marker=dict(size=4, color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=path[-1:, i], y=path[-1:, j], mode="markers", legendgroup=name, showlegend=False,
                                 hoverinfo="skip", marker=dict(symbol="square", size=9, color=color)), row=1, col=1)
        geometry = joint.geometries_.get(name)
        if geometry is not None and len(geometry.milestones_):
            marks = geometry.milestones_
            fig.add_trace(go.Scatter(x=geometry.smoothed_[marks, i], y=geometry.smoothed_[marks, j], mode="markers+text",
                                     legendgroup=name, name=f"{name}: ★ milestones (labelled by step)",
                                     text=[f"{steps[t]}" for t in marks], textposition="top center",
                                     textfont=dict(size=10, color=color),
                                     hovertext=[f"{name}: milestone at step {steps[t]}" for t in marks], hoverinfo="text",
                                     marker=dict(symbol="star", size=13, color=color, line=dict(color=NEUTRAL, width=1))),
                          row=1, col=1)
    for name, points in joint.references_.items():
        fig.add_trace(go.Scatter(x=points[:, i], y=points[:, j], mode="markers+text", name=f"reference: {name}",
                                 text=[name] * len(points), textposition="top center",
                                 marker=dict(symbol="x", size=12, color=NEUTRAL)), row=1, col=1)
    fig.update_xaxes(title_text=f"PC{i + 1}", row=1, col=1)
    fig.update_yaxes(title_text=f"PC{j + 1}", row=1, col=1)
    _add_explained_variance(fig, joint.explained_variance_ratio_, col=2)
    fig.update_layout(template=THEME, title=f"joint essential dynamics of {len(joint.run_names_)} runs (■ = last checkpoint)",
                      height=460)
    return fig


def plot_stage_comparison(comparison) -> go.Figure:
    """Essential-dynamics milestones and LLC stage boundaries on one log-step axis, pairs joined.

    Parameters
    ----------
    comparison : StageComparison
        Its ``stages`` (when compared with a fitted detector) are drawn as segments of the LLC row.
    """
    fig = go.Figure()
    for milestone, boundary, distance in comparison.pairs:
        fig.add_trace(go.Scatter(x=[max(milestone, 1), max(boundary, 1)], y=[1, 0], mode="lines", showlegend=False,
                                 line=dict(color="gray", dash="dot"), hoverinfo="text",
                                 text=f"Δ log-step {distance:+.3f}"))
    fig.add_trace(go.Scatter(x=np.maximum(comparison.milestones, 1), y=np.ones(len(comparison.milestones)),
                             mode="markers", name="essential-dynamics milestones",
                             marker=dict(symbol="star", size=14, color=MILESTONE_COLOR),
                             text=[f"milestone {m:.0f}" for m in comparison.milestones], hoverinfo="text"))
    fig.add_trace(go.Scatter(x=np.maximum(comparison.boundaries, 1), y=np.zeros(len(comparison.boundaries)),
                             mode="markers", name="LLC stage boundaries",
                             marker=dict(symbol="line-ns-open", size=18, color=NEUTRAL, line=dict(width=2)),
                             text=[f"boundary {b:.0f}" for b in comparison.boundaries], hoverinfo="text"))
    for stage in comparison.stages:  # each stage a segment of the LLC row, so one stage without boundaries shows too
        arrow = {"rising": "↑", "falling": "↓"}.get(stage["type"], "→")
        label = f"{arrow} {stage['type']} {stage['change']:+.3g} ({stage['z']:.1f} SE)" if "z" in stage else f"{arrow} {stage['type']}"
        fig.add_trace(go.Scatter(x=[max(stage["start"], 1), max(stage["end"], 1)], y=[0, 0], mode="lines", showlegend=False,
                                 line=dict(color=NEUTRAL, width=6), opacity=0.45, hoverinfo="text",
                                 text=f"LLC stage, steps {stage['start']:.0f}–{stage['end']:.0f}: {label}"))
        fig.add_annotation(x=np.log10(np.sqrt(max(stage["start"], 1) * max(stage["end"], 1))), y=0, yshift=14, text=label,
                           showarrow=False, font=dict(size=11))
    fig.update_layout(template=THEME, title="milestones vs LLC stage boundaries", xaxis_type="log", xaxis_title="training step",
                      yaxis=dict(tickvals=[0, 1], ticktext=["LLC stages", "milestones"], range=[-0.5, 1.5]),
                      height=300)
    return fig
