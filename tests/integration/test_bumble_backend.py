"""The Bumble backend for bleak, against real Bumble peripherals on a virtual radio.

Each test builds a rig: a link (the air), peripherals (Bumble devices with GATT servers, each
on its own virtual controller) and the gateway's controller, exposed over a real HCI transport
(TCP on 127.0.0.1, a port picked by the kernel). The gateway side is a :class:`BumbleHost` on
that transport, and it is driven only through bleak's public API (``BleakScanner``,
``BleakClient``) and bleak-retry-connector's ``establish_connection``, with the backend classes
from :func:`make_backends` — exactly how the gateway takes BlueZ's in production.

Most rigs use the simulator's controller (:mod:`firmware_sim.controller`), whose LE Create
Connection Cancel works; one uses Bumble's stock controller, which ignores it, to show that a
connection attempt nobody can cancel still ends in bounded time with a bleak error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import cast

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak_retry_connector import establish_connection
from bumble import core, gatt, hci
from bumble.controller import Controller
from bumble.device import Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink, Transport
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from firmware_sim.controller import SimController, SimLink
from gateway.ble import (
    BumbleBackends,
    BumbleClient,
    BumbleConnectError,
    BumbleConnectTimeoutError,
    BumbleDeviceDetails,
    BumbleDisconnectedError,
    BumbleGATTError,
    BumbleHost,
    BumbleHostError,
    BumbleScanner,
    make_backends,
)
from tests.harness import LOOPBACK, poll_until_async
from vitals.gatt import uuid16_to_str

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

HEART_RATE_SERVICE = uuid16_to_str(0x180D)
HEART_RATE_MEASUREMENT = uuid16_to_str(0x2A37)
BATTERY_SERVICE = uuid16_to_str(0x180F)
BATTERY_LEVEL = uuid16_to_str(0x2A19)
CCCD = uuid16_to_str(0x2902)
USER_DESCRIPTION = uuid16_to_str(0x2901)
TEST_SERVICE = "7a3e0000-5c1d-4f6b-9a2e-3b8c4d5e6f70"
EVENT_CHARACTERISTIC = "7a3e0001-5c1d-4f6b-9a2e-3b8c4d5e6f70"  # indicate
CONTROL_CHARACTERISTIC = "7a3e0002-5c1d-4f6b-9a2e-3b8c4d5e6f70"  # write, write without response
SECURE_CHARACTERISTIC = "7a3e0003-5c1d-4f6b-9a2e-3b8c4d5e6f70"  # read needs encryption
SLOW_CHARACTERISTIC = "7a3e0004-5c1d-4f6b-9a2e-3b8c4d5e6f70"  # read answers when released
COMPANY_ID = 0x0FFE
ABSENT_ADDRESS = "C0:DE:00:00:00:99"
STEP = 5.0  # seconds allowed for any one thing to happen on the virtual radio

_P = gatt.Characteristic.Properties


# --- the rig -----------------------------------------------------------------------------


@dataclass
class Peripheral:
    """A Bumble GATT peripheral: heart rate (notify), battery (read, notify), and a test
    service with an indicate characteristic, a writable one with descriptors, one whose
    reads need encryption (which the gateway never sets up) and one whose reads are answered
    only once ``release`` is set."""

    name: str
    address: str
    device: Device
    controller: Controller
    heart_rate: gatt.Characteristic[bytes]
    battery: gatt.Characteristic[bytes]
    events: gatt.Characteristic[bytes]
    control: gatt.Characteristic[bytes]
    release: asyncio.Event
    slow_reads: list[bool]
    writes: list[bytes] = field(default_factory=list)
    subscriptions: dict[str, tuple[bool, bool]] = field(default_factory=dict)

    def connections(self) -> list[Connection]:
        return list(self.device.connections.values())

    async def notify_heart_rate(self, value: bytes) -> None:
        await self.device.notify_subscribers(self.heart_rate, value)

    async def indicate_event(self, value: bytes) -> None:
        await self.device.indicate_subscribers(self.events, value)

    async def disconnect_all(self, reason: int) -> None:
        for connection in self.connections():
            await connection.disconnect(reason=reason)


@dataclass
class Rig:
    link: LocalLink
    transport: str
    controller_class: type[Controller]
    central: Controller
    """The gateway's controller, at the far end of the HCI transport."""
    hci_server: Transport
    peripherals: list[Peripheral] = field(default_factory=list)

    def cut_hci(self) -> None:
        """Close the gateway's HCI connection from the controller's side."""
        connection = getattr(self.hci_server.sink, "transport", None)
        assert connection is not None, "the gateway is not connected"
        cast(asyncio.Transport, connection).close()

    async def add_peripheral(
        self, name: str, address: str, *, services: tuple[int, ...] = (0x180D, 0x180F)
    ) -> Peripheral:
        controller = self.controller_class(name, link=self.link)
        device = Device(
            name=name,
            address=hci.Address(address),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        peripheral = _build_gatt(name, address, device, controller)
        self.peripherals.append(peripheral)
        await device.power_on()
        advertising = core.AdvertisingData(
            [
                (core.AdvertisingData.FLAGS, bytes([0x06])),
                (core.AdvertisingData.COMPLETE_LOCAL_NAME, name.encode()),
                (
                    core.AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    b"".join(struct.pack("<H", s) for s in services),
                ),
                (
                    core.AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
                    struct.pack("<H", COMPANY_ID) + b"\x01\x02",
                ),
            ]
        )
        scan_response = core.AdvertisingData(
            [
                (core.AdvertisingData.TX_POWER_LEVEL, struct.pack("<b", -4)),
                (
                    core.AdvertisingData.SERVICE_DATA_16_BIT_UUID,
                    struct.pack("<H", 0x180F) + b"\x57",
                ),
            ]
        )
        await device.start_advertising(
            auto_restart=True,
            advertising_data=bytes(advertising),
            scan_response_data=bytes(scan_response),
            advertising_interval_min=20,
            advertising_interval_max=20,
        )
        return peripheral

    async def close(self) -> None:
        for peripheral in self.peripherals:
            peripheral.release.set()
            # Not power_off(): its flush reports the links disconnected, which restarts
            # advertising (auto_restart) on a host that is shutting down.
            with contextlib.suppress(core.BaseBumbleError, TimeoutError):
                async with asyncio.timeout(STEP):
                    if peripheral.device.is_advertising:
                        await peripheral.device.stop_advertising()
            self.link.remove_controller(peripheral.controller)


def _build_gatt(name: str, address: str, device: Device, controller: Controller) -> Peripheral:
    writes: list[bytes] = []
    release = asyncio.Event()
    slow_reads: list[bool] = []

    def on_write(_connection: Connection, value: bytes) -> None:
        writes.append(value)

    async def on_slow_read(_connection: Connection) -> bytes:
        slow_reads.append(True)
        await release.wait()
        return b"late"

    heart_rate = gatt.Characteristic[bytes](
        gatt.GATT_HEART_RATE_MEASUREMENT_CHARACTERISTIC,
        _P.NOTIFY,
        gatt.Characteristic.READABLE,
        b"\x00\x00",
    )
    battery = gatt.Characteristic[bytes](
        gatt.GATT_BATTERY_LEVEL_CHARACTERISTIC,
        _P.READ | _P.NOTIFY,
        gatt.Characteristic.READABLE,
        bytes([87]),
    )
    events = gatt.Characteristic[bytes](
        EVENT_CHARACTERISTIC, _P.INDICATE, gatt.Characteristic.READABLE, b""
    )
    control = gatt.Characteristic[bytes](
        CONTROL_CHARACTERISTIC,
        _P.WRITE | _P.WRITE_WITHOUT_RESPONSE | _P.EXTENDED_PROPERTIES,
        gatt.Characteristic.WRITEABLE,
        gatt.CharacteristicValue(write=on_write),
        descriptors=[
            gatt.Descriptor(
                gatt.GATT_CHARACTERISTIC_EXTENDED_PROPERTIES_DESCRIPTOR,
                gatt.Descriptor.READABLE,
                b"\x01\x00",  # reliable write
            ),
            gatt.Descriptor(
                gatt.GATT_CHARACTERISTIC_USER_DESCRIPTION_DESCRIPTOR,
                gatt.Descriptor.READABLE | gatt.Descriptor.WRITEABLE,
                b"control",
            ),
        ],
    )
    secure = gatt.Characteristic[bytes](
        SECURE_CHARACTERISTIC,
        _P.READ,
        gatt.Characteristic.READ_REQUIRES_ENCRYPTION,
        b"secret",
    )
    slow = gatt.Characteristic[bytes](
        SLOW_CHARACTERISTIC,
        _P.READ,
        gatt.Characteristic.READABLE,
        gatt.CharacteristicValue(read=on_slow_read),
    )
    device.add_services(
        [
            gatt.Service(gatt.GATT_HEART_RATE_SERVICE, [heart_rate]),
            gatt.Service(gatt.GATT_BATTERY_SERVICE, [battery]),
            gatt.Service(TEST_SERVICE, [events, control, secure, slow]),
        ]
    )
    peripheral = Peripheral(
        name,
        address,
        device,
        controller,
        heart_rate,
        battery,
        events,
        control,
        release,
        slow_reads,
        writes,
    )
    for characteristic, label in (
        (heart_rate, "heart_rate"),
        (battery, "battery"),
        (events, "events"),
    ):
        characteristic.on(
            gatt.Characteristic.EVENT_SUBSCRIPTION,
            _recorder(peripheral.subscriptions, label),
        )
    return peripheral


def _recorder(
    table: dict[str, tuple[bool, bool]], label: str
) -> Callable[[object, bool, bool], None]:
    def record(_bearer: object, notify: bool, indicate: bool) -> None:
        table[label] = (notify, indicate)

    return record


@contextlib.asynccontextmanager
async def rig(
    controller_class: type[Controller] = SimController, link_class: type[LocalLink] = SimLink
) -> AsyncIterator[Rig]:
    """A virtual radio with the gateway's controller served over HCI on a loopback port."""
    link = link_class()
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every HCI round trip waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
        server = await open_tcp_server_transport_with_socket(sock)  # owns the socket now
    except BaseException:
        sock.close()
        raise
    central = controller_class(
        "gateway", host_source=server.source, host_sink=server.sink, link=link
    )
    the_rig = Rig(link, f"tcp-client:{LOOPBACK}:{port}", controller_class, central, server)
    try:
        yield the_rig
    finally:
        await the_rig.close()
        link.remove_controller(central)
        await _close_server(server)


async def _close_server(server: Transport) -> None:
    listener = cast(asyncio.Server, getattr(server, "server"))  # noqa: B009 (untyped attribute)
    listener.close()
    await listener.wait_closed()
    connection = getattr(server.sink, "transport", None)
    if connection is not None:
        cast(asyncio.Transport, connection).close()
    await server.close()


@contextlib.asynccontextmanager
async def gateway(the_rig: Rig) -> AsyncIterator[tuple[BumbleHost, BumbleBackends]]:
    async with BumbleHost(the_rig.transport, cancel_timeout=1.0) as host:
        yield host, make_backends(host)


async def find(backends: BumbleBackends, name: str) -> BLEDevice:
    device = await BleakScanner.find_device_by_name(name, timeout=STEP, backend=backends.scanner)
    assert device is not None, f"{name} not found"
    return device


# --- scanning ----------------------------------------------------------------------------


async def test_scanner_finds_by_name_address_and_service_filter() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        await the_rig.add_peripheral("CW-BAT-2", "C0:DE:00:00:00:02", services=(0x180F,))

        by_name = await find(backends, "CW-HR-1")
        assert by_name.address == "C0:DE:00:00:00:01"
        assert isinstance(by_name.details, BumbleDeviceDetails)
        by_address = await BleakScanner.find_device_by_address(
            "c0:de:00:00:00:02", timeout=STEP, backend=backends.scanner
        )
        assert by_address is not None
        assert by_address.name == "CW-BAT-2"

        seen: dict[str, AdvertisementData] = {}

        def on_advertisement(device: BLEDevice, data: AdvertisementData) -> None:
            if data.tx_power is not None:  # the advertisement with its scan response
                seen[device.address] = data

        scanner = BleakScanner(on_advertisement, service_uuids=["180d"], backend=backends.scanner)
        assert scanner.backend_id == "BumbleScanner"
        async with scanner:
            await poll_until_async(
                _ready(lambda: "C0:DE:00:00:00:01" in seen), within=STEP, what="HR advert"
            )
            assert [d.address for d in scanner.discovered_devices] == ["C0:DE:00:00:00:01"]
        assert set(seen) == {"C0:DE:00:00:00:01"}  # the battery-only device is filtered out
        data = seen["C0:DE:00:00:00:01"]
        assert data.local_name == "CW-HR-1"
        assert data.service_uuids == [HEART_RATE_SERVICE, BATTERY_SERVICE]
        assert data.manufacturer_data == {COMPANY_ID: b"\x01\x02"}
        assert data.service_data == {BATTERY_SERVICE: b"\x57"}
        assert data.tx_power == -4
        assert -127 <= data.rssi <= 20


async def test_passive_scanning_and_two_scanners_at_once() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        passive: list[str] = []
        active: list[str] = []
        first = BleakScanner(
            lambda d, _a: passive.append(d.address),
            scanning_mode="passive",
            backend=backends.scanner,
        )
        second = BleakScanner(lambda d, _a: active.append(d.address), backend=backends.scanner)
        async with first:
            await poll_until_async(_ready(lambda: passive), within=STEP, what="passive advert")
            async with second:
                await poll_until_async(_ready(lambda: active), within=STEP, what="active advert")
            assert the_rig.central.le_scan_enable
            count = len(passive)
            await poll_until_async(
                _ready(lambda: len(passive) > count), within=STEP, what="scan survives the other"
            )
        assert not the_rig.central.le_scan_enable  # the last scanner out stopped the scan


# --- the client --------------------------------------------------------------------------


async def test_client_services_read_write_notify_indicate_disconnect() -> None:
    async with rig() as the_rig, gateway(the_rig) as (host, backends):
        peripheral = await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        device = await find(backends, "CW-HR-1")
        disconnected: list[BleakClient] = []
        client = BleakClient(device, disconnected.append, backend=backends.client)
        await client.connect()
        try:
            assert _connected(client)
            assert client.mtu_size == 517
            assert client.name == "CW-HR-1"
            services = {s.uuid for s in client.services}
            assert {HEART_RATE_SERVICE, BATTERY_SERVICE, TEST_SERVICE} <= services

            hrm = client.services.get_characteristic(HEART_RATE_MEASUREMENT)
            assert hrm is not None
            assert hrm.properties == ["notify"]
            assert hrm.service_uuid == HEART_RATE_SERVICE
            assert [d.uuid for d in hrm.descriptors] == [CCCD]
            assert hrm.max_write_without_response_size == 514
            control = client.services.get_characteristic(CONTROL_CHARACTERISTIC)
            assert control is not None
            assert set(control.properties) == {
                "write",
                "write-without-response",
                "extended-properties",
                "reliable-write",
            }
            description = control.get_descriptor(USER_DESCRIPTION)
            assert description is not None

            assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
            assert await client.read_gatt_char(BATTERY_LEVEL, use_cached=True) == bytearray([87])
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.read_gatt_char(SECURE_CHARACTERISTIC)
            assert isinstance(refused.value, BumbleGATTError)
            assert refused.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION

            await client.write_gatt_char(CONTROL_CHARACTERISTIC, b"\x01", response=True)
            await client.write_gatt_char(CONTROL_CHARACTERISTIC, bytearray(b"\x02"), response=False)
            await poll_until_async(
                _ready(lambda: len(peripheral.writes) == 2), within=STEP, what="writes"
            )
            assert peripheral.writes == [b"\x01", b"\x02"]
            assert await client.read_gatt_descriptor(description.handle) == bytearray(b"control")
            await client.write_gatt_descriptor(description, b"pump")
            assert await client.read_gatt_descriptor(description) == bytearray(b"pump")

            heart_rates: asyncio.Queue[tuple[str, bytearray]] = asyncio.Queue(maxsize=16)

            def on_heart_rate(sender: BleakGATTCharacteristic, data: bytearray) -> None:
                heart_rates.put_nowait((sender.uuid, data))

            await client.start_notify(HEART_RATE_MEASUREMENT, on_heart_rate)
            assert peripheral.subscriptions["heart_rate"] == (True, False)
            await peripheral.notify_heart_rate(b"\x00\x48")
            await peripheral.notify_heart_rate(b"\x00\x49")
            async with asyncio.timeout(STEP):
                assert await heart_rates.get() == (HEART_RATE_MEASUREMENT, bytearray(b"\x00\x48"))
                _sender, data = await heart_rates.get()
            assert type(data) is bytearray
            assert data == bytearray(b"\x00\x49")

            events: asyncio.Queue[bytearray] = asyncio.Queue(maxsize=16)

            async def on_event(_sender: BleakGATTCharacteristic, data: bytearray) -> None:
                events.put_nowait(data)

            await client.start_notify(EVENT_CHARACTERISTIC, on_event)
            assert peripheral.subscriptions["events"] == (False, True)
            async with asyncio.timeout(STEP):
                await peripheral.indicate_event(b"fall")  # returns once confirmed
                assert await events.get() == bytearray(b"fall")

            await client.stop_notify(HEART_RATE_MEASUREMENT)
            assert peripheral.subscriptions["heart_rate"] == (False, False)
            await peripheral.notify_heart_rate(b"\x00\x50")  # nobody subscribed: not sent
            await client.read_gatt_char(BATTERY_LEVEL)  # a round trip after the notify
            assert heart_rates.empty()
        finally:
            await client.disconnect()
        assert not _connected(client)
        assert disconnected == [client]
        assert host.last_disconnect_reason(device.address) is not None
        await poll_until_async(
            _ready(lambda: not peripheral.connections()), within=STEP, what="peripheral sees it"
        )
        with pytest.raises(BleakError):
            await client.read_gatt_char(BATTERY_LEVEL)


async def test_services_filter_bare_address_and_reconnect() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        client = BleakClient(
            "c0:de:00:00:00:01", services=["180f"], timeout=STEP, backend=backends.client
        )
        for _cycle in range(2):  # the same client connects again after a disconnection
            async with client:
                assert [s.uuid for s in client.services] == [BATTERY_SERVICE]
                assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
            assert not _connected(client)

        missing = BleakClient(ABSENT_ADDRESS, timeout=0.5, backend=backends.client)
        with pytest.raises(BleakDeviceNotFoundError):
            await missing.connect()


async def test_establish_connection_with_backend_or_bound_client_class() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        device = await find(backends, "CW-HR-1")

        client = await establish_connection(
            BleakClient, device, "hr-1", max_attempts=2, backend=backends.client
        )
        try:
            assert _connected(client)
            assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
        finally:
            await client.disconnect()

        bound = await establish_connection(backends.bleak_client, device, "hr-1", max_attempts=2)
        try:
            assert isinstance(bound, BleakClient)
            assert bound.backend_id == "BumbleClient"
            assert _connected(bound)
        finally:
            await bound.disconnect()


@pytest.mark.parametrize(
    "reason",
    [hci.HCI_CONNECTION_TIMEOUT_ERROR, hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR],
)
async def test_disconnected_callback_when_the_peripheral_disconnects(reason: int) -> None:
    async with rig() as the_rig, gateway(the_rig) as (host, backends):
        peripheral = await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        device = await find(backends, "CW-HR-1")
        gone = asyncio.Event()
        client = BleakClient(device, lambda _c: gone.set(), backend=backends.client)
        await client.connect()
        await client.start_notify(HEART_RATE_MEASUREMENT, lambda _s, _d: None)
        # A read is in flight when the link goes: it fails with the reason, not a hang.
        read = asyncio.create_task(client.read_gatt_char(SLOW_CHARACTERISTIC), name="slow-read")
        await poll_until_async(
            _ready(lambda: peripheral.slow_reads), within=STEP, what="read reached the server"
        )

        await peripheral.disconnect_all(reason)
        async with asyncio.timeout(STEP):
            await gone.wait()
            with pytest.raises(BumbleDisconnectedError) as lost:
                await read
        assert lost.value.reason == reason
        assert not _connected(client)
        assert host.last_disconnect_reason(device.address) == reason
        assert client._backend.disconnect_reason == reason  # type: ignore[attr-defined]
        with pytest.raises(BleakError):
            await client.read_gatt_char(BATTERY_LEVEL)

        # It advertises again (auto restart) and takes a new connection.
        await client.connect()
        try:
            assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
        finally:
            await client.disconnect()


async def test_a_link_lost_while_connecting_fails_the_connect_without_callback() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        peripheral = await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        device = await find(backends, "CW-HR-1")
        hang_ups: list[asyncio.Task[None]] = []

        def hang_up(connection: Connection) -> None:
            hang_ups.append(asyncio.create_task(connection.disconnect(), name="hang-up"))

        peripheral.device.on(Device.EVENT_CONNECTION, hang_up)
        called: list[BleakClient] = []
        client = BleakClient(device, called.append, timeout=STEP, backend=backends.client)
        with pytest.raises(BumbleDisconnectedError):
            await client.connect()
        assert not _connected(client)
        assert called == []
        async with asyncio.timeout(STEP):
            await asyncio.gather(*hang_ups)

        peripheral.device.remove_listener(Device.EVENT_CONNECTION, hang_up)
        async with client:
            assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])
        assert called == [client]


