"""The engine: readings to conditions, NEWS2 from fresh parameters, determinism (time only
from ``now``), edges between evaluations, refill from history, roster resolution."""

from __future__ import annotations

import hashlib
import itertools
import pickle
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud.alerts import (
    AlertEngine,
    Condition,
    ConfigError,
    Consciousness,
    Device,
    EngineConfig,
    InputError,
    News2Config,
    Resident,
    Roster,
    SpO2Scale,
    edges,
)
from cloud.alerts.state import METRIC_INDEX, RuleState
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import Quality, Reading, Severity

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
_SEQ = itertools.count()


def roster() -> Roster:
    devices = (
        Device("r01-hr", DeviceKind.WEARABLE, "gw1", "r01"),
        Device("r01-ox", DeviceKind.PULSE_OXIMETER, "gw1", "r01"),
        Device("r01-th", DeviceKind.THERMOMETER, "gw1", "r01"),
        Device("r01-pen", DeviceKind.PENDANT, "gw1", "r01"),
        Device("cuff", DeviceKind.BP_CUFF, "gw1", users=((1, "r01"), (2, "r02"))),
        Device("r02-ox", DeviceKind.PULSE_OXIMETER, "gw1", "r02"),
    )
    return Roster(
        (Resident("r01"), Resident("r02", spo2_scale=SpO2Scale.SCALE_2, on_oxygen=None)),
        devices,
    )


def reading(
    device: str,
    metric: Metric,
    value: float,
    t: datetime,
    *,
    user: int | None = None,
    flags: Sequence[Quality] = (),
) -> Reading:
    return Reading(
        gateway="gw1",
        device=device,
        user=user,
        metric=metric,
        value=value,
        unit=metric.unit,
        time=t,
        received=t,
        seq=next(_SEQ),
        flags=tuple(flags),
    )


def scenario() -> list[Reading]:
    """Ten minutes of a deteriorating resident and a few spot readings."""
    out = []
    for i in range(600):
        t = T0 + timedelta(seconds=i)
        out.append(reading("r01-hr", Metric.HEART_RATE, 100 + i / 20, t))
        out.append(reading("r01-hr", Metric.RESPIRATORY_RATE, 18 + i / 100, t))
        out.append(reading("r01-ox", Metric.SPO2, 95 - i / 200, t))
        out.append(reading("r02-ox", Metric.SPO2, 91, t))
    out.append(reading("r01-th", Metric.BODY_TEMPERATURE, 38.6, T0 + timedelta(minutes=2)))
    out.append(reading("cuff", Metric.SYSTOLIC_BP, 98, T0 + timedelta(minutes=3), user=1))
    out.append(reading("cuff", Metric.SYSTOLIC_BP, 150, T0 + timedelta(minutes=3), user=2))
    out.append(reading("r01-pen", Metric.FALL, 1, T0 + timedelta(minutes=4)))
    return sorted(out, key=lambda r: r.time)


def fingerprint(state: RuleState) -> str:
    digest = hashlib.sha256()
    for name in sorted(vars(state)):
        digest.update(pickle.dumps(getattr(state, name)))
    return digest.hexdigest()


def test_same_state_and_now_give_the_same_conditions() -> None:
    first = AlertEngine(roster(), start=T0)
    second = AlertEngine(roster(), start=T0)
    readings = scenario()
    first.ingest(readings)
    for start in range(0, len(readings), 97):  # same readings, other batches
        second.ingest(readings[start : start + 97])
    now = T0 + timedelta(minutes=10)
    assert first.evaluate(now) == second.evaluate(now)
    assert first.evaluate(now)  # something to compare
    assert fingerprint(first.state) == fingerprint(second.state)


def test_evaluate_reads_no_clock_and_changes_nothing() -> None:
    engine = AlertEngine(roster(), start=T0)
    engine.ingest(scenario())
    before = fingerprint(engine.state)
    later = T0 + timedelta(minutes=20)
    alone = engine.evaluate(later)
    for minutes in (5, 10, 15):
        engine.evaluate(T0 + timedelta(minutes=minutes))
    assert engine.evaluate(later) == alone  # no memory of earlier evaluations
    assert fingerprint(engine.state) == before


def test_refill_in_any_order_equals_live_ingest() -> None:
    live = AlertEngine(roster(), start=T0)
    readings = [r for r in scenario() if r.metric is not Metric.FALL]
    live.ingest(readings)
    refilled = AlertEngine(roster(), start=T0)
    order = np.random.default_rng(4).permutation(len(readings))
    picked = [readings[i] for i in order]
    refilled.refill(
        [0 if r.device.startswith("r01") or r.user == 1 else 1 for r in picked],
        [METRIC_INDEX[r.metric] for r in picked],
        [r.time_ns for r in picked],
        [r.value for r in picked],
        device=[refilled.device_index(r.device) for r in picked],
    )
    now = T0 + timedelta(minutes=10)
    assert refilled.evaluate(now) == live.evaluate(now)


