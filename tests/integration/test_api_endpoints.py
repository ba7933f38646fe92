"""The API's endpoints against the real server, store and databases: what they return, what
they write to the audit log, the family-link and account lifecycles, the OpenAPI document,
and failing closed when the audit log or the store is unavailable."""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from cloud.api import Role
from cloud.api.access import current_caller
from cloud.api.app import OPENAPI_URL
from cloud.api.audit import AuditAction, AuditQuery, Outcome
from cloud.api.routes import ROUTERS
from tests.integration.test_api_support import (
    HOME,
    OTHER,
    T0,
    Client,
    World,
    api_world,
    reading,
)
from vitals.metrics import Metric
from vitals.wire import DeviceState, GatewayState, Quality, Status

pytestmark = pytest.mark.integration


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with api_world(tmp_path) as found:
        yield found


async def staff_client(world: World) -> Client:
    return await world.logged_in(await world.user(Role.STAFF))


async def audit_entries(world: World, **query: Any) -> list[Any]:
    return [entry.event for entry in await world.audit.query(AuditQuery(limit=1000, **query))]


# -- every route goes through the caller dependency ------------------------------------------


def _depends_on(dependant: Dependant, target: object) -> bool:
    return any(sub.call is target or _depends_on(sub, target) for sub in dependant.dependencies)


def test_every_route_but_login_requires_a_session() -> None:
    routes = [route for router in ROUTERS for route in router.routes]
    assert all(isinstance(route, APIRoute) for route in routes)
    open_routes = [
        route.path
        for route in routes
        if isinstance(route, APIRoute) and not _depends_on(route.dependant, current_caller)
    ]
    assert open_routes == ["/auth/login"]


# -- residents and readings -------------------------------------------------------------------


async def test_resident_record_and_devices(world: World) -> None:
    client = await staff_client(world)

    response = await client.get(f"/sites/{HOME}/residents/r01")

    assert response.status_code == 200
    assert response.json() == {
        "site": HOME,
        "id": "r01",
        "name": "Alice Example",
        "room": "12",
        "devices": [
            {"id": "a-r01-hr", "kind": "wearable", "user": None},
            {"id": "a-bp", "kind": "bp_cuff", "user": 1},
        ],
        "record": {"age": 86, "sex": "female", "copd": False},
    }
    assert response.headers["cache-control"] == "no-store"


async def test_latest_is_the_newest_reading_of_each_metric_of_that_resident(world: World) -> None:
    await world.store.write(
        [
            reading(HOME, "r01", Metric.HEART_RATE, 70, T0 - timedelta(minutes=9)),
            reading(HOME, "r01", Metric.HEART_RATE, 75, T0 - timedelta(minutes=2)),
            reading(HOME, "r01", Metric.SPO2, 94, T0 - timedelta(minutes=5), device="a-ox"),
            reading(HOME, "r02", Metric.HEART_RATE, 99, T0 - timedelta(minutes=1)),
            reading(OTHER, "r01", Metric.HEART_RATE, 101, T0 - timedelta(minutes=1)),
        ]
    )
    flagged = reading(HOME, "r01", Metric.BODY_TEMPERATURE, 37.9, T0 - timedelta(minutes=3))
    await world.store.write([flagged._replace(flags=(Quality.LATE,))])
    client = await staff_client(world)

    response = await client.get(f"/sites/{HOME}/residents/r01/latest")
    since = await client.get(
        f"/sites/{HOME}/residents/r01/latest", since="2024-03-01T11:56:30+00:00"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["site"], body["resident"]) == (HOME, "r01")
    assert [(r["metric"], r["value"], r["unit"], r["time"]) for r in body["readings"]] == [
        ("body_temperature", 37.9, "Cel", "2024-03-01T11:57:00Z"),
        ("heart_rate", 75.0, "/min", "2024-03-01T11:58:00Z"),
        ("spo2", 94.0, "%", "2024-03-01T11:55:00Z"),
    ]
    assert body["readings"][0]["flags"] == ["late"]
    assert body["readings"][2]["device"] == "a-ox"
    assert [r["metric"] for r in since.json()["readings"]] == ["body_temperature", "heart_rate"]


