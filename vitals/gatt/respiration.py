"""Respiratory Rate, a CareWatch vendor characteristic of the wearable.

NEWS2 needs the respiration rate, and the Bluetooth SIG has no characteristic for it (wearables
derive it from chest movement or from the heart's RR intervals and expose it in vendor
services). CareWatch documents its own: service ``6e0f0010-3c1b-4d2a-9b7e-5a4c61726557``
(Wearable Extension) holds Respiratory Rate ``6e0f0011-3c1b-4d2a-9b7e-5a4c61726557`` (notify).

Layout, little-endian, 3 bytes:

====== ======= ===========================================================================
offset size    field
====== ======= ===========================================================================
0      uint8   flags: bit 0 sensor contact supported, bit 1 contact detected (as in Heart
               Rate Measurement); bits 2-7 reserved, ignored on decode, written as 0
1      SFLOAT  respiration rate in breaths per minute; a special value decodes to None
====== ======= ===========================================================================
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter

__all__ = [
    "RESPIRATORY_RATE_CHARACTERISTIC",
    "WEARABLE_EXTENSION_SERVICE",
    "RespiratoryRate",
    "decode_respiratory_rate",
    "encode_respiratory_rate",
]

NAME: Final = "Respiratory Rate"
WEARABLE_EXTENSION_SERVICE: Final = uuid.UUID("6e0f0010-3c1b-4d2a-9b7e-5a4c61726557")
RESPIRATORY_RATE_CHARACTERISTIC: Final = uuid.UUID("6e0f0011-3c1b-4d2a-9b7e-5a4c61726557")

_CONTACT_SUPPORTED: Final = 0x01
_CONTACT_DETECTED: Final = 0x02


@dataclass(slots=True, frozen=True)
class RespiratoryRate:
    """Breaths per minute, as the wearable derived them."""

    breaths_per_minute: float | None
    sensor_contact: bool | None = None
    """None when the wearable does not report contact."""


def decode_respiratory_rate(data: Buffer) -> RespiratoryRate:
    """Decode a Respiratory Rate payload."""
    reader = ByteReader(data, NAME)
    flags = reader.u8("flags")
    rate = reader.sfloat("respiration rate")
    reader.finish()
    contact = bool(flags & _CONTACT_DETECTED) if flags & _CONTACT_SUPPORTED else None
    return RespiratoryRate(breaths_per_minute=rate, sensor_contact=contact)


def encode_respiratory_rate(value: RespiratoryRate) -> bytes:
    """Encode a Respiratory Rate."""
    flags = 0
    if value.sensor_contact is not None:
        flags |= _CONTACT_SUPPORTED | (_CONTACT_DETECTED if value.sensor_contact else 0)
    writer = ByteWriter(NAME)
    writer.u8(flags, "flags")
    writer.sfloat(value.breaths_per_minute, "respiration rate")
    return writer.to_bytes()
