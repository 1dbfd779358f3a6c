// The SamplerWidget's calibration heatmap (pure: data in, plotly spec out): one number format per axis, cell text in the theme colour that reads on the cell.

import { fmt } from "../dom.js";
import { themeLayout } from "../theme.js";
import { wrapText } from "./sampler_figures.js";

/** Characters per line of a calibration cell's hover box, and the reasons it lists (its reasons wrap, the rest are in the cell's panel): the box stays compact, and short enough that plotly shows it over a small grid. */
const HOVER_WIDTH = 40;
const HOVER_REASONS = 2;

/** A cell's reasons for its hover box: the first few, wrapped, and how many more its panel lists. */
function hoverReasons(reasons) {
  const more = reasons.length - HOVER_REASONS;
  return [...reasons.slice(0, HOVER_REASONS).map((r) => wrapText(r, HOVER_WIDTH)), ...(more > 0 ? [`… ${more} more: click the cell`] : [])].join("<br>");
}

/** plotly's Viridis, the heatmap's colour scale (named here so a cell's colour, and the ink that reads on it, is known). */
export const VIRIDIS = ["#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e", "#21918c", "#1fa088",
  "#28ae80", "#3fbc73", "#5ec962", "#84d44b", "#addc30", "#d8e219", "#fde725"].map((c, k, all) => [k / (all.length - 1), c]);

/** One format for every number on an axis: all in exponent form (1e-6, 1e-4, 1e-3, 1e-1) when any needs it, else :func:`fmt`. */
export function axisFormat(values) {
  const exponent = Array.from(values).some((v) => v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5));
  if (!exponent) return (v) => fmt(v);
  return (v) => {
    if (v === 0 || !Number.isFinite(v)) return fmt(v);
    const [mantissa, power] = v.toExponential(2).split("e");
    return `${Number(mantissa)}e${power.replace("+", "")}`;
  };
}

let colourParser = null; // a canvas context: it writes any CSS colour (named, var-resolved, hsl) as #rrggbb or rgba()
function normalise(css) {
  colourParser ??= globalThis.document?.createElement("canvas").getContext("2d");
  if (!colourParser) return css;
  colourParser.fillStyle = "#000";
  colourParser.fillStyle = css;
  return colourParser.fillStyle;
}

/** [r, g, b, alpha] of a CSS colour (any form the browser reads: "white", #rgb, rgb(), rgba(), …). */
function rgba(css) {
  css = normalise(css);
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(css.trim());
  if (hex) {
    const d = hex[1].length === 3 ? [...hex[1]].map((c) => c + c) : hex[1].match(/../g);
    return [...d.map((x) => parseInt(x, 16)), 1];
  }
  const [r = 0, g = 0, b = 0, a = 1] = (css.match(/[\d.]+/g) || []).map(Number);
  return [r, g, b, a];
}

