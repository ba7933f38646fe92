"""firmware_sim.physiology: plausible, deterministic residents."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from firmware_sim.noise import derive_seed
from firmware_sim.physiology import Consciousness, Physiology, Profile, VitalSigns
from firmware_sim.site import SEEDS_DIR, Site, load_site

LONDON = ZoneInfo("Europe/London")
# A week that contains the switch to British Summer Time (30 March 2025).
WEEK_START = dt.datetime(2025, 3, 26, tzinfo=dt.UTC).timestamp()
SEED = 7


@pytest.fixture(scope="module")
def oak_house() -> Site:
    return load_site(SEEDS_DIR / "oak-house.toml")


def _controls(site: Site) -> list[str]:
    with_scenario = {spec.resident for spec in site.scenarios}
    return [r.id for r in site.residents if r.id not in with_scenario]


def _physiology(site: Site, resident: str, seed: int = SEED) -> Physiology:
    return Physiology(
        site.resident(resident).profile(), derive_seed(seed, "resident", resident), zone=site.zone
    )


def _week(physiology: Physiology) -> Iterator[tuple[float, VitalSigns]]:
    for minute in range(7 * 24 * 60):
        t = WEEK_START + 60.0 * minute
        yield t, physiology.at(t)


def test_the_demo_home_has_controls(oak_house: Site) -> None:
    assert len(_controls(oak_house)) >= 3


def test_a_week_of_every_control_is_plausible(oak_house: Site) -> None:
    for resident in _controls(oak_house):
        profile = oak_house.resident(resident).profile()
        physiology = _physiology(oak_house, resident)
        by_hour_temp: dict[int, list[float]] = defaultdict(list)
        asleep_at: dict[int, list[bool]] = defaultdict(list)
        hr_asleep: list[float] = []
        hr_awake: list[float] = []
        spo2s: list[float] = []
        for t, v in _week(physiology):
            where = f"{resident} at {dt.datetime.fromtimestamp(t, LONDON)}: {v}"
            assert 45 <= v.heart_rate <= 130, where
            assert 8 <= v.respiratory_rate <= 25, where
            assert 35.5 <= v.temperature <= 37.8, where
            assert 90 <= v.systolic <= 200, where
            assert 45 <= v.diastolic <= 120, where
            assert v.systolic - v.diastolic >= 20, where
            assert abs(v.weight - profile.weight) <= 1.0, where
            assert 0.0 <= v.activity <= 1.0, where
            assert v.consciousness is Consciousness.ALERT
            if profile.copd:
                assert 84 <= v.spo2 <= 97, where
            else:
                assert 88 <= v.spo2 <= 100, where
            if profile.glucose is None:
                assert v.glucose is None
            else:
                assert v.glucose is not None
                assert 3.0 <= v.glucose <= 20.0, where
            local = dt.datetime.fromtimestamp(t, LONDON)
            by_hour_temp[local.hour].append(v.temperature)
            asleep_at[local.hour].append(v.asleep)
            (hr_asleep if v.asleep else hr_awake).append(v.heart_rate)
            spo2s.append(v.spo2)
        # Circadian: lower heart rate asleep, temperature trough early morning, peak evening.
        assert statistics.fmean(hr_asleep) < statistics.fmean(hr_awake) - 5, resident
        means = {hour: statistics.fmean(values) for hour, values in by_hour_temp.items()}
        assert min(means, key=means.__getitem__) in (2, 3, 4, 5, 6), (resident, means)
        assert max(means, key=means.__getitem__) in (16, 17, 18, 19), (resident, means)
        assert means[18] - means[4] > 0.35
        assert statistics.fmean(asleep_at[3]) > 0.9, resident
        assert statistics.fmean(asleep_at[11]) < 0.1, resident
        asleep = sum(sum(values) for values in asleep_at.values()) / (7 * 24 * 60)
        assert 0.3 < asleep < 0.48, resident
        assert abs(statistics.fmean(spo2s) - profile.spo2) < 1.5, resident


def _rmssd(intervals: list[float]) -> float:
    diffs = [b - a for a, b in itertools.pairwise(intervals)]
    return math.sqrt(statistics.fmean(d * d for d in diffs))


def test_beats_have_elderly_hrv_and_follow_the_heart_rate(oak_house: Site) -> None:
    for resident in _controls(oak_house):
        physiology = _physiology(oak_house, resident)
        rmssds = []
        for hour in range(0, 24, 3):
            t0 = WEEK_START + hour * 3600.0
            beats = physiology.rr_intervals(t0, t0 + 300.0)
            intervals = [interval for _, interval in beats]
            assert all(0.3 < interval < 2.0 for interval in intervals)
            rmssds.append(1000 * _rmssd(intervals))
            beat_rate = 60.0 / statistics.fmean(intervals)
            true_rate = statistics.fmean(physiology.at(t0 + s).heart_rate for s in range(0, 300, 5))
            assert abs(beat_rate - true_rate) < 3.0, (resident, hour, beat_rate, true_rate)
        assert all(10 < value < 50 for value in rmssds), (resident, rmssds)
        assert 15 <= statistics.fmean(rmssds) <= 35, (resident, rmssds)


def test_beats_do_not_depend_on_how_they_are_asked_for(oak_house: Site) -> None:
    t0 = WEEK_START + 1234.5
    whole = _physiology(oak_house, "r01").beats(t0, t0 + 200.0)
    pieces = _physiology(oak_house, "r01")
    parts = [beat for k in range(20) for beat in pieces.beats(t0 + 10 * k, t0 + 10 * (k + 1))]
    assert parts == whole
    intervals = _physiology(oak_house, "r01").rr_intervals(t0, t0 + 200.0)
    assert [time for time, _ in intervals] == whole
    assert all(math.isclose(b[1], b[0] - a[0]) for a, b in itertools.pairwise(intervals))
    assert _physiology(oak_house, "r01").beats(t0, t0) == []


def test_same_seed_same_state_and_another_seed_differs(oak_house: Site) -> None:
    times = [WEEK_START + 3600.0 * k + 0.25 for k in range(48)]
    one = [_physiology(oak_house, "r03").at(t) for t in times]
    again = _physiology(oak_house, "r03")
    assert [again.at(t) for t in reversed(times)][::-1] == one
    other = [_physiology(oak_house, "r03", seed=SEED + 1).at(t) for t in times]
    assert other != one


def test_copd_resident_runs_on_scale_2(oak_house: Site) -> None:
    profile = oak_house.resident("r11").profile()
    assert profile.copd
    assert profile.on_oxygen
    assert profile.spo2_scale == 2
    physiology = _physiology(oak_house, "r11")
    values = [physiology.at(WEEK_START + 600.0 * k).spo2 for k in range(1000)]
    assert 88 <= statistics.fmean(values) <= 92


def test_glucose_peaks_after_meals(oak_house: Site) -> None:
    physiology = _physiology(oak_house, "r12")
    rises = 0
    for day in range(7):
        midnight = dt.datetime(2025, 3, 26, tzinfo=LONDON) + dt.timedelta(days=day)
        before = physiology.at((midnight + dt.timedelta(hours=7, minutes=30)).timestamp())
        after = physiology.at((midnight + dt.timedelta(hours=9)).timestamp())
        assert before.glucose is not None
        assert after.glucose is not None
        rises += after.glucose > before.glucose + 1.0
    assert rises >= 6


def test_weight_changes_little_from_day_to_day(oak_house: Site) -> None:
    physiology = _physiology(oak_house, "r01")
    weights = [physiology.at(WEEK_START + 7 * 3600 + 86_400.0 * day).weight for day in range(30)]
    steps = [abs(b - a) for a, b in itertools.pairwise(weights)]
    assert max(steps) < 0.8
    assert statistics.pstdev(weights) > 0.05


@dataclasses.dataclass(frozen=True)
class _Bedridden:
    def behaviour(self, t: float, activity: float, asleep: bool) -> tuple[float, bool]:
        return 0.0, False

    def vitals(self, t: float, vitals: VitalSigns) -> VitalSigns:
        return dataclasses.replace(vitals, temperature=vitals.temperature + 1.0)


def test_perturbations_change_behaviour_first_then_vitals() -> None:
    profile = Profile(activity=1.0)
    plain = Physiology(profile, 3, zone=LONDON)
    bedridden = Physiology(profile, 3, zone=LONDON, perturbations=[_Bedridden()])
    times = [WEEK_START + 37_000.0 + 60.0 * k for k in range(600)]
    for t in times:
        changed = bedridden.at(t)
        base = plain.at(t)
        assert changed.activity == 0.0
        assert not changed.asleep
        assert math.isclose(changed.temperature, base.temperature - 0.1 * base.activity + 1.0)
        assert bedridden.at(t, perturbed=False) == base
    assert max(bedridden.at(t).heart_rate for t in times) < max(
        plain.at(t).heart_rate for t in times
    )
