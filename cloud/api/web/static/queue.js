// The alert queue: a home's alerts, newest first, kept up to date from the live events,
// with acknowledge / resolve / snooze (and a comment) for staff. Every control is a native
// form control, so the queue is used with the keyboard like any form. Items are updated in
// place, never rebuilt, so a comment being typed or the focus is never lost when another
// alert changes. New alerts are announced through an assertive live region.

import { ApiError, get, path, post } from "./api.js";
import { clear, h, time, uid } from "./dom.js";
import { SEVERITIES, STATES, age, alertText, clock } from "./format.js";

const ACTIONS = {
  open: ["acknowledge", "resolve", "snooze"],
  acknowledged: ["resolve", "snooze"],
  snoozed: ["acknowledge", "resolve"],
  resolved: [],
};
const SNOOZE_MINUTES = [15, 30, 60, 120];
const CRITICAL_SNOOZE_MINUTES = [5, 10, 15];

export class AlertQueue {
  constructor({ list, empty, count, announcer, site, residents, states, resident, canAct, timeZone }) {
    this.list = list;
    this.empty = empty;
    this.count = count;
    this.announcer = announcer;
    this.site = site;
    this.residents = residents || new Map();
    this.states = new Set(states || ["open", "acknowledged", "snoozed"]);
    this.resident = resident || null;
    this.canAct = Boolean(canAct);
    this.timeZone = timeZone;
    this.alerts = new Map();
    this.items = new Map();
    this.listeners = [];
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  async load() {
    const body = await get(path("sites", this.site, "alerts"), {
      state: [...this.states],
      resident: this.resident,
      limit: 200,
    });
    const fresh = new Map(body.alerts.map((a) => [a.id, a]));
    for (const id of [...this.alerts.keys()]) {
      if (!fresh.has(id)) this.remove(id);
    }
    for (const alert of body.alerts) this.upsert(alert, { announce: false });
    this.changed();
  }

  /** An alert from the live events or an action's answer. */
  upsert(alert, { announce = true } = {}) {
    if (alert.site !== this.site) return;
    if (this.resident && alert.resident !== this.resident) return;
    const known = this.alerts.get(alert.id);
    if (known && Date.parse(known.updated) > Date.parse(alert.updated)) return; // older news
    if (!this.states.has(alert.state)) {
      if (known) this.remove(alert.id);
      this.changed();
      return;
    }
    this.alerts.set(alert.id, alert);
    let item = this.items.get(alert.id);
    if (!item) {
      item = this.build(alert);
      this.items.set(alert.id, item);
      this.place(item, alert);
      if (announce && alert.state === "open") {
        item.classList.add("is-new");
        this.say(`New ${SEVERITIES[alert.severity]?.label.toLowerCase() || ""} alert: ${this.who(alert)}, ${alertText(alert)}`);
      }
    }
    this.fill(item, alert);
    this.changed();
  }

  remove(id) {
    const item = this.items.get(id);
    this.alerts.delete(id);
    this.items.delete(id);
    if (!item) return;
    const focused = item.contains(document.activeElement);
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    if (focused) {
      const target = next?.querySelector("h3 a, h3") || this.list.closest("section")?.querySelector("h2") || document.body;
      if (!target.hasAttribute("tabindex") && target.tagName !== "A") target.setAttribute("tabindex", "-1");
      target.focus();
    }
  }

  changed() {
    const shown = this.alerts.size;
    if (this.empty) this.empty.hidden = shown > 0;
    if (this.count) this.count.textContent = shown ? `(${shown})` : "";
    for (const listener of this.listeners) listener([...this.alerts.values()]);
  }

  say(text) {
    if (!this.announcer) return;
    this.announcer.textContent = "";
    // A new text node in a cleared region is announced even when the text repeats.
    setTimeout(() => {
      this.announcer.textContent = text;
    }, 50);
  }

  who(alert) {
    if (!alert.resident) return alert.gateway ? `gateway ${alert.gateway}` : alert.device ? `device ${alert.device}` : "the home";
    const resident = this.residents.get(alert.resident);
    return resident?.name || `resident ${alert.resident}`;
  }

  place(item, alert) {
    const opened = Date.parse(alert.opened);
    for (const other of this.list.children) {
      const otherAlert = this.alerts.get(other.dataset.alertId);
      if (otherAlert && Date.parse(otherAlert.opened) < opened) {
        this.list.insertBefore(item, other);
        return;
      }
    }
    this.list.append(item);
  }

  build(alert) {
    const id = uid("alert");
    const item = h("li", { class: "alert", dataset: { alertId: alert.id } });
    const article = h("article", { "aria-labelledby": `${id}-title` });
    const head = h("div", { class: "alert-head" });
    const title = h("h3", { id: `${id}-title`, class: "alert-title" });
    const meta = h("p", { class: "alert-meta" });
    article.append(head, title, meta);
    item.append(article);
    item.parts = { head, title, meta, id };
    if (this.canAct) {
      const form = this.buildForm(alert, id, item);
      article.append(form);
      item.parts.form = form;
    }
    return item;
  }

  buildForm(alert, id, item) {
    const comment = h("input", { id: `${id}-comment`, name: "comment", maxlength: 500, autocomplete: "off" });
    const minutes = h("select", { id: `${id}-minutes`, name: "minutes" });
    const status = h("p", { class: "alert-status", role: "status" });
    const button = (action, label) =>
      h("button", { type: "submit", name: "action", value: action, class: action === "acknowledge" ? "primary" : "" }, label);
    const form = h(
      "form",
      { class: "alert-actions", "aria-label": "Act on this alert" },
      h("div", { class: "field" }, h("label", { for: `${id}-comment` }, "Comment (optional)"), comment),
      h(
        "div",
        { class: "buttons" },
        button("acknowledge", "Acknowledge"),
        button("resolve", "Resolve"),
        h("span", { class: "snooze" }, h("label", { for: `${id}-minutes` }, "Snooze for"), minutes, button("snooze", "Snooze")),
      ),
      status,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const action = event.submitter?.value;
      const current = this.alerts.get(item.dataset.alertId);
      if (!action || !current) return;
      const buttons = form.querySelectorAll("button");
      buttons.forEach((b) => (b.disabled = true));
      status.textContent = "Saving…";
      try {
        const url = path("sites", this.site, "alerts", current.id, action);
        const text = comment.value.trim() || null;
        const body = action === "snooze" ? { minutes: Number(minutes.value) } : { comment: text };
        const answer = await post(url, body);
        comment.value = "";
        status.textContent = `${STATES[answer.state] || answer.state}.`;
        this.upsert(answer, { announce: false });
      } catch (error) {
        status.textContent = error instanceof ApiError ? `Not done: ${error.message}` : "Not done: try again.";
        const latest = this.alerts.get(current.id);
        if (latest) this.fill(item, latest);
      }
    });
    return form;
  }

