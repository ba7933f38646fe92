"""Alert quality: does the alert engine catch what happens to simulated residents, and how
often does it cry wolf? (issue 6)

    .venv/bin/python -m bench.alert_quality [--days N] [--seed S] [--quick] [--jobs J]

The pure simulator (:class:`firmware_sim.Simulation`, no BLE, no waiting: simulated time only)
drives a cohort of generated care homes. What every device emits is decoded as the gateway
decodes it (``vitals.gatt.decode`` on the payload bytes, then ``vitals.observations``), made
into wire :class:`vitals.wire.Reading`\\s (validated) and ingested by one
:class:`cloud.alerts.AlertEngine` with the default :class:`cloud.alerts.EngineConfig`, which is
evaluated after every step. The conditions it raises are then matched against the
simulator's ground truth (:class:`firmware_sim.TruthEvent`).

**Cohort.** Resident profiles are the twelve of ``seeds/oak-house.toml`` (baselines, sleep,
activity, a COPD resident on oxygen, a diabetic one). Every resident wears the full kit: a
wearable, a continuous pulse oximeter, a thermometer, a BP cuff, a scale, a pendant, and a
glucose meter when their profile follows glucose (device settings such as drop rates come
from the seed where it has that device).

* *Scenario residents*: ``--rounds`` rounds (default 4) of one resident for each scenario
  kind the simulator has (fever, sepsis, hypoxaemia, bradycardia, tachycardia,
  hf_weight_gain, fall, help_button, battery_death, out_of_range, sensor_removed), each in a
  home of their own with its own seed. Profiles rotate through the twelve from round to
  round; a scenario starts after a two-hour warm-up, at a time of day drawn from the seed
  (so night and day both occur), with the scenario's default parameters; device scenarios
  act on the wearable in even rounds and on the oximeter in odd ones. A scenario resident
  is simulated until 30 minutes after their scenario is over (4.5 days for weight gain),
  at most ``--days``.
* *Controls*: ``--controls`` homes (default 5) of the twelve residents with no scenario at
  all, for ``--days`` (default 7): 60 resident-weeks.

**Time.** Every home starts at :data:`START` (a winter Monday: Europe/London is on UTC for
the whole run). The simulation advances in steps of ``--step`` simulated seconds (default
10 s). Spot measurements, pendant events and battery notifications come at their own exact
times whatever the step; continuous devices (wearable, oximeter) notify once per step, as the
simulator's runtime does when it runs accelerated (one notification per tick), so their 1 Hz
streams are sampled every 10 s: 6 readings a minute, enough for the rules' "5 readings over
60 s". After each step the engine ingests that step's readings (a gateway status heartbeat
is applied every 60 s) and is **evaluated every 10 simulated seconds**. RR intervals are not
turned into readings: no rule reads them, and at 1 Hz they would be most of the volume.

**Matching**, precisely:

* Every engine rule stands for one :class:`firmware_sim.Expected` alert
  (:data:`RULE_EXPECTED`; ``weight_gain_*`` is WEIGHT_GAIN, ``temperature_rise`` is
  TEMPERATURE_HIGH, ``no_activity_after_fall`` is FALL). Rules with no counterpart (rr_low,
  temperature_low, sbp_high, glucose_*, night_hr_rising, gateway_offline) never match.
* An *alert* is one episode of one condition key: from the evaluation at which the condition
  became active to the one at which it ended (a change of severity is the same alert; a new
  fall or help event is a new one). Its time is the evaluation time, when staff would hear.
* An alert *matches* a truth event when they concern the same resident; the rule's Expected
  is the event's ``expected`` or one of its ``related``; for a device rule (device_silent,
  sensor_off, battery_low) the alert's device is the event's device; and the alert is active
  at some time in the event's window ``[started, ended + 5 min]`` (to the end of the run for
  an event that does not end). The 5 minutes are the rules' own lag (sustain times, one
  step) after a condition is over.
* An event is *detected* at the first time an alert matching it is active inside its window
  (``max(raised, started)``); its *delay* is that time minus ``detectable`` (negative when
  the engine is ahead of the simulator's criterion, e.g. NEWS2 before the aggregate reaches
  5). It is *on time* when the delay is at most :data:`DETECTION_LIMIT` (5 min). An event
  that never became detectable in the run (no device could show it) is listed and left out
  of the target.
* An alert is *true* when it matches at least one event, else *false*. A false alert is
  *during an artefact* when a labelled motion artefact of the same resident was under way
  within the 2 minutes before it was raised (the longest sustain of a continuous rule).
* Alerts of a home after its simulation ended (its devices fall silent then) are dropped.

**Targets** (issue 6): every detectable event detected on time; fewer than one false
*clinical* alert per control resident-week. Technical alerts per resident-week and alerts
during artefacts are reported beside them; so are the scenario residents' false alerts
outside their events (not part of the target: one resident has one scenario, and the rest
of their time is a control's).

**Baseline.** A second engine gets the same readings: the same rules and limits judged on
single readings (:func:`baseline_config`: no sustain time, no smoothing, no NEWS2
persistence), as a plain limit alarm would. Its detection and false-alert figures are
printed beside the project's, with their ratio.

The script prints a table per scenario, the control figures, every missed or late event and
every false alert (rule, resident, time, message), the comparison with the baseline, then
``TARGETS MET`` or ``TARGETS NOT MET: ...`` (for the project), the wall time and the
machine's cores. It always exits 0: a benchmark reports, it does not assert. Homes are
independent, so ``--jobs`` runs them in several processes (two engines each); the figures do
not depend on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Final

from cloud.alerts import (
    AlertEngine,
    Condition,
    Device,
    EngineConfig,
    Resident,
    Roster,
    RuleResult,
    SpO2Scale,
)
from firmware_sim import (
    Emission,
    Expected,
    ScenarioKind,
    ScenarioSpec,
    Simulation,
    Site,
    TruthEvent,
    derive_seed,
    find_site,
    load_site,
)
from firmware_sim.scenarios import validate_scenario
from firmware_sim.site import ResidentModel
from vitals import gatt
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.observations import Observation, observations
from vitals.wire import (
    EARLIEST,
    MAX_CLOCK_AHEAD,
    AlertKind,
    GatewayState,
    Quality,
    Reading,
    Severity,
    Status,
)

__all__ = [
    "DETECTION_LIMIT",
    "FALSE_LIMIT_PER_WEEK",
    "RULE_EXPECTED",
    "SCENARIO_KINDS",
    "START",
    "Alert",
    "AlertOutcome",
    "Assessment",
    "EventOutcome",
    "Member",
    "Run",
    "Span",
    "assess",
    "baseline_config",
    "build_cohort",
    "comparison",
    "detection",
    "expected_of",
    "main",
    "matches",
    "measured_at",
    "report",
    "simulate",
    "simulate_parallel",
]

START: Final = dt.datetime(2025, 1, 13, tzinfo=dt.UTC)
"""A Monday in January: Europe/London is on UTC and no clock change falls in the run."""
STEP: Final = 10.0
"""Simulated seconds per step; the engine is evaluated after every step."""
STATUS_EVERY: Final = 60.0
"""A gateway's status heartbeat, simulated seconds."""
DETECTION_LIMIT: Final = dt.timedelta(minutes=5)
FALSE_LIMIT_PER_WEEK: Final = 1.0
MEANINGFUL_WEEKS: Final = 50.0
"""Control resident-weeks below which the false-alert rate is only indicative."""
MATCH_GRACE: Final = dt.timedelta(minutes=5)
ARTEFACT_REACH: Final = dt.timedelta(minutes=2)
WARM_UP: Final = dt.timedelta(hours=2)
AFTER: Final = dt.timedelta(minutes=30)
"""How long a scenario resident is simulated after their scenario is over."""
WEEK: Final = dt.timedelta(days=7)

