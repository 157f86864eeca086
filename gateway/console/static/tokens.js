// Tokens: search and filter the list, and create a token (its key is shown once, with a copy button).
import { get, post } from "./api.js";
import { knownGroups, stateBadge, tokenForm } from "./parts.js";
import { dollars, errorBox, field, h, keyDialog, select, table, when } from "./ui.js";

const COLUMNS = [
  { label: "Name", value: (t) => h("a", { href: `/console/tokens/${encodeURIComponent(t.id)}` }, t.name) },
  { label: "Key", value: (t) => h("span", { class: "mono" }, `${t.key_prefix}…`) },
  { label: "Group", value: (t) => t.group },
  { label: "Status", value: stateBadge },
  { label: "Quota", num: true, value: (t) => dollars(t.quota_usd) },
  { label: "Used", num: true, value: (t) => dollars(t.used_usd, "$0.00") },
  { label: "Remaining", num: true, value: (t) => dollars(t.remaining_usd) },
  { label: "Expires", value: (t) => (t.expires_at ? when(t.expires_at) : "never") },
  { label: "Last used", value: (t) => when(t.last_used_at) },
];

function createDialog(groups, created) {
  const dialog = h("dialog", { "aria-labelledby": "create-title" });
  const form = tokenForm({
    groups,
    submitLabel: "Create token",
    oncancel: () => dialog.close(),
    onsubmit: async (body) => {
      const token = await post("/admin/tokens", body);
      dialog.close();
      await keyDialog(`Token “${token.name}” created`, token.key);
      created();
    },
  });
  dialog.append(h("h2", { id: "create-title" }, "New token"), form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

export async function render(view) {
  const params = new URLSearchParams(location.search);
  const groups = await knownGroups();
  const q = h("input", { type: "search", name: "q", value: params.get("q") ?? "", placeholder: "name or key prefix" });
  const group = h("input", { name: "group", list: "token-groups", value: params.get("group") ?? "" });
  const status = select("status", [["", "Any"], ["active", "Active"], ["disabled", "Disabled"]], params.get("status") ?? "");
  const filters = h("form", { class: "toolbar", role: "search", "aria-label": "Find tokens" },
    field("Search", q), field("Group", group), field("Status", status),
    h("button", { type: "submit" }, "Search"),
    h("button", { type: "button", class: "quiet", onclick: () => createDialog(groups, () => render(view)) }, "New token"),
    h("datalist", { id: "token-groups" }, [...new Set(groups)].map((g) => h("option", { value: g }))));
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, el] of [["q", q], ["group", group], ["status", status]]) if (el.value) next.set(k, el.value);
    history.replaceState(null, "", next.size ? `?${next}` : location.pathname);
    render(view);
  });
  const list = h("div", { class: "card", tabindex: "-1" });
  view.replaceChildren(filters, list);
  const rows = [];
  const load = async (cursor, keepFocus = false) => {
    try {
      const page = await get("/admin/tokens", { q: q.value, group: group.value, status: status.value, cursor, limit: 50 });
      rows.push(...page.data);
      const more = page.next_cursor
        ? h("button", { type: "button", class: "quiet", onclick: () => load(page.next_cursor, true) }, "Load more")
        : null;
      list.replaceChildren(table(COLUMNS, rows, { testid: "tokens", empty: "No tokens match." }), more ?? "");
      if (keepFocus) (more ?? list).focus(); // the pressed button is gone: keep the keyboard user's place
    } catch (err) {
      list.replaceChildren(errorBox(err));
    }
  };
  await load(null);
}
