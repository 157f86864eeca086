// Small DOM helpers. Text always goes in as text nodes, never as HTML, so no API value can inject markup.
let ids = 0;

/** An element: h("a", {href: "/x", class: "c"}, "text", child). `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const uid = (prefix) => `${prefix}-${++ids}`;

/** A labelled control: the label names the input (for=id), and an optional hint describes it. */
export function field(label, control, hint) {
  control.id ||= uid("f");
  const hintEl = hint ? h("span", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

export function select(name, options, value) {
  return h(
    "select",
    { name },
    options.map(([v, label]) => h("option", { value: v, selected: v === (value ?? "") }, label)),
  );
}

export function datalist(id, values) {
  return h("datalist", { id }, [...new Set(values)].sort().map((v) => h("option", { value: v })));
}

const int = new Intl.NumberFormat("en-US");
export const num = (n) => int.format(n ?? 0);

/** Micro-USD as dollars: cents for round amounts, up to six decimals for small ones. */
export function usd(micro) {
  const v = (micro ?? 0) / 1e6;
  const digits = micro % 10000 === 0 ? 2 : Math.abs(v) < 1 ? 6 : 4;
  return `$${v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits })}`;
}

/** USD given as a number (token views), or "unlimited" for null. */
export const dollars = (v, none = "unlimited") =>
  v === null || v === undefined ? none : usd(Math.round(v * 1e6));

export const pct = (part, whole) => (whole ? `${((100 * part) / whole).toFixed(1)}%` : "–");

/** "2026-03-01 13:04 UTC" from an ISO time. */
export function when(iso, seconds = false) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, seconds ? 19 : 16).replace("T", " ")} UTC`;
}

/** A datetime-local value (read as UTC) to ISO, and back. */
export const fromLocalInput = (v) => (v ? `${v.length === 16 ? `${v}:00` : v}Z` : null);
export const toLocalInput = (iso) => (iso ? new Date(iso).toISOString().slice(0, 16) : "");

export function badge(text, kind, state) {
  return h("span", { class: `badge ${kind}`, dataset: state ? { state } : {} }, text);
}

/** A table; columns are {label, value(row) -> Node|string, num?: true}. */
export function table(columns, rows, { caption, empty = "Nothing to show.", testid, cls } = {}) {
  if (!rows.length) return h("p", { class: "empty", dataset: testid ? { testid } : {} }, empty);
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)));
  const body = rows.map((r) =>
    h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(r)))),
  );
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: cls, dataset: testid ? { testid } : {} },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, head),
      h("tbody", {}, body),
    ),
  );
}

export function errorBox(err) {
  return h("p", { class: "notice bad", role: "alert" }, err?.message || String(err));
}

let toastTimer;
export function toast(text) {
  const el = document.getElementById("toast");
  el.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.textContent = ""), 4000);
}

function modal(children) {
  const dialog = h("dialog", {}, children);
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  return dialog;
}

/** Ask before a destructive action; resolves true only on the confirm button (Escape cancels). */
export function confirmDialog(title, message, confirmLabel) {
  return new Promise((resolve) => {
    const form = h(
      "form",
      { method: "dialog" },
      h("h2", {}, title),
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { value: "cancel", class: "quiet", autofocus: true }, "Cancel"),
        h("button", { value: "ok", class: "danger" }, confirmLabel),
      ),
    );
    const dialog = modal(form);
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"));
  });
}

/** Show a new key once, with a copy button; the dialog (and the key) leave the page when closed. */
export function keyDialog(title, key) {
  return new Promise((resolve) => {
    const input = h("input", { readonly: true, value: key, "aria-label": "New key", dataset: { testid: "new-key" } });
    const status = h("span", { role: "status", class: "muted" });
    const copy = async () => {
      try {
        await navigator.clipboard.writeText(key);
      } catch {
        input.select();
        document.execCommand("copy");
      }
      status.textContent = "Copied.";
    };
    const dialog = modal(
      h(
        "form",
        { method: "dialog" },
        h("h2", {}, title),
        h("p", {}, h("strong", {}, "Copy this key now: it is not shown again.")),
        h("div", { class: "key-box" }, input, h("button", { type: "button", onclick: copy }, "Copy")),
        status,
        h("div", { class: "actions" }, h("button", { value: "done", class: "quiet" }, "Done")),
      ),
    );
    input.addEventListener("focus", () => input.select());
    dialog.addEventListener("close", () => resolve());
  });
}
