// RefinedLLCWidget view: a parameter tree with checkboxes (heads under attention modules), the live
// weight count and the tensors the ticks move, the selections Run sweeps (the ticks among them until
// kept), a multi-select of distributions, the sampler settings, Run/Stop, and the refined-LLC curves
// of every (selection × distribution) overlaid as they stream in.

import { decode } from "../codec.js";
import { settingControls } from "../controls.js";
import { h } from "../dom.js";
import { UNDEFINED_LABEL, UNHEALTHY_LABEL, estimate, undefinedMarker, unhealthyMarker } from "./conventions.js";
import { coalesce, purge, react, watchSize } from "../plot.js";
import { readTheme, themeLayout } from "../theme.js";
import { categorical, followTheme, legendRows, logTicks, mapArray, stepMapper, syncer } from "./linked.js";

const DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];
export function renderRefined({ model, el }) {
  const disposers = [];
  const isStatic = Boolean(model.get("_static"));
  const sync = syncer(model, 100);
  let theme = readTheme(el);
  const expanded = new Set(["m:"]);

  // ------------------------------------------------------------------ layout
  const statusBadge = h("span", { class: "dvz-status", role: "status" });
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });
  const tree = h("div", { class: "dvz-tree", role: "tree" });
  const count = h("div", { class: "dvz-small", role: "selection-count" });
  const preview = h("ul", { class: "dvz-chosen dvz-small", role: "selection-preview", title: "the tensors the ticked weights belong to: weights that move / weights of the tensor" });
  const nameInput = h("input", { type: "text", role: "selection-name", placeholder: "name of the ticked selection (optional)", style: "flex: 1 1 100%; box-sizing: border-box", title: "name of the ticked selection when it is added (default: the ticked nodes' names)" });
  const addButton = h("button", { role: "add-selection", class: "dvz-button", style: "white-space: nowrap", title: "keep the ticked weights as a named selection and clear the ticks, to tick the next one", onclick: () => model.send({ type: "add_selection", name: nameInput.value.trim() }) }, "+ add selection");
  const headsButton = h("button", { role: "add-heads", class: "dvz-button", style: "white-space: nowrap", title: "add one selection per attention head", onclick: () => model.send({ type: "add_heads" }) }, "each head");
  const chosen = h("ul", { class: "dvz-chosen", role: "selections" });
  const dists = h("div", { class: "dvz-dists", role: "distributions" });
  const controls = settingControls(model, { now: sync.now, later: sync.throttled });
  const settings = h("div", { class: "dvz-settings" }, controls.elements);
  // batch size decides the estimate as much as burn-in does: shown with the main settings, not folded
  const batchField = settings.querySelector("[data-dvz-role='batch-size']")?.closest(".dvz-field");
  if (batchField) settings.querySelector("[data-dvz-role='more-settings']")?.before(batchField);
  const moreSummary = settings.querySelector("[data-dvz-role='more-settings'] > summary");
  if (moreSummary) moreSummary.title = "more sampler settings, whose defaults suit most runs";
  const runButton = h("button", { role: "run", class: "dvz-button dvz-primary", style: "white-space: nowrap", title: "sweep every selection listed above (the ticks are added first) over the trajectory", onclick: () => model.send({ type: "run", name: nameInput.value.trim() }) }, "▶ Run");
  const stopButton = h("button", { role: "stop", class: "dvz-button", style: "white-space: nowrap", title: "stop the sweep; the estimates finished so far are kept (and stored)", onclick: () => model.send({ type: "stop" }) }, "■ Stop");
  const progress = h("span", { class: "dvz-muted dvz-small", role: "progress" });
  const normalize = h("input", { type: "checkbox", role: "normalize", title: "draw each curve divided by its largest positive estimate (a negative estimate is no LLC: it is marked on the step axis)" });
  const logX = h("input", { type: "checkbox", role: "log-x", title: "training steps on a log axis (step 0 at half the first step)" });
  const plot = h("div", { class: "dvz-plot", role: "curves-plot" });
  const note = h("div", { class: "dvz-legend-note", role: "curves-note" });

  const side = h(
    "div",
    { class: "dvz-refined-side" },
    h("div", { class: "dvz-section-title" }, "Weights"),
    tree,
    count,
    preview,
    h("div", { class: "dvz-buttons", style: "flex-wrap: wrap" }, nameInput, addButton, headsButton),
    h("div", { class: "dvz-section-title", title: "Run sweeps every selection of this list" }, "Selections to sweep"),
    h("div", { class: "dvz-muted dvz-small", role: "selections-hint" }, "Each selection is one curve. Run first adds the ticked weights as a selection, then clears the ticks, ready for the next one."),
    chosen,
    h("div", { class: "dvz-section-title" }, "Data"),
    dists,
    h("div", { class: "dvz-section-title" }, "Sampler"),
    settings,
    h("div", { class: "dvz-buttons" }, runButton, stopButton, progress),
  );
  const main = h(
    "div",
    { class: "dvz-main" },
    h("div", { class: "dvz-toolbar" }, h("label", { title: normalize.title }, normalize, " normalise each curve"), h("label", { title: logX.title }, logX, " log steps")),
    plot,
    note,
  );
  const root = h(
    "div",
    { class: "dvz-panelbox dvz-refined" },
    h("div", { class: "dvz-header" }, h("span", { class: "dvz-title" }, "Refined LLC"), statusBadge),
    errorBox,
    h("div", { class: "dvz-refined-body" }, side, main),
  );
  el.append(root);

  // ------------------------------------------------------------------ tree
  let nodes = [];
  let byId = new Map();
  let children = new Map();
  function loadTree() {
    nodes = decode(model.get("tree"))?.nodes || [];
    byId = new Map(nodes.map((n) => [n.id, n]));
    children = new Map();
    for (const n of nodes) {
      if (n.parent === null || n.parent === undefined) continue;
      if (!children.has(n.parent)) children.set(n.parent, []);
      children.get(n.parent).push(n);
    }
    headsButton.hidden = !nodes.some((n) => n.kind === "head");
  }
  const ancestors = (id) => {
    const out = [];
    for (let p = byId.get(id)?.parent; p !== null && p !== undefined; p = byId.get(p)?.parent) out.push(p);
    return out;
  };
  const checkedSet = () => new Set(model.get("checked"));
  const impliedBy = (id, set) => ancestors(id).find((a) => set.has(a));

  /** Toggle a node. Unchecking a node implied by a checked ancestor keeps its siblings checked. */
  function toggle(id) {
    const set = checkedSet();
    if (set.has(id)) set.delete(id);
    else {
      const owner = impliedBy(id, set);
      if (owner === undefined) {
        set.add(id);
        for (const d of nodes) if (ancestors(d.id).includes(id)) set.delete(d.id); // the module covers them
      } else {
        set.delete(owner);
        // walk from the checked ancestor down to the node, keeping every other branch
        const path = [id, ...ancestors(id)];
        for (let k = path.indexOf(owner); k > 0; k--) {
          const onPath = path[k - 1];
          const family = byId.get(onPath).kind === "head" ? (n) => n.kind === "head" : (n) => n.kind !== "head";
          for (const sibling of children.get(path[k]) || []) if (sibling.id !== onPath && family(sibling)) set.add(sibling.id);
        }
      }
    }
    sync.now("checked", nodes.map((n) => n.id).filter((nid) => set.has(nid)));
  }

  function drawTree() {
    const set = checkedSet();
    const rows = [];
    const busy = ["running", "stopping"].includes(model.get("status"));
    const visit = (node, depth) => {
      const kids = children.get(node.id) || [];
      const open = expanded.has(node.id);
      const explicit = set.has(node.id);
      const implied = !explicit && impliedBy(node.id, set) !== undefined;
      const box = h("input", { type: "checkbox", role: "tree-check", "data-node": node.id, disabled: busy || isStatic, title: `tick to move the ${node.numel.toLocaleString()} weights of ${node.kind === "head" ? "this head" : node.kind === "param" ? "this tensor" : "this module"}` });
      box.checked = explicit || implied;
      box.indeterminate = !box.checked && nodes.some((d) => set.has(d.id) && ancestors(d.id).includes(node.id));
      box.addEventListener("change", () => toggle(node.id));
      const toggleEl = h("span", { class: "dvz-tree-toggle", role: kids.length ? "tree-toggle" : undefined, "data-node": node.id, title: kids.length ? (open ? "fold" : "unfold") : undefined }, kids.length ? (open ? "▾" : "▸") : "");
      if (kids.length) {
        toggleEl.addEventListener("click", () => {
          if (open) expanded.delete(node.id);
          else expanded.add(node.id);
          drawTree();
        });
      }
      const shape = node.shape ? ` ${node.shape.join("×")}` : "";
      rows.push(
        h(
          "div",
          { class: `dvz-tree-row dvz-tree-kind-${node.kind}`, style: `padding-left:${depth * 14}px`, "data-node": node.id, title: node.type || node.kind },
          toggleEl,
          box,
          h("span", { class: "dvz-tree-label" }, node.label + shape),
          h("span", { class: "dvz-tree-count" }, node.numel.toLocaleString()),
        ),
      );
      if (open) for (const kid of kids) visit(kid, depth + 1);
    };
    for (const n of nodes) if (n.parent === null || n.parent === undefined) visit(n, 0);
    tree.replaceChildren(...rows);
  }

  function drawCount() {
    const c = decode(model.get("count")) || {};
    count.classList.toggle("dvz-error-text", Boolean(c.error));
    count.textContent = c.error ? c.error : `${(c.num_selected ?? 0).toLocaleString()} of ${(c.num_total ?? 0).toLocaleString()} weights ticked`;
    root.dataset.numSelected = String(c.num_selected ?? 0);
    addButton.disabled = isStatic || !model.get("checked").length;
    preview.replaceChildren(...tensorRows(c.tensors || []));
  }

  /** One line per tensor a selection moves: its name, shape and how many of its weights move. */
  function tensorRows(tensors) {
    return tensors.map((t) =>
      h("li", { "data-tensor": t.name }, h("span", { class: "dvz-tree-label" }, `${t.name} ${t.shape.join("×")}`), h("span", { class: "dvz-tree-count" }, t.selected === t.numel ? `all ${t.numel.toLocaleString()}` : `${t.selected.toLocaleString()} of ${t.numel.toLocaleString()}`)),
    );
  }

  /** What the ticks are called until named: their top nodes' names. */
  function tickedName() {
    const set = checkedSet();
    const top = [...set].filter((id) => impliedBy(id, set) === undefined).map((id) => (id === "m:" ? "all" : id.slice(2).replace(/:(\d+)$/, ".head$1")));
    return top.slice(0, 2).join(" + ") + (top.length > 2 ? ` + ${top.length - 2} more` : "");
  }

  /** The ticks are a selection not kept yet: Run adds it first. */
  function pendingTicks() {
    const ticked = model.get("checked");
    if (!ticked.length) return false;
    const key = [...ticked].sort().join("|");
    return !model.get("selections").some((s) => [...s.items].sort().join("|") === key);
  }

  // ------------------------------------------------------------------ selections, data, settings
  function drawSelections() {
    const curves = decode(model.get("curves")) || {};
    const names = curves.selections || [];
    const entries = model.get("selections");
    const busy = ["running", "stopping"].includes(model.get("status"));
    const previews = model.get("previews") || {};
    chosen.replaceChildren(
      ...entries.map((s) => {
        const k = names.indexOf(s.name);
        const shown = previews[s.name];
        const tensors = (shown?.tensors || []).map((t) => `${t.name} ${t.shape.join("×")}: ${t.selected.toLocaleString()} of ${t.numel.toLocaleString()}`);
        const remove = h("button", { class: "dvz-button", role: "remove-selection", title: `remove ${s.name} from the selections Run sweeps`, disabled: busy || isStatic, onclick: () => model.send({ type: "remove_selection", name: s.name }) }, "×");
        return h(
          "li",
          { "data-selection": s.name, title: tensors.join("\n") },
          h("span", { class: "dvz-swatch", style: `background:${categorical(theme, k >= 0 ? k : entries.indexOf(s))}` }),
          h("span", {}, s.name),
          h("span", { class: "dvz-muted dvz-small" }, shown ? `${shown.num_selected.toLocaleString()} w in ${shown.tensors.length} tensor${shown.tensors.length === 1 ? "" : "s"}` : ""),
          remove,
        );
      }),
    );
    const pending = pendingTicks();
    if (pending) {
      const c = decode(model.get("count")) || {};
      const name = nameInput.value.trim() || tickedName();
      chosen.append(h("li", { role: "pending-selection", style: "font-style: italic", title: "the ticks: Run adds them as a selection first (or press + add selection)" }, h("span", { class: "dvz-swatch", style: `border:1px dashed ${theme.font}` }), h("span", {}, `${name} — ticked, added on Run`), h("span", { class: "dvz-muted dvz-small" }, `${(c.num_selected ?? 0).toLocaleString()} w`)));
    }
    if (!entries.length && !pending) chosen.append(h("li", { class: "dvz-muted dvz-small" }, "none yet: tick weights, modules or heads above"));
    const total = entries.length + (pending ? 1 : 0);
    runButton.textContent = total ? `▶ Run ${total} selection${total === 1 ? "" : "s"}` : "▶ Run";
    root.dataset.runs = String(total);
  }

  function drawDistributions() {
    const active = new Set(model.get("chosen_distributions"));
    const busy = ["running", "stopping"].includes(model.get("status"));
    dists.replaceChildren(
      ...model.get("available").map((name) => {
        const box = h("input", { type: "checkbox", role: "distribution", "data-name": name, disabled: busy || isStatic });
        box.checked = active.has(name);
        box.addEventListener("change", () => {
          const next = model.get("available").filter((d) => (d === name ? box.checked : active.has(d)));
          sync.now("chosen_distributions", next);
        });
        box.title = `estimate on the data distribution "${name}"`;
        return h("label", { title: box.title }, box, ` ${name}`);
      }),
    );
  }

  function drawSettings() {
    controls.update();
    normalize.checked = model.get("normalize");
    logX.checked = model.get("log_x");
  }

  function updateStatus() {
    const status = model.get("status");
    const busy = status === "running" || status === "stopping";
    const curves = decode(model.get("curves")) || {};
    runButton.disabled = busy || isStatic || (!model.get("selections").length && !model.get("checked").length);
    controls.disable(busy || isStatic);
    stopButton.disabled = !busy || status === "stopping";
    headsButton.disabled = busy || isStatic;
    statusBadge.textContent = busy ? `${status} · ${curves.done ?? 0}/${curves.total ?? "?"} estimates` : { idle: "ready" }[status] ?? status;
    statusBadge.dataset.status = status;
    root.dataset.status = status;
    progress.textContent = curves.total ? `${curves.done}/${curves.total} estimates` : "";
    const error = model.get("error");
    errorBox.hidden = !error;
    errorBox.textContent = error ? `⚠ ${error}` : "";
  }

  // ------------------------------------------------------------------ curves
  const drawCurves = coalesce(() => {
    const c = decode(model.get("curves")) || {};
    if (plot.offsetWidth === 0) return;
    if (!c.mean || !c.selections?.length) {
      purge(plot);
      plot.replaceChildren(h("div", { class: "dvz-muted dvz-empty" }, "Tick weights, modules or heads in the tree, choose data, press Run."));
      root.dataset.dvzCurves = "0";
      return;
    }
    plot.querySelector(".dvz-empty")?.remove();
    const [S, D, N] = c.mean.shape;
    const steps = c.steps.data;
    const xmap = stepMapper(steps, model.get("log_x"));
    const x = mapArray(steps, xmap);
    const norm = model.get("normalize");
    const traces = [];
    const bad = { x: [], y: [], text: [] };
    let drawn = 0;
    let points = 0;
    const axis = { unhealthy: { x: [], text: [] }, undefined: { x: [], text: [] } };
    for (let i = 0; i < S; i++) {
      for (let j = 0; j < D; j++) {
        const base = (i * D + j) * N;
        const mean = c.mean.data.subarray(base, base + N);
        const se = c.se.data.subarray(base, base + N);
        const verdict = c.healthy.data.subarray(base, base + N);
        // a negative estimate is no LLC: never a point of the normalised curve, always marked unhealthy
        let scale = 1;
        if (norm) {
          let m = 0;
          for (let t = 0; t < N; t++) if (verdict[t] !== -1 && mean[t] > 0) m = Math.max(m, mean[t]);
          scale = m > 0 ? 1 / m : NaN;
        }
        const y = Float32Array.from(mean, (v, t) => (verdict[t] === -1 || (norm && !(v > 0)) ? NaN : v * scale));
        const finite = y.filter(Number.isFinite).length;
        points += finite;
        if (finite) drawn += 1;
        const name = D > 1 ? `${c.selections[i]} · ${c.distributions[j]}` : c.selections[i];
        const color = categorical(theme, i);
        traces.push({
          type: "scatter",
          mode: "lines+markers",
          x,
          y,
          name,
          customdata: Array.from(steps, (s, t) => [s, estimate(mean[t], se[t])]),
          connectgaps: false,
          line: { color, width: 1.8, dash: DASHES[j % DASHES.length] },
          marker: { size: 5, color },
          error_y: { type: "data", array: Float32Array.from(se, (v) => v * (norm ? scale : 1)), visible: true, color, thickness: 1, width: 2 },
          hovertemplate: `${name}<br>step %{customdata[0]}<br>LLC %{customdata[1]} (± SE)<extra></extra>`,
        });
        for (let t = 0; t < N; t++) {
          const negative = verdict[t] !== -1 && mean[t] <= 0;
          if (verdict[t] === -1) {
            axis.undefined.x.push(x[t]);
            axis.undefined.text.push(`${name}, step ${steps[t]}: no LLC (w* is not a local minimum)`);
          } else if (verdict[t] === 0 || negative) {
            const text = `${name}, step ${steps[t]}: ${negative ? `negative estimate ${estimate(mean[t], se[t])}: no LLC` : "unhealthy estimate"}`;
            if (Number.isFinite(y[t])) {
              bad.x.push(x[t]);
              bad.y.push(y[t]);
              bad.text.push(text);
            } else {
              axis.unhealthy.x.push(x[t]);
              axis.unhealthy.text.push(text);
            }
          }
        }
      }
    }
    const axisRow = (marks, marker, name) => ({ type: "scatter", mode: "markers", x: marks.x, y: marks.x.map(() => 0.04), yaxis: "y2", text: marks.text, name, marker, cliponaxis: false, showlegend: marks.x.length > 0, hovertemplate: "%{text}<extra></extra>" });
    traces.push({ type: "scatter", mode: "markers", x: bad.x, y: bad.y, text: bad.text, name: UNHEALTHY_LABEL, showlegend: bad.x.length > 0, marker: unhealthyMarker(theme), hovertemplate: "%{text}<extra></extra>" });
    traces.push(axisRow(axis.unhealthy, unhealthyMarker(theme), `${UNHEALTHY_LABEL} (${norm ? "negative or not finite: not normalised" : "not finite"})`));
    traces.push(axisRow(axis.undefined, undefinedMarker(theme), UNDEFINED_LABEL));
    const tl = themeLayout(theme);
    // the legend sits below the plot, and the figure grows by its rows: every curve's name is read, none cut off
    const rows = legendRows(traces.filter((t) => t.showlegend !== false).map((t) => t.name), (plot.offsetWidth || 800) - 74, theme.fontFamily);
    react(plot, traces, {
      ...tl,
      height: 400 + 20 * rows,
      margin: { l: 62, r: 12, t: 12, b: 64 + 20 * rows },
      legend: { ...tl.legend, orientation: "h", x: 0, xanchor: "left", y: 0, yref: "container", yanchor: "bottom" },
      hovermode: "closest",
      xaxis: { ...tl.xaxis, type: model.get("log_x") ? "log" : "linear", ...(model.get("log_x") ? logTicks(x) : {}), title: { text: "training step" } },
      yaxis: { ...tl.yaxis, title: { text: norm ? "LLC ÷ curve's largest" : "refined LLC" }, automargin: true },
      yaxis2: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true },
      uirevision: "curves",
    });
    const unhealthyCount = bad.x.length + axis.unhealthy.x.length;
    root.dataset.dvzCurves = String(drawn);
    root.dataset.dvzPoints = String(points);
    root.dataset.dvzUnhealthy = String(unhealthyCount);
    root.dataset.dvzUndefined = String(axis.undefined.x.length);
    root.dataset.dvzEstimates = String(c.healthy.data.filter((v) => !Number.isNaN(v)).length); // drawn or marked
    note.textContent =
      `${S} selection(s) × ${D} distribution(s). Error bars: ± one standard error (SE) of each estimate. ` +
      `${UNHEALTHY_LABEL}; ${UNDEFINED_LABEL}. A negative estimate is never an LLC: it is a grey tick when its verdict is undefined, else a ✕` +
      `${norm ? " on the step axis, and it is left out of the normalisation" : ""}. ` +
      "Each estimate is kept in w.results[(selection, distribution, checkpoint index)]: see its diagnostics with SamplerWidget.from_result(w.results[...]).";
  });

  // ------------------------------------------------------------------ wiring
  // Enter commits a typed value (a setting, the name): JupyterLab must not take the key for the notebook
  const commitOnEnter = (event) => {
    if (!event.target.matches?.("input[type=text], input[type=number]")) return;
    event.stopPropagation();
    if (event.key === "Enter") event.target.dispatchEvent(new Event("change", { bubbles: true }));
  };
  root.addEventListener("keydown", commitOnEnter);
  disposers.push(() => root.removeEventListener("keydown", commitOnEnter));
  normalize.addEventListener("change", () => sync.now("normalize", normalize.checked));
  logX.addEventListener("change", () => sync.now("log_x", logX.checked));
  const on = (names, fn) => {
    for (const name of names.split(" ")) model.on(`change:${name}`, fn);
    disposers.push(() => names.split(" ").forEach((name) => model.off(`change:${name}`, fn)));
  };
  on("tree", () => {
    loadTree();
    drawTree();
  });
  on("checked status", drawTree);
  on("count checked", drawCount);
  on("previews checked count curves status", drawSelections);
  let keptCount = model.get("selections").length;
  on("selections", () => {
    // a selection was kept: the name box is ready for the next one
    if (model.get("selections").length > keptCount) nameInput.value = "";
    keptCount = model.get("selections").length;
    drawSelections();
  });
  nameInput.addEventListener("input", drawSelections);
  on("available chosen_distributions status", drawDistributions);
  on([...controls.names, "normalize", "log_x"].join(" "), drawSettings);
  on("status error curves selections checked", updateStatus);
  on("curves normalize log_x", drawCurves);
  const redrawThemed = () => {
    drawCurves();
    drawSelections();
  };
  disposers.push(followTheme(el, root, root, theme, (next) => (theme = next), redrawThemed), watchSize(plot, drawCurves));

  loadTree();
  for (const n of nodes) if (n.kind === "module" && (n.parent === "m:" || n.parent === null)) expanded.add(n.id);
  drawTree();
  drawCount();
  drawSelections();
  drawDistributions();
  drawSettings();
  updateStatus();
  drawCurves();
  root.dataset.dvzReady = "1";
  return () => {
    sync.flush();
    disposers.forEach((dispose) => dispose());
    purge(plot);
  };
}
