"""PLX Spot-Check (0x2A5E) and Continuous (0x2A5F) Measurement: vectors, statuses, truncation."""

from __future__ import annotations

import datetime as dt

import pytest

from vitals.gatt import (
    DecodeError,
    EncodeError,
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    SpO2PR,
    decode_plx_continuous,
    decode_plx_spot_check,
    encode_plx_continuous,
    encode_plx_spot_check,
)

SPOT = PlxSpotCheckMeasurement
CONT = PlxContinuousMeasurement
MS = PlxMeasurementStatus
DSS = PlxDeviceSensorStatus
STAMP = dt.datetime(2024, 5, 20, 7, 0, 0)

SPOT_VECTORS = [
    pytest.param("00 62 00 48 00", SPOT(98.0, 72.0), id="minimal"),
    pytest.param("01 61 00 4B 00 E8 07 05 14 07 00 00", SPOT(97.0, 75.0, STAMP), id="stamp"),
    pytest.param(
        "06 5F 00 51 00 80 00 20 00 00",
        SPOT(
            95.0,
            81.0,
            measurement_status=MS.VALIDATED_DATA,
            device_sensor_status=DSS.LOW_PERFUSION_DETECTED,
        ),
        id="statuses",
    ),
    pytest.param("08 62 00 48 00 2D F0", SPOT(98.0, 72.0, pulse_amplitude_index=4.5), id="pai"),
    pytest.param("10 62 00 48 00", SPOT(98.0, 72.0, device_clock_not_set=True), id="clock-not-set"),
    pytest.param("00 FF 07 FF 07", SPOT(None, None), id="probe-off-nan"),
    pytest.param(
        "1F 62 00 48 00 E8 07 05 14 07 00 00 00 A0 00 80 00 2D F0",
        SPOT(
            98.0,
            72.0,
            STAMP,
            MS.MEASUREMENT_UNAVAILABLE | MS.INVALID_MEASUREMENT_DETECTED,
            DSS.SENSOR_DISCONNECTED,
            4.5,
            True,
        ),
        id="all-fields",
    ),
    pytest.param(
        "04 62 00 48 00 00 00 01",
        SPOT(98.0, 72.0, device_sensor_status=DSS(0x010000)),
        id="reserved-dss-bit-kept",
    ),
    pytest.param(
        "02 62 00 48 00 01 00",
        SPOT(98.0, 72.0, measurement_status=MS(0x0001)),
        id="reserved-ms-bit-kept",
    ),
]

SPOT_DECODE_ONLY = [
    pytest.param("E0 62 00 48 00", SPOT(98.0, 72.0), id="reserved-flags-ignored"),
    pytest.param("08 62 00 48 00 00 08", SPOT(98.0, 72.0), id="pai-nres-is-absent"),
    pytest.param("00 D4 F3 D0 F2", SPOT(98.0, 72.0), id="980e-1"),
]

SPOT_MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("00 62 00 48", id="pr-truncated"),
    pytest.param("01 62 00 48 00 E8 07", id="stamp-truncated"),
    pytest.param("02 62 00 48 00 80", id="status-truncated"),
    pytest.param("04 62 00 48 00 00 00", id="dss-truncated"),
    pytest.param("08 62 00 48 00 2D", id="pai-truncated"),
    pytest.param("00 62 00 48 00 00", id="trailing-byte"),
    pytest.param("01 62 00 48 00 E8 07 05 14 3C 00 00", id="hour-60"),
]

CONT_VECTORS = [
    pytest.param("00 62 00 48 00", CONT(98.0, 72.0), id="normal-only"),
    pytest.param(
        "01 62 00 48 00 61 00 49 00", CONT(98.0, 72.0, fast=SpO2PR(97.0, 73.0)), id="fast"
    ),
    pytest.param(
        "02 62 00 48 00 63 00 47 00", CONT(98.0, 72.0, slow=SpO2PR(99.0, 71.0)), id="slow"
    ),
    pytest.param(
        "1C 62 00 48 00 00 01 10 00 00 2D F0",
        CONT(
            98.0,
            72.0,
            measurement_status=MS.FULLY_QUALIFIED_DATA,
            device_sensor_status=DSS.POOR_SIGNAL_DETECTED,
            pulse_amplitude_index=4.5,
        ),
        id="statuses-and-pai",
    ),
    pytest.param(
        "1F 62 00 48 00 61 00 49 00 63 00 47 00 20 00 01 00 00 2D F0",
        CONT(
            98.0,
            72.0,
            SpO2PR(97.0, 73.0),
            SpO2PR(99.0, 71.0),
            MS.MEASUREMENT_ONGOING,
            DSS.EXTENDED_DISPLAY_UPDATE_ONGOING,
            4.5,
        ),
        id="all-fields",
    ),
    pytest.param(
        "01 62 00 48 00 FF 07 FF 07",
        CONT(98.0, 72.0, fast=SpO2PR(None, None)),
        id="fast-pair-nan-kept",
    ),
    pytest.param("00 FF 07 48 00", CONT(None, 72.0), id="spo2-nan"),
]

