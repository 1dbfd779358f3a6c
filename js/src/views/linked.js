// Helpers shared by the views: synced writes, cursor overlays drawn over plotly figures without
// redrawing them, following JupyterLab's theme, and small numeric helpers.

import { plotly } from "../plot.js";
import { readTheme, watchTheme } from "../theme.js";

/**
 * Writes to synced traits: ``now`` sends at once; ``throttled`` sends at most every ``ms``
 * (the last value always arrives), so a scrubber moving at 60 Hz costs the kernel ~10 messages/s.
 */
export function syncer(model, ms = 100) {
  const timers = new Map();
  const latest = new Map();
  const last = new Map();
  function now(name, value) {
    clearTimeout(timers.get(name));
    timers.delete(name);
    latest.delete(name);
    last.set(name, performance.now());
    model.set(name, value);
    model.save_changes();
  }
  function throttled(name, value) {
    latest.set(name, value);
    const wait = (last.get(name) ?? -Infinity) + ms - performance.now();
    if (wait <= 0) return now(name, value);
    if (!timers.has(name)) timers.set(name, setTimeout(() => now(name, latest.get(name)), wait));
  }
  function flush() {
    for (const [name, value] of [...latest]) now(name, value);
  }
  return { now, throttled, flush };
}

/** Index of the value of sorted ``xs`` nearest to ``x`` (binary search). */
export function nearestIndex(xs, x) {
  let lo = 0;
  let hi = xs.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid;
    else hi = mid;
  }
  return Math.abs(xs[hi] - x) < Math.abs(x - xs[lo]) ? hi : lo;
}

/**
 * Training steps on a log axis: step 0 cannot be drawn there, so it sits at half the smallest
 * positive step (hover labels always show the true step).
 */
export function stepMapper(steps, log) {
  if (!log) return (s) => s;
  let floor = Infinity;
  for (const s of steps) if (s > 0 && s < floor) floor = s;
  const zero = Number.isFinite(floor) ? floor / 2 : 0.5;
  return (s) => (s > 0 ? s : zero);
}

export function mapArray(values, fn) {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = fn(values[i]);
  return out;
}

/** A colour with an alpha, from any CSS colour. */
export function withAlpha(color, alpha) {
  const probe = document.createElement("span");
  probe.style.color = color;
  document.body.append(probe);
  const rgb = (getComputedStyle(probe).color.match(/[\d.]+/g) || ["0", "0", "0"]).slice(0, 3);
  probe.remove();
  return `rgba(${rgb.join(",")},${alpha})`;
}

/** Categorical colours that read on light and dark backgrounds (clusters, selections). */
export const CATEGORICAL = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
export const CATEGORICAL_DARK = ["#6cb4ee", "#ffb454", "#7bd67b", "#ff6b6b", "#c3a6ff", "#d7a98c", "#ff9bd6", "#5ee0f0", "#e0e070", "#bdbdbd"];
export const categorical = (theme, i) => (theme.dark ? CATEGORICAL_DARK : CATEGORICAL)[((i % 10) + 10) % 10];

/**
 * Highlights drawn over a plotly figure as absolutely positioned elements: moving one is a few
 * style writes, whatever the figure holds. ``kind`` "vline" draws a vertical rule with a dot on
 * it, "point" a ring. Place with data coordinates; they follow zoom after ``refresh()``.
 */
export class Cursor {
  constructor(box, gd, { kind = "vline", role, variant = "current" }) {
    this.gd = gd;
    this.kind = kind;
    this.el = document.createElement("div");
    this.el.className = `dvz-cursor dvz-cursor-${kind} dvz-cursor-${variant}`;
    if (role) this.el.setAttribute("data-dvz-role", role);
    this.el.hidden = true;
    if (kind === "vline") {
      this.dot = document.createElement("div");
      this.dot.className = "dvz-cursor-dot";
      this.el.append(this.dot);
    }
    box.append(this.el);
    this.at = null;
  }

  /** Place at data (x, y) (y may be null: no dot); ``index`` is recorded for tests. */
  place(x, y, index) {
    this.at = x === null || x === undefined ? null : [x, y, index];
    this.refresh();
  }

  refresh() {
    const fl = this.gd._fullLayout;
    const xa = fl?.xaxis;
    const ya = fl?.yaxis;
    if (!this.at || !xa?._length || !ya?._length || !Number.isFinite(this.at[0])) {
      this.el.hidden = true;
      return;
    }
    const [x, y, index] = this.at;
    const px = xa._offset + xa.c2p(x);
    const inX = px >= xa._offset - 0.5 && px <= xa._offset + xa._length + 0.5;
    const py = Number.isFinite(y) ? ya._offset + ya.c2p(y) : NaN;
    const inY = py >= ya._offset - 0.5 && py <= ya._offset + ya._length + 0.5;
    if (this.kind === "vline") {
      this.el.hidden = !inX;
      this.el.style.transform = `translate(${px}px, ${ya._offset}px)`;
      this.el.style.height = `${ya._length}px`;
      this.dot.hidden = !inY;
      if (inY) this.dot.style.transform = `translate(-50%, ${py - ya._offset}px) translateY(-50%)`;
    } else {
      this.el.hidden = !(inX && inY);
      this.el.style.transform = `translate(${px}px, ${py}px) translate(-50%, -50%)`;
    }
    this.el.dataset.checkpoint = String(index);
  }

  destroy() {
    this.el.remove();
  }
}

/**
 * Run ``fn`` once ``el`` is displayed: at once, or when it shows again (JupyterLab hides the
 * notebook for a moment while it swaps a theme's stylesheet; figures drawn then would keep the old
 * colours). Returns a function that cancels the wait.
 */
