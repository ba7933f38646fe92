"""Trends against the resident's own baseline: weight gain, temperature rise, night heart
rate rising over days, and the row-wise statistics behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.alerts import (
    AlertEngine,
    Device,
    EngineConfig,
    Resident,
    Roster,
    Samples,
    TrendConfig,
    WeightGainRule,
)
from cloud.alerts.state import METRIC_INDEX
from cloud.alerts.trends import masked_mad, masked_mean, masked_median, masked_slope
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import AlertKind, Severity

T0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
DAY = 86_400.0


def make_engine(config: EngineConfig | None = None, *residents: Resident) -> AlertEngine:
    residents = residents or (Resident("r01"),)
    devices = tuple(
        Device(f"{r.id}-{kind.value}", kind, "gw1", r.id)
        for r in residents
        for kind in (DeviceKind.WEARABLE, DeviceKind.SCALE, DeviceKind.THERMOMETER)
    )
    return AlertEngine(Roster(residents, devices), config, start=T0)


def feed(
    engine: AlertEngine, metric: Metric, times: list[float], values: list[float], resident: int = 0
) -> None:
    n = len(times)
    engine.state.ingest(
        Samples.of(np.full(n, resident), np.full(n, METRIC_INDEX[metric]), times, values)
    )


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def keys(engine: AlertEngine, now: float) -> dict[str, Severity]:
    """The clinical conditions at ``now`` (the devices here are fed without ids, so their
    presence alerts are beside the point)."""
    return {c.key: c.severity for c in engine.evaluate(at(now)) if c.kind is AlertKind.CLINICAL}


# --- weight -----------------------------------------------------------------------------

WEIGHT_KEY = "weight_gain_3d:r01:body_weight"


def daily_weights(
    engine: AlertEngine, weights: list[float], jitter: list[float] | None = None
) -> list[float]:
    """One weighing a day at 08:00 (+ jitter hours); the state is evaluated after each."""
    times = []
    for day, weight in enumerate(weights):
        t = T0.timestamp() + day * DAY + (jitter[day] * 3600 if jitter else 0.0)
        feed(engine, Metric.BODY_WEIGHT, [t], [weight])
        times.append(t)
    return times


def test_weight_gain_over_2_kg_in_3_days_fires() -> None:
    engine = make_engine()
    firing = []
    conditions = []
    weights = [70.0] * 10 + [70.5, 71.3, 72.3, 72.4]
    for day, weight in enumerate(weights):
        t = T0.timestamp() + day * DAY
        feed(engine, Metric.BODY_WEIGHT, [t], [weight])
        firing.append(keys(engine, t + 600).get(WEIGHT_KEY))
        conditions += [c for c in engine.evaluate(at(t)) if c.key == WEIGHT_KEY]
    assert firing[:12] == [None] * 12
    assert firing[12] is Severity.WARNING  # 72.3 against 70.0 three days before
    assert firing[13] is None  # 72.4 against 70.5: +1.9 in these 3 days
    (condition,) = conditions
    assert condition.value == pytest.approx(2.3)
    assert condition.metric is Metric.BODY_WEIGHT


def test_weight_gain_of_exactly_2_kg_does_not_fire() -> None:
    engine = make_engine()
    times = daily_weights(engine, [70.0] * 5 + [72.0])
    assert WEIGHT_KEY not in keys(engine, times[-1])


def test_noisy_stable_weight_never_fires() -> None:
    seed = 6
    rng = np.random.default_rng(seed)
    weights = list(np.round(rng.normal(78.0, 0.4, 150), 1))  # +-0.4 kg: clothes, meals
    jitter = list(rng.uniform(-2, 2, 150))  # weighed at slightly different hours
    engine = make_engine()
    fired = []
    for day, weight in enumerate(weights):
        t = T0.timestamp() + day * DAY + jitter[day] * 3600
        feed(engine, Metric.BODY_WEIGHT, [t], [weight])
        if WEIGHT_KEY in keys(engine, t):
            fired.append(day)
    assert fired == [], f"seed {seed}"


def test_weight_gain_is_stale_after_two_days() -> None:
    engine = make_engine()
    times = daily_weights(engine, [70.0] * 4 + [72.5])
    assert WEIGHT_KEY in keys(engine, times[-1] + DAY)
    assert WEIGHT_KEY not in keys(engine, times[-1] + 2.5 * DAY)


def test_one_day_rule_is_off_by_default_and_can_be_enabled() -> None:
    weights = [70.0] * 5 + [71.7]
    engine = make_engine()
    times = daily_weights(engine, weights)
    assert not any(key.startswith("weight_gain_1d") for key in keys(engine, times[-1]))
    config = EngineConfig(
        trends=TrendConfig(weight_gain=(WeightGainRule("weight_gain_1d", timedelta(days=1), 1.5),))
    )
    engine = make_engine(config)
    times = daily_weights(engine, weights)
    assert keys(engine, times[-1]) == {"weight_gain_1d:r01:body_weight": Severity.WARNING}


def test_weight_message_has_values_and_trend() -> None:
    engine = make_engine()
    times = daily_weights(engine, [70.0, 70.0, 70.0, 70.8, 71.6, 72.4])
    (condition,) = [c for c in engine.evaluate(at(times[-1])) if c.rule == "weight_gain_3d"]
    assert condition.message == (
        "[warning] r01: body_weight 72.4 kg, +2.4 kg in 3 d (limit 2 kg, trend +0.50 kg/day)"
    )


# --- temperature ------------------------------------------------------------------------

RISE_KEY = "temperature_rise:r01:body_temperature"


def temperatures(engine: AlertEngine, values: list[float]) -> list[float]:
    times = [T0.timestamp() + i * DAY / 2 for i in range(len(values))]
    feed(engine, Metric.BODY_TEMPERATURE, times, values)
    return times


def test_rise_over_the_personal_baseline_fires_below_fever() -> None:
    seed = 11
    rng = np.random.default_rng(seed)
    baseline = list(np.round(rng.normal(36.3, 0.1, 20), 1))
    engine = make_engine()
    times = temperatures(engine, [*baseline, 37.5])
    found = keys(engine, times[-1])
    assert found == {RISE_KEY: Severity.WARNING}, f"seed {seed}"  # no fever alert at 37.5
    state = engine.state
    assert state.temperature_baseline[0] == pytest.approx(np.median(baseline[-20:]), abs=0.05)


def test_rise_under_the_limit_does_not_fire() -> None:
    engine = make_engine()
    times = temperatures(engine, [36.3] * 20 + [37.3])
    assert RISE_KEY not in keys(engine, times[-1])


def test_rise_at_the_limit_fires() -> None:
    engine = make_engine()
    times = temperatures(engine, [36.3] * 20 + [37.4])  # +1.1: the IDSA criterion, inclusive
    assert keys(engine, times[-1]) == {RISE_KEY: Severity.WARNING}


def test_rise_needs_a_baseline() -> None:
    engine = make_engine()
    times = temperatures(engine, [36.3, 36.3, 36.4, 37.9])  # too few readings for a baseline
    assert RISE_KEY not in keys(engine, times[-1])
    results = {r.rule: r for r in engine.evaluate_arrays(at(times[-1]))}
    assert not results["temperature_rise"].known[0]


# --- night heart rate -------------------------------------------------------------------

NIGHT_KEY = "night_hr_rising:r01:heart_rate"


def nights(
    engine: AlertEngine,
    rates: list[float],
    offset_hours: float = 0.0,
    noise: float = 0.0,
    seed: int = 1,
) -> list[bool]:
    """Five-minute heart-rate means from local 00:00 to 06:00, then one daytime reading at
    noon (which closes the night); whether the rule is active at each noon."""
    rng = np.random.default_rng(seed)
    first_midnight = datetime(2025, 1, 7, tzinfo=UTC).timestamp() - offset_hours * 3600
    fired = []
    for night, rate in enumerate(rates):
        midnight = first_midnight + night * DAY
        times = list(midnight + np.arange(72) * 300.0)
        values = list(rate + rng.normal(0, noise, 72)) if noise else [rate] * 72
        noon = midnight + 12 * 3600
        feed(engine, Metric.HEART_RATE, [*times, noon], [*values, rate + 15])
        fired.append(NIGHT_KEY in keys(engine, noon))
    return fired


def test_night_heart_rate_rising_over_days_fires() -> None:
    engine = make_engine()
    fired = nights(engine, [58.0] * 14 + [66.0, 70.0, 74.0], noise=2.0)
    assert fired == [False] * 16 + [True]
    state = engine.state
    assert state.night_baseline[0] == pytest.approx(58.0, abs=1.0)
    assert state.night_slope[0] > 0


def test_stable_noisy_nights_never_fire() -> None:
    seed = 3
    rng = np.random.default_rng(seed)
    engine = make_engine()
    rates = list(rng.normal(60, 2.5, 40))  # night-to-night variation
    assert not any(nights(engine, rates, noise=3.0, seed=seed)), f"seed {seed}"


def test_one_bad_night_does_not_fire() -> None:
    engine = make_engine()
    assert not any(nights(engine, [58.0] * 14 + [80.0, 58.0, 58.0]))


def test_night_follows_the_local_clock_and_goes_stale() -> None:
    engine = make_engine(None, Resident("r01", utc_offset=timedelta(hours=10)))
    fired = nights(engine, [58.0] * 14 + [68.0, 72.0, 76.0], offset_hours=10)
    assert fired[-1]
    ended = engine.state.night_ended[0]
    last_midnight = datetime(2025, 1, 7, tzinfo=UTC).timestamp() - 10 * 3600 + 16 * DAY
    assert ended == last_midnight + 6 * 3600  # 06:00 local
    assert NIGHT_KEY not in keys(engine, ended + 37 * 3600)


def test_short_nights_are_not_counted() -> None:
    engine = make_engine()
    midnight = datetime(2025, 1, 7, tzinfo=UTC).timestamp()
    times = list(midnight + np.arange(10) * 60.0)  # 10 minutes of data
    feed(engine, Metric.HEART_RATE, [*times, midnight + 12 * 3600], [60.0] * 11)
    assert engine.state.nights.count[0] == 0


# --- statistics -------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    st.integers(1, 8).flatmap(
        lambda rows: st.tuples(
            st.just(rows),
            st.integers(1, 12),
            st.integers(0, 2**32 - 1),
        )
    )
)
def test_masked_statistics_match_numpy(shape: tuple[int, int, int]) -> None:
    rows, columns, seed = shape
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.uniform(0.1, 2.0, (rows, columns)), axis=1)
    y = rng.normal(50, 10, (rows, columns))
    mask = rng.random((rows, columns)) < 0.7
    median = masked_median(y, mask)
    mad = masked_mad(y, mask, median)
    mean = masked_mean(y, mask)
    slope = masked_slope(x, y, mask)
    for row in range(rows):
        picked = y[row][mask[row]]
        if picked.size == 0:
            assert np.isnan(median[row])
            assert np.isnan(mean[row])
            continue
        assert median[row] == pytest.approx(np.median(picked))
        assert mad[row] == pytest.approx(np.median(np.abs(picked - np.median(picked))))
        assert mean[row] == pytest.approx(picked.mean())
        if picked.size >= 2:
            expected = np.polyfit(x[row][mask[row]], picked, 1)[0]
            assert slope[row] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        else:
            assert np.isnan(slope[row])


def test_statistics_ignore_nan_cells_and_respect_minimums() -> None:
    values = np.array([[1.0, np.nan, 3.0, 5.0], [np.nan, np.nan, np.nan, np.nan]])
    mask = np.ones_like(values, dtype=bool)
    assert masked_median(values, mask).tolist()[0] == 3.0
    assert np.isnan(masked_median(values, mask)[1])
    assert np.isnan(masked_median(values, mask, minimum=4)[0])
    x = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    y = np.array([[1.0, 3.0, 5.0, 7.0], [1.0, 2.0, 3.0, 4.0]])
    slope = masked_slope(x, y, np.ones_like(x, dtype=bool))
    assert slope[0] == pytest.approx(2.0)
    assert np.isnan(slope[1])  # every x the same
