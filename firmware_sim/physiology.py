"""The true physiological state of one simulated resident, as a pure function of time.

``Physiology(profile, seed, zone=...).at(t)`` gives the :class:`VitalSigns` at simulated Unix
time ``t`` (seconds, float). Local time of day (for the circadian rhythm, sleep and meals)
comes from the site's time zone. Nothing is stateful except memo caches: the same
``(profile, seed, perturbations, t)`` always gives the same values, whatever was asked before.

The model, for an elderly resident (every amplitude below is a typical figure, varied per
resident and per day from the seed):

* **Sleep**: a nightly window from the profile (``22:00``-``07:00``), each edge shifted by up to
  +-30 min per night, with 0-2 short night-time wakings (bathroom) and an afternoon nap on
  about a third of days.
* **Activity** (0..1): about 0.08 awake at rest; episodes of 3-12 min (walking, washing,
  meals) come in 15-minute slots, more often in the morning and afternoon and more often for an
  active profile, with intensity 0.3-1; about 0.01 asleep.
* **Heart rate**: the profile's awake resting rate, a circadian swing of +-3 bpm (trough
  ~04:00), 7 bpm lower asleep, +15..30 bpm at full activity, and slow (10 min) and fast (45 s)
  fluctuations of a few bpm. **Beats** (:meth:`Physiology.beats`) follow the heart rate with
  beat-to-beat variability matching the profile's RMSSD (15-35 ms is typical at this age).
* **Respiratory rate**: baseline, 1.5/min lower asleep, +3..6/min at full activity.
* **SpO2**: baseline with +-1 % slow variation, 1 % lower asleep; COPD residents (NEWS2 SpO2
  scale 2, baseline 88-92 %) desaturate by up to 2 % on exertion.
* **Temperature**: baseline mean +-0.3 degC diurnal, trough ~04:00 and peak ~18:00 (asymmetric:
  14 h rising, 10 h falling), +0.1 degC with activity.
* **Blood pressure**: circadian swing, a nocturnal dip (-12/-7 mmHg), a morning surge in the two
  hours after waking, +15/+6 mmHg at full activity, slow variation of +-6/+-4 mmHg.
* **Weight**: baseline, day-to-day noise of +-0.3 kg and a slow drift of +-0.2 kg.
* **Glucose** (only when the profile has a fasting glucose): meal peaks after ~50 min (3-5
  mmol/L for a diabetic profile, i.e. fasting >= 7, 1.5-2.5 otherwise) at about 08:00, 12:30 and
  17:30, a dawn rise, slow variation.

Scenarios (``firmware_sim.scenarios``) change the state through :class:`Perturbation`\\s: first
the behaviour (activity, sleep), from which the vitals are derived, then the vitals themselves.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final, Protocol

from firmware_sim.noise import Noise, smoothstep

__all__ = [
    "BEAT_BLOCK_SECONDS",
    "Consciousness",
    "Perturbation",
    "Physiology",
    "Profile",
    "VitalSigns",
]

_TAU: Final = 2.0 * math.pi
_DAY: Final = 86_400.0
_ACTIVITY_SLOT: Final = 900.0
BEAT_BLOCK_SECONDS: Final = 60.0
"""Beats are laid out in blocks of this many seconds (aligned to Unix time)."""
_BEAT_KNOTS: Final = 4
_BEAT_CACHE: Final = 16


class Consciousness(StrEnum):
    """The ACVPU scale NEWS2 uses."""

    ALERT = "A"
    CONFUSION = "C"
    """New confusion."""
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"


@dataclass(slots=True, frozen=True)
class Profile:
    """A resident's baselines and habits (what a care plan would note)."""

    heart_rate: float = 72.0
    """Resting heart rate while awake, bpm."""
    spo2: float = 96.0
    """Resting SpO2 awake, %. 88-92 for a COPD resident on NEWS2 scale 2."""
    respiratory_rate: float = 15.0
    """Breaths per minute at rest."""
    temperature: float = 36.6
    """Mean body temperature over the day, degC."""
    systolic: float = 130.0
    """Daytime resting systolic pressure, mmHg."""
    diastolic: float = 78.0
    weight: float = 70.0
    """kg."""
    height: float = 1.65
    """m."""
    glucose: float | None = None
    """Fasting blood glucose in mmol/L, or None when the resident's glucose is not followed."""
    rmssd_ms: float = 25.0
    """Beat-to-beat variability (root mean square of successive RR differences), ms."""
    sleep_start: dt.time = dt.time(22, 0)
    sleep_end: dt.time = dt.time(7, 0)
    activity: float = 0.5
    """How active the resident is, 0 (bed-bound) to 1 (walks a lot)."""
    copd: bool = False
    """Chronic hypercapnic respiratory failure: SpO2 target 88-92 %, NEWS2 SpO2 scale 2."""
    on_oxygen: bool = False
    """Receives supplemental oxygen (NEWS2 adds 2 points)."""

    @property
    def spo2_scale(self) -> int:
        """The NEWS2 SpO2 scale: 2 for a COPD resident with a 88-92 % target, else 1."""
        return 2 if self.copd else 1


