"""The rules: pure functions of ``(state, now)`` giving one :class:`RuleResult` per rule.

A result holds, for every subject of the rule (every resident, device or gateway), whether
the condition is active now, its severity, the value behind it, whether the rule could tell
at all (``known``: fresh data existed), when the deciding data was measured and which device
it came from, and how to word the message of any active row (:attr:`RuleResult.describe`).
Nothing loops over residents; nothing reads a clock; nothing mutates the state. The arrays
are copies (or read-only constants), safe to keep after the state moves on; only threshold
messages read the limits as configured when the message is made.

Rules, by family (ids in brackets):

* **thresholds** [``hr_high``, ``hr_low``, ``spo2_low``, ``rr_high``, ``rr_low``,
  ``temperature_high``, ``temperature_low``, ``sbp_low``, ``sbp_high``, ``glucose_low``,
  ``glucose_high``]: one result per (rule, metric); the highest latched level
  (:mod:`cloud.alerts.thresholds`, :mod:`cloud.alerts.latch`) while the series is fresh.
* **NEWS2** [``news2``]: from the freshest parameters within their windows; a continuous
  series (respiration, SpO2, pulse) scores the points it has held throughout the last
  ``news2.persistence`` (15 min), so a walk is not a deterioration; active at low-medium
  (warning), medium (urgent) and high (critical). A partial score (missing parameters) is a
  lower bound and still alerts.
* **trends** [``weight_gain_3d`` and other configured spans, ``temperature_rise``,
  ``night_hr_rising``]: the resident against their own recent past.
* **presence** (technical) [``device_silent``, ``sensor_off``, ``battery_low``,
  ``gateway_offline``]: a device silent for ``silent_factor`` x its cadence (at least
  ``silent_floor``; not while its gateway is offline, which is one alert instead of one per
  device; urgent for a fall pendant), readings saying the sensor is off the skin, battery
  below 20 % (warning) or 10 % (urgent) with hysteresis, a gateway offline (status or last
  will for ``gateway_grace``) or silent (no status or reading for ``gateway_silence``).
* **events** [``fall``, ``help``, ``no_activity_after_fall``]: critical for ``hold`` after the
  event reached us (so a fall backfilled late still alerts). No activity after a fall: the
  proxy the data allows is the heart rate of the resident's wearable. Getting up and moving
  raises heart rate by 10-30 bpm within minutes; lying still keeps it within a few bpm. So
  ``no_activity_after`` (10 min) after a fall, if the smoothed heart rate since the first
  minute after the fall has stayed within ``activity_rise`` (10 bpm), or the wearable has sent
  nothing since, the condition is active (critical) until ``no_activity_hold``. A resident
  without a wearable has no proxy: the rule is unknown for them, never falsely reassuring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from cloud.alerts.news2 import PARAMETERS, Band, News2Arrays, Parameter, score_arrays
from cloud.alerts.state import CONTINUOUS, DEVICE_KINDS, METRIC_INDEX, RuleState
from cloud.alerts.thresholds import Direction
from cloud.alerts.trends import MAD_TO_SD
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import AlertKind, Severity

__all__ = [
    "SEVERITIES",
    "News2Inputs",
    "RuleResult",
    "Subject",
    "battery_low",
    "device_presence",
    "evaluate",
    "events",
    "format_duration",
    "gateway_offline",
    "news2",
    "news2_inputs",
    "news2_scores",
    "night_hr_rising",
    "no_activity_after_fall",
    "temperature_rise",
    "thresholds",
    "weight_gain",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
RankArray = npt.NDArray[np.int8]
Describe = Callable[[IntArray], list[str]]

SEVERITIES: Final = tuple(Severity)
"""Severities by rank: ``SEVERITIES[rank]``."""
_TOLERANCE: Final = 1e-9
_NONE: Final = np.int8(-1)
_WARNING: Final = np.int8(Severity.WARNING.rank)
_URGENT: Final = np.int8(Severity.URGENT.rank)
_CRITICAL: Final = np.int8(Severity.CRITICAL.rank)
_BAND_RANK: Final = np.array([-1, _WARNING, _URGENT, _CRITICAL], dtype=np.int8)
_PENDANT: Final = DEVICE_KINDS.index(DeviceKind.PENDANT)


class Subject(StrEnum):
    """What a rule's rows are."""

    RESIDENT = "resident"
    DEVICE = "device"
    GATEWAY = "gateway"


