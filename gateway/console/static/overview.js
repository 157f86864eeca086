// Overview: requests, images, spend and error rate over a range, in hour or day buckets (UTC), by model,
// by group, and the top tokens by spend. Every number comes from GET /admin/usage/summary.
import { get } from "./api.js";
import { barChart, hbarChart, ticks } from "./charts.js";
import { errorBox, field, h, num, pct, select, table, usd } from "./ui.js";

const HOUR = 3600e3;
const DAY = 24 * HOUR;
const RANGES = [
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
  ["90d", "Last 90 days"],
  ["custom", "Custom dates"],
];
const SPANS = { "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "90d": 90 * DAY };
const MAX_HOURS = 31 * 24; // past a month, hour buckets are too thin to read: days instead

const floorTo = (t, unit) => Math.floor(t / unit) * unit;

/** The range the page shows: bucket-aligned [from, to) and the bucket size, from the URL's choices. */
export function rangeOf(params, now = Date.now()) {
  const choice = params.get("range") || "7d";
  let bucket = params.get("bucket") === "hour" ? "hour" : params.get("bucket") === "day" ? "day" : null;
  if (choice === "custom" && params.get("from") && params.get("to")) {
    const from = Date.parse(`${params.get("from")}T00:00:00Z`);
    const to = Date.parse(`${params.get("to")}T00:00:00Z`) + DAY; // the end date is included
    if (from < to) {
      bucket ||= to - from <= 2 * DAY ? "hour" : "day";
      if (bucket === "hour" && to - from > MAX_HOURS * HOUR) bucket = "day";
      return { choice, bucket, from, to };
    }
  }
  const span = SPANS[choice] ?? SPANS["7d"];
  bucket ||= span <= DAY ? "hour" : "day";
  if (bucket === "hour" && span > MAX_HOURS * HOUR) bucket = "day";
  const unit = bucket === "hour" ? HOUR : DAY;
  const to = floorTo(now, unit) + unit;
  return { choice: SPANS[choice] ? choice : "7d", bucket, from: to - span, to };
}

/** The API's keys for every bucket of the range, empty ones included. */
export function bucketKeys({ bucket, from, to }) {
  const unit = bucket === "hour" ? HOUR : DAY;
  const keys = [];
  for (let t = from; t < to; t += unit) {
    const iso = new Date(t).toISOString();
    keys.push(bucket === "hour" ? `${iso.slice(0, 13)}:00:00Z` : iso.slice(0, 10));
  }
  return keys;
}

const iso = (t) => new Date(t).toISOString().replace(".000Z", "Z");

function controls(range, params, rerender) {
  const rangeSel = select("range", RANGES, range.choice);
  const bucketSel = select("bucket", [["hour", "Hours"], ["day", "Days"]], range.bucket);
  const day = (t) => new Date(t).toISOString().slice(0, 10);
  const from = h("input", { type: "date", name: "from", value: params.get("from") || day(range.from) });
  const to = h("input", { type: "date", name: "to", value: params.get("to") || day(range.to - 1) });
  const custom = h("div", { class: "toolbar", hidden: range.choice !== "custom" },
    field("From (UTC)", from), field("To (UTC, included)", to));
  rangeSel.addEventListener("change", () => (custom.hidden = rangeSel.value !== "custom"));
  const form = h("form", { class: "toolbar", "aria-label": "Range" },
    field("Range", rangeSel), field("Buckets", bucketSel), custom, h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams({ range: rangeSel.value, bucket: bucketSel.value });
    if (rangeSel.value === "custom") {
      next.set("from", from.value);
      next.set("to", to.value);
    }
    history.replaceState(null, "", `?${next}`);
    rerender();
  });
  return form;
}

function stat(metric, label, value, text, sub) {
  return h("div", { class: "card stat", dataset: { metric, value: String(value) } },
    h("div", { class: "label" }, label), h("div", { class: "value" }, text), sub ? h("div", { class: "sub" }, sub) : null);
}

function stats(range, total) {
  return h("section", { class: "stats", "aria-label": "Totals", dataset: { testid: "totals", from: iso(range.from), to: iso(range.to) } },
    stat("requests", "Requests", total.requests, num(total.requests)),
    stat("images", "Images delivered", total.images, num(total.images)),
    stat("cost_micro_usd", "Spend", total.cost_micro_usd, usd(total.cost_micro_usd)),
    stat("errors", "Error rate", total.errors, pct(total.errors, total.requests), `${num(total.errors)} failed`));
}

