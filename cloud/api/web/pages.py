"""The dashboard's HTML shells (pure): one :class:`Page` per screen, rendered by :func:`render`
into a complete document with the landmarks every page shares (skip link, banner with the
main navigation, ``main``, footer) and the page's own skeleton, which its ES module fills.

The shells hold no data: names, readings and alerts are fetched by the page's module after
login, so a shell can be served to anyone (and cached by nobody: the API's headers say
``no-store``). Values put into a shell (a site or resident id from the URL, already matched
against the id pattern by the router) are HTML-escaped all the same. No inline script or
style anywhere: the Content-Security-Policy forbids both.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["NAV", "PAGES", "Page", "render"]


@dataclass(slots=True, frozen=True)
class Page:
    name: str
    """The page's module (``/static/<name>.js``) and ``data-page`` of ``body``."""
    title: str
    main: str
    """The skeleton inside ``main`` (trusted HTML of this module)."""
    nav: str | None = None
    """The navigation entry marked as the current page."""


NAV: tuple[tuple[str, str, str], ...] = (
    # href, label, roles that see it
    ("/wall", "Residents", "admin staff"),
    ("/alerts", "Alerts", "admin staff"),
    ("/family", "My family", "family"),
    ("/admin", "Admin", "admin"),
)

_LOGIN = """
<div class="narrow">
  <h1>Log in to CareWatch</h1>
  <form id="login-form" class="stack" novalidate>
    <p id="login-error" class="error" role="alert" hidden></p>
    <div class="field">
      <label for="username">Username</label>
      <input id="username" name="username" autocomplete="username" required
             autocapitalize="none" spellcheck="false">
    </div>
    <div class="field">
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password"
             required>
    </div>
    <button type="submit" class="primary">Log in</button>
  </form>
</div>
"""

_SITE_PICKER = """
  <div class="field inline" id="site-field" hidden>
    <label for="site">Home</label>
    <select id="site" name="site"></select>
  </div>
"""

_WALL = f"""
<div class="page-head">
  <h1>Residents</h1>
  {_SITE_PICKER}
  <p class="live-state" id="live-state" role="status">Connecting…</p>
</div>
<p id="gateways" class="gateways"></p>
<div class="wall">
  <section class="queue-panel" aria-labelledby="queue-title">
    <h2 id="queue-title">Open alerts <span id="queue-count" class="count"></span></h2>
    <div id="announcer" class="visually-hidden" aria-live="assertive" aria-atomic="true"></div>
    <p id="queue-empty" class="muted" hidden>No open alerts.</p>
    <ol id="queue" class="alerts"></ol>
  </section>
  <section class="tiles-panel" aria-labelledby="tiles-title">
    <h2 id="tiles-title" class="visually-hidden">Residents and their latest vital signs</h2>
    <p id="tiles-loading" class="muted">Loading residents…</p>
    <ul id="tiles" class="tiles"></ul>
  </section>
</div>
"""

_ALERTS = f"""
<div class="page-head">
  <h1>Alert queue</h1>
  {_SITE_PICKER}
  <p class="live-state" id="live-state" role="status">Connecting…</p>
</div>
<fieldset class="filters">
  <legend>Show alerts that are</legend>
  <label><input type="checkbox" name="state" value="open" checked> open</label>
  <label><input type="checkbox" name="state" value="acknowledged" checked> acknowledged</label>
  <label><input type="checkbox" name="state" value="snoozed" checked> snoozed</label>
  <label><input type="checkbox" name="state" value="resolved"> resolved</label>
</fieldset>
<p id="filter-note" class="muted" hidden></p>
<div id="announcer" class="visually-hidden" aria-live="assertive" aria-atomic="true"></div>
<p id="queue-empty" class="muted" hidden>No alerts to show.</p>
<ol id="queue" class="alerts"></ol>
"""

