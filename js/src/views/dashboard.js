// DevelopmentDashboard view: a checkpoint scrubber driving linked loss / LLC / essential-dynamics panels.
//
// The checkpoints are every step at which any panel has data; the loss and LLC panels share one
// x range (zooming one zooms the other, a double-click resets both). Every figure is drawn once
// per data change; the current and the hovered checkpoint are overlays (linked.js Cursor) moved
// with a few style writes, so scrubbing costs the same at 10 or 10 000 checkpoints and never waits for the kernel. The checkpoint goes back to Python
// throttled (~10 messages/s while scrubbing, the last value always).

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { purge, react, watchSize } from "../plot.js";
import { readTheme } from "../theme.js";
import { dashboardControls } from "./dashboard_controls.js";
import { estimateAt, estimateIndex, llcReadout, lossAtStep, pointAtStep } from "./dashboard_data.js";
import { defaultStepRange, edFigure, llcCaption, logStepTicks, lossFigure, llcFigure, spansDecades, stepAxisTitle } from "./dashboard_figures.js";
import { applyXRange, NearestRing, requestedXRange, spreadAnnotations } from "./dashboard_layout.js";
import { Cursor, followTheme, nearestIndex, onPlot, stepMapper, syncer } from "./linked.js";

const MARGIN = { l: 62, r: 14, t: 26, b: 40 };
const PLAY_SECONDS = 12; // a full pass of the trajectory while playing, whatever its length

