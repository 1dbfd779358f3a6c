// Figures of the DevelopmentDashboard: loss, LLC and essential-dynamics panels (pure: data in, plotly spec out).

import { fmt } from "../dom.js";
import { themeLayout } from "../theme.js";
import { UNDEFINED_LABEL, UNHEALTHY_LABEL, estimate, undefinedMarker, unhealthyMarker } from "./conventions.js";
import { logTicks, mapArray, withAlpha } from "./linked.js";

const customIndex = (indices, stepValues) => {
  const out = new Array(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = [indices[i], stepValues[i]];
  return out;
};

/**
 * Viridis cut to the part that reads against the plot's background (contrast ratio ≥ 3 at both
 * ends): its dark half on a light theme, its bright half on a dark one. Early → late.
 */
const VIRIDIS_ON_LIGHT = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#1fa088"];
const VIRIDIS_ON_DARK = ["#2a788e", "#21918c", "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"];
export function timeColorscale(theme) {
  const stops = theme.dark ? VIRIDIS_ON_DARK : VIRIDIS_ON_LIGHT;
  return stops.map((color, k) => [k / (stops.length - 1), color]);
}

/**
 * The step panels' shared x axis: one range for every panel (``range`` in axis units: log10 of
 * the mapped step on a log axis), so the same step lands on the same pixel in each.
 */
function xAxis(tl, title, logX, range, ticks) {
  return { ...tl.xaxis, type: logX ? "log" : "linear", title: { text: title }, zeroline: false, range: [...range], autorange: false, ...(logX && ticks ? ticks : {}) };
}

/**
 * Tick marks of a log step axis: 1, 2, 5 × 10^k at the run's positive steps, and "0" where step 0
 * is drawn (half the first positive step), so the place of step 0 never reads as a step such as 0.5.
 * @param {ArrayLike<number>} steps every checkpoint's step, sorted
 */
export function logStepTicks(steps, xmap) {
  const positive = Array.from(steps).filter((s) => s > 0);
  const { tickvals, ticktext } = logTicks(positive.length ? positive : [1]);
  const floor = positive.length ? Math.min(...positive) : 1;
  const keep = tickvals.map((v, k) => [v, ticktext[k]]).filter(([v]) => v >= floor / 1.01 || !(steps[0] <= 0));
  if (steps.length && steps[0] <= 0) keep.unshift([xmap(0), "0"]);
  return { tickvals: keep.map(([v]) => v), ticktext: keep.map(([, t]) => t) };
}

/**
 * The x range of the step panels when not zoomed: every checkpoint with a little padding, at least
 * ``endPx`` pixels of a ``plotWidth``-pixel plot at each end (room for the end estimates' markers,
 * bars and rings, which the plot area would otherwise cut in half).
 * @param {ArrayLike<number>} steps every checkpoint's step, sorted
 */
export function defaultStepRange(steps, xmap, logX, plotWidth = 600, endPx = 14) {
  if (!steps.length) return logX ? [0, 1] : [0, 1];
  const ends = [xmap(steps[0]), xmap(steps[steps.length - 1])].map((v) => (logX ? Math.log10(v) : v));
  const span = Math.max(ends[1] - ends[0], logX ? 0.1 : 1);
  const pad = Math.max(span * 0.03, (span * endPx) / Math.max(1, plotWidth - 2 * endPx));
  return [ends[0] - pad, ends[1] + pad];
}

/** The step axis title; on a log axis it says where step 0 is drawn (it has no log). */
export function stepAxisTitle(steps, xmap, logX) {
  if (!logX || !steps.length || steps[0] > 0) return "training step";
  return `training step (log; step 0 drawn at ${fmtStep(xmap(0))})`;
}
const fmtStep = (v) => (v >= 1 ? String(Math.round(v * 100) / 100) : v.toPrecision(2));

/**
 * Exponential moving average for display (TensorBoard's, debiased so the start is not pulled to
 * 0); NaN values are skipped and stay NaN. ``weight`` in [0, 1): 0 returns the values.
 */
export function smoothed(values, weight) {
  if (!(weight > 0)) return values;
  const out = new Float32Array(values.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = NaN;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    count += 1;
    out[i] = last / (1 - weight ** count);
  }
  return out;
}

/** Whether every finite value is positive and they span at least ``decades`` powers of ten. */
export function spansDecades(seriesValues, decades = 1) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const values of seriesValues) {
    for (const v of values) {
      if (!Number.isFinite(v)) continue;
      if (v <= 0) return { positive: false, decades: 0 };
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const span = hi > lo ? Math.log10(hi / lo) : 0;
  return { positive: Number.isFinite(lo), decades: span, wide: span >= decades };
}

/**
 * The training-loss panel: one line per series ({name, steps, values, index}); with ``smoothing``
 * > 0 the smoothed curve is drawn over the faint raw one (display only).
 */
export function lossFigure(theme, series, xmap, { logX, logY, smoothing, range, title, ticks }, margin) {
  const tl = themeLayout(theme);
  const traces = [];
  series.forEach((s, k) => {
    const color = theme.chains[k % theme.chains.length];
    const x = mapArray(s.steps.data, xmap);
    const custom = customIndex(s.index.data, s.steps.data);
    const smooth = smoothing > 0;
    traces.push({
      type: "scatter",
      mode: s.steps.data.length > 300 || smooth ? "lines" : "lines+markers",
      x,
      y: s.values.data,
      name: s.name,
      customdata: custom,
      marker: { size: 4 },
      opacity: smooth ? 0.3 : 1,
      showlegend: !smooth,
      line: { width: smooth ? 1 : 1.6, color },
      hovertemplate: `${s.name}<br>step %{customdata[1]}<br>%{y:.5g}<extra></extra>`,
    });
    if (smooth) {
      traces.push({
        type: "scatter",
        mode: "lines",
        x,
        y: smoothed(s.values.data, smoothing),
        name: `${s.name} (smoothed)`,
        customdata: custom,
        line: { width: 2, color },
        hovertemplate: `${s.name}, smoothed ${smoothing.toFixed(2)}<br>step %{customdata[1]}<br>%{y:.5g}<extra></extra>`,
      });
    }
  });
  const layout = {
    ...tl,
    height: 220,
    margin: { ...margin },
    showlegend: series.length > 1,
    legend: { ...tl.legend, orientation: "h", x: 0, y: 1, yanchor: "bottom" },
    hovermode: "closest",
    xaxis: xAxis(tl, title, logX, range, ticks),
    yaxis: { ...tl.yaxis, title: { text: logY ? "loss (log)" : "loss" }, type: logY ? "log" : "linear" },
    uirevision: `loss-${logX}-${logY}`,
  };
  return { traces, layout };
}

/**
 * A row for each of ``spans`` ([left, right] pixels, in drawing order) so that labels in the same
 * row do not overlap: the first row where it fits after the row's last label (rows 0 and 1 only;
 * a third label in a crowded spot goes to the row whose last label ends first).
 */
export function labelRows(spans, gap = 4) {
  const ends = [-Infinity, -Infinity];
  return spans.map(([left, right]) => {
    let row = ends.findIndex((end) => left >= end + gap);
    if (row < 0) row = ends[0] <= ends[1] ? 0 : 1;
    ends[row] = right;
    return row;
  });
}

/**
 * The LLC panel of curve [i, j] (selection, distribution): a marker at each estimate with its ± SE
 * bar and nothing between estimates (no value exists there); a red ✕ on unhealthy estimates (on the
 * step axis when not finite), a grey hollow tick on the step axis where no LLC exists; the stages of
 * `stage`, each labelled with its change in standard errors and the estimates it rests on.
 * @returns {{traces, layout, unhealthy: number, undefined: number}}
 */
export function llcFigure(theme, c, [i, j], stage, xmap, { logX, range, title, plotWidth, ticks }, margin) {
  const [S, D, N] = c.mean.shape;
  const steps = c.steps.data;
  const base = (i * D + j) * N;
  const mean = c.mean.data.subarray(base, base + N);
  const se = c.se.data.subarray(base, base + N);
  const x = mapArray(steps, xmap);
  const custom = Array.from(steps, (s, t) => [c.index.data[t], s, estimate(mean[t], se[t])]);
  const bad = { x: [], y: [], customdata: [] };
  const badAxis = { x: [], customdata: [] };
  const undef = { x: [], customdata: [] };
  for (let t = 0; t < N; t++) {
    const verdict = c.healthy.data[base + t];
    if (verdict === -1) {
      undef.x.push(x[t]);
      undef.customdata.push([c.index.data[t], steps[t]]);
    } else if (verdict === 0) {
      const target = Number.isFinite(mean[t]) ? bad : badAxis;
      target.x.push(x[t]);
      if (target === bad) target.y.push(mean[t]);
      target.customdata.push([c.index.data[t], steps[t]]);
    }
  }
  const unhealthy = bad.x.length + badAxis.x.length;
  const tl = themeLayout(theme);
  const axisRow = (marks, marker, name, hover) => ({ type: "scatter", mode: "markers", x: marks.x, y: marks.x.map(() => 0.04), yaxis: "y2", customdata: marks.customdata, name, marker, cliponaxis: false, hovertemplate: hover });
  const traces = [
    {
      type: "scatter", mode: "markers", x, y: mean, customdata: custom, name: "LLC estimate ± SE",
      marker: { size: 6, color: theme.brand }, error_y: { type: "data", array: se, visible: true, color: withAlpha(theme.brand, 0.7), thickness: 1.2, width: 3 },
      hovertemplate: "step %{customdata[1]}<br>LLC %{customdata[2]} (± SE)<extra></extra>",
    },
    { type: "scatter", mode: "markers", x: bad.x, y: bad.y, customdata: bad.customdata, name: UNHEALTHY_LABEL, marker: unhealthyMarker(theme), hovertemplate: "step %{customdata[1]}: unhealthy estimate<extra></extra>" },
    axisRow(badAxis, unhealthyMarker(theme), `${UNHEALTHY_LABEL} (not finite)`, "step %{customdata[1]}: unhealthy, no finite estimate<extra></extra>"),
    axisRow(undef, undefinedMarker(theme), UNDEFINED_LABEL, "step %{customdata[1]}: no LLC (w* is not a local minimum)<extra></extra>"),
  ];
  const shapes = [];
  const annotations = [];
  if (stage?.stages) {
    // the detector's curve, when it is not the estimates themselves (a smoothing bandwidth was set)
    const sm = stage.smoothed?.data;
    if (sm && sm.some((v, t) => Number.isFinite(v) && Math.abs(v - mean[t]) > 1e-6 * (1 + Math.abs(mean[t])))) {
      traces.push({ type: "scatter", mode: "lines", x, y: sm, name: "smoothed (the stage detector's curve)", hoverinfo: "skip", line: { width: 1, dash: "dot", color: theme.fontMuted } });
    }
    const toPixel = (mapped) => ((logX ? Math.log10(mapped) : mapped) - range[0]) / (range[1] - range[0]) * plotWidth;
    const labels = stage.stages.map((s, k) => {
      const rising = s.type === "rising";
      const text = `stage ${k + 1} ${rising ? "↑" : "↓"} ${fmt(s.z, 2)} SE${s.estimates <= 2 ? ", 2 estimates" : ""}`;
      const centre = logX ? Math.sqrt(xmap(s.start) * xmap(s.end)) : (s.start + s.end) / 2;
      const width = 6 * text.length + 6;
      const px = toPixel(centre);
      // a label at an end of the axis is moved inwards so that it reads whole
      const shift = Math.min(Math.max(px, width / 2), plotWidth - width / 2) - px;
      return { s, k, rising, text, centre, px: px + shift, shift, width };
    });
    const rows = labelRows(labels.map((l) => [l.px - l.width / 2, l.px + l.width / 2]));
    labels.forEach(({ s, k, rising, text, centre, shift }, n) => {
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: xmap(s.start), x1: xmap(s.end), y0: 0, y1: 1, layer: "below", line: { width: 0 }, fillcolor: withAlpha(rising ? theme.success : theme.warn, k % 2 ? 0.1 : 0.16) });
      annotations.push({
        xref: "x", yref: "paper", x: logX ? Math.log10(centre) : centre, y: 1, yanchor: "bottom", xshift: shift, yshift: 12 * rows[n], showarrow: false, text,
        hovertext:
          `stage ${k + 1}: the LLC ${rising ? "rises" : "falls"} by ${fmt(Math.abs(s.change), 3)} from step ${Math.round(s.start)} to ${Math.round(s.end)}, ` +
          `${fmt(s.z, 3)} standard errors of the difference between its ends, resting on ${s.estimates} estimates` +
          (s.estimates <= 2 ? " (only its two ends: the evidence is their two error bars)" : ""),
        font: { size: 10, color: theme.font }, captureevents: true,
      });
    });
    for (const b of stage.boundaries?.data || []) shapes.push({ type: "line", xref: "x", yref: "paper", x0: xmap(b), x1: xmap(b), y0: 0, y1: 1, line: { width: 1, dash: "dash", color: theme.fontMuted } });
  }
  const layout = {
    ...tl,
    height: 250,
    margin: { ...margin, t: margin.t + 12 },
    showlegend: false,
    hovermode: "closest",
    xaxis: xAxis(tl, title, logX, range, ticks),
    yaxis: { ...tl.yaxis, title: { text: D * S > 1 ? `LLC · ${c.selections[i]} · ${c.distributions[j]}` : "LLC" } },
    yaxis2: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true },
    shapes,
    annotations,
    uirevision: `llc-${logX}`,
  };
  return { traces, layout, unhealthy, undefined: undef.x.length };
}

