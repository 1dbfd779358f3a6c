// Figures of the DevelopmentDashboard: loss, LLC and essential-dynamics panels (pure: data in, plotly spec out).

import { themeLayout } from "../theme.js";
import { mapArray, withAlpha } from "./linked.js";

const customIndex = (indices, stepValues) => {
  const out = new Array(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = [indices[i], stepValues[i]];
  return out;
};

function xAxis(tl, title, logX) {
  return { ...tl.xaxis, type: logX ? "log" : "linear", title: { text: title }, zeroline: false };
}

/** The training-loss panel: one line per series ({name, steps, values, index}). */
export function lossFigure(theme, series, xmap, logX, margin) {
  const tl = themeLayout(theme);
  const traces = series.map((s, k) => ({
    type: "scatter",
    mode: s.steps.data.length > 300 ? "lines" : "lines+markers",
    x: mapArray(s.steps.data, xmap),
    y: s.values.data,
    name: s.name,
    customdata: customIndex(s.index.data, s.steps.data),
    marker: { size: 4 },
    line: { width: 1.6, color: theme.chains[k % theme.chains.length] },
    hovertemplate: `${s.name}<br>step %{customdata[1]}<br>%{y:.5g}<extra></extra>`,
  }));
  const layout = {
    ...tl,
    height: 210,
    margin: { ...margin },
    showlegend: series.length > 1,
    legend: { ...tl.legend, orientation: "h", x: 0, y: 1, yanchor: "bottom" },
    hovermode: "closest",
    xaxis: xAxis(tl, "", logX),
    yaxis: { ...tl.yaxis, title: { text: "loss" } },
    uirevision: `loss-${logX}`,
  };
  return { traces, layout };
}

/**
 * The LLC panel of curve [i, j] (selection, distribution): the estimate, its chains' range, crosses
 * and axis ticks on unhealthy checkpoints, grey ticks where no LLC exists, the stages of `stage`.
 * @returns {{traces, layout, unhealthy: number, undefined: number}}
 */
export function llcFigure(theme, c, [i, j], stage, steps, xmap, logX, margin) {
  const [S, D, N] = c.mean.shape;
  const base = (i * D + j) * N;
  const mean = c.mean.data.subarray(base, base + N);
  const chains = c.chains.shape[3] || 0;
  const lo = new Float32Array(N).fill(NaN);
  const hi = new Float32Array(N).fill(NaN);
  for (let t = 0; t < N; t++) {
    let a = Infinity;
    let b = -Infinity;
    for (let k = 0; k < chains; k++) {
      const v = c.chains.data[(base + t) * chains + k];
      if (Number.isFinite(v)) {
        if (v < a) a = v;
        if (v > b) b = v;
      }
    }
    if (a <= b) {
      lo[t] = a;
      hi[t] = b;
    }
  }
  const x = mapArray(steps, xmap);
  const indices = Float32Array.from({ length: N }, (_, t) => t);
  const custom = customIndex(indices, steps);
  const bad = { x: [], y: [], customdata: [] };
  const shapes = [];
  const undefinedTicks = [];
  for (let t = 0; t < N; t++) {
    if (c.healthy.data[base + t] === -1) {
      // w* is not a local minimum there: no LLC exists, so no point is drawn, only a grey tick
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: x[t], x1: x[t], y0: 0, y1: 0.07, line: { width: 2, color: theme.fontMuted } });
      undefinedTicks.push(t);
      continue;
    }
    if (c.healthy.data[base + t] === 0) {
      // a tick on the axis for every unhealthy estimate (its mean may be non-finite), an × on the curve
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: x[t], x1: x[t], y0: 0, y1: 0.07, line: { width: 2, color: theme.error } });
      if (!Number.isFinite(mean[t])) continue;
      bad.x.push(x[t]);
      bad.y.push(mean[t]);
      bad.customdata.push([t, steps[t]]);
    }
  }
  const unhealthy = shapes.length - undefinedTicks.length;
  const tl = themeLayout(theme);
  const traces = [
    { type: "scatter", mode: "lines", x, y: lo, line: { width: 0 }, hoverinfo: "skip", showlegend: false },
    { type: "scatter", mode: "lines", x, y: hi, line: { width: 0 }, fill: "tonexty", fillcolor: withAlpha(theme.brand, 0.18), hoverinfo: "skip", name: "chains (min–max)" },
    { type: "scatter", mode: N > 300 ? "lines" : "lines+markers", x, y: mean, customdata: custom, name: "LLC", marker: { size: 4, color: theme.brand }, line: { width: 1.8, color: theme.brand }, hovertemplate: "step %{customdata[1]}<br>LLC %{y:.4g}<extra></extra>" },
    { type: "scatter", mode: "markers", x: bad.x, y: bad.y, customdata: bad.customdata, name: "unhealthy", marker: { symbol: "x-thin", size: 9, line: { width: 2, color: theme.error }, color: theme.error }, hovertemplate: "step %{customdata[1]}: unhealthy estimate<extra></extra>" },
  ];
  if (undefinedTicks.length) {
    traces.push({ type: "scatter", mode: "markers", x: [null], y: [null], name: "no LLC: w* not a local minimum (grey ticks)", marker: { symbol: "line-ns-open", size: 10, line: { width: 2, color: theme.fontMuted } }, hoverinfo: "skip" });
  }
  const annotations = [];
  if (stage?.stages) {
    if (stage.smoothed) traces.push({ type: "scatter", mode: "lines", x, y: stage.smoothed.data, name: "smoothed", hoverinfo: "skip", line: { width: 1, dash: "dot", color: theme.fontMuted } });
    stage.stages.forEach((s, k) => {
      const rising = s.type === "rising";
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: xmap(s.start), x1: xmap(s.end), y0: 0, y1: 1, layer: "below", line: { width: 0 }, fillcolor: withAlpha(rising ? theme.success : theme.warn, k % 2 ? 0.1 : 0.16) });
      annotations.push({ xref: "x", yref: "paper", x: logX ? Math.log10(Math.sqrt(xmap(s.start) * xmap(s.end))) : (s.start + s.end) / 2, y: 1, yanchor: "bottom", showarrow: false, text: `${rising ? "↑" : "↓"}${k + 1}`, font: { size: 10, color: theme.fontMuted } });
    });
    for (const b of stage.boundaries?.data || []) shapes.push({ type: "line", xref: "x", yref: "paper", x0: xmap(b), x1: xmap(b), y0: 0, y1: 1, line: { width: 1, dash: "dash", color: theme.fontMuted } });
  }
  const layout = {
    ...tl,
    height: 250,
    margin: { ...margin },
    showlegend: false,
    hovermode: "closest",
    xaxis: xAxis(tl, "training step", logX),
    yaxis: { ...tl.yaxis, title: { text: D * S > 1 ? `LLC · ${c.selections[i]} · ${c.distributions[j]}` : "LLC" } },
    shapes,
    annotations,
    uirevision: `llc-${logX}`,
  };
  return { traces, layout, unhealthy, undefined: undefinedTicks.length };
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
    mode: m > 400 ? "lines+markers" : "lines+markers",
    x: xs,
    y: ys,
    customdata: custom,
    name: "trajectory",
    line: { width: 1, color: withAlpha(theme.font, 0.35) },
    marker: { size: m > 400 ? 3 : 6, color: order, colorscale: "Viridis", showscale: false },
    hovertemplate: "step %{customdata[1]}<extra></extra>",
  });
  const ms = Array.from(d.milestones.data, (v) => Math.round(v));
  traces.push({
    type: "scatter",
    mode: "markers+text",
    x: ms.map((k) => xs[k]),
    y: ms.map((k) => ys[k]),
    customdata: ms.map((k) => [d.index.data[k], d.steps.data[k]]),
    text: ms.map((k) => `step ${d.steps.data[k]}`),
    textposition: "top center",
    textfont: { size: 10, color: theme.font },
    name: "milestones",
    marker: { symbol: "star", size: 14, color: theme.warn, line: { width: 1, color: theme.background } },
    hovertemplate: "milestone at step %{customdata[1]}<extra></extra>",
  });
  const evr = d.explained.data;
  const label = (k) => `PC${k + 1} (${(100 * evr[k]).toFixed(1)}%)`;
  const layout = {
    ...tl,
    height: 460,
    margin: { l: 56, r: 10, t: 26, b: 44 },
    showlegend: false,
    hovermode: "closest",
    xaxis: { ...tl.xaxis, title: { text: label(px) }, zeroline: false },
    yaxis: { ...tl.yaxis, title: { text: label(py) }, zeroline: false, scaleanchor: "x", scaleratio: 1 },
    uirevision: `ed-${px}-${py}`,
  };
  return { traces, layout, milestones: ms.length };
}
