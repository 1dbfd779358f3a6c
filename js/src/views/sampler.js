// SamplerWidget view: controls, live loss / running-LLC traces, health panel, calibration grid.
//
// Python-synced state (the controls, `tab`, `selected_cell`) is written with model.set +
// save_changes, debounced while a slider moves; UI-only state (theme, frame counters) lives
// here. Everything is redrawn at most once per animation frame. While a run streams, the traces
// are drawn on a canvas (live.js, a few ms a frame); when it ends, as the interactive plotly figure.

import { decode, emptyArray, runningLLC } from "../codec.js";
import { debounce, field, fmt, h, parseNumbers } from "../dom.js";
import { LiveLines } from "../live.js";
import { coalesce, decimate, purge, react, plotly, watchSize } from "../plot.js";
import { readTheme, themeLayout } from "../theme.js";
import { followTheme } from "./linked.js";

const SAMPLERS = [
  ["sgld", "SGLD"],
  ["rmsprop_sgld", "RMSProp-SGLD"],
  ["sgnht", "SGNHT"],
];
const LR_MIN_LOG = -8;
const LR_MAX_LOG = 0;
const SYNC_DEBOUNCE_MS = 150;
const TRACE_HEIGHT = 380;
// the trace figure's plot boxes; the live canvas draws into the same ones
const TRACE_MARGIN = { l: 60, r: 12, t: 42, b: 36 }; // t: room for the legend, so plotly never pushes it
const TRACE_PANELS = [
  { domain: [0.54, 1], title: "loss", axis: "yaxis" },
  { domain: [0, 0.46], title: "running LLC", axis: "yaxis2" },
];

const NUMBER_CONTROLS = [
  { name: "nbeta", label: "nβ", min: 0, exclusive: true, allowNull: true, placeholder: "auto", hint: "inverse temperature nβ; empty = batch_size / ln(batch_size)" },
  { name: "localization", label: "localization γ", min: 0, hint: "pull towards w* (≥ 0)" },
  { name: "num_chains", label: "chains", min: 1, max: 256, integer: true },
  { name: "num_draws", label: "draws", min: 1, integer: true },
  { name: "num_burnin_steps", label: "burn-in steps", min: 0, integer: true },
];

/** Validate a typed value for a number control: {ok, value, message}. */
export function checkNumber(spec, text) {
  const trimmed = text.trim();
  if (trimmed === "") {
    return spec.allowNull ? { ok: true, value: null } : { ok: false, message: `${spec.label} is required` };
  }
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return { ok: false, message: `${spec.label} must be a number` };
  if (spec.integer && !Number.isInteger(value)) return { ok: false, message: `${spec.label} must be a whole number` };
  if (spec.exclusive ? value <= spec.min : value < spec.min) {
    return { ok: false, message: `${spec.label} must be ${spec.exclusive ? ">" : "≥"} ${spec.min}` };
  }
  if (spec.max !== undefined && value > spec.max) return { ok: false, message: `${spec.label} must be ≤ ${spec.max}` };
  return { ok: true, value };
}

