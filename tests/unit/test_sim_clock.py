"""firmware_sim.clock: simulated time from an injected monotonic clock."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from firmware_sim.clock import SimClock

START = dt.datetime(2025, 3, 4, 9, 0, tzinfo=dt.UTC)


class FakeMonotonic:
    def __init__(self, value: float = 1000.0) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


def test_now_runs_speed_times_faster_from_the_start() -> None:
    wall = FakeMonotonic()
    clock = SimClock(START, 60.0, wall)
    assert clock.now() == START.timestamp()
    wall.value += 1.5
    assert clock.now() == START.timestamp() + 90.0
    assert clock.now_datetime() == START + dt.timedelta(seconds=90)
    assert clock.elapsed() == 1.5
    assert clock.start_datetime == START
    assert clock.wall_seconds(120.0) == 2.0
    assert clock.wall_until(START.timestamp() + 150.0) == 1.0
    assert clock.wall_until(START.timestamp()) == 0.0


def test_a_start_in_another_zone_is_the_same_instant() -> None:
    paris = dt.datetime(2025, 3, 4, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert SimClock(paris, 1.0, FakeMonotonic()).now() == START.timestamp()


@pytest.mark.parametrize("speed", [0.0, -1.0, math.nan, math.inf])
def test_bad_speed_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(START, speed, FakeMonotonic())


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        SimClock(dt.datetime(2025, 3, 4, 9, 0), 1.0, FakeMonotonic())