def test_duplicates_and_out_of_order_readings_are_counted_and_skipped() -> None:
    engine = AlertEngine(roster(), start=T0)
    first = reading("r01-hr", Metric.HEART_RATE, 70, T0 + timedelta(seconds=10))
    engine.ingest([first])
    engine.ingest([first, reading("r01-hr", Metric.HEART_RATE, 200, T0)])
    assert engine.state.out_of_order == 2
    assert engine.state.last_value[METRIC_INDEX[Metric.HEART_RATE], 0] == 70


def test_shared_device_users_map_to_residents() -> None:
    engine = AlertEngine(roster(), start=T0)
    report = engine.ingest(
        [
            reading("cuff", Metric.SYSTOLIC_BP, 85, T0, user=2),
            reading("cuff", Metric.SYSTOLIC_BP, 85, T0, user=7),
            reading("nobody", Metric.SYSTOLIC_BP, 85, T0),
        ]
    )
    assert (report.applied, report.unknown_device, report.unknown_resident) == (2, 1, 1)
    conditions = [c for c in engine.evaluate(T0) if c.rule == "sbp_low"]
    assert [c.resident for c in conditions] == ["r02"]
    assert conditions[0].device == "cuff"


def test_news2_from_fresh_parameters() -> None:
    # Persistence off: the continuous parameters score their current smoothed values (by
    # default they score what they held throughout 15 minutes, and this is ten).
    config = EngineConfig(news2=News2Config(persistence=timedelta(0)))
    engine = AlertEngine(roster(), config, start=T0)
    engine.ingest(scenario())
    engine.observe_consciousness("r01", Consciousness.ALERT, T0)
    now = T0 + timedelta(minutes=10)
    news2 = {c.resident: c for c in engine.evaluate(now) if c.rule == "news2"}
    condition = news2["r01"]
    # RR ~24 (2), SpO2 ~92 (2), air (0), SBP 98 (2), pulse ~130 (2), A (0), 38.6 (1)
    assert condition.value == 9
    assert condition.severity is Severity.CRITICAL
    assert "partial" not in condition.message
    assert condition.message == (
        "[critical] r01: NEWS2 9 high: RR 23.92=2, SpO2 92.04=2, O2 air=0, SBP 98=2, "
        "pulse 129.6=2, ACVPU A=0, temp 38.6=1"
    )
    assert condition.time == T0 + timedelta(seconds=599)
    # r02: scale 2 at 91 % scores 0 even with oxygen unknown; SBP 150; the rest missing
    assert "r02" not in news2


def test_news2_parameters_expire() -> None:
    engine = AlertEngine(roster(), start=T0)
    engine.ingest(scenario())
    engine.observe_consciousness("r01", Consciousness.VOICE, T0)
    # 13 h later: every window (15 min for RR, SpO2, pulse; 12 h for BP, temperature and
    # ACVPU) has passed, so nothing is scored and nothing alerts.
    later = T0 + timedelta(hours=13)
    assert not [c for c in engine.evaluate(later) if c.rule == "news2"]
    results = {r.rule: r for r in engine.evaluate_arrays(later)}
    assert not results["news2"].known[0]
    # 30 minutes later only the 12-hour parameters remain: V (3) + 38.6 (1) + SBP 98 (2)
    soon = T0 + timedelta(minutes=30)
    (condition,) = [c for c in engine.evaluate(soon) if c.rule == "news2" and c.resident == "r01"]
    assert condition.value == 6
    assert condition.severity is Severity.URGENT
    assert condition.message.endswith("partial, missing respiration_rate, spo2, pulse")


def test_staff_observation_of_consciousness() -> None:
    engine = AlertEngine(roster(), start=T0)
    engine.observe_consciousness("r01", Consciousness.CONFUSION, T0)
    engine.observe_consciousness("r01", Consciousness.ALERT, T0 - timedelta(hours=1))  # older
    (condition,) = [c for c in engine.evaluate(T0) if c.rule == "news2"]
    assert condition.severity is Severity.WARNING  # new confusion: a red 3, low-medium
    assert "ACVPU C=3" in condition.message


def test_edges_between_evaluations() -> None:
    engine = AlertEngine(roster(), start=T0)
    engine.ingest([reading("r01-th", Metric.BODY_TEMPERATURE, 38.2, T0)])
    first = engine.evaluate(T0)
    assert [c.key for c in edges([], first)] == [c.key for c in first]  # everything is new at first
    engine.ingest([reading("r01-th", Metric.BODY_TEMPERATURE, 39.3, T0 + timedelta(hours=1))])
    second = engine.evaluate(T0 + timedelta(hours=1))
    changed = edges(first, second)
    temp = [c for c in changed if c.rule == "temperature_high"]
    assert [(c.active, c.severity) for c in temp] == [(True, Severity.URGENT)]
    engine.ingest([reading("r01-th", Metric.BODY_TEMPERATURE, 37.0, T0 + timedelta(hours=2))])
    third = engine.evaluate(T0 + timedelta(hours=2))
    ended = [c for c in edges(second, third) if c.rule == "temperature_high"]
    assert [(c.active, c.key) for c in ended] == [(False, "temperature_high:r01:body_temperature")]
    assert edges(third, third) == []


