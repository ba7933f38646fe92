"""The alert service on real parts: readings published on a real Mosquitto raise an alert that
is stored in the SQLite ledger, published on ``carewatch/v1/{site}/alerts`` and delivered to a
person through apprise (a real HTTP receiver); staff actions stop the escalation; a restarted
service keeps open alerts and refills its rules from the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from cloud.alerts.escalation import Ladder, Recipient, Role, SiteEscalation, Step
from cloud.alerts.ledger import AlertRecord, SqliteLedger
from cloud.alerts.service import AlertService
from cloud.alerts.sites import SiteMap, load_sites
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.settings import NotifySettings
from cloud.settings import CloudSettings
from cloud.store import SqliteStore, StoredReading
from tests.harness import MosquittoServer, poll_until_async
from tests.integration.test_notify import receiver
from vitals import topics
from vitals.metrics import Metric
from vitals.wire import Alert, AlertState, Reading, ReadingBatch, Severity, parse_message

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WITHIN = 20.0


class MovingClock:
    """Wall time shifted to the test's scenario: starts at ``start`` and runs on."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset


def site_file(folder: Path, site: str) -> Path:
    path = folder / f"{site}.toml"
    path.write_text(
        f"""
id = "{site}"
name = "Service Home"
timezone = "Europe/London"
gateway = "gw-1"

[[residents]]
id = "r01"
name = "Never Logged"
devices = [{{ id = "r01-ox", kind = "pulse_oximeter" }}]

[[residents]]
id = "r02"
name = "Also Never Logged"
copd = true
devices = [{{ id = "r02-ox", kind = "pulse_oximeter" }}]
""",
        encoding="utf-8",
    )
    return path


def spo2_batch(site: str, values: list[float], end: datetime, first_seq: int) -> bytes:
    readings = tuple(
        Reading(
            gateway="gw-1",
            device="r01-ox",
            metric=Metric.SPO2,
            value=value,
            unit=Metric.SPO2.unit,
            time=end - timedelta(seconds=len(values) - 1 - i),
            received=end - timedelta(seconds=len(values) - 1 - i),
            seq=first_seq + i,
        )
        for i, value in enumerate(values)
    )
    return ReadingBatch(site=site, gateway="gw-1", sent=end, readings=readings).to_json()


@asynccontextmanager
async def service_running(
    broker: MosquittoServer,
    folder: Path,
    site: str,
    *,
    clock: MovingClock,
    urls: tuple[str, ...] = (),
    store: SqliteStore | None = None,
) -> AsyncIterator[AlertService]:
    settings = CloudSettings.model_validate(
        {
            "mqtt": {"url": broker.url},
            "alerts": {"client_id": f"alerts-{site}", "tick_s": 0.1},
        }
    )
    sites = load_sites([folder / f"{site}.toml"])
    escalation = SiteEscalation(
        site,
        Ladder((Step(roles=(Role.CARER,)), Step(roles=(Role.NURSE,), after=timedelta(minutes=5)))),
        (Recipient("carer-1", Role.CARER, urls), Recipient("nurse-1", Role.NURSE, urls)),
    )
    dispatcher = Dispatcher(NotifySettings(retry_min_s=0.1, retry_max_s=0.5)) if urls else None
    async with SqliteLedger(folder / "alerts.sqlite3") as ledger:
        service = AlertService(
            settings,
            sites=SiteMap.of(sites, clock.now()),
            escalation={site: escalation},
            ledger=ledger,
            store=store,
            dispatcher=dispatcher,
            clock=clock,
        )
        task = asyncio.create_task(service.run(), name="alert-service")
        try:

            async def connected() -> bool | None:
                if task.done():
                    task.result()
                return True if service.stats.connected else None

            await poll_until_async(connected, within=WITHIN, what="alert service connected")
            yield service
        finally:
            service.stop()
            await asyncio.wait_for(task, 10)


def spo2_alerts(service: AlertService, site: str) -> list[AlertRecord]:
    """The unresolved low-SpO2 alerts (NEWS2 rises on the same readings, with its own)."""
    return [a for a in service.lifecycle.unresolved(site) if a.rule == "spo2_low"]


async def first_alert(watcher: aiomqtt.Client, rule: str) -> Alert:
    """The first alert of ``rule`` published on what ``watcher`` subscribed to."""
    async with asyncio.timeout(WITHIN):
        async for message in watcher.messages:
            assert isinstance(message.payload, bytes)
            alert = parse_message(Alert, message.payload)
            if alert.rule == rule:
                return alert
    raise AssertionError("the message stream ended")


async def publish(broker: MosquittoServer, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier=uuid.uuid4().hex) as client:
        await client.publish(topic, payload, qos=1)


