"""Heart Rate Measurement, characteristic 0x2A37 (Heart Rate Service 1.0).

Layout, little-endian::

    flags            uint8
    heart rate       uint8, or uint16 when flags bit 0 is set          (beats per minute)
    energy expended  uint16, when flags bit 3 is set                   (kilojoules)
    RR-intervals     uint16 each, when flags bit 4 is set, to the end  (1/1024 s)

Flags bits 1-2 are the Sensor Contact Status: bit 2 says the feature is supported, bit 1 that
contact is detected. With bit 2 clear the feature is not supported and bit 1 means nothing
(HRS gives 0b00 and 0b01 the same meaning), so it is ignored. :attr:`sensor_contact` is
``None`` (not supported), ``False`` (supported, no contact) or ``True`` (contact).

Decisions:

* Reserved flag bits 5-7 are ignored when decoding (the Bluetooth rule for RFU bits) and
  written as 0.
* The RR-interval list runs to the end of the payload, so it is the one field with a variable
  tail: an odd number of bytes there raises :class:`DecodeError`. Flag bit 4 with no interval
  after it is valid and decodes to an empty tuple, distinct from ``None`` (bit 4 clear).
* The value format (uint8 or uint16) is kept in :attr:`uint16_format`, so that
  ``decode(encode(x)) == x`` also for a sensor that sends uint16 for a low rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter

__all__ = ["HeartRateMeasurement", "decode_heart_rate", "encode_heart_rate"]

NAME: Final = "Heart Rate Measurement"

_UINT16_FORMAT: Final = 0x01
_CONTACT_DETECTED: Final = 0x02
_CONTACT_SUPPORTED: Final = 0x04
_ENERGY_EXPENDED: Final = 0x08
_RR_INTERVALS: Final = 0x10


@dataclass(slots=True, frozen=True)
class HeartRateMeasurement:
    """One Heart Rate Measurement, as sent."""

    heart_rate: int
    """Beats per minute."""
    sensor_contact: bool | None = None
    """``None``: feature not supported; else whether skin contact is detected."""
    energy_expended: int | None = None
    """Kilojoules since the last reset (the sensor stops at 65535)."""
    rr_intervals: tuple[int, ...] | None = None
    """RR-intervals in units of 1/1024 s, oldest first; ``None`` when not sent."""
    uint16_format: bool = False
    """Whether the heart rate is sent as uint16 (it must be, above 255)."""

    @property
    def rr_intervals_s(self) -> tuple[float, ...] | None:
        """RR-intervals in seconds (exact: the unit is a power of two)."""
        if self.rr_intervals is None:
            return None
        return tuple(rr / 1024 for rr in self.rr_intervals)


def decode_heart_rate(data: Buffer) -> HeartRateMeasurement:
    """Decode a Heart Rate Measurement payload."""
    reader = ByteReader(data, NAME)
    flags = reader.u8("flags")
    uint16_format = bool(flags & _UINT16_FORMAT)
    heart_rate = reader.u16("heart rate") if uint16_format else reader.u8("heart rate")
    sensor_contact = bool(flags & _CONTACT_DETECTED) if flags & _CONTACT_SUPPORTED else None
    energy = reader.u16("energy expended") if flags & _ENERGY_EXPENDED else None
    rr_intervals = reader.u16_tail("RR-interval") if flags & _RR_INTERVALS else None
    reader.finish()
    return HeartRateMeasurement(
        heart_rate=heart_rate,
        sensor_contact=sensor_contact,
        energy_expended=energy,
        rr_intervals=rr_intervals,
        uint16_format=uint16_format,
    )


def encode_heart_rate(value: HeartRateMeasurement) -> bytes:
    """Encode a Heart Rate Measurement; the flags follow from which fields are set."""
    flags = 0
    if value.uint16_format:
        flags |= _UINT16_FORMAT
    if value.sensor_contact is not None:
        flags |= _CONTACT_SUPPORTED
        if value.sensor_contact:
            flags |= _CONTACT_DETECTED
    if value.energy_expended is not None:
        flags |= _ENERGY_EXPENDED
    if value.rr_intervals is not None:
        flags |= _RR_INTERVALS
    writer = ByteWriter(NAME)
    writer.u8(flags, "flags")
    if value.uint16_format:
        writer.u16(value.heart_rate, "heart rate")
    else:
        writer.u8(value.heart_rate, "heart rate (uint8 format; set uint16_format above 255)")
    if value.energy_expended is not None:
        writer.u16(value.energy_expended, "energy expended")
    for rr in value.rr_intervals or ():
        writer.u16(rr, "RR-interval")
    return writer.to_bytes()