@dataclass(slots=True, frozen=True, eq=False)
class RuleResult:
    """One rule evaluated for all its subjects at one instant."""

    rule: str
    kind: AlertKind
    subject: Subject
    metric: Metric | None
    active: BoolArray
    severity: RankArray
    """:attr:`Severity.rank` where active, -1 elsewhere."""
    value: FloatArray
    known: BoolArray
    """False where the rule had nothing fresh to decide on (inactive, but not "normal")."""
    time: FloatArray
    """When the deciding data was measured (the event's time for events), NaN if none."""
    device: IntArray
    """The device the deciding data came from, -1 if none."""
    describe: Describe
    """The message bodies of some active rows: values and ids only, never a name."""

    def __len__(self) -> int:
        return int(self.active.shape[0])


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3 h 5 min"``, ``"2 d 4 h"``."""
    if not math.isfinite(seconds):
        return "ever"
    whole = int(max(seconds, 0.0))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"


def _at(array: npt.NDArray[Any], rows: IntArray) -> list[Any]:
    """Some cells as Python scalars (one conversion for all of them)."""
    return list(array[rows].tolist())


# --- thresholds -------------------------------------------------------------------------


def _threshold_describe(
    state: RuleState,
    metric: Metric,
    value: FloatArray,
    group: int,
    severity: RankArray,
    *,
    high: bool,
) -> Describe:
    """A row is described by the limit of its highest latched level (``severity``), as
    configured when the message is made."""
    table = state.thresholds
    start = int(table.group_start[group])
    rule = table.rules[table.slots[start].rule_index]
    columns = table.slot_column[start : start + len(rule.levels)]
    ranks = np.array([level.severity.rank for level in rule.levels], dtype=np.int8)

    def describe(rows: IntArray) -> list[str]:
        column = columns[np.searchsorted(ranks, severity[rows])]
        limits = table.trigger[rows, column].tolist()
        strict = table.strict[column].tolist()
        texts = []
        for v, limit, is_strict in zip(_at(value, rows), limits, strict, strict=True):
            sign = (">" if is_strict else ">=") if high else ("<" if is_strict else "<=")
            texts.append(f"{metric.value} {_num(v)} {metric.unit} {sign} {limit:g}")
        return texts

    return describe


def thresholds(state: RuleState, now: float) -> list[RuleResult]:
    """One result per (threshold rule, metric), computed for all of them at once."""
    table = state.thresholds
    latched = state.latches.latched
    first = [table.slots[i] for i in table.group_start.tolist()]
    metrics = np.array([METRIC_INDEX[slot.metric] for slot in first], dtype=np.int64)
    stale = table.stale_after[[slot.rule_index for slot in first]]
    # the highest latched severity of each (group, resident), plus one (0 when none)
    code = np.zeros((len(first), state.n_residents), dtype=np.int8)
    for slots, codes in zip(table.level_slots, table.level_code, strict=True):
        np.maximum(code, latched[slots] * codes[:, None], out=code)
    times = state.last_time[metrics]
    known = now - times <= stale[:, None]
    active = known & (code > 0)
    severity = np.where(active, code - np.int8(1), _NONE)
    values = state.current[metrics]
    devices = state.last_device[metrics]
    results = []
    for group, slot in enumerate(first):
        rule = table.rules[slot.rule_index]
        results.append(
            RuleResult(
                rule=rule.rule,
                kind=AlertKind.CLINICAL,
                subject=Subject.RESIDENT,
                metric=slot.metric,
                active=active[group],
                severity=severity[group],
                value=values[group],
                known=known[group],
                time=times[group],
                device=devices[group],
                describe=_threshold_describe(
                    state,
                    slot.metric,
                    values[group],
                    group,
                    severity[group],
                    high=rule.direction is Direction.HIGH,
                ),
            )
        )
    return results


# --- NEWS2 ------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True, eq=False)
class News2Inputs:
    """The values NEWS2 was scored from (NaN = missing) and the newest of their times."""

    respiration_rate: FloatArray
    spo2: FloatArray
    on_oxygen: FloatArray
    systolic_bp: FloatArray
    pulse: FloatArray
    consciousness: FloatArray
    temperature: FloatArray
    scale: IntArray
    time: FloatArray


def _fresh(
    state: RuleState, metric: Metric, window: float, now: float
) -> tuple[FloatArray, FloatArray]:
    m = METRIC_INDEX[metric]
    times = state.last_time[m]
    fresh = now - times <= window
    values = state.sustained[m] if metric in CONTINUOUS else state.current[m]
    return np.where(fresh, values, np.nan), np.where(fresh, times, np.nan)