def test_an_end_without_fresh_data_is_marked_unknown() -> None:
    """A condition that ends because its data went stale is not a recovery (known=False);
    one that ends on a normal reading is (known=True)."""
    engine = AlertEngine(roster(), start=T0)
    engine.ingest(
        [reading("r01-ox", Metric.SPO2, 85, T0 + timedelta(seconds=s)) for s in range(90)]
    )
    raised = engine.evaluate_arrays(T0 + timedelta(minutes=2))
    assert any(c.key == "spo2_low:r01:spo2" for c in engine.conditions(raised))
    silent = engine.evaluate_arrays(T0 + timedelta(hours=2))
    [ended] = [c for c in engine.changes(raised, silent) if c.key == "spo2_low:r01:spo2"]
    assert (ended.active, ended.known) == (False, False)

    engine.ingest(
        [
            reading("r01-ox", Metric.SPO2, 97, T0 + timedelta(minutes=2, seconds=s))
            for s in range(600)
        ]
    )
    recovered = engine.evaluate_arrays(T0 + timedelta(minutes=12))
    [ended] = [c for c in engine.changes(raised, recovered) if c.key == "spo2_low:r01:spo2"]
    assert (ended.active, ended.known) == (False, True)


def test_a_second_fall_is_an_edge() -> None:
    engine = AlertEngine(roster(), start=T0)
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0)])
    first = [c for c in engine.evaluate(T0) if c.rule == "fall"]
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0 + timedelta(minutes=5))])
    second = [c for c in engine.evaluate(T0 + timedelta(minutes=5)) if c.rule == "fall"]
    assert [c.time for c in edges(first, second)] == [T0 + timedelta(minutes=5)]


def test_condition_keys_ignore_values_and_devices() -> None:
    engine = AlertEngine(roster(), start=T0)
    engine.ingest([reading("cuff", Metric.SYSTOLIC_BP, 85, T0, user=1)])
    (first,) = [c for c in engine.evaluate(T0) if c.rule == "sbp_low"]
    assert first.key == "sbp_low:r01:systolic_bp"
    assert isinstance(first, Condition)
    assert first.message == "[urgent] r01: systolic_bp 85 mm[Hg] <= 90"


def test_naive_times_and_unknown_ids_are_refused() -> None:
    engine = AlertEngine(roster(), start=T0)
    with pytest.raises(InputError):
        engine.evaluate(datetime(2025, 1, 6, 12))
    with pytest.raises(InputError):
        engine.observe_consciousness("r99", Consciousness.ALERT, T0)
    with pytest.raises(InputError):
        engine.device_index("nope")
    with pytest.raises(InputError):
        AlertEngine(roster(), start=datetime(2025, 1, 1))


def test_bad_rosters_are_refused() -> None:
    with pytest.raises(ConfigError):
        Roster((Resident("r01"), Resident("r01")))
    with pytest.raises(ConfigError):
        Roster((Resident("r01"),), (Device("d", DeviceKind.WEARABLE, "gw", "r02"),))


def test_messages_carry_ids_and_values_only() -> None:
    engine = AlertEngine(roster(), start=T0)
    engine.ingest(scenario())
    for condition in engine.evaluate(T0 + timedelta(minutes=10)):
        subject = condition.resident or condition.device or condition.gateway
        assert subject is not None
        assert condition.message.startswith(f"[{condition.severity.value}] ")
        assert subject in condition.message


def test_changes_on_arrays_equal_edges_on_conditions() -> None:
    engine = AlertEngine(roster(), start=T0)
    readings = scenario()
    engine.ingest(readings[: len(readings) // 2])
    first_time = T0 + timedelta(minutes=5)
    previous = engine.evaluate_arrays(first_time)
    before = engine.conditions(previous)
    engine.ingest(readings[len(readings) // 2 :])
    engine.ingest([reading("r01-th", Metric.BODY_TEMPERATURE, 39.4, T0 + timedelta(minutes=9))])
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0 + timedelta(minutes=9))])
    now = T0 + timedelta(minutes=40)  # the first fall's hold is over, the second's is not
    current = engine.evaluate_arrays(now)
    after = engine.conditions(current)
    changed = engine.changes(previous, current)
    assert changed  # raised, re-graded and ended ones
    assert {c.active for c in changed} == {True, False}
    assert sorted(changed, key=lambda c: (c.key, c.active)) == sorted(
        edges(before, after), key=lambda c: (c.key, c.active)
    )
    assert engine.changes(None, current) == after
    assert engine.changes(current, current) == []
