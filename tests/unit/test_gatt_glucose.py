"""Glucose Measurement (0x2A18): captures, units, nibbles, time offset, status, truncation."""

from __future__ import annotations

import datetime as dt

import pytest

from vitals.gatt import (
    DecodeError,
    EncodeError,
    GlucoseConcentrationUnit,
    GlucoseMeasurement,
    GlucoseSensorStatus,
    GlucoseType,
    SampleLocation,
    decode_glucose,
    encode_glucose,
)

GM = GlucoseMeasurement
MOL = GlucoseConcentrationUnit.MOL_PER_L
KG = GlucoseConcentrationUnit.KG_PER_L
NEW_YEAR = dt.datetime(2024, 1, 1)

VECTORS = [
    # Two notifications captured from a TRUE METRIX AIR meter (published with an open
    # decoder): 167 and 117 mg/dL as kg/L, undetermined plasma from a finger, context follows.
    pytest.param(
        "12 E4 00 E6 07 09 09 11 33 00 A7 B0 18",
        GM(
            228,
            dt.datetime(2022, 9, 9, 17, 51),
            None,
            0.00167,
            KG,
            GlucoseType.UNDETERMINED_PLASMA,
            SampleLocation.FINGER,
            None,
            True,
        ),
        id="true-metrix-228",
    ),
    pytest.param(
        "12 EB 00 E6 07 09 0D 06 1A 00 75 B0 18",
        GM(235, dt.datetime(2022, 9, 13, 6, 26), None, 0.00117, KG, 8, 1, None, True),
        id="true-metrix-235",
    ),
    pytest.param(
        "01 01 00 E8 07 01 01 00 00 00 F6 FF", GM(1, NEW_YEAR, time_offset=-10), id="time-offset"
    ),
    pytest.param(
        "0A 02 00 E8 07 01 01 08 00 00 5F B0 11 20 00",
        GM(
            2,
            dt.datetime(2024, 1, 1, 8),
            None,
            0.00095,
            KG,
            GlucoseType.CAPILLARY_WHOLE_BLOOD,
            SampleLocation.FINGER,
            GlucoseSensorStatus.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS,
        ),
        id="sensor-status",
    ),
    pytest.param("00 03 00 00 00 00 00 00 00 00", GM(3, None), id="base-time-not-known"),
    pytest.param(
        "02 04 00 E8 07 01 01 00 00 00 5F B0 F0",
        GM(4, NEW_YEAR, None, 0.00095, KG, 0, SampleLocation.NOT_AVAILABLE),
        id="reserved-type-zero-location-not-available",
    ),
    pytest.param(
        "02 04 00 E8 07 01 01 00 00 00 5F B0 5B",
        GM(4, NEW_YEAR, None, 0.00095, KG, 11, 5),
        id="reserved-type-and-location-kept",
    ),
    pytest.param(
        "02 05 00 E8 07 01 01 00 00 00 FF 07 11",
        GM(5, NEW_YEAR, None, None, KG, 1, 1),
        id="concentration-nan-with-type",
    ),
    pytest.param("04 07 00 E8 07 01 01 00 00 00", GM(7, NEW_YEAR, unit=MOL), id="unit-flag-alone"),
    pytest.param(
        "06 08 00 E8 07 01 01 00 00 00 45 C0 12",
        GM(8, NEW_YEAR, None, 0.0069, MOL, GlucoseType.CAPILLARY_PLASMA, SampleLocation.FINGER),
        id="mol-per-litre",
    ),
    pytest.param(
        "08 09 00 E8 07 01 01 00 00 00 00 F0",
        GM(9, NEW_YEAR, sensor_status=GlucoseSensorStatus(0xF000)),
        id="reserved-status-bits-kept",
    ),
]

DECODE_ONLY = [
    # A meter sending 12.0 mmol/L as 120e-4 mol/L, capillary whole blood from a finger.
    pytest.param(
        "06 06 00 E3 07 04 1A 0A 27 39 78 C0 11",
        GM(6, dt.datetime(2019, 4, 26, 10, 39, 57), None, 0.012, MOL, 1, 1),
        id="mol-per-litre-capture",
    ),
    pytest.param("E0 03 00 00 00 00 00 00 00 00", GM(3, None), id="reserved-flags-ignored"),
    pytest.param("00 03 00 E8 07 00 01 00 00 00", GM(3, None), id="month-not-known"),
]

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("00 01", id="sequence-truncated"),
    pytest.param("00 01 00 E8 07 01 01 00 00", id="base-time-truncated"),
    pytest.param("01 01 00 E8 07 01 01 00 00 00 F6", id="offset-truncated"),
    pytest.param("02 01 00 E8 07 01 01 00 00 00 5F B0", id="type-location-missing"),
    pytest.param("02 01 00 E8 07 01 01 00 00 00 5F", id="concentration-truncated"),
    pytest.param("08 01 00 E8 07 01 01 00 00 00 20", id="status-truncated"),
    pytest.param("00 01 00 E8 07 01 01 00 00 00 00", id="trailing-byte"),
    pytest.param("00 01 00 E8 07 01 20 00 00 00", id="day-32"),
    pytest.param("00 01 00 05 00 01 01 00 00 00", id="year-5"),
]


