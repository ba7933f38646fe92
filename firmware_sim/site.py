"""A care home as data: residents, their profiles and devices, schedules and scenarios.

Site files are TOML (``seeds/oak-house.toml`` is the demo home, ``seeds/test-home.toml`` a
small one for tests), loaded with :func:`load_site` and validated strictly: an unknown key, an
unknown device kind, a duplicate id, a scenario for a resident that does not exist or a bad
offset is refused with :class:`SiteError`, whose lines name the file and the field
(``seeds/x.toml: residents[r03].devices[r03-hr].kind: Input should be 'wearable', ...``).

Layout (every key but the ids has a default)::

    id = "oak-house"                  # site id (letters, digits, - and _)
    name = "Oak House"
    timezone = "Europe/London"        # IANA zone: local time of day for sleep, meals, schedules
    gateway = "oak-house-gw"          # the home's gateway id (for the cloud; optional here)

    [schedules]                       # local times of day of spot measurements, by device kind
    jitter = "10m"                    # each measurement happens up to this much early or late
    thermometer = ["07:30", "19:30"]
    bp_cuff = ["08:00", "18:00"]
    scale = ["07:00"]
    glucose_meter = ["07:45", "12:15", "17:15", "21:30"]
    pulse_oximeter = ["10:00"]        # spot-checks from the continuous oximeter

    [[residents]]
    id = "r01"                        # what travels; the name never leaves the simulator
    name = "Resident 01"
    age = 84
    sex = "female"                    # female | male
    height = 1.62                     # m
    weight = 61.5                     # kg
    heart_rate = 72                   # resting awake, bpm
    spo2 = 96                         # %; 88-92 with copd = true (NEWS2 scale 2)
    respiratory_rate = 15
    temperature = 36.6                # daily mean, degC
    systolic = 132                    # mmHg, daytime at rest
    diastolic = 78
    glucose = 7.8                     # fasting mmol/L; leave out when not followed
    rmssd_ms = 24                     # heart rate variability
    sleep = "22:00-07:00"
    activity = 0.5                    # 0 bed-bound .. 1 walks a lot
    copd = false
    on_oxygen = false
    devices = [
        { id = "r01-hr", kind = "wearable" },
        { id = "r01-bp", kind = "bp_cuff", user_id = 1, schedule = ["09:00"] },
    ]

    [[scenarios]]
    kind = "fever"                    # see firmware_sim.scenarios for kinds and parameters
    resident = "r03"
    start = "10m"                     # offset from the simulation start, or an ISO time
    peak = 39.2

Device keys: ``id``, ``kind`` (wearable, pulse_oximeter, thermometer, bp_cuff, scale,
glucose_meter, pendant), ``name`` (advertised, at most 20 characters), ``cadence`` (seconds
between continuous notifications; the kind's by default), ``battery`` (percent at the start),
``battery_days`` (life on a full charge), ``recharge_below`` (percent at which staff swap in a
charged device; 0: never), ``drop_rate`` (probability that a notification is lost),
``malformed_rate`` (probability that a payload is truncated, for decode-error tests),
``artefacts_per_hour``, ``schedule`` (overrides the site's for the kind) and ``user_id`` (BP
cuff and scale user index).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from firmware_sim.physiology import Profile
from firmware_sim.scenarios import (
    Duration,
    NonNegativeDuration,
    ScenarioError,
    ScenarioSpec,
    SimulatorError,
    scenario_device,
)
from vitals.devices import DeviceKind
from vitals.wire import Id

__all__ = [
    "SEEDS_DIR",
    "DeviceModel",
    "ResidentModel",
    "Schedules",
    "Site",
    "SiteError",
    "find_site",
    "load_site",
    "parse_site",
]

SEEDS_DIR: Final = Path(__file__).resolve().parent.parent / "seeds"
"""The repository's ``seeds`` folder (demo and test homes)."""


