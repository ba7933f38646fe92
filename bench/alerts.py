"""Alert rules per tick for a whole care network, beside a per-resident Python loop.

    .venv/bin/python -m bench.alerts [--residents 10000] [--seconds 2] [--quick]

Fills an :class:`cloud.alerts.AlertEngine` for N residents (default 10,000; six devices
each, 20 residents per gateway) through its real ingest path with a month of history: 21
nights of heart rate, 30 daily weights, 16 days of twice-daily temperatures, a blood pressure,
battery levels, gateway statuses, staff ACVPU entries, and the last two minutes of 1 Hz heart
rate, pulse rate, SpO2 and respiration. A realistic share of residents is unwell or has a
device problem (tachycardia, hypoxaemia, fever, weight gain, rising night heart rate, falls
with and without activity, help calls, silent and off-skin wearables, low batteries, one
gateway offline).

Then, at one instant ``now``, it times:

* **project**: ``engine.evaluate(now)``: every rule vectorised over all residents, devices
  and gateways, and the :class:`~cloud.alerts.Condition` objects (with messages) for the
  active ones; and ``evaluate_arrays(now)`` alone;
* **baseline**: a straightforward per-resident (and per-device, per-gateway) Python loop
  over the same state (copied once into Python lists, its natural form), with the same rules
  and the scalar :func:`cloud.alerts.score` for NEWS2, giving (rule, subject, metric, severity,
  value) tuples (no messages, so the comparison favours the loop).

Both must give exactly the same conditions; the run fails otherwise. It prints milliseconds
per tick for each, the ratio and the core count. The figures are measured interleaved (each
round runs every candidate), so the load of a shared machine falls alike on all of them; the
timing is bounded by about ``3 x --seconds`` (at least three rounds), and filling takes
about 20 s for 10,000 residents.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from cloud.alerts import (
    AlertEngine,
    Band,
    Consciousness,
    Device,
    Resident,
    Roster,
    RuleResult,
    Samples,
    SpO2Scale,
    Subject,
    edges,
    score,
)
from cloud.alerts.state import DEVICE_KINDS, METRIC_INDEX, RuleState
from cloud.alerts.trends import MAD_TO_SD
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import Severity

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = 86_400.0
KINDS = (
    DeviceKind.WEARABLE,
    DeviceKind.PULSE_OXIMETER,
    DeviceKind.THERMOMETER,
    DeviceKind.BP_CUFF,
    DeviceKind.SCALE,
    DeviceKind.PENDANT,
)
PER_GATEWAY = 20

Key = tuple[str, str, int, str | None, int, float | None]


# --- filling ----------------------------------------------------------------------------


@dataclass
class Fill:
    engine: AlertEngine
    readings: int
    seconds: float
    last_second: Callable[[], int]
    """Ingests the readings measured at ``NOW`` (the last second); returns how many."""


def _pick(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    return np.flatnonzero(rng.random(n) < share)


def build(n: int, seed: int) -> Fill:
    rng = np.random.default_rng(seed)
    now = NOW.timestamp()
    scale_2 = rng.random(n) < 0.05
    oxygen = rng.random(n) < 0.03
    residents = tuple(
        Resident(
            f"r{i:05d}",
            spo2_scale=SpO2Scale.SCALE_2 if scale_2[i] else SpO2Scale.SCALE_1,
            on_oxygen=bool(oxygen[i]),
        )
        for i in range(n)
    )
    devices = tuple(
        Device(f"r{i:05d}-{k}", kind, f"gw{i // PER_GATEWAY:04d}", f"r{i:05d}")
        for i in range(n)
        for k, kind in enumerate(KINDS)
    )
    engine = AlertEngine(Roster(residents, devices), start=NOW - timedelta(days=31))
    state = engine.state
    total = 0
    began = time.perf_counter()

    def device(resident: np.ndarray, kind: DeviceKind) -> np.ndarray:
        return resident * len(KINDS) + KINDS.index(kind)

    def put(
        resident: np.ndarray,
        metric: Metric,
        times: np.ndarray,
        values: np.ndarray,
        kind: DeviceKind,
        **extra: Any,
    ) -> None:
        nonlocal total
        resident = np.broadcast_to(resident, times.shape).ravel()
        samples = Samples.of(
            resident,
            np.full(resident.shape[0], METRIC_INDEX[metric]),
            times.ravel(),
            values.ravel(),
            device=device(resident, kind),
            **extra,
        )
        state.ingest(samples)
        total += len(samples)

    everyone = np.arange(n)
    column = everyone[:, None]
    rest_hr = rng.normal(72, 8, n)
    spo2 = np.where(scale_2, rng.normal(90, 1, n), rng.normal(96.5, 1.0, n))
    rr = rng.normal(15, 2, n)
    temp = rng.normal(36.6, 0.25, n)
    sbp = rng.normal(132, 15, n)
    weight = rng.normal(70, 12, n)

    # 21 nights of ten-minute heart-rate means, 00:00-06:00 UTC, and a noon reading
    rising = _pick(rng, n, 0.005)
    midnight = math.floor(now / DAY) * DAY
    for night in range(21, 0, -1):
        start = midnight - night * DAY
        times = start + np.concatenate([np.arange(36) * 600.0, [12 * 3600.0]])
        values = rest_hr[:, None] - 7 + rng.normal(0, 2, (n, 37))
        if night <= 3:
            values[rising] += 6 * (4 - night)
        put(column, Metric.HEART_RATE, np.broadcast_to(times, (n, 37)), values, DeviceKind.WEARABLE)

    # 30 daily weights at 08:00, some gaining 2.5 kg over the last three days
    gaining = _pick(rng, n, 0.005)
    days = midnight - np.arange(29, -1, -1) * DAY + 8 * 3600
    weights = weight[:, None] + rng.normal(0, 0.3, (n, 30))
    weights[gaining, -3:] += np.array([0.8, 1.6, 2.5])
    put(column, Metric.BODY_WEIGHT, np.broadcast_to(days, (n, 30)), weights, DeviceKind.SCALE)

    # 16 days of temperatures at 07:00 and 19:00 UTC; fevers and rises in the last one
    times = (midnight - 16 * DAY) + np.sort(
        np.concatenate([np.arange(16) * DAY + 7 * 3600, np.arange(16) * DAY + 19 * 3600])
    )
    times = times[times < now]
    temps = temp[:, None] + rng.normal(0, 0.15, (n, times.shape[0]))
    temps[_pick(rng, n, 0.01), -1] = 38.5
    temps[_pick(rng, n, 0.005), -1] += 1.3
    put(
        column,
        Metric.BODY_TEMPERATURE,
        np.broadcast_to(times, temps.shape),
        temps,
        DeviceKind.THERMOMETER,
    )

    # a blood pressure three hours ago
    pressures = sbp.copy()
    pressures[_pick(rng, n, 0.01)] = 88
    put(everyone, Metric.SYSTOLIC_BP, np.full(n, now - 3 * 3600), pressures, DeviceKind.BP_CUFF)

    # staff ACVPU entries this morning
    for i in _pick(rng, n, 0.3):
        level = Consciousness.CONFUSION if rng.random() < 0.02 else Consciousness.ALERT
        state.observe_consciousness(int(i), level.code, now - 4 * 3600)

    # wearables: some stopped 20 minutes ago, some report no skin contact since 8 minutes
    silent = _pick(rng, n, 0.005)
    off_skin = np.setdiff1d(_pick(rng, n, 0.005), silent)
    put(
        silent,
        Metric.HEART_RATE,
        np.full(silent.shape[0], now - 1200.0),
        rest_hr[silent],
        DeviceKind.WEARABLE,
    )
    seconds = np.arange(-480.0, 0.0, 5.0)
    put(
        off_skin[:, None],
        Metric.HEART_RATE,
        np.broadcast_to(now + seconds, (off_skin.shape[0], seconds.shape[0])),
        np.zeros((off_skin.shape[0], seconds.shape[0])),
        DeviceKind.WEARABLE,
        valid=np.zeros(off_skin.shape[0] * seconds.shape[0], dtype=bool),
        no_contact=np.ones(off_skin.shape[0] * seconds.shape[0], dtype=bool),
    )

    # falls twelve minutes ago: lying still, half of them got up two minutes ago
    fallen = np.setdiff1d(_pick(rng, n, 0.002), np.concatenate([silent, off_skin]))
    put(
        fallen,
        Metric.FALL,
        np.full(fallen.shape[0], now - 720.0),
        np.ones(fallen.shape[0]),
        DeviceKind.PENDANT,
    )
    minutes = now - 660 + np.arange(9) * 60.0
    put(
        fallen[:, None],
        Metric.HEART_RATE,
        np.broadcast_to(minutes, (fallen.shape[0], 9)),
        rest_hr[fallen][:, None] + 6 + rng.normal(0, 1, (fallen.shape[0], 9)),
        DeviceKind.WEARABLE,
    )
    got_up = fallen[: fallen.shape[0] // 2]
    helped = _pick(rng, n, 0.001)
    put(
        helped,
        Metric.HELP_BUTTON,
        np.full(helped.shape[0], now - 300.0),
        np.ones(helped.shape[0]),
        DeviceKind.PENDANT,
    )

    # the last two minutes at 1 Hz for everyone still streaming (the very last second is
    # ingested between the two ticks, see main)
    streaming = np.setdiff1d(everyone, np.concatenate([silent, off_skin]))
    m = streaming.shape[0]
    seconds = now - 120 + np.arange(121.0)
    hr = rest_hr[streaming][:, None] + rng.normal(0, 2, (m, 121))
    tachy = np.isin(streaming, _pick(rng, n, 0.02))
    hr[tachy] += 138 - rest_hr[streaming][tachy][:, None]
    hr[np.isin(streaming, got_up)] += 25
    hr[:, 40:43] += (rng.random((m, 1)) < 0.05) * 120  # 3-s motion artefacts
    sat = spo2[streaming][:, None] + rng.normal(0, 0.7, (m, 121))
    sat[np.isin(streaming, _pick(rng, n, 0.01))] -= 8
    rate = rr[streaming][:, None] + rng.normal(0, 1, (m, 121))
    series = (
        (Metric.HEART_RATE, np.round(hr), DeviceKind.WEARABLE),
        (Metric.RESPIRATORY_RATE, np.round(rate), DeviceKind.WEARABLE),
        (Metric.SPO2, np.clip(np.round(sat), 50, 100), DeviceKind.PULSE_OXIMETER),
        (Metric.PULSE_RATE, np.round(hr), DeviceKind.PULSE_OXIMETER),
    )
    grid = np.broadcast_to(seconds[:-1], (m, 120))
    for metric, values, kind in series:
        put(streaming[:, None], metric, grid, values[:, :-1], kind)

    # batteries (the pendants' is their heartbeat, two minutes ago)
    levels = rng.uniform(30, 100, n * len(KINDS))
    levels[_pick(rng, levels.shape[0], 0.01)] = rng.uniform(10, 19.9)
    levels[_pick(rng, levels.shape[0], 0.003)] = rng.uniform(1, 9.9)
    state.battery_readings(np.arange(n * len(KINDS)), np.full(n * len(KINDS), now - 120.0), levels)
    pendants = device(everyone, DeviceKind.PENDANT)
    state.device_seen(pendants, np.full(n, now - 120.0))

    # every gateway's status 30 s ago; one sent its last will ten minutes ago
    for gateway in range(state.n_gateways):
        state.gateway_status(gateway, True, now - 30, now - 30)
    state.gateway_status(0, False, now - 600, now - 600)
    state.gateway_activity[0] = now - 600
    seconds_taken = time.perf_counter() - began

    def last_second() -> int:
        before = total
        for metric, values, kind in series:
            put(streaming, metric, np.full(m, now), values[:, -1], kind)
        return total - before

    return Fill(engine, total, seconds_taken, last_second)


# --- the per-resident loop ----------------------------------------------------------------


def snapshot(state: RuleState) -> dict[str, Any]:
    """The state as Python lists: what a loop implementation would hold."""
    table = state.thresholds
    per_resident = {
        name: getattr(state, name).T.tolist()  # metric-major in the state, resident-major here
        for name in ("last_time", "last_value", "current", "sustained", "last_device")
    }
    return (
        per_resident
        | {
            name: getattr(state, name).tolist()
            for name in (
                "scale_2",
                "on_oxygen",
                "consciousness",
                "consciousness_time",
                "weight_gain",
                "temperature_baseline",
                "night_recent",
                "night_baseline",
                "night_mad",
                "night_slope",
                "night_ended",
                "fall_time",
                "fall_arrival",
                "fall_device",
                "help_time",
                "help_arrival",
                "help_device",
                "after_fall_count",
                "after_fall_min",
                "after_fall_max",
                "has_wearable",
                "device_last_seen",
                "device_cadence",
                "device_kind",
                "device_gateway",
                "device_no_contact_since",
                "battery",
                "gateway_online",
                "gateway_since",
                "gateway_activity",
            )
        }
        | {
            "latched": state.latches.latched.T.tolist(),
            "battery_latched": state.battery_latches.latched.T.tolist(),
            "column_rank": table.severity_rank.tolist(),
            "slot_column": table.slot_column.tolist(),
            "groups": [
                (
                    table.rules[rule].rule,
                    metric,
                    METRIC_INDEX[metric],
                    slots.tolist(),
                    table.rules[rule].stale_after.total_seconds(),
                )
                for (rule, metric), slots in table.slots_by_rule_metric.items()
            ],
        }
    )


def _nan(value: float) -> bool:
    return math.isnan(value)


def _value(value: float) -> float | None:
    return None if _nan(value) else round(value, 6)


def loop_evaluate(state: RuleState, s: dict[str, Any], now: float) -> set[Key]:
    config = state.config
    news2 = config.news2
    trends = config.trends
    presence = config.presence
    events = config.events
    out: set[Key] = set()
    add = out.add
    hr, pr = METRIC_INDEX[Metric.HEART_RATE], METRIC_INDEX[Metric.PULSE_RATE]
    rr, sat = METRIC_INDEX[Metric.RESPIRATORY_RATE], METRIC_INDEX[Metric.SPO2]
    sbp, tmp = METRIC_INDEX[Metric.SYSTOLIC_BP], METRIC_INDEX[Metric.BODY_TEMPERATURE]
    wt = METRIC_INDEX[Metric.BODY_WEIGHT]
    levels = list(Consciousness)
    band_rank = {
        Band.LOW_MEDIUM: Severity.WARNING.rank,
        Band.MEDIUM: Severity.URGENT.rank,
        Band.HIGH: Severity.CRITICAL.rank,
    }
    resident_rule = Subject.RESIDENT.value

    for r in range(state.n_residents):
        last_time = s["last_time"][r]
        current = s["current"][r]
        latched = s["latched"][r]
        for rule, metric, m, slots, stale in s["groups"]:
            if not now - last_time[m] <= stale:
                continue
            best = -1
            for slot in slots:
                if latched[slot]:
                    best = max(best, s["column_rank"][s["slot_column"][slot]])
            if best >= 0:
                add((rule, resident_rule, r, metric.value, best, _value(current[m])))

        sustained = s["sustained"][r]

        def fresh(m: int, window: float, held: bool = False) -> tuple[float | None, float]:
            t = last_time[m]  # noqa: B023 - called within this iteration only
            if now - t <= window:
                value = sustained[m] if held else current[m]  # noqa: B023
                return (None if _nan(value) else value), t
            return None, math.nan

        resp, _ = fresh(rr, news2.respiration_rate.total_seconds(), True)
        spo2, _ = fresh(sat, news2.spo2.total_seconds(), True)
        heart, heart_t = fresh(hr, news2.pulse.total_seconds(), True)
        pulse_rate, pulse_t = fresh(pr, news2.pulse.total_seconds(), True)
        use_rate = pulse_rate is not None and (heart is None or not heart_t >= pulse_t)
        pulse = pulse_rate if use_rate else heart
        systolic, _ = fresh(sbp, news2.systolic_bp.total_seconds())
        temperature, _ = fresh(tmp, news2.temperature.total_seconds())
        acvpu = None
        if now - s["consciousness_time"][r] <= news2.consciousness.total_seconds():
            acvpu = levels[int(s["consciousness"][r])]
        oxygen = s["on_oxygen"][r]
        result = score(
            respiration_rate=resp,
            spo2=spo2,
            on_oxygen=None if _nan(oxygen) else bool(oxygen),
            systolic_bp=systolic,
            pulse=pulse,
            consciousness=acvpu,
            temperature=temperature,
            scale=SpO2Scale.SCALE_2 if s["scale_2"][r] else SpO2Scale.SCALE_1,
        )
        if result.band >= Band.LOW_MEDIUM:
            add(("news2", resident_rule, r, None, band_rank[result.band], float(result.total)))

        weighed = last_time[wt]
        if now - weighed <= trends.weight_stale_after.total_seconds():
            for j, rule in enumerate(trends.weight_gain):
                gain = s["weight_gain"][r][j]
                if rule.enabled and not _nan(gain) and gain > rule.limit_kg + 1e-9:
                    add(
                        (
                            rule.rule,
                            resident_rule,
                            r,
                            Metric.BODY_WEIGHT.value,
                            rule.severity.rank,
                            _value(gain),
                        )
                    )

        rise = s["last_value"][r][tmp] - s["temperature_baseline"][r]
        if (
            now - last_time[tmp] <= trends.temperature_stale_after.total_seconds()
            and not _nan(rise)
            and rise >= trends.temperature_rise - 1e-9
        ):
            add(
                (
                    "temperature_rise",
                    resident_rule,
                    r,
                    Metric.BODY_TEMPERATURE.value,
                    Severity.WARNING.rank,
                    _value(rise),
                )
            )

        rise = s["night_recent"][r] - s["night_baseline"][r]
        mad = s["night_mad"][r]
        needed = (
            trends.night_rise
            if _nan(mad)
            else max(trends.night_rise, trends.night_mad_k * MAD_TO_SD * mad)
        )
        if (
            now - s["night_ended"][r] <= trends.night_stale_after.total_seconds()
            and not _nan(rise)
            and rise >= needed - 1e-9
            and s["night_slope"][r] > trends.night_min_slope
        ):
            add(
                (
                    "night_hr_rising",
                    resident_rule,
                    r,
                    Metric.HEART_RATE.value,
                    Severity.WARNING.rank,
                    _value(rise),
                )
            )

        for rule, metric, when, arrived in (
            ("fall", Metric.FALL, s["fall_time"][r], s["fall_arrival"][r]),
            ("help", Metric.HELP_BUTTON, s["help_time"][r], s["help_arrival"][r]),
        ):
            noticed = arrived if _nan(when) else (when if _nan(arrived) else max(when, arrived))
            if now - noticed <= events.hold.total_seconds():
                add((rule, resident_rule, r, metric.value, Severity.CRITICAL.rank, 1.0))

        elapsed = now - s["fall_time"][r]
        if (
            events.no_activity_after.total_seconds()
            <= elapsed
            <= events.no_activity_hold.total_seconds()
            and s["has_wearable"][r]
        ):
            count = s["after_fall_count"][r]
            spread = s["after_fall_max"][r] - s["after_fall_min"][r]
            if count == 0 or spread < events.activity_rise:
                add(
                    (
                        "no_activity_after_fall",
                        resident_rule,
                        r,
                        Metric.HEART_RATE.value,
                        Severity.CRITICAL.rank,
                        _value(spread) if count > 0 else None,
                    )
                )

    gateway_down = []
    for g in range(state.n_gateways):
        down = (
            not s["gateway_online"][g]
            and now - s["gateway_since"][g] >= presence.gateway_grace.total_seconds()
        )
        quiet = now - s["gateway_activity"][g] >= presence.gateway_silence.total_seconds()
        gateway_down.append(down or quiet)
        if down or quiet:
            add(
                (
                    "gateway_offline",
                    Subject.GATEWAY.value,
                    g,
                    None,
                    Severity.URGENT.rank,
                    _value(now - s["gateway_activity"][g]),
                )
            )

    pendant = DEVICE_KINDS.index(DeviceKind.PENDANT)
    floor = presence.silent_floor.total_seconds()
    for d in range(state.n_devices):
        covered = gateway_down[s["device_gateway"][d]]
        silence = now - s["device_last_seen"][d]
        silent = (
            silence > max(presence.silent_factor * s["device_cadence"][d], floor) and not covered
        )
        if silent:
            rank = Severity.URGENT.rank if s["device_kind"][d] == pendant else Severity.WARNING.rank
            add(("device_silent", Subject.DEVICE.value, d, None, rank, _value(silence)))
        off_for = now - s["device_no_contact_since"][d]
        if off_for >= presence.sensor_off_after.total_seconds() and not silent and not covered:
            add(
                (
                    "sensor_off",
                    Subject.DEVICE.value,
                    d,
                    None,
                    Severity.WARNING.rank,
                    _value(off_for),
                )
            )
        warning, urgent = s["battery_latched"][d]
        if warning or urgent:
            rank = Severity.URGENT.rank if urgent else Severity.WARNING.rank
            add(
                (
                    "battery_low",
                    Subject.DEVICE.value,
                    d,
                    Metric.BATTERY_LEVEL.value,
                    rank,
                    _value(s["battery"][d]),
                )
            )
    return out


def vector_keys(results: list[RuleResult]) -> set[Key]:
    out: set[Key] = set()
    for result in results:
        metric = result.metric.value if result.metric is not None else None
        for i in np.flatnonzero(result.active).tolist():
            out.add(
                (
                    result.rule,
                    result.subject.value,
                    i,
                    metric,
                    int(result.severity[i]),
                    _value(float(result.value[i])),
                )
            )
    return out


# --- timing -------------------------------------------------------------------------------


def interleaved(
    calls: dict[str, tuple[Callable[[], object], int]], budget: float
) -> dict[str, tuple[float, int]]:
    """Median seconds per call of each entry over rounds in which every entry runs its given
    number of times, until ``budget`` seconds have passed (at least three rounds): the load
    of a shared machine then falls alike on all of them."""
    runs: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.perf_counter() + budget
    rounds = 0
    while rounds < 3 or time.perf_counter() < deadline:
        for name, (call, repeat) in calls.items():
            for _ in range(repeat):
                began = time.perf_counter()
                call()
                runs[name].append(time.perf_counter() - began)
        rounds += 1
    return {name: (statistics.median(times), len(times)) for name, times in runs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per figure")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1,000 residents, short timing")
    args = parser.parse_args(argv)
    if args.quick:
        args.residents, args.seconds = 1_000, 0.5

    fill = build(args.residents, args.seed)
    engine = fill.engine
    state = engine.state
    print(
        f"state: {state.n_residents:,} residents, {state.n_devices:,} devices, "
        f"{state.n_gateways} gateways; filled with {fill.readings:,} readings in "
        f"{fill.seconds:.1f} s ({fill.readings / fill.seconds:,.0f} readings/s through ingest)"
    )
    # Two ticks a second apart, with that second's readings ingested between them.
    before = NOW - timedelta(seconds=1)
    previous = engine.evaluate_arrays(before)
    previous_conditions = engine.conditions(previous)
    arrived = fill.last_second()
    now = NOW
    now_s = now.timestamp()
    current = engine.evaluate_arrays(now)
    conditions = engine.conditions(current)
    changed = engine.changes(previous, current)

    project = vector_keys(current)
    lists = snapshot(state)
    baseline = loop_evaluate(state, lists, now_s)
    if project != baseline:
        print("MISMATCH between the vectorised rules and the loop:", file=sys.stderr)
        for key in sorted(project - baseline, key=str)[:10]:
            print("  only vectorised:", key, file=sys.stderr)
        for key in sorted(baseline - project, key=str)[:10]:
            print("  only loop:      ", key, file=sys.stderr)
        return 1
    expected = {(c.key, c.active, c.severity) for c in edges(previous_conditions, conditions)}
    if {(c.key, c.active, c.severity) for c in changed} != expected:
        print("MISMATCH between changes() and edges()", file=sys.stderr)
        return 1
    by_rule: dict[str, int] = {}
    for condition in conditions:
        by_rule[condition.rule] = by_rule.get(condition.rule, 0) + 1
    print(
        f"conditions active: {len(conditions):,}, identical in both implementations: "
        + ", ".join(f"{rule} {count}" for rule, count in sorted(by_rule.items()))
    )
    print(
        f"between the two ticks: {arrived:,} readings ingested, {len(changed)} conditions "
        "changed (raised, re-graded or ended)"
    )
    worst = max(conditions, key=lambda c: c.severity.rank)
    print(f"e.g. {worst.message}")

    figures = interleaved(
        {
            "rules": (lambda: engine.evaluate_arrays(now), 20),
            "tick": (lambda: engine.changes(previous, engine.evaluate_arrays(now)), 20),
            "full": (lambda: engine.evaluate(now), 2),
            "loop": (lambda: loop_evaluate(state, lists, now_s), 1),
        },
        3 * args.seconds,
    )
    rules, rules_runs = figures["rules"]
    tick, tick_runs = figures["tick"]
    full, full_runs = figures["full"]
    loop, loop_runs = figures["loop"]
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    rows = (
        ("project", "evaluate_arrays(now): every rule, all subjects", rules, rules_runs),
        ("project", "+ changes(previous): the tick's edges as Conditions", tick, tick_runs),
        (
            "project",
            f"evaluate(now): all {len(conditions):,} active as Conditions",
            full,
            full_runs,
        ),
        ("baseline", "per-resident Python loop, same rules, same state", loop, loop_runs),
    )
    for who, what, seconds, runs in rows:
        print(f"{who:9s}{what:58s}{seconds * 1e3:9.2f} ms/tick  (median of {runs})")
    print(
        f"ratio    loop / evaluate_arrays {loop / rules:,.0f}x, loop / tick with changes "
        f"{loop / tick:,.0f}x, loop / evaluate {loop / full:,.1f}x"
    )
    print(f"cores    {cores} on the machine, {usable} usable; these rules run on one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
