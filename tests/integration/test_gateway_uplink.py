"""The uplink against a real Mosquitto: delivery in order, delete after PUBACK only, the
retained status and last will, broker outages, kill -9 of the gateway, a full outbox.

What arrives is collected by a subscriber with a persistent session, so it misses nothing
while the broker restarts. "Nothing lost" is checked on seq: every seq the outbox handed out
arrives at least once, a seq that arrives twice is the same reading, and the first arrivals of
each device are in seq order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from gateway.health import utc_now
from gateway.outbox import AsyncOutbox, Entry, Outbox, Retention, retention_of
from gateway.recorder import Recorder
from gateway.settings import MqttSettings, RecorderSettings, StatusSettings
from gateway.uplink import Uplink
from tests.harness import (
    MosquittoFactory,
    MosquittoOptions,
    MosquittoServer,
    free_port,
    poll_until,
    poll_until_async,
    require_binary,
    write_password_file,
)
from tests.mqtt_collector import check_nothing_lost, collecting
from vitals import topics
from vitals.metrics import Metric
from vitals.observations import Observation
from vitals.wire import GatewayState, Quality, Status, parse_message

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

WAIT = 20.0
ROOT = Path(__file__).resolve().parents[2]


def _ids() -> tuple[str, str]:
    token = uuid.uuid4().hex[:10]
    return f"site-{token}", f"gw-{token}"


def _mqtt(broker: MosquittoServer, **changes: object) -> MqttSettings:
    base: dict[str, object] = {
        "url": broker.url,
        "batch_size": 200,
        "batch_interval_s": 0.1,
        "max_in_flight": 4,
        "ack_timeout_s": 5.0,
        "connect_timeout_s": 2.0,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "keepalive_s": 5,
    }
    return MqttSettings.model_validate(base | changes)


def hr(value: float, device: str = "wear-1", at: datetime | None = None) -> Entry:
    moment = at or utc_now()
    return Entry(device, Metric.HEART_RATE, value, moment, moment, retention=Retention.CONTINUOUS)


def make(metric: Metric, value: float, device: str) -> Entry:
    moment = utc_now()
    return Entry(device, metric, value, moment, moment, retention=retention_of(metric))


async def eventually(condition: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Poll ``condition`` until it holds (the harness's poll, for a plain predicate)."""

    async def check() -> bool | None:
        return True if condition() else None

    await poll_until_async(check, within=within, what=what)


async def latest_retained_status(broker: MosquittoServer, site: str, gateway: str) -> Status:
    async with (
        asyncio.timeout(WAIT),
        aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client,
    ):
        await client.subscribe(topics.status(site, gateway), qos=1)
        message = await anext(client.messages)
    assert message.retain
    assert isinstance(message.payload, bytes)
    return parse_message(Status, message.payload)


# -- in-process gateway -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def uplink_running(uplink: Uplink) -> AsyncIterator[Uplink]:
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(uplink.run(), name="uplink")
        yield uplink
        task.cancel()


async def test_readings_arrive_as_valid_batches_in_seq_order(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site, gateway = _ids()
    async with (
        collecting(mosquitto, site, gateway) as collector,
        AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=100_000) as outbox,
    ):
        uplink = Uplink(
            site=site, gateway=gateway, outbox=outbox, mqtt=_mqtt(mosquitto, batch_size=150)
        )
        async with uplink_running(uplink):
            online = await collector.wait_for_state(GatewayState.ONLINE)
            for chunk in range(10):
                await outbox.append([hr(60.0 + v) for v in range(chunk, chunk + 100)])
            await collector.wait_for_seqs(1000)

            async def emptied() -> bool | None:
                return True if outbox.depth == 0 else None

            await poll_until_async(emptied, within=WAIT, what="outbox emptied")
            retained = await latest_retained_status(mosquitto, site, gateway)
        offline = await collector.wait_for_state(GatewayState.OFFLINE)
    assert [reading.seq for reading in collector.readings] == list(range(1, 1001))
    assert all(len(batch.readings) <= 150 for batch in collector.batches)
    assert all(batch.site == site and batch.gateway == gateway for batch in collector.batches)
    assert all(Quality.LATE not in reading.flags for reading in collector.readings)
    assert online.versions["carewatch"]
    assert retained.state is GatewayState.ONLINE
    assert offline.time is not None  # the clean goodbye, not the will
    assert uplink.stats.readings_sent == 1000
    final = await latest_retained_status(mosquitto, site, gateway)
    assert final.state is GatewayState.OFFLINE