/**
 * The LLC panel's caption: every mark drawn (with its count) and, with stages, what a stage is.
 * @param {number} estimates checkpoints with an estimate; ``checkpoints`` all of them
 */
export function llcCaption(estimates, checkpoints, figure, stage) {
  const found = stage?.stages?.length ?? 0;
  return (
    `LLC estimated at ${estimates} of ${checkpoints} checkpoints: ● an estimate, its bar ± one standard error (SE); nothing is drawn between estimates; ` +
    (figure.unhealthy ? `${UNHEALTHY_LABEL} (${figure.unhealthy}); ` : "") +
    (figure.undefined ? `${UNDEFINED_LABEL} (${figure.undefined}); ` : "") +
    "dashed ring: the nearest estimate when the checkpoint has none" +
    (stage?.stages
      ? `; shaded: the ${found} stage${found === 1 ? "" : "s"} the detector found (green: the LLC rises, amber: it falls; dashed: boundaries), each labelled with its change in SE (kept when over ${fmt(stage.significance ?? 3, 2)} SE)` +
        (found === 1 ? ": no turn of the curve is larger than that" : "")
      : "")
  );
}

/**
 * Round training steps for the colour bar of "colour = training time" (colour follows the
 * checkpoint's index): 1, 2 and 5 × 10^k inside the run (0 too when it was checkpointed), placed at
 * their fractional index between the checkpoints around them, the roundest first, each at least
 * ``gap`` of the bar from the others. Every label is thus a step of the run's range, never a
 * checkpoint's odd step such as 10006 for a 10 000-step run.
 * @param {ArrayLike<number>} steps every checkpoint's step, increasing
 * @returns {{tickvals: number[], ticktext: string[]}}
 */
