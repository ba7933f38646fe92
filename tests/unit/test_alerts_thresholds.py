"""Threshold rules: sustained breaches fire, artefacts and values at the line do not flap,
hysteresis holds, limits follow the resident (overrides, SpO2 scale 2), spot readings."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud.alerts import (
    DEFAULT_RULES,
    AlertEngine,
    Condition,
    ConfigError,
    Device,
    Direction,
    Level,
    Override,
    Resident,
    Roster,
    SpO2Scale,
    ThresholdRule,
)
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import Quality, Reading, Severity

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
_SEQ = itertools.count()


def make_engine(*residents: Resident) -> AlertEngine:
    residents = residents or (Resident("r01"),)
    devices = []
    for resident in residents:
        rid = resident.id
        devices += [
            Device(f"{rid}-hr", DeviceKind.WEARABLE, "gw1", rid),
            Device(f"{rid}-ox", DeviceKind.PULSE_OXIMETER, "gw1", rid),
            Device(f"{rid}-th", DeviceKind.THERMOMETER, "gw1", rid),
            Device(f"{rid}-gm", DeviceKind.GLUCOSE_METER, "gw1", rid),
        ]
    return AlertEngine(Roster(tuple(residents), tuple(devices)), start=T0)


def reading(
    device: str, metric: Metric, value: float, t: datetime, flags: Sequence[Quality] = ()
) -> Reading:
    return Reading(
        gateway="gw1",
        device=device,
        metric=metric,
        value=value,
        unit=metric.unit,
        time=t,
        received=t,
        seq=next(_SEQ),
        flags=tuple(flags),
    )


def series(
    device: str,
    metric: Metric,
    values: Iterable[float],
    start: datetime,
    *,
    step: float = 1.0,
    flags: Sequence[Quality] = (),
) -> list[Reading]:
    return [
        reading(device, metric, value, start + timedelta(seconds=i * step), flags)
        for i, value in enumerate(values)
    ]


def trace(engine: AlertEngine, readings: list[Reading], key: str) -> list[Severity | None]:
    """Ingest readings one at a time; the severity of ``key`` after each (None = inactive)."""
    out: list[Severity | None] = []
    for item in readings:
        engine.ingest([item])
        found = {c.key: c for c in engine.evaluate(item.time)}
        out.append(found[key].severity if key in found else None)
    return out


def thresholds_only(engine: AlertEngine, now: datetime) -> list[Condition]:
    rules = {rule.rule for rule in DEFAULT_RULES}
    return [c for c in engine.evaluate(now) if c.rule in rules]


def transitions(states: list[Severity | None]) -> int:
    return sum(1 for a, b in itertools.pairwise(states) if a != b)


HR_HIGH = "hr_high:r01:heart_rate"


def test_sustained_breach_fires_after_60_s() -> None:
    engine = make_engine()
    values = [80.0] * 30 + [135.0] * 120
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, values, T0), HR_HIGH)
    first = states.index(Severity.URGENT)
    assert first == 30 + 60  # the reading 60 s after the breach began
    assert all(s is Severity.URGENT for s in states[first:])


@pytest.mark.parametrize("length", [1, 3, 10, 50])
def test_short_breaches_never_fire(length: int) -> None:
    engine = make_engine()
    values = [80.0] * 60 + [210.0] * length + [80.0] * 120
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, values, T0), HR_HIGH)
    assert set(states) == {None}


def test_repeated_artefacts_never_fire() -> None:
    engine = make_engine()
    block = [80.0] * 27 + [210.0] * 3
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, block * 10, T0), HR_HIGH)
    assert set(states) == {None}


def test_value_oscillating_around_the_trigger_does_not_flap() -> None:
    engine = make_engine()
    values = [129.0, 131.0] * 300  # 10 minutes exactly at the line
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, values, T0), HR_HIGH)
    assert transitions(states) == 0


def test_noisy_sustained_breach_fires_once_and_holds() -> None:
    seed = 20250106
    rng = np.random.default_rng(seed)
    values = list(np.round(rng.normal(136, 3, 600)))  # mostly over 130, some dips under
    engine = make_engine()
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, values, T0), HR_HIGH)
    assert transitions(states) == 1, f"seed {seed}"
    assert states[-1] is Severity.URGENT


def test_hysteresis_holds_in_the_band_and_clears_when_sustained_below() -> None:
    engine = make_engine()
    values = [135.0] * 70 + [125.0] * 300 + [115.0] * 59 + [115.0] * 5
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, values, T0), HR_HIGH)
    fired = states.index(Severity.URGENT)
    assert fired == 60
    band_end = 70 + 300
    assert all(s is Severity.URGENT for s in states[fired:band_end])
    cleared = states.index(None, fired)
    assert cleared == band_end + 60  # 60 s within the clear level (<= 120)
    assert transitions(states) == 2


def test_value_hovering_at_the_clear_level_does_not_flap() -> None:
    engine = make_engine()
    values = [135.0] * 70 + [119.0, 121.0] * 300
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, values, T0), HR_HIGH)
    assert transitions(states) <= 2  # on once, and at most off once


def test_severity_rises_on_the_same_key() -> None:
    engine = make_engine()
    values = [45.0] * 70 + [38.0] * 70
    states = trace(engine, series("r01-hr", Metric.HEART_RATE, values, T0), "hr_low:r01:heart_rate")
    assert states[60] is Severity.WARNING
    assert states[-1] is Severity.URGENT


def test_questionable_and_no_contact_readings_are_ignored() -> None:
    engine = make_engine()
    start = T0
    readings = series(
        "r01-hr", Metric.HEART_RATE, [135.0] * 100, start, flags=(Quality.QUESTIONABLE,)
    ) + series(
        "r01-hr",
        Metric.HEART_RATE,
        [135.0] * 100,
        start + timedelta(seconds=100),
        flags=(Quality.NO_CONTACT,),
    )
    states = trace(engine, readings, HR_HIGH)
    assert set(states) == {None}
    assert engine.state.ignored_quality == 200


def test_stale_series_is_inactive_and_unknown() -> None:
    engine = make_engine()
    engine.ingest(series("r01-hr", Metric.HEART_RATE, [135.0] * 90, T0))
    last = T0 + timedelta(seconds=89)
    assert HR_HIGH in {c.key for c in engine.evaluate(last + timedelta(minutes=4))}
    later = last + timedelta(minutes=6)
    assert HR_HIGH not in {c.key for c in engine.evaluate(later)}
    results = {(r.rule, r.metric): r for r in engine.evaluate_arrays(later)}
    assert not results["hr_high", Metric.HEART_RATE].known[0]


def test_pulse_rate_has_its_own_condition() -> None:
    engine = make_engine()
    engine.ingest(series("r01-ox", Metric.PULSE_RATE, [135.0] * 90, T0))
    keys = {c.key for c in engine.evaluate(T0 + timedelta(seconds=89))}
    assert "hr_high:r01:pulse_rate" in keys
    assert HR_HIGH not in keys


def test_override_per_resident() -> None:
    engine = make_engine(
        Resident("r01"),
        Resident("r02", overrides=(Override("hr_high", Severity.URGENT, 150, 140),)),
    )
    engine.ingest(
        series("r01-hr", Metric.HEART_RATE, [145.0] * 90, T0)
        + series("r02-hr", Metric.HEART_RATE, [145.0] * 90, T0)
    )
    keys = {c.key for c in engine.evaluate(T0 + timedelta(seconds=89))}
    assert HR_HIGH in keys
    assert "hr_high:r02:heart_rate" not in keys
    engine.ingest(series("r02-hr", Metric.HEART_RATE, [155.0] * 90, T0 + timedelta(seconds=90)))
    keys = {c.key for c in engine.evaluate(T0 + timedelta(seconds=179))}
    assert "hr_high:r02:heart_rate" in keys


def test_override_switches_a_level_off() -> None:
    engine = make_engine(Resident("r01", overrides=(Override("hr_low", Severity.WARNING, None),)))
    engine.ingest(series("r01-hr", Metric.HEART_RATE, [45.0] * 90, T0))
    assert not thresholds_only(engine, T0 + timedelta(seconds=89))
    engine.ingest(series("r01-hr", Metric.HEART_RATE, [35.0] * 90, T0 + timedelta(seconds=90)))
    (condition,) = thresholds_only(engine, T0 + timedelta(seconds=179))
    assert condition.rule == "hr_low"
    assert condition.severity is Severity.URGENT


def test_override_keeps_the_default_gap() -> None:
    engine = make_engine(Resident("r01", overrides=(Override("hr_high", Severity.URGENT, 110),)))
    table = engine.state.thresholds
    column = int(table.column_rule.tolist().index(table.rule_index("hr_high")))
    assert table.trigger[0, column] == 110
    assert table.clear[0, column] == 100


@pytest.mark.parametrize(
    "override",
    [
        Override("hr_high", Severity.URGENT, 130, 140),  # clear above a high trigger
        Override("hr_low", Severity.WARNING, 50, 45),  # clear below a low trigger
        Override("no_such_rule", Severity.URGENT, 1),
        Override("hr_high", Severity.WARNING, 120),  # hr_high has no warning level
    ],
)
def test_bad_overrides(override: Override) -> None:
    with pytest.raises(ConfigError):
        make_engine(Resident("r01", overrides=(override,)))


def test_bad_rules() -> None:
    with pytest.raises(ConfigError):
        ThresholdRule(
            "x", (Metric.HEART_RATE,), Direction.HIGH, (Level(Severity.URGENT, 100, 110),)
        )
    with pytest.raises(ConfigError):
        ThresholdRule(
            "x",
            (Metric.HEART_RATE,),
            Direction.HIGH,
            (Level(Severity.URGENT, 100, 90), Level(Severity.WARNING, 90, 80)),
        )
    with pytest.raises(ConfigError):
        ThresholdRule("x", (Metric.FALL,), Direction.HIGH, (Level(Severity.URGENT, 1, 0),))


def test_spo2_scale_2_uses_its_own_levels() -> None:
    engine = make_engine(Resident("r01"), Resident("r02", spo2_scale=SpO2Scale.SCALE_2))
    engine.ingest(
        series("r01-ox", Metric.SPO2, [87.0] * 90, T0)
        + series("r02-ox", Metric.SPO2, [87.0] * 90, T0)
    )
    found = {c.key: c for c in engine.evaluate(T0 + timedelta(seconds=89))}
    assert found["spo2_low:r01:spo2"].severity is Severity.URGENT
    assert "spo2_low:r02:spo2" not in found
    engine.ingest(series("r02-ox", Metric.SPO2, [83.0] * 90, T0 + timedelta(seconds=90)))
    found = {c.key: c for c in engine.evaluate(T0 + timedelta(seconds=179))}
    assert found["spo2_low:r02:spo2"].severity is Severity.URGENT


def test_spot_temperature_fires_on_one_reading_with_hysteresis() -> None:
    engine = make_engine()
    key = "temperature_high:r01:body_temperature"
    temps = [36.8, 38.2, 39.2, 38.4, 37.9, 37.6]
    expected = [
        None,
        Severity.WARNING,
        Severity.URGENT,
        Severity.WARNING,  # urgent clears at <= 38.5, warning holds until <= 37.7
        Severity.WARNING,
        None,
    ]
    readings = series("r01-th", Metric.BODY_TEMPERATURE, temps, T0, step=3600)
    assert trace(engine, readings, key) == expected


def test_spot_exactly_at_the_trigger_is_inclusive() -> None:
    engine = make_engine()
    engine.ingest([reading("r01-th", Metric.BODY_TEMPERATURE, 38.0, T0)])
    (condition,) = thresholds_only(engine, T0)
    assert condition.key == "temperature_high:r01:body_temperature"
    assert condition.message == "[warning] r01: body_temperature 38 Cel >= 38"


def test_glucose_high_needs_two_readings() -> None:
    engine = make_engine()
    key = "glucose_high:r01:blood_glucose"
    readings = series("r01-gm", Metric.BLOOD_GLUCOSE, [16.0, 12.0, 16.0, 16.5], T0, step=3600)
    assert trace(engine, readings, key) == [None, None, None, Severity.WARNING]


def test_new_limits_restart_the_latches() -> None:
    engine = make_engine()
    engine.ingest(series("r01-hr", Metric.HEART_RATE, [135.0] * 90, T0))
    assert thresholds_only(engine, T0 + timedelta(seconds=89))
    engine.configure(Resident("r01", overrides=(Override("hr_high", Severity.URGENT, 140),)))
    engine.ingest(series("r01-hr", Metric.HEART_RATE, [135.0] * 90, T0 + timedelta(seconds=90)))
    assert HR_HIGH not in {c.key for c in engine.evaluate(T0 + timedelta(seconds=179))}
