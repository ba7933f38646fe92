"""A small Bumble central for tests of the simulator (and, later, of the gateway against it).

Two ways to reach the simulated devices:

* ``SimCentral.on_link(runtime.link)``: its own virtual controller on the simulator's link,
  in this process;
* ``SimCentral.over_transport("tcp-client:127.0.0.1:PORT")``: a Bumble host on the
  simulator's gateway radio, over its HCI transport server, as the gateway does.

Then::

    async with SimCentral.on_link(link) as central:
        advert = await central.find(name="...")              # scan until it shows up
        async with central.connect(advert.address) as peer:  # disconnects on exit
            await peer.discover()
            await peer.subscribe(HEART_RATE_MEASUREMENT)
            got = await peer.wait_for(3, HEART_RATE_MEASUREMENT)

``python -m tests.sim_central --transport tcp-client:127.0.0.1:PORT --name NAME --subscribe
2a37 --count 3`` does the same from another process and prints one JSON object a line
(``advert``, then ``received`` ones, then ``done``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from bumble import core, hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.host import Host
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink, Transport

from firmware_sim.controller import SimController, SimLink
from vitals.gatt import UUIDLike, uuid_to_str

__all__ = ["Advert", "PeerSession", "Received", "SimCentral", "to_uuid"]

DEFAULT_ADDRESS = "F0:F0:F0:F0:F0:F0"


def to_uuid(value: UUIDLike | core.UUID) -> uuid.UUID:
    """A :class:`uuid.UUID` from anything ``vitals.gatt`` accepts, or a Bumble UUID."""
    if isinstance(value, core.UUID):
        return uuid.UUID(bytes=value.to_bytes(force_128=True)[::-1])
    return uuid.UUID(uuid_to_str(value))


def _bumble_uuid(value: UUIDLike) -> core.UUID:
    return core.UUID.from_bytes(to_uuid(value).bytes[::-1])


@dataclass(slots=True, frozen=True)
class Advert:
    """What a scan saw of one device (advertising data merged with its scan response)."""

    address: str
    name: str | None
    services: tuple[uuid.UUID, ...]
    complete_services: bool
    seen_at: float


def _advert(advertisement: Advertisement) -> Advert:
    data = advertisement.data
    names = data.get_all(AdvertisingData.Type.COMPLETE_LOCAL_NAME) or data.get_all(
        AdvertisingData.Type.SHORTENED_LOCAL_NAME
    )
    services: list[uuid.UUID] = []
    complete = False
    for ad_type in (
        AdvertisingData.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.Type.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.Type.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.Type.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    ):
        for listed in data.get_all(ad_type):
            complete = complete or ad_type.name.startswith("COMPLETE")
            services += [to_uuid(u) for u in listed if to_uuid(u) not in services]
    return Advert(
        address=str(advertisement.address),
        name=names[-1] if names else None,
        services=tuple(services),
        complete_services=complete,
        seen_at=time.monotonic(),
    )


@dataclass(slots=True, frozen=True)
class Received:
    """One notification or indication, as it arrived."""

    characteristic: uuid.UUID
    payload: bytes
    monotonic: float
    wall_time: float


@dataclass(slots=True)
class PeerSession:
    """A connection to one peripheral: discovery, reads, subscriptions, what arrived."""

    connection: Connection
    peer: Peer
    received: list[Received] = field(default_factory=list)
    disconnected: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    services: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    properties: dict[uuid.UUID, int] = field(default_factory=dict)
    on_received: Callable[[Received], None] | None = None
    """Called with each value as it arrives (after it is added to :attr:`received`)."""
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)

    def _on_disconnection(self, reason: int) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(reason)
        self._arrived.set()

    @property
    def address(self) -> str:
        return str(self.connection.peer_address)

    async def discover(self) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Discover every service and characteristic: service UUID -> characteristic UUIDs."""
        await self.peer.discover_services()
        for service in self.peer.services:
            await service.discover_characteristics()
            characteristics = [to_uuid(c.uuid) for c in service.characteristics]
            self.services[to_uuid(service.uuid)] = characteristics
            for c in service.characteristics:
                self.properties[to_uuid(c.uuid)] = int(c.properties)
        return self.services

    async def _characteristic(self, characteristic: UUIDLike) -> CharacteristicProxy[bytes]:
        if not self.services:
            await self.discover()
        found = self.peer.get_characteristics_by_uuid(_bumble_uuid(characteristic))
        if not found:
            raise LookupError(f"{self.address} serves no characteristic {characteristic}")
        return found[0]

    async def read(self, characteristic: UUIDLike) -> bytes:
        return bytes(await (await self._characteristic(characteristic)).read_value())

    async def subscribe(self, characteristic: UUIDLike) -> None:
        """Enable notifications or indications (whichever it has) and collect what comes
        (discovering the services first if :meth:`discover` was not called)."""
        proxy = await self._characteristic(characteristic)
        key = to_uuid(characteristic)

        def on_value(value: bytes) -> None:
            item = Received(key, bytes(value), time.monotonic(), time.time())
            self.received.append(item)
            self._arrived.set()
            if self.on_received is not None:
                self.on_received(item)

        await self.peer.subscribe(proxy, on_value)

    def payloads(self, characteristic: UUIDLike | None = None) -> list[bytes]:
        key = None if characteristic is None else to_uuid(characteristic)
        return [r.payload for r in self.received if key is None or r.characteristic == key]

    async def wait_for(
        self, count: int, characteristic: UUIDLike | None = None, *, within: float = 10.0
    ) -> list[Received]:
        """Wait until ``count`` values (of ``characteristic``, or of any) have arrived."""
        key = None if characteristic is None else to_uuid(characteristic)

        def matching() -> list[Received]:
            return [r for r in self.received if key is None or r.characteristic == key]

        async with asyncio.timeout(within):
            while len(matching()) < count:
                if self.disconnected.done():
                    raise ConnectionError(
                        f"{self.address} disconnected (reason 0x{self.disconnected.result():02X})"
                        f" after {len(matching())} of {count} values"
                    )
                self._arrived.clear()
                await self._arrived.wait()
        return matching()

    async def wait_disconnected(self, within: float = 10.0) -> int:
        """The disconnection reason, once the link ends."""
        async with asyncio.timeout(within):
            return await asyncio.shield(self.disconnected)

    async def disconnect(self) -> None:
        if not self.disconnected.done():
            with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error):
                await self.connection.disconnect()
            with contextlib.suppress(TimeoutError):
                await self.wait_disconnected(within=2.0)