export function renderDashboard({ model, el }) {
  const disposers = [];
  const isStatic = Boolean(model.get("_static"));
  const sync = syncer(model, 100);
  let theme = readTheme(el);
  let data = {};
  let steps = new Float32Array(0);
  let current = 0;
  let hovered = null;
  let playing = null;
  let scrubMs = [];

  // ------------------------------------------------------------------ controls
  const controls = dashboardControls({
    onPlay: () => togglePlay(),
    onSwapPlane: () => sync.now("plane", [...model.get("plane")].reverse()),
    onRun: () => model.send({ type: "run" }),
    onStop: () => model.send({ type: "stop" }),
  });
  const { playButton, slider, stepInput, readout, curveSelect, planeX, planeY, planeNote, logX, logY, smoothing, smoothingValue, runButton, stopButton, statusBadge, errorBox, planeField, curveField, logYField, smoothingField, header, toolbar } = controls;

  // ------------------------------------------------------------------ panels
  const panel = (role) => {
    const gd = h("div", { class: "dvz-plot", role });
    const box = h("div", { class: "dvz-plot-box" }, gd);
    return { gd, box };
  };
  const loss = panel("loss-plot");
  const llc = panel("llc-plot");
  const ed = panel("ed-plot");
  const cursors = {
    loss: [new Cursor(loss.box, loss.gd, { role: "cursor-loss" }), new Cursor(loss.box, loss.gd, { role: "hover-loss", variant: "hover" })],
    llc: [new Cursor(llc.box, llc.gd, { role: "cursor-llc" }), new Cursor(llc.box, llc.gd, { role: "hover-llc", variant: "hover" })],
    // the estimate the readout names when the selected checkpoint has none of its own
    nearest: [new NearestRing(llc.box, llc.gd)],
    ed: [new Cursor(ed.box, ed.gd, { kind: "point", role: "cursor-ed" }), new Cursor(ed.box, ed.gd, { kind: "point", role: "hover-ed", variant: "hover" })],
  };
  const edNote = h("div", { class: "dvz-legend-note", role: "ed-note" });
  const llcNote = h("div", { class: "dvz-legend-note", role: "llc-note" });
  const grid = h("div", { class: "dvz-dash-grid" }, h("div", { class: "dvz-dash-col" }, loss.box, llc.box, llcNote), h("div", { class: "dvz-dash-col" }, ed.box, edNote));
  const root = h("div", { class: "dvz-panelbox dvz-dashboard", tabindex: 0 }, header, errorBox, toolbar, grid);
  el.append(root);

  // ------------------------------------------------------------------ data access
  const n = () => steps.length;
  const curveIndex = () => {
    const c = data.llc;
    if (!c) return null;
    const i = Math.max(0, c.selections.indexOf(model.get("selection")));
    const j = Math.max(0, c.distributions.indexOf(model.get("distribution")));
    return [i, j];
  };
  // per checkpoint: its own estimate of the shown curve (-1: none) and the nearest computed one
  let estimates = { own: new Int32Array(0), nearest: new Int32Array(0) };
  const indexEstimates = () => (estimates = estimateIndex(data.llc, curveIndex() ?? [0, 0], steps));
  const estimate = (k) => estimateAt(data.llc, curveIndex() ?? [0, 0], k);
  const lossAt = (index) => lossAtStep(data.losses?.[0], steps[index]);
  const edAt = (index) => pointAtStep(data.dynamics, model.get("plane"), steps[index]);
  let xmap = (s) => s;
  // a figure asked to draw while hidden (a detached output, JupyterLab swapping its theme) is
  // drawn when it next gets a size
  let stale = false;
  const hidden = (gd) => {
    const gone = gd.offsetParent === null;
    stale ||= gone;
    return gone;
  };

  // ------------------------------------------------------------------ highlight (the hot path)
  function placeCursors(index, which) {
    const slot = which === "current" ? 0 : 1;
    if (index === null || index < 0 || index >= n()) {
      for (const pair of Object.values(cursors)) pair[slot]?.place(null);
      return;
    }
    // every step panel puts the cursor at the checkpoint's own step: the same pixel in each
    const x = xmap(steps[index]);
    cursors.loss[slot].place(data.losses?.length ? x : null, lossAt(index) ?? NaN, index);
    const own = estimates.own[index] ?? -1;
    cursors.llc[slot].place(data.llc ? x : null, own >= 0 ? estimate(own)[0] : NaN, index);
    if (slot === 0) {
      const near = own < 0 ? estimates.nearest[index] ?? -1 : -1;
      cursors.nearest[0].place(near >= 0 ? xmap(data.llc.steps.data[near]) : null, near >= 0 ? estimate(near)[0] : NaN, index);
    }
    const point = edAt(index);
    cursors.ed[slot].place(point ? point[0] : null, point ? point[1] : null, index);
    if (slot === 0) recordCursorX();
  }

  function updateReadout(index) {
    const parts = [`checkpoint ${index + 1}/${n()}`, `step ${steps[index] ?? "–"}`];
    if (data.losses?.length) parts.push(`${data.losses[0].name} ${lossAt(index) === null ? "–" : fmt(lossAt(index), 4)}`);
    if (data.llc) {
      const llcText = llcReadout(data.llc, curveIndex(), estimates, index);
      parts.push(llcText.text);
      root.dataset.llcExact = String(llcText.exact);
      root.dataset.llcNearestStep = String(llcText.step ?? "");
    }
    readout.textContent = parts.join(" · ");
  }

  /** Select checkpoint ``index`` in every view; ``send``: tell Python (throttled). */
  function setCurrent(index, send = true) {
    const started = performance.now();
    index = Math.max(0, Math.min(n() - 1, Math.round(index)));
    if (!Number.isFinite(index)) return;
    current = index;
    slider.value = String(index);
    if (document.activeElement !== stepInput) stepInput.value = String(steps[index] ?? "");
    updateReadout(index);
    placeCursors(index, "current");
    root.dataset.checkpoint = String(index);
    if (send && model.get("checkpoint") !== index) sync.throttled("checkpoint", index);
    const ms = performance.now() - started;
    scrubMs.push(ms);
    if (scrubMs.length > 200) scrubMs = scrubMs.slice(-100);
    root.dataset.dvzScrubMs = (scrubMs.reduce((a, b) => a + b, 0) / scrubMs.length).toFixed(2);
  }

  function setHover(index) {
    hovered = index;
    root.dataset.hover = index === null ? "" : String(index);
    placeCursors(index, "hover");
  }

  function refreshCursors() {
    for (const pair of Object.values(cursors)) for (const c of pair) c.refresh();
    recordCursorX();
  }
  /** The current checkpoint's x pixel in each step panel, on the root (for tests and benchmarks). */
  function recordCursorX() {
    root.dataset.dvzCursorX = JSON.stringify(Object.fromEntries(["loss", "llc"].map((k) => [k, cursorX(cursors[k][0])])));
  }
  /** A vline cursor's x pixel within its panel (for tests), or null when hidden. */
  const cursorX = (cursor) => (cursor.el.hidden ? null : Number(cursor.el.style.transform.match(/translate\(([-\d.e]+)px/)?.[1]));

  // ------------------------------------------------------------------ scrubbing input
  slider.addEventListener("input", () => setCurrent(Number(slider.value)));
  stepInput.addEventListener("change", () => {
    const step = Number(stepInput.value);
    if (Number.isFinite(step) && n()) setCurrent(nearestIndex(steps, step));
  });
  const KEYS = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10 };
  root.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target.tagName === "INPUT" && target !== slider && target.type !== "checkbox";
    if (typing || target.tagName === "SELECT") return;
    if (event.key in KEYS) {
      setCurrent(current + KEYS[event.key] * (event.shiftKey ? 10 : 1));
    } else if (event.key === "Home") setCurrent(0);
    else if (event.key === "End") setCurrent(n() - 1);
    else if (event.key === " " && target.tagName !== "BUTTON") togglePlay();
    else return;
    event.preventDefault();
  });
  // clicks on a figure keep the keyboard on the dashboard
  grid.addEventListener("mousedown", () => root.focus({ preventScroll: true }));

  function togglePlay() {
    if (playing) {
      cancelAnimationFrame(playing.frame);
      playing = null;
      playButton.textContent = "▶";
      root.dataset.playing = "false";
      sync.flush();
      return;
    }
    if (current >= n() - 1) setCurrent(0);
    const perSecond = Math.max(1, n() / PLAY_SECONDS);
    playing = { from: current, t0: performance.now(), frame: 0 };
    playButton.textContent = "❚❚";
    root.dataset.playing = "true";
    const tick = () => {
      if (!playing) return;
      const next = playing.from + Math.floor(((performance.now() - playing.t0) / 1000) * perSecond);
      if (next !== current) setCurrent(next);
      if (next >= n() - 1) return togglePlay();
      playing.frame = requestAnimationFrame(tick);
    };
    playing.frame = requestAnimationFrame(tick);
  }

  // ------------------------------------------------------------------ figures
  const hoverHandlers = (gd) => ({
    plotly_hover: (event) => {
      const point = event.points?.find((p) => p.customdata !== undefined);
      if (point) setHover(Number(Array.isArray(point.customdata) ? point.customdata[0] : point.customdata));
    },
    plotly_unhover: () => setHover(null),
    plotly_click: (event) => {
      const point = event.points?.find((p) => p.customdata !== undefined);
      if (point) setCurrent(Number(Array.isArray(point.customdata) ? point.customdata[0] : point.customdata));
    },
    // a double-click resets every step panel to every checkpoint (after plotly's own reset)
    plotly_doubleclick: () => {
      if (gd !== ed.gd) setTimeout(() => linkX({ "xaxis.autorange": true }), 0);
    },
    plotly_relayout: (change) => {
      if (gd !== ed.gd) linkX(change);
      else if (Object.keys(change).some((key) => key.startsWith("xaxis") || key.startsWith("yaxis") || key === "autosize")) spreadAnnotations(ed.gd);
      refreshCursors();
    },
  });

  // ------------------------------------------------------------------ shared x range of the step panels
  let xRange = null; // null: every checkpoint (the default); else the zoomed range in axis units
  const stepRange = () => xRange ?? defaultStepRange(steps, xmap, model.get("log_x"), plotWidth(llc.gd));
  const stepPanels = () => [loss.gd, llc.gd].filter((gd) => gd._fullLayout && gd.offsetParent !== null);
  /** A zoom, pan or double-click on one step panel sets the range of all of them. */
  function linkX(change) {
    const next = requestedXRange(change);
    if (next === undefined) return;
    xRange = next;
    root.dataset.xRange = JSON.stringify(stepRange());
    applyXRange(stepPanels(), stepRange());
  }
  const plotWidth = (gd) => Math.max(1, (gd.clientWidth || gd.parentElement?.clientWidth || 600) - MARGIN.l - MARGIN.r);
  const stepOptions = (gd) => ({
    logX: model.get("log_x"),
    range: stepRange(),
    title: stepAxisTitle(steps, xmap, model.get("log_x")),
    plotWidth: plotWidth(gd),
    ticks: logStepTicks(steps, xmap),
  });

  function drawLoss() {
    const series = data.losses || [];
    loss.box.hidden = series.length === 0;
    smoothingField.hidden = series.length === 0;
    const span = spansDecades(series.map((s) => s.values.data));
    logYField.hidden = series.length === 0;
    logY.disabled = !span.positive;
    logYField.title = span.positive
      ? `the loss on a log axis (it spans ${span.decades.toFixed(1)} decades)`
      : "the loss on a log axis: not available, some loss is zero or negative";
    if (!series.length || hidden(loss.gd)) return;
    const options = { ...stepOptions(loss.gd), logY: model.get("log_y") && span.positive, smoothing: model.get("smoothing") };
    const { traces, layout } = lossFigure(theme, series, xmap, options, MARGIN);
    react(loss.gd, traces, layout);
    loss.gd.dataset.logY = String(options.logY);
    onPlot(loss.gd, hoverHandlers(loss.gd));
  }

  function drawLLC() {
    const c = data.llc;
    llc.box.hidden = !c;
    llcNote.hidden = !c;
    if (!c || hidden(llc.gd)) return;
    const [i, j] = curveIndex();
    const stage = data.stages?.[i * c.mean.shape[1] + j];
    const figure = llcFigure(theme, c, [i, j], stage, xmap, stepOptions(llc.gd), MARGIN);
    llc.gd.dataset.unhealthy = String(figure.unhealthy);
    llc.gd.dataset.undefined = String(figure.undefined);
    react(llc.gd, figure.traces, figure.layout);
    llc.gd.dataset.stages = String(stage?.stages?.length ?? 0);
    llcNote.textContent = llcCaption(c.steps.data.length, n(), figure, stage);
    onPlot(llc.gd, hoverHandlers(llc.gd));
  }

  function drawED() {
    const d = data.dynamics;
    ed.box.hidden = !d;
    planeField.hidden = !d;
    if (!d) {
      edNote.textContent = "";
      return;
    }
    if (hidden(ed.gd)) return;
    const figure = edFigure(theme, d, model.get("plane"));
    react(ed.gd, figure.traces, figure.layout);
    ed.gd.dataset.milestones = String(figure.milestones);
    spreadAnnotations(ed.gd);
    edNote.textContent = `essential dynamics: ${d.coords.shape[0]} checkpoints, colour = training step (bar); ★ milestones (${figure.milestones})`;
    onPlot(ed.gd, hoverHandlers(ed.gd));
  }

  function drawAll() {
    const started = performance.now();
    stale = false;
    drawLoss();
    drawLLC();
    drawED();
    refreshCursors();
    placeCursors(current, "current");
    placeCursors(hovered, "hover");
    root.dataset.dvzRenderMs = (performance.now() - started).toFixed(1);
    root.dataset.dvzDrawn = String(Number(root.dataset.dvzDrawn || 0) + 1);
  }

  // ------------------------------------------------------------------ Python -> view
  function updateOptions() {
    const c = data.llc;
    const options = [];
    if (c) for (let i = 0; i < c.selections.length; i++) for (let j = 0; j < c.distributions.length; j++) options.push([`${i}|${j}`, `${c.selections[i]} · ${c.distributions[j]}`]);
    curveSelect.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
    curveField.hidden = options.length < 2;
    const ij = curveIndex();
    if (ij) curveSelect.value = `${ij[0]}|${ij[1]}`;
    const K = data.dynamics ? data.dynamics.coords.shape[1] : 0;
    const pcs = Array.from({ length: K }, (_, k) => h("option", { value: k }, `PC${k + 1}`));
    planeX.replaceChildren(...pcs.map((o) => o.cloneNode(true)));
    planeY.replaceChildren(...pcs);
    const [px, py] = model.get("plane");
    planeX.value = String(px);
    planeY.value = String(py);
    logX.checked = model.get("log_x");
    logY.checked = model.get("log_y");
    smoothing.value = String(model.get("smoothing"));
    smoothingValue.textContent = ` ${Number(model.get("smoothing")).toFixed(2)}`;
  }

  function onData() {
    data = decode(model.get("data")) || {};
    steps = data.steps?.data ?? new Float32Array(0);
    xmap = stepMapper(steps, model.get("log_x"));
    slider.max = String(Math.max(0, n() - 1));
    indexEstimates();
    updateOptions();
    drawAll();
    setCurrent(Math.min(model.get("checkpoint"), Math.max(0, n() - 1)), false);
  }

  function updateStatus() {
    const status = model.get("status");
    const busy = status === "running" || status === "stopping";
    const canRun = model.get("can_run") && !isStatic;
    runButton.hidden = !canRun;
    stopButton.hidden = !canRun;
    runButton.disabled = busy;
    stopButton.disabled = !busy || status === "stopping";
    const progress = model.get("progress");
    statusBadge.hidden = !canRun && status === "idle";
    statusBadge.textContent = busy && progress ? `${status} · ${progress}` : { idle: "ready" }[status] ?? status;
    statusBadge.dataset.status = status;
    root.dataset.status = status;
    const error = model.get("error");
    errorBox.hidden = !error;
    errorBox.textContent = error ? `⚠ ${error}` : "";
  }

  curveSelect.addEventListener("change", () => {
    const [i, j] = curveSelect.value.split("|").map(Number);
    model.set("selection", data.llc.selections[i]);
    model.set("distribution", data.llc.distributions[j]);
    model.save_changes();
  });
  /** A component chosen for one axis while the other shows it swaps the axes (and says so). */
  const setPlane = (changed) => {
    const [oldX, oldY] = model.get("plane");
    let plane = [Number(planeX.value), Number(planeY.value)];
    planeNote.textContent = "";
    if (plane[0] === plane[1]) {
      plane = changed === planeX ? [plane[0], oldX] : [oldY, plane[1]];
      planeNote.textContent = `PC${plane[changed === planeX ? 0 : 1] + 1} was already on the other axis: axes swapped (a plane needs two different components)`;
    }
    planeX.value = String(plane[0]);
    planeY.value = String(plane[1]);
    sync.now("plane", plane);
  };
  planeX.addEventListener("change", () => setPlane(planeX));
  planeY.addEventListener("change", () => setPlane(planeY));
  logX.addEventListener("change", () => sync.now("log_x", logX.checked));
  logY.addEventListener("change", () => sync.now("log_y", logY.checked));
  smoothing.addEventListener("input", () => {
    smoothingValue.textContent = ` ${Number(smoothing.value).toFixed(2)}`;
    model.set("smoothing", Number(smoothing.value)); // redrawn now (change:smoothing); Python hears it throttled
    sync.throttled("smoothing", Number(smoothing.value));
  });

  // ------------------------------------------------------------------ wiring
  const on = (names, fn) => {
    for (const name of names.split(" ")) model.on(`change:${name}`, fn);
    disposers.push(() => names.split(" ").forEach((name) => model.off(`change:${name}`, fn)));
  };
  on("data", onData);
  on("checkpoint", () => {
    const index = model.get("checkpoint");
    if (index !== current) setCurrent(index, false);
  });
  on("selection distribution", () => {
    indexEstimates();
    updateOptions();
    drawLLC();
    refreshCursors();
    setCurrent(current, false);
  });
  on("plane", () => {
    updateOptions();
    drawED();
    placeCursors(current, "current");
  });
  on("log_x", () => {
    xmap = stepMapper(steps, model.get("log_x"));
    xRange = null; // a range in the other axis's units means nothing here
    updateOptions();
    drawAll();
  });
  on("log_y smoothing", () => {
    updateOptions();
    drawLoss();
    refreshCursors();
  });
  on("status error can_run progress", updateStatus);

  disposers.push(followTheme(el, root, grid, theme, (next) => (theme = next), drawAll));
  const onResize = () => {
    if (stale && grid.offsetParent !== null) {
      stale = false;
      drawAll();
    }
    refreshCursors();
  };
  for (const p of [loss, llc, ed]) disposers.push(watchSize(p.gd, onResize));

  current = model.get("checkpoint");
  onData();
  updateStatus();
  root.dataset.dvzReady = "1";

  return () => {
    if (playing) cancelAnimationFrame(playing.frame);
    sync.flush();
    disposers.forEach((dispose) => dispose());
    for (const p of [loss, llc, ed]) purge(p.gd);
    for (const pair of Object.values(cursors)) pair.forEach((c) => c.destroy());
  };
}
