"""Assigned numbers of the services and characteristics CareWatch reads, and UUID parsing.

The numbers are 16-bit UUIDs assigned by the Bluetooth SIG; their 128-bit form is
``0000xxxx-0000-1000-8000-00805f9b34fb`` (the Bluetooth Base UUID), which is what bleak
reports and expects.
"""

from __future__ import annotations

import re
import uuid
from typing import Final, TypeAlias

from vitals.gatt.errors import InvalidUUIDError

__all__ = [
    "BATTERY_LEVEL",
    "BATTERY_SERVICE",
    "BLOOD_PRESSURE_MEASUREMENT",
    "BLOOD_PRESSURE_SERVICE",
    "DEVICE_INFORMATION_SERVICE",
    "GLUCOSE_MEASUREMENT",
    "GLUCOSE_SERVICE",
    "HEALTH_THERMOMETER_SERVICE",
    "HEART_RATE_MEASUREMENT",
    "HEART_RATE_SERVICE",
    "PLX_CONTINUOUS_MEASUREMENT",
    "PLX_SPOT_CHECK_MEASUREMENT",
    "PULSE_OXIMETER_SERVICE",
    "TEMPERATURE_MEASUREMENT",
    "WEIGHT_MEASUREMENT",
    "WEIGHT_SCALE_SERVICE",
    "UUIDLike",
    "uuid16_from",
    "uuid16_to_str",
    "uuid_to_str",
]

# Services
GLUCOSE_SERVICE: Final = 0x1808
HEALTH_THERMOMETER_SERVICE: Final = 0x1809
DEVICE_INFORMATION_SERVICE: Final = 0x180A
HEART_RATE_SERVICE: Final = 0x180D
BATTERY_SERVICE: Final = 0x180F
BLOOD_PRESSURE_SERVICE: Final = 0x1810
WEIGHT_SCALE_SERVICE: Final = 0x181D
PULSE_OXIMETER_SERVICE: Final = 0x1822

# Characteristics
GLUCOSE_MEASUREMENT: Final = 0x2A18
BATTERY_LEVEL: Final = 0x2A19
TEMPERATURE_MEASUREMENT: Final = 0x2A1C
BLOOD_PRESSURE_MEASUREMENT: Final = 0x2A35
HEART_RATE_MEASUREMENT: Final = 0x2A37
PLX_SPOT_CHECK_MEASUREMENT: Final = 0x2A5E
PLX_CONTINUOUS_MEASUREMENT: Final = 0x2A5F
WEIGHT_MEASUREMENT: Final = 0x2A9D

UUIDLike: TypeAlias = int | str | uuid.UUID
"""A 16-bit UUID as an int, a string ("2a37", "0x2A37", the 128-bit form), or a UUID."""

_BASE_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"
_SHORT: Final = re.compile(r"(?:0[xX])?([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8})")


def uuid16_to_str(value: int) -> str:
    """The 128-bit string of a 16-bit UUID, as bleak writes it.

    ``uuid16_to_str(0x2A37) == "00002a37-0000-1000-8000-00805f9b34fb"``
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise InvalidUUIDError(value, "a 16-bit UUID is an int in 0..0xFFFF")
    return f"0000{value:04x}{_BASE_SUFFIX}"


def _parse(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bool):
        raise InvalidUUIDError(value, "a bool is not a UUID")
    if isinstance(value, int):
        return uuid.UUID(uuid16_to_str(value))
    if isinstance(value, str):
        short = _SHORT.fullmatch(value)
        if short is not None:
            return uuid.UUID(f"{short.group(1).lower():0>8}{_BASE_SUFFIX}")
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            raise InvalidUUIDError(
                value,
                "expected 4 or 8 hex digits (optionally after 0x) or a 128-bit UUID",
            ) from exc
    raise InvalidUUIDError(value, f"a {type(value).__name__} is not a UUID")


def uuid_to_str(value: UUIDLike) -> str:
    """The lower-case 128-bit string form of any accepted UUID."""
    return str(_parse(value))


def uuid16_from(value: UUIDLike) -> int | None:
    """The 16-bit SIG UUID that ``value`` stands for, or ``None`` if it is a valid UUID of
    another kind (32-bit SIG or vendor 128-bit). Raises :class:`InvalidUUIDError` if malformed."""
    text = str(_parse(value))
    if text.startswith("0000") and text.endswith(_BASE_SUFFIX):
        return int(text[4:8], 16)
    return None