class SimCentral:
    """A Bumble central (see the module docstring)."""

    def __init__(
        self,
        make_host: Callable[[], contextlib.AbstractAsyncContextManager[Host]],
        address: str = DEFAULT_ADDRESS,
    ) -> None:
        self._make_host = make_host
        self._address = address
        self._stack = contextlib.AsyncExitStack()
        self._device: Device | None = None
        self.adverts: dict[str, Advert] = {}
        self._advert_seen = asyncio.Event()
        self._scanning = False

    @classmethod
    def on_link(cls, link: SimLink, address: str = DEFAULT_ADDRESS) -> SimCentral:
        """A central with its own :class:`SimController` on ``link``."""

        @contextlib.asynccontextmanager
        async def host() -> AsyncIterator[Host]:
            controller = SimController(f"central-{address}", link=link)
            try:
                yield Host(controller, AsyncPipeSink(controller))
            finally:
                controller.forget_le_state()
                link.remove_controller(controller)

        return cls(host, address)

    @classmethod
    def over_transport(cls, spec: str, address: str = DEFAULT_ADDRESS) -> SimCentral:
        """A central on the controller behind an HCI transport (``tcp-client:HOST:PORT``)."""

        @contextlib.asynccontextmanager
        async def host() -> AsyncIterator[Host]:
            transport: Transport = await open_transport(spec)
            try:
                yield Host(transport.source, transport.sink)
            finally:
                await transport.close()

        return cls(host, address)

    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError("the central is not open")
        return self._device

    async def __aenter__(self) -> Self:
        try:
            host = await self._stack.enter_async_context(self._make_host())
            device = Device(name="sim-central", address=hci.Address(self._address), host=host)
            device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            await device.power_on()
            self._device = device
            self._stack.push_async_callback(device.power_off)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._device is not None:
            for connection in list(self._device.connections.values()):
                with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await connection.disconnect()
            if self._scanning:
                with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error):
                    await self._device.stop_scanning()
        await self._stack.aclose()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        advert = _advert(advertisement)
        known = self.adverts.get(advert.address)
        if known is not None and advert.name is None:
            advert = Advert(
                advert.address,
                known.name,
                advert.services or known.services,
                advert.complete_services or known.complete_services,
                advert.seen_at,
            )
        self.adverts[advert.address] = advert
        self._advert_seen.set()

    async def start_scanning(self) -> None:
        if not self._scanning:
            await self.device.start_scanning(filter_duplicates=False)
            self._scanning = True

    async def stop_scanning(self) -> None:
        if self._scanning:
            await self.device.stop_scanning()
            self._scanning = False

    def forget_adverts(self) -> None:
        self.adverts.clear()

    async def find(
        self,
        *,
        name: str | None = None,
        address: str | None = None,
        within: float = 10.0,
        after: float | None = None,
    ) -> Advert:
        """Scan until a device with this name or address advertises (after the monotonic time
        ``after``, if given); the scan stays on."""
        if name is None and address is None:
            raise ValueError("give a name or an address")

        def match() -> Advert | None:
            for advert in self.adverts.values():
                if after is not None and advert.seen_at < after:
                    continue
                if (address is None or advert.address == address.upper()) and (
                    name is None or advert.name == name
                ):
                    return advert
            return None

        await self.start_scanning()
        async with asyncio.timeout(within):
            while (found := match()) is None:
                self._advert_seen.clear()
                await self._advert_seen.wait()
        return found

    async def advertising(self, address: str, *, within: float) -> bool:
        """Whether ``address`` advertises within ``within`` seconds from now."""
        try:
            await self.find(address=address, within=within, after=time.monotonic())
        except TimeoutError:
            return False
        return True

    @contextlib.asynccontextmanager
    async def connect(self, address: str, *, within: float = 10.0) -> AsyncIterator[PeerSession]:
        """Connect to ``address`` (it must be advertising), yield the session, disconnect."""
        connection = await self.device.connect(
            hci.Address(address), transport=core.PhysicalTransport.LE, timeout=within
        )
        session = PeerSession(connection, Peer(connection))
        try:
            yield session
        finally:
            await session.disconnect()


