// A light canvas line plot for the live phase of a job: stacked panels sharing one x axis.
//
// One Plotly.react of a 2-panel, 8-trace SVG figure costs ~45 ms on a small machine, too slow for
// 20+ frames a second; this draws the same picture (same plot boxes, gridlines, tick labels,
// legend, theme colours) in a few ms. Views draw it while data streams in and switch to the
// interactive plotly figure when the job ends. Lines are min-max decimated to the pixel width;
// y axes grow smoothly (eased) to the range of the data, which during a run only widens.
// As on the plotly figure: hovering reads out the nearest chain's value at that draw, dragging
// across the plot zooms x to the dragged span (y follows the data inside it), a double click resets.

import { decimate } from "./plot.js";
import { log10Of, logTickLabel, logTicks, niceTicks, tickLabel } from "./live_ticks.js";

export { log10Of, niceStep, niceTicks } from "./live_ticks.js";

const EASE = 0.45; // fraction of the remaining distance an axis range moves per frame
const TICK_SPACING_PX = { x: 80, y: 40 }; // as plotly's automatic ticks: ~one per 80 px (x), 40 px (y)
const BURNIN_OPACITY = 0.45; // the burn-in lines, faint before draw 0, as on the plotly figure

/** [min, max] of the finite values of some arrays (null when there are none). */
function extent(arrays, extra = []) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const ys of arrays) {
    for (let i = 0; i < ys.length; i++) {
      const v = ys[i];
      if (v !== v || v === Infinity || v === -Infinity) continue; // not drawn yet, or diverged
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  for (const v of extra) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return null;
  if (hi - lo < 1e-9 * Math.max(1, Math.abs(hi))) {
    const pad = Math.max(1e-6, Math.abs(hi) * 1e-3);
    return [lo - pad, hi + pad];
  }
  const pad = 0.05 * (hi - lo);
  return [lo - pad, hi + pad];
}

/** The x range of a live run of ``total`` draws with ``n`` so far: room to grow, doubling at the edge (not re-ticked every frame). */
export function growingRange(n, total) {
  let xMax = Math.min(total - 1, 63);
  while (xMax < total - 1 && n > 0.9 * xMax) xMax = Math.min(total - 1, 2 * xMax + 1);
  return xMax;
}

export class LiveLines {
  /**
   * @param {HTMLElement} box  positioned container holding the plotly figure this stands in for
   * @param {object} spec  ``panels``: [{domain: [y0, y1] (fractions, bottom-up, as plotly's),
   *   title, axis: "yaxis" | "yaxis2" ...}], ``xTitle``, ``margin``: {l, r, t, b} in px
   */
  constructor(box, spec) {
    this.box = box;
    this.spec = spec;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "dvz-live";
    this.canvas.setAttribute("data-dvz-role", "live-plot");
    this.canvas.hidden = true;
    this.tip = document.createElement("div");
    this.tip.className = "dvz-live-tip";
    this.tip.setAttribute("data-dvz-role", "live-tip");
    this.tip.hidden = true;
    this.band = document.createElement("div");
    this.band.className = "dvz-live-zoom";
    this.band.hidden = true;
    box.append(this.canvas, this.tip, this.band);
    this.ctx = this.canvas.getContext("2d");
    this.xView = null; // [x0, x1] after a drag-zoom; null: the whole run
    this.last = null; // what the last frame drew: its arguments, plot boxes and x range
    this.pointer = null; // where the pointer rests over the canvas (not dragging), in canvas pixels
    this.reset();
    this.listen();
  }

  /** Forget the axis ranges (a new run starts). */
  reset() {
    this.shown = this.spec.panels.map(() => null);
  }

  /** Zoom x to [x0, x1] (draw indices), or back to the whole run with null; redraws the last frame unless ``redraw`` is false. */
  zoom(range, redraw = true) {
    this.xView = range && range[1] > range[0] ? range : null;
    this.canvas.dataset.dvzXView = this.xView ? this.xView.map((x) => x.toFixed(1)).join(",") : "";
    this.reset();
    if (redraw && this.last) this.draw(this.last.frame);
  }

  /** The draw index under a pointer's x offset in the canvas, and the panel under its y (-1: none). */
  locate(px, py) {
    const { geo, x0, x1 } = this.last;
    const panel = geo.panels.findIndex((b) => py >= b.top && py <= b.top + b.height);
    return { x: x0 + ((px - geo.left) / geo.width) * (x1 - x0), panel, inside: px >= geo.left && px <= geo.left + geo.width };
  }

  listen() {
    const { canvas, band } = this;
    const offset = (event) => {
      const r = canvas.getBoundingClientRect();
      return [event.clientX - r.left, event.clientY - r.top];
    };
    let dragFrom = null;
    canvas.addEventListener("pointerdown", (event) => {
      if (!this.last || event.button !== 0) return;
      const [px, py] = offset(event);
      if (!this.locate(px, py).inside) return;
      dragFrom = px;
      canvas.setPointerCapture?.(event.pointerId);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!this.last) return;
      const [px, py] = offset(event);
      if (dragFrom === null) {
        this.pointer = [px, py];
        return this.hover(px, py);
      }
      const { geo } = this.last;
      const [a, b] = [dragFrom, px].map((p) => Math.min(geo.left + geo.width, Math.max(geo.left, p))).sort((u, v) => u - v);
      Object.assign(band.style, { left: `${a}px`, width: `${b - a}px`, top: `${geo.panels[0].top}px`, height: `${geo.panels.at(-1).top + geo.panels.at(-1).height - geo.panels[0].top}px` });
      band.hidden = false;
      this.tip.hidden = true;
    });
    canvas.addEventListener("pointerup", (event) => {
      if (dragFrom === null) return;
      const [px, py] = offset(event);
      const from = dragFrom;
      dragFrom = null;
      band.hidden = true;
      if (Math.abs(px - from) < 5) return; // a click, not a drag
      const [a, b] = [this.locate(from, py).x, this.locate(px, py).x].sort((u, v) => u - v);
      const [lo, hi] = [Math.max(this.last.xMin, a), Math.min(this.last.xMax, b)];
      if (hi - lo >= 1) this.zoom([lo, hi]);
    });
    canvas.addEventListener("dblclick", () => this.zoom(null));
    canvas.addEventListener("pointerleave", () => {
      this.pointer = null;
      this.tip.hidden = true;
    });
  }

  /** The readout under the pointer: the chain whose value at the nearest draw lies closest to it. */
  hover(px, py) {
    const { frame, geo, yOfs } = this.last;
    const { x, panel, inside } = this.locate(px, py);
    const given = frame.panels[panel];
    const draw = Math.round(x);
    let best = null;
    if (inside && given && yOfs[panel]) {
      given.series.forEach((series, index) => {
        const value = series.y[draw];
        const shown = given.log ? (value > 0 ? Math.log10(value) : NaN) : value;
        if (!Number.isFinite(shown)) return;
        const distance = Math.abs(yOfs[panel](shown) - py);
        if (!best || distance < best.distance) best = { index, value, distance, color: series.color };
      });
    }
    if (!best) {
      this.tip.hidden = true;
      return;
    }
    const name = given.series[best.index].name ?? `series ${best.index}`;
    const title = this.spec.panels[panel].title;
    this.tip.replaceChildren(
      Object.assign(document.createElement("span"), { className: "dvz-live-tip-dot", style: `background: ${best.color}` }),
      document.createTextNode(`${name} · ${this.spec.xTitle} ${draw} · ${title} ${Number(best.value.toPrecision(5))}`),
    );
    this.tip.hidden = false;
    const right = px > geo.left + geo.width / 2;
    Object.assign(this.tip.style, { top: `${Math.max(0, py - 28)}px`, left: right ? "" : `${px + 12}px`, right: right ? `${this.canvas.clientWidth - px + 12}px` : "" });
    this.tip.dataset.dvzDraw = String(draw);
    this.tip.dataset.dvzSeries = String(best.index);
    this.tip.dataset.dvzPanel = String(panel);
  }

  get visible() {
    return !this.canvas.hidden;
  }

  show() {
    this.canvas.hidden = false;
  }

  hide() {
    this.canvas.hidden = true;
    this.tip.hidden = true;
    this.band.hidden = true;
  }

  /** Plot boxes in CSS px: plotly's own when ``gd`` was drawn at this size, else from the spec. */
  geometry(width, height, gd) {
    const fl = gd?._fullLayout;
    if (fl?.xaxis && fl.width === width && fl.height === height && this.spec.panels.every((p) => fl[p.axis]?._length > 0)) {
      return {
        left: fl.xaxis._offset,
        width: fl.xaxis._length,
        top: fl._size.t,
        panels: this.spec.panels.map((p) => ({ top: fl[p.axis]._offset, height: fl[p.axis]._length })),
      };
    }
    const { l, r, t, b } = this.spec.margin;
    const h = Math.max(10, height - t - b);
    return {
      left: l,
      width: Math.max(10, width - l - r),
      top: t,
      panels: this.spec.panels.map(({ domain: [d0, d1] }) => ({ top: t + (1 - d1) * h, height: (d1 - d0) * h })),
    };
  }

  /**
   * Draw one frame. Returns true when the axes have settled (no easing frame is needed).
   * @param {object} frame  {theme, width, height, xMax, gd, legend: [{name, color}],
   *   panels: [{series: [{y: Float32Array, color, name}], hlines: [{y, label}], note, log, burnin}]} — a ``log``
   *   panel draws log10 of its values, ticked at powers of ten; ``name`` is the hover readout's; ``xMin`` < 0
   *   starts x before draw 0, where a panel's ``burnin`` ({x: draw positions, series: [{y, color}]}) is drawn faint on a band
   */
  draw(frame) {
    const { theme, width, height, gd, legend = [], panels } = frame;
    const xMax = frame.xMax;
    const dpr = window.devicePixelRatio || 1;
    const { canvas, ctx } = this;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = theme.background;
    ctx.fillRect(0, 0, width, height);
    const geo = this.geometry(width, height, gd);
    const font = `11px ${theme.fontFamily}`;
    const xMin = Math.min(0, frame.xMin ?? 0);
    const [x0, x1] = this.xView ? [this.xView[0], Math.min(this.xView[1], xMax)] : [xMin, xMax];
    const xOf = (x) => geo.left + ((x - x0) / (x1 - x0)) * geo.width;
    const xTicks = niceTicks(x0, x1, geo.width, TICK_SPACING_PX.x);
    // the draws in view (a zoomed view decimates only them, at full resolution)
    const first = Math.max(0, Math.floor(x0));
    const last = Math.ceil(x1) + 1;
    const inView = (ys) => (this.xView ? ys.subarray(first, last) : ys);
    const yOfs = [];
    let settled = true;

    panels.forEach((given, index) => {
      const panel = given.log ? toLog(given) : given;
      const box = geo.panels[index];
      const burnin = x0 < 0 ? (panel.burnin?.series ?? []).map((s) => s.y) : [];
      const target = extent([...panel.series.map((s) => inView(s.y)), ...burnin], (panel.hlines || []).map((l) => l.y));
      let range = this.shown[index];
      if (target && !range) range = target;
      else if (target) {
        const next = [range[0] + (target[0] - range[0]) * EASE, range[1] + (target[1] - range[1]) * EASE];
        const close = Math.abs(next[0] - target[0]) + Math.abs(next[1] - target[1]) < 2e-3 * (target[1] - target[0]);
        range = close ? target : next;
        settled &&= close;
      }
      this.shown[index] = range;
      const [lo, hi] = range || [0, 1];
      const yOf = (y) => box.top + (1 - (y - lo) / (hi - lo)) * box.height;
      yOfs[index] = range ? yOf : null;

      // gridlines and tick labels, as plotly draws them (no axis lines, no tick marks)
      ctx.lineWidth = 1;
      ctx.strokeStyle = theme.grid;
      ctx.beginPath();
      for (const x of xTicks.values) {
        const px = Math.round(xOf(x)) + 0.5;
        ctx.moveTo(px, box.top);
        ctx.lineTo(px, box.top + box.height);
      }
      const yTicks = !range ? { values: [] } : panel.log ? logTicks(lo, hi) : niceTicks(lo, hi, box.height, TICK_SPACING_PX.y);
      for (const y of yTicks.values) {
        const py = Math.round(yOf(y)) + 0.5;
        ctx.moveTo(geo.left, py);
        ctx.lineTo(geo.left + geo.width, py);
      }
      ctx.stroke();
      if (range && !panel.log && lo < 0 && hi > 0) {
        ctx.strokeStyle = theme.axis;
        ctx.beginPath();
        ctx.moveTo(geo.left, Math.round(yOf(0)) + 0.5);
        ctx.lineTo(geo.left + geo.width, Math.round(yOf(0)) + 0.5);
        ctx.stroke();
      }
      ctx.font = font;
      ctx.fillStyle = theme.font;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const y of yTicks.values) ctx.fillText(panel.log ? logTickLabel(y) : tickLabel(y, yTicks.step), geo.left - 4, yOf(y));
      if (index === panels.length - 1) {
        ctx.textAlign = "center";
        ctx.textBaseline = "top";
        for (const x of xTicks.values) ctx.fillText(tickLabel(x, xTicks.step), xOf(x), box.top + box.height + 4);
        ctx.fillText(this.spec.xTitle, geo.left + geo.width / 2, box.top + box.height + 19);
      }
      ctx.save();
      ctx.translate(geo.left - 46, box.top + box.height / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.font = `12px ${theme.fontFamily}`;
      ctx.fillText(this.spec.panels[index].title + (panel.log ? " (log)" : ""), 0, 0);
      ctx.restore();

      // data, clipped to the panel
      ctx.save();
      ctx.beginPath();
      ctx.rect(geo.left, box.top, geo.width, box.height);
      ctx.clip();
      if (x0 < 0 && xMin < 0) drawBurnin(ctx, theme, index === 0 ? panel.burnin : null, xMin, xOf, range ? yOf : null, box);
      for (const line of panel.hlines || []) {
        ctx.strokeStyle = theme.fontMuted;
        ctx.setLineDash([5, 4]);
        ctx.beginPath();
        ctx.moveTo(geo.left, yOf(line.y));
        ctx.lineTo(geo.left + geo.width, yOf(line.y));
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = theme.fontMuted;
        ctx.font = `10px ${theme.fontFamily}`;
        ctx.textAlign = "right";
        ctx.textBaseline = "bottom";
        ctx.fillText(line.label, geo.left + geo.width - 2, yOf(line.y) - 1);
      }
      if (range) {
        ctx.lineWidth = 1.3;
        ctx.lineJoin = "round";
        for (const series of panel.series) drawLine(ctx, inView(series.y), this.xView ? first : 0, series.color, geo.width, xOf, yOf);
      }
      ctx.restore();
      if (panel.note) {
        ctx.fillStyle = theme.fontMuted;
        ctx.font = font;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(panel.note, geo.left + geo.width / 2, box.top + box.height / 2);
      }
    });

    // legend above the plots, like plotly's horizontal legend
    ctx.font = `10px ${theme.fontFamily}`;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    let x = geo.left;
    const y = Math.max(8, geo.top - 12);
    for (const item of legend) {
      ctx.strokeStyle = item.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x + 4, y);
      ctx.lineTo(x + 30, y);
      ctx.stroke();
      ctx.fillStyle = theme.font;
      ctx.fillText(item.name, x + 36, y);
      x += 44 + ctx.measureText(item.name).width;
    }
    this.last = { frame, geo, x0, x1, xMin, xMax, yOfs };
    canvas.dataset.dvzXMin = String(xMin);
    canvas.dataset.dvzBurninLines = String(x0 < 0 ? (panels[0]?.burnin?.series.length ?? 0) : 0);
    if (this.pointer) this.hover(...this.pointer); // the axes moved under a still pointer: read out what is under it now
    return settled;
  }

  destroy() {
    this.canvas.remove();
    this.tip.remove();
    this.band.remove();
  }
}

