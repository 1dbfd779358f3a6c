// Parts of the SamplerWidget view: the trace plot's display options, the live health line, the run history, the grid's boxes.

import { decode } from "../codec.js";
import { onCommit } from "../controls.js";
import { field, fmt, h, parseNumbers } from "../dom.js";
import { coalesce, purge, react, watchSize } from "../plot.js";
import { compareFigure, liveMetrics } from "./sampler_figures.js";

const COMPARE_HEIGHT = 260;

/** One metric box: [label, value, tooltip]; a bracketed part of the value (the step bias's share of λ̂) goes on a line of its own, so the cards stay narrow. */
export function metric([label, value, title]) {
  const [main, note] = value.split(/ (?=\()/);
  return h("div", { class: "dvz-metric", title }, h("div", { class: "dvz-metric-label" }, label), h("div", { class: "dvz-metric-value" }, main),
    note ? h("div", { class: "dvz-metric-note" }, note) : null);
}

/**
 * The y scale select and the smoothing slider: they write ``view.yScale`` / ``view.smoothing`` (display
 * only, never synced: they change no number) and call ``redraw``.
 */
export function tracePlotOptions(view, redraw) {
  const yScale = h(
    "select",
    { role: "y-scale", title: "y axis of the trace panels: auto = log where the values span decades (a diverged run), else linear", onchange: () => { view.yScale = yScale.value; redraw(); } },
    h("option", { value: "auto" }, "auto"),
    h("option", { value: "linear" }, "linear"),
    h("option", { value: "log" }, "log"),
  );
  const hint = "exponential moving average of the loss lines (display only: the estimate and its diagnostics use the raw draws)";
  const value = h("span", { class: "dvz-muted dvz-small", role: "smoothing-value" }, "0");
  const smoothing = h("input", {
    type: "range", role: "smoothing", min: 0, max: 0.99, step: 0.01, value: 0, title: hint, "aria-label": "smoothing",
    oninput: () => { view.smoothing = Number(smoothing.value); value.textContent = smoothing.value; redraw(); },
  });
  return h(
    "div",
    { class: "dvz-plot-options" },
    field("y scale", yScale, yScale.title),
    h("label", { class: "dvz-field dvz-inline", title: hint }, h("span", { class: "dvz-label" }, "smoothing"), smoothing, value),
  );
}

/** While a run streams: R-hat, ESS, MALA acceptance and divergences of the draws so far, computed in Python (``trace.live``). */
export function liveHealthLine() {
  const element = h("div", { class: "dvz-metrics dvz-live-health", role: "live-health", hidden: true });
  function update(trace, streaming) {
    const shown = streaming && trace.live && trace.live.draws !== undefined;
    element.hidden = !shown;
    if (!shown) return;
    const chains = trace.loss?.shape?.[0] ?? 0;
    element.replaceChildren(h("div", { class: "dvz-muted dvz-small dvz-live-title" }, `so far (the first ${trace.live.draws} draws; updated twice a second):`), ...liveMetrics(trace.live, chains).map(metric));
  }
  return { element, update };
}

const HEADERS = [
  ["", "tick to overlay this run's running LLC below"], ["run", "index in widget.runs"], ["sampler", ""], ["lr", "step size"],
  ["nβ", "inverse temperature used"], ["γ", "localization"], ["chains", ""], ["draws", "draws kept per chain"], ["burn-in", "burn-in steps"],
  ["λ̂ ± SE", "estimate ± its standard error"], ["verdict", ""],
];

/**
 * The run history: a table of every run (Python's ``history`` trait), ticks that write ``compared``,
 * the overlay of the compared runs and the CSV download.
 * @param {object} model the widget model
 * @param {{now(name, value)}} sync how a tick writes to Python
 * @param {() => object} theme the current theme
 * @returns {{element: HTMLElement, draw(): void, watch(): Function, dispose(): void}}
 */
export function historyPanel(model, sync, theme) {
  const table = h("table", { class: "dvz-history-table", role: "history-table" });
  const exportCsv = h("button", { role: "export-csv", class: "dvz-button", title: "download the run history as CSV (the same text as widget.history_csv())", onclick: () => download() }, "export CSV");
  const note = h("span", { class: "dvz-muted dvz-small", role: "compare-note" });
  const plot = h("div", { class: "dvz-plot dvz-compare-plot", role: "compare-plot", hidden: true });
  const element = h(
    "details",
    { class: "dvz-history", role: "history", open: true },
    h("summary", { title: "every run of this widget (widget.runs): tick two or more to overlay their running LLCs" }, "run history"),
    h("div", { class: "dvz-history-bar" }, note, exportCsv),
    table,
    plot,
  );
  const state = () => {
    const history = decode(model.get("history")) || {};
    const rows = history.rows || [];
    return { history, rows, compared: (model.get("compared") || []).filter((i) => i < rows.length) };
  };

  function row(entry, compared) {
    const colour = compared.includes(entry.run) ? theme().chains[compared.indexOf(entry.run) % theme().chains.length] : null;
    const tick = h("input", {
      type: "checkbox", role: `compare-${entry.run}`, checked: compared.includes(entry.run), title: `overlay run ${entry.run} in the comparison plot`,
      onchange: () => sync.now("compared", tick.checked ? [...compared, entry.run] : compared.filter((i) => i !== entry.run)),
    });
    const healthy = entry.status.startsWith("healthy as far as checked") ? "unchecked" : entry.status.startsWith("healthy") ? "true" : entry.status.startsWith("undefined") ? "undefined" : "false";
    return h(
      "tr", { "data-run": entry.run },
      h("td", { style: colour ? `box-shadow: inset 4px 0 0 ${colour}` : undefined }, tick), h("td", {}, String(entry.run)), h("td", {}, entry.sampler ?? "–"),
      h("td", {}, fmt(entry.lr)), h("td", {}, fmt(entry.nbeta, 4)), h("td", {}, fmt(entry.localization)), h("td", {}, String(entry.chains)),
      h("td", {}, String(entry.draws)), h("td", {}, entry.burnin ?? "–"), h("td", {}, `${fmt(entry.llc_mean, 4)} ± ${fmt(entry.llc_se, 2)}`),
      h("td", { class: "dvz-verdict", "data-healthy": healthy, title: entry.verdict }, entry.status),
    );
  }

  function draw() {
    const { rows, compared } = state();
    element.hidden = rows.length === 0;
    exportCsv.disabled = rows.length === 0;
    note.textContent = rows.length < 2 ? "each run is kept here" : compared.length < 2 ? "tick two runs to compare them" : `comparing ${compared.length} runs`;
    table.replaceChildren(
      h("thead", {}, h("tr", {}, HEADERS.map(([name, hint]) => h("th", { title: hint || undefined }, name)))),
      h("tbody", {}, rows.map((entry) => row(entry, compared))),
    );
    drawCompare();
  }

  const drawCompare = coalesce(() => {
    const { history, rows, compared } = state();
    const shown = rows.length > 0 && compared.length >= 2;
    plot.hidden = !shown;
    if (!shown || plot.offsetWidth === 0) return;
    const { data, layout } = compareFigure(theme(), history, compared, COMPARE_HEIGHT, plot.offsetWidth);
    react(plot, data, layout);
  });

  function download() {
    const { history } = state();
    if (!history.csv) return;
    const link = h("a", { href: URL.createObjectURL(new Blob([history.csv], { type: "text/csv" })), download: "sampler-runs.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  return { element, draw, watch: () => watchSize(plot, drawCompare), dispose: () => purge(plot) };
}

/**
 * A box of the calibration grid (``grid_lrs`` or ``grid_values``): comma-separated numbers, checked
 * as Python checks them (lrs > 0; nβ > 0 or localization ≥ 0), then written with ``syncNow``.
 */
export function gridInput(model, name, role, syncNow) {
  const hint = name === "grid_lrs" ? "step sizes of the grid's columns, comma separated (> 0; a decade apart is enough)" : "the grid's rows: nβ values (> 0) or localizations (≥ 0), comma separated";
  const input = h("input", { type: "text", role, size: 22, title: hint });
  onCommit(input, () => {
    const values = parseNumbers(input.value);
    const ok = values !== null && values.every((v) => (name === "grid_lrs" || model.get("grid_axis") === "nbeta" ? v > 0 : v >= 0));
    input.classList.toggle("dvz-invalid", !ok);
    input.title = ok ? hint : "comma-separated numbers" + (name === "grid_lrs" ? " > 0" : "");
    if (ok) syncNow(name, values);
  });
  return input;
}

/** The calibration heatmap's key: what a cell, a cross, the ring and a blank cell mean, and how the row is chosen. */
export const GRID_KEY =
  "Each cell: its estimate; ✕ the verdict does not trust it (hover for why); n/a ✕ (grey): the cell ran but gave no finite estimate, its chains diverged (a smaller lr is needed); ring: the recommendation. Blank: not run (yet), or an lr the " +
  "refinement added in another row (each row is refined only around its own largest healthy lr). The recommendation " +
  "comes from the row with the most healthy cells, its largest lr of small bias. Rows estimate different localized " +
  "targets (nβ or γ changes the quantity), so compare colours along a row.";