async def test_history_is_downsampled_by_the_store(world: World) -> None:
    ago = [55, 50, 35, 30, 15, 10]  # minutes before T0 (12:00): two per 20 minutes
    values = [60, 62, 64, 80, 82, 100]
    await world.store.write(
        [
            reading(HOME, "r01", Metric.HEART_RATE, v, T0 - timedelta(minutes=m))
            for m, v in zip(ago, values, strict=True)
        ]
    )
    client = await staff_client(world)

    response = await client.get(
        f"/sites/{HOME}/residents/r01/history",
        metric="heart_rate",
        start="2024-03-01T11:00:00Z",
        end="2024-03-01T12:00:00Z",
        every="PT20M",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["metric"], body["unit"], body["every_s"]) == ("heart_rate", "/min", 1200.0)
    assert [(b["start"], b["mean"], b["min"], b["max"], b["count"]) for b in body["buckets"]] == [
        ("2024-03-01T11:00:00Z", 61.0, 60.0, 62.0, 2),
        ("2024-03-01T11:20:00Z", 72.0, 64.0, 80.0, 2),
        ("2024-03-01T11:40:00Z", 91.0, 82.0, 100.0, 2),
    ]


async def test_history_defaults_to_the_last_day_at_five_minutes(world: World) -> None:
    client = await staff_client(world)

    body = (await client.get(f"/sites/{HOME}/residents/r01/history", metric="spo2")).json()

    assert (body["start"], body["end"], body["every_s"]) == (
        "2024-02-29T12:00:00Z",
        "2024-03-01T12:00:00Z",
        300.0,
    )
    assert body["buckets"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2024-03-01T11:00:00"},  # no time zone
        {"start": "2024-03-01T12:00:00Z", "end": "2024-03-01T11:00:00Z"},
        {"start": "2020-01-01T00:00:00Z"},  # longer than 400 days
        {"every": "PT0.5S"},
        {"every": "1", "start": "2024-02-20T00:00:00Z"},  # far too many intervals
        {"every": "soon"},
    ],
)
async def test_history_refuses_bad_windows(world: World, params: dict[str, str]) -> None:
    client = await staff_client(world)
    response = await client.get(
        f"/sites/{HOME}/residents/r01/history", metric="heart_rate", **params
    )
    assert response.status_code == 422, response.text


async def test_devices_with_their_status(world: World) -> None:
    client = await staff_client(world)
    world.devices.update(
        Status(
            site=HOME,
            gateway="gw-a",
            state=GatewayState.ONLINE,
            time=T0,
            devices=(
                DeviceState(device="a-r01-hr", connected=True, last_seen=T0, battery=81, rssi=-60),
                DeviceState(device="a-stray", connected=False),
            ),
        ),
        received=T0,
    )

    online = (await client.get(f"/sites/{HOME}/devices")).json()
    world.devices.update(
        Status(site=HOME, gateway="gw-a", state=GatewayState.OFFLINE),
        received=T0 + timedelta(minutes=1),
    )
    offline = {d["id"]: d for d in (await client.get(f"/sites/{HOME}/devices")).json()}

    assert [(d["id"], d["resident"], d["connected"]) for d in online] == [
        ("a-r01-hr", "r01", True),
        ("a-bp", "r01", None),
        ("a-r02-hr", "r02", None),
        ("a-bp", "r02", None),
        ("a-r03-temp", "r03", None),
        ("a-stray", None, False),
    ]
    assert online[0]["battery"] == 81
    assert online[0]["gateway_state"] == "online"
    assert offline["a-r01-hr"]["connected"] is False
    assert offline["a-r01-hr"]["gateway_state"] == "offline"
    assert offline["a-r01-hr"]["battery"] == 81


# -- the audit log ----------------------------------------------------------------------------


async def test_every_health_read_is_audited(world: World) -> None:
    family = await world.user(Role.FAMILY)
    await world.link(family, "r01")
    client = await world.logged_in(family)
    before = len(await audit_entries(world))

    for path in ("", "/latest", "/history?metric=spo2"):
        assert (
            await client.http.get(f"/api/v1/sites/{HOME}/residents/r01{path}")
        ).status_code == 200
    denied = await client.get(f"/sites/{HOME}/residents/r02/latest")

    assert denied.status_code == 403
    entries = (await audit_entries(world))[: len(await audit_entries(world)) - before]
    assert [
        (e.user_id, e.action, e.outcome, e.endpoint, e.site, e.resident, e.address)
        for e in reversed(entries)
    ] == [
        (
            family.id,
            AuditAction.READ,
            Outcome.OK,
            "GET /sites/{site}/residents/{resident}",
            HOME,
            "r01",
            "127.0.0.1",
        ),
        (
            family.id,
            AuditAction.READ,
            Outcome.OK,
            "GET /sites/{site}/residents/{resident}/latest",
            HOME,
            "r01",
            "127.0.0.1",
        ),
        (
            family.id,
            AuditAction.READ,
            Outcome.OK,
            "GET /sites/{site}/residents/{resident}/history",
            HOME,
            "r01",
            "127.0.0.1",
        ),
        (
            family.id,
            AuditAction.READ,
            Outcome.DENIED,
            "GET /sites/{site}/residents/{resident}/latest",
            HOME,
            "r02",
            "127.0.0.1",
        ),
    ]
    assert all(entry.time == T0 for entry in entries)


