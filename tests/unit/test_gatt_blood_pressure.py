"""Blood Pressure Measurement (0x2A35): SFLOAT values, kPa, optional fields, status, truncation."""

from __future__ import annotations

import datetime as dt

import pytest

from vitals.gatt import (
    UNKNOWN_USER,
    BloodPressureMeasurement,
    BloodPressureStatus,
    DecodeError,
    EncodeError,
    PressureUnit,
    PulseRateRange,
    decode_blood_pressure,
    encode_blood_pressure,
)

BP = BloodPressureMeasurement
S = BloodPressureStatus
KPA = PressureUnit.KPA

VECTORS = [
    # A capture from a cuff: flags 0x1E, 95/65 mmHg, MAP 75, 2017-07-12 08:10:25, pulse 64,
    # user 0, status "irregular pulse".
    pytest.param(
        "1E 5F 00 41 00 4B 00 E1 07 07 0C 08 0A 19 40 00 00 04 00",
        BP(
            95.0,
            65.0,
            75.0,
            PressureUnit.MMHG,
            dt.datetime(2017, 7, 12, 8, 10, 25),
            64.0,
            0,
            S.IRREGULAR_PULSE,
        ),
        id="capture-all-fields",
    ),
    pytest.param("00 79 00 51 00 5D 00", BP(121.0, 81.0, 93.0), id="mmhg-minimal"),
    pytest.param("01 A1 F0 6B F0 7D F0", BP(16.1, 10.7, 12.5, KPA), id="kpa"),
    pytest.param("00 79 00 51 00 FF 07", BP(121.0, 81.0, None), id="map-nan"),
    pytest.param("00 FF 07 FF 07 FF 07", BP(None, None, None), id="failed-cuff-all-nan"),
    pytest.param(
        "18 79 00 51 00 5D 00 FF 09 00",
        BP(
            121.0,
            81.0,
            93.0,
            user_id=UNKNOWN_USER,
            status=S.BODY_MOVEMENT | S.PULSE_RATE_ABOVE_UPPER_LIMIT,
        ),
        id="unknown-user-and-status",
    ),
    pytest.param(
        "10 79 00 51 00 5D 00 20 80",
        BP(121.0, 81.0, 93.0, status=S(0x8020)),
        id="reserved-status-bit-kept",
    ),
    pytest.param("04 79 00 51 00 5D 00 48 00", BP(121.0, 81.0, 93.0, pulse_rate=72.0), id="pulse"),
    pytest.param(
        "06 79 00 51 00 5D 00 E8 07 03 0F 0A 1E 2D 48 00",
        BP(121.0, 81.0, 93.0, timestamp=dt.datetime(2024, 3, 15, 10, 30, 45), pulse_rate=72.0),
        id="stamp-and-pulse",
    ),
]

DECODE_ONLY = [
    pytest.param("04 79 00 51 00 5D 00 00 08", BP(121.0, 81.0, 93.0), id="pulse-nres-is-absent"),
    pytest.param("E0 79 00 51 00 5D 00", BP(121.0, 81.0, 93.0), id="reserved-flags-ignored"),
    pytest.param("00 BA F4 2A F3 A2 F3", BP(121.0, 81.0, 93.0), id="1210e-1"),
    pytest.param("00 FE 07 02 08 01 08", BP(None, None, None), id="infinities-and-reserved"),
]

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("00 79 00 51 00 5D", id="map-truncated"),
    pytest.param("00 79", id="diastolic-missing"),
    pytest.param("02 79 00 51 00 5D 00 E1 07", id="stamp-truncated"),
    pytest.param("04 79 00 51 00 5D 00 48", id="pulse-truncated"),
    pytest.param("08 79 00 51 00 5D 00", id="user-missing"),
    pytest.param("10 79 00 51 00 5D 00 20", id="status-truncated"),
    pytest.param("00 79 00 51 00 5D 00 00", id="trailing-byte"),
    pytest.param("02 79 00 51 00 5D 00 E1 07 07 20 08 0A 19", id="day-32"),
]


@pytest.mark.parametrize(("hex_data", "expected"), VECTORS)
def test_known_vectors(hex_data: str, expected: BloodPressureMeasurement) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_blood_pressure(data) == expected
    assert encode_blood_pressure(expected) == data


@pytest.mark.parametrize(("hex_data", "expected"), DECODE_ONLY)
def test_decode_only_vectors(hex_data: str, expected: BloodPressureMeasurement) -> None:
    assert decode_blood_pressure(bytes.fromhex(hex_data)) == expected
    assert decode_blood_pressure(encode_blood_pressure(expected)) == expected


@pytest.mark.parametrize("hex_data", MALFORMED)
def test_malformed_payloads_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_blood_pressure(bytes.fromhex(hex_data))
    assert info.value.characteristic == "Blood Pressure Measurement"


def test_kpa_converts_to_mmhg() -> None:
    value = decode_blood_pressure(bytes.fromhex("01 A1 F0 6B F0 7D F0"))
    # 1 kPa = 1000 / 133.322387415 mmHg = 7.500615758 mmHg
    assert value.systolic_mmhg == pytest.approx(120.75991371, abs=1e-8)
    assert value.diastolic_mmhg == pytest.approx(80.25658862, abs=1e-8)
    assert value.mean_arterial_mmhg == pytest.approx(93.75769698, abs=1e-8)


def test_mmhg_passes_through() -> None:
    value = BP(121.0, 81.0, None)
    assert (value.systolic_mmhg, value.diastolic_mmhg, value.mean_arterial_mmhg) == (
        121.0,
        81.0,
        None,
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, None),
        (S(0), PulseRateRange.WITHIN_RANGE),
        (S.PULSE_RATE_ABOVE_UPPER_LIMIT, PulseRateRange.ABOVE_UPPER_LIMIT),
        (S.PULSE_RATE_BELOW_LOWER_LIMIT | S.CUFF_TOO_LOOSE, PulseRateRange.BELOW_LOWER_LIMIT),
        (S(0x0018), PulseRateRange.RESERVED),
    ],
)
def test_pulse_rate_range(status: BloodPressureStatus | None, expected: PulseRateRange) -> None:
    assert BP(120.0, 80.0, 93.0, status=status).pulse_rate_range == expected


def test_status_bit_positions() -> None:
    assert [int(flag) for flag in S] == [0x01, 0x02, 0x04, 0x08, 0x10, 0x20]
    decoded = decode_blood_pressure(bytes.fromhex("10 79 00 51 00 5D 00 23 00"))
    assert decoded.status == S.BODY_MOVEMENT | S.CUFF_TOO_LOOSE | S.IMPROPER_MEASUREMENT_POSITION


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(BP(120.25, 80.0, 93.0), id="too-many-digits"),
        pytest.param(BP(120.0, 80.0, 93.0, user_id=256), id="user-overflow"),
        pytest.param(BP(120.0, 80.0, 93.0, status=S(0x10000)), id="status-overflow"),
        pytest.param(BP(120.0, 80.0, 93.0, pulse_rate=2047.0), id="pulse-is-nan-mantissa"),
    ],
)
def test_unencodable_values_raise(value: BloodPressureMeasurement) -> None:
    with pytest.raises(EncodeError):
        encode_blood_pressure(value)
