// HeadClusterWidget's pure figure builders: text measured in pixels, the dendrogram, the key's line
// samples, embedding labels placed so they never overlap, token ticks thinned to fit, and the
// overview of every head's attention pattern.

import { fmt, h } from "../dom.js";
import { themeLayout } from "../theme.js";
import { UNDEFINED_LABEL, UNHEALTHY_LABEL, undefinedMarker, unhealthyMarker } from "./conventions.js";

const SVG = "http://www.w3.org/2000/svg";

/** A short SVG line in a dash pattern (a key's sample of a line style). */
export function lineSample(dasharray, color) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", "24");
  svg.setAttribute("height", "8");
  const line = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1: 0, y1: 4, x2: 24, y2: 4, stroke: color, "stroke-width": 1.6, "stroke-dasharray": dasharray })) line.setAttribute(k, v);
  svg.append(line);
  return svg;
}

/** The dendrogram's merges ({icoord, dcoord}: (merges, 4), scipy's) as line traces on axes x2/y, rows at 0, 1, … */
export function dendrogramTraces(dendrogram, color) {
  const { icoord, dcoord } = dendrogram || {};
  if (!icoord || !icoord.shape[0]) return [];
  return Array.from({ length: icoord.shape[0] }, (_, m) => ({
    type: "scatter",
    mode: "lines",
    x: Array.from(dcoord.data.subarray(m * 4, m * 4 + 4)),
    y: Array.from(icoord.data.subarray(m * 4, m * 4 + 4), (v) => (v - 5) / 10),
    xaxis: "x2",
    yaxis: "y",
    line: { color, width: 1 },
    hoverinfo: "skip",
    showlegend: false,
  }));
}

/** Width in pixels of the widest of ``labels`` at ``size`` px in ``font`` (to lay figures out in pixels). */
export function textWidth(labels, size, font) {
  const context = (textWidth.canvas ||= document.createElement("canvas")).getContext("2d");
  context.font = `${size}px ${font || "sans-serif"}`;
  return Math.max(0, ...labels.map((label) => context.measureText(label).width));
}

/**
 * Where each point's label goes: above, below, right or left of it, the first place inside the plot
 * ([width, height] px) that overlaps neither another label nor a point; a label with no free place
 * is left to the hover. Points ``px``, ``py`` in pixels from the plot's top left; ``first`` is placed first.
 * @returns {{text: string[], position: string[]}} plotly's ``text`` and ``textposition`` per point
 */
export function placeLabels(px, py, names, [plotWidth, plotHeight], first, font) {
  const size = 9;
  const boxes = [];
  const points = px.map((x, i) => ({ x0: x - 6, x1: x + 6, y0: py[i] - 6, y1: py[i] + 6 }));
  const hits = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
  const places = {
    "top center": (x, y, w) => ({ x0: x - w / 2, x1: x + w / 2, y0: y - 8 - size - 2, y1: y - 6 }),
    "bottom center": (x, y, w) => ({ x0: x - w / 2, x1: x + w / 2, y0: y + 6, y1: y + 8 + size + 2 }),
    "middle right": (x, y, w) => ({ x0: x + 7, x1: x + 9 + w, y0: y - size / 2 - 2, y1: y + size / 2 + 2 }),
    "middle left": (x, y, w) => ({ x0: x - 9 - w, x1: x - 7, y0: y - size / 2 - 2, y1: y + size / 2 + 2 }),
  };
  const text = names.map(() => "");
  const position = names.map(() => "top center");
  const visit = [first, ...names.map((_, i) => i).filter((i) => i !== first)].filter((i) => i >= 0);
  for (const i of visit) {
    const w = textWidth([names[i]], size, font) + 4;
    for (const [name, place] of Object.entries(places)) {
      const box = place(px[i], py[i], w);
      const inside = box.x0 >= 0 && box.x1 <= plotWidth && box.y0 >= 0 && box.y1 <= plotHeight;
      if (inside && !boxes.some((b) => hits(b, box)) && !points.some((p, k) => k !== i && hits(p, box))) {
        boxes.push(box);
        text[i] = names[i];
        position[i] = name;
        break;
      }
    }
  }
  return { text, position };
}

