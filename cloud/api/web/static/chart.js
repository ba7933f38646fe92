// A small SVG line chart of downsampled history: per series the mean per interval as a line
// (broken where intervals are missing) and the lowest..highest value as a shaded band, alert
// thresholds as labelled dashed lines. The SVG is an image with a title and a text
// description of what it shows, for screen readers. Pure DOM: no library, no inline style.

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 220;
const MARGIN = { top: 12, right: 86, bottom: 28, left: 44 };

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(key, String(value));
  }
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Round tick values covering [low, high], about ``count`` of them. */
export function ticks(low, high, count = 4) {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const first = Math.ceil(low / step) * step;
  const found = [];
  for (let value = first; value <= high + step * 1e-9; value += step) found.push(Number(value.toFixed(10)));
  return found;
}

/** Runs of consecutive points, broken where the gap exceeds ``maxGap`` ms. */
export function runs(points, maxGap) {
  const found = [];
  let current = [];
  for (const point of points) {
    if (current.length && point.t - current[current.length - 1].t > maxGap) {
      found.push(current);
      current = [];
    }
    current.push(point);
  }
  if (current.length) found.push(current);
  return found;
}

/** The median time between consecutive points: readings taken every half hour are joined
 * up even when the chart's interval is shorter; a gap of several such spacings is a gap. */
export function usualSpacing(series) {
  const gaps = series
    .flatMap((s) => s.points.slice(1).map((p, i) => p.t - s.points[i].t))
    .filter((g) => g > 0)
    .sort((a, b) => a - b);
  return gaps.length ? gaps[Math.floor(gaps.length / 2)] : 0;
}

function timeTicks(start, end, timeZone) {
  const span = end - start;
  const hour = 3600e3;
  const day = 24 * hour;
  const step = [hour, 2 * hour, 3 * hour, 6 * hour, 12 * hour, day, 2 * day, 7 * day].find((s) => span / s <= 6) || 7 * day;
  const options = step < day ? { hour: "2-digit", minute: "2-digit" } : { day: "numeric", month: "short" };
  let format;
  try {
    format = new Intl.DateTimeFormat("en-GB", { ...options, timeZone: timeZone || undefined });
  } catch {
    format = new Intl.DateTimeFormat("en-GB", options);
  }
  const found = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) found.push({ t, label: format.format(new Date(t)) });
  return found;
}

/**
 * series: [{ label, className, points: [{ t (ms), mean, min, max }] }]
 * thresholds: [{ value, severity, direction: "low"|"high" }]
 */
export function lineChart({ id, title, unit, digits = 0, series, thresholds = [], start, end, every, timeZone }) {
  const values = series.flatMap((s) => s.points.flatMap((p) => [p.min, p.max]));
  const limits = thresholds.map((t) => t.value);
  let low = Math.min(...values, ...limits);
  let high = Math.max(...values, ...limits);
  if (!Number.isFinite(low) || !Number.isFinite(high)) {
    low = 0;
    high = 1;
  }
  if (high - low < 1e-9) {
    low -= 1;
    high += 1;
  }
  const pad = (high - low) * 0.06;
  low -= pad;
  high += pad;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (t) => MARGIN.left + ((t - start) / (end - start)) * plotW;
  const y = (v) => MARGIN.top + (1 - (v - low) / (high - low)) * plotH;
  const f = (n) => n.toFixed(1);

  const titleId = `${id}-title`;
  const descId = `${id}-desc`;
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-labelledby": titleId,
    "aria-describedby": descId,
    class: "chart",
    focusable: "false",
  });
  root.append(svg("title", { id: titleId }, title), svg("desc", { id: descId }, describe(series, thresholds, unit, digits)));

  const grid = svg("g", { class: "grid", "aria-hidden": "true" });
  for (const value of ticks(low + pad, high - pad)) {
    grid.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: f(y(value)), y2: f(y(value)) }));
    grid.append(svg("text", { x: MARGIN.left - 6, y: f(y(value) + 4), "text-anchor": "end", class: "axis" }, value.toFixed(digits)));
  }
  for (const tick of timeTicks(start, end, timeZone)) {
    grid.append(svg("line", { x1: f(x(tick.t)), x2: f(x(tick.t)), y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom, class: "vertical" }));
    grid.append(svg("text", { x: f(x(tick.t)), y: HEIGHT - 8, "text-anchor": "middle", class: "axis" }, tick.label));
  }
  root.append(grid);

  const maxGap = Math.max(every, usualSpacing(series)) * 2.5;
  for (const one of series) {
    const group = svg("g", { class: `series ${one.className || ""}`, "aria-hidden": "true" });
    for (const run of runs(one.points, maxGap)) {
      if (run.length > 1) {
        const top = run.map((p) => `${f(x(p.t))},${f(y(p.max))}`);
        const bottom = run.map((p) => `${f(x(p.t))},${f(y(p.min))}`).reverse();
        group.append(svg("polygon", { points: [...top, ...bottom].join(" "), class: "band" }));
        group.append(svg("polyline", { points: run.map((p) => `${f(x(p.t))},${f(y(p.mean))}`).join(" "), class: "line" }));
      } else {
        const p = run[0];
        group.append(svg("line", { x1: f(x(p.t)), x2: f(x(p.t)), y1: f(y(p.min)), y2: f(y(p.max)), class: "whisker" }));
        group.append(svg("circle", { cx: f(x(p.t)), cy: f(y(p.mean)), r: 3, class: "dot" }));
      }
    }
    root.append(group);
  }

  const lines = svg("g", { class: "thresholds", "aria-hidden": "true" });
  for (const threshold of thresholds) {
    const at = f(y(threshold.value));
    lines.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: at, y2: at, class: `threshold sev-${threshold.severity}` }));
    const sign = threshold.direction === "low" ? "<" : ">";
    lines.append(
      svg("text", { x: WIDTH - MARGIN.right + 4, y: f(Number(at) + 4), class: `threshold-label sev-${threshold.severity}` }, `${threshold.severity} ${sign} ${threshold.value}`),
    );
  }
  root.append(lines);
  root.append(svg("rect", { x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH, class: "frame", "aria-hidden": "true" }));
  return root;
}

/** A sentence of what the chart shows, for its <desc>. */
export function describe(series, thresholds, unit, digits = 0) {
  const parts = [];
  for (const one of series) {
    const points = one.points;
    if (!points.length) {
      parts.push(`${one.label}: no readings.`);
      continue;
    }
    const lowest = Math.min(...points.map((p) => p.min));
    const highest = Math.max(...points.map((p) => p.max));
    const weight = points.reduce((n, p) => n + (p.count || 1), 0);
    const mean = points.reduce((n, p) => n + p.mean * (p.count || 1), 0) / weight;
    const last = points[points.length - 1];
    parts.push(
      `${one.label}: from ${lowest.toFixed(digits)} to ${highest.toFixed(digits)} ${unit}, average ${mean.toFixed(digits)}, latest interval ${last.mean.toFixed(digits)}.`,
    );
  }
  if (thresholds.length) {
    parts.push(`Alert thresholds: ${thresholds.map((t) => `${t.severity} ${t.direction === "low" ? "below" : "above"} ${t.value}`).join(", ")}.`);
  }
  return parts.join(" ");
}
