// Hand-drawn SVG charts. Each one is a <figure> with a caption, a text alternative (aria-label and a
// table under a disclosure) and its total in data-total, so what is drawn can be checked against the API.
import { h, table } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Axis labels for n time buckets: about eight, at midnights when hours span several days. */
export function ticks(bucket, n) {
  if (bucket === "hour" && n > 48) return (k) => (k.slice(11, 13) === "00" ? k.slice(5, 10) : null);
  const every = Math.max(1, Math.ceil(n / 8));
  return (k, i) => (i % every ? null : bucket === "hour" ? k.slice(11, 16) : k.slice(5, 10));
}

/** A y axis for values up to v: a round step (1, 2, 2.5 or 5 times a power of ten), at most 4 of them. */
export function axis(v, integer) {
  if (!(v > 0)) return { step: 1, max: 1 };
  const raw = v / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= raw * (1 - 1e-9));
  if (integer) step = Math.max(1, Math.ceil(step));
  return { step, max: Math.max(1, Math.ceil(v / step - 1e-9)) * step };
}

function frame(kind, title, total, svg, extra) {
  return h(
    "figure",
    { class: "chart card", dataset: { chart: kind, total: String(total) } },
    h("figcaption", {}, h("span", {}, title), h("span", { class: "total" }, extra)),
    svg,
  );
}

function legend(series) {
  if (series.length < 2) return null;
  return h(
    "div",
    { class: "legend", "aria-hidden": "true" },
    series.map((sr, i) => h("span", {}, h("span", { class: `swatch s${i}` }), sr.name)),
  );
}

/**
 * Vertical bars over time buckets, stacked when there are several series.
 * labels: bucket keys; series: [{name, values}]; fmt: number -> text;
 * tick: (key, index) -> short axis text, or null for no label under that bar.
 */
export function barChart({ kind, title, labels, series, fmt, tick, totalText, overall, integer }) {
  const W = 560, H = 200, L = 62, R = 8, T = 10, B = 26;
  const sums = labels.map((_, i) => series.reduce((a, sr) => a + sr.values[i], 0));
  const total = overall ?? sums.reduce((a, b) => a + b, 0); // a rate's overall value is not a sum
  const { step: yStep, max } = axis(Math.max(0, ...sums), integer);
  const plotW = W - L - R, plotH = H - T - B;
  const step = plotW / Math.max(labels.length, 1);
  const barW = Math.max(1, Math.min(40, step * 0.72));
  const y = (v) => T + plotH - (v / max) * plotH;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${title}: ${totalText ?? fmt(total)} in total over ${labels.length} buckets` });
  for (let v = 0; v <= max * (1 + 1e-9); v += yStep) {
    svg.append(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid-line" }));
    svg.append(s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  labels.forEach((label, i) => {
    const x = L + i * step + (step - barW) / 2;
    let base = 0;
    const parts = series.map((sr, k) => {
      const v = sr.values[i];
      const rect = s("rect", { x, y: y(base + v), width: barW, height: Math.max(0, y(base) - y(base + v)), class: `s${k}` });
      base += v;
      return rect;
    });
    const detail = series.map((sr) => `${sr.name} ${fmt(sr.values[i])}`).join(", ");
    const hit = s("rect", { x: L + i * step, y: T, width: step, height: plotH, class: "hit" }, s("title", {}, `${label}: ${detail}`));
    svg.append(s("g", {}, ...parts, hit));
    const text = tick(label, i);
    if (text) svg.append(s("text", { x: x + barW / 2, y: H - 8, "text-anchor": "middle" }, text));
  });
  const rows = labels.map((label, i) => ({ label, values: series.map((sr) => sr.values[i]) }));
  const cols = [{ label: "Bucket (UTC)", value: (r) => r.label }].concat(
    series.map((sr, k) => ({ label: sr.name, num: true, value: (r) => fmt(r.values[k]) })),
  );
  const fig = frame(kind, title, total, svg, totalText ?? fmt(total));
  fig.append(legend(series) ?? "", h("details", { class: "data" }, h("summary", {}, "Show as a table"), table(cols, rows)));
  return fig;
}

/** Horizontal bars, largest first: items [{label, value, note}]. */
export function hbarChart({ kind, title, items, fmt, overall, empty = "No requests in this range." }) {
  const total = overall ?? items.reduce((a, it) => a + it.value, 0);
  if (!items.length) return frame(kind, title, 0, h("p", { class: "empty" }, empty), fmt(0));
  const W = 560, rowH = 30, L = 150, R = 190;
  const H = items.length * rowH + 6;
  const max = Math.max(...items.map((it) => it.value)) || 1;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${title}: ${items.map((it) => `${it.label} ${fmt(it.value)}`).join("; ")}` });
  items.forEach((it, i) => {
    const y = 3 + i * rowH;
    const w = ((W - L - R) * it.value) / max;
    const label = it.label.length > 22 ? `${it.label.slice(0, 21)}…` : it.label;
    svg.append(
      s("g", {},
        s("title", {}, `${it.label}: ${fmt(it.value)}${it.note ? ` (${it.note})` : ""}`),
        s("text", { x: L - 8, y: y + 18, "text-anchor": "end", class: "hlabel" }, label),
        s("rect", { x: L, y: y + 5, width: Math.max(w, it.value > 0 ? 2 : 0), height: rowH - 10, class: "s0", rx: 3 }),
        s("text", { x: L + w + 6, y: y + 18 }, `${fmt(it.value)}${it.note ? ` · ${it.note}` : ""}`),
      ),
    );
  });
  return frame(kind, title, total, svg, fmt(total));
}