_RESIDENT = """
<div class="page-head">
  <h1 id="resident-name">Resident</h1>
  <p class="muted" id="resident-meta"></p>
  <p class="live-state" id="live-state" role="status"></p>
</div>
<section aria-labelledby="now-title" class="panel">
  <h2 id="now-title">Now</h2>
  <div id="news2" class="news2-panel"></div>
  <dl id="latest" class="latest"></dl>
</section>
<section aria-labelledby="charts-title" class="panel">
  <h2 id="charts-title">Vital signs over time</h2>
  <fieldset class="segmented" id="range">
    <legend>Period</legend>
    <label><input type="radio" name="range" value="6h"> 6 hours</label>
    <label><input type="radio" name="range" value="24h" checked> 24 hours</label>
    <label><input type="radio" name="range" value="7d"> 7 days</label>
    <label><input type="radio" name="range" value="30d"> 30 days</label>
  </fieldset>
  <p class="muted small">Lines show the mean per interval, the shaded band its lowest and
  highest value; dashed lines are the alert thresholds.</p>
  <div id="charts" class="charts" aria-live="polite" aria-busy="true"></div>
</section>
<section aria-labelledby="entry-title" class="panel" id="entry-panel" hidden>
  <h2 id="entry-title">Staff entry</h2>
  <form id="entry-form" class="stack">
    <div class="field">
      <label for="consciousness">Consciousness (ACVPU)</label>
      <select id="consciousness" name="consciousness">
        <option value="">Not assessed now</option>
        <option value="A">A: alert</option>
        <option value="C">C: new confusion</option>
        <option value="V">V: responds to voice</option>
        <option value="P">P: responds to pain</option>
        <option value="U">U: unresponsive</option>
      </select>
    </div>
    <div class="field">
      <label for="oxygen">Supplemental oxygen</label>
      <select id="oxygen" name="oxygen">
        <option value="">Unchanged</option>
        <option value="no">On air</option>
        <option value="yes">On oxygen</option>
      </select>
    </div>
    <button type="submit">Save entry</button>
    <p id="entry-status" role="status" class="muted"></p>
  </form>
</section>
<section aria-labelledby="history-title" class="panel">
  <h2 id="history-title">Alerts and their trail</h2>
  <p id="history-empty" class="muted" hidden>No alerts.</p>
  <ol id="history" class="history"></ol>
</section>
"""

_FAMILY = """
<div class="page-head">
  <h1 id="family-title">Your family</h1>
  <p class="live-state" id="live-state" role="status"></p>
</div>
<p id="family-empty" class="muted" hidden>Your account is not linked to a resident yet. Ask
the care home to link it.</p>
<div id="relatives" class="relatives"></div>
"""

