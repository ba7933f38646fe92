"""Scripted scenarios and their ground truth.

A scenario perturbs one resident (or one of their devices) from a start time. It is described
as data: a pydantic model with a ``kind`` discriminator and parameters with defaults
(:data:`ScenarioSpec`), written in a site file or on the command line as
``kind:resident[/device]@start[,param=value...]`` (:func:`parse_scenario_arg`), e.g.
``fever:r03@10m``, ``battery_death:r05/r05-hr@2h`` or ``hypoxaemia:r05@1m,spo2=85``.

``start`` is an offset from the simulation start (``30s``, ``10m``, ``2h``, ``1d``, ``1h30m``;
negative for a scenario already under way) or an ISO 8601 time (naive means the site's local
time). Durations are written the same way (or as a number of seconds).

:func:`compile_scenario` turns a spec into a :class:`Scenario`: a :class:`Perturbation` of the
resident's physiology (fever, sepsis, hypoxaemia, bradycardia, tachycardia, hf_weight_gain,
fall), a :class:`DeviceEffect` (battery_death, out_of_range, sensor_removed), a pendant event
(fall, help_button), extra spot measurements (a carer checking the temperature of a feverish
resident), and the criteria that say when the condition first shows in what the devices emit.

:class:`TruthRecorder` watches every emission and produces :class:`TruthEvent`\\s: what a good
alert engine should raise (``expected``), when the scenario started, when it became
*detectable* (the time of the first emitted reading that shows it, e.g. the first temperature
>= 38.1 degC) and when it ended. Motion artefacts the firmware injects are labelled too (kind
``artefact``, nothing expected), so false-alert analysis can tell them apart. A resident with
no scenario never gets a truth event other than ``artefact``.

Criteria, per kind (thresholds are parameters):

=============== ============================================================================
fever           a body temperature reading >= 38.1 degC
sepsis          the NEWS2 aggregate of the emitted readings (RR, SpO2 on the resident's
                scale, oxygen, temperature, systolic BP, HR or pulse rate) >= 5, where RR,
                SpO2 and HR count at the least abnormal of their readings over the last
                15 minutes (``persistence``; they must cover 12 of them) and temperature
                and BP as last measured; consciousness is not measured by any device, so
                it does not count
hypoxaemia      an SpO2 reading <= 91 % (scale 1) or <= 85 % (scale 2, COPD)
bradycardia     heart rate or pulse rate < 50 bpm sustained for 60 s on one device
tachycardia     heart rate or pulse rate > 130 bpm sustained for 60 s on one device
hf_weight_gain  a weight reading >= the weight at the start (without the scenario) + 2 kg
fall, help      the pendant's fall / help event is received
battery_death   battery_low: a battery level notification <= 20 %; device_silent: when the
                device stops (continuous devices) or misses its first scheduled measurement
out_of_range    device_silent: at the start (continuous devices) or the first measurement
                due in the window (spot devices)
sensor_removed  no_contact: the first reading that says the sensor is off the skin
=============== ============================================================================

Readings flagged no-contact or questionable, artefacts and malformed payloads never satisfy a
clinical criterion.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from firmware_sim.noise import smoothstep
from firmware_sim.physiology import Consciousness, Profile, VitalSigns
from vitals.devices import DeviceKind
from vitals.gatt import (
    BatteryLevel,
    HeartRateMeasurement,
    Measurement,
    PendantEventType,
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxSpotCheckMeasurement,
    RespiratoryRate,
)
from vitals.metrics import Metric
from vitals.observations import Observation, observations
from vitals.wire import Id, Quality

__all__ = [
    "BatteryDeathSpec",
    "BradycardiaSpec",
    "Criterion",
    "DeviceEffect",
    "Duration",
    "Effect",
    "Expected",
    "FallSpec",
    "FeverSpec",
    "HelpButtonSpec",
    "HfWeightGainSpec",
    "HypoxaemiaSpec",
    "NonNegativeDuration",
    "OutOfRangeSpec",
    "Scenario",
    "ScenarioError",
    "ScenarioKind",
    "ScenarioSpec",
    "SensorRemovedSpec",
    "SepsisSpec",
    "SimulatorError",
    "SpotCheck",
    "Start",
    "TachycardiaSpec",
    "TruthEvent",
    "TruthRecorder",
    "compile_scenario",
    "describe_validation_error",
    "format_duration",
    "news2_score",
    "parse_duration",
    "parse_scenario_arg",
    "resolve_start",
    "scenario_device",
    "validate_scenario",
]


class SimulatorError(Exception):
    """Root of every error ``firmware_sim`` raises (here because scenarios are the lowest
    layer that raises; import it from ``firmware_sim``)."""


class ScenarioError(SimulatorError, ValueError):
    """A scenario that cannot be understood or applied; the message says which and why."""


class ScenarioKind(StrEnum):
    FEVER = "fever"
    SEPSIS = "sepsis"
    HYPOXAEMIA = "hypoxaemia"
    BRADYCARDIA = "bradycardia"
    TACHYCARDIA = "tachycardia"
    HF_WEIGHT_GAIN = "hf_weight_gain"
    FALL = "fall"
    HELP_BUTTON = "help_button"
    BATTERY_DEATH = "battery_death"
    OUT_OF_RANGE = "out_of_range"
    SENSOR_REMOVED = "sensor_removed"
    ARTEFACT = "artefact"
    """Not a scenario one asks for: the label of a motion artefact the firmware injected."""


class Expected(StrEnum):
    """The alert a good alert engine should raise for a truth event."""

    TEMPERATURE_HIGH = "temperature_high"
    NEWS2 = "news2"
    SPO2_LOW = "spo2_low"
    HR_LOW = "hr_low"
    HR_HIGH = "hr_high"
    RR_HIGH = "rr_high"
    BP_LOW = "bp_low"
    WEIGHT_GAIN = "weight_gain"
    FALL = "fall"
    HELP = "help"
    DEVICE_SILENT = "device_silent"
    NO_CONTACT = "no_contact"
    BATTERY_LOW = "battery_low"


# --- durations and start times ----------------------------------------------------------

_UNITS: Final = {"d": 86_400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION: Final = re.compile(r"(-)?((?:\d+(?:\.\d+)?[dhms])+)")
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_DURATION_HELP: Final = "a duration like 30s, 10m, 2h, 1d or 1h30m"


def parse_duration(text: str) -> dt.timedelta:
    """``"1h30m"`` -> 90 minutes; ``"-1d"`` is allowed. Raises :class:`ScenarioError`."""
    compact = text.strip().replace(" ", "").lower()
    match = _DURATION.fullmatch(compact)
    if match is None:
        raise ScenarioError(f"{text!r} is not {_DURATION_HELP}")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(match[2]))
    return dt.timedelta(seconds=-seconds if match[1] else seconds)


def format_duration(value: dt.timedelta) -> str:
    """The shortest :func:`parse_duration` text for ``value`` (``"1h30m"``, ``"-1d"``)."""
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit, size in _UNITS.items():
        count = math.floor(total / size + 1e-9) if unit != "s" else total
        if count >= 1 or (unit == "s" and count > 0):
            text = f"{count:g}" if unit == "s" else str(count)
            parts.append(f"{text}{unit}")
            total -= count * size
    return sign + ("".join(parts) or "0s")


def _duration_input(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ScenarioError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, bool):
        raise ValueError(f"expected {_DURATION_HELP}")
    if isinstance(value, int | float):
        return dt.timedelta(seconds=value)
    return value


def _positive(value: dt.timedelta) -> dt.timedelta:
    if value <= dt.timedelta(0):
        raise ValueError(f"must be longer than zero, not {format_duration(value)}")
    return value


def _not_negative(value: dt.timedelta) -> dt.timedelta:
    if value < dt.timedelta(0):
        raise ValueError(f"must not be negative, not {format_duration(value)}")
    return value


Duration: TypeAlias = Annotated[
    dt.timedelta, BeforeValidator(_duration_input), AfterValidator(_positive)
]
"""A positive duration: ``"10m"``, ``"1h30m"``, or a number of seconds."""
NonNegativeDuration: TypeAlias = Annotated[
    dt.timedelta, BeforeValidator(_duration_input), AfterValidator(_not_negative)
]
"""A duration that may be zero."""


def _start_input(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if _DURATION.fullmatch(text.replace(" ", "").lower()):
            return parse_duration(text)
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither an offset ({_DURATION_HELP}, optionally negative) "
                "nor an ISO 8601 time such as 2025-01-06T09:00:00Z"
            ) from None
    if isinstance(value, bool):
        raise ValueError("expected an offset such as 10m or an ISO 8601 time")
    if isinstance(value, int | float):
        return dt.timedelta(seconds=value)
    if isinstance(value, dt.time | dt.date) and not isinstance(value, dt.datetime):
        raise ValueError("a start needs a date and a time (or an offset such as 10m)")
    return value


Start: TypeAlias = Annotated[dt.timedelta | dt.datetime, BeforeValidator(_start_input)]
"""An offset from the simulation start, or an absolute time (naive: the site's local time)."""


def resolve_start(start: dt.timedelta | dt.datetime, sim_start: float, zone: dt.tzinfo) -> float:
    """The Unix time a :data:`Start` stands for in a simulation that starts at ``sim_start``."""
    if isinstance(start, dt.timedelta):
        return sim_start + start.total_seconds()
    if start.tzinfo is None:
        start = start.replace(tzinfo=zone)
    return start.timestamp()


def _format_start(start: dt.timedelta | dt.datetime) -> str:
    return format_duration(start) if isinstance(start, dt.timedelta) else start.isoformat()


# --- specs ------------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    resident: Id
    """The resident the scenario happens to."""
    start: Start
    device: Id | None = None
    """The device concerned (device scenarios); by default the resident's most fitting one."""
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    """A label for the truth events; by default the scenario's command-line form."""

    @property
    def scenario_kind(self) -> ScenarioKind:
        return ScenarioKind(self.kind)

    def describe(self) -> str:
        """The command-line form: ``kind:resident[/device]@start`` (parameters left out)."""
        target = self.resident if self.device is None else f"{self.resident}/{self.device}"
        return f"{self.scenario_kind.value}:{target}@{_format_start(self.start)}"


class FeverSpec(_Spec):
    """Temperature rises to ``peak`` over ``rise``, stays ``duration``, falls over ``fall``;
    heart rate +10 bpm and respiratory rate +2/min per degC of fever."""

    kind: Literal["fever"] = "fever"
    peak: Annotated[float, Field(ge=37.6, le=42.0)] = 39.0
    """degC, at the resident's mean time of day."""
    rise: Duration = dt.timedelta(hours=1)
    duration: Duration = dt.timedelta(hours=8)
    fall: Duration = dt.timedelta(hours=2)
    heart_rate_per_degree: Annotated[float, Field(ge=0, le=30)] = 10.0
    respiratory_rate_per_degree: Annotated[float, Field(ge=0, le=10)] = 2.0
    checks: Duration | None = dt.timedelta(minutes=30)
    """Extra thermometer readings this often during the fever (a carer checking)."""
    threshold: Annotated[float, Field(ge=37.0, le=40.0)] = 38.1


class SepsisSpec(_Spec):
    """Gradual deterioration over ``duration``, then sustained: heart rate, respiratory rate
    and temperature up, systolic pressure and SpO2 down, activity down, new confusion late."""

    kind: Literal["sepsis"] = "sepsis"
    duration: Duration = dt.timedelta(hours=6)
    heart_rate: Annotated[float, Field(ge=60, le=180)] = 115.0
    respiratory_rate: Annotated[float, Field(ge=10, le=45)] = 26.0
    temperature: Annotated[float, Field(ge=35.0, le=41.5)] = 38.8
    systolic: Annotated[float, Field(ge=60, le=200)] = 95.0
    spo2: Annotated[float, Field(ge=70, le=100)] | None = None
    """Target SpO2; by default 92 % (scale 1) or 5 % below baseline (scale 2)."""
    confusion_at: Annotated[float, Field(ge=0, le=1)] = 0.8
    """Fraction of ``duration`` after which the resident is newly confused (ACVPU C)."""
    checks: Duration | None = dt.timedelta(hours=1)
    """Extra thermometer, blood pressure and SpO2 spot readings this often."""
    threshold: Annotated[int, Field(ge=1, le=20)] = 5
    """NEWS2 aggregate that makes the deterioration detectable."""
    persistence: NonNegativeDuration = dt.timedelta(minutes=15)
    """For the NEWS2 criterion, respiration rate, SpO2 and heart (pulse) rate count at the least
    abnormal of their readings over this long, and only once readings cover three quarters of
    its minutes; temperature and blood pressure count as last measured. A deterioration shows
    when it lasts: walking raises an elderly resident's respiration by 3-6 /min and pulse by
    15-30 /min for minutes, and on the latest readings alone a resident without any scenario
    (COPD on oxygen, 2 points at rest) reached NEWS2 5 some 20 times a day. 0: the latest
    reading of each."""


class HypoxaemiaSpec(_Spec):
    """SpO2 falls to ``spo2`` over ``onset``, stays ``duration``, recovers over ``recovery``;
    respiratory rate and heart rate rise."""

    kind: Literal["hypoxaemia"] = "hypoxaemia"
    spo2: Annotated[float, Field(ge=60, le=95)] | None = None
    """Target SpO2 %; by default 86 (scale 1) or 82 (scale 2)."""
    onset: Duration = dt.timedelta(minutes=5)
    duration: Duration = dt.timedelta(minutes=30)
    recovery: Duration = dt.timedelta(minutes=10)
    respiratory_rate_rise: Annotated[float, Field(ge=0, le=20)] = 4.0
    heart_rate_rise: Annotated[float, Field(ge=0, le=40)] = 10.0
    checks: Duration | None = None
    """Extra oximeter spot-checks this often (for residents without a continuous one)."""
    threshold: Annotated[float, Field(ge=70, le=96)] | None = None
    """SpO2 at or below which it is detectable; by default 91 (scale 1) or 85 (scale 2)."""


class BradycardiaSpec(_Spec):
    kind: Literal["bradycardia"] = "bradycardia"
    heart_rate: Annotated[float, Field(ge=25, le=55)] = 40.0
    onset: Duration = dt.timedelta(minutes=2)
    duration: Duration = dt.timedelta(minutes=30)
    recovery: Duration = dt.timedelta(minutes=2)
    threshold: Annotated[float, Field(ge=30, le=60)] = 50.0
    """Detectable when the rate stays below this for ``sustain``."""
    sustain: Duration = dt.timedelta(seconds=60)


class TachycardiaSpec(_Spec):
    kind: Literal["tachycardia"] = "tachycardia"
    heart_rate: Annotated[float, Field(ge=100, le=220)] = 140.0
    onset: Duration = dt.timedelta(minutes=1)
    duration: Duration = dt.timedelta(minutes=20)
    recovery: Duration = dt.timedelta(minutes=2)
    threshold: Annotated[float, Field(ge=90, le=200)] = 130.0
    """Detectable when the rate stays above this for ``sustain``."""
    sustain: Duration = dt.timedelta(seconds=60)


class HfWeightGainSpec(_Spec):
    """Fluid retention in heart failure: weight rises ``rate`` kg a day for ``days`` days
    and stays there."""

    kind: Literal["hf_weight_gain"] = "hf_weight_gain"
    rate: Annotated[float, Field(gt=0, le=3)] = 0.8
    """kg per day."""
    days: Annotated[float, Field(gt=0, le=30)] = 4.0
    threshold: Annotated[float, Field(gt=0, le=10)] = 2.0
    """kg above the weight at the start that makes it detectable."""


class FallSpec(_Spec):
    """The pendant reports a fall at the start; the resident then lies still (no activity,
    awake, heart rate a little up from the shock) for ``duration``."""

    kind: Literal["fall"] = "fall"
    duration: Duration = dt.timedelta(minutes=30)
    heart_rate_rise: Annotated[float, Field(ge=0, le=40)] = 8.0


class HelpButtonSpec(_Spec):
    """The resident presses the pendant's help button at the start."""

    kind: Literal["help_button"] = "help_button"


class BatteryDeathSpec(_Spec):
    """From the start the device's battery drains from its level to 0 within ``drain`` and
    is not recharged; at 0 the device is dead."""

    kind: Literal["battery_death"] = "battery_death"
    drain: Duration = dt.timedelta(minutes=20)
    low: Annotated[int, Field(ge=1, le=99)] = 20
    """Battery percentage at or below which battery_low is detectable."""


class OutOfRangeSpec(_Spec):
    """The device is out of the gateway's radio range for ``duration``."""

    kind: Literal["out_of_range"] = "out_of_range"
    duration: Duration = dt.timedelta(minutes=10)


class SensorRemovedSpec(_Spec):
    """A wearable or oximeter loses skin contact for ``duration``."""

    kind: Literal["sensor_removed"] = "sensor_removed"
    duration: Duration = dt.timedelta(minutes=15)


ScenarioSpec: TypeAlias = Annotated[
    FeverSpec
    | SepsisSpec
    | HypoxaemiaSpec
    | BradycardiaSpec
    | TachycardiaSpec
    | HfWeightGainSpec
    | FallSpec
    | HelpButtonSpec
    | BatteryDeathSpec
    | OutOfRangeSpec
    | SensorRemovedSpec,
    Field(discriminator="kind"),
]
"""Any scenario, told apart by ``kind``."""

_SPEC_ADAPTER: Final[TypeAdapter[ScenarioSpec]] = TypeAdapter(ScenarioSpec)
_REQUESTABLE: Final = tuple(
    kind.value for kind in ScenarioKind if kind is not ScenarioKind.ARTEFACT
)
_ARG_HELP: Final = "kind:resident[/device]@start[,param=value...], e.g. fever:r03@10m"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> tuple[str, ...]:
    """One ``where: what`` line per pydantic error."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        where = f"{prefix}.{where}" if prefix and where else (where or prefix or "value")
        lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return tuple(lines)


def parse_scenario_arg(text: str) -> ScenarioSpec:
    """Parse a command-line scenario: ``kind:resident[/device]@start[,param=value...]``.

    ``fever:r03@10m``, ``sensor_removed:r02/r02-spo2@1h,duration=5m``,
    ``fever:r03@2025-01-06T09:00:00Z``. Raises :class:`ScenarioError` naming the problem.
    """
    head, _, rest = text.strip().partition(",")
    kind, colon, target_start = head.partition(":")
    target, at, start = target_start.rpartition("@")
    if not colon or not at or not kind or not target or not start:
        raise ScenarioError(f"scenario {text!r} must look like {_ARG_HELP}")
    kind = kind.strip().lower()
    if kind not in _REQUESTABLE:
        raise ScenarioError(
            f"scenario {text!r}: unknown kind {kind!r} (known: {', '.join(_REQUESTABLE)})"
        )
    resident, slash, device = target.strip().partition("/")
    data: dict[str, Any] = {"kind": kind, "resident": resident, "start": start.strip()}
    if slash:
        data["device"] = device
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ScenarioError(f"scenario {text!r}: parameter {item!r} must be param=value")
        if key in data:
            raise ScenarioError(f"scenario {text!r}: {key} is given twice")
        data[key] = value.strip()
    try:
        return _SPEC_ADAPTER.validate_python(data)
    except ValidationError as exc:
        lines = describe_validation_error(exc)
        # The discriminated union puts the kind first in every location: drop it.
        lines = tuple(line.removeprefix(f"{kind}.") for line in lines)
        raise ScenarioError(f"scenario {text!r}: {'; '.join(lines)}") from None


def validate_scenario(data: Any) -> ScenarioSpec:
    """Validate one scenario given as a mapping (as in a site file)."""
    return _SPEC_ADAPTER.validate_python(data)


# --- perturbations ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Envelope:
    """0 before ``start``, smooth rise to 1 over ``onset``, 1 for ``hold``, smooth fall to 0
    over ``recovery``."""

    start: float
    onset: float
    hold: float
    recovery: float

    @property
    def end(self) -> float:
        return self.start + self.onset + self.hold + self.recovery

    def __call__(self, t: float) -> float:
        x = t - self.start
        if x <= 0.0 or t >= self.end:
            return 0.0
        if x < self.onset:
            return smoothstep(x / self.onset)
        x -= self.onset
        if x < self.hold:
            return 1.0
        return 1.0 - smoothstep((x - self.hold) / self.recovery)


@dataclass(slots=True, frozen=True)
class _Unchanged:
    def behaviour(self, t: float, activity: float, asleep: bool) -> tuple[float, bool]:
        return activity, asleep


@dataclass(slots=True, frozen=True)
class FeverEffect(_Unchanged):
    envelope: _Envelope
    degrees: float
    heart_rate_per_degree: float
    respiratory_rate_per_degree: float

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        rise = self.degrees * self.envelope(t)
        if rise == 0.0:
            return vitals
        return replace(
            vitals,
            temperature=vitals.temperature + rise,
            heart_rate=vitals.heart_rate + self.heart_rate_per_degree * rise,
            respiratory_rate=vitals.respiratory_rate + self.respiratory_rate_per_degree * rise,
        )


@dataclass(slots=True, frozen=True)
class SepsisEffect:
    start: float
    duration: float
    profile: Profile
    heart_rate: float
    respiratory_rate: float
    temperature: float
    systolic: float
    spo2: float
    confusion_at: float

    def _progress(self, t: float) -> float:
        return smoothstep((t - self.start) / self.duration)

    def behaviour(self, t: float, activity: float, asleep: bool) -> tuple[float, bool]:
        return activity * (1.0 - 0.8 * self._progress(t)), asleep

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        p = self._progress(t)
        if p == 0.0:
            return vitals
        base = self.profile
        confused = (t - self.start) / self.duration >= self.confusion_at
        return replace(
            vitals,
            heart_rate=vitals.heart_rate + p * (self.heart_rate - base.heart_rate),
            respiratory_rate=vitals.respiratory_rate
            + p * (self.respiratory_rate - base.respiratory_rate),
            temperature=vitals.temperature + p * (self.temperature - base.temperature),
            systolic=vitals.systolic + p * (self.systolic - base.systolic),
            diastolic=vitals.diastolic + 0.5 * p * (self.systolic - base.systolic),
            spo2=vitals.spo2 + p * (self.spo2 - base.spo2),
            consciousness=Consciousness.CONFUSION if confused else vitals.consciousness,
        )


@dataclass(slots=True, frozen=True)
class HypoxaemiaEffect(_Unchanged):
    envelope: _Envelope
    drop: float
    respiratory_rate_rise: float
    heart_rate_rise: float

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        e = self.envelope(t)
        if e == 0.0:
            return vitals
        return replace(
            vitals,
            spo2=vitals.spo2 - e * self.drop,
            respiratory_rate=vitals.respiratory_rate + e * self.respiratory_rate_rise,
            heart_rate=vitals.heart_rate + e * self.heart_rate_rise,
        )


@dataclass(slots=True, frozen=True)
class HeartRateEffect(_Unchanged):
    """Pulls the heart rate to ``target``, keeping a quarter of its usual variation."""

    envelope: _Envelope
    target: float
    baseline: float

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        e = self.envelope(t)
        if e == 0.0:
            return vitals
        held = self.target + 0.25 * (vitals.heart_rate - self.baseline)
        return replace(vitals, heart_rate=(1.0 - e) * vitals.heart_rate + e * held)


@dataclass(slots=True, frozen=True)
class WeightGainEffect(_Unchanged):
    start: float
    rate_per_day: float
    days: float

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        elapsed = min(max(0.0, t - self.start) / 86_400.0, self.days)
        if elapsed == 0.0:
            return vitals
        return replace(vitals, weight=vitals.weight + self.rate_per_day * elapsed)


@dataclass(slots=True, frozen=True)
class FallEffect:
    start: float
    duration: float
    heart_rate_rise: float

    def behaviour(self, t: float, activity: float, asleep: bool) -> tuple[float, bool]:
        if self.start <= t < self.start + self.duration:
            return 0.0, False
        return activity, asleep

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        x = t - self.start
        if not 0.0 <= x < self.duration:
            return vitals
        return replace(
            vitals, heart_rate=vitals.heart_rate + self.heart_rate_rise * (1.0 - x / self.duration)
        )


Effect: TypeAlias = (
    FeverEffect | SepsisEffect | HypoxaemiaEffect | HeartRateEffect | WeightGainEffect | FallEffect
)
"""A scenario's change to a resident's physiology (each is a ``physiology.Perturbation``)."""

# --- compiled scenarios -----------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class DeviceEffect:
    """What a device scenario does to one device."""

    kind: ScenarioKind
    """BATTERY_DEATH, OUT_OF_RANGE or SENSOR_REMOVED."""
    device: str
    start: float
    end: float | None
    """OUT_OF_RANGE and SENSOR_REMOVED end; a dead battery does not."""
    drain: float = 0.0
    """BATTERY_DEATH: seconds from the start until the battery is empty."""


@dataclass(slots=True, frozen=True)
class SpotCheck:
    """An extra spot measurement a scenario asks for (a carer checks the resident)."""

    kind: DeviceKind
    time: float


@dataclass(slots=True, frozen=True)
class Criterion:
    """When a scenario becomes detectable, evaluated by :class:`TruthRecorder`.

    ``test`` is one of:

    * ``"below"`` / ``"above"`` / ``"at_most"`` / ``"at_least"``: an observation of one of
      ``metrics`` compares so with ``value`` (for ``sustain`` seconds on one device);
    * ``"news2"``: the NEWS2 aggregate of the latest readings is at least ``value``;
    * ``"event"``: an observation of one of ``metrics`` (a pendant event);
    * ``"no_contact"``: a reading of ``device`` says the sensor is off the skin;
    * ``"battery"``: a battery notification of ``device`` at most ``value`` percent;
    * ``"silent"``: ``device`` stops emitting (the firmware knows when).
    """

    expected: Expected
    test: Literal[
        "below", "above", "at_most", "at_least", "news2", "event", "no_contact", "battery", "silent"
    ]
    metrics: frozenset[Metric] = frozenset()
    value: float = 0.0
    sustain: float = 0.0
    device: str | None = None
    related: tuple[Expected, ...] = ()


@dataclass(slots=True, frozen=True)
class Scenario:
    """A scenario ready to run: times are simulated Unix seconds."""

    name: str
    kind: ScenarioKind
    resident: str
    device: str | None
    start: float
    end: float | None
    """When the condition is over (None: it lasts)."""
    spec: ScenarioSpec
    perturbation: Effect | None = None
    device_effect: DeviceEffect | None = None
    pendant_event: PendantEventType | None = None
    """An event the resident's pendant sends at ``start``."""
    checks: tuple[SpotCheck, ...] = ()
    criteria: tuple[Criterion, ...] = ()


_CONTACT_KINDS: Final = (DeviceKind.WEARABLE, DeviceKind.PULSE_OXIMETER)
_BATTERY_KINDS: Final = (DeviceKind.WEARABLE, DeviceKind.PULSE_OXIMETER, DeviceKind.PENDANT)


def scenario_device(spec: ScenarioSpec, devices: Mapping[str, DeviceKind]) -> str | None:
    """The device a scenario acts on among the resident's ``devices`` (id -> kind, in the
    site's order): the spec's own, or the most fitting one. Raises :class:`ScenarioError`."""
    kind = spec.scenario_kind
    if spec.device is not None:
        if spec.device not in devices:
            raise ScenarioError(
                f"device {spec.device!r} is not one of the devices of resident "
                f"{spec.resident!r} ({', '.join(devices) or 'none'})"
            )
        if kind is ScenarioKind.SENSOR_REMOVED and devices[spec.device] not in _CONTACT_KINDS:
            raise ScenarioError(
                f"sensor_removed needs a wearable or pulse oximeter, and {spec.device!r} is a "
                f"{devices[spec.device].value}"
            )
        if kind in (ScenarioKind.FALL, ScenarioKind.HELP_BUTTON) and (
            devices[spec.device] is not DeviceKind.PENDANT
        ):
            raise ScenarioError(f"{kind.value} is reported by a pendant, not {spec.device!r}")
        return spec.device

    def first(*kinds: DeviceKind) -> str | None:
        for wanted in kinds:
            for device, device_kind in devices.items():
                if device_kind is wanted:
                    return device
        return None

    match kind:
        case ScenarioKind.FALL:
            return first(DeviceKind.PENDANT)
        case ScenarioKind.HELP_BUTTON:
            pendant = first(DeviceKind.PENDANT)
            if pendant is None:
                raise ScenarioError(f"help_button needs a pendant, and {spec.resident!r} has none")
            return pendant
        case ScenarioKind.SENSOR_REMOVED:
            found = first(*_CONTACT_KINDS)
            if found is None:
                raise ScenarioError(
                    f"sensor_removed needs a wearable or pulse oximeter, and {spec.resident!r} "
                    "has neither"
                )
            return found
        case ScenarioKind.BATTERY_DEATH | ScenarioKind.OUT_OF_RANGE:
            found = first(*_BATTERY_KINDS) or next(iter(devices), None)
            if found is None:
                raise ScenarioError(f"{kind.value} needs a device, and {spec.resident!r} has none")
            return found
    return None


def _checks(kinds: Iterable[DeviceKind], start: float, end: float, every: float) -> list[SpotCheck]:
    count = max(1, math.floor((end - start) / every) + 1)
    return [SpotCheck(kind, start + i * every) for i in range(count) for kind in kinds]


def compile_scenario(
    spec: ScenarioSpec,
    *,
    sim_start: float,
    zone: dt.tzinfo,
    profile: Profile,
    devices: Mapping[str, DeviceKind],
    baseline_weight: Callable[[float], float],
    name: str | None = None,
) -> Scenario:
    """Make a runnable :class:`Scenario` for the resident with ``profile`` and ``devices``
    (their devices, id -> kind); ``baseline_weight(t)`` is the resident's weight without
    scenarios (the reference for weight gain). Raises :class:`ScenarioError`."""
    start = resolve_start(spec.start, sim_start, zone)
    device = scenario_device(spec, devices)
    label = name or spec.name or spec.describe()
    scenario = Scenario(label, spec.scenario_kind, spec.resident, device, start, None, spec)
    scale2 = profile.spo2_scale == 2
    match spec:
        case FeverSpec():
            envelope = _Envelope(
                start,
                spec.rise.total_seconds(),
                spec.duration.total_seconds(),
                spec.fall.total_seconds(),
            )
            checks = (
                _checks([DeviceKind.THERMOMETER], start, envelope.end, spec.checks.total_seconds())
                if spec.checks
                else []
            )
            return replace(
                scenario,
                end=envelope.end,
                perturbation=FeverEffect(
                    envelope,
                    max(0.0, spec.peak - profile.temperature),
                    spec.heart_rate_per_degree,
                    spec.respiratory_rate_per_degree,
                ),
                checks=tuple(checks),
                criteria=(
                    Criterion(
                        Expected.TEMPERATURE_HIGH,
                        "at_least",
                        frozenset({Metric.BODY_TEMPERATURE}),
                        spec.threshold,
                        related=(Expected.HR_HIGH, Expected.RR_HIGH, Expected.NEWS2),
                    ),
                ),
            )
        case SepsisSpec():
            duration = spec.duration.total_seconds()
            target_spo2 = (
                spec.spo2 if spec.spo2 is not None else (profile.spo2 - 5.0 if scale2 else 92.0)
            )
            checks = (
                _checks(
                    [DeviceKind.THERMOMETER, DeviceKind.BP_CUFF, DeviceKind.PULSE_OXIMETER],
                    start,
                    start + 1.5 * duration,
                    spec.checks.total_seconds(),
                )
                if spec.checks
                else []
            )
            return replace(
                scenario,
                perturbation=SepsisEffect(
                    start,
                    duration,
                    profile,
                    spec.heart_rate,
                    spec.respiratory_rate,
                    spec.temperature,
                    spec.systolic,
                    target_spo2,
                    spec.confusion_at,
                ),
                checks=tuple(checks),
                criteria=(
                    Criterion(
                        Expected.NEWS2,
                        "news2",
                        value=spec.threshold,
                        sustain=spec.persistence.total_seconds(),
                        related=(
                            Expected.TEMPERATURE_HIGH,
                            Expected.HR_HIGH,
                            Expected.RR_HIGH,
                            Expected.SPO2_LOW,
                            Expected.BP_LOW,
                        ),
                    ),
                ),
            )
        case HypoxaemiaSpec():
            target = spec.spo2 if spec.spo2 is not None else (82.0 if scale2 else 86.0)
            threshold = spec.threshold if spec.threshold is not None else (85 if scale2 else 91)
            envelope = _Envelope(
                start,
                spec.onset.total_seconds(),
                spec.duration.total_seconds(),
                spec.recovery.total_seconds(),
            )
            checks = (
                _checks(
                    [DeviceKind.PULSE_OXIMETER], start, envelope.end, spec.checks.total_seconds()
                )
                if spec.checks
                else []
            )
            return replace(
                scenario,
                end=envelope.end,
                perturbation=HypoxaemiaEffect(
                    envelope,
                    max(0.0, profile.spo2 - target),
                    spec.respiratory_rate_rise,
                    spec.heart_rate_rise,
                ),
                checks=tuple(checks),
                criteria=(
                    Criterion(
                        Expected.SPO2_LOW,
                        "at_most",
                        frozenset({Metric.SPO2}),
                        threshold,
                        related=(Expected.NEWS2, Expected.RR_HIGH, Expected.HR_HIGH),
                    ),
                ),
            )
        case BradycardiaSpec() | TachycardiaSpec():
            envelope = _Envelope(
                start,
                spec.onset.total_seconds(),
                spec.duration.total_seconds(),
                spec.recovery.total_seconds(),
            )
            low = isinstance(spec, BradycardiaSpec)
            return replace(
                scenario,
                end=envelope.end,
                perturbation=HeartRateEffect(envelope, spec.heart_rate, profile.heart_rate),
                criteria=(
                    Criterion(
                        Expected.HR_LOW if low else Expected.HR_HIGH,
                        "below" if low else "above",
                        frozenset({Metric.HEART_RATE, Metric.PULSE_RATE}),
                        spec.threshold,
                        sustain=spec.sustain.total_seconds(),
                        related=(Expected.NEWS2,),
                    ),
                ),
            )
        case HfWeightGainSpec():
            return replace(
                scenario,
                perturbation=WeightGainEffect(start, spec.rate, spec.days),
                criteria=(
                    Criterion(
                        Expected.WEIGHT_GAIN,
                        "at_least",
                        frozenset({Metric.BODY_WEIGHT}),
                        baseline_weight(start) + spec.threshold,
                    ),
                ),
            )
        case FallSpec():
            duration = spec.duration.total_seconds()
            return replace(
                scenario,
                end=start + duration,
                perturbation=FallEffect(start, duration, spec.heart_rate_rise),
                pendant_event=PendantEventType.FALL,
                criteria=(Criterion(Expected.FALL, "event", frozenset({Metric.FALL})),),
            )
        case HelpButtonSpec():
            return replace(
                scenario,
                end=start,
                pendant_event=PendantEventType.HELP_BUTTON,
                criteria=(Criterion(Expected.HELP, "event", frozenset({Metric.HELP_BUTTON})),),
            )
        case BatteryDeathSpec():
            assert device is not None
            battery = devices[device] in _BATTERY_KINDS
            criteria = [
                Criterion(
                    Expected.DEVICE_SILENT,
                    "silent",
                    device=device,
                    related=(Expected.BATTERY_LOW,),
                )
            ]
            if battery:
                criteria.insert(
                    0,
                    Criterion(
                        Expected.BATTERY_LOW,
                        "battery",
                        value=spec.low,
                        device=device,
                        related=(Expected.DEVICE_SILENT,),
                    ),
                )
            return replace(
                scenario,
                device_effect=DeviceEffect(
                    ScenarioKind.BATTERY_DEATH,
                    device,
                    start,
                    None,
                    drain=spec.drain.total_seconds(),
                ),
                criteria=tuple(criteria),
            )
        case OutOfRangeSpec():
            assert device is not None
            end = start + spec.duration.total_seconds()
            return replace(
                scenario,
                end=end,
                device_effect=DeviceEffect(ScenarioKind.OUT_OF_RANGE, device, start, end),
                criteria=(Criterion(Expected.DEVICE_SILENT, "silent", device=device),),
            )
        case SensorRemovedSpec():
            assert device is not None
            end = start + spec.duration.total_seconds()
            return replace(
                scenario,
                end=end,
                device_effect=DeviceEffect(ScenarioKind.SENSOR_REMOVED, device, start, end),
                criteria=(
                    Criterion(
                        Expected.NO_CONTACT,
                        "no_contact",
                        device=device,
                        related=(Expected.DEVICE_SILENT,),
                    ),
                ),
            )
    raise ScenarioError(f"unknown scenario {spec!r}")  # pragma: no cover - union is closed


# --- NEWS2 ------------------------------------------------------------------------------


def _band(value: float, bands: Sequence[tuple[float, int]], above: int) -> int:
    for upper, points in bands:
        if value <= upper:
            return points
    return above


def news2_score(
    *,
    respiratory_rate: float | None = None,
    spo2: float | None = None,
    scale: int = 1,
    on_oxygen: bool = False,
    temperature: float | None = None,
    systolic: float | None = None,
    heart_rate: float | None = None,
    consciousness: Consciousness | None = None,
) -> int:
    """The NEWS2 aggregate (Royal College of Physicians, 2017) of the parameters given;
    absent ones count 0. Values are those devices send (whole numbers, temperature to 0.1).
    """
    score = 2 if on_oxygen else 0
    if respiratory_rate is not None:
        score += _band(respiratory_rate, ((8, 3), (11, 1), (20, 0), (24, 2)), 3)
    if spo2 is not None:
        if scale == 2:
            if spo2 <= 92 or not on_oxygen:
                score += _band(spo2, ((83, 3), (85, 2), (87, 1)), 0)
            else:
                score += _band(spo2, ((94, 1), (96, 2)), 3)
        else:
            score += _band(spo2, ((91, 3), (93, 2), (95, 1)), 0)
    if temperature is not None:
        score += _band(temperature, ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)), 2)
    if systolic is not None:
        score += _band(systolic, ((90, 3), (100, 2), (110, 1), (219, 0)), 3)
    if heart_rate is not None:
        score += _band(heart_rate, ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), 3)
    if consciousness is not None and consciousness is not Consciousness.ALERT:
        score += 3
    return score


