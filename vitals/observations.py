"""From decoded GATT measurements to CareWatch observations: metric, value in the metric's
one unit, the device's own timestamp when it has one, the device user, and quality flags.

Pure. The gateway turns each observation into a :class:`vitals.wire.Reading` (adding ids,
receive time and ``seq``); the simulator's tests use it to compare what a central decoded with
what the model produced. Unit conversions (°F, kPa, lb, inches, kg/L, mol/L) happen here, from
the codecs' clinical properties. A value that is not a number on the wire (an IEEE-11073 special
value) makes no observation: nothing is ever invented for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vitals.gatt import (
    UNKNOWN_USER,
    BatteryLevel,
    BloodPressureMeasurement,
    BloodPressureStatus,
    GlucoseMeasurement,
    HeartRateMeasurement,
    Measurement,
    PendantEvent,
    PendantEventType,
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    RespiratoryRate,
    TemperatureMeasurement,
    WeightMeasurement,
)
from vitals.metrics import Metric
from vitals.wire import Quality

__all__ = ["Observation", "observations"]


@dataclass(slots=True, frozen=True)
class Observation:
    """One value of one metric taken from a measurement."""

    metric: Metric
    value: float
    device_time: dt.datetime | None = None
    """Naive time on the device's clock, if the payload carried one that is set."""
    user: int | None = None
    """The device's user index (0..254), if the device serves several users."""
    flags: tuple[Quality, ...] = ()


_PLX_QUESTIONABLE = (
    PlxMeasurementStatus.EARLY_ESTIMATED_DATA
    | PlxMeasurementStatus.MEASUREMENT_UNAVAILABLE
    | PlxMeasurementStatus.QUESTIONABLE_MEASUREMENT_DETECTED
    | PlxMeasurementStatus.INVALID_MEASUREMENT_DETECTED
    | PlxMeasurementStatus.CALIBRATION_ONGOING
)
_PLX_SIGNAL_DOUBT = (
    PlxDeviceSensorStatus.EQUIPMENT_MALFUNCTION_DETECTED
    | PlxDeviceSensorStatus.SIGNAL_PROCESSING_IRREGULARITY_DETECTED
    | PlxDeviceSensorStatus.INADEQUATE_SIGNAL_DETECTED
    | PlxDeviceSensorStatus.POOR_SIGNAL_DETECTED
    | PlxDeviceSensorStatus.ERRATIC_SIGNAL_DETECTED
    | PlxDeviceSensorStatus.NONPULSATILE_SIGNAL_DETECTED
    | PlxDeviceSensorStatus.QUESTIONABLE_PULSE_DETECTED
    | PlxDeviceSensorStatus.SENSOR_INTERFERENCE_DETECTED
    | PlxDeviceSensorStatus.SENSOR_MALFUNCTIONING
    | PlxDeviceSensorStatus.UNKNOWN_SENSOR_CONNECTED
)
_PLX_NO_CONTACT = (
    PlxDeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER
    | PlxDeviceSensorStatus.SENSOR_DISPLACED
    | PlxDeviceSensorStatus.SENSOR_DISCONNECTED
)
_BP_QUESTIONABLE = (
    BloodPressureStatus.CUFF_TOO_LOOSE | BloodPressureStatus.IMPROPER_MEASUREMENT_POSITION
)


def _user(user_id: int | None) -> int | None:
    return None if user_id is None or user_id == UNKNOWN_USER else user_id


def _flags(*pairs: tuple[bool, Quality]) -> tuple[Quality, ...]:
    return tuple(flag for condition, flag in pairs if condition)


def _plx_flags(
    measurement: PlxMeasurementStatus | int | None,
    sensor: PlxDeviceSensorStatus | int | None,
    device_time: bool,
) -> tuple[Quality, ...]:
    measurement = measurement or 0
    sensor = sensor or 0
    return _flags(
        (bool(sensor & _PLX_NO_CONTACT), Quality.NO_CONTACT),
        (bool(measurement & _PLX_QUESTIONABLE or sensor & _PLX_SIGNAL_DOUBT), Quality.QUESTIONABLE),
        (device_time, Quality.DEVICE_TIME),
    )


def _some(*items: tuple[Metric, float | None]) -> list[tuple[Metric, float]]:
    return [(metric, value) for metric, value in items if value is not None]