_ADMIN = f"""
<div class="page-head">
  <h1>Administration</h1>
  {_SITE_PICKER}
</div>
<p id="admin-status" role="status" class="muted"></p>
<section aria-labelledby="accounts-title" class="panel">
  <h2 id="accounts-title">Accounts</h2>
  <div class="table-wrap">
    <table id="accounts">
      <caption class="visually-hidden">Accounts of this home</caption>
      <thead><tr><th scope="col">Username</th><th scope="col">Role</th>
      <th scope="col">Homes</th><th scope="col">Linked to</th>
      <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
  <h3>New account</h3>
  <form id="account-form" class="stack grid-form">
    <div class="field">
      <label for="new-username">Username</label>
      <input id="new-username" name="username" required autocomplete="off"
             autocapitalize="none" spellcheck="false">
    </div>
    <div class="field">
      <label for="new-password">Initial password</label>
      <input id="new-password" name="password" type="password" required
             autocomplete="new-password" minlength="12"
             aria-describedby="new-password-help">
      <p id="new-password-help" class="small muted">At least 12 characters.</p>
    </div>
    <div class="field">
      <label for="new-role">Role</label>
      <select id="new-role" name="role">
        <option value="staff">Staff</option>
        <option value="family">Family</option>
        <option value="admin">Administrator</option>
      </select>
    </div>
    <button type="submit">Create account</button>
  </form>
</section>
<section aria-labelledby="links-title" class="panel">
  <h2 id="links-title">Family links</h2>
  <div class="table-wrap">
    <table id="links">
      <caption class="visually-hidden">Family accounts linked to residents</caption>
      <thead><tr><th scope="col">Resident</th><th scope="col">Family account</th>
      <th scope="col">Contact</th><th scope="col">Since</th>
      <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
  <h3>Link a family account</h3>
  <form id="link-form" class="stack grid-form">
    <div class="field">
      <label for="link-account">Family account</label>
      <select id="link-account" name="account" required></select>
    </div>
    <div class="field">
      <label for="link-resident">Resident</label>
      <select id="link-resident" name="resident" required></select>
    </div>
    <div class="field checkbox">
      <input id="link-contact" name="contact" type="checkbox">
      <label for="link-contact">Main contact (may see and end the resident's other
      links)</label>
    </div>
    <button type="submit">Link</button>
  </form>
</section>
<section aria-labelledby="directory-title" class="panel">
  <h2 id="directory-title">Residents and devices</h2>
  <p class="note">Read-only: residents and devices come from the home's site file.</p>
  <div class="table-wrap">
    <table id="directory">
      <caption class="visually-hidden">Residents and their devices</caption>
      <thead><tr><th scope="col">Resident</th><th scope="col">Room</th>
      <th scope="col">Devices</th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
</section>
<section aria-labelledby="rules-title" class="panel">
  <h2 id="rules-title">Thresholds and escalation</h2>
  <p class="note">Read-only for now: thresholds are set in the alert configuration and the
  residents' overrides in the site file, escalation ladders in the home's people file.
  They cannot be changed from this page yet.</p>
  <div class="field inline">
    <label for="rules-resident">Thresholds as they apply to</label>
    <select id="rules-resident"></select>
  </div>
  <div class="table-wrap">
    <table id="rules">
      <caption class="visually-hidden">Alert thresholds</caption>
      <thead><tr><th scope="col">Rule</th><th scope="col">Measurement</th>
      <th scope="col">Alerts below</th><th scope="col">Alerts above</th></tr></thead>
      <tbody></tbody>
    </table>
  </div>
</section>
"""

PAGES: Mapping[str, Page] = {
    "login": Page("login", "Log in", _LOGIN),
    "wall": Page("wall", "Residents", _WALL, nav="/wall"),
    "alerts": Page("alerts", "Alert queue", _ALERTS, nav="/alerts"),
    "resident": Page("resident", "Resident", _RESIDENT, nav="/wall"),
    "family": Page("family", "Family", _FAMILY, nav="/family"),
    "admin": Page("admin", "Administration", _ADMIN, nav="/admin"),
}


def _nav(current: str | None) -> str:
    items = []
    for href, label, roles in NAV:
        here = ' aria-current="page"' if href == current else ""
        items.append(
            f'<li data-roles="{roles}" hidden><a href="{href}"{here}>{html.escape(label)}</a></li>'
        )
    return "\n      ".join(items)


def render(page: Page, data: Mapping[str, str] | None = None) -> str:
    """The whole HTML document of ``page``; ``data`` becomes ``data-*`` attributes of
    ``main`` (keys are lower-case words, values are escaped)."""
    attributes = "".join(
        f' data-{html.escape(key)}="{html.escape(value, quote=True)}"'
        for key, value in sorted((data or {}).items())
    )
    logged_in = page.name != "login"
    banner_tools = (
        """<div class="account" id="account" hidden>
      <span id="who" class="who"></span>
      <button type="button" id="logout" class="link-button">Log out</button>
    </div>"""
        if logged_in
        else ""
    )
    nav = (
        f"""<nav aria-label="Main">
      <ul class="nav">
      {_nav(page.nav)}
      </ul>
    </nav>"""
        if logged_in
        else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light">
  <title>{html.escape(page.title)} · CareWatch</title>
  <link rel="icon" href="/static/icon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/app.css">
  <script type="module" src="/static/{page.name}.js"></script>
</head>
<body data-page="{page.name}">
  <a class="skip" href="#main">Skip to main content</a>
  <header class="banner">
    <a class="brand" href="/">CareWatch</a>
    {nav}
    {banner_tools}
  </header>
  <main id="main" tabindex="-1"{attributes}>
{page.main}
  </main>
  <footer class="footer">
    <p>CareWatch: remote monitoring of vital signs. In an emergency call the emergency
    services.</p>
  </footer>
</body>
</html>
"""
