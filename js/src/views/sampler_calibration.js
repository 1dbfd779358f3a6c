// The SamplerWidget's calibrate tab below its controls: the grid's progress, the heatmap and its key, the recommendation, the picked cell's panel.

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { coalesce, purge, react } from "../plot.js";
import { estimate, stepBias } from "./conventions.js";
import { traceFigure } from "./sampler_figures.js";
import { axisFormat, calibrationFigure } from "./sampler_grid.js";
import { GRID_KEY } from "./sampler_panels.js";

const PROGRESS_HINT = "the cells of the grid you set (step sizes × values), then the cells calibrate's refinement adds: lrs between the grid's, around each row's healthy region";

/** The grid's progress: the cells of the grid as set (a fixed count), then the refinement's cells, counted apart. */
export function gridProgressText(cal) {
  const grid = cal.grid_cells ?? cal.total ?? 0;
  const done = cal.done ?? 0;
  return done <= grid ? `${done} of ${grid} grid cells done` : `${grid} grid cells + ${done - grid} refinement cells done`;
}

/** "B burn-in steps and D draws" of a run. */
const runLength = (burnin, draws) => `${burnin} burn-in steps and ${draws} draws`;

/** What the confirmation of a recommendation says: whether a fresh full run at its settings agreed with the grid, and what that means. */
export function confirmationText(rec, axisName) {
  const at = `a fresh-seed run at the recommended settings (${runLength(rec.num_burnin_steps, rec.num_draws)})`;
  if (rec.confirmed) {
    return `✓ confirmed: ${at} gave λ̂ = ${estimate(rec.confirmed_llc, rec.confirmed_se)}, agreeing with the grid within its errors — the setting reproduces, it is not one lucky seed`;
  }
  if (Number.isFinite(rec.confirmed_llc)) {
    return `⚠ not confirmed: ${at} gave λ̂ = ${estimate(rec.confirmed_llc, rec.confirmed_se)}, too imprecise to tell whether it agrees with the grid — sample more draws before relying on this lr and ${axisName}`;
  }
  return `⚠ not confirmed: no fresh run checked this grid cell (calibrate ran with confirm=False) — one seed's estimate only`;
}

/** Where a grid cell's step bias is shown beside its confirming run's: the two runs' lengths, and which to trust. */
export function lengthsNote(cellBurnin, cellDraws, run) {
  if (cellBurnin === run.num_burnin_steps && cellDraws === run.num_draws) return `the grid cell and the confirming run have the same length (${runLength(cellBurnin, cellDraws)})`;
  return `the grid cell ran shorter (${runLength(cellBurnin, cellDraws)}) than the confirming run (${runLength(run.num_burnin_steps, run.num_draws)}): its step bias and SE are noisier; the confirming run's are the ones to quote`;
}

/**
 * The calibrate tab's panels, drawn from Python's ``calibration`` trait.
 * @param {object} model the widget model
 * @param {{send(message), syncNow(name, value), isStatic: boolean, theme(): object}} options
 * @returns {{progress: HTMLElement, elements: HTMLElement[], draw(): void, updateRecommendation(): void, plots: HTMLElement[], select(cell): void}}
 */
