// A resident's tile on the staff wall: latest vital signs with their age, the NEWS2 badge
// (number, band name and shape: never colour alone), devices and open alerts.

import { clear, h, time } from "./dom.js";
import { BANDS, SEVERITIES, age, ageSeconds, clock, metricInfo, withUnit } from "./format.js";

export const TILE_VITALS = [
  // shown as, metrics (first found wins), stale after (s)
  { key: "heart_rate", metrics: ["heart_rate", "pulse_rate"], stale: 3600 },
  { key: "spo2", metrics: ["spo2"], stale: 3600 },
  { key: "body_temperature", metrics: ["body_temperature"], stale: 86400 },
  { key: "bp", metrics: ["systolic_bp"], stale: 86400 },
  { key: "respiratory_rate", metrics: ["respiratory_rate"], stale: 3600 },
];

const DEVICE_KINDS = {
  wearable: "Wearable",
  bp_cuff: "Blood pressure cuff",
  thermometer: "Thermometer",
  oximeter: "Oximeter",
  scale: "Scale",
  glucometer: "Glucose meter",
  pendant: "Pendant",
};

export function news2Badge(score) {
  if (!score || score.total === null || score.total === undefined) {
    return h("span", { class: "news2 band-none" }, h("span", { class: "icon", "aria-hidden": "true" }, "○"), " NEWS2 not available");
  }
  const band = BANDS[score.band] || { label: score.band, icon: "?" };
  const missing = score.missing?.length ? ` (${score.missing.length} not measured)` : "";
  return h(
    "span",
    { class: `news2 band-${score.band}`, dataset: { total: score.total, band: score.band } },
    h("span", { class: "icon", "aria-hidden": "true" }, band.icon),
    ` NEWS2 ${score.total}, ${band.label} risk${missing}`,
  );
}

export class Tile {
  constructor(site, resident) {
    this.site = site;
    this.resident = resident;
    this.latest = new Map();
    this.devices = [];
    this.alerts = [];
    this.news2 = null;
    const id = `tile-${resident.id}`;
    this.badge = h("div", { class: "tile-badge" });
    this.vitals = h("dl", { class: "vitals" });
    this.deviceLine = h("p", { class: "devices small" });
    this.alertLine = h("p", { class: "tile-alerts" });
    const href = `/resident/${encodeURIComponent(site.id)}/${encodeURIComponent(resident.id)}`;
    this.element = h(
      "li",
      { class: "tile", dataset: { resident: resident.id } },
      h(
        "article",
        { "aria-labelledby": id },
        h(
          "div",
          { class: "tile-head" },
          h("h3", { id }, h("a", { href }, resident.name || resident.id)),
          resident.room ? h("p", { class: "muted small" }, `Room ${resident.room}`) : null,
        ),
        this.badge,
        this.vitals,
        this.deviceLine,
        this.alertLine,
      ),
    );
    this.render();
  }

  setLatest(readings) {
    this.latest.clear();
    for (const reading of readings) this.latest.set(reading.metric, reading);
  }

  /** A reading from the live events (only if it is newer than what the tile shows). */
  reading(event) {
    const known = this.latest.get(event.metric);
    if (known && Date.parse(known.time) >= Date.parse(event.time)) return;
    this.latest.set(event.metric, { metric: event.metric, value: event.value, unit: event.unit, time: event.time });
    this.renderVitals();
  }

  render() {
    clear(this.badge).append(news2Badge(this.news2));
    this.renderVitals();
    this.renderDevices();
    this.renderAlerts();
  }

  renderVitals() {
    const now = Date.now();
    clear(this.vitals);
    for (const vital of TILE_VITALS) {
      const reading = vital.metrics.map((m) => this.latest.get(m)).find(Boolean);
      const info = metricInfo(vital.key === "bp" ? "systolic_bp" : reading?.metric || vital.key);
      const label = vital.key === "bp" ? h("abbr", { title: "Blood pressure" }, "BP") : h("abbr", { title: info.label }, info.short);
      let value = "–";
      let when = null;
      let stale = false;
      if (reading) {
        if (vital.key === "bp") {
          const diastolic = this.latest.get("diastolic_bp");
          value = `${Math.round(reading.value)}/${diastolic ? Math.round(diastolic.value) : "–"} mmHg`;
        } else {
          value = withUnit(reading.metric, reading.value);
        }
        stale = ageSeconds(reading.time, now) > vital.stale;
        when = h("span", { class: "age small" }, time(reading.time, age(reading.time, now)), stale ? " (old)" : "");
      }
      this.vitals.append(
        h(
          "div",
          { class: `vital${stale ? " is-stale" : ""}${reading ? "" : " is-missing"}`, dataset: { metric: vital.key } },
          h("dt", {}, label),
          h("dd", {}, h("span", { class: "value" }, value), reading ? " " : h("span", { class: "visually-hidden" }, " no reading"), when),
        ),
      );
    }
  }

  renderDevices() {
    const parts = [];
    for (const device of this.devices) {
      const kind = DEVICE_KINDS[device.kind] || device.kind || "Device";
      let state;
      if (device.connected === null || device.connected === undefined) state = "not reported";
      else state = device.connected ? "connected" : "not connected";
      const battery = device.battery !== null && device.battery !== undefined ? `, battery ${device.battery} %` : "";
      const low = device.battery !== null && device.battery !== undefined && device.battery <= 20;
      parts.push(h("span", { class: `device${low ? " is-low" : ""}${device.connected === false ? " is-off" : ""}` }, `${kind}: ${state}${battery}`));
    }
    clear(this.deviceLine).append(...parts.flatMap((p, i) => (i ? [". ", p] : [p])), parts.length ? "." : "No devices.");
  }

  renderAlerts() {
    const open = this.alerts.filter((a) => a.state !== "resolved");
    const element = this.element;
    for (const name of [...element.classList]) if (name.startsWith("alert-")) element.classList.remove(name);
    if (!open.length) {
      clear(this.alertLine).append(h("span", { class: "muted" }, "No open alerts"));
      return;
    }
    const worst = open.reduce((a, b) => ((SEVERITIES[b.severity]?.rank ?? 0) > (SEVERITIES[a.severity]?.rank ?? 0) ? b : a));
    element.classList.add(`alert-${worst.severity}`);
    const href = `/alerts?site=${encodeURIComponent(this.site.id)}&resident=${encodeURIComponent(this.resident.id)}`;
    const words = open.length === 1 ? "1 open alert" : `${open.length} open alerts`;
    clear(this.alertLine).append(
      h("span", { class: `badge sev-${worst.severity}` }, h("span", { class: "icon", "aria-hidden": "true" }, SEVERITIES[worst.severity]?.icon || "!"), ` ${SEVERITIES[worst.severity]?.label || worst.severity}`),
      " ",
      h("a", { href }, words),
    );
  }
}

export function gatewaySummary(devices, timeZone) {
  const gateways = new Map();
  for (const device of devices) {
    if (!device.gateway) continue;
    const known = gateways.get(device.gateway);
    if (!known || Date.parse(device.updated_at || 0) > Date.parse(known.updated_at || 0)) gateways.set(device.gateway, device);
  }
  if (!gateways.size) return ["No gateway has reported yet."];
  const now = Date.now();
  return [...gateways.values()].flatMap((d, i) => [
    i ? "; " : "",
    `Gateway ${d.gateway}: `,
    h("strong", { class: `gateway-${d.gateway_state}` }, d.gateway_state || "unknown"),
    d.updated_at ? [" (reported ", time(d.updated_at, `${clock(d.updated_at, timeZone, now)}`), ")"] : "",
  ]);
}