class SiteError(SimulatorError, ValueError):
    """A site file that cannot be loaded; ``errors`` has one ``field: problem`` line each."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.source = source
        self.errors = tuple(errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(f"{source}: invalid site file:\n{lines}")


_HHMM: Final = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def _time_of_day(value: Any) -> Any:
    if isinstance(value, str):
        match = _HHMM.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a time of day like 07:30")
        return dt.time(int(match[1]), int(match[2]))
    if isinstance(value, dt.time) and value.tzinfo is not None:
        raise ValueError("a time of day is local to the site: leave the offset out")
    return value


LocalTime: TypeAlias = Annotated[dt.time, BeforeValidator(_time_of_day)]
"""A local time of day, ``"07:30"`` (or a TOML local time)."""


def _sleep_window(value: Any) -> Any:
    if isinstance(value, str):
        start, dash, end = value.partition("-")
        if not dash:
            raise ValueError(f"{value!r} is not a sleep window like 22:00-07:00")
        return (_time_of_day(start), _time_of_day(end))
    return value


SleepWindow: TypeAlias = Annotated[tuple[dt.time, dt.time], BeforeValidator(_sleep_window)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceModel(_Model):
    """One device in a site file (see the module docstring for the keys)."""

    id: Id
    kind: DeviceKind
    name: Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[ -~]+$")] | None = None
    cadence: Duration | None = None
    battery: Annotated[float, Field(gt=0, le=100)] = 100.0
    battery_days: Annotated[float, Field(gt=0, le=3650)] | None = None
    recharge_below: Annotated[int, Field(ge=0, le=90)] = 25
    drop_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0
    malformed_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0
    artefacts_per_hour: Annotated[float, Field(ge=0, le=60)] | None = None
    schedule: tuple[LocalTime, ...] | None = None
    user_id: Annotated[int, Field(ge=0, le=254)] = 1


class ResidentModel(_Model):
    """One resident in a site file (see the module docstring for the keys)."""

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    age: Annotated[int, Field(ge=50, le=115)] = 82
    sex: Literal["female", "male"] = "female"
    height: Annotated[float, Field(ge=1.3, le=2.1)] = 1.65
    weight: Annotated[float, Field(ge=30, le=200)] = 70.0
    heart_rate: Annotated[float, Field(ge=50, le=100)] = 72.0
    spo2: Annotated[float, Field(ge=86, le=99)] = 96.0
    respiratory_rate: Annotated[float, Field(ge=10, le=22)] = 15.0
    temperature: Annotated[float, Field(ge=35.8, le=37.4)] = 36.6
    systolic: Annotated[float, Field(ge=95, le=185)] = 130.0
    diastolic: Annotated[float, Field(ge=45, le=110)] = 78.0
    glucose: Annotated[float, Field(ge=3.5, le=15)] | None = None
    rmssd_ms: Annotated[float, Field(ge=5, le=80)] = 25.0
    sleep: SleepWindow = (dt.time(22, 0), dt.time(7, 0))
    activity: Annotated[float, Field(ge=0, le=1)] = 0.5
    copd: bool = False
    on_oxygen: bool = False
    devices: tuple[DeviceModel, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = []
        if self.systolic - self.diastolic < 20:
            problems.append("systolic must exceed diastolic by at least 20 mmHg")
        if self.copd and not 86 <= self.spo2 <= 94:
            problems.append("a COPD resident's spo2 baseline is 86-94 % (target 88-92)")
        if not self.copd and self.spo2 < 93:
            problems.append("spo2 below 93 % at baseline needs copd = true (NEWS2 scale 2)")
        if self.sleep[0] == self.sleep[1]:
            problems.append("sleep must start and end at different times")
        if self.glucose is None and any(d.kind is DeviceKind.GLUCOSE_METER for d in self.devices):
            problems.append("a resident with a glucose meter needs a fasting glucose baseline")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def profile(self) -> Profile:
        """The physiology profile of this resident."""
        return Profile(
            heart_rate=self.heart_rate,
            spo2=self.spo2,
            respiratory_rate=self.respiratory_rate,
            temperature=self.temperature,
            systolic=self.systolic,
            diastolic=self.diastolic,
            weight=self.weight,
            height=self.height,
            glucose=self.glucose,
            rmssd_ms=self.rmssd_ms,
            sleep_start=self.sleep[0],
            sleep_end=self.sleep[1],
            activity=self.activity,
            copd=self.copd,
            on_oxygen=self.on_oxygen,
        )


def _times(*texts: str) -> tuple[dt.time, ...]:
    return tuple(dt.time.fromisoformat(text) for text in texts)


class Schedules(_Model):
    """Local times of day at which spot devices measure, by kind, unless a device has its
    own ``schedule``."""

    jitter: NonNegativeDuration = dt.timedelta(minutes=10)
    thermometer: tuple[LocalTime, ...] = _times("07:30", "19:30")
    bp_cuff: tuple[LocalTime, ...] = _times("08:00", "18:00")
    scale: tuple[LocalTime, ...] = _times("07:00")
    glucose_meter: tuple[LocalTime, ...] = _times("07:45", "12:15", "17:15", "21:30")
    pulse_oximeter: tuple[LocalTime, ...] = _times("10:00")

    def for_kind(self, kind: DeviceKind) -> tuple[dt.time, ...]:
        """The site's schedule for a kind (none for wearables and pendants)."""
        match kind:
            case DeviceKind.THERMOMETER:
                return self.thermometer
            case DeviceKind.BP_CUFF:
                return self.bp_cuff
            case DeviceKind.SCALE:
                return self.scale
            case DeviceKind.GLUCOSE_METER:
                return self.glucose_meter
            case DeviceKind.PULSE_OXIMETER:
                return self.pulse_oximeter
        return ()


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/London") from None
    return value


