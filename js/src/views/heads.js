// HeadClusterWidget view: small multiples, dendrogram-ordered heatmap, embedding, scores table and a
// detail panel (curve, scores, attention pattern), all linked by one selected head.

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { purge, react, watchSize } from "../plot.js";
import { readTheme, themeLayout } from "../theme.js";
import { categorical, followTheme, onPlot, syncer } from "./linked.js";

const SVG = "http://www.w3.org/2000/svg";

export function renderHeads({ model, el }) {
  const disposers = [];
  const isStatic = Boolean(model.get("_static"));
  const sync = syncer(model, 0);
  let theme = readTheme(el);
  let data = {};
  let clusters = {};
  let selected = model.get("selected_head");

  // ------------------------------------------------------------------ layout
  const kSelect = h("select", { role: "n-clusters", title: "number of clusters" });
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
  const multiples = h("div", { class: "dvz-multiples", role: "multiples" });
  const heatmap = h("div", { class: "dvz-plot", role: "heatmap" });
  const embedding = h("div", { class: "dvz-plot", role: "embedding" });
  const scores = h("table", { class: "dvz-scores", role: "scores" });
  const detailTitle = h("div", { class: "dvz-section-title", role: "detail-title" });
  const detailScores = h("div", { class: "dvz-small", role: "detail-scores" });
  const curvePlot = h("div", { class: "dvz-plot", role: "head-curve" });
  const attentionPlot = h("div", { class: "dvz-plot", role: "attention" });
  const detail = h("div", { class: "dvz-detail", role: "detail" }, detailTitle, detailScores, h("div", { class: "dvz-detail-grid" }, curvePlot, attentionPlot));
  const root = h(
    "div",
    { class: "dvz-panelbox dvz-heads" },
    h("div", { class: "dvz-header" }, h("span", { class: "dvz-title" }, "Attention heads"), h("label", {}, "clusters ", kSelect), h("label", {}, "data ", distSelect), h("label", {}, "curves ", normSelect), info),
    errorBox,
    h(
      "div",
      { class: "dvz-heads-grid" },
      h("div", { class: "dvz-dash-col" }, h("div", { class: "dvz-section-title" }, "Signatures (dendrogram order)"), multiples, heatmap),
      h("div", { class: "dvz-dash-col" }, h("div", { class: "dvz-section-title" }, "Embedding"), embedding, h("div", { class: "dvz-section-title" }, "Behaviour"), scores),
    ),
    detail,
  );
  el.append(root);

  // ------------------------------------------------------------------ helpers
  const heads = () => data.heads || [];
  const H = () => heads().length;
  const labelOf = (i) => (clusters.labels ? clusters.labels.data[i] : 0);
  const colorOf = (i) => categorical(theme, labelOf(i));
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
  function drawMultiples() {
    const D = data.distributions.length;
    const [, , N] = data.normalized.shape;
    const cells = order().map((i) => {
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", `0 0 100 40`);
      svg.setAttribute("preserveAspectRatio", "none");
      const shown = distIndex();
      for (let j = 0; j < D; j++) {
        if (shown !== null && j !== shown) continue;
        const row = data.normalized.data.subarray((i * D + j) * N, (i * D + j + 1) * N);
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of row) if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
        const span = hi - lo || 1;
        const points = Array.from(row, (v, t) => `${((t / Math.max(1, N - 1)) * 100).toFixed(2)},${(38 - ((v - lo) / span) * 36).toFixed(2)}`).join(" ");
        const line = document.createElementNS(SVG, "polyline");
        line.setAttribute("points", points);
        line.setAttribute("fill", "none");
        line.setAttribute("stroke", colorOf(i));
        line.setAttribute("stroke-width", "1.6");
        line.setAttribute("vector-effect", "non-scaling-stroke");
        if (j > 0 && shown === null) line.setAttribute("stroke-dasharray", "3 2");
        svg.append(line);
      }
      const cell = h(
        "div",
        { class: "dvz-multiple", role: "multiple", "data-head": heads()[i], title: `${heads()[i]} · cluster ${labelOf(i) + 1}`, onclick: () => select(heads()[i]) },
        h("div", { class: "dvz-multiple-title" }, h("span", { class: "dvz-swatch", style: `background:${colorOf(i)}` }), shortName(heads()[i])),
      );
      cell.append(svg);
      return cell;
    });
    multiples.replaceChildren(...cells);
  }

  // ------------------------------------------------------------------ heatmap + dendrogram
  function drawHeatmap() {
    if (heatmap.offsetWidth === 0) return;
    const D = data.distributions.length;
    const [, , N] = data.normalized.shape;
    const rows = order();
    const shown = distIndex();
    const js = shown === null ? Array.from({ length: D }, (_, j) => j) : [shown];
    const z = rows.map((i) => js.flatMap((j) => Array.from(data.normalized.data.subarray((i * D + j) * N, (i * D + j + 1) * N), (v) => (Number.isFinite(v) ? v : null))));
    const steps = Array.from(data.steps.data);
    const columns = js.flatMap((j) => steps.map((s) => `${data.distributions[j]} · step ${s}`));
    const tl = themeLayout(theme);
    const traces = [
      {
        type: "heatmap",
        z,
        x: columns.map((_, c) => c),
        y: rows.map((_, r) => r),
        text: rows.map((i) => columns.map((c) => `${heads()[i]}<br>${c}`)),
        hovertemplate: "%{text}<br>%{z:.3f}<extra></extra>",
        colorscale: "Viridis",
        colorbar: { thickness: 10, outlinewidth: 0, len: 0.9, tickfont: { color: theme.font } },
        xaxis: "x",
        yaxis: "y",
      },
    ];
    const shapes = [];
    const icoord = clusters.dendrogram?.icoord;
    const dcoord = clusters.dendrogram?.dcoord;
    if (icoord && icoord.shape[0]) {
      for (let m = 0; m < icoord.shape[0]; m++) {
        traces.push({
          type: "scatter",
          mode: "lines",
          x: Array.from(dcoord.data.subarray(m * 4, m * 4 + 4)),
          y: Array.from(icoord.data.subarray(m * 4, m * 4 + 4), (v) => (v - 5) / 10),
          xaxis: "x2",
          yaxis: "y",
          line: { color: theme.fontMuted, width: 1 },
          hoverinfo: "skip",
          showlegend: false,
        });
      }
    }
    for (let j = 1; j < js.length; j++) shapes.push({ type: "line", xref: "x", yref: "paper", x0: j * N - 0.5, x1: j * N - 0.5, y0: 0, y1: 1, line: { color: theme.background, width: 3 } });
    const r = rows.indexOf(heads().indexOf(selected));
    if (r >= 0) shapes.push({ type: "rect", xref: "paper", x0: 0.14, x1: 1, yref: "y", y0: r - 0.5, y1: r + 0.5, line: { color: theme.font, width: 2.5 } });
    const tickStep = Math.max(1, Math.ceil(columns.length / 8));
    react(heatmap, traces, {
      ...tl,
      height: Math.max(200, 60 + 16 * rows.length),
      margin: { l: 70, r: 8, t: 8, b: 56 },
      showlegend: false,
      xaxis: { ...tl.xaxis, domain: [0.15, 1], showgrid: false, zeroline: false, tickvals: columns.map((_, c) => c).filter((c) => c % tickStep === 0), ticktext: columns.filter((_, c) => c % tickStep === 0).map((c) => c.replace(" · ", "<br>")), tickfont: { size: 9 } },
      xaxis2: { ...tl.xaxis2, domain: [0, 0.13], autorange: "reversed", showgrid: false, zeroline: false, showticklabels: false },
      yaxis: { ...tl.yaxis, autorange: "reversed", tickvals: rows.map((_, k) => k), ticktext: rows.map((i) => shortName(heads()[i])), showgrid: false, zeroline: false, tickfont: { size: 10 } },
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
    const traces = [
      {
        type: "scatter",
        mode: "markers+text",
        x: idx.map((i) => e[2 * i]),
        y: idx.map((i) => e[2 * i + 1]),
        text: idx.map((i) => shortName(heads()[i])),
        customdata: idx,
        textposition: "top center",
        textfont: { size: 9, color: theme.fontMuted },
        marker: { size: 11, color: idx.map(colorOf), line: { width: 1, color: theme.background } },
        hovertext: idx.map((i) => `${shortName(heads()[i])}<br>cluster ${labelOf(i) + 1}`),
        hovertemplate: "%{hovertext}<extra></extra>",
      },
    ];
    const k = heads().indexOf(selected);
    if (k >= 0) traces.push({ type: "scatter", mode: "markers", x: [e[2 * k]], y: [e[2 * k + 1]], customdata: [k], marker: { size: 20, color: "rgba(0,0,0,0)", line: { width: 2.5, color: theme.font } }, hoverinfo: "skip" });
    const method = clusters.embedding_method === "umap" ? "UMAP" : "PCA";
    react(embedding, traces, {
      ...tl,
      height: 300,
      margin: { l: 40, r: 8, t: 8, b: 36 },
      showlegend: false,
      hovermode: "closest",
      xaxis: { ...tl.xaxis, title: { text: `${method} 1` }, zeroline: false },
      yaxis: { ...tl.yaxis, title: { text: `${method} 2` }, zeroline: false },
      uirevision: "embedding",
    });
    embedding.dataset.selected = selected;
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
    const head = h("tr", {}, h("th", {}, "head"), h("th", {}, "cluster"), ...names.map((n) => h("th", {}, n.replaceAll("_", " "))));
    const rows = order().map((i) => {
      const cells = names.map((_, k) => {
        const v = s.values.data[k * H() + i];
        return h("td", { title: fmt(v, 4) }, h("span", { class: "dvz-bar", style: `width:${Math.max(0, Math.min(1, v)) * 50}px` }), fmt(v, 2));
      });
      return h(
        "tr",
        { "data-head": heads()[i], "data-selected": String(heads()[i] === selected), onclick: () => select(heads()[i]) },
        h("td", {}, shortName(heads()[i])),
        h("td", {}, h("span", { class: "dvz-swatch", style: `background:${colorOf(i)}` }), ` ${labelOf(i) + 1}`),
        ...cells,
      );
    });
    scores.replaceChildren(h("thead", {}, head), h("tbody", {}, ...rows));
    if (!names.length) scores.append(h("caption", { class: "dvz-muted dvz-small" }, "no behavioural scores given (scores=...)"));
  }

  // ------------------------------------------------------------------ detail
  function drawDetail() {
    const i = heads().indexOf(selected);
    detail.hidden = i < 0;
    root.dataset.selected = selected;
    if (i < 0) return;
    detailTitle.textContent = `${selected} · cluster ${labelOf(i) + 1} of ${clusters.n_clusters ?? "?"}`;
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
        data.distributions.map((name, j) => ({ type: "scatter", mode: "lines+markers", x: steps, y: data.curves.data.subarray((i * D + j) * N, (i * D + j + 1) * N), name, marker: { size: 4 }, line: { color: theme.chains[j % theme.chains.length], width: 1.8 }, hovertemplate: `${name}<br>step %{x}<br>rLLC %{y:.4g}<extra></extra>` })),
        { ...tl, height: 280, margin: { l: 56, r: 8, t: 26, b: 40 }, legend: { ...tl.legend, orientation: "h", x: 0, y: 1, yanchor: "bottom" }, xaxis: { ...tl.xaxis, type: positive ? "log" : "linear", title: { text: "training step" } }, yaxis: { ...tl.yaxis, title: { text: "refined LLC" } }, uirevision: "curve" },
      );
    }
    curvePlot.dataset.head = selected;
    const att = data.attention;
    attentionPlot.hidden = !att;
    if (att && attentionPlot.offsetWidth > 0) {
      const [, Q, K] = att.shape;
      const z = Array.from({ length: Q }, (_, q) => Array.from(att.data.subarray((i * Q + q) * K, (i * Q + q + 1) * K)));
      const tokens = data.tokens;
      const labels = (n) => Array.from({ length: n }, (_, t) => (tokens?.[t] !== undefined ? `${t}:${tokens[t]}` : String(t)));
      react(
        attentionPlot,
        [{ type: "heatmap", z, x: labels(K), y: labels(Q), colorscale: "Viridis", zmin: 0, zmax: 1, colorbar: { thickness: 10, outlinewidth: 0, tickfont: { color: theme.font } }, hovertemplate: "query %{y}<br>key %{x}<br>attention %{z:.3f}<extra></extra>" }],
        { ...tl, height: 280, margin: { l: 56, r: 8, t: 26, b: 40 }, title: { text: "attention on the probe", font: { size: 11 }, x: 0.02, y: 0.98 }, xaxis: { ...tl.xaxis, title: { text: "key" }, showgrid: false, tickfont: { size: 8 } }, yaxis: { ...tl.yaxis, title: { text: "query" }, autorange: "reversed", showgrid: false, tickfont: { size: 8 } }, uirevision: "attention" },
      );
      attentionPlot.dataset.head = selected;
    }
  }

  function showSelection() {
    for (const cell of multiples.children) cell.dataset.selected = String(cell.dataset.head === selected);
    for (const row of scores.querySelectorAll("tr[data-head]")) row.dataset.selected = String(row.dataset.head === selected);
    drawHeatmap();
    drawEmbedding();
    drawDetail();
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
    for (const p of [heatmap, embedding, curvePlot, attentionPlot]) purge(p);
  };
}