/**
 * Every ``step``-th token position as a tick, so that labels ``pixels`` apart per token never
 * touch: side by side on an x axis (the widest label plus a gap), stacked on a y axis.
 */
export function tokenTicks(tokens, n, pixels, axis, size, font) {
  const labels = Array.from({ length: n }, (_, t) => (tokens?.[t] !== undefined ? tokens[t] : String(t)));
  const room = axis === "x" ? textWidth(labels, size, font) + 6 : size + 4;
  const step = Math.max(1, Math.ceil(room / Math.max(pixels, 1e-6)));
  const tickvals = labels.map((_, t) => t).filter((t) => t % step === 0);
  return { tickvals, ticktext: tickvals.map((t) => labels[t]), tickangle: 0, tickfont: { size } };
}

/** Head ``i``'s pattern of an attention array (heads, query, key) as rows of plotly's ``z``. */
export function patternOf(attention, i) {
  const [, Q, K] = attention.shape;
  return Array.from({ length: Q }, (_, q) => Array.from(attention.data.subarray((i * Q + q) * K, (i * Q + q + 1) * K)));
}

/** Hover text of a (query, key) pattern: each position with its token. */
export function attentionHover(tokens, Q, K) {
  const at = (t) => (tokens?.[t] !== undefined ? `${t} “${tokens[t]}”` : String(t));
  return Array.from({ length: Q }, (_, q) => Array.from({ length: K }, (_, k) => `query ${at(q)}<br>key ${at(k)}`));
}

/**
 * Every head's attention pattern in a grid of square cells, one colour bar, token ticks on the
 * outer row and column, each cell titled in its cluster's colour; the selected head outlined.
 * @param {object} o ``attention`` (heads, query, key), ``tokens``, ``cells`` [{head, index, title, color}]
 *   in grid order, ``selected`` (a head index or -1), ``width`` px, ``theme``
 */
export function overviewFigure({ attention, tokens, cells, selected, width, theme }) {
  const [, Q, K] = attention.shape;
  const margin = { l: 58, r: 70, t: 20, b: 44 };
  const plotWidth = width - margin.l - margin.r;
  const columns = Math.max(1, Math.min(cells.length, Math.floor(plotWidth / 100)));
  const rowsCount = Math.ceil(cells.length / columns);
  const plotHeight = rowsCount * (plotWidth / columns);
  const gap = 0.12; // of a cell: room for its title
  const tl = themeLayout(theme);
  const layout = {
    ...tl,
    height: margin.t + margin.b + plotHeight,
    margin,
    showlegend: false,
    annotations: [],
    coloraxis: { colorscale: "Viridis", cmin: 0, cmax: 1, colorbar: { thickness: 10, outlinewidth: 0, tickfont: { color: theme.font }, title: { text: "attention weight", side: "right", font: { size: 10 } } } },
    uirevision: "overview",
  };
  const traces = cells.map((cell, n) => {
    const row = Math.floor(n / columns);
    const col = n % columns;
    const suffix = n === 0 ? "" : String(n + 1);
    const x0 = col / columns;
    const y1 = 1 - row / rowsCount;
    const xdomain = [x0 + gap / 2 / columns, x0 + (1 - gap / 2) / columns];
    const ydomain = [y1 - (1 - gap / 2) / rowsCount, y1 - gap / rowsCount];
    const bottom = n + columns >= cells.length;
    layout[`xaxis${suffix}`] = { ...tl.xaxis, domain: xdomain, anchor: `y${suffix}`, showgrid: false, zeroline: false, ...tokenTicks(tokens, K, ((xdomain[1] - xdomain[0]) * plotWidth) / K, "x", 8, theme.fontFamily), showticklabels: bottom };
    layout[`yaxis${suffix}`] = { ...tl.yaxis, domain: ydomain, anchor: `x${suffix}`, autorange: "reversed", showgrid: false, zeroline: false, ...tokenTicks(tokens, Q, ((ydomain[1] - ydomain[0]) * plotHeight) / Q, "y", 8, theme.fontFamily), showticklabels: col === 0 };
    layout.annotations.push({ text: cell.title, font: { size: 10, color: cell.color }, showarrow: false, xref: "paper", yref: "paper", x: (xdomain[0] + xdomain[1]) / 2, y: ydomain[1], yshift: 3, yanchor: "bottom", xanchor: "center" });
    return { type: "heatmap", z: patternOf(attention, cell.index), text: attentionHover(tokens, Q, K), coloraxis: "coloraxis", xaxis: `x${suffix}`, yaxis: `y${suffix}`, name: cell.head, hovertemplate: `${cell.head}<br>%{text}<br>attention %{z:.3f}<extra></extra>` };
  });
  layout.annotations.push(
    { text: "key", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0, yshift: -30, yanchor: "top", font: { size: 11 } },
    { text: "query", showarrow: false, xref: "paper", yref: "paper", x: 0, xshift: -36, y: 0.5, textangle: -90, xanchor: "right", font: { size: 11 } },
  );
  const r = cells.findIndex((cell) => cell.index === selected);
  const axis = r === 0 ? "" : r + 1;
  layout.shapes = r < 0 ? [] : [{ type: "rect", xref: `x${axis} domain`, yref: `y${axis} domain`, x0: -0.02, x1: 1.02, y0: -0.02, y1: 1.01, line: { color: theme.font, width: 2 } }];
  return { traces, layout };
}