export function whenVisible(el, fn, timeoutMs = 20000) {
  const deadline = performance.now() + timeoutMs;
  let timer = null;
  const attempt = () => {
    if (el.offsetParent !== null) fn();
    else if (performance.now() < deadline) timer = setTimeout(attempt, 100);
  };
  attempt();
  return () => clearTimeout(timer);
}

/**
 * Follow JupyterLab's light/dark theme for a view: keep ``root``'s ``data-dvz-theme`` current and,
 * when the colours change, hand the new theme to ``onChange`` at once and call ``redraw`` once
 * ``visibleEl`` shows again (figures drawn while JupyterLab swaps stylesheets would be skipped).
 * Returns a function that stops following.
 */
export function followTheme(el, root, visibleEl, initial, onChange, redraw) {
  let current = initial;
  const waits = [];
  root.dataset.dvzTheme = current.dark ? "dark" : "light";
  const stop = watchTheme(() => {
    const next = readTheme(el);
    root.dataset.dvzTheme = next.dark ? "dark" : "light";
    if (next.background === current.background && next.font === current.font) return;
    current = next;
    onChange(next);
    waits.push(whenVisible(visibleEl, redraw));
  });
  return () => {
    stop();
    for (const cancel of waits) cancel();
  };
}

// ------------------------------------------------------------------ label layout

const overlapArea = (a, b) =>
  Math.max(0, Math.min(a.right, b.right) - Math.max(a.left, b.left)) * Math.max(0, Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top));

/**
 * Offsets that keep text labels of points apart, greedily in order: each label takes the first
 * spot (above, then around, further out) that overlaps no label placed before, no point and stays
 * in ``bounds``; when none is free, the spot that overlaps least.
 * @param {{x: number, y: number, width: number, height: number}[]} labels anchor pixel and label size
 * @param {{left: number, top: number, right: number, bottom: number}} bounds the plot area, pixels
 * @param {number} pointRadius the half-size of a point's marker
 * @returns {{ax: number, ay: number}[]} each label's centre relative to its point (plotly ax/ay)
 */
export function placeLabels(labels, bounds, pointRadius = 8) {
  const directions = [[0, -1], [0.8, -0.8], [-0.8, -0.8], [1, 0], [-1, 0], [0, 1], [0.8, 0.8], [-0.8, 0.8]];
  const points = labels.map(({ x, y }) => ({ left: x - pointRadius, right: x + pointRadius, top: y - pointRadius, bottom: y + pointRadius }));
  const placed = [];
  return labels.map(({ x, y, width, height }) => {
    let best = null;
    for (const distance of [18, 32, 48, 66, 86]) {
      for (const [dx, dy] of directions) {
        const ax = dx * (distance + width / 2 - 8);
        const ay = dy * (distance + height / 2 - 4);
        const box = { left: x + ax - width / 2, right: x + ax + width / 2, top: y + ay - height / 2, bottom: y + ay + height / 2 };
        const inside = box.left >= bounds.left && box.right <= bounds.right && box.top >= bounds.top && box.bottom <= bounds.bottom;
        const cost = [...placed, ...points].reduce((sum, other) => sum + overlapArea(box, other), 0) + (inside ? 0 : 1e6);
        if (!best || cost < best.cost) best = { ax, ay, box, cost };
        if (cost === 0) break;
      }
      if (best.cost === 0) break;
    }
    placed.push(best.box);
    return { ax: best.ax, ay: best.ay };
  });
}

/** Bind plotly events once per figure element. */
export function onPlot(gd, handlers) {
  if (gd.dataset.dvzBound) return;
  gd.dataset.dvzBound = "1";
  for (const [name, fn] of Object.entries(handlers)) gd.on(name, fn);
}

export { plotly };

/**
 * Readable ticks of a log axis over positive ``values``: 1, 10, 100, … when they span more than
 * two decades, else 1, 2, 5 per decade (plotly's default labels its minor ticks "2 3 4 …").
 * @returns {{tickvals: number[], ticktext: string[]}} for an axis of ``type: "log"``
 */
export function logTicks(values) {
  const positive = Array.from(values).filter((v) => v > 0 && Number.isFinite(v));
  if (!positive.length) return { tickvals: [1], ticktext: ["1"] };
  const low = Math.floor(Math.log10(Math.min(...positive)));
  const high = Math.ceil(Math.log10(Math.max(...positive)));
  const mantissas = high - low > 2 ? [1] : [1, 2, 5];
  const tickvals = [];
  for (let e = low; e <= high; e++) for (const m of mantissas) tickvals.push(m * 10 ** e);
  const ticktext = tickvals.map((v) => (v >= 1e5 || v < 1e-3 ? v.toExponential(0).replace("e+", "e") : String(Number(v.toPrecision(1)))));
  return { tickvals, ticktext };
}

/** Pixel width of the widest of ``labels`` in ``family`` at ``size`` px (a margin or a legend row that fits them). */
export function labelWidth(labels, family, size = 11) {
  const context = document.createElement("canvas").getContext("2d");
  context.font = `${size}px ${family}`;
  return Math.max(0, ...labels.map((label) => context.measureText(String(label)).width));
}

/** Rows a horizontal plotly legend of ``names`` takes in ``width`` px (each entry: its text and a 40 px swatch). */
export function legendRows(names, width, family, size = 11) {
  let rows = names.length ? 1 : 0;
  let used = 0;
  for (const name of names) {
    const entry = labelWidth([name], family, size) + 46;
    if (used > 0 && used + entry > width) [rows, used] = [rows + 1, 0];
    used += entry;
  }
  return rows;
}
