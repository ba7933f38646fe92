"""Pure device firmware: what each simulated device would send, and when.

One :class:`DeviceFirmware` per device turns its resident's :class:`Physiology` into GATT
payloads (``vitals.gatt.encode``), with a battery, a radio, skin contact, dropped
notifications, motion artefacts and optional fault injection. No I/O and no clock: the
runtime (``firmware_sim.runtime``, on Bumble) passes simulated Unix times to
:meth:`DeviceFirmware.advance` and sends what comes back. :class:`Simulation` builds every
device of a site, with the residents' physiology, the scenarios and the truth recorder.

Everything is deterministic from the seed. A value depends only on the seed and the simulated
time it is for, never on how often ``advance`` is called: spot measurements, pendant events and
battery notifications are identical under any sequence of ticks; continuous notifications are
identical whenever the ticks land on the same multiples of the cadence (a 1 s cadence ticked
every 1 s or every 0.25 s gives the same bytes).

Device behaviour, by kind (``vitals.devices.DeviceKind``):

=============== ==============================================================================
wearable        Heart Rate Measurement (heart rate, skin contact, RR intervals) and
                Respiratory Rate, notified every ``cadence`` (1 s); battery ~6 days
pulse_oximeter  PLX Continuous (notified every ``cadence``), PLX Spot-Check on its schedule
                (indicated); battery ~4 days
thermometer     Temperature Measurement (0.1 degC, tympanic, time stamp) on its schedule
bp_cuff         Blood Pressure Measurement (mmHg, pulse rate, user ID, status, time stamp)
scale           Weight Measurement (0.005 kg, time stamp, user ID, BMI and height)
glucose_meter   Glucose Measurement (sequence number, base time, mol/L, capillary plasma,
                finger) before meals; notified, as the Glucose Service specifies
pendant         Pendant Event (fall, help; sequence number; time) when a scenario says so;
                a Battery Level notification every 5 minutes as its heartbeat; battery ~6
                months
=============== ==============================================================================

Batteries drain linearly over ``battery_days``; when one falls to ``recharge_below`` percent,
staff swap in a charged device (the level jumps to 100 %), so a resident without a scenario
never has a flat device. A ``battery_death`` scenario drains it to 0 within minutes and stops
the swaps: at 0 the device is :attr:`RadioState.DEAD` for good. Battery Level is notified when
the whole percentage changes (``ceil`` of the level), by the devices that serve Battery.

Notifications of continuous characteristics are lost with probability ``drop_rate`` (not
emitted, counted in :attr:`FirmwareStats.dropped`; indications are acknowledged, so they are
not lost). Motion artefacts (``artefacts_per_hour``, more often when the resident moves) are
2-5 s long: a wearable then reports a heart rate of 170-220 bpm without RR intervals, an
oximeter an SpO2 of 75-85 %; their emissions have ``artefact=True`` and the truth recorder
labels them. While the skin contact is lost (``sensor_removed``) a wearable sends heart rate 0
with ``sensor_contact=False`` and a respiratory rate of NaN; an oximeter sends NaN SpO2 and
pulse rate with the SENSOR_UNCONNECTED_TO_USER status. With ``malformed_rate`` a payload is
cut short so that it no longer decodes (``malformed=True``; ``value`` is what it should have
been).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final, Protocol

from firmware_sim.noise import Noise, derive_seed
from firmware_sim.physiology import Physiology, Profile, VitalSigns
from firmware_sim.scenarios import (
    Scenario,
    ScenarioError,
    ScenarioKind,
    ScenarioSpec,
    SpotCheck,
    TruthEvent,
    TruthRecorder,
    compile_scenario,
)
from firmware_sim.site import Site
from vitals import gatt
from vitals.devices import DeviceKind
from vitals.gatt import (
    BatteryLevel,
    BloodPressureMeasurement,
    BloodPressureStatus,
    GlucoseConcentrationUnit,
    GlucoseMeasurement,
    GlucoseType,
    HeartRateMeasurement,
    Measurement,
    PendantEvent,
    PendantEventType,
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    RespiratoryRate,
    SampleLocation,
    TemperatureMeasurement,
    TemperatureType,
    WeightMeasurement,
)
from vitals.gatt import uuids as sig

__all__ = [
    "BATTERY_DAYS",
    "INDICATED",
    "DeviceConfig",
    "DeviceFirmware",
    "Emission",
    "EmissionSink",
    "FirmwareStats",
    "RadioState",
    "Simulation",
    "indicated",
]


class RadioState(StrEnum):
    ON = "on"
    """Advertising or connected, sending what it has."""
    OUT_OF_RANGE = "out_of_range"
    """Working, but out of the gateway's radio range: nothing reaches it."""
    DEAD = "dead"
    """Battery empty: silent for good."""


def _sig(value: int) -> uuid.UUID:
    return uuid.UUID(sig.uuid16_to_str(value))


HEART_RATE: Final = _sig(sig.HEART_RATE_MEASUREMENT)
RESPIRATORY_RATE: Final = gatt.RESPIRATORY_RATE_CHARACTERISTIC
PLX_CONTINUOUS: Final = _sig(sig.PLX_CONTINUOUS_MEASUREMENT)
PLX_SPOT_CHECK: Final = _sig(sig.PLX_SPOT_CHECK_MEASUREMENT)
TEMPERATURE: Final = _sig(sig.TEMPERATURE_MEASUREMENT)
BLOOD_PRESSURE: Final = _sig(sig.BLOOD_PRESSURE_MEASUREMENT)
WEIGHT: Final = _sig(sig.WEIGHT_MEASUREMENT)
GLUCOSE: Final = _sig(sig.GLUCOSE_MEASUREMENT)
BATTERY: Final = _sig(sig.BATTERY_LEVEL)
PENDANT_EVENT: Final = gatt.PENDANT_EVENT_CHARACTERISTIC

