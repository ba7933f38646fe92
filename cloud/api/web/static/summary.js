// Plain-language summaries for the family page (pure functions: data in, sentences out).
// "Usual range" is the range in which the care home's rules raise no alert for this
// resident (their own thresholds); without thresholds the values are simply stated.

import { metricInfo, number, possessive } from "./format.js";

export const FAMILY_METRICS = ["heart_rate", "spo2", "body_temperature", "systolic_bp", "respiratory_rate"];

const WORDS = {
  heart_rate: "heart rate",
  pulse_rate: "pulse",
  spo2: "oxygen level",
  body_temperature: "temperature",
  systolic_bp: "blood pressure (upper number)",
  respiratory_rate: "breathing rate",
  body_weight: "weight",
  blood_glucose: "blood sugar",
};

/** How much a day's average must differ from the week before to be worth saying. */
export const NOTABLE_CHANGE = {
  heart_rate: 8,
  spo2: 2,
  body_temperature: 0.5,
  systolic_bp: 12,
  respiratory_rate: 3,
};

export function words(metric) {
  return WORDS[metric] || metricInfo(metric).label.toLowerCase();
}

function unitText(metric, value) {
  const info = metricInfo(metric);
  return info.unit === "%" ? `${number(value, info.digits)}%` : `${number(value, info.digits)} ${info.unit}`;
}

/** The range without alerts: {low, high} (either may be null). */
export function usualRange(rules, metric) {
  let low = null;
  let high = null;
  for (const rule of rules || []) {
    if (rule.metric !== metric) continue;
    for (const band of rule.low) low = low === null ? band.value : Math.max(low, band.value);
    for (const band of rule.high) high = high === null ? band.value : Math.min(high, band.value);
  }
  return { low, high };
}

function extremes(buckets) {
  if (!buckets.length) return null;
  return {
    lowest: Math.min(...buckets.map((b) => b.min)),
    highest: Math.max(...buckets.map((b) => b.max)),
  };
}

export function average(buckets) {
  const count = buckets.reduce((n, b) => n + b.count, 0);
  if (!count) return null;
  return buckets.reduce((n, b) => n + b.mean * b.count, 0) / count;
}

/**
 * One sentence about a metric over the last day.
 * Returns {level: "none"|"usual"|"below"|"above"|"both"|"values", text}.
 */
export function daySentence(name, metric, buckets, range) {
  const what = words(metric);
  const found = extremes(buckets);
  if (!found) return { level: "none", text: `No ${what} readings in the last 24 hours.` };
  const { lowest, highest } = found;
  const span =
    lowest.toFixed(metricInfo(metric).digits) === highest.toFixed(metricInfo(metric).digits)
      ? unitText(metric, lowest)
      : `${number(lowest, metricInfo(metric).digits)} to ${unitText(metric, highest)}`;
  const who = possessive(name);
  const below = range.low !== null && lowest < range.low;
  const above = range.high !== null && highest > range.high;
  if (range.low === null && range.high === null) {
    return { level: "values", text: `${who} ${what} in the last 24 hours: ${span}.` };
  }
  if (below && above) {
    return { level: "both", text: `${who} ${what} went both below and above the usual range at times in the last 24 hours (${span}).` };
  }
  if (below) {
    return { level: "below", text: `${who} ${what} was below the usual range at times in the last 24 hours (lowest ${unitText(metric, lowest)}).` };
  }
  if (above) {
    return { level: "above", text: `${who} ${what} was above the usual range at times in the last 24 hours (highest ${unitText(metric, highest)}).` };
  }
  return { level: "usual", text: `${who} ${what} has been in the usual range in the last 24 hours (${span}).` };
}

/** A sentence when a metric's day average differs notably from the week before, else null. */
export function changeSentence(name, metric, today, before) {
  const now = average(today);
  const then = average(before);
  if (now === null || then === null) return null;
  const limit = NOTABLE_CHANGE[metric];
  if (limit === undefined || Math.abs(now - then) < limit) return null;
  const direction = now > then ? "higher" : "lower";
  const what = words(metric);
  const capital = what.charAt(0).toUpperCase() + what.slice(1);
  return {
    direction,
    text: `${capital} is ${direction} than in the week before: on average ${unitText(metric, now)} in the last 24 hours, ${unitText(metric, then)} before.`,
  };
}

const ALERT_WORDS = {
  help: (n) => `${n} pressed the help button`,
  fall: (n) => `A fall was detected for ${n}`,
  no_activity_after_fall: (n) => `No movement was detected for a while after ${possessive(n)} fall`,
  hr_high: (n) => `${possessive(n)} heart rate was high`,
  hr_low: (n) => `${possessive(n)} heart rate was low`,
  night_hr_rising: (n) => `${possessive(n)} heart rate at night was rising`,
  spo2_low: (n) => `${possessive(n)} oxygen level was low`,
  rr_high: (n) => `${n} was breathing fast`,
  rr_low: (n) => `${n} was breathing slowly`,
  temperature_high: (n) => `${n} had a raised temperature`,
  temperature_low: (n) => `${possessive(n)} temperature was low`,
  temperature_rise: (n) => `${possessive(n)} temperature was rising`,
  sbp_low: (n) => `${possessive(n)} blood pressure was low`,
  sbp_high: (n) => `${possessive(n)} blood pressure was high`,
  glucose_low: (n) => `${possessive(n)} blood sugar was low`,
  glucose_high: (n) => `${possessive(n)} blood sugar was high`,
  weight_gain: (n) => `${possessive(n)} weight went up quickly`,
  news2: (n) => `${possessive(n)} early warning score (NEWS2) went up`,
};

export function alertSentence(name, alert) {
  const make = ALERT_WORDS[alert.rule];
  return make ? `${make(name)}.` : `${alert.title.replace(/^\[[a-z]+\]\s*[A-Za-z0-9_-]+:\s*/, "")}.`;
}

/** Acknowledged or resolved: someone at the home has taken care of it. */
export function isHandled(alert) {
  return alert.state === "acknowledged" || alert.state === "resolved";
}

export function handledText(alert) {
  if (alert.state === "resolved") return "Handled: resolved";
  if (alert.state === "acknowledged") return "Handled: a carer is on it";
  if (alert.state === "snoozed") return "Being looked at";
  return "Open: the care team has been alerted";
}

/** Who was told and who acted, from an alert's trail: [{time, text}] in order. */
export function trailSentences(trail) {
  const found = [];
  for (const entry of trail) {
    const notified = /notified ([^;]+)/.exec(entry.detail || "");
    const told = notified ? notified[1].trim() : null;
    switch (entry.action) {
      case "opened":
        found.push({
          time: entry.time,
          text: told ? `The alert was raised and sent to ${told}.` : "The alert was raised and shown to the care team on their screens.",
        });
        break;
      case "escalated":
        found.push({ time: entry.time, text: told ? `Not yet answered, so it was also sent to ${told}.` : "Not yet answered, so it was passed on to more of the care team." });
        break;
      case "acknowledged":
        found.push({ time: entry.time, text: `${entry.actor} from the care team took it on${entry.detail && !notified ? `: “${entry.detail}”` : ""}.` });
        break;
      case "resolved":
        found.push({
          time: entry.time,
          text: entry.actor === "system" ? "It ended by itself and was closed." : `${entry.actor} from the care team closed it${entry.detail && !notified ? `: “${entry.detail}”` : ""}.`,
        });
        break;
      default:
        break;
    }
  }
  return found;
}
