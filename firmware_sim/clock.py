"""The simulated clock: simulated Unix time from a monotonic wall clock, sped up.

``SimClock(start, speed, monotonic)`` reads ``monotonic()`` once when it is made; from then on
:meth:`SimClock.now` is ``start + speed * (monotonic() - origin)``. The monotonic source is
passed in (``time.monotonic`` in the runtime, a plain counter in tests), never read from a
global, so nothing needs patching to test code that uses it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

__all__ = ["SimClock"]


class SimClock:
    """Simulated time running ``speed`` times faster than ``monotonic`` from ``start``."""

    __slots__ = ("_monotonic", "_origin", "speed", "start")

    def __init__(self, start: dt.datetime, speed: float, monotonic: Callable[[], float]) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("the simulation start must be an aware datetime (e.g. in UTC)")
        if isinstance(speed, bool) or not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a positive finite number, not {speed!r}")
        self.start = start.timestamp()
        """Simulated Unix time at the moment the clock was made."""
        self.speed = float(speed)
        self._monotonic = monotonic
        self._origin = monotonic()

    @property
    def start_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.start, dt.UTC)

    def elapsed(self) -> float:
        """Wall seconds since the clock was made."""
        return self._monotonic() - self._origin

    def now(self) -> float:
        """The simulated Unix time now."""
        return self.start + self.speed * self.elapsed()

    def now_datetime(self) -> dt.datetime:
        """The simulated time now, in UTC."""
        return dt.datetime.fromtimestamp(self.now(), dt.UTC)

    def wall_seconds(self, simulated: float) -> float:
        """Wall seconds that ``simulated`` seconds take at this speed."""
        return simulated / self.speed

    def wall_until(self, t: float) -> float:
        """Wall seconds until simulated time ``t`` (0 if it has passed)."""
        return max(0.0, (t - self.now()) / self.speed)