INDICATED: Final = frozenset({PLX_SPOT_CHECK, TEMPERATURE, BLOOD_PRESSURE, WEIGHT, PENDANT_EVENT})
"""Characteristics sent by indication (the SIG profiles' choice, and the pendant's): spot
measurements and pendant events. Heart rate, respiratory rate, PLX continuous, glucose and
battery level are notified."""


def indicated(characteristic: uuid.UUID) -> bool:
    """Whether ``characteristic`` is indicated (else notified)."""
    return characteristic in INDICATED


@dataclass(slots=True, frozen=True)
class Emission:
    """One notification or indication a device produced."""

    device: str
    """The device's id."""
    characteristic: uuid.UUID
    """The full 128-bit UUID of the characteristic (SIG ones in Bluetooth Base UUID form)."""
    value: Measurement
    """What the payload says (or should have said, when ``malformed``)."""
    payload: bytes
    """``vitals.gatt.encode(value)``, or truncated bytes when ``malformed``."""
    time: float
    """Simulated Unix time at which the device sends it (a spot measurement held while out of
    range is sent when the device is back; its ``value`` keeps the time it was taken)."""
    indicate: bool
    """True for an indicated characteristic, False for a notified one."""
    artefact: bool = False
    """The value is a motion artefact (implausible, labelled in the ground truth)."""
    malformed: bool = False
    """The payload was deliberately cut short (fault injection); it does not decode."""


@dataclass(slots=True, frozen=True)
class FirmwareStats:
    """What a device has done so far."""

    emitted: int = 0
    """Emissions returned by ``advance`` (malformed and artefact ones included)."""
    dropped: int = 0
    """Notifications lost on the air (never returned)."""
    artefacts: int = 0
    malformed: int = 0


BATTERY_DAYS: Final[Mapping[DeviceKind, float]] = {
    DeviceKind.WEARABLE: 6.0,
    DeviceKind.PULSE_OXIMETER: 4.0,
    DeviceKind.THERMOMETER: 365.0,
    DeviceKind.BP_CUFF: 180.0,
    DeviceKind.SCALE: 365.0,
    DeviceKind.GLUCOSE_METER: 365.0,
    DeviceKind.PENDANT: 180.0,
}
"""Days a full battery lasts, by kind (unless a device says otherwise)."""

_ARTEFACTS_PER_HOUR: Final[Mapping[DeviceKind, float]] = {
    DeviceKind.WEARABLE: 1.0,
    DeviceKind.PULSE_OXIMETER: 0.5,
}
_MODELS: Final[Mapping[DeviceKind, str]] = {
    DeviceKind.WEARABLE: "CW-WR1 Wrist Monitor",
    DeviceKind.PULSE_OXIMETER: "CW-OX1 Oximeter",
    DeviceKind.THERMOMETER: "CW-TH1 Ear Thermometer",
    DeviceKind.BP_CUFF: "CW-BP1 Upper Arm Cuff",
    DeviceKind.SCALE: "CW-SC1 Scale",
    DeviceKind.GLUCOSE_METER: "CW-GM1 Glucose Meter",
    DeviceKind.PENDANT: "CW-PD1 Pendant",
}
_WITH_BATTERY_SERVICE: Final = frozenset(
    {DeviceKind.WEARABLE, DeviceKind.PULSE_OXIMETER, DeviceKind.PENDANT}
)
_PENDANT_HEARTBEAT: Final = 300.0
_ARTEFACT_SLOT: Final = 600.0
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_MAX_PAYLOAD: Final = 20
"""A notification fits the default ATT MTU of 23 bytes."""


@dataclass(slots=True, frozen=True)
class DeviceConfig:
    """How one device is set up (from a site file's device entry)."""

    id: str
    kind: DeviceKind
    resident: str
    name: str | None = None
    """Advertised local name (<= 20 characters); ``CW <id>`` by default."""
    cadence: float | None = None
    """Seconds between continuous notifications; the kind's cadence by default."""
    battery: float = 100.0
    """Percent at the start of the simulation."""
    battery_days: float | None = None
    """Days a full battery lasts; :data:`BATTERY_DAYS` by default."""
    recharge_below: int = 25
    """At this percent staff swap in a charged device (0: never; the device runs flat)."""
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    artefacts_per_hour: float | None = None
    """Motion artefacts per hour of moderate activity; by kind by default (wearable 1,
    oximeter 0.5, others none)."""
    schedule: tuple[dt.time, ...] = ()
    """Local times of day of spot measurements."""
    jitter: float = 600.0
    """Seconds a scheduled measurement may be early or late."""
    user_id: int = 1
    """User index of a BP cuff or scale."""
    firmware_revision: str = "1.2.0"


class EmissionSink(Protocol):
    """Where a firmware reports what it emitted (the :class:`TruthRecorder`)."""

    def emitted(
        self,
        device: str,
        resident: str,
        time: float,
        value: Measurement,
        *,
        malformed: bool = False,
        artefact: tuple[float, float] | None = None,
    ) -> None: ...

    def advanced(self, device: str, t: float) -> None: ...


