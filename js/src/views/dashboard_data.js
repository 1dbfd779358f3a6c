// What the DevelopmentDashboard shows at a checkpoint, looked up in the decoded panel data (pure).

import { estimate } from "./conventions.js";
import { nearestIndex } from "./linked.js";

/**
 * For every checkpoint, the sweep checkpoint of curve [i, j] that is its own (-1: none) and the
 * nearest one in log(step + 1) that has a result (-1: none yet; the earlier one on a tie, as Python's
 * ``nearest_estimate``).
 * @returns {{own: Int32Array, nearest: Int32Array}} each of shape (checkpoints,)
 */
export function estimateIndex(c, [i, j], steps) {
  const own = new Int32Array(steps.length).fill(-1);
  const nearest = new Int32Array(steps.length).fill(-1);
  if (!c) return { own, nearest };
  const [, D, M] = c.mean.shape;
  const base = (i * D + j) * M;
  const done = [];
  for (let k = 0; k < M; k++) {
    own[c.index.data[k]] = k;
    if (!Number.isNaN(c.healthy.data[base + k])) done.push(k);
  }
  if (!done.length) return { own, nearest };
  const doneSteps = Float64Array.from(done, (k) => Math.log1p(c.steps.data[k])); // nearest on the log step axis
  for (let t = 0; t < steps.length; t++) nearest[t] = done[nearestIndex(doneSteps, Math.log1p(steps[t]))];
  return { own, nearest };
}

/** Curve [i, j] at sweep checkpoint ``k``: [mean, standard error, healthy (1, 0, -1: no LLC, NaN: not computed)]. */
export function estimateAt(c, [i, j], k) {
  if (!c || k < 0) return [NaN, NaN, NaN];
  const [, D, M] = c.mean.shape;
  const offset = (i * D + j) * M + k;
  return [c.mean.data[offset], c.se.data[offset], c.healthy.data[offset]];
}

/** A loss series' value at exactly ``step``, or null when it was not recorded there. */
export function lossAtStep(series, step) {
  if (!series) return null;
  const k = nearestIndex(series.steps.data, step);
  return series.steps.data[k] === step ? series.values.data[k] : null;
}

/** The dynamics point at exactly ``step`` in plane [px, py]: [x, y, row], or null when there is none. */
export function pointAtStep(d, [px, py], step) {
  if (!d) return null;
  const k = nearestIndex(d.steps.data, step);
  if (d.steps.data[k] !== step) return null;
  const K = d.coords.shape[1];
  return [d.coords.data[k * K + px], d.coords.data[k * K + py], k];
}

/**
 * The LLC part of the readout at checkpoint ``index``: its own estimate, or the nearest one named
 * as such ({text, exact, step: the estimate's step}).
 */
export function llcReadout(c, ij, { own, nearest }, index) {
  const mine = own[index] ?? -1;
  const k = mine >= 0 ? mine : nearest[index] ?? -1;
  if (!c || k < 0) return { text: "no LLC estimate yet", exact: false, step: null };
  const [m, s, healthy] = estimateAt(c, ij, k);
  const value = healthy === -1 ? "none (w* not a local minimum)" : `${estimate(m, s)}${healthy === 0 ? " (unhealthy)" : ""}`;
  const step = c.steps.data[k];
  if (mine >= 0) return { text: `LLC ${value}`, exact: true, step };
  return { text: `LLC – (none here; nearest estimate, step ${step}: ${value})`, exact: false, step };
}
