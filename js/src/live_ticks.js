// Axis ticks of the live canvas (live.js), placed and labelled as plotly's automatic ticks are.

/** The smallest "nice" tick step (1, 2 or 5 × 10^k) giving at most about ``count`` steps over ``span``. */
export function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
}

/** Tick values at multiples of a nice step inside [lo, hi], about one per ``spacing`` of ``lengthPx``. */
export function niceTicks(lo, hi, lengthPx, spacing) {
  if (!(hi > lo)) return { values: [], step: 1 };
  const step = niceStep(hi - lo, Math.min(10, Math.max(3, lengthPx / spacing)));
  const values = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) values.push(k * step);
  return { values, step };
}

/** A tick label like plotly's: as many decimals as the step needs, trailing zeros dropped. */
export function tickLabel(value, step) {
  if (Math.abs(value) < step * 1e-6) return "0";
  if (Math.abs(value) >= 1e5 || step < 1e-4) return Number(value.toPrecision(3)).toExponential().replace("e+", "e");
  return String(Number(value.toFixed(Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9))))));
}

/** log10 of the positive values (others NaN: not drawn), for a panel on a log axis. */
export function log10Of(ys) {
  const out = new Float32Array(ys.length);
  for (let i = 0; i < ys.length; i++) out[i] = ys[i] > 0 ? Math.log10(ys[i]) : NaN;
  return out;
}

/** Tick label of a log panel, whose values are exponents: 10^k at whole k. */
export function logTickLabel(exponent) {
  return exponent === 0 ? "1" : `1e${exponent}`;
}

/** Whole exponents inside [lo, hi] (at most about 8, thinned). */
export function logTicks(lo, hi) {
  const first = Math.ceil(lo);
  const last = Math.floor(hi);
  const every = Math.max(1, Math.ceil((last - first + 1) / 8));
  const values = [];
  for (let k = first; k <= last; k += every) values.push(k);
  return { values, step: every };
}
