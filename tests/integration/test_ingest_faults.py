"""Faults with real servers: InfluxDB down for 30 s under load, and the ingestor killed
(SIGKILL) mid-batch. Either way every reading ends up stored exactly once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from functools import partial
from pathlib import Path

import pytest

from cloud.ingest import Ingestor
from cloud.registry import SiteFileRegistry
from cloud.store import InfluxStore
from tests.harness import InfluxDBFactory, InfluxDBServer, MosquittoServer, poll_until_async
from tests.ingest_driver import (
    IngestProcess,
    Publisher,
    batch_payload,
    device_ids,
    expected_keys,
    ingest_config,
    ingest_settings,
    running,
)
from vitals import topics

pytestmark = pytest.mark.integration

OUTAGE_S = 30.0


class Stream:
    """Publishes readings batches from several gateways in a thread until stopped."""

    def __init__(
        self, broker: MosquittoServer, site: str, *, gateways: int = 4, readings: int = 50
    ) -> None:
        self._publisher = Publisher(broker.host, broker.port)
        self._site = site
        self.gateways = [f"gw-{n:02d}" for n in range(gateways)]
        self._readings = readings
        self.per_gateway = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-stream")

    def start(self, every_s: float) -> None:
        self._every_s = every_s
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            first = self.per_gateway
            for gateway in self.gateways:
                seqs = range(first, first + self._readings)
                payload = batch_payload(self._site, gateway, seqs, device_ids(gateway, 4))
                self._publisher.publish(topics.readings(self._site, gateway), payload)
            self.per_gateway = first + self._readings
            self._stop.wait(self._every_s)

    @property
    def published(self) -> int:
        return self.per_gateway * len(self.gateways)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._publisher.flush(60)
        self._publisher.close()


def stored_keys(server: InfluxDBServer, db: str, site: str) -> list[tuple[str, int]]:
    rows = server.query_rows(db, f"SELECT gateway, seq FROM vitals WHERE site = '{site}'")
    return [(row["gateway"], row["seq"]) for row in rows]


async def test_influxdb_down_for_30_s_under_load_loses_and_doubles_nothing(
    mosquitto: MosquittoServer, fresh_influxdb: InfluxDBFactory
) -> None:
    influx = fresh_influxdb()
    influx.create_database("vitals")
    site = f"site-{uuid.uuid4().hex[:10]}"
    settings = ingest_settings(
        mosquitto.url,
        store={"url": influx.url, "database": "vitals", "timeout_s": 2},
        mqtt={"receive_maximum": 64, "keepalive_s": 10},
    )
    stream = Stream(mosquitto, site)
    highest_held = 0
    async with InfluxStore(influx.url, "vitals") as store:
        ingest = Ingestor(settings, store=store, registry=SiteFileRegistry(()))
        async with running(ingest):
            stream.start(every_s=0.05)  # 4 x 50 readings every 50 ms: ~4,000 readings/s
            await poll_until_async(
                lambda: asyncio.sleep(0, True if stream.published >= 10_000 else None),
                within=60,
                what="a first load",
            )
            await asyncio.to_thread(influx.stop)
            published_before = stream.published
            down_since = time.monotonic()
            while time.monotonic() - down_since < OUTAGE_S:
                highest_held = max(highest_held, ingest.held)
                assert ingest.metrics.store_available._value.get() in (0.0, 1.0)
                await asyncio.sleep(0.2)
            stored_during_outage = ingest.metrics.readings_stored._value.get()
            published_during_outage = stream.published - published_before
            await asyncio.to_thread(influx.start)
            await asyncio.sleep(2)  # keep publishing for a while after the restart
            await asyncio.to_thread(stream.stop)
            total = stream.published

            async def all_stored() -> bool | None:
                return True if await store.count(site) >= total else None

            await poll_until_async(all_stored, within=90, what=f"{total} readings", every=0.25)
            assert ingest.metrics.write_retries._value.get() > 0
            assert ingest.metrics.store_available._value.get() == 1.0
            assert ingest.metrics.readings_stored._value.get() >= stored_during_outage
    assert published_during_outage > 20_000  # publishing went on through the outage
    assert highest_held <= 64  # memory bounded by the window, whatever the broker does
    keys = stored_keys(influx, "vitals", site)
    assert len(keys) == total  # nothing twice ...
    assert set(keys) == expected_keys(stream.gateways, stream.per_gateway)  # ... nothing lost


async def test_ingestor_killed_mid_batch_loses_and_doubles_nothing(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    site = f"site-{uuid.uuid4().hex[:10]}"
    tag = uuid.uuid4().hex[:8]
    config = ingest_config(
        tmp_path / "ingest.toml",
        {
            "mqtt": {
                "url": mosquitto.url,
                "client_id": f"ingest-{tag}",
                "share_group": f"g{tag}",
                "session_expiry_s": 300,
            },
            "store": {"url": influxdb.url, "database": influx_db, "batch_size": 2000},
            "metrics": {"enabled": False},
        },
    )
    process = IngestProcess(config, tmp_path / "ingest.log")
    process.start()
    await poll_until_async(
        lambda: asyncio.sleep(0, True if "mqtt connected" in process.log_text() else None),
        within=30,
        what="the ingestor connected",
    )
    stream = Stream(mosquitto, site, readings=100)
    kills = 0
    try:
        async with InfluxStore(influxdb.url, influx_db) as store:
            stream.start(every_s=0.01)
            for threshold in (10_000, 40_000):
                # Kill it while it is writing: the stream goes on, readings are in flight.
                await poll_until_async(
                    partial(_at_least, store, site, threshold),
                    within=60,
                    what=f"{threshold} readings stored",
                    every=0.05,
                )
                assert process.kill() == -9
                kills += 1
                await asyncio.sleep(0.5)
                process.start()
            await asyncio.sleep(1)
            await asyncio.to_thread(stream.stop)
            total = stream.published
            await poll_until_async(
                partial(_at_least, store, site, total), within=90, what=f"{total} readings"
            )
    finally:
        if process.running:
            assert process.stop() == 0, process.log_text()
    assert kills == 2
    keys = stored_keys(influxdb, influx_db, site)
    assert len(keys) == total
    assert set(keys) == expected_keys(stream.gateways, stream.per_gateway)


async def _at_least(store: InfluxStore, site: str, count: int) -> bool | None:
    return True if await store.count(site) >= count else None