def observations(value: Measurement) -> tuple[Observation, ...]:
    """The observations a decoded measurement carries, in the metrics' own units."""
    match value:
        case HeartRateMeasurement():
            flags = _flags((value.sensor_contact is False, Quality.NO_CONTACT))
            found = [Observation(Metric.HEART_RATE, float(value.heart_rate), flags=flags)]
            found += [
                Observation(Metric.RR_INTERVAL, rr, flags=flags)
                for rr in value.rr_intervals_s or ()
            ]
            return tuple(found)
        case TemperatureMeasurement():
            celsius = value.celsius
            if celsius is None:
                return ()
            stamp = value.timestamp
            flags = _flags((stamp is not None, Quality.DEVICE_TIME))
            return (Observation(Metric.BODY_TEMPERATURE, celsius, stamp, flags=flags),)
        case BloodPressureMeasurement():
            status = value.status or BloodPressureStatus(0)
            stamp = value.timestamp
            flags = _flags(
                (bool(status & BloodPressureStatus.BODY_MOVEMENT), Quality.MOVEMENT),
                (bool(status & BloodPressureStatus.IRREGULAR_PULSE), Quality.IRREGULAR_PULSE),
                (bool(status & _BP_QUESTIONABLE), Quality.QUESTIONABLE),
                (stamp is not None, Quality.DEVICE_TIME),
            )
            items = _some(
                (Metric.SYSTOLIC_BP, value.systolic_mmhg),
                (Metric.DIASTOLIC_BP, value.diastolic_mmhg),
                (Metric.MEAN_ARTERIAL_PRESSURE, value.mean_arterial_mmhg),
                (Metric.PULSE_RATE, value.pulse_rate),
            )
            user = _user(value.user_id)
            return tuple(Observation(m, v, stamp, user, flags) for m, v in items)
        case PlxSpotCheckMeasurement():
            stamp = None if value.device_clock_not_set else value.timestamp
            flags = _plx_flags(
                value.measurement_status, value.device_sensor_status, stamp is not None
            )
            items = _some((Metric.SPO2, value.spo2), (Metric.PULSE_RATE, value.pulse_rate))
            return tuple(Observation(m, v, stamp, flags=flags) for m, v in items)
        case PlxContinuousMeasurement():
            flags = _plx_flags(value.measurement_status, value.device_sensor_status, False)
            items = _some((Metric.SPO2, value.spo2), (Metric.PULSE_RATE, value.pulse_rate))
            return tuple(Observation(m, v, flags=flags) for m, v in items)
        case WeightMeasurement():
            stamp = value.timestamp
            flags = _flags((stamp is not None, Quality.DEVICE_TIME))
            items = _some(
                (Metric.BODY_WEIGHT, value.kilograms),
                (Metric.BMI, value.bmi),
                (Metric.BODY_HEIGHT, value.height_m),
            )
            user = _user(value.user_id)
            return tuple(Observation(m, v, stamp, user, flags) for m, v in items)
        case GlucoseMeasurement():
            mmol = value.mmol_per_l
            if mmol is None:
                return ()
            stamp = value.measured_at
            flags = _flags(
                (bool(value.sensor_status), Quality.QUESTIONABLE),
                (stamp is not None, Quality.DEVICE_TIME),
            )
            return (Observation(Metric.BLOOD_GLUCOSE, mmol, stamp, flags=flags),)
        case RespiratoryRate():
            if value.breaths_per_minute is None:
                return ()
            flags = _flags((value.sensor_contact is False, Quality.NO_CONTACT))
            return (Observation(Metric.RESPIRATORY_RATE, value.breaths_per_minute, flags=flags),)
        case BatteryLevel():
            return (Observation(Metric.BATTERY_LEVEL, float(value.percent)),)
        case PendantEvent():
            metric = _PENDANT_METRICS.get(value.event)
            if metric is None:
                return ()
            stamp = value.timestamp
            flags = _flags((stamp is not None, Quality.DEVICE_TIME))
            return (Observation(metric, 1.0, stamp, flags=flags),)
    raise TypeError(f"{type(value).__name__} is not a decoded measurement")


_PENDANT_METRICS: dict[PendantEventType | int, Metric] = {
    PendantEventType.FALL: Metric.FALL,
    PendantEventType.HELP_BUTTON: Metric.HELP_BUTTON,
}