/**
 * Push points (pixel coordinates, changed in place) apart until no two centres are closer than
 * ``gap`` pixels, so that no marker hides another: a few rounds of pairwise repulsion, each pair
 * moved symmetrically along the line between them (coincident ones apart along a fixed direction
 * per pair, so the result does not depend on chance).
 * @returns {number} the largest distance any point moved, in pixels
 */
export function spreadPoints(px, py, gap, rounds = 60) {
  const x0 = Array.from(px);
  const y0 = Array.from(py);
  for (let round = 0; round < rounds; round++) {
    let overlap = false;
    for (let a = 0; a < px.length; a++) {
      for (let b = a + 1; b < px.length; b++) {
        let dx = px[b] - px[a];
        let dy = py[b] - py[a];
        let d = Math.hypot(dx, dy);
        if (d >= gap - 1e-6) continue;
        overlap = true;
        if (d < 1e-9) {
          const angle = ((a * 7 + b * 13) % 12) * (Math.PI / 6);
          [dx, dy, d] = [Math.cos(angle), Math.sin(angle), 1];
        }
        const push = (gap - d) / 2 + 0.01;
        px[a] -= (dx / d) * push;
        py[a] -= (dy / d) * push;
        px[b] += (dx / d) * push;
        py[b] += (dy / d) * push;
      }
    }
    if (!overlap) break;
  }
  return Math.max(0, ...Array.from(px, (x, i) => Math.hypot(x - x0[i], py[i] - y0[i])));
}

