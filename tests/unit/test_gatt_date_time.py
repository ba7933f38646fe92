"""The 7-byte Date Time field: known vectors, "not known" parts, invalid values, round trip."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitals.gatt import DecodeError, EncodeError, decode_date_time, encode_date_time

KNOWN = [
    ("E8 07 03 0F 0A 1E 2D", dt.datetime(2024, 3, 15, 10, 30, 45)),
    ("E1 07 07 0C 08 0A 19", dt.datetime(2017, 7, 12, 8, 10, 25)),
    ("E6 07 09 09 11 33 00", dt.datetime(2022, 9, 9, 17, 51, 0)),
    ("E8 07 02 1D 17 3B 3B", dt.datetime(2024, 2, 29, 23, 59, 59)),  # leap day
    ("2E 06 01 01 00 00 00", dt.datetime(1582, 1, 1)),  # first valid year
    ("0F 27 0C 1F 17 3B 3B", dt.datetime(9999, 12, 31, 23, 59, 59)),
    ("00 00 00 00 00 00 00", None),  # all "not known"
]

NOT_KNOWN = [
    "00 00 03 0F 0A 1E 2D",  # year 0
    "E8 07 00 0F 0A 1E 2D",  # month 0
    "E8 07 03 00 0A 1E 2D",  # day 0
    "00 00 00 00 0A 1E 2D",  # date unknown, time of day given
]

INVALID = [
    ("01 00 01 01 00 00 00", 0),  # year 1
    ("2D 06 01 01 00 00 00", 0),  # year 1581
    ("10 27 01 01 00 00 00", 0),  # year 10000
    ("E8 07 0D 01 00 00 00", 2),  # month 13
    ("E8 07 01 20 00 00 00", 3),  # day 32
    ("E8 07 01 01 18 00 00", 4),  # hour 24
    ("E8 07 01 01 00 3C 00", 5),  # minute 60
    ("E8 07 01 01 00 00 3C", 6),  # second 60
    ("E7 07 02 1D 00 00 00", 0),  # 29 February 2023
    ("E8 07 04 1F 00 00 00", 0),  # 31 April
    ("00 00 00 00 18 00 00", 4),  # unknown date does not excuse hour 24
]


@pytest.mark.parametrize(("hex_data", "expected"), KNOWN)
def test_known_vectors(hex_data: str, expected: dt.datetime | None) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_date_time(data) == expected
    assert encode_date_time(expected) == data


@pytest.mark.parametrize("hex_data", NOT_KNOWN)
def test_not_known_date_decodes_to_none(hex_data: str) -> None:
    assert decode_date_time(bytes.fromhex(hex_data)) is None


@pytest.mark.parametrize(("hex_data", "offset"), INVALID)
def test_invalid_values_raise(hex_data: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode_date_time(bytes.fromhex(hex_data), characteristic="Test", offset=10)
    assert info.value.characteristic == "Test"
    assert info.value.offset == 10 + offset


@pytest.mark.parametrize("size", [0, 1, 6, 8])
def test_wrong_length_raises(size: int) -> None:
    with pytest.raises(DecodeError):
        decode_date_time(bytes(size))


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, 0, 0, 0, 500_000),
        dt.datetime(1581, 12, 31),
    ],
)
def test_encode_refuses_what_the_field_cannot_carry(value: dt.datetime) -> None:
    with pytest.raises(EncodeError):
        encode_date_time(value)


def test_encode_refuses_a_date() -> None:
    with pytest.raises(EncodeError):
        encode_date_time(dt.date(2024, 1, 1))  # type: ignore[arg-type]


def test_error_message_names_field_and_offset() -> None:
    with pytest.raises(DecodeError, match=r"month 13 at offset 5"):
        decode_date_time(bytes.fromhex("E8 07 0D 01 00 00 00"), offset=3)


@settings(max_examples=300)
@given(
    st.one_of(
        st.none(),
        st.datetimes(min_value=dt.datetime(1582, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
            lambda value: value.replace(microsecond=0)
        ),
    )
)
def test_round_trip(value: dt.datetime | None) -> None:
    data = encode_date_time(value)
    assert len(data) == 7
    assert decode_date_time(data) == value


@settings(max_examples=300)
@given(st.binary(min_size=7, max_size=7))
def test_any_seven_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        value = decode_date_time(data)
    except DecodeError:
        return
    if value is not None:
        assert encode_date_time(value) == data
