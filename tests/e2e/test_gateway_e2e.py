"""The whole home path in separate processes: ``firmware_sim`` (residents as BLE peripherals on
Bumble virtual controllers, exposing a radio on an HCI TCP server) → ``python -m gateway`` on
the Bumble backend → a real Mosquitto.

Checked against the simulator's log of every payload it delivered over the air: each one,
decoded with ``vitals.gatt``, arrives on the broker as exactly those readings, and nothing
arrives that was not delivered. Faults: a device that goes out of range (disconnect with reason
0x08) comes back and is reconnected without restarting anything; malformed payloads are counted
in the gateway's status while the other devices keep flowing.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim.firmware import Simulation
from firmware_sim.peripheral import Delivery
from firmware_sim.site import load_site
from tests.harness import MosquittoServer, poll_until, poll_until_async
from tests.mqtt_collector import Collector, check_nothing_lost, collecting
from vitals.gatt import decode
from vitals.observations import observations
from vitals.wire import GatewayState, Reading

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
SPEED = 120.0
# Yesterday 07:15 UTC (07:15 in Europe/London in November): within half a minute of wall time
# at speed 120 the thermometer (07:30 +- 10 min) and the cuff (08:00 +- 10 min) measure, and the
# device clocks are in the past, as real ones are.
START = (datetime.now(UTC) - timedelta(days=1)).replace(hour=7, minute=15, second=0, microsecond=0)

Key = tuple[str, str, float, int | None]


def _key(device: str, metric: str, value: float, user: int | None) -> Key:
    return (device, metric, round(value, 6), user)


def expected_readings(deliveries: list[Delivery]) -> collections.Counter[Key]:
    """What the gateway must publish for these deliveries: their decoded observations (a
    payload that does not decode, or a value outside the metric's range, gives none)."""
    counter: collections.Counter[Key] = collections.Counter()
    for delivery in deliveries:
        try:
            measurement = decode(delivery.characteristic, delivery.payload)
        except ValueError:
            continue
        for obs in observations(measurement):
            if obs.metric.in_range(obs.value):
                counter[_key(delivery.device, obs.metric.value, obs.value, obs.user)] += 1
    return counter


def published_readings(readings: list[Reading]) -> collections.Counter[Key]:
    first: dict[int, Reading] = {}
    for reading in readings:
        first.setdefault(reading.seq, reading)
    return collections.Counter(
        _key(r.device, r.metric.value, r.value, r.user) for r in first.values()
    )


@dataclass
class Processes:
    site_file: Path
    sim: subprocess.Popen[bytes]
    gateway: subprocess.Popen[bytes] | None
    record: Path
    sim_log: Path
    gateway_log: Path

    def deliveries(self) -> list[Delivery]:
        lines = self.record.read_text(encoding="utf-8").splitlines() if self.record.exists() else []
        return [Delivery.from_json(json.loads(line)) for line in lines if line.strip()]

    def logs(self) -> str:
        def tail(path: Path) -> str:
            return path.read_text(errors="replace")[-3000:] if path.exists() else ""

        return f"--- simulator ---\n{tail(self.sim_log)}\n--- gateway ---\n{tail(self.gateway_log)}"

    def check_running(self) -> None:
        for process, name in ((self.sim, "simulator"), (self.gateway, "gateway")):
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{name} exited\n{self.logs()}")

    def hci_spec(self) -> str:
        def spec() -> str | None:
            self.check_running()
            for line in self.sim_log.read_text(errors="replace").splitlines():
                if line.startswith("hci: "):
                    return line.removeprefix("hci: ").strip()
            return None

        return poll_until(spec, within=30, what="the simulator's HCI transport")

    def start_gateway(self, folder: Path, broker: MosquittoServer, site: str, gateway: str) -> None:
        config = _gateway_config(
            folder, self.site_file, broker, self.hci_spec(), site=site, gateway=gateway
        )
        with self.gateway_log.open("wb") as log:
            self.gateway = subprocess.Popen(
                [sys.executable, "-m", "gateway", "--config", str(config)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )


def _stop(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(signum)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def _gateway_config(
    path: Path, site_file: Path, broker: MosquittoServer, hci: str, *, site: str, gateway: str
) -> Path:
    simulation = Simulation(load_site(site_file), seed=1, start=START)
    devices = "\n".join(
        f'[[ble.devices]]\nid = "{d.id}"\nkind = "{d.kind.value}"\naddress = "{d.address}"\n'
        f'resident = "{d.resident}"\n'
        for d in simulation.devices
    )
    config = path / "gateway.toml"
    config.write_text(
        f'site = "{site}"\ngateway = "{gateway}"\ntimezone = "Europe/London"\n\n'
        f'[mqtt]\nurl = "mqtt://{broker.host}:{broker.port}"\nbatch_interval_s = 0.2\n\n'
        f'[outbox]\npath = "{path / "outbox.sqlite3"}"\n\n'
        f"[status]\nheartbeat_s = 2\n\n"
        f'[ble]\nbackend = "bumble"\ntransport = "{hci}"\nbackoff_initial_s = 0.5\n'
        f"backoff_max_s = 4\nspot_idle_s = 1.5\n\n{devices}",
        encoding="utf-8",
    )
    return config


HomeFactory = Callable[..., Processes]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[HomeFactory]:
    """``home(site_file, *simulator_arguments)`` starts the simulator; everything started is
    stopped at teardown."""
    started: list[Processes] = []

    def start(site_file: Path = ROOT / "seeds" / "test-home.toml", *extra: str) -> Processes:
        record = tmp_path / "sent.jsonl"
        sim_log = tmp_path / "sim.log"
        with sim_log.open("wb") as log:
            sim = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "firmware_sim",
                    "--site",
                    str(site_file),
                    "--listen",
                    "tcp-server:127.0.0.1:0",
                    "--speed",
                    str(SPEED),
                    "--seed",
                    "1",
                    "--start",
                    START.isoformat(),
                    "--tick",
                    "0.25",
                    "--no-table",
                    "--no-site-scenarios",
                    "--record",
                    str(record),
                    *extra,
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        processes = Processes(site_file, sim, None, record, sim_log, tmp_path / "gateway.log")
        started.append(processes)
        return processes

    try:
        yield start
    finally:
        for processes in started:
            if processes.gateway is not None:
                _stop(processes.gateway)
            _stop(processes.sim)


def _ids() -> tuple[str, str]:
    token = uuid.uuid4().hex[:8]
    return f"e2e-{token}", f"gw-{token}"


async def _published_everything_delivered(
    processes: Processes, collector: Collector, within: float = 30
) -> tuple[collections.Counter[Key], collections.Counter[Key]]:
    async def complete() -> tuple[collections.Counter[Key], collections.Counter[Key]] | None:
        expected = expected_readings(processes.deliveries())
        published = published_readings(collector.readings)
        return (expected, published) if not expected - published else None

    try:
        return await poll_until_async(complete, within=within, what="every delivery published")
    except Exception:
        expected = expected_readings(processes.deliveries())
        published = published_readings(collector.readings)
        missing = expected - published
        by_device = collections.Counter(key[0] for key in missing.elements())
        raise AssertionError(
            f"{sum(missing.values())} of {sum(expected.values())} delivered readings not "
            f"published (by device {dict(by_device)}; published {sum(published.values())}), "
            f"e.g. {list(missing.items())[:5]}\n{processes.logs()}"
        ) from None


def _nothing_invented(
    expected: collections.Counter[Key], published: collections.Counter[Key], processes: Processes
) -> None:
    """Everything published was delivered, except the battery level the gateway READS on
    connecting (a read is not a notification, so it is not in the delivery log) and the
    gateway's own end-to-end probe (device = the gateway)."""
    extra = published - expected
    assert all(key[1] in ("battery_level", "probe") for key in extra), (
        list(extra.items())[:10],
        processes.logs(),
    )


async def test_every_delivered_payload_arrives_on_the_broker_exactly_as_decoded(
    home: HomeFactory, tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    processes = home()
    site, gateway = _ids()
    async with collecting(mosquitto, site, gateway) as collector:
        processes.start_gateway(tmp_path, mosquitto, site, gateway)

        # At most ~30 s of wall time: then the temperature and the blood pressure are in.
        async def cuff_delivered() -> bool | None:
            processes.check_running()
            return True if any(d.device == "r01-bp" for d in processes.deliveries()) else None

        await poll_until_async(cuff_delivered, within=90, what="the 08:00 blood pressure")
        # Stop the radio first: after that nothing new is delivered, and what was delivered
        # must all be published, and nothing else.
        assert _stop(processes.sim, signal.SIGINT) == 0, processes.logs()
        expected, published = await _published_everything_delivered(processes, collector)
        _nothing_invented(expected, published, processes)
        check_nothing_lost(collector.readings, {r.seq for r in collector.readings})

        devices = {d.device for d in processes.deliveries()}
        kinds = {"r01-hr", "r01-spo2", "r01-temp", "r01-bp", "r01-pendant", "r02-hr", "r03-hr"}
        assert kinds <= devices, (sorted(kinds - devices), processes.logs())
        bp = [r for r in collector.readings if r.device == "r01-bp"]
        assert {r.metric.value for r in bp} >= {"systolic_bp", "diastolic_bp"}
        assert all(r.gateway == gateway for r in collector.readings)

        online = await collector.wait_for_state(GatewayState.ONLINE)
        assert online.decode_errors == 0
        assert processes.gateway is not None
        assert _stop(processes.gateway) == 0, processes.logs()
        await collector.wait_for_state(GatewayState.OFFLINE)


MALFORMED_SITE = """
id = "fault-home"
name = "Fault Home"
timezone = "Europe/London"

[[residents]]
id = "r01"
name = "Fault Resident 01"
devices = [
    { id = "r01-hr", kind = "wearable", battery = 90, malformed_rate = 0.2 },
    { id = "r01-spo2", kind = "pulse_oximeter", battery = 90 },
]

[[residents]]
id = "r02"
name = "Fault Resident 02"
devices = [{ id = "r02-hr", kind = "wearable", battery = 90 }]
"""


@pytest.fixture
def fault_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("site") / "fault-home.toml"
    path.write_text(MALFORMED_SITE, encoding="utf-8")
    return path


async def test_out_of_range_device_returns_and_malformed_payloads_are_counted(
    home: HomeFactory, tmp_path: Path, mosquitto: MosquittoServer, fault_site: Path
) -> None:
    processes = home(fault_site, "--scenario", "out_of_range:r02/r02-hr@1m,duration=1m")
    site, gateway = _ids()
    async with collecting(mosquitto, site, gateway) as collector:
        processes.start_gateway(tmp_path, mosquitto, site, gateway)
        # At speed 120 r02-hr goes away after 0.5 s of wall time and comes back 0.5 s later; run
        # until it has delivered again well after its return (4 minutes simulated).
        back = START.timestamp() + 4 * 60

        async def returned() -> bool | None:
            processes.check_running()
            after = [
                d for d in processes.deliveries() if d.device == "r02-hr" and d.sim_time > back
            ]
            return True if len(after) >= 5 else None

        await poll_until_async(returned, within=90, what="r02-hr delivering after its return")

        async def counted() -> int | None:
            status = collector.statuses[-1] if collector.statuses else None
            return status.decode_errors if status and status.decode_errors else None

        errors = await poll_until_async(counted, within=20, what="decode errors in the status")
        assert errors > 0
        assert _stop(processes.sim, signal.SIGINT) == 0, processes.logs()
        expected, published = await _published_everything_delivered(processes, collector)
        _nothing_invented(expected, published, processes)
        # The others kept flowing while r01-hr sent bad payloads.
        by_device = collections.Counter(r.device for r in collector.readings)
        assert by_device["r01-spo2"] > 0
        assert by_device["r02-hr"] > 0
        log = processes.gateway_log.read_text(errors="replace")
        assert "r02-hr" in log
        assert "undecodable payload" in log


async def test_gateway_killed_with_sigkill_restarts_and_loses_nothing_it_had_stored(
    home: HomeFactory, tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """kill -9 mid-stream, then start again on the same outbox: every seq the outbox handed out
    arrives (duplicates only as identical readings), and of the payloads delivered over the air
    only those still between the radio and the outbox at the moment of the kill (the recorder
    commits every 50 ms) may be missing."""
    processes = home()
    site, gateway = _ids()
    async with collecting(mosquitto, site, gateway) as collector:
        processes.start_gateway(tmp_path, mosquitto, site, gateway)
        await collector.wait_for_count(300, within=60)
        first = processes.gateway
        assert first is not None
        first.kill()
        first.wait(timeout=10)
        killed_at = time.time()
        processes.gateway = None
        await collector.wait_for_state(GatewayState.OFFLINE)  # the last will
        before_restart = len(collector.seqs())
        processes.start_gateway(tmp_path, mosquitto, site, gateway)
        await collector.wait_for_state(GatewayState.ONLINE)
        await collector.wait_for_count(before_restart + 300, within=60)
        assert _stop(processes.sim, signal.SIGINT) == 0, processes.logs()

        in_flight = [d for d in processes.deliveries() if killed_at - 1.0 <= d.wall_time]
        settled = [d for d in processes.deliveries() if d.wall_time < killed_at - 1.0]

        async def all_settled_published() -> bool | None:
            missing = expected_readings(settled) - published_readings(collector.readings)
            return True if not missing else None

        await poll_until_async(all_settled_published, within=30, what="settled deliveries")
        seqs = collector.seqs()
        check_nothing_lost(collector.readings, set(range(1, max(seqs) + 1)))
        lost = expected_readings(processes.deliveries()) - published_readings(collector.readings)
        assert sum(lost.values()) <= sum(expected_readings(in_flight).values())
