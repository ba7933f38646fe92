"""Little-endian readers and writers for characteristic payloads, with checked lengths.

:class:`ByteReader` walks an untrusted payload; every read checks that enough bytes remain and
raises :class:`DecodeError` naming the characteristic, the offset and the field otherwise, so a
codec never meets an ``IndexError``. :class:`ByteWriter` is its inverse and raises
:class:`EncodeError` for a value out of its field's range.

Also here: conventions several characteristics share (the "unknown user" ID, enumerated codes
kept as plain ints when they are not in our enum).
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Final, TypeAlias, TypeVar

from vitals.gatt.date_time import DATE_TIME_SIZE, decode_date_time, encode_date_time
from vitals.gatt.errors import DecodeError, EncodeError
from vitals.gatt.ieee11073 import decode_float, decode_sfloat, encode_float, encode_sfloat

__all__ = [
    "UNKNOWN_USER",
    "Buffer",
    "ByteReader",
    "ByteWriter",
    "code_or_int",
    "scaled_count",
    "scaled_value",
]

UNKNOWN_USER: Final = 0xFF
"""User ID value that Blood Pressure and Weight Scale use for "unknown user"."""

Buffer: TypeAlias = bytes | bytearray | memoryview
"""What a BLE stack hands over: bleak gives ``bytearray``."""

_E = TypeVar("_E", bound=enum.IntEnum)


def code_or_int(enum_type: type[_E], code: int) -> _E | int:
    """The enum member for ``code``, or ``code`` itself when the enum does not know it."""
    try:
        return enum_type(code)
    except ValueError:
        return code


def scaled_value(count: int, resolution: Decimal) -> float:
    """``count * resolution`` rounded once to a float (``14001 * 0.005`` is ``70.005``)."""
    return float(count * resolution)


def scaled_count(
    value: float,
    resolution: Decimal,
    *,
    field: str,
    characteristic: str,
    maximum: int,
) -> int:
    """The integer count of ``resolution`` steps that is exactly ``value``.

    The value's shortest decimal (its :func:`repr`) must be a whole number of steps and the
    count must fit ``0..maximum``; round first (``round(kg / 0.005) * 0.005`` then
    ``round(..., 3)``) when the value comes from arithmetic.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{field} must be a number, not {type(value).__name__}", characteristic)
    try:
        steps = Decimal(repr(value)) / resolution
    except ArithmeticError as exc:
        raise EncodeError(f"{field} {value!r} is not a finite number", characteristic) from exc
    if not steps.is_finite() or steps != steps.to_integral_value():
        raise EncodeError(
            f"{field} {value!r} is not a whole number of {resolution} steps", characteristic
        )
    count = int(steps)
    if not 0 <= count <= maximum:
        raise EncodeError(f"{field} {value!r} is outside 0..{maximum * resolution}", characteristic)
    return count


class ByteReader:
    """Reads fields from the front of a payload, checking every length."""

    __slots__ = ("_data", "_offset", "characteristic")

    def __init__(self, data: Buffer, characteristic: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            # bytes(5) would quietly make five zero bytes
            raise TypeError(f"{characteristic}: payload must be bytes, not {type(data).__name__}")
        self._data = bytes(data)
        self._offset = 0
        self.characteristic = characteristic

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def error(self, reason: str, offset: int | None = None) -> DecodeError:
        """A :class:`DecodeError` for this payload, at ``offset`` (default: the current one)."""
        return DecodeError(reason, self.characteristic, self._offset if offset is None else offset)

    def take(self, size: int, what: str) -> bytes:
        if self.remaining < size:
            raise self.error(
                f"payload truncated at offset {self._offset}: need {size} "
                f"byte{'s' if size != 1 else ''} for {what}, have {self.remaining}"
            )
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def _uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "little")

    def u8(self, what: str) -> int:
        return self._uint(1, f"uint8 {what}")

    def u16(self, what: str) -> int:
        return self._uint(2, f"uint16 {what}")

    def s16(self, what: str) -> int:
        return int.from_bytes(self.take(2, f"sint16 {what}"), "little", signed=True)

    def u24(self, what: str) -> int:
        return self._uint(3, f"uint24 {what}")

    def u32(self, what: str) -> int:
        return self._uint(4, f"uint32 {what}")

    def sfloat(self, what: str) -> float | None:
        return decode_sfloat(self._uint(2, f"SFLOAT {what}"))

    def float32(self, what: str) -> float | None:
        return decode_float(self._uint(4, f"FLOAT {what}"))

    def date_time(self, what: str) -> dt.datetime | None:
        start = self._offset
        chunk = self.take(DATE_TIME_SIZE, f"Date Time {what}")
        return decode_date_time(chunk, characteristic=self.characteristic, offset=start)

    def u16_tail(self, what: str) -> tuple[int, ...]:
        """Every remaining byte pair as uint16 (for variable-length tails)."""
        if self.remaining % 2:
            raise self.error(
                f"{what} at offset {self._offset} has {self.remaining} bytes, "
                "not a whole number of uint16 values"
            )
        return tuple(self.u16(what) for _ in range(self.remaining // 2))

    def finish(self) -> None:
        """Raise if any byte is left over after the last field."""
        if self.remaining:
            raise self.error(
                f"{self.remaining} unexpected trailing byte{'s' if self.remaining != 1 else ''} "
                f"at offset {self._offset} after the last field"
            )


class ByteWriter:
    """Appends fields to a payload, refusing values out of their field's range."""

    __slots__ = ("_buffer", "characteristic")

    def __init__(self, characteristic: str) -> None:
        self._buffer = bytearray()
        self.characteristic = characteristic

    def error(self, reason: str) -> EncodeError:
        return EncodeError(reason, self.characteristic)

    def _uint(self, value: int, size: int, what: str, *, signed: bool = False) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"{what} must be an int, not {type(value).__name__}")
        try:
            self._buffer += value.to_bytes(size, "little", signed=signed)
        except OverflowError as exc:
            bits = 8 * size
            low = -(1 << (bits - 1)) if signed else 0
            high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            raise self.error(f"{what} {value} is outside {low}..{high}") from exc

    def u8(self, value: int, what: str) -> None:
        self._uint(value, 1, what)

    def u16(self, value: int, what: str) -> None:
        self._uint(value, 2, what)

    def s16(self, value: int, what: str) -> None:
        self._uint(value, 2, what, signed=True)

    def u24(self, value: int, what: str) -> None:
        self._uint(value, 3, what)

    def u32(self, value: int, what: str) -> None:
        self._uint(value, 4, what)

    def sfloat(self, value: float | None, what: str) -> None:
        try:
            raw = encode_sfloat(value)
        except EncodeError as exc:
            raise self.error(f"{what}: {exc.reason}") from exc
        self.u16(raw, what)

    def float32(self, value: float | None, what: str) -> None:
        try:
            raw = encode_float(value)
        except EncodeError as exc:
            raise self.error(f"{what}: {exc.reason}") from exc
        self.u32(raw, what)

    def date_time(self, value: dt.datetime | None, what: str) -> None:
        try:
            self._buffer += encode_date_time(value)
        except EncodeError as exc:
            raise self.error(f"{what}: {exc.reason}") from exc

    def to_bytes(self) -> bytes:
        return bytes(self._buffer)