async def test_pair_and_unpair_are_not_supported() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        device = await find(backends, "CW-HR-1")
        async with BleakClient(device, backend=backends.client) as client:
            with pytest.raises(NotImplementedError, match="pairing is not supported"):
                await client.pair()
            with pytest.raises(NotImplementedError, match="unpairing"):
                await client.unpair()


# --- connection attempts that fail -------------------------------------------------------


def _absent(backends: BumbleBackends, timeout: float) -> BleakClient:
    ghost = BLEDevice(ABSENT_ADDRESS, None, BumbleDeviceDetails(hci.Address(ABSENT_ADDRESS)))
    return BleakClient(ghost, timeout=timeout, backend=backends.client)


async def test_connect_to_an_absent_device_times_out_then_a_real_one_connects() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        started = time.monotonic()
        with pytest.raises(BumbleConnectTimeoutError) as failed:
            await _absent(backends, 0.5).connect()
        assert time.monotonic() - started < 0.5 + 1.0 + 0.5
        assert isinstance(failed.value, BleakError)
        assert isinstance(failed.value, TimeoutError)  # as BlueZ's backend raises
        assert failed.value.cancel_confirmed
        assert the_rig.central.pending_le_connection is None

        # The withdrawn attempt left the controller free.
        device = await find(backends, "CW-HR-1")
        async with BleakClient(device, backend=backends.client) as client:
            assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])