SCENARIO_KINDS: Final = tuple(kind for kind in ScenarioKind if kind is not ScenarioKind.ARTEFACT)
"""Every kind of scenario the simulator has."""

_LENGTH: Final[Mapping[ScenarioKind, dt.timedelta]] = {
    # how long each scenario lasts with its default parameters (firmware_sim.scenarios)
    ScenarioKind.FEVER: dt.timedelta(hours=11),  # rise 1 h, 8 h, fall 2 h
    ScenarioKind.SEPSIS: dt.timedelta(hours=8),  # 6 h of deterioration, then sustained
    ScenarioKind.HYPOXAEMIA: dt.timedelta(minutes=45),
    ScenarioKind.BRADYCARDIA: dt.timedelta(minutes=34),
    ScenarioKind.TACHYCARDIA: dt.timedelta(minutes=23),
    ScenarioKind.HF_WEIGHT_GAIN: dt.timedelta(days=4, hours=12),  # 4 days, daily weighing
    ScenarioKind.FALL: dt.timedelta(minutes=30),
    ScenarioKind.HELP_BUTTON: dt.timedelta(0),
    ScenarioKind.BATTERY_DEATH: dt.timedelta(minutes=30),  # 20 min drain, then silent
    ScenarioKind.OUT_OF_RANGE: dt.timedelta(minutes=10),
    ScenarioKind.SENSOR_REMOVED: dt.timedelta(minutes=15),
}
_DEVICE_SCENARIOS: Final = frozenset(
    {ScenarioKind.BATTERY_DEATH, ScenarioKind.OUT_OF_RANGE, ScenarioKind.SENSOR_REMOVED}
)
_KIT: Final = (
    (DeviceKind.WEARABLE, "hr"),
    (DeviceKind.PULSE_OXIMETER, "spo2"),
    (DeviceKind.THERMOMETER, "temp"),
    (DeviceKind.BP_CUFF, "bp"),
    (DeviceKind.SCALE, "scale"),
    (DeviceKind.GLUCOSE_METER, "glucose"),
    (DeviceKind.PENDANT, "pendant"),
)
_SKIPPED: Final = frozenset({Metric.RR_INTERVAL})
_EVENT_RULES: Final = frozenset({"fall", "help"})

RULE_EXPECTED: Final[Mapping[str, Expected]] = {
    "fall": Expected.FALL,
    "no_activity_after_fall": Expected.FALL,
    "help": Expected.HELP,
    "news2": Expected.NEWS2,
    "hr_high": Expected.HR_HIGH,
    "hr_low": Expected.HR_LOW,
    "spo2_low": Expected.SPO2_LOW,
    "rr_high": Expected.RR_HIGH,
    "sbp_low": Expected.BP_LOW,
    "temperature_high": Expected.TEMPERATURE_HIGH,
    "temperature_rise": Expected.TEMPERATURE_HIGH,
    "device_silent": Expected.DEVICE_SILENT,
    "sensor_off": Expected.NO_CONTACT,
    "battery_low": Expected.BATTERY_LOW,
}
"""The engine's rules and the truth's expected alerts they stand for (weight_gain_* too)."""
DEVICE_RULES: Final = frozenset({"device_silent", "sensor_off", "battery_low"})
"""Rules about one device: they match an event only on the event's device."""


