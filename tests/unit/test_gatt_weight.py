"""Weight Measurement (0x2A9D): resolutions, imperial units, BMI and height, 0xFFFF, truncation."""

from __future__ import annotations

import datetime as dt

import pytest

from vitals.gatt import (
    UNKNOWN_USER,
    DecodeError,
    EncodeError,
    UnitSystem,
    WeightMeasurement,
    decode_weight,
    encode_weight,
)

WM = WeightMeasurement
LB = UnitSystem.IMPERIAL
STAMP = dt.datetime(2024, 2, 29, 6, 30, 0)

VECTORS = [
    pytest.param("00 B4 36", WM(70.02), id="si"),  # 14004 * 0.005 kg
    pytest.param("01 6C 3D", WM(157.24, LB), id="imperial"),  # 15724 * 0.01 lb
    pytest.param(
        "06 B4 36 E8 07 02 1D 06 1E 00 01",
        WM(70.02, timestamp=STAMP, user_id=1),
        id="stamp-and-user",
    ),
    pytest.param("08 B4 36 DB 00 BE 06", WM(70.02, bmi=21.9, height=1.726), id="bmi-height-si"),
    pytest.param(
        "09 6C 3D DB 00 B8 02", WM(157.24, LB, bmi=21.9, height=69.6), id="bmi-height-imperial"
    ),
    pytest.param("00 FF FF", WM(None), id="unsuccessful"),
    pytest.param(
        "06 FF FF E8 07 02 1D 06 1E 00 FF",
        WM(None, timestamp=STAMP, user_id=UNKNOWN_USER),
        id="unsuccessful-stamp-user",
    ),
    pytest.param(
        "0E B4 36 E8 07 02 1D 06 1E 00 02 DB 00 BE 06",
        WM(70.02, UnitSystem.SI, STAMP, 2, 21.9, 1.726),
        id="all-fields",
    ),
    # 65 kg at 2025-12-31 23:59:58, user 2, BMI 21.2, 1.755 m (a vector from an open decoder's
    # test suite, recomputed from the field layout)
    pytest.param(
        "0E C8 32 E9 07 0C 1F 17 3B 3A 02 D4 00 DB 06",
        WM(65.0, UnitSystem.SI, dt.datetime(2025, 12, 31, 23, 59, 58), 2, 21.2, 1.755),
        id="open-decoder-vector",
    ),
    pytest.param("00 01 00", WM(0.005), id="one-step"),
    pytest.param("00 FE FF", WM(327.67), id="largest-si"),  # 65534 * 0.005
]

DECODE_ONLY = [
    pytest.param("F0 B4 36", WM(70.02), id="reserved-flags-ignored"),
    pytest.param("02 B4 36 00 00 00 00 00 00 00", WM(70.02), id="unknown-stamp-is-none"),
]

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("00 B4", id="weight-truncated"),
    pytest.param("02 B4 36 E8 07 02", id="stamp-truncated"),
    pytest.param("04 B4 36", id="user-missing"),
    pytest.param("08 B4 36 DB 00 BE", id="height-truncated"),
    pytest.param("08 B4 36 DB", id="bmi-truncated"),
    pytest.param("00 B4 36 00", id="trailing-byte"),
    pytest.param("08 FF FF DB 00 BE 06", id="unsuccessful-with-bmi"),
    pytest.param("02 B4 36 E8 07 02 1E 06 1E 00", id="30-february"),
]


@pytest.mark.parametrize(("hex_data", "expected"), VECTORS)
def test_known_vectors(hex_data: str, expected: WeightMeasurement) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_weight(data) == expected
    assert encode_weight(expected) == data


@pytest.mark.parametrize(("hex_data", "expected"), DECODE_ONLY)
def test_decode_only_vectors(hex_data: str, expected: WeightMeasurement) -> None:
    assert decode_weight(bytes.fromhex(hex_data)) == expected
    assert decode_weight(encode_weight(expected)) == expected


@pytest.mark.parametrize("hex_data", MALFORMED)
def test_malformed_payloads_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_weight(bytes.fromhex(hex_data))
    assert info.value.characteristic == "Weight Measurement"


def test_imperial_converts_to_si() -> None:
    value = decode_weight(bytes.fromhex("09 6C 3D DB 00 B8 02"))
    assert value.kilograms == pytest.approx(71.3228642588, abs=1e-10)  # 157.24 * 0.45359237
    assert value.height_m == pytest.approx(1.76784, abs=1e-12)  # 69.6 * 0.0254


def test_si_passes_through() -> None:
    value = WM(70.02, bmi=21.9, height=1.726)
    assert (value.kilograms, value.height_m) == (70.02, 1.726)
    assert (WM(None).kilograms, WM(None).height_m) == (None, None)


def test_resolution_is_exact() -> None:
    # 14001 * 0.005 is 70.005 exactly, not 70.00500000000001
    assert decode_weight(bytes.fromhex("00 B1 36")).weight == 70.005


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(WM(70.003), id="not-a-5g-step"),
        pytest.param(WM(157.245, LB), id="not-a-0.01lb-step"),
        pytest.param(WM(327.675), id="0xFFFF-is-reserved"),
        pytest.param(WM(-0.005), id="negative"),
        pytest.param(WM(70.0, bmi=21.9), id="bmi-without-height"),
        pytest.param(WM(70.0, height=1.7), id="height-without-bmi"),
        pytest.param(WM(None, bmi=21.9, height=1.7), id="unsuccessful-with-bmi"),
        pytest.param(WM(70.0, bmi=21.95, height=1.7), id="bmi-step"),
        pytest.param(WM(70.0, bmi=21.9, height=1.7005), id="height-step"),
        pytest.param(WM(70.0, user_id=256), id="user-overflow"),
        pytest.param(WM(float("inf")), id="infinite"),
        pytest.param(WM(float("nan")), id="nan"),
    ],
)
def test_unencodable_values_raise(value: WeightMeasurement) -> None:
    with pytest.raises(EncodeError):
        encode_weight(value)


def test_arithmetic_value_encodes_after_rounding() -> None:
    kg = 70.02 * 1.0000000000000002  # what arithmetic hands over
    with pytest.raises(EncodeError):
        encode_weight(WM(kg))
    assert encode_weight(WM(round(round(kg / 0.005) * 0.005, 3))) == bytes.fromhex("00 B4 36")