async def test_cancelled_connect_withdraws_the_attempt() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        ghost = _absent(backends, 30.0)
        attempt = asyncio.create_task(ghost.connect(), name="connect-to-ghost")
        await poll_until_async(
            _ready(lambda: the_rig.central.pending_le_connection is not None),
            within=STEP,
            what="connection attempt reached the controller",
        )
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        assert not _connected(ghost)
        assert the_rig.central.pending_le_connection is None  # withdrawn, not abandoned

        device = await find(backends, "CW-HR-1")
        client = await establish_connection(
            BleakClient, device, "hr-1", max_attempts=1, backend=backends.client
        )
        await client.disconnect()


async def test_stock_controller_that_ignores_cancel_fails_in_bounded_time() -> None:
    """Bumble's stock controller answers LE Create Connection Cancel and keeps the attempt:
    the timeout is still a bleak error in bounded time, the cancel is reported unconfirmed,
    and the next attempt is refused at once (Command Disallowed) rather than hanging."""
    async with rig(Controller, LocalLink) as the_rig, gateway(the_rig) as (host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        device = await find(backends, "CW-HR-1")
        started = time.monotonic()
        with pytest.raises(BumbleConnectTimeoutError) as failed:
            await _absent(backends, 0.5).connect()
        assert not failed.value.cancel_confirmed
        assert time.monotonic() - started < 0.5 + 1.0 + 1.0
        assert the_rig.central.pending_le_connection is not None  # what the stock one does

        with pytest.raises(BumbleConnectError) as refused:
            async with asyncio.timeout(STEP):
                await BleakClient(device, timeout=STEP, backend=backends.client).connect()
        assert refused.value.status == hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR
        assert ABSENT_ADDRESS in str(refused.value)

        # When the device it was after shows up, the controller connects to it behind the
        # host's back; the host disconnects that link at once, and the controller is free.
        ghost = await the_rig.add_peripheral("CW-GHOST", ABSENT_ADDRESS)
        await poll_until_async(
            _ready(lambda: host.reaped_connections == 1), within=STEP, what="stale link reaped"
        )
        await poll_until_async(
            _ready(lambda: not ghost.connections()), within=STEP, what="ghost disconnected"
        )
        async with BleakClient(device, timeout=STEP, backend=backends.client) as client:
            assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray([87])


async def test_connects_to_several_devices_at_once_are_serialised() -> None:
    async with rig() as the_rig, gateway(the_rig) as (_host, backends):
        names = [f"CW-HR-{i}" for i in range(3)]
        for i, name in enumerate(names):
            await the_rig.add_peripheral(name, f"C0:DE:00:00:00:1{i}")
        devices = [await find(backends, name) for name in names]
        clients = [BleakClient(d, timeout=STEP, backend=backends.client) for d in devices]
        await asyncio.gather(*(c.connect() for c in clients))
        try:
            values = await asyncio.gather(*(c.read_gatt_char(BATTERY_LEVEL) for c in clients))
            assert values == [bytearray([87])] * 3
        finally:
            await asyncio.gather(*(c.disconnect() for c in clients))


# --- the host ----------------------------------------------------------------------------


async def test_host_errors_are_bleak_errors() -> None:
    with pytest.raises(BumbleHostError):
        async with BumbleHost("no-such-transport:x"):
            pass
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    with pytest.raises(BleakError, match="cannot open HCI transport"):
        async with BumbleHost(f"tcp-client:{LOOPBACK}:{port}"):
            pass
    with pytest.raises(BleakError, match="not bound to a host"):
        BleakScanner(backend=BumbleScanner)
    with pytest.raises(BleakError, match="not bound to a host"):
        BleakClient(ABSENT_ADDRESS, backend=BumbleClient)


def _connected(client: BleakClient) -> bool:
    """``client.is_connected``, read afresh (mypy would keep an earlier assert's narrowing)."""
    return client.is_connected


def _ready(check: Callable[[], object]) -> Callable[[], asyncio.Future[bool | None]]:
    """An awaitable check for :func:`poll_until_async` from a plain condition."""

    def run() -> asyncio.Future[bool | None]:
        future: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        future.set_result(True if check() else None)
        return future

    return run


async def test_closing_the_host_disconnects_its_clients() -> None:
    async with rig() as the_rig:
        peripheral = await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        gone: list[BleakClient] = []
        async with gateway(the_rig) as (host, backends):
            client = BleakClient(
                await find(backends, "CW-HR-1"), gone.append, backend=backends.client
            )
            await client.connect()
            scanner = BleakScanner(backend=backends.scanner)
            await scanner.start()  # left running: closing the host ends it too
        assert gone == [client]
        assert not _connected(client)
        assert not host.is_open
        await scanner.stop()
        await poll_until_async(
            _ready(lambda: not peripheral.connections()), within=STEP, what="peripheral sees it"
        )


async def test_losing_the_hci_transport_disconnects_clients() -> None:
    async with rig() as the_rig, gateway(the_rig) as (host, backends):
        await the_rig.add_peripheral("CW-HR-1", "C0:DE:00:00:00:01")
        gone = asyncio.Event()
        client = BleakClient(
            await find(backends, "CW-HR-1"), lambda _c: gone.set(), backend=backends.client
        )
        await client.connect()

        the_rig.cut_hci()
        async with asyncio.timeout(STEP):
            await gone.wait()
        assert not _connected(client)
        assert client._backend.disconnect_reason is None  # type: ignore[attr-defined]
        assert not host.is_open
        with pytest.raises(BumbleHostError, match="transport lost"):
            await BleakScanner(backend=backends.scanner).start()
        with pytest.raises(BumbleHostError, match="transport lost"):
            await client.connect()
