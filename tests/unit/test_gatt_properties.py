"""Property tests for every characteristic: exact round trips, and fuzzing of the decoders.

Hypothesis prints the falsifying example and how to reproduce it when a property fails.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TypeVar
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitals import gatt
from vitals.gatt import (
    BatteryLevel,
    BloodPressureMeasurement,
    BloodPressureStatus,
    DecodeError,
    GlucoseConcentrationUnit,
    GlucoseMeasurement,
    GlucoseSensorStatus,
    GlucoseType,
    HeartRateMeasurement,
    Measurement,
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    PressureUnit,
    SampleLocation,
    SpO2PR,
    TemperatureMeasurement,
    TemperatureType,
    TemperatureUnit,
    UnitSystem,
    UUIDLike,
    WeightMeasurement,
    characteristic_uuid,
    decode,
    encode,
)

EXAMPLES = 300


def _number(mantissa_limit: int, exponents: tuple[int, int]) -> st.SearchStrategy[float]:
    return st.builds(
        lambda mantissa, exponent: float(Decimal(mantissa).scaleb(exponent)),
        st.integers(-mantissa_limit, mantissa_limit),
        st.integers(*exponents),
    )


# Every number SFLOAT / FLOAT can carry (mantissas at exponent 0 stop short of the specials),
# and None for a special value.
sfloats = st.one_of(st.none(), _number(2045, (-8, 7)))
floats32 = st.one_of(st.none(), _number(8388605, (-128, 127)))

timestamps = st.one_of(
    st.none(),
    st.datetimes(min_value=dt.datetime(1582, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda value: value.replace(microsecond=0)
    ),
)
uint8 = st.integers(0, 0xFF)
uint16 = st.integers(0, 0xFFFF)


_E = TypeVar("_E", TemperatureType, GlucoseType, SampleLocation)


def _code(enum_type: type[_E], limit: int) -> st.SearchStrategy[_E | int]:
    """Known codes as enum members, the others as plain ints (as the decoder returns them)."""

    def as_decoded(code: int) -> _E | int:
        try:
            return enum_type(code)
        except ValueError:
            return code

    return st.integers(0, limit).map(as_decoded)


heart_rates = st.booleans().flatmap(
    lambda wide: st.builds(
        HeartRateMeasurement,
        heart_rate=uint16 if wide else uint8,
        sensor_contact=st.none() | st.booleans(),
        energy_expended=st.none() | uint16,
        rr_intervals=st.none() | st.lists(uint16, max_size=9).map(tuple),
        uint16_format=st.just(wide),
    )
)

temperatures = st.builds(
    TemperatureMeasurement,
    temperature=floats32,
    unit=st.sampled_from(TemperatureUnit),
    timestamp=timestamps,
    temperature_type=st.none() | _code(TemperatureType, 0xFF),
)

blood_pressures = st.builds(
    BloodPressureMeasurement,
    systolic=sfloats,
    diastolic=sfloats,
    mean_arterial=sfloats,
    unit=st.sampled_from(PressureUnit),
    timestamp=timestamps,
    pulse_rate=sfloats,
    user_id=st.none() | uint8,
    status=st.none() | uint16.map(BloodPressureStatus),
)

measurement_statuses = st.none() | uint16.map(PlxMeasurementStatus)
device_sensor_statuses = st.none() | st.integers(0, 0xFFFFFF).map(PlxDeviceSensorStatus)

spot_checks = st.builds(
    PlxSpotCheckMeasurement,
    spo2=sfloats,
    pulse_rate=sfloats,
    timestamp=timestamps,
    measurement_status=measurement_statuses,
    device_sensor_status=device_sensor_statuses,
    pulse_amplitude_index=sfloats,
    device_clock_not_set=st.booleans(),
)

pairs = st.none() | st.builds(SpO2PR, spo2=sfloats, pulse_rate=sfloats)

continuous = st.builds(
    PlxContinuousMeasurement,
    spo2=sfloats,
    pulse_rate=sfloats,
    fast=pairs,
    slow=pairs,
    measurement_status=measurement_statuses,
    device_sensor_status=device_sensor_statuses,
    pulse_amplitude_index=sfloats,
)


def _steps(resolution: str, maximum: int) -> st.SearchStrategy[float]:
    return st.integers(0, maximum).map(lambda count: float(count * Decimal(resolution)))


@st.composite
def weights(draw: st.DrawFn) -> WeightMeasurement:
    unit = draw(st.sampled_from(UnitSystem))
    weight = draw(st.none() | _steps("0.005" if unit is UnitSystem.SI else "0.01", 0xFFFE))
    with_bmi = weight is not None and draw(st.booleans())
    return WeightMeasurement(
        weight=weight,
        unit=unit,
        timestamp=draw(timestamps),
        user_id=draw(st.none() | uint8),
        bmi=draw(_steps("0.1", 0xFFFF)) if with_bmi else None,
        height=draw(_steps("0.001" if unit is UnitSystem.SI else "0.1", 0xFFFF))
        if with_bmi
        else None,
    )


@st.composite
def glucoses(draw: st.DrawFn) -> GlucoseMeasurement:
    with_group = draw(st.booleans())
    return GlucoseMeasurement(
        sequence_number=draw(uint16),
        base_time=draw(timestamps),
        time_offset=draw(st.none() | st.integers(-0x8000, 0x7FFF)),
        concentration=draw(sfloats) if with_group else None,
        unit=draw(st.sampled_from(GlucoseConcentrationUnit)),
        sample_type=draw(_code(GlucoseType, 0x0F)) if with_group else None,
        sample_location=draw(_code(SampleLocation, 0x0F)) if with_group else None,
        sensor_status=draw(st.none() | uint16.map(GlucoseSensorStatus)),
        context_follows=draw(st.booleans()),
    )


batteries = st.builds(BatteryLevel, percent=st.integers(0, 100))

MEASUREMENTS: dict[str, st.SearchStrategy[Measurement]] = {
    "heart_rate": heart_rates,
    "temperature": temperatures,
    "blood_pressure": blood_pressures,
    "plx_spot_check": spot_checks,
    "plx_continuous": continuous,
    "weight": weights(),
    "glucose": glucoses(),
    "battery": batteries,
}

UUIDS = sorted(gatt.CHARACTERISTIC_NAMES, key=str)


def _decode_or_error(uuid16: UUIDLike, payload: bytes) -> Measurement | DecodeError:
    """The decoded value, or the DecodeError; any other exception fails the test."""
    try:
        return decode(uuid16, payload)
    except DecodeError as exc:
        return exc


def _round_trip(value: Measurement) -> bytes:
    data = encode(value)
    decoded = decode(characteristic_uuid(value), data)
    assert decoded == value
    assert type(decoded) is type(value)
    assert encode(decoded) == data  # one canonical encoding
    return data


@pytest.mark.parametrize("name", sorted(MEASUREMENTS))
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_round_trip_is_exact(name: str, data: st.DataObject) -> None:
    _round_trip(data.draw(MEASUREMENTS[name], label=name))


@pytest.mark.parametrize("uuid16", UUIDS, ids=[gatt.CHARACTERISTIC_NAMES[u] for u in UUIDS])
@settings(max_examples=EXAMPLES)
@given(payload=st.binary(max_size=48))
def test_random_bytes_decode_or_raise_decode_error(uuid16: int | UUID, payload: bytes) -> None:
    result = _decode_or_error(uuid16, payload)
    if isinstance(result, DecodeError):
        assert result.characteristic == gatt.CHARACTERISTIC_NAMES[uuid16]
        assert result.offset is not None
        assert 0 <= result.offset <= len(payload)
    else:
        # Whatever decodes can be encoded again and means the same.
        assert decode(uuid16, encode(result)) == result


@pytest.mark.parametrize("name", sorted(MEASUREMENTS))
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_damaged_payloads_decode_or_raise_decode_error(name: str, data: st.DataObject) -> None:
    """Valid payloads cut short, extended or with a byte flipped: no other exception."""
    value = data.draw(MEASUREMENTS[name], label=name)
    payload = bytearray(encode(value))
    damage = data.draw(st.sampled_from(["cut", "extend", "flip"]), label="damage")
    if damage == "cut":
        del payload[data.draw(st.integers(0, len(payload) - 1), label="cut at") :]
    elif damage == "extend":
        payload += data.draw(st.binary(min_size=1, max_size=4), label="extra bytes")
    else:
        index = data.draw(st.integers(0, len(payload) - 1), label="flip at")
        payload[index] ^= data.draw(st.integers(1, 0xFF), label="xor")
    uuid16 = characteristic_uuid(value)
    result = _decode_or_error(uuid16, bytes(payload))
    if not isinstance(result, DecodeError):
        assert decode(uuid16, encode(result)) == result


# Date Time parts at and around the edges of their ranges, to reach the date checks that random
# bytes almost never reach (30 February, hour 24, year 1581).
edge_date_times = st.builds(
    lambda year, month, day, hour, minute, second: (
        year.to_bytes(2, "little") + bytes((month, day, hour, minute, second))
    ),
    st.sampled_from([0, 1, 1581, 1582, 2023, 2024, 2100, 9999, 10000, 0xFFFF]),
    st.sampled_from([0, 1, 2, 4, 12, 13, 0xFF]),
    st.sampled_from([0, 1, 28, 29, 30, 31, 32, 0xFF]),
    st.sampled_from([0, 23, 24, 0xFF]),
    st.sampled_from([0, 59, 60]),
    st.sampled_from([0, 59, 60]),
)

# (characteristic, payload before the time stamp with its flag set, payload after it)
STAMPED = [
    (0x2A1C, "02 6C 01 00 FF", ""),
    (0x2A35, "02 79 00 51 00 5D 00", ""),
    (0x2A5E, "01 62 00 48 00", ""),
    (0x2A9D, "02 B4 36", ""),
    (0x2A18, "00 01 00", ""),
    (0x2A18, "0B 01 00", "F6 FF 5F B0 11 20 00"),
]


@pytest.mark.parametrize(("uuid16", "before", "after"), STAMPED)
@settings(max_examples=EXAMPLES)
@given(stamp=edge_date_times)
def test_edge_time_stamps_decode_or_raise_decode_error(
    uuid16: int, before: str, after: str, stamp: bytes
) -> None:
    prefix = bytes.fromhex(before)
    result = _decode_or_error(uuid16, prefix + stamp + bytes.fromhex(after))
    if isinstance(result, DecodeError):
        assert result.offset is not None
        assert len(prefix) <= result.offset < len(prefix) + 7
    else:
        assert decode(uuid16, encode(result)) == result