# --- battery ----------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Battery:
    """Level in percent over time: linear drain, swaps at ``recharge`` percent, and an
    optional fast drain to 0 from ``death_start`` within ``death_drain`` seconds."""

    start: float
    level0: float
    rate: float
    """Percent per second."""
    recharge: float
    death_start: float | None = None
    death_drain: float = 0.0

    @property
    def first_swap(self) -> float | None:
        """Seconds from the start to the first swap (None: never)."""
        if self.recharge <= 0:
            return None
        return max(0.0, (self.level0 - self.recharge) / self.rate)

    @property
    def period(self) -> float:
        return (100.0 - self.recharge) / self.rate

    def _nominal(self, t: float) -> float:
        x = max(0.0, t - self.start)
        first = self.first_swap
        if first is None:
            return max(0.0, self.level0 - self.rate * x)
        if x < first:
            return self.level0 - self.rate * x
        return 100.0 - self.rate * ((x - first) % self.period)

    def level(self, t: float) -> float:
        if self.death_start is not None and t >= self.death_start:
            at_start = self._nominal(self.death_start)
            if self.death_drain <= 0:
                return 0.0
            return max(0.0, at_start * (1.0 - (t - self.death_start) / self.death_drain))
        return self._nominal(t)

    def percent(self, t: float) -> int:
        return max(0, min(100, math.ceil(self.level(t) - 1e-9)))

    def death(self) -> float | None:
        """When the level reaches 0 (None: never)."""
        natural = None
        if self.recharge <= 0:
            natural = self.start + self.level0 / self.rate
        if self.death_start is not None:
            scripted = self.death_start + self.death_drain
            return scripted if natural is None else min(natural, scripted)
        return natural

    def changes(self, lo: float, hi: float) -> list[tuple[float, int]]:
        """``(time, percent)`` of each change of the whole percentage in ``(lo, hi]``."""
        stop = math.inf if self.death_start is None else self.death_start
        segments: list[_Segment] = []
        first = self.first_swap
        if first is None:
            segments.append(
                _Segment(self.start, self.start + self.level0 / self.rate, self.level0, self.rate)
            )
        else:
            segments.append(_Segment(self.start, self.start + first, self.level0, self.rate))
            period = self.period
            origin = self.start + first
            k_lo = max(0, math.floor((max(lo, origin) - origin) / period) - 1)
            k_hi = math.floor((min(hi, stop) - origin) / period) + 1
            for k in range(k_lo, max(k_lo, k_hi) + 1):
                begin = origin + k * period
                segments.append(_Segment(begin, begin + period, 100.0, self.rate, swap=True))
        found: list[tuple[float, int]] = []
        for segment in segments:
            if segment.begin > hi or segment.begin >= min(segment.end, stop):
                continue
            if segment.swap and lo < segment.begin <= hi:
                found.append((segment.begin, 100))
            found.extend(segment.crossings(lo, min(hi, stop)))
        if self.death_start is not None and self.death_drain > 0:
            level = self._nominal(self.death_start)
            dying = _Segment(
                self.death_start,
                self.death_start + self.death_drain,
                level,
                level / self.death_drain,
            )
            found.extend(dying.crossings(lo, hi))
        return sorted(found)


@dataclass(slots=True, frozen=True)
class _Segment:
    """A stretch of time over which the battery level falls linearly."""

    begin: float
    end: float
    level: float
    """At ``begin``."""
    rate: float
    """Percent per second."""
    swap: bool = False
    """A charged device was swapped in at ``begin`` (the level jumped to 100 %)."""

    def crossings(self, lo: float, hi: float) -> list[tuple[float, int]]:
        """``(time, percent)`` for each time in ``(lo, hi]`` and ``[begin, end)`` at which the
        level reaches a whole percent above 0 (reported from then on: ``ceil`` of the
        level). The times come from the segment alone, so every tick pattern finds the same."""
        if self.rate <= 0:
            return []
        top = math.ceil(self.level) - 1
        if lo > self.begin:
            top = min(top, math.ceil(self.level - self.rate * (lo - self.begin)) - 1)
        found = []
        for percent in range(top, 0, -1):
            time = self.begin + (self.level - percent) / self.rate
            if time >= self.end or time > hi:
                break
            if time > lo:
                found.append((time, percent))
        return found


# --- the firmware -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Artefact:
    start: float
    end: float
    value: int


@dataclass(slots=True, frozen=True)
class _Timed:
    """Something a device sends at a time of its own (not at the tick)."""

    time: float
    """When it is sent."""
    order: int
    measured: float
    """When it was measured (or happened)."""
    what: str
    """"battery", "heartbeat", "spot" or "event"."""
    event: PendantEventType | None = None
    percent: int = 0
    """"battery": the level it changed to."""


_ORDER: Final = {"battery": 0, "heartbeat": 1, "spot": 2, "event": 3}


