"""The web dashboard in Debian's Chromium (Playwright), against the real API with the alert
service in the same process.

The acceptance path of issue 7: a staff user logs in, an alert raised by a simulated reading
(a help-button press fed to the alert service) appears on the wall without a reload, the user
acknowledges it with the keyboard, and the family view of that resident shows it as handled;
screenshots of the wall, the resident page and the family page go to ``test-artifacts/``.
Besides: login and its refusals, tiles, live readings, charts with thresholds, the admin page,
accessibility checks (labels, landmarks, contrast, visible focus), a phone-sized screen, the
Content-Security-Policy, and the pure modules of the page run in the browser itself.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cloud.api.web import CONTENT_SECURITY_POLICY, PAGES, Assets, render
from tests.browser.conftest import Dashboard, Opened, help_button, screenshot
from tests.integration.test_api_support import HOME
from vitals.metrics import Metric
from vitals.wire import Reading

pytestmark = pytest.mark.integration
in_module_loop = pytest.mark.asyncio(loop_scope="module")

_seqs = itertools.count(1_000_000)
DASH = "\u2013"
APOS = "\u2019"

CONTRAST = """
() => {
  const parse = (value) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(value || "");
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const background = (element) => {
    const layers = [];
    for (let e = element; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let found = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) found = over(layer, found);
    return found;
  };
  const failures = [];
  let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const element = node.parentElement;
    if (!text || !element) continue;
    if (element.closest("[hidden], .visually-hidden, title, desc, script, style, option")) continue;
    if (element.closest("button:disabled")) continue;
    const box = element.getBoundingClientRect();
    if (box.width < 2 || box.height < 2) continue;
    const style = getComputedStyle(element);
    if (style.visibility === "hidden" || style.display === "none") continue;
    const svgText = element instanceof SVGElement;
    let color = parse(svgText ? style.fill : style.color);
    if (!color) continue;
    const back = background(svgText ? element.closest("figure, div, section") : element);
    color = over(color, back);
    const [hi, lo] = [luminance(color), luminance(back)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    checked += 1;
    if (ratio < 4.5) failures.push(`${ratio.toFixed(2)}: ${text.slice(0, 40)}`);
  }
  return { checked, failures };
}
"""

UNLABELLED = """
() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => e.type !== "hidden" && !e.closest("[hidden]"))
  .filter((e) => {
    if (e.tagName === "BUTTON") return !e.textContent.trim() && !e.getAttribute("aria-label");
    return !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
      && !e.getAttribute("aria-labelledby");
  })
  .map((e) => e.outerHTML.slice(0, 80))
