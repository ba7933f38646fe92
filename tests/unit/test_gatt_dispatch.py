"""The dispatcher: every UUID form, unknown and malformed UUIDs, encode by type."""

from __future__ import annotations

import uuid

import pytest

from vitals import gatt
from vitals.gatt import (
    BATTERY_LEVEL,
    CHARACTERISTIC_NAMES,
    HEART_RATE_MEASUREMENT,
    BatteryLevel,
    DecodeError,
    GattError,
    HeartRateMeasurement,
    InvalidUUIDError,
    Measurement,
    UnknownCharacteristicError,
    characteristic_name,
    characteristic_uuid,
    decode,
    encode,
    uuid16_from,
    uuid16_to_str,
)

HR_PAYLOAD = bytes.fromhex("06 48")
HR_VALUE = HeartRateMeasurement(72, sensor_contact=True)


@pytest.mark.parametrize(
    "form",
    [
        0x2A37,
        "2a37",
        "2A37",
        "0x2A37",
        "0x2a37",
        "0X2A37",
        "00002a37",
        "00002a37-0000-1000-8000-00805f9b34fb",
        "00002A37-0000-1000-8000-00805F9B34FB",
        "{00002a37-0000-1000-8000-00805f9b34fb}",
        "00002a3700001000800000805f9b34fb",
        uuid.UUID("00002a37-0000-1000-8000-00805f9b34fb"),
    ],
)
def test_every_uuid_form_reaches_the_decoder(form: int | str | uuid.UUID) -> None:
    assert decode(form, HR_PAYLOAD) == HR_VALUE
    assert uuid16_from(form) == 0x2A37
    assert characteristic_name(form) == "Heart Rate Measurement"


@pytest.mark.parametrize(
    "form",
    [
        0x2A38,  # Body Sensor Location: well-formed, not decoded here
        "2a00",
        "0x180D",  # a service, not a characteristic
        "12345678",  # 32-bit SIG UUID
        "00002a37-0000-1000-8000-00805f9b34fc",  # not the Bluetooth Base UUID
        uuid.UUID("6e400003-b5a3-f393-e0a9-e50e24dcca9e"),  # a vendor UUID (Nordic UART TX)
    ],
)
def test_unknown_characteristics_raise(form: int | str | uuid.UUID) -> None:
    with pytest.raises(UnknownCharacteristicError) as info:
        decode(form, HR_PAYLOAD)
    assert isinstance(info.value, GattError)
    assert info.value.uuid == gatt.uuid_to_str(form)


@pytest.mark.parametrize(
    "form",
    [
        "",
        "2a3",
        "2a37 ",
        " 2a37",
        "0x",
        "0x2A37F",
        "zz37",
        "2a37-0000",
        "heart rate",
        -1,
        0x10000,
        True,
        2.5,
        None,
        b"\x37\x2a",
    ],
)
def test_malformed_uuids_raise(form: object) -> None:
    with pytest.raises(InvalidUUIDError) as info:
        decode(form, HR_PAYLOAD)  # type: ignore[arg-type]
    assert isinstance(info.value, GattError)
    assert isinstance(info.value, ValueError)


def test_decode_errors_pass_through_the_dispatcher() -> None:
    with pytest.raises(DecodeError) as info:
        decode("2a37", b"")
    assert info.value.characteristic == "Heart Rate Measurement"
    assert info.value.offset == 0


def test_payload_must_be_bytes_like() -> None:
    with pytest.raises(TypeError):
        decode(0x2A37, 5)  # type: ignore[arg-type]
    assert decode(0x2A37, bytearray(HR_PAYLOAD)) == HR_VALUE


def test_uuid16_to_str() -> None:
    assert uuid16_to_str(0x2A37) == "00002a37-0000-1000-8000-00805f9b34fb"
    assert uuid16_to_str(0x180D) == "0000180d-0000-1000-8000-00805f9b34fb"
    assert uuid16_to_str(0) == "00000000-0000-1000-8000-00805f9b34fb"
    for bad in (-1, 0x10000, True):
        with pytest.raises(InvalidUUIDError):
            uuid16_to_str(bad)


def test_service_and_characteristic_constants() -> None:
    assert (
        gatt.GLUCOSE_SERVICE,
        gatt.HEALTH_THERMOMETER_SERVICE,
        gatt.DEVICE_INFORMATION_SERVICE,
        gatt.HEART_RATE_SERVICE,
        gatt.BATTERY_SERVICE,
        gatt.BLOOD_PRESSURE_SERVICE,
        gatt.WEIGHT_SCALE_SERVICE,
        gatt.PULSE_OXIMETER_SERVICE,
    ) == (0x1808, 0x1809, 0x180A, 0x180D, 0x180F, 0x1810, 0x181D, 0x1822)
    assert dict(CHARACTERISTIC_NAMES) == {
        0x2A37: "Heart Rate Measurement",
        0x2A1C: "Temperature Measurement",
        0x2A35: "Blood Pressure Measurement",
        0x2A5E: "PLX Spot-Check Measurement",
        0x2A5F: "PLX Continuous Measurement",
        0x2A9D: "Weight Measurement",
        0x2A18: "Glucose Measurement",
        0x2A19: "Battery Level",
        gatt.PENDANT_EVENT_CHARACTERISTIC: "Pendant Event",
        gatt.RESPIRATORY_RATE_CHARACTERISTIC: "Respiratory Rate",
    }


@pytest.mark.parametrize(
    ("value", "uuid16", "payload"),
    [
        (HR_VALUE, HEART_RATE_MEASUREMENT, HR_PAYLOAD),
        (BatteryLevel(80), BATTERY_LEVEL, b"\x50"),
        (gatt.TemperatureMeasurement(36.4), 0x2A1C, bytes.fromhex("00 6C 01 00 FF")),
        (
            gatt.BloodPressureMeasurement(121.0, 81.0, 93.0),
            0x2A35,
            bytes.fromhex("00 79 00 51 00 5D 00"),
        ),
        (gatt.PlxSpotCheckMeasurement(98.0, 72.0), 0x2A5E, bytes.fromhex("00 62 00 48 00")),
        (gatt.PlxContinuousMeasurement(98.0, 72.0), 0x2A5F, bytes.fromhex("00 62 00 48 00")),
        (gatt.WeightMeasurement(70.02), 0x2A9D, bytes.fromhex("00 B4 36")),
        (gatt.GlucoseMeasurement(3, None), 0x2A18, bytes.fromhex("00 03 00 00 00 00 00 00 00 00")),
    ],
)
def test_encode_dispatches_on_type(value: Measurement, uuid16: int, payload: bytes) -> None:
    assert characteristic_uuid(value) == uuid16
    assert encode(value) == payload
    assert decode(uuid16, payload) == value


def test_encode_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        encode("not a measurement")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        characteristic_uuid(42)  # type: ignore[arg-type]


def test_all_exports_exist() -> None:
    for name in gatt.__all__:
        assert hasattr(gatt, name), name
    assert len(set(gatt.__all__)) == len(gatt.__all__)


def test_errors_share_the_vitals_root() -> None:
    from vitals.errors import VitalsError

    for error in (gatt.DecodeError, gatt.EncodeError, InvalidUUIDError, UnknownCharacteristicError):
        assert issubclass(error, GattError)
        assert issubclass(GattError, VitalsError)
    assert str(gatt.DecodeError("bad", "Battery Level", 0)) == "Battery Level: bad"
    assert str(gatt.DecodeError("bad")) == "bad"
    assert str(gatt.EncodeError("too big", "Battery Level")) == "Battery Level: too big"