def expected_of(rule: str) -> Expected | None:
    """The expected alert an engine rule stands for; None for a rule without one."""
    if rule.startswith("weight_gain"):
        return Expected.WEIGHT_GAIN
    return RULE_EXPECTED.get(rule)


# --- the cohort -------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Member:
    """One simulated home of the cohort."""

    name: str
    """The site's id; its gateway is ``<name>-gw``."""
    site: Site
    seed: int
    end: dt.timedelta
    """How long after :data:`START` it is simulated."""
    scenarios: tuple[ScenarioSpec, ...] = ()

    @property
    def control(self) -> bool:
        return not self.scenarios

    @property
    def gateway(self) -> str:
        return f"{self.name}-gw"

    @property
    def residents(self) -> tuple[str, ...]:
        return tuple(resident.id for resident in self.site.residents)

    @property
    def resident_weeks(self) -> float:
        return len(self.site.residents) * (self.end / WEEK)


def _resident(template: ResidentModel, rid: str, rng: random.Random) -> dict[str, Any]:
    """A resident with ``template``'s profile and the full kit of devices."""
    data = template.model_dump(exclude={"id", "name", "devices"})
    own = {device.kind: device for device in template.devices}
    devices: list[dict[str, Any]] = []
    for kind, suffix in _KIT:
        if kind is DeviceKind.GLUCOSE_METER and template.glucose is None:
            continue
        base = own.get(kind)
        if base is not None:
            entry = base.model_dump(exclude={"id", "name"}, exclude_none=True)
        else:
            entry = {"kind": kind, "battery": round(rng.uniform(30.0, 100.0), 1)}
        devices.append({**entry, "id": f"{rid}-{suffix}"})
    return {**data, "id": rid, "devices": devices}


def _site(name: str, residents: Sequence[dict[str, Any]], template: Site) -> Site:
    return Site.model_validate(
        {
            "id": name,
            "name": name,
            "timezone": template.timezone,
            "schedules": template.schedules,
            "residents": list(residents),
        }
    )


def build_cohort(
    *,
    days: float,
    seed: int,
    rounds: int = 4,
    controls: int = 5,
    kinds: Sequence[ScenarioKind] = SCENARIO_KINDS,
    template: Site | None = None,
) -> tuple[Member, ...]:
    """The homes to simulate (see the module docstring): ``rounds`` x ``kinds`` scenario
    residents, each alone in a home, then ``controls`` homes of every ``template`` resident
    (Oak House by default) without scenarios."""
    template = template if template is not None else load_site(find_site("oak-house"))
    profiles = template.residents
    total = dt.timedelta(days=days)
    members: list[Member] = []
    for round_ in range(rounds):
        for index, kind in enumerate(kinds):
            name = f"s{round_ + 1}-{kind.value}"
            rng = random.Random(derive_seed(seed, "cohort", name))
            profile = profiles[(index + 5 * round_ + 3) % len(profiles)]
            site = _site(name, [_resident(profile, name, rng)], template)
            length = _LENGTH[kind]
            room = (total - WARM_UP - length - AFTER).total_seconds()
            spread = min(86_400.0, max(0.0, room))
            start = WARM_UP + dt.timedelta(seconds=round(rng.uniform(0.0, spread)))
            spec: dict[str, Any] = {"kind": kind.value, "resident": name, "start": start}
            if kind in _DEVICE_SCENARIOS:
                spec["device"] = f"{name}-hr" if round_ % 2 == 0 else f"{name}-spo2"
            members.append(
                Member(
                    name=name,
                    site=site,
                    seed=derive_seed(seed, "scenario", name),
                    end=min(total, start + length + AFTER),
                    scenarios=(validate_scenario(spec),),
                )
            )
    for number in range(1, controls + 1):
        name = f"c{number}"
        rng = random.Random(derive_seed(seed, "cohort", name))
        residents = [_resident(p, f"{name}-{p.id}", rng) for p in profiles]
        members.append(
            Member(
                name=name,
                site=_site(name, residents, template),
                seed=derive_seed(seed, "control", name),
                end=total,
            )
        )
    return tuple(members)


# --- running it -------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Alert:
    """One episode of one engine condition."""

    key: str
    rule: str
    kind: AlertKind
    severity: Severity
    """The highest it reached."""
    resident: str | None
    device: str | None
    gateway: str | None
    raised: dt.datetime
    """The evaluation at which it became active."""
    ended: dt.datetime | None
    """The evaluation at which it ended; None if still active when its home's run ended."""
    message: str
    """The engine's message when raised (ids and values)."""

    def active_between(self, begin: dt.datetime, end: dt.datetime | None) -> bool:
        """Whether it is active at some time in ``[begin, end]`` (``end`` None: ever after)."""
        return (end is None or self.raised <= end) and (self.ended is None or self.ended >= begin)


@dataclass(slots=True)
class _Open:
    condition: Condition
    raised: dt.datetime
    severity: Severity

    def close(self, ended: dt.datetime | None) -> Alert:
        c = self.condition
        return Alert(
            key=c.key,
            rule=c.rule,
            kind=c.kind,
            severity=self.severity,
            resident=c.resident,
            device=c.device,
            gateway=c.gateway,
            raised=self.raised,
            ended=ended,
            message=c.message,
        )


