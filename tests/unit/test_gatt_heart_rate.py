"""Heart Rate Measurement (0x2A37): known vectors, sensor contact, RR-intervals, truncation."""

from __future__ import annotations

import pytest

from vitals.gatt import (
    DecodeError,
    EncodeError,
    HeartRateMeasurement,
    decode_heart_rate,
    encode_heart_rate,
)

HR = HeartRateMeasurement

# Canonical payloads: decode gives the value and encode gives the bytes back.
VECTORS = [
    pytest.param("00 48", HR(72), id="uint8"),
    pytest.param("01 48 00", HR(72, uint16_format=True), id="uint16-low-rate"),
    pytest.param("01 2C 01", HR(300, uint16_format=True), id="uint16-300"),
    pytest.param("06 48", HR(72, sensor_contact=True), id="contact-detected"),
    pytest.param("04 48", HR(72, sensor_contact=False), id="contact-not-detected"),
    pytest.param("08 50 E8 03", HR(80, energy_expended=1000), id="energy"),
    pytest.param("10 48", HR(72, rr_intervals=()), id="rr-flag-no-values"),
    pytest.param("10 48 00 04 00 02", HR(72, rr_intervals=(1024, 512)), id="rr-two"),
    pytest.param(
        "1F 2C 01 10 27 CD 03",
        HR(
            300, sensor_contact=True, energy_expended=10000, rr_intervals=(973,), uint16_format=True
        ),
        id="all-fields",
    ),
    pytest.param("00 00", HR(0), id="zero"),
    pytest.param("09 FF FF FF FF", HR(65535, energy_expended=65535, uint16_format=True), id="max"),
]

# Valid payloads whose canonical encoding differs (ignored bits).
DECODE_ONLY = [
    pytest.param("02 48", HR(72), id="detected-without-supported-is-not-supported"),
    pytest.param("E0 48", HR(72), id="reserved-bits-ignored"),
    pytest.param("E6 48", HR(72, sensor_contact=True), id="reserved-bits-with-contact"),
]

MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("00", id="no-heart-rate"),
    pytest.param("01 48", id="uint16-truncated"),
    pytest.param("08 48 E8", id="energy-truncated"),
    pytest.param("10 48 00", id="odd-rr-tail"),
    pytest.param("10 48 00 04 00", id="odd-rr-tail-after-one"),
    pytest.param("00 48 00", id="trailing-byte"),
    pytest.param("08 48 E8 03 00", id="trailing-after-energy"),
]


@pytest.mark.parametrize(("hex_data", "expected"), VECTORS)
def test_known_vectors(hex_data: str, expected: HeartRateMeasurement) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_heart_rate(data) == expected
    assert encode_heart_rate(expected) == data


@pytest.mark.parametrize(("hex_data", "expected"), DECODE_ONLY)
def test_decode_only_vectors(hex_data: str, expected: HeartRateMeasurement) -> None:
    assert decode_heart_rate(bytes.fromhex(hex_data)) == expected
    assert decode_heart_rate(encode_heart_rate(expected)) == expected


@pytest.mark.parametrize("hex_data", MALFORMED)
def test_malformed_payloads_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_heart_rate(bytes.fromhex(hex_data))
    assert info.value.characteristic == "Heart Rate Measurement"
    assert info.value.offset is not None


def test_truncation_message_names_field_and_offset() -> None:
    with pytest.raises(DecodeError) as info:
        decode_heart_rate(bytes.fromhex("09 48 00 E8"))
    assert str(info.value) == (
        "Heart Rate Measurement: payload truncated at offset 3: "
        "need 2 bytes for uint16 energy expended, have 1"
    )
    assert info.value.offset == 3


def test_rr_intervals_in_seconds() -> None:
    value = decode_heart_rate(bytes.fromhex("10 48 00 04 00 02 CD 03"))
    assert value.rr_intervals_s == (1.0, 0.5, 973 / 1024)
    assert HR(72).rr_intervals_s is None


def test_accepts_bytearray_and_memoryview() -> None:
    data = bytes.fromhex("06 48")
    assert decode_heart_rate(bytearray(data)) == decode_heart_rate(memoryview(data))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(HR(256), id="uint8-overflow"),
        pytest.param(HR(-1), id="negative"),
        pytest.param(HR(65536, uint16_format=True), id="uint16-overflow"),
        pytest.param(HR(72, energy_expended=65536), id="energy-overflow"),
        pytest.param(HR(72, rr_intervals=(65536,)), id="rr-overflow"),
    ],
)
def test_unencodable_values_raise(value: HeartRateMeasurement) -> None:
    with pytest.raises(EncodeError):
        encode_heart_rate(value)
