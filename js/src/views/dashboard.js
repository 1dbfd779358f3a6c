// DevelopmentDashboard view: a checkpoint scrubber driving linked loss / LLC / essential-dynamics panels.
//
// Every figure is drawn once per data change; the current and the hovered checkpoint are
// overlays (linked.js Cursor) moved with a few style writes, so scrubbing costs the same at 10 or
// 10 000 checkpoints and never waits for the kernel. The checkpoint goes back to Python
// throttled (~10 messages/s while scrubbing, the last value always).

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { purge, react, watchSize } from "../plot.js";
import { readTheme } from "../theme.js";
import { edFigure, lossFigure, llcFigure } from "./dashboard_figures.js";
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
  const playButton = h("button", { role: "play", class: "dvz-button dvz-icon-button", title: "play / pause (space)", onclick: () => togglePlay() }, "▶");
  const slider = h("input", { type: "range", role: "scrubber", class: "dvz-scrubber", min: 0, max: 0, step: 1, value: 0, "aria-label": "checkpoint" });
  const stepInput = h("input", { type: "number", role: "step-input", class: "dvz-step-input", title: "go to the checkpoint nearest this training step", "aria-label": "training step" });
  const readout = h("span", { role: "readout", class: "dvz-readout" });
  const curveSelect = h("select", { role: "curve", title: "which LLC curve" });
  const planeX = h("select", { role: "plane-x", title: "PC on the horizontal axis" });
  const planeY = h("select", { role: "plane-y", title: "PC on the vertical axis" });
  const logX = h("input", { type: "checkbox", role: "log-x" });
  const runButton = h("button", { role: "run", class: "dvz-button dvz-primary", onclick: () => model.send({ type: "run" }) }, "▶ Compute");
  const stopButton = h("button", { role: "stop", class: "dvz-button", onclick: () => model.send({ type: "stop" }) }, "■ Stop");
  const statusBadge = h("span", { class: "dvz-status", role: "status" });
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });
  const planeField = h("span", { class: "dvz-field-inline" }, "plane ", planeX, " × ", planeY);
  const curveField = h("span", {}, "LLC of ", curveSelect);

  const header = h(
    "div",
    { class: "dvz-header" },
    h("span", { class: "dvz-title" }, "Development"),
    curveField,
    planeField,
    h("label", { title: "training steps on a log axis" }, logX, " log steps"),
    runButton,
    stopButton,
    statusBadge,
  );
  const toolbar = h("div", { class: "dvz-toolbar" }, playButton, slider, h("label", {}, "step ", stepInput), readout);

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
    ed: [new Cursor(ed.box, ed.gd, { kind: "point", role: "cursor-ed" }), new Cursor(ed.box, ed.gd, { kind: "point", role: "hover-ed", variant: "hover" })],
  };
  const edNote = h("div", { class: "dvz-legend-note", role: "ed-note" });
  const grid = h("div", { class: "dvz-dash-grid" }, h("div", { class: "dvz-dash-col" }, loss.box, llc.box), h("div", { class: "dvz-dash-col" }, ed.box, edNote));
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
  const llcAt = (index) => {
    const c = data.llc;
    const ij = curveIndex();
    if (!c || !ij) return [NaN, NaN];
    const [S, D, N] = c.mean.shape;
    const offset = (ij[0] * D + ij[1]) * N + index;
    return [c.mean.data[offset], c.std.data[offset]];
  };
  const lossAt = (index) => {
    const series = data.losses?.[0];
    if (!series) return [NaN, NaN];
    const k = nearestIndex(series.steps.data, steps[index]);
    return [series.steps.data[k], series.values.data[k]];
  };
  const edAt = (index) => {
    const d = data.dynamics;
    if (!d) return null;
    const k = nearestIndex(d.steps.data, steps[index]);
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
      for (const pair of Object.values(cursors)) pair[slot].place(null);
      return;
    }
    const step = steps[index];
    const [lossStep, lossValue] = lossAt(index);
    cursors.loss[slot].place(data.losses?.length ? xmap(lossStep) : null, lossValue, index);
    cursors.llc[slot].place(data.llc ? xmap(step) : null, llcAt(index)[0], index);
    const point = edAt(index);
    cursors.ed[slot].place(point ? point[0] : null, point ? point[1] : null, index);
  }

  function updateReadout(index) {
    const [m, s] = llcAt(index);
    const [, lv] = lossAt(index);
    const parts = [`checkpoint ${index + 1}/${n()}`, `step ${steps[index] ?? "–"}`];
    if (data.losses?.length) parts.push(`${data.losses[0].name} ${fmt(lv, 4)}`);
    if (data.llc) parts.push(`LLC ${fmt(m, 4)} ± ${fmt(s, 2)}`);
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
  }

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
    plotly_relayout: (change) => {
      linkX(gd, change);
      refreshCursors();
    },
  });

  let linking = false;
  function linkX(source, change) {
    if (linking) return;
    const other = source === loss.gd ? llc.gd : source === llc.gd ? loss.gd : null;
    if (!other?._fullLayout) return;
    const update = {};
    if (change["xaxis.autorange"]) update["xaxis.autorange"] = true;
    else if (change["xaxis.range[0]"] !== undefined) update["xaxis.range"] = [change["xaxis.range[0]"], change["xaxis.range[1]"]];
    if (!Object.keys(update).length) return;
    linking = true;
    Promise.resolve(react(other, other.data, { ...other.layout, xaxis: { ...other.layout.xaxis, ...(update["xaxis.range"] ? { range: update["xaxis.range"], autorange: false } : { autorange: true }) } }))
      .finally(() => {
        linking = false;
        refreshCursors();
      });
  }

  function drawLoss() {
    const series = data.losses || [];
    loss.box.hidden = series.length === 0;
    if (!series.length || hidden(loss.gd)) return;
    const { traces, layout } = lossFigure(theme, series, xmap, model.get("log_x"), MARGIN);
    react(loss.gd, traces, layout);
    onPlot(loss.gd, hoverHandlers(loss.gd));
  }

  function drawLLC() {
    const c = data.llc;
    llc.box.hidden = !c;
    if (!c || hidden(llc.gd)) return;
    const [i, j] = curveIndex();
    const stage = data.stages?.[i * c.mean.shape[1] + j];
    const figure = llcFigure(theme, c, [i, j], stage, steps, xmap, model.get("log_x"), MARGIN);
    llc.gd.dataset.unhealthy = String(figure.unhealthy);
    llc.gd.dataset.undefined = String(figure.undefined);
    react(llc.gd, figure.traces, figure.layout);
    llc.gd.dataset.stages = String(stage?.stages?.length ?? 0);
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
    edNote.textContent = `essential dynamics: ${d.coords.shape[0]} checkpoints, colour = training time; ★ milestones (${figure.milestones})`;
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
  }

  function onData() {
    data = decode(model.get("data")) || {};
    steps = data.steps?.data ?? new Float32Array(0);
    xmap = stepMapper(steps, model.get("log_x"));
    slider.max = String(Math.max(0, n() - 1));
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
  const setPlane = () => {
    const plane = [Number(planeX.value), Number(planeY.value)];
    if (plane[0] === plane[1]) return;
    sync.now("plane", plane);
  };
  planeX.addEventListener("change", setPlane);
  planeY.addEventListener("change", setPlane);
  logX.addEventListener("change", () => sync.now("log_x", logX.checked));

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
    updateOptions();
    drawAll();
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
