"""Temperature Measurement (0x2A1C): FLOAT values, Fahrenheit, time stamp, type, truncation."""

from __future__ import annotations

import datetime as dt

import pytest

from vitals.gatt import (
    DecodeError,
    EncodeError,
    TemperatureMeasurement,
    TemperatureType,
    TemperatureUnit,
    decode_temperature,
    encode_temperature,
)

TM = TemperatureMeasurement
C = TemperatureUnit.CELSIUS
F = TemperatureUnit.FAHRENHEIT
STAMP = dt.datetime(2024, 3, 15, 10, 30, 45)

VECTORS = [
    pytest.param("00 6C 01 00 FF", TM(36.4), id="celsius"),
    pytest.param("01 DA 03 00 FF", TM(98.6, unit=F), id="fahrenheit"),
    pytest.param("02 6E 01 00 FF E8 07 03 0F 0A 1E 2D", TM(36.6, timestamp=STAMP), id="stamp"),
    pytest.param("04 6D 01 00 FF 02", TM(36.5, temperature_type=TemperatureType.BODY), id="type"),
    pytest.param(
        "07 DA 03 00 FF E8 07 01 02 03 04 05 06",
        TM(98.6, F, dt.datetime(2024, 1, 2, 3, 4, 5), TemperatureType.MOUTH),
        id="all-fields",
    ),
    pytest.param("00 FF FF 7F 00", TM(None), id="nan-is-none"),
    pytest.param("04 6C 01 00 FF 0A", TM(36.4, temperature_type=10), id="reserved-type-kept"),
    pytest.param("04 6C 01 00 FF 09", TM(36.4, C, None, TemperatureType.TYMPANUM), id="tympanum"),
    pytest.param("00 8C FF FF FF", TM(-11.6), id="negative"),  # mantissa -116
]

DECODE_ONLY = [
    pytest.param("04 72 01 00 FF 02", TM(37.0, temperature_type=2), id="370e-1"),
    pytest.param("00 FE FF 7F 00", TM(None), id="plus-infinity-is-none"),
    pytest.param("00 00 00 80 00", TM(None), id="nres-is-none"),
    pytest.param("F8 6C 01 00 FF", TM(36.4), id="reserved-flag-bits-ignored"),
    pytest.param("02 6C 01 00 FF 00 00 00 00 00 00 00", TM(36.4), id="unknown-stamp-is-none"),
    pytest.param("00 E0 8D 05 FB", TM(3.64), id="364000e-5"),
]

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("00", id="no-temperature"),
    pytest.param("00 6C 01 00", id="float-truncated"),
    pytest.param("02 6C 01 00 FF E8 07 03 0F 0A 1E", id="stamp-truncated"),
    pytest.param("04 6C 01 00 FF", id="type-missing"),
    pytest.param("00 6C 01 00 FF 00", id="trailing-byte"),
    pytest.param("02 6C 01 00 FF E8 07 0D 01 00 00 00", id="month-13"),
    pytest.param("02 6C 01 00 FF E8 07 01 01 18 00 00", id="hour-24"),
]


@pytest.mark.parametrize(("hex_data", "expected"), VECTORS)
def test_known_vectors(hex_data: str, expected: TemperatureMeasurement) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_temperature(data) == expected
    assert encode_temperature(expected) == data


@pytest.mark.parametrize(("hex_data", "expected"), DECODE_ONLY)
def test_decode_only_vectors(hex_data: str, expected: TemperatureMeasurement) -> None:
    assert decode_temperature(bytes.fromhex(hex_data)) == expected
    assert decode_temperature(encode_temperature(expected)) == expected


@pytest.mark.parametrize("hex_data", MALFORMED)
def test_malformed_payloads_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_temperature(bytes.fromhex(hex_data))
    assert info.value.characteristic == "Temperature Measurement"


def test_stamp_error_has_offset_in_payload() -> None:
    with pytest.raises(DecodeError) as info:
        decode_temperature(bytes.fromhex("02 6C 01 00 FF E8 07 0D 01 00 00 00"))
    assert info.value.offset == 7  # the month byte


@pytest.mark.parametrize(
    ("value", "celsius"),
    [
        (TM(36.4), 36.4),
        (TM(98.6, unit=F), 37.0),
        (TM(32.0, unit=F), 0.0),
        (TM(-40.0, unit=F), -40.0),
        (TM(102.2, unit=F), 39.0),
        (TM(None, unit=F), None),
    ],
)
def test_celsius(value: TemperatureMeasurement, celsius: float | None) -> None:
    assert value.celsius == celsius


def test_temperature_type_stays_an_enum() -> None:
    value = decode_temperature(bytes.fromhex("04 6C 01 00 FF 03"))
    assert value.temperature_type is TemperatureType.EAR


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(TM(36.43567891), id="too-many-digits"),
        pytest.param(TM(36.4, temperature_type=256), id="type-overflow"),
        pytest.param(TM(36.4, timestamp=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)), id="aware"),
        pytest.param(TM(float("nan")), id="nan-float"),
    ],
)
def test_unencodable_values_raise(value: TemperatureMeasurement) -> None:
    with pytest.raises(EncodeError):
        encode_temperature(value)