async def test_low_spo2_on_the_broker_raises_a_published_alert_and_tells_a_person(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = f"svc-{uuid.uuid4().hex[:8]}"
    site_file(tmp_path, site)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = MovingClock(start)
    with receiver() as inbox:
        async with (
            aiomqtt.Client(mosquitto.host, mosquitto.port) as watcher,
            service_running(mosquitto, tmp_path, site, clock=clock, urls=(inbox.url(),)) as svc,
        ):
            await watcher.subscribe(topics.alerts(site), qos=1)
            # Two minutes of SpO2 at 88 % (urgent below 90 on scale 1), just measured.
            await publish(
                mosquitto,
                topics.readings(site, "gw-1"),
                spo2_batch(site, [88.0] * 120, clock.now() - timedelta(seconds=1), 0),
            )
            alert = await first_alert(watcher, "spo2_low")
            assert (alert.site, alert.resident, alert.rule) == (site, "r01", "spo2_low")
            assert alert.severity is Severity.URGENT
            assert alert.state is AlertState.OPEN
            assert "Never Logged" not in alert.model_dump_json()

            def told() -> list[str]:
                return [
                    str(r.payload.get("title", "")) + str(r.payload.get("message", ""))
                    for r in inbox.received
                ]

            async def notified() -> bool | None:
                return True if any(alert.title in text for text in told()) else None

            await poll_until_async(notified, within=WITHIN, what="the carer notified")

            async with asyncio.timeout(WITHIN):  # a hang here names itself
                acknowledged = await svc.acknowledge(site, alert.id, "carer-1", "with her now")
            assert acknowledged.state is AlertState.ACKNOWLEDGED
            assert acknowledged.acknowledged_by == "carer-1"
            async with asyncio.timeout(WITHIN):
                trail = await svc.trail(site, alert.id)
            assert [r.action.value for r in trail][:2] == ["opened", "acknowledged"]


async def test_a_restarted_service_keeps_its_open_alerts_and_refills_from_the_store(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = f"svc-{uuid.uuid4().hex[:8]}"
    site_file(tmp_path, site)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = MovingClock(start)
    async with SqliteStore(tmp_path / "vitals.sqlite3") as store:
        async with service_running(mosquitto, tmp_path, site, clock=clock, store=store) as svc:
            payload = spo2_batch(site, [88.0] * 120, clock.now() - timedelta(seconds=1), 0)
            # What the ingestor would have stored from the same message.
            batch = parse_message(ReadingBatch, payload)
            await store.write([StoredReading.from_reading(site, "r01", r) for r in batch.readings])
            await publish(mosquitto, topics.readings(site, "gw-1"), payload)

            async def opened() -> bool | None:
                return True if spo2_alerts(svc, site) else None

            await poll_until_async(opened, within=WITHIN, what="an alert opened")
            [before] = spo2_alerts(svc, site)

        async with service_running(mosquitto, tmp_path, site, clock=clock, store=store) as again:
            [after] = spo2_alerts(again, site)
            assert (after.id, after.count, after.next_escalation_at) == (
                before.id,
                before.count,
                before.next_escalation_at,
            )
            assert again.stats.refilled >= 120
            # The refilled rules still see the low SpO2: the alert is not resolved by the
            # first evaluation after the restart.
            await asyncio.sleep(0)

            async def ticked() -> bool | None:
                return True if again.stats.ticks >= 3 else None

            await poll_until_async(ticked, within=WITHIN, what="three ticks")
            [still] = spo2_alerts(again, site)
            assert still.id == before.id
            assert still.state is AlertState.OPEN


async def test_a_reading_of_an_unknown_device_or_site_changes_nothing(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = f"svc-{uuid.uuid4().hex[:8]}"
    site_file(tmp_path, site)
    clock = MovingClock(datetime.now(UTC).replace(microsecond=0))
    async with service_running(mosquitto, tmp_path, site, clock=clock) as svc:
        other = f"svc-{uuid.uuid4().hex[:8]}"
        await publish(
            mosquitto,
            topics.readings(other, "gw-1"),
            spo2_batch(other, [80.0] * 120, clock.now(), 0),
        )
        await publish(mosquitto, topics.readings(site, "gw-1"), b"{not json")

        async def refused() -> bool | None:
            return True if svc.stats.batches_refused >= 1 else None

        await poll_until_async(refused, within=WITHIN, what="the bad batch counted")
        await poll_until_async(
            lambda: asyncio.sleep(0, True if svc.stats.ticks >= 3 else None),
            within=WITHIN,
            what="ticks",
        )
        assert svc.lifecycle.unresolved() == []


async def test_a_missing_end_to_end_probe_raises_a_technical_alert_until_one_is_stored(
    tmp_path: Path,
) -> None:
    site = f"svc-{uuid.uuid4().hex[:8]}"
    site_file(tmp_path, site)
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    clock = MovingClock(start)
    settings = CloudSettings.model_validate({"alerts": {"probe_silence_s": 1800}})
    async with (
        SqliteStore(tmp_path / "vitals.sqlite3") as store,
        SqliteLedger(tmp_path / "alerts.sqlite3") as ledger,
    ):
        svc = AlertService(
            settings,
            sites=SiteMap.of(load_sites([tmp_path / f"{site}.toml"]), start),
            escalation={},
            ledger=ledger,
            store=store,
            clock=clock,
        )
        await svc.start()
        assert await svc.check_probes(start + timedelta(minutes=10)) == []  # still in grace
        [opened] = await svc.check_probes(start + timedelta(minutes=31))
        assert (opened.alert.rule, opened.alert.gateway) == ("probe_missing", "gw-1")
        assert opened.alert.kind.value == "technical"
        assert await svc.check_probes(start + timedelta(minutes=32)) == []  # no repeat

        probe = Reading(
            gateway="gw-1",
            device="gw-1",
            metric=Metric.PROBE,
            value=1.0,
            unit=Metric.PROBE.unit,
            time=start + timedelta(minutes=33),
            received=start + timedelta(minutes=33),
            seq=1,
        )
        await store.write([StoredReading.from_reading(site, "unassigned", probe)])
        [resolved] = await svc.check_probes(start + timedelta(minutes=34))
        assert resolved.alert.id == opened.alert.id
        assert resolved.alert.state is AlertState.RESOLVED