def news2_inputs(state: RuleState, now: float) -> News2Inputs:
    """The freshest value of each parameter within its window (NaN when there is none); for
    the continuous ones, the value held throughout ``news2.persistence``."""
    windows = state.config.news2
    rr, rr_t = _fresh(state, Metric.RESPIRATORY_RATE, windows.respiration_rate.total_seconds(), now)
    spo2, spo2_t = _fresh(state, Metric.SPO2, windows.spo2.total_seconds(), now)
    hr, hr_t = _fresh(state, Metric.HEART_RATE, windows.pulse.total_seconds(), now)
    pr, pr_t = _fresh(state, Metric.PULSE_RATE, windows.pulse.total_seconds(), now)
    # the pulse rate when there is no scored heart rate, or a newer pulse rate
    use_pr = ~np.isnan(pr) & (np.isnan(hr) | ~(hr_t >= pr_t))
    pulse = np.where(use_pr, pr, hr)
    pulse_t = np.where(use_pr, pr_t, hr_t)
    sbp, sbp_t = _fresh(state, Metric.SYSTOLIC_BP, windows.systolic_bp.total_seconds(), now)
    temp, temp_t = _fresh(state, Metric.BODY_TEMPERATURE, windows.temperature.total_seconds(), now)
    observed = now - state.consciousness_time <= windows.consciousness.total_seconds()
    acvpu = np.where(observed, state.consciousness, np.nan)
    acvpu_t = np.where(observed, state.consciousness_time, np.nan)
    newest = np.fmax(
        np.fmax(np.fmax(rr_t, spo2_t), np.fmax(pulse_t, sbp_t)), np.fmax(temp_t, acvpu_t)
    )
    return News2Inputs(
        respiration_rate=rr,
        spo2=spo2,
        on_oxygen=state.on_oxygen.copy(),
        systolic_bp=sbp,
        pulse=pulse,
        consciousness=acvpu,
        temperature=temp,
        scale=state.spo2_scale.copy(),
        time=newest,
    )


def news2_scores(inputs: News2Inputs) -> News2Arrays:
    return score_arrays(
        respiration_rate=inputs.respiration_rate,
        spo2=inputs.spo2,
        on_oxygen=inputs.on_oxygen,
        systolic_bp=inputs.systolic_bp,
        pulse=inputs.pulse,
        consciousness=inputs.consciousness,
        temperature=inputs.temperature,
        scale=inputs.scale,
    )


_KIND_NAMES: Final = [kind.value for kind in DEVICE_KINDS]
_SHORT: Final = {
    Parameter.RESPIRATION_RATE: "RR",
    Parameter.SPO2: "SpO2",
    Parameter.AIR_OR_OXYGEN: "O2",
    Parameter.SYSTOLIC_BP: "SBP",
    Parameter.PULSE: "pulse",
    Parameter.CONSCIOUSNESS: "ACVPU",
    Parameter.TEMPERATURE: "temp",
}
_ACVPU: Final = "ACVPU"


def _shown(parameter: Parameter, raw: float) -> str:
    if math.isnan(raw):
        return "-"
    if parameter is Parameter.AIR_OR_OXYGEN:
        return "oxygen" if raw else "air"
    if parameter is Parameter.CONSCIOUSNESS:
        return _ACVPU[int(raw)]
    return _num(raw)


_LABELS: Final = [_SHORT[p] for p in PARAMETERS]
_BAND_LABELS: Final = [band.label for band in Band]


def _news2_describe(inputs: News2Inputs, scores: News2Arrays) -> Describe:
    values = (
        inputs.respiration_rate,
        inputs.spo2,
        inputs.on_oxygen,
        inputs.systolic_bp,
        inputs.pulse,
        inputs.consciousness,
        inputs.temperature,
    )

    def describe(rows: IntArray) -> list[str]:
        raws = list(zip(*(_at(column, rows) for column in values), strict=True))
        texts = []
        for points, raw, total, band in zip(
            _at(scores.scores, rows),
            raws,
            _at(scores.total, rows),
            _at(scores.band, rows),
            strict=True,
        ):
            parts = [
                f"{label} {_shown(parameter, value)}" + (f"={score}" if score >= 0 else "")
                for label, parameter, value, score in zip(
                    _LABELS, PARAMETERS, raw, points, strict=True
                )
            ]
            text = f"NEWS2 {total} {_BAND_LABELS[band]}: " + ", ".join(parts)
            if min(points) < 0:
                text += "; partial, missing " + ", ".join(
                    parameter.value
                    for parameter, score in zip(PARAMETERS, points, strict=True)
                    if score < 0
                )
            texts.append(text)
        return texts

    return describe


