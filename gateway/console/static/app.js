// Entry point of every console page: mark the page in the navigation, then render it from the admin API.
import { errorBox } from "./ui.js";

const page = document.body.dataset.page;
const nav = page === "token" ? "tokens" : page;
document.querySelector(`[data-nav="${nav}"]`)?.setAttribute("aria-current", "page");
const view = document.getElementById("view");
try {
  const mod = await import(`./${page}.js`);
  await mod.render(view);
} catch (err) {
  view.replaceChildren(errorBox(err));
}