async def test_a_refused_publish_stays_in_the_outbox_until_the_broker_accepts_it(
    fresh_mosquitto: MosquittoFactory, tmp_path: Path
) -> None:
    site, gateway = _ids()
    passwords = write_password_file(tmp_path / "passwd", {"gw": "gw-secret", "reader": "r-secret"})
    acl = tmp_path / "acl"
    status_only = (
        f"user gw\ntopic write {topics.status(site, gateway)}\nuser reader\ntopic read #\n"
    )
    acl.write_text(status_only, encoding="utf-8")
    broker = fresh_mosquitto(
        MosquittoOptions(allow_anonymous=False, password_file=passwords, acl_file=acl)
    )
    mqtt = _mqtt(broker, username="gw", password="gw-secret")
    async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=1000) as outbox:
        await outbox.append([hr(70.0 + v) for v in range(20)])
        uplink = Uplink(site=site, gateway=gateway, outbox=outbox, mqtt=mqtt)
        async with uplink_running(uplink):

            async def refused_twice() -> bool | None:
                return True if uplink.stats.refused >= 2 else None

            await poll_until_async(refused_twice, within=WAIT, what="PUBACK 0x87 twice")
            assert outbox.depth == 20  # refused: nothing deleted
            assert uplink.stats.readings_sent == 0
            acl.write_text(status_only + f"user gw\ntopic write {topics.readings(site, gateway)}\n")
            await asyncio.to_thread(broker.restart)

            async def delivered() -> bool | None:
                return True if outbox.depth == 0 else None

            await poll_until_async(delivered, within=WAIT, what="delivered once allowed")
    assert uplink.stats.readings_sent == 20


async def test_broker_outages_lose_nothing_over_two_reconnect_cycles(
    fresh_mosquitto: MosquittoFactory, tmp_path: Path
) -> None:
    site, gateway = _ids()
    broker = fresh_mosquitto()
    async with (
        collecting(broker, site, gateway) as collector,
        AsyncOutbox.open(
            tmp_path / "outbox.sqlite3", max_rows=100_000, late_after=timedelta(seconds=0.5)
        ) as outbox,
    ):
        recorder = Recorder(
            gateway=gateway, sink=outbox, settings=RecorderSettings(flush_interval_s=0.02)
        )
        uplink = Uplink(
            site=site, gateway=gateway, outbox=outbox, mqtt=_mqtt(broker), health=recorder
        )
        produced = 0

        async def produce() -> None:
            nonlocal produced
            while True:
                for device in ("wear-1", "wear-2", "wear-3"):
                    recorder.offer(
                        device, Observation(Metric.HEART_RATE, 60.0 + produced % 50), utc_now()
                    )
                    produced += 1
                await asyncio.sleep(0.005)

        async with asyncio.TaskGroup() as tasks:
            running = [
                tasks.create_task(recorder.run(), name="recorder"),
                tasks.create_task(uplink.run(), name="uplink"),
            ]
            producer = tasks.create_task(produce(), name="producer")

            async def outage(number: int) -> None:
                await collector.wait_for_count(len(collector.seqs()) + 100)
                await asyncio.to_thread(broker.stop)
                before = outbox.depth
                await eventually(
                    lambda: outbox.depth >= before + 300, f"readings pile up in outage {number}"
                )
                assert not uplink.stats.connected
                await asyncio.to_thread(broker.start)
                await collector.wait_for_count(len(collector.seqs()) + 300)

            await outage(0)
            await outage(1)
            producer.cancel()
            await eventually(
                lambda: recorder.queued == 0 and outbox.depth == 0, "everything acknowledged"
            )
            await collector.wait_for_seqs(outbox.last_seq)
            for task in running:
                task.cancel()
    assert uplink.stats.connects >= 3
    assert collector.connects >= 3
    assert recorder.stats.recorded == outbox.last_seq
    check_nothing_lost(collector.readings, set(range(1, outbox.last_seq + 1)))
    late = [reading for reading in collector.readings if Quality.LATE in reading.flags]
    assert late, "readings that waited out the outages are flagged late"
    assert Quality.LATE not in collector.readings[0].flags


