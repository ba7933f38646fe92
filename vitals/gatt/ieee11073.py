"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) decimal floating point numbers.

Both are ``mantissa * 10 ** exponent`` with two's-complement fields:

========  ========  ==========  ===========================
type      bits      exponent    mantissa
========  ========  ==========  ===========================
SFLOAT    16        4 (high)    12 (low), -2048 .. 2047
FLOAT     32        8 (high)    24 (low), -2**23 .. 2**23-1
========  ========  ==========  ===========================

Five raw values with exponent 0 are special (11073-20601 and the Bluetooth Personal Health
Devices Transcoding White Paper; Wireshark and Nordic's ``sfloat.h`` use the same values):

==========  ==========  ============
special     SFLOAT      FLOAT
==========  ==========  ============
NaN         0x07FF      0x007FFFFF
NRes        0x0800      0x00800000
+INFINITY   0x07FE      0x007FFFFE
-INFINITY   0x0802      0x00800002
reserved    0x0801      0x00800001
==========  ==========  ============

A special decodes to ``None`` ("no number"); :func:`sfloat_special` / :func:`float_special`
say which one it was. Only these exact raw values are special: the same mantissa with a
non-zero exponent is an ordinary number (``0x17FF`` is ``2047e1`` = 20470) and decodes as such,
so a number with exponent 0 has ``|mantissa| <= 2045`` (resp. ``2**23 - 3``) and any other the
full two's-complement range. The encoder follows the same rule, so every decoded number can be
encoded again. (Some decoders test the mantissa alone and would read ``0x17FF`` as NaN; the
encoder only writes such a raw value when no other one means the same number.)

Decoding is exact: ``mantissa * 10 ** exponent`` is computed in :mod:`decimal` and rounded
once to the nearest float, so ``0xF003`` is ``0.3``, not ``0.30000000000000004``.

Encoding a float, by default, takes the decimal that :func:`repr` prints (the shortest one that
reads back as the same float) and writes it exactly, with the exponent closest to 0: a fraction
with as few decimals as it has (``36.4`` as SFLOAT is ``364e-1`` = ``0xF16C``), a whole number
with exponent 0 when the mantissa has room (``80.0`` is ``80e0`` = ``0x0050``, ``1e8`` is
``1000e5``). That is what devices send, and it decodes to exactly the same float. A value
that needs more digits or a wider range than the type has raises :class:`EncodeError`, unless
the caller asks for rounding: ``round_to_resolution=True`` rounds half-to-even at the finest
exponent whose mantissa fits, and an explicit ``exponent=`` rounds half-to-even at that
exponent. ``None`` encodes as NaN; ``math.nan`` and the infinities are refused (use ``None``,
or :func:`encode_sfloat_special` for a particular special value).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Final

from vitals.gatt.errors import DecodeError, EncodeError

__all__ = [
    "FLOAT_NAN",
    "SFLOAT_NAN",
    "Special",
    "decode_float",
    "decode_sfloat",
    "encode_float",
    "encode_float_special",
    "encode_sfloat",
    "encode_sfloat_special",
    "float_special",
    "sfloat_special",
]


class Special(enum.Enum):
    """The special values of SFLOAT and FLOAT; all of them decode to ``None``."""

    NAN = "NaN"
    NRES = "NRes"
    POSITIVE_INFINITY = "+INFINITY"
    NEGATIVE_INFINITY = "-INFINITY"
    RESERVED = "reserved"


SFLOAT_NAN: Final = 0x07FF
_PRECISION: Final = 1000
FLOAT_NAN: Final = 0x007FFFFF


@dataclass(slots=True, frozen=True)
class _Format:
    name: str
    mantissa_bits: int
    exponent_bits: int
    specials: dict[int, Special]

    @property
    def bits(self) -> int:
        return self.mantissa_bits + self.exponent_bits

    @property
    def max_plain_mantissa(self) -> int:
        """Largest magnitude of a number with exponent 0 (the rest are specials)."""
        return (1 << (self.mantissa_bits - 1)) - 3

    def fits(self, mantissa: int, exponent: int) -> bool:
        """Whether ``mantissa * 10 ** exponent`` has a raw value that is not special."""
        if not self.min_exponent <= exponent <= self.max_exponent:
            return False
        if exponent == 0:
            return abs(mantissa) <= self.max_plain_mantissa
        half = 1 << (self.mantissa_bits - 1)
        return -half <= mantissa < half

    @property
    def min_exponent(self) -> int:
        return -(1 << (self.exponent_bits - 1))

    @property
    def max_exponent(self) -> int:
        return (1 << (self.exponent_bits - 1)) - 1

    def raw_of(self, special: Special) -> int:
        for raw, candidate in self.specials.items():
            if candidate is special:
                return raw
        raise AssertionError(special)  # pragma: no cover - every Special is in the table


_SFLOAT: Final = _Format(
    name="SFLOAT",
    mantissa_bits=12,
    exponent_bits=4,
    specials={
        0x07FF: Special.NAN,
        0x0800: Special.NRES,
        0x07FE: Special.POSITIVE_INFINITY,
        0x0802: Special.NEGATIVE_INFINITY,
        0x0801: Special.RESERVED,
    },
)

_FLOAT: Final = _Format(
    name="FLOAT",
    mantissa_bits=24,
    exponent_bits=8,
    specials={
        0x007FFFFF: Special.NAN,
        0x00800000: Special.NRES,
        0x007FFFFE: Special.POSITIVE_INFINITY,
        0x00800002: Special.NEGATIVE_INFINITY,
        0x00800001: Special.RESERVED,
    },
)


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _check_raw(fmt: _Format, raw: int) -> None:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < (1 << fmt.bits):
        raise DecodeError(f"{fmt.name} raw value must be an int in 0..0x{(1 << fmt.bits) - 1:X}")


def _decode(fmt: _Format, raw: int) -> float | None:
    _check_raw(fmt, raw)
    if raw in fmt.specials:
        return None
    mantissa = _signed(raw & ((1 << fmt.mantissa_bits) - 1), fmt.mantissa_bits)
    exponent = _signed(raw >> fmt.mantissa_bits, fmt.exponent_bits)
    return float(Decimal(mantissa).scaleb(exponent))


def _pack(fmt: _Format, mantissa: int, exponent: int) -> int:
    if mantissa == 0:
        return 0
    mantissa_mask = (1 << fmt.mantissa_bits) - 1
    exponent_mask = (1 << fmt.exponent_bits) - 1
    return ((exponent & exponent_mask) << fmt.mantissa_bits) | (mantissa & mantissa_mask)


def _as_decimal(fmt: _Format, value: float) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EncodeError(f"{fmt.name} encodes a float or None, not {type(value).__name__}")
    if isinstance(value, int):
        if value.bit_length() > 512:  # far beyond either type; keeps Decimal() cheap
            raise EncodeError(f"{value!r} is beyond the range of {fmt.name}")
        return Decimal(value)
    if not math.isfinite(value):
        raise EncodeError(
            f"{fmt.name} cannot encode {value!r}: use None for 'no number' "
            "or encode a Special explicitly"
        )
    # repr() is the shortest decimal that reads back as this float.
    return Decimal(repr(value))


def _exact(fmt: _Format, value: Decimal) -> tuple[int, int] | None:
    """The exact (mantissa, exponent) for ``value`` with the exponent closest to 0, if any."""
    if value == 0:
        return 0, 0
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)  # finite
    mantissa = int("".join(map(str, digits)))
    if sign:
        mantissa = -mantissa
    if exponent < 0:
        # A fraction: as few decimals as it has, no trailing zeros.
        return (mantissa, exponent) if fmt.fits(mantissa, exponent) else None
    # A whole number: exponent 0 if the mantissa has room, else the smallest that fits.
    for candidate in range(min(exponent, fmt.max_exponent) + 1):
        scaled = mantissa * 10 ** (exponent - candidate)
        if fmt.fits(scaled, candidate):
            return scaled, candidate
    return None