  fill(item, alert) {
    const { head, title, meta, form } = item.parts;
    const severity = SEVERITIES[alert.severity] || { label: alert.severity, icon: "?" };
    item.className = `alert sev-${alert.severity} state-${alert.state}` + (item.classList.contains("is-new") ? " is-new" : "");
    item.dataset.state = alert.state;
    clear(head).append(
      h("span", { class: `badge sev-${alert.severity}` }, h("span", { "aria-hidden": "true", class: "icon" }, severity.icon), ` ${severity.label}`),
      " ",
      h("span", { class: `badge state state-${alert.state}` }, STATES[alert.state] || alert.state),
      alert.kind === "technical" ? h("span", { class: "badge kind" }, "Technical") : "",
    );
    const resident = alert.resident ? this.residents.get(alert.resident) : null;
    const who = alert.resident
      ? h("a", { href: `/resident/${encodeURIComponent(alert.site)}/${encodeURIComponent(alert.resident)}` }, this.who(alert))
      : this.who(alert);
    clear(title).append(who, resident?.room ? ` (room ${resident.room})` : "", ": ", alertText(alert));
    const now = Date.now();
    const parts = [
      "Opened ",
      time(alert.opened, clock(alert.opened, this.timeZone, now)),
      ` (${age(alert.opened, now)})`,
    ];
    if (alert.count > 1) parts.push(`, happened ${alert.count} times`);
    if (alert.acknowledged_by && alert.acknowledged_at) {
      parts.push(". Acknowledged by ", h("strong", {}, alert.acknowledged_by), " at ", time(alert.acknowledged_at, clock(alert.acknowledged_at, this.timeZone, now)));
    }
    if (alert.state === "snoozed" && alert.snoozed_until) {
      parts.push(". Snoozed until ", time(alert.snoozed_until, clock(alert.snoozed_until, this.timeZone, now)));
    }
    if (alert.state === "resolved" && alert.resolved_at) {
      parts.push(". Resolved at ", time(alert.resolved_at, clock(alert.resolved_at, this.timeZone, now)));
    }
    if (alert.escalation_level > 0) parts.push(`. Escalated to level ${alert.escalation_level}`);
    if (alert.comment) parts.push(". Comment: ", h("q", {}, alert.comment));
    clear(meta).append(...parts, ".");
    if (form) {
      const allowed = ACTIONS[alert.state] || [];
      form.hidden = allowed.length === 0;
      for (const button of form.querySelectorAll("button")) {
        button.disabled = false;
        if (button.value !== "snooze") button.hidden = !allowed.includes(button.value);
      }
      form.querySelector(".snooze").hidden = !allowed.includes("snooze");
      const select = form.querySelector("select");
      const options = alert.severity === "critical" ? CRITICAL_SNOOZE_MINUTES : SNOOZE_MINUTES;
      if (select.dataset.for !== alert.severity) {
        clear(select).append(...options.map((m) => h("option", { value: m }, `${m} min`)));
        select.dataset.for = alert.severity;
      }
    }
  }
}