async def test_full_outbox_during_an_outage_keeps_events_and_spot_readings(
    fresh_mosquitto: MosquittoFactory, tmp_path: Path
) -> None:
    site, gateway = _ids()
    broker = fresh_mosquitto()
    async with collecting(broker, site, gateway) as collector:
        await asyncio.to_thread(broker.stop)
        async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=100) as outbox:
            for n in range(15):
                await outbox.append([hr(60.0 + v, f"wear-{v % 2}") for v in range(10)])
                if n % 3 == 0:
                    await outbox.append([make(Metric.FALL, 1.0, "pendant-1")])
                    await outbox.append([make(Metric.BODY_TEMPERATURE, 37.2, "thermo-1")])
            stats = outbox.stats()
            assert stats.depth == 100
            assert stats.dropped == {
                Retention.CONTINUOUS: 60,
                Retention.SPOT: 0,
                Retention.EVENT: 0,
            }
            uplink = Uplink(
                site=site,
                gateway=gateway,
                outbox=outbox,
                mqtt=_mqtt(broker),
                status=StatusSettings(heartbeat_s=60),
            )
            async with uplink_running(uplink):
                await asyncio.sleep(0.3)  # the uplink tries, and fails, while the broker is down
                await asyncio.to_thread(broker.start)
                await collector.wait_for_count(100)
                online = await collector.wait_for_state(GatewayState.ONLINE)
    metrics = [reading.metric for reading in collector.readings]
    assert metrics.count(Metric.FALL) == 5
    assert metrics.count(Metric.BODY_TEMPERATURE) == 5
    assert metrics.count(Metric.HEART_RATE) == 90
    assert online.dropped == 60
    hr_seqs = [r.seq for r in collector.readings if r.metric is Metric.HEART_RATE]
    assert hr_seqs == sorted(hr_seqs)
    all_hr: list[int] = []  # the heart-rate seqs as appended: 10 per round, then 2 others
    seq = 1
    for n in range(15):
        all_hr += range(seq, seq + 10)
        seq += 10 + (2 if n % 3 == 0 else 0)
    assert hr_seqs == all_hr[-90:]  # the oldest 60 went, the newest stayed


# -- a gateway in its own process -----------------------------------------------------------


@dataclass
class Driver:
    """``python -m tests.gateway_driver`` with its config, events file and log."""

    config: Path
    events: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, *, count: int, rate: float) -> None:
        self.events.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.gateway_driver",
                    str(self.config),
                    f"--count={count}",
                    f"--rate={rate}",
                    f"--events={self.events}",
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if not k.startswith("CAREWATCH_")},
            )

    def event(self, name: str) -> dict[str, object] | None:
        if self.process is not None and self.process.poll() not in (None, -signal.SIGKILL, 0):
            raise AssertionError(f"driver exited {self.process.returncode}: {self.log_tail()}")
        if not self.events.exists():
            return None
        for line in self.events.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("event") == name:
                return dict(record)
        return None

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=WAIT)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])


@pytest.fixture
def driver(tmp_path: Path, mosquitto: MosquittoServer) -> Iterator[Driver]:
    site, gateway = _ids()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
site = "{site}"
gateway = "{gateway}"
timezone = "Europe/Berlin"

[mqtt]
url = "{mosquitto.url}"
batch_size = 100
batch_interval_s = 0.05
max_in_flight = 4
ack_timeout_s = 5
connect_timeout_s = 2
reconnect_min_s = 0.05
reconnect_max_s = 0.5
keepalive_s = 5

[outbox]
path = "{tmp_path / "outbox.sqlite3"}"
max_rows = 100000