def _rounded(value: Decimal, exponent: int) -> int:
    return int(value.scaleb(-exponent).to_integral_value(rounding=ROUND_HALF_EVEN))


def _encode(
    fmt: _Format,
    value: float | None,
    exponent: int | None,
    round_to_resolution: bool,
) -> int:
    if value is None:
        return fmt.raw_of(Special.NAN)
    # Wide enough that no operation below rounds except where we ask it to.
    with localcontext(Context(prec=_PRECISION, Emax=MAX_EMAX, Emin=MIN_EMIN)):
        return _encode_number(fmt, value, _as_decimal(fmt, value), exponent, round_to_resolution)


def _encode_number(
    fmt: _Format,
    value: float,
    number: Decimal,
    exponent: int | None,
    round_to_resolution: bool,
) -> int:
    if exponent is not None:
        if isinstance(exponent, bool) or not isinstance(exponent, int):
            raise EncodeError(f"{fmt.name} exponent must be an int")
        if not fmt.min_exponent <= exponent <= fmt.max_exponent:
            raise EncodeError(
                f"{fmt.name} exponent {exponent} outside {fmt.min_exponent}..{fmt.max_exponent}"
            )
        mantissa = _rounded(number, exponent)
        if not fmt.fits(mantissa, exponent):
            raise EncodeError(
                f"{value!r} at exponent {exponent} needs mantissa {mantissa}, "
                f"which {fmt.name} cannot carry"
            )
        return _pack(fmt, mantissa, exponent)
    exact = _exact(fmt, number)
    if exact is not None:
        return _pack(fmt, *exact)
    if round_to_resolution:
        for candidate in range(fmt.min_exponent, fmt.max_exponent + 1):
            mantissa = _rounded(number, candidate)
            if fmt.fits(mantissa, candidate):
                return _pack(fmt, mantissa, candidate)
        raise EncodeError(f"{value!r} is beyond the range of {fmt.name}")
    raise EncodeError(
        f"{value!r} is not exactly representable as {fmt.name} (too many significant digits "
        f"or out of range); pass round_to_resolution=True or an exponent to round"
    )


