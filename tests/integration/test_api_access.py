"""The access-control matrix: every endpoint x every kind of caller, against the real API.

Callers: nobody logged in, the admin and a staff member of the home, an admin and a staff
member of another home, a family member linked to r01 (and r01's contact), a family member of
another resident (r02), and a family member whose link to r01 was revoked. A family account
reading or changing anything of a resident other than its own gets 403 everywhere; a site or
resident outside the caller's scope is 403 whether or not it exists, and 404 is said only
inside the caller's scope (accounts outside an admin's sites are 404, see cloud.api.policy).

Requests that end the caller's session or change its password run through a new account of
the same kind, made for that request, so the module's sessions stay valid.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from fastapi.routing import APIRoute

from cloud.api import Role, User
from cloud.api.access import CSRF_HEADER
from cloud.api.app import OPENAPI_URL
from cloud.api.routes import ROUTERS
from tests.integration.test_api_support import (
    API,
    HOME,
    OTHER,
    PASSWORD,
    T0,
    Client,
    World,
    api_world,
    reading,
)
from vitals.metrics import Metric

pytestmark = pytest.mark.integration
in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The async tests share the module's event loop, where the module's API runs."""


class Who(StrEnum):
    ANONYMOUS = "anonymous"
    ADMIN = "admin"
    STAFF = "staff"
    ADMIN_OTHER = "admin_other_site"
    STAFF_OTHER = "staff_other_site"
    FAMILY = "family_linked"
    FAMILY_OTHER = "family_of_another_resident"
    FAMILY_REVOKED = "family_revoked_link"


_KINDS: Mapping[Who, tuple[Role, str, str | None, bool]] = {
    # role, site, linked resident (at HOME), link revoked
    Who.ADMIN: (Role.ADMIN, HOME, None, False),
    Who.STAFF: (Role.STAFF, HOME, None, False),
    Who.ADMIN_OTHER: (Role.ADMIN, OTHER, None, False),
    Who.STAFF_OTHER: (Role.STAFF, OTHER, None, False),
    Who.FAMILY: (Role.FAMILY, HOME, "r01", False),
    Who.FAMILY_OTHER: (Role.FAMILY, HOME, "r02", False),
    Who.FAMILY_REVOKED: (Role.FAMILY, HOME, "r01", True),
}


@dataclass
class Matrix:
    world: World
    clients: dict[Who, Client] = field(default_factory=dict)
    users: dict[Who, User] = field(default_factory=dict)
    alert: str = ""
    """An open clinical alert of r01 at HOME."""
    gateway_alert: str = ""
    """An open technical alert of HOME's gateway (no resident)."""

    async def account(self, who: Who) -> User:
        role, site, resident, revoked = _KINDS[who]
        user = await self.world.user(role, (site,))
        if resident is not None:
            # The linked family member is also r01's contact.
            await self.world.link(user, resident, contact=who is Who.FAMILY, revoked=revoked)
        return user

    async def client(self, who: Who, *, fresh: bool) -> Client:
        if who is Who.ANONYMOUS:
            return await self.world.client()
        if fresh:
            return await self.world.logged_in(await self.account(who))
        return self.clients[who]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Matrix]:
    folder: Path = tmp_path_factory.mktemp("api-access")
    async with api_world(folder, research_key="a research key of the test study") as world:
        found = Matrix(world)
        assert world.admin is not None
        found.users[Who.ADMIN] = world.admin
        for who in _KINDS:
            if who is not Who.ADMIN:
                found.users[who] = await found.account(who)
        for who, user in found.users.items():
            found.clients[who] = await world.logged_in(user)
        await world.store.write(
            [
                reading(HOME, "r01", Metric.HEART_RATE, 72, T0 - timedelta(minutes=5)),
                reading(HOME, "r01", Metric.SPO2, 95, T0 - timedelta(minutes=4)),
                reading(HOME, "r02", Metric.HEART_RATE, 64, T0 - timedelta(minutes=3)),
            ]
        )
        found.alert = await world.raise_alert(HOME, "r01")
        found.gateway_alert = await world.raise_alert(HOME, None)
        yield found


