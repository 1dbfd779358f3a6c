// Plotly (a partial bundle of plotly.js: its core and the traces the views draw) and helpers: one
// shared instance, rAF-coalesced redraws.

const KEY = "__dvz_plotly_4";

/** The Plotly module, evaluated once per page even if several bundles are loaded. */
export function plotly() {
  if (!globalThis[KEY]) {
    // require() keeps plotly's evaluation lazy: it runs on first use, not on import. The core holds
    // scatter (lines, markers, fills), shapes, annotations, legends, colour bars, hover and the mode
    // bar; heatmap is the one other trace type the views draw (calibration grid, attention patterns).
    const Plotly = require("plotly.js/lib/core");
    Plotly.register([require("plotly.js/lib/heatmap")]);
    globalThis[KEY] = Plotly;
  }
  return globalThis[KEY];
}

/** Wrap ``draw`` so that any number of calls within one frame draw once, on the next frame. */
export function coalesce(draw) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  };
}

export const PLOT_CONFIG = { displaylogo: false, responsive: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

/** Draw (or update in place) a plotly figure in ``el``. */
export function react(el, data, layout) {
  return plotly().react(el, data, layout, PLOT_CONFIG);
}

/** Resize plots when their container changes size (tabs, sidebars, window). */
export function watchSize(el, onResize) {
  const resize = coalesce(() => {
    if (el.offsetWidth > 0 && el.data) plotly().Plots.resize(el);
    onResize?.();
  });
  const observer = new ResizeObserver(resize);
  observer.observe(el);
  return () => observer.disconnect();
}

export function purge(el) {
  if (globalThis[KEY] && el.data) plotly().purge(el);
}

/**
 * Min-max decimation for line plots: at most ~2 points per bucket, keeping every spike.
 * Returns {x, y} typed arrays no longer than about ``2 * buckets`` (unchanged when short).
 * Draw cost then depends on the plot's width, not on how many draws a chain has.
 */
export function decimate(ys, buckets) {
  const n = ys.length;
  if (n <= 2 * buckets) return { x: null, y: ys };
  const size = Math.ceil(n / buckets);
  const x = new Float32Array(2 * Math.ceil(n / size));
  const y = new Float32Array(x.length);
  let k = 0;
  for (let start = 0; start < n; start += size) {
    const end = Math.min(n, start + size);
    let lo = -1;
    let hi = -1;
    for (let t = start; t < end; t++) {
      const v = ys[t];
      if (Number.isNaN(v)) continue;
      if (lo < 0 || v < ys[lo]) lo = t;
      if (hi < 0 || v > ys[hi]) hi = t;
    }
    if (lo < 0) {
      // nothing finite here (not drawn yet, or diverged): a gap
      x[k] = start;
      y[k++] = NaN;
      continue;
    }
    const [a, b] = lo < hi ? [lo, hi] : [hi, lo];
    x[k] = a;
    y[k++] = ys[a];
    if (b !== a) {
      x[k] = b;
      y[k++] = ys[b];
    }
  }
  return { x: x.subarray(0, k), y: y.subarray(0, k) };
}
