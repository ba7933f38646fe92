"""Decode by characteristic UUID, encode by dataclass type."""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

from vitals.gatt import (
    battery,
    blood_pressure,
    glucose,
    heart_rate,
    pendant,
    plx,
    respiration,
    temperature,
    weight,
)
from vitals.gatt.battery import BatteryLevel, decode_battery_level, encode_battery_level
from vitals.gatt.blood_pressure import (
    BloodPressureMeasurement,
    decode_blood_pressure,
    encode_blood_pressure,
)
from vitals.gatt.byteio import Buffer
from vitals.gatt.errors import UnknownCharacteristicError
from vitals.gatt.glucose import GlucoseMeasurement, decode_glucose, encode_glucose
from vitals.gatt.heart_rate import HeartRateMeasurement, decode_heart_rate, encode_heart_rate
from vitals.gatt.pendant import (
    PENDANT_EVENT_CHARACTERISTIC,
    PendantEvent,
    decode_pendant_event,
    encode_pendant_event,
)
from vitals.gatt.plx import (
    PlxContinuousMeasurement,
    PlxSpotCheckMeasurement,
    decode_plx_continuous,
    decode_plx_spot_check,
    encode_plx_continuous,
    encode_plx_spot_check,
)
from vitals.gatt.respiration import (
    RESPIRATORY_RATE_CHARACTERISTIC,
    RespiratoryRate,
    decode_respiratory_rate,
    encode_respiratory_rate,
)
from vitals.gatt.temperature import (
    TemperatureMeasurement,
    decode_temperature,
    encode_temperature,
)
from vitals.gatt.uuids import (
    BATTERY_LEVEL,
    BLOOD_PRESSURE_MEASUREMENT,
    GLUCOSE_MEASUREMENT,
    HEART_RATE_MEASUREMENT,
    PLX_CONTINUOUS_MEASUREMENT,
    PLX_SPOT_CHECK_MEASUREMENT,
    TEMPERATURE_MEASUREMENT,
    WEIGHT_MEASUREMENT,
    UUIDLike,
    uuid16_from,
    uuid_to_str,
)
from vitals.gatt.weight import WeightMeasurement, decode_weight, encode_weight

__all__ = [
    "CHARACTERISTIC_NAMES",
    "Measurement",
    "characteristic_name",
    "characteristic_uuid",
    "decode",
    "encode",
]

Measurement: TypeAlias = (
    HeartRateMeasurement
    | TemperatureMeasurement
    | BloodPressureMeasurement
    | PlxSpotCheckMeasurement
    | PlxContinuousMeasurement
    | WeightMeasurement
    | GlucoseMeasurement
    | BatteryLevel
    | PendantEvent
    | RespiratoryRate
)
"""Any value :func:`decode` returns and :func:`encode` takes."""

_Key: TypeAlias = int | uuid_module.UUID
"""A 16-bit SIG UUID as an int, or a vendor characteristic's full UUID."""

_DECODERS: Final[Mapping[_Key, Callable[[Buffer], Measurement]]] = {
    HEART_RATE_MEASUREMENT: decode_heart_rate,
    TEMPERATURE_MEASUREMENT: decode_temperature,
    BLOOD_PRESSURE_MEASUREMENT: decode_blood_pressure,
    PLX_SPOT_CHECK_MEASUREMENT: decode_plx_spot_check,
    PLX_CONTINUOUS_MEASUREMENT: decode_plx_continuous,
    WEIGHT_MEASUREMENT: decode_weight,
    GLUCOSE_MEASUREMENT: decode_glucose,
    BATTERY_LEVEL: decode_battery_level,
    PENDANT_EVENT_CHARACTERISTIC: decode_pendant_event,
    RESPIRATORY_RATE_CHARACTERISTIC: decode_respiratory_rate,
}

