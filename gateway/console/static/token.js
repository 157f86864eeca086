// One token: its fields, edit, add quota, disable/enable, rotate and delete (each change confirmed),
// its spend over the last 30 days and its last records.
import { del, get, patch, post } from "./api.js";
import { barChart, ticks } from "./charts.js";
import { knownGroups, recordsTable, stateBadge, tokenForm } from "./parts.js";
import { confirmDialog, dollars, errorBox, field, h, keyDialog, num, toast, usd, when } from "./ui.js";

const DAY = 24 * 3600e3;

function facts(t) {
  const rows = [
    ["Key", h("span", { class: "mono" }, `${t.key_prefix}…`)],
    ["Status", stateBadge(t)],
    ["Group", t.group],
    ["Allowed groups", t.allowed_groups.length ? t.allowed_groups.join(", ") : "–"],
    ["Models", t.models?.length ? t.models.join(", ") : "every model"],
    ["Quota", dollars(t.quota_usd)],
    ["Used", dollars(t.used_usd, "$0.00")],
    ["Remaining", dollars(t.remaining_usd)],
    ["Requests per minute", t.rpm_limit ?? "no limit"],
    ["Concurrent requests", t.max_concurrency ?? "no limit"],
    ["Chat image field", t.chat_image_field ?? "gateway default"],
    ["Expires", t.expires_at ? when(t.expires_at) : "never"],
    ["Created", when(t.created_at)],
    ["Last used", when(t.last_used_at)],
  ];
  return h("dl", { class: "facts", dataset: { testid: "token-facts" } },
    rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function addQuota(base, done) {
  const amount = h("input", { type: "number", step: "any", name: "add_quota_usd", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "toolbar" },
    field("Add quota (USD)", amount, "Negative takes quota away; it never goes below zero"),
    h("button", { type: "submit" }, "Add"), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await patch(base, { add_quota_usd: amount.value });
      toast(`Added $${amount.value} of quota.`);
      done();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return h("section", { class: "card" }, h("h2", {}, "Quota"), form);
}

async function spend(id, name) {
  const to = Math.floor(Date.now() / DAY) * DAY + DAY;
  const from = to - 30 * DAY;
  const q = { group_by: "day", token: id, from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  const [summary, records] = await Promise.all([
    get("/admin/usage/summary", q),
    get("/admin/usage/records", { token: id, limit: 10 }),
  ]);
  const keys = [];
  for (let t = from; t < to; t += DAY) keys.push(new Date(t).toISOString().slice(0, 10));
  const byKey = new Map(summary.data.map((r) => [r.key, r]));
  const col = (name) => keys.map((k) => byKey.get(k)?.[name] ?? 0);
  const tick = ticks("day", keys.length);
  return [
    h("div", { class: "grid wide" },
      barChart({ kind: "token-spend", title: "Spend per day, last 30 days", labels: keys, fmt: usd, tick,
        series: [{ name: "Spend", values: col("cost_micro_usd") }] }),
      barChart({ kind: "token-images", title: "Images per day, last 30 days", labels: keys, fmt: num, integer: true, tick,
        series: [{ name: "Images", values: col("images") }] })),
    h("section", { class: "card" },
      h("h2", {}, "Last records"),
      recordsTable(records.data, new Map([[id, name]]), { testid: "token-records" }),
      h("p", {}, h("a", { href: `/console/usage?token=${encodeURIComponent(id)}` }, "All records of this token"))),
  ];
}

export async function render(view) {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const base = `/admin/tokens/${encodeURIComponent(id)}`;
  const redraw = () => render(view);
  let t;
  try {
    t = await get(base);
  } catch (err) {
    view.replaceChildren(errorBox(err), h("p", {}, h("a", { href: "/console/tokens" }, "Back to tokens")));
    return;
  }
  document.getElementById("title").textContent = `Token “${t.name}”`;
  document.title = `${t.name} · Gateway console`;
  const groups = await knownGroups();
  const editCard = h("section", { class: "card", hidden: true }, h("h2", {}, "Edit"));
  editCard.append(tokenForm({
    token: t, groups, submitLabel: "Save",
    oncancel: () => (editCard.hidden = true),
    onsubmit: async (body) => {
      await patch(base, body);
      toast("Saved.");
      redraw();
    },
  }));
  const act = async (title, message, label, action) => {
    if (!(await confirmDialog(title, message, label))) return;
    try {
      await action();
    } catch (err) {
      toast(err.message);
    }
  };
  const toggle = t.status === "active"
    ? h("button", { type: "button", class: "danger quiet", onclick: () => act("Disable this token?",
        `“${t.name}” stops working at once, on every node, until it is enabled again.`, "Disable",
        async () => { await patch(base, { status: "disabled" }); redraw(); }) }, "Disable")
    : h("button", { type: "button", class: "quiet", onclick: async () => {
        await patch(base, { status: "active" }); redraw(); } }, "Enable");
  const rotate = h("button", { type: "button", class: "danger quiet", onclick: () => act("Rotate the key?",
    `A new key replaces the key of “${t.name}”; the current key stops working at once.`, "Rotate key",
    async () => { const r = await post(`${base}/rotate`, undefined); await keyDialog("New key", r.key); redraw(); }) },
    "Rotate key");
  const remove = h("button", { type: "button", class: "danger", onclick: () => act("Delete this token?",
    `“${t.name}” is revoked for good and its key stops working at once. Its usage records stay.`, "Delete",
    async () => { await del(base); location.assign("/console/tokens"); }) }, "Delete");
  const edit = h("button", { type: "button", onclick: () => {
    editCard.hidden = false;
    editCard.querySelector("input")?.focus();
  } }, "Edit");
  view.replaceChildren(
    h("div", { class: "grid" },
      h("section", { class: "card" }, h("h2", {}, "Token"), facts(t),
        h("div", { class: "actions" }, edit, toggle, rotate, remove)),
      h("div", { class: "stack" }, addQuota(base, redraw), editCard)),
    ...(await spend(id, t.name)),
  );
}
