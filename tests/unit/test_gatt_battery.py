"""Battery Level (0x2A19): one uint8 percentage, 0..100."""

from __future__ import annotations

import pytest

from vitals.gatt import (
    BatteryLevel,
    DecodeError,
    EncodeError,
    decode_battery_level,
    encode_battery_level,
)

VECTORS = [("00", 0), ("01", 1), ("32", 50), ("4B", 75), ("64", 100)]


@pytest.mark.parametrize(("hex_data", "percent"), VECTORS)
def test_known_vectors(hex_data: str, percent: int) -> None:
    data = bytes.fromhex(hex_data)
    assert decode_battery_level(data) == BatteryLevel(percent)
    assert encode_battery_level(BatteryLevel(percent)) == data


@pytest.mark.parametrize("hex_data", ["", "65", "FF", "64 00", "00 00"])
def test_malformed_payloads_raise(hex_data: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_battery_level(bytes.fromhex(hex_data))
    assert info.value.characteristic == "Battery Level"


@pytest.mark.parametrize("percent", [-1, 101, 255, 256])
def test_unencodable_values_raise(percent: int) -> None:
    with pytest.raises(EncodeError):
        encode_battery_level(BatteryLevel(percent))
