"""firmware_sim.firmware: payloads, determinism, batteries, radio, faults."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.firmware import (
    INDICATED,
    DeviceConfig,
    DeviceFirmware,
    Emission,
    RadioState,
    Simulation,
    indicated,
)
from firmware_sim.physiology import Physiology, Profile
from firmware_sim.scenarios import ScenarioKind, parse_scenario_arg
from firmware_sim.site import SEEDS_DIR, Site, load_site, parse_site
from vitals import gatt
from vitals.devices import DeviceKind
from vitals.gatt import (
    BatteryLevel,
    HeartRateMeasurement,
    PendantEvent,
    PendantEventType,
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    RespiratoryRate,
)
from vitals.observations import observations

START = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)
T0 = START.timestamp()


@pytest.fixture(scope="module")
def test_home() -> Site:
    return load_site(SEEDS_DIR / "test-home.toml")


def _run(
    sim: Simulation, ticks: Iterable[float], devices: Sequence[str] | None = None
) -> list[Emission]:
    out: list[Emission] = []
    chosen = sim.devices if devices is None else [sim.device(d) for d in devices]
    for t in ticks:
        for device in chosen:
            out.extend(device.advance(t))
    return out


def _key(emission: Emission) -> tuple[str, uuid.UUID, bytes, float]:
    return (emission.device, emission.characteristic, emission.payload, emission.time)


def _firmware(kind: DeviceKind, **config: object) -> DeviceFirmware:
    settings = {"id": f"x-{kind.value}", "kind": kind, "resident": "x", **config}
    return DeviceFirmware(
        DeviceConfig(**settings),  # type: ignore[arg-type]
        Physiology(Profile(glucose=6.0), 11),
        seed=5,
        start=T0,
        zone=dt.UTC,
    )


# --- payloads ---------------------------------------------------------------------------

EXPECTED_INDICATE = {
    "Heart Rate Measurement": False,
    "Respiratory Rate": False,
    "PLX Continuous Measurement": False,
    "PLX Spot-Check Measurement": True,
    "Temperature Measurement": True,
    "Blood Pressure Measurement": True,
    "Weight Measurement": True,
    "Glucose Measurement": False,
    "Battery Level": False,
    "Pendant Event": True,
}


def test_every_emission_decodes_to_its_value_within_metric_ranges(test_home: Site) -> None:
    sim = Simulation(test_home, seed=1, start=START)
    emissions = _run(sim, (T0 + 120.0 * k for k in range(26 * 30)))
    seen = Counter(gatt.characteristic_name(e.characteristic) for e in emissions)
    assert set(seen) == set(EXPECTED_INDICATE), seen
    kinds = {sim.device(e.device).kind for e in emissions}
    assert kinds == set(DeviceKind)
    for emission in emissions:
        assert not emission.malformed
        assert gatt.decode(emission.characteristic, emission.payload) == emission.value
        assert gatt.encode(emission.value) == emission.payload
        assert len(emission.payload) <= 20
        name = gatt.characteristic_name(emission.characteristic)
        assert emission.indicate is EXPECTED_INDICATE[name]
        assert emission.indicate is indicated(emission.characteristic)
        assert str(emission.characteristic) == gatt.uuid_to_str(
            gatt.characteristic_uuid(emission.value)
        )
        assert emission.characteristic in sim.device(emission.device).characteristics
        for observation in observations(emission.value):
            assert observation.metric.in_range(observation.value), (emission, observation)
    assert {e.characteristic for e in emissions if e.indicate} == INDICATED


def test_values_are_rounded_as_devices_send_them(test_home: Site) -> None:
    sim = Simulation(test_home, seed=2, start=START, scenarios=[])
    for emission in _run(sim, (T0 + 900.0 * k for k in range(2 * 96))):
        for observation in observations(emission.value):
            value = observation.value
            match observation.metric.value:
                case "heart_rate" | "spo2" | "pulse_rate" | "respiratory_rate":
                    assert value == round(value)
                case "systolic_bp" | "diastolic_bp" | "mean_arterial_pressure":
                    assert value == round(value)
                case "body_temperature" | "bmi" | "blood_glucose":
                    assert math.isclose(value * 10, round(value * 10))
                case "body_weight":
                    assert math.isclose(value * 200, round(value * 200))


# --- determinism ------------------------------------------------------------------------


def test_same_seed_same_bytes_at_1s_and_quarter_second_ticks(test_home: Site) -> None:
    seconds = 12 * 60
    coarse = _run(Simulation(test_home, seed=3, start=START), (T0 + k for k in range(seconds)))
    fine = _run(
        Simulation(test_home, seed=3, start=START), (T0 + k * 0.25 for k in range(4 * seconds - 3))
    )
    assert sorted(map(_key, coarse)) == sorted(map(_key, fine))
    assert len(coarse) > 3 * seconds
    other = _run(Simulation(test_home, seed=4, start=START), (T0 + k for k in range(seconds)))
    assert sorted(map(_key, other)) != sorted(map(_key, coarse))


def test_spot_and_event_devices_do_not_depend_on_the_ticks(test_home: Site) -> None:
    chosen = [
        "r01-temp",
        "r01-bp",
        "r01-scale",
        "r01-glucose",
        "r01-pendant",
        "r02-pendant",
        "r03-temp",
        "r03-pendant",
    ]
    end = T0 + 3 * 86_400.0
    regular = _run(
        Simulation(test_home, seed=5, start=START),
        (T0 + 600.0 * k for k in range(int((end - T0) / 600) + 1)),
        chosen,
    )
    rng = random.Random(5)
    ticks = [T0]
    while ticks[-1] < end:
        ticks.append(min(end, ticks[-1] + rng.choice([0.3, 7.0, 61.0, 900.0, 3600.0, 7201.5])))
    irregular = _run(Simulation(test_home, seed=5, start=START), ticks, chosen)
    assert sorted(map(_key, irregular)) == sorted(map(_key, regular))
    names = Counter(gatt.characteristic_name(e.characteristic) for e in regular)
    assert names["Temperature Measurement"] >= 6
    assert names["Blood Pressure Measurement"] == 6
    assert names["Weight Measurement"] == 3
    assert names["Glucose Measurement"] == 12
    assert names["Pendant Event"] == 1
    assert names["Battery Level"] >= 3 * 3 * 24 * 12


def test_battery_notifications_do_not_depend_on_the_ticks(test_home: Site) -> None:
    def battery(ticks: Iterable[float]) -> list[tuple[float, str, bytes]]:
        sim = Simulation(test_home, seed=6, start=START, scenarios=[])
        emissions = _run(sim, ticks, ["r01-hr", "r01-spo2"])
        return sorted(
            (e.time, e.device, e.payload) for e in emissions if isinstance(e.value, BatteryLevel)
        )

    hours = 40
    hourly = battery(T0 + 3600.0 * k for k in range(hours + 1))
    odd = battery([T0, *(T0 + 977.0 * k for k in range(1, hours * 3600 // 977)), T0 + hours * 3600])
    assert hourly == odd
    assert len(hourly) > 20


# --- continuous behaviour ---------------------------------------------------------------


def test_continuous_characteristics_emit_once_per_call_after_the_cadence() -> None:
    wearable = _firmware(DeviceKind.WEARABLE, battery_days=1000.0)
    per_call = [wearable.advance(T0 + 60.0 * k) for k in range(10)]
    for emissions in per_call:
        names = sorted(gatt.characteristic_name(e.characteristic) for e in emissions)
        assert names == ["Heart Rate Measurement", "Respiratory Rate"]
        assert all(e.time == emissions[0].time for e in emissions)
    halves = _firmware(DeviceKind.WEARABLE, battery_days=1000.0)
    counts = [len(halves.advance(T0 + 0.5 * k)) for k in range(8)]
    assert counts == [2, 0, 2, 0, 2, 0, 2, 0]
    assert halves.advance(T0 + 3.0) == []  # not after the previous call
    slow = _firmware(DeviceKind.WEARABLE, battery_days=1000.0, cadence=5.0)
    counts = [len(slow.advance(T0 + k)) for k in range(11)]
    assert counts == [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2]


def test_heart_rate_carries_every_beat_once_and_caps_at_nine() -> None:
    wearable = _firmware(DeviceKind.WEARABLE, battery_days=1000.0, artefacts_per_hour=0.0)
    intervals: list[int] = []
    for k in range(301):
        for emission in wearable.advance(T0 + k):
            if isinstance(emission.value, HeartRateMeasurement):
                intervals.extend(emission.value.rr_intervals or ())
    expected = wearable.physiology.rr_intervals(T0 - 1.0, T0 + 300.0)
    assert intervals == [round(interval * 1024) for _, interval in expected]
    sparse = _firmware(DeviceKind.WEARABLE, battery_days=1000.0, artefacts_per_hour=0.0)
    sparse.advance(T0)
    (heart, _) = sparse.advance(T0 + 60.0)
    assert isinstance(heart.value, HeartRateMeasurement)
    assert heart.value.rr_intervals is not None
    assert len(heart.value.rr_intervals) == 9
    assert len(heart.payload) == 20
    last_nine = sparse.physiology.rr_intervals(T0, T0 + 60.0)[-9:]
    assert list(heart.value.rr_intervals) == [round(i * 1024) for _, i in last_nine]


# --- batteries --------------------------------------------------------------------------


def test_battery_drains_over_the_kinds_life_and_is_swapped_at_the_threshold() -> None:
    wearable = _firmware(DeviceKind.WEARABLE, battery=100.0, cadence=3600.0)
    assert wearable.battery(T0) == 100
    assert wearable.battery(T0 + 86_400.0) == math.ceil(100 - 100 / 6)
    percents: list[int] = []
    for k in range(1, 24 * 6 + 1):
        percents.extend(
            e.value.percent
            for e in wearable.advance(T0 + 3600.0 * k)
            if isinstance(e.value, BatteryLevel)
        )
    # 100 -> 26 in 4.44 days, a charged one at 25 %, and on down again.
    swap = percents.index(100)
    assert percents[:swap] == list(range(99, 25, -1))
    assert percents[swap + 1 : swap + 4] == [99, 98, 97]
    assert min(percents) == 26
    assert wearable.radio(T0 + 30 * 86_400.0) is RadioState.ON
    assert wearable.death() is None


def test_a_battery_that_is_never_swapped_runs_flat_and_the_device_goes_silent() -> None:
    wearable = _firmware(DeviceKind.WEARABLE, battery=2.0, recharge_below=0)
    death = T0 + 2.0 / 100 * 6 * 86_400.0
    assert wearable.death() == pytest.approx(death)
    assert wearable.goes_silent(T0) == pytest.approx(death)
    emissions = [e for k in range(0, 2 * 3600, 10) for e in wearable.advance(T0 + k)]
    assert [e.value.percent for e in emissions if isinstance(e.value, BatteryLevel)] == [1]
    assert max(e.time for e in emissions) < death
    assert wearable.radio(death) is RadioState.DEAD
    assert wearable.battery(death + 1) == 0
    assert wearable.advance(T0 + 3 * 3600) == []


def test_the_pendant_heartbeat_is_its_battery_every_five_minutes() -> None:
    pendant = _firmware(DeviceKind.PENDANT, battery=77.0)
    emissions = [e for k in range(13) for e in pendant.advance(T0 + 300.0 * k)]
    assert len(emissions) == 12
    assert all(e.value == BatteryLevel(77) and not e.indicate for e in emissions)
    gaps = {round(b.time - a.time, 6) for a, b in itertools.pairwise(emissions)}
    assert gaps == {300.0}


# --- faults -----------------------------------------------------------------------------


def test_dropped_notifications_follow_the_configured_rate() -> None:
    wearable = _firmware(DeviceKind.WEARABLE, drop_rate=0.2, battery_days=1000.0)
    emitted = [e for k in range(3000) for e in wearable.advance(T0 + k)]
    stats = wearable.stats
    assert stats.emitted == len(emitted)
    assert stats.emitted + stats.dropped == 2 * 3000
    assert 0.17 < stats.dropped / 6000 < 0.23
    assert stats.malformed == 0


def test_malformed_payloads_do_not_decode_and_the_rest_do() -> None:
    oximeter = _firmware(DeviceKind.PULSE_OXIMETER, malformed_rate=0.3, battery_days=1000.0)
    emissions = [e for k in range(2000) for e in oximeter.advance(T0 + k)]
    bad = [e for e in emissions if e.malformed]
    assert 0.25 < len(bad) / len(emissions) < 0.35
    assert oximeter.stats.malformed == len(bad)
    for emission in emissions:
        if emission.malformed:
            assert len(emission.payload) < len(gatt.encode(emission.value))
            with pytest.raises(gatt.DecodeError):
                gatt.decode(emission.characteristic, emission.payload)
        else:
            assert gatt.decode(emission.characteristic, emission.payload) == emission.value


def test_motion_artefacts_are_brief_implausible_and_labelled() -> None:
    site = parse_site(
        'id = "a"\nname = "A"\n[[residents]]\nid = "r01"\nactivity = 1.0\ndevices = [\n'
        '  { id = "r01-hr", kind = "wearable", artefacts_per_hour = 30 },\n'
        '  { id = "r01-spo2", kind = "pulse_oximeter", artefacts_per_hour = 30 },\n]\n'
    )
    sim = Simulation(site, seed=8, start=START)
    emissions = _run(sim, (T0 + k for k in range(2 * 3600)))
    artefacts = [e for e in emissions if e.artefact]
    assert artefacts
    for emission in artefacts:
        match emission.value:
            case HeartRateMeasurement(heart_rate=rate):
                assert 170 <= rate <= 220
            case PlxContinuousMeasurement(spo2=spo2):
                assert spo2 is not None
                assert 75 <= spo2 <= 85
            case other:
                pytest.fail(f"artefact in {other}")
    events = [e for e in sim.truth_events() if e.kind is ScenarioKind.ARTEFACT]
    assert {e.device for e in events} == {"r01-hr", "r01-spo2"}
    times = {dt.datetime.fromtimestamp(e.time, dt.UTC) for e in artefacts}
    for event in events:
        assert event.expected is None
        assert event.detectable in times
        assert event.ended is not None
        assert 2.0 <= (event.ended - event.started).total_seconds() <= 5.0
    others = [e for e in emissions if not e.artefact and isinstance(e.value, HeartRateMeasurement)]
    assert (
        max(e.value.heart_rate for e in others if isinstance(e.value, HeartRateMeasurement)) < 150
    )
    assert sum(e.artefact for e in emissions) == sum(d.stats.artefacts for d in sim.devices)


def test_contact_loss_payloads() -> None:
    site = parse_site(
        'id = "a"\nname = "A"\n[[residents]]\nid = "r01"\ndevices = [\n'
        '  { id = "r01-hr", kind = "wearable" },\n'
        '  { id = "r01-spo2", kind = "pulse_oximeter" },\n]\n'
    )
    sim = Simulation(
        site,
        seed=9,
        start=START,
        scenarios=[
            parse_scenario_arg("sensor_removed:r01/r01-hr@10s,duration=20s"),
            parse_scenario_arg("sensor_removed:r01/r01-spo2@10s,duration=20s"),
        ],
    )
    emissions = _run(sim, (T0 + k for k in range(40)))
    for emission in emissions:
        off = T0 + 10 <= emission.time < T0 + 30
        device = sim.device(emission.device)
        assert device.contact(emission.time) is not off
        match emission.value:
            case HeartRateMeasurement() as heart:
                assert heart.sensor_contact is not off
                assert (heart.heart_rate == 0) is off
            case RespiratoryRate() as breathing:
                assert breathing.sensor_contact is not off
                assert (breathing.breaths_per_minute is None) is off
            case PlxContinuousMeasurement() as plx:
                status = plx.device_sensor_status or PlxDeviceSensorStatus(0)
                unconnected = bool(status & PlxDeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER)
                assert unconnected is off
                assert (plx.spo2 is None and plx.pulse_rate is None) is off
                assert (observations(plx) == ()) is off


# --- identity ---------------------------------------------------------------------------


def test_identity_is_derived_from_the_id(test_home: Site) -> None:
    sim = Simulation(test_home, seed=1, start=START)
    again = Simulation(test_home, seed=2, start=START)
    addresses = set()
    for device in sim.devices:
        assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", device.address)
        assert int(device.address[:2], 16) & 0xC0 == 0xC0
        assert device.address == again.device(device.id).address
        addresses.add(device.address)
        assert 0 < len(device.name) <= 20
        assert device.name.isascii()
        assert set(device.device_information) == {
            "manufacturer_name",
            "model_number",
            "serial_number",
            "hardware_revision",
            "firmware_revision",
        }
        assert device.services == device.kind.info.services
        assert device.spot is device.kind.info.spot
    assert len(addresses) == len(sim.devices)


def test_pendant_events_are_indicated_with_sequence_and_device_time(test_home: Site) -> None:
    sim = Simulation(
        test_home,
        seed=1,
        start=START,
        scenarios=[
            parse_scenario_arg("help_button:r01@1m"),
            parse_scenario_arg("fall:r01@3m"),
            parse_scenario_arg("help_button:r01@3m30s"),
        ],
    )
    events = [
        e
        for e in _run(sim, (T0 + 10.0 * k for k in range(30)), ["r01-pendant"])
        if isinstance(e.value, PendantEvent)
    ]
    assert [e.time - T0 for e in events] == [60.0, 180.0, 210.0]
    values = [e.value for e in events if isinstance(e.value, PendantEvent)]
    assert [v.event for v in values] == [
        PendantEventType.HELP_BUTTON,
        PendantEventType.FALL,
        PendantEventType.HELP_BUTTON,
    ]
    assert [v.sequence - values[0].sequence for v in values] == [0, 1, 2]
    london = sim.site.zone
    for emission, value in zip(events, values, strict=True):
        assert emission.indicate
        assert value.timestamp == dt.datetime.fromtimestamp(emission.time, london).replace(
            tzinfo=None
        )


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.floats(min_value=0.0, max_value=2 * 86_400.0), max_size=40))
def test_timed_emissions_do_not_depend_on_where_the_ticks_fall(cuts: list[float]) -> None:
    site = parse_site(
        'id = "p"\nname = "P"\n[[residents]]\nid = "r01"\ndevices = [\n'
        '  { id = "r01-pendant", kind = "pendant", battery = 30, battery_days = 1 },\n'
        '  { id = "r01-bp", kind = "bp_cuff" },\n]\n'
    )
    scenarios = [
        parse_scenario_arg("help_button:r01@1h"),
        parse_scenario_arg("out_of_range:r01/r01-pendant@50m,duration=20m"),
        parse_scenario_arg("out_of_range:r01/r01-bp@22h50m,duration=30m"),
        parse_scenario_arg("battery_death:r01/r01-pendant@30h,drain=1h"),
    ]
    end = T0 + 2 * 86_400.0

    def emitted(ticks: Iterable[float]) -> list[tuple[str, uuid.UUID, bytes, float]]:
        sim = Simulation(site, seed=12, start=START, scenarios=scenarios)
        return sorted(map(_key, _run(sim, ticks)))

    reference = emitted([T0, end])
    assert emitted([T0, *sorted(T0 + cut for cut in cuts), end]) == reference
    assert any(e[1] == gatt.PENDANT_EVENT_CHARACTERISTIC for e in reference)
