"""Bleak backends bound to one :class:`~gateway.ble.bumble_host.BumbleHost`.

bleak constructs its backend classes itself (``BleakScanner(..., backend=cls)`` calls
``cls(detection_callback, service_uuids, scanning_mode, bluez=..., cb=...)``;
``BleakClient(..., backend=cls)`` calls ``cls(address_or_ble_device, services=...,
disconnected_callback=..., timeout=..., bluez=..., winrt=...)``, and bleak-retry-connector adds
``_is_retry_client=True``), so there is no argument through which to hand them a host. Each
call of :func:`make_backends` therefore makes subclasses bound to its host, and the gateway
code takes them where it would take the BlueZ classes::

    async with BumbleHost("tcp-client:127.0.0.1:9001") as host:
        backends = make_backends(host)
        scanner = BleakScanner(on_advertisement, backend=backends.scanner)
        client = BleakClient(device, backend=backends.client)
        client = await establish_connection(BleakClient, device, name, backend=backends.client)
        client = await establish_connection(backends.bleak_client, device, name)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from bleak import BleakClient
from bleak.backends.device import BLEDevice

from gateway.ble.bumble_client import BumbleClient
from gateway.ble.bumble_host import BumbleHost
from gateway.ble.bumble_scanner import BumbleScanner

__all__ = ["BumbleBackends", "make_backends"]


class BumbleBackends(NamedTuple):
    """The classes bound to one host (see :func:`make_backends`)."""

    scanner: type[BumbleScanner]
    """A ``BaseBleakScanner``: ``BleakScanner(callback, backend=scanner)``."""
    client: type[BumbleClient]
    """A ``BaseBleakClient``: ``BleakClient(device, backend=client)``, or
    ``establish_connection(BleakClient, device, name, backend=client)``."""
    bleak_client: type[BleakClient]
    """A ``BleakClient`` whose backend defaults to ``client``, for the places that take a
    client class rather than a backend: ``establish_connection(bleak_client, device, name)``."""


def make_backends(host: BumbleHost) -> BumbleBackends:
    """Scanner and client backends bound to ``host`` (which must be open when they are
    used). Each call makes new classes; make them once per host."""

    class BoundScanner(BumbleScanner):
        _bound_host = host

    class BoundClient(BumbleClient):
        _bound_host = host

    class BoundBleakClient(BleakClient):
        def __init__(
            self,
            address_or_ble_device: BLEDevice | str,
            disconnected_callback: Callable[[BleakClient], None] | None = None,
            services: Iterable[str] | None = None,
            **kwargs: Any,
        ) -> None:
            kwargs.setdefault("backend", BoundClient)
            super().__init__(address_or_ble_device, disconnected_callback, services, **kwargs)

    # bleak reports a custom backend by its class name (``backend_id``).
    for cls, name in (
        (BoundScanner, "BumbleScanner"),
        (BoundClient, "BumbleClient"),
        (BoundBleakClient, "BumbleBleakClient"),
    ):
        cls.__name__ = cls.__qualname__ = name
    return BumbleBackends(BoundScanner, BoundClient, BoundBleakClient)