export function renderSampler({ model, el }) {
  const disposers = [];
  const isStatic = Boolean(model.get("_static"));
  let theme = readTheme(el);
  let frames = 0;
  let drawMs = 0;
  const cost = { live: [0, 0], plotly: [0, 0] }; // [redraws, total ms] per renderer

  // ------------------------------------------------------------------ synced writes
  const pending = new Map(); // name -> debounced setter
  function syncLater(name, value) {
    if (!pending.has(name)) {
      pending.set(name, debounce((v) => {
        model.set(name, v);
        model.save_changes();
      }, SYNC_DEBOUNCE_MS));
    }
    pending.get(name)(value);
  }
  function syncNow(name, value) {
    pending.get(name)?.flush();
    model.set(name, value);
    model.save_changes();
  }
  function flushAll() {
    for (const setter of pending.values()) setter.flush();
  }
  function send(message) {
    flushAll(); // Python must see the latest controls before it acts
    model.send(message);
  }

  // ------------------------------------------------------------------ controls
  const samplerSelect = h(
    "select",
    { role: "sampler", onchange: () => syncNow("sampler", samplerSelect.value) },
    SAMPLERS.map(([value, label]) => h("option", { value }, label)),
  );

  const lrSlider = h("input", { type: "range", role: "lr", min: LR_MIN_LOG, max: LR_MAX_LOG, step: 0.01, "aria-label": "log10 step size" });
  const lrText = h("input", { type: "text", role: "lr-value", class: "dvz-lr-text", size: 8, "aria-label": "step size" });
  const lrFromSlider = () => Number((10 ** Number(lrSlider.value)).toPrecision(3));
  lrSlider.addEventListener("input", () => {
    const lr = lrFromSlider();
    lrText.value = fmt(lr);
    lrText.classList.remove("dvz-invalid");
    syncLater("lr", lr);
  });
  lrSlider.addEventListener("change", () => syncNow("lr", lrFromSlider()));
  lrText.addEventListener("change", () => {
    const lr = Number(lrText.value);
    if (!(Number.isFinite(lr) && lr > 0)) {
      lrText.classList.add("dvz-invalid");
      lrText.title = "lr must be a number > 0";
      return;
    }
    lrText.classList.remove("dvz-invalid");
    lrText.title = "";
    lrSlider.value = String(Math.log10(lr));
    syncNow("lr", lr);
  });

  const numberInputs = {};
  for (const spec of NUMBER_CONTROLS) {
    const input = h("input", {
      type: "number",
      role: spec.name.replaceAll("_", "-"),
      min: spec.min,
      max: spec.max,
      step: spec.integer ? 1 : "any",
      placeholder: spec.placeholder,
    });
    input.addEventListener("change", () => {
      const check = checkNumber(spec, input.value);
      input.classList.toggle("dvz-invalid", !check.ok);
      input.title = check.ok ? "" : check.message;
      if (check.ok) syncNow(spec.name, check.value);
    });
    numberInputs[spec.name] = input;
  }

  const paramsInput = h("input", { type: "text", role: "params", placeholder: "all weights (names or globs, comma separated)" });
  paramsInput.addEventListener("change", () => syncNow("params", paramsInput.value.trim()));
  const selectionSummary = h("div", { class: "dvz-muted dvz-small", role: "selection-summary" });

  const runButton = h("button", { role: "run", class: "dvz-button dvz-primary", onclick: () => send({ type: "run" }) }, "▶ Run");
  const stopButton = h("button", { role: "stop", class: "dvz-button", onclick: () => send({ type: "stop" }) }, "■ Stop");

  const controls = h(
    "div",
    { class: "dvz-controls" },
    field("sampler", samplerSelect),
    h("label", { class: "dvz-field" }, h("span", { class: "dvz-label" }, "step size lr"), h("div", { class: "dvz-lr" }, lrSlider, lrText)),
    NUMBER_CONTROLS.map((spec) => field(spec.label, numberInputs[spec.name], spec.hint)),
    field("weights that move", paramsInput),
    selectionSummary,
    h("div", { class: "dvz-buttons" }, runButton, stopButton),
  );

  // ------------------------------------------------------------------ header, tabs
  const statusBadge = h("span", { class: "dvz-status", role: "status" });
  const tabRun = h("button", { role: "tab-run", class: "dvz-tab", onclick: () => syncNow("tab", "run") }, "Run");
  const tabCal = h("button", { role: "tab-calibrate", class: "dvz-tab", onclick: () => syncNow("tab", "calibrate") }, "Calibrate");
  const header = h("div", { class: "dvz-header" }, h("span", { class: "dvz-title" }, "LLC sampler"), h("div", { class: "dvz-tabs" }, tabRun, tabCal), statusBadge);
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });

  // ------------------------------------------------------------------ run tab
  const tracePlot = h("div", { class: "dvz-plot", role: "trace-plot" });
  const traceBox = h("div", { class: "dvz-plot-box" }, tracePlot);
  const live = new LiveLines(traceBox, { panels: TRACE_PANELS, xTitle: "draw", margin: TRACE_MARGIN });
  const verdict = h("div", { class: "dvz-verdict", role: "verdict" });
  const metrics = h("div", { class: "dvz-metrics", role: "metrics" });
  const reasons = h("ul", { class: "dvz-reasons", role: "reasons" });
  const nextStep = h("div", { class: "dvz-next-step", role: "next-step" });
  const warnings = h("ul", { class: "dvz-warnings", role: "warnings" });
  const healthPanel = h("div", { class: "dvz-health", role: "health" }, verdict, metrics, reasons, nextStep, warnings);
  const runPane = h("div", { class: "dvz-pane", role: "run-pane" }, traceBox, healthPanel);

  // ------------------------------------------------------------------ calibrate tab
  const axisSelect = h(
    "select",
    { role: "grid-axis", onchange: () => syncNow("grid_axis", axisSelect.value) },
    h("option", { value: "nbeta" }, "lr × nβ"),
    h("option", { value: "localization" }, "lr × localization"),
  );
  const gridInput = (name, role) => {
    const input = h("input", { type: "text", role, size: 22 });
    input.addEventListener("change", () => {
      const values = parseNumbers(input.value);
      const ok = values !== null && values.every((v) => (name === "grid_lrs" || model.get("grid_axis") === "nbeta" ? v > 0 : v >= 0));
      input.classList.toggle("dvz-invalid", !ok);
      input.title = ok ? "" : "comma-separated numbers" + (name === "grid_lrs" ? " > 0" : "");
      if (ok) syncNow(name, values);
    });
    return input;
  };
  const gridLrs = gridInput("grid_lrs", "grid-lrs");
  const gridValues = gridInput("grid_values", "grid-values");
  const gridValuesLabel = h("span", { class: "dvz-label" }, "values");
  const calibrateButton = h("button", { role: "calibrate", class: "dvz-button dvz-primary", onclick: () => send({ type: "calibrate" }) }, "▶ Calibrate");
  const gridProgress = h("span", { class: "dvz-muted", role: "grid-progress" });
  const heatmap = h("div", { class: "dvz-plot dvz-heatmap", role: "heatmap" });
  const cellInfo = h("div", { class: "dvz-cell-info", role: "cell-info" }, "Pick a cell of the grid to see its chains.");
  const cellPlot = h("div", { class: "dvz-plot dvz-cell-plot", role: "cell-plot" });
  const useCell = h("button", { role: "use-cell", class: "dvz-button", disabled: true }, "use these");
  const recommended = h("div", { class: "dvz-recommended", role: "recommended" });
  const useRecommended = h("button", { role: "use-recommended", class: "dvz-button", hidden: true, onclick: () => send({ type: "use_recommended" }) }, "use recommended");
  const calPane = h(
    "div",
    { class: "dvz-pane", role: "calibrate-pane" },
    h(
      "div",
      { class: "dvz-grid-controls" },
      field("grid", axisSelect),
      h("label", { class: "dvz-field" }, h("span", { class: "dvz-label" }, "step sizes"), gridLrs),
      h("label", { class: "dvz-field" }, gridValuesLabel, gridValues),
      calibrateButton,
      gridProgress,
    ),
    heatmap,
    h("div", { class: "dvz-rec-row" }, recommended, useRecommended),
    h("div", { class: "dvz-cell" }, h("div", { class: "dvz-cell-side" }, cellInfo, useCell), cellPlot),
  );

  const root = h(
    "div",
    { class: "dvz-sampler" },
    header,
    errorBox,
    h("div", { class: "dvz-body" }, controls, h("div", { class: "dvz-main" }, runPane, calPane)),
  );
  el.append(root);

  // ------------------------------------------------------------------ Python -> controls
  function setIfIdle(input, value) {
    if (document.activeElement !== input) input.value = value;
  }
  function updateControls() {
    samplerSelect.value = model.get("sampler");
    const lr = model.get("lr");
    if (document.activeElement !== lrSlider) lrSlider.value = String(Math.log10(lr));
    setIfIdle(lrText, fmt(lr));
    for (const spec of NUMBER_CONTROLS) {
      const value = model.get(spec.name);
      setIfIdle(numberInputs[spec.name], value === null || value === undefined ? "" : String(value));
      numberInputs[spec.name].classList.remove("dvz-invalid");
    }
    setIfIdle(paramsInput, model.get("params"));
    axisSelect.value = model.get("grid_axis");
    gridValuesLabel.textContent = model.get("grid_axis") === "nbeta" ? "nβ values" : "localization values";
    setIfIdle(gridLrs, model.get("grid_lrs").map((v) => fmt(v)).join(", "));
    setIfIdle(gridValues, model.get("grid_values").map((v) => fmt(v)).join(", "));
  }

  function updateSelection() {
    const sel = decode(model.get("selection")) || {};
    if (sel.error) {
      selectionSummary.textContent = sel.error;
      selectionSummary.classList.add("dvz-error-text");
      paramsInput.classList.add("dvz-invalid");
    } else if (sel.num_selected !== undefined) {
      selectionSummary.classList.remove("dvz-error-text");
      paramsInput.classList.remove("dvz-invalid");
      const moving = (sel.rows || []).filter((r) => r[2] > 0).length;
      selectionSummary.textContent = `${sel.num_selected.toLocaleString()} of ${sel.num_total.toLocaleString()} weights move (${moving} of ${(sel.rows || []).length} tensors)`;
      selectionSummary.title = (sel.rows || []).map((r) => `${r[0]}  ${r[1]}  ${r[2]}/${r[3]}`).join("\n");
    } else {
      selectionSummary.textContent = "";
    }
  }

  function updateStatus() {
    const status = model.get("status");
    const activity = model.get("activity");
    const canRun = model.get("can_run") && !isStatic;
    const busy = status === "running" || status === "stopping";
    const trace = decode(model.get("trace")) || {};
    const n = trace.loss ? trace.loss.shape[1] : 0;
    const cal = decode(model.get("calibration")) || {};
    let text = { idle: "ready", done: "done", error: "error" }[status] ?? status;
    if (busy && activity === "run") text = `${status} · draw ${n}/${trace.total_draws ?? "?"}`;
    if (busy && activity === "calibrate") text = `${status} · ${cal.done ?? 0} runs`;
    if (status === "stopped") text = activity === "run" ? `stopped · kept ${n} draws` : "stopped";
    if (!canRun && !busy && status !== "error") text = isStatic ? "snapshot" : `${text} · read-only`;
    statusBadge.textContent = text;
    statusBadge.dataset.status = status;
    root.dataset.status = status;
    for (const b of [runButton, calibrateButton]) {
      b.disabled = !canRun || busy;
      b.title = canRun ? "" : "this widget shows a finished result; create SamplerWidget(model, data, loss_fn) to sample";
    }
    stopButton.disabled = !busy || status === "stopping";
    for (const input of [samplerSelect, lrSlider, lrText, paramsInput, ...Object.values(numberInputs)]) input.disabled = busy;
    const error = model.get("error");
    errorBox.hidden = !error;
    errorBox.textContent = error ? `⚠ ${error}` : "";
  }

  function updateTab() {
    const tab = model.get("tab");
    runPane.hidden = tab !== "run";
    calPane.hidden = tab !== "calibrate";
    tabRun.classList.toggle("dvz-active", tab === "run");
    tabCal.classList.toggle("dvz-active", tab === "calibrate");
    root.dataset.tab = tab;
    if (tab === "calibrate") drawCalibration();
    else drawTraces();
  }

  // ------------------------------------------------------------------ traces
  const xsCache = { n: -1, xs: null };
  function drawIndex(n) {
    if (xsCache.n !== n) {
      xsCache.xs = Float32Array.from({ length: n }, (_, i) => i);
      xsCache.n = n;
    }
    return xsCache.xs;
  }

  function traceFigure(loss, initLoss, nbeta, divergent, height, width, totalDraws) {
    const [chains, n] = loss.shape;
    const xs = drawIndex(n);
    const buckets = Math.max(100, Math.round((width || 800) / 2)); // one min-max pair per 2 px
    const line = (ys) => {
      const d = decimate(ys, buckets); // long chains: min-max per pixel column, spikes kept
      return { x: d.x ?? xs, y: d.y };
    };
    const data = [];
    const llc = initLoss !== null && initLoss !== undefined && nbeta ? runningLLC(loss, initLoss, nbeta) : null;
    for (let c = 0; c < chains; c++) {
      const color = theme.chains[c % theme.chains.length];
      const dash = divergent && divergent[c] > 0 ? "dot" : "solid";
      data.push({ type: "scatter", mode: "lines", ...line(loss.at(c).data), name: `chain ${c}`, legendgroup: `c${c}`, line: { color, width: 1.3, dash }, hovertemplate: `chain ${c}<br>draw %{x}<br>loss %{y:.5g}<extra></extra>` });
      if (llc) data.push({ type: "scatter", mode: "lines", ...line(llc[c]), name: `chain ${c}`, legendgroup: `c${c}`, showlegend: false, xaxis: "x2", yaxis: "y2", line: { color, width: 1.3, dash }, hovertemplate: `chain ${c}<br>draw %{x}<br>LLC %{y:.4g}<extra></extra>` });
    }
    const tl = themeLayout(theme);
    const shapes = [];
    const annotations = [];
    if (initLoss !== null && initLoss !== undefined) {
      shapes.push({ type: "line", xref: "x domain", x0: 0, x1: 1, yref: "y", y0: initLoss, y1: initLoss, line: { color: theme.fontMuted, dash: "dash", width: 1 } });
      annotations.push({ xref: "x domain", x: 1, yref: "y", y: initLoss, text: "L(w*)", showarrow: false, xanchor: "right", yanchor: "bottom", font: { color: theme.fontMuted, size: 10 } });
    } else if (n > 0) {
      annotations.push({ xref: "x2 domain", yref: "y2 domain", x: 0.5, y: 0.5, text: "running LLC appears when L(w*) is known", showarrow: false, font: { color: theme.fontMuted } });
    }
    const layout = {
      ...tl,
      height,
      margin: { ...TRACE_MARGIN },
      showlegend: chains <= 8,
      legend: { ...tl.legend, orientation: "h", y: 1, yanchor: "bottom", x: 0, font: { size: 10 } },
      // a fixed x range while streaming: axes are not re-ticked at every frame
      xaxis: { ...tl.xaxis, anchor: "y", matches: "x2", showticklabels: false, ...(totalDraws > n ? { range: [0, totalDraws - 1] } : { autorange: true }) },
      yaxis: { ...tl.yaxis, domain: TRACE_PANELS[0].domain, title: { text: TRACE_PANELS[0].title } },
      xaxis2: { ...tl.xaxis2, anchor: "y2", title: { text: "draw" } },
      yaxis2: { ...tl.yaxis2, domain: TRACE_PANELS[1].domain, title: { text: TRACE_PANELS[1].title } },
      shapes,
      annotations,
      uirevision: "traces",
    };
    return { data, layout };
  }

  function countFrame(kind, ms, draws) {
    cost[kind][0] += 1;
    cost[kind][1] += ms;
    frames += 1;
    drawMs += ms;
    root.dataset.dvzFrames = String(frames);
    root.dataset.dvzDrawMs = (drawMs / frames).toFixed(1); // mean time per redraw, for benchmarks
    root.dataset[kind === "live" ? "dvzLiveMs" : "dvzPlotlyMs"] = (cost[kind][1] / cost[kind][0]).toFixed(1);
    root.dataset.dvzDraws = String(draws);
  }

  const isStreaming = () => model.get("activity") === "run" && (model.get("status") === "running" || model.get("status") === "stopping");
  let liveRun = null; // [chains, total draws, draws so far] on the canvas; a new run starts fresh axes

  // the canvas, while a run streams: ~1–3 ms a frame
  function drawLive(trace, counted) {
    const loss = trace.loss?.shape?.length === 2 ? trace.loss : null;
    const [chains, n] = loss ? loss.shape : [0, 0];
    const total = Math.max(trace.total_draws ?? n, n, 2);
    if (!liveRun || liveRun[0] !== chains || liveRun[1] !== total || liveRun[2] > n) live.reset();
    liveRun = [chains, total, n];
    const started = performance.now();
    const known = trace.init_loss !== null && trace.init_loss !== undefined && trace.nbeta;
    const llc = known && n > 0 ? runningLLC(loss, trace.init_loss, trace.nbeta) : [];
    const color = (c) => theme.chains[c % theme.chains.length];
    const range = Array.from({ length: chains }, (_, c) => c);
    const settled = live.draw({
      theme,
      width: tracePlot.offsetWidth,
      height: TRACE_HEIGHT,
      xMax: total - 1,
      gd: tracePlot,
      legend: chains <= 8 ? range.map((c) => ({ name: `chain ${c}`, color: color(c) })) : [],
      panels: [
        { series: range.map((c) => ({ y: loss.at(c).data, color: color(c) })), hlines: known ? [{ y: trace.init_loss, label: "L(w*)" }] : [] },
        { series: llc.map((y, c) => ({ y, color: color(c) })), note: !known && n > 0 ? "running LLC appears when L(w*) is known" : null },
      ],
    });
    live.show();
    tracePlot.style.visibility = "hidden"; // the stale plotly figure stays underneath, sized
    if (counted) countFrame("live", performance.now() - started, n);
    if (!settled) easeAxes();
  }
  const easeAxes = coalesce(() => {
    if (isStreaming() && live.visible) drawLive(decode(model.get("trace")) || {}, false);
  });

  const drawTraces = coalesce(() => {
    if (model.get("tab") !== "run" || tracePlot.offsetWidth === 0) return;
    const trace = decode(model.get("trace")) || {};
    if (isStreaming()) {
      drawLive(trace, true);
      return;
    }
    liveRun = null;
    const health = decode(model.get("health")) || {};
    const loss = trace.loss ?? emptyArray();
    const lossArray = loss.shape.length === 2 ? loss : { shape: [0, 0], at: () => ({ data: [] }) };
    const { data, layout } = traceFigure(lossArray, trace.init_loss, trace.nbeta, health.divergent?.data, TRACE_HEIGHT, tracePlot.offsetWidth, trace.total_draws);
    const started = performance.now();
    react(tracePlot, data, layout);
    live.hide();
    tracePlot.style.visibility = "";
    countFrame("plotly", performance.now() - started, lossArray.shape[1]);
  });

  // ------------------------------------------------------------------ health
  function metric(label, value, title) {
    return h("div", { class: "dvz-metric", title }, h("div", { class: "dvz-metric-label" }, label), h("div", { class: "dvz-metric-value" }, value));
  }
  const meanOf = (arr) => {
    if (!arr) return NaN;
    const finite = Array.from(arr.data).filter(Number.isFinite);
    return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN;
  };
  const perChain = (arr, digits = 3) => (arr ? Array.from(arr.data).map((v, c) => `chain ${c}: ${fmt(v, digits)}`).join("\n") : "");

  function updateHealth() {
    const health = decode(model.get("health")) || {};
    const status = model.get("status");
    metrics.replaceChildren();
    reasons.replaceChildren();
    warnings.replaceChildren();
    nextStep.textContent = "";
    if (health.verdict === undefined) {
      const busy = status === "running" || status === "stopping";
      verdict.textContent = busy && model.get("activity") === "run" ? "sampling… the verdict comes when the run ends" : "no run yet: press Run";
      verdict.dataset.healthy = "";
      return;
    }
    verdict.textContent = (health.partial ? "partial run · " : "") + health.verdict;
    verdict.dataset.healthy = health.healthy ? "true" : health.status === "undefined" ? "undefined" : "false";
    nextStep.textContent = health.next_step ? `next step: ${health.next_step}` : "";
    const divergent = health.divergent ? Array.from(health.divergent.data).filter((v) => v > 0).length : 0;
    const chains = health.divergent ? health.divergent.data.length : 0;
    metrics.append(
      metric("LLC", `${fmt(health.llc_mean, 4)} ± ${fmt(health.llc_se, 2)}`, "estimate ± its standard error\n" + perChain(health.llc_per_chain, 4)),
      metric("step bias", fmt(health.step_bias, 2), "estimated step-size bias of the estimate (the verdict fails it above 10% of the estimate)"),
      metric("R-hat", Number.isFinite(health.rhat) ? health.rhat.toFixed(3) : "–", "rank-normalised split R-hat of the loss traces (≈1 is good)"),
      metric("ESS", fmt(health.ess, 3), "bulk effective sample size, all chains"),
      metric("MALA acc.", fmt(meanOf(health.mala_acceptance), 2), "mean MALA acceptance (≈0.9 is the rule of thumb)\n" + perChain(health.mala_acceptance, 2)),
      metric("below L(w*)", `${fmt(100 * meanOf(health.fraction_below_init), 3)}%`, "fraction of draws whose loss is below L(w*)\n" + perChain(health.fraction_below_init, 2)),
      metric("divergent", `${divergent}/${chains}`, "chains whose loss became non-finite or exploded"),
    );
    for (const r of health.reasons || []) reasons.append(h("li", {}, r));
    for (const w of health.warnings || []) warnings.append(h("li", {}, w));
  }

  // ------------------------------------------------------------------ calibration
  let selected = null; // [i, j] shown in the cell panel

  function calibrationFigure(cal) {
    const [nValues, nLrs] = cal.llc_mean.shape;
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
        // every computed cell shows its number; a cross after it marks a verdict that is not healthy
        trow.push(!computed ? "" : (Number.isFinite(value) ? fmt(value, 3) : "n/a") + (healthy === 1 ? "" : " ✕"));
        const why = !computed ? "not computed yet" : healthy === 1 ? "healthy" : (cal.reasons?.[i]?.[j] || []).join("<br>") || "unhealthy";
        crow.push([fmt(cal.lrs.data[j]), fmt(cal.values.data[i]), why]);
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
        colorscale: "Viridis",
        colorbar: { title: { text: "LLC", side: "right" }, thickness: 12, outlinewidth: 0, tickfont: { color: theme.font } },
        xgap: 2,
        ygap: 2,
        hoverongaps: false,
      },
    ];
    const shapes = [];
    if (selected) {
      const [i, j] = selected;
      shapes.push({ type: "rect", x0: j - 0.5, x1: j + 0.5, y0: i - 0.5, y1: i + 0.5, line: { color: theme.font, width: 3 } });
    }
    if (cal.recommended) {
      const jr = Array.from(cal.lrs.data).findIndex((v) => Math.abs(v - cal.recommended.lr) <= 1e-6 * Math.abs(v));
      const ir = Array.from(cal.values.data).findIndex((v) => Math.abs(v - cal.recommended[cal.axis]) <= 1e-6 * Math.abs(v) + 1e-12);
      // an open ring around the cell, so its number stays readable
      if (ir >= 0 && jr >= 0) shapes.push({ type: "rect", x0: jr - 0.46, x1: jr + 0.46, y0: ir - 0.44, y1: ir + 0.44, line: { color: theme.success, width: 3 } });
    }
    const layout = {
      ...tl,
      height: Math.max(220, 70 + 48 * nValues),
      margin: { l: 70, r: 20, t: 10, b: 50 },
      xaxis: { ...tl.xaxis, title: { text: "step size lr" }, tickvals: data[0].x, ticktext: Array.from(cal.lrs.data, (v) => fmt(v)), showgrid: false, zeroline: false, range: [-0.5, nLrs - 0.5] },
      yaxis: { ...tl.yaxis, title: { text: axisName }, tickvals: data[0].y, ticktext: Array.from(cal.values.data, (v) => fmt(v)), showgrid: false, zeroline: false, range: [-0.5, nValues - 0.5] },
      shapes,
      uirevision: "grid",
    };
    return { data, layout };
  }

  const drawCalibration = coalesce(() => {
    const cal = decode(model.get("calibration")) || {};
    if (model.get("tab") !== "calibrate" || heatmap.offsetWidth === 0) return;
    if (!cal.llc_mean) {
      gridProgress.textContent = "no grid yet";
      purge(heatmap);
      heatmap.replaceChildren(h("div", { class: "dvz-muted dvz-empty" }, "Set the step sizes and values, then press Calibrate."));
      return;
    }
    heatmap.querySelector(".dvz-empty")?.remove();
    const finished = Array.from(cal.healthy.data).filter((v) => !Number.isNaN(v)).length;
    gridProgress.textContent = `${finished}/${cal.total} cells`;
    const { data, layout } = calibrationFigure(cal);
    react(heatmap, data, layout);
    if (!heatmap.dataset.clickBound) {
      heatmap.dataset.clickBound = "1";
      heatmap.on("plotly_click", (event) => {
        const point = event.points?.[0];
        if (!point) return;
        const [i, j] = point.data.type === "heatmap" ? [point.y, point.x] : point.customdata;
        selectCell(i, j);
      });
    }
    if (cal.recommended) {
      const rec = cal.recommended;
      recommended.dataset.state = "recommended";
      recommended.textContent = `recommended: lr ${fmt(rec.lr)}, ${cal.axis === "nbeta" ? "nβ" : "localization"} ${fmt(rec[cal.axis])}, burn-in ${rec.num_burnin_steps}, draws ${rec.num_draws}` + (rec.reasons?.length ? ` — ${rec.reasons.join("; ")}` : "");
      useRecommended.hidden = isStatic;
    } else {
      const why = cal.recommendation_reasons?.length ? cal.recommendation_reasons.join("; ") : "no healthy cell: widen the grid";
      const finishedCalibration = model.get("status") === "done" && model.get("activity") === "calibrate";
      recommended.dataset.state = finishedCalibration ? "none" : "";
      recommended.textContent = finishedCalibration ? `no recommendation: ${why}` : "";
      useRecommended.hidden = true;
    }
    drawCell(cal);
  });

  function selectCell(i, j) {
    selected = [i, j];
    syncNow("selected_cell", [i, j]);
    drawCalibration();
  }

  function drawCell(cal) {
    if (!selected || !cal.loss || selected[0] >= cal.llc_mean.shape[0] || selected[1] >= cal.llc_mean.shape[1]) {
      useCell.disabled = true;
      return;
    }
    const [i, j] = selected;
    const axisName = cal.axis === "nbeta" ? "nβ" : "localization";
    const healthy = cal.healthy.get(i, j);
    const cellReasons = cal.reasons?.[i]?.[j] || [];
    cellInfo.replaceChildren(
      h("div", { class: "dvz-cell-title" }, `lr ${fmt(cal.lrs.data[j])} · ${axisName} ${fmt(cal.values.data[i])}`),
      h("div", {}, `LLC ${fmt(cal.llc_mean.get(i, j), 4)} ± ${fmt(cal.llc_std.get(i, j), 2)}`),
      h("div", { class: "dvz-verdict", "data-healthy": Number.isNaN(healthy) ? "" : String(healthy === 1) }, Number.isNaN(healthy) ? "pending" : healthy === 1 ? "healthy" : "unhealthy"),
      h("ul", { class: "dvz-reasons" }, cellReasons.map((r) => h("li", {}, r))),
    );
    useCell.disabled = isStatic || Number.isNaN(healthy);
    useCell.onclick = () => send({ type: "use_cell", i, j });
    if (Number.isNaN(healthy) || cellPlot.offsetWidth === 0) return;
    // this cell's chains, trimmed to the draws it has (partial cells are NaN-padded)
    const [, , chains, draws] = cal.loss.shape;
    const block = cal.loss.at(i, j);
    let n = 0;
    for (let t = 0; t < draws; t++) for (let c = 0; c < chains; c++) if (!Number.isNaN(block.data[c * draws + t])) n = t + 1;
    const trimmed = new Float32Array(chains * n);
    for (let c = 0; c < chains; c++) trimmed.set(block.data.subarray(c * draws, c * draws + n), c * n);
    const loss = { shape: [chains, n], at: (c) => ({ data: trimmed.subarray(c * n, (c + 1) * n) }) };
    const { data, layout } = traceFigure(loss, cal.init_loss.get(i, j), cal.nbeta.get(i, j), null, 300, cellPlot.offsetWidth);
    layout.showlegend = false;
    layout.margin.t = 8;
    react(cellPlot, data, layout);
  }

  // ------------------------------------------------------------------ theme
  const redrawThemed = () => {
    drawTraces();
    drawCalibration();
  };
  disposers.push(followTheme(el, root, root, theme, (next) => (theme = next), redrawThemed));

  // ------------------------------------------------------------------ wiring
  const on = (names, fn) => {
    for (const name of names.split(" ")) model.on(`change:${name}`, fn);
    disposers.push(() => names.split(" ").forEach((name) => model.off(`change:${name}`, fn)));
  };
  on("sampler lr nbeta localization num_chains num_draws num_burnin_steps params grid_axis grid_lrs grid_values", updateControls);
  on("selection", updateSelection);
  on("status activity error can_run trace calibration", updateStatus);
  on("trace health status activity", drawTraces);
  on("health status", updateHealth);
  on("tab", updateTab);
  on("calibration", drawCalibration);
  on("selected_cell", () => {
    const cell = model.get("selected_cell");
    selected = cell && cell.length === 2 ? cell : null;
    drawCalibration();
  });
  disposers.push(watchSize(tracePlot, drawTraces), watchSize(heatmap, drawCalibration), watchSize(cellPlot, drawCalibration));

  const initialCell = model.get("selected_cell");
  selected = initialCell && initialCell.length === 2 ? initialCell : null;
  updateControls();
  updateSelection();
  updateStatus();
  updateHealth();
  updateTab();
  root.dataset.dvzReady = "1";

  return () => {
    disposers.forEach((dispose) => dispose());
    flushAll();
    for (const plot of [tracePlot, heatmap, cellPlot]) purge(plot);
    live.destroy();
  };
}

// plotly is loaded lazily; expose it for tests that inspect figures
export { plotly };
