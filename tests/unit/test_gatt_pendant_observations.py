"""The pendant's vendor characteristic, the mapping of measurements to observations, and the
device kinds."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitals import Metric, Quality
from vitals.devices import DeviceKind
from vitals.gatt import (
    PENDANT_EVENT_CHARACTERISTIC,
    RESPIRATORY_RATE_CHARACTERISTIC,
    BatteryLevel,
    BloodPressureMeasurement,
    BloodPressureStatus,
    DecodeError,
    GlucoseConcentrationUnit,
    GlucoseMeasurement,
    GlucoseSensorStatus,
    GlucoseType,
    HeartRateMeasurement,
    PendantEvent,
    PendantEventType,
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    PressureUnit,
    RespiratoryRate,
    SampleLocation,
    TemperatureMeasurement,
    TemperatureUnit,
    WeightMeasurement,
    characteristic_uuid,
    decode,
    encode,
)
from vitals.gatt.weight import UnitSystem
from vitals.observations import Observation, observations

T = dt.datetime(2026, 11, 24, 7, 30, 5)
PENDANT = str(PENDANT_EVENT_CHARACTERISTIC)

# --- pendant -----------------------------------------------------------------------------

PENDANT_VECTORS = [
    ("fall", "01 01 0700 ea07 0b 18 07 1e 05", PendantEvent(PendantEventType.FALL, 7, T)),
    (
        "help",
        "01 02 ffff ea07 0b 18 07 1e 05",
        PendantEvent(PendantEventType.HELP_BUTTON, 65535, T),
    ),
    (
        "ok, clock unset",
        "01 03 0000 0000 00 00 00 00 00",
        PendantEvent(PendantEventType.WEARER_OK, 0, None),
    ),
    (
        "removed",
        "01 04 3412 ea07 0b 18 07 1e 05",
        PendantEvent(PendantEventType.REMOVED, 0x1234, T),
    ),
    ("unknown event kept", "01 09 0100 ea07 0b 18 07 1e 05", PendantEvent(9, 1, T)),
]


@pytest.mark.parametrize(
    ("hexdata", "expected"),
    [(h, e) for _, h, e in PENDANT_VECTORS],
    ids=[n for n, _, _ in PENDANT_VECTORS],
)
def test_pendant_known_vectors(hexdata: str, expected: PendantEvent) -> None:
    data = bytes.fromhex(hexdata)
    assert decode(PENDANT, data) == expected
    assert decode(PENDANT_EVENT_CHARACTERISTIC, data) == expected
    assert encode(expected) == data
    assert characteristic_uuid(expected) == PENDANT_EVENT_CHARACTERISTIC


@pytest.mark.parametrize(
    ("hexdata", "reason"),
    [
        ("", "truncated at offset 0"),
        ("01", "truncated at offset 1"),
        ("01 01 07", "truncated at offset 2"),
        ("01 01 0700 ea07 0b 18 07 1e", "truncated at offset 4"),
        ("02 01 0700 ea07 0b 18 07 1e 05", "format version 2 is not supported"),
        ("01 01 0700 ea07 0d 18 07 1e 05", "month"),
        ("01 01 0700 ea07 0b 18 07 1e 05 00", "trailing byte"),
    ],
)
def test_pendant_malformed(hexdata: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(PENDANT, bytes.fromhex(hexdata))


@settings(max_examples=300)
@given(
    st.sampled_from(list(PendantEventType)) | st.integers(0, 255),
    st.integers(0, 65535),
    st.none()
    | st.datetimes(min_value=dt.datetime(1582, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
)
def test_pendant_round_trip(
    event: PendantEventType | int, sequence: int, stamp: dt.datetime | None
) -> None:
    value = PendantEvent(event, sequence, stamp)
    assert decode(PENDANT, encode(value)) == value


@settings(max_examples=300)
@given(st.binary(max_size=24))
def test_pendant_fuzz_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(PENDANT, data)


# --- observations ------------------------------------------------------------------------


def test_heart_rate_observations_with_rr_and_contact() -> None:
    got = observations(HeartRateMeasurement(72, sensor_contact=False, rr_intervals=(1024, 512)))
    assert got == (
        Observation(Metric.HEART_RATE, 72.0, flags=(Quality.NO_CONTACT,)),
        Observation(Metric.RR_INTERVAL, 1.0, flags=(Quality.NO_CONTACT,)),
        Observation(Metric.RR_INTERVAL, 0.5, flags=(Quality.NO_CONTACT,)),
    )
    assert observations(HeartRateMeasurement(60, sensor_contact=True)) == (
        Observation(Metric.HEART_RATE, 60.0),
    )


def test_temperature_in_fahrenheit_becomes_celsius() -> None:
    (obs,) = observations(TemperatureMeasurement(101.3, TemperatureUnit.FAHRENHEIT, T))
    assert obs.metric is Metric.BODY_TEMPERATURE
    assert obs.value == pytest.approx(38.5)
    assert obs.device_time == T
    assert obs.flags == (Quality.DEVICE_TIME,)
    assert observations(TemperatureMeasurement(None)) == ()


def test_blood_pressure_in_kpa_with_user_pulse_and_status() -> None:
    got = observations(
        BloodPressureMeasurement(
            16.0,
            10.7,
            12.5,
            PressureUnit.KPA,
            pulse_rate=71.0,
            user_id=2,
            status=BloodPressureStatus.BODY_MOVEMENT | BloodPressureStatus.IRREGULAR_PULSE,
        )
    )
    by_metric = {o.metric: o for o in got}
    assert by_metric[Metric.SYSTOLIC_BP].value == pytest.approx(120.01, abs=0.01)
    assert by_metric[Metric.DIASTOLIC_BP].value == pytest.approx(80.26, abs=0.01)
    assert by_metric[Metric.MEAN_ARTERIAL_PRESSURE].value == pytest.approx(93.76, abs=0.01)
    assert by_metric[Metric.PULSE_RATE].value == 71.0
    assert {o.user for o in got} == {2}
    assert {o.flags for o in got} == {(Quality.MOVEMENT, Quality.IRREGULAR_PULSE)}


def test_blood_pressure_unknown_user_and_special_values() -> None:
    got = observations(BloodPressureMeasurement(128.0, None, 95.0, user_id=0xFF))
    assert [o.metric for o in got] == [Metric.SYSTOLIC_BP, Metric.MEAN_ARTERIAL_PRESSURE]
    assert {o.user for o in got} == {None}


def test_plx_flags() -> None:
    spot = PlxSpotCheckMeasurement(
        93.0,
        88.0,
        timestamp=T,
        measurement_status=PlxMeasurementStatus.QUESTIONABLE_MEASUREMENT_DETECTED,
        device_clock_not_set=True,
    )
    got = observations(spot)
    assert [(o.metric, o.value) for o in got] == [(Metric.SPO2, 93.0), (Metric.PULSE_RATE, 88.0)]
    assert all(o.device_time is None and o.flags == (Quality.QUESTIONABLE,) for o in got)
    cont = PlxContinuousMeasurement(
        97.0, 64.0, device_sensor_status=PlxDeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER
    )
    assert {o.flags for o in observations(cont)} == {(Quality.NO_CONTACT,)}
    assert {o.flags for o in observations(PlxContinuousMeasurement(97.0, 64.0))} == {()}


def test_weight_in_pounds_with_bmi_and_height() -> None:
    got = observations(WeightMeasurement(154.32, UnitSystem.IMPERIAL, T, 1, 24.2, 66.5))
    by_metric = {o.metric: o.value for o in got}
    assert by_metric[Metric.BODY_WEIGHT] == pytest.approx(69.9984, abs=0.0001)
    assert by_metric[Metric.BMI] == 24.2
    assert by_metric[Metric.BODY_HEIGHT] == pytest.approx(1.6891)
    assert {o.user for o in got} == {1}
    assert observations(WeightMeasurement(None)) == ()


def test_glucose_kg_per_litre_becomes_mmol() -> None:
    value = GlucoseMeasurement(
        sequence_number=3,
        base_time=T,
        time_offset=-5,
        concentration=0.0009,
        unit=GlucoseConcentrationUnit.KG_PER_L,
        sample_type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
        sensor_status=GlucoseSensorStatus.DEVICE_BATTERY_LOW,
    )
    (obs,) = observations(value)
    assert obs.metric is Metric.BLOOD_GLUCOSE
    assert obs.value == pytest.approx(4.9957, abs=1e-4)
    assert obs.device_time == T - dt.timedelta(minutes=5)
    assert obs.flags == (Quality.QUESTIONABLE, Quality.DEVICE_TIME)


def test_battery_and_pendant() -> None:
    assert observations(BatteryLevel(40)) == (Observation(Metric.BATTERY_LEVEL, 40.0),)
    (fall,) = observations(PendantEvent(PendantEventType.FALL, 1, T))
    assert (fall.metric, fall.value, fall.device_time) == (Metric.FALL, 1.0, T)
    (help_,) = observations(PendantEvent(PendantEventType.HELP_BUTTON, 2, None))
    assert (help_.metric, help_.device_time, help_.flags) == (Metric.HELP_BUTTON, None, ())
    assert observations(PendantEvent(PendantEventType.WEARER_OK, 3, T)) == ()


# --- device kinds ------------------------------------------------------------------------


def test_every_device_kind_subscribes_to_characteristics_we_can_decode() -> None:
    for kind in DeviceKind:
        info = kind.info
        assert info.services, kind
        assert info.subscribe, kind
        for characteristic in info.subscribe:
            with pytest.raises(DecodeError):
                decode(characteristic, b"")
        assert info.metrics, kind


def test_spot_and_continuous_kinds() -> None:
    spot = {kind for kind in DeviceKind if kind.info.spot}
    assert spot == {
        DeviceKind.THERMOMETER,
        DeviceKind.BP_CUFF,
        DeviceKind.SCALE,
        DeviceKind.GLUCOSE_METER,
    }
    assert str(DeviceKind.WEARABLE.info.services[0]) == "0000180d-0000-1000-8000-00805f9b34fb"


# --- respiratory rate (wearable vendor characteristic) --------------------------------------

RESP = str(RESPIRATORY_RATE_CHARACTERISTIC)


@pytest.mark.parametrize(
    ("hexdata", "expected"),
    [
        ("00 1000", RespiratoryRate(16.0)),
        ("03 1000", RespiratoryRate(16.0, sensor_contact=True)),
        ("01 1000", RespiratoryRate(16.0, sensor_contact=False)),
        ("03 b5f0", RespiratoryRate(18.1, sensor_contact=True)),
        ("00 ff07", RespiratoryRate(None)),
        ("00 0008", RespiratoryRate(None)),
    ],
)
def test_respiratory_rate_known_vectors(hexdata: str, expected: RespiratoryRate) -> None:
    data = bytes.fromhex(hexdata)
    assert decode(RESP, data) == expected
    assert encode(expected) == data or expected.breaths_per_minute is None


@pytest.mark.parametrize("hexdata", ["", "00", "00 10", "00 1000 00"])
def test_respiratory_rate_malformed(hexdata: str) -> None:
    with pytest.raises(DecodeError):
        decode(RESP, bytes.fromhex(hexdata))


@settings(max_examples=300)
@given(
    st.none() | st.integers(0, 2000).map(float) | st.integers(0, 999).map(lambda n: n / 10),
    st.none() | st.booleans(),
)
def test_respiratory_rate_round_trip(rate: float | None, contact: bool | None) -> None:
    value = RespiratoryRate(rate, contact)
    assert decode(RESP, encode(value)) == value


def test_respiratory_rate_observation() -> None:
    assert observations(RespiratoryRate(17.0, False)) == (
        Observation(Metric.RESPIRATORY_RATE, 17.0, flags=(Quality.NO_CONTACT,)),
    )
    assert observations(RespiratoryRate(None)) == ()