class DeviceFirmware:
    """One simulated device (see the module docstring for what each kind does).

    Attributes the runtime uses: :attr:`id`, :attr:`kind`, :attr:`resident`, :attr:`name`
    (advertised, <= 20 characters), :attr:`address` (static random, from the id),
    :attr:`device_information` (keyword arguments of bumble's ``DeviceInformationService``),
    :attr:`services` and :attr:`characteristics` (UUIDs, from ``DeviceKind.info``),
    :attr:`spot`, :attr:`cadence`.
    """

    __slots__ = (
        "_artefact_count",
        "_artefact_noise",
        "_battery",
        "_checks",
        "_contact_windows",
        "_cursor",
        "_dropped",
        "_emitted",
        "_events",
        "_fault_noise",
        "_glucose_sequence",
        "_last",
        "_malformed",
        "_noise",
        "_pendant_sequence",
        "_range_windows",
        "_schedule_cache",
        "_sink",
        "_spot_noise",
        "address",
        "cadence",
        "config",
        "device_information",
        "id",
        "kind",
        "name",
        "physiology",
        "resident",
        "seed",
        "start",
        "zone",
    )

    def __init__(
        self,
        config: DeviceConfig,
        physiology: Physiology,
        *,
        seed: int,
        start: float,
        zone: dt.tzinfo,
        scenarios: Iterable[Scenario] = (),
        sink: EmissionSink | None = None,
    ) -> None:
        """``seed`` is the device's own (``derive_seed(site_seed, "device", id)``); ``start``
        the simulation start (simulated Unix time); ``scenarios`` those of its resident (the
        ones that concern this device are picked out); ``sink`` gets every emission."""
        self.config = config
        self.id = config.id
        self.kind = config.kind
        self.resident = config.resident
        self.physiology = physiology
        self.seed = seed
        self.start = start
        self.zone = zone
        self.name = (config.name or f"CW {config.id}")[:20]
        self.address = _static_random_address(config.id)
        digest = hashlib.blake2b(config.id.encode(), digest_size=5).hexdigest().upper()
        self.device_information: Mapping[str, str] = {
            "manufacturer_name": "CareWatch Simulated Devices",
            "model_number": _MODELS[config.kind],
            "serial_number": f"SIM{digest}",
            "hardware_revision": "B",
            "firmware_revision": config.firmware_revision,
        }
        cadence = config.cadence
        self.cadence = cadence if cadence is not None else config.kind.info.cadence.total_seconds()
        self._noise = Noise(seed)
        self._spot_noise = self._noise.child("spot")
        self._fault_noise = self._noise.child("faults")
        self._artefact_noise = self._noise.child("artefacts")
        self._sink = sink

        days = config.battery_days or BATTERY_DAYS[config.kind]
        death_start: float | None = None
        death_drain = 0.0
        range_windows: list[tuple[float, float]] = []
        contact_windows: list[tuple[float, float]] = []
        events: list[tuple[float, PendantEventType]] = []
        checks: list[float] = []
        for scenario in scenarios:
            if scenario.resident != config.resident:
                continue
            effect = scenario.device_effect
            if effect is not None and effect.device == config.id:
                if effect.kind is ScenarioKind.BATTERY_DEATH:
                    if death_start is None or effect.start < death_start:
                        death_start, death_drain = effect.start, effect.drain
                elif effect.kind is ScenarioKind.OUT_OF_RANGE and effect.end is not None:
                    range_windows.append((effect.start, effect.end))
                elif effect.kind is ScenarioKind.SENSOR_REMOVED and effect.end is not None:
                    contact_windows.append((effect.start, effect.end))
            if scenario.pendant_event is not None and scenario.device == config.id:
                events.append((scenario.start, scenario.pendant_event))
            checks.extend(check.time for check in scenario.checks if check.kind is config.kind)
        self._battery = _Battery(
            start=start,
            level0=config.battery,
            rate=100.0 / (days * 86_400.0),
            recharge=float(config.recharge_below),
            death_start=death_start,
            death_drain=death_drain,
        )
        self._range_windows = tuple(sorted(range_windows))
        self._contact_windows = tuple(sorted(contact_windows))
        self._events = tuple(sorted(events))
        self._checks = tuple(sorted(checks))

        self._schedule_cache: dict[int, tuple[float, ...]] = {}
        self._cursor = math.nextafter(start, -math.inf)
        self._last: dict[uuid.UUID, float] = {}
        self._emitted = 0
        self._dropped = 0
        self._artefact_count = 0
        self._malformed = 0
        self._pendant_sequence = self._noise.child("sequence").bits(0) % 4096
        self._glucose_sequence = self._noise.child("sequence").bits(1) % 4096

    # --- static facts ----------------------------------------------------------------------

    @property
    def spot(self) -> bool:
        """A spot-measurement device (advertises when it has a measurement)."""
        return self.kind.info.spot

    @property
    def services(self) -> tuple[uuid.UUID, ...]:
        return self.kind.info.services

    @property
    def characteristics(self) -> tuple[uuid.UUID, ...]:
        """The characteristics it notifies or indicates."""
        return self.kind.info.subscribe

    @property
    def stats(self) -> FirmwareStats:
        return FirmwareStats(self._emitted, self._dropped, self._artefact_count, self._malformed)

    # --- state at a time (pure) ------------------------------------------------------------

    def battery(self, t: float) -> int:
        """Battery level in whole percent at ``t``."""
        return self._battery.percent(t)

    def radio(self, t: float) -> RadioState:
        """DEAD once the battery is empty, OUT_OF_RANGE in an out_of_range window, else ON."""
        if self._battery.level(t) <= 0.0:
            return RadioState.DEAD
        if any(begin <= t < end for begin, end in self._range_windows):
            return RadioState.OUT_OF_RANGE
        return RadioState.ON

    def contact(self, t: float) -> bool:
        """Whether the sensor touches the skin (always True for kinds without a sensor)."""
        return not any(begin <= t < end for begin, end in self._contact_windows)

    def artefact_at(self, t: float) -> tuple[float, float] | None:
        """The (start, end) of the motion artefact under way at ``t``, if any."""
        found = self._artefact(t)
        return None if found is None else (found.start, found.end)

    def _artefact(self, t: float) -> _Artefact | None:
        rate = self.config.artefacts_per_hour
        if rate is None:
            rate = _ARTEFACTS_PER_HOUR.get(self.kind, 0.0)
        if rate <= 0.0:
            return None
        noise = self._artefact_noise
        slot = math.floor(t / _ARTEFACT_SLOT)
        chance = rate * _ARTEFACT_SLOT / 3600.0
        draw = noise.uniform(slot)
        if draw >= min(1.0, 1.5 * chance):
            return None
        duration = noise.between(slot, 2.0, 5.0, 1)
        begin = slot * _ARTEFACT_SLOT + noise.uniform(slot, 2) * (_ARTEFACT_SLOT - 10.0)
        if not begin <= t < begin + duration:
            return None
        if draw >= min(1.0, chance * (0.5 + self.physiology.at(begin).activity)):
            return None
        if self.kind is DeviceKind.WEARABLE:
            value = round(noise.between(slot, 170.0, 220.0, 3))
        else:
            value = round(noise.between(slot, 75.0, 85.0, 3))
        return _Artefact(begin, begin + duration, value)

    def death(self) -> float | None:
        """When the battery runs out (None: it never does)."""
        return self._battery.death()

    def goes_silent(self, after: float) -> float | None:
        """The first time at or after ``after`` when the device fails to send what it
        otherwise would: for a continuous device or pendant, when its radio stops being ON;
        for a spot device, its first measurement held back or lost. None if never (within
        three days for a spot device)."""
        if self.spot:
            for measured in self._measurements(after - 1e-6, after + 3 * 86_400.0):
                if self._delivery(measured) != measured:
                    return measured
            return None
        candidates = [begin for begin, end in self._range_windows if end > after]
        death = self._battery.death()
        if death is not None:
            candidates.append(death)
        if not candidates:
            return None
        return max(after, min(candidates))

    def local_time(self, t: float) -> dt.datetime:
        """The device's clock at ``t``: naive local time, whole seconds."""
        return dt.datetime.fromtimestamp(math.floor(t), self.zone).replace(tzinfo=None)

    # --- scheduling ------------------------------------------------------------------------

    def _scheduled(self, lo: float, hi: float) -> list[float]:
        """Scheduled measurement times in ``(lo, hi]``."""
        if not self.config.schedule or hi <= lo:
            return []
        # Local days are at most 25 h long: a day's schedule (with jitter) lies within
        # a day and a bit of its midnight, so one day of margin on either side is enough.
        first = math.floor(lo / 86_400.0) - 1 + _EPOCH_ORDINAL
        last = math.floor(hi / 86_400.0) + 1 + _EPOCH_ORDINAL
        found: list[float] = []
        for ordinal in range(first, last + 1):
            found.extend(time for time in self._day_schedule(ordinal) if lo < time <= hi)
        return found

    def _day_schedule(self, ordinal: int) -> tuple[float, ...]:
        cached = self._schedule_cache.get(ordinal)
        if cached is not None:
            return cached
        day = dt.date.fromordinal(ordinal)
        jitter = self.config.jitter
        times = []
        for index, at in enumerate(self.config.schedule):
            local = dt.datetime.combine(day, at, tzinfo=self.zone)
            shift = self._spot_noise.between(ordinal * 64 + index, -jitter, jitter, 7)
            times.append(float(math.floor(local.timestamp() + shift)))
        result = tuple(times)
        if len(self._schedule_cache) >= 8:
            del self._schedule_cache[next(iter(self._schedule_cache))]
        self._schedule_cache[ordinal] = result
        return result

    def _measurements(self, lo: float, hi: float) -> list[float]:
        checks = [time for time in self._checks if lo < time <= hi]
        return sorted(set(self._scheduled(lo, hi)) | set(checks))

    def _delivery(self, measured: float) -> float | None:
        """When something measured (or happening) at ``measured`` is sent: at once, when the
        device is back in range, or never (battery dead)."""
        time = measured
        moved = True
        while moved:
            moved = False
            for begin, end in self._range_windows:
                if begin <= time < end:
                    time, moved = end, True
        if self._battery.level(measured) <= 0.0 or self._battery.level(time) <= 0.0:
            return None
        return time

    def _timed(self, lo: float, hi: float) -> list[_Timed]:
        """What the device sends at times of its own in ``(lo, hi]``."""
        found: list[_Timed] = []
        if self.kind in _WITH_BATTERY_SERVICE:
            for time, percent in self._battery.changes(lo, hi):
                if self.radio(time) is RadioState.ON:
                    found.append(_Timed(time, _ORDER["battery"], time, "battery", percent=percent))
        if self.kind is DeviceKind.PENDANT:
            phase = self._noise.uniform(99) * _PENDANT_HEARTBEAT
            n = math.floor((lo - phase) / _PENDANT_HEARTBEAT) + 1
            while (time := n * _PENDANT_HEARTBEAT + phase) <= hi:
                if time > lo and self.radio(time) is RadioState.ON:
                    found.append(_Timed(time, _ORDER["heartbeat"], time, "heartbeat"))
                n += 1
            for happened, event in self._events:
                delivery = self._delivery(happened)
                if delivery is not None and lo < delivery <= hi:
                    found.append(_Timed(delivery, _ORDER["event"], happened, "event", event))
        if self.spot or self.config.schedule or self._checks:
            lookback = sum(end - begin for begin, end in self._range_windows)
            for measured in self._measurements(lo - lookback, hi):
                delivery = self._delivery(measured)
                if delivery is not None and lo < delivery <= hi:
                    found.append(_Timed(delivery, _ORDER["spot"], measured, "spot"))
        found.sort(key=lambda item: (item.time, item.order, item.measured))
        return found

    # --- advancing -------------------------------------------------------------------------

    def advance(self, t: float) -> list[Emission]:
        """Everything the device sends up to simulated Unix time ``t``, in time order.

        * Spot measurements (thermometer, BP cuff, scale, glucose meter, oximeter spot-check),
          pendant events and battery notifications are all emitted for the interval since the
          previous call, ``(last t, t]`` (the first call also covers the start itself), each
          at its own time with its own device timestamp. Something that happens while the
          device is out of range is sent when it is back (with the time it was measured);
          what happens while it is dead is lost.
        * Continuous characteristics (heart rate, respiratory rate, PLX continuous) give at
          most one emission per call each, carrying the state at ``t``, and only when at least
          :attr:`cadence` seconds have passed since the previous one; there is no catch-up, so
          a runtime calling once per wall second at speed 60 gets one notification per wall
          second. A heart rate carries the RR intervals of the beats since the previous one,
          the latest that fit a 20-byte payload (9).
        * Nothing is emitted at a time when :meth:`radio` is not ON (a continuous notification
          is simply not made).
        * A ``t`` that is not after the previous one returns nothing.
        """
        lo = self._cursor
        if t <= lo:
            return []
        self._cursor = t
        out: list[Emission] = []
        for item in self._timed(lo, t):
            value = self._timed_value(item)
            if value is not None:
                out.append(self._emit(value, item.time))
        if self.radio(t) is RadioState.ON:
            out.extend(self._continuous(t))
        if self._sink is not None:
            for emission in out:
                self._sink.emitted(
                    self.id,
                    self.resident,
                    emission.time,
                    emission.value,
                    malformed=emission.malformed,
                    artefact=self.artefact_at(emission.time) if emission.artefact else None,
                )
            self._sink.advanced(self.id, t)
        return out

    def _due(self, characteristic: uuid.UUID, t: float) -> bool:
        last = self._last.get(characteristic)
        if last is not None and t - last < self.cadence:
            return False
        self._last[characteristic] = t
        return True

    def _dropped_at(self, characteristic: uuid.UUID, t: float) -> bool:
        rate = self.config.drop_rate
        if rate <= 0.0:
            return False
        lane = int.from_bytes(characteristic.bytes[:4], "little")
        if self._fault_noise.at(t, 0.001, lane) < rate:
            self._dropped += 1
            return True
        return False

    def _continuous(self, t: float) -> list[Emission]:
        out: list[Emission] = []
        kind = self.kind
        if kind is DeviceKind.WEARABLE:
            previous = self._last.get(HEART_RATE)
            if self._due(HEART_RATE, t) and not self._dropped_at(HEART_RATE, t):
                value, artefact = self._heart_rate(t, previous)
                out.append(self._emit(value, t, artefact=artefact))
            if self._due(RESPIRATORY_RATE, t) and not self._dropped_at(RESPIRATORY_RATE, t):
                out.append(self._emit(self._respiratory_rate(t), t))
        elif (
            kind is DeviceKind.PULSE_OXIMETER
            and self._due(PLX_CONTINUOUS, t)
            and not self._dropped_at(PLX_CONTINUOUS, t)
        ):
            plx, artefact = self._plx_continuous(t)
            out.append(self._emit(plx, t, artefact=artefact))
        return out

    def _emit(self, value: Measurement, time: float, *, artefact: bool = False) -> Emission:
        characteristic = _uuid_of(value)
        payload = gatt.encode(value)
        malformed = False
        rate = self.config.malformed_rate
        if rate > 0.0:
            lane = 1 + int.from_bytes(characteristic.bytes[:4], "little")
            if self._fault_noise.at(time, 0.001, lane) < rate:
                payload = _truncated(characteristic, payload)
                malformed = True
                self._malformed += 1
        self._emitted += 1
        if artefact:
            self._artefact_count += 1
        return Emission(
            device=self.id,
            characteristic=characteristic,
            value=value,
            payload=payload,
            time=time,
            indicate=characteristic in INDICATED,
            artefact=artefact,
            malformed=malformed,
        )

    # --- values ----------------------------------------------------------------------------

    def _heart_rate(self, t: float, previous: float | None) -> tuple[HeartRateMeasurement, bool]:
        if not self.contact(t):
            return HeartRateMeasurement(heart_rate=0, sensor_contact=False), False
        artefact = self._artefact(t)
        if artefact is not None:
            return HeartRateMeasurement(heart_rate=artefact.value, sensor_contact=True), True
        rate = round(self.physiology.at(t).heart_rate)
        wide = rate > 255
        room = (_MAX_PAYLOAD - (3 if wide else 2)) // 2
        since = t - self.cadence if previous is None else previous
        beats = self.physiology.rr_intervals(max(since, t - 15.0), t)[-room:]
        intervals = tuple(min(0xFFFF, round(interval * 1024)) for _, interval in beats)
        return (
            HeartRateMeasurement(
                heart_rate=rate,
                sensor_contact=True,
                rr_intervals=intervals or None,
                uint16_format=wide,
            ),
            False,
        )

    def _respiratory_rate(self, t: float) -> RespiratoryRate:
        if not self.contact(t):
            return RespiratoryRate(breaths_per_minute=None, sensor_contact=False)
        rate = float(round(self.physiology.at(t).respiratory_rate))
        return RespiratoryRate(breaths_per_minute=rate, sensor_contact=True)

    def _plx_continuous(self, t: float) -> tuple[PlxContinuousMeasurement, bool]:
        if not self.contact(t):
            return (
                PlxContinuousMeasurement(
                    spo2=None,
                    pulse_rate=None,
                    measurement_status=PlxMeasurementStatus.MEASUREMENT_UNAVAILABLE,
                    device_sensor_status=PlxDeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER,
                ),
                False,
            )
        vitals = self.physiology.at(t)
        pulse = float(round(vitals.heart_rate))
        artefact = self._artefact(t)
        if artefact is not None:
            return PlxContinuousMeasurement(spo2=float(artefact.value), pulse_rate=pulse), True
        spo2 = float(min(100, round(vitals.spo2)))
        return PlxContinuousMeasurement(spo2=spo2, pulse_rate=pulse), False

    def _timed_value(self, item: _Timed) -> Measurement | None:
        match item.what:
            case "battery":
                return BatteryLevel(item.percent)
            case "heartbeat":
                return BatteryLevel(self.battery(item.time))
            case "event":
                assert item.event is not None
                self._pendant_sequence = (self._pendant_sequence + 1) % 0x10000
                return PendantEvent(
                    event=item.event,
                    sequence=self._pendant_sequence,
                    timestamp=self.local_time(item.measured),
                )
        return self._spot_value(item.measured)

    def _spot_value(self, measured: float) -> Measurement | None:
        vitals = self.physiology.at(measured)
        stamp = self.local_time(measured)
        noise = self._spot_noise
        knot = math.floor(measured)
        profile: Profile = self.physiology.profile
        match self.kind:
            case DeviceKind.THERMOMETER:
                reading = round(vitals.temperature + 0.08 * noise.gaussian(knot, 1), 1)
                return TemperatureMeasurement(
                    temperature=reading,
                    timestamp=stamp,
                    temperature_type=TemperatureType.TYMPANUM,
                )
            case DeviceKind.BP_CUFF:
                return _blood_pressure(vitals, stamp, noise, knot, self.config.user_id)
            case DeviceKind.SCALE:
                kilograms = vitals.weight + 0.05 * noise.gaussian(knot, 1)
                weight = round(round(kilograms / 0.005) * 0.005, 3)
                height = round(profile.height, 3)
                return WeightMeasurement(
                    weight=weight,
                    timestamp=stamp,
                    user_id=self.config.user_id,
                    bmi=round(weight / (height * height), 1),
                    height=height,
                )
            case DeviceKind.GLUCOSE_METER:
                if vitals.glucose is None:
                    return None
                tenths = round((vitals.glucose + 0.2 * noise.gaussian(knot, 1)) * 10)
                self._glucose_sequence = (self._glucose_sequence + 1) % 0x10000
                return GlucoseMeasurement(
                    sequence_number=self._glucose_sequence,
                    base_time=stamp,
                    time_offset=0,
                    concentration=float(Decimal(max(11, tenths)) / Decimal(10_000)),
                    unit=GlucoseConcentrationUnit.MOL_PER_L,
                    sample_type=GlucoseType.CAPILLARY_PLASMA,
                    sample_location=SampleLocation.FINGER,
                )
            case DeviceKind.PULSE_OXIMETER:
                if not self.contact(measured):
                    return None
                return PlxSpotCheckMeasurement(
                    spo2=float(min(100, round(vitals.spo2))),
                    pulse_rate=float(round(vitals.heart_rate)),
                    timestamp=stamp,
                )
        return None


