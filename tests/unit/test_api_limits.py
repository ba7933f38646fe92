"""cloud.api.ratelimit (failed-login windows) and cloud.api.history (history windows): pure
logic with the time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.api.errors import HistoryRangeError
from cloud.api.history import DEFAULT_POINTS, STEPS, history_window
from cloud.api.ratelimit import FailureWindow

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


# -- failed logins ----------------------------------------------------------------------------


def test_a_key_locks_at_the_limit_until_its_oldest_failure_ages_out() -> None:
    window = FailureWindow(3, WINDOW)
    for n in range(3):
        assert window.retry_after("jo", T0 + seconds(10 * n)) is None
        window.failed("jo", T0 + seconds(10 * n))

    assert window.retry_after("jo", T0 + seconds(30)) == WINDOW - seconds(30)
    assert window.retry_after("kim", T0 + seconds(30)) is None
    assert window.retry_after("jo", T0 + WINDOW - seconds(1)) == seconds(1)
    assert window.retry_after("jo", T0 + WINDOW) is None
    # Sliding: one more failure locks it again until the next oldest ages out.
    window.failed("jo", T0 + WINDOW)
    assert window.retry_after("jo", T0 + WINDOW) == seconds(10)


def test_a_success_forgets_the_failures() -> None:
    window = FailureWindow(2, WINDOW)
    window.failed("jo", T0)
    window.failed("jo", T0)
    window.succeeded("jo")
    assert window.retry_after("jo", T0) is None
    assert len(window) == 0


def test_old_failures_are_forgotten() -> None:
    window = FailureWindow(2, WINDOW)
    window.failed("jo", T0)
    window.failed("kim", T0)
    assert len(window) == 2
    assert window.retry_after("jo", T0 + WINDOW) is None
    assert len(window) == 1


def test_memory_is_bounded_by_forgetting_the_least_recently_failed() -> None:
    window = FailureWindow(1, WINDOW, max_keys=3)
    for n, key in enumerate(("a", "b", "c")):
        window.failed(key, T0 + seconds(n))
    window.failed("a", T0 + seconds(5))  # "a" is now the most recent
    window.failed("d", T0 + seconds(6))

    assert len(window) == 3
    assert window.retry_after("b", T0 + seconds(7)) is None  # forgotten
    for key in ("a", "c", "d"):
        assert window.retry_after(key, T0 + seconds(7)) is not None


@pytest.mark.parametrize(
    ("max_failures", "window", "max_keys"),
    [(0, WINDOW, 10), (1, timedelta(0), 10), (1, WINDOW, 0)],
)
def test_bad_limits_are_refused(max_failures: int, window: timedelta, max_keys: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        FailureWindow(max_failures, window, max_keys=max_keys)


@given(st.lists(st.integers(0, 3600), max_size=40), st.integers(1, 6))
def test_never_locked_with_fewer_recent_failures_than_the_limit(
    offsets: list[int], limit: int
) -> None:
    window = FailureWindow(limit, WINDOW)
    times = sorted(T0 + seconds(s) for s in offsets)
    for time in times:
        window.failed("k", time)
    now = (times[-1] if times else T0) + seconds(1)
    recent = [t for t in times if now - t < WINDOW]
    locked = window.retry_after("k", now) is not None
    assert locked == (len(recent) >= limit)


# -- history windows ------------------------------------------------------------------------------


def window(**overrides: object) -> object:
    arguments: dict[str, object] = {
        "start": None,
        "end": None,
        "every": None,
        "now": T0,
        "default_span": timedelta(days=1),
        "max_span": timedelta(days=400),
        "max_buckets": 5000,
    }
    arguments.update(overrides)
    return history_window(**arguments)  # type: ignore[arg-type]


def test_defaults_are_the_last_day_in_about_five_hundred_points() -> None:
    found = history_window(
        start=None,
        end=None,
        every=None,
        now=T0,
        default_span=timedelta(days=1),
        max_span=timedelta(days=400),
        max_buckets=5000,
    )
    assert (found.start, found.end, found.every) == (
        T0 - timedelta(days=1),
        T0,
        timedelta(minutes=5),
    )
    assert found.buckets <= DEFAULT_POINTS


@pytest.mark.parametrize(
    ("span", "every"),
    [
        (timedelta(minutes=10), timedelta(seconds=10)),
        (timedelta(hours=3), timedelta(seconds=30)),
        (timedelta(days=7), timedelta(minutes=30)),
        (timedelta(days=90), timedelta(hours=6)),
        (timedelta(days=400), timedelta(days=1)),
    ],
)
def test_the_interval_grows_with_the_span(span: timedelta, every: timedelta) -> None:
    found = history_window(
        start=T0 - span,
        end=T0,
        every=None,
        now=T0,
        default_span=timedelta(days=1),
        max_span=timedelta(days=400),
        max_buckets=5000,
    )
    assert found.every == every
    assert every in STEPS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": T0, "end": T0}, "start must be before end"),
        ({"start": T0 - timedelta(days=401), "end": T0}, "longer than 400 days"),
        ({"every": timedelta(milliseconds=500)}, "at least one second"),
        ({"every": timedelta(seconds=1)}, "more than 5000 intervals"),
        ({"start": datetime(2024, 3, 1), "end": datetime(2024, 3, 2)}, "time zone"),
    ],
)
def test_bad_windows_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(HistoryRangeError, match=message):
        window(**overrides)
