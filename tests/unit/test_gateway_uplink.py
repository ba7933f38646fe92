"""The uplink against a scripted connector: batching, delete-after-PUBACK, refusals, stalls,
reconnect cycles and the clean goodbye. The real broker is in tests/integration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.errors import PublishRefusedError, UplinkConnectionError
from gateway.outbox import AsyncOutbox, Entry, retention_of
from gateway.settings import MqttSettings
from gateway.uplink import MqttLink, Uplink, Will
from tests.harness import poll_until_async
from vitals.metrics import Metric
from vitals.wire import GatewayState, Reading, ReadingBatch, Status, parse_message

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
WAIT = 5.0


@dataclass
class Sent:
    topic: str
    payload: bytes
    retain: bool
    ack: asyncio.Future[None]


@dataclass
class FakeLink:
    auto_ack: bool
    sent: list[Sent] = field(default_factory=list)
    lost: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    open: bool = True

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> Awaitable[None]:
        if not self.open:
            raise UplinkConnectionError("not connected")
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append(Sent(topic, payload, retain, ack))
        if self.auto_ack:
            ack.set_result(None)
        return ack

    async def closed(self) -> str:
        return await self.lost

    def drop(self, cause: str = "network gone") -> None:
        if not self.lost.done():
            self.lost.set_result(cause)

    def batches(self) -> list[ReadingBatch]:
        return [
            parse_message(ReadingBatch, s.payload)
            for s in self.sent
            if s.topic.endswith("/readings")
        ]

    def statuses(self) -> list[Status]:
        return [parse_message(Status, s.payload) for s in self.sent if s.topic.endswith("/status")]


@dataclass
class FakeConnector:
    auto_ack: bool = True
    refuse: int = 0
    """Connection attempts to refuse before one succeeds."""
    links: list[FakeLink] = field(default_factory=list)
    wills: list[Will] = field(default_factory=list)
    attempts: int = 0

    @contextlib.asynccontextmanager
    async def connect(self, will: Will) -> AsyncIterator[MqttLink]:
        self.attempts += 1
        self.wills.append(will)
        if self.refuse > 0:
            self.refuse -= 1
            raise UplinkConnectionError("connection refused")
        link = FakeLink(self.auto_ack)
        self.links.append(link)
        try:
            yield link
        finally:
            link.open = False


def settings(**changes: object) -> MqttSettings:
    base: dict[str, object] = {
        "url": "mqtt://127.0.0.1:1",
        "batch_size": 10,
        "batch_interval_s": 0.05,
        "max_in_flight": 2,
        "ack_timeout_s": 2.0,
        "reconnect_min_s": 0.01,
        "reconnect_max_s": 0.05,
    }
    return MqttSettings.model_validate(base | changes)


def hr(value: float = 70.0, device: str = "wear-1") -> Entry:
    return Entry(
        device, Metric.HEART_RATE, value, T0, T0, retention=retention_of(Metric.HEART_RATE)
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool | None:
        return True if condition() else None

    await poll_until_async(check, within=WAIT, what=what, every=0.005)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, connector: FakeConnector, **changes: object
) -> AsyncIterator[tuple[Uplink, AsyncOutbox]]:
    async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=10_000) as outbox:
        uplink = Uplink(
            site="site-1",
            gateway="gw-1",
            outbox=outbox,
            mqtt=settings(**changes),
            connector=connector,
            clock=lambda: T0,
            rng=random.Random(7),
        )
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(uplink.run(), name="uplink")
            yield uplink, outbox
            task.cancel()


def seqs_of(link: FakeLink) -> list[int]:
    return [reading.seq for batch in link.batches() for reading in batch.readings]


async def test_rows_are_deleted_only_after_each_batchs_puback(tmp_path: Path) -> None:
    connector = FakeConnector(auto_ack=False)
    async with running(tmp_path, connector) as (_, outbox):
        await until(
            lambda: len(connector.links) == 1 and len(connector.links[0].sent) == 1, "status"
        )
        link = connector.links[0]
        link.sent[0].ack.set_result(None)  # the online status
        await outbox.append([hr(60.0 + v) for v in range(35)])
        await until(lambda: len(link.batches()) == 2, "two batches in flight")
        await asyncio.sleep(0.1)
        assert len(link.batches()) == 2  # max_in_flight holds the third back
        assert outbox.depth == 35  # nothing acknowledged, nothing deleted
        link.sent[1].ack.set_result(None)
        await until(lambda: outbox.depth == 25 and len(link.batches()) == 3, "first ack")
        for sent in link.sent[2:]:
            sent.ack.set_result(None)
        await until(lambda: len(link.batches()) == 4, "the rest")
        link.sent[4].ack.set_result(None)
        await until(lambda: outbox.depth == 0, "all acknowledged")
        link.auto_ack = True  # for the goodbye
    assert seqs_of(link) == list(range(1, 36))
    assert [len(batch.readings) for batch in link.batches()] == [10, 10, 10, 5]


async def test_a_trickle_is_batched_by_time(tmp_path: Path) -> None:
    connector = FakeConnector()
    async with running(tmp_path, connector, batch_size=100, batch_interval_s=0.2) as (_, outbox):
        await until(lambda: len(connector.links) == 1, "connected")
        link = connector.links[0]
        for value in range(3):
            await outbox.append([hr(60.0 + value)])
            await asyncio.sleep(0.02)
        await until(lambda: outbox.depth == 0, "sent")
    assert [len(batch.readings) for batch in link.batches()] == [3]


async def test_a_refused_publish_keeps_the_rows_and_reconnects(tmp_path: Path) -> None:
    connector = FakeConnector(auto_ack=False)
    async with running(tmp_path, connector) as (uplink, outbox):
        await outbox.append([hr(60.0 + v) for v in range(5)])
        await until(
            lambda: len(connector.links) == 1 and len(connector.links[0].sent) == 1, "status"
        )
        first = connector.links[0]
        first.sent[0].ack.set_result(None)
        await until(lambda: len(first.sent) == 2, "batch sent")
        first.sent[1].ack.set_exception(PublishRefusedError("t", 0x87, "Not authorized"))
        await until(lambda: len(connector.links) == 2, "reconnected")
        assert outbox.depth == 5
        assert uplink.stats.refused == 1
        connector.auto_ack = True
        second = connector.links[1]
        second.sent[0].ack.set_result(None)
        await until(lambda: len(second.sent) == 2, "resent")
        second.sent[1].ack.set_result(None)
        await until(lambda: outbox.depth == 0, "delivered")
        second.auto_ack = True  # for the goodbye
    assert first.batches()[0].readings == second.batches()[0].readings


async def test_a_missing_puback_is_a_stall_and_the_batch_is_resent(tmp_path: Path) -> None:
    connector = FakeConnector(auto_ack=False)
    async with running(tmp_path, connector, ack_timeout_s=0.2) as (uplink, outbox):
        await outbox.append([hr()])
        await until(lambda: len(connector.links) >= 2, "reconnect after the stall")
        assert uplink.stats.stalls >= 1
        connector.auto_ack = True
        await until(lambda: len(connector.links) >= 3 and outbox.depth == 0, "drained")


async def test_two_reconnect_cycles_resend_unacknowledged_batches_unchanged(
    tmp_path: Path,
) -> None:
    connector = FakeConnector(auto_ack=False)
    async with running(tmp_path, connector) as (uplink, outbox):
        await outbox.append([hr(60.0 + v) for v in range(25)])

        async def cycle(number: int) -> None:
            await until(lambda: len(connector.links) == number + 1, f"connection {number}")
            link = connector.links[number]
            await until(lambda: len(link.sent) >= 1, "online status")
            link.sent[0].ack.set_result(None)
            await until(lambda: len(link.batches()) >= 2, "two batches in flight")
            link.sent[1].ack.set_result(None)  # the first batch is acknowledged, no other
            await until(lambda: outbox.depth == 25 - 10 * (number + 1), "first batch deleted")
            unsent = list(range(1 + 10 * number, 26))
            await until(
                lambda: [r.seq for b in link.batches() for r in b.readings] == unsent,
                "every unacknowledged reading sent on this connection",
            )
            link.drop(f"cut {number}")

        await cycle(0)
        await cycle(1)
        connector.auto_ack = True
        await until(lambda: len(connector.links) == 3 and outbox.depth == 0, "drained")
        assert uplink.stats.connects == 3
    sent = [[r.seq for b in link.batches() for r in b.readings] for link in connector.links]
    assert sent[0] == list(range(1, 26))
    assert sent[1] == list(range(11, 26))  # everything unacknowledged, again, in order
    assert sent[2] == list(range(21, 26))
    by_seq: dict[int, Reading] = {}
    for link in connector.links:
        for batch in link.batches():
            for reading in batch.readings:
                assert by_seq.setdefault(reading.seq, reading) == reading  # identical resends
    assert sorted(by_seq) == list(range(1, 26))
    for link in connector.links:
        assert link.statuses()[0].state is GatewayState.ONLINE
        assert link.sent[0].retain
    will = parse_message(Status, connector.wills[0].payload)
    assert (will.state, will.time) == (GatewayState.OFFLINE, None)


async def test_refused_connections_back_off_and_recover(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    connector = FakeConnector(refuse=4)
    async with running(tmp_path, connector) as (uplink, outbox):
        await outbox.append([hr()])
        await until(lambda: outbox.depth == 0, "delivered after the refusals")
        assert connector.attempts == 5
        assert uplink.stats.connection_failures == 4
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.uplink" and r.levelname == "WARNING"
    ]
    assert warnings == ["uplink cannot connect to 127.0.0.1:1: connection refused; retrying"]
    infos = [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.uplink" and r.levelname == "INFO"
    ]
    assert infos[0] == "uplink connected to 127.0.0.1:1"


async def test_a_lost_connection_is_logged_once_with_its_cause_and_the_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.uplink")
    connector = FakeConnector()
    async with running(tmp_path, connector):
        await until(lambda: len(connector.links) == 1, "connected")
        connector.refuse = 3
        connector.links[0].drop("keepalive timeout")
        await until(lambda: len(connector.links) == 2, "reconnected")
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.uplink"]
    assert messages[0] == "uplink connected to 127.0.0.1:1"
    assert messages[1] == "uplink to 127.0.0.1:1 lost: keepalive timeout; reconnecting"
    assert messages[2].startswith("uplink reconnected to 127.0.0.1:1 after ")
    assert messages[2].endswith("(4 attempts)")


async def test_clean_stop_publishes_a_retained_offline_status(tmp_path: Path) -> None:
    connector = FakeConnector()
    async with running(tmp_path, connector):
        await until(lambda: len(connector.links) == 1 and len(connector.links[0].sent) == 1, "")
    link = connector.links[0]
    last = link.sent[-1]
    assert last.retain
    status = parse_message(Status, last.payload)
    assert status.state is GatewayState.OFFLINE
    assert status.time == T0
    assert not link.open


async def test_heartbeat_reports_health(tmp_path: Path) -> None:
    connector = FakeConnector()
    async with AsyncOutbox.open(tmp_path / "o.sqlite3", max_rows=3) as outbox:
        await outbox.append([hr() for _ in range(5)])  # two dropped by the full policy
        from gateway.settings import StatusSettings

        uplink = Uplink(
            site="site-1",
            gateway="gw-1",
            outbox=outbox,
            mqtt=settings(),
            status=StatusSettings(heartbeat_s=0.05),
            connector=connector,
            clock=lambda: T0,
        )
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(uplink.run(), name="uplink")
            await until(
                lambda: len(connector.links) == 1 and len(connector.links[0].statuses()) >= 3, ""
            )
            task.cancel()
    first = connector.links[0].statuses()[0]
    assert first.state is GatewayState.ONLINE
    assert first.outbox_depth == 3
    assert first.dropped == 2
    assert {"carewatch", "python", "aiomqtt"} <= set(first.versions)


def test_batches_never_exceed_the_wire_limit() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        settings(batch_size=5001)


async def test_a_row_that_is_no_longer_a_valid_reading_is_removed_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    from gateway.outbox import Outbox

    path = tmp_path / "outbox.sqlite3"
    with Outbox(path, max_rows=100) as outbox:
        outbox.append([hr(70.0), hr(71.0), hr(72.0)])
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE readings SET value = 999 WHERE seq = 2")  # damaged on disk
    connector = FakeConnector()
    async with running(tmp_path, connector) as (uplink, outbox):
        await until(lambda: outbox.depth == 0, "drained")
        assert uplink.stats.corrupt == 1
    assert seqs_of(connector.links[0]) == [1, 3]
    assert "no longer valid readings: [2]" in caplog.text