export function stepTicks(steps, gap = 0.14) {
  const m = steps.length;
  if (m < 2) return { tickvals: [0], ticktext: m ? [String(steps[0])] : [] };
  const first = steps[0];
  const last = steps[m - 1];
  const position = (step) => {
    let k = 1;
    while (k < m - 1 && steps[k] < step) k++;
    const width = steps[k] - steps[k - 1];
    return width > 0 ? k - 1 + Math.min(1, Math.max(0, (step - steps[k - 1]) / width)) : k;
  };
  const candidates = first <= 0 ? [[0, 0]] : [];
  for (const mantissa of [1, 5, 2]) {
    for (let e = 0; 10 ** e <= last; e++) {
      for (let k = 1; k < 10; k++) {
        const step = (mantissa === 1 ? k : mantissa * k) * 10 ** e;
        const rank = mantissa === 1 ? (k === 1 ? 1 : 4) : mantissa === 5 ? 2 : 3;
        if (step >= first && step <= last && (mantissa === 1 || k === 1)) candidates.push([step, rank]);
      }
    }
  }
  candidates.sort((a, b) => a[1] - b[1] || b[0] - a[0]);
  const chosen = [];
  for (const [step] of candidates) {
    const at = position(step) / (m - 1);
    if (chosen.every(([, other]) => Math.abs(other - at) >= gap)) chosen.push([step, at]);
  }
  chosen.sort((a, b) => a[0] - b[0]);
  return { tickvals: chosen.map(([step]) => position(step)), ticktext: chosen.map(([step]) => String(step)) };
}

