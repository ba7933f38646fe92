// A resident's page: NEWS2 now, the latest values, charts of every metric over a period
// (downsampled by the server) with the alert thresholds drawn, a staff entry (ACVPU,
// oxygen), and the resident's alerts with their audit trail.

import { ApiError, get, path, post } from "./api.js";
import { $, $$, clear, h, time, uid } from "./dom.js";
import { lineChart } from "./chart.js";
import { BANDS, SEVERITIES, STATES, age, alertText, clock, metricInfo, withUnit } from "./format.js";
import { connect } from "./live.js";
import { fail, setLiveState, start } from "./shell.js";
import { news2Badge } from "./tiles.js";

const RANGES = { "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3, "30d": 30 * 24 * 3600e3 };
const CHARTS = [
  { key: "heart_rate", metrics: ["heart_rate"], always: true },
  { key: "spo2", metrics: ["spo2"], always: true },
  { key: "respiratory_rate", metrics: ["respiratory_rate"], always: true },
  { key: "body_temperature", metrics: ["body_temperature"], always: true },
  { key: "bp", title: "Blood pressure", metrics: ["systolic_bp", "diastolic_bp"], always: true },
  { key: "pulse_rate", metrics: ["pulse_rate"] },
  { key: "body_weight", metrics: ["body_weight"] },
  { key: "blood_glucose", metrics: ["blood_glucose"] },
];
const LATEST_ORDER = [
  "heart_rate",
  "pulse_rate",
  "spo2",
  "respiratory_rate",
  "body_temperature",
  "systolic_bp",
  "diastolic_bp",
  "mean_arterial_pressure",
  "body_weight",
  "blood_glucose",
];
const NEWS2_PARAMETERS = {
  respiration_rate: "Respiration rate",
  spo2: "Oxygen saturation",
  air_or_oxygen: "Air or oxygen",
  systolic_bp: "Systolic blood pressure",
  pulse: "Pulse",
  consciousness: "Consciousness",
  temperature: "Temperature",
};
const TRAIL_ACTIONS = {
  opened: "Raised",
  retriggered: "Happened again",
  severity_raised: "Became more severe",
  eased: "Eased",
  cleared: "Condition ended",
  acknowledged: "Acknowledged",
  snoozed: "Snoozed",
  unsnoozed: "Snooze ended",
  escalated: "Escalated",
  resolved: "Resolved",
};

const main = $("#main");
const siteId = main.dataset.site;
const residentId = main.dataset.resident;
const base = path("sites", siteId, "residents", residentId);
let timeZone;
let thresholds = [];
const latest = new Map();

function renderLatest() {
  const now = Date.now();
  const list = clear($("#latest"));
  const shown = [...latest.values()].filter((r) => !["rr_interval", "fall", "help_button"].includes(r.metric));
  if (!shown.length) list.append(h("div", {}, h("dt", {}, "Readings"), h("dd", {}, "None yet")));
  const order = (metric) => (LATEST_ORDER.indexOf(metric) + LATEST_ORDER.length + 1) % (LATEST_ORDER.length + 1);
  for (const reading of shown.sort((a, b) => order(a.metric) - order(b.metric) || a.metric.localeCompare(b.metric))) {
    list.append(
      h(
        "div",
        { class: "vital", dataset: { metric: reading.metric } },
        h("dt", {}, metricInfo(reading.metric).label),
        h("dd", {}, h("span", { class: "value" }, withUnit(reading.metric, reading.value)), " ", h("span", { class: "age small" }, time(reading.time, age(reading.time, now)))),
      ),
    );
  }
}

async function loadNews2() {
  const panel = clear($("#news2"));
  let score = null;
  try {
    score = await get(`${base}/news2`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 503) throw error;
  }
  panel.append(h("p", {}, news2Badge(score)));
  if (!score || !score.scores || !Object.keys(score.scores).length) return;
  const rows = Object.entries(NEWS2_PARAMETERS).map(([key, label]) =>
    h("tr", {}, h("th", { scope: "row" }, label), h("td", {}, score.scores[key] === null || score.scores[key] === undefined ? "not measured" : String(score.scores[key]))),
  );
  panel.append(
    h(
      "details",
      {},
      h("summary", {}, "NEWS2 by parameter"),
      h("table", { class: "compact" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Parameter"), h("th", { scope: "col" }, "Score"))), h("tbody", {}, rows)),
      score.time ? h("p", { class: "small muted" }, "Newest parameter measured ", time(score.time, clock(score.time, timeZone))) : null,
    ),
  );
  if (BANDS[score.band] && score.band !== "low") panel.classList.add("has-risk");
}

function thresholdsOf(metric) {
  const found = [];
  for (const rule of thresholds) {
    if (rule.metric !== metric) continue;
    for (const band of rule.low) found.push({ ...band, direction: "low" });
    for (const band of rule.high) found.push({ ...band, direction: "high" });
  }
  const seen = new Set();
  return found.filter((t) => {
    const key = `${t.direction}:${t.value}:${t.severity}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function loadCharts(range) {
  const container = $("#charts");
  container.setAttribute("aria-busy", "true");
  const end = Date.now();
  const start = end - RANGES[range];
  const query = { start: new Date(start).toISOString(), end: new Date(end).toISOString() };
  const histories = new Map();
  const metrics = [...new Set(CHARTS.flatMap((c) => c.metrics))];
  await Promise.all(
    metrics.map(async (metric) => {
      histories.set(metric, await get(`${base}/history`, { ...query, metric }));
    }),
  );
  clear(container);
  for (const chart of CHARTS) {
    const series = chart.metrics.map((metric) => ({
      label: metricInfo(metric).label,
      className: `metric-${metric}`,
      points: histories.get(metric).buckets.map((b) => ({ t: Date.parse(b.start) + (histories.get(metric).every_s * 1000) / 2, mean: b.mean, min: b.min, max: b.max, count: b.count })),
    }));
    const empty = series.every((s) => !s.points.length);
    if (empty && !chart.always) continue;
    const info = metricInfo(chart.metrics[0]);
    const title = chart.title || info.label;
    const figure = h("figure", { class: "chart-figure", dataset: { chart: chart.key } }, h("figcaption", {}, h("h3", {}, `${title} (${info.unit})`)));
    if (empty) {
      figure.append(h("p", { class: "muted" }, "No readings in this period."));
    } else {
      const every = histories.get(chart.metrics[0]).every_s * 1000;
      figure.append(
        lineChart({
          id: uid(`chart-${chart.key}`),
          title: `${title}, ${$(`input[name=range][value="${range}"]`).parentElement.textContent.trim()}`,
          unit: info.unit,
          digits: info.digits,
          series,
          thresholds: chart.metrics.flatMap(thresholdsOf),
          start,
          end,
          every,
          timeZone,
        }),
      );
      if (series.length > 1) {
        figure.append(h("p", { class: "legend small" }, ...series.map((s) => h("span", { class: `key ${s.className}` }, h("span", { class: "swatch", "aria-hidden": "true" }), ` ${s.label}`))));
      }
    }
    container.append(figure);
  }
  container.setAttribute("aria-busy", "false");
}

function trailItem(entry) {
  const words = TRAIL_ACTIONS[entry.action] || entry.action;
  const by = entry.actor && entry.actor !== "system" ? ` by ${entry.actor}` : "";
  return h("li", {}, time(entry.time, clock(entry.time, timeZone)), ` ${words}${by}`, entry.detail ? `: ${entry.detail}` : "");
}

async function loadAlerts() {
  const body = await get(path("sites", siteId, "alerts"), { resident: residentId, limit: 50 });
  const list = clear($("#history"));
  $("#history-empty").hidden = body.alerts.length > 0;
  for (const alert of body.alerts) {
    const trail = h("ol", { class: "trail" });
    const details = h(
      "details",
      { dataset: { alertId: alert.id, state: alert.state } },
      h(
        "summary",
        {},
        h("span", { class: `badge sev-${alert.severity}` }, h("span", { class: "icon", "aria-hidden": "true" }, SEVERITIES[alert.severity]?.icon || "!"), ` ${SEVERITIES[alert.severity]?.label || alert.severity}`),
        " ",
        h("span", { class: `badge state state-${alert.state}` }, STATES[alert.state] || alert.state),
        " ",
        alertText(alert),
        ", ",
        time(alert.opened, clock(alert.opened, timeZone)),
      ),
      trail,
    );
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "true";
      try {
        const answer = await get(path("sites", siteId, "alerts", alert.id, "trail"));
        trail.append(...answer.trail.map(trailItem));
      } catch (error) {
        trail.append(h("li", { class: "error" }, `The trail could not be loaded: ${error.message}`));
      }
    });
    list.append(h("li", {}, details));
  }
}

function bindEntry(role) {
  if (role === "family") return;
  $("#entry-panel").hidden = false;
  const form = $("#entry-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("#entry-status");
    const consciousness = $("#consciousness").value || null;
    const oxygen = $("#oxygen").value;
    if (!consciousness && !oxygen) {
      status.textContent = "Choose a level of consciousness or an oxygen change first.";
      return;
    }
    status.textContent = "Saving…";
    try {
      await post(`${base}/observations`, { consciousness, on_oxygen: oxygen ? oxygen === "yes" : null });
      status.textContent = "Saved.";
      form.reset();
      await loadNews2();
    } catch (error) {
      status.textContent = `Not saved: ${error.message}`;
    }
  });
}

async function run() {
  const session = await start({ roles: ["admin", "staff"] });
  const [resident, sites] = await Promise.all([get(base), get("/sites")]);
  timeZone = sites.find((s) => s.id === siteId)?.timezone;
  document.title = `${resident.name || resident.id} · CareWatch`;
  $("#resident-name").textContent = resident.name || resident.id;
  const record = Object.entries(resident.record || {}).map(([k, v]) => `${k.replaceAll("_", " ")}: ${v === true ? "yes" : v === false ? "no" : v}`);
  $("#resident-meta").textContent = [resident.room ? `Room ${resident.room}` : null, ...record].filter(Boolean).join(" · ");
  try {
    thresholds = (await get(`${base}/thresholds`)).rules;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 503) throw error;
    thresholds = [];
  }
  const now = await get(`${base}/latest`);
  for (const reading of now.readings) latest.set(reading.metric, reading);
  renderLatest();
  bindEntry(session.user.role);
  const wanted = new URLSearchParams(location.search).get("range");
  const range = RANGES[wanted] ? wanted : "24h";
  for (const radio of $$("input[name=range]")) {
    radio.checked = radio.value === range;
    radio.addEventListener("change", () => {
      const url = new URL(location.href);
      url.searchParams.set("range", radio.value);
      history.replaceState(null, "", url);
      loadCharts(radio.value).catch(fail);
    });
  }
  await Promise.all([loadNews2(), loadCharts(range), loadAlerts()]);
  connect(
    siteId,
    {
      reading: (event) => {
        if (event.resident !== residentId) return;
        const known = latest.get(event.metric);
        if (known && Date.parse(known.time) >= Date.parse(event.time)) return;
        latest.set(event.metric, event);
        renderLatest();
      },
      alert: (alert) => {
        if (alert.resident === residentId) loadAlerts().catch(() => {});
      },
      resync: () => loadAlerts().catch(() => {}),
    },
    setLiveState,
  );
  setInterval(renderLatest, 30000);
  document.body.dataset.ready = "true";
}

run().catch((error) => fail(error));
