"""A subscriber that misses nothing: collects one gateway's readings and status from a real
broker over a persistent session, reconnecting (and subscribing again) whenever the broker goes
away; and the "nothing lost" check on seq used by the gateway's integration and e2e tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.harness import MosquittoServer, poll_until_async
from vitals import topics
from vitals.wire import GatewayState, Reading, ReadingBatch, Status, parse_message

__all__ = ["Collector", "check_nothing_lost", "collecting"]

WAIT = 20.0


@dataclass
class Collector:
    """Subscribes (QoS 1, persistent session) to one gateway's readings and status, and
    reconnects -- subscribing again -- whenever the broker goes away."""

    broker: MosquittoServer
    site: str
    gateway: str
    readings: list[Reading] = field(default_factory=list)
    batches: list[ReadingBatch] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    connects: int = 0

    async def run(self) -> None:
        identifier = f"collector-{uuid.uuid4().hex[:12]}"
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 600
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=identifier,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    properties=properties,
                ) as client:
                    await client.subscribe(topics.readings(self.site, self.gateway), qos=1)
                    await client.subscribe(topics.status(self.site, self.gateway), qos=1)
                    self.connects += 1
                    async for message in client.messages:
                        self._take(message)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def _take(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        assert isinstance(payload, bytes)
        if message.topic.value.endswith("/readings"):
            batch = parse_message(ReadingBatch, payload)
            self.batches.append(batch)
            self.readings.extend(batch.readings)
        else:
            self.statuses.append(parse_message(Status, payload))

    def seqs(self) -> set[int]:
        return {reading.seq for reading in self.readings}

    async def wait_for_seqs(self, last_seq: int, within: float = WAIT) -> None:
        wanted = set(range(1, last_seq + 1))

        async def complete() -> bool | None:
            return True if wanted <= self.seqs() else None

        await poll_until_async(complete, within=within, what=f"seqs 1..{last_seq} delivered")

    async def wait_for_count(self, count: int, within: float = WAIT) -> None:
        async def enough() -> bool | None:
            return True if len(self.seqs()) >= count else None

        await poll_until_async(enough, within=within, what=f"{count} readings delivered")

    async def wait_for_state(self, state: GatewayState, within: float = WAIT) -> Status:
        async def latest() -> Status | None:
            if self.statuses and self.statuses[-1].state is state:
                return self.statuses[-1]
            return None

        return await poll_until_async(latest, within=within, what=f"status {state.value}")


def check_nothing_lost(readings: Sequence[Reading], expected: set[int]) -> None:
    """Every expected seq exactly once or duplicated as identical readings; the first arrival
    of each device's readings in seq order."""
    first: dict[int, Reading] = {}
    order: dict[str, list[int]] = {}
    for reading in readings:
        kept = first.setdefault(reading.seq, reading)
        assert kept == reading, f"seq {reading.seq} arrived twice with different contents"
        if kept is reading:
            order.setdefault(reading.device, []).append(reading.seq)
    assert set(first) == expected, f"missing {sorted(expected - set(first))[:20]}"
    for device, seqs in order.items():
        assert seqs == sorted(seqs), f"{device}: readings out of order"


@contextlib.asynccontextmanager
async def collecting(broker: MosquittoServer, site: str, gateway: str) -> AsyncIterator[Collector]:
    collector = Collector(broker, site, gateway)
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(collector.run(), name="collector")

        async def subscribed() -> bool | None:
            return True if collector.connects else None

        await poll_until_async(subscribed, within=WAIT, what="collector subscribed")
        yield collector
        task.cancel()