/** The verdict marks of head ``i``'s estimates on its curve figure (counts recorded on ``plot``) (every view's: a red ✕ unhealthy, a grey tick on the step axis undefined). */
export function verdictTraces(data, theme, i, plot) {
  const v = data.verdicts;
  if (!v) return [];
  const D = data.distributions.length;
  const [, , N] = data.curves.shape;
  const steps = data.steps.data;
  const bad = { x: [], y: [], text: [] };
  const none = { x: [], text: [] };
  for (let j = 0; j < D; j++) {
    for (let t = 0; t < N; t++) {
      const k = (i * D + j) * N + t;
      const where = `${data.distributions[j]}, step ${steps[t]}`;
      if (v.data[k] === 0) (bad.x.push(steps[t]), bad.y.push(data.curves.data[k]), bad.text.push(`${where}: unhealthy estimate`));
      else if (v.data[k] === -1) (none.x.push(steps[t]), none.text.push(`${where}: no LLC (w* is not a local minimum); the curve shows the estimate ${fmt(data.curves.data[k], 4)}`));
    }
  }
  plot.dataset.unhealthy = String(bad.x.length);
  plot.dataset.undefined = String(none.x.length);
  return [
    { type: "scatter", mode: "markers", x: bad.x, y: bad.y, text: bad.text, name: UNHEALTHY_LABEL, showlegend: bad.x.length > 0, marker: unhealthyMarker(theme), hovertemplate: "%{text}<extra></extra>" },
    { type: "scatter", mode: "markers", x: none.x, y: none.x.map(() => 0.04), yaxis: "y2", text: none.text, name: UNDEFINED_LABEL, showlegend: none.x.length > 0, cliponaxis: false, marker: undefinedMarker(theme), hovertemplate: "%{text}<extra></extra>" },
  ];
}

/** Counts of head ``i``'s unhealthy (✕) and undefined (grey |) estimates, for its thumbnail's title. */
export function verdictBadges(data, theme, i) {
  const v = data.verdicts;
  if (!v) return [];
  const D = data.distributions.length;
  const [, , N] = data.curves.shape;
  const row = v.data.subarray(i * D * N, (i + 1) * D * N);
  const bad = row.filter((x) => x === 0).length;
  const none = row.filter((x) => x === -1).length;
  return [
    ...(bad ? [h("span", { role: "unhealthy-count", style: `color:${theme.error}; margin-left:4px`, title: `${bad} unhealthy estimate(s): ✕ on the head's curve` }, `✕${bad}`)] : []),
    ...(none ? [h("span", { role: "undefined-count", style: `color:${theme.fontMuted}; margin-left:4px`, title: `${none} estimate(s) with no LLC (w* is not a local minimum): grey ticks on the head's curve` }, `|${none}`)] : []),
  ];
}

/**
 * One y range [lo, hi] for every sparkline (not each curve's own min–max, which would undo the
 * scaling chosen): the finite values of ``values`` (heads, distributions, checkpoints), only
 * distribution ``shown`` unless it is null.
 */
export function sharedRange(values, heads, D, shown) {
  const [, , N] = values.shape;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < heads; i++) {
    for (let j = 0; j < D; j++) {
      if (shown !== null && j !== shown) continue;
      for (const v of values.data.subarray((i * D + j) * N, (i * D + j + 1) * N)) if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    }
  }
  return [lo, hi];
}

/**
 * The heatmap's column ticks: a block of checkpoints per shown distribution (``names``), every
 * ``every``-th checkpoint labelled by its step, at the same checkpoints in each block; the first
 * tick of a block carries the distribution's name when ``named``.
 * @param {number} width the heatmap's width in pixels
 */
export function blockTicks(steps, names, named, width) {
  const N = steps.length;
  const perBlock = Math.max(1, Math.floor(width / names.length / 46));
  const every = Math.max(1, Math.ceil(N / perBlock));
  const local = Array.from({ length: N }, (_, t) => t).filter((t) => t % every === 0);
  const tickvals = names.flatMap((_, b) => local.map((t) => b * N + t));
  const ticktext = names.flatMap((name) => local.map((t) => (named && names.length > 1 && t === 0 ? `${name}<br>${steps[t]}` : String(steps[t]))));
  return { tickvals, ticktext, every };
}

/** An SVG element with the given attributes. */
export function svgElement(tag, attributes) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
  return el;
}

/** Head ``i``'s curve under distribution ``j`` (checkpoints,), NaN where its estimate has no LLC (undefined): no point is drawn there. */
export function definedCurve(data, i, j) {
  const D = data.distributions.length;
  const [, , N] = data.curves.shape;
  const k = (i * D + j) * N;
  const values = data.curves.data.subarray(k, k + N);
  return data.verdicts ? Float32Array.from(values, (v, t) => (data.verdicts.data[k + t] === -1 ? NaN : v)) : values;
}