# --- ground truth -----------------------------------------------------------------------


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


@dataclass(slots=True, frozen=True)
class TruthEvent:
    """One labelled thing that happened, for the alert-quality benchmark."""

    scenario: str
    """The scenario's name (``"artefact"`` for an artefact)."""
    kind: ScenarioKind
    resident: str
    device: str | None
    started: dt.datetime
    """UTC."""
    detectable: dt.datetime | None
    """UTC time of the first emitted reading that shows the condition; None until then (or
    when no device of the resident can show it)."""
    ended: dt.datetime | None
    """UTC; None while it lasts."""
    expected: Expected | None
    """The alert a good engine raises; None for an artefact (no alert is right)."""
    related: tuple[Expected, ...] = ()
    """Other alerts that are right while it lasts (a septic resident's high heart rate)."""

    def active(self, at: dt.datetime) -> bool:
        """Whether the event is under way at ``at`` (from start to end, inclusive)."""
        return self.started <= at and (self.ended is None or at <= self.ended)

    @property
    def key(self) -> str:
        """Stable identity: ``detectable`` of an event fills in later, so a log that writes
        events as they change keeps the last line per key."""
        if self.kind is ScenarioKind.ARTEFACT:
            return f"artefact|{self.device}|{self.started.isoformat()}"
        return f"{self.scenario}|{self.expected}"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (times as ISO 8601 UTC strings)."""

        def iso(value: dt.datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "key": self.key,
            "scenario": self.scenario,
            "kind": self.kind.value,
            "resident": self.resident,
            "device": self.device,
            "started": iso(self.started),
            "detectable": iso(self.detectable),
            "ended": iso(self.ended),
            "expected": None if self.expected is None else self.expected.value,
            "related": [value.value for value in self.related],
        }


_DOUBTFUL: Final = frozenset({Quality.NO_CONTACT, Quality.QUESTIONABLE})
_NO_CONTACT_STATUS: Final = (
    PlxDeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER
    | PlxDeviceSensorStatus.SENSOR_DISPLACED
    | PlxDeviceSensorStatus.SENSOR_DISCONNECTED
)


def _no_contact(value: Measurement) -> bool:
    match value:
        case HeartRateMeasurement() | RespiratoryRate():
            return value.sensor_contact is False
        case PlxContinuousMeasurement() | PlxSpotCheckMeasurement():
            return bool((value.device_sensor_status or 0) & _NO_CONTACT_STATUS)
    return False


@dataclass(slots=True)
class _Tracker:
    """The evaluation state of one criterion of one scenario."""

    scenario: Scenario
    criterion: Criterion
    detectable: float | None = None
    runs: dict[str, float] = field(default_factory=dict)
    """sustained criteria: device -> time the condition started holding."""

    def window(self, t: float) -> bool:
        """Whether a reading at ``t`` can count: from the start to the end, except for
        events and battery notifications, which may arrive late (a pendant out of range
        indicates its event when it is back)."""
        end = self.scenario.end
        if self.criterion.test in ("event", "battery", "silent"):
            end = None
        return self.scenario.start <= t and (end is None or t <= end)

    def event(self) -> TruthEvent:
        scenario = self.scenario
        return TruthEvent(
            scenario=scenario.name,
            kind=scenario.kind,
            resident=scenario.resident,
            device=self.criterion.device or scenario.device,
            started=_utc(scenario.start),
            detectable=None if self.detectable is None else _utc(self.detectable),
            ended=None if scenario.end is None else _utc(scenario.end),
            expected=self.criterion.expected,
            related=self.criterion.related,
        )


_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "below": lambda a, b: a < b,
    "above": lambda a, b: a > b,
    "at_most": lambda a, b: a <= b,
    "at_least": lambda a, b: a >= b,
}


_NEWS2_PARAMETERS: Final = {
    Metric.RESPIRATORY_RATE: "respiratory_rate",
    Metric.SPO2: "spo2",
    Metric.BODY_TEMPERATURE: "temperature",
    Metric.SYSTOLIC_BP: "systolic",
    Metric.HEART_RATE: "heart_rate",
    Metric.PULSE_RATE: "heart_rate",
}


_SUSTAINED: Final = frozenset({"respiratory_rate", "spo2", "heart_rate"})
"""The NEWS2 parameters a wearable or oximeter measures continuously."""
_COVERAGE: Final = 0.75


@dataclass(slots=True)
class _News2State:
    profile: Profile
    persistence: float = 0.0
    """Seconds over which a continuous parameter counts at its least abnormal (0: latest)."""
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)
    """parameter -> (time, value) of the latest good reading."""
    history: dict[str, deque[tuple[float, float, int]]] = field(default_factory=dict)
    """continuous parameter -> (time, value, points) of its good readings in the window."""
    now: float = -math.inf
    """Time of the latest good reading of any parameter."""

    def update(self, t: float, found: Sequence[Observation]) -> bool:
        changed = False
        for observation in found:
            parameter = _NEWS2_PARAMETERS.get(observation.metric)
            if parameter is not None and not _DOUBTFUL.intersection(observation.flags):
                self.latest[parameter] = (t, observation.value)
                self.now = max(self.now, t)
                changed = True
                if self.persistence > 0 and parameter in _SUSTAINED:
                    kept = self.history.setdefault(parameter, deque())
                    kept.append((t, observation.value, self._points(parameter, observation.value)))
                    while kept and kept[0][0] < t - self.persistence:
                        kept.popleft()
        return changed

    def _points(self, parameter: str, value: float) -> int:
        """The NEWS2 points of one continuous parameter alone."""
        if parameter == "respiratory_rate":
            return news2_score(respiratory_rate=value)
        if parameter == "heart_rate":
            return news2_score(heart_rate=value)
        profile = self.profile
        oxygen = news2_score(on_oxygen=profile.on_oxygen)
        return (
            news2_score(spo2=value, scale=profile.spo2_scale, on_oxygen=profile.on_oxygen) - oxygen
        )

    def _value(self, name: str) -> float | None:
        if self.persistence <= 0 or name not in _SUSTAINED:
            found = self.latest.get(name)
            return None if found is None else found[1]
        since = self.now - self.persistence
        window = [item for item in self.history.get(name, ()) if item[0] >= since]
        minutes = {math.floor(time / 60.0) for time, _, _ in window}
        if len(minutes) < math.ceil(_COVERAGE * self.persistence / 60.0 - 1e-9):
            return None
        least = min(points for _, _, points in window)
        return next(value for _, value, points in reversed(window) if points == least)

    def score(self) -> int:
        value = self._value
        return news2_score(
            respiratory_rate=value("respiratory_rate"),
            spo2=value("spo2"),
            scale=self.profile.spo2_scale,
            on_oxygen=self.profile.on_oxygen,
            temperature=value("temperature"),
            systolic=value("systolic"),
            heart_rate=value("heart_rate"),
        )


class TruthRecorder:
    """Turns emissions into ground truth. The firmware reports every emission with
    :meth:`emitted` and every call of its ``advance`` with :meth:`advanced`.

    Devices may be advanced one at a time and out of step with each other: readings are
    evaluated in time order once every device has been advanced past them (the *watermark*,
    the least time any registered device has reached), so ``detectable`` is the same however
    the runtime schedules its devices. A device that is never advanced holds the watermark
    back, so advance every device, dead ones included.
    """

    __slots__ = (
        "_artefacts",
        "_cursors",
        "_news2",
        "_order",
        "_pending",
        "_seq",
        "_silence",
        "_trackers",
        "_watermark",
    )

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        *,
        devices: Iterable[str],
        profiles: Mapping[str, Profile],
        silence: Callable[[str, float], float | None],
    ) -> None:
        """``devices``: every device that will report; ``profiles``: resident -> profile (for
        the NEWS2 scale); ``silence(device, t)``: the first time at or after ``t`` when the
        device fails to send something it would have sent (None if never)."""
        self._trackers: dict[str, list[_Tracker]] = {}
        self._order: list[_Tracker] = []
        self._news2: dict[str, dict[float, _News2State]] = {}
        """resident -> persistence -> the NEWS2 state of the resident's readings."""
        for scenario in scenarios:
            for criterion in scenario.criteria:
                tracker = _Tracker(scenario, criterion)
                self._order.append(tracker)
                self._trackers.setdefault(scenario.resident, []).append(tracker)
                if criterion.test == "news2":
                    states = self._news2.setdefault(scenario.resident, {})
                    if criterion.sustain not in states:
                        states[criterion.sustain] = _News2State(
                            profiles[scenario.resident], criterion.sustain
                        )
        self._cursors = dict.fromkeys(devices, -math.inf)
        self._silence = silence
        self._pending: list[tuple[float, int, str, str, Measurement]] = []
        self._seq = 0
        self._watermark = -math.inf
        self._artefacts: dict[tuple[str, float], TruthEvent] = {}

    def emitted(
        self,
        device: str,
        resident: str,
        time: float,
        value: Measurement,
        *,
        malformed: bool = False,
        artefact: tuple[float, float] | None = None,
    ) -> None:
        """Note one emission. ``artefact`` is the (start, end) of the motion artefact it
        carries, if any; a ``malformed`` payload never reaches a central as a reading."""
        if artefact is not None:
            key = (device, artefact[0])
            if key not in self._artefacts:
                self._artefacts[key] = TruthEvent(
                    scenario=ScenarioKind.ARTEFACT.value,
                    kind=ScenarioKind.ARTEFACT,
                    resident=resident,
                    device=device,
                    started=_utc(artefact[0]),
                    detectable=_utc(time),
                    ended=_utc(artefact[1]),
                    expected=None,
                )
            return
        if malformed or resident not in self._trackers:
            return
        self._seq += 1
        self._pending.append((time, self._seq, device, resident, value))

    def advanced(self, device: str, t: float) -> None:
        """Note that ``device`` has been advanced to ``t`` (everything up to ``t`` is in)."""
        if t > self._cursors.get(device, -math.inf):
            self._cursors[device] = t
        if len(self._pending) > 50_000:
            self._flush()

    def _flush(self) -> None:
        watermark = min(self._cursors.values(), default=math.inf)
        if watermark <= self._watermark and not self._pending:
            return
        self._watermark = max(self._watermark, watermark)
        ready = [item for item in self._pending if item[0] <= watermark]
        self._pending = [item for item in self._pending if item[0] > watermark]
        ready.sort(key=lambda item: (item[0], item[1]))
        for time, _, device, resident, value in ready:
            self._evaluate(time, device, resident, value)
        for trackers in self._trackers.values():
            for tracker in trackers:
                silent_device = tracker.criterion.device
                if (
                    tracker.criterion.test == "silent"
                    and tracker.detectable is None
                    and silent_device is not None
                ):
                    silent = self._silence(silent_device, tracker.scenario.start)
                    if silent is not None and silent <= watermark:
                        tracker.detectable = silent

    def _evaluate(self, time: float, device: str, resident: str, value: Measurement) -> None:
        found = observations(value)
        news2 = self._news2.get(resident, {})
        changed = {sustain for sustain, state in news2.items() if state.update(time, found)}
        for tracker in self._trackers[resident]:
            if tracker.detectable is not None or not tracker.window(time):
                continue
            criterion = tracker.criterion
            test = criterion.test
            if test == "news2":
                sustain = criterion.sustain
                if sustain in changed and news2[sustain].score() >= criterion.value:
                    tracker.detectable = time
            elif test == "event":
                if any(o.metric in criterion.metrics for o in found):
                    tracker.detectable = time
            elif test == "no_contact":
                if device == criterion.device and _no_contact(value):
                    tracker.detectable = time
            elif test == "battery":
                if (
                    device == criterion.device
                    and isinstance(value, BatteryLevel)
                    and value.percent <= criterion.value
                ):
                    tracker.detectable = time
            elif test in _COMPARE:
                self._compare(tracker, time, device, found)

    @staticmethod
    def _compare(tracker: _Tracker, time: float, device: str, found: Sequence[Observation]) -> None:
        criterion = tracker.criterion
        compare = _COMPARE[criterion.test]
        for observation in found:
            if observation.metric not in criterion.metrics or _DOUBTFUL.intersection(
                observation.flags
            ):
                continue
            if not compare(observation.value, criterion.value):
                tracker.runs.pop(device, None)
                continue
            since = tracker.runs.setdefault(device, time)
            if time - since >= criterion.sustain:
                tracker.detectable = time
                return

    def events(self) -> tuple[TruthEvent, ...]:
        """Every truth event so far: one per criterion of each scenario (known from the
        start, in scenario order), then the artefacts in the order they were emitted. The
        list only grows at the end; an event's ``detectable`` fills in once the condition
        shows (compare by :attr:`TruthEvent.key`)."""
        self._flush()
        found = [tracker.event() for tracker in self._order]
        found.extend(self._artefacts.values())
        return tuple(found)

    def active(self, t: float) -> tuple[TruthEvent, ...]:
        """The truth events under way at simulated time ``t``."""
        at = _utc(t)
        return tuple(event for event in self.events() if event.active(at))
