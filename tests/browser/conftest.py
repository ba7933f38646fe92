"""Browser tests: Playwright driving Debian's Chromium (``/usr/bin/chromium``, headless, loopback
only) against the real API and dashboard on real SQLite files, with the alert service in the
same process.

``dashboard`` (one per test module: starting it and the browser is slow) holds the running
app, the browser and the world's accounts; ``Dashboard.page()`` opens a new browser context
(its own cookies) whose page records console errors, CSP violations and any request that
leaves the app's origin, for the test to assert on. Without Chromium or the playwright
package the tests are skipped, and fail when ``CI`` is set (tests.harness.skip_or_fail).
Screenshots go to ``test-artifacts/`` at the repository's root.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from cloud.api import (
    DeviceStatusBoard,
    Role,
    User,
)
from cloud.store import SqliteStore
from tests.harness import require_binary, skip_or_fail
from tests.integration.test_api_support import (
    HOME,
    PASSWORD,
    ManualClock,
    World,
    api_world,
    reading,
)
from vitals.metrics import Metric
from vitals.wire import DeviceState, GatewayState, Reading, Status

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 15_000
"""Longest any one browser step may take."""


@asynccontextmanager
async def dashboard_world(folder: Path, *, now: datetime) -> AsyncIterator[World]:
    """The API with the dashboard and the alert service, on real parts in ``folder``; the
    clock starts at ``now`` (the browser's own time) and moves only when a test moves it.
    Readings and device statuses are seeded before the alert service starts, so its rules
    (and NEWS2) are refilled from them."""

    async def seed(store: SqliteStore, devices: DeviceStatusBoard) -> None:
        await store.write(seed_readings(now))
        devices.update(seed_status(now), received=now)

    async with api_world(folder, clock=ManualClock(now), seed=seed) as world:
        yield world


def seed_readings(now: datetime) -> list[Any]:
    """A week of r01 (every 30 min), the latest values of r01 and r02, r03's temperature."""
    found = []
    for step in range(7 * 48):
        at = now - timedelta(minutes=30 * step + 10)
        wave = (step % 12) - 6
        found += [
            reading(HOME, "r01", Metric.HEART_RATE, 70 + wave, at, device="a-r01-hr"),
            reading(HOME, "r01", Metric.SPO2, 96 + (wave % 3) - 1, at, device="a-r01-hr"),
            reading(HOME, "r01", Metric.RESPIRATORY_RATE, 15 + (wave % 4), at, device="a-r01-hr"),
        ]
        if step % 8 == 0:
            found += [
                reading(HOME, "r01", Metric.BODY_TEMPERATURE, 36.7, at, device="a-r01-hr"),
                reading(HOME, "r01", Metric.SYSTOLIC_BP, 126 + wave, at, device="a-bp"),
                reading(HOME, "r01", Metric.DIASTOLIC_BP, 82 + wave / 2, at, device="a-bp"),
            ]
    latest = now - timedelta(minutes=2)
    found += [
        reading(HOME, "r01", Metric.HEART_RATE, 72, latest, device="a-r01-hr"),
        reading(HOME, "r01", Metric.SPO2, 96, latest, device="a-r01-hr"),
        reading(HOME, "r01", Metric.RESPIRATORY_RATE, 16, latest, device="a-r01-hr"),
        reading(HOME, "r01", Metric.BODY_TEMPERATURE, 36.8, latest, device="a-r01-hr"),
        reading(HOME, "r01", Metric.SYSTOLIC_BP, 128, latest, device="a-bp"),
        reading(HOME, "r01", Metric.DIASTOLIC_BP, 84, latest, device="a-bp"),
        reading(HOME, "r02", Metric.HEART_RATE, 64, latest, device="a-r02-hr"),
        reading(HOME, "r02", Metric.SPO2, 94, latest, device="a-r02-hr"),
        reading(HOME, "r03", Metric.BODY_TEMPERATURE, 37.1, now - timedelta(hours=3)),
    ]
    return found


def seed_status(now: datetime) -> Status:
    return Status(
        site=HOME,
        gateway="gw-a",
        state=GatewayState.ONLINE,
        time=now,
        devices=(
            DeviceState(device="a-r01-hr", connected=True, last_seen=now, battery=81, rssi=-60),
            DeviceState(device="a-r02-hr", connected=False, last_seen=now, battery=15),
        ),
    )


def help_button(now: datetime, seq: int, device: str = "a-r01-hr") -> Reading:
    """A press of the help button, as a gateway sends it."""
    return Reading(
        gateway="gw-a",
        device=device,
        metric=Metric.HELP_BUTTON,
        value=1.0,
        unit=Metric.HELP_BUTTON.unit,
        time=now,
        received=now,
        seq=seq,
    )


@dataclass
class Opened:
    """A page in a context of its own, and what it did that a test may want to refuse."""

    context: BrowserContext
    page: Page
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)


@dataclass
class Dashboard:
    world: World
    browser: Browser
    staff: User
    family: User
    family_other: User
    opened: list[Opened] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.world.url

    async def page(self, *, width: int = 1280, height: int = 900) -> Opened:
        context = await self.browser.new_context(
            viewport={"width": width, "height": height},
            locale="en-GB",
            timezone_id="Europe/London",
            reduced_motion="reduce",
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        opened = Opened(context, page)
        origin = self.url

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                opened.console_errors.append(message.text)

        def on_request(request: Request) -> None:
            if not request.url.startswith(origin) and not request.url.startswith("data:"):
                opened.foreign_requests.append(request.url)

        page.on("console", on_console)
        page.on("request", on_request)
        self.opened.append(opened)
        return opened

    async def login(self, opened: Opened, username: str, password: str = PASSWORD) -> None:
        page = opened.page
        await page.goto(f"{self.url}/login")
        await page.get_by_label("Username").fill(username)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(lambda url: "/login" not in url)

    async def logged_in(self, user: User, where: str, **size: int) -> Opened:
        """A new context logged in as ``user``, at ``where`` once its module is done."""
        opened = await self.page(**size)
        await self.login(opened, user.username)
        await opened.page.goto(f"{self.url}{where}")
        await opened.page.wait_for_selector("body[data-ready=true]")
        return opened

    async def close_all(self) -> None:
        while self.opened:
            await self.opened.pop().context.close()


async def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG in ``test-artifacts/`` (kept for people to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    return target


@pytest.fixture(scope="session")
def chromium() -> Path:
    return require_binary("chromium", debian_package="chromium")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dashboard(
    tmp_path_factory: pytest.TempPathFactory, chromium: Path
) -> AsyncIterator[Dashboard]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - the dev extra installs it
        skip_or_fail("the playwright package is not installed (pip install -e '.[dev]')")
    folder = tmp_path_factory.mktemp("dashboard")
    now = datetime.now(UTC).replace(microsecond=0)
    async with dashboard_world(folder, now=now) as world, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium),
            headless=True,
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
            timeout=60_000,
        )
        try:
            staff = await world.user(Role.STAFF, username="staff-jo")
            family = await world.user(Role.FAMILY, username="family-r01")
            await world.link(family, "r01")
            family_other = await world.user(Role.FAMILY, username="family-r02")
            await world.link(family_other, "r02")
            found = Dashboard(world, browser, staff, family, family_other)
            try:
                yield found
            finally:
                await found.close_all()
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def fresh(dashboard: Dashboard) -> AsyncIterator[Dashboard]:
    """The module's dashboard; the contexts a test opened are closed after it."""
    try:
        yield dashboard
    finally:
        await dashboard.close_all()