# -- the table ------------------------------------------------------------------------------

_DENIED_ALL = dict.fromkeys((w for w in Who if w is not Who.ANONYMOUS), 403)


def expect(default: int | None = None, **statuses: int) -> dict[Who, int]:
    """Statuses per caller: ``default`` for every logged-in caller, then the overrides
    (keyword names are the ``Who`` values); nobody logged in is always 401."""
    table: dict[Who, int] = {Who.ANONYMOUS: 401}
    if default is not None:
        table.update(dict.fromkeys(_DENIED_ALL, default))
    for name, status in statuses.items():
        table[Who(name)] = status
    return table


STAFF_OF_HOME = {"admin": 200, "staff": 200}
READ_R01 = expect(403, admin=200, staff=200, family_linked=200)
MISSING_IN_HOME = expect(403, admin=404, staff=404)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    route: str
    """The route template (``/sites/{site}/...``): which endpoint this case covers."""
    path: str
    """What is requested; ``{victim}`` and ``{staff}`` are filled in per request."""
    expect: Mapping[Who, int]
    body: Callable[[Matrix], Any] | None = None
    fresh: bool = False
    """The caller acts through a new account (the request ends its session or password)."""
    victim: str | None = None
    """Made before the request: ``"account"`` (staff of the home), ``"family"`` (a family
    account of the home), ``"link"`` (a family link to r01)."""
    outside_api: bool = False
    stream: bool = False
    """A server-sent event stream: only the status is read."""


_names = itertools.count(1)

