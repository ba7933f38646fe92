// The family page: for each relative, in plain language, how the last day went, what changed
// from the week before, and which alerts were raised, who was told and who took care of it.
// Updated live when an alert about a relative changes.

import { ApiError, get, path } from "./api.js";
import { $, clear, h, time } from "./dom.js";
import { clock, firstName } from "./format.js";
import { connect } from "./live.js";
import { fail, setLiveState, start } from "./shell.js";
import {
  FAMILY_METRICS,
  alertSentence,
  changeSentence,
  daySentence,
  handledText,
  isHandled,
  trailSentences,
  usualRange,
} from "./summary.js";

const DAY = 24 * 3600e3;
const ALERTS_SHOWN = 10;

class Relative {
  constructor(site, resident) {
    this.site = site;
    this.residentId = resident;
    this.base = path("sites", site.id, "residents", resident);
    this.section = h("section", { class: "relative panel", dataset: { site: site.id, resident } });
    this.alertList = h("ol", { class: "family-alerts" });
    this.alertEmpty = h("p", { class: "muted", hidden: true }, "No alerts have been raised.");
  }

  async load() {
    const [resident, rules] = await Promise.all([
      get(this.base),
      get(`${this.base}/thresholds`).then(
        (body) => body.rules,
        (error) => {
          if (error instanceof ApiError && error.status === 503) return [];
          throw error;
        },
      ),
    ]);
    this.name = firstName(resident.name, "Your relative");
    const id = `relative-${this.site.id}-${this.residentId}`;
    const end = Date.now();
    const day = { start: new Date(end - DAY).toISOString(), end: new Date(end).toISOString() };
    const week = { start: new Date(end - 8 * DAY).toISOString(), end: new Date(end - DAY).toISOString(), every: "PT1H" };
    const histories = await Promise.all(
      FAMILY_METRICS.map(async (metric) => ({
        metric,
        today: (await get(`${this.base}/history`, { ...day, metric })).buckets,
        before: (await get(`${this.base}/history`, { ...week, metric })).buckets,
      })),
    );
    const today = histories.map((one) => daySentence(this.name, one.metric, one.today, usualRange(rules, one.metric)));
    const changes = histories.map((one) => changeSentence(this.name, one.metric, one.today, one.before)).filter(Boolean);
    clear(this.section).append(
      h("h2", { id }, `How is ${this.name} today?`),
      h("p", { class: "muted small" }, `${resident.name || resident.id}, ${this.site.name}. Updated `, time(new Date(end).toISOString(), clock(new Date(end).toISOString(), this.site.timezone)), "."),
      h("h3", {}, "The last 24 hours"),
      h("ul", { class: "plain day" }, today.map((s) => h("li", { class: `level-${s.level}`, dataset: { level: s.level } }, s.text))),
      h("h3", {}, "What changed"),
      h("ul", { class: "plain changes" }, changes.length ? changes.map((c) => h("li", {}, c.text)) : h("li", {}, `Nothing notable has changed compared with the week before.`)),
      h("h3", {}, "Alerts"),
      this.alertEmpty,
      this.alertList,
    );
    this.section.setAttribute("aria-labelledby", id);
    await this.loadAlerts();
  }

  async loadAlerts() {
    const body = await get(path("sites", this.site.id, "alerts"), { resident: this.residentId, limit: ALERTS_SHOWN });
    const trails = await Promise.all(
      body.alerts.map((alert) => get(path("sites", this.site.id, "alerts", alert.id, "trail")).then((t) => t.trail, () => [])),
    );
    clear(this.alertList);
    this.alertEmpty.hidden = body.alerts.length > 0;
    body.alerts.forEach((alert, index) => {
      const handled = isHandled(alert);
      const steps = trailSentences(trails[index]);
      this.alertList.append(
        h(
          "li",
          { class: `family-alert ${handled ? "is-handled" : "is-open"}`, dataset: { alertId: alert.id, state: alert.state, handled: String(handled) } },
          h("p", { class: "what" }, h("strong", {}, alertSentence(this.name, alert)), " ", time(alert.opened, clock(alert.opened, this.site.timezone))),
          h("p", { class: `status ${handled ? "handled" : "open"}` }, h("span", { class: "icon", "aria-hidden": "true" }, handled ? "✓" : "…"), ` ${handledText(alert)}.`),
          steps.length ? h("ul", { class: "steps" }, steps.map((s) => h("li", {}, time(s.time, clock(s.time, this.site.timezone)), `: ${s.text}`))) : null,
        ),
      );
    });
  }
}

async function relativesOf(session, sites) {
  const main = $("#main");
  const byId = new Map(sites.map((s) => [s.id, s]));
  if (main.dataset.site && main.dataset.resident) {
    const site = byId.get(main.dataset.site);
    return site ? [[site, main.dataset.resident]] : [];
  }
  if (session.user.role === "family") {
    return session.user.links.filter((l) => byId.has(l.site)).map((l) => [byId.get(l.site), l.resident]);
  }
  // Staff and admins: pick a resident whose family view to see.
  const found = [];
  for (const site of sites) {
    for (const resident of await get(path("sites", site.id, "residents"))) found.push([site, resident]);
  }
  $("#family-title").textContent = "Family view of a resident";
  $("#relatives").append(
    h(
      "ul",
      { class: "plain" },
      found.map(([site, r]) => h("li", {}, h("a", { href: `/family/${encodeURIComponent(site.id)}/${encodeURIComponent(r.id)}` }, `${r.name || r.id} (${site.name})`))),
    ),
  );
  return [];
}

async function run() {
  const session = await start();
  const sites = await get("/sites");
  const wanted = await relativesOf(session, sites);
  if (!wanted.length) {
    if (session.user.role === "family") $("#family-empty").hidden = false;
    document.body.dataset.ready = "true";
    return;
  }
  if (wanted.length === 1) $("#family-title").textContent = "Your family member";
  const relatives = wanted.map(([site, resident]) => new Relative(site, resident));
  const container = $("#relatives");
  for (const relative of relatives) container.append(relative.section);
  await Promise.all(relatives.map((r) => r.load()));
  for (const site of new Set(relatives.map((r) => r.site))) {
    connect(
      site.id,
      {
        alert: (alert) => {
          for (const relative of relatives) {
            if (relative.site.id === alert.site && relative.residentId === alert.resident) relative.loadAlerts().catch(() => {});
          }
        },
        resync: () => relatives.forEach((r) => r.loadAlerts().catch(() => {})),
      },
      setLiveState,
    );
  }
  document.body.dataset.ready = "true";
}

run().catch((error) => fail(error));
