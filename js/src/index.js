// The shared widget runtime: every view, plotly and the stylesheet, loaded once per page.
//
// The hidden DvzRuntime widget carries this module as its _esm. anywidget imports it once per
// page and keeps what `initialize` returns as the widget's exports; each view widget's own _esm
// (view.js, ~1 KB) asks anywidget for those exports (host.getWidget) and calls `render`.
// Python picks the view with the synced `_view` trait; the root element carries
// data-dvz-widget="<view>" so tests and users' automation can find it.

import baseCss from "./styles.css";
import { renderDashboard } from "./views/dashboard.js";
import { renderHeads } from "./views/heads.js";
import { renderRefined } from "./views/refined.js";
import { renderSampler } from "./views/sampler.js";
import { renderSusceptibility } from "./views/susceptibility.js";
import viewsCss from "./views/widgets.css";

const css = `${baseCss}\n${viewsCss}`;

/** Runtime API version: view.js checks it, so a stale runtime fails with a clear message. */
const API = 1;

const VIEWS = {
  SamplerWidget: renderSampler,
  DevelopmentDashboard: renderDashboard,
  RefinedLLCWidget: renderRefined,
  HeadClusterWidget: renderHeads,
  SusceptibilityExplorer: renderSusceptibility,
};

// how many times this module was evaluated in the page (tests assert it is once)
globalThis.__dvz_runtime_loads = (globalThis.__dvz_runtime_loads || 0) + 1;

function injectStyles() {
  const id = "dvz-styles";
  if (document.getElementById(id)?.textContent === css) return;
  document.getElementById(id)?.remove();
  document.head.append(Object.assign(document.createElement("style"), { id, textContent: css }));
}

/** Render view ``model.get("_view")`` into ``el``; returns its cleanup function. */
function renderView({ model, el }) {
  injectStyles();
  const name = model.get("_view");
  el.setAttribute("data-dvz-widget", name);
  el.classList.add("dvz-root");
  const view = VIEWS[name];
  if (!view) {
    el.textContent = `devinterp_viz: this runtime has no view named ${name}; rebuild the JS (npm --prefix js run build).`;
    return undefined;
  }
  try {
    return view({ model, el });
  } catch (error) {
    el.append(Object.assign(document.createElement("pre"), { className: "dvz-error", textContent: `devinterp_viz: ${error.stack || error}` }));
    throw error;
  }
}

const exportsOfRuntime = { API, render: renderView, views: Object.keys(VIEWS) };

export default {
  // anywidget keeps the returned object as this widget's exports (host.getWidget(ref).exports)
  initialize() {
    return exportsOfRuntime;
  },
  // the runtime widget itself is never displayed; say what it is if someone displays it
  render({ el }) {
    el.textContent = `devinterp_viz widget runtime (views: ${Object.keys(VIEWS).join(", ")}); it draws nothing itself.`;
  },
};
