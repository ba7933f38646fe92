"""What the alert endpoints do beyond who may call them (tests/integration/test_api_access.py):
the lifecycle's refusals as HTTP statuses, what a family account sees in the list, the live
stream, NEWS2 and staff entries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from cloud.api import Role
from cloud.api.access import CSRF_HEADER
from tests.integration.test_api_support import API, HOME, Client, World, api_world
from vitals.metrics import Metric
from vitals.wire import Reading, Severity

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with api_world(tmp_path) as found:
        yield found


async def staff(world: World) -> Client:
    return await world.logged_in(await world.user(Role.STAFF, (HOME,)))


async def post(client: Client, path: str, body: object) -> tuple[int, dict[str, object]]:
    assert client.csrf is not None
    response = await client.http.post(f"{API}{path}", json=body, headers={CSRF_HEADER: client.csrf})
    return response.status_code, response.json() if response.content else {}


async def test_acknowledging_twice_is_a_conflict_and_resolving_closes(world: World) -> None:
    client = await staff(world)
    alert = await world.raise_alert(HOME, "r01")
    status, body = await post(client, f"/sites/{HOME}/alerts/{alert}/acknowledge", {})
    assert (status, body["state"], body["acknowledged_by"]) == (
        200,
        "acknowledged",
        client.user.username if client.user else None,
    )
    status, body = await post(client, f"/sites/{HOME}/alerts/{alert}/acknowledge", {})
    assert status == 409
    status, body = await post(client, f"/sites/{HOME}/alerts/{alert}/resolve", {"comment": "ok"})
    assert (status, body["state"]) == (200, "resolved")
    status, _ = await post(client, f"/sites/{HOME}/alerts/{alert}/resolve", {})
    assert status == 409
    trail = (await client.http.get(f"{API}/sites/{HOME}/alerts/{alert}/trail")).json()["trail"]
    assert [entry["action"] for entry in trail] == ["opened", "acknowledged", "resolved"]
    assert "ok" in trail[-1]["detail"]


async def test_a_critical_alert_cannot_be_snoozed_beyond_the_cap(world: World) -> None:
    client = await staff(world)
    alert = await world.raise_alert(HOME, "r01", severity=Severity.CRITICAL)
    status, _ = await post(client, f"/sites/{HOME}/alerts/{alert}/snooze", {"minutes": 60})
    assert status == 422
    status, body = await post(client, f"/sites/{HOME}/alerts/{alert}/snooze", {"minutes": 10})
    assert (status, body["state"]) == (200, "snoozed")


async def test_family_see_only_their_relatives_clinical_alerts(world: World) -> None:
    mine = await world.raise_alert(HOME, "r01")
    theirs = await world.raise_alert(HOME, "r02")
    gateway = await world.raise_alert(HOME, None)
    family = await world.user(Role.FAMILY, (HOME,))
    await world.link(family, "r01")
    client = await world.logged_in(family)
    listed = (await client.http.get(f"{API}/sites/{HOME}/alerts")).json()["alerts"]
    assert [a["id"] for a in listed] == [mine]
    staff_client = await staff(world)
    every = (await staff_client.http.get(f"{API}/sites/{HOME}/alerts")).json()["alerts"]
    assert {a["id"] for a in every} == {mine, theirs, gateway}


async def test_the_live_stream_carries_an_alert_change(world: World) -> None:
    client = await staff(world)
    async with client.http.stream("GET", f"{API}/sites/{HOME}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await anext(lines) == "retry: 3000"
        alert = await world.raise_alert(HOME, "r01")
        # raise_alert goes through the lifecycle directly; the service publishes what the
        # lifecycle returns when staff act through it.
        await world.alerts.acknowledge(HOME, alert, "staff-x", None)
        async with asyncio.timeout(10):
            event = data = None
            async for line in lines:
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "alert":
                    data = json.loads(line.removeprefix("data: "))
                    break
    assert data is not None
    assert (data["id"], data["state"]) == (alert, "acknowledged")


async def test_news2_names_missing_parameters_and_a_staff_entry_counts(world: World) -> None:
    client = await staff(world)
    now = world.clock.now()
    # 20 minutes of respiration rate 26 (NEWS2 3), ending now: held throughout NEWS2's
    # persistence window, as a continuous parameter must be.
    for step in range(120):
        at = now - timedelta(seconds=10 * (119 - step))
        rr = Reading(
            gateway="gw-a",
            device="a-r01-hr",
            metric=Metric.RESPIRATORY_RATE,
            value=26,
            unit=Metric.RESPIRATORY_RATE.unit,
            time=at,
            received=at,
            seq=step,
        )
        world.alerts.ingest(HOME, [rr], at)
    await world.alerts.tick(now)
    body = (await client.http.get(f"{API}/sites/{HOME}/residents/r01/news2")).json()
    assert body["scores"]["respiration_rate"] == 3
    assert "consciousness" in body["missing"]
    status, _ = await post(
        client, f"/sites/{HOME}/residents/r01/observations", {"consciousness": "V"}
    )
    assert status == 204
    body = (await client.http.get(f"{API}/sites/{HOME}/residents/r01/news2")).json()
    assert body["scores"]["consciousness"] == 3
    assert body["total"] >= 6
