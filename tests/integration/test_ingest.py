"""The ingestor against the real Mosquitto and InfluxDB of the harness: every reading stored
once and acknowledged after it, dead letters for what is refused, the embedded store, broker
restarts, and two processes sharing the load."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cloud.ingest import Ingestor, StoreOutageError
from cloud.registry import SiteFileRegistry
from cloud.settings import CloudSettings
from cloud.store import InfluxStore, ReadingStore, SqliteStore
from tests.harness import (
    InfluxDBServer,
    MosquittoFactory,
    MosquittoServer,
    free_port,
    poll_until_async,
)
from tests.ingest_driver import (
    IngestProcess,
    Listener,
    Publisher,
    batch_payload,
    device_ids,
    ingest_config,
    ingest_settings,
    running,
    site_file,
)
from vitals import DeadLetter, Metric, parse_message, topics

pytestmark = pytest.mark.integration

WITHIN = 60.0


def new_site() -> str:
    return f"site-{uuid.uuid4().hex[:10]}"


def ingestor(settings: CloudSettings, store: ReadingStore) -> Ingestor:
    return Ingestor(settings, store=store, registry=SiteFileRegistry(settings.registry.sites))


async def until_count(store: ReadingStore, site: str, expected: int) -> None:
    async def check() -> bool | None:
        return True if await store.count(site) >= expected else None

    await poll_until_async(check, within=WITHIN, what=f"{expected} readings stored", every=0.1)
    assert await store.count(site) == expected


async def test_readings_are_stored_once_and_acknowledged_after_the_write(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    site = new_site()
    known = device_ids("gw-00", 4)
    sites = [site_file(tmp_path / "site.toml", site, {"r01": known[:2], "r02": known[2:]})]
    settings = ingest_settings(
        mosquitto.url, store={"url": influxdb.url, "database": influx_db}, sites=sites
    )
    publisher = Publisher(mosquitto.host, mosquitto.port)
    async with InfluxStore(influxdb.url, influx_db) as store:
        async with running(ingestor(settings, store)) as first:
            for n in range(40):  # gw-00's devices are registered, gw-01's are not
                gateway = f"gw-0{n % 2}"
                seqs = range(n // 2 * 100, n // 2 * 100 + 100)
                payload = batch_payload(site, gateway, seqs, device_ids(gateway, 4))
                publisher.publish(topics.readings(site, gateway), payload)
            await asyncio.to_thread(publisher.flush, WITHIN)
            await until_count(store, site, 4000)
            assert first.metrics.messages.labels("stored")._value.get() == 40
            assert first.metrics.readings_unassigned._value.get() == 2000

        latest = await store.latest(site)
        assert {(r.resident, r.metric) for r in latest} == {
            (resident, metric)
            for resident in ("r01", "r02", "unassigned")
            for metric in (Metric.HEART_RATE, Metric.RR_INTERVAL)
        }
        assert await store.count(site, "unassigned") == 2000
        assert await store.count(site, "r01") == 1000

        # Everything was acknowledged: the same session, back again, gets only what is new.
        marker = batch_payload(site, "gw-02", range(5), device_ids("gw-02", 1))
        publisher.publish(topics.readings(site, "gw-02"), marker)
        await asyncio.to_thread(publisher.flush, WITHIN)
        async with running(ingestor(settings, store)) as second:
            await until_count(store, site, 4005)
            assert second.metrics.messages.labels("stored")._value.get() == 1
    publisher.close()


async def test_malformed_messages_are_dead_lettered_and_good_readings_stored(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    site = new_site()
    settings = ingest_settings(mosquitto.url, store={"url": influxdb.url, "database": influx_db})
    listener = Listener(mosquitto.host, mosquitto.port, topics.deadletter(site))
    publisher = Publisher(mosquitto.host, mosquitto.port)
    devices = device_ids("gw-00", 4)
    expected_stored = expected_bad = 0
    kinds: Counter[str] = Counter()
    seq = 0

    def batch(size: int, bad: Mapping[int, Mapping[str, object]] | None = None) -> bytes:
        nonlocal seq
        seqs = range(seq, seq + size)
        seq += size
        shifted = {seqs[k]: v for k, v in (bad or {}).items()}
        return batch_payload(site, "gw-00", seqs, devices, bad=shifted)

    topic = topics.readings(site, "gw-00")
    messages: list[tuple[str, bytes]] = []
    for n in range(1200):
        if n % 6 == 5:  # 200 good batches
            messages.append((topic, batch(20)))
            expected_stored += 20
        elif n % 6 == 0:
            kinds["not JSON"] += 1
            messages.append((topic, b'{"v": 1, "site": ' + str(n).encode()))
        elif n % 6 == 1:
            kinds["bad envelope"] += 1
            messages.append((topic, json.dumps({"v": 1, "site": site, "readings": []}).encode()))
        elif n % 6 == 2:
            kinds["topic mismatch"] += 1
            messages.append((topics.readings(site, "gw-09"), batch(3)))
        else:  # batches with 1-3 bad readings among good ones
            bad = {k: {"value": 1000.0} for k in range(n % 3 + 1)}
            kinds["some readings refused"] += 1
            messages.append((topic, batch(10, bad)))
            expected_stored += 10 - len(bad)
            expected_bad += len(bad)
    assert sum(kinds.values()) == 1000

    async with (
        InfluxStore(influxdb.url, influx_db) as store,
        running(ingestor(settings, store)) as ingest,
    ):
        for message_topic, payload in messages:
            publisher.publish(message_topic, payload)
        await asyncio.to_thread(publisher.flush, WITHIN)
        await poll_until_async(
            lambda: asyncio.sleep(0, True if len(listener.messages) >= 1000 else None),
            within=WITHIN,
            what="1000 dead letters",
        )
        await until_count(store, site, expected_stored)
        metrics = ingest.metrics
        assert metrics.messages.labels("refused")._value.get() == 600
        assert metrics.messages.labels("partial")._value.get() == 400
        assert metrics.readings_rejected.labels("invalid")._value.get() == expected_bad
        assert metrics.deadletters.labels("message")._value.get() == 600
        assert metrics.deadletters.labels("readings")._value.get() == 400
    publisher.close()
    listener.close()

    letters = [parse_message(DeadLetter, payload) for _, payload in listener.messages]
    assert len(letters) == 1000
    reasons = Counter(re.sub(r"\d+ of \d+", "N of M", letter.reason) for letter in letters)
    assert reasons == {
        "invalid readings batch": 400,
        "topic mismatch": 200,
        "N of M readings refused": 400,
    }
    assert all(letter.errors for letter in letters)
    partial = [letter for letter in letters if "refused" in letter.reason]
    assert sum(len(json.loads(letter.payload)) for letter in partial) == expected_bad == 600
    assert all("outside the possible range" in line for p in partial for line in p.errors)


async def test_store_refusals_are_dead_lettered_reading_by_reading(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_db: str
) -> None:
    # An integer 'value' fixes the field's type for one week of 2001; our floats measured in
    # that week are refused by InfluxDB (partial write), the rest of the batch is stored.
    site = new_site()
    influxdb.write_lines(
        influx_db,
        f"vitals,site={site},resident=x,device=x,metric=heart_rate value=1i 978480000000000000",
    )
    settings = ingest_settings(mosquitto.url, store={"url": influxdb.url, "database": influx_db})
    listener = Listener(mosquitto.host, mosquitto.port, topics.deadletter(site))
    publisher = Publisher(mosquitto.host, mosquitto.port)
    old = {"time": "2001-01-03T10:00:00Z", "received": "2001-01-03T10:00:01Z"}
    payload = batch_payload(
        site, "gw-00", range(50), device_ids("gw-00", 2), bad={5: old, 6: old, 33: old}
    )
    async with InfluxStore(influxdb.url, influx_db) as store:
        async with running(ingestor(settings, store)) as ingest:
            publisher.publish(topics.readings(site, "gw-00"), payload)
            await asyncio.to_thread(publisher.flush, WITHIN)
            await poll_until_async(
                lambda: asyncio.sleep(0, True if listener.messages else None),
                within=WITHIN,
                what="a dead letter",
            )
            assert ingest.metrics.readings_rejected.labels("store_refused")._value.get() == 3
        assert await store.count(site) == 48  # 47 of ours and the integer point
    publisher.close()
    listener.close()
    [letter] = [parse_message(DeadLetter, p) for _, p in listener.messages]
    assert letter.reason == "3 readings refused by the store"
    assert [item["seq"] for item in json.loads(letter.payload)] == [5, 6, 33]
    assert all("field type conflict" in line for line in letter.errors)


async def test_unknown_devices_can_be_dead_lettered_instead(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = new_site()
    sites = [site_file(tmp_path / "site.toml", site, {"r01": ["gw-00-dev-00"]})]
    settings = ingest_settings(
        mosquitto.url,
        store={"kind": "sqlite", "path": str(tmp_path / "v.sqlite3")},
        sites=sites,
        registry={"unknown_device": "deadletter"},
    )
    listener = Listener(mosquitto.host, mosquitto.port, topics.deadletter(site))
    publisher = Publisher(mosquitto.host, mosquitto.port)
    async with SqliteStore(tmp_path / "v.sqlite3") as store, running(ingestor(settings, store)):
        payload = batch_payload(site, "gw-00", range(40), device_ids("gw-00", 2))
        publisher.publish(topics.readings(site, "gw-00"), payload)
        await asyncio.to_thread(publisher.flush, WITHIN)
        await until_count(store, site, 20)
        await poll_until_async(
            lambda: asyncio.sleep(0, True if listener.messages else None),
            within=WITHIN,
            what="a dead letter",
        )
    publisher.close()
    listener.close()
    [letter] = [parse_message(DeadLetter, p) for _, p in listener.messages]
    assert letter.reason == "20 of 40 readings refused"
    assert {item["device"] for item in json.loads(letter.payload)} == {"gw-00-dev-01"}


async def test_the_embedded_store_end_to_end(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    site = new_site()
    path = tmp_path / "vitals.sqlite3"
    settings = ingest_settings(mosquitto.url, store={"kind": "sqlite", "path": str(path)})
    publisher = Publisher(mosquitto.host, mosquitto.port)
    async with SqliteStore(path) as store:
        async with running(ingestor(settings, store)):
            for n in range(20):
                seqs = range(n * 250, n * 250 + 250)
                payload = batch_payload(site, "gw-00", seqs, device_ids("gw-00", 3))
                publisher.publish(topics.readings(site, "gw-00"), payload)
                if n == 9:  # a redelivered message changes nothing
                    publisher.publish(topics.readings(site, "gw-00"), payload)
            await asyncio.to_thread(publisher.flush, WITHIN)
            await until_count(store, site, 5000)
        latest = await store.latest(site)
        assert {r.resident for r in latest} == {"unassigned"}
        assert max(r.seq for r in latest) == 4999
    publisher.close()


@pytest.mark.parametrize("group", ["", "shared"])
async def test_broker_restarts_lose_nothing_and_double_nothing(
    fresh_mosquitto: MosquittoFactory, influxdb: InfluxDBServer, influx_db: str, group: str
) -> None:
    broker = fresh_mosquitto()
    site = new_site()
    settings = ingest_settings(
        broker.url,
        store={"url": influxdb.url, "database": influx_db},
        mqtt={"share_group": group} if not group else None,
    )
    async with (
        InfluxStore(influxdb.url, influx_db) as store,
        running(ingestor(settings, store)) as ingest,
    ):
        connects = ingest.metrics.connects._value

        async def reconnected(times: int) -> None:
            def check() -> bool | None:
                return True if connects.get() >= times and ingest.connected.is_set() else None

            await poll_until_async(
                lambda: asyncio.sleep(0, check()), within=WITHIN, what="subscribed again"
            )

        for burst in range(3):
            if group and burst:
                # Mosquitto 2.0.11 does not restore a shared subscription after a restart:
                # what is published before the ingestor subscribes again has no taker.
                await reconnected(burst + 1)
            publisher = Publisher(broker.host, broker.port)
            for n in range(100):
                first = (burst * 100 + n) * 50
                payload = batch_payload(
                    site, "gw-00", range(first, first + 50), device_ids("gw-00", 4)
                )
                publisher.publish(topics.readings(site, "gw-00"), payload)
            await asyncio.to_thread(publisher.flush, WITHIN)
            publisher.close()
            if not group and burst:
                # A plain subscription's session queued the burst while the ingestor was
                # away; it comes back to take it.
                await reconnected(burst + 1)
            if burst < 2:
                # The ingestor is still busy with the burst: restart under it.
                await asyncio.to_thread(broker.restart)
        await until_count(store, site, 15_000)
        assert ingest.metrics.connects._value.get() >= 3
    rows = influxdb.query_rows(influx_db, f"SELECT seq FROM vitals WHERE site = '{site}'")
    assert sorted(row["seq"] for row in rows) == list(range(15_000))


async def test_a_store_down_for_too_long_ends_the_run(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = new_site()
    settings = ingest_settings(
        mosquitto.url,
        store={"url": f"http://127.0.0.1:{free_port()}", "give_up_after_s": 1.0},
    )
    publisher = Publisher(mosquitto.host, mosquitto.port)
    async with InfluxStore(str(settings.store.url), "nowhere", timeout_s=1) as store:
        ingest = ingestor(settings, store)
        task = asyncio.ensure_future(ingest.run())
        await poll_until_async(
            lambda: asyncio.sleep(0, True if ingest.connected.is_set() else None),
            within=WITHIN,
            what="connected",
        )
        payload = batch_payload(site, "gw-00", range(5), device_ids("gw-00", 1))
        publisher.publish(topics.readings(site, "gw-00"), payload)
        await asyncio.to_thread(publisher.flush, WITHIN)
        with pytest.raises(StoreOutageError):
            await asyncio.wait_for(task, WITHIN)
    publisher.close()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match[1]) if match else 0.0


async def test_two_ingestor_processes_split_the_load(
    mosquitto: MosquittoServer, influxdb: InfluxDBServer, influx_db: str, tmp_path: Path
) -> None:
    site = new_site()
    group = f"g{uuid.uuid4().hex[:8]}"
    processes: list[tuple[IngestProcess, int]] = []
    for n in range(2):
        port = free_port()
        config = ingest_config(
            tmp_path / f"ingest-{n}.toml",
            {
                "mqtt": {
                    "url": mosquitto.url,
                    "client_id": f"ingest-{group}-{n}",
                    "share_group": group,
                    "session_expiry_s": 120,
                },
                "store": {"url": influxdb.url, "database": influx_db},
                "metrics": {"port": port},
            },
        )
        process = IngestProcess(config, tmp_path / f"ingest-{n}.log")
        process.start()
        processes.append((process, port))
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def scrape(port: int) -> str:
                return (await http.get(f"http://127.0.0.1:{port}/metrics")).text

            async def all_connected() -> bool | None:
                try:
                    texts = [await scrape(port) for _, port in processes]
                except httpx.TransportError:
                    return None
                connected = [_metric(t, "carewatch_ingest_mqtt_connected") for t in texts]
                return True if connected == [1.0, 1.0] else None

            await poll_until_async(all_connected, within=WITHIN, what="both connected", every=0.1)
            publisher = Publisher(mosquitto.host, mosquitto.port)
            for n in range(400):
                gateway = f"gw-0{n % 8}"
                first = n // 8 * 50
                payload = batch_payload(
                    site, gateway, range(first, first + 50), device_ids(gateway, 2)
                )
                publisher.publish(topics.readings(site, gateway), payload)
            await asyncio.to_thread(publisher.flush, WITHIN)
            publisher.close()
            async with InfluxStore(influxdb.url, influx_db) as store:
                await until_count(store, site, 20_000)
            shares = [
                _metric(await scrape(port), "carewatch_ingest_readings_stored_total")
                for _, port in processes
            ]
    finally:
        codes = [process.stop() for process, _ in processes]
    logs = "\n".join(process.log_text() for process, _ in processes)
    assert codes == [0, 0], logs
    assert sum(shares) == 20_000
    assert min(shares) > 2_000, shares  # both took a real part
    assert "ingest stopped" in logs


def test_sigterm_is_a_clean_exit(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    config = ingest_config(
        tmp_path / "ingest.toml",
        {
            "mqtt": {"url": mosquitto.url, "client_id": f"ingest-{uuid.uuid4().hex[:8]}"},
            "store": {"kind": "sqlite", "path": str(tmp_path / "v.sqlite3")},
            "metrics": {"enabled": False},
            "log": {"format": "json"},
        },
    )
    process = IngestProcess(config, tmp_path / "ingest.log")
    process.start()

    def connected() -> bool | None:
        return True if "mqtt connected" in process.log_text() else None

    from tests.harness import poll_until

    poll_until(connected, within=WITHIN, what="connected")
    assert process.stop() == 0
    lines = [json.loads(line) for line in process.log_text().splitlines()]
    assert [line["msg"] for line in lines][-1] == "ingest stopped"
    assert all(datetime.fromisoformat(line["time"]).tzinfo == UTC for line in lines)


def test_the_deployed_broker_config_loads(mosquitto_binary: Path, tmp_path: Path) -> None:
    """deploy/mosquitto/mosquitto.conf, with its paths pointed at a temporary folder and its
    TLS listener made plain (no certificates here), is accepted by the real Mosquitto."""
    import subprocess

    from tests.harness import mqtt_connack, poll_until

    source = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
    ports = (free_port(), free_port())
    (tmp_path / "passwd").write_text("")
    (tmp_path / "acl").write_text(
        (source.parent / "acl.example").read_text(encoding="utf-8"), encoding="utf-8"
    )
    text = source.read_text(encoding="utf-8")
    for old, new in (
        ("/var/lib/mosquitto/", f"{tmp_path}/"),
        ("/etc/mosquitto/passwd", str(tmp_path / "passwd")),
        ("/etc/mosquitto/acl", str(tmp_path / "acl")),
        ("listener 8883", f"listener {ports[0]} 127.0.0.1"),
        ("listener 1883 10.0.0.1", f"listener {ports[1]} 127.0.0.1"),
    ):
        text = text.replace(old, new)
    tls = ("cafile", "certfile", "keyfile", "tls_version")
    lines = [line for line in text.splitlines() if line.split(" ", 1)[0] not in tls]
    if os.geteuid() == 0:
        lines.append("user root")
    config = tmp_path / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as sink:
        broker = subprocess.Popen(
            [str(mosquitto_binary), "-c", str(config)], stdout=sink, stderr=subprocess.STDOUT
        )
    try:

        def answers() -> bool | None:
            assert broker.poll() is None, log.read_text()
            return True if mqtt_connack("127.0.0.1", ports[1], timeout=0.5) == 5 else None

        poll_until(answers, within=10, what="the deployed config answering")  # 5: no anonymous
    finally:
        broker.terminate()
        broker.wait(10)
    assert "Error" not in log.read_text()


async def test_the_registry_is_reloaded_while_running(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = new_site()
    devices = device_ids("gw-00", 2)
    path = site_file(tmp_path / "site.toml", site, {"r01": devices[:1]})
    settings = ingest_settings(
        mosquitto.url,
        store={"kind": "sqlite", "path": str(tmp_path / "v.sqlite3")},
        sites=[path],
        registry={"refresh_s": 0.2},
    )
    publisher = Publisher(mosquitto.host, mosquitto.port)
    topic = topics.readings(site, "gw-00")
    async with SqliteStore(tmp_path / "v.sqlite3") as store, running(ingestor(settings, store)):
        publisher.publish(topic, batch_payload(site, "gw-00", range(20), devices))
        await until_count(store, site, 20)
        assert await store.count(site, "unassigned") == 10
        site_file(path, site, {"r01": devices[:1], "r02": devices[1:]})

        async def reloaded() -> bool | None:
            publisher.publish(topic, batch_payload(site, "gw-00", range(20, 40), devices))
            return True if await store.count(site, "r02") else None

        await poll_until_async(reloaded, within=WITHIN, what="r02 known", every=0.3)
    publisher.close()


async def test_a_window_that_stays_full_is_let_go_and_everything_comes_again(
    mosquitto: MosquittoServer,
) -> None:
    """A broker that sends beyond Receive Maximum (Mosquitto 2.0.11 after the first PUBACK)
    is simulated by an inbox smaller than the Receive Maximum announced: the link stops
    reading the socket for lack of room, for half the keepalive at most, then gives the
    connection up; a new connection
    gets every unacknowledged message again, in order."""
    from cloud.ingest.inbox import Inbox
    from cloud.ingest.mqtt import MqttLink

    site = new_site()
    settings = ingest_settings(
        mosquitto.url, store={}, mqtt={"receive_maximum": 20, "keepalive_s": 6}
    )
    loop = asyncio.get_running_loop()
    inbox = Inbox(3)
    link = MqttLink(settings.mqtt, inbox, loop, topic_filter=topics.READINGS_FILTER)
    publisher = Publisher(mosquitto.host, mosquitto.port)
    topic = topics.readings(site, "gw-00")
    try:
        await link.connect()
        for n in range(10):
            publisher.publish(topic, str(n).encode())
        await asyncio.to_thread(publisher.flush, WITHIN)
        cause = await asyncio.wait_for(link.wait_lost(), 20)
        assert "window of 3 messages full for 3 s" in cause
        first = [inbox.get_nowait() for _ in range(3)]
        assert [d.payload for d in first if d is not None] == [b"0", b"1", b"2"]
    finally:
        await link.drop()
    inbox.purge(lambda _d: False)
    for _ in first:
        inbox.release()  # let go of them unacknowledged
    got: list[bytes] = []
    big = Inbox(20)
    link = MqttLink(settings.mqtt, big, loop, topic_filter=topics.READINGS_FILTER)
    try:
        await link.connect()
        while len(got) < 10:
            async with asyncio.timeout(20):
                await big.wait()
            while (delivery := big.get_nowait()) is not None:
                got.append(delivery.payload)
                big.release()
                link.ack(delivery)
    finally:
        await link.drop()
        publisher.close()
    assert got == [str(n).encode() for n in range(10)]