CASES = [
    Case(
        "login with a wrong password",
        "POST",
        "/auth/login",
        "/auth/login",
        expect(401),
        body=lambda m: {"username": f"nobody-{next(_names)}", "password": "not the password"},
    ),
    Case("me", "GET", "/auth/me", "/auth/me", expect(200)),
    Case("logout", "POST", "/auth/logout", "/auth/logout", expect(204), fresh=True),
    Case(
        "change own password",
        "POST",
        "/auth/password",
        "/auth/password",
        expect(204),
        body=lambda m: {"current_password": PASSWORD, "new_password": "a new long passphrase"},
        fresh=True,
    ),
    Case("sites", "GET", "/sites", "/sites", expect(200)),
    Case("my residents", "GET", "/residents", "/residents", expect(200)),
    Case(
        "site residents",
        "GET",
        "/sites/{site}/residents",
        f"/sites/{HOME}/residents",
        expect(403, **STAFF_OF_HOME),
    ),
    Case(
        "other site's residents",
        "GET",
        "/sites/{site}/residents",
        f"/sites/{OTHER}/residents",
        expect(403, admin_other_site=200, staff_other_site=200),
    ),
    Case(
        "unknown site's residents",
        "GET",
        "/sites/{site}/residents",
        "/sites/nowhere/residents",
        expect(403),
    ),
    Case(
        "resident",
        "GET",
        "/sites/{site}/residents/{resident}",
        f"/sites/{HOME}/residents/r01",
        READ_R01,
    ),
    Case(
        "another resident",
        "GET",
        "/sites/{site}/residents/{resident}",
        f"/sites/{HOME}/residents/r02",
        expect(403, admin=200, staff=200, family_of_another_resident=200),
    ),
    Case(
        "missing resident",
        "GET",
        "/sites/{site}/residents/{resident}",
        f"/sites/{HOME}/residents/r99",
        MISSING_IN_HOME,
    ),
    Case(
        "resident of an unknown site",
        "GET",
        "/sites/{site}/residents/{resident}",
        "/sites/nowhere/residents/r01",
        expect(403),
    ),
    Case(
        "latest",
        "GET",
        "/sites/{site}/residents/{resident}/latest",
        f"/sites/{HOME}/residents/r01/latest",
        READ_R01,
    ),
    Case(
        "latest of a missing resident",
        "GET",
        "/sites/{site}/residents/{resident}/latest",
        f"/sites/{HOME}/residents/r99/latest",
        MISSING_IN_HOME,
    ),
    Case(
        "history",
        "GET",
        "/sites/{site}/residents/{resident}/history",
        f"/sites/{HOME}/residents/r01/history?metric=heart_rate"
        "&start=2024-03-01T11:00:00Z&end=2024-03-01T12:00:00Z",
        READ_R01,
    ),
    Case(
        "history with a bad metric",
        "GET",
        "/sites/{site}/residents/{resident}/history",
        f"/sites/{HOME}/residents/r01/history?metric=nonsense",
        expect(403, admin=422, staff=422, family_linked=422),
    ),
    Case(
        "devices",
        "GET",
        "/sites/{site}/devices",
        f"/sites/{HOME}/devices",
        expect(403, **STAFF_OF_HOME),
    ),
    Case(
        "resident's links",
        "GET",
        "/sites/{site}/residents/{resident}/links",
        f"/sites/{HOME}/residents/r01/links",
        expect(403, admin=200, family_linked=200),
    ),
    Case(
        "revoke a link",
        "DELETE",
        "/sites/{site}/residents/{resident}/links/{link_id}",
        f"/sites/{HOME}/residents/r01/links/{{victim}}",
        expect(403, admin=204, family_linked=204),
        victim="link",
    ),
    Case(
        "revoke a missing link",
        "DELETE",
        "/sites/{site}/residents/{resident}/links/{link_id}",
        f"/sites/{HOME}/residents/r01/links/999999",
        expect(403, admin=404, family_linked=404),
    ),
    Case(
        "create an account",
        "POST",
        "/users",
        "/users",
        expect(403, admin=201),
        body=lambda m: {
            "username": f"new-{next(_names)}",
            "password": "a long enough passphrase",
            "role": "staff",
            "sites": [HOME],
        },
    ),
    Case("accounts", "GET", "/users", "/users", expect(403, admin=200, admin_other_site=200)),
    Case(
        "an account",
        "GET",
        "/users/{user_id}",
        "/users/{staff}",
        expect(403, admin=200, admin_other_site=404),
    ),
    Case(
        "delete an account",
        "DELETE",
        "/users/{user_id}",
        "/users/{victim}",
        expect(403, admin=204, admin_other_site=404),
        victim="account",
    ),
    Case(
        "grant a link",
        "POST",
        "/users/{user_id}/links",
        "/users/{victim}/links",
        expect(403, admin=201, admin_other_site=404),
        body=lambda m: {"site": HOME, "resident": "r01"},
        victim="family",
    ),
    Case(
        "audit of a site",
        "GET",
        "/audit",
        f"/audit?site={HOME}",
        expect(403, admin=200),
    ),
    Case(
        "audit of an account",
        "GET",
        "/audit",
        "/audit?user_id={staff}",
        expect(403, admin=200, admin_other_site=404),
    ),
    Case(
        "site alerts",
        "GET",
        "/sites/{site}/alerts",
        f"/sites/{HOME}/alerts",
        expect(403, admin=200, staff=200, family_linked=200, family_of_another_resident=200),
    ),
    Case(
        "another resident's alerts",
        "GET",
        "/sites/{site}/alerts",
        f"/sites/{HOME}/alerts?resident=r01",
        expect(403, admin=200, staff=200, family_linked=200),
    ),
    Case(
        "an alert's trail",
        "GET",
        "/sites/{site}/alerts/{alert_id}/trail",
        f"/sites/{HOME}/alerts/{{alert}}/trail",
        READ_R01,
    ),
    Case(
        "a gateway alert's trail",
        "GET",
        "/sites/{site}/alerts/{alert_id}/trail",
        f"/sites/{HOME}/alerts/{{gateway_alert}}/trail",
        expect(403, **STAFF_OF_HOME),
    ),
    Case(
        "a missing alert's trail",
        "GET",
        "/sites/{site}/alerts/{alert_id}/trail",
        f"/sites/{HOME}/alerts/nothing/trail",
        MISSING_IN_HOME,
    ),
    Case(
        "acknowledge",
        "POST",
        "/sites/{site}/alerts/{alert_id}/acknowledge",
        f"/sites/{HOME}/alerts/{{victim}}/acknowledge",
        expect(403, **STAFF_OF_HOME),
        body=lambda m: {"comment": "on my way"},
        victim="alert",
    ),
    Case(
        "acknowledge a gateway alert",
        "POST",
        "/sites/{site}/alerts/{alert_id}/acknowledge",
        f"/sites/{HOME}/alerts/{{victim}}/acknowledge",
        expect(403, **STAFF_OF_HOME),
        body=lambda m: {},
        victim="gateway_alert",
    ),
    Case(
        "resolve",
        "POST",
        "/sites/{site}/alerts/{alert_id}/resolve",
        f"/sites/{HOME}/alerts/{{victim}}/resolve",
        expect(403, **STAFF_OF_HOME),
        body=lambda m: {"comment": "probe refitted"},
        victim="alert",
    ),
    Case(
        "snooze",
        "POST",
        "/sites/{site}/alerts/{alert_id}/snooze",
        f"/sites/{HOME}/alerts/{{victim}}/snooze",
        expect(403, **STAFF_OF_HOME),
        body=lambda m: {"minutes": 10},
        victim="alert",
    ),
    Case(
        "live events",
        "GET",
        "/sites/{site}/events",
        f"/sites/{HOME}/events",
        expect(403, admin=200, staff=200, family_linked=200, family_of_another_resident=200),
        stream=True,
    ),
    Case(
        "news2",
        "GET",
        "/sites/{site}/residents/{resident}/news2",
        f"/sites/{HOME}/residents/r01/news2",
        READ_R01,
    ),
    Case(
        "staff entry",
        "POST",
        "/sites/{site}/residents/{resident}/observations",
        f"/sites/{HOME}/residents/r01/observations",
        expect(403, admin=204, staff=204),
        body=lambda m: {"consciousness": "A", "on_oxygen": False},
    ),
    Case(
        "thresholds",
        "GET",
        "/sites/{site}/residents/{resident}/thresholds",
        f"/sites/{HOME}/residents/r01/thresholds",
        READ_R01,
    ),
    Case(
        "fhir export",
        "GET",
        "/sites/{site}/residents/{resident}/fhir",
        f"/sites/{HOME}/residents/r01/fhir",
        READ_R01,
    ),
    Case(
        "research export",
        "GET",
        "/sites/{site}/research.csv",
        f"/sites/{HOME}/research.csv",
        expect(403, admin=200),
    ),
    Case(
        "openapi",
        "GET",
        OPENAPI_URL,
        OPENAPI_URL,
        {**expect(200), Who.ANONYMOUS: 200},
        outside_api=True,
    ),
]