@pytest.mark.parametrize(("hex_data", "expected"), VECTORS)
def test_known_vectors(hex_data: str, expected: GlucoseMeasurement) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_glucose(data) == expected
    assert encode_glucose(expected) == data


@pytest.mark.parametrize(("hex_data", "expected"), DECODE_ONLY)
def test_decode_only_vectors(hex_data: str, expected: GlucoseMeasurement) -> None:
    assert decode_glucose(bytes.fromhex(hex_data)) == expected
    assert decode_glucose(encode_glucose(expected)) == expected


@pytest.mark.parametrize("hex_data", MALFORMED)
def test_malformed_payloads_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_glucose(bytes.fromhex(hex_data))
    assert info.value.characteristic == "Glucose Measurement"


def test_type_is_low_nibble_location_high_nibble() -> None:
    value = decode_glucose(bytes.fromhex("02 01 00 E8 07 01 01 00 00 00 5F B0 29"))
    assert value.sample_type is GlucoseType.INTERSTITIAL_FLUID
    assert value.sample_location is SampleLocation.ALTERNATE_SITE_TEST


@pytest.mark.parametrize(
    ("value", "mmol", "mg_dl"),
    [
        (GM(1, None, None, 0.00167, KG, 8, 1), 9.269744, 167.0),  # 167 mg/dL
        (GM(1, None, None, 0.001, KG, 1, 1), 5.550745, 100.0),
        (GM(1, None, None, 0.012, MOL, 1, 1), 12.0, 216.1872),  # 12 mmol/L * 18.0156
        (GM(1, None, None, 0.0055507, MOL, 1, 1), 5.5507, 99.99917),
        (GM(1, None), None, None),
        (GM(1, None, None, None, KG, 1, 1), None, None),
    ],
)
def test_unit_conversions(
    value: GlucoseMeasurement, mmol: float | None, mg_dl: float | None
) -> None:
    if mmol is None or mg_dl is None:
        assert (value.mmol_per_l, value.mg_per_dl) == (None, None)
        return
    assert value.mmol_per_l == pytest.approx(mmol, abs=5e-7)
    assert value.mg_per_dl == pytest.approx(mg_dl, abs=5e-5)


def test_measured_at_adds_the_offset() -> None:
    assert GM(1, NEW_YEAR, time_offset=-10).measured_at == dt.datetime(2023, 12, 31, 23, 50)
    assert GM(1, NEW_YEAR, time_offset=90).measured_at == dt.datetime(2024, 1, 1, 1, 30)
    assert GM(1, NEW_YEAR).measured_at == NEW_YEAR
    assert GM(1, None, time_offset=5).measured_at is None
    assert GM(1, dt.datetime(9999, 12, 31, 23, 59), time_offset=5).measured_at is None


def test_sensor_status_bit_positions() -> None:
    assert [flag.bit_length() - 1 for flag in GlucoseSensorStatus] == list(range(12))
    assert int(GlucoseSensorStatus.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS) == 0x0040
    assert int(GlucoseSensorStatus.TIME_FAULT) == 0x0800


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(GM(1, NEW_YEAR, concentration=0.001), id="concentration-without-type"),
        pytest.param(GM(1, NEW_YEAR, None, 0.001, KG, 1, None), id="no-location"),
        pytest.param(GM(1, NEW_YEAR, None, 0.001, KG, 16, 1), id="type-beyond-nibble"),
        pytest.param(GM(1, NEW_YEAR, None, 0.001, KG, 1, -1), id="negative-location"),
        pytest.param(GM(65536, NEW_YEAR), id="sequence-overflow"),
        pytest.param(GM(1, NEW_YEAR, time_offset=32768), id="offset-overflow"),
        pytest.param(GM(1, NEW_YEAR, None, 0.0012345, KG, 1, 1), id="concentration-digits"),
        pytest.param(GM(1, dt.datetime(2024, 1, 1, 0, 0, 0, 1)), id="microseconds"),
    ],
)
def test_unencodable_values_raise(value: GlucoseMeasurement) -> None:
    with pytest.raises(EncodeError):
        encode_glucose(value)