class _Episodes:
    """Turns the engine's edges into :class:`Alert` episodes; drops what comes after the
    end of the owning home's run."""

    __slots__ = ("_ends", "_open", "done")

    def __init__(self, ends: Mapping[str, float]) -> None:
        self._ends = ends
        """Resident or gateway id -> simulated Unix time its home's run ends."""
        self._open: dict[str, _Open] = {}
        self.done: list[Alert] = []

    def update(self, changes: Iterable[Condition], now: dt.datetime) -> None:
        now_s = now.timestamp()
        for condition in changes:
            owner = condition.resident if condition.resident is not None else condition.gateway
            if owner is None or self._ends.get(owner, math.inf) < now_s:
                continue
            current = self._open.get(condition.key)
            if not condition.active:
                if current is not None:
                    self.done.append(current.close(now))
                    del self._open[condition.key]
            elif current is None:
                self._open[condition.key] = _Open(condition, now, condition.severity)
            elif condition.rule in _EVENT_RULES and condition.time != current.condition.time:
                self.done.append(current.close(now))
                self._open[condition.key] = _Open(condition, now, condition.severity)
            elif condition.severity.rank > current.severity.rank:
                current.severity = condition.severity

    def finish(self) -> list[Alert]:
        found = self.done + [episode.close(None) for episode in self._open.values()]
        self._open.clear()
        return sorted(found, key=lambda alert: (alert.raised, alert.key))


@dataclass(slots=True)
class _Counts:
    emissions: int = 0
    decode_errors: int = 0
    refused: int = 0
    readings: int = 0


def measured_at(
    observation: Observation, received: dt.datetime, zone: dt.tzinfo
) -> tuple[dt.datetime, tuple[Quality, ...]]:
    """The measurement time of an observation and its flags, as the gateway makes them: the
    device's naive local time read in the site's zone (the reading nearer to ``received``
    when a clock change makes it ambiguous) if it is plausible, else the receive time."""
    flags = observation.flags
    local = observation.device_time
    if local is None:
        return received, flags
    moment = min(
        (local.replace(tzinfo=zone, fold=fold).astimezone(dt.UTC) for fold in (0, 1)),
        key=lambda candidate: abs(candidate - received),
    )
    if EARLIEST <= moment <= received + MAX_CLOCK_AHEAD:
        return moment, flags
    return received, tuple(flag for flag in flags if flag is not Quality.DEVICE_TIME)


class _Feed:
    """One home's gateway, reduced to its pure part: payload bytes to wire readings."""

    __slots__ = ("counts", "gateway", "seq", "zone")

    def __init__(self, gateway: str, zone: dt.tzinfo, counts: _Counts) -> None:
        self.gateway = gateway
        self.zone = zone
        self.seq = 0
        self.counts = counts

    def readings(self, emissions: Sequence[Emission]) -> list[Reading]:
        counts = self.counts
        counts.emissions += len(emissions)
        out: list[Reading] = []
        for emission in emissions:
            try:
                measurement = gatt.decode(emission.characteristic, emission.payload)
            except gatt.DecodeError:
                counts.decode_errors += 1
                continue
            received = dt.datetime.fromtimestamp(emission.time, dt.UTC)
            for observation in observations(measurement):
                metric = observation.metric
                if metric in _SKIPPED:
                    continue
                if not metric.in_range(observation.value):
                    counts.refused += 1
                    continue
                moment, flags = measured_at(observation, received, self.zone)
                out.append(
                    Reading(
                        gateway=self.gateway,
                        device=emission.device,
                        user=observation.user,
                        metric=metric,
                        value=observation.value,
                        unit=metric.unit,
                        time=moment,
                        received=received,
                        seq=self.seq,
                        flags=flags,
                    )
                )
                self.seq += 1
        counts.readings += len(out)
        return out


@dataclass(slots=True, frozen=True)
class Span:
    """What one home contributed to a run."""

    name: str
    control: bool
    residents: tuple[str, ...]
    gateway: str
    end: dt.datetime
    resident_weeks: float


@dataclass(slots=True, frozen=True)
class Run:
    """Everything a run produced: the engine's alerts and the simulator's truth."""

    alerts: tuple[Alert, ...]
    events: tuple[TruthEvent, ...]
    spans: tuple[Span, ...]
    step: float
    baseline: tuple[Alert, ...] = ()
    """The baseline engine's alerts, if it ran."""
    emissions: int = 0
    readings: int = 0
    decode_errors: int = 0
    refused: int = 0

    def of_baseline(self) -> Run:
        """The same run with the baseline's alerts as its alerts."""
        return replace(self, alerts=self.baseline, baseline=())

    @staticmethod
    def merge(runs: Sequence[Run]) -> Run:
        def alerts(of: Iterable[Alert]) -> tuple[Alert, ...]:
            return tuple(sorted(of, key=lambda alert: (alert.raised, alert.key)))

        return Run(
            alerts=alerts(alert for run in runs for alert in run.alerts),
            baseline=alerts(alert for run in runs for alert in run.baseline),
            events=tuple(event for run in runs for event in run.events),
            spans=tuple(span for run in runs for span in run.spans),
            step=runs[0].step if runs else STEP,
            emissions=sum(run.emissions for run in runs),
            readings=sum(run.readings for run in runs),
            decode_errors=sum(run.decode_errors for run in runs),
            refused=sum(run.refused for run in runs),
        )


