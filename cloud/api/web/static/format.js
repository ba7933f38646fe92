// Words, units and times as people read them (pure functions, no DOM).

export const METRICS = {
  heart_rate: { label: "Heart rate", short: "HR", unit: "bpm", digits: 0 },
  pulse_rate: { label: "Pulse rate", short: "Pulse", unit: "bpm", digits: 0 },
  spo2: { label: "Oxygen saturation", short: "SpO₂", unit: "%", digits: 0 },
  body_temperature: { label: "Temperature", short: "Temp", unit: "°C", digits: 1 },
  systolic_bp: { label: "Systolic blood pressure", short: "Sys", unit: "mmHg", digits: 0 },
  diastolic_bp: { label: "Diastolic blood pressure", short: "Dia", unit: "mmHg", digits: 0 },
  mean_arterial_pressure: { label: "Mean blood pressure", short: "MAP", unit: "mmHg", digits: 0 },
  respiratory_rate: { label: "Respiratory rate", short: "RR", unit: "/min", digits: 0 },
  body_weight: { label: "Weight", short: "Wt", unit: "kg", digits: 1 },
  blood_glucose: { label: "Blood glucose", short: "Glu", unit: "mmol/L", digits: 1 },
  battery_level: { label: "Battery", short: "Batt", unit: "%", digits: 0 },
};

export function metricInfo(metric) {
  return METRICS[metric] || { label: metric.replaceAll("_", " "), short: metric, unit: "", digits: 1 };
}

export function number(value, digits = 0) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toFixed(digits);
}

/** "72 bpm", "36.8 °C" */
export function withUnit(metric, value) {
  const info = metricInfo(metric);
  const unit = info.unit === "%" ? "%" : info.unit ? ` ${info.unit}` : "";
  return `${number(value, info.digits)}${unit}`;
}

/** "just now", "4 min ago", "3 h ago", "2 days ago" from an ISO time and now (ms). */
export function age(iso, nowMs) {
  const seconds = Math.max(0, (nowMs - Date.parse(iso)) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  const days = Math.floor(seconds / 86400);
  return days === 1 ? "1 day ago" : `${days} days ago`;
}

export function ageSeconds(iso, nowMs) {
  return Math.max(0, (nowMs - Date.parse(iso)) / 1000);
}

function formatter(timeZone, options) {
  try {
    return new Intl.DateTimeFormat("en-GB", { ...options, timeZone: timeZone || undefined });
  } catch {
    return new Intl.DateTimeFormat("en-GB", options);
  }
}

/** "14:05" (or "Tue 3 Mar, 14:05" when not today) in the home's time zone. */
export function clock(iso, timeZone, nowMs = Date.now()) {
  const when = new Date(iso);
  const day = formatter(timeZone, { year: "numeric", month: "2-digit", day: "2-digit" });
  const time = formatter(timeZone, { hour: "2-digit", minute: "2-digit" }).format(when);
  if (day.format(when) === day.format(new Date(nowMs))) return time;
  const date = formatter(timeZone, { weekday: "short", day: "numeric", month: "short" });
  return `${date.format(when)}, ${time}`;
}

export const BANDS = {
  low: { label: "low", icon: "●" },
  "low-medium": { label: "low–medium", icon: "▲" },
  medium: { label: "medium", icon: "◆" },
  high: { label: "high", icon: "■" },
};

export const SEVERITIES = {
  info: { label: "Info", icon: "i", rank: 0 },
  warning: { label: "Warning", icon: "!", rank: 1 },
  urgent: { label: "Urgent", icon: "!!", rank: 2 },
  critical: { label: "Critical", icon: "!!!", rank: 3 },
};

export const STATES = {
  open: "Open",
  acknowledged: "Acknowledged",
  snoozed: "Snoozed",
  resolved: "Resolved",
};

/** The alert's title without its "[severity] id:" prefix (the page shows both apart). */
export function alertText(alert) {
  return alert.title.replace(/^\[[a-z]+\]\s*/, "").replace(/^[A-Za-z0-9_-]+:\s*/, "");
}

export function firstName(name, fallback) {
  if (!name) return fallback;
  return name.trim().split(/\s+/)[0];
}

export function possessive(name) {
  return name.endsWith("s") ? `${name}’` : `${name}’s`;
}
