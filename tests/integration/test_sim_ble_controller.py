"""The simulator's fixes to Bumble's virtual controller (``firmware_sim.controller``), each
shown failing on the stock controller first where the stock behaviour is the bug."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from bumble import core, hci
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from firmware_sim.controller import HciServer, HciServerError, SimController, SimLink
from firmware_sim.peripheral import advertising_payloads
from tests.sim_central import SimCentral, to_uuid
from vitals.gatt import PENDANT_SERVICE, WEARABLE_EXTENSION_SERVICE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

CENTRAL = "F0:F0:F0:F0:F0:F0"
PERIPHERAL = "C4:00:00:00:00:01"
NOBODY = "C4:00:00:00:00:99"


async def _device(controller: Controller, address: str) -> Device:
    device = Device(address=hci.Address(address), host=Host(controller, AsyncPipeSink(controller)))
    await device.power_on()
    return device


async def _connect_after_a_timed_out_connect(controller_class: type[Controller]) -> Connection:
    """Connect to an address nobody advertises (times out, so the host cancels), then to a
    peripheral that advertises."""
    link = SimLink() if controller_class is SimController else LocalLink()  # type: ignore[no-untyped-call]
    central = await _device(controller_class("central", link=link), CENTRAL)
    peripheral = await _device(controller_class("peripheral", link=link), PERIPHERAL)
    await peripheral.start_advertising(advertising_interval_min=20, advertising_interval_max=20)
    # Bumble's connect sends LE Create Connection Cancel after its timeout, then waits for the
    # controller to report the cancelled connection; the outer timeout bounds that wait.
    with pytest.raises((core.TimeoutError, TimeoutError)):
        async with asyncio.timeout(1.0):
            await central.connect(hci.Address(NOBODY), timeout=0.2)
    async with asyncio.timeout(2.0):
        return await central.connect(hci.Address(PERIPHERAL), timeout=1.0)


async def test_stock_controller_refuses_the_connect_after_a_cancelled_one() -> None:
    # The bug being fixed: the stock controller ignores the cancel, keeps the pending
    # connection and refuses the next LE Create Connection.
    with pytest.raises(hci.HCI_Error) as refused:
        await _connect_after_a_timed_out_connect(Controller)
    assert refused.value.error_code == hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR


async def test_sim_controller_cancels_then_connects() -> None:
    connection = await _connect_after_a_timed_out_connect(SimController)
    assert connection.peer_address == hci.Address(PERIPHERAL)


async def test_cancel_reports_unknown_connection_identifier_and_refuses_when_idle() -> None:
    link = SimLink()
    central = await _device(SimController("central", link=link), CENTRAL)
    failures: list[core.ConnectionError] = []
    central.on(Device.EVENT_CONNECTION_FAILURE, failures.append)
    with pytest.raises(core.TimeoutError):
        await central.connect(hci.Address(NOBODY), timeout=0.1)
    assert [f.error_code for f in failures] == [
        hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR
    ]
    # Nothing pending any more: a second cancel is refused, as the specification says.
    with pytest.raises(hci.HCI_Error) as refused:
        await central.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
    assert refused.value.error_code == hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR


async def test_reset_forgets_links_and_peer_sees_a_timeout() -> None:
    link = SimLink()
    central_controller = SimController("central", link=link)
    central = await _device(central_controller, CENTRAL)
    peripheral = await _device(SimController("peripheral", link=link), PERIPHERAL)
    await peripheral.start_advertising(advertising_interval_min=20, advertising_interval_max=20)
    await central.connect(hci.Address(PERIPHERAL), timeout=1.0)
    lost: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    (peripheral_side,) = peripheral.connections.values()
    peripheral_side.on(Connection.EVENT_DISCONNECTION, lost.set_result)
    await central.power_on()  # a host (re)starting sends HCI Reset
    async with asyncio.timeout(2.0):
        assert await lost == hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR
    assert central_controller.le_connections == {}


async def test_scan_response_reaches_the_scanner() -> None:
    link = SimLink()
    peripheral = await _device(SimController("peripheral", link=link), PERIPHERAL)
    name = "A name too long for it"
    advertising, scan_response = advertising_payloads(name, [PENDANT_SERVICE])
    assert len(advertising) <= 31
    assert len(scan_response) <= 31
    peripheral.advertising_data = advertising
    peripheral.scan_response_data = scan_response
    await peripheral.start_advertising(advertising_interval_min=20, advertising_interval_max=20)
    async with SimCentral.on_link(link) as central:
        advert = await central.find(address=PERIPHERAL, within=2.0)
        if advert.name != name:
            advert = await central.find(name=name, within=2.0)
    assert advert.name == name


async def test_out_of_range_drops_links_with_connection_timeout_and_silences_the_radio() -> None:
    link = SimLink()
    peripheral_controller = SimController("peripheral", link=link)
    peripheral = await _device(peripheral_controller, PERIPHERAL)
    await peripheral.start_advertising(advertising_interval_min=20, advertising_interval_max=20)
    async with SimCentral.on_link(link) as central:
        await central.find(address=PERIPHERAL, within=2.0)
        await central.stop_scanning()
        async with central.connect(PERIPHERAL) as session:
            peripheral_controller.on_air = False
            assert peripheral_controller.drop_links() == 1
            assert await session.wait_disconnected(within=2.0) == 0x08
        await peripheral.start_advertising(advertising_interval_min=20, advertising_interval_max=20)
        assert not await central.advertising(PERIPHERAL, within=0.3)
        peripheral_controller.on_air = True
        assert await central.advertising(PERIPHERAL, within=2.0)


async def test_hci_server_refuses_bad_specs_and_closes_cleanly() -> None:
    link = SimLink()
    with pytest.raises(HciServerError):
        HciServer(SimController("gateway", link=link), "tcp-server:localhost")
    with pytest.raises(HciServerError):
        HciServer(SimController("gateway", link=link), "usb:0")
    controller = SimController("gateway", link=link)
    async with HciServer(controller, "tcp-server:127.0.0.1:0") as server:
        spec = server.client_spec
        assert spec.startswith("tcp-client:127.0.0.1:")
        async with SimCentral.over_transport(spec) as central:
            assert central.device.powered_on
            assert server.host_attached
    port = int(spec.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_duplicate_filtering_reports_each_advertiser_once_per_scan() -> None:
    link = SimLink()
    peripheral = await _device(SimController("peripheral", link=link), PERIPHERAL)
    await peripheral.start_advertising(advertising_interval_min=20, advertising_interval_max=20)
    central = await _device(SimController("central", link=link), CENTRAL)
    seen: list[object] = []
    central.on(Device.EVENT_ADVERTISEMENT, seen.append)
    for filtered in (True, False, True):
        seen.clear()
        await central.start_scanning(filter_duplicates=filtered)
        await asyncio.sleep(0.3)  # a fixed window: about 15 advertising PDUs at 50 Hz
        await central.stop_scanning()
        if filtered:
            assert 1 <= len(seen) <= 2  # the advertisement, and it merged with its scan response
        else:
            assert len(seen) >= 5


async def test_hci_server_on_a_unix_socket_serves_one_host_at_a_time(tmp_path: Path) -> None:
    link = SimLink()
    path = tmp_path / "hci.sock"
    async with HciServer(SimController("gateway", link=link), f"unix-server:{path}") as server:
        assert server.client_spec == f"unix:{path}"
        async with SimCentral.over_transport(server.client_spec) as central:
            assert central.device.powered_on
            # A second host is refused: its socket is closed at once.
            reader, writer = await asyncio.open_unix_connection(str(path))
            async with asyncio.timeout(2):
                assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
            assert server.host_attached
        await _poll(lambda: not server.host_attached)
        assert server.hosts_served == 1


async def _poll(condition: Callable[[], bool], within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("name", "services"),
    [
        ("CareWatch r01-hr", [0x180D, 0x180F, 0x180A, WEARABLE_EXTENSION_SERVICE]),
        ("CareWatch r01-pendan", [PENDANT_SERVICE, 0x180F, 0x180A]),
        ("Thermo", [0x1809, 0x180A]),
        ("Résidence lunaire ", [0x1822, 0x180F, 0x180A]),
    ],
)
def test_advertising_payloads_fit_and_name_the_device(
    name: str, services: list[int | uuid.UUID]
) -> None:
    full = [to_uuid(s) for s in services]
    advertising, scan_response = advertising_payloads(name, full)
    assert len(advertising) <= 31
    assert len(scan_response) <= 31
    ads = AdvertisingData.from_bytes(advertising)
    listed = [
        to_uuid(u)
        for ad_type in (
            AdvertisingData.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.Type.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.Type.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.Type.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        )
        for uuids in ads.get_all(ad_type)
        for u in uuids
    ]
    assert listed[0] == full[0]  # the primary service first
    complete = ads.get_all(AdvertisingData.Type.COMPLETE_LOCAL_NAME)
    short = ads.get_all(AdvertisingData.Type.SHORTENED_LOCAL_NAME)
    assert complete == [name] or (short and name.startswith(short[0]))
    assert AdvertisingData.from_bytes(scan_response).get_all(
        AdvertisingData.Type.COMPLETE_LOCAL_NAME
    ) == [name]