def _roster(members: Sequence[Member], start: dt.datetime) -> Roster:
    residents: list[Resident] = []
    devices: list[Device] = []
    for member in members:
        offset = start.astimezone(member.site.zone).utcoffset() or dt.timedelta(0)
        for resident in member.site.residents:
            residents.append(
                Resident(
                    resident.id,
                    spo2_scale=SpO2Scale.SCALE_2 if resident.copd else SpO2Scale.SCALE_1,
                    on_oxygen=resident.on_oxygen,
                    utc_offset=offset,
                )
            )
            devices.extend(
                Device(device.id, device.kind, member.gateway, resident.id)
                for device in resident.devices
            )
    return Roster(tuple(residents), tuple(devices), tuple(member.gateway for member in members))


def baseline_config() -> EngineConfig:
    """The baseline: the same rules and limits judged on single readings, as a bedside
    monitor's plain limit alarm does: no sustain time, no smoothing, no persistence (the
    hysteresis between trigger and clear levels stays)."""
    project = EngineConfig()
    return replace(
        project,
        thresholds=tuple(
            replace(
                rule,
                sustain=dt.timedelta(0),
                min_readings=1,
                clear_sustain=dt.timedelta(0),
                clear_readings=1,
            )
            for rule in project.thresholds
        ),
        news2=replace(project.news2, persistence=dt.timedelta(0)),
        smoothing=replace(project.smoothing, samples=1),
    )


def simulate(
    members: Sequence[Member],
    *,
    start: dt.datetime = START,
    step: float = STEP,
    config: EngineConfig | None = None,
    baseline: EngineConfig | None = None,
) -> Run:
    """Simulate ``members`` side by side in steps of ``step`` simulated seconds, feeding one
    engine with ``config`` (the default one when None) and evaluating it after every step;
    the alerts it raised and the truth. With ``baseline``, a second engine with that config
    gets the same readings; its alerts are in :attr:`Run.baseline`."""
    if not members:
        return Run((), (), (), step)
    simulations = [
        Simulation(member.site, seed=member.seed, start=start, scenarios=member.scenarios)
        for member in members
    ]
    roster = _roster(members, start)
    engines = [AlertEngine(roster, config, start=start)]
    if baseline is not None:
        engines.append(AlertEngine(roster, baseline, start=start))
    counts = _Counts()
    feeds = [_Feed(member.gateway, member.site.zone, counts) for member in members]
    origin = start.timestamp()
    ends = [origin + member.end.total_seconds() for member in members]
    owners: dict[str, float] = {}
    for member, end in zip(members, ends, strict=True):
        owners[member.gateway] = end
        owners.update(dict.fromkeys(member.residents, end))
    episodes = [_Episodes(owners) for _ in engines]
    last = max(ends)
    status_every = max(1, round(STATUS_EVERY / step))
    previous: list[list[RuleResult] | None] = [None for _ in engines]
    tick = 0
    while (t := origin + (tick + 1) * step) <= last + 1e-9:
        tick += 1
        now = dt.datetime.fromtimestamp(t, dt.UTC)
        readings: list[Reading] = []
        for simulation, feed, end in zip(simulations, feeds, ends, strict=True):
            if t <= end + 1e-9:
                readings.extend(feed.readings(simulation.advance_all(t)))
        statuses = []
        if tick % status_every == 0:
            statuses = [
                Status(
                    site=member.name, gateway=member.gateway, state=GatewayState.ONLINE, time=now
                )
                for member, end in zip(members, ends, strict=True)
                if t <= end + 1e-9
            ]
        for index, engine in enumerate(engines):
            if readings:
                engine.ingest(readings)
            for status in statuses:
                engine.apply_status(status, arrived=now)
            current = engine.evaluate_arrays(now)
            episodes[index].update(engine.changes(previous[index], current), now)
            previous[index] = current
    events = tuple(event for simulation in simulations for event in simulation.truth_events())
    spans = tuple(
        Span(
            name=member.name,
            control=member.control,
            residents=member.residents,
            gateway=member.gateway,
            end=start + member.end,
            resident_weeks=member.resident_weeks,
        )
        for member in members
    )
    return Run(
        alerts=tuple(episodes[0].finish()),
        baseline=tuple(episodes[1].finish()) if baseline is not None else (),
        events=events,
        spans=spans,
        step=step,
        emissions=counts.emissions,
        readings=counts.readings,
        decode_errors=counts.decode_errors,
        refused=counts.refused,
    )


def _simulate_shard(members: Sequence[Member], step: float) -> Run:
    return simulate(members, step=step, baseline=baseline_config())


def simulate_parallel(members: Sequence[Member], *, step: float, jobs: int) -> Run:
    """:func:`simulate` with the default engine and the :func:`baseline_config` one, the
    homes shared among ``jobs`` processes (two engines each): homes are independent, so the
    alerts are the same as in one process."""
    if jobs <= 1 or len(members) <= 1:
        return _simulate_shard(members, step)
    shards: list[list[Member]] = [[] for _ in range(min(jobs, len(members)))]
    loads = [0.0] * len(shards)
    for member in sorted(members, key=lambda m: -m.resident_weeks):
        lightest = loads.index(min(loads))
        shards[lightest].append(member)
        loads[lightest] += member.resident_weeks
    with ProcessPoolExecutor(max_workers=len(shards)) as pool:
        runs = list(pool.map(_simulate_shard, shards, [step] * len(shards)))
    return Run.merge(runs)


