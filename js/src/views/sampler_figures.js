// Figures of the SamplerWidget: the trace panels, the calibration heatmap, the health metrics (pure: data in, plotly spec out).

import { fmt } from "../dom.js";
import { decimate } from "../plot.js";
import { themeLayout } from "../theme.js";
import { stepBias } from "./conventions.js";

// the trace figure's plot boxes; the live canvas draws into the same ones
export const TRACE_MARGIN = { l: 60, r: 12, t: 42, b: 36 }; // t: room for the legend, so plotly never pushes it
export const TRACE_PANELS = [
  { domain: [0.54, 1], title: "loss", axis: "yaxis" },
  { domain: [0, 0.46], title: "running LLC", axis: "yaxis2" },
];

const xsCache = { n: -1, xs: null };
function drawIndex(n) {
  if (xsCache.n !== n) {
    xsCache.xs = Float32Array.from({ length: n }, (_, i) => i);
    xsCache.n = n;
  }
  return xsCache.xs;
}

/** Ratio of the largest to the smallest positive finite value above which a panel is drawn on log y. */
export const LOG_SPAN = 1e3;

/**
 * TensorBoard's smoothing: an exponential moving average with weight ``weight`` in [0, 1), debiased
 * so the first points are not pulled towards 0; NaN (not drawn yet) passes through. Display only.
 * @param {ArrayLike<number>} ys
 * @param {number} weight 0 = the raw values
 * @returns {ArrayLike<number>}
 */
export function ema(ys, weight) {
  if (!(weight > 0)) return ys;
  const out = new Float32Array(ys.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < ys.length; i++) {
    const v = ys[i];
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    count += 1;
    out[i] = last / (1 - weight ** count);
  }
  return out;
}