/** The colour bar of "colour = training time": round steps placed where they fall between checkpoints. */
function timeColorbar(theme, steps) {
  return {
    title: { text: "training step", side: "right", font: { size: 10, color: theme.font } },
    ...stepTicks(steps),
    tickfont: { size: 9, color: theme.font },
    thickness: 10,
    len: 0.9,
    outlinewidth: 0,
  };
}

/**
 * The essential-dynamics plane [px, py]: the trajectory coloured by training time, its smoothed
 * curve and its milestones.
 * @returns {{traces, layout, milestones: number}}
 */
export function edFigure(theme, d, [px, py]) {
  const [m, K] = d.coords.shape;
  const column = (arr, k) => Float32Array.from({ length: m }, (_, t) => arr.data[t * K + k]);
  const xs = column(d.coords, px);
  const ys = column(d.coords, py);
  const custom = customIndex(d.index.data, d.steps.data);
  const order = Float32Array.from({ length: m }, (_, t) => t);
  const tl = themeLayout(theme);
  const traces = [];
  if (d.smoothed) traces.push({ type: "scatter", mode: "lines", x: column(d.smoothed, px), y: column(d.smoothed, py), name: "smoothed", hoverinfo: "skip", line: { width: 1.2, color: theme.fontMuted, dash: "dot" } });
  traces.push({
    type: "scatter",
    mode: "lines+markers",
    x: xs,
    y: ys,
    customdata: custom,
    name: "trajectory",
    line: { width: 1, color: withAlpha(theme.font, 0.35) },
    marker: {
      size: m > 400 ? 4 : 7,
      color: order,
      colorscale: timeColorscale(theme),
      line: { width: 0.5, color: withAlpha(theme.font, 0.45) },
      showscale: true,
      colorbar: timeColorbar(theme, d.steps.data),
    },
    hovertemplate: "step %{customdata[1]}<extra></extra>",
  });
  const ms = Array.from(d.milestones.data, (v) => Math.round(v));
  traces.push({
    type: "scatter",
    mode: "markers",
    x: ms.map((k) => xs[k]),
    y: ms.map((k) => ys[k]),
    customdata: ms.map((k) => [d.index.data[k], d.steps.data[k]]),
    name: "milestones",
    marker: { symbol: "star", size: 14, color: theme.warn, line: { width: 1, color: theme.background } },
    hovertemplate: "milestone at step %{customdata[1]}<extra></extra>",
  });
  // labels as annotations: the view moves them apart once the figure has pixels (placeLabels)
  const annotations = ms.map((k) => ({
    x: xs[k], y: ys[k], xref: "x", yref: "y", text: `step ${d.steps.data[k]}`, showarrow: true, arrowhead: 0, arrowwidth: 1,
    arrowcolor: theme.fontMuted, ax: 0, ay: -18, font: { size: 10, color: theme.font }, bgcolor: withAlpha(theme.background, 0.8),
  }));
  const evr = d.explained.data;
  const label = (k) => `PC${k + 1} (${(100 * evr[k]).toFixed(1)}%)`;
  const layout = {
    ...tl,
    height: 460,
    margin: { l: 56, r: 10, t: 26, b: 44 },
    annotations,
    showlegend: false,
    hovermode: "closest",
    xaxis: { ...tl.xaxis, title: { text: label(px) }, zeroline: false },
    yaxis: { ...tl.yaxis, title: { text: label(py) }, zeroline: false, scaleanchor: "x", scaleratio: 1 },
    uirevision: `ed-${px}-${py}`,
  };
  return { traces, layout, milestones: ms.length };
}