# --- matching ---------------------------------------------------------------------------


def _window_end(event: TruthEvent, grace: dt.timedelta) -> dt.datetime | None:
    return None if event.ended is None else event.ended + grace


def matches(alert: Alert, event: TruthEvent, *, grace: dt.timedelta = MATCH_GRACE) -> bool:
    """Whether ``alert`` is right for ``event`` (see the module docstring)."""
    if event.expected is None or alert.resident != event.resident:
        return False
    wanted = expected_of(alert.rule)
    if wanted is None or (wanted is not event.expected and wanted not in event.related):
        return False
    if alert.rule in DEVICE_RULES and event.device is not None and alert.device != event.device:
        return False
    return alert.active_between(event.started, _window_end(event, grace))


def detection(
    event: TruthEvent, alerts: Iterable[Alert], *, grace: dt.timedelta = MATCH_GRACE
) -> tuple[dt.datetime, Alert] | None:
    """When ``event`` was first detected and by which alert; None if never."""
    best: tuple[dt.datetime, Alert] | None = None
    for alert in alerts:
        if matches(alert, event, grace=grace):
            at = max(alert.raised, event.started)
            if best is None or at < best[0]:
                best = (at, alert)
    return best


@dataclass(slots=True, frozen=True)
class EventOutcome:
    event: TruthEvent
    detected: dt.datetime | None
    by: Alert | None

    @property
    def delay(self) -> dt.timedelta | None:
        if self.detected is None or self.event.detectable is None:
            return None
        return self.detected - self.event.detectable

    @property
    def on_time(self) -> bool:
        delay = self.delay
        return delay is not None and delay <= DETECTION_LIMIT


@dataclass(slots=True, frozen=True)
class AlertOutcome:
    alert: Alert
    true: bool
    artefact: bool
    """A false alert raised during, or within 2 minutes after, an artefact of its resident."""
    control: bool
    """The alert concerns a control resident (or a control home's gateway)."""


@dataclass(slots=True, frozen=True)
class Assessment:
    events: tuple[EventOutcome, ...]
    """Every non-artefact truth event."""
    alerts: tuple[AlertOutcome, ...]
    control_weeks: float
    scenario_weeks: float
    artefacts: int
    """Labelled artefacts on control residents."""

    @property
    def missed(self) -> tuple[EventOutcome, ...]:
        """Detectable events not detected on time."""
        return tuple(o for o in self.events if o.event.detectable is not None and not o.on_time)

    def false_alerts(self, *, control: bool, kind: AlertKind) -> tuple[AlertOutcome, ...]:
        return tuple(
            o for o in self.alerts if not o.true and o.control is control and o.alert.kind is kind
        )

    def rate(self, *, control: bool, kind: AlertKind) -> float:
        weeks = self.control_weeks if control else self.scenario_weeks
        count = len(self.false_alerts(control=control, kind=kind))
        return count / weeks if weeks > 0 else math.nan

    @property
    def targets(self) -> list[str]:
        """What is not met (empty: every target is met)."""
        problems = []
        if self.missed:
            problems.append(
                f"{len(self.missed)} of {sum(1 for o in self.events if o.event.detectable)} "
                f"detectable events not detected within {_duration(DETECTION_LIMIT)}"
            )
        rate = self.rate(control=True, kind=AlertKind.CLINICAL)
        if not rate < FALSE_LIMIT_PER_WEEK:
            problems.append(
                f"{rate:.2f} false clinical alerts per control resident-week "
                f"(target < {FALSE_LIMIT_PER_WEEK:g})"
            )
        return problems


def assess(run: Run, *, grace: dt.timedelta = MATCH_GRACE) -> Assessment:
    """Match a run's alerts with its truth (see the module docstring)."""
    control: dict[str, bool] = {}
    for span in run.spans:
        control[span.gateway] = span.control
        control.update(dict.fromkeys(span.residents, span.control))
    by_resident: dict[str, list[Alert]] = {}
    for alert in run.alerts:
        if alert.resident is not None:
            by_resident.setdefault(alert.resident, []).append(alert)
    events = [event for event in run.events if event.expected is not None]
    artefacts: dict[str, list[TruthEvent]] = {}
    for event in run.events:
        if event.kind is ScenarioKind.ARTEFACT:
            artefacts.setdefault(event.resident, []).append(event)
    event_outcomes = []
    events_of: dict[str, list[TruthEvent]] = {}
    for event in events:
        events_of.setdefault(event.resident, []).append(event)
        found = detection(event, by_resident.get(event.resident, ()), grace=grace)
        event_outcomes.append(
            EventOutcome(event, None, None) if found is None else EventOutcome(event, *found)
        )
    alert_outcomes = []
    for alert in run.alerts:
        resident = alert.resident
        true = resident is not None and any(
            matches(alert, event, grace=grace) for event in events_of.get(resident, ())
        )
        during = (
            not true
            and resident is not None
            and any(
                artefact.started <= alert.raised
                and alert.raised - ARTEFACT_REACH <= (artefact.ended or artefact.started)
                for artefact in artefacts.get(resident, ())
            )
        )
        owner = resident if resident is not None else alert.gateway
        alert_outcomes.append(AlertOutcome(alert, true, during, control.get(owner or "", False)))
    control_residents = {r for span in run.spans if span.control for r in span.residents}
    return Assessment(
        events=tuple(event_outcomes),
        alerts=tuple(alert_outcomes),
        control_weeks=sum(span.resident_weeks for span in run.spans if span.control),
        scenario_weeks=sum(span.resident_weeks for span in run.spans if not span.control),
        artefacts=sum(len(artefacts.get(r, ())) for r in control_residents),
    )