/** Whether the positive finite values of some arrays span more than ``LOG_SPAN`` (a log axis shows them). */
export function spansDecades(arrays) {
  let lo = Infinity;
  let hi = 0;
  for (const ys of arrays) {
    for (let i = 0; i < ys.length; i++) {
      const v = ys[i];
      if (v > 0 && v < Infinity) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  return hi > 0 && hi / lo > LOG_SPAN;
}

/** Whether every finite value is positive (a log axis drops the others). */
export function allPositive(arrays) {
  for (const ys of arrays) for (let i = 0; i < ys.length; i++) if (ys[i] <= 0) return false;
  return true;
}

/**
 * Which panels of a run are drawn on log y: ``mode`` "log", "linear" or "auto" (log where the
 * values span decades, as a diverged run's do, or ``diverged``). The running-LLC panel goes log only
 * where all its values are positive.
 * @returns {[boolean, boolean]} [loss panel, running-LLC panel]
 */
export function logPanels(mode, lossRows, llcRows, diverged = false) {
  if (mode === "linear") return [false, false];
  const wantLoss = mode === "log" || diverged || spansDecades(lossRows);
  const wantLlc = llcRows.length > 0 && allPositive(llcRows) && (mode === "log" || spansDecades(llcRows));
  return [wantLoss && allPositive(lossRows), wantLlc];
}

/** The burn-in options of :func:`traceFigure` from Python's ``trace`` and ``health``. */
export function burninOptions(trace, health) {
  return { burnin: trace.burnin?.steps?.size ? trace.burnin : null, burninDivergence: health.burnin_divergence_step?.data ?? null, message: health.burnin_message || "" };
}

/** Whether a run has burn-in losses but no draw yet (the plotly figure shows them; the live canvas draws draws only). */
export function burninOnly(trace) {
  return !(trace.loss?.shape?.[1] > 0) && Boolean(trace.burnin?.steps?.size);
}

/** The status badge of a streaming run: the burn-in step reached, then the draw. */
export function runProgress(status, trace, n) {
  const steps = trace.burnin?.steps;
  if (n === 0 && steps?.size) return `${status} · burn-in step ${steps.data[steps.size - 1] + 1}/${trace.burnin.num_steps}`;
  return `${status} · draw ${n}/${trace.total_draws ?? "?"}`;
}

/** ``text`` broken into plotly lines (<br>) of at most about ``width`` characters, a new line after a colon. */
export function wrapText(text, width = 72) {
  const lines = [];
  for (const part of text.split(/(?<=:) /)) {
    let line = "";
    for (const word of part.split(" ")) {
      if (line && line.length + word.length + 1 > width) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    lines.push(line);
  }
  return lines.join("<br>");
}

/**
 * The burn-in in the loss panel: each chain's burn-in losses before draw 0 (faint lines, joined over the
 * points another chain's divergence added), a grey band labelled "burn-in" and a line where a chain first
 * went non-finite. Burn-in step s lies at draw (s − num_steps) / steps_bw_draws.
 * @param {object} burnin Python's ``trace.burnin``: ``steps`` (points,), ``loss`` (chains, points), ``num_steps``, ``steps_bw_draws``
 * @param {ArrayLike|null} divergence per chain, the burn-in step it went non-finite at (-1: never)
 */
export function burninLayers(theme, burnin, divergence) {
  const steps = Array.from(burnin.steps.data);
  const perDraw = burnin.steps_bw_draws || 1;
  const xOf = (step) => (step - burnin.num_steps) / perDraw;
  const x = steps.map(xOf);
  const start = xOf(0);
  const rows = Array.from({ length: burnin.loss.shape[0] }, (_, c) => Float32Array.from(burnin.loss.at(c).data, (v) => (Number.isFinite(v) ? v : NaN)));
  const data = rows.map((y, c) => ({
    type: "scatter", mode: "lines", x, y, customdata: steps, connectgaps: true, name: `chain ${c} burn-in`, legendgroup: `c${c}`, showlegend: false,
    opacity: 0.45, line: { color: theme.chains[c % theme.chains.length], width: 1 }, hovertemplate: `chain ${c}<br>burn-in step %{customdata}<br>loss %{y:.5g}<extra></extra>`,
  }));
  const shapes = [{ type: "rect", name: "burn-in", xref: "x", yref: "paper", x0: start, x1: 0, y0: 0, y1: 1, fillcolor: theme.grid, opacity: 0.3, line: { width: 0 }, layer: "below" }];
  const annotations = [{ xref: "x", yref: "paper", x: start / 2, y: 1, text: "burn-in", showarrow: false, yanchor: "top", font: { color: theme.fontMuted, size: 11 } }];
  const first = divergence ? Math.min(...Array.from(divergence).filter((s) => s >= 0)) : Infinity;
  if (Number.isFinite(first)) {
    shapes.push({ type: "line", name: "non-finite", xref: "x", yref: "y domain", x0: xOf(first), x1: xOf(first), y0: 0, y1: 1, line: { color: theme.error, dash: "dot", width: 1.5 } });
    annotations.push({ xref: "x", yref: "y domain", x: xOf(first), y: 0.5, text: `non-finite<br>at step ${first}`, showarrow: false, xanchor: "left", font: { color: theme.error, size: 10 } });
  }
  return { data, shapes, annotations, rows, start, diverged: Number.isFinite(first) };
}

export const EMPTY_TRACE_TEXT = "Press ▶ Run: each chain's loss (top) and its running LLC (bottom) stream in here";

/**
 * The loss and running-LLC panels of a run (plotly data and layout).
 * @param {object} theme
 * @param {NDArray} loss (chains, draws)
 * @param {NDArray|null} llc (chains, draws): the running estimate per chain, from Python; null before L(w*) is known
 * @param {number|null} initLoss L(w*)
 * @param {ArrayLike|null} divergent per chain, > 0 where it diverged (drawn dotted)
 * @param {object} [options] ``yScale`` ("auto" | "linear" | "log"), ``smoothing`` (EMA weight of the
 *   loss lines, display only: the raw lines stay, faint), ``empty`` (text of an empty figure), ``stride``
 *   (draws between two given points: a calibration cell's thinned traces), and ``burnin``, ``burninDivergence``
 *   and ``message`` (:func:`burninOptions`: the burn-in before draw 0, and what to do when it diverged)
 */
export function traceFigure(theme, loss, llc, initLoss, divergent, height, width, totalDraws, options = {}) {
  const [chains, n] = loss.shape;
  const stride = options.stride || 1;
  const xs = stride === 1 ? drawIndex(n) : Float32Array.from({ length: n }, (_, i) => i * stride);
  const smoothing = options.smoothing || 0;
  const buckets = Math.max(100, Math.round((width || 800) / 2)); // one min-max pair per 2 px
  const line = (ys) => {
    const d = decimate(ys, buckets); // long chains: min-max per pixel column, spikes kept
    return { x: d.x ? d.x.map((i) => i * stride) : xs, y: d.y };
  };
  const lossRows = Array.from({ length: chains }, (_, c) => loss.at(c).data);
  const llcRows = llc ? Array.from({ length: chains }, (_, c) => llc.at(c).data) : [];
  const burnin = options.burnin ? burninLayers(theme, options.burnin, options.burninDivergence) : null;
  const [logLoss, logLlc] = logPanels(options.yScale || "auto", [...lossRows, ...(burnin?.rows ?? [])], llcRows, burnin?.diverged);
  const data = burnin ? [...burnin.data] : [];
  for (let c = 0; c < chains; c++) {
    const color = theme.chains[c % theme.chains.length];
    const dash = divergent && divergent[c] > 0 ? "dot" : "solid";
    if (smoothing > 0) data.push({ type: "scatter", mode: "lines", ...line(lossRows[c]), name: `chain ${c} raw`, legendgroup: `c${c}`, showlegend: false, opacity: 0.25, line: { color, width: 1 }, hoverinfo: "skip" });
    data.push({ type: "scatter", mode: "lines", ...line(ema(lossRows[c], smoothing)), name: `chain ${c}`, legendgroup: `c${c}`, line: { color, width: 1.3, dash }, hovertemplate: `chain ${c}<br>draw %{x}<br>loss${smoothing > 0 ? " (smoothed)" : ""} %{y:.5g}<extra></extra>` });
    if (llc) data.push({ type: "scatter", mode: "lines", ...line(llcRows[c]), name: `chain ${c}`, legendgroup: `c${c}`, showlegend: false, xaxis: "x2", yaxis: "y2", line: { color, width: 1.3, dash }, hovertemplate: `chain ${c}<br>draw %{x}<br>LLC %{y:.4g}<extra></extra>` });
  }
  // a panel without a line still gets its axes and frame (plotly draws only the subplots data use)
  const placeholder = (axes) => ({ type: "scatter", mode: "lines", x: [], y: [], ...axes, showlegend: false, hoverinfo: "skip" });
  if (chains === 0) data.push(placeholder({}));
  if (!llc) data.push(placeholder({ xaxis: "x2", yaxis: "y2" }));
  const tl = themeLayout(theme);
  const shapes = burnin ? burnin.shapes : [];
  const annotations = burnin ? burnin.annotations : [];
  if (initLoss !== null && initLoss !== undefined) {
    shapes.push({ type: "line", xref: "x domain", x0: 0, x1: 1, yref: "y", y0: initLoss, y1: initLoss, line: { color: theme.fontMuted, dash: "dash", width: 1 } });
    annotations.push({ xref: "x domain", x: 1, yref: "y", y: initLoss, text: "L(w*)", showarrow: false, xanchor: "right", yanchor: "bottom", font: { color: theme.fontMuted, size: 10 } });
  } else if (n > 0) {
    annotations.push({ xref: "x2 domain", yref: "y2 domain", x: 0.5, y: 0.5, text: "running LLC appears when L(w*) is known", showarrow: false, font: { color: theme.fontMuted } });
  }
  const empty = n === 0 && !burnin;
  if (options.message && !llcRows.some((row) => row.some(Number.isFinite))) {
    const [bottom, top] = TRACE_PANELS[1].domain; // in the running-LLC panel a run diverged in burn-in leaves empty
    annotations.push({ name: "message", xref: "paper", yref: "paper", x: 0.5, y: (bottom + top) / 2, text: wrapText(options.message), showarrow: false, align: "left", bgcolor: theme.background, bordercolor: theme.error, borderwidth: 1, borderpad: 6, font: { color: theme.font, size: 12 } });
  }
  if (empty && options.empty) {
    const [bottom, top] = TRACE_PANELS[0].domain; // centred in the loss panel
    annotations.push({ xref: "paper", yref: "paper", x: 0.5, y: (bottom + top) / 2, text: options.empty, showarrow: false, font: { color: theme.fontMuted, size: 12 } });
  }
  const frame = { showline: true, mirror: true, linecolor: theme.grid };
  // explicit either way: a figure drawn empty must not hand its range to the run drawn next
  const emptyAxis = empty ? { range: [0, 1], autorange: false, showticklabels: false, showgrid: false, zeroline: false } : { autorange: true };
  const yaxis = (index, log) => ({
    ...tl[TRACE_PANELS[index].axis], ...frame, ...emptyAxis, domain: TRACE_PANELS[index].domain,
    title: { text: TRACE_PANELS[index].title + (log ? " (log)" : "") }, type: log ? "log" : "linear", exponentformat: "power",
  });
  const xStart = burnin ? burnin.start : 0;
  const xRange = empty ? { range: [0, Math.max(1, (totalDraws || 2) - 1)] } : totalDraws > n || burnin ? { range: [xStart, Math.max(totalDraws - 1, n - 1, 1)] } : { autorange: true };
  const layout = {
    ...tl,
    height,
    margin: { ...TRACE_MARGIN },
    showlegend: chains <= 8 && !empty,
    hovermode: "closest",
    dragmode: "zoom",
    legend: { ...tl.legend, orientation: "h", y: 1, yanchor: "bottom", x: 0, font: { size: 10 } },
    // a fixed x range while streaming: axes are not re-ticked at every frame
    xaxis: { ...tl.xaxis, ...frame, anchor: "y", matches: "x2", showticklabels: false, ...xRange },
    yaxis: yaxis(0, logLoss),
    xaxis2: { ...tl.xaxis2, ...frame, anchor: "y2", title: { text: "draw" }, ...(empty ? { range: xRange.range } : {}) },
    yaxis2: { ...yaxis(1, logLlc), anchor: "x2" },
    shapes,
    annotations,
    uirevision: `traces-${empty}-${logLoss}-${logLlc}`, // zoom is kept across redraws of one kind of figure
  };
  return { data, layout };
}

/**
 * The history's comparison: the chain-mean running LLC of each compared run, its final λ̂ ± SE as a band.
 * @param {object} theme
 * @param {object} history ``rows``, ``curves`` (NDArray per run), ``strides``
 * @param {number[]} compared run indices
 */
export function compareFigure(theme, history, compared, height, width) {
  const data = [];
  const shapes = [];
  compared.forEach((index, k) => {
    const row = history.rows[index];
    const curve = history.curves[index].data;
    const stride = history.strides[index];
    const color = theme.chains[k % theme.chains.length];
    const label = `run ${index}: lr ${fmt(row.lr)}, nβ ${fmt(row.nbeta)} → ${fmt(row.llc_mean, 4)} ± ${fmt(row.llc_se, 2)}`;
    data.push({ type: "scatter", mode: "lines", x: Array.from(curve, (_, i) => i * stride), y: Array.from(curve), name: label, line: { color, width: 2 }, hovertemplate: `run ${index}<br>draw %{x}<br>LLC %{y:.4g}<extra></extra>` });
    if (Number.isFinite(row.llc_mean) && Number.isFinite(row.llc_se)) {
      shapes.push({ type: "rect", xref: "x domain", x0: 0, x1: 1, y0: row.llc_mean - row.llc_se, y1: row.llc_mean + row.llc_se, fillcolor: color, opacity: 0.15, line: { width: 0 } });
    }
  });
  const tl = themeLayout(theme);
  const layout = {
    ...tl,
    height,
    width,
    margin: { l: 60, r: 12, t: 10 + 16 * compared.length, b: 40 },
    showlegend: true,
    legend: { ...tl.legend, orientation: "v", y: 1, yanchor: "bottom", x: 0, font: { size: 10 } },
    xaxis: { ...tl.xaxis, title: { text: "draw" } },
    yaxis: { ...tl.yaxis, title: { text: "running LLC (chain mean)" } },
    shapes,
    uirevision: "compare",
  };
  return { data, layout };
}

const meanOf = (arr) => {
  if (!arr) return NaN;
  const finite = Array.from(arr.data).filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN;
};
const perChain = (arr, digits = 3) => (arr ? Array.from(arr.data).map((v, c) => `chain ${c}: ${fmt(v, digits)}`).join("\n") : "");

/** The health panel's metrics of a finished run: [label, value, tooltip] each. */
export function healthMetrics(health) {
  const divergent = health.divergent ? Array.from(health.divergent.data).filter((v) => v > 0).length : 0;
  const chains = health.divergent ? health.divergent.data.length : 0;
  return [
    [health.target || "LLC", `${fmt(health.llc_mean, 4)} ± ${fmt(health.llc_se, 2)}`, "estimate ± its standard error of the localized LLC at this nβ and γ, not of λ itself (the limit nβ → ∞, γ → 0): compare runs at equal nβ and γ\n" + perChain(health.llc_per_chain, 4)],
    ["step bias", stepBias(health.step_bias, health.step_bias_se, health.llc_mean), "estimated step-size bias of the estimate ± its standard error (the verdict fails it above 10% of the estimate; within its own noise it cannot tell)"],
    ["R-hat", Number.isFinite(health.rhat) ? health.rhat.toFixed(3) : "–", "rank-normalised split R-hat of the loss traces (≈1 is good)"],
    ["ESS", fmt(health.ess, 3), "bulk effective sample size, all chains"],
    ["MALA acc.", fmt(meanOf(health.mala_acceptance), 2), "mean MALA acceptance (≈0.9 is the rule of thumb)\n" + perChain(health.mala_acceptance, 2)],
    ["below L(w*)", Number.isFinite(meanOf(health.fraction_below_init)) ? `${fmt(100 * meanOf(health.fraction_below_init), 3)}%` : "–", "fraction of draws whose loss is below L(w*): a few % is minibatch noise; a chain with over half its draws below is flagged (w* may not be a minimum)\n" + perChain(health.fraction_below_init, 2)],
    ["divergent", `${divergent}/${chains}`, "chains whose loss became non-finite or exploded"],
  ];
}

/** The live health line while a run streams, from Python's ``trace.live``: [label, value, tooltip] each. */
export function liveMetrics(live, chains) {
  const so = "of the draws streamed so far (the verdict comes when the run ends)";
  return [
    ["R-hat", Number.isFinite(live.rhat) ? live.rhat.toFixed(3) : "–", `rank-normalised split R-hat of the loss traces ${so}; well above 1.1: the chains disagree`],
    ["ESS", fmt(live.ess, 3), `bulk effective sample size, all chains, ${so}`],
    ["divergent", live.divergent === null || live.divergent === undefined ? "–" : `${live.divergent}/${chains}`, `chains whose loss became non-finite or exploded, ${so}: Stop and lower lr`],
    ["MALA acc.", fmt(live.mala_acceptance, 3), `mean MALA acceptance probability of the moves measured ${so} (≈0.9 is the rule of thumb; the verdict fails a mean below 0.5 in high dimension)`],
  ];
}