async def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim_central")
    parser.add_argument("--transport", required=True, help="e.g. tcp-client:127.0.0.1:PORT")
    parser.add_argument("--name", help="connect to the device advertising this name")
    parser.add_argument("--address", help="connect to this address")
    parser.add_argument("--subscribe", action="append", default=[], help="characteristic UUID")
    parser.add_argument("--count", type=int, default=1, help="values to wait for, per UUID")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args(argv)

    def emit(**fields: object) -> None:
        print(json.dumps(fields), flush=True)

    async with asyncio.timeout(args.timeout), SimCentral.over_transport(args.transport) as central:
        advert = await central.find(name=args.name, address=args.address)
        emit(
            event="advert",
            address=advert.address,
            name=advert.name,
            services=[str(s) for s in advert.services],
            seen=sorted(central.adverts),
        )
        await central.stop_scanning()
        async with central.connect(advert.address) as peer:
            services = await peer.discover()
            emit(
                event="services",
                services={str(k): [str(c) for c in v] for k, v in services.items()},
            )
            peer.on_received = lambda item: emit(
                event="received",
                characteristic=str(item.characteristic),
                payload=item.payload.hex(),
            )
            for characteristic in args.subscribe:
                await peer.subscribe(characteristic)
            for characteristic in args.subscribe:
                await peer.wait_for(args.count, characteristic, within=args.timeout)
    emit(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
