// Channels: the state of each channel and key (ok, cooling down until, disabled), recent success rate and
// latency, run-time enable/disable, and a reload of the config file that shows why a bad file was refused.
import { get, post } from "./api.js";
import { badge, confirmDialog, errorBox, h, num, table, toast, when } from "./ui.js";

const rate = (r, n) => (n ? `${(100 * r).toFixed(1)}%` : "–");
const ms = (v) => (v === null || v === undefined ? "–" : `${num(Math.round(v))} ms`);

function keyState(k) {
  if (k.state === "cooling_down") {
    const b = badge(`cooling down until ${when(k.cooldown_until, true).slice(11)}`, "warn", "cooling_down");
    b.title = when(k.cooldown_until, true);
    return b;
  }
  if (k.state === "disabled") return badge("disabled", "bad", "disabled");
  return badge("ok", "ok", "ok");
}

function channelState(ch) {
  if (ch.enabled) return badge("enabled", "ok", "enabled");
  return badge(ch.disabled_by === "config" ? "disabled in config" : "disabled", "bad", "disabled");
}

const KEY_COLUMNS = [
  { label: "Key", value: (k) => `#${k.index}` },
  { label: "State", value: keyState },
  { label: "Success rate", num: true, value: (k) => rate(k.success_rate, k.recent_attempts) },
  { label: "Latency p50", num: true, value: (k) => ms(k.latency_p50_ms) },
  { label: "Recent attempts", num: true, value: (k) => num(k.recent_attempts) },
];

function card(ch, redraw) {
  const stateEl = h("span", { dataset: { testid: "channel-state" } }, channelState(ch));
  const switchTo = async (action) => {
    try {
      await post(`/admin/channels/${encodeURIComponent(ch.name)}/${action}`, undefined);
      toast(`Channel ${ch.name} ${action}d.`);
      await redraw();
    } catch (err) {
      toast(err.message);
    }
  };
  let button = null;
  if (ch.enabled) {
    button = h("button", { type: "button", class: "danger quiet", onclick: async () => {
      const ok = await confirmDialog(`Disable channel ${ch.name}?`,
        "No new request goes to it until it is enabled again (on every node, with Redis).", "Disable");
      if (ok) await switchTo("disable");
    } }, "Disable");
  } else if (ch.disabled_by !== "config") {
    button = h("button", { type: "button", onclick: () => switchTo("enable") }, "Enable");
  }
  return h("section", { class: "card", dataset: { channel: ch.name }, "aria-label": `Channel ${ch.name}` },
    h("div", { class: "channel-head" },
      h("h2", {}, ch.name, " ", h("span", { class: "muted" }, `(${ch.kind})`)), stateEl, button),
    h("dl", { class: "facts" },
      h("dt", {}, "Models"), h("dd", {}, ch.models.join(", ")),
      h("dt", {}, "Groups"), h("dd", {}, ch.groups.join(", ")),
      h("dt", {}, "Priority / weight"), h("dd", {}, `${ch.priority} / ${ch.weight}`),
      h("dt", {}, "Success rate"), h("dd", {}, `${rate(ch.success_rate, ch.recent_attempts)} of ${num(ch.recent_attempts)} recent attempts`),
      h("dt", {}, "Latency p50"), h("dd", {}, ms(ch.latency_p50_ms))),
    h("div", { class: "keys" }, table(KEY_COLUMNS, ch.keys, { caption: "Keys" })));
}

export async function render(view) {
  const notice = h("div", { class: "notice", dataset: { testid: "reload-result" } });
  const list = h("div", { class: "grid wide" });
  const redraw = async () => {
    try {
      const channels = await get("/admin/channels");
      list.replaceChildren(...channels.data.map((ch) => card(ch, redraw)));
      if (!channels.data.length) list.replaceChildren(h("p", { class: "empty" }, "No channels are configured."));
    } catch (err) {
      list.replaceChildren(errorBox(err));
    }
  };
  const reload = h("button", { type: "button", onclick: async () => {
    reload.disabled = true;
    try {
      const r = await post("/admin/reload", undefined);
      const restart = r.needs_restart.length ? ` Changed sections that need a restart: ${r.needs_restart.join(", ")}.` : "";
      notice.className = "notice good";
      notice.setAttribute("role", "status");
      notice.textContent = `Config reloaded: ${r.channels} channels.${restart}`;
      await redraw();
    } catch (err) {
      notice.className = "notice bad";
      notice.setAttribute("role", "alert");
      notice.textContent = err.message;
    } finally {
      reload.disabled = false;
    }
  } }, "Reload config");
  view.replaceChildren(
    h("div", { class: "toolbar" }, reload, h("button", { type: "button", class: "quiet", onclick: redraw }, "Refresh")),
    notice, list);
  await redraw();
}