@dataclass(slots=True, frozen=True)
class VitalSigns:
    """The true state of a resident at one instant (no device error in it)."""

    heart_rate: float
    """bpm."""
    spo2: float
    """%."""
    respiratory_rate: float
    """Breaths per minute."""
    temperature: float
    """degC."""
    systolic: float
    """mmHg."""
    diastolic: float
    """mmHg."""
    weight: float
    """kg."""
    glucose: float | None
    """mmol/L, or None for a resident whose glucose is not modelled."""
    activity: float
    """0 (still) .. 1 (vigorous for this resident)."""
    asleep: bool
    consciousness: Consciousness = Consciousness.ALERT


class Perturbation(Protocol):
    """How a scenario changes a resident. Both methods return their input unchanged outside
    the scenario's time window."""

    def behaviour(self, t: float, activity: float, asleep: bool) -> tuple[float, bool]:
        """Change activity and sleep, before the vitals are derived from them."""
        ...

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        """Change the vitals derived from the (possibly changed) behaviour."""
        ...


def _seconds(value: dt.time) -> float:
    return value.hour * 3600.0 + value.minute * 60.0 + value.second


def _diurnal_temperature(hour: float) -> float:
    """-1 at 04:00 rising to +1 at 18:00 (14 h), falling back by 04:00 (10 h)."""
    if 4.0 <= hour < 18.0:
        return math.cos(math.pi + math.pi * (hour - 4.0) / 14.0)
    since_peak = (hour - 18.0) % 24.0
    return math.cos(math.pi * since_peak / 10.0)


def _activity_chance(hour: float) -> float:
    if 7.0 <= hour < 12.0:
        return 0.45
    if 12.0 <= hour < 14.0:
        return 0.3
    if 14.0 <= hour < 18.0:
        return 0.4
    if 18.0 <= hour < 21.0:
        return 0.25
    return 0.1


_STREAMS: Final = (
    "traits",
    "hr",
    "hr-fast",
    "rr",
    "rr-fast",
    "spo2",
    "spo2-fast",
    "temp",
    "sbp",
    "dbp",
    "weight",
    "weight-drift",
    "sleep",
    "nap",
    "night-waking",
    "activity",
    "glucose",
    "beats",
)

_MEALS: Final = (8.0 * 3600, 12.5 * 3600, 17.5 * 3600)
_MEAL_PEAK: Final = 50.0 * 60
_MEAL_SPAN: Final = 5.0 * 3600


@dataclass(slots=True, frozen=True)
class _DayPlan:
    """What is drawn once per local day (times in seconds from that day's local midnight)."""

    night: tuple[float, float]
    """The sleep window of the night that starts this evening (the end is past midnight)."""
    wakings: tuple[tuple[float, float], ...]
    """Night-time wakings in that window."""
    nap: tuple[float, float] | None
    meals: tuple[tuple[float, float], ...]
    """(time, glucose rise in mmol/L)."""
    weight: float
    """kg above the profile's weight."""