[recorder]
flush_interval_s = 0.02
""",
        encoding="utf-8",
    )
    made = Driver(config, tmp_path / "events.jsonl", tmp_path / "driver.log")
    yield made
    if made.process is not None and made.process.poll() is None:
        made.process.kill()
        made.process.wait(timeout=WAIT)


def _site_gateway(driver: Driver) -> tuple[str, str]:
    text = driver.config.read_text(encoding="utf-8")
    values = dict(
        line.split(" = ", 1) for line in text.splitlines() if line.startswith(("site", "gateway"))
    )
    return values["site"].strip('"'), values["gateway"].strip('"')


async def test_last_will_says_offline_when_the_gateway_is_killed(
    mosquitto: MosquittoServer, driver: Driver
) -> None:
    site, gateway = _site_gateway(driver)
    async with collecting(mosquitto, site, gateway) as collector:
        driver.start(count=50, rate=500)
        await collector.wait_for_state(GatewayState.ONLINE)
        await collector.wait_for_seqs(50)
        assert driver.stop(signal.SIGKILL) == -signal.SIGKILL
        will = await collector.wait_for_state(GatewayState.OFFLINE)
    assert will.time is None  # the will written at connect time, not a goodbye
    retained = await latest_retained_status(mosquitto, site, gateway)
    assert retained.state is GatewayState.OFFLINE


async def test_kill_9_mid_stream_and_restart_loses_nothing(
    mosquitto: MosquittoServer, driver: Driver, tmp_path: Path
) -> None:
    site, gateway = _site_gateway(driver)
    async with collecting(mosquitto, site, gateway) as collector:
        driver.start(count=6000, rate=3000)
        await collector.wait_for_count(600)
        assert driver.stop(signal.SIGKILL) == -signal.SIGKILL
        assert driver.event("produced") is None  # killed mid-stream
        driver.start(count=1000, rate=2000)
        drained = await asyncio.to_thread(
            poll_until, lambda: driver.event("drained"), within=WAIT, what="driver drained"
        )
        assert driver.stop() == 0
        last_seq = drained["last_seq"]
        assert isinstance(last_seq, int)
        await collector.wait_for_seqs(last_seq)
    with Outbox(tmp_path / "outbox.sqlite3", max_rows=100_000) as outbox:
        assert outbox.depth == 0
        assert outbox.next_seq == last_seq + 1
    assert last_seq > 1000 + 600  # both runs' readings
    check_nothing_lost(collector.readings, set(range(1, last_seq + 1)))


# -- TLS ------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    openssl = require_binary("openssl", debian_package="openssl")
    subprocess.run([str(openssl), *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _certificates(folder: Path) -> None:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate (EC P-256)."""
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=CareWatch test {ca}", cwd=folder)  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=gw-tls")):
        _openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                 cwd=folder)  # fmt: skip
        extra = ("-extfile", "server.ext") if name == "server" else ()
        sign = ("-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2")
        _openssl("x509", "-req", "-in", f"{name}.csr", *sign, "-out", f"{name}.pem", *extra,
                 cwd=folder)  # fmt: skip


async def test_tls_with_client_certificates(
    fresh_mosquitto: MosquittoFactory, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    await asyncio.to_thread(_certificates, certs)
    tls_port = free_port()
    broker = fresh_mosquitto(
        MosquittoOptions(
            extra_config=(
                f"listener {tls_port} 127.0.0.1",
                f"cafile {certs / 'ca.pem'}",
                f"certfile {certs / 'server.pem'}",
                f"keyfile {certs / 'server.key'}",
                "require_certificate true",
            )
        )
    )
    site, gateway = _ids()

    def tls(ca: str) -> MqttSettings:
        return _mqtt(
            broker,
            url=f"mqtts://127.0.0.1:{tls_port}",
            ca_file=certs / ca,
            cert_file=certs / "client.pem",
            key_file=certs / "client.key",
        )

    async with (
        collecting(broker, site, gateway) as collector,
        AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=1000) as outbox,
    ):
        await outbox.append([hr(70.0 + v) for v in range(10)])
        untrusted = Uplink(site=site, gateway=gateway, outbox=outbox, mqtt=tls("other-ca.pem"))
        async with uplink_running(untrusted):
            await eventually(lambda: untrusted.stats.connection_failures >= 2, "TLS refused")
        assert outbox.depth == 10
        assert untrusted.stats.connects == 0
        trusted = Uplink(site=site, gateway=gateway, outbox=outbox, mqtt=tls("ca.pem"))
        async with uplink_running(trusted):
            await collector.wait_for_seqs(10)
            await eventually(lambda: outbox.depth == 0, "acknowledged over TLS")
    assert trusted.stats.connects == 1
