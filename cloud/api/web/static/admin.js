// Administration of a home: accounts (create, delete), family links (grant, revoke), and,
// read-only, the residents and devices of the site file and the alert thresholds.

import { ApiError, del, get, path, post } from "./api.js";
import { $, clear, h, time } from "./dom.js";
import { clock, metricInfo } from "./format.js";
import { chooseSite, fail, start } from "./shell.js";

let site;
let me;
let residents = [];
let users = [];

function say(text, failed = false) {
  const status = $("#admin-status");
  status.textContent = text;
  status.classList.toggle("error", failed);
}

function reason(error) {
  return error instanceof ApiError ? error.message : "try again";
}

/** A button that asks to be pressed a second time within 5 s before it acts. */
function confirmButton(label, confirmLabel, action) {
  const button = h("button", { type: "button", class: "danger" }, label);
  let armed = null;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = confirmLabel;
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
      }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      say(`Not done: ${reason(error)}`, true);
      button.disabled = false;
      button.textContent = label;
    }
  });
  return button;
}

function renderAccounts() {
  const body = clear($("#accounts tbody"));
  for (const user of users) {
    const linked = user.role === "family" ? residents.filter((r) => r.links?.some((l) => l.user_id === user.id)).map((r) => r.name || r.id).join(", ") : "";
    body.append(
      h(
        "tr",
        { dataset: { userId: user.id } },
        h("th", { scope: "row" }, user.username, user.disabled ? " (disabled)" : ""),
        h("td", {}, user.role),
        h("td", {}, user.sites.join(", ")),
        h("td", {}, linked || "–"),
        h(
          "td",
          {},
          user.id === me.id
            ? h("span", { class: "muted small" }, "you")
            : confirmButton(`Delete ${user.username}`, `Confirm: delete ${user.username}`, async () => {
                await del(path("users", user.id));
                say(`Account ${user.username} deleted.`);
                await refresh();
              }),
        ),
      ),
    );
  }
  const select = clear($("#link-account"));
  for (const user of users.filter((u) => u.role === "family")) select.append(h("option", { value: user.id }, user.username));
}

async function loadLinks() {
  const body = clear($("#links tbody"));
  await Promise.all(
    residents.map(async (resident) => {
      resident.links = await get(path("sites", site.id, "residents", resident.id, "links"));
    }),
  );
  const names = new Map(users.map((u) => [u.id, u.username]));
  let any = false;
  for (const resident of residents) {
    for (const link of resident.links) {
      any = true;
      const who = names.get(link.user_id) || `account ${link.user_id}`;
      body.append(
        h(
          "tr",
          { dataset: { linkId: link.id } },
          h("th", { scope: "row" }, resident.name || resident.id),
          h("td", {}, who),
          h("td", {}, link.contact ? "yes" : "no"),
          h("td", {}, time(link.granted_at, clock(link.granted_at, site.timezone))),
          h(
            "td",
            {},
            confirmButton(`End link of ${who}`, `Confirm: end link of ${who}`, async () => {
              await del(path("sites", site.id, "residents", resident.id, "links", link.id));
              say(`The link of ${who} to ${resident.name || resident.id} has ended.`);
              await refresh();
            }),
          ),
        ),
      );
    }
  }
  if (!any) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No family links.")));
}

async function loadDirectory() {
  const devices = await get(path("sites", site.id, "devices"));
  const body = clear($("#directory tbody"));
  for (const resident of residents) {
    const own = devices.filter((d) => d.resident === resident.id);
    body.append(
      h(
        "tr",
        {},
        h("th", { scope: "row" }, resident.name || resident.id, h("span", { class: "muted small" }, ` (${resident.id})`)),
        h("td", {}, resident.room || "–"),
        h(
          "td",
          {},
          own.length
            ? h("ul", { class: "plain" }, own.map((d) => h("li", {}, `${d.kind || "device"} ${d.id}: `, d.connected === null || d.connected === undefined ? "not reported" : d.connected ? "connected" : "not connected", d.battery !== null && d.battery !== undefined ? `, battery ${d.battery} %` : "")))
            : "–",
        ),
      ),
    );
  }
  const select = clear($("#link-resident"));
  const rules = clear($("#rules-resident"));
  for (const resident of residents) {
    select.append(h("option", { value: resident.id }, resident.name || resident.id));
    rules.append(h("option", { value: resident.id }, resident.name || resident.id));
  }
}

async function loadRules(resident) {
  const body = clear($("#rules tbody"));
  let found;
  try {
    found = (await get(path("sites", site.id, "residents", resident, "thresholds"))).rules;
  } catch (error) {
    body.append(h("tr", {}, h("td", { colspan: 4, class: "muted" }, `Not available: ${reason(error)}`)));
    return;
  }
  const bands = (list, sign) => (list.length ? list.map((b) => `${b.severity} ${sign} ${b.value}`).join(", ") : "–");
  for (const rule of found) {
    const info = metricInfo(rule.metric);
    body.append(h("tr", {}, h("th", { scope: "row" }, rule.rule), h("td", {}, `${info.label} (${info.unit})`), h("td", {}, bands(rule.low, "<")), h("td", {}, bands(rule.high, ">"))));
  }
}

async function refresh() {
  [residents, users] = await Promise.all([get(path("sites", site.id, "residents")), get("/users")]);
  users = users.filter((u) => u.sites.includes(site.id));
  await loadLinks();
  renderAccounts();
  const chosen = $("#rules-resident").value;
  await loadDirectory();
  if (residents.some((r) => r.id === chosen)) $("#rules-resident").value = chosen;
  await loadRules($("#rules-resident").value || residents[0]?.id);
}

function bindForms() {
  $("#account-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const username = $("#new-username").value.trim();
    try {
      await post("/users", { username, password: $("#new-password").value, role: $("#new-role").value, sites: [site.id] });
      form.reset();
      say(`Account ${username} created.`);
      await refresh();
    } catch (error) {
      say(`Account not created: ${reason(error)}`, true);
    }
  });
  $("#link-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const account = $("#link-account").value;
    if (!account) {
      say("Create a family account first.", true);
      return;
    }
    try {
      await post(path("users", account, "links"), { site: site.id, resident: $("#link-resident").value, contact: $("#link-contact").checked });
      event.target.reset();
      say("Link granted.");
      await refresh();
    } catch (error) {
      say(`Not linked: ${reason(error)}`, true);
    }
  });
  $("#rules-resident").addEventListener("change", (event) => loadRules(event.target.value).catch(fail));
}

async function run() {
  const session = await start({ roles: ["admin"] });
  me = session.user;
  ({ site } = await chooseSite());
  if (!site) return;
  bindForms();
  await refresh();
  document.body.dataset.ready = "true";
}

run().catch((error) => fail(error));