/** WCAG relative luminance of an [r, g, b] in 0–255. */
function luminance(rgb) {
  const [r, g, b] = rgb.map((c) => (c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG contrast of text colour ``ink`` (its alpha blended over ``ground``) on ``ground`` (CSS colours). */
export function contrast(ink, ground) {
  const [r, g, b, a] = rgba(ink);
  const under = rgba(ground);
  const [l1, l2] = [luminance([r, g, b].map((c, k) => a * c + (1 - a) * under[k])), luminance(under.slice(0, 3))];
  return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
}

/** The colour of ``value`` on the heatmap's scale over [zmin, zmax] (as plotly interpolates it, in rgb). */
export function viridisAt(value, zmin, zmax) {
  const t = zmax > zmin ? Math.min(1, Math.max(0, (value - zmin) / (zmax - zmin))) : 0.5;
  const k = Math.min(VIRIDIS.length - 2, Math.floor(t * (VIRIDIS.length - 1)));
  const [[t0, c0], [t1, c1]] = [VIRIDIS[k], VIRIDIS[k + 1]];
  const [a, b] = [rgba(c0), rgba(c1)];
  const f = (t - t0) / (t1 - t0);
  return `rgb(${a.slice(0, 3).map((c, i) => Math.round(c + f * (b[i] - c))).join(", ")})`;
}

/** The text colour of a cell of value v: whichever of the theme's text and background colours contrasts more with the cell. */
export function cellInk(theme, zmin, zmax) {
  return (value) => {
    const ground = viridisAt(value, zmin, zmax);
    return contrast(theme.font, ground) >= contrast(theme.background, ground) ? theme.font : theme.background;
  };
}

/**
 * The calibration heatmap: each cell's estimate, a cross on cells that are not healthy, a ring on
 * the recommended one, a frame on the `selected` [i, j].
 */
export function calibrationFigure(theme, cal, selected) {
  const [nValues, nLrs] = cal.llc_mean.shape;
  const finiteZ = Array.from(cal.llc_mean.data).filter(Number.isFinite);
  const [zmin, zmax] = finiteZ.length ? [Math.min(...finiteZ), Math.max(...finiteZ)] : [0, 1];
  const ink = cellInk(theme, zmin, zmax);
  const lrText = axisFormat(cal.lrs.data);
  const valueText = axisFormat(cal.values.data);
  const z = [];
  const text = [];
  const custom = [];
  for (let i = 0; i < nValues; i++) {
    const row = [];
    const trow = [];
    const crow = [];
    for (let j = 0; j < nLrs; j++) {
      const value = cal.llc_mean.get(i, j);
      const healthy = cal.healthy.get(i, j);
      const computed = !Number.isNaN(healthy);
      row.push(Number.isFinite(value) ? value : null);
      // every computed cell shows its number, in the theme colour that reads best on its colour; a cross after it marks a verdict that is not healthy
      const label = (Number.isFinite(value) ? fmt(value, 3) : "n/a") + (healthy === 1 ? "" : " ✕");
      trow.push(!computed ? "" : Number.isFinite(value) ? `<span style="color:${ink(value)}">${label}</span>` : label);
      const why = !computed ? "not computed yet" : healthy === 1 ? "healthy" : hoverReasons(cal.reasons?.[i]?.[j] || []) || "unhealthy";
      crow.push([lrText(cal.lrs.data[j]), valueText(cal.values.data[i]), why]);
    }
    z.push(row);
    text.push(trow);
    custom.push(crow);
  }
  const axisName = cal.axis === "nbeta" ? "nβ" : "localization";
  const tl = themeLayout(theme);
  const data = [
    {
      type: "heatmap",
      x: Array.from({ length: nLrs }, (_, j) => j),
      y: Array.from({ length: nValues }, (_, i) => i),
      z,
      text,
      texttemplate: "%{text}",
      hovertemplate: `lr %{customdata[0]}<br>${axisName} %{customdata[1]}<br>LLC %{z:.4g}<br>%{customdata[2]}<extra></extra>`,
      customdata: custom,
      colorscale: VIRIDIS, zmin, zmax,
      textfont: { size: 11 }, // fixed: plotly's automatic size would count the colour markup as characters
      colorbar: { title: { text: "LLC", side: "right" }, thickness: 12, outlinewidth: 0, tickfont: { color: theme.font } },
      xgap: 2,
      ygap: 2,
      hoverongaps: false,
    },
  ];
  // cells that ran but have no finite estimate (diverged): grey, "n/a ✕", in a layer of their own so
  // they show even when no cell of the grid has a value to colour
  const failedZ = text.map((trow, i) => trow.map((t, j) => (t !== "" && z[i][j] === null ? 0 : null)));
  if (failedZ.flat().some((v) => v !== null)) {
    data.push({
      type: "heatmap", x: data[0].x, y: data[0].y, z: failedZ, text: text.map((trow, i) => trow.map((t, j) => (failedZ[i][j] === null ? "" : t))),
      texttemplate: "%{text}", customdata: custom, hovertemplate: `lr %{customdata[0]}<br>${axisName} %{customdata[1]}<br>n/a: no finite LLC (chains diverged)<br>%{customdata[2]}<extra></extra>`,
      colorscale: [[0, theme.grid], [1, theme.grid]], showscale: false, xgap: 2, ygap: 2, hoverongaps: false, textfont: { color: theme.font },
    });
    data[0].text = text.map((trow, i) => trow.map((t, j) => (failedZ[i][j] === null ? t : "")));
  }
  const shapes = [];
  if (selected) {
    const [i, j] = selected;
    shapes.push({ type: "rect", x0: j - 0.5, x1: j + 0.5, y0: i - 0.5, y1: i + 0.5, line: { color: theme.font, width: 3 } });
  }
  if (cal.recommended) {
    const jr = Array.from(cal.lrs.data).findIndex((v) => Math.abs(v - cal.recommended.lr) <= 1e-6 * Math.abs(v));
    const ir = Array.from(cal.values.data).findIndex((v) => Math.abs(v - cal.recommended[cal.axis]) <= 1e-6 * Math.abs(v) + 1e-12);
    // an open ring around the cell, so its number stays readable: a success-coloured ring edged on both
    // sides by the background, so it stands out on every colour of the scale, in light and dark themes
    const ring = (inset) => ({ type: "rect", x0: jr - 0.44 + inset, x1: jr + 0.44 - inset, y0: ir - 0.42 + inset, y1: ir + 0.42 - inset });
    if (ir >= 0 && jr >= 0) {
      shapes.push({ ...ring(0), name: "recommended-halo", line: { color: theme.background, width: 11 } },
        { ...ring(0.07), name: "recommended-edge", line: { color: theme.background, width: 2 } },
        { ...ring(0), name: "recommended", line: { color: theme.success, width: 5 } });
    }
  }
  const layout = {
    ...tl,
    height: Math.max(220, 70 + 48 * nValues),
    margin: { l: 70, r: 20, t: 10, b: 50 },
    xaxis: { ...tl.xaxis, title: { text: "step size lr" }, tickvals: data[0].x, ticktext: Array.from(cal.lrs.data, lrText), showgrid: false, zeroline: false, range: [-0.5, nLrs - 0.5] },
    yaxis: { ...tl.yaxis, title: { text: axisName }, tickvals: data[0].y, ticktext: Array.from(cal.values.data, valueText), showgrid: false, zeroline: false, range: [-0.5, nValues - 0.5] },
    shapes,
    uirevision: "grid",
  };
  return { data, layout };
}
