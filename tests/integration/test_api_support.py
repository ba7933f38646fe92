"""What the API tests share (no tests here): a real API on a free loopback port (uvicorn, bound
by :class:`cloud.api.ApiServer` to port 0), over real SQLite files (reading store, accounts,
sessions, audit) and real site files in a temporary folder, with a clock the test moves.

Why a real server rather than httpx's ASGITransport: the session lives in a cookie, and what a
client does with ``Set-Cookie`` (attributes, the Secure flag over plain HTTP, the cookie jar
sending it back) is part of what is tested; a real socket also exercises uvicorn's client
address (login rate limiting counts per address) and its error paths.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from cloud.alerts.engine import Condition
from cloud.alerts.ledger import SqliteLedger
from cloud.alerts.service import AlertService
from cloud.alerts.sites import SiteMap, load_sites
from cloud.api import (
    ApiServer,
    ApiSettings,
    DeviceStatusBoard,
    FamilyLink,
    Role,
    SiteFileDirectory,
    SqliteAccountStore,
    SqliteAuditLog,
    SqliteSessionStore,
    User,
    create_app,
    create_user,
)
from cloud.api.access import CSRF_HEADER
from cloud.api.passwords import Passwords
from cloud.settings import CloudSettings
from cloud.store import SqliteStore, StoredReading, storage_time_ns
from cloud.store.base import ns_from_datetime
from vitals.metrics import Metric
from vitals.wire import AlertKind, Severity

__all__ = [
    "API",
    "HOME",
    "OTHER",
    "PASSWORD",
    "T0",
    "Client",
    "ManualClock",
    "World",
    "api_world",
    "fast_settings",
    "reading",
]

HOME = "home-a"
OTHER = "home-b"
PASSWORD = "correct horse battery staple"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
API = "/api/v1"

SITE_FILES = {
    HOME: """
id = "home-a"
name = "Home A"
timezone = "Europe/London"
gateway = "gw-a"

[[residents]]
id = "r01"
name = "Alice Example"
room = "12"
age = 86
sex = "female"
copd = false
heart_rate = 70
devices = [
    { id = "a-r01-hr", kind = "wearable", battery = 90 },
    { id = "a-bp", kind = "bp_cuff", user_id = 1 },
]

[[residents]]
id = "r02"
name = "Bob Example"
room = "14"
age = 81
devices = [
    { id = "a-r02-hr", kind = "wearable" },
    { id = "a-bp", kind = "bp_cuff", user_id = 2 },
]

[[residents]]
id = "r03"
name = "Carol Example"
devices = [{ id = "a-r03-temp", kind = "thermometer" }]
""",
    OTHER: """
gateway = "gw-b"

[site]
id = "home-b"
name = "Home B"