# --- the report -------------------------------------------------------------------------


def _duration(value: dt.timedelta) -> str:
    seconds = value.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{sign}{minutes} min {rest:02d} s" if rest else f"{sign}{minutes} min"
    if seconds < 2 * 86_400:
        return f"{sign}{seconds / 3600:.1f} h"
    return f"{sign}{seconds / 86_400:.1f} d"


def _clock(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def report(assessment: Assessment, run: Run) -> list[str]:
    """The printed report, line by line (everything but the wall time)."""
    lines: list[str] = []
    head = (
        f"{'scenario':16s}{'expected':18s}{'events':>7s}{'detectable':>11s}{'detected':>9s}"
        f"{'on time':>8s}{'rate':>6s}  {'delay median':>12s}{'max':>12s}  first rule"
    )
    lines += [f"per scenario: detection within {_duration(DETECTION_LIMIT)} of detectable", head]
    groups: dict[tuple[ScenarioKind, Expected], list[EventOutcome]] = {}
    for outcome in assessment.events:
        event = outcome.event
        assert event.expected is not None
        groups.setdefault((event.kind, event.expected), []).append(outcome)
    order: dict[ScenarioKind, int] = {kind: i for i, kind in enumerate(SCENARIO_KINDS)}
    for (kind, expected), outcomes in sorted(groups.items(), key=lambda i: order[i[0][0]]):
        detectable = [o for o in outcomes if o.event.detectable is not None]
        detected = [o for o in detectable if o.detected is not None]
        on_time = [o for o in detectable if o.on_time]
        delays = [o.delay for o in detected if o.delay is not None]
        median = (
            _duration(dt.timedelta(seconds=statistics.median(d.total_seconds() for d in delays)))
            if delays
            else "-"
        )
        worst = _duration(max(delays)) if delays else "-"
        rules: dict[str, int] = {}
        for o in detected:
            if o.by is not None:
                rules[o.by.rule] = rules.get(o.by.rule, 0) + 1
        first = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items(), key=lambda i: -i[1]))
        lines.append(
            f"{kind.value:16s}{expected.value:18s}{len(outcomes):7d}{len(detectable):11d}"
            f"{len(detected):9d}{len(on_time):8d}{_percent(len(on_time), len(detectable)):>6s}"
            f"  {median:>12s}{worst:>12s}  {first}"
        )
    total = [o for o in assessment.events if o.event.detectable is not None]
    on_time_total = sum(1 for o in total if o.on_time)
    lines.append(
        f"{'all':34s}{len(assessment.events):7d}{len(total):11d}"
        f"{sum(1 for o in total if o.detected is not None):9d}{on_time_total:8d}"
        f"{_percent(on_time_total, len(total)):>6s}"
    )

    weeks = assessment.control_weeks
    clinical = assessment.false_alerts(control=True, kind=AlertKind.CLINICAL)
    technical = assessment.false_alerts(control=True, kind=AlertKind.TECHNICAL)
    during = [o for o in assessment.alerts if o.control and not o.true and o.artefact]
    controls = sum(len(span.residents) for span in run.spans if span.control)
    lines += [
        "",
        f"controls: {controls} residents without scenarios, {weeks:.1f} resident-weeks",
        f"  false clinical alerts  {len(clinical):5d}  "
        f"{assessment.rate(control=True, kind=AlertKind.CLINICAL):6.2f} per resident-week "
        f"(target < {FALSE_LIMIT_PER_WEEK:g}){_by_rule(clinical)}",
        f"  technical alerts       {len(technical):5d}  "
        f"{assessment.rate(control=True, kind=AlertKind.TECHNICAL):6.2f} per resident-week"
        f"{_by_rule(technical)}",
        f"  alerts during labelled artefacts {len(during)} (artefacts labelled: "
        f"{assessment.artefacts}, {assessment.artefacts / weeks if weeks else 0:.0f} per "
        "resident-week)",
    ]
    if weeks < MEANINGFUL_WEEKS:
        lines.append(
            f"  (fewer than {MEANINGFUL_WEEKS:g} resident-weeks: the rate is only indicative)"
        )
    s_clinical = assessment.false_alerts(control=False, kind=AlertKind.CLINICAL)
    s_technical = assessment.false_alerts(control=False, kind=AlertKind.TECHNICAL)
    lines.append(
        f"scenario residents outside their events ({assessment.scenario_weeks:.1f} "
        f"resident-weeks): {len(s_clinical)} false clinical{_by_rule(s_clinical)}, "
        f"{len(s_technical)} technical{_by_rule(s_technical)}"
    )

    never = [o for o in assessment.events if o.event.detectable is None]
    if never:
        lines += ["", "events never detectable in the run (left out of the target):"]
        lines += [f"  {_event(o.event)}" for o in never]
    lines += ["", f"missed or late events ({len(assessment.missed)}):"]
    for missed in assessment.missed:
        if missed.detected is None or missed.by is None:
            what = "not detected"
        else:
            late = _duration(missed.delay or dt.timedelta(0))
            what = f"detected {late} after it became detectable, by {missed.by.rule}"
        when = _clock(missed.event.detectable) if missed.event.detectable else "-"
        lines.append(f"  {_event(missed.event)} detectable {when}: {what}")
    false = [o for o in assessment.alerts if not o.true]
    lines += ["", f"false alerts ({len(false)}; * = during an artefact):"]
    for wrong in false:
        alert = wrong.alert
        who = alert.resident or alert.gateway or "-"
        group = "control" if wrong.control else "scenario"
        lasted = "" if alert.ended is None else f" for {_duration(alert.ended - alert.raised)}"
        lines.append(
            f"  {'*' if wrong.artefact else ' '}{_clock(alert.raised)} {group:8s} {who:22s} "
            f"{alert.kind.value:9s} {alert.rule}{lasted}: {alert.message}"
        )
    return lines


