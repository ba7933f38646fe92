"""Battery Level, characteristic 0x2A19 (Battery Service 1.0).

Layout: one uint8, the charge in percent, 0..100. Values 101..255 are reserved: they raise
:class:`DecodeError` (a level nobody can interpret is not a level). Anything after the byte
raises too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter
from vitals.gatt.errors import EncodeError

__all__ = ["BatteryLevel", "decode_battery_level", "encode_battery_level"]

NAME: Final = "Battery Level"


@dataclass(slots=True, frozen=True)
class BatteryLevel:
    """The remaining charge."""

    percent: int


def decode_battery_level(data: Buffer) -> BatteryLevel:
    """Decode a Battery Level payload."""
    reader = ByteReader(data, NAME)
    percent = reader.u8("battery level")
    if percent > 100:
        raise reader.error(f"battery level {percent} is above 100 %", offset=0)
    reader.finish()
    return BatteryLevel(percent=percent)


def encode_battery_level(value: BatteryLevel) -> bytes:
    """Encode a Battery Level."""
    percent = value.percent
    if isinstance(percent, int) and not isinstance(percent, bool) and not 0 <= percent <= 100:
        raise EncodeError(f"battery level {value.percent} is outside 0..100", NAME)
    writer = ByteWriter(NAME)
    writer.u8(value.percent, "battery level")
    return writer.to_bytes()
