"""What the alert rules are told: the roster (residents, devices, gateways) and the settings.

Everything here is a frozen value. The service builds an :class:`EngineConfig` from its
settings and a :class:`Roster` from its registry and hands both to
:class:`cloud.alerts.engine.AlertEngine`. Durations are :class:`datetime.timedelta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from cloud.alerts.errors import ConfigError
from cloud.alerts.news2 import SpO2Scale
from cloud.alerts.thresholds import DEFAULT_RULES, Override, ThresholdRule
from vitals.devices import DeviceKind
from vitals.wire import Severity

__all__ = [
    "DEFAULT_WEIGHT_GAIN",
    "Device",
    "EngineConfig",
    "EventConfig",
    "News2Config",
    "PresenceConfig",
    "Resident",
    "Roster",
    "SmoothingConfig",
    "TrendConfig",
    "WeightGainRule",
]


@dataclass(slots=True, frozen=True)
class Resident:
    """A resident as the rules know them: an id (never a name) and their record."""

    id: str
    spo2_scale: SpO2Scale = SpO2Scale.SCALE_1
    """NEWS2 SpO2 scale 2 only for a prescribed 88-92 % target (hypercapnic failure)."""
    on_oxygen: bool | None = False
    """Supplemental oxygen, from the care plan; None when not known (NEWS2 then misses it)."""
    utc_offset: timedelta = timedelta(0)
    """Local time minus UTC where the resident lives (for "night"). A fixed offset: the
    service reconfigures residents when daylight saving time starts or ends."""
    overrides: tuple[Override, ...] = ()


@dataclass(slots=True, frozen=True)
class Device:
    """A registered device. A shared device (a BP cuff or scale with user slots) maps its
    user indices to residents; a personal device names its resident."""

    id: str
    kind: DeviceKind
    gateway: str
    resident: str | None = None
    users: tuple[tuple[int, str], ...] = ()
    """(device user index, resident id) for shared devices."""
    cadence: timedelta | None = None
    """How often it is expected to report; None means the kind's cadence."""

    @property
    def expected_cadence(self) -> timedelta:
        return self.cadence if self.cadence is not None else self.kind.info.cadence


@dataclass(slots=True, frozen=True)
class Roster:
    residents: tuple[Resident, ...]
    devices: tuple[Device, ...] = ()
    gateways: tuple[str, ...] = ()
    """Gateway ids; gateways named by devices are added if missing."""

    def __post_init__(self) -> None:
        ids = [resident.id for resident in self.residents]
        if len(set(ids)) != len(ids):
            raise ConfigError("resident ids repeat in the roster")
        known = set(ids)
        device_ids = [device.id for device in self.devices]
        if len(set(device_ids)) != len(device_ids):
            raise ConfigError("device ids repeat in the roster")
        for device in self.devices:
            named = [device.resident] if device.resident is not None else []
            named += [resident for _, resident in device.users]
            for resident in named:
                if resident not in known:
                    raise ConfigError(f"device {device.id} names unknown resident {resident}")

    @property
    def gateway_ids(self) -> tuple[str, ...]:
        seen = dict.fromkeys(self.gateways)
        for device in self.devices:
            seen.setdefault(device.gateway)
        return tuple(seen)


@dataclass(slots=True, frozen=True)
class SmoothingConfig:
    """How a continuous series (1 Hz heart rate, SpO2, respiration) becomes one current value
    for NEWS2 and the post-fall activity proxy: the median of its last ``samples`` valid
    readings within ``window`` of the newest. Spot series use their last reading."""

    samples: int = 15
    window: timedelta = timedelta(seconds=60)


@dataclass(slots=True, frozen=True)
class News2Config:
    """Freshness windows: a parameter older than its window is missing, not stale-normal."""

    respiration_rate: timedelta = timedelta(minutes=15)
    spo2: timedelta = timedelta(minutes=15)
    pulse: timedelta = timedelta(minutes=15)
    systolic_bp: timedelta = timedelta(hours=12)
    temperature: timedelta = timedelta(hours=12)
    consciousness: timedelta = timedelta(hours=12)
    persistence: timedelta = timedelta(minutes=15)
    """A continuous parameter (respiration rate, SpO2, pulse from a wearable or an oximeter)
    scores the points it has held throughout the last ``persistence``: the least abnormal of
    its smoothed values, one per minute. Why: NEWS2 is charted from observations taken at
    rest, and walking raises an elderly resident's respiration by 3-6 /min and pulse by 15-30
    /min for 3-12 minutes; scored moment by moment, that gave a COPD resident on oxygen (2
    points at rest) and a resident living at SpO2 94 % a "medium" NEWS2 (urgent) on most walks,
    13 false alerts per resident-week in the alert-quality benchmark (bench/alert_quality.py).
    A deterioration that lasts (sepsis develops over hours) keeps its points; one parameter
    beyond its limit still alerts within 1-2 minutes through the threshold rules. 0 scores the
    current smoothed value."""
    persistence_coverage: float = 0.75
    """Share of the minutes of ``persistence`` that must have readings for a continuous
    parameter to be scored; until then it is missing (a lower bound), never normal."""


@dataclass(slots=True, frozen=True)
class WeightGainRule:
    """Weight gain over ``span``: the median of the readings of the last 12 h against the
    median of those taken ``span`` earlier (from 6 h less to 18 h more), above ``limit_kg``."""

    rule: str
    span: timedelta
    limit_kg: float
    severity: Severity = Severity.WARNING
    enabled: bool = True