class Site(_Model):
    """A care home: the root of a site file."""

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=100)]
    timezone: Annotated[str, BeforeValidator(_zone)] = "Europe/London"
    gateway: Id | None = None
    """The id of the home's gateway (the cloud's alert rules need it: a device's readings
    and the gateway's status come through it). Not used by the simulator."""
    schedules: Schedules = Schedules()
    residents: tuple[ResidentModel, ...]
    scenarios: tuple[ScenarioSpec, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        if not self.residents:
            problems.append("residents: a site needs at least one resident")
        seen_residents: set[str] = set()
        seen_devices: dict[str, str] = {}
        for resident in self.residents:
            if resident.id in seen_residents:
                problems.append(f"residents[{resident.id}]: duplicate resident id")
            seen_residents.add(resident.id)
            for device in resident.devices:
                if device.id in seen_devices:
                    problems.append(
                        f"residents[{resident.id}].devices[{device.id}]: duplicate device id "
                        f"(also a device of {seen_devices[device.id]})"
                    )
                seen_devices[device.id] = resident.id
        for index, spec in enumerate(self.scenarios):
            try:
                self.check_scenario(spec)
            except ScenarioError as exc:
                problems.append(f"scenarios[{index}]: {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def resident(self, resident_id: str) -> ResidentModel:
        for resident in self.residents:
            if resident.id == resident_id:
                return resident
        raise KeyError(resident_id)

    def devices(self) -> Iterator[tuple[ResidentModel, DeviceModel]]:
        """Every (resident, device), in file order."""
        for resident in self.residents:
            for device in resident.devices:
                yield resident, device

    def check_scenario(self, spec: ScenarioSpec) -> str | None:
        """Check that ``spec`` fits this site; return the device it acts on, if any.
        Raises :class:`ScenarioError` (unknown resident, unfit device)."""
        known = [resident.id for resident in self.residents]
        if spec.resident not in known:
            raise ScenarioError(
                f"{spec.describe()}: unknown resident {spec.resident!r} (known: {', '.join(known)})"
            )
        resident = self.resident(spec.resident)
        kinds: Mapping[str, DeviceKind] = {device.id: device.kind for device in resident.devices}
        try:
            return scenario_device(spec, kinds)
        except ScenarioError as exc:
            raise ScenarioError(f"{spec.describe()}: {exc}") from None


# --- loading ----------------------------------------------------------------------------

_SCENARIO_KINDS: Final = frozenset(
    {
        "fever",
        "sepsis",
        "hypoxaemia",
        "bradycardia",
        "tachycardia",
        "hf_weight_gain",
        "fall",
        "help_button",
        "battery_death",
        "out_of_range",
        "sensor_removed",
    }
)


def _where(loc: Sequence[int | str], data: Any) -> str:
    """A readable field path: list items with an ``id`` are named by it."""
    parts: list[str] = []
    node = data
    skip_tag = False
    for part in loc:
        if skip_tag:
            skip_tag = False
            if isinstance(part, str) and part in _SCENARIO_KINDS:
                continue
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            label = item.get("id") if isinstance(item, dict) else None
            parts.append(f"[{label}]" if isinstance(label, str) else f"[{part}]")
            skip_tag = bool(parts) and len(parts) == 2 and parts[0] == "scenarios"
            node = item
        else:
            parts.append(f".{part}" if parts else part)
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts) or "site"


def _problems(exc: ValidationError, data: Any) -> list[str]:
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        where = _where(error["loc"], data)
        if not error["loc"]:
            lines.extend(message.split("\n"))
        else:
            lines.extend(f"{where}: {line}" for line in message.split("\n"))
    return lines


def parse_site(text: str, *, source: str = "<site>") -> Site:
    """Validate a site given as TOML text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(source, [f"not valid TOML: {exc}"]) from None
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        raise SiteError(source, _problems(exc, data)) from None


def load_site(path: str | Path) -> Site:
    """Load and validate a site file. Raises :class:`SiteError`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteError(str(file), [f"cannot read it: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise SiteError(str(file), [f"not UTF-8 text: {exc}"]) from None
    return parse_site(text, source=str(file))


def find_site(name: str | Path) -> Path:
    """A site file by path, or by name in :data:`SEEDS_DIR` (``"oak-house"``)."""
    path = Path(name)
    if path.suffix == ".toml" or path.exists():
        return path
    return SEEDS_DIR / f"{name}.toml"
