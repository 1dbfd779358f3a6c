// SamplerWidget view: controls, live loss / running-LLC traces, health panel, calibration grid.
//
// Python-synced state (the controls, `tab`, `selected_cell`) is written with model.set +
// save_changes, debounced while a slider moves; UI-only state (theme, frame counters) lives
// here. Everything is redrawn at most once per animation frame. While a run streams, the traces
// are drawn on a canvas (live.js, a few ms a frame); when it ends, as the interactive plotly figure.

import { decode, emptyArray } from "../codec.js";
import { onCommit, settingControls } from "../controls.js";
import { debounce, field, h } from "../dom.js";
import { LiveLines, growingRange } from "../live.js";
import { coalesce, purge, react, plotly, watchSize } from "../plot.js";
import { readTheme } from "../theme.js";
import { followTheme } from "./linked.js";
import { calibrationPanel } from "./sampler_calibration.js";
import { axisFormat } from "./sampler_grid.js";
import { burninLayers, burninOnly, burninOptions, ema, EMPTY_TRACE_TEXT, healthMetrics, logPanels, runProgress, TRACE_MARGIN, TRACE_PANELS, traceFigure } from "./sampler_figures.js";
import { gridInput, historyPanel, liveHealthLine, metric, tracePlotOptions } from "./sampler_panels.js";

