// Pure figure builders and colours of the SusceptibilityExplorer view (no DOM state).

import { fmt } from "../dom.js";
import { plotly } from "../plot.js";
import { themeLayout } from "../theme.js";
import { labelWidth } from "./linked.js";

export { labelWidth };

export const NEGATIVE = [67, 147, 195];
export const POSITIVE = [214, 96, 77];
// this view keeps plotly's lasso and box select (the other views remove them)
const CONFIG = { displaylogo: false, responsive: false };

export const rgb = (c, alpha = 1) => `rgba(${c.join(",")},${alpha})`;
/** Blue below 0, the background at 0, red above: a diverging scale that reads in both themes. */
export const diverging = (theme) => [[0, rgb(NEGATIVE)], [0.5, theme.background], [1, rgb(POSITIVE)]];
export const finite = (v) => (Number.isFinite(v) ? v : null);

/** Background of a token chip: red above 0, blue below, opacity by |value| / scale. */
export function chipColor(value, scale) {
  if (!Number.isFinite(value) || !(scale > 0)) return "transparent";
  const alpha = Math.min(1, Math.abs(value) / scale) * 0.85;
  return rgb(value >= 0 ? POSITIVE : NEGATIVE, alpha.toFixed(3));
}

/** "all components" for the selection of every parameter, "component NAME" otherwise. */
export const componentText = (name) => (name === "all" ? "all components" : `component ${name}`);

export function draw(el, traces, layout, config = {}) {
  return plotly().react(el, traces, layout, { ...CONFIG, ...config });
}

/** The component × probe heatmap at one checkpoint, χ ± SE on hover, the selected row framed. */
export function responseFigure(data, checkpoint, selected, theme) {
  const P = data.probes.length;
  const rows = data.components.map((_, c) => c);
  const z = rows.map((c) => Array.from({ length: P }, (_, p) => finite(data.response.value.get(checkpoint, c, p))));
  const se = rows.map((c) => Array.from({ length: P }, (_, p) => finite(data.response.stderr.get(checkpoint, c, p))));
  const text = rows.map((c) => data.probes.map((probe, p) => z[c][p] === null ? `${data.components[c]} · ${probe}<br>missing: no estimate` : `${data.components[c]} · ${probe}<br>χ = ${fmt(z[c][p], 4)} ± ${fmt(se[c][p], 2)}`));
  // every cell prints its value (a white cell is χ ≈ 0; a cell with no estimate stays empty, "missing" on hover)
  const scale = Math.max(1e-12, ...z.flat().filter((v) => v !== null).map(Math.abs));
  const tl = themeLayout(theme);
  const traces = [{ type: "heatmap", z, x: data.probes.map((_, p) => p), y: rows, text, hovertemplate: "%{text}<extra></extra>", texttemplate: "%{z:.2e}", textfont: { size: 10, color: theme.font }, colorscale: diverging(theme), zmin: -scale, zmax: scale, colorbar: { thickness: 10, outlinewidth: 0, len: 0.9, title: { text: "χ", side: "right" }, tickfont: { color: theme.font } } }];
  const layout = {
    ...tl,
    height: Math.max(160, 70 + 24 * rows.length),
    margin: { l: Math.ceil(labelWidth(data.components, theme.fontFamily)) + 24, r: 8, t: 8, b: 44 },
    xaxis: { ...tl.xaxis, tickvals: data.probes.map((_, p) => p), ticktext: data.probes, showgrid: false, zeroline: false },
    yaxis: { ...tl.yaxis, tickvals: rows, ticktext: data.components, autorange: "reversed", showgrid: false, zeroline: false },
    shapes: [{ type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y", y0: selected - 0.5, y1: selected + 0.5, line: { color: theme.font, width: 2.5 } }],
    uirevision: "response",
  };
  return { traces, layout };
}
