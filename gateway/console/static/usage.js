// Usage: the records with the filters of GET /admin/usage/records, cursor paging, and a CSV export of
// the current filter (the same route with format=csv).
import { get, query } from "./api.js";
import { recordsTable } from "./parts.js";
import { datalist, errorBox, field, fromLocalInput, h, num, select, toLocalInput } from "./ui.js";

const PAGE = 50;
const TEXT_FILTERS = ["token", "model", "group", "channel"];

async function choices() {
  const [channels, tokens] = await Promise.all([
    get("/admin/channels").catch(() => ({ data: [] })),
    get("/admin/tokens", { limit: 500 }).catch(() => ({ data: [] })),
  ]);
  return {
    models: channels.data.flatMap((c) => c.models),
    groups: ["default", ...channels.data.flatMap((c) => c.groups)],
    channels: channels.data.map((c) => c.name),
    names: new Map(tokens.data.map((t) => [t.id, t.name])),
  };
}

/** The API filter held in the page's URL (from/to are ISO times, UTC). */
function filterOf(params) {
  const f = {};
  for (const k of [...TEXT_FILTERS, "status", "from", "to"]) if (params.get(k)) f[k] = params.get(k);
  return f;
}

function filterForm(f, c, apply) {
  const inputs = {};
  const lists = { token: "u-tokens", model: "u-models", group: "u-groups", channel: "u-channels" };
  for (const k of TEXT_FILTERS) inputs[k] = h("input", { name: k, list: lists[k], value: f[k] ?? "", size: 10 });
  inputs.status = select("status", [["", "Any"], ["success", "Success"], ["failed", "Failed"]], f.status ?? "");
  inputs.from = h("input", { type: "datetime-local", name: "from", value: toLocalInput(f.from) });
  inputs.to = h("input", { type: "datetime-local", name: "to", value: toLocalInput(f.to) });
  const tokenOptions = h("datalist", { id: "u-tokens" }, [...c.names].map(([id, name]) => h("option", { value: id }, name)));
  const form = h("form", { class: "toolbar", role: "search", "aria-label": "Filter records" },
    field("Token id", inputs.token), field("Model", inputs.model), field("Group", inputs.group),
    field("Channel", inputs.channel), field("Status", inputs.status),
    field("From (UTC)", inputs.from), field("To (UTC, excluded)", inputs.to),
    h("button", { type: "submit" }, "Apply"),
    tokenOptions, datalist("u-models", c.models), datalist("u-groups", c.groups), datalist("u-channels", c.channels));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = {};
    for (const k of [...TEXT_FILTERS, "status"]) if (inputs[k].value.trim()) next[k] = inputs[k].value.trim();
    for (const k of ["from", "to"]) if (inputs[k].value) next[k] = fromLocalInput(inputs[k].value);
    history.replaceState(null, "", location.pathname + query(next));
    apply();
  });
  return form;
}

export async function render(view) {
  const f = filterOf(new URLSearchParams(location.search));
  const c = await choices();
  const csv = h("a", { class: "button quiet", href: `/admin/usage/records${query({ ...f, format: "csv" })}`,
    download: "usage.csv", dataset: { testid: "csv" } }, "Export CSV");
  const results = h("section", { class: "card", tabindex: "-1", "aria-label": "Records" });
  view.replaceChildren(filterForm(f, c, () => render(view)), h("div", { class: "toolbar" }, csv), results);
  const rows = [];
  const load = async (cursor, keepFocus = false) => {
    try {
      const page = await get("/admin/usage/records", { ...f, cursor, limit: PAGE });
      rows.push(...page.data);
      const more = page.next_cursor
        ? h("button", { type: "button", class: "quiet", onclick: () => load(page.next_cursor, true) }, "Load more")
        : null;
      results.replaceChildren(
        h("p", { class: "muted", dataset: { testid: "record-count", count: String(rows.length) } },
          `${num(rows.length)} record${rows.length === 1 ? "" : "s"}${more ? " so far" : ""}, newest first`),
        recordsTable(rows, c.names, { testid: "records" }),
        more ?? "");
      if (keepFocus) (more ?? results).focus(); // the pressed button is gone: keep the keyboard user's place
    } catch (err) {
      results.replaceChildren(errorBox(err));
    }
  };
  await load(null);
}
