"""bleak client backend on a :class:`~gateway.ble.bumble_host.BumbleHost`.

``BleakClient(device, backend=make_backends(host).client)`` (or bleak-retry-connector's
``establish_connection(BleakClient, device, name, backend=...)``) connects through the shared
host and then behaves as the BlueZ backend does, so the gateway cannot tell them apart:

* ``connect`` makes the LE connection (withdrawing it cleanly on timeout or cancellation; see
  :mod:`gateway.ble.bumble_host`), exchanges the ATT MTU (517 asked, as BlueZ does) and
  discovers every primary service with its characteristics and descriptors. A bare address
  is first looked up by scanning, as BlueZ does, and :class:`~bleak.exc.BleakDeviceNotFoundError`
  raised when it does not advertise.
* Characteristics carry their value handle and bleak's property names (the extended
  properties descriptor, when present, adds ``reliable-write`` / ``writable-auxiliaries``).
* ``start_notify`` writes the CCCD (notifications preferred when both are offered, as bleak
  requires) and hands each value to bleak's callback as a ``bytearray``.
* The disconnected callback runs on every disconnection of a connection ``connect`` returned
  (the peripheral's, ours, or the host losing its transport), as with BlueZ; not when
  ``connect`` itself fails. The HCI reason (0x08 for a connection timeout) is kept in
  :attr:`BumbleClient.disconnect_reason` and :meth:`BumbleHost.last_disconnect_reason`.
* Every Bumble error leaves as a :class:`~gateway.ble.bumble_host.BumbleBackendError` (a
  ``BleakError``): ATT errors as :class:`~gateway.ble.bumble_host.BumbleGATTError` (also
  bleak's ``BleakGATTProtocolError``), a lost link as
  :class:`~gateway.ble.bumble_host.BumbleDisconnectedError`.

Pairing is not supported: CareWatch reads its devices without bonding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Final

from bleak.args import SizedBuffer
from bleak.assigned_numbers import gatt_char_props_to_strs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bumble import att, core, gatt, hci
from bumble.device import Connection, Device
from bumble.gatt_client import CharacteristicProxy, Client, DescriptorProxy, ServiceProxy

from gateway.ble.bumble_host import (
    BumbleBackendError,
    BumbleDeviceDetails,
    BumbleDeviceNotFoundError,
    BumbleDisconnectedError,
    BumbleGATTError,
    BumbleHost,
    BumbleTimeoutError,
    error_name,
    uuid_text,
)

__all__ = ["BumbleClient"]

logger = logging.getLogger(__name__)

PREFERRED_MTU: Final = 517
"""The ATT MTU asked for after connecting (the most ATT allows; what BlueZ asks)."""

_DEFAULT_MTU: Final = att.ATT_DEFAULT_MTU
_EXTENDED_PROPERTIES_UUID: Final = core.UUID.from_16_bits(0x2900)
_CCCD_UUID: Final = gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
_RELIABLE_WRITE: Final = 0x100  # bleak's property bits above the declaration's eight
_WRITABLE_AUXILIARIES: Final = 0x200
_DISCONNECT_TIMEOUT: Final = 10.0
_SETUP_FAILURE_DISCONNECT_TIMEOUT: Final = 2.0


class BumbleClient(BaseBleakClient):
    """A bleak client backend on a Bumble host. Use the subclass bound to a host by
    :func:`gateway.ble.make_backends`; bleak constructs it."""

    _bound_host: ClassVar[BumbleHost | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        host = type(self)._bound_host
        if host is None:
            raise BumbleBackendError(
                "BumbleClient is not bound to a host: pass make_backends(host).client "
                "as the backend"
            )
        self._host = host
        self._peer_address: hci.Address | None = None
        self._device_name: str | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            self._device_name = address_or_ble_device.name
            details = address_or_ble_device.details
            if isinstance(details, BumbleDeviceDetails):
                self._peer_address = details.address
        self.address = self.address.upper()
        self._requested_services = services
        self._connection: Connection | None = None
        self._device: Device | None = None
        self._mtu = _DEFAULT_MTU
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}
        self._disconnect_reason: int | None = None
        self._setting_up = False

    # --- connection ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._device_name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._mtu

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    @property
    def disconnect_reason(self) -> int | None:
        """The HCI reason of the last disconnection (0x08: connection timeout; ``None``
        before any, or when the host lost its transport)."""
        return self._disconnect_reason

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, exchange the MTU and discover services within ``timeout`` seconds
        (keyword, as bleak-retry-connector passes it; the client's timeout otherwise).
        Raises a ``BleakError`` (also a ``TimeoutError`` when the time ran out); the link is
        then down again and the disconnected callback has not run."""
        if self.is_connected:
            raise BumbleBackendError(f"{self.address}: already connected")
        if pair:
            logger.warning("device=%s pairing is not supported by the Bumble backend", self.address)
        timeout = float(kwargs.get("timeout", self._timeout))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        peer = self._peer_address
        if peer is None:
            try:
                async with asyncio.timeout(timeout):
                    peer = await self._host.find_address(self.address)
            except TimeoutError as exc:
                raise BumbleDeviceNotFoundError(self.address, timeout) from exc
            self._peer_address = peer
        connection = await self._host.connect(peer, timeout=max(0.0, deadline - loop.time()))
        self._attach(connection)
        # Until connect returns, the caller has no connection to lose: a link that drops (or
        # that we drop) during setup makes connect fail, without a disconnected callback.
        self._setting_up = True
        try:
            # The link is up: setup gets what is left of the timeout, and at least a second.
            async with asyncio.timeout_at(max(deadline, loop.time() + 1.0)):
                with self._errors("connect"):
                    await self._exchange_mtu(connection.gatt_client)
                    self.services = await self._discover(connection.gatt_client)
        except TimeoutError as exc:
            await self._drop_link(connection)
            raise BumbleTimeoutError(
                f"{self.address}: MTU exchange and service discovery took longer than "
                f"{timeout:.1f} s"
            ) from exc
        except BaseException:
            await self._drop_link(connection)
            raise
        finally:
            self._setting_up = False
        logger.info("device=%s connected mtu=%d", self.address, self._mtu)

    def _attach(self, connection: Connection) -> None:
        device = connection.device
        if not _alive(connection):
            # it went down between completing and reaching us
            raise BumbleDisconnectedError(
                self.address, self._host.last_disconnect_reason(self.address), "connect"
            )
        self._connection = connection
        self._device = device
        self._mtu = _DEFAULT_MTU
        self._disconnect_reason = None
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        device.on(Device.EVENT_FLUSH, self._on_flush)

    def _detach(self) -> None:
        connection, self._connection = self._connection, None
        device, self._device = self._device, None
        if connection is not None:
            connection.remove_listener(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        if device is not None:
            device.remove_listener(Device.EVENT_FLUSH, self._on_flush)
        self._subscriptions.clear()
        self.services = None

    def _on_disconnection(self, reason: int) -> None:
        self._lost(reason)

    def _on_flush(self) -> None:
        self._lost(None)

    def _lost(self, reason: int | None) -> None:
        if self._connection is None:
            return
        self._disconnect_reason = reason
        self._detach()
        logger.info("device=%s disconnected reason=%s", self.address, error_name(reason))
        if self._disconnected_callback is not None and not self._setting_up:
            self._disconnected_callback()

    async def _drop_link(self, connection: Connection) -> None:
        """Take down a link whose setup failed, without raising (bounded)."""
        if _alive(connection):
            with contextlib.suppress(TimeoutError, core.BaseBumbleError):
                async with asyncio.timeout(_SETUP_FAILURE_DISCONNECT_TIMEOUT):
                    await connection.disconnect()
        self._lost(hci.HCI_ErrorCode.CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)

    async def disconnect(self) -> None:
        """Disconnect; ``is_connected`` is ``False`` and the disconnected callback has run
        when this returns, whatever happened. Raises a ``BleakError`` (also a
        ``TimeoutError``) when the controller did not confirm within 10 s."""
        connection = self._connection
        if connection is None:
            return
        if not _alive(connection):  # it went down and the news is on its way
            self._lost(None)
            return
        try:
            async with asyncio.timeout(_DISCONNECT_TIMEOUT):
                await connection.disconnect()
        except TimeoutError as exc:
            raise BumbleTimeoutError(
                f"{self.address}: the controller did not confirm the disconnection within "
                f"{_DISCONNECT_TIMEOUT:.0f} s"
            ) from exc
        except hci.HCI_Error as exc:
            # Unknown Connection Identifier: it went down on its own meanwhile.
            logger.debug("device=%s disconnect: %s", self.address, exc)
        except core.BaseBumbleError as exc:
            raise BumbleBackendError(f"{self.address}: disconnect failed: {exc}") from exc
        finally:
            self._lost(hci.HCI_ErrorCode.CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "pairing is not supported by the Bumble backend (CareWatch reads its devices "
            "without bonding)"
        )

    async def unpair(self) -> None:
        raise NotImplementedError(
            "unpairing is not supported by the Bumble backend (it never pairs)"
        )

    # --- discovery -----------------------------------------------------------------------

    async def _exchange_mtu(self, client: Client) -> None:
        try:
            self._mtu = await client.request_mtu(PREFERRED_MTU)
        except att.ATT_Error as exc:
            logger.debug(
                "device=%s MTU exchange refused (%s): keeping %d", self.address, exc, self._mtu
            )

    async def _discover(self, client: Client) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        wanted = self._requested_services
        for service_proxy in await client.discover_services():
            uuid = uuid_text(service_proxy.uuid)
            if wanted is not None and uuid not in wanted:
                continue
            service = BleakGATTService(service_proxy, service_proxy.handle, uuid)
            collection.add_service(service)
            await self._discover_characteristics(client, collection, service, service_proxy)
        return collection

    async def _discover_characteristics(
        self,
        client: Client,
        collection: BleakGATTServiceCollection,
        service: BleakGATTService,
        service_proxy: ServiceProxy,
    ) -> None:
        for proxy in await client.discover_characteristics((), service_proxy):
            descriptors = await client.discover_descriptors(proxy)
            proxy.descriptors_discovered = True  # spares a rediscovery on every subscribe
            properties = int(proxy.properties)
            if properties & gatt.Characteristic.Properties.EXTENDED_PROPERTIES:
                properties |= await self._extended_properties(client, descriptors)
            characteristic = BleakGATTCharacteristic(
                proxy,
                proxy.handle,
                uuid_text(proxy.uuid),
                sorted(gatt_char_props_to_strs(properties)),
                lambda: self._mtu - 3,
                service,
            )
            collection.add_characteristic(characteristic)
            for descriptor in descriptors:
                collection.add_descriptor(
                    BleakGATTDescriptor(
                        descriptor, descriptor.handle, uuid_text(descriptor.type), characteristic
                    )
                )

    async def _extended_properties(self, client: Client, descriptors: list[DescriptorProxy]) -> int:
        for descriptor in descriptors:
            if descriptor.type != _EXTENDED_PROPERTIES_UUID:
                continue
            try:
                value = await client.read_value(descriptor.handle)
            except att.ATT_Error as exc:
                logger.debug("device=%s extended properties unreadable: %s", self.address, exc)
                return 0
            if len(value) < 1:
                return 0
            bits = 0
            if value[0] & 0x01:
                bits |= _RELIABLE_WRITE
            if value[0] & 0x02:
                bits |= _WRITABLE_AUXILIARIES
            return bits
        return 0

    # --- I/O -----------------------------------------------------------------------------

    def _gatt(self, operation: str) -> Client:
        connection = self._connection
        if connection is None:
            raise BumbleDisconnectedError(self.address, self._disconnect_reason, operation)
        return connection.gatt_client

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        client = self._gatt("read")
        if use_cached and (cached := client.cached_values.get(characteristic.handle)):
            return bytearray(cached[1])
        with self._errors(f"read {characteristic.uuid}"):
            return bytearray(await client.read_value(characteristic.handle))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        client = self._gatt("read descriptor")
        if use_cached and (cached := client.cached_values.get(descriptor.handle)):
            return bytearray(cached[1])
        with self._errors(f"read descriptor {descriptor.handle}"):
            return bytearray(await client.read_value(descriptor.handle))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        client = self._gatt("write")
        with self._errors(f"write {characteristic.uuid}"):
            await client.write_value(characteristic.handle, bytes(data), with_response=response)

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        client = self._gatt("write descriptor")
        with self._errors(f"write descriptor {descriptor.handle}"):
            await client.write_value(descriptor.handle, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        client = self._gatt("start notify")
        properties = characteristic.properties
        if "notify" not in properties and "indicate" not in properties:
            raise BumbleBackendError(
                f"{self.address}: characteristic {characteristic.uuid} neither notifies "
                "nor indicates"
            )
        if characteristic.get_descriptor(uuid_text(_CCCD_UUID)) is None:
            raise BumbleBackendError(
                f"{self.address}: characteristic {characteristic.uuid} has no Client "
                "Characteristic Configuration descriptor"
            )
        proxy = _characteristic_proxy(characteristic)

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        previous = self._subscriptions.get(characteristic.handle)
        with self._errors(f"start notify {characteristic.uuid}"):
            await client.subscribe(proxy, deliver, prefer_notify=True)
            self._subscriptions[characteristic.handle] = deliver
            if previous is not None:  # a new callback replaces the old one
                await client.unsubscribe(proxy, previous)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        client = self._gatt("stop notify")
        subscriber = self._subscriptions.pop(characteristic.handle, None)
        with self._errors(f"stop notify {characteristic.uuid}"):
            await client.unsubscribe(_characteristic_proxy(characteristic), subscriber, force=True)

    # --- errors --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Translate Bumble's errors into the backend's (all ``BleakError``)."""
        try:
            yield
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling() == 0:
                # Not a cancellation of this task: Bumble cancels the pending ATT request
                # when the link goes down (or the host loses its transport).
                raise BumbleDisconnectedError(
                    self.address, self._disconnect_reason, operation
                ) from None
            raise
        except att.ATT_Error as exc:
            raise BumbleGATTError(exc.error_code, handle=exc.att_handle) from exc
        except core.TimeoutError as exc:
            raise BumbleTimeoutError(
                f"{self.address}: {operation}: the peripheral did not answer in time"
            ) from exc
        except (core.BaseBumbleError, OSError) as exc:
            if self._connection is None:
                raise BumbleDisconnectedError(
                    self.address, self._disconnect_reason, operation
                ) from exc
            raise BumbleBackendError(f"{self.address}: {operation} failed: {exc}") from exc


def _alive(connection: Connection) -> bool:
    """Whether Bumble still holds ``connection`` (handles are reused, hence the identity)."""
    return connection.device.connections.get(connection.handle) is connection


def _characteristic_proxy(characteristic: BleakGATTCharacteristic) -> CharacteristicProxy[bytes]:
    proxy = characteristic.obj
    if not isinstance(proxy, CharacteristicProxy):
        raise BumbleBackendError(
            f"characteristic {characteristic.uuid} does not come from the Bumble backend"
        )
    return proxy