async def test_site_listings_are_audited_and_the_admin_reads_them(world: World) -> None:
    assert world.admin is not None
    staff = await staff_client(world)
    assert staff.user is not None
    await staff.get(f"/sites/{HOME}/residents")
    await staff.get(f"/sites/{HOME}/devices")
    admin = await world.logged_in(world.admin)

    site = (await admin.get("/audit", site=HOME)).json()
    by_user = (await admin.get("/audit", user_id=staff.user.id)).json()
    paged = (await admin.get("/audit", site=HOME, limit=1, before_id=site[0]["id"])).json()

    assert [(e["user_id"], e["endpoint"]) for e in site] == [
        (staff.user.id, "GET /sites/{site}/devices"),
        (staff.user.id, "GET /sites/{site}/residents"),
    ]
    assert [e["action"] for e in by_user] == ["read", "read", "login"]
    assert paged == site[1:]


async def test_the_audit_log_cannot_be_rewritten(world: World) -> None:
    client = await staff_client(world)
    await client.get(f"/sites/{HOME}/residents/r01")

    with sqlite3.connect(world.settings.audit_database) as db:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit SET user_id = 999")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit")
        count = db.execute("SELECT count(*) FROM audit").fetchone()[0]
    assert count == 2  # the login and the read


async def test_nothing_is_served_when_the_read_cannot_be_audited(world: World) -> None:
    await world.store.write(
        [reading(HOME, "r01", Metric.HEART_RATE, 88, T0 - timedelta(minutes=1))]
    )
    client = await staff_client(world)
    await world.audit.aclose()

    response = await client.get(f"/sites/{HOME}/residents/r01/latest")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "88" not in response.text


async def test_a_store_outage_is_503(world: World) -> None:
    client = await staff_client(world)
    await world.store.aclose()

    response = await client.get(f"/sites/{HOME}/residents/r01/latest")

    assert response.status_code == 503


# -- family links -----------------------------------------------------------------------------


async def test_family_link_lifecycle(world: World) -> None:
    assert world.admin is not None
    admin = await world.logged_in(world.admin)
    son = await world.user(Role.FAMILY)
    daughter = await world.user(Role.FAMILY)
    son_client = await world.logged_in(son)
    daughter_client = await world.logged_in(daughter)
    r01 = f"/sites/{HOME}/residents/r01"
    assert (await son_client.get(r01)).status_code == 403

    granted = await admin.post(f"/users/{son.id}/links", {"site": HOME, "resident": "r01"})
    contact = await admin.post(
        f"/users/{daughter.id}/links", {"site": HOME, "resident": "r01", "contact": True}
    )
    again = await admin.post(f"/users/{son.id}/links", {"site": HOME, "resident": "r01"})

    assert granted.status_code == 201
    assert contact.status_code == 201
    assert again.status_code == 409
    link = granted.json()
    assert (link["user_id"], link["granted_by"], link["revoked_at"]) == (
        son.id,
        world.admin.id,
        None,
    )
    assert (await son_client.get(r01)).status_code == 200
    me = (await son_client.get("/auth/me")).json()
    assert [(li["site"], li["resident"]) for li in me["user"]["links"]] == [(HOME, "r01")]
    assert (await son_client.get(f"{r01}/links")).status_code == 403  # not the contact
    listed = (await daughter_client.get(f"{r01}/links")).json()
    assert {li["user_id"] for li in listed} == {son.id, daughter.id}

    # The son cannot revoke his sister's link; the contact can revoke his.
    sister_link = contact.json()["id"]
    assert (await son_client.delete(f"{r01}/links/{sister_link}")).status_code == 403
    assert (await daughter_client.delete(f"{r01}/links/{link['id']}")).status_code == 204
    assert (await son_client.get(r01)).status_code == 403
    assert (await son_client.get(f"{r01}/latest")).status_code == 403
    assert (await daughter_client.delete(f"{r01}/links/{link['id']}")).status_code == 204
    revoked = await world.accounts.link(link["id"])
    assert revoked is not None
    assert revoked.revoked_by == daughter.id
    assert revoked.revoked == T0

    # Revoking one's own link.
    assert (await daughter_client.delete(f"{r01}/links/{sister_link}")).status_code == 204
    assert (await daughter_client.get(r01)).status_code == 403
    actions = [e.action for e in await audit_entries(world)]
    assert actions.count(AuditAction.LINK_GRANTED) == 2
    assert actions.count(AuditAction.LINK_REVOKED) == 2


