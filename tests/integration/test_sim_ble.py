"""The simulator on the air: each device kind seen by a real Bumble central, spot devices'
advertise-send-release cycle, radio range and death, the delivered-payload log, the HCI
transport used from another process, and 50 devices at their nominal rate.

Each test runs its own simulator on a site written here (UTC, schedules without jitter, no
motion artefacts), so what happens when is known in advance: ``START`` is 07:59:50 UTC and
spot devices measure at 08:00:00.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from firmware_sim.clock import SimClock
from firmware_sim.firmware import RadioState, Simulation
from firmware_sim.peripheral import Delivery, DeliveryMethod, PeripheralOptions
from firmware_sim.runtime import RuntimeOptions, SimulatorRuntime
from firmware_sim.scenarios import parse_scenario_arg
from firmware_sim.site import parse_site
from tests.sim_central import PeerSession, SimCentral, to_uuid
from vitals.devices import DeviceKind
from vitals.gatt import (
    BATTERY_LEVEL,
    HEART_RATE_MEASUREMENT,
    PENDANT_EVENT_CHARACTERISTIC,
    PENDANT_SERVICE,
    RESPIRATORY_RATE_CHARACTERISTIC,
    WEARABLE_EXTENSION_SERVICE,
    BatteryLevel,
    PendantEvent,
    PendantEventType,
    decode,
)
from vitals.metrics import Metric
from vitals.observations import observations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]
START = dt.datetime(2025, 3, 10, 7, 59, 50, tzinfo=dt.UTC)
REMOTE_USER_TERMINATED = 0x13
CONNECTION_TIMEOUT = 0x08

# Spec restated independently of the simulator: service -> {characteristic: properties}.
READ, NOTIFY, INDICATE = 0x02, 0x10, 0x20


def _u(value: int | uuid.UUID) -> uuid.UUID:
    return to_uuid(value)


EXPECTED_SERVICES: dict[uuid.UUID, dict[uuid.UUID, int]] = {
    _u(0x180D): {_u(0x2A37): NOTIFY, _u(0x2A38): READ},
    _u(0x180F): {_u(0x2A19): READ | NOTIFY},
    _u(0x1822): {_u(0x2A5E): INDICATE, _u(0x2A5F): NOTIFY, _u(0x2A60): READ},
    _u(0x1809): {_u(0x2A1C): INDICATE},
    _u(0x1810): {_u(0x2A35): INDICATE, _u(0x2A49): READ},
    _u(0x181D): {_u(0x2A9D): INDICATE, _u(0x2A9E): READ},
    _u(0x1808): {_u(0x2A18): NOTIFY, _u(0x2A51): READ},
    WEARABLE_EXTENSION_SERVICE: {RESPIRATORY_RATE_CHARACTERISTIC: NOTIFY},
    PENDANT_SERVICE: {PENDANT_EVENT_CHARACTERISTIC: INDICATE},
    _u(0x180A): {
        _u(0x2A29): READ,
        _u(0x2A24): READ,
        _u(0x2A25): READ,
        _u(0x2A27): READ,
        _u(0x2A26): READ,
    },
}

PLAUSIBLE: dict[Metric, tuple[float, float]] = {
    Metric.HEART_RATE: (40, 180),
    Metric.RR_INTERVAL: (0.3, 1.5),
    Metric.RESPIRATORY_RATE: (8, 35),
    Metric.SPO2: (85, 100),
    Metric.PULSE_RATE: (40, 180),
    Metric.BODY_TEMPERATURE: (35.0, 38.5),
    Metric.SYSTOLIC_BP: (90, 200),
    Metric.DIASTOLIC_BP: (40, 120),
    Metric.MEAN_ARTERIAL_PRESSURE: (55, 150),
    Metric.BODY_WEIGHT: (40, 120),
    Metric.BMI: (15, 40),
    Metric.BODY_HEIGHT: (1.4, 2.0),
    Metric.BLOOD_GLUCOSE: (3.0, 15.0),
    Metric.BATTERY_LEVEL: (0, 100),
    Metric.HELP_BUTTON: (1, 1),
    Metric.FALL: (1, 1),
}


def site_toml(
    devices: Sequence[str], *, residents: int = 1, schedules: dict[str, str] | None = None
) -> str:
    """A UTC site: ``residents`` residents r01.., each with ``devices`` (kind names), ids
    ``rNN-<kind>``, spot devices measuring at 08:00 (or ``schedules[kind]``, a TOML list),
    no jitter, no artefacts."""
    chosen = schedules or {}
    default = '["08:00"]'
    lines = [
        'id = "ble-test"',
        'name = "BLE test home"',
        'timezone = "UTC"',
        "[schedules]",
        'jitter = "0s"',
        *(
            f"{kind} = {chosen.get(kind, default)}"
            for kind in ("thermometer", "bp_cuff", "scale", "glucose_meter", "pulse_oximeter")
        ),
    ]
    for index in range(1, residents + 1):
        rid = f"r{index:02d}"
        entries = ", ".join(
            f'{{ id = "{rid}-{kind}", kind = "{kind}", artefacts_per_hour = 0 }}'
            for kind in devices
        )
        lines += ["[[residents]]", f'id = "{rid}"', "glucose = 6.0", f"devices = [{entries}]"]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def simulator(
    site: str,
    *,
    speed: float,
    scenarios: Sequence[str] = (),
    tick: float = 0.25,
    listen: str | None = None,
    record: Path | None = None,
    start: dt.datetime = START,
) -> AsyncIterator[SimulatorRuntime]:
    simulation = Simulation(
        parse_site(site),
        seed=7,
        start=start,
        scenarios=[parse_scenario_arg(text) for text in scenarios],
    )
    clock = SimClock(start, speed, time.monotonic)
    options = RuntimeOptions(
        tick=tick,
        listen=listen,
        record=record,
        peripheral=PeripheralOptions(advertising_interval=0.05, release_after=0.5),
    )
    async with SimulatorRuntime(simulation, clock, options) as runtime:
        yield runtime


def check_plausible(characteristic: uuid.UUID, payload: bytes) -> None:
    measurement = decode(characteristic, payload)
    found = observations(measurement)
    assert found or isinstance(measurement, PendantEvent), measurement
    for observation in found:
        low, high = PLAUSIBLE[observation.metric]
        assert low <= observation.value <= high, (observation, measurement)


def matches(session: PeerSession, deliveries: Sequence[Delivery]) -> bool:
    got = [(r.characteristic, r.payload) for r in session.received]
    return got[: len(deliveries)] == [(d.characteristic, d.payload) for d in deliveries]


async def poll(condition: object, *, within: float, every: float = 0.05) -> None:
    """Wait until ``condition()`` is true (polling with a deadline)."""
    assert callable(condition)
    async with asyncio.timeout(within):
        while True:  # the state of other objects: nothing to wait on but a deadline
            if condition():
                return
            await asyncio.sleep(every)


# -- each kind -----------------------------------------------------------------------------


async def check_services(session: PeerSession, kind: DeviceKind) -> None:
    services = await session.discover()
    for service in kind.info.services:
        assert service in services, (kind, service)
        for characteristic, properties in EXPECTED_SERVICES[service].items():
            assert characteristic in services[service], (kind, service, characteristic)
            assert session.properties[characteristic] == properties, (kind, characteristic)


@pytest.mark.timeout(60)
async def test_continuous_kinds_serve_services_values_battery_and_information() -> None:
    site = site_toml(["wearable", "pulse_oximeter", "pendant"])
    # At speed 60 a pendant's 5-minute battery heartbeat comes every 5 s; the help button is
    # pressed 2 s in.
    async with (
        simulator(site, speed=60, scenarios=["help_button:r01@2m"]) as runtime,
        SimCentral.on_link(runtime.link) as central,
    ):
        for device_id, kind in (
            ("r01-wearable", DeviceKind.WEARABLE),
            ("r01-pulse_oximeter", DeviceKind.PULSE_OXIMETER),
            ("r01-pendant", DeviceKind.PENDANT),
        ):
            firmware = runtime.simulation.device(device_id)
            advert = await central.find(name=firmware.name, within=5)
            assert advert.address == firmware.address
            assert kind.info.services[0] in advert.services
            async with central.connect(advert.address) as session:
                await check_services(session, kind)
                for characteristic in kind.info.subscribe:
                    await session.subscribe(characteristic)
                main = kind.info.subscribe[0]
                await session.wait_for(1 if kind is DeviceKind.PENDANT else 3, main, within=10)
                if kind is DeviceKind.PENDANT:
                    await session.wait_for(1, BATTERY_LEVEL, within=10)
                for item in session.received:
                    check_plausible(item.characteristic, item.payload)
                battery = decode(BATTERY_LEVEL, await session.read(BATTERY_LEVEL))
                assert isinstance(battery, BatteryLevel)
                assert abs(battery.percent - firmware.battery(runtime.clock.now())) <= 1
                manufacturer = await session.read(0x2A29)
                assert manufacturer.decode() == firmware.device_information["manufacturer_name"]
                serial = await session.read(0x2A25)
                assert serial.decode() == firmware.device_information["serial_number"]
                snapshot = runtime.deliveries.for_device(device_id)
                await poll(lambda s=session, d=snapshot: matches(s, d), within=5)
            if kind is DeviceKind.PENDANT:
                events = [
                    decode(PENDANT_EVENT_CHARACTERISTIC, p)
                    for p in session.payloads(PENDANT_EVENT_CHARACTERISTIC)
                ]
                assert [e.event for e in events if isinstance(e, PendantEvent)] == [
                    PendantEventType.HELP_BUTTON
                ]


@pytest.mark.timeout(60)
async def test_spot_devices_advertise_only_when_a_measurement_waits_send_it_and_release() -> None:
    kinds = ["thermometer", "bp_cuff", "scale", "glucose_meter"]
    # Speed 10 from 07:59:30: the 08:00 measurements come 3 s in; the thermometer measures at
    # 08:01 too, so two measurements wait for the central (indicated one by one, in order).
    site = site_toml(["wearable", *kinds], schedules={"thermometer": '["08:00", "08:01"]'})
    start = START - dt.timedelta(seconds=20)
    async with (
        simulator(site, speed=10, start=start) as runtime,
        SimCentral.on_link(runtime.link) as central,
    ):
        wearable = runtime.simulation.device("r01-wearable")
        await central.find(address=wearable.address, within=3)
        spot = {kind: runtime.simulation.device(f"r01-{kind}") for kind in kinds}
        # Before 08:00 nothing is pending: the spot devices are silent.
        assert runtime.clock.now() < START.timestamp() + 8
        assert not set(central.adverts) & {f.address for f in spot.values()}
        await poll(lambda: runtime.clock.now() > START.timestamp() + 72, within=12)
        for kind, firmware in spot.items():
            advert = await central.find(address=firmware.address, within=5)
            async with central.connect(advert.address) as session:
                await check_services(session, DeviceKind(kind))
                (characteristic,) = DeviceKind(kind).info.subscribe
                assert runtime.deliveries.for_device(firmware.id) == []
                await session.subscribe(characteristic)
                expected = 2 if kind == "thermometer" else 1
                received = await session.wait_for(expected, characteristic, within=5)
                for item in received:
                    check_plausible(item.characteristic, item.payload)
                # The device lets go of the central once it has sent everything.
                assert await session.wait_disconnected(within=5) == REMOTE_USER_TERMINATED
            delivered = runtime.deliveries.for_device(firmware.id)
            assert [(d.characteristic, d.payload) for d in delivered] == [
                (r.characteristic, r.payload) for r in session.received
            ]
            indicated = DeviceKind(kind) is not DeviceKind.GLUCOSE_METER
            method = DeliveryMethod.INDICATE if indicated else DeliveryMethod.NOTIFY
            assert {d.method for d in delivered} == {method}
            assert [d.measured_at for d in delivered] == sorted(d.measured_at for d in delivered)
            assert runtime.peripheral(firmware.id).status().pending == 0
            assert not await central.advertising(firmware.address, within=0.4)


# -- range and death ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_out_of_range_disconnects_with_timeout_silences_and_comes_back() -> None:
    site = site_toml(["wearable", "pulse_oximeter"])
    # Speed 10: the wearable is out of range from 3 s to 7 s; the oximeter's battery dies 3 s
    # in (20 s of drain from 10 s).
    scenarios = [
        "out_of_range:r01/r01-wearable@30s,duration=40s",
        "battery_death:r01/r01-pulse_oximeter@10s,drain=20s",
    ]
    async with (
        simulator(site, speed=10, scenarios=scenarios) as runtime,
        SimCentral.on_link(runtime.link) as central,
    ):
        wearable = runtime.simulation.device("r01-wearable")
        oximeter = runtime.simulation.device("r01-pulse_oximeter")
        await central.find(address=wearable.address, within=3)
        await central.find(address=oximeter.address, within=3)
        await central.stop_scanning()
        async with (
            central.connect(wearable.address) as first,
            central.connect(oximeter.address) as doomed,
        ):
            await first.subscribe(HEART_RATE_MEASUREMENT)
            await doomed.subscribe(0x2A5F)
            await first.wait_for(2, HEART_RATE_MEASUREMENT, within=5)
            assert await first.wait_disconnected(within=8) == CONNECTION_TIMEOUT
            assert await doomed.wait_disconnected(within=8) == CONNECTION_TIMEOUT
            assert runtime.clock.now() < START.timestamp() + 65
            central.forget_adverts()
            assert not await central.advertising(wearable.address, within=1.0)
            assert runtime.clock.now() < START.timestamp() + 65
        # Back in range at 70 s of simulated time: it advertises, and reconnects.
        await central.find(address=wearable.address, within=10)
        await central.stop_scanning()
        async with central.connect(wearable.address) as second:
            await second.subscribe(HEART_RATE_MEASUREMENT)
            await second.wait_for(2, HEART_RATE_MEASUREMENT, within=5)
        # The dead oximeter never advertises again.
        assert runtime.peripheral(oximeter.id).status().radio is RadioState.DEAD
        assert not await central.advertising(oximeter.address, within=1.5)
        deliveries = runtime.deliveries.for_device(wearable.id)
        assert {d.central for d in deliveries} == {"F0:F0:F0:F0:F0:F0"}


# -- the HCI transport, from another process ----------------------------------------------------


async def _probe(spec: str, name: str, count: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.sim_central",
        "--transport",
        spec,
        "--name",
        name,
        "--subscribe",
        "2a37",
        "--count",
        str(count),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def _lines(process: asyncio.subprocess.Process) -> list[dict[str, object]]:
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


@pytest.mark.timeout(90)
async def test_a_host_in_another_process_uses_the_hci_transport() -> None:
    site = site_toml(["wearable", "pendant"], residents=2)
    async with simulator(site, speed=1, listen="tcp-server:127.0.0.1:0") as runtime:
        spec = runtime.hci_client_spec
        assert spec is not None
        assert spec.startswith("tcp-client:127.0.0.1:")
        wearable = runtime.simulation.device("r02-wearable")

        lines = await _lines(await _probe(spec, wearable.name, 3))
        advert = next(line for line in lines if line["event"] == "advert")
        assert advert["address"] == wearable.address
        seen = advert["seen"]
        assert isinstance(seen, list)
        # What else was seen by then depends on advertising timing (a device may not have
        # advertised yet when the probe's target did): only the target is certain.
        assert wearable.address in seen
        assert set(seen) <= {d.address for d in runtime.simulation.devices}
        received = [bytes.fromhex(str(x["payload"])) for x in lines if x["event"] == "received"]
        assert len(received) >= 3
        for payload in received:
            check_plausible(to_uuid(0x2A37), payload)
        delivered = [
            d.payload
            for d in runtime.deliveries.for_device(wearable.id)
            if d.characteristic == to_uuid(0x2A37)
        ]
        assert delivered[: len(received)] == received
        assert lines[-1]["event"] == "done"

        # A host that dies without disconnecting: the controller forgets its links when the
        # socket closes, so the device advertises again and the next host gets it.
        crashed = await _probe(spec, wearable.name, 1000)
        assert crashed.stdout is not None
        async with asyncio.timeout(20):
            while True:
                line = await crashed.stdout.readline()
                assert line, "the probe ended before it received anything"
                if b'"received"' in line:
                    break
        crashed.send_signal(signal.SIGKILL)
        await crashed.wait()
        lines = await _lines(await _probe(spec, wearable.name, 2))
        assert sum(1 for line in lines if line["event"] == "received") >= 2
        hci_server = runtime.hci_server
        assert hci_server is not None
        assert hci_server.hosts_served == 3


# -- 50 devices --------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_fifty_wearables_notify_at_their_nominal_rate(
    record_property: Callable[[str, object], None],
) -> None:
    count, window = 50, 15.0
    site = site_toml(["wearable"], residents=count)
    async with (
        simulator(site, speed=1, tick=0.25) as runtime,
        SimCentral.on_link(runtime.link) as central,
        contextlib.AsyncExitStack() as stack,
    ):
        sessions: dict[str, PeerSession] = {}
        addresses = {f.address: f.id for f in runtime.simulation.devices}
        await central.start_scanning()
        await poll(lambda: set(addresses) <= set(central.adverts), within=20)
        await central.stop_scanning()
        for address, device_id in addresses.items():
            session = await stack.enter_async_context(central.connect(address))
            await session.discover()
            await session.subscribe(HEART_RATE_MEASUREMENT)
            sessions[device_id] = session
        began = time.monotonic()
        await asyncio.sleep(window)  # the measurement window itself, not a wait for a condition
        ended = time.monotonic()
        rates = {
            device_id: sum(1 for r in s.received if began <= r.monotonic < ended) / (ended - began)
            for device_id, s in sessions.items()
        }
        for device_id, session in sessions.items():
            snapshot = runtime.deliveries.for_device(device_id)
            await poll(lambda s=session, d=snapshot: matches(s, d), within=5)
    worst, mean = min(rates.values()), sum(rates.values()) / len(rates)
    record_property("worst_rate_hz", round(worst, 3))
    record_property("mean_rate_hz", round(mean, 3))
    print(f"\n{count} wearables over {window:.0f} s: worst {worst:.3f} Hz, mean {mean:.3f} Hz")
    assert worst >= 0.9, rates
    assert math.isclose(mean, 1.0, abs_tol=0.1), mean