def news2(state: RuleState, now: float) -> RuleResult:
    inputs = news2_inputs(state, now)
    scores = news2_scores(inputs)
    band = scores.band
    active = band >= Band.LOW_MEDIUM
    known = np.zeros(state.n_residents, dtype=np.bool_)
    for parameter, column in zip(PARAMETERS, scores.columns, strict=True):
        if parameter is not Parameter.AIR_OR_OXYGEN:  # from the record, not a measurement
            known |= column >= 0
    return RuleResult(
        rule="news2",
        kind=AlertKind.CLINICAL,
        subject=Subject.RESIDENT,
        metric=None,
        active=active,
        severity=_BAND_RANK[band],
        value=scores.total.astype(np.float64),
        known=known,
        time=inputs.time,
        device=state.no_device,
        describe=_news2_describe(inputs, scores),
    )


# --- trends -----------------------------------------------------------------------------


def _weight_describe(
    last: FloatArray, gain: FloatArray, slope: FloatArray, days: float, limit: float
) -> Describe:
    def describe(rows: IntArray) -> list[str]:
        texts = []
        for weight, up, trend in zip(
            _at(last, rows), _at(gain, rows), _at(slope, rows), strict=True
        ):
            rate = f", trend {trend:+.2f} kg/day" if math.isfinite(trend) else ""
            texts.append(
                f"body_weight {_num(weight)} kg, +{up:.1f} kg in {days:g} d "
                f"(limit {limit:g} kg{rate})"
            )
        return texts

    return describe


def weight_gain(state: RuleState, now: float) -> list[RuleResult]:
    trends = state.config.trends
    m = METRIC_INDEX[Metric.BODY_WEIGHT]
    weighed = state.last_time[m].copy()
    fresh = now - weighed <= trends.weight_stale_after.total_seconds()
    last = state.last_value[m].copy()
    slope = state.weight_slope.copy()
    devices = state.last_device[m].copy()
    results = []
    for column, rule in enumerate(trends.weight_gain):
        if not rule.enabled:
            continue
        gain = state.weight_gain[:, column].copy()
        known = fresh & ~np.isnan(gain)
        active = known & (gain > rule.limit_kg + _TOLERANCE)
        days = rule.span.total_seconds() / 86_400
        results.append(
            RuleResult(
                rule=rule.rule,
                kind=AlertKind.CLINICAL,
                subject=Subject.RESIDENT,
                metric=Metric.BODY_WEIGHT,
                active=active,
                severity=np.where(active, np.int8(rule.severity.rank), _NONE),
                value=gain,
                known=known,
                time=weighed,
                device=devices,
                describe=_weight_describe(last, gain, slope, days, rule.limit_kg),
            )
        )
    return results


def temperature_rise(state: RuleState, now: float) -> RuleResult:
    trends = state.config.trends
    m = METRIC_INDEX[Metric.BODY_TEMPERATURE]
    measured = state.last_time[m].copy()
    last = state.last_value[m].copy()
    baseline = state.temperature_baseline.copy()
    rise = last - baseline
    known = (now - measured <= trends.temperature_stale_after.total_seconds()) & ~np.isnan(rise)
    active = known & (rise >= trends.temperature_rise - _TOLERANCE)
    limit = trends.temperature_rise

    def describe(rows: IntArray) -> list[str]:
        return [
            f"body_temperature {_num(t)} Cel, +{up:.1f} over the personal baseline "
            f"{base:.1f} (limit +{limit:g})"
            for t, up, base in zip(
                _at(last, rows), _at(rise, rows), _at(baseline, rows), strict=True
            )
        ]

    return RuleResult(
        rule="temperature_rise",
        kind=AlertKind.CLINICAL,
        subject=Subject.RESIDENT,
        metric=Metric.BODY_TEMPERATURE,
        active=active,
        severity=np.where(active, _WARNING, _NONE),
        value=rise,
        known=known,
        time=measured,
        device=state.last_device[m].copy(),
        describe=describe,
    )