class Physiology:
    """One resident's physiology; see the module docstring for the model.

    ``seed`` should be the resident's own seed (``noise.derive_seed(site_seed, "resident",
    id)``), ``zone`` the site's time zone, ``perturbations`` the scenarios acting on the
    resident, applied in order.
    """

    __slots__ = (
        "_beat_cache",
        "_hr_gain",
        "_last",
        "_plans",
        "_rr_gain",
        "_sleep_end",
        "_sleep_start",
        "_streams",
        "perturbations",
        "profile",
        "seed",
        "zone",
    )

    def __init__(
        self,
        profile: Profile,
        seed: int,
        *,
        zone: dt.tzinfo = dt.UTC,
        perturbations: Sequence[Perturbation] = (),
    ) -> None:
        self.profile = profile
        self.seed = seed
        self.zone = zone
        self.perturbations = tuple(perturbations)
        noise = Noise.of(seed, "physiology")
        self._streams = {name: noise.child(name) for name in _STREAMS}
        traits = self._streams["traits"]
        self._hr_gain = traits.between(0, 15.0, 30.0)
        self._rr_gain = traits.between(1, 3.0, 6.0)
        self._sleep_start = _seconds(profile.sleep_start)
        end = _seconds(profile.sleep_end)
        self._sleep_end = end if end > self._sleep_start else end + _DAY
        self._last: tuple[float, bool, VitalSigns] | None = None
        self._beat_cache: dict[int, tuple[float, ...]] = {}
        self._plans: dict[int, _DayPlan] = {}

    # --- the state -------------------------------------------------------------------------

    def at(self, t: float, *, perturbed: bool = True) -> VitalSigns:
        """The true vital signs at simulated Unix time ``t``; ``perturbed=False`` leaves the
        scenarios out (the resident as they would have been)."""
        last = self._last
        if last is not None and last[0] == t and last[1] == perturbed:
            return last[2]
        vitals = self._compute(t, perturbed)
        self._last = (t, perturbed, vitals)
        return vitals

    def _compute(self, t: float, perturbed: bool) -> VitalSigns:
        profile = self.profile
        streams = self._streams
        local = dt.datetime.fromtimestamp(t, self.zone)
        day = local.toordinal()
        sec = local.hour * 3600.0 + local.minute * 60.0 + local.second + local.microsecond / 1e6
        hour = sec / 3600.0

        asleep, waking, since_wake = self._sleep(day, sec)
        if asleep:
            activity = 0.01
        elif waking:
            activity = 0.25
        else:
            activity = self._activity(t, hour)
        if perturbed:
            for perturbation in self.perturbations:
                activity, asleep = perturbation.behaviour(t, activity, asleep)
        activity = min(1.0, max(0.0, activity))

        circadian = math.cos(_TAU * (hour - 16.0) / 24.0)
        sleeping = 1.0 if asleep else 0.0
        surge = 0.0 if since_wake is None else max(0.0, 1.0 - since_wake / 7200.0)

        heart_rate = (
            profile.heart_rate
            + 3.0 * circadian
            - 7.0 * sleeping
            + self._hr_gain * activity
            + 3.0 * streams["hr"].smooth(t, 600.0)
            + 1.5 * streams["hr-fast"].smooth(t, 45.0)
        )
        respiratory_rate = (
            profile.respiratory_rate
            - 1.5 * sleeping
            + self._rr_gain * activity
            + 1.0 * streams["rr"].smooth(t, 300.0)
            + 0.5 * streams["rr-fast"].smooth(t, 30.0)
        )
        exertion = 2.0 if profile.copd else 0.3
        spo2 = min(
            100.0,
            profile.spo2
            - 1.0 * sleeping
            - exertion * activity
            + 0.8 * streams["spo2"].smooth(t, 240.0)
            + 0.4 * streams["spo2-fast"].smooth(t, 20.0),
        )
        temperature = (
            profile.temperature
            + 0.3 * _diurnal_temperature(hour)
            + 0.1 * activity
            + 0.08 * streams["temp"].smooth(t, 3600.0)
        )
        systolic = (
            profile.systolic
            + 5.0 * circadian
            - 12.0 * sleeping
            + 8.0 * surge
            + 15.0 * activity
            + 6.0 * streams["sbp"].smooth(t, 1800.0)
        )
        diastolic = (
            profile.diastolic
            + 3.0 * circadian
            - 7.0 * sleeping
            + 4.0 * surge
            + 6.0 * activity
            + 4.0 * streams["dbp"].smooth(t, 1800.0)
        )
        weight = profile.weight + self._plan(day).weight
        glucose = None if profile.glucose is None else self._glucose(t, day, sec, hour)

        vitals = VitalSigns(
            heart_rate=heart_rate,
            spo2=spo2,
            respiratory_rate=respiratory_rate,
            temperature=temperature,
            systolic=systolic,
            diastolic=diastolic,
            weight=weight,
            glucose=glucose,
            activity=activity,
            asleep=asleep,
        )
        if perturbed:
            for perturbation in self.perturbations:
                vitals = perturbation.vitals(t, vitals)
        return _clamped(vitals)

    def _plan(self, day: int) -> _DayPlan:
        """The draws that are fixed for a local day (memoised: they are asked for often)."""
        plan = self._plans.get(day)
        if plan is not None:
            return plan
        streams = self._streams
        jitter = streams["sleep"]
        start = self._sleep_start + jitter.between(day, -1800.0, 1800.0, 1)
        end = self._sleep_end + jitter.between(day, -1800.0, 1800.0, 2)
        wakings = []
        draws = streams["night-waking"]
        for index in range(2):
            if draws.uniform(day, 10 * index) < 0.6:
                at = start + (end - start) * draws.between(day, 0.2, 0.85, 10 * index + 1)
                wakings.append((at, at + draws.between(day, 240.0, 720.0, 10 * index + 2)))
        nap_draws = streams["nap"]
        nap = None
        if nap_draws.uniform(day) < 0.35:
            nap_start = nap_draws.between(day, 13.5 * 3600, 15.0 * 3600, 1)
            nap = (nap_start, nap_start + nap_draws.between(day, 1200.0, 3600.0, 2))
        meals = []
        glucose = streams["glucose"]
        diabetic = (self.profile.glucose or 0.0) >= 7.0
        low, high = (3.0, 5.0) if diabetic else (1.5, 2.5)
        for index, meal in enumerate(_MEALS):
            at = meal + glucose.between(day, -1200.0, 1200.0, 2 * index)
            meals.append((at, glucose.between(day, low, high, 2 * index + 1)))
        weight = streams["weight"].between(day, -0.3, 0.3) + 0.2 * streams["weight-drift"].smooth(
            float(day), 10.0
        )
        plan = _DayPlan((start, end), tuple(wakings), nap, tuple(meals), weight)
        if len(self._plans) >= 16:
            del self._plans[next(iter(self._plans))]
        self._plans[day] = plan
        return plan

    def _sleep(self, day: int, sec: float) -> tuple[bool, bool, float | None]:
        """(asleep, awake during the night, seconds since the morning's waking or None).

        The night that starts on local day ``n`` runs from ``plan(n).night[0]`` to
        ``plan(n).night[1]`` seconds after that day's local midnight."""
        since_wake: float | None = None
        for night, position in ((day, sec), (day - 1, sec + _DAY)):
            plan = self._plan(night)
            start, end = plan.night
            if start <= position < end:
                waking = any(a <= position < b for a, b in plan.wakings)
                return not waking, waking, None
            if position >= end and position - end < _DAY and since_wake is None:
                since_wake = position - end
        nap = self._plan(day).nap
        if nap is not None and nap[0] <= sec < nap[1]:
            return True, False, since_wake
        return False, False, since_wake

    def _activity(self, t: float, hour: float) -> float:
        noise = self._streams["activity"]
        resting = 0.08 + 0.04 * noise.smooth(t, 300.0)
        slot = math.floor(t / _ACTIVITY_SLOT)
        chance = min(0.9, _activity_chance(hour) * (0.4 + 1.2 * self.profile.activity))
        if noise.uniform(slot) >= chance:
            return resting
        duration = noise.between(slot, 180.0, 720.0, 1)
        onset = slot * _ACTIVITY_SLOT + noise.uniform(slot, 2) * (_ACTIVITY_SLOT - duration)
        into = t - onset
        if not 0.0 <= into <= duration:
            return resting
        intensity = noise.between(slot, 0.3, 1.0, 3)
        envelope = smoothstep(into / 60.0) * smoothstep((duration - into) / 60.0)
        return max(resting, intensity * envelope)

    def _glucose(self, t: float, day: int, sec: float, hour: float) -> float:
        fasting = self.profile.glucose
        assert fasting is not None
        value = fasting + 0.6 * math.exp(-(((hour - 6.5) / 1.5) ** 2))
        for at, size in self._plan(day).meals:
            since = sec - at
            if 0.0 <= since < _MEAL_SPAN:
                x = since / _MEAL_PEAK
                value += size * x * math.exp(1.0 - x)
        value += 0.3 * self._streams["glucose"].smooth(t, 1800.0)
        return value

    # --- beats -----------------------------------------------------------------------------

    def beats(self, t0: float, t1: float) -> list[float]:
        """The times of the heart beats in ``(t0, t1]`` (simulated Unix seconds)."""
        return [time for time, _ in self.rr_intervals(t0, t1)]

    def rr_intervals(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """``(beat time, seconds since the previous beat)`` for every beat in ``(t0, t1]``.

        Beats are laid out per 60-second block: the block's beat count is its integrated heart
        rate (sampled every 10 s, so a changing rate shows), the beats are spaced along that
        rate, and each is shifted by an independent normal jitter of ``rmssd / sqrt(6)``, which
        gives successive RR differences with the profile's RMSSD (a little higher asleep, lower
        during activity). Adjacent blocks join without a gap or a short beat.
        """
        if t1 <= t0:
            return []
        first = math.floor(t0 / BEAT_BLOCK_SECONDS) - 1
        last = math.floor(t1 / BEAT_BLOCK_SECONDS)
        times: list[float] = []
        for block in range(first, last + 1):
            times.extend(self._block(block))
        return [
            (times[i], times[i] - times[i - 1]) for i in range(1, len(times)) if t0 < times[i] <= t1
        ]

    def _block(self, block: int) -> tuple[float, ...]:
        cached = self._beat_cache.get(block)
        if cached is not None:
            return cached
        start = block * BEAT_BLOCK_SECONDS
        step = BEAT_BLOCK_SECONDS / _BEAT_KNOTS
        states = [self.at(start + i * step) for i in range(_BEAT_KNOTS + 1)]
        phase = [0.0]
        for i in range(_BEAT_KNOTS):
            rate = (states[i].heart_rate + states[i + 1].heart_rate) / 120.0
            phase.append(phase[-1] + rate * step)
        total = phase[-1]
        count = max(1, round(total))
        scale = count / total
        state = states[0]
        variability = 1.15 if state.asleep else 1.0 - 0.4 * state.activity
        sigma = self.profile.rmssd_ms / 1000.0 / math.sqrt(6.0) * variability
        jitter = self._streams["beats"]
        beats: list[float] = []
        segment = 0
        for j in range(count):
            target = (j + 0.5) / scale
            while segment < _BEAT_KNOTS - 1 and phase[segment + 1] < target:
                segment += 1
            width = phase[segment + 1] - phase[segment]
            fraction = (target - phase[segment]) / width if width > 0 else 0.0
            time = start + (segment + fraction) * step
            beats.append(time + sigma * jitter.gaussian(block * 1024 + j))
        result = tuple(beats)
        if len(self._beat_cache) >= _BEAT_CACHE:
            del self._beat_cache[next(iter(self._beat_cache))]
        self._beat_cache[block] = result
        return result


def _clamped(vitals: VitalSigns) -> VitalSigns:
    """Keep the state physiologically possible whatever the perturbations did."""
    systolic = min(250.0, max(60.0, vitals.systolic))
    diastolic = min(systolic - 15.0, max(30.0, vitals.diastolic))
    return replace(
        vitals,
        heart_rate=min(230.0, max(25.0, vitals.heart_rate)),
        spo2=min(100.0, max(50.0, vitals.spo2)),
        respiratory_rate=min(60.0, max(4.0, vitals.respiratory_rate)),
        temperature=min(42.5, max(33.0, vitals.temperature)),
        systolic=systolic,
        diastolic=diastolic,
        weight=max(20.0, vitals.weight),
        glucose=None if vitals.glucose is None else min(30.0, max(2.0, vitals.glucose)),
    )
