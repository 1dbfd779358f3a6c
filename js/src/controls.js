// Sampler-setting controls made from a widget's `setting_spec` (SamplerSettings' field metadata, sent by
// Python): a select for a choice, a log slider with a text box for a log-scale number, a number box
// otherwise; each with its label, its hint as a tooltip, and the same checks as Python before it syncs.

import { fmt, h } from "./dom.js";

/**
 * Check typed text against a setting: {ok, value} or {ok: false, message}.
 * @param {object} spec one entry of `setting_spec` ({name, label, kind, minimum, exclusive, optional, choices})
 * @param {string} text
 */
export function checkSetting(spec, text) {
  const trimmed = String(text).trim();
  if (spec.kind === "choice") {
    const known = spec.choices.some(([value]) => value === trimmed);
    return known ? { ok: true, value: trimmed } : { ok: false, message: `${spec.label}: choose one of ${spec.choices.map(([, label]) => label).join(", ")}` };
  }
  if (trimmed === "") return spec.optional ? { ok: true, value: null } : { ok: false, message: `${spec.label} is required` };
  const value = Number(trimmed);
  if (!Number.isFinite(value)) return { ok: false, message: `${spec.label} must be a number` };
  if (spec.kind === "count" && !Number.isInteger(value)) return { ok: false, message: `${spec.label} must be a whole number` };
  if (spec.exclusive ? value <= spec.minimum : value < spec.minimum) {
    return { ok: false, message: `${spec.label} must be ${spec.exclusive ? ">" : "≥"} ${spec.minimum}` };
  }
  return { ok: true, value };
}

/**
 * Call ``commit`` when a box's value is committed: on change (blur) and on Enter. In JupyterLab a
 * text box in an output gets no change event from Enter (the notebook takes the key), so Enter
 * is handled here.
 */
export function onCommit(input, commit) {
  input.addEventListener("change", commit);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") commit();
  });
}

const role = (name) => name.replaceAll("_", "-");
/** A setting's value as its box shows it: reals to 4 significant digits (nβ 21.71, not 21.71472409516259). */
const shown = (value, kind) => (value === null || value === undefined ? "" : kind === "real" ? fmt(value, 4) : String(value));

function markValid(input, check, hint) {
  input.classList.toggle("dvz-invalid", !check.ok);
  input.title = check.ok ? hint : check.message;
}

function row(spec, ...controls) {
  return h("label", { class: "dvz-field", title: spec.hint }, h("span", { class: "dvz-label" }, spec.label), ...controls);
}

/** A choice: a select of the choices' labels. */
function choiceControl(spec, sync) {
  const select = h("select", { role: role(spec.name), title: spec.hint, onchange: () => sync.now(spec.name, select.value) },
    spec.choices.map(([value, label]) => h("option", { value }, label)));
  return { element: row(spec, select), update: (value) => { select.value = value; } }; // a select is never invalid
}

/** A log-scale number: a slider over `log_range` decades and a text box, kept in step. */
function logControl(spec, sync) {
  const [low, high] = spec.log_range;
  const slider = h("input", { type: "range", role: role(spec.name), min: low, max: high, step: 0.01, title: spec.hint, "aria-label": `log10 ${spec.label}` });
  const text = h("input", { type: "text", role: `${role(spec.name)}-value`, class: "dvz-lr-text", size: 8, title: spec.hint, "aria-label": spec.label });
  const fromSlider = () => Number((10 ** Number(slider.value)).toPrecision(3));
  slider.addEventListener("input", () => {
    text.value = fmt(fromSlider());
    markValid(text, { ok: true }, spec.hint);
    sync.later(spec.name, fromSlider());
  });
  slider.addEventListener("change", () => sync.now(spec.name, fromSlider()));
  onCommit(text, () => {
    const check = checkSetting(spec, text.value);
    markValid(text, check, spec.hint);
    if (!check.ok) return;
    slider.value = String(Math.log10(check.value));
    sync.now(spec.name, check.value);
  });
  const update = (value, force) => {
    if (force || document.activeElement !== slider) slider.value = String(Math.log10(value));
    if (force || document.activeElement !== text) text.value = fmt(value);
    markValid(text, { ok: true }, spec.hint);
  };
  return { element: row(spec, h("div", { class: "dvz-lr" }, slider, text)), update };
}

/** A number: a number box (empty = None for an optional setting). */
function numberControl(spec, sync) {
  const input = h("input", {
    type: "number",
    role: role(spec.name),
    min: spec.minimum,
    step: spec.kind === "count" ? 1 : "any",
    placeholder: spec.optional ? "auto" : undefined,
    title: spec.hint,
  });
  onCommit(input, () => {
    const check = checkSetting(spec, input.value);
    markValid(input, check, spec.hint);
    if (check.ok) sync.now(spec.name, check.value);
  });
  const update = (value, force) => {
    if (force || document.activeElement !== input) input.value = shown(value, spec.kind);
    markValid(input, { ok: true }, spec.hint);
  };
  return { element: row(spec, input), update };
}

/**
 * Controls for the settings of the widget's `setting_spec` (those in `names`, in that order; default all).
 * @param {object} model the widget model
 * @param {{now(name, value), later(name, value)}} sync how a control writes to Python (now, or debounced)
 * @param {string[]} [names]
 * @returns {{elements: HTMLElement[], names: string[], update(): void, reset(): void, disable(flag): void}} the controls (the `advanced` ones folded into a
 *   "more settings" details element at the end); `update()` shows the model's values (except in a
 *   control the user is typing in) and clears invalid marks; `reset()` shows them in every control,
 *   the focused one too (a job starts with the model's values, whatever was left typed).
 */
export function settingControls(model, sync, names) {
  const specs = model.get("setting_spec") || [];
  const chosen = names ? names.map((name) => specs.find((s) => s.name === name)).filter(Boolean) : specs;
  const controls = chosen.map((spec) => {
    const make = spec.kind === "choice" ? choiceControl : spec.log ? logControl : numberControl;
    return { name: spec.name, advanced: spec.advanced, ...make(spec, sync) };
  });
  const main = controls.filter((c) => !c.advanced).map((c) => c.element);
  const more = controls.filter((c) => c.advanced).map((c) => c.element);
  const folded = more.length ? [h("details", { class: "dvz-more", role: "more-settings" }, h("summary", { title: "settings most runs leave at their defaults: thinning, batch size, seed" }, "more settings"), more)] : [];
  const elements = [...main, ...folded];
  return {
    elements,
    names: controls.map((c) => c.name),
    update() {
      for (const c of controls) c.update(model.get(c.name), false);
      markUnrecorded(model, controls);
    },
    reset() {
      for (const c of controls) c.update(model.get(c.name), true);
      markUnrecorded(model, controls);
    },
    disable(flag) {
      for (const el of elements) for (const input of el.querySelectorAll("input, select")) input.disabled = flag;
    },
  };
}

/** Controls of settings a shown result does not record (`unrecorded`): blank, "not recorded", not a default. */
function markUnrecorded(model, controls) {
  const unrecorded = model.get("unrecorded") || [];
  for (const c of controls) {
    if (!unrecorded.includes(c.name)) continue;
    for (const input of c.element.querySelectorAll("input, select")) {
      if (input.tagName === "SELECT") input.selectedIndex = -1;
      else if (input.type !== "range") input.value = "";
      input.placeholder = "not recorded";
      input.title = "the result shown does not record this setting";
    }
  }
}
