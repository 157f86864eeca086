// Parts shared by several pages: the token form (create and edit) and the usage records table.
import { get } from "./api.js";
import { badge, datalist, field, fromLocalInput, h, num, select, table, toLocalInput, uid, usd, when } from "./ui.js";

export const stateBadge = (t) => badge(t.status, t.status === "active" ? "ok" : "bad", t.status);

/** Groups an admin may type: those the channels serve (the admin API has no list of groups). */
export async function knownGroups() {
  try {
    const channels = await get("/admin/channels");
    return ["default", ...channels.data.flatMap((c) => c.groups)];
  } catch {
    return ["default"];
  }
}

const list = (v) => v.split(",").map((x) => x.trim()).filter(Boolean);
const number = (v) => (v === "" ? null : Number(v));

/** The fields of §6.3 an admin sets; `onsubmit(body)` sends them and may throw to show an error. */
export function tokenForm({ token = {}, groups = [], submitLabel, onsubmit, oncancel }) {
  const groupList = uid("groups");
  const input = (name, attrs = {}) => h("input", { name, ...attrs });
  const f = {
    name: input("name", { required: true, maxlength: 200, value: token.name ?? "" }),
    group: input("group", { required: true, list: groupList, value: token.group ?? "default" }),
    allowed: input("allowed_groups", { value: (token.allowed_groups ?? []).join(", ") }),
    models: input("models", { value: (token.models ?? []).join(", "), placeholder: "every model" }),
    quota: input("quota_usd", { type: "number", min: 0, step: "any", value: token.quota_usd ?? "", placeholder: "unlimited" }),
    rpm: input("rpm_limit", { type: "number", min: 1, step: 1, value: token.rpm_limit ?? "", placeholder: "no limit" }),
    conc: input("max_concurrency", { type: "number", min: 1, step: 1, value: token.max_concurrency ?? "", placeholder: "no limit" }),
    expires: input("expires_at", { type: "datetime-local", value: toLocalInput(token.expires_at) }),
    image: select("chat_image_field",
      [["", "Gateway default"], ["list_data", "list_data"], ["object_url", "object_url"]], token.chat_image_field ?? ""),
  };
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit" }, submitLabel);
  const form = h("form", { class: "token-form" },
    h("div", { class: "form-grid" },
      field("Name", f.name),
      field("Group", f.group),
      field("Allowed groups", f.allowed, "Other groups it may pick, comma separated"),
      field("Models", f.models, "Allow-list, comma separated; empty: every model"),
      field("Quota (USD)", f.quota, "Empty: unlimited"),
      field("Requests per minute", f.rpm),
      field("Concurrent requests", f.conc),
      field("Expires (UTC)", f.expires, "Empty: never"),
      field("Chat image field", f.image)),
    datalist(groupList, groups),
    error,
    h("div", { class: "actions" }, submit,
      oncancel ? h("button", { type: "button", class: "quiet", onclick: oncancel }, "Cancel") : null));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const models = list(f.models.value);
    const body = {
      name: f.name.value.trim(),
      group: f.group.value.trim(),
      allowed_groups: list(f.allowed.value),
      models: models.length ? models : null,
      quota_usd: f.quota.value === "" ? null : f.quota.value,
      rpm_limit: number(f.rpm.value),
      max_concurrency: number(f.conc.value),
      expires_at: fromLocalInput(f.expires.value),
      chat_image_field: f.image.value || null,
    };
    submit.disabled = true;
    try {
      await onsubmit(body);
    } catch (err) {
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

const price = (micro) => (micro === null || micro === undefined ? "–" : usd(micro));

export function statusBadge(r) {
  const text = r.status === "success" ? `ok ${r.http_status ?? ""}` : `failed ${r.http_status ?? ""}`;
  const b = badge(text.trim(), r.status === "success" ? "ok" : "bad");
  if (r.error_code) b.title = r.error_code;
  return b;
}

/** Usage records, with the per-image columns: count, size, quality, unit price and cost. */
export function recordsTable(rows, names = new Map(), opts = {}) {
  const tokenCell = (r) => (r.token_id
    ? h("a", { href: `/console/tokens/${encodeURIComponent(r.token_id)}` }, names.get(r.token_id) ?? r.token_id)
    : "–");
  const cols = [
    { label: "Time (UTC)", value: (r) => h("span", { title: `request ${r.request_id}` }, when(r.created_at, true).slice(0, 19)) },
    { label: "Token", value: tokenCell },
    { label: "Model", value: (r) => r.model },
    { label: "Group", value: (r) => r.group },
    { label: "Channel", value: (r) => r.channel ?? "–" },
    { label: "Status", value: (r) => [statusBadge(r), r.error_code ? h("div", { class: "muted small" }, r.error_code) : null] },
    { label: "Images", num: true, value: (r) => num(r.image_count) },
    { label: "Size", value: (r) => r.image_size ?? "–" },
    { label: "Quality", value: (r) => r.image_quality ?? "–" },
    { label: "Unit price", num: true, value: (r) => price(r.unit_price_micro_usd) },
    { label: "Cost", num: true, value: (r) => [usd(r.cost_micro_usd), r.usage_estimated ? h("span", { class: "muted", title: "usage estimated" }, " est.") : null] },
    { label: "Latency", num: true, value: (r) => (r.latency_ms === null ? "–" : `${(r.latency_ms / 1000).toFixed(1)} s`) },
  ];
  return table(cols, rows, { empty: "No usage records match.", cls: "records", ...opts });
}
