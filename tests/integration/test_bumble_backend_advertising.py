"""Advertising data as the Bumble scanner reports it to bleak: known vectors, malformed input.

Pure (no radio): each case is the raw AD structures of one Bumble advertisement and the
``AdvertisementData`` bleak's callers must see. Advertising data comes from the air, so the
malformed cases matter as much as the good ones: a bad structure is skipped, never raised.
"""

from __future__ import annotations

import struct

import pytest
from bleak.backends.scanner import AdvertisementData
from bumble import hci
from bumble.device import Advertisement

from gateway.ble import advertisement_data

pytestmark = pytest.mark.integration

ADDRESS = hci.Address("C0:DE:00:00:00:01")
HR = "0000180d-0000-1000-8000-00805f9b34fb"
BATTERY = "0000180f-0000-1000-8000-00805f9b34fb"
VENDOR_32 = "12345678-0000-1000-8000-00805f9b34fb"
VENDOR_128 = "7a3e0000-5c1d-4f6b-9a2e-3b8c4d5e6f70"
VENDOR_128_LE = bytes.fromhex("7a3e00005c1d4f6b9a2e3b8c4d5e6f70")[::-1]


def ad(ad_type: int, value: bytes) -> bytes:
    return bytes([len(value) + 1, ad_type]) + value


def expected(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "local_name": None,
        "manufacturer_data": {},
        "service_data": {},
        "service_uuids": [],
        "tx_power": None,
        "rssi": -60,
    }
    base.update(fields)
    return base


CASES: list[tuple[str, bytes, dict[str, object]]] = [
    (
        "everything",
        ad(0x01, b"\x06")
        + ad(0x03, struct.pack("<HH", 0x180D, 0x180F))
        + ad(0x05, struct.pack("<I", 0x12345678))
        + ad(0x07, VENDOR_128_LE)
        + ad(0x09, b"CW-HR-1")
        + ad(0x0A, struct.pack("<b", -4))
        + ad(0xFF, struct.pack("<H", 0x0FFE) + b"\x01\x02")
        + ad(0xFF, struct.pack("<H", 0x004C) + b"")
        + ad(0x16, struct.pack("<H", 0x180F) + b"\x57")
        + ad(0x20, struct.pack("<I", 0x12345678) + b"\x01")
        + ad(0x21, VENDOR_128_LE + b"\x02\x03"),
        expected(
            local_name="CW-HR-1",
            manufacturer_data={0x0FFE: b"\x01\x02", 0x004C: b""},
            service_data={BATTERY: b"\x57", VENDOR_32: b"\x01", VENDOR_128: b"\x02\x03"},
            service_uuids=[HR, BATTERY, VENDOR_32, VENDOR_128],
            tx_power=-4,
        ),
    ),
    ("nothing", b"", expected()),
    ("shortened name only", ad(0x08, b"CW-H"), expected(local_name="CW-H")),
    (
        "complete name wins over shortened, whatever the order",
        ad(0x08, b"CW-H") + ad(0x09, b"CW-HR-1"),
        expected(local_name="CW-HR-1"),
    ),
    ("trailing NULs are padding", ad(0x09, b"CW\x00\x00"), expected(local_name="CW")),
    ("name not UTF-8", ad(0x09, b"CW\xff"), expected(local_name="CW\ufffd")),
    (
        "the same UUID twice (advertisement and scan response)",
        ad(0x03, struct.pack("<H", 0x180D)) + ad(0x02, struct.pack("<H", 0x180D)),
        expected(service_uuids=[HR]),
    ),
    (
        "odd-length 16-bit list keeps the whole UUIDs",
        ad(0x03, struct.pack("<H", 0x180D) + b"\x0f"),
        expected(service_uuids=[HR]),
    ),
    ("128-bit list too short", ad(0x07, VENDOR_128_LE[:15]), expected()),
    ("manufacturer data without a company", ad(0xFF, b"\x01"), expected()),
    ("service data without its UUID", ad(0x16, b"\x0f"), expected()),
    ("TX power of two bytes", ad(0x0A, b"\x01\x02"), expected()),
    ("TX power empty", ad(0x0A, b""), expected()),
    (
        "structure running past the end is cut, the rest kept",
        ad(0x09, b"CW-HR-1") + bytes([9, 0xFF, 0xFE, 0x0F, 0x01]),
        expected(local_name="CW-HR-1", manufacturer_data={0x0FFE: b"\x01"}),
    ),
    (
        "zero-length structure and unknown types are ignored",
        b"\x00" + ad(0x3D, b"\x01\x02") + ad(0x09, b"CW"),
        expected(local_name="CW"),
    ),
]


@pytest.mark.parametrize(("raw", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_advertisement_data(raw: bytes, want: dict[str, object]) -> None:
    data = advertisement_data(Advertisement(address=ADDRESS, rssi=-60, data_bytes=raw))
    assert isinstance(data, AdvertisementData)
    got = data._asdict()
    assert got.pop("platform_data")[0].address == ADDRESS
    assert got == want


def test_missing_rssi_reads_as_minus_127_as_with_bluez() -> None:
    advertisement = Advertisement(
        address=ADDRESS, rssi=Advertisement.RSSI_NOT_AVAILABLE, data_bytes=b""
    )
    assert advertisement_data(advertisement).rssi == -127
