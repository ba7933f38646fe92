"""Weight Measurement, characteristic 0x2A9D (Weight Scale Service 1.0).

Layout, little-endian::

    flags       uint8
    weight      uint16  0.005 kg steps, or 0.01 lb when flags bit 0 (imperial) is set;
                        0xFFFF means "measurement unsuccessful"
    time stamp  Date Time (7 bytes), when flags bit 1 is set
    user ID     uint8, when flags bit 2 is set (0xFF: unknown user)
    BMI         uint16  0.1 kg/m2 steps, when flags bit 3 is set
    height      uint16  0.001 m steps, or 0.1 in when imperial, when flags bit 3 is set

The dataclass holds the values in the unit that was sent (kg and m, or lb and in), as floats
that are exact multiples of the resolution (``70.005``, not a raw count); the encoder refuses
a value that is not a whole number of steps, so ``decode(encode(x)) == x`` holds exactly.
Round first when the value comes from arithmetic: ``round(round(kg / 0.005) * 0.005, 3)``.

Decisions:

* Reserved flag bits 4-7 are ignored when decoding (the Bluetooth rule for RFU bits) and
  written as 0; a field they might announce shows up as trailing bytes and is rejected.
* ``weight=None`` stands for 0xFFFF, "measurement unsuccessful". WSS says a scale that sends
  it shall send no optional field but the time stamp and user ID, so BMI and height with an
  unsuccessful weight raise :class:`DecodeError` (and :class:`EncodeError`).
* BMI and height share one flag: both or neither. One without the other cannot be encoded.
* A time stamp whose date is "not known" (year, month or day 0) decodes to ``None``.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter, scaled_count, scaled_value
from vitals.gatt.errors import EncodeError

__all__ = [
    "KG_PER_LB",
    "METRES_PER_INCH",
    "UnitSystem",
    "WeightMeasurement",
    "decode_weight",
    "encode_weight",
]

NAME: Final = "Weight Measurement"

KG_PER_LB: Final = Decimal("0.45359237")
"""The international avoirdupois pound, exactly."""
METRES_PER_INCH: Final = Decimal("0.0254")
"""The international inch, exactly."""

_IMPERIAL: Final = 0x01
_TIME_STAMP: Final = 0x02
_USER_ID: Final = 0x04
_BMI_AND_HEIGHT: Final = 0x08

_UNSUCCESSFUL: Final = 0xFFFF


class UnitSystem(enum.Enum):
    """Units of weight and height: SI (kg, m) or imperial (lb, in)."""

    SI = "SI"
    IMPERIAL = "imperial"

    @property
    def weight_resolution(self) -> Decimal:
        return Decimal("0.005") if self is UnitSystem.SI else Decimal("0.01")

    @property
    def height_resolution(self) -> Decimal:
        return Decimal("0.001") if self is UnitSystem.SI else Decimal("0.1")


_BMI_RESOLUTION: Final = Decimal("0.1")


@dataclass(slots=True, frozen=True)
class WeightMeasurement:
    """One Weight Measurement, in the unit system it was sent in."""

    weight: float | None
    """kg (SI) or lb (imperial); ``None``: measurement unsuccessful."""
    unit: UnitSystem = UnitSystem.SI
    timestamp: dt.datetime | None = None
    """Device wall-clock time (naive)."""
    user_id: int | None = None
    """The scale's user index; ``UNKNOWN_USER`` (0xFF) for an unknown user."""
    bmi: float | None = None
    """kg/m2; sent together with :attr:`height`."""
    height: float | None = None
    """m (SI) or in (imperial); sent together with :attr:`bmi`."""

    @property
    def kilograms(self) -> float | None:
        if self.weight is None or self.unit is UnitSystem.SI:
            return self.weight
        return float(Decimal(repr(self.weight)) * KG_PER_LB)

    @property
    def height_m(self) -> float | None:
        if self.height is None or self.unit is UnitSystem.SI:
            return self.height
        return float(Decimal(repr(self.height)) * METRES_PER_INCH)


def decode_weight(data: Buffer) -> WeightMeasurement:
    """Decode a Weight Measurement payload."""
    reader = ByteReader(data, NAME)
    flags = reader.u8("flags")
    unit = UnitSystem.IMPERIAL if flags & _IMPERIAL else UnitSystem.SI
    raw_weight = reader.u16("weight")
    timestamp = reader.date_time("time stamp") if flags & _TIME_STAMP else None
    user_id = reader.u8("user ID") if flags & _USER_ID else None
    bmi: float | None = None
    height: float | None = None
    if flags & _BMI_AND_HEIGHT:
        if raw_weight == _UNSUCCESSFUL:
            raise reader.error(
                "BMI and height present with an unsuccessful weight (0xFFFF), which WSS forbids",
                offset=0,
            )
        bmi = scaled_value(reader.u16("BMI"), _BMI_RESOLUTION)
        height = scaled_value(reader.u16("height"), unit.height_resolution)
    reader.finish()
    return WeightMeasurement(
        weight=None
        if raw_weight == _UNSUCCESSFUL
        else scaled_value(raw_weight, unit.weight_resolution),
        unit=unit,
        timestamp=timestamp,
        user_id=user_id,
        bmi=bmi,
        height=height,
    )


def encode_weight(value: WeightMeasurement) -> bytes:
    """Encode a Weight Measurement; the flags follow from which fields are set."""
    if (value.bmi is None) != (value.height is None):
        raise EncodeError("BMI and height are sent together: give both or neither", NAME)
    if value.weight is None and value.bmi is not None:
        raise EncodeError("an unsuccessful weight (None) cannot carry BMI and height", NAME)
    flags = 0
    if value.unit is UnitSystem.IMPERIAL:
        flags |= _IMPERIAL
    if value.timestamp is not None:
        flags |= _TIME_STAMP
    if value.user_id is not None:
        flags |= _USER_ID
    if value.bmi is not None:
        flags |= _BMI_AND_HEIGHT
    writer = ByteWriter(NAME)
    writer.u8(flags, "flags")
    if value.weight is None:
        writer.u16(_UNSUCCESSFUL, "weight")
    else:
        writer.u16(
            scaled_count(
                value.weight,
                value.unit.weight_resolution,
                field="weight",
                characteristic=NAME,
                maximum=_UNSUCCESSFUL - 1,
            ),
            "weight",
        )
    if value.timestamp is not None:
        writer.date_time(value.timestamp, "time stamp")
    if value.user_id is not None:
        writer.u8(value.user_id, "user ID")
    if value.bmi is not None and value.height is not None:
        writer.u16(
            scaled_count(
                value.bmi, _BMI_RESOLUTION, field="BMI", characteristic=NAME, maximum=0xFFFF
            ),
            "BMI",
        )
        writer.u16(
            scaled_count(
                value.height,
                value.unit.height_resolution,
                field="height",
                characteristic=NAME,
                maximum=0xFFFF,
            ),
            "height",
        )
    return writer.to_bytes()