function timeCharts(range, rows) {
  const keys = bucketKeys(range);
  const byKey = new Map(rows.map((r) => [r.key, r]));
  const col = (name) => keys.map((k) => byKey.get(k)?.[name] ?? 0);
  const requests = col("requests"), errors = col("errors");
  const rate = keys.map((_, i) => (requests[i] ? (100 * errors[i]) / requests[i] : 0));
  const totalReq = requests.reduce((a, b) => a + b, 0), totalErr = errors.reduce((a, b) => a + b, 0);
  const per = range.bucket === "hour" ? "per hour" : "per day";
  const t = ticks(range.bucket, keys.length);
  return h("div", { class: "grid wide" },
    barChart({ kind: "requests", title: `Requests ${per}`, labels: keys, fmt: num, integer: true, tick: t,
      series: [{ name: "Succeeded", values: requests.map((r, i) => r - errors[i]) }, { name: "Failed", values: errors }] }),
    barChart({ kind: "images", title: `Images delivered ${per}`, labels: keys, fmt: num, integer: true, tick: t,
      series: [{ name: "Images", values: col("images") }] }),
    barChart({ kind: "spend", title: `Spend ${per}`, labels: keys, fmt: usd, tick: t,
      series: [{ name: "Spend", values: col("cost_micro_usd") }] }),
    barChart({ kind: "error-rate", title: `Error rate ${per}`, labels: keys, tick: t,
      fmt: (v) => `${Math.round(v * 10) / 10}%`, overall: totalReq ? totalErr / totalReq : 0,
      totalText: pct(totalErr, totalReq), series: [{ name: "Error rate", values: rate }] }));
}

// What the by-model and by-group charts measure; "spend" unless the URL says otherwise.
const MEASURES = {
  spend: { label: "Spend", of: (r) => r.cost_micro_usd, fmt: usd },
  requests: { label: "Requests", of: (r) => r.requests, fmt: num },
  images: { label: "Images delivered", of: (r) => r.images, fmt: num },
  errors: { label: "Error rate", of: (r) => (r.requests ? (100 * r.errors) / r.requests : 0),
    fmt: (v) => `${v.toFixed(1)}%`, overall: (t) => (t.requests ? (100 * t.errors) / t.requests : 0) },
};

function breakdown(kind, by, measure, rows, total) {
  const m = MEASURES[measure];
  const items = rows
    .map((r) => ({ label: r.key ?? "(none)", value: m.of(r),
      note: measure === "spend" ? `${num(r.requests)} req · ${num(r.images)} img`
        : measure === "errors" ? `${num(r.errors)} of ${num(r.requests)}` : usd(r.cost_micro_usd) }))
    .sort((a, b) => b.value - a.value || a.label.localeCompare(b.label));
  return hbarChart({ kind, title: `${m.label} by ${by}`, items, fmt: m.fmt, overall: m.overall?.(total) });
}

function breakdowns(params, models, groups, total) {
  const measure = MEASURES[params.get("by")] ? params.get("by") : "spend";
  const charts = h("div", { class: "grid wide" });
  const draw = (which) => charts.replaceChildren(
    breakdown("by-model", "model", which, models, total), breakdown("by-group", "group", which, groups, total));
  const choice = select("by", Object.entries(MEASURES).map(([k, m]) => [k, m.label]), measure);
  choice.addEventListener("change", () => {
    params.set("by", choice.value);
    history.replaceState(null, "", `?${params}`);
    draw(choice.value);
  });
  draw(measure);
  return h("section", { "aria-label": "By model and group" },
    h("div", { class: "toolbar" }, field("By model and group, show", choice)), charts);
}

async function topTokens(rows) {
  const top = [...rows].sort((a, b) => b.cost_micro_usd - a.cost_micro_usd).slice(0, 10);
  const names = await Promise.all(top.map((r) => (r.key ? get(`/admin/tokens/${encodeURIComponent(r.key)}`)
    .then((t) => t.name, () => "(deleted)") : "(none)")));
  const cols = [
    { label: "Token", value: (r) => (r.key ? h("a", { href: `/console/tokens/${encodeURIComponent(r.key)}` }, r.name) : r.name) },
    { label: "Requests", num: true, value: (r) => num(r.requests) },
    { label: "Images", num: true, value: (r) => num(r.images) },
    { label: "Errors", num: true, value: (r) => num(r.errors) },
    { label: "Spend", num: true, value: (r) => h("span", { dataset: { value: String(r.cost_micro_usd) } }, usd(r.cost_micro_usd)) },
  ];
  return h("section", { class: "card" }, h("h2", {}, "Top tokens by spend"),
    table(cols, top.map((r, i) => ({ ...r, name: names[i] })), { testid: "top-tokens", empty: "No requests in this range." }));
}

export async function render(view) {
  const params = new URLSearchParams(location.search);
  const range = rangeOf(params);
  const rerender = () => render(view);
  const q = { from: iso(range.from), to: iso(range.to) };
  const head = controls(range, params, rerender);
  try {
    const [series, models, groups, tokens] = await Promise.all(
      [range.bucket, "model", "group", "token"].map((g) => get("/admin/usage/summary", { group_by: g, ...q })),
    );
    view.replaceChildren(
      head,
      h("p", { class: "range-note" }, `${q.from.replace("T", " ")} to ${q.to.replace("T", " ")} (UTC), in ${range.bucket} buckets`),
      stats(range, series.total),
      timeCharts(range, series.data),
      breakdowns(params, models.data, groups.data, series.total),
      await topTokens(tokens.data),
    );
  } catch (err) {
    view.replaceChildren(head, errorBox(err));
  }
}