PARAMS = [
    pytest.param(case, who, id=f"{case.name.replace(' ', '_')}-{who.value}")
    for case in CASES
    for who in Who
]


async def _victim(matrix: Matrix, kind: str | None) -> str:
    world = matrix.world
    if kind == "account":
        return str((await world.user(Role.STAFF, (HOME,))).id)
    if kind == "family":
        return str((await world.user(Role.FAMILY, (HOME,))).id)
    if kind == "link":
        family = await world.user(Role.FAMILY, (HOME,))
        return str((await world.link(family, "r01")).id)
    if kind == "alert":
        return await world.raise_alert(HOME, "r01")
    if kind == "gateway_alert":
        return await world.raise_alert(HOME, None)
    return ""


@in_module_loop
@pytest.mark.parametrize(("case", "who"), PARAMS)
async def test_access(matrix: Matrix, case: Case, who: Who) -> None:
    client = await matrix.client(who, fresh=case.fresh)
    path = case.path.format(
        victim=await _victim(matrix, case.victim),
        staff=matrix.users[Who.STAFF].id,
        alert=matrix.alert,
        gateway_alert=matrix.gateway_alert,
    )
    url = path if case.outside_api else API + path
    headers = {CSRF_HEADER: client.csrf} if client.csrf is not None else {}
    body = case.body(matrix) if case.body is not None else None
    if case.stream:
        async with client.http.stream(case.method, url, headers=headers) as streamed:
            assert streamed.status_code == case.expect[who]
        return
    response = await client.http.request(case.method, url, json=body, headers=headers)
    assert response.status_code == case.expect[who], response.text


