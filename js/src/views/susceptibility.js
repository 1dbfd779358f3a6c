// SusceptibilityExplorer view: the component × probe response matrix, the text coloured token by token
// (susceptibility or influence), the embedding of the samples with a lasso, the selected token's top
// influences and the clustered loss kernel, linked by one component, checkpoint and token.

import { decode } from "../codec.js";
import { fmt, h } from "../dom.js";
import { purge, watchSize } from "../plot.js";
import { readTheme, themeLayout } from "../theme.js";
import { categorical, followTheme, onPlot, syncer } from "./linked.js";
import { NEGATIVE, POSITIVE, chipColor, componentText, diverging, draw, finite, labelWidth, responseFigure, rgb } from "./susceptibility_figures.js";

const MAX_TOKENS = 4000; // chips drawn in the text view; the rest are counted

export function renderSusceptibility({ model, el }) {
  const disposers = [];
  const isStatic = Boolean(model.get("_static"));
  const sync = syncer(model, 120);
  let theme = readTheme(el);
  let data = {};
  let detail = {};
  let component = model.get("selected_component");
  let checkpoint = model.get("checkpoint");
  let token = model.get("selected_token");
  let picked = new Set(model.get("selected_tokens"));

  // ------------------------------------------------------------------ layout
  const info = h("span", { class: "dvz-muted dvz-small", role: "info" });
  const scrubber = h("input", { type: "range", class: "dvz-scrubber", role: "scrubber", min: 0, step: 1, title: "checkpoint" });
  const stepLabel = h("span", { class: "dvz-small", role: "step" });
  const scrubBox = h("label", { class: "dvz-suscept-scrub" }, "checkpoint ", scrubber, stepLabel);
  const textSelect = h(
    "select",
    { role: "text-values", title: "what colours the text" },
    h("option", { value: "susceptibility" }, "susceptibility"),
    h("option", { value: "influence" }, "influence (selected token)"),
  );
  const colorSelect = h(
    "select",
    { role: "color-by", title: "what colours the embedding's points" },
    h("option", { value: "class" }, "class"),
    h("option", { value: "checkpoint" }, "checkpoint"),
    h("option", { value: "susceptibility" }, "susceptibility"),
  );
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });
  const response = h("div", { class: "dvz-plot", role: "response" });
  const embedding = h("div", { class: "dvz-plot", role: "embedding" });
  const embeddingNote = h("div", { class: "dvz-muted dvz-small", role: "embedding-note" });
  const textTitle = h("div", { class: "dvz-section-title", role: "text-title" });
  const colorbar = h("div", { class: "dvz-suscept-colorbar", role: "colorbar" });
  const text = h("div", { class: "dvz-suscept-text", role: "text" });
  const influenceTitle = h("div", { class: "dvz-section-title", role: "influence-title" });
  const influences = h("table", { class: "dvz-scores dvz-suscept-influences", role: "influences" });
  const kernelTitle = h("div", { class: "dvz-section-title", role: "kernel-title" });
  const kernel = h("div", { class: "dvz-plot", role: "kernel" });
  const root = h(
    "div",
    { class: "dvz-panelbox dvz-suscept", tabindex: 0 },
    h("div", { class: "dvz-header" }, h("span", { class: "dvz-title" }, "Susceptibilities"), scrubBox, h("label", {}, "text ", textSelect), h("label", {}, "points ", colorSelect), info),
    errorBox,
    h(
      "div",
      { class: "dvz-suscept-grid" },
      h("div", { class: "dvz-dash-col" }, h("div", { class: "dvz-section-title" }, "Response: component × probe (χ, click a row)"), response, h("div", { class: "dvz-section-title" }, "Sample map (drag a lasso to pick samples; zoom and box in the mode bar; click a point)"), embedding, embeddingNote),
      h("div", { class: "dvz-dash-col" }, textTitle, colorbar, text, influenceTitle, influences, kernelTitle, kernel),
    ),
  );
  el.append(root);

  // ------------------------------------------------------------------ helpers
  const samples = () => data.labels?.length ?? 0;
  const C = () => data.components?.length ?? 0;
  const T = () => data.steps?.shape[0] ?? 0;
  const cIndex = () => Math.max(0, (data.components || []).indexOf(component));
  let uniqueLabels = true;
  // repeated labels (the same token at many positions) carry their index where they are listed
  const label = (i) => data.labels?.[i] ?? `#${i}`;
  const named = (i) => (uniqueLabels ? label(i) : `${label(i)} #${i}`);
  const chiAt = (i) => data.chi.value.get(checkpoint, cIndex(), i);
  const chiSeAt = (i) => data.chi.stderr.get(checkpoint, cIndex(), i);
  const detailFits = () => detail.component === component && detail.checkpoint === checkpoint;
  const influenceMode = () => model.get("text_values") === "influence" && token >= 0 && detail.bif && detailFits();
  const stepText = () => (T() > 1 ? ` · step ${fmt(data.steps.data[checkpoint], 6)}` : "");

  function selectComponent(name) {
    if (!name || name === component) return;
    component = name;
    sync.now("selected_component", name);
    drawSelection();
  }

  function selectToken(i) {
    if (i === token || i === undefined || i === null) return;
    token = i;
    sync.now("selected_token", i);
    drawSelection();
  }

  // ------------------------------------------------------------------ response matrix
  function drawResponse() {
    if (response.offsetWidth === 0 || !data.response) return;
    const { traces, layout } = responseFigure(data, checkpoint, cIndex(), theme);
    draw(response, traces, layout);
    response.dataset.component = component;
    onPlot(response, {
      plotly_click: (event) => {
        const point = event.points?.find((p) => p.data.type === "heatmap");
        if (point) selectComponent(data.components[point.y]);
      },
    });
  }

  // ------------------------------------------------------------------ text coloured by token
  function tokenValues() {
    const n = samples();
    const value = new Float64Array(n);
    const se = new Float64Array(n);
    const influence = influenceMode();
    for (let i = 0; i < n; i++) {
      value[i] = influence ? detail.bif.get(token, i) : chiAt(i);
      se[i] = influence ? detail.bif_stderr.get(token, i) : chiSeAt(i);
    }
    return { value, se, influence };
  }

  const UNSURE_STYLE = "background:rgba(128,128,128,0.16);color:rgba(128,128,128,0.95)";
  // a value within two standard errors of 0 is drawn grey: its sign is not established
  function isUnsure(value, se) {
    return Number.isFinite(value) && Number.isFinite(se) && Math.abs(value) < 2 * se;
  }

  function unsureCount(value, se, influence) {
    let count = 0;
    for (let i = 0; i < value.length; i++) if (!(influence && i === token) && isUnsure(value[i], se[i])) count++;
    return count;
  }

  function drawText() {
    const { value, se, influence } = tokenValues();
    const n = samples();
    let scale = 0;
    for (let i = 0; i < n; i++) if (Number.isFinite(value[i]) && !(influence && i === token)) scale = Math.max(scale, Math.abs(value[i]));
    const symbol = influence ? `BIF with ${named(token)}` : "χ";
    textTitle.textContent = influence
      ? `Influence of each ${data.per_token ? "token" : "sample"} with ${named(token)} under ${componentText(component)}${stepText()}`
      : `Susceptibility of each ${data.per_token ? "token" : "sample"} under ${componentText(component)}${stepText()}`;
    if (model.get("text_values") === "influence" && !influence) {
      const why = !detail.top_index ? "" : !("bif" in detail) ? " (more samples than max_kernel_samples: influences not sent)" : isStatic ? " (saved page: influences of the saved component and checkpoint only)" : " (updating…)";
      textTitle.textContent += token < 0 ? " (pick a token to see its influences)" : why;
    }
    colorbar.replaceChildren(
      h("span", { class: "dvz-small" }, fmt(-scale, 3)),
      h("span", { class: "dvz-suscept-gradient", style: `background: linear-gradient(to right, ${rgb(NEGATIVE, 0.85)}, transparent, ${rgb(POSITIVE, 0.85)})` }),
      h("span", { class: "dvz-small" }, `${fmt(scale, 3)}  (${symbol})`),
      h("span", { class: "dvz-token", role: "unsure-key", style: `margin-left:10px;${UNSURE_STYLE}` }, "grey"),
      h("span", { class: "dvz-small", role: "unsure-count" }, ` within 2 SE of 0: ${unsureCount(value, se, influence)} of ${n}`),
    );
    colorbar.dataset.scale = String(scale);
    const lines = new Map();
    const shown = Math.min(n, MAX_TOKENS);
    for (let i = 0; i < shown; i++) {
      const sequence = data.per_token ? data.sequence.data[i] : 0;
      if (!lines.has(sequence)) lines.set(sequence, []);
      const isSelf = influence && i === token;
      const unsure = !isSelf && isUnsure(value[i], se[i]);
      lines.get(sequence).push(
        h(
          "span",
          {
            class: "dvz-token",
            role: "token",
            "data-index": i,
            "data-value": String(value[i]),
            "data-unsure": String(unsure),
            "data-selected": String(i === token),
            "data-picked": String(picked.has(i)),
            style: isSelf ? "" : unsure ? UNSURE_STYLE : `background:${chipColor(value[i], scale)}`,
            title: `${named(i)}${data.per_token ? ` (sequence ${data.sequence.data[i]}, position ${data.position.data[i]})` : ""}\n${isSelf ? "the selected token" : `${symbol} = ${fmt(value[i], 4)} ± ${fmt(se[i], 2)}${unsure ? " (within 2 SE of 0: grey)" : ""}`}`,
            onclick: () => selectToken(i),
          },
          label(i),
        ),
      );
    }
    const rows = [...lines.values()].map((chips) => h("div", { class: data.per_token ? "dvz-suscept-line" : "dvz-suscept-flow" }, ...chips));
    if (shown < n) rows.push(h("div", { class: "dvz-muted dvz-small" }, `… ${n - shown} more not drawn`));
    text.replaceChildren(...rows);
    text.dataset.component = component;
    text.dataset.mode = influence ? "influence" : "susceptibility";
  }

  // ------------------------------------------------------------------ embedding with lasso
  function embeddingTraces() {
    const xy = data.embedding.xy;
    const n = samples();
    const all = Array.from({ length: n }, (_, i) => i);
    const at = (t) => ({ x: all.map((i) => xy.get(t, i, 0)), y: all.map((i) => xy.get(t, i, 1)) });
    const base = { type: "scatter", mode: "markers", hovertemplate: "%{text}<extra></extra>" };
    const mode = model.get("color_by");
    const selectedpoints = (indices) => (picked.size ? indices.map((i, k) => (picked.has(i) ? k : -1)).filter((k) => k >= 0) : null);
    if (mode === "class" && data.classes) {
      return data.classes.names.map((name, k) => {
        const members = all.filter((i) => data.classes.codes.data[i] === k);
        const { x, y } = at(checkpoint);
        return { ...base, name, x: members.map((i) => x[i]), y: members.map((i) => y[i]), customdata: members, selectedpoints: selectedpoints(members), text: members.map((i) => `${named(i)} · class ${name}<br>χ = ${fmt(chiAt(i), 3)}`), marker: { size: 10, color: categorical(theme, k) } };
      });
    }
    if (mode === "checkpoint" && T() > 1) {
      const points = [];
      for (let t = 0; t < T(); t++) for (const i of all) points.push([t, i]);
      return [{ ...base, name: "checkpoints", x: points.map(([t, i]) => xy.get(t, i, 0)), y: points.map(([t, i]) => xy.get(t, i, 1)), customdata: points.map(([, i]) => i), selectedpoints: selectedpoints(points.map(([, i]) => i)), text: points.map(([t, i]) => `${named(i)} · step ${fmt(data.steps.data[t], 6)}`), marker: { size: 9, color: points.map(([t]) => data.steps.data[t]), colorscale: "Viridis", colorbar: { thickness: 10, outlinewidth: 0, title: { text: "step", side: "right" }, tickfont: { color: theme.font } } } }];
    }
    const chi = all.map(chiAt);
    const scale = Math.max(1e-12, ...chi.filter(Number.isFinite).map(Math.abs));
    const { x, y } = at(checkpoint);
    return [{ ...base, name: "χ", x, y, customdata: all, selectedpoints: selectedpoints(all), text: all.map((i) => `${named(i)}<br>χ = ${fmt(chi[i], 4)} ± ${fmt(chiSeAt(i), 2)}`), marker: { size: 10, color: chi.map((v) => (Number.isFinite(v) ? v : 0)), colorscale: diverging(theme), cmin: -scale, cmax: scale, line: { width: 0.5, color: theme.axis }, colorbar: { thickness: 10, outlinewidth: 0, title: { text: `χ (${component})`, side: "right" }, tickfont: { color: theme.font } } } }];
  }

  function drawEmbedding() {
    if (embedding.offsetWidth === 0 || !data.embedding) return;
    const traces = embeddingTraces();
    if (token >= 0) {
      const xy = data.embedding.xy;
      traces.push({ type: "scatter", mode: "markers", name: "selected", x: [xy.get(checkpoint, token, 0)], y: [xy.get(checkpoint, token, 1)], customdata: [token], marker: { size: 20, color: "rgba(0,0,0,0)", line: { width: 2.5, color: theme.font } }, hoverinfo: "skip", showlegend: false });
    }
    const method = { umap: "UMAP", pca: "PCA", tsne: "t-SNE" }[data.embedding.method] || data.embedding.method;
    const tl = themeLayout(theme);
    draw(embedding, traces, {
      ...tl,
      height: 360,
      margin: { l: 44, r: 8, t: 30, b: traces.length > 2 ? 78 : 38 },
      dragmode: "lasso",
      hovermode: "closest",
      hoverdistance: 14,
      showlegend: traces.length > 2,
      legend: { ...tl.legend, orientation: "h", x: 0, y: -0.2, yanchor: "top" },
      xaxis: { ...tl.xaxis, title: { text: `${method} 1` }, zeroline: false },
      yaxis: { ...tl.yaxis, title: { text: `${method} 2` }, zeroline: false },
      uirevision: "embedding",
    }, { displayModeBar: true }); // shown above the plot: zoom and pan one click from the default lasso
    embeddingNote.textContent = `${method} of ${data.embedding.features}${T() > 1 ? ", all checkpoints together" : ""} · ${picked.size} picked`;
    embedding.dataset.picked = String(picked.size);
    embedding.dataset.method = data.embedding.method;
    onPlot(embedding, {
      plotly_click: (event) => {
        const point = event.points?.[0];
        if (point && point.customdata !== undefined) selectToken(point.customdata);
      },
      plotly_selected: (event) => pick((event?.points || []).map((p) => p.customdata).filter((i) => i !== undefined)),
      plotly_deselect: () => pick([]),
    });
  }

  function pick(indices) {
    picked = new Set(indices);
    sync.now("selected_tokens", [...picked].sort((a, b) => a - b));
    root.dataset.picked = String(picked.size);
    embeddingNote.textContent = embeddingNote.textContent.replace(/\d+ picked$/, `${picked.size} picked`);
    embedding.dataset.picked = String(picked.size);
    for (const chip of text.querySelectorAll("[data-dvz-role=token]")) chip.dataset.picked = String(picked.has(Number(chip.dataset.index)));
  }

  // ------------------------------------------------------------------ influences and the loss kernel
  function drawInfluences() {
    const where = `${componentText(detail.component)}${T() > 1 ? ` · step ${fmt(data.steps.data[detail.checkpoint], 6)}` : ""}`;
    const stale = !detailFits();
    const waiting = stale ? (isStatic ? ` (saved page: computed for ${where} only, not for the scrubber's choice)` : " (updating…)") : "";
    influences.style.opacity = stale && isStatic ? "0.35" : "";
    if (token < 0 || !detail.top_index) {
      influenceTitle.textContent = "Top influences (click a token or a point)";
      influences.replaceChildren();
      return;
    }
    influenceTitle.textContent = `Top influences of ${named(token)} under ${where}${waiting}`;
    const k = detail.top_index.shape[1];
    const rows = [];
    let scale = 0;
    for (let r = 0; r < k; r++) scale = Math.max(scale, Math.abs(detail.top_value.get(token, r)));
    for (let r = 0; r < k; r++) {
      const other = detail.top_index.get(token, r);
      const v = detail.top_value.get(token, r);
      rows.push(
        h(
          "tr",
          { "data-index": other, onclick: () => selectToken(other) },
          h("td", {}, named(other)),
          h("td", { title: `BIF = ${fmt(v, 5)} ± ${fmt(detail.top_stderr.get(token, r), 3)}` }, h("span", { class: "dvz-bar", style: `width:${scale > 0 ? (Math.abs(v) / scale) * 50 : 0}px;background:${rgb(v >= 0 ? POSITIVE : NEGATIVE)}` }), `${fmt(v, 3)} ± ${fmt(detail.top_stderr.get(token, r), 2)}`),
        ),
      );
    }
    influences.replaceChildren(h("thead", {}, h("tr", {}, h("th", {}, data.per_token ? "token" : "sample"), h("th", {}, "BIF ± SE"))), h("tbody", {}, ...rows));
    influences.dataset.token = String(token);
  }

  function drawKernel() {
    const n = samples();
    if (!detail.correlation) {
      kernelTitle.textContent = detail.top_index ? `Loss kernel: ${n} samples, more than the ${data.max_kernel_samples} drawn (max_kernel_samples=)` : "";
      kernel.hidden = true;
      return;
    }
    kernel.hidden = false;
    const where = `${componentText(detail.component)}${T() > 1 ? ` · step ${fmt(data.steps.data[detail.checkpoint], 6)}` : ""}`;
    const stale = !detailFits() && isStatic;
    kernelTitle.textContent = `Loss kernel (correlation) in clustered order, under ${where}${stale ? ` (saved page: computed for ${where} only, not for the scrubber's choice)` : ""}`;
    kernel.style.opacity = stale ? "0.35" : "";
    if (kernel.offsetWidth === 0) return;
    const order = Array.from(detail.order.data);
    const z = order.map((i) => order.map((j) => finite(detail.correlation.get(i, j))));
    const names = order.map(named);
    const tl = themeLayout(theme);
    const at = order.indexOf(token);
    const shapes = at >= 0 ? [{ type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y", y0: at - 0.5, y1: at + 0.5, line: { color: theme.font, width: 1.5 } }] : [];
    const ticks = n <= 40;
    draw(
      kernel,
      [{ type: "heatmap", z, x: order.map((_, k) => k), y: order.map((_, k) => k), text: names.map((a) => names.map((b) => `${a} · ${b}`)), hovertemplate: "%{text}<br>ρ = %{z:.3f}<extra></extra>", colorscale: diverging(theme), zmin: -1, zmax: 1, colorbar: { thickness: 10, outlinewidth: 0, title: { text: "ρ", side: "right" }, tickfont: { color: theme.font } } }],
      {
        ...tl,
        height: 340,
        margin: { l: ticks ? Math.min(160, Math.ceil(labelWidth(names, theme.fontFamily, 9)) + 16) : 20, r: 8, t: 8, b: ticks ? 50 : 20 },
        xaxis: { ...tl.xaxis, showgrid: false, zeroline: false, showticklabels: ticks, ticks: ticks ? "outside" : "", tickvals: order.map((_, k) => k), ticktext: names, tickfont: { size: 9 } },
        yaxis: { ...tl.yaxis, showgrid: false, zeroline: false, autorange: "reversed", showticklabels: ticks, ticks: ticks ? "outside" : "", tickvals: order.map((_, k) => k), ticktext: names, tickfont: { size: 9 } },
        shapes,
        uirevision: "kernel",
      },
    );
    kernel.dataset.token = String(token);
    onPlot(kernel, {
      plotly_click: (event) => {
        const point = event.points?.[0];
        if (point) selectToken(Number(detail.order.data[point.y]));
      },
    });
  }

  // ------------------------------------------------------------------ controls and wiring
  function drawControls() {
    scrubBox.hidden = T() < 2;
    scrubber.max = String(Math.max(0, T() - 1));
    scrubber.value = String(checkpoint);
    stepLabel.textContent = T() > 1 ? `step ${fmt(data.steps.data[checkpoint], 6)}` : "";
    textSelect.value = model.get("text_values");
    colorSelect.value = model.get("color_by");
    colorSelect.querySelector("option[value=class]").disabled = !data.classes;
    colorSelect.querySelector("option[value=checkpoint]").disabled = T() < 2;
    info.textContent = `${data.observable}: ${samples()} ${data.per_token ? "tokens" : "samples"} · ${C()} component${C() === 1 ? "" : "s"}`;
    const error = model.get("error");
    errorBox.hidden = !error;
    errorBox.textContent = error ? `⚠ ${error}` : "";
  }

  function drawSelection() {
    root.dataset.component = component;
    root.dataset.checkpoint = String(checkpoint);
    root.dataset.token = String(token);
    drawControls();
    drawResponse();
    drawText();
    drawEmbedding();
    drawInfluences();
    drawKernel();
  }

  function drawAll() {
    data = decode(model.get("data")) || {};
    detail = decode(model.get("detail")) || {};
    if (!data.labels) return;
    uniqueLabels = new Set(data.labels).size === data.labels.length;
    drawSelection();
    root.dataset.dvzDrawn = String(Number(root.dataset.dvzDrawn || 0) + 1);
  }

  function setCheckpoint(index) {
    if (!(T() > 1) || (index = Math.max(0, Math.min(T() - 1, index))) === checkpoint) return;
    checkpoint = index;
    sync.throttled("checkpoint", checkpoint);
    drawSelection();
  }
  scrubber.addEventListener("input", () => setCheckpoint(Number(scrubber.value)));
  const KEYS = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1, PageUp: 10, PageDown: -10 };
  root.addEventListener("keydown", (event) => {
    const target = event.target;
    if ((target.tagName === "INPUT" && target !== scrubber) || target.tagName === "SELECT") return;
    if (event.key in KEYS) setCheckpoint(checkpoint + KEYS[event.key] * (event.shiftKey ? 10 : 1));
    else if (event.key === "Home") setCheckpoint(0);
    else if (event.key === "End") setCheckpoint(T() - 1);
    else return;
    event.preventDefault();
  });
  // the keyboard scrubs as in the dashboard (arrows ±1, shift or Page ±10, Home / End); clicks keep it here
  root.addEventListener("mousedown", (event) => {
    if (!["INPUT", "SELECT", "OPTION"].includes(event.target.tagName)) root.focus({ preventScroll: true });
  });
  textSelect.addEventListener("change", () => {
    sync.now("text_values", textSelect.value);
    drawText();
  });
  colorSelect.addEventListener("change", () => {
    sync.now("color_by", colorSelect.value);
    drawEmbedding();
  });

  const on = (names, fn) => {
    for (const name of names.split(" ")) model.on(`change:${name}`, fn);
    disposers.push(() => names.split(" ").forEach((name) => model.off(`change:${name}`, fn)));
  };
  on("data", drawAll);
  on("detail", () => {
    detail = decode(model.get("detail")) || {};
    drawText();
    drawInfluences();
    drawKernel();
  });
  on("error", drawControls);
  on("selected_component checkpoint selected_token", () => {
    const next = [model.get("selected_component"), model.get("checkpoint"), model.get("selected_token")];
    if (next[0] === component && next[1] === checkpoint && next[2] === token) return;
    [component, checkpoint, token] = next;
    drawSelection();
  });
  on("selected_tokens", () => {
    const next = new Set(model.get("selected_tokens"));
    if (next.size === picked.size && [...next].every((i) => picked.has(i))) return;
    picked = next;
    drawEmbedding();
    drawText();
  });
  on("color_by", drawEmbedding);
  on("text_values", () => {
    textSelect.value = model.get("text_values");
    drawText();
  });
  disposers.push(followTheme(el, root, root, theme, (next) => (theme = next), drawAll));
  // figures asked to draw while hidden (a detached output, a theme swap) are drawn when they get a size
  let drawnWidth = 0;
  disposers.push(
    watchSize(response, () => {
      if (response.offsetWidth > 0 && drawnWidth === 0) {
        drawnWidth = response.offsetWidth;
        drawSelection();
      }
    }),
  );
  drawAll();
  root.dataset.dvzReady = "1";
  return () => {
    disposers.forEach((dispose) => dispose());
    for (const p of [response, embedding, kernel]) purge(p);
  };
}
