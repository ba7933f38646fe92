"""The 7-byte Date Time field (characteristic 0x2A08, embedded in most health measurements).

Layout: year uint16 little-endian, then month, day, hours, minutes, seconds as uint8.

=======  ===========  ======================
field    valid        0 means
=======  ===========  ======================
year     1582..9999   year is not known
month    1..12        month is not known
day      1..31        day of month not known
hours    0..23        (a real value)
minutes  0..59        (a real value)
seconds  0..59        (a real value)
=======  ===========  ======================

Decoding gives a naive :class:`datetime.datetime` (the device's own wall-clock time; devices
have no time zone, the gateway applies its own), or ``None`` when the year, month or day is 0:
the field was there but carries no usable time. The time of day is range-checked even then.
A value out of its range (year 1..1581, month 13, day 32, hour 24, minute 60, second 60) or a
day that does not exist in its month (30 February) raises :class:`DecodeError`.

Encoding is the inverse: ``None`` gives seven zero bytes, a naive datetime its fields. An aware
datetime, one with microseconds, or a year before 1582 raises :class:`EncodeError`, since the
field cannot carry them.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from vitals.gatt.errors import DecodeError, EncodeError

__all__ = ["DATE_TIME_SIZE", "MIN_YEAR", "decode_date_time", "encode_date_time"]

DATE_TIME_SIZE: Final = 7
MIN_YEAR: Final = 1582
_MAX_YEAR: Final = 9999


def decode_date_time(
    data: bytes,
    *,
    characteristic: str | None = "Date Time",
    offset: int = 0,
) -> dt.datetime | None:
    """Decode a 7-byte Date Time; ``offset`` is where it sits in the enclosing payload."""
    if len(data) != DATE_TIME_SIZE:
        raise DecodeError(
            f"Date Time at offset {offset} must be {DATE_TIME_SIZE} bytes, got {len(data)}",
            characteristic,
            offset,
        )
    year = data[0] | (data[1] << 8)
    month, day, hours, minutes, seconds = data[2:7]

    def invalid(what: str, value: int, allowed: str, at: int) -> DecodeError:
        return DecodeError(
            f"Date Time {what} {value} at offset {offset + at} is not in {allowed}",
            characteristic,
            offset + at,
        )

    if year != 0 and not MIN_YEAR <= year <= _MAX_YEAR:
        raise invalid("year", year, f"{MIN_YEAR}..{_MAX_YEAR} (or 0 for unknown)", 0)
    if month > 12:
        raise invalid("month", month, "1..12 (or 0 for unknown)", 2)
    if day > 31:
        raise invalid("day", day, "1..31 (or 0 for unknown)", 3)
    if hours > 23:
        raise invalid("hours", hours, "0..23", 4)
    if minutes > 59:
        raise invalid("minutes", minutes, "0..59", 5)
    if seconds > 59:
        raise invalid("seconds", seconds, "0..59", 6)
    if year == 0 or month == 0 or day == 0:
        return None
    try:
        # Naive on purpose: the device's wall-clock time, in no known zone.
        return dt.datetime(year, month, day, hours, minutes, seconds)
    except ValueError as exc:
        raise DecodeError(
            f"Date Time {year:04d}-{month:02d}-{day:02d} at offset {offset} is not a real date",
            characteristic,
            offset,
        ) from exc


def encode_date_time(value: dt.datetime | None, *, characteristic: str | None = None) -> bytes:
    """Encode a naive datetime (or ``None`` for "not known") as 7 bytes."""
    if value is None:
        return bytes(DATE_TIME_SIZE)
    if not isinstance(value, dt.datetime):
        raise EncodeError(
            f"Date Time takes a datetime.datetime, not {type(value).__name__}", characteristic
        )
    if value.tzinfo is not None:
        raise EncodeError(
            "Date Time carries no time zone: give the device's naive local time", characteristic
        )
    if value.microsecond:
        raise EncodeError("Date Time has a resolution of one second", characteristic)
    if value.year < MIN_YEAR:
        raise EncodeError(f"Date Time years start at {MIN_YEAR}", characteristic)
    return bytes(
        (
            value.year & 0xFF,
            value.year >> 8,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
        )
    )