# -- the table's own guarantees -------------------------------------------------------------


def test_every_endpoint_is_in_the_matrix() -> None:
    routes = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert len(routes) >= 17
    covered = {(case.method, case.route) for case in CASES}
    assert routes - covered == set()


def test_every_case_names_every_caller() -> None:
    for case in CASES:
        assert set(case.expect) == set(Who), case.name


def test_family_of_another_resident_is_refused_everywhere_about_r01() -> None:
    about_r01 = [case for case in CASES if "/residents/r01" in case.path]
    assert len(about_r01) >= 6
    for case in about_r01:
        assert case.expect[Who.FAMILY_OTHER] == 403, case.name
        assert case.expect[Who.FAMILY_REVOKED] == 403, case.name


def test_case_paths_only_use_known_fields() -> None:
    for case in CASES:
        fields = {name for _, name, _, _ in string.Formatter().parse(case.path) if name}
        assert fields <= {"victim", "staff", "alert", "gateway_alert"}, case.name


# -- what the allowed lists hold --------------------------------------------------------------


@in_module_loop
async def test_lists_hold_only_what_the_caller_may_see(matrix: Matrix) -> None:
    async def ids(who: Who, path: str, key: str = "id") -> list[Any]:
        response = await matrix.clients[who].get(path)
        assert response.status_code == 200
        return [item[key] for item in response.json()]

    assert await ids(Who.FAMILY_OTHER, "/sites") == [HOME]
    assert await ids(Who.FAMILY_REVOKED, "/sites") == []
    assert await ids(Who.STAFF_OTHER, "/sites") == [OTHER]
    assert await ids(Who.FAMILY, "/residents") == ["r01"]
    assert await ids(Who.FAMILY_OTHER, "/residents") == ["r02"]
    assert await ids(Who.FAMILY_REVOKED, "/residents") == []
    assert await ids(Who.STAFF, "/residents") == ["r01", "r02", "r03"]
    assert await ids(Who.STAFF_OTHER, "/residents") == ["r01"]
    assert await ids(Who.STAFF_OTHER, "/residents", "site") == [OTHER]
    accounts = (await matrix.clients[Who.ADMIN_OTHER].get("/users")).json()
    seen = {account["id"] for account in accounts}
    assert {matrix.users[Who.ADMIN_OTHER].id, matrix.users[Who.STAFF_OTHER].id} <= seen
    assert all(account["sites"] == [OTHER] for account in accounts)
    assert matrix.users[Who.STAFF].id not in seen


@in_module_loop
async def test_family_sees_only_its_residents_readings(matrix: Matrix) -> None:
    response = await matrix.clients[Who.FAMILY].get(f"/sites/{HOME}/residents/r01/latest")
    assert response.status_code == 200
    body = response.json()
    assert body["resident"] == "r01"
    assert [(r["metric"], r["value"]) for r in body["readings"]] == [
        ("heart_rate", 72.0),
        ("spo2", 95.0),
    ]
    refused = await matrix.clients[Who.FAMILY].get(f"/sites/{HOME}/residents/r02/latest")
    assert refused.status_code == 403
    assert "72" not in refused.text
    assert "64" not in refused.text
