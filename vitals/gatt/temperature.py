"""Temperature Measurement, characteristic 0x2A1C (Health Thermometer Service 1.0).

Layout, little-endian::

    flags             uint8
    temperature       FLOAT (IEEE 11073 32-bit)  degrees Celsius, or Fahrenheit if bit 0 set
    time stamp        Date Time (7 bytes), when flags bit 1 is set
    temperature type  uint8, when flags bit 2 is set

Temperature Type codes: 1 armpit, 2 body (general), 3 ear (usually ear lobe), 4 finger,
5 gastro-intestinal tract, 6 mouth, 7 rectum, 8 toe, 9 tympanum (ear drum); 0 and 10-255 are
reserved.

Decisions:

* Reserved flag bits 3-7 are ignored when decoding (the Bluetooth rule for RFU bits) and
  written as 0; a field they might announce in a later version shows up as trailing bytes
  and is rejected.
* A reserved temperature type code is kept as a plain ``int``, not rejected: a fever reading
  is worth more than the label of the body site it came from.
* A FLOAT special value (NaN, NRes, +-INFINITY, reserved) decodes to ``temperature=None``.
* A time stamp whose date is "not known" (year, month or day 0) decodes to ``None``, as if no
  time stamp had been sent.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter, code_or_int

__all__ = [
    "TemperatureMeasurement",
    "TemperatureType",
    "TemperatureUnit",
    "decode_temperature",
    "encode_temperature",
]

NAME: Final = "Temperature Measurement"

_FAHRENHEIT: Final = 0x01
_TIME_STAMP: Final = 0x02
_TEMPERATURE_TYPE: Final = 0x04


class TemperatureUnit(enum.Enum):
    CELSIUS = "Cel"
    FAHRENHEIT = "[degF]"


class TemperatureType(enum.IntEnum):
    """Where on the body the temperature was taken (Temperature Type, 0x2A1D)."""

    ARMPIT = 1
    BODY = 2
    EAR = 3
    FINGER = 4
    GASTROINTESTINAL_TRACT = 5
    MOUTH = 6
    RECTUM = 7
    TOE = 8
    TYMPANUM = 9


@dataclass(slots=True, frozen=True)
class TemperatureMeasurement:
    """One Temperature Measurement, in the unit it was sent in."""

    temperature: float | None
    """In :attr:`unit`; ``None`` when the device sent a special value (no number)."""
    unit: TemperatureUnit = TemperatureUnit.CELSIUS
    timestamp: dt.datetime | None = None
    """Device wall-clock time (naive)."""
    temperature_type: TemperatureType | int | None = None
    """A :class:`TemperatureType`, or the raw code when it is a reserved one."""

    @property
    def celsius(self) -> float | None:
        """The temperature in degrees Celsius."""
        if self.temperature is None or self.unit is TemperatureUnit.CELSIUS:
            return self.temperature
        return float((Decimal(repr(self.temperature)) - 32) * 5 / 9)


def decode_temperature(data: Buffer) -> TemperatureMeasurement:
    """Decode a Temperature Measurement payload."""
    reader = ByteReader(data, NAME)
    flags = reader.u8("flags")
    temperature = reader.float32("temperature")
    timestamp = reader.date_time("time stamp") if flags & _TIME_STAMP else None
    temperature_type = (
        code_or_int(TemperatureType, reader.u8("temperature type"))
        if flags & _TEMPERATURE_TYPE
        else None
    )
    reader.finish()
    return TemperatureMeasurement(
        temperature=temperature,
        unit=TemperatureUnit.FAHRENHEIT if flags & _FAHRENHEIT else TemperatureUnit.CELSIUS,
        timestamp=timestamp,
        temperature_type=temperature_type,
    )


def encode_temperature(value: TemperatureMeasurement) -> bytes:
    """Encode a Temperature Measurement; the flags follow from which fields are set."""
    flags = 0
    if value.unit is TemperatureUnit.FAHRENHEIT:
        flags |= _FAHRENHEIT
    if value.timestamp is not None:
        flags |= _TIME_STAMP
    if value.temperature_type is not None:
        flags |= _TEMPERATURE_TYPE
    writer = ByteWriter(NAME)
    writer.u8(flags, "flags")
    writer.float32(value.temperature, "temperature")
    if value.timestamp is not None:
        writer.date_time(value.timestamp, "time stamp")
    if value.temperature_type is not None:
        writer.u8(int(value.temperature_type), "temperature type")
    return writer.to_bytes()
