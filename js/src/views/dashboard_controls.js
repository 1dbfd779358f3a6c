// The DevelopmentDashboard's controls: header (curve, plane, axes, smoothing, compute) and the scrubber's toolbar.

import { h } from "../dom.js";

/** Every control of the dashboard, each with a tooltip; the handlers are the view's. */
export function dashboardControls({ onPlay, onSwapPlane, onRun, onStop }) {
  const playButton = h("button", { role: "play", class: "dvz-button dvz-icon-button", title: "play / pause through every checkpoint (space)", onclick: onPlay }, "▶");
  const slider = h("input", {
    type: "range", role: "scrubber", class: "dvz-scrubber", min: 0, max: 0, step: 1, value: 0, "aria-label": "checkpoint",
    title: "checkpoint: drag, or ←/→ (shift: 10), PageUp/PageDown, Home/End; every checkpoint with a loss, LLC or dynamics point",
  });
  const stepInput = h("input", { type: "number", role: "step-input", class: "dvz-step-input", title: "go to the checkpoint nearest this training step (Enter)", "aria-label": "training step" });
  const readout = h("span", { role: "readout", class: "dvz-readout", title: "the selected checkpoint's values; an LLC in brackets is the nearest estimate, not this checkpoint's" });
  const curveSelect = h("select", { role: "curve", title: "which LLC curve (selection · data distribution) the LLC panel shows" });
  const planeX = h("select", { role: "plane-x", title: "principal component on the horizontal axis of the essential-dynamics plane" });
  const planeY = h("select", { role: "plane-y", title: "principal component on the vertical axis of the essential-dynamics plane" });
  const swapPlane = h("button", { role: "plane-swap", class: "dvz-button dvz-icon-button", title: "swap the plane's axes", onclick: onSwapPlane }, "⇄");
  const planeNote = h("span", { role: "plane-note", class: "dvz-legend-note", "aria-live": "polite" });
  const logX = h("input", { type: "checkbox", role: "log-x", title: "training steps on a log axis (step 0 drawn at half the first positive step)" });
  const logY = h("input", { type: "checkbox", role: "log-y", title: "the loss on a log axis" });
  const smoothing = h("input", { type: "range", role: "smoothing", class: "dvz-smoothing", min: 0, max: 0.95, step: 0.05, value: 0, "aria-label": "loss smoothing" });
  const smoothingValue = h("span", { role: "smoothing-value", class: "dvz-legend-note" });
  const runButton = h("button", { role: "run", class: "dvz-button dvz-primary", title: "compute the losses, essential dynamics and LLC sweep in the background", onclick: onRun }, "▶ Compute");
  const stopButton = h("button", { role: "stop", class: "dvz-button", title: "stop computing; what was computed stays", onclick: onStop }, "■ Stop");
  const statusBadge = h("span", { class: "dvz-status", role: "status", title: "state of the background computation" });
  const errorBox = h("div", { class: "dvz-error", role: "error", hidden: true });
  const planeField = h("span", { class: "dvz-field-inline", title: "which principal components the essential-dynamics plane shows" }, "plane ", planeX, " × ", planeY, " ", swapPlane, " ", planeNote);
  const curveField = h("span", { title: curveSelect.title }, "LLC of ", curveSelect);
  const logYField = h("label", { role: "log-y-field", title: logY.title }, logY, " log loss");
  const smoothingField = h("label", { role: "smoothing-field", title: "display only: exponential moving average of the loss curves (0 = raw); the raw curve stays faint, the readout is raw" }, "smooth ", smoothing, smoothingValue);

  const header = h(
    "div",
    { class: "dvz-header" },
    h("span", { class: "dvz-title" }, "Development"),
    curveField,
    planeField,
    h("label", { title: logX.title }, logX, " log steps"),
    logYField,
    smoothingField,
    runButton,
    stopButton,
    statusBadge,
  );
  const toolbar = h("div", { class: "dvz-toolbar" }, playButton, slider, h("label", { title: stepInput.title }, "step ", stepInput), readout);
  return { playButton, slider, stepInput, readout, curveSelect, planeX, planeY, swapPlane, planeNote, logX, logY, smoothing, smoothingValue, runButton, stopButton, statusBadge, errorBox, planeField, curveField, logYField, smoothingField, header, toolbar };
}