def _blood_pressure(
    vitals: VitalSigns, stamp: dt.datetime, noise: Noise, knot: int, user_id: int
) -> BloodPressureMeasurement:
    systolic = round(vitals.systolic + 4.0 * noise.gaussian(knot, 1))
    diastolic = min(systolic - 15, round(vitals.diastolic + 3.0 * noise.gaussian(knot, 2)))
    mean = round(diastolic + (systolic - diastolic) / 3.0)
    moving = vitals.activity > 0.5
    return BloodPressureMeasurement(
        systolic=float(systolic),
        diastolic=float(diastolic),
        mean_arterial=float(mean),
        timestamp=stamp,
        pulse_rate=float(round(vitals.heart_rate + 2.0 * noise.gaussian(knot, 3))),
        user_id=user_id,
        status=BloodPressureStatus.BODY_MOVEMENT if moving else BloodPressureStatus(0),
    )


def _uuid_of(value: Measurement) -> uuid.UUID:
    found = gatt.characteristic_uuid(value)
    return found if isinstance(found, uuid.UUID) else _sig(found)


def _truncated(characteristic: uuid.UUID, payload: bytes) -> bytes:
    """The longest proper prefix of ``payload`` that does not decode."""
    for size in range(len(payload) - 1, -1, -1):
        candidate = payload[:size]
        try:
            gatt.decode(characteristic, candidate)
        except gatt.DecodeError:
            return candidate
    return b""  # pragma: no cover - the empty payload never decodes


