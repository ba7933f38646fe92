"""Glucose Measurement, characteristic 0x2A18 (Glucose Service 1.0).

Layout, little-endian::

    flags                 uint8
    sequence number       uint16
    base time             Date Time (7 bytes)
    time offset           sint16 minutes, when flags bit 0 is set
    concentration         SFLOAT  kg/L, or mol/L when flags bit 2 is set   } when flags
    type-sample location  uint8: type low nibble, sample location high     } bit 1 is set
    sensor status         uint16, when flags bit 3 is set
    (flags bit 4: a Glucose Measurement Context (0x2A34) follows; no field)

Type: 1 capillary whole blood, 2 capillary plasma, 3 venous whole blood, 4 venous plasma,
5 arterial whole blood, 6 arterial plasma, 7 undetermined whole blood, 8 undetermined plasma,
9 interstitial fluid, 10 control solution. Sample location: 1 finger, 2 alternate site test,
3 earlobe, 4 control solution, 15 not available. Sensor Status Annunciation bits are in
:class:`GlucoseSensorStatus`. (Nordic's and Cypress's GLS servers, and a TRUE METRIX AIR
capture, put the type in the low nibble.)

Decisions:

* Reserved flag bits 5-7 are ignored when decoding (the Bluetooth rule for RFU bits) and
  written as 0; a field they might announce shows up as trailing bytes and is rejected.
* Reserved type and sample location codes (type 0, 11-15; location 0, 5-14) are kept as plain
  ``int``: the concentration is worth more than the label.
* Concentration, type and sample location travel together: when the group is present
  :attr:`sample_type` and :attr:`sample_location` are not ``None``; :attr:`concentration` is
  ``None`` when the meter sent an SFLOAT special value. To encode the group, give at least the
  type and location (a ``None`` concentration is sent as NaN).
* The units flag is kept in :attr:`unit` even when no concentration is sent.
* A base time whose date is "not known" (year, month or day 0) decodes to ``None``.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter, code_or_int
from vitals.gatt.errors import EncodeError

__all__ = [
    "GLUCOSE_MOLAR_MASS",
    "GlucoseConcentrationUnit",
    "GlucoseMeasurement",
    "GlucoseSensorStatus",
    "GlucoseType",
    "SampleLocation",
    "decode_glucose",
    "encode_glucose",
]

NAME: Final = "Glucose Measurement"

GLUCOSE_MOLAR_MASS: Final = Decimal("180.156")
"""Grams per mole of glucose, C6H12O6."""

_TIME_OFFSET: Final = 0x01
_CONCENTRATION: Final = 0x02
_MOL_PER_L: Final = 0x04
_SENSOR_STATUS: Final = 0x08
_CONTEXT_FOLLOWS: Final = 0x10


class GlucoseConcentrationUnit(enum.Enum):
    KG_PER_L = "kg/L"
    MOL_PER_L = "mol/L"


class GlucoseType(enum.IntEnum):
    CAPILLARY_WHOLE_BLOOD = 1
    CAPILLARY_PLASMA = 2
    VENOUS_WHOLE_BLOOD = 3
    VENOUS_PLASMA = 4
    ARTERIAL_WHOLE_BLOOD = 5
    ARTERIAL_PLASMA = 6
    UNDETERMINED_WHOLE_BLOOD = 7
    UNDETERMINED_PLASMA = 8
    INTERSTITIAL_FLUID = 9
    CONTROL_SOLUTION = 10


class SampleLocation(enum.IntEnum):
    FINGER = 1
    ALTERNATE_SITE_TEST = 2
    EARLOBE = 3
    CONTROL_SOLUTION = 4
    NOT_AVAILABLE = 15


class GlucoseSensorStatus(enum.IntFlag):
    """Sensor Status Annunciation (uint16); bits 12-15 are reserved."""

    DEVICE_BATTERY_LOW = 1 << 0
    SENSOR_MALFUNCTION = 1 << 1
    SAMPLE_SIZE_INSUFFICIENT = 1 << 2
    STRIP_INSERTION_ERROR = 1 << 3
    STRIP_TYPE_INCORRECT = 1 << 4
    RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS = 1 << 5
    RESULT_LOWER_THAN_DEVICE_CAN_PROCESS = 1 << 6
    SENSOR_TEMPERATURE_TOO_HIGH = 1 << 7
    SENSOR_TEMPERATURE_TOO_LOW = 1 << 8
    SENSOR_READ_INTERRUPTED = 1 << 9
    GENERAL_DEVICE_FAULT = 1 << 10
    TIME_FAULT = 1 << 11


@dataclass(slots=True, frozen=True)
class GlucoseMeasurement:
    """One Glucose Measurement, in the unit it was sent in."""

    sequence_number: int
    base_time: dt.datetime | None
    """Device wall-clock time (naive); ``None`` when the meter does not know the date."""
    time_offset: int | None = None
    """Minutes to add to :attr:`base_time`."""
    concentration: float | None = None
    """In :attr:`unit`."""
    unit: GlucoseConcentrationUnit = GlucoseConcentrationUnit.KG_PER_L
    sample_type: GlucoseType | int | None = None
    sample_location: SampleLocation | int | None = None
    sensor_status: GlucoseSensorStatus | None = None
    context_follows: bool = False
    """A Glucose Measurement Context with the same sequence number follows."""

    @property
    def measured_at(self) -> dt.datetime | None:
        """Base time plus time offset (device wall-clock time); ``None`` if not known or
        past the year 9999."""
        if self.base_time is None:
            return None
        try:
            return self.base_time + dt.timedelta(minutes=self.time_offset or 0)
        except OverflowError:
            return None

    @property
    def mmol_per_l(self) -> float | None:
        """The concentration in millimoles per litre."""
        if self.concentration is None:
            return None
        value = Decimal(repr(self.concentration))
        if self.unit is GlucoseConcentrationUnit.MOL_PER_L:
            return float(value * 1000)
        return float(value * 1_000_000 / GLUCOSE_MOLAR_MASS)

    @property
    def mg_per_dl(self) -> float | None:
        """The concentration in milligrams per decilitre."""
        if self.concentration is None:
            return None
        value = Decimal(repr(self.concentration))
        if self.unit is GlucoseConcentrationUnit.KG_PER_L:
            return float(value * 100_000)
        return float(value * GLUCOSE_MOLAR_MASS * 100)


def decode_glucose(data: Buffer) -> GlucoseMeasurement:
    """Decode a Glucose Measurement payload."""
    reader = ByteReader(data, NAME)
    flags = reader.u8("flags")
    sequence_number = reader.u16("sequence number")
    base_time = reader.date_time("base time")
    time_offset = reader.s16("time offset") if flags & _TIME_OFFSET else None
    concentration: float | None = None
    sample_type: GlucoseType | int | None = None
    sample_location: SampleLocation | int | None = None
    if flags & _CONCENTRATION:
        concentration = reader.sfloat("glucose concentration")
        type_location = reader.u8("type-sample location")
        sample_type = code_or_int(GlucoseType, type_location & 0x0F)
        sample_location = code_or_int(SampleLocation, type_location >> 4)
    sensor_status = (
        GlucoseSensorStatus(reader.u16("sensor status annunciation"))
        if flags & _SENSOR_STATUS
        else None
    )
    reader.finish()
    return GlucoseMeasurement(
        sequence_number=sequence_number,
        base_time=base_time,
        time_offset=time_offset,
        concentration=concentration,
        unit=GlucoseConcentrationUnit.MOL_PER_L
        if flags & _MOL_PER_L
        else GlucoseConcentrationUnit.KG_PER_L,
        sample_type=sample_type,
        sample_location=sample_location,
        sensor_status=sensor_status,
        context_follows=bool(flags & _CONTEXT_FOLLOWS),
    )


def encode_glucose(value: GlucoseMeasurement) -> bytes:
    """Encode a Glucose Measurement; the flags follow from which fields are set."""
    group = (value.concentration, value.sample_type, value.sample_location)
    has_group = any(field is not None for field in group)
    if has_group and (value.sample_type is None or value.sample_location is None):
        raise EncodeError(
            "a concentration is sent with its type and sample location: give both", NAME
        )
    flags = 0
    if value.time_offset is not None:
        flags |= _TIME_OFFSET
    if has_group:
        flags |= _CONCENTRATION
    if value.unit is GlucoseConcentrationUnit.MOL_PER_L:
        flags |= _MOL_PER_L
    if value.sensor_status is not None:
        flags |= _SENSOR_STATUS
    if value.context_follows:
        flags |= _CONTEXT_FOLLOWS
    writer = ByteWriter(NAME)
    writer.u8(flags, "flags")
    writer.u16(value.sequence_number, "sequence number")
    writer.date_time(value.base_time, "base time")
    if value.time_offset is not None:
        writer.s16(value.time_offset, "time offset")
    if value.sample_type is not None and value.sample_location is not None:
        sample_type = int(value.sample_type)
        sample_location = int(value.sample_location)
        for what, code in (("type", sample_type), ("sample location", sample_location)):
            if not 0 <= code <= 0x0F:
                raise EncodeError(f"glucose {what} {code} does not fit a nibble (0..15)", NAME)
        writer.sfloat(value.concentration, "glucose concentration")
        writer.u8(sample_type | (sample_location << 4), "type-sample location")
    if value.sensor_status is not None:
        writer.u16(int(value.sensor_status), "sensor status annunciation")
    return writer.to_bytes()