const SYNC_DEBOUNCE_MS = 150;
const TRACE_HEIGHT = 380;

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
  function startJob(type) {
    send({ type });
    settings.reset(); // the job runs with Python's values: show them, and no stale invalid mark
  }

  // ------------------------------------------------------------------ controls
  const settings = settingControls(model, { now: syncNow, later: syncLater });

  const PARAMS_HINT = "parameter names or globs that move, comma separated; empty = every weight";
  const paramsInput = h("input", { type: "text", role: "params", placeholder: "all weights (or names, globs)", title: PARAMS_HINT });
  onCommit(paramsInput, () => syncNow("params", paramsInput.value.trim()));
  const selectionSummary = h("div", { class: "dvz-muted dvz-small", role: "selection-summary" });

  const RUN_HINT = "sample with these settings in the background; the traces stream in and the verdict comes when it ends";
  const runButton = h("button", { role: "run", class: "dvz-button dvz-primary", title: RUN_HINT, onclick: () => startJob("run") }, "▶ Run");
  const stopButton = h("button", { role: "stop", class: "dvz-button", title: "stop the running job; the draws so far are kept as a partial result", onclick: () => send({ type: "stop" }) }, "■ Stop");

  const controls = h(
    "div",
    { class: "dvz-controls" },
    settings.elements,
    field("weights that move", paramsInput, PARAMS_HINT),
    selectionSummary,
    h("div", { class: "dvz-buttons" }, runButton, stopButton),
  );

  // ------------------------------------------------------------------ header, tabs
  const statusBadge = h("span", { class: "dvz-status", role: "status" });
  const tabRun = h("button", { role: "tab-run", class: "dvz-tab", title: "one run: its traces, verdict and the history of runs", onclick: () => syncNow("tab", "run") }, "Run");
  const tabCal = h("button", { role: "tab-calibrate", class: "dvz-tab", title: "a grid of step sizes × nβ (or localization): which settings give a healthy estimate", onclick: () => syncNow("tab", "calibrate") }, "Calibrate");
  const header = h("div", { class: "dvz-header" }, h("span", { class: "dvz-title" }, "LLC sampler"), h("div", { class: "dvz-tabs" }, tabRun, tabCal), statusBadge);
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });

  // ------------------------------------------------------------------ run tab
  const tracePlot = h("div", { class: "dvz-plot", role: "trace-plot" });
  const traceBox = h("div", { class: "dvz-plot-box" }, tracePlot);
  const live = new LiveLines(traceBox, { panels: TRACE_PANELS, xTitle: "draw", margin: TRACE_MARGIN });
  const view = { yScale: "auto", smoothing: 0 }; // display-only options of the trace plot (not synced: they change no number)
  const plotOptions = tracePlotOptions(view, () => drawTraces());
  const liveHealth = liveHealthLine();
  const verdict = h("div", { class: "dvz-verdict", role: "verdict" });
  const metrics = h("div", { class: "dvz-metrics dvz-health-cards", role: "metrics" });
  const reasons = h("ul", { class: "dvz-reasons", role: "reasons" });
  const nextStep = h("div", { class: "dvz-next-step", role: "next-step" });
  const warnings = h("ul", { class: "dvz-warnings", role: "warnings" });
  const warningsTitle = h("div", { class: "dvz-muted dvz-small", role: "warnings-title", hidden: true }, "also noted (does not change the verdict or the next step):");
  const healthPanel = h("div", { class: "dvz-health", role: "health" }, verdict, liveHealth.element, metrics, reasons, nextStep, warningsTitle, warnings);
  const history = historyPanel(model, { now: syncNow }, () => theme);
  const runPane = h("div", { class: "dvz-pane", role: "run-pane" }, plotOptions, traceBox, healthPanel, history.element);

  // ------------------------------------------------------------------ calibrate tab
  const axisSelect = h(
    "select",
    { role: "grid-axis", title: "what the grid sweeps against the step size: nβ (inverse temperature) or the localization γ", onchange: () => syncNow("grid_axis", axisSelect.value) },
    h("option", { value: "nbeta" }, "lr × nβ"),
    h("option", { value: "localization" }, "lr × localization"),
  );
  const gridLrs = gridInput(model, "grid_lrs", "grid-lrs", syncNow);
  const gridValues = gridInput(model, "grid_values", "grid-values", syncNow);
  const gridValuesLabel = h("span", { class: "dvz-label" }, "values");
  const CALIBRATE_HINT = "run every cell of the grid with the other settings, refine around the healthy region and recommend a confirmed setting";
  const calibrateButton = h("button", { role: "calibrate", class: "dvz-button dvz-primary", title: CALIBRATE_HINT, onclick: () => startJob("calibrate") }, "▶ Calibrate");
  const calibration = calibrationPanel(model, { send, syncNow, isStatic, theme: () => theme });
  const calPane = h(
    "div",
    { class: "dvz-pane", role: "calibrate-pane" },
    h(
      "div",
      { class: "dvz-grid-controls" },
      field("grid", axisSelect, axisSelect.title),
      h("label", { class: "dvz-field", title: gridLrs.title }, h("span", { class: "dvz-label" }, "step sizes"), gridLrs),
      h("label", { class: "dvz-field", title: gridValues.title }, gridValuesLabel, gridValues),
      calibrateButton,
      calibration.progress,
    ),
    ...calibration.elements,
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
    settings.update();
    setIfIdle(paramsInput, model.get("params"));
    axisSelect.value = model.get("grid_axis");
    gridValuesLabel.textContent = model.get("grid_axis") === "nbeta" ? "nβ values" : "localization values";
    for (const [input, name] of [[gridLrs, "grid_lrs"], [gridValues, "grid_values"]]) setIfIdle(input, model.get(name).map(axisFormat(model.get(name))).join(", ")); // one format, as on the grid's axes
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
    if (busy && activity === "run") text = runProgress(status, trace, n);
    if (busy && activity === "calibrate") text = `${status} · ${cal.done ?? 0} cells done`;
    if (status === "stopped") text = activity === "run" ? `stopped · kept ${n} draws` : "stopped";
    if (!canRun && !busy && status !== "error") text = isStatic ? "snapshot" : `${text} · read-only`;
    statusBadge.textContent = text;
    statusBadge.dataset.status = status;
    root.dataset.status = status;
    for (const [b, hint] of [[runButton, RUN_HINT], [calibrateButton, CALIBRATE_HINT]]) {
      b.disabled = !canRun || busy;
      b.title = canRun ? hint : "this widget shows a finished result; create SamplerWidget(model, data, loss_fn) to sample";
    }
    stopButton.disabled = !busy || status === "stopping";
    settings.disable(busy || !canRun); // a finished result's settings are shown, not edited
    for (const el of [paramsInput, gridLrs, gridValues, axisSelect]) el.disabled = busy || !canRun; // nothing to calibrate in a snapshot
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
    if (tab === "calibrate") calibration.draw();
    else drawTraces();
  }

  // ------------------------------------------------------------------ traces
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
  let liveLog = null; // [loss panel, LLC panel] on log y, as last drawn

  // the canvas, while a run streams: ~1–3 ms a frame
  function drawLive(trace, counted) {
    const loss = trace.loss?.shape?.length === 2 ? trace.loss : null;
    const [chains, n] = loss ? loss.shape : [0, 0];
    const total = Math.max(trace.total_draws ?? n, n, 2);
    if (!liveRun || liveRun[0] !== chains || liveRun[1] !== total || liveRun[2] > n) live.zoom(null, false); // a new run: whole x, fresh y
    liveRun = [chains, total, n];
    const xMax = growingRange(n, total); // the draws so far with room to grow, not all of them
    const started = performance.now();
    const known = trace.init_loss !== null && trace.init_loss !== undefined && trace.nbeta;
    const llc = trace.llc?.shape?.length === 2 ? trace.llc : null;
    const color = (c) => theme.chains[c % theme.chains.length];
    const range = Array.from({ length: chains }, (_, c) => c);
    const lossRows = range.map((c) => loss.at(c).data);
    const llcRows = llc ? range.map((c) => llc.at(c).data) : [];
    const burnin = trace.burnin?.steps?.size ? burninLayers(theme, trace.burnin, null) : null; // kept before draw 0, as on the plotly figure
    const [logLoss, logLlc] = logPanels(view.yScale, [...lossRows, ...(burnin?.rows ?? [])], llcRows);
    if (liveLog && (liveLog[0] !== logLoss || liveLog[1] !== logLlc)) live.reset(); // other axes: no easing across
    liveLog = [logLoss, logLlc];
    const settled = live.draw({
      theme,
      width: tracePlot.offsetWidth,
      height: TRACE_HEIGHT,
      xMax,
      xMin: burnin ? burnin.start : 0,
      gd: tracePlot,
      legend: chains <= 8 ? range.map((c) => ({ name: `chain ${c}`, color: color(c) })) : [],
      panels: [
        { series: lossRows.map((y, c) => ({ y: ema(y, view.smoothing), color: color(c), name: `chain ${c}` })), hlines: known ? [{ y: trace.init_loss, label: "L(w*)" }] : [], log: logLoss,
          burnin: burnin && { x: burnin.data[0].x, series: burnin.rows.map((y, c) => ({ y, color: color(c) })) } },
        { series: llcRows.map((y, c) => ({ y, color: color(c), name: `chain ${c}` })), note: !known && n > 0 ? "running LLC appears when L(w*) is known" : null, log: logLlc },
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
    if (isStreaming() && !burninOnly(trace)) { // the canvas draws the draws and the burn-in before them; the burn-in alone is plotly's
      drawLive(trace, true);
      return;
    }
    liveRun = null;
    const health = decode(model.get("health")) || {};
    const loss = trace.loss ?? emptyArray();
    const lossArray = loss.shape.length === 2 ? loss : { shape: [0, 0], at: () => ({ data: [] }) };
    const llc = trace.llc?.shape?.length === 2 ? trace.llc : null;
    const options = { yScale: view.yScale, smoothing: view.smoothing, empty: EMPTY_TRACE_TEXT, ...burninOptions(trace, health) };
    const { data, layout } = traceFigure(theme, lossArray, llc, trace.init_loss, health.divergent?.data, TRACE_HEIGHT, tracePlot.offsetWidth, trace.total_draws ?? model.get("num_draws"), options);
    const started = performance.now();
    react(tracePlot, data, layout);
    live.hide();
    tracePlot.style.visibility = "";
    countFrame("plotly", performance.now() - started, lossArray.shape[1]);
  });

  // ------------------------------------------------------------------ health
  function updateHealth() {
    const health = decode(model.get("health")) || {};
    const status = model.get("status");
    for (const list of [metrics, reasons, warnings]) list.replaceChildren();
    nextStep.textContent = "";
    warningsTitle.hidden = true;
    if (health.verdict === undefined) {
      const busy = status === "running" || status === "stopping";
      verdict.textContent = busy && model.get("activity") === "run" ? "sampling… the verdict comes when the run ends" : "no run yet: press ▶ Run";
      verdict.dataset.healthy = "";
      return;
    }
    verdict.textContent = (health.partial ? "partial run · " : "") + health.verdict;
    verdict.dataset.healthy = health.healthy ? ((health.unchecked || []).length ? "unchecked" : "true") : health.status === "undefined" ? "undefined" : "false";
    nextStep.textContent = health.next_step ? `next step: ${health.next_step}` : "";
    metrics.append(...healthMetrics(health).map(metric));
    for (const r of health.reasons || []) reasons.append(h("li", {}, r));
    for (const w of health.warnings || []) warnings.append(h("li", {}, w));
    warningsTitle.hidden = !(health.warnings || []).length;
  }

  const updateLiveHealth = () => liveHealth.update(decode(model.get("trace")) || {}, isStreaming());

  // ------------------------------------------------------------------ theme
  const redrawThemed = () => {
    drawTraces();
    calibration.draw();
    history.draw();
  };
  disposers.push(followTheme(el, root, root, theme, (next) => (theme = next), redrawThemed));

  // ------------------------------------------------------------------ wiring
  const on = (names, fn) => {
    for (const name of names.split(" ")) model.on(`change:${name}`, fn);
    disposers.push(() => names.split(" ").forEach((name) => model.off(`change:${name}`, fn)));
  };
  on([...settings.names, "params", "grid_axis", "grid_lrs", "grid_values"].join(" "), updateControls);
  on("selection", updateSelection);
  on("status activity error can_run trace calibration", updateStatus);
  on("trace health status activity", drawTraces);
  on("health status", updateHealth);
  on("trace status activity", updateLiveHealth);
  on("history compared", history.draw);
  on("tab", updateTab);
  on("calibration", calibration.draw);
  on("calibration status activity", calibration.updateRecommendation);
  on("selected_cell", () => calibration.select(model.get("selected_cell")));
  disposers.push(watchSize(tracePlot, drawTraces), ...calibration.plots.map((plot) => watchSize(plot, calibration.draw)), history.watch());

  calibration.select(model.get("selected_cell"));
  updateControls();
  updateSelection();
  updateStatus();
  updateHealth();
  updateLiveHealth();
  calibration.updateRecommendation();
  history.draw();
  updateTab();
  root.dataset.dvzReady = "1";

  return () => {
    disposers.forEach((dispose) => dispose());
    flushAll();
    for (const plot of [tracePlot, ...calibration.plots]) purge(plot);
    history.dispose();
    live.destroy();
  };
}

// plotly is loaded lazily; expose it for tests that inspect figures
export { plotly };