[[residents]]
id = "r01"
name = "Dan Example"
devices = [{ id = "b-r01-hr", kind = "wearable" }]
""",
}


class ManualClock:
    """A clock the test moves."""

    def __init__(self, start: datetime = T0) -> None:
        self.time = start

    def now(self) -> datetime:
        return self.time

    def advance(self, delta: timedelta) -> None:
        self.time += delta


def fast_settings(folder: Path, **overrides: Any) -> ApiSettings:
    """Settings for tests: port 0 on loopback, plain HTTP cookies, a cheap argon2 cost."""
    data: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "database": folder / "api.sqlite3",
        "audit_database": folder / "audit.sqlite3",
        "sites": [folder / "sites"],
        "session": {"cookie_secure": False},
        "passwords": {"time_cost": 1, "memory_kib": 64, "parallelism": 1},
    }
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return ApiSettings.model_validate(data)


_seqs = itertools.count(1)


def reading(
    site: str,
    resident: str,
    metric: Metric,
    value: float,
    at: datetime,
    *,
    device: str = "dev",
) -> StoredReading:
    seq = next(_seqs)
    measured = ns_from_datetime(at)
    return StoredReading(
        site=site,
        resident=resident,
        device=device,
        metric=metric,
        user=None,
        time_ns=storage_time_ns(measured, seq),
        value=value,
        seq=seq,
        gateway="gw-01",
        flags=(),
        received_ns=measured,
    )


@dataclass
class Client:
    """An HTTP client with a cookie jar, and the CSRF token of its session once logged in."""

    http: httpx.AsyncClient
    csrf: str | None = None
    user: User | None = None

    def _headers(self, csrf: bool) -> dict[str, str]:
        return {CSRF_HEADER: self.csrf} if csrf and self.csrf is not None else {}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(API + path, params=params or None)

    async def post(self, path: str, body: Any = None, *, csrf: bool = True) -> httpx.Response:
        return await self.http.post(API + path, json=body, headers=self._headers(csrf))

    async def delete(self, path: str, *, csrf: bool = True) -> httpx.Response:
        return await self.http.delete(API + path, headers=self._headers(csrf))

    async def login(self, username: str, password: str = PASSWORD) -> httpx.Response:
        response = await self.http.post(
            f"{API}/auth/login", json={"username": username, "password": password}
        )
        if response.status_code == 200:
            self.csrf = response.json()["csrf_token"]
        return response


@dataclass
class World:
    settings: ApiSettings
    url: str
    store: SqliteStore
    accounts: SqliteAccountStore
    sessions: SqliteSessionStore
    audit: SqliteAuditLog
    directory: SiteFileDirectory
    devices: DeviceStatusBoard
    clock: ManualClock
    passwords: Passwords
    stack: AsyncExitStack
    alerts: AlertService
    """The alert service in this process (drive it with ``ingest`` and ``tick``)."""
    admin: User | None = None
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def name(self, prefix: str) -> str:
        return f"{prefix}-{next(self._names)}"

    async def raise_alert(
        self,
        site: str = HOME,
        resident: str | None = "r01",
        *,
        severity: Severity = Severity.URGENT,
    ) -> str:
        """Open an alert through the real lifecycle (a clinical one of ``resident``, or a
        technical one of the site's gateway when ``resident`` is None); return its id."""
        n = next(self._names)
        if resident is not None:
            condition = Condition(
                key=f"spo2_low:{resident}:spo2:{n}",
                rule="spo2_low",
                kind=AlertKind.CLINICAL,
                severity=severity,
                active=True,
                resident=resident,
                device=None,
                gateway=None,
                metric=Metric.SPO2,
                value=87.0,
                time=self.clock.now(),
                message=f"[{severity.value}] {resident}: SpO2 87 %",
            )
        else:
            condition = Condition(
                key=f"gateway_offline:gw:{n}",
                rule="gateway_offline",
                kind=AlertKind.TECHNICAL,
                severity=severity,
                active=True,
                resident=None,
                device=None,
                gateway="gw-a",
                metric=None,
                value=None,
                time=self.clock.now(),
                message=f"[{severity.value}] gw-a: offline",
            )
        [change] = await self.alerts.lifecycle.apply(site, [condition], self.clock.now())
        return change.alert.id

    async def user(
        self,
        role: Role,
        sites: tuple[str, ...] = (HOME,),
        *,
        username: str | None = None,
        password: str = PASSWORD,
    ) -> User:
        return await create_user(
            self.accounts,
            self.passwords,
            username=username or self.name(role.value),
            password=password,
            role=role,
            sites=sites,
            now=self.clock.now(),
        )

    async def link(
        self,
        user: User,
        resident: str = "r01",
        *,
        site: str = HOME,
        contact: bool = False,
        revoked: bool = False,
    ) -> FamilyLink:
        granter = self.admin.id if self.admin is not None else 0
        link = await self.accounts.add_link(
            user.id, site, resident, contact=contact, granted_by=granter, now=self.clock.now()
        )
        if revoked:
            done = await self.accounts.revoke_link(link.id, by=granter, now=self.clock.now())
            assert done is not None
            return done
        return link

    async def client(self) -> Client:
        http = await self.stack.enter_async_context(
            httpx.AsyncClient(base_url=self.url, timeout=30.0)
        )
        return Client(http)

    async def logged_in(self, user: User, password: str = PASSWORD) -> Client:
        client = await self.client()
        response = await client.login(user.username, password)
        assert response.status_code == 200, response.text
        client.user = user
        return client


def write_site_files(folder: Path) -> Path:
    sites = folder / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    for site, text in SITE_FILES.items():
        (sites / f"{site}.toml").write_text(text, encoding="utf-8")
    return sites


@asynccontextmanager
async def api_world(
    folder: Path,
    *,
    clock: ManualClock | None = None,
    seed: Callable[[SqliteStore, DeviceStatusBoard], Awaitable[None]] | None = None,
    **overrides: Any,
) -> AsyncIterator[World]:
    """The API running on real parts in ``folder``, with an admin of HOME; stopped at exit.
    ``seed`` fills the store and the device board before the alert service starts (so its
    rules are refilled from what it wrote)."""
    write_site_files(folder)
    settings = fast_settings(folder, **overrides)
    clock = clock if clock is not None else ManualClock()
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(SqliteStore(folder / "vitals.sqlite3"))
        accounts = await stack.enter_async_context(SqliteAccountStore(settings.database))
        sessions = await stack.enter_async_context(SqliteSessionStore(settings.database))
        audit = await stack.enter_async_context(SqliteAuditLog(settings.audit_database))
        directory = SiteFileDirectory(settings.sites)
        await directory.refresh()
        devices = DeviceStatusBoard()
        if seed is not None:
            await seed(store, devices)
        sites = load_sites(settings.sites)
        alerts = AlertService(
            CloudSettings(),
            sites=SiteMap.of(sites, clock.now()),
            escalation={},
            ledger=await stack.enter_async_context(SqliteLedger(folder / "alerts.sqlite3")),
            store=store,
            clock=clock,
        )
        await alerts.start()
        app = create_app(
            settings,
            store=store,
            accounts=accounts,
            sessions=sessions,
            audit=audit,
            directory=directory,
            devices=devices,
            clock=clock,
            alerts=alerts,
        )
        server = await stack.enter_async_context(ApiServer(app, settings))
        world = World(
            settings=settings,
            url=server.url,
            store=store,
            accounts=accounts,
            sessions=sessions,
            audit=audit,
            directory=directory,
            devices=devices,
            clock=clock,
            passwords=Passwords(settings.passwords),
            stack=stack,
            alerts=alerts,
        )
        world.admin = await world.user(Role.ADMIN, (HOME,), username="admin-a")
        yield world
