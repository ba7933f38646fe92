"""Blood Pressure Measurement, characteristic 0x2A35 (Blood Pressure Service 1.0 and 1.1).

Layout, little-endian::

    flags               uint8
    systolic            SFLOAT   mmHg, or kPa when flags bit 0 is set
    diastolic           SFLOAT   same unit
    mean arterial       SFLOAT   same unit
    time stamp          Date Time (7 bytes), when flags bit 1 is set
    pulse rate          SFLOAT   beats per minute, when flags bit 2 is set
    user ID             uint8, when flags bit 3 is set (0xFF: unknown user)
    measurement status  uint16, when flags bit 4 is set

Measurement Status bits: 0 body movement detected, 1 cuff too loose, 2 irregular pulse,
3-4 pulse rate range (0 within range, 1 above the upper limit, 2 below the lower limit,
3 reserved), 5 improper measurement position, 6-15 reserved.

Blood Pressure Service 1.1 left this characteristic's layout as it was: its UTC time stamp,
"user facing time" and "epoch start 2000" flags belong to the new Enhanced Blood Pressure
Measurement (0x2B34), which :mod:`vitals.gatt` does not decode.

Decisions:

* Reserved flag bits 5-7 are ignored when decoding (the Bluetooth rule for RFU bits) and
  written as 0; a field they might announce shows up as trailing bytes and is rejected.
* Reserved status bits are kept in :attr:`status` as they came, so the value round-trips.
* An SFLOAT special value decodes to ``None`` (a cuff that failed sends NaN, not 2047 mmHg).
  An optional pulse rate sent as a special value also decodes to ``None``, and is then
  indistinguishable from an absent one.
* A time stamp whose date is "not known" (year, month or day 0) decodes to ``None``.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter

__all__ = [
    "MMHG_PER_KPA",
    "BloodPressureMeasurement",
    "BloodPressureStatus",
    "PressureUnit",
    "PulseRateRange",
    "decode_blood_pressure",
    "encode_blood_pressure",
]

NAME: Final = "Blood Pressure Measurement"

MMHG_PER_KPA: Final = Decimal(1000) / Decimal("133.322387415")
"""1 kPa in conventional millimetres of mercury (1 mmHg = 133.322387415 Pa): 7.500615758."""

_KPA: Final = 0x01
_TIME_STAMP: Final = 0x02
_PULSE_RATE: Final = 0x04
_USER_ID: Final = 0x08
_STATUS: Final = 0x10


class PressureUnit(enum.Enum):
    MMHG = "mm[Hg]"
    KPA = "kPa"


class BloodPressureStatus(enum.IntFlag):
    """Measurement Status bits; unknown (reserved) bits are kept as they came."""

    BODY_MOVEMENT = 1 << 0
    CUFF_TOO_LOOSE = 1 << 1
    IRREGULAR_PULSE = 1 << 2
    PULSE_RATE_ABOVE_UPPER_LIMIT = 1 << 3
    """Pulse rate range field (bits 3-4) = 1."""
    PULSE_RATE_BELOW_LOWER_LIMIT = 1 << 4
    """Pulse rate range field (bits 3-4) = 2."""
    IMPROPER_MEASUREMENT_POSITION = 1 << 5


class PulseRateRange(enum.Enum):
    """The two-bit pulse rate range field of the Measurement Status."""

    WITHIN_RANGE = 0
    ABOVE_UPPER_LIMIT = 1
    BELOW_LOWER_LIMIT = 2
    RESERVED = 3


def _mmhg(value: float | None, unit: PressureUnit) -> float | None:
    if value is None or unit is PressureUnit.MMHG:
        return value
    return float(Decimal(repr(value)) * MMHG_PER_KPA)


@dataclass(slots=True, frozen=True)
class BloodPressureMeasurement:
    """One Blood Pressure Measurement, in the unit it was sent in."""

    systolic: float | None
    diastolic: float | None
    mean_arterial: float | None
    unit: PressureUnit = PressureUnit.MMHG
    timestamp: dt.datetime | None = None
    """Device wall-clock time (naive)."""
    pulse_rate: float | None = None
    """Beats per minute."""
    user_id: int | None = None
    """The device's user index; ``UNKNOWN_USER`` (0xFF) for an unknown user."""
    status: BloodPressureStatus | None = None

    @property
    def systolic_mmhg(self) -> float | None:
        return _mmhg(self.systolic, self.unit)

    @property
    def diastolic_mmhg(self) -> float | None:
        return _mmhg(self.diastolic, self.unit)

    @property
    def mean_arterial_mmhg(self) -> float | None:
        return _mmhg(self.mean_arterial, self.unit)

    @property
    def pulse_rate_range(self) -> PulseRateRange | None:
        """The pulse rate range field of :attr:`status`, if a status was sent."""
        if self.status is None:
            return None
        return PulseRateRange((int(self.status) >> 3) & 0b11)


def decode_blood_pressure(data: Buffer) -> BloodPressureMeasurement:
    """Decode a Blood Pressure Measurement payload."""
    reader = ByteReader(data, NAME)
    flags = reader.u8("flags")
    systolic = reader.sfloat("systolic")
    diastolic = reader.sfloat("diastolic")
    mean_arterial = reader.sfloat("mean arterial pressure")
    timestamp = reader.date_time("time stamp") if flags & _TIME_STAMP else None
    pulse_rate = reader.sfloat("pulse rate") if flags & _PULSE_RATE else None
    user_id = reader.u8("user ID") if flags & _USER_ID else None
    status = BloodPressureStatus(reader.u16("measurement status")) if flags & _STATUS else None
    reader.finish()
    return BloodPressureMeasurement(
        systolic=systolic,
        diastolic=diastolic,
        mean_arterial=mean_arterial,
        unit=PressureUnit.KPA if flags & _KPA else PressureUnit.MMHG,
        timestamp=timestamp,
        pulse_rate=pulse_rate,
        user_id=user_id,
        status=status,
    )


def encode_blood_pressure(value: BloodPressureMeasurement) -> bytes:
    """Encode a Blood Pressure Measurement; the flags follow from which fields are set."""
    flags = 0
    if value.unit is PressureUnit.KPA:
        flags |= _KPA
    if value.timestamp is not None:
        flags |= _TIME_STAMP
    if value.pulse_rate is not None:
        flags |= _PULSE_RATE
    if value.user_id is not None:
        flags |= _USER_ID
    if value.status is not None:
        flags |= _STATUS
    writer = ByteWriter(NAME)
    writer.u8(flags, "flags")
    writer.sfloat(value.systolic, "systolic")
    writer.sfloat(value.diastolic, "diastolic")
    writer.sfloat(value.mean_arterial, "mean arterial pressure")
    if value.timestamp is not None:
        writer.date_time(value.timestamp, "time stamp")
    if value.pulse_rate is not None:
        writer.sfloat(value.pulse_rate, "pulse rate")
    if value.user_id is not None:
        writer.u8(value.user_id, "user ID")
    if value.status is not None:
        writer.u16(int(value.status), "measurement status")
    return writer.to_bytes()