def comparison(project: Assessment, baseline: Assessment) -> list[str]:
    """The project's figures beside the baseline's (:func:`baseline_config`), with ratios."""

    def on_time(assessment: Assessment) -> str:
        detectable = [o for o in assessment.events if o.event.detectable is not None]
        return f"{sum(1 for o in detectable if o.on_time)}/{len(detectable)}"

    def artefacts(assessment: Assessment) -> float:
        return sum(1 for o in assessment.alerts if o.control and not o.true and o.artefact)

    def ratio(mine: float, theirs: float) -> str:
        if mine > 0:
            return f"{theirs / mine:.1f}x"
        return "-" if theirs == 0 else "none in the project"

    rows = [
        (
            "false clinical alerts per control resident-week",
            project.rate(control=True, kind=AlertKind.CLINICAL),
            baseline.rate(control=True, kind=AlertKind.CLINICAL),
            2,
        ),
        (
            "technical alerts per control resident-week",
            project.rate(control=True, kind=AlertKind.TECHNICAL),
            baseline.rate(control=True, kind=AlertKind.TECHNICAL),
            2,
        ),
        ("control alerts during labelled artefacts", artefacts(project), artefacts(baseline), 0),
    ]
    lines = [
        "project beside the baseline (the same rules and limits on single readings: no "
        "sustain, smoothing or persistence)",
        f"  {'':50s}{'project':>10s}{'baseline':>10s}  baseline / project",
        f"  {'detectable events detected on time':50s}{on_time(project):>10s}"
        f"{on_time(baseline):>10s}",
    ]
    lines += [
        f"  {label:50s}{mine:10.{digits}f}{theirs:10.{digits}f}  {ratio(mine, theirs)}"
        for label, mine, theirs, digits in rows
    ]
    return lines


def _by_rule(outcomes: Sequence[AlertOutcome]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.alert.rule] = counts.get(outcome.alert.rule, 0) + 1
    if not counts:
        return ""
    return " (" + ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items())) + ")"


def _event(event: TruthEvent) -> str:
    device = f"/{event.device}" if event.device else ""
    expected = event.expected.value if event.expected else "-"
    return f"{event.resident}{device} {event.kind.value} ({expected}) from {_clock(event.started)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0, help="simulated days (default 7)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4, help="residents per scenario kind")
    parser.add_argument("--controls", type=int, default=5, help="control homes of 12 residents")
    parser.add_argument("--step", type=float, default=STEP, help="simulated seconds per step")
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    parser.add_argument("--jobs", type=int, default=usable, help="processes (default: cores)")
    parser.add_argument("--quick", action="store_true", help="2 days, 2 rounds, 1 control home")
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.rounds, args.controls = 2.0, 2, 1
    if not (args.days > 0 and 1 <= args.step <= 60 and args.rounds >= 0 and args.controls >= 0):
        parser.error("--days must be positive, --step 1-60 s, --rounds and --controls >= 0")

    began = time.perf_counter()
    members = build_cohort(
        days=args.days, seed=args.seed, rounds=args.rounds, controls=args.controls
    )
    run = simulate_parallel(members, step=args.step, jobs=args.jobs)
    assessment = assess(run)
    baseline = assess(run.of_baseline())
    wall = time.perf_counter() - began
    scenario_residents = sum(len(m.residents) for m in members if not m.control)
    print("alert quality: firmware_sim -> vitals.gatt -> Reading -> AlertEngine, in simulated time")
    print(
        f"cohort: {scenario_residents} scenario residents ({args.rounds} x "
        f"{len(SCENARIO_KINDS)} kinds), {assessment.control_weeks:.1f} control resident-weeks "
        f"({args.controls} homes of 12 for {args.days:g} d); step {args.step:g} s, engine "
        f"evaluated every {args.step:g} s; seed {args.seed}"
    )
    print(
        f"simulated: {run.emissions:,} emissions, {run.readings:,} readings ingested, "
        f"{run.decode_errors} undecodable payloads, {run.refused} values out of range, "
        f"{len(run.alerts):,} alerts"
    )
    print()
    for line in report(assessment, run):
        print(line)
    print()
    for line in comparison(assessment, baseline):
        print(line)
    print()
    problems = assessment.targets
    print("TARGETS MET" if not problems else "TARGETS NOT MET: " + "; ".join(problems))
    print(
        f"wall time {wall:.0f} s with {min(args.jobs, len(members))} processes; cores: {cores} "
        f"on the machine, {usable} usable"
    )
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