def _static_random_address(device_id: str) -> str:
    """A static random BD_ADDR (two top bits set) derived from the device id."""
    raw = bytearray(hashlib.blake2b(device_id.encode(), digest_size=6, person=b"bdaddr").digest())
    raw[0] |= 0xC0
    if raw[1:] in (b"\x00" * 5, b"\xff" * 5) and raw[0] in (0xC0, 0xFF):
        raw[5] ^= 0x01
    return ":".join(f"{byte:02X}" for byte in raw)


# --- the whole site ---------------------------------------------------------------------


def _weight_of(physiology: Physiology) -> Callable[[float], float]:
    def weight(t: float) -> float:
        return physiology.at(t, perturbed=False).weight

    return weight


def _as_time(start: dt.datetime | float) -> float:
    if isinstance(start, dt.datetime):
        if start.tzinfo is None:
            raise ValueError("the simulation start must be an aware datetime")
        return start.timestamp()
    return float(start)


class Simulation:
    """Every device of a site, with its residents' physiology, the scenarios and the truth.

    ``Simulation(site, seed=1, start=datetime(..., tzinfo=UTC))`` builds one
    :class:`Physiology` per resident and one :class:`DeviceFirmware` per device, all seeded
    from ``seed``, with ``scenarios`` (the site's own when None; pass ``[*site.scenarios,
    *extra]`` to add to them or ``[]`` for none). Every firmware reports to one
    :class:`TruthRecorder`, so whether the runtime calls :meth:`advance_all` or each
    device's ``advance`` in turn, :meth:`truth_events` is the same. Raises
    :class:`ScenarioError` for a scenario that does not fit the site.
    """

    __slots__ = ("_by_id", "devices", "recorder", "residents", "scenarios", "seed", "site", "start")

    def __init__(
        self,
        site: Site,
        *,
        seed: int,
        start: dt.datetime | float,
        scenarios: Sequence[ScenarioSpec] | None = None,
    ) -> None:
        self.site = site
        self.seed = seed
        self.start = _as_time(start)
        zone = site.zone
        specs = site.scenarios if scenarios is None else tuple(scenarios)
        for spec in specs:
            site.check_scenario(spec)

        profiles = {resident.id: resident.profile() for resident in site.residents}
        seeds = {rid: derive_seed(seed, "resident", rid) for rid in profiles}
        compiled: list[Scenario] = []
        names: dict[str, int] = {}
        for spec in specs:
            resident = site.resident(spec.resident)
            baseline = Physiology(profiles[resident.id], seeds[resident.id], zone=zone)
            label = spec.name or spec.describe()
            names[label] = names.get(label, 0) + 1
            if names[label] > 1:
                label = f"{label}#{names[label]}"
            try:
                compiled.append(
                    compile_scenario(
                        spec,
                        sim_start=self.start,
                        zone=zone,
                        profile=profiles[resident.id],
                        devices={device.id: device.kind for device in resident.devices},
                        baseline_weight=_weight_of(baseline),
                        name=label,
                    )
                )
            except ScenarioError as exc:
                raise ScenarioError(f"{spec.describe()}: {exc}") from None
        self.scenarios: tuple[Scenario, ...] = tuple(compiled)

        self.residents: Mapping[str, Physiology] = {
            rid: Physiology(
                profile,
                seeds[rid],
                zone=zone,
                perturbations=[
                    scenario.perturbation
                    for scenario in compiled
                    if scenario.resident == rid and scenario.perturbation is not None
                ],
            )
            for rid, profile in profiles.items()
        }
        self.recorder = TruthRecorder(
            compiled,
            devices=[device.id for _, device in site.devices()],
            profiles=profiles,
            silence=self._silence,
        )
        firmware: list[DeviceFirmware] = []
        for resident, device in site.devices():
            config = DeviceConfig(
                id=device.id,
                kind=device.kind,
                resident=resident.id,
                name=device.name,
                cadence=None if device.cadence is None else device.cadence.total_seconds(),
                battery=device.battery,
                battery_days=device.battery_days,
                recharge_below=device.recharge_below,
                drop_rate=device.drop_rate,
                malformed_rate=device.malformed_rate,
                artefacts_per_hour=device.artefacts_per_hour,
                schedule=device.schedule
                if device.schedule is not None
                else site.schedules.for_kind(device.kind),
                jitter=site.schedules.jitter.total_seconds(),
                user_id=device.user_id,
            )
            firmware.append(
                DeviceFirmware(
                    config,
                    self.residents[resident.id],
                    seed=derive_seed(seed, "device", device.id),
                    start=self.start,
                    zone=zone,
                    scenarios=[s for s in compiled if s.resident == resident.id],
                    sink=self.recorder,
                )
            )
        self.devices: tuple[DeviceFirmware, ...] = tuple(firmware)
        self._by_id = {device.id: device for device in firmware}

    def _silence(self, device: str, after: float) -> float | None:
        return self._by_id[device].goes_silent(after)

    @property
    def start_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.start, dt.UTC)

    def device(self, device_id: str) -> DeviceFirmware:
        return self._by_id[device_id]

    def advance_all(self, t: float) -> list[Emission]:
        """Advance every device to ``t``; their emissions, in time order."""
        out: list[Emission] = []
        for device in self.devices:
            out.extend(device.advance(t))
        out.sort(key=lambda emission: emission.time)
        return out

    def vitals(self, resident: str, t: float) -> VitalSigns:
        """A resident's true state at ``t`` (scenarios included)."""
        return self.residents[resident].at(t)

    def truth_events(self) -> tuple[TruthEvent, ...]:
        """Every ground-truth event so far (see :class:`TruthRecorder`)."""
        return self.recorder.events()

    def labels_at(self, t: float) -> tuple[TruthEvent, ...]:
        """The ground-truth events under way at simulated time ``t``."""
        return self.recorder.active(t)

    def spot_checks(self) -> tuple[SpotCheck, ...]:
        """Extra spot measurements the scenarios asked for."""
        return tuple(check for scenario in self.scenarios for check in scenario.checks)