export function calibrationPanel(model, { send, syncNow, isStatic, theme }) {
  const progress = h("span", { class: "dvz-muted", role: "grid-progress", title: PROGRESS_HINT });
  const heatmap = h("div", { class: "dvz-plot dvz-heatmap", role: "heatmap" });
  const cellInfo = h("div", { class: "dvz-cell-info", role: "cell-info" }, "Pick a cell of the grid to see its chains.");
  const cellPlot = h("div", { class: "dvz-plot dvz-cell-plot", role: "cell-plot" });
  const useCell = h("button", { role: "use-cell", class: "dvz-button", disabled: true, title: "copy this cell's step size, nβ (or localization) and burn-in into the controls" }, "use these");
  const recommended = h("div", { class: "dvz-recommended", role: "recommended" });
  const useRecommended = h("button", { role: "use-recommended", class: "dvz-button", hidden: true, title: "copy the recommended step size, nβ (or localization), burn-in and draws into the controls", onclick: () => send({ type: "use_recommended" }) }, "use recommended");
  const elements = [
    heatmap,
    h("div", { class: "dvz-muted dvz-small", role: "grid-key" }, GRID_KEY),
    h("div", { class: "dvz-rec-row" }, recommended, useRecommended),
    h("div", { class: "dvz-cell" }, h("div", { class: "dvz-cell-side" }, cellInfo, useCell), cellPlot),
  ];
  let selected = null; // [i, j] shown in the cell panel

  const draw = coalesce(() => {
    const cal = decode(model.get("calibration")) || {};
    if (model.get("tab") !== "calibrate" || heatmap.offsetWidth === 0) return;
    if (!cal.llc_mean) {
      progress.textContent = "no grid yet";
      purge(heatmap);
      heatmap.replaceChildren(h("div", { class: "dvz-muted dvz-empty" }, "Set the step sizes and values, then press Calibrate."));
      return;
    }
    heatmap.querySelector(".dvz-empty")?.remove();
    progress.textContent = gridProgressText(cal);
    const { data, layout } = calibrationFigure(theme(), cal, selected);
    react(heatmap, data, layout);
    if (!heatmap.dataset.clickBound) {
      heatmap.dataset.clickBound = "1";
      heatmap.on("plotly_click", (event) => {
        const point = event.points?.[0];
        if (!point) return;
        const [i, j] = point.data.type === "heatmap" ? [point.y, point.x] : point.customdata;
        selected = [i, j];
        syncNow("selected_cell", [i, j]);
        draw();
      });
    }
    drawCell(cal);
  });

  function updateRecommendation() { // on status too: the grid's last cell may arrive before "done"
    const cal = decode(model.get("calibration")) || {};
    const rec = cal.recommended; // the ring on the heatmap marks this cell
    const none = !rec && cal.llc_mean && model.get("status") === "done" && model.get("activity") === "calibrate";
    const why = cal.recommendation_reasons?.length ? cal.recommendation_reasons.join("; ") : "no healthy cell: widen the grid";
    recommended.dataset.state = rec ? "recommended" : none ? "none" : "";
    recommended.dataset.confirmed = rec ? String(Boolean(rec.confirmed)) : "";
    useRecommended.hidden = !rec || isStatic;
    if (!rec) {
      recommended.replaceChildren(none ? `⚠ no recommendation: ${why}` : "");
      return;
    }
    const axisName = cal.axis === "nbeta" ? "nβ" : "localization";
    const lrText = axisFormat(cal.lrs?.data ?? [rec.lr]);
    const cell = recommendedCell(cal);
    const run = cal.confirmation;
    recommended.replaceChildren(
      h("div", { class: "dvz-rec-title" }, `recommended: lr ${lrText(rec.lr)}, ${axisName} ${fmt(rec[cal.axis])}, burn-in ${rec.num_burnin_steps}, draws ${rec.num_draws}`),
      h("div", { class: "dvz-rec-confirmed", role: "confirmation" }, confirmationText(rec, axisName)),
      ...(cell && run ? [h("div", { class: "dvz-small", role: "rec-lengths" }, lengthsNote(cal.burnin[cell[0]][cell[1]], cal.draws?.[cell[0]]?.[cell[1]], run))] : []),
      h("ul", { class: "dvz-rec-reasons dvz-small" }, (rec.reasons || []).map((r) => h("li", {}, r))),
    );
  }

  /** [i, j] of the recommended cell in the grid (null when it is not one of the grid's). */
  function recommendedCell(cal) {
    const rec = cal.recommended;
    if (!rec || !cal.lrs) return null;
    const j = Array.from(cal.lrs.data).findIndex((v) => Math.abs(v - rec.lr) <= 1e-6 * Math.abs(v));
    const i = Array.from(cal.values.data).findIndex((v) => Math.abs(v - rec[cal.axis]) <= 1e-6 * Math.abs(v) + 1e-12);
    return i >= 0 && j >= 0 ? [i, j] : null;
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
    const llc = cal.llc_mean.get(i, j);
    const bias = cal.step_bias ? stepBias(cal.step_bias.get(i, j), cal.step_bias_se.get(i, j), llc) : null;
    const rec = recommendedCell(cal);
    const run = rec && rec[0] === i && rec[1] === j ? cal.confirmation : null; // the recommended cell: its confirming run beside it
    const burnin = cal.burnin?.[i]?.[j];
    const draws = cal.draws?.[i]?.[j];
    cellInfo.replaceChildren(
      h("div", { class: "dvz-cell-title" }, `lr ${axisFormat(cal.lrs.data)(cal.lrs.data[j])} · ${axisName} ${axisFormat(cal.values.data)(cal.values.data[i])}`),
      h("div", {}, `LLC ${estimate(llc, cal.llc_se.get(i, j))} (± SE)`),
      ...(bias && !Number.isNaN(healthy) ? [h("div", { role: "cell-bias" }, `step bias ${bias}` + (draws ? ` (${runLength(burnin, draws)})` : ""))] : []),
      ...(run ? [
        h("div", { role: "confirm-bias" }, `confirming run: LLC ${estimate(run.llc, run.llc_se)}, step bias ${stepBias(run.step_bias, run.step_bias_se, run.llc)}`),
        h("div", { class: "dvz-muted dvz-small", role: "cell-lengths" }, lengthsNote(burnin, draws, run)),
      ] : []),
      h("div", { class: "dvz-verdict", "data-healthy": Number.isNaN(healthy) ? "" : String(healthy === 1) }, Number.isNaN(healthy) ? "pending" : healthy === 1 ? "healthy" : "unhealthy"),
      h("ul", { class: "dvz-reasons" }, cellReasons.map((r) => h("li", {}, r))),
    );
    useCell.disabled = isStatic || Number.isNaN(healthy);
    useCell.onclick = () => send({ type: "use_cell", i, j });
    if (Number.isNaN(healthy) || cellPlot.offsetWidth === 0) return;
    // this cell's chains (every cell_stride-th draw), trimmed to the draws it has (partial cells are NaN-padded)
    const [, , chains, points] = cal.loss.shape;
    const block = cal.loss.at(i, j);
    let n = 0;
    for (let t = 0; t < points; t++) for (let c = 0; c < chains; c++) if (!Number.isNaN(block.data[c * points + t])) n = t + 1;
    const trim = (cells) => {
      const source = cells.at(i, j).data;
      const out = new Float32Array(chains * n);
      for (let c = 0; c < chains; c++) out.set(source.subarray(c * points, c * points + n), c * n);
      return { shape: [chains, n], at: (c) => ({ data: out.subarray(c * n, (c + 1) * n) }) };
    };
    const { data, layout } = traceFigure(theme(), trim(cal.loss), trim(cal.llc), cal.init_loss.get(i, j), null, 300, cellPlot.offsetWidth, 0, { stride: cal.cell_stride || 1 });
    layout.showlegend = false;
    layout.margin.t = 8;
    react(cellPlot, data, layout);
  }

  function select(cell) {
    selected = cell && cell.length === 2 ? cell : null;
    draw();
  }

  return { progress, elements, draw, updateRecommendation, select, plots: [heatmap, cellPlot] };
}