DEFAULT_WEIGHT_GAIN: Final = (
    # ESC Heart Failure Association (heartfailurematters.org): tell the nurse or doctor if
    # weight rises by more than 2 kg in 3 days.
    WeightGainRule("weight_gain_3d", timedelta(days=3), 2.0),
    # The "2-3 lb overnight" advice: off by default, because day-to-day scale noise (clothes,
    # meals, +-0.3-0.5 kg) makes a 1.5 kg step in one day fire about once a year per resident
    # with no change at all; switch it on for residents weighed under a strict protocol.
    WeightGainRule("weight_gain_1d", timedelta(days=1), 1.5, enabled=False),
)


@dataclass(slots=True, frozen=True)
class TrendConfig:
    weight_gain: tuple[WeightGainRule, ...] = DEFAULT_WEIGHT_GAIN
    weight_stale_after: timedelta = timedelta(days=2)
    weight_slope_window: timedelta = timedelta(days=7)
    temperature_rise: float = 1.1
    """degC over the personal baseline (IDSA 2008 long-term-care fever criterion)."""
    temperature_baseline: timedelta = timedelta(days=14)
    temperature_baseline_gap: timedelta = timedelta(hours=24)
    """Readings this close to the newest are not part of its baseline."""
    temperature_min_baseline: int = 5
    temperature_stale_after: timedelta = timedelta(hours=24)
    night_start: timedelta = timedelta(hours=0)
    night_end: timedelta = timedelta(hours=6)
    """Local clock times of "night" for the resting heart rate."""
    night_min_readings: int = 30
    night_min_coverage: timedelta = timedelta(hours=3)
    night_recent: int = 3
    """Nights averaged as "now" (at least two of them must be there)."""
    night_baseline: int = 14
    """Nights before those, whose median is the baseline (at least five)."""
    night_rise: float = 10.0
    """bpm over the baseline median; also at least ``night_mad_k`` robust SDs."""
    night_mad_k: float = 3.0
    night_slope_nights: int = 7
    night_min_slope: float = 0.0
    """bpm per night over the last ``night_slope_nights``: the rise must still be rising."""
    night_stale_after: timedelta = timedelta(hours=36)


@dataclass(slots=True, frozen=True)
class PresenceConfig:
    silent_factor: float = 3.0
    """A device is silent after this many of its cadences without a reading..."""
    silent_floor: timedelta = timedelta(minutes=4)
    """...and never sooner than this (a 1 Hz wearable reconnecting is not an alert). Why 4
    minutes: a BLE reconnection takes seconds and the gateway's retries back off to at most
    60 s, so a continuous monitor silent for 4 minutes has failed several reconnections and
    its resident is unmonitored. The former 10 minutes let a wearable be out of range for a
    10-minute absence without anyone hearing of it (a missed event in the alert-quality
    benchmark, bench/alert_quality.py)."""
    gateway_grace: timedelta = timedelta(minutes=2)
    """An offline status (or last will) must last this long."""
    gateway_silence: timedelta = timedelta(minutes=5)
    """No status and no reading for this long is offline too (heartbeat is 60 s)."""
    sensor_off_after: timedelta = timedelta(minutes=3)
    """A wearable or oximeter reporting no skin contact this long has been taken off. Contact
    lost while moving comes back within seconds; 3 minutes (formerly 5) tell staff while the
    resident has been unmonitored for minutes, not for most of a quarter of an hour."""
    battery_warning: float = 20.0
    battery_warning_clear: float = 25.0
    battery_urgent: float = 10.0
    battery_urgent_clear: float = 15.0


@dataclass(slots=True, frozen=True)
class EventConfig:
    hold: timedelta = timedelta(minutes=30)
    """A fall or help event stays an active condition this long after it reached us."""
    settle: timedelta = timedelta(seconds=60)
    """Heart rate in the first minute after a fall is the fall's own (shock), not activity."""
    no_activity_after: timedelta = timedelta(minutes=10)
    no_activity_hold: timedelta = timedelta(hours=2)
    activity_rise: float = 10.0
    """bpm: a smoothed heart-rate rise this big after a fall counts as activity."""


@dataclass(slots=True, frozen=True)
class EngineConfig:
    thresholds: tuple[ThresholdRule, ...] = DEFAULT_RULES
    news2: News2Config = field(default_factory=News2Config)
    trends: TrendConfig = field(default_factory=TrendConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    events: EventConfig = field(default_factory=EventConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    ring_capacity: int = 32
    """Readings kept per resident and metric (see :mod:`cloud.alerts.state`)."""
    night_capacity: int = 24
    """Nightly resting heart rates kept per resident."""

    def __post_init__(self) -> None:
        if self.news2.persistence < timedelta(0) or not 0 < self.news2.persistence_coverage <= 1:
            raise ConfigError("news2 persistence cannot be negative, its coverage is in (0, 1]")
        if self.ring_capacity < max(self.smoothing.samples, 8):
            raise ConfigError("ring_capacity must hold at least the smoothing samples and 8")
        trends = self.trends
        needed = trends.night_recent + trends.night_baseline
        if self.night_capacity < max(needed, trends.night_slope_nights):
            raise ConfigError(f"night_capacity must be at least {needed}")
