"""bench.alert_quality: matching alerts with the simulator's ground truth, a short run of the
benchmark on a tiny cohort, and the tuned behaviours it measures (NEWS2 on what a resident
held for 15 minutes, the sepsis criterion, the presence limits)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import pytest

from bench.alert_quality import (
    DETECTION_LIMIT,
    START,
    Alert,
    Run,
    Span,
    assess,
    baseline_config,
    build_cohort,
    comparison,
    detection,
    expected_of,
    matches,
    report,
    simulate,
)
from cloud.alerts import AlertEngine, Device, Resident, Roster, SpO2Scale
from firmware_sim import (
    Expected,
    ScenarioKind,
    Simulation,
    TruthEvent,
    find_site,
    load_site,
    parse_scenario_arg,
)
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import AlertKind, Reading, Severity

T0 = dt.datetime(2025, 1, 13, 9, 0, tzinfo=dt.UTC)
_SEQ = itertools.count()


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def event(
    kind: ScenarioKind,
    expected: Expected | None,
    *,
    resident: str = "r1",
    device: str | None = None,
    started: float = 0,
    detectable: float | None = 1,
    ended: float | None = 30,
    related: Sequence[Expected] = (),
) -> TruthEvent:
    return TruthEvent(
        scenario=f"{kind.value}:{resident}",
        kind=kind,
        resident=resident,
        device=device,
        started=at(started),
        detectable=None if detectable is None else at(detectable),
        ended=None if ended is None else at(ended),
        expected=expected,
        related=tuple(related),
    )


def alert(
    rule: str,
    raised: float,
    ended: float | None = None,
    *,
    resident: str | None = "r1",
    device: str | None = None,
    kind: AlertKind = AlertKind.CLINICAL,
) -> Alert:
    return Alert(
        key=f"{rule}:{resident or device}",
        rule=rule,
        kind=kind,
        severity=Severity.WARNING,
        resident=resident,
        device=device,
        gateway=None if resident else "gw",
        raised=at(raised),
        ended=None if ended is None else at(ended),
        message=f"[warning] {rule}",
    )


# --- matching ---------------------------------------------------------------------------


def test_rules_stand_for_expected_alerts() -> None:
    assert expected_of("temperature_rise") is Expected.TEMPERATURE_HIGH
    assert expected_of("weight_gain_3d") is Expected.WEIGHT_GAIN
    assert expected_of("no_activity_after_fall") is Expected.FALL
    assert expected_of("sensor_off") is Expected.NO_CONTACT
    assert expected_of("sbp_high") is None
    assert expected_of("gateway_offline") is None


def test_an_alert_matches_the_expected_or_a_related_alert_of_an_active_event() -> None:
    fever = event(ScenarioKind.FEVER, Expected.TEMPERATURE_HIGH, related=[Expected.HR_HIGH])
    assert matches(alert("temperature_high", 2), fever)
    assert matches(alert("hr_high", 2), fever)  # related
    assert not matches(alert("spo2_low", 2), fever)  # neither
    assert not matches(alert("sbp_high", 2), fever)  # a rule without an expected alert
    assert not matches(alert("temperature_high", 2, resident="r2"), fever)  # someone else
    assert not matches(alert("temperature_high", -5, -1), fever)  # over before it started
    assert matches(alert("temperature_high", -5), fever)  # still active when it started
    assert matches(alert("temperature_high", 34), fever)  # within 5 minutes of its end
    assert not matches(alert("temperature_high", 36), fever)  # after that
    assert not matches(alert("temperature_high", 2), event(ScenarioKind.ARTEFACT, None))


def test_device_rules_match_only_the_events_device() -> None:
    removed = event(ScenarioKind.SENSOR_REMOVED, Expected.NO_CONTACT, device="r1-hr", ended=15)
    assert matches(alert("sensor_off", 3, device="r1-hr", kind=AlertKind.TECHNICAL), removed)
    assert not matches(alert("sensor_off", 3, device="r1-ox", kind=AlertKind.TECHNICAL), removed)


def test_detection_is_the_first_matching_alert_within_the_window() -> None:
    sepsis = event(
        ScenarioKind.SEPSIS,
        Expected.NEWS2,
        detectable=40,
        ended=None,
        related=[Expected.TEMPERATURE_HIGH],
    )
    alerts = [alert("news2", 43), alert("temperature_high", 41), alert("hr_low", 1)]
    found = detection(sepsis, alerts)
    assert found is not None
    assert found[0] == at(41)
    assert found[1].rule == "temperature_high"
    assert detection(sepsis, [alert("news2", -10)]) == (at(0), alert("news2", -10))
    assert detection(sepsis, [alert("hr_low", 41)]) is None


def _run(alerts: Sequence[Alert], events: Sequence[TruthEvent]) -> Run:
    spans = (
        Span("s1", False, ("r1",), "s1-gw", at(120), 120 / (7 * 24 * 60)),
        Span("c1", True, ("c1", "c2"), "c1-gw", at(7 * 24 * 60), 2.0),
    )
    return Run(alerts=tuple(alerts), events=tuple(events), spans=spans, step=10.0)


def test_assessment_counts_delays_misses_and_false_alerts() -> None:
    on_time = event(ScenarioKind.TACHYCARDIA, Expected.HR_HIGH, detectable=2)
    late = event(ScenarioKind.FEVER, Expected.TEMPERATURE_HIGH, detectable=5)
    never = event(ScenarioKind.HF_WEIGHT_GAIN, Expected.WEIGHT_GAIN, detectable=None)
    artefact = event(
        ScenarioKind.ARTEFACT, None, resident="c1", device="c1-hr", started=60, ended=60.05
    )
    alerts = [
        alert("hr_high", 3),
        alert("temperature_high", 5 + DETECTION_LIMIT.total_seconds() / 60 + 1),
        alert("news2", 61, 64, resident="c1"),  # false, just after c1's artefact
        alert("hr_high", 200, resident="c2"),  # false
        alert("device_silent", 100, resident="c2", device="c2-hr", kind=AlertKind.TECHNICAL),
        alert("gateway_offline", 100, resident=None, kind=AlertKind.TECHNICAL),  # s1's
        alert("rr_low", 10),  # false, on a scenario resident
    ]
    assessment = assess(_run(alerts, [on_time, late, never, artefact]))
    by_kind = {o.event.kind: o for o in assessment.events}
    assert set(by_kind) == {
        ScenarioKind.TACHYCARDIA,
        ScenarioKind.FEVER,
        ScenarioKind.HF_WEIGHT_GAIN,
    }
    assert by_kind[ScenarioKind.TACHYCARDIA].delay == dt.timedelta(minutes=1)
    assert by_kind[ScenarioKind.TACHYCARDIA].on_time
    assert not by_kind[ScenarioKind.FEVER].on_time
    assert [o.event.kind for o in assessment.missed] == [ScenarioKind.FEVER]
    clinical = assessment.false_alerts(control=True, kind=AlertKind.CLINICAL)
    assert [o.alert.rule for o in clinical] == ["news2", "hr_high"]
    assert [o.artefact for o in clinical] == [True, False]
    assert assessment.rate(control=True, kind=AlertKind.CLINICAL) == pytest.approx(1.0)
    assert len(assessment.false_alerts(control=True, kind=AlertKind.TECHNICAL)) == 1
    assert len(assessment.false_alerts(control=False, kind=AlertKind.TECHNICAL)) == 1
    scenario_clinical = assessment.false_alerts(control=False, kind=AlertKind.CLINICAL)
    assert [o.alert.rule for o in scenario_clinical] == ["rr_low"]
    problems = assessment.targets
    assert len(problems) == 2
    assert problems[0].startswith("1 of 2 detectable events not detected within 5 min")
    assert problems[1].startswith("1.00 false clinical alerts per control resident-week")
    lines = report(assessment, _run(alerts, [on_time, late, never, artefact]))
    assert any(line.startswith("tachycardia     hr_high") for line in lines)
    assert any("r1 hf_weight_gain (weight_gain)" in line for line in lines)
    assert any("not detected" not in line and "fever" in line for line in lines)


# --- a short run ------------------------------------------------------------------------


def test_a_tiny_cohort_end_to_end() -> None:
    home = load_site(find_site("test-home"))
    kinds = (ScenarioKind.HELP_BUTTON, ScenarioKind.TACHYCARDIA, ScenarioKind.SENSOR_REMOVED)
    members = build_cohort(days=0.12, seed=3, rounds=1, controls=1, kinds=kinds, template=home)
    assert [m.name for m in members] == [
        "s1-help_button",
        "s1-tachycardia",
        "s1-sensor_removed",
        "c1",
    ]
    assert all(m.end <= dt.timedelta(days=0.12) for m in members)
    run = simulate(members, baseline=baseline_config())
    assert run.readings > 10_000
    assert run.decode_errors == 0
    assessment = assess(run)
    detected = {o.event.kind: o for o in assessment.events}
    assert set(detected) == set(kinds)
    for outcome in detected.values():
        assert outcome.event.detectable is not None
        assert outcome.on_time, outcome
    rules = {kind: o.by.rule if o.by else None for kind, o in detected.items()}
    assert rules[ScenarioKind.HELP_BUTTON] == "help"
    assert rules[ScenarioKind.SENSOR_REMOVED] == "sensor_off"
    assert assessment.control_weeks == pytest.approx(3 * 0.12 / 7)
    assert not assessment.missed
    assert not assessment.false_alerts(control=True, kind=AlertKind.CLINICAL)
    # The baseline (single readings) cries wolf on the same readings, artefacts among them.
    baseline = assess(run.of_baseline())
    wolf = baseline.false_alerts(control=True, kind=AlertKind.CLINICAL)
    assert wolf
    lines = comparison(assessment, baseline)
    assert lines[2].split()[-2:] == ["3/3", "3/3"]
    assert lines[3].endswith("none in the project")
    # Homes are independent: simulated alone, a home has the same alerts.
    alone = simulate(members[:1])
    home_alerts = {(a.key, a.raised) for a in run.alerts if a.resident == "s1-help_button"}
    assert home_alerts
    assert {(a.key, a.raised) for a in alone.alerts if a.resident} == home_alerts


# --- what the tuning changed ------------------------------------------------------------


def _reading(device: str, metric: Metric, value: float, t: dt.datetime) -> Reading:
    return Reading(
        gateway="gw",
        device=device,
        metric=metric,
        value=value,
        unit=metric.unit,
        time=t,
        received=t,
        seq=next(_SEQ),
    )


def _news2_engine() -> AlertEngine:
    roster = Roster(
        (Resident("r1", spo2_scale=SpO2Scale.SCALE_2, on_oxygen=True),),
        (
            Device("r1-hr", DeviceKind.WEARABLE, "gw", "r1"),
            Device("r1-ox", DeviceKind.PULSE_OXIMETER, "gw", "r1"),
        ),
    )
    return AlertEngine(roster, start=T0)


def _breathing(engine: AlertEngine, minutes: range, rr: float, hr: float) -> None:
    readings = []
    for minute in minutes:
        for second in range(0, 60, 10):
            t = at(minute) + dt.timedelta(seconds=second)
            readings.append(_reading("r1-hr", Metric.RESPIRATORY_RATE, rr, t))
            readings.append(_reading("r1-hr", Metric.HEART_RATE, hr, t))
            readings.append(_reading("r1-ox", Metric.SPO2, 90, t))
    engine.ingest(readings)


def _news2(engine: AlertEngine, now: dt.datetime) -> float | None:
    (result,) = [r for r in engine.evaluate_arrays(now) if r.rule == "news2"]
    return float(result.value[0]) if result.active[0] else None


def test_news2_scores_what_was_held_for_15_minutes_not_a_walk() -> None:
    # A COPD resident on oxygen (2 points) at rest: RR 18, pulse 82, SpO2 90 (scale 2: 0).
    engine = _news2_engine()
    _breathing(engine, range(30), rr=18, hr=82)
    # A 12-minute walk: RR 23 (2 points) and pulse 105 (1): 5 at the moment, "medium".
    _breathing(engine, range(30, 42), rr=23, hr=105)
    assert _news2(engine, at(41)) is None
    # Breathing like that for 15 minutes is no walk.
    _breathing(engine, range(42, 50), rr=23, hr=105)
    assert _news2(engine, at(49.9)) == 5


def test_news2_continuous_parameters_are_missing_until_they_cover_the_window() -> None:
    engine = _news2_engine()
    _breathing(engine, range(11), rr=26, hr=135)
    (result,) = [r for r in engine.evaluate_arrays(at(10.9)) if r.rule == "news2"]
    assert not result.active[0]
    _breathing(engine, range(11, 12), rr=26, hr=135)
    # 12 of 15 minutes: RR 26 (3), pulse 135 (3), oxygen (2), SpO2 90 (0)
    assert _news2(engine, at(11.9)) == 8


def _sepsis_detectable(persistence: str) -> dt.datetime | None:
    site = load_site(find_site("test-home"))
    spec = parse_scenario_arg(f"sepsis:r01@10m,duration=2h,persistence={persistence}")
    simulation = Simulation(site, seed=3, start=START, scenarios=[spec])
    t = START.timestamp()
    while t < START.timestamp() + 3 * 3600:
        t += 10
        simulation.advance_all(t)
    (news2,) = [e for e in simulation.truth_events() if e.expected is Expected.NEWS2]
    return news2.detectable


def test_sepsis_shows_when_news2_5_is_held_not_at_a_moment() -> None:
    moment = _sepsis_detectable("0s")
    held = _sepsis_detectable("15m")
    assert moment is not None
    assert held is not None
    assert held - moment >= dt.timedelta(minutes=15)
    assert held < START + dt.timedelta(hours=3)