CONT_DECODE_ONLY = [
    pytest.param("E0 62 00 48 00", CONT(98.0, 72.0), id="reserved-flags-ignored"),
    pytest.param("10 62 00 48 00 FF 07", CONT(98.0, 72.0), id="pai-nan-is-absent"),
]

CONT_MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("00 62 00", id="pr-missing"),
    pytest.param("01 62 00 48 00 61 00 49", id="fast-truncated"),
    pytest.param("02 62 00 48 00", id="slow-missing"),
    pytest.param("08 62 00 48 00 00 00", id="dss-truncated"),
    pytest.param("10 62 00 48 00 2D", id="pai-truncated"),
    pytest.param("00 62 00 48 00 00", id="trailing-byte"),
]


@pytest.mark.parametrize(("hex_data", "expected"), SPOT_VECTORS)
def test_spot_check_known_vectors(hex_data: str, expected: PlxSpotCheckMeasurement) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_plx_spot_check(data) == expected
    assert encode_plx_spot_check(expected) == data


@pytest.mark.parametrize(("hex_data", "expected"), SPOT_DECODE_ONLY)
def test_spot_check_decode_only(hex_data: str, expected: PlxSpotCheckMeasurement) -> None:
    assert decode_plx_spot_check(bytes.fromhex(hex_data)) == expected
    assert decode_plx_spot_check(encode_plx_spot_check(expected)) == expected


@pytest.mark.parametrize("hex_data", SPOT_MALFORMED)
def test_spot_check_malformed_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_plx_spot_check(bytes.fromhex(hex_data))
    assert info.value.characteristic == "PLX Spot-Check Measurement"


@pytest.mark.parametrize(("hex_data", "expected"), CONT_VECTORS)
def test_continuous_known_vectors(hex_data: str, expected: PlxContinuousMeasurement) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_plx_continuous(data) == expected
    assert encode_plx_continuous(expected) == data


@pytest.mark.parametrize(("hex_data", "expected"), CONT_DECODE_ONLY)
def test_continuous_decode_only(hex_data: str, expected: PlxContinuousMeasurement) -> None:
    assert decode_plx_continuous(bytes.fromhex(hex_data)) == expected
    assert decode_plx_continuous(encode_plx_continuous(expected)) == expected


@pytest.mark.parametrize("hex_data", CONT_MALFORMED)
def test_continuous_malformed_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_plx_continuous(bytes.fromhex(hex_data))
    assert info.value.characteristic == "PLX Continuous Measurement"


def test_status_bit_positions() -> None:
    assert [flag.bit_length() - 1 for flag in MS] == list(range(5, 16))
    assert [flag.bit_length() - 1 for flag in DSS] == list(range(16))
    assert DSS.SENSOR_UNCONNECTED_TO_USER == 1 << 11
    assert MS.QUESTIONABLE_MEASUREMENT_DETECTED == 1 << 14


@pytest.mark.parametrize(
    "encode_value",
    [
        pytest.param(lambda: encode_plx_spot_check(SPOT(98.25, 72.0)), id="spo2-digits"),
        pytest.param(
            lambda: encode_plx_spot_check(SPOT(98.0, 72.0, device_sensor_status=DSS(1 << 24))),
            id="dss-overflow",
        ),
        pytest.param(
            lambda: encode_plx_continuous(CONT(98.0, 72.0, measurement_status=MS(1 << 16))),
            id="ms-overflow",
        ),
        pytest.param(
            lambda: encode_plx_continuous(CONT(98.0, 72.0, fast=SpO2PR(98.0, 3e10))),
            id="fast-pr-range",
        ),
    ],
)
def test_unencodable_values_raise(encode_value: object) -> None:
    assert callable(encode_value)
    with pytest.raises(EncodeError):
        encode_value()
