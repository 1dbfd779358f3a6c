// Layout the DevelopmentDashboard does after plotly has drawn: the step panels' shared x range and point labels kept apart.

import { h } from "../dom.js";
import { Cursor, placeLabels, plotly } from "./linked.js";

/**
 * The x range a plotly relayout event asks for: [a, b] (axis units) after a zoom or pan, null
 * after an autorange (a double-click: back to every checkpoint), undefined when x did not change.
 */
export function requestedXRange(change) {
  if (change["xaxis.autorange"]) return null;
  if (change["xaxis.range[0]"] !== undefined) return [change["xaxis.range[0]"], change["xaxis.range[1]"]];
  if (Array.isArray(change["xaxis.range"])) return [...change["xaxis.range"]];
  return undefined;
}

/** Give every drawn figure of ``figures`` the x range ``range`` (skipping those that have it). */
export function applyXRange(figures, range) {
  for (const gd of figures) {
    const xa = gd._fullLayout?.xaxis;
    if (!xa) continue;
    if (Math.abs(xa.range[0] - range[0]) > 1e-9 || Math.abs(xa.range[1] - range[1]) > 1e-9 || xa.autorange) {
      plotly().relayout(gd, { "xaxis.range": [...range], "xaxis.autorange": false });
    }
  }
}

/** Move the point annotations of a drawn figure apart (linked.js placeLabels), now that it has pixels. */
export function spreadAnnotations(gd) {
  const fl = gd._fullLayout;
  const notes = gd.layout?.annotations || [];
  if (!fl?.xaxis?._length || !notes.length) return;
  const { xaxis: xa, yaxis: ya } = fl;
  const labels = notes.map((a) => ({ x: xa._offset + xa.c2p(a.x), y: ya._offset + ya.c2p(a.y), width: 6.2 * a.text.length + 8, height: 16 }));
  const bounds = { left: xa._offset, top: ya._offset, right: xa._offset + xa._length, bottom: ya._offset + ya._length };
  const update = {};
  placeLabels(labels, bounds).forEach(({ ax, ay }, k) => {
    if (Math.abs(notes[k].ax - ax) > 0.5 || Math.abs(notes[k].ay - ay) > 0.5) {
      update[`annotations[${k}].ax`] = ax;
      update[`annotations[${k}].ay`] = ay;
    }
  });
  if (Object.keys(update).length) plotly().relayout(gd, update);
}

/**
 * The ring at the nearest LLC estimate (when the selected checkpoint has none), labelled "nearest
 * estimate". Only its sides are drawn (widgets.css), so the estimate's ± SE bar passes through
 * untouched; the label goes to whichever side of the ring keeps it inside the plot area.
 */
export class NearestRing extends Cursor {
  constructor(box, gd) {
    super(box, gd, { kind: "point", role: "nearest-llc", variant: "nearest" });
    this.label = h("span", { class: "dvz-cursor-label" }, "nearest estimate");
    this.el.append(this.label);
  }

  refresh() {
    super.refresh();
    const fl = this.gd._fullLayout;
    if (this.el.hidden || !this.at || !fl?.xaxis?._length) return;
    const { xaxis: xa, yaxis: ya } = fl;
    const x = xa._offset + xa.c2p(this.at[0]);
    const y = ya._offset + ya.c2p(this.at[1]);
    const ring = this.el.offsetWidth;
    const gap = 4;
    const toLeft = x + ring / 2 + gap + this.label.offsetWidth > xa._offset + xa._length;
    const below = y - ring / 2 - this.label.offsetHeight < ya._offset;
    this.label.style.left = toLeft ? "auto" : `${ring + gap}px`;
    this.label.style.right = toLeft ? `${ring + gap}px` : "auto";
    this.label.style.top = below ? `${ring}px` : `${-this.label.offsetHeight}px`;
    this.el.dataset.labelSide = `${below ? "below" : "above"}-${toLeft ? "left" : "right"}`;
  }
}