/** A panel with its values and lines as log10 (``log`` kept). */
function toLog(panel) {
  return {
    ...panel,
    series: panel.series.map((s) => ({ ...s, y: log10Of(s.y) })),
    hlines: (panel.hlines || []).filter((l) => l.y > 0).map((l) => ({ ...l, y: Math.log10(l.y) })),
    burnin: panel.burnin && { ...panel.burnin, series: panel.burnin.series.map((s) => ({ ...s, y: log10Of(s.y) })) },
  };
}

/** The burn-in before draw 0, as the plotly figure draws it: a grey band labelled "burn-in" and each chain's burn-in losses, faint, joined over gaps. */
function drawBurnin(ctx, theme, burnin, xMin, xOf, yOf, box) {
  ctx.save();
  ctx.globalAlpha = 0.3;
  ctx.fillStyle = theme.grid;
  ctx.fillRect(xOf(xMin), box.top, xOf(0) - xOf(xMin), box.height);
  ctx.restore();
  if (!burnin) return;
  Object.assign(ctx, { fillStyle: theme.fontMuted, font: `11px ${theme.fontFamily}`, textAlign: "center", textBaseline: "top" });
  ctx.fillText("burn-in", (xOf(xMin) + xOf(0)) / 2, box.top + 2);
  if (!yOf) return;
  ctx.save();
  Object.assign(ctx, { globalAlpha: BURNIN_OPACITY, lineWidth: 1 });
  for (const series of burnin.series) {
    ctx.strokeStyle = series.color;
    ctx.beginPath();
    let pen = false;
    series.y.forEach((v, k) => {
      if (!Number.isFinite(v)) return;
      ctx[pen ? "lineTo" : "moveTo"](xOf(burnin.x[k]), yOf(v));
      pen = true;
    });
    ctx.stroke();
  }
  ctx.restore();
}

/** Stroke values ``ys`` of draws ``start``, ``start`` + 1, …, min-max decimated to ~1 point pair per pixel column, broken at NaN. */
function drawLine(ctx, ys, start, color, widthPx, xOf, yOf) {
  const { x, y } = decimate(ys, Math.max(50, Math.round(widthPx)));
  ctx.strokeStyle = color;
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (!Number.isFinite(v)) {
      pen = false;
      continue;
    }
    const px = xOf(start + (x ? x[i] : i));
    const py = yOf(v);
    if (pen) ctx.lineTo(px, py);
    else ctx.moveTo(px, py);
    pen = true;
  }
  ctx.stroke();
}