async def test_links_are_for_family_accounts_of_the_residents_site(world: World) -> None:
    assert world.admin is not None
    admin = await world.logged_in(world.admin)
    staff = await world.user(Role.STAFF)
    family = await world.user(Role.FAMILY)

    to_staff = await admin.post(f"/users/{staff.id}/links", {"site": HOME, "resident": "r01"})
    other_site = await admin.post(f"/users/{family.id}/links", {"site": OTHER, "resident": "r01"})
    missing = await admin.post(f"/users/{family.id}/links", {"site": HOME, "resident": "r99"})

    assert to_staff.status_code == 422
    assert other_site.status_code == 403  # not the admin's site
    assert missing.status_code == 404


# -- accounts ---------------------------------------------------------------------------------


async def test_account_lifecycle(world: World) -> None:
    assert world.admin is not None
    admin = await world.logged_in(world.admin)
    body = {"username": "Nurse.Kim", "password": "a long enough passphrase", "role": "staff"}

    created = await admin.post("/users", {**body, "sites": [HOME]})
    taken = await admin.post("/users", {**body, "username": "nurse.kim", "sites": [HOME]})
    weak = await admin.post(
        "/users", {**body, "username": "nurse.lee", "password": "welcome2024!", "sites": [HOME]}
    )
    bad_name = await admin.post("/users", {**body, "username": "a b", "sites": [HOME]})
    two_sites = await admin.post(
        "/users", {**body, "username": "nurse.max", "sites": [HOME, OTHER]}
    )

    assert created.status_code == 201
    user = created.json()
    assert (user["username"], user["role"], user["sites"]) == ("nurse.kim", "staff", [HOME])
    assert taken.status_code == 409
    assert weak.status_code == 422
    assert weak.json() == {"detail": "the password is too common"}
    assert bad_name.status_code == 422
    assert two_sites.status_code == 403

    kim = await world.logged_in(await _user(world, user["id"]), "a long enough passphrase")
    assert (await admin.get(f"/users/{user['id']}")).json()["username"] == "nurse.kim"
    assert (await admin.delete(f"/users/{user['id']}")).status_code == 204
    assert (await admin.get(f"/users/{user['id']}")).status_code == 404
    assert (await admin.delete(f"/users/{user['id']}")).status_code == 404
    assert (await kim.get("/auth/me")).status_code == 401
    assert (
        await (await world.client()).login("nurse.kim", "a long enough passphrase")
    ).status_code == 401
    again = await admin.post("/users", {**body, "sites": [HOME]})
    assert again.status_code == 409  # usernames are never reused
    assert (await admin.delete(f"/users/{world.admin.id}")).status_code == 409
    actions = [e.action for e in await audit_entries(world, user_id=world.admin.id)]
    assert AuditAction.USER_CREATED in actions
    assert AuditAction.USER_DELETED in actions


async def _user(world: World, user_id: int) -> Any:
    found = await world.accounts.user(user_id)
    assert found is not None
    return found


async def test_large_bodies_and_validation_errors_are_refused_without_echo(world: World) -> None:
    client = await world.client()
    secret = "s3cret-" * 20_000  # 140 kB

    large = await client.http.post("/api/v1/auth/login", json={"username": "a", "password": secret})
    invalid = await client.http.post(
        "/api/v1/auth/login", json={"username": "a", "password": "p" * 5000}
    )

    assert large.status_code == 413
    assert invalid.status_code == 422
    assert "ppppp" not in invalid.text
    assert invalid.json()["detail"][0]["loc"] == ["body", "password"]


async def test_responses_do_not_wait_for_a_delayed_ack(world: World) -> None:
    # Without TCP_NODELAY on the server's connections every response waited ~40 ms on
    # loopback (header and body are separate writes; the client delays its ACK).
    client = await staff_client(world)
    times = []
    for _ in range(21):
        start = time.perf_counter()
        assert (await client.get("/auth/me")).status_code == 200
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.025


# -- the OpenAPI document ---------------------------------------------------------------------


async def test_the_openapi_document_describes_every_endpoint(world: World) -> None:
    client = await world.client()

    response = await client.http.get(OPENAPI_URL)

    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "CareWatch API"
    paths = document["paths"]
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in route.methods or ():
                assert method.lower() in paths[f"/api/v1{route.path}"], route.path
    latest = paths["/api/v1/sites/{site}/residents/{resident}/latest"]["get"]
    assert latest["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LatestOut"
    }
    assert (await client.http.get("/api/docs")).status_code == 200
