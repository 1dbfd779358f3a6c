// HeadClusterWidget view: small multiples, dendrogram-ordered heatmap, embedding, scores table, an
// overview of every head's attention pattern and a detail panel (curve, scores, attention pattern),
// all linked by one selected head. Clusters are numbered as HeadClustering.labels_ (from 0) and
// coloured by the palette index Python keeps stable across reclusterings.

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { coalesce, purge, react, watchSize } from "../plot.js";
import { readTheme, themeLayout } from "../theme.js";
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
  const kSelect = h("select", { role: "n-clusters", title: "number of clusters (auto: the one with the best silhouette score); changing it reclusters in Python" });
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
      h("div", { class: "dvz-dash-col" }, h("div", { class: "dvz-section-title" }, "Embedding"), embedding, h("div", { class: "dvz-section-title" }, "Behaviour"), scores),
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
  /** An SVG line segment (the key's sample of distribution j's line style). */
  function sample(j) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", "24");
    svg.setAttribute("height", "8");
    const line = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1: 0, y1: 4, x2: 24, y2: 4, stroke: theme.font, "stroke-width": 1.6, "stroke-dasharray": DASHES[j % DASHES.length] })) line.setAttribute(k, v);
    svg.append(line);
    return svg;
  }

  function drawMultiplesKey() {
    const steps = data.steps.data;
    const shown = distIndex();
    const js = shown === null ? data.distributions.map((_, j) => j) : [shown];
    multiplesKey.replaceChildren(
      h("span", { title: "each sparkline's x axis" }, `x: training step ${fmt(steps[0])} → ${fmt(steps[steps.length - 1])}`),
      h("span", { title: "each sparkline's y axis" }, `y: ${SCALED[model.get("normalize")] ?? "rLLC"}, from the curve's min to its max`),
      ...js.map((j) => h("span", { role: "multiples-key-item", "data-distribution": data.distributions[j], style: "display:inline-flex; gap:4px; align-items:center" }, sample(j), data.distributions[j])),
    );
  }

  function drawMultiples() {
    const D = data.distributions.length;
    const [, , N] = data.normalized.shape;
    drawMultiplesKey();
    const cells = order().map((i) => {
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", `0 0 100 40`);
      svg.setAttribute("preserveAspectRatio", "none");
      const axes = document.createElementNS(SVG, "polyline");
      axes.setAttribute("points", "0.5,0 0.5,39.5 100,39.5");
      axes.setAttribute("fill", "none");
      axes.setAttribute("stroke", theme.fontMuted);
      axes.setAttribute("stroke-width", "1");
      axes.setAttribute("vector-effect", "non-scaling-stroke");
      axes.setAttribute("data-dvz-role", "multiple-axes");
      svg.append(axes);
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
        if (DASHES[j % DASHES.length]) line.setAttribute("stroke-dasharray", DASHES[j % DASHES.length]);
        line.setAttribute("data-distribution", data.distributions[j]);
        svg.append(line);
      }
      const cell = h(
        "div",
        { class: "dvz-multiple", role: "multiple", "data-head": heads()[i], title: `${heads()[i]} · cluster ${labelOf(i)}: click to select`, onclick: () => select(heads()[i]) },
        h("div", { class: "dvz-multiple-title" }, h("span", { class: "dvz-swatch", style: `background:${colorOf(i)}` }), shortName(heads()[i])),
      );
      cell.append(svg);
      return cell;
    });
    multiples.replaceChildren(...cells);
  }

  // ------------------------------------------------------------------ heatmap + dendrogram
  /** Width in pixels of the widest of ``labels`` in the figures' tick font (for laying out in pixels). */
  function textWidth(labels, size) {
    const context = (textWidth.canvas ||= document.createElement("canvas")).getContext("2d");
    context.font = `${size}px ${theme.fontFamily || "sans-serif"}`;
    return Math.max(0, ...labels.map((label) => context.measureText(label).width));
  }

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
    const columns = js.flatMap((j) => steps.map((s) => `${data.distributions[j]} · step ${s}`));
    const tl = themeLayout(theme);
    // laid out in pixels, so that the dendrogram, the row labels and the colour bar never overlap
    const margin = { l: 4, r: 78, t: 8, b: 56 };
    const plotWidth = Math.max(120, width - margin.l - margin.r);
    const rowLabels = rows.map((i) => shortName(heads()[i]));
    const dendrogramEnd = Math.min(0.3, 56 / plotWidth);
    const heatStart = Math.min(0.6, (56 + 10 + textWidth(rowLabels, 10)) / plotWidth);
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
    if (r >= 0) shapes.push({ type: "rect", xref: "paper", x0: heatStart, x1: 1, yref: "y", y0: r - 0.5, y1: r + 0.5, line: { color: theme.font, width: 2.5 } });
    const tickStep = Math.max(1, Math.ceil(columns.length / Math.max(2, Math.floor(((1 - heatStart) * plotWidth) / 70))));
    react(heatmap, traces, {
      ...tl,
      height: Math.max(200, 60 + 16 * rows.length),
      margin,
      showlegend: false,
      xaxis: { ...tl.xaxis, domain: [heatStart, 1], showgrid: false, zeroline: false, tickvals: columns.map((_, c) => c).filter((c) => c % tickStep === 0), ticktext: columns.filter((_, c) => c % tickStep === 0).map((c) => c.replace(" · ", "<br>")), tickfont: { size: 9 } },
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
  /**
   * Where each head's label goes: above, below, right or left of its point, the first place that
   * overlaps neither another label nor a point; a label with no free place is left to the hover.
   */
  function placeLabels(px, py, names, plotWidth, plotHeight, first) {
    const size = 9;
    const boxes = [];
    const points = px.map((x, i) => ({ x0: x - 6, x1: x + 6, y0: py[i] - 6, y1: py[i] + 6 }));
    const hits = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
    const places = {
      "top center": (x, y, w) => ({ x0: x - w / 2, x1: x + w / 2, y0: y - 8 - size - 2, y1: y - 6 }),
      "bottom center": (x, y, w) => ({ x0: x - w / 2, x1: x + w / 2, y0: y + 6, y1: y + 8 + size + 2 }),
      "middle right": (x, y, w) => ({ x0: x + 7, x1: x + 9 + w, y0: y - size / 2 - 2, y1: y + size / 2 + 2 }),
      "middle left": (x, y, w) => ({ x0: x - 9 - w, x1: x - 7, y0: y - size / 2 - 2, y1: y + size / 2 + 2 }),
    };
    const text = names.map(() => "");
    const position = names.map(() => "top center");
    const visit = [first, ...names.map((_, i) => i).filter((i) => i !== first)].filter((i) => i >= 0);
    for (const i of visit) {
      const w = textWidth([names[i]], size) + 4;
      for (const [name, place] of Object.entries(places)) {
        const box = place(px[i], py[i], w);
        const inside = box.x0 >= 0 && box.x1 <= plotWidth && box.y0 >= 0 && box.y1 <= plotHeight;
        if (inside && !boxes.some((b) => hits(b, box)) && !points.some((p, k) => k !== i && hits(p, box))) {
          boxes.push(box);
          text[i] = names[i];
          position[i] = name;
          break;
        }
      }
    }
    return { text, position };
  }

  function drawEmbedding() {
    if (embedding.offsetWidth === 0 || !clusters.embedding) return;
    const e = clusters.embedding.data;
    const idx = heads().map((_, i) => i);
    const tl = themeLayout(theme);
    const xs = idx.map((i) => e[2 * i]);
    const ys = idx.map((i) => e[2 * i + 1]);
    const range = (values) => {
      const lo = Math.min(...values);
      const hi = Math.max(...values);
      const pad = (hi - lo || 1) * 0.12;
      return [lo - pad, hi + pad];
    };
    const [xr, yr] = [range(xs), range(ys)];
    const height = 300;
    const margin = { l: 52, r: 8, t: 8, b: 44 };
    const plotWidth = embedding.offsetWidth - margin.l - margin.r;
    const plotHeight = height - margin.t - margin.b;
    const px = xs.map((x) => ((x - xr[0]) / (xr[1] - xr[0])) * plotWidth);
    const py = ys.map((y) => (1 - (y - yr[0]) / (yr[1] - yr[0])) * plotHeight);
    const labels = placeLabels(px, py, idx.map((i) => shortName(heads()[i])), plotWidth, plotHeight, heads().indexOf(selected));
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
    if (k >= 0) traces.push({ type: "scatter", mode: "markers", x: [e[2 * k]], y: [e[2 * k + 1]], customdata: [k], marker: { size: 20, color: "rgba(0,0,0,0)", line: { width: 2.5, color: theme.font } }, hoverinfo: "skip" });
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
  /**
   * Every ``step``-th token position as a tick, so that labels ``pixels`` apart per token never
   * touch: side by side on an x axis (the widest label plus a gap), stacked on a y axis.
   */
  function tokenTicks(n, pixels, axis, size) {
    const tokens = data.tokens;
    const labels = Array.from({ length: n }, (_, t) => (tokens?.[t] !== undefined ? tokens[t] : String(t)));
    const room = axis === "x" ? textWidth(labels, size) + 6 : size + 4;
    const step = Math.max(1, Math.ceil(room / Math.max(pixels, 1e-6)));
    const tickvals = labels.map((_, t) => t).filter((t) => t % step === 0);
    return { tickvals, ticktext: tickvals.map((t) => labels[t]), tickangle: 0, tickfont: { size } };
  }

  const tokenAt = (t) => (data.tokens?.[t] !== undefined ? `${t} “${data.tokens[t]}”` : String(t));
  const patternOf = (i) => {
    const [, Q, K] = data.attention.shape;
    return Array.from({ length: Q }, (_, q) => Array.from(data.attention.data.subarray((i * Q + q) * K, (i * Q + q + 1) * K)));
  };
  const hoverOf = (Q, K) => Array.from({ length: Q }, (_, q) => Array.from({ length: K }, (_, k) => `query ${tokenAt(q)}<br>key ${tokenAt(k)}`));

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
      [{ type: "heatmap", z: patternOf(i), text: hoverOf(Q, K), colorscale: "Viridis", zmin: 0, zmax: 1, colorbar: { thickness: 10, outlinewidth: 0, tickfont: { color: theme.font }, title: { text: "attention weight", side: "right", font: { size: 10 } } }, hovertemplate: "%{text}<br>attention %{z:.3f}<extra></extra>" }],
      { ...tl, height: 280, margin, title: { text: "attention on the probe", font: { size: 11 }, x: 0.02, y: 0.98 }, xaxis: { ...tl.xaxis, ...tokenTicks(K, size, "x", 9), title: { text: "key", standoff: 4 }, automargin: true, showgrid: false }, yaxis: { ...tl.yaxis, ...tokenTicks(Q, (280 - margin.t - margin.b) / Q, "y", 9), title: { text: "query", standoff: 4 }, automargin: true, autorange: "reversed", showgrid: false }, uirevision: "attention" },
    );
    attentionPlot.dataset.head = selected;
  }

  /** Every head's attention pattern in a grid (dendrogram order, titled and coloured by cluster). */
  function drawOverview() {
    const att = data.attention;
    overviewBox.hidden = !att;
    const width = overview.offsetWidth;
    if (!att || width === 0) return;
    const [, Q, K] = att.shape;
    const heads_ = order();
    const margin = { l: 58, r: 70, t: 20, b: 44 };
    const plotWidth = width - margin.l - margin.r;
    const columns = Math.max(1, Math.min(heads_.length, Math.floor(plotWidth / 100)));
    const rowsCount = Math.ceil(heads_.length / columns);
    const cell = plotWidth / columns;
    const gap = 0.12; // of a cell: room for its title
    const height = margin.t + margin.b + rowsCount * cell;
    const plotHeight = rowsCount * cell;
    const tl = themeLayout(theme);
    const layout = { ...tl, height, margin, showlegend: false, annotations: [], coloraxis: { colorscale: "Viridis", cmin: 0, cmax: 1, colorbar: { thickness: 10, outlinewidth: 0, tickfont: { color: theme.font }, title: { text: "attention weight", side: "right", font: { size: 10 } } } }, uirevision: "overview" };
    const traces = heads_.map((i, n) => {
      const row = Math.floor(n / columns);
      const col = n % columns;
      const suffix = n === 0 ? "" : String(n + 1);
      const x0 = col / columns;
      const y1 = 1 - row / rowsCount;
      const xdomain = [x0 + (gap / 2) / columns, x0 + (1 - gap / 2) / columns];
      const ydomain = [y1 - (1 - gap / 2) / rowsCount, y1 - gap / rowsCount];
      const pixels = ((xdomain[1] - xdomain[0]) * plotWidth) / K;
      const bottom = row === rowsCount - 1 || n + columns >= heads_.length;
      layout[`xaxis${suffix}`] = { ...tl.xaxis, domain: xdomain, anchor: `y${suffix}`, showgrid: false, zeroline: false, ...tokenTicks(K, pixels, "x", 8), showticklabels: bottom };
      layout[`yaxis${suffix}`] = { ...tl.yaxis, domain: ydomain, anchor: `x${suffix}`, autorange: "reversed", showgrid: false, zeroline: false, ...tokenTicks(Q, ((ydomain[1] - ydomain[0]) * plotHeight) / Q, "y", 8), showticklabels: col === 0 };
      layout.annotations.push({ text: `<b>${shortName(heads()[i])}</b> · cluster ${labelOf(i)}`, font: { size: 10, color: colorOf(i) }, showarrow: false, xref: "paper", yref: "paper", x: (xdomain[0] + xdomain[1]) / 2, y: ydomain[1], yshift: 3, yanchor: "bottom", xanchor: "center" });
      return { type: "heatmap", z: patternOf(i), text: hoverOf(Q, K), coloraxis: "coloraxis", xaxis: `x${suffix}`, yaxis: `y${suffix}`, customdata: [i], name: heads()[i], hovertemplate: `${heads()[i]}<br>%{text}<br>attention %{z:.3f}<extra></extra>` };
    });
    layout.annotations.push(
      { text: "key", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0, yshift: -30, yanchor: "top", font: { size: 11 } },
      { text: "query", showarrow: false, xref: "paper", yref: "paper", x: 0, xshift: -36, y: 0.5, textangle: -90, xanchor: "right", font: { size: 11 } },
    );
    const r = heads_.indexOf(heads().indexOf(selected));
    layout.shapes = r < 0 ? [] : [{ type: "rect", xref: `x${r === 0 ? "" : r + 1} domain`, yref: `y${r === 0 ? "" : r + 1} domain`, x0: -0.02, x1: 1.02, y0: -0.02, y1: 1.01, line: { color: theme.font, width: 2 } }];
    react(overview, traces, layout);
    overview.dataset.heads = String(heads_.length);
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
        data.distributions.map((name, j) => ({ type: "scatter", mode: "lines+markers", x: steps, y: data.curves.data.subarray((i * D + j) * N, (i * D + j + 1) * N), name, marker: { size: 4 }, line: { color: theme.chains[j % theme.chains.length], width: 1.8, dash: ["solid", "dash", "dot", "dashdot"][j % 4] }, hovertemplate: `${name}<br>step %{x}<br>rLLC %{y:.4g}<extra></extra>` })),
        { ...tl, height: 280, margin: { l: 56, r: 8, t: 26, b: 44 }, legend: { ...tl.legend, orientation: "h", x: 0, y: 1, yanchor: "bottom" }, xaxis: { ...tl.xaxis, type: positive ? "log" : "linear", ...(positive ? logTicks(steps) : {}), title: { text: "training step", standoff: 6 }, automargin: true }, yaxis: { ...tl.yaxis, title: { text: "refined LLC", standoff: 6 }, automargin: true }, uirevision: "curve" },
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
