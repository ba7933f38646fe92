"""The kinds of device CareWatch reads, and what the gateway does with each.

This is shared vocabulary: the simulator serves these services, the gateway subscribes to these
characteristics, and the alert engine expects readings at these cadences. Everything is
addressed by UUID; the 16-bit SIG numbers come from ``vitals.gatt.uuids``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from vitals.gatt import uuids as sig
from vitals.gatt.pendant import PENDANT_EVENT_CHARACTERISTIC, PENDANT_SERVICE
from vitals.gatt.respiration import RESPIRATORY_RATE_CHARACTERISTIC, WEARABLE_EXTENSION_SERVICE
from vitals.metrics import Metric

__all__ = [
    "DeviceKind",
    "DeviceKindInfo",
]


class DeviceKind(StrEnum):
    WEARABLE = "wearable"
    PULSE_OXIMETER = "pulse_oximeter"
    THERMOMETER = "thermometer"
    BP_CUFF = "bp_cuff"
    SCALE = "scale"
    GLUCOSE_METER = "glucose_meter"
    PENDANT = "pendant"

    @property
    def info(self) -> DeviceKindInfo:
        return _KINDS[self]


@dataclass(slots=True, frozen=True)
class DeviceKindInfo:
    """What a device kind serves and how the gateway treats it."""

    services: tuple[uuid.UUID, ...]
    """Services the device advertises and serves (the first is its primary one)."""
    subscribe: tuple[uuid.UUID, ...]
    """Characteristics the gateway subscribes to (notify or indicate), by UUID."""
    spot: bool
    """A spot-measurement device: it advertises when a measurement is ready, sends it once a
    central subscribes, and is released afterwards. Otherwise the gateway stays connected."""
    cadence: timedelta
    """How often a reading is expected; silence for several cadences is a technical alert."""
    metrics: tuple[Metric, ...]
    """The metrics its readings carry."""


def _sig(value: int) -> uuid.UUID:
    return uuid.UUID(sig.uuid16_to_str(value))


_BATTERY = _sig(sig.BATTERY_SERVICE)
_DEVICE_INFORMATION = _sig(sig.DEVICE_INFORMATION_SERVICE)

_KINDS: dict[DeviceKind, DeviceKindInfo] = {
    DeviceKind.WEARABLE: DeviceKindInfo(
        services=(
            _sig(sig.HEART_RATE_SERVICE),
            _BATTERY,
            _DEVICE_INFORMATION,
            WEARABLE_EXTENSION_SERVICE,
        ),
        subscribe=(
            _sig(sig.HEART_RATE_MEASUREMENT),
            RESPIRATORY_RATE_CHARACTERISTIC,
            _sig(sig.BATTERY_LEVEL),
        ),
        spot=False,
        cadence=timedelta(seconds=1),
        metrics=(
            Metric.HEART_RATE,
            Metric.RR_INTERVAL,
            Metric.RESPIRATORY_RATE,
            Metric.BATTERY_LEVEL,
        ),
    ),
    DeviceKind.PULSE_OXIMETER: DeviceKindInfo(
        services=(_sig(sig.PULSE_OXIMETER_SERVICE), _BATTERY, _DEVICE_INFORMATION),
        subscribe=(
            _sig(sig.PLX_CONTINUOUS_MEASUREMENT),
            _sig(sig.PLX_SPOT_CHECK_MEASUREMENT),
            _sig(sig.BATTERY_LEVEL),
        ),
        spot=False,
        cadence=timedelta(seconds=1),
        metrics=(Metric.SPO2, Metric.PULSE_RATE, Metric.BATTERY_LEVEL),
    ),
    DeviceKind.THERMOMETER: DeviceKindInfo(
        services=(_sig(sig.HEALTH_THERMOMETER_SERVICE), _DEVICE_INFORMATION),
        subscribe=(_sig(sig.TEMPERATURE_MEASUREMENT),),
        spot=True,
        cadence=timedelta(hours=12),
        metrics=(Metric.BODY_TEMPERATURE,),
    ),
    DeviceKind.BP_CUFF: DeviceKindInfo(
        services=(_sig(sig.BLOOD_PRESSURE_SERVICE), _DEVICE_INFORMATION),
        subscribe=(_sig(sig.BLOOD_PRESSURE_MEASUREMENT),),
        spot=True,
        cadence=timedelta(hours=12),
        metrics=(
            Metric.SYSTOLIC_BP,
            Metric.DIASTOLIC_BP,
            Metric.MEAN_ARTERIAL_PRESSURE,
            Metric.PULSE_RATE,
        ),
    ),
    DeviceKind.SCALE: DeviceKindInfo(
        services=(_sig(sig.WEIGHT_SCALE_SERVICE), _DEVICE_INFORMATION),
        subscribe=(_sig(sig.WEIGHT_MEASUREMENT),),
        spot=True,
        cadence=timedelta(hours=24),
        metrics=(Metric.BODY_WEIGHT, Metric.BMI, Metric.BODY_HEIGHT),
    ),
    DeviceKind.GLUCOSE_METER: DeviceKindInfo(
        services=(_sig(sig.GLUCOSE_SERVICE), _DEVICE_INFORMATION),
        subscribe=(_sig(sig.GLUCOSE_MEASUREMENT),),
        spot=True,
        cadence=timedelta(hours=24),
        metrics=(Metric.BLOOD_GLUCOSE,),
    ),
    DeviceKind.PENDANT: DeviceKindInfo(
        services=(PENDANT_SERVICE, _BATTERY, _DEVICE_INFORMATION),
        subscribe=(PENDANT_EVENT_CHARACTERISTIC, _sig(sig.BATTERY_LEVEL)),
        spot=False,
        # The pendant stays connected; its battery notification is its heartbeat.
        cadence=timedelta(minutes=5),
        metrics=(Metric.FALL, Metric.HELP_BUTTON, Metric.BATTERY_LEVEL),
    ),
}
