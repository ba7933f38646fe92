// What every logged-in page does first: load the session (or go to the login page), show
// the navigation the account's role may use, the account's name and the logout button,
// and pick the home the page is about.

import { ApiError, get, logout, me } from "./api.js";
import { $, $$, h } from "./dom.js";

export async function start({ roles } = {}) {
  const session = await me();
  const user = session.user;
  for (const item of $$("[data-roles]")) {
    item.hidden = !item.dataset.roles.split(" ").includes(user.role);
  }
  const account = $("#account");
  if (account) {
    $("#who").textContent = `${user.username} (${user.role})`;
    $("#logout").addEventListener("click", async () => {
      try {
        await logout();
      } finally {
        location.assign("/login");
      }
    });
    account.hidden = false;
  }
  if (roles && !roles.includes(user.role)) {
    location.replace(user.role === "family" ? "/family" : "/wall");
    throw new ApiError(403, "not for this account");
  }
  return session;
}

/** The homes the account may see, and the one chosen (``?site=`` or the first). */
export async function chooseSite() {
  const sites = await get("/sites");
  const wanted = new URLSearchParams(location.search).get("site");
  const site = sites.find((s) => s.id === wanted) || sites[0] || null;
  const field = $("#site-field");
  const select = $("#site");
  if (field && select && sites.length > 1) {
    for (const s of sites) {
      select.append(h("option", { value: s.id, selected: s.id === site?.id }, s.name));
    }
    select.addEventListener("change", () => {
      const url = new URL(location.href);
      url.searchParams.set("site", select.value);
      location.assign(url);
    });
    field.hidden = false;
  }
  return { sites, site };
}

/** Show a failure where the page's content would be (401 is already on its way to login). */
export function fail(error, where = $("#main")) {
  if (error instanceof ApiError && error.status === 401) return;
  const text = error instanceof ApiError ? error.message : "Something went wrong.";
  where.prepend(h("p", { class: "error", role: "alert" }, `Could not load this page: ${text}`));
}

export function setLiveState(text, live) {
  const element = $("#live-state");
  if (!element) return;
  element.textContent = text;
  element.classList.toggle("is-live", Boolean(live));
}
