"""bleak scanner backend on a :class:`~gateway.ble.bumble_host.BumbleHost`.

``BleakScanner(callback, backend=make_backends(host).scanner)`` scans through the shared host
(several scanners may run at once; the controller scans once for all of them). Each Bumble
advertisement report, already merged with its scan response, becomes a
:class:`~bleak.backends.device.BLEDevice` and an
:class:`~bleak.backends.scanner.AdvertisementData` as the BlueZ backend makes them: service
UUIDs and service data keys in bleak's 128-bit lower-case form, manufacturer data by company
identifier, TX power from the advertising data, RSSI -127 when the controller gives none.

Advertising data comes from the air and is parsed as untrusted input here rather than with
Bumble's own parser (which raises on a one-byte manufacturer record and reads the TX power
level as unsigned): a malformed AD structure is skipped and the rest of the report kept.
"""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar, Final, Literal

from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bleak.uuids import normalize_uuid_str
from bumble.core import AdvertisingData
from bumble.device import Advertisement

from gateway.ble.bumble_host import BumbleBackendError, BumbleDeviceDetails, BumbleHost

__all__ = ["BumbleScanner", "advertisement_data"]

logger = logging.getLogger(__name__)

_NO_RSSI: Final = -127
_BASE_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"

_T = AdvertisingData.Type
_UUID_LISTS: Final[dict[int, int]] = {
    _T.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _T.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _T.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _T.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _T.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    _T.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA: Final[dict[int, int]] = {
    _T.SERVICE_DATA_16_BIT_UUID: 2,
    _T.SERVICE_DATA_32_BIT_UUID: 4,
    _T.SERVICE_DATA_128_BIT_UUID: 16,
}


def _uuid_from_le(raw: bytes) -> str:
    """A little-endian 2-, 4- or 16-byte UUID from advertising data, in bleak's form."""
    if len(raw) == 16:
        return str(uuid.UUID(bytes=raw[::-1]))
    return f"{int.from_bytes(raw, 'little'):08x}{_BASE_SUFFIX}"


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\x00")


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's :class:`AdvertisementData` for one Bumble advertisement (with its scan
    response). Pure; malformed AD structures are skipped."""
    return _convert(advertisement.data.ad_structures, advertisement)


def _convert(
    structures: Iterable[tuple[int, bytes]], advertisement: Advertisement
) -> AdvertisementData:
    complete_name: str | None = None
    short_name: str | None = None
    service_uuids: list[str] = []
    service_data: dict[str, bytes] = {}
    manufacturer_data: dict[int, bytes] = {}
    tx_power: int | None = None
    for ad_type, value in structures:
        if (size := _UUID_LISTS.get(ad_type)) is not None:
            for offset in range(0, len(value) - size + 1, size):
                text = _uuid_from_le(value[offset : offset + size])
                if text not in service_uuids:
                    service_uuids.append(text)
        elif (size := _SERVICE_DATA.get(ad_type)) is not None:
            if len(value) >= size:
                service_data[_uuid_from_le(value[:size])] = bytes(value[size:])
        elif ad_type == _T.MANUFACTURER_SPECIFIC_DATA:
            if len(value) >= 2:
                company = int.from_bytes(value[:2], "little")
                manufacturer_data[company] = bytes(value[2:])
        elif ad_type == _T.COMPLETE_LOCAL_NAME:
            complete_name = complete_name or _name(value)
        elif ad_type == _T.SHORTENED_LOCAL_NAME:
            short_name = short_name or _name(value)
        elif ad_type == _T.TX_POWER_LEVEL and len(value) == 1:
            tx_power = struct.unpack("<b", value)[0]
    rssi = advertisement.rssi
    if rssi == Advertisement.RSSI_NOT_AVAILABLE:
        rssi = _NO_RSSI
    return AdvertisementData(
        local_name=complete_name or short_name,
        manufacturer_data=manufacturer_data,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=rssi,
        platform_data=(advertisement,),
    )


class BumbleScanner(BaseBleakScanner):
    """A bleak scanner backend on a Bumble host. Use the subclass bound to a host by
    :func:`gateway.ble.make_backends`; bleak constructs it."""

    _bound_host: ClassVar[BumbleHost | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        host = type(self)._bound_host
        if host is None:
            raise BumbleBackendError(
                "BumbleScanner is not bound to a host: pass make_backends(host).scanner "
                "as the backend"
            )
        if scanning_mode not in ("active", "passive"):
            raise BumbleBackendError(f"unknown scanning mode {scanning_mode!r}")
        if self._service_uuids is not None:
            # bleak lower-cases the filter; BlueZ also accepts 16- and 32-bit forms.
            self._service_uuids = [normalize_uuid_str(u) for u in self._service_uuids]
        self._host = host
        self._active = scanning_mode == "active"
        self._token: object | None = None

    async def start(self) -> None:
        if self._token is not None:
            return
        self.seen_devices = {}
        self._token = await self._host.add_scan_listener(
            self._on_advertisement, active=self._active
        )

    async def stop(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            await self._host.remove_scan_listener(token)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = advertisement.address
        key = address.to_string(with_type_qualifier=True)
        name = data.local_name
        if name is None and (seen := self.seen_devices.get(key)) is not None:
            name = seen[0].name  # an advertisement without the name keeps the one we know
        device = self.create_or_update_device(
            key,
            address.to_string(with_type_qualifier=False),
            name,
            BumbleDeviceDetails(address),
            data,
        )
        self.call_detection_callbacks(device, data)