def night_hr_rising(state: RuleState, now: float) -> RuleResult:
    trends = state.config.trends
    rise = state.night_recent - state.night_baseline
    needed = np.fmax(trends.night_rise, trends.night_mad_k * MAD_TO_SD * state.night_mad)
    ended = state.night_ended.copy()
    known = (now - ended <= trends.night_stale_after.total_seconds()) & ~np.isnan(rise)
    slope = state.night_slope.copy()
    active = known & (rise >= needed - _TOLERANCE) & (slope > trends.night_min_slope)
    recent = state.night_recent.copy()
    baseline = state.night_baseline.copy()
    nights = trends.night_recent

    def describe(rows: IntArray) -> list[str]:
        return [
            f"night heart_rate {r:.0f} /min over the last {nights} nights, +{up:.0f} over "
            f"the baseline {base:.0f} (needs +{need:.0f}), rising {trend:+.1f} /min per night"
            for r, up, base, need, trend in zip(
                _at(recent, rows),
                _at(rise, rows),
                _at(baseline, rows),
                _at(needed, rows),
                _at(slope, rows),
                strict=True,
            )
        ]

    return RuleResult(
        rule="night_hr_rising",
        kind=AlertKind.CLINICAL,
        subject=Subject.RESIDENT,
        metric=Metric.HEART_RATE,
        active=active,
        severity=np.where(active, _WARNING, _NONE),
        value=rise,
        known=known,
        time=ended,
        device=state.no_device,
        describe=describe,
    )


# --- presence ---------------------------------------------------------------------------


def gateway_offline(state: RuleState, now: float) -> RuleResult:
    presence = state.config.presence
    since = state.gateway_since.copy()
    activity = state.gateway_activity.copy()
    down = ~state.gateway_online & (now - since >= presence.gateway_grace.total_seconds())
    quiet = now - activity >= presence.gateway_silence.total_seconds()
    active = down | quiet

    def describe(rows: IntArray) -> list[str]:
        return [
            f"gateway offline for {format_duration(now - began)}"
            if is_down
            else f"gateway silent for {format_duration(now - last)}"
            for is_down, began, last in zip(
                _at(down, rows), _at(since, rows), _at(activity, rows), strict=True
            )
        ]

    return RuleResult(
        rule="gateway_offline",
        kind=AlertKind.TECHNICAL,
        subject=Subject.GATEWAY,
        metric=None,
        active=active,
        severity=np.where(active, _URGENT, _NONE),
        value=now - activity,
        known=state.all_gateways,
        time=activity,
        device=state.no_gateway_device,
        describe=describe,
    )


def device_presence(
    state: RuleState, now: float, gateways: RuleResult
) -> tuple[RuleResult, RuleResult]:
    """``device_silent`` and ``sensor_off``; both quiet while the device's gateway is offline
    (the gateway's alert says it once)."""
    presence = state.config.presence
    last_seen = state.device_last_seen.copy()
    silence = now - last_seen
    silent = silence > state.device_silence_limit
    if gateways.active.any():
        gateway_down = gateways.active[state.device_gateway]
        silent &= ~gateway_down
        known = ~gateway_down
    else:
        known = state.all_devices
    kinds = state.device_kind

    def silent_describe(rows: IntArray) -> list[str]:
        return [
            f"{_KIND_NAMES[kind]} silent for {format_duration(quiet)} "
            f"(expected every {format_duration(every)})"
            for kind, quiet, every in zip(
                _at(kinds, rows), _at(silence, rows), _at(state.device_cadence, rows), strict=True
            )
        ]

    off_since = state.device_no_contact_since.copy()
    off_for = now - off_since
    off = (off_for >= presence.sensor_off_after.total_seconds()) & ~silent & known

    def off_describe(rows: IntArray) -> list[str]:
        return [
            f"{_KIND_NAMES[kind]} reports no skin contact for {format_duration(span)}"
            for kind, span in zip(_at(kinds, rows), _at(off_for, rows), strict=True)
        ]

    return (
        RuleResult(
            rule="device_silent",
            kind=AlertKind.TECHNICAL,
            subject=Subject.DEVICE,
            metric=None,
            active=silent,
            severity=np.where(silent, state.device_silent_rank, _NONE),
            value=silence,
            known=known,
            time=last_seen,
            device=state.device_indices,
            describe=silent_describe,
        ),
        RuleResult(
            rule="sensor_off",
            kind=AlertKind.TECHNICAL,
            subject=Subject.DEVICE,
            metric=None,
            active=off,
            severity=np.where(off, _WARNING, _NONE),
            value=off_for,
            known=known,
            time=off_since,
            device=state.device_indices,
            describe=off_describe,
        ),
    )


