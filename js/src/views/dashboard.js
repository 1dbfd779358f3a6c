// DevelopmentDashboard view: a checkpoint scrubber driving linked loss / LLC / essential-dynamics panels.
//
// The checkpoints are every step at which any panel has data; the loss and LLC panels share one
// x range (zooming one zooms the other, a double-click resets both). Every figure is drawn once
// per data change; the current and the hovered checkpoint are
// overlays (linked.js Cursor) moved with a few style writes, so scrubbing costs the same at 10 or
// 10 000 checkpoints and never waits for the kernel. The checkpoint goes back to Python
// throttled (~10 messages/s while scrubbing, the last value always).

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { purge, react, watchSize } from "../plot.js";
import { readTheme } from "../theme.js";
import { defaultStepRange, edFigure, lossFigure, llcFigure, spansDecades, stepAxisTitle } from "./dashboard_figures.js";
import { Cursor, followTheme, nearestIndex, onPlot, placeLabels, plotly, stepMapper, syncer } from "./linked.js";

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
  const playButton = h("button", { role: "play", class: "dvz-button dvz-icon-button", title: "play / pause through every checkpoint (space)", onclick: () => togglePlay() }, "▶");
  const slider = h("input", {
    type: "range", role: "scrubber", class: "dvz-scrubber", min: 0, max: 0, step: 1, value: 0, "aria-label": "checkpoint",
    title: "checkpoint: drag, or ←/→ (shift: 10), PageUp/PageDown, Home/End; every checkpoint with a loss, LLC or dynamics point",
  });
  const stepInput = h("input", { type: "number", role: "step-input", class: "dvz-step-input", title: "go to the checkpoint nearest this training step (Enter)", "aria-label": "training step" });
  const readout = h("span", { role: "readout", class: "dvz-readout", title: "the selected checkpoint's values; an LLC in brackets is the nearest estimate, not this checkpoint's" });
  const curveSelect = h("select", { role: "curve", title: "which LLC curve (selection · data distribution) the LLC panel shows" });
  const planeX = h("select", { role: "plane-x", title: "principal component on the horizontal axis of the essential-dynamics plane" });
  const planeY = h("select", { role: "plane-y", title: "principal component on the vertical axis of the essential-dynamics plane" });
  const swapPlane = h("button", { role: "plane-swap", class: "dvz-button dvz-icon-button", title: "swap the plane's axes", onclick: () => sync.now("plane", [...model.get("plane")].reverse()) }, "⇄");
  const planeNote = h("span", { role: "plane-note", class: "dvz-legend-note", "aria-live": "polite" });
  const logX = h("input", { type: "checkbox", role: "log-x", title: "training steps on a log axis (step 0 drawn at half the first positive step)" });
  const logY = h("input", { type: "checkbox", role: "log-y", title: "the loss on a log axis" });
  const smoothing = h("input", { type: "range", role: "smoothing", class: "dvz-smoothing", min: 0, max: 0.95, step: 0.05, value: 0, "aria-label": "loss smoothing" });
  const smoothingValue = h("span", { role: "smoothing-value", class: "dvz-legend-note" });
  const runButton = h("button", { role: "run", class: "dvz-button dvz-primary", title: "compute the losses, essential dynamics and LLC sweep in the background", onclick: () => model.send({ type: "run" }) }, "▶ Compute");
  const stopButton = h("button", { role: "stop", class: "dvz-button", title: "stop computing; what was computed stays", onclick: () => model.send({ type: "stop" }) }, "■ Stop");
  const statusBadge = h("span", { class: "dvz-status", role: "status", title: "state of the background computation" });
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });
  const planeField = h("span", { class: "dvz-field-inline", title: "which principal components the essential-dynamics plane shows" }, "plane ", planeX, " × ", planeY, " ", swapPlane, " ", planeNote);
  const curveField = h("span", { title: curveSelect.title }, "LLC of ", curveSelect);
  const logYField = h("label", { role: "log-y-field", title: logY.title }, logY, " log loss");
  const smoothingField = h("label", { role: "smoothing-field", title: "display only: exponential moving average of the loss curves (0 = raw); the raw curve stays faint, the readout is raw" }, "smooth ", smoothing, smoothingValue);

  const header = h(
    "div",
    { class: "dvz-header" },
    h("span", { class: "dvz-title" }, "Development"),
    curveField,
    planeField,
    h("label", { title: logX.title }, logX, " log steps"),
    logYField,
    smoothingField,
    runButton,
    stopButton,
    statusBadge,
  );
  const toolbar = h("div", { class: "dvz-toolbar" }, playButton, slider, h("label", { title: stepInput.title }, "step ", stepInput), readout);

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
    nearest: [new Cursor(llc.box, llc.gd, { kind: "point", role: "nearest-llc", variant: "nearest" })],
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
  // per checkpoint: its own estimate of the curve (-1: none) and the nearest computed one
  let llcOwn = new Int32Array(0);
  let llcNearest = new Int32Array(0);
  function indexEstimates() {
    const c = data.llc;
    const N = n();
    llcOwn = new Int32Array(N).fill(-1);
    llcNearest = new Int32Array(N).fill(-1);
    const ij = curveIndex();
    if (!c || !ij) return;
    const [, D, M] = c.mean.shape;
    const base = (ij[0] * D + ij[1]) * M;
    const done = [];
    for (let k = 0; k < M; k++) if (!Number.isNaN(c.healthy.data[base + k])) done.push(k);
    for (let k = 0; k < M; k++) llcOwn[c.index.data[k]] = k;
    if (!done.length) return;
    const doneSteps = Float64Array.from(done, (k) => c.steps.data[k]);
    for (let t = 0; t < N; t++) llcNearest[t] = done[nearestIndex(doneSteps, steps[t])];
  }
  /** The LLC at sweep checkpoint k of the shown curve: [mean, std, healthy]. */
  const estimate = (k) => {
    const c = data.llc;
    const ij = curveIndex();
    if (!c || !ij || k < 0) return [NaN, NaN, NaN];
    const [, D, M] = c.mean.shape;
    const offset = (ij[0] * D + ij[1]) * M + k;
    return [c.mean.data[offset], c.std.data[offset], c.healthy.data[offset]];
  };
  /** The first loss series at checkpoint ``index``: its value there, or null when it has none. */
  const lossAt = (index) => {
    const series = data.losses?.[0];
    if (!series) return null;
    const k = nearestIndex(series.steps.data, steps[index]);
    return series.steps.data[k] === steps[index] ? series.values.data[k] : null;
  };
  /** The dynamics point of checkpoint ``index`` in the plane, or null when it has none. */
  const edAt = (index) => {
    const d = data.dynamics;
    if (!d) return null;
    const k = nearestIndex(d.steps.data, steps[index]);
    if (d.steps.data[k] !== steps[index]) return null;
    const [px, py] = model.get("plane");
    const K = d.coords.shape[1];
    return [d.coords.data[k * K + px], d.coords.data[k * K + py], k];
  };
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
    const lossValue = lossAt(index);
    cursors.loss[slot].place(data.losses?.length ? x : null, lossValue ?? NaN, index);
    const own = llcOwn[index] ?? -1;
    cursors.llc[slot].place(data.llc ? x : null, own >= 0 ? estimate(own)[0] : NaN, index);
    if (slot === 0) {
      const near = own < 0 ? llcNearest[index] ?? -1 : -1;
      cursors.nearest[0].place(near >= 0 ? xmap(data.llc.steps.data[near]) : null, near >= 0 ? estimate(near)[0] : NaN, index);
    }
    const point = edAt(index);
    cursors.ed[slot].place(point ? point[0] : null, point ? point[1] : null, index);
    if (slot === 0) recordCursorX();
  }

  function llcReadout(index) {
    const own = llcOwn[index] ?? -1;
    const k = own >= 0 ? own : llcNearest[index] ?? -1;
    if (k < 0) return { text: "no LLC estimate yet", exact: false };
    const [m, s, healthy] = estimate(k);
    const value = healthy === -1 ? "none (w* not a local minimum)" : `${fmt(m, 4)} ± ${fmt(s, 2)}${healthy === 0 ? " (unhealthy)" : ""}`;
    if (own >= 0) return { text: `LLC ${value}`, exact: true };
    return { text: `LLC – (none here; nearest estimate, step ${data.llc.steps.data[k]}: ${value})`, exact: false, step: data.llc.steps.data[k] };
  }

  function updateReadout(index) {
    const parts = [`checkpoint ${index + 1}/${n()}`, `step ${steps[index] ?? "–"}`];
    if (data.losses?.length) parts.push(`${data.losses[0].name} ${lossAt(index) === null ? "–" : fmt(lossAt(index), 4)}`);
    if (data.llc) {
      const llcText = llcReadout(index);
      parts.push(llcText.text);
      root.dataset.llcExact = String(llcText.exact);
      root.dataset.llcNearestStep = llcText.exact ? String(steps[index]) : String(llcText.step ?? "");
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
      if (gd !== ed.gd) setTimeout(() => linkX(gd, { "xaxis.autorange": true }), 0);
    },
    plotly_relayout: (change) => {
      if (gd !== ed.gd) linkX(gd, change);
      else if (Object.keys(change).some((key) => key.startsWith("xaxis") || key.startsWith("yaxis") || key === "autosize")) layoutMilestones();
      refreshCursors();
    },
  });

  // ------------------------------------------------------------------ shared x range of the step panels
  let xRange = null; // null: every checkpoint (the default); else the zoomed range in axis units
  const stepRange = () => xRange ?? defaultStepRange(steps, xmap, model.get("log_x"));
  const stepPanels = () => [loss.gd, llc.gd].filter((gd) => gd._fullLayout && gd.offsetParent !== null);
  /** A zoom, pan or double-click on one step panel sets the range of all of them. */
  function linkX(source, change) {
    let next;
    if (change["xaxis.autorange"]) next = null;
    else if (change["xaxis.range[0]"] !== undefined) next = [change["xaxis.range[0]"], change["xaxis.range[1]"]];
    else if (Array.isArray(change["xaxis.range"])) next = [...change["xaxis.range"]];
    else return;
    xRange = next;
    const range = stepRange();
    root.dataset.xRange = JSON.stringify(range);
    for (const gd of stepPanels()) {
      const now = gd._fullLayout.xaxis.range;
      if (Math.abs(now[0] - range[0]) > 1e-9 || Math.abs(now[1] - range[1]) > 1e-9 || gd._fullLayout.xaxis.autorange) {
        plotly().relayout(gd, { "xaxis.range": [...range], "xaxis.autorange": false });
      }
    }
  }
  const plotWidth = (gd) => Math.max(1, (gd.clientWidth || gd.parentElement?.clientWidth || 600) - MARGIN.l - MARGIN.r);
  const stepOptions = (gd) => ({
    logX: model.get("log_x"),
    range: stepRange(),
    title: stepAxisTitle(steps, xmap, model.get("log_x")),
    plotWidth: plotWidth(gd),
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
    const estimates = c.steps.data.length;
    llcNote.textContent =
      `LLC estimated at ${estimates} of ${n()} checkpoints; band: chains' min–max; × unhealthy` +
      (stage?.stages?.length ? "; shaded: stages the detector found (green: the LLC rises, amber: it falls), dashed: their boundaries" : "");
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
    layoutMilestones();
    edNote.textContent = `essential dynamics: ${d.coords.shape[0]} checkpoints, colour = training step (bar); ★ milestones (${figure.milestones})`;
    onPlot(ed.gd, hoverHandlers(ed.gd));
  }

  /** Move the milestone labels apart now that the plane has pixels. */
  function layoutMilestones() {
    const fl = ed.gd._fullLayout;
    const notes = ed.gd.layout?.annotations || [];
    if (!fl?.xaxis?._length || !notes.length) return;
    const { xaxis: xa, yaxis: ya } = fl;
    const labels = notes.map((a) => ({ x: xa._offset + xa.c2p(a.x), y: ya._offset + ya.c2p(a.y), width: 6.2 * a.text.length + 8, height: 16 }));
    const bounds = { left: xa._offset, top: ya._offset, right: xa._offset + xa._length, bottom: ya._offset + ya._length };
    const offsets = placeLabels(labels, bounds);
    const update = {};
    offsets.forEach(({ ax, ay }, k) => {
      if (Math.abs(notes[k].ax - ax) > 0.5 || Math.abs(notes[k].ay - ay) > 0.5) {
        update[`annotations[${k}].ax`] = ax;
        update[`annotations[${k}].ay`] = ay;
      }
    });
    if (Object.keys(update).length) plotly().relayout(ed.gd, update);
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
