"""firmware_sim.scenarios: parsing, NEWS2, what each scenario changes, and its ground truth.

Every scenario test checks ``detectable`` against the emissions themselves: it must be the
time of the first emitted reading that shows the condition, recomputed here independently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.firmware import Emission, RadioState, Simulation
from firmware_sim.physiology import Consciousness
from firmware_sim.scenarios import (
    BatteryDeathSpec,
    Expected,
    FeverSpec,
    ScenarioError,
    ScenarioKind,
    ScenarioSpec,
    TruthEvent,
    format_duration,
    news2_score,
    parse_duration,
    parse_scenario_arg,
    resolve_start,
)
from firmware_sim.site import SEEDS_DIR, Site, load_site, parse_site
from vitals.gatt import BatteryLevel, PendantEvent, PendantEventType
from vitals.metrics import Metric
from vitals.observations import observations
from vitals.wire import Quality

START = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)
T0 = START.timestamp()

ALL_KINDS = (
    'id = "s"\nname = "S"\ntimezone = "Europe/London"\n'
    '[[residents]]\nid = "r01"\nglucose = 6.0\ndevices = [\n'
    '  { id = "r01-hr", kind = "wearable", artefacts_per_hour = 0 },\n'
    '  { id = "r01-spo2", kind = "pulse_oximeter", artefacts_per_hour = 0 },\n'
    '  { id = "r01-temp", kind = "thermometer" },\n'
    '  { id = "r01-bp", kind = "bp_cuff" },\n'
    '  { id = "r01-scale", kind = "scale" },\n'
    '  { id = "r01-glucose", kind = "glucose_meter" },\n'
    '  { id = "r01-pendant", kind = "pendant" },\n]\n'
    '[[residents]]\nid = "r02"\nspo2 = 90\ncopd = true\ndevices = [\n'
    '  { id = "r02-spo2", kind = "pulse_oximeter", artefacts_per_hour = 0 },\n]\n'
)


@pytest.fixture(scope="module")
def home() -> Site:
    return parse_site(ALL_KINDS)


def _simulate(
    site: Site, specs: Sequence[ScenarioSpec | str], seconds: float, tick: float, seed: int = 3
) -> tuple[Simulation, list[Emission]]:
    scenarios = [parse_scenario_arg(s) if isinstance(s, str) else s for s in specs]
    sim = Simulation(site, seed=seed, start=START, scenarios=scenarios)
    emissions: list[Emission] = []
    for k in range(int(seconds / tick) + 1):
        emissions.extend(sim.advance_all(T0 + k * tick))
    return sim, emissions


def _event(sim: Simulation, expected: Expected) -> TruthEvent:
    (event,) = [e for e in sim.truth_events() if e.expected is expected]
    return event


def _at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _good(emission: Emission) -> bool:
    return not emission.artefact and not emission.malformed


def _first(emissions: Iterable[Emission], test: Callable[[Emission], bool]) -> float | None:
    return next((e.time for e in emissions if _good(e) and test(e)), None)


def _values(emission: Emission, *metrics: Metric) -> list[float]:
    return [
        o.value
        for o in observations(emission.value)
        if o.metric in metrics and Quality.NO_CONTACT not in o.flags
    ]


def _no_truth_but_artefacts(sim: Simulation, residents: Iterable[str]) -> None:
    for event in sim.truth_events():
        if event.resident in set(residents):
            assert event.kind is ScenarioKind.ARTEFACT, event


# --- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("-1d", -86400),
        ("0.5s", 0.5),
        (" 1h 5m ", 3900),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    value = parse_duration(text)
    assert value.total_seconds() == seconds
    assert parse_duration(format_duration(value)) == value


@given(st.integers(min_value=-10 * 86_400, max_value=10 * 86_400))
def test_durations_round_trip(seconds: int) -> None:
    value = dt.timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text", ["", "10", "10x", "m10", "1h-5m", "ten minutes"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ScenarioError, match="duration like 30s"):
        parse_duration(text)


def test_parse_scenario_arg() -> None:
    spec = parse_scenario_arg("fever:r03@10m")
    assert isinstance(spec, FeverSpec)
    assert (spec.resident, spec.start, spec.peak) == ("r03", dt.timedelta(minutes=10), 39.0)
    assert spec.describe() == "fever:r03@10m"
    spec = parse_scenario_arg(" battery_death:r05/r05-hr@1h30m,drain=5m,low=15 ")
    assert isinstance(spec, BatteryDeathSpec)
    assert (spec.device, spec.drain, spec.low) == ("r05-hr", dt.timedelta(minutes=5), 15)
    assert parse_scenario_arg(spec.describe()).device == "r05-hr"
    spec = parse_scenario_arg("fever:r03@2025-03-04T10:00:00Z,peak=39.5")
    assert spec.start == dt.datetime(2025, 3, 4, 10, tzinfo=dt.UTC)
    assert parse_scenario_arg("help_button:r07@-2m").start == dt.timedelta(minutes=-2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fever", "must look like kind:resident[/device]@start"),
        ("fever:r03", "must look like"),
        ("fever:@10m", "must look like"),
        ("flood:r03@10m", "unknown kind 'flood' (known: fever, sepsis,"),
        ("fever:r03@soon", "start: 'soon' is neither an offset"),
        ("fever:r03@10m,peak=hot", "peak: Input should be a valid number"),
        ("fever:r03@10m,peak=45", "peak: Input should be less than or equal to 42"),
        ("fever:r03@10m,colour=red", "colour: Extra inputs are not permitted"),
        ("fever:r03@10m,peak", "parameter 'peak' must be param=value"),
        ("fever:r03@10m,peak=39,peak=40", "peak is given twice"),
        ("fever:r 03@10m", "resident: String should match pattern"),
        ("fever:r03@10m,rise=0s", "rise: Value error, must be longer than zero"),
    ],
)
def test_bad_scenario_args(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario_arg(text)
    assert message.removeprefix("rise: Value error, ") in str(caught.value)
    assert repr(text.strip()) in str(caught.value)


def test_resolve_start() -> None:
    london = load_site(SEEDS_DIR / "test-home.toml").zone
    assert resolve_start(dt.timedelta(minutes=5), T0, london) == T0 + 300
    assert resolve_start(dt.datetime(2025, 3, 4, 9, 0), T0, london) == T0  # GMT in March
    summer = dt.datetime(2025, 7, 1, 9, 0)
    assert (
        resolve_start(summer, T0, london) == dt.datetime(2025, 7, 1, 8, tzinfo=dt.UTC).timestamp()
    )


def test_unknown_resident_or_device_for_the_simulation(home: Site) -> None:
    with pytest.raises(ScenarioError, match="unknown resident 'r09'"):
        Simulation(home, seed=1, start=START, scenarios=[parse_scenario_arg("fever:r09@1m")])
    with pytest.raises(ScenarioError, match="sensor_removed needs a wearable or pulse oximeter"):
        Simulation(
            home,
            seed=1,
            start=START,
            scenarios=[parse_scenario_arg("sensor_removed:r01/r01-temp@1m")],
        )


# --- NEWS2 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "score"),
    [
        ({}, 0),
        (
            {
                "respiratory_rate": 16,
                "spo2": 97,
                "temperature": 36.8,
                "systolic": 125,
                "heart_rate": 72,
            },
            0,
        ),
        (
            {
                "respiratory_rate": 26,
                "spo2": 92,
                "temperature": 38.8,
                "systolic": 95,
                "heart_rate": 115,
                "consciousness": Consciousness.CONFUSION,
            },
            13,
        ),
        ({"respiratory_rate": 8}, 3),
        ({"respiratory_rate": 9}, 1),
        ({"respiratory_rate": 21}, 2),
        ({"spo2": 91}, 3),
        ({"spo2": 93}, 2),
        ({"spo2": 95}, 1),
        ({"spo2": 90, "scale": 2}, 0),
        ({"spo2": 85, "scale": 2}, 2),
        ({"spo2": 97, "scale": 2, "on_oxygen": True}, 5),
        ({"spo2": 90, "scale": 2, "on_oxygen": True}, 2),
        ({"temperature": 35.0}, 3),
        ({"temperature": 35.1}, 1),
        ({"temperature": 38.1}, 1),
        ({"temperature": 39.1}, 2),
        ({"systolic": 90}, 3),
        ({"systolic": 101}, 1),
        ({"systolic": 220}, 3),
        ({"heart_rate": 40}, 3),
        ({"heart_rate": 45}, 1),
        ({"heart_rate": 91}, 1),
        ({"heart_rate": 111}, 2),
        ({"heart_rate": 131}, 3),
        ({"consciousness": Consciousness.ALERT}, 0),
    ],
)
def test_news2_score(kwargs: dict[str, object], score: int) -> None:
    assert news2_score(**kwargs) == score  # type: ignore[arg-type]


# --- physiological scenarios ------------------------------------------------------------


def test_fever(home: Site) -> None:
    sim, emissions = _simulate(home, ["fever:r01@10m,rise=1h,duration=2h,fall=1h"], 3 * 3600, 10)
    base = Simulation(home, seed=3, start=START, scenarios=[])
    at_peak = T0 + 600 + 3600 + 1800
    hot, normal = sim.vitals("r01", at_peak), base.vitals("r01", at_peak)
    assert hot.temperature - normal.temperature == pytest.approx(39.0 - 36.6)
    assert hot.heart_rate - normal.heart_rate == pytest.approx(10 * (39.0 - 36.6))
    assert hot.respiratory_rate > normal.respiratory_rate + 4
    assert sim.vitals("r01", T0 + 300) == base.vitals("r01", T0 + 300)
    temperatures = [e for e in emissions if _values(e, Metric.BODY_TEMPERATURE)]
    # Spot checks every 30 minutes from the start, besides the schedule.
    assert [e.time - T0 for e in temperatures][:4] == [600, 2400, 4200, 6000]
    event = _event(sim, Expected.TEMPERATURE_HIGH)
    expected = _first(temperatures, lambda e: _values(e, Metric.BODY_TEMPERATURE)[0] >= 38.1)
    assert expected is not None
    assert event.detectable == _at(expected)
    assert event.started == _at(T0 + 600)
    assert event.ended == _at(T0 + 600 + 4 * 3600)
    assert event.kind is ScenarioKind.FEVER
    assert event.scenario == "fever:r01@10m"
    assert Expected.HR_HIGH in event.related
    _no_truth_but_artefacts(sim, ["r02"])


def _news2_from_emissions(emissions: Iterable[Emission], start: float) -> float | None:
    latest: dict[str, float] = {}
    names = {
        Metric.RESPIRATORY_RATE: "respiratory_rate",
        Metric.SPO2: "spo2",
        Metric.BODY_TEMPERATURE: "temperature",
        Metric.SYSTOLIC_BP: "systolic",
        Metric.HEART_RATE: "heart_rate",
        Metric.PULSE_RATE: "heart_rate",
    }
    for emission in sorted(emissions, key=lambda e: e.time):
        if not _good(emission) or emission.device.startswith("r02"):
            continue
        for o in observations(emission.value):
            if o.metric in names and not {Quality.NO_CONTACT, Quality.QUESTIONABLE} & set(o.flags):
                latest[names[o.metric]] = o.value
        if emission.time >= start and news2_score(**latest) >= 5:  # type: ignore[arg-type]
            return emission.time
    return None


def test_sepsis(home: Site) -> None:
    # persistence=0: the NEWS2 criterion on the latest readings, as computed below
    sim, emissions = _simulate(home, ["sepsis:r01@10m,duration=2h,persistence=0s"], 3 * 3600, 10)
    before = sim.vitals("r01", T0 + 300)
    late = sim.vitals("r01", T0 + 600 + 2 * 3600 + 600)
    assert (
        news2_score(
            respiratory_rate=round(before.respiratory_rate),
            spo2=round(before.spo2),
            temperature=round(before.temperature, 1),
            systolic=round(before.systolic),
            heart_rate=round(before.heart_rate),
            consciousness=before.consciousness,
        )
        <= 2
    )
    assert late.consciousness is Consciousness.CONFUSION
    assert (
        news2_score(
            respiratory_rate=round(late.respiratory_rate),
            spo2=round(late.spo2),
            temperature=round(late.temperature, 1),
            systolic=round(late.systolic),
            heart_rate=round(late.heart_rate),
            consciousness=late.consciousness,
        )
        >= 7
    )
    assert 110 <= late.heart_rate <= 125
    assert late.systolic < 105
    assert late.temperature > 38.3
    assert late.activity < 0.1
    event = _event(sim, Expected.NEWS2)
    expected = _news2_from_emissions(emissions, T0 + 600)
    assert expected is not None
    assert event.detectable == _at(expected)
    assert event.ended is None
    checks = {e.device for e in emissions if e.indicate and T0 + 600 <= e.time < T0 + 3 * 3600}
    assert {"r01-temp", "r01-bp", "r01-spo2"} <= checks


@pytest.mark.parametrize(("resident", "low", "threshold"), [("r01", 88, 91), ("r02", 84, 85)])
def test_hypoxaemia(home: Site, resident: str, low: float, threshold: float) -> None:
    sim, emissions = _simulate(home, [f"hypoxaemia:{resident}@2m,onset=3m"], 45 * 60 + 600, 2)
    middle = T0 + 120 + 180 + 900
    assert sim.vitals(resident, middle).spo2 <= low
    saturation = [e for e in emissions if e.device == f"{resident}-spo2"]
    expected = _first(saturation, lambda e: any(v <= threshold for v in _values(e, Metric.SPO2)))
    assert expected is not None
    event = _event(sim, Expected.SPO2_LOW)
    assert event.detectable == _at(expected)
    assert T0 + 120 < expected < T0 + 120 + 180 + 60
    assert event.ended == _at(T0 + 120 + 180 + 1800 + 600)
    after = [v for e in saturation if e.time > T0 + 3000 for v in _values(e, Metric.SPO2)]
    assert min(after) > threshold


def _sustained(emissions: Iterable[Emission], test: Callable[[float], bool]) -> float | None:
    runs: dict[str, float] = {}
    for emission in emissions:
        for value in _values(emission, Metric.HEART_RATE, Metric.PULSE_RATE):
            if not _good(emission):
                continue
            if not test(value):
                runs.pop(emission.device, None)
                continue
            since = runs.setdefault(emission.device, emission.time)
            if emission.time - since >= 60:
                return emission.time
    return None


@pytest.mark.parametrize(
    ("arg", "expected", "test", "band"),
    [
        ("bradycardia:r01@5m", Expected.HR_LOW, lambda v: v < 50, (30, 46)),
        ("tachycardia:r01@5m", Expected.HR_HIGH, lambda v: v > 130, (132, 152)),
    ],
)
def test_heart_rate_scenarios(
    home: Site,
    arg: str,
    expected: Expected,
    test: Callable[[float], bool],
    band: tuple[float, float],
) -> None:
    sim, emissions = _simulate(home, [arg], 45 * 60, 1)
    rates = [sim.vitals("r01", T0 + 300 + 240 + k * 60).heart_rate for k in range(15)]
    assert all(band[0] <= rate <= band[1] for rate in rates), rates
    found = _sustained(emissions, test)
    assert found is not None
    event = _event(sim, expected)
    assert event.detectable == _at(found)
    assert T0 + 300 + 60 < found < T0 + 300 + 240


def test_hf_weight_gain() -> None:
    site = parse_site(
        'id = "w"\nname = "W"\n[[residents]]\nid = "r01"\nweight = 80\n'
        'devices = [{ id = "r01-scale", kind = "scale" }]\n'
    )
    sim, emissions = _simulate(site, ["hf_weight_gain:r01@-1d,rate=0.8,days=4"], 6 * 86400, 900)
    weights = [(e.time, _values(e, Metric.BODY_WEIGHT)[0]) for e in emissions]
    assert len(weights) == 6  # 07:00 on each following day
    reference = sim.residents["r01"].at(T0 - 86400, perturbed=False).weight
    assert weights[-1][1] > reference + 2.5
    first = next(time for time, weight in weights if weight >= reference + 2.0)
    assert _event(sim, Expected.WEIGHT_GAIN).detectable == _at(first)
    assert _event(sim, Expected.WEIGHT_GAIN).started == _at(T0 - 86400)
    gain = (
        sim.vitals("r01", T0 + 5 * 86400).weight
        - sim.residents["r01"].at(T0 + 5 * 86400, perturbed=False).weight
    )
    assert gain == pytest.approx(3.2)


def test_fall(home: Site) -> None:
    sim, emissions = _simulate(home, ["fall:r01@2m,duration=20m"], 30 * 60, 5)
    (fall,) = [e for e in emissions if isinstance(e.value, PendantEvent)]
    assert isinstance(fall.value, PendantEvent)
    assert fall.value.event is PendantEventType.FALL
    assert fall.time == T0 + 120
    assert fall.indicate
    for k in range(20):
        state = sim.vitals("r01", T0 + 120 + 60 * k)
        assert state.activity == 0.0
        assert not state.asleep
    event = _event(sim, Expected.FALL)
    assert event.detectable == _at(T0 + 120)
    assert event.ended == _at(T0 + 120 + 1200)
    assert event.device == "r01-pendant"


def test_help_button(home: Site) -> None:
    sim, emissions = _simulate(home, ["help_button:r01@30s"], 120, 1)
    events = [e for e in emissions if isinstance(e.value, PendantEvent)]
    assert [(e.time, e.value.event) for e in events if isinstance(e.value, PendantEvent)] == [
        (T0 + 30, PendantEventType.HELP_BUTTON)
    ]
    assert _event(sim, Expected.HELP).detectable == _at(T0 + 30)


# --- device scenarios -------------------------------------------------------------------


def test_battery_death(home: Site) -> None:
    sim, emissions = _simulate(home, ["battery_death:r01/r01-hr@5m,drain=10m"], 30 * 60, 1)
    device = sim.device("r01-hr")
    death = T0 + 300 + 600
    assert device.radio(death - 1) is RadioState.ON
    assert device.radio(death) is RadioState.DEAD
    mine = [e for e in emissions if e.device == "r01-hr"]
    assert max(e.time for e in mine) < death
    levels = [e.value.percent for e in mine if isinstance(e.value, BatteryLevel)]
    start_level = device.battery(T0 + 300)
    assert levels == list(range(start_level - 1, 0, -1))
    low = _first(mine, lambda e: isinstance(e.value, BatteryLevel) and e.value.percent <= 20)
    assert low is not None
    assert _event(sim, Expected.BATTERY_LOW).detectable == _at(low)
    silent = _event(sim, Expected.DEVICE_SILENT)
    assert silent.detectable == _at(death)
    assert silent.ended is None
    assert device.advance(death + 3600) == []
    assert device.battery(death + 10) == 0


def test_out_of_range_holds_back_spot_measurements() -> None:
    site = parse_site(
        'id = "o"\nname = "O"\n[schedules]\njitter = 0\nthermometer = ["09:10"]\n'
        '[[residents]]\nid = "r01"\ndevices = [\n'
        '  { id = "r01-hr", kind = "wearable" },\n  { id = "r01-temp", kind = "thermometer" },\n]\n'
    )
    specs = ["out_of_range:r01/r01-hr@5m,duration=10m", "out_of_range:r01/r01-temp@5m,duration=10m"]
    sim, emissions = _simulate(site, specs, 30 * 60, 1)
    gap = [e for e in emissions if T0 + 300 <= e.time < T0 + 900]
    assert gap == []
    assert sim.device("r01-hr").radio(T0 + 600) is RadioState.OUT_OF_RANGE
    assert sim.device("r01-hr").radio(T0 + 900) is RadioState.ON
    (temperature,) = [e for e in emissions if e.device == "r01-temp"]
    assert temperature.time == T0 + 900
    assert observations(temperature.value)[0].device_time == dt.datetime(2025, 3, 4, 9, 10)
    silent = {e.device: e for e in sim.truth_events() if e.expected is Expected.DEVICE_SILENT}
    assert silent["r01-hr"].detectable == _at(T0 + 300)
    assert silent["r01-temp"].detectable == _at(T0 + 600)  # the measurement due at 09:10
    assert silent["r01-hr"].ended == _at(T0 + 900)


def test_sensor_removed(home: Site) -> None:
    sim, emissions = _simulate(home, ["sensor_removed:r01/r01-spo2@1m,duration=5m"], 600, 1)
    mine = [e for e in emissions if e.device == "r01-spo2" and not e.indicate]
    blank = [e for e in mine if not observations(e.value)]
    assert blank
    assert min(e.time for e in blank) == T0 + 60
    assert max(e.time for e in blank) == T0 + 359
    event = _event(sim, Expected.NO_CONTACT)
    assert event.detectable == _at(T0 + 60)
    assert event.device == "r01-spo2"
    assert not sim.device("r01-spo2").contact(T0 + 100)
    assert sim.device("r01-hr").contact(T0 + 100)


# --- truth in general -------------------------------------------------------------------


def test_controls_get_no_truth_but_artefacts() -> None:
    site = load_site(SEEDS_DIR / "oak-house.toml")
    sim, _ = _simulate(site, site.scenarios, 2 * 3600, 10, seed=11)
    controls = {r.id for r in site.residents} - {s.resident for s in site.scenarios}
    assert len(controls) >= 3
    _no_truth_but_artefacts(sim, controls)
    detected = [e for e in sim.truth_events() if e.expected is not None and e.detectable]
    assert min(e.detectable for e in detected if e.detectable) <= START + dt.timedelta(minutes=1)
    assert {e.resident for e in sim.truth_events() if e.kind is ScenarioKind.ARTEFACT}


def test_truth_is_the_same_however_devices_are_advanced(home: Site) -> None:
    # persistence=0s: NEWS2 on the latest readings. Held over 15 minutes, the criterion is
    # decided by the continuous readings, which differ between the grids of ticks used here.
    specs = ["sepsis:r01@1m,duration=1h,persistence=0s", "hypoxaemia:r02@2m", "help_button:r01@3m"]
    together, _ = _simulate(home, specs, 2 * 3600, 10)
    apart = Simulation(home, seed=3, start=START, scenarios=[parse_scenario_arg(s) for s in specs])
    # Each device in turn, on its own grid of ticks, as a runtime with one task per device.
    # Until the last one has caught up, nothing can be known to be first.
    for index, device in enumerate(reversed(apart.devices)):
        assert all(e.detectable is None for e in apart.truth_events() if e.expected is not None)
        step = 10.0 / (1 + index % 3)
        for k in range(int(2 * 3600 / step) + 1):
            device.advance(T0 + k * step)
    key = [(e.key, e.detectable) for e in together.truth_events() if e.expected is not None]
    assert [(e.key, e.detectable) for e in apart.truth_events() if e.expected is not None] == key
    assert all(detectable is not None for _, detectable in key)


def test_labels_at_and_json(home: Site) -> None:
    sim, _ = _simulate(
        home, ["fever:r01@10m,rise=1h,duration=1h,fall=1h", "help_button:r01@1m"], 1200, 10
    )
    assert [e.scenario for e in sim.labels_at(T0 + 300)] == []
    assert [e.scenario for e in sim.labels_at(T0 + 60)] == ["help_button:r01@1m"]
    assert [e.scenario for e in sim.labels_at(T0 + 900)] == ["fever:r01@10m"]
    data = _event(sim, Expected.HELP).to_json()
    assert data == {
        "key": "help_button:r01@1m|help",
        "scenario": "help_button:r01@1m",
        "kind": "help_button",
        "resident": "r01",
        "device": "r01-pendant",
        "started": "2025-03-04T09:01:00+00:00",
        "detectable": "2025-03-04T09:01:00+00:00",
        "ended": "2025-03-04T09:01:00+00:00",
        "expected": "help",
        "related": [],
    }


def test_repeated_scenarios_get_distinct_names(home: Site) -> None:
    sim, _ = _simulate(home, ["help_button:r01@1m", "help_button:r01@1m"], 120, 10)
    assert [e.scenario for e in sim.truth_events()] == [
        "help_button:r01@1m",
        "help_button:r01@1m#2",
    ]
