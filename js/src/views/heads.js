// HeadClusterWidget view: small multiples, dendrogram-ordered heatmap, embedding, scores table, an
// overview of every head's attention pattern and a detail panel (curve, scores, attention pattern),
// all linked by one selected head. Clusters are numbered as HeadClustering.labels_ (from 0) and
// coloured by the palette index Python keeps stable across reclusterings.

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { coalesce, purge, react, watchSize } from "../plot.js";
import { readTheme, themeLayout } from "../theme.js";
import { attentionHover, blockTicks, dendrogramTraces, lineSample, overviewFigure, patternOf, placeLabels, sharedRange } from "./heads_figures.js";
import { definedCurve, spreadPoints, svgElement, textWidth, tokenTicks, verdictBadges, verdictTraces } from "./heads_figures.js";
import { categorical, followTheme, logTicks, onPlot, syncer } from "./linked.js";

const SVG = "http://www.w3.org/2000/svg";
const DASHES = ["", "4 2", "1 2", "6 2 1 2"]; // distribution j's line in the small multiples
const SCALED = { max: "rLLC ÷ max", zscore: "rLLC z-score", none: "refined LLC" };

export function renderHeads({ model, el }) {
  const disposers = [];
  const isStatic = Boolean(model.get("_static"));
  const sync = syncer(model, 0);
  let theme = readTheme(el);
  let data = {};
  let clusters = {};
  let selected = model.get("selected_head");

  // ------------------------------------------------------------------ layout
  const kSelect = h("select", { role: "n-clusters", title: "number of clusters (auto: the one with the best silhouette score: from −1 to 1, how much closer each head is to its own cluster than to the next one; near 1 well separated, near 0 overlapping); changing it reclusters in Python" });
  const distSelect = h("select", { role: "distribution", title: "cluster on the signatures under this data distribution" });
  const normSelect = h(
    "select",
    { role: "normalize", title: "how each head's curves are scaled before clustering" },
    h("option", { value: "max" }, "÷ max"),
    h("option", { value: "zscore" }, "z-score"),
    h("option", { value: "none" }, "raw rLLC"),
  );
  const info = h("span", { class: "dvz-muted dvz-small", role: "cluster-info" });
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });
  const multiplesKey = h("div", { class: "dvz-small dvz-muted", role: "multiples-key", style: "display:flex; flex-wrap:wrap; gap:2px 12px; margin-bottom:4px" });
  const multiples = h("div", { class: "dvz-multiples", role: "multiples" });
  const heatmap = h("div", { class: "dvz-plot", role: "heatmap" });
  const embedding = h("div", { class: "dvz-plot", role: "embedding" });
  const embeddingNote = h("div", { class: "dvz-legend-note", role: "embedding-note" });
  const scores = h("table", { class: "dvz-scores", role: "scores" });
  const detailTitle = h("div", { class: "dvz-section-title", role: "detail-title" });
  const detailScores = h("div", { class: "dvz-small", role: "detail-scores" });
  const curvePlot = h("div", { class: "dvz-plot", role: "head-curve" });
  const attentionPlot = h("div", { class: "dvz-plot", role: "attention" });
  const detailGrid = h("div", { class: "dvz-detail-grid" }, curvePlot, attentionPlot);
  const overview = h("div", { class: "dvz-plot", role: "attention-overview" });
  const overviewBox = h("div", { role: "overview" }, h("div", { class: "dvz-section-title" }, "Attention of every head on the probe"), overview);
  const detail = h("div", { class: "dvz-detail", role: "detail" }, detailTitle, detailScores, detailGrid);
  const root = h(
    "div",
    { class: "dvz-panelbox dvz-heads" },
    h("div", { class: "dvz-header", style: "flex-wrap: wrap" }, h("span", { class: "dvz-title" }, "Attention heads"), h("label", { title: kSelect.title }, "clusters ", kSelect), h("label", { title: distSelect.title }, "data ", distSelect), h("label", { title: normSelect.title }, "curves ", normSelect), info),
    errorBox,
    h(
      "div",
      { class: "dvz-heads-grid", role: "heads-grid" },
      h("div", { class: "dvz-dash-col" }, h("div", { class: "dvz-section-title" }, "Signatures (dendrogram order)"), multiplesKey, multiples, heatmap),
      h("div", { class: "dvz-dash-col" }, h("div", { class: "dvz-section-title" }, "Embedding"), embedding, embeddingNote, h("div", { class: "dvz-section-title" }, "Behaviour"), scores),
    ),
    detail,
    overviewBox,
  );
  el.append(root);

  // ------------------------------------------------------------------ helpers
  const heads = () => data.heads || [];
  const H = () => heads().length;
  const labelOf = (i) => (clusters.labels ? clusters.labels.data[i] : 0);
  const colorOf = (i) => categorical(theme, clusters.colors ? clusters.colors.data[labelOf(i)] : labelOf(i));
  const order = () => (clusters.order ? Array.from(clusters.order.data) : heads().map((_, i) => i));
  const distIndex = () => {
    const d = model.get("distribution");
    return d === "all" ? null : data.distributions.indexOf(d);
  };
  const shortName = (name) => name.replace(/^blocks\.(\d+)\.attn\.head(\d+)$/, "L$1H$2");

  function select(name) {
    if (!name || name === selected) return;
    selected = name;
    sync.now("selected_head", name);
    showSelection();
  }

  // ------------------------------------------------------------------ small multiples (SVG sparklines)
  function drawMultiplesKey(range) {
    const steps = data.steps.data;
    const shown = distIndex();
    const js = shown === null ? data.distributions.map((_, j) => j) : [shown];
    multiplesKey.replaceChildren(
      h("span", { title: "each sparkline's x axis" }, `x: training step ${steps[0]} → ${steps[steps.length - 1]}`),
      h("span", { title: "each sparkline's y axis: one scale for every head, so that the scaling chosen above shows" }, `y: ${SCALED[model.get("normalize")] ?? "rLLC"}, one scale for every head: ${fmt(range[0])} → ${fmt(range[1])}`),
      ...(data.verdicts?.data.some((v) => v === 0 || v === -1) ? [h("span", { title: "counts in a thumbnail's title; the selected head's curve marks each one" }, "✕n: unhealthy estimates, |n: no LLC (undefined)")] : []),
      ...js.map((j) => h("span", { role: "multiples-key-item", "data-distribution": data.distributions[j], style: "display:inline-flex; gap:4px; align-items:center" }, lineSample(DASHES[j % DASHES.length], theme.font), data.distributions[j])),
    );
  }

  function drawMultiples() {
    const D = data.distributions.length;
    const [, , N] = data.normalized.shape;
    const shownDist = distIndex();
    const [lo, hi] = sharedRange(data.normalized, H(), D, shownDist);
    const span = hi - lo || 1;
    drawMultiplesKey([lo, hi]);
    multiples.dataset.yRange = JSON.stringify([lo, hi]);
    const cells = order().map((i) => {
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", `0 0 100 40`);
      svg.setAttribute("preserveAspectRatio", "none");
      svg.append(svgElement("polyline", { points: "0.5,0 0.5,39.5 100,39.5", fill: "none", stroke: theme.fontMuted, "stroke-width": "1", "vector-effect": "non-scaling-stroke", "data-dvz-role": "multiple-axes" }));
      const shown = distIndex();
      for (let j = 0; j < D; j++) {
        if (shown !== null && j !== shown) continue;
        const row = data.normalized.data.subarray((i * D + j) * N, (i * D + j + 1) * N);
        const points = Array.from(row, (v, t) => `${((t / Math.max(1, N - 1)) * 100).toFixed(2)},${(38 - ((v - lo) / span) * 36).toFixed(2)}`).join(" ");
        const dash = DASHES[j % DASHES.length];
        svg.append(svgElement("polyline", { points, fill: "none", stroke: colorOf(i), "stroke-width": "1.6", "vector-effect": "non-scaling-stroke", ...(dash ? { "stroke-dasharray": dash } : {}), "data-distribution": data.distributions[j] }));
      }
      const cell = h(
        "div",
        { class: "dvz-multiple", role: "multiple", "data-head": heads()[i], title: `${heads()[i]} · cluster ${labelOf(i)}: click to select`, onclick: () => select(heads()[i]) },
        h("div", { class: "dvz-multiple-title" }, h("span", { class: "dvz-swatch", style: `background:${colorOf(i)}` }), shortName(heads()[i]), ...verdictBadges(data, theme, i)),
      );
      cell.append(svg);
      return cell;
    });
    multiples.replaceChildren(...cells);
  }

  // ------------------------------------------------------------------ heatmap + dendrogram
  function drawHeatmap() {
    const width = heatmap.offsetWidth;
    if (width === 0) return;
    const D = data.distributions.length;
    const [, , N] = data.normalized.shape;
    const rows = order();
    const shown = distIndex();
    const js = shown === null ? Array.from({ length: D }, (_, j) => j) : [shown];
    const z = rows.map((i) => js.flatMap((j) => Array.from(data.normalized.data.subarray((i * D + j) * N, (i * D + j + 1) * N), (v) => (Number.isFinite(v) ? v : null))));
    const steps = Array.from(data.steps.data);
    // hover names the distribution only when there are several; the ticks sit at the same checkpoints in every block
    const columns = js.flatMap((j) => steps.map((s) => (D > 1 ? `${data.distributions[j]} · step ${s}` : `step ${s}`)));
    const tl = themeLayout(theme);
    // laid out in pixels, so that the dendrogram, the row labels and the colour bar never overlap
    const margin = { l: 4, r: 78, t: 8, b: 56 };
    const plotWidth = Math.max(120, width - margin.l - margin.r);
    const rowLabels = rows.map((i) => shortName(heads()[i]));
    const dendrogramEnd = Math.min(0.3, 56 / plotWidth);
    const heatStart = Math.min(0.6, (56 + 10 + textWidth(rowLabels, 10, theme.fontFamily)) / plotWidth);
    const traces = [
      {
        type: "heatmap",
        z,
        x: columns.map((_, c) => c),
        y: rows.map((_, r) => r),
        text: rows.map((i) => columns.map((c) => `${heads()[i]}<br>${c}`)),
        hovertemplate: "%{text}<br>%{z:.3f}<extra></extra>",
        colorscale: "Viridis",
        colorbar: { thickness: 10, outlinewidth: 0, len: 0.9, x: 1.02, xanchor: "left", tickfont: { color: theme.font }, title: { text: SCALED[model.get("normalize")] ?? "rLLC", side: "right", font: { size: 10 } } },
        xaxis: "x",
        yaxis: "y",
      },
    ];
    traces.push(...dendrogramTraces(clusters.dendrogram, theme.fontMuted));
    const shapes = [];
    for (let j = 1; j < js.length; j++) shapes.push({ type: "line", xref: "x", yref: "paper", x0: j * N - 0.5, x1: j * N - 0.5, y0: 0, y1: 1, line: { color: theme.background, width: 3 } });
    const r = rows.indexOf(heads().indexOf(selected));
    if (r >= 0) shapes.push({ type: "rect", xref: "paper", x0: heatStart, x1: 1, yref: "y", y0: r - 0.5, y1: r + 0.5, line: { color: theme.font, width: 2.5 } });
    const { tickvals, ticktext, every } = blockTicks(steps, js.map((j) => data.distributions[j]), D > 1, (1 - heatStart) * plotWidth);
    heatmap.dataset.ticks = JSON.stringify(ticktext);
    react(heatmap, traces, {
      ...tl,
      height: Math.max(200, 60 + 16 * rows.length),
      margin,
      showlegend: false,
      xaxis: { ...tl.xaxis, domain: [heatStart, 1], showgrid: false, zeroline: false, tickvals, ticktext, tickfont: { size: 9 }, title: { text: `training step (${every === 1 ? "every checkpoint" : `one checkpoint in ${every}`} labelled${js.length > 1 ? "; a block per distribution" : ""})`, font: { size: 10 }, standoff: 4 } },
      xaxis2: { ...tl.xaxis2, domain: [0, dendrogramEnd], autorange: "reversed", showgrid: false, zeroline: false, showticklabels: false, ticks: "", showline: false },
      yaxis: { ...tl.yaxis, autorange: "reversed", tickvals: rows.map((_, k) => k), ticktext: rowLabels, showgrid: false, zeroline: false, tickfont: { size: 10 } },
      shapes,
      uirevision: "heatmap",
    });
    heatmap.dataset.selected = selected;
    onPlot(heatmap, {
      plotly_click: (event) => {
        const point = event.points?.find((p) => p.data.type === "heatmap");
        if (point) select(heads()[order()[point.y]]);
      },
    });
  }

  // ------------------------------------------------------------------ embedding
  function drawEmbedding() {
    if (embedding.offsetWidth === 0 || !clusters.embedding) return;
    const e = clusters.embedding.data;
    const idx = heads().map((_, i) => i);
    const tl = themeLayout(theme);
    const xs = idx.map((i) => e[2 * i]);
    const ys = idx.map((i) => e[2 * i + 1]);
    const padded = (lo, hi) => [lo - (hi - lo || 1) * 0.12, hi + (hi - lo || 1) * 0.12];
    const range = (values) => padded(Math.min(...values), Math.max(...values));
    const [xr, yr] = [range(xs), range(ys)];
    const height = 300;
    const margin = { l: 52, r: 8, t: 8, b: 44 };
    const plotWidth = embedding.offsetWidth - margin.l - margin.r;
    const plotHeight = height - margin.t - margin.b;
    const px = xs.map((x) => ((x - xr[0]) / (xr[1] - xr[0])) * plotWidth);
    const py = ys.map((y) => (1 - (y - yr[0]) / (yr[1] - yr[0])) * plotHeight);
    const moved = spreadPoints(px, py, 13);
    px.forEach((p, i) => ((xs[i] = xr[0] + (p / plotWidth) * (xr[1] - xr[0])), (ys[i] = yr[0] + (1 - py[i] / plotHeight) * (yr[1] - yr[0]))));
    embedding.dataset.nudged = String(moved);
    embeddingNote.textContent = `colour: cluster; ${moved > 0.5 ? `points closer than a marker were nudged apart (by ${Math.round(moved)} px at most) so that none hides another` : "no point hides another"}; hover or click a point for its head`;
    const labels = placeLabels(px, py, idx.map((i) => shortName(heads()[i])), [plotWidth, plotHeight], heads().indexOf(selected), theme.fontFamily);
    const traces = [
      {
        type: "scatter",
        mode: "markers+text",
        x: xs,
        y: ys,
        text: labels.text,
        customdata: idx,
        textposition: labels.position,
        textfont: { size: 9, color: theme.fontMuted },
        marker: { size: 11, color: idx.map(colorOf), line: { width: 1, color: theme.background } },
        hovertext: idx.map((i) => `${heads()[i]}<br>cluster ${labelOf(i)}`),
        hovertemplate: "%{hovertext}<extra></extra>",
      },
    ];
    const k = heads().indexOf(selected);
    if (k >= 0) traces.push({ type: "scatter", mode: "markers", x: [xs[k]], y: [ys[k]], customdata: [k], marker: { size: 20, color: "rgba(0,0,0,0)", line: { width: 2.5, color: theme.font } }, hoverinfo: "skip" });
    const method = clusters.embedding_method === "umap" ? "UMAP" : "PCA";
    react(embedding, traces, {
      ...tl,
      height,
      margin,
      showlegend: false,
      hovermode: "closest",
      xaxis: { ...tl.xaxis, title: { text: `${method} 1`, standoff: 6 }, automargin: true, zeroline: false, range: xr },
      yaxis: { ...tl.yaxis, title: { text: `${method} 2`, standoff: 6 }, automargin: true, zeroline: false, range: yr },
      uirevision: "embedding",
    });
    embedding.dataset.selected = selected;
    embedding.dataset.labelled = String(labels.text.filter(Boolean).length);
    onPlot(embedding, {
      plotly_click: (event) => {
        const point = event.points?.[0];
        if (point && point.customdata !== undefined) select(heads()[point.customdata]);
      },
    });
  }

  // ------------------------------------------------------------------ scores table
  function drawScores() {
    const s = data.scores;
    const names = s ? s.names : [];
    const head = h("tr", {}, h("th", {}, "head"), h("th", { title: "HeadClustering.labels_" }, "cluster"), ...names.map((n) => h("th", {}, n.replaceAll("_", " "))));
    const rows = order().map((i) => {
      const cells = names.map((_, k) => {
        const v = s.values.data[k * H() + i];
        return h("td", { title: fmt(v, 4) }, h("span", { class: "dvz-bar", style: `width:${Math.max(0, Math.min(1, v)) * 36}px` }), fmt(v, 2));
      });
      return h(
        "tr",
        { "data-head": heads()[i], "data-selected": String(heads()[i] === selected), title: `${heads()[i]}: click to select`, onclick: () => select(heads()[i]) },
        h("td", {}, shortName(heads()[i])),
        h("td", { role: "cluster-cell" }, h("span", { class: "dvz-swatch", style: `background:${colorOf(i)}` }), ` ${labelOf(i)}`),
        ...cells,
      );
    });
    scores.replaceChildren(h("thead", {}, head), h("tbody", {}, ...rows));
    if (!names.length) scores.append(h("caption", { class: "dvz-muted dvz-small" }, "no behavioural scores given (scores=...)"));
  }

  // ------------------------------------------------------------------ attention patterns
  function drawAttention(i) {
    const att = data.attention;
    attentionPlot.hidden = !att;
    if (!att || attentionPlot.offsetWidth === 0) return;
    const [, Q, K] = att.shape;
    const tl = themeLayout(theme);
    const margin = { l: 50, r: 8, t: 26, b: 48 };
    const size = (attentionPlot.offsetWidth - margin.l - margin.r - 60) / K;
    react(
      attentionPlot,
      [{ type: "heatmap", z: patternOf(att, i), text: attentionHover(data.tokens, Q, K), colorscale: "Viridis", zmin: 0, zmax: 1, colorbar: { thickness: 10, outlinewidth: 0, tickfont: { color: theme.font }, title: { text: "attention weight", side: "right", font: { size: 10 } } }, hovertemplate: "%{text}<br>attention %{z:.3f}<extra></extra>" }],
      { ...tl, height: 280, margin, title: { text: "attention on the probe", font: { size: 11 }, x: 0.02, y: 0.98 }, xaxis: { ...tl.xaxis, ...tokenTicks(data.tokens, K, size, "x", 9, theme.fontFamily), title: { text: "key", standoff: 4 }, automargin: true, showgrid: false }, yaxis: { ...tl.yaxis, ...tokenTicks(data.tokens, Q, (280 - margin.t - margin.b) / Q, "y", 9, theme.fontFamily), title: { text: "query", standoff: 4 }, automargin: true, autorange: "reversed", showgrid: false }, uirevision: "attention" },
    );
    attentionPlot.dataset.head = selected;
  }

  /** Every head's attention pattern in a grid (dendrogram order, titled and coloured by cluster). */
  function drawOverview() {
    const att = data.attention;
    overviewBox.hidden = !att;
    if (!att || overview.offsetWidth === 0) return;
    const cells = order().map((i) => ({ head: heads()[i], index: i, title: `<b>${shortName(heads()[i])}</b> · cluster ${labelOf(i)}`, color: colorOf(i) }));
    const { traces, layout } = overviewFigure({ attention: att, tokens: data.tokens, cells, selected: heads().indexOf(selected), width: overview.offsetWidth, theme });
    react(overview, traces, layout);
    overview.dataset.heads = String(cells.length);
    overview.dataset.selected = selected;
    onPlot(overview, {
      plotly_click: (event) => {
        const point = event.points?.[0];
        if (point) select(point.data.name);
      },
    });
  }

  // ------------------------------------------------------------------ detail
  function drawDetail() {
    const i = heads().indexOf(selected);
    detail.hidden = i < 0;
    root.dataset.selected = selected;
    if (i < 0) return;
    detailTitle.textContent = `${selected} · cluster ${labelOf(i)} (${clusters.n_clusters ?? "?"} clusters, numbered from 0)`;
    const s = data.scores;
    detailScores.textContent = s ? s.names.map((n, k) => `${n.replaceAll("_", " ")} ${fmt(s.values.data[k * H() + i], 3)}`).join(" · ") : "";
    const D = data.distributions.length;
    const [, , N] = data.curves.shape;
    const tl = themeLayout(theme);
    const steps = data.steps.data;
    const positive = steps.every((v) => v > 0);
    if (curvePlot.offsetWidth > 0) {
      react(
        curvePlot,
        [...data.distributions.map((name, j) => ({ type: "scatter", mode: "lines+markers", x: steps, y: definedCurve(data, i, j), connectgaps: false, name, marker: { size: 4 }, line: { color: theme.chains[j % theme.chains.length], width: 1.8, dash: ["solid", "dash", "dot", "dashdot"][j % 4] }, hovertemplate: `${name}<br>step %{x}<br>rLLC %{y:.4g}<extra></extra>` })), ...verdictTraces(data, theme, i, curvePlot)],
        { ...tl, yaxis2: { overlaying: "y", range: [0, 1], visible: false, fixedrange: true }, height: 280, margin: { l: 56, r: 8, t: 26, b: 44 }, legend: { ...tl.legend, orientation: "h", x: 0, y: 1, yanchor: "bottom" }, xaxis: { ...tl.xaxis, type: positive ? "log" : "linear", ...(positive ? logTicks(steps) : {}), title: { text: "training step", standoff: 6 }, automargin: true }, yaxis: { ...tl.yaxis, title: { text: "refined LLC", standoff: 6 }, automargin: true }, uirevision: "curve" },
      );
    }
    curvePlot.dataset.head = selected;
    drawAttention(i);
  }

  function showSelection() {
    for (const cell of multiples.children) cell.dataset.selected = String(cell.dataset.head === selected);
    for (const row of scores.querySelectorAll("tr[data-head]")) row.dataset.selected = String(row.dataset.head === selected);
    drawHeatmap();
    drawEmbedding();
    drawDetail();
    drawOverview();
  }

  // ------------------------------------------------------------------ controls
  function drawControls() {
    const sil = clusters.silhouette || {};
    const suggested = clusters.suggested;
    const options = [h("option", { value: 0 }, suggested ? `auto (${suggested})` : "auto")];
    for (let k = 1; k <= Math.min(H(), 12); k++) options.push(h("option", { value: k, title: sil[k] !== undefined ? `silhouette ${fmt(sil[k], 3)}` : "" }, sil[k] !== undefined ? `${k} · silhouette ${fmt(sil[k], 2)}` : String(k)));
    kSelect.replaceChildren(...options);
    kSelect.value = String(model.get("n_clusters"));
    distSelect.replaceChildren(h("option", { value: "all" }, "all (concatenated)"), ...(data.distributions || []).map((d) => h("option", { value: d }, d)));
    distSelect.value = model.get("distribution");
    distSelect.parentElement.hidden = (data.distributions || []).length < 2;
    const live = !isStatic && model.get("can_recluster");
    kSelect.disabled = !live;
    distSelect.disabled = !live;
    normSelect.value = model.get("normalize");
    normSelect.disabled = !live || !model.get("can_renormalize");
    normSelect.title = normSelect.disabled && !isStatic ? "built from fitted signatures: pass the head sweep to switch" : "how each head's curves are scaled before clustering";
    info.textContent = `${H()} heads · ${clusters.n_clusters ?? "?"} clusters (${clusters.embedding_method === "umap" ? "UMAP" : "PCA"} embedding)${isStatic ? " · snapshot: reclustering needs the kernel" : ""}`;
    const error = model.get("error");
    errorBox.hidden = !error;
    errorBox.textContent = error ? `⚠ ${error}` : "";
  }
  kSelect.addEventListener("change", () => sync.now("n_clusters", Number(kSelect.value)));
  distSelect.addEventListener("change", () => sync.now("distribution", distSelect.value));
  normSelect.addEventListener("change", () => sync.now("normalize", normSelect.value));

  function drawAll() {
    data = decode(model.get("data")) || {};
    clusters = decode(model.get("clusters")) || {};
    if (!data.heads) return;
    drawControls();
    drawMultiples();
    drawScores();
    showSelection();
    root.dataset.clusters = String(clusters.n_clusters ?? "");
    root.dataset.dvzDrawn = String(Number(root.dataset.dvzDrawn || 0) + 1);
  }

  // ------------------------------------------------------------------ wiring
  const on = (names, fn) => {
    for (const name of names.split(" ")) model.on(`change:${name}`, fn);
    disposers.push(() => names.split(" ").forEach((name) => model.off(`change:${name}`, fn)));
  };
  on("data clusters", drawAll);
  on("error n_clusters distribution normalize can_recluster can_renormalize", drawControls);
  on("selected_head", () => {
    const name = model.get("selected_head");
    if (name !== selected) {
      selected = name;
      showSelection();
    }
  });
  disposers.push(followTheme(el, root, root, theme, (next) => (theme = next), drawAll));
  // a narrow widget (a side panel, a small window) stacks its panels in one column, redrawn to fit
  const NARROW = 640;
  let narrow = null;
  disposers.push(
    watchSize(root, () => {
      const now = root.offsetWidth > 0 && root.offsetWidth < NARROW;
      if (root.offsetWidth === 0 || now === narrow) return;
      narrow = now;
      root.dataset.narrow = String(now);
      const grid = root.querySelector("[data-dvz-role='heads-grid']");
      grid.style.gridTemplateColumns = now ? "minmax(0, 1fr)" : "";
      detailGrid.style.gridTemplateColumns = now ? "minmax(0, 1fr)" : "";
      showSelection();
    }),
  );
  // figures laid out in pixels (labels placed, ticks thinned) are redrawn when their width changes
  const redraw = coalesce(showSelection);
  for (const figure of [embedding, curvePlot, attentionPlot, overview]) {
    let width = 0;
    disposers.push(
      watchSize(figure, () => {
        if (figure.offsetWidth > 0 && Math.abs(figure.offsetWidth - width) > 1) {
          width = figure.offsetWidth;
          redraw();
        }
      }),
    );
  }
  // figures asked to draw while hidden (a detached output, a theme swap) are drawn when they get a size
  let drawnWidth = 0;
  disposers.push(
    watchSize(heatmap, () => {
      if (heatmap.offsetWidth > 0 && drawnWidth === 0) {
        drawnWidth = heatmap.offsetWidth;
        showSelection();
      }
    }),
  );
  drawAll();
  root.dataset.dvzReady = "1";
  return () => {
    disposers.forEach((dispose) => dispose());
    for (const p of [heatmap, embedding, curvePlot, attentionPlot, overview]) purge(p);
  };
}
