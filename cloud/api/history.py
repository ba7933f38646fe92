"""The window of a history request: defaults and limits (pure; ``now`` is passed in).

Without ``end`` the window ends now; without ``start`` it spans ``default_span`` before
``end``. Without ``every`` the interval is the shortest of :data:`STEPS` that gives at most
:data:`DEFAULT_POINTS` intervals, so a chart gets a few hundred points whatever the range.
The store aligns intervals to multiples of ``every`` since the epoch (InfluxDB's ``GROUP BY
time()``), so the first and last intervals may be partial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud.api.errors import HistoryRangeError

__all__ = ["DEFAULT_POINTS", "MIN_EVERY", "STEPS", "HistoryWindow", "history_window"]

STEPS = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=7),
)
DEFAULT_POINTS = 500
MIN_EVERY = timedelta(seconds=1)


@dataclass(slots=True, frozen=True)
class HistoryWindow:
    start: datetime
    end: datetime
    every: timedelta

    @property
    def buckets(self) -> int:
        """The most intervals the window can hold."""
        return buckets(self.start, self.end, self.every)


def buckets(start: datetime, end: datetime, every: timedelta) -> int:
    # Aligned to the epoch, a window can touch one more interval than its length holds.
    return math.ceil((end - start) / every) + 1


def history_window(
    *,
    start: datetime | None,
    end: datetime | None,
    every: timedelta | None,
    now: datetime,
    default_span: timedelta,
    max_span: timedelta,
    max_buckets: int,
) -> HistoryWindow:
    """The window to query, or :class:`HistoryRangeError` saying what is wrong."""
    end = now if end is None else end
    start = end - default_span if start is None else start
    if start.tzinfo is None or end.tzinfo is None:
        raise HistoryRangeError("start and end need a time zone")
    if start >= end:
        raise HistoryRangeError("start must be before end")
    if end - start > max_span:
        raise HistoryRangeError(f"the range is longer than {max_span.days} days")
    if every is None:
        target = min(DEFAULT_POINTS, max_buckets)
        every = next(
            (step for step in STEPS if buckets(start, end, step) <= target),
            STEPS[-1],
        )
    if every < MIN_EVERY:
        raise HistoryRangeError("every must be at least one second")
    if buckets(start, end, every) > max_buckets:
        raise HistoryRangeError(
            f"start, end and every give more than {max_buckets} intervals: widen every"
        )
    return HistoryWindow(start, end, every)
