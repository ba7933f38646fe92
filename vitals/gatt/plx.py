"""PLX Spot-Check (0x2A5E) and PLX Continuous (0x2A5F) Measurement (Pulse Oximeter Service 1.0).

Spot-check layout, little-endian::

    flags                     uint8
    SpO2                      SFLOAT  percent
    PR                        SFLOAT  beats per minute
    time stamp                Date Time (7 bytes), when flags bit 0 is set
    measurement status        uint16, when flags bit 1 is set
    device and sensor status  uint24, when flags bit 2 is set
    pulse amplitude index     SFLOAT  percent, when flags bit 3 is set
    (flags bit 4: the device clock is not set; no field)

Continuous layout::

    flags                     uint8
    SpO2PR-Normal             SFLOAT SpO2, SFLOAT PR
    SpO2PR-Fast               SFLOAT SpO2, SFLOAT PR, when flags bit 0 is set
    SpO2PR-Slow               SFLOAT SpO2, SFLOAT PR, when flags bit 1 is set
    measurement status        uint16, when flags bit 2 is set
    device and sensor status  uint24, when flags bit 3 is set
    pulse amplitude index     SFLOAT  percent, when flags bit 4 is set

The status bit meanings are in :class:`PlxMeasurementStatus` (bits 0-4 reserved) and
:class:`PlxDeviceSensorStatus` (bits 16-23 reserved), as in PLXS 1.0 and the GATT
Specification Supplement; Cypress's and Nordic's PLX servers use the same positions.

Decisions:

* Reserved flag bits (spot-check 5-7, continuous 5-7) are ignored when decoding (the Bluetooth
  rule for RFU bits) and written as 0; a field they might announce shows up as trailing bytes
  and is rejected.
* Reserved status bits are kept as they came, so the value round-trips.
* An SFLOAT special value decodes to ``None``. An optional pulse amplitude index sent as a
  special value is then indistinguishable from an absent one; an SpO2PR-Fast/Slow pair is
  kept as a pair (:class:`SpO2PR` with ``None`` members), so its presence is not lost.
* A time stamp whose date is "not known" (year, month or day 0) decodes to ``None``.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Final

from vitals.gatt.byteio import Buffer, ByteReader, ByteWriter

__all__ = [
    "PlxContinuousMeasurement",
    "PlxDeviceSensorStatus",
    "PlxMeasurementStatus",
    "PlxSpotCheckMeasurement",
    "SpO2PR",
    "decode_plx_continuous",
    "decode_plx_spot_check",
    "encode_plx_continuous",
    "encode_plx_spot_check",
]

SPOT_CHECK_NAME: Final = "PLX Spot-Check Measurement"
CONTINUOUS_NAME: Final = "PLX Continuous Measurement"

_SPOT_TIME_STAMP: Final = 0x01
_SPOT_MEASUREMENT_STATUS: Final = 0x02
_SPOT_DEVICE_SENSOR_STATUS: Final = 0x04
_SPOT_PULSE_AMPLITUDE_INDEX: Final = 0x08
_SPOT_CLOCK_NOT_SET: Final = 0x10

_CONT_FAST: Final = 0x01
_CONT_SLOW: Final = 0x02
_CONT_MEASUREMENT_STATUS: Final = 0x04
_CONT_DEVICE_SENSOR_STATUS: Final = 0x08
_CONT_PULSE_AMPLITUDE_INDEX: Final = 0x10


class PlxMeasurementStatus(enum.IntFlag):
    """Measurement Status (uint16); bits 0-4 are reserved."""

    MEASUREMENT_ONGOING = 1 << 5
    EARLY_ESTIMATED_DATA = 1 << 6
    VALIDATED_DATA = 1 << 7
    FULLY_QUALIFIED_DATA = 1 << 8
    DATA_FROM_MEASUREMENT_STORAGE = 1 << 9
    DATA_FOR_DEMONSTRATION = 1 << 10
    DATA_FOR_TESTING = 1 << 11
    CALIBRATION_ONGOING = 1 << 12
    MEASUREMENT_UNAVAILABLE = 1 << 13
    QUESTIONABLE_MEASUREMENT_DETECTED = 1 << 14
    INVALID_MEASUREMENT_DETECTED = 1 << 15


class PlxDeviceSensorStatus(enum.IntFlag):
    """Device and Sensor Status (uint24); bits 16-23 are reserved."""

    EXTENDED_DISPLAY_UPDATE_ONGOING = 1 << 0
    EQUIPMENT_MALFUNCTION_DETECTED = 1 << 1
    SIGNAL_PROCESSING_IRREGULARITY_DETECTED = 1 << 2
    INADEQUATE_SIGNAL_DETECTED = 1 << 3
    POOR_SIGNAL_DETECTED = 1 << 4
    LOW_PERFUSION_DETECTED = 1 << 5
    ERRATIC_SIGNAL_DETECTED = 1 << 6
    NONPULSATILE_SIGNAL_DETECTED = 1 << 7
    QUESTIONABLE_PULSE_DETECTED = 1 << 8
    SIGNAL_ANALYSIS_ONGOING = 1 << 9
    SENSOR_INTERFERENCE_DETECTED = 1 << 10
    SENSOR_UNCONNECTED_TO_USER = 1 << 11
    UNKNOWN_SENSOR_CONNECTED = 1 << 12
    SENSOR_DISPLACED = 1 << 13
    SENSOR_MALFUNCTIONING = 1 << 14
    SENSOR_DISCONNECTED = 1 << 15


@dataclass(slots=True, frozen=True)
class SpO2PR:
    """An SpO2 and pulse rate pair; either may be ``None`` (special value sent)."""

    spo2: float | None
    """Percent oxygen saturation of haemoglobin."""
    pulse_rate: float | None
    """Beats per minute."""


@dataclass(slots=True, frozen=True)
class PlxSpotCheckMeasurement:
    """One PLX Spot-Check Measurement, as sent."""

    spo2: float | None
    """Percent; ``None`` when the device sent a special value."""
    pulse_rate: float | None
    """Beats per minute; ``None`` when the device sent a special value."""
    timestamp: dt.datetime | None = None
    """Device wall-clock time (naive)."""
    measurement_status: PlxMeasurementStatus | None = None
    device_sensor_status: PlxDeviceSensorStatus | None = None
    pulse_amplitude_index: float | None = None
    """Percent."""
    device_clock_not_set: bool = False


@dataclass(slots=True, frozen=True)
class PlxContinuousMeasurement:
    """One PLX Continuous Measurement, as sent; :attr:`spo2` and :attr:`pulse_rate` are
    the SpO2PR-Normal pair."""

    spo2: float | None
    pulse_rate: float | None
    fast: SpO2PR | None = None
    slow: SpO2PR | None = None
    measurement_status: PlxMeasurementStatus | None = None
    device_sensor_status: PlxDeviceSensorStatus | None = None
    pulse_amplitude_index: float | None = None


def decode_plx_spot_check(data: Buffer) -> PlxSpotCheckMeasurement:
    """Decode a PLX Spot-Check Measurement payload."""
    reader = ByteReader(data, SPOT_CHECK_NAME)
    flags = reader.u8("flags")
    spo2 = reader.sfloat("SpO2")
    pulse_rate = reader.sfloat("PR")
    timestamp = reader.date_time("time stamp") if flags & _SPOT_TIME_STAMP else None
    measurement_status = (
        PlxMeasurementStatus(reader.u16("measurement status"))
        if flags & _SPOT_MEASUREMENT_STATUS
        else None
    )
    device_sensor_status = (
        PlxDeviceSensorStatus(reader.u24("device and sensor status"))
        if flags & _SPOT_DEVICE_SENSOR_STATUS
        else None
    )
    pai = reader.sfloat("pulse amplitude index") if flags & _SPOT_PULSE_AMPLITUDE_INDEX else None
    reader.finish()
    return PlxSpotCheckMeasurement(
        spo2=spo2,
        pulse_rate=pulse_rate,
        timestamp=timestamp,
        measurement_status=measurement_status,
        device_sensor_status=device_sensor_status,
        pulse_amplitude_index=pai,
        device_clock_not_set=bool(flags & _SPOT_CLOCK_NOT_SET),
    )


def encode_plx_spot_check(value: PlxSpotCheckMeasurement) -> bytes:
    """Encode a PLX Spot-Check Measurement; the flags follow from which fields are set."""
    flags = 0
    if value.timestamp is not None:
        flags |= _SPOT_TIME_STAMP
    if value.measurement_status is not None:
        flags |= _SPOT_MEASUREMENT_STATUS
    if value.device_sensor_status is not None:
        flags |= _SPOT_DEVICE_SENSOR_STATUS
    if value.pulse_amplitude_index is not None:
        flags |= _SPOT_PULSE_AMPLITUDE_INDEX
    if value.device_clock_not_set:
        flags |= _SPOT_CLOCK_NOT_SET
    writer = ByteWriter(SPOT_CHECK_NAME)
    writer.u8(flags, "flags")
    writer.sfloat(value.spo2, "SpO2")
    writer.sfloat(value.pulse_rate, "PR")
    if value.timestamp is not None:
        writer.date_time(value.timestamp, "time stamp")
    if value.measurement_status is not None:
        writer.u16(int(value.measurement_status), "measurement status")
    if value.device_sensor_status is not None:
        writer.u24(int(value.device_sensor_status), "device and sensor status")
    if value.pulse_amplitude_index is not None:
        writer.sfloat(value.pulse_amplitude_index, "pulse amplitude index")
    return writer.to_bytes()


def _read_pair(reader: ByteReader, name: str) -> SpO2PR:
    return SpO2PR(spo2=reader.sfloat(f"{name} SpO2"), pulse_rate=reader.sfloat(f"{name} PR"))


def decode_plx_continuous(data: Buffer) -> PlxContinuousMeasurement:
    """Decode a PLX Continuous Measurement payload."""
    reader = ByteReader(data, CONTINUOUS_NAME)
    flags = reader.u8("flags")
    normal = _read_pair(reader, "SpO2PR-Normal")
    fast = _read_pair(reader, "SpO2PR-Fast") if flags & _CONT_FAST else None
    slow = _read_pair(reader, "SpO2PR-Slow") if flags & _CONT_SLOW else None
    measurement_status = (
        PlxMeasurementStatus(reader.u16("measurement status"))
        if flags & _CONT_MEASUREMENT_STATUS
        else None
    )
    device_sensor_status = (
        PlxDeviceSensorStatus(reader.u24("device and sensor status"))
        if flags & _CONT_DEVICE_SENSOR_STATUS
        else None
    )
    pai = reader.sfloat("pulse amplitude index") if flags & _CONT_PULSE_AMPLITUDE_INDEX else None
    reader.finish()
    return PlxContinuousMeasurement(
        spo2=normal.spo2,
        pulse_rate=normal.pulse_rate,
        fast=fast,
        slow=slow,
        measurement_status=measurement_status,
        device_sensor_status=device_sensor_status,
        pulse_amplitude_index=pai,
    )


def encode_plx_continuous(value: PlxContinuousMeasurement) -> bytes:
    """Encode a PLX Continuous Measurement; the flags follow from which fields are set."""
    flags = 0
    if value.fast is not None:
        flags |= _CONT_FAST
    if value.slow is not None:
        flags |= _CONT_SLOW
    if value.measurement_status is not None:
        flags |= _CONT_MEASUREMENT_STATUS
    if value.device_sensor_status is not None:
        flags |= _CONT_DEVICE_SENSOR_STATUS
    if value.pulse_amplitude_index is not None:
        flags |= _CONT_PULSE_AMPLITUDE_INDEX
    writer = ByteWriter(CONTINUOUS_NAME)
    writer.u8(flags, "flags")
    writer.sfloat(value.spo2, "SpO2PR-Normal SpO2")
    writer.sfloat(value.pulse_rate, "SpO2PR-Normal PR")
    for name, pair in (("SpO2PR-Fast", value.fast), ("SpO2PR-Slow", value.slow)):
        if pair is not None:
            writer.sfloat(pair.spo2, f"{name} SpO2")
            writer.sfloat(pair.pulse_rate, f"{name} PR")
    if value.measurement_status is not None:
        writer.u16(int(value.measurement_status), "measurement status")
    if value.device_sensor_status is not None:
        writer.u24(int(value.device_sensor_status), "device and sensor status")
    if value.pulse_amplitude_index is not None:
        writer.sfloat(value.pulse_amplitude_index, "pulse amplitude index")
    return writer.to_bytes()