def _special(fmt: _Format, raw: int) -> Special | None:
    _check_raw(fmt, raw)
    return fmt.specials.get(raw)


def decode_sfloat(raw: int) -> float | None:
    """The number a 16-bit SFLOAT stands for, or ``None`` for a special value."""
    return _decode(_SFLOAT, raw)


def encode_sfloat(
    value: float | None,
    *,
    exponent: int | None = None,
    round_to_resolution: bool = False,
) -> int:
    """The 16-bit SFLOAT for ``value`` (``None`` gives NaN); see the module docstring."""
    return _encode(_SFLOAT, value, exponent, round_to_resolution)


def sfloat_special(raw: int) -> Special | None:
    """Which special value a raw SFLOAT is, or ``None`` for an ordinary number."""
    return _special(_SFLOAT, raw)


def encode_sfloat_special(special: Special) -> int:
    """The raw SFLOAT of a special value."""
    return _SFLOAT.raw_of(special)


def decode_float(raw: int) -> float | None:
    """The number a 32-bit FLOAT stands for, or ``None`` for a special value."""
    return _decode(_FLOAT, raw)


def encode_float(
    value: float | None,
    *,
    exponent: int | None = None,
    round_to_resolution: bool = False,
) -> int:
    """The 32-bit FLOAT for ``value`` (``None`` gives NaN); see the module docstring."""
    return _encode(_FLOAT, value, exponent, round_to_resolution)


def float_special(raw: int) -> Special | None:
    """Which special value a raw FLOAT is, or ``None`` for an ordinary number."""
    return _special(_FLOAT, raw)


def encode_float_special(special: Special) -> int:
    """The raw FLOAT of a special value."""
    return _FLOAT.raw_of(special)