def battery_low(state: RuleState, now: float) -> RuleResult:
    del now  # a battery level is valid until the next one
    warning, urgent = state.battery_latches.latched
    highest = np.where(urgent, _URGENT, np.where(warning, _WARNING, _NONE))
    active = highest >= 0
    level = state.battery.copy()
    kinds = state.device_kind

    def describe(rows: IntArray) -> list[str]:
        return [
            f"{_KIND_NAMES[kind]} battery {percent:.0f} %"
            for kind, percent in zip(_at(kinds, rows), _at(level, rows), strict=True)
        ]

    return RuleResult(
        rule="battery_low",
        kind=AlertKind.TECHNICAL,
        subject=Subject.DEVICE,
        metric=Metric.BATTERY_LEVEL,
        active=active,
        severity=highest,
        value=level,
        known=~np.isnan(level),
        time=state.battery_time.copy(),
        device=state.device_indices,
        describe=describe,
    )


# --- events -----------------------------------------------------------------------------


def _event_describe(rule: str, when: FloatArray, arrived: FloatArray) -> Describe:
    what = "fall detected" if rule == "fall" else "help button pressed"

    def describe(rows: IntArray) -> list[str]:
        texts = []
        for at, came in zip(_at(when, rows), _at(arrived, rows), strict=True):
            text = f"{what} at {_clock(at)}"
            if came - at >= 60:
                text += f", received {format_duration(came - at)} late"
            texts.append(text)
        return texts

    return describe


def events(state: RuleState, now: float) -> tuple[RuleResult, RuleResult]:
    """``fall`` and ``help``: critical for ``hold`` after the event reached us."""
    hold = state.config.events.hold.total_seconds()
    results = []
    for rule, metric, times, arrivals, devices in (
        ("fall", Metric.FALL, state.fall_time, state.fall_arrival, state.fall_device),
        ("help", Metric.HELP_BUTTON, state.help_time, state.help_arrival, state.help_device),
    ):
        when = times.copy()
        arrived = arrivals.copy()
        active = now - np.fmax(when, arrived) <= hold
        results.append(
            RuleResult(
                rule=rule,
                kind=AlertKind.CLINICAL,
                subject=Subject.RESIDENT,
                metric=metric,
                active=active,
                severity=np.where(active, _CRITICAL, _NONE),
                value=np.where(active, 1.0, np.nan),
                known=state.all_residents,
                time=when,
                device=devices.copy(),
                describe=_event_describe(rule, when, arrived),
            )
        )
    return results[0], results[1]


def no_activity_after_fall(state: RuleState, now: float) -> RuleResult:
    config = state.config.events
    fell = state.fall_time.copy()
    elapsed = now - fell
    watching = (elapsed >= config.no_activity_after.total_seconds()) & (
        elapsed <= config.no_activity_hold.total_seconds()
    )
    count = state.after_fall_count.copy()
    spread = state.after_fall_max - state.after_fall_min
    still = (count == 0) | (spread < config.activity_rise)
    known = watching & state.has_wearable
    active = known & still
    value = np.where(count > 0, spread, np.nan)
    rise = config.activity_rise

    def describe(rows: IntArray) -> list[str]:
        texts = []
        for since, n, span in zip(
            _at(elapsed, rows), _at(count, rows), _at(value, rows), strict=True
        ):
            after = f"no activity {format_duration(since)} after the fall"
            if n == 0:
                texts.append(f"{after}: the wearable has sent no heart rate")
            else:
                texts.append(
                    f"{after}: heart_rate within {span:.0f} /min (activity would raise it {rise:g})"
                )
        return texts

    return RuleResult(
        rule="no_activity_after_fall",
        kind=AlertKind.CLINICAL,
        subject=Subject.RESIDENT,
        metric=Metric.HEART_RATE,
        active=active,
        severity=np.where(active, _CRITICAL, _NONE),
        value=value,
        known=known,
        time=fell,
        device=state.last_device[METRIC_INDEX[Metric.HEART_RATE]].copy(),
        describe=describe,
    )


def evaluate(state: RuleState, now: float) -> list[RuleResult]:
    """Every rule, in a fixed order: the same state and ``now`` give the same results."""
    gateways = gateway_offline(state, now)
    silent, off = device_presence(state, now, gateways)
    fall, help_ = events(state, now)
    return [
        fall,
        help_,
        no_activity_after_fall(state, now),
        news2(state, now),
        *thresholds(state, now),
        *weight_gain(state, now),
        temperature_rise(state, now),
        night_hr_rising(state, now),
        gateways,
        silent,
        off,
        battery_low(state, now),
    ]
