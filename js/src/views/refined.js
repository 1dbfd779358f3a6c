// RefinedLLCWidget view: a parameter tree with checkboxes (heads under attention modules), the live
// weight count, named selections, a multi-select of distributions, Run/Stop, and the refined-LLC
// curves of every (selection × distribution) overlaid as they stream in.

import { decode } from "../codec.js";
import { settingControls } from "../controls.js";
import { h } from "../dom.js";
import { coalesce, purge, react, watchSize } from "../plot.js";
import { readTheme, themeLayout } from "../theme.js";
import { categorical, followTheme, mapArray, stepMapper, syncer } from "./linked.js";

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
  const nameInput = h("input", { type: "text", role: "selection-name", placeholder: "name (optional)", size: 14 });
  const addButton = h("button", { role: "add-selection", class: "dvz-button", onclick: () => model.send({ type: "add_selection", name: nameInput.value.trim() }) }, "+ add selection");
  const headsButton = h("button", { role: "add-heads", class: "dvz-button", title: "one selection per attention head", onclick: () => model.send({ type: "add_heads" }) }, "each head");
  const chosen = h("ul", { class: "dvz-chosen", role: "selections" });
  const dists = h("div", { class: "dvz-dists", role: "distributions" });
  const controls = settingControls(model, { now: sync.now, later: sync.throttled });
  const settings = h("div", { class: "dvz-settings" }, controls.elements);
  const runButton = h("button", { role: "run", class: "dvz-button dvz-primary", onclick: () => model.send({ type: "run" }) }, "▶ Run");
  const stopButton = h("button", { role: "stop", class: "dvz-button", onclick: () => model.send({ type: "stop" }) }, "■ Stop");
  const progress = h("span", { class: "dvz-muted dvz-small", role: "progress" });
  const normalize = h("input", { type: "checkbox", role: "normalize" });
  const logX = h("input", { type: "checkbox", role: "log-x" });
  const plot = h("div", { class: "dvz-plot", role: "curves-plot" });
  const note = h("div", { class: "dvz-legend-note", role: "curves-note" });

  const side = h(
    "div",
    { class: "dvz-refined-side" },
    h("div", { class: "dvz-section-title" }, "Weights"),
    tree,
    count,
    h("div", { class: "dvz-buttons" }, nameInput, addButton, headsButton),
    h("div", { class: "dvz-section-title" }, "Selections"),
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
    h("div", { class: "dvz-toolbar" }, h("label", {}, normalize, " normalise each curve"), h("label", {}, logX, " log steps")),
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
      const box = h("input", { type: "checkbox", role: "tree-check", "data-node": node.id, disabled: busy || isStatic });
      box.checked = explicit || implied;
      box.indeterminate = !box.checked && nodes.some((d) => set.has(d.id) && ancestors(d.id).includes(node.id));
      box.addEventListener("change", () => toggle(node.id));
      const toggleEl = h("span", { class: "dvz-tree-toggle", role: kids.length ? "tree-toggle" : undefined, "data-node": node.id }, kids.length ? (open ? "▾" : "▸") : "");
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
    count.textContent = c.error ? c.error : `${(c.num_selected ?? 0).toLocaleString()} of ${(c.num_total ?? 0).toLocaleString()} weights checked`;
    root.dataset.numSelected = String(c.num_selected ?? 0);
    addButton.disabled = isStatic || !model.get("checked").length;
  }

  // ------------------------------------------------------------------ selections, data, settings
  function drawSelections() {
    const curves = decode(model.get("curves")) || {};
    const names = curves.selections || [];
    const entries = model.get("selections");
    const busy = ["running", "stopping"].includes(model.get("status"));
    chosen.replaceChildren(
      ...entries.map((s) => {
        const k = names.indexOf(s.name);
        const weights = k >= 0 ? curves.counts?.[k] : undefined;
        const remove = h("button", { class: "dvz-button", role: "remove-selection", title: "remove", disabled: busy || isStatic, onclick: () => model.send({ type: "remove_selection", name: s.name }) }, "×");
        return h("li", { "data-selection": s.name }, h("span", { class: "dvz-swatch", style: `background:${categorical(theme, Math.max(0, k))}` }), h("span", {}, s.name), h("span", { class: "dvz-muted dvz-small" }, weights ? `${weights.toLocaleString()} w` : ""), remove);
      }),
    );
    if (!entries.length) chosen.append(h("li", { class: "dvz-muted dvz-small" }, "none yet: check weights, then add a selection (Run adds the checked ones)"));
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
        return h("label", {}, box, ` ${name}`);
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
    runButton.disabled = busy || isStatic;
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
      plot.replaceChildren(h("div", { class: "dvz-muted dvz-empty" }, "Check weights in the tree, choose data, press Run."));
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
    for (let i = 0; i < S; i++) {
      for (let j = 0; j < D; j++) {
        const base = (i * D + j) * N;
        const mean = c.mean.data.subarray(base, base + N);
        const std = c.std.data.subarray(base, base + N);
        let scale = 1;
        if (norm) {
          let m = 0;
          for (const v of mean) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
          scale = m > 0 ? 1 / m : 1;
        }
        const y = Float32Array.from(mean, (v) => v * scale);
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
          customdata: Array.from(steps, (s, t) => [s, mean[t], std[t]]),
          connectgaps: false,
          line: { color, width: 1.8, dash: DASHES[j % DASHES.length] },
          marker: { size: 5, color },
          error_y: norm ? undefined : { type: "data", array: std, visible: true, color, thickness: 1, width: 2 },
          hovertemplate: `${name}<br>step %{customdata[0]}<br>LLC %{customdata[1]:.4g} ± %{customdata[2]:.2g}<extra></extra>`,
        });
        for (let t = 0; t < N; t++) {
          if (c.healthy.data[base + t] === 0 && Number.isFinite(y[t])) {
            bad.x.push(x[t]);
            bad.y.push(y[t]);
            bad.text.push(`${name}, step ${steps[t]}: unhealthy estimate`);
          }
        }
      }
    }
    traces.push({ type: "scatter", mode: "markers", x: bad.x, y: bad.y, text: bad.text, name: "unhealthy", marker: { symbol: "x-thin", size: 11, line: { width: 2.5, color: theme.error }, color: theme.error }, hovertemplate: "%{text}<extra></extra>" });
    const tl = themeLayout(theme);
    react(plot, traces, {
      ...tl,
      height: 440,
      margin: { l: 62, r: 12, t: 30, b: 44 },
      legend: { ...tl.legend, orientation: "h", x: 0, y: 1, yanchor: "bottom" },
      hovermode: "closest",
      xaxis: { ...tl.xaxis, type: model.get("log_x") ? "log" : "linear", title: { text: "training step" } },
      yaxis: { ...tl.yaxis, title: { text: norm ? "LLC / max |LLC| of the curve" : "refined LLC" } },
      uirevision: "curves",
    });
    root.dataset.dvzCurves = String(drawn);
    root.dataset.dvzPoints = String(points);
    root.dataset.dvzUnhealthy = String(bad.x.length);
    note.textContent = `${S} selection(s) × ${D} distribution(s); × marks an unhealthy estimate (see its diagnostics with SamplerWidget.from_result).`;
  });

  // ------------------------------------------------------------------ wiring
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
  on("selections curves status", drawSelections);
  on("available chosen_distributions status", drawDistributions);
  on([...controls.names, "normalize", "log_x"].join(" "), drawSettings);
  on("status error curves", updateStatus);
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