"""

NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"


async def check_accessible(opened: Opened, *, nav: bool = True) -> None:
    page = opened.page
    assert await page.get_by_role("banner").count() == 1
    assert await page.get_by_role("main").count() == 1
    assert await page.get_by_role("contentinfo").count() == 1
    if nav:
        assert await page.get_by_role("navigation", name="Main").count() == 1
    assert await page.locator("h1").count() == 1
    assert await page.evaluate(UNLABELLED) == []
    shown = await page.locator("main").inner_text()
    assert re.search(r"\b(null|undefined|NaN|\[object Object\])\b", shown) is None, shown
    contrast = await page.evaluate(CONTRAST)
    assert contrast["checked"] > 5
    assert contrast["failures"] == []


def no_trouble(opened: Opened) -> None:
    assert opened.console_errors == []
    assert opened.foreign_requests == []


# -- the acceptance path ------------------------------------------------------------------------


@in_module_loop
async def test_alert_from_a_reading_reaches_the_wall_live_and_the_family_sees_it_handled(
    fresh: Dashboard,
) -> None:
    world = fresh.world
    wall = await fresh.logged_in(fresh.staff, "/wall")
    page = wall.page
    await page.wait_for_selector("#live-state.is-live")
    await page.evaluate("() => { window.stillTheSamePage = true; }")
    assert await page.locator('#queue li[data-state="open"]', has_text="help button").count() == 0

    # A help-button press arrives at the alert service, as from the gateway.
    world.clock.time = datetime.now(UTC)
    now = world.clock.now()
    world.alerts.ingest(HOME, [help_button(now, next(_seqs))], now)
    changes = await world.alerts.tick()
    [raised] = [c.alert for c in changes if c.alert.rule == "help"]

    item = page.locator(f'#queue li[data-alert-id="{raised.id}"]')
    await item.wait_for()
    assert await item.get_attribute("data-state") == "open"
    assert "Alice Example" in await item.inner_text()
    assert "null" not in await item.inner_text()
    assert await page.evaluate("() => window.stillTheSamePage") is True  # no reload
    await page.wait_for_function(
        "() => document.querySelector('#announcer').textContent.includes('help button')"
    )
    tile = page.locator('.tile[data-resident="r01"]')
    assert "1 open alert" in await tile.locator(".tile-alerts").inner_text()
    await screenshot(page, "wall")

    # Acknowledge with the keyboard: type a comment, Tab to the button, Enter.
    await item.get_by_label("Comment (optional)").focus()
    await page.keyboard.type("on my way")
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "() => [document.activeElement.textContent, getComputedStyle(document.activeElement)"
        ".outlineStyle]"
    )
    assert focused == ["Acknowledge", "solid"]
    await page.keyboard.press("Enter")
    await page.locator(
        f'#queue li[data-alert-id="{raised.id}"][data-state="acknowledged"]'
    ).wait_for()
    assert "staff-jo" in await item.inner_text()
    stored = await world.alerts.alert(HOME, raised.id)
    assert stored is not None
    assert stored.acknowledged_by == "staff-jo"
    assert stored.comment == "on my way"
    no_trouble(wall)

    # The family of r01 sees it as handled, with who was told and who took it on.
    family = await fresh.logged_in(fresh.family, "/family")
    handled = family.page.locator(f'.family-alert[data-alert-id="{raised.id}"]')
    await handled.wait_for()
    assert await handled.get_attribute("data-handled") == "true"
    text = await handled.inner_text()
    assert "Alice pressed the help button" in text
    assert "Handled" in text
    assert "staff-jo from the care team took it on" in text
    assert "raised" in text
    await screenshot(family.page, "family")
    no_trouble(family)

    # ... and the family of another resident does not see it at all.
    other = await fresh.logged_in(fresh.family_other, "/family")
    assert await other.page.locator(f'[data-alert-id="{raised.id}"]').count() == 0
    assert "Alice" not in await other.page.locator("main").inner_text()


@in_module_loop
async def test_the_family_page_updates_live_when_an_alert_is_handled(fresh: Dashboard) -> None:
    world = fresh.world
    family = await fresh.logged_in(fresh.family_other, "/family")
    await family.page.wait_for_selector("#live-state.is-live")
    world.clock.time = datetime.now(UTC)
    now = world.clock.now()
    world.alerts.ingest(HOME, [help_button(now, next(_seqs), "a-r02-hr")], now)
    [raised] = [c.alert for c in await world.alerts.tick() if c.alert.rule == "help"]
    item = family.page.locator(f'.family-alert[data-alert-id="{raised.id}"]')
    await item.wait_for()
    assert await item.get_attribute("data-handled") == "false"
    assert "the care team has been alerted" in await item.inner_text()

    await world.alerts.resolve(HOME, raised.id, "staff-jo", "all fine")

    await family.page.locator(
        f'.family-alert[data-alert-id="{raised.id}"][data-state="resolved"]'
    ).wait_for()
    assert "Handled: resolved" in await item.inner_text()


# -- login ---------------------------------------------------------------------------------------


@in_module_loop
async def test_login_refuses_a_wrong_password_then_goes_where_the_role_belongs(
    fresh: Dashboard,
) -> None:
    opened = await fresh.page()
    page = opened.page
    await page.goto(f"{fresh.url}/login")
    await check_accessible(opened, nav=False)
    await page.get_by_label("Username").fill(fresh.staff.username)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert await alert.inner_text() == "Wrong username or password."
    assert page.url.endswith("/login")

    await fresh.login(opened, fresh.staff.username)
    assert page.url == f"{fresh.url}/wall"

    family = await fresh.page()
    await fresh.login(family, fresh.family.username)
    assert family.page.url == f"{fresh.url}/family"
    await family.page.goto(f"{fresh.url}/wall")  # not for family accounts
    await family.page.wait_for_url(f"{fresh.url}/family")


@in_module_loop
async def test_a_page_without_a_session_goes_to_login_and_back(fresh: Dashboard) -> None:
    opened = await fresh.page()
    page = opened.page
    await page.goto(f"{fresh.url}/resident/{HOME}/r02")
    await page.wait_for_url(re.compile(r"/login\?next="))
    await page.get_by_label("Username").fill(fresh.staff.username)
    await page.get_by_label("Password").fill("correct horse battery staple")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{fresh.url}/resident/{HOME}/r02")
    await page.wait_for_selector("body[data-ready=true]")
    assert await page.locator("h1").inner_text() == "Bob Example"


@in_module_loop
async def test_logout_ends_the_session(fresh: Dashboard) -> None:
    opened = await fresh.logged_in(fresh.staff, "/wall")
    await opened.page.get_by_role("button", name="Log out").click()
    await opened.page.wait_for_url(f"{fresh.url}/login")
    await opened.page.goto(f"{fresh.url}/wall")
    await opened.page.wait_for_url(re.compile(r"/login\?next="))


# -- the wall ------------------------------------------------------------------------------------


@in_module_loop
async def test_the_wall_shows_a_tile_per_resident_with_vitals_news2_and_devices(
    fresh: Dashboard,
) -> None:
    opened = await fresh.logged_in(fresh.staff, "/wall")
    page = opened.page
    tiles = page.locator(".tile")
    assert await tiles.count() == 3
    names = await page.locator(".tile h3").all_inner_texts()
    assert names == ["Alice Example", "Bob Example", "Carol Example"]

    alice = page.locator('.tile[data-resident="r01"]')
    vital = alice.locator('.vital[data-metric="heart_rate"]')
    assert await vital.locator(".value").inner_text() == "72 bpm"
    assert await vital.locator(".age").inner_text() in {"2 min ago", "3 min ago"}
    assert await alice.locator('.vital[data-metric="bp"] .value').inner_text() == "128/84 mmHg"
    assert await alice.locator('.vital[data-metric="body_temperature"] .value').inner_text() == (
        "36.8 °C"
    )
    badge = alice.locator(".news2")
    assert re.fullmatch(rf". NEWS2 \d+, [a-z{DASH}-]+ risk.*", await badge.inner_text())
    assert await badge.get_attribute("data-band") in {"low", "low-medium", "medium", "high"}
    devices = await alice.locator(".devices").inner_text()
    assert "Wearable: connected, battery 81 %" in devices
    bob = await page.locator('.tile[data-resident="r02"] .devices').inner_text()
    assert "Wearable: not connected, battery 15 %" in bob
    assert "Gateway gw-a: online" in await page.locator("#gateways").inner_text()
    carol = page.locator('.tile[data-resident="r03"]')
    assert await carol.locator('.vital[data-metric="heart_rate"] .value').inner_text() == DASH
    await check_accessible(opened)
    no_trouble(opened)


@in_module_loop
async def test_a_new_reading_updates_its_tile_without_reload(fresh: Dashboard) -> None:
    world = fresh.world
    opened = await fresh.logged_in(fresh.staff, "/wall")
    page = opened.page
    await page.wait_for_selector("#live-state.is-live")
    now = datetime.now(UTC)
    world.alerts.ingest(
        HOME,
        [
            Reading(
                gateway="gw-a",
                device="a-r02-hr",
                metric=Metric.HEART_RATE,
                value=88.0,
                unit=Metric.HEART_RATE.unit,
                time=now,
                received=now,
                seq=next(_seqs),
            )
        ],
        now,
    )
    value = page.locator('.tile[data-resident="r02"] .vital[data-metric="heart_rate"] .value')
    await page.wait_for_function(
        '() => document.querySelector(\'.tile[data-resident="r02"] '
        ".vital[data-metric=\"heart_rate\"] .value').textContent === '88 bpm'"
    )
    assert await value.inner_text() == "88 bpm"
    age = page.locator('.tile[data-resident="r02"] .vital[data-metric="heart_rate"] .age')
    assert await age.inner_text() == "just now"


@in_module_loop
async def test_the_alert_queue_page_filters_by_state(fresh: Dashboard) -> None:
    world = fresh.world
    alert_id = await world.raise_alert(HOME, "r03")
    await world.alerts.resolve(HOME, alert_id, "staff-jo", "checked")
    opened = await fresh.logged_in(fresh.staff, "/alerts")
    page = opened.page
    resolved = page.locator(f'#queue li[data-alert-id="{alert_id}"]')
    assert await resolved.count() == 0
    await page.get_by_label("resolved").check()
    await resolved.wait_for()
    assert await resolved.get_attribute("data-state") == "resolved"
    assert await resolved.locator("form").is_hidden()
    await check_accessible(opened)
    no_trouble(opened)


# -- resident page -------------------------------------------------------------------------------


@in_module_loop
async def test_the_resident_page_draws_charts_with_thresholds_and_the_trail(
    fresh: Dashboard,
) -> None:
    world = fresh.world
    alert_id = await world.raise_alert(HOME, "r01")
    opened = await fresh.logged_in(fresh.staff, f"/resident/{HOME}/r01")
    page = opened.page
    assert await page.locator("h1").inner_text() == "Alice Example"
    assert "Room 12" in await page.locator("#resident-meta").inner_text()

    spo2 = page.locator('figure[data-chart="spo2"] svg.chart')
    await spo2.wait_for()
    assert await spo2.get_attribute("role") == "img"
    assert await spo2.locator("title").text_content() == "Oxygen saturation, 24 hours"
    description = await spo2.locator("desc").text_content() or ""
    assert "Alert thresholds: warning below 92, urgent below 90." in description
    assert await spo2.locator("line.threshold").count() == 2
    assert await spo2.locator("polyline.line").count() >= 1
    bp = page.locator('figure[data-chart="bp"] svg.chart')
    assert await bp.locator("g.series").count() == 2
    hr_points = await page.locator('figure[data-chart="heart_rate"] polyline.line').get_attribute(
        "points"
    )
    assert hr_points is not None
    assert len(hr_points.split()) >= 40  # 24 h of half-hourly readings

    # A week by keyboard: arrow keys move within the radio group.
    await page.get_by_role("radio", name="24 hours").focus()
    await page.keyboard.press("ArrowRight")
    await page.wait_for_url(re.compile(r"range=7d"))
    await page.wait_for_function(
        "() => document.querySelector('#charts').getAttribute('aria-busy') === 'false' && "
        "document.querySelector('figure[data-chart=\"spo2\"] title').textContent.endsWith('7 days')"
    )
    week = await page.locator('figure[data-chart="heart_rate"] polyline.line').get_attribute(
        "points"
    )
    assert week is not None
    assert week != hr_points

    trail_item = page.locator(f'details[data-alert-id="{alert_id}"]')
    await trail_item.locator("summary").click()
    await trail_item.locator(".trail li").first.wait_for()
    assert "Raised" in await trail_item.locator(".trail").inner_text()
    await page.get_by_role("radio", name="24 hours").check()
    await page.wait_for_function(
        "() => document.querySelector('#charts').getAttribute('aria-busy') === 'false'"
    )
    await screenshot(page, "resident")
    await check_accessible(opened)
    no_trouble(opened)


@in_module_loop
async def test_a_staff_entry_is_saved(fresh: Dashboard) -> None:
    opened = await fresh.logged_in(fresh.staff, f"/resident/{HOME}/r02")
    page = opened.page
    await page.get_by_label("Consciousness (ACVPU)").select_option("A")
    await page.get_by_label("Supplemental oxygen").select_option("no")
    await page.get_by_role("button", name="Save entry").click()
    await page.wait_for_function(
        "() => document.querySelector('#entry-status').textContent === 'Saved.'"
    )
    score = fresh.world.alerts.news2(HOME, "r02")
    assert score is not None
    assert score[0].consciousness == 0


# -- admin ---------------------------------------------------------------------------------------


@in_module_loop
async def test_the_admin_page_creates_an_account_and_links_it(fresh: Dashboard) -> None:
    assert fresh.world.admin is not None
    opened = await fresh.logged_in(fresh.world.admin, "/admin")
    page = opened.page
    accounts = page.locator("#accounts tbody")
    assert "staff-jo" in await accounts.inner_text()
    assert "Read-only for now" in await page.locator("#rules-title + .note").inner_text()
    assert await page.locator("#rules tbody tr", has_text="spo2_low").count() == 1

    await page.get_by_label("Username").fill("family-new")
    await page.get_by_label("Initial password").fill("a long enough passphrase")
    await page.get_by_label("Role").select_option("family")
    await page.get_by_role("button", name="Create account").click()
    await accounts.locator("tr", has_text="family-new").wait_for()

    await page.get_by_label("Family account").select_option(label="family-new")
    await page.get_by_label("Resident", exact=True).select_option(label="Carol Example")
    await page.get_by_role("button", name="Link", exact=True).click()
    row = page.locator("#links tbody tr", has_text="family-new")
    await row.wait_for()
    assert "Carol Example" in await row.inner_text()
    links = await fresh.world.accounts.resident_links(HOME, "r03")
    assert [link.resident for link in links] == ["r03"]

    # Ending the link asks for a second press.
    button = row.get_by_role("button")
    await button.click()
    assert (await button.inner_text()).startswith("Confirm")
    await button.click()
    await row.wait_for(state="detached")
    assert await fresh.world.accounts.resident_links(HOME, "r03") == []
    await check_accessible(opened)
    no_trouble(opened)


@in_module_loop
async def test_staff_cannot_use_the_admin_page(fresh: Dashboard) -> None:
    opened = await fresh.page()
    await fresh.login(opened, fresh.staff.username)
    await opened.page.goto(f"{fresh.url}/admin")
    await opened.page.wait_for_url(f"{fresh.url}/wall")
    assert await opened.page.locator('.nav [data-roles="admin"]').is_hidden()


# -- phone, focus, policy ------------------------------------------------------------------------


@in_module_loop
@pytest.mark.parametrize("where", ["/wall", "/alerts", f"/resident/{HOME}/r01", "/admin"])
async def test_staff_pages_fit_a_phone(fresh: Dashboard, where: str) -> None:
    assert fresh.world.admin is not None
    opened = await fresh.logged_in(fresh.world.admin, where, width=390, height=844)
    assert await opened.page.evaluate(NO_SIDEWAYS_SCROLL)
    if where == "/wall":
        await screenshot(opened.page, "wall-phone")
    no_trouble(opened)


@in_module_loop
async def test_the_family_page_fits_a_phone_and_is_accessible(fresh: Dashboard) -> None:
    opened = await fresh.logged_in(fresh.family, "/family", width=390, height=844)
    assert await opened.page.evaluate(NO_SIDEWAYS_SCROLL)
    day = await opened.page.locator(".relative .day").inner_text()
    assert "heart rate has been in the usual range in the last 24 hours" in day
    assert "Alice" in await opened.page.locator("h2").first.inner_text()
    await check_accessible(opened)
    no_trouble(opened)


@in_module_loop
async def test_staff_can_see_the_family_view_of_a_resident(fresh: Dashboard) -> None:
    opened = await fresh.logged_in(fresh.staff, f"/family/{HOME}/r02")
    page = opened.page
    assert await page.locator(".relative h2").all_inner_texts() == ["How is Bob today?"]
    day = await page.locator(".relative .day li").all_inner_texts()
    assert len(day) == 5
    assert "No temperature readings in the last 24 hours." in day
    await check_accessible(opened)
    no_trouble(opened)


@in_module_loop
async def test_the_first_tab_reaches_a_visible_skip_link(fresh: Dashboard) -> None:
    opened = await fresh.logged_in(fresh.staff, "/wall")
    page = opened.page
    await page.keyboard.press("Tab")
    state = await page.evaluate(
        "() => { const e = document.activeElement; const r = e.getBoundingClientRect();"
        " return [e.textContent, r.top >= 0, getComputedStyle(e).outlineStyle]; }"
    )
    assert state == ["Skip to main content", True, "solid"]
    await page.keyboard.press("Enter")
    assert await page.evaluate("() => document.activeElement.id") == "main"


@in_module_loop
async def test_html_has_the_policy_and_static_files_revalidate(fresh: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=fresh.url, timeout=10) as http:
        for path in ("/login", "/wall", "/alerts", f"/resident/{HOME}/r01", "/family", "/admin"):
            response = await http.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert "default-src 'self'" in CONTENT_SECURITY_POLICY
            assert "<script>" not in response.text
            assert " style=" not in response.text
        css = await http.get("/static/app.css")
        assert css.status_code == 200
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        again = await http.get("/static/app.css", headers={"If-None-Match": css.headers["etag"]})
        assert again.status_code == 304
        assert (await http.get("/static/nothing.js")).status_code == 404
        assert (await http.get("/static/..%2Fdashboard.py")).status_code in {404, 422}
        assert (await http.get(f"/resident/{HOME}/r01%22%3E")).status_code == 422
        home = await http.get("/")
        assert home.status_code == 303
        assert home.headers["location"] == "/wall"
        schema = (await http.get("/api/openapi.json")).json()
        assert not [path for path in schema["paths"] if not path.startswith("/api/v1/")]


# -- the pure modules, run in the browser ------------------------------------------------------


async def run_module(opened: Opened, fresh: Dashboard, script: str) -> Any:
    if not opened.page.url.startswith(fresh.url):
        await opened.page.goto(f"{fresh.url}/login")
    return await opened.page.evaluate(script)


@in_module_loop
async def test_summary_sentences(fresh: Dashboard) -> None:
    opened = await fresh.page()
    result = await run_module(
        opened,
        fresh,
        """async () => {
          const s = await import("/static/summary.js");
          const rules = [{ rule: "spo2_low", metric: "spo2",
            low: [{ severity: "warning", value: 92 }, { severity: "urgent", value: 90 }],
            high: [] }];
          const b = (min, max, mean, count = 10) => ({ min, max, mean, count });
          return {
            range: s.usualRange(rules, "spo2"),
            usual: s.daySentence("Alice", "spo2", [b(94, 98, 96)], s.usualRange(rules, "spo2")),
            low: s.daySentence("Alice", "spo2", [b(89, 97, 94)], s.usualRange(rules, "spo2")),
            none: s.daySentence("Alice", "heart_rate", [], { low: null, high: null }),
            values: s.daySentence(
              "Alice", "heart_rate", [b(60, 80, 70)], { low: null, high: null }),
            change: s.changeSentence("Alice", "heart_rate", [b(80, 90, 85)], [b(65, 75, 70)]),
            small: s.changeSentence("Alice", "heart_rate", [b(70, 80, 74)], [b(65, 75, 70)]),
            alert: s.alertSentence("Alice", { rule: "spo2_low", title: "x" }),
            other: s.alertSentence("Alice", { rule: "new_rule", title: "[urgent] r01: odd thing" }),
            trail: s.trailSentences([
              { time: "t1", action: "opened", actor: "system",
                detail: "notified nurse-1, nurse-2" },
              { time: "t2", action: "acknowledged", actor: "jo", detail: "on my way" },
              { time: "t3", action: "resolved", actor: "system", detail: "" },
            ]).map((x) => x.text),
          };
        }""",
    )
    assert result["range"] == {"low": 92, "high": None}
    assert result["usual"] == {
        "level": "usual",
        "text": f"Alice{APOS}s oxygen level has been in the usual range in the last 24 "
        "hours (94 to 98%).",
    }
    assert result["low"]["level"] == "below"
    assert "lowest 89%" in result["low"]["text"]
    assert result["none"]["text"] == "No heart rate readings in the last 24 hours."
    assert (
        result["values"]["text"] == f"Alice{APOS}s heart rate in the last 24 hours: 60 to 80 bpm."
    )
    assert result["change"]["direction"] == "higher"
    assert "on average 85 bpm in the last 24 hours, 70 bpm before" in result["change"]["text"]
    assert result["small"] is None
    assert result["alert"] == f"Alice{APOS}s oxygen level was low."
    assert result["other"] == "odd thing."
    assert result["trail"] == [
        "The alert was raised and sent to nurse-1, nurse-2.",
        "jo from the care team took it on: “on my way”.",
        "It ended by itself and was closed.",
    ]


@in_module_loop
async def test_chart_ticks_runs_and_format(fresh: Dashboard) -> None:
    opened = await fresh.page()
    result = await run_module(
        opened,
        fresh,
        """async () => {
          const c = await import("/static/chart.js");
          const f = await import("/static/format.js");
          const a = await import("/static/api.js");
          const now = Date.parse("2024-03-01T12:00:00Z");
          return {
            ticks: c.ticks(88, 101),
            runs: c.runs([{ t: 0 }, { t: 10 }, { t: 50 }, { t: 60 }], 25).map((r) => r.length),
            ages: ["2024-03-01T11:59:30Z", "2024-03-01T11:55:00Z", "2024-03-01T09:00:00Z",
                   "2024-02-28T12:00:00Z"].map((t) => f.age(t, now)),
            units: [f.withUnit("body_temperature", 36.84), f.withUnit("spo2", 95),
                    f.withUnit("heart_rate", 71.6)],
            next: ["/wall", "//evil.example", "https://evil.example", "/login?x", "/\\\\x"]
              .map(a.safeNext),
          };
        }""",
    )
    assert result["ticks"] == [90, 95, 100]
    assert result["runs"] == [2, 2]
    assert result["ages"] == ["just now", "5 min ago", "3 h ago", "2 days ago"]
    assert result["units"] == ["36.8 °C", "95%", "72 bpm"]
    assert result["next"] == ["/wall", None, None, None, None]


@in_module_loop
async def test_the_contrast_check_catches_low_contrast(fresh: Dashboard) -> None:
    opened = await fresh.page()
    await opened.page.set_content(
        "<main><p class='a'>readable enough text</p><p class='b'>too pale to read</p>"
        "<p class='c'>white on a pale badge</p></main>"
        "<style>.a{color:#1b1f24}.b{color:#999999}.c{color:#fff;background:#f0ad4e}</style>"
    )
    result = await opened.page.evaluate(CONTRAST)
    assert result["checked"] == 3
    assert [failure.split(": ")[1] for failure in result["failures"]] == [
        "too pale to read",
        "white on a pale badge",
    ]


# -- the HTML shells (no browser) -----------------------------------------------------------------


def test_shells_escape_what_they_are_given_and_hold_no_inline_code() -> None:
    for page in PAGES.values():
        text = render(page, {"site": '"><script>alert(1)</script>', "resident": "r01"})
        assert "<script>alert" not in text
        assert "&quot;&gt;&lt;script&gt;" in text
        assert re.findall(r"<script[^>]*>", text) == [
            f'<script type="module" src="/static/{page.name}.js">'
        ]
        assert " style=" not in text
        assert re.search(r"<[^>]*\son[a-z]+=", text) is None


def test_every_page_module_is_a_static_file() -> None:
    assets = Assets.from_package()
    for page in PAGES.values():
        asset = assets.get(f"{page.name}.js")
        assert asset is not None, page.name
        assert asset.media_type == "text/javascript; charset=utf-8"
    assert assets.get("app.css") is not None
    assert Assets([("../secret.js", b"x"), ("ok.txt", b"x"), ("ok.js", b"x")]).names == ["ok.js"]


def test_static_files_load_nothing_from_elsewhere() -> None:
    assets = Assets.from_package()
    for name in assets.names:
        asset = assets.get(name)
        assert asset is not None
        text = asset.body.decode()
        assert (
            re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", text) is None
        )
        assert "eval(" not in text, name
        urls = re.findall(r"https?://[^\s\"')]+", text)
        assert all(url.startswith("http://www.w3.org/") for url in urls), (name, urls)
