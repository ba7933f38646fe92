"""Pendant Event, the CareWatch fall/help pendant's vendor characteristic.

There is no Bluetooth SIG service for fall pendants, so CareWatch documents its own. Service
``6e0f0001-3c1b-4d2a-9b7e-5a4c61726557`` (primary, advertised) holds the Pendant Event
characteristic ``6e0f0002-3c1b-4d2a-9b7e-5a4c61726557`` (indicate, so the pendant learns the
gateway has the event); the pendant also serves the SIG Battery and Device Information services.

Layout, little-endian, 11 bytes:

====== ======= ===========================================================================
offset size    field
====== ======= ===========================================================================
0      uint8   format version, 1; any other version raises :class:`DecodeError`
1      uint8   event: 1 fall detected, 2 help button pressed, 3 wearer is OK (cancels the
               preceding fall or help event), 4 pendant taken off; unknown codes are kept
               as plain ints (a new pendant's event still reaches staff)
2      uint16  sequence number, +1 per event, wrapping at 65536: the gateway uses it to
               tell a re-indicated event from a new one and to count lost events
4      7       Date Time (SIG format) of the event on the pendant's clock; a zero date
               means the clock is not set (decodes to ``None``)
====== ======= ===========================================================================
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter, code_or_int

__all__ = [
    "PENDANT_EVENT_CHARACTERISTIC",
    "PENDANT_FORMAT_VERSION",
    "PENDANT_SERVICE",
    "PendantEvent",
    "PendantEventType",
    "decode_pendant_event",
    "encode_pendant_event",
]

NAME: Final = "Pendant Event"
PENDANT_SERVICE: Final = uuid.UUID("6e0f0001-3c1b-4d2a-9b7e-5a4c61726557")
PENDANT_EVENT_CHARACTERISTIC: Final = uuid.UUID("6e0f0002-3c1b-4d2a-9b7e-5a4c61726557")
PENDANT_FORMAT_VERSION: Final = 1


class PendantEventType(enum.IntEnum):
    FALL = 1
    HELP_BUTTON = 2
    WEARER_OK = 3
    REMOVED = 4


@dataclass(slots=True, frozen=True)
class PendantEvent:
    """One event of a fall/help pendant."""

    event: PendantEventType | int
    sequence: int
    """0..65535, wrapping."""
    timestamp: dt.datetime | None
    """Naive time on the pendant's clock, or None when its clock is not set."""


def decode_pendant_event(data: Buffer) -> PendantEvent:
    """Decode a Pendant Event payload."""
    reader = ByteReader(data, NAME)
    version = reader.u8("format version")
    if version != PENDANT_FORMAT_VERSION:
        raise reader.error(
            f"format version {version} is not supported (expected {PENDANT_FORMAT_VERSION})",
            offset=0,
        )
    event = code_or_int(PendantEventType, reader.u8("event"))
    sequence = reader.u16("sequence number")
    timestamp = reader.date_time("timestamp")
    reader.finish()
    return PendantEvent(event=event, sequence=sequence, timestamp=timestamp)


def encode_pendant_event(value: PendantEvent) -> bytes:
    """Encode a Pendant Event (a ``None`` timestamp is written as the all-zero Date Time)."""
    writer = ByteWriter(NAME)
    writer.u8(PENDANT_FORMAT_VERSION, "format version")
    writer.u8(int(value.event), "event")
    writer.u16(value.sequence, "sequence number")
    writer.date_time(value.timestamp, "timestamp")
    return writer.to_bytes()
