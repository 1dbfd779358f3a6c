// One visual language for an estimate's verdict and one way to write an estimate, in every view
// (the static figures' copy is devinterp_viz/plotting.py; tests/test_static_figures.py checks that
// the two agree): undefined (w* is not a local minimum, so there is no LLC) is a grey hollow tick on
// the step axis and no point; unhealthy is a red ✕ at the estimate (on the step axis when the
// estimate is not finite).

import { fmt } from "../dom.js";

export const UNHEALTHY_LABEL = "✕ unhealthy estimate";
export const UNDEFINED_LABEL = "grey tick: no LLC (undefined: w* is not a local minimum)";

/** ``"λ̂ ± SE"``: the estimate to 4 significant digits, its standard error to 2 (``0.2559 ± 0.005``). */
export const estimate = (mean, se) => `${fmt(mean, 4)} ± ${fmt(se, 2)}`;

/** The red ✕ of an unhealthy estimate (plotly marker). */
export const unhealthyMarker = (theme) => ({ symbol: "x-thin", size: 11, color: theme.error, line: { width: 2.5, color: theme.error } });

/** The grey hollow tick of an undefined estimate (plotly marker). */
export const undefinedMarker = (theme) => ({ symbol: "line-ns-open", size: 12, color: theme.fontMuted, line: { width: 2, color: theme.fontMuted } });

/**
 * Legend-only traces (no points) naming the marks a figure holds: ``counts.unhealthy`` and
 * ``counts.undefined`` say which to list.
 */
export function verdictLegend(theme, { unhealthy = 0, undefined: undef = 0 }) {
  const entry = (name, marker) => ({ type: "scatter", mode: "markers", x: [null], y: [null], name, marker, hoverinfo: "skip", showlegend: true });
  return [...(unhealthy ? [entry(UNHEALTHY_LABEL, unhealthyMarker(theme))] : []), ...(undef ? [entry(UNDEFINED_LABEL, undefinedMarker(theme))] : [])];
}