CHARACTERISTIC_NAMES: Final[Mapping[_Key, str]] = {
    HEART_RATE_MEASUREMENT: heart_rate.NAME,
    TEMPERATURE_MEASUREMENT: temperature.NAME,
    BLOOD_PRESSURE_MEASUREMENT: blood_pressure.NAME,
    PLX_SPOT_CHECK_MEASUREMENT: plx.SPOT_CHECK_NAME,
    PLX_CONTINUOUS_MEASUREMENT: plx.CONTINUOUS_NAME,
    WEIGHT_MEASUREMENT: weight.NAME,
    GLUCOSE_MEASUREMENT: glucose.NAME,
    BATTERY_LEVEL: battery.NAME,
    PENDANT_EVENT_CHARACTERISTIC: pendant.NAME,
    RESPIRATORY_RATE_CHARACTERISTIC: respiration.NAME,
}
"""The characteristics :func:`decode` knows: SIG ones by 16-bit UUID, vendor ones by UUID."""


def _known(uuid: UUIDLike) -> _Key:
    code = uuid16_from(uuid)
    key: _Key = uuid_module.UUID(uuid_to_str(uuid)) if code is None else code
    if key not in _DECODERS:
        raise UnknownCharacteristicError(uuid_to_str(uuid))
    return key


def characteristic_name(uuid: UUIDLike) -> str:
    """The SIG name of a characteristic :func:`decode` knows."""
    return CHARACTERISTIC_NAMES[_known(uuid)]


def decode(uuid: UUIDLike, data: Buffer) -> Measurement:
    """Decode the payload of the characteristic ``uuid``.

    ``uuid`` is an int (``0x2A37``), a string (``"2a37"``, ``"0x2A37"``,
    ``"00002a37-0000-1000-8000-00805f9b34fb"``, any case) or a :class:`uuid.UUID`.
    Raises :class:`InvalidUUIDError` for a malformed one, :class:`UnknownCharacteristicError`
    for one without a decoder, and :class:`DecodeError` for a payload that does not fit.
    """
    return _DECODERS[_known(uuid)](data)


def characteristic_uuid(value: Measurement) -> int | uuid_module.UUID:
    """The UUID of the characteristic that carries ``value``: an int for a 16-bit SIG
    characteristic, the full UUID for a vendor one (the pendant)."""
    match value:
        case HeartRateMeasurement():
            return HEART_RATE_MEASUREMENT
        case TemperatureMeasurement():
            return TEMPERATURE_MEASUREMENT
        case BloodPressureMeasurement():
            return BLOOD_PRESSURE_MEASUREMENT
        case PlxSpotCheckMeasurement():
            return PLX_SPOT_CHECK_MEASUREMENT
        case PlxContinuousMeasurement():
            return PLX_CONTINUOUS_MEASUREMENT
        case WeightMeasurement():
            return WEIGHT_MEASUREMENT
        case GlucoseMeasurement():
            return GLUCOSE_MEASUREMENT
        case BatteryLevel():
            return BATTERY_LEVEL
        case PendantEvent():
            return PENDANT_EVENT_CHARACTERISTIC
        case RespiratoryRate():
            return RESPIRATORY_RATE_CHARACTERISTIC
    raise TypeError(f"{type(value).__name__} is not a GATT characteristic value")


def encode(value: Measurement) -> bytes:
    """Encode ``value`` as the payload of its characteristic (see :func:`characteristic_uuid`).

    Raises :class:`EncodeError` for a value the characteristic cannot carry.
    """
    match value:
        case HeartRateMeasurement():
            return encode_heart_rate(value)
        case TemperatureMeasurement():
            return encode_temperature(value)
        case BloodPressureMeasurement():
            return encode_blood_pressure(value)
        case PlxSpotCheckMeasurement():
            return encode_plx_spot_check(value)
        case PlxContinuousMeasurement():
            return encode_plx_continuous(value)
        case WeightMeasurement():
            return encode_weight(value)
        case GlucoseMeasurement():
            return encode_glucose(value)
        case BatteryLevel():
            return encode_battery_level(value)
        case PendantEvent():
            return encode_pendant_event(value)
        case RespiratoryRate():
            return encode_respiratory_rate(value)
    raise TypeError(f"{type(value).__name__} is not a GATT characteristic value")
