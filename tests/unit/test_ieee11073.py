"""IEEE 11073-20601 SFLOAT and FLOAT: known encodings, specials, exactness, round trips."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitals.gatt import (
    DecodeError,
    EncodeError,
    Special,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_float_special,
    encode_sfloat,
    encode_sfloat_special,
    float_special,
    sfloat_special,
)

# raw SFLOAT -> number: exponent is the high nibble, mantissa the low 12 bits (both signed)
SFLOAT_DECODE = [
    (0x0072, 114.0),  # 114e0
    (0xF16E, 36.6),  # 366e-1
    (0xF16C, 36.4),  # 364e-1
    (0xF003, 0.3),  # 3e-1, exactly 0.3
    (0x0000, 0.0),
    (0x0FFF, -1.0),  # mantissa -1
    (0xFFFF, -0.1),  # -1e-1
    (0x8001, 1e-8),  # smallest exponent
    (0x7001, 1e7),  # largest exponent
    (0x07FD, 2045.0),  # largest plain mantissa at exponent 0
    (0x0803, -2045.0),
    (0x2007, 700.0),  # 7e2
    (0xE0C8, 2.0),  # 200e-2
    (0xB0A7, 0.00167),  # 167e-5 (a glucose concentration in kg/L)
    (0xC078, 0.012),  # 120e-4
    (0x17FF, 20470.0),  # 2047e1: the NaN mantissa, but not exponent 0, so a number
    (0x1800, -20480.0),  # -2048e1
    (0xF7FE, 204.6),  # 2046e-1
]

SFLOAT_SPECIALS = [
    (0x07FF, Special.NAN),
    (0x0800, Special.NRES),
    (0x07FE, Special.POSITIVE_INFINITY),
    (0x0802, Special.NEGATIVE_INFINITY),
    (0x0801, Special.RESERVED),
]

# raw FLOAT -> number: exponent is the high byte, mantissa the low 24 bits (both signed)
FLOAT_DECODE = [
    (0xFF00016C, 36.4),  # 364e-1, a thermometer's 36.4 degC
    (0x00000072, 114.0),
    (0xFE0017A6, 60.54),  # 6054e-2
    (0xFFFFFFFF, -0.1),
    (0x80000001, 1e-128),
    (0x7F000001, 1e127),
    (0x007FFFFD, 8388605.0),
    (0x00800003, -8388605.0),
    (0x00000000, 0.0),
    (0xFD0003E8, 1.0),  # 1000e-3
    (0x017FFFFF, 83886070.0),  # 8388607e1: NaN mantissa, non-zero exponent
]

FLOAT_SPECIALS = [
    (0x007FFFFF, Special.NAN),
    (0x00800000, Special.NRES),
    (0x007FFFFE, Special.POSITIVE_INFINITY),
    (0x00800002, Special.NEGATIVE_INFINITY),
    (0x00800001, Special.RESERVED),
]

# number -> canonical SFLOAT: exact, with the exponent closest to 0
SFLOAT_ENCODE = [
    (114.0, 0x0072),
    (114, 0x0072),
    (36.4, 0xF16C),
    (36.6, 0xF16E),
    (0.3, 0xF003),
    (98.0, 0x0062),  # 98e0, not 980e-1
    (-0.1, 0xFFFF),
    (0.0, 0x0000),
    (-0.0, 0x0000),
    (2045.0, 0x07FD),
    (-2045.0, 0x0803),
    (20450.0, 0x17FD),
    (1e-8, 0x8001),
    (80.0, 0x0050),  # whole numbers keep exponent 0 while the mantissa has room: 80e0
    (1e7, 0x43E8),  # then the exponent closest to 0: 1000e4
    (1e8, 0x53E8),  # 1000e5
    (1e10, 0x73E8),  # 1000e7
    (120.5, 0xF4B5),
    (0.00167, 0xB0A7),
    (20470.0, 0x17FF),  # only 2047e1 says this; it is not NaN (exponent 1)
    (204.6, 0xF7FE),
    (None, 0x07FF),  # no number: NaN
]

FLOAT_ENCODE = [
    (36.4, 0xFF00016C),
    (114.0, 0x00000072),
    (8388605.0, 0x007FFFFD),
    (-8388605.0, 0x00800003),
    (1e-128, 0x80000001),
    (1e127, 0x790F4240),  # 1000000e121
    (60.54, 0xFE0017A6),
    (None, 0x007FFFFF),
]


@pytest.mark.parametrize(("raw", "expected"), SFLOAT_DECODE)
def test_decode_sfloat_known(raw: int, expected: float) -> None:
    assert decode_sfloat(raw) == expected
    assert sfloat_special(raw) is None


@pytest.mark.parametrize(("raw", "special"), SFLOAT_SPECIALS)
def test_sfloat_specials_decode_to_none(raw: int, special: Special) -> None:
    assert decode_sfloat(raw) is None
    assert sfloat_special(raw) is special
    assert encode_sfloat_special(special) == raw


@pytest.mark.parametrize(("raw", "expected"), FLOAT_DECODE)
def test_decode_float_known(raw: int, expected: float) -> None:
    assert decode_float(raw) == expected
    assert float_special(raw) is None


@pytest.mark.parametrize(("raw", "special"), FLOAT_SPECIALS)
def test_float_specials_decode_to_none(raw: int, special: Special) -> None:
    assert decode_float(raw) is None
    assert float_special(raw) is special
    assert encode_float_special(special) == raw


def test_decoding_is_exact_not_binary_arithmetic() -> None:
    assert decode_sfloat(0xF003) == 0.3  # 3 * 0.1 would be 0.30000000000000004
    assert decode_float(0xFD000007) == 0.007
    assert decode_float(0xFB378AC0) == 36.4  # 3640000e-5


@pytest.mark.parametrize(("value", "raw"), SFLOAT_ENCODE)
def test_encode_sfloat_known(value: float | None, raw: int) -> None:
    assert encode_sfloat(value) == raw


@pytest.mark.parametrize(("value", "raw"), FLOAT_ENCODE)
def test_encode_float_known(value: float | None, raw: int) -> None:
    assert encode_float(value) == raw


@pytest.mark.parametrize(
    "value",
    [
        2046.0,  # would be the +INFINITY raw value
        2047.0,  # NaN
        -2046.0,
        -2047.0,
        -2048.0,  # NRes
        12345.0,  # five significant digits
        36.43,  # four digits but needs exponent -2: mantissa 3643
        1e-9,  # below 1e-8
        2.1e11,  # 21000e7
        0.1 + 0.2,  # 0.30000000000000004
        math.nan,
        math.inf,
        -math.inf,
    ],
)
def test_encode_sfloat_refuses_unrepresentable(value: float) -> None:
    with pytest.raises(EncodeError):
        encode_sfloat(value)


@pytest.mark.parametrize(
    "value",
    [8388606.0, 8388607.0, -8388608.0, 123456789.0, 1e-129, 1e135, 0.1 + 0.2, math.nan, math.inf],
)
def test_encode_float_refuses_unrepresentable(value: float) -> None:
    with pytest.raises(EncodeError):
        encode_float(value)


@pytest.mark.parametrize("value", ["36.4", True, b"\x01"])
def test_encode_refuses_non_numbers(value: object) -> None:
    with pytest.raises(EncodeError):
        encode_sfloat(value)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        encode_float(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "kwargs", "raw"),
    [
        (36.43, {"round_to_resolution": True}, 0xF16C),  # finest fit: 364e-1
        (36.45, {"round_to_resolution": True}, 0xF16C),  # half to even: 364
        (36.55, {"round_to_resolution": True}, 0xF16E),  # half to even: 366
        (1e-9, {"round_to_resolution": True}, 0x0000),  # below resolution: zero
        (98.0, {"round_to_resolution": True}, 0x0062),  # exact values stay canonical
        (36.43, {"exponent": -1}, 0xF16C),
        (98.0, {"exponent": -1}, 0xF3D4),  # 980e-1: the caller chose the exponent
        (114.0, {"exponent": 0}, 0x0072),
        (0.0, {"exponent": -2}, 0x0000),
    ],
)
def test_encode_sfloat_rounding(value: float, kwargs: dict[str, int | bool], raw: int) -> None:
    assert encode_sfloat(value, **kwargs) == raw  # type: ignore[arg-type]


def test_encode_float_rounding() -> None:
    # 0.30000000000000004 has 17 digits; the finest exponent that fits is -7: 3000000e-7
    assert encode_float(0.1 + 0.2, round_to_resolution=True) == 0xF92DC6C0
    assert decode_float(0xF92DC6C0) == 0.3
    assert encode_float(36.437, exponent=-1) == 0xFF00016C


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        (300.0, {"exponent": -1}),  # 3000e-1 does not fit
        (1.0, {"exponent": 8}),  # no such exponent
        (1.0, {"exponent": -9}),
        (3e10, {"round_to_resolution": True}),  # beyond 2047e7
        (2046.0, {"exponent": 0}),  # the +INFINITY raw value
    ],
)
def test_encode_sfloat_rounding_refuses(value: float, kwargs: dict[str, int | bool]) -> None:
    with pytest.raises(EncodeError):
        encode_sfloat(value, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [-1, 0x10000, True, 1.5])
def test_decode_sfloat_refuses_bad_raw(raw: object) -> None:
    with pytest.raises(DecodeError):
        decode_sfloat(raw)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        sfloat_special(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [-1, 0x1_0000_0000])
def test_decode_float_refuses_bad_raw(raw: int) -> None:
    with pytest.raises(DecodeError):
        decode_float(raw)


def test_every_sfloat_decodes_and_reencodes_to_the_same_number() -> None:
    specials = {raw for raw, _ in SFLOAT_SPECIALS}
    for raw in range(0x10000):
        value = decode_sfloat(raw)
        if raw in specials:
            assert value is None
            continue
        assert value is not None
        assert decode_sfloat(encode_sfloat(value)) == value, hex(raw)


@settings(max_examples=500)
@given(st.integers(min_value=0, max_value=0xFFFF_FFFF))
def test_every_float_decodes_and_reencodes_to_the_same_number(raw: int) -> None:
    value = decode_float(raw)
    if float_special(raw) is not None:
        assert value is None
        return
    assert value is not None
    assert decode_float(encode_float(value)) == value


@settings(max_examples=500)
@given(st.integers(min_value=-2045, max_value=2045), st.integers(min_value=-8, max_value=7))
def test_sfloat_mantissa_exponent_round_trip(mantissa: int, exponent: int) -> None:
    value = float(Decimal(mantissa).scaleb(exponent))
    raw = encode_sfloat(value)
    assert decode_sfloat(raw) == value
    assert encode_sfloat(decode_sfloat(raw)) == raw  # canonical


@settings(max_examples=500)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_encode_sfloat_is_exact_or_refuses(value: float) -> None:
    try:
        raw = encode_sfloat(value)
    except EncodeError:
        return
    assert decode_sfloat(raw) == value


@settings(max_examples=500)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_encode_float_is_exact_or_refuses(value: float) -> None:
    try:
        raw = encode_float(value)
    except EncodeError:
        return
    assert decode_float(raw) == value


@settings(max_examples=500)
@given(st.floats(min_value=-2e10, max_value=2e10, allow_nan=False))
def test_rounded_sfloat_is_within_half_a_step(value: float) -> None:
    try:
        raw = encode_sfloat(value, round_to_resolution=True)
    except EncodeError:
        assert abs(value) > 2047e7 - 1
        return
    decoded = decode_sfloat(raw)
    assert decoded is not None
    exponent = raw >> 12
    exponent = exponent - 16 if exponent >= 8 else exponent
    step = Decimal(1).scaleb(exponent)
    assert abs(Decimal(repr(decoded)) - Decimal(repr(value))) <= step / 2
