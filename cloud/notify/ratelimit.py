"""Token buckets, given the time: pure, no clock of their own.

Times are monotonic seconds passed in by the caller. A bucket that is asked about an earlier
time than it last saw (a caller's clock stepping back) simply adds nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RateLimit", "TokenBucket"]

_EPSILON = 1e-9
"""Tolerance on token counts, so that ``ready_at`` is honoured despite float rounding."""


@dataclass(slots=True, frozen=True)
class RateLimit:
    """A recipient's allowance: at most ``burst`` notifications at once, refilled at ``rate``
    per ``period_s``; critical alerts may also draw on a reserve of ``critical_burst``
    (refilled at ``critical_burst`` per ``period_s``; 0 turns the reserve off)."""

    rate: int = 5
    period_s: float = 600.0
    burst: int = 5
    critical_burst: int = 3

    def __post_init__(self) -> None:
        if self.rate < 1 or self.burst < 1 or self.critical_burst < 0:
            raise ValueError("need rate >= 1, burst >= 1 and critical_burst >= 0")
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise ValueError("period_s must be a positive number of seconds")

    def normal(self, now: float) -> TokenBucket:
        """A full bucket of the ordinary allowance."""
        return TokenBucket(self.burst, self.rate / self.period_s, now)

    def reserve(self, now: float) -> TokenBucket:
        """A full bucket of the critical reserve."""
        return TokenBucket(self.critical_burst, self.critical_burst / self.period_s, now)


class TokenBucket:
    """Holds up to ``capacity`` tokens, gains ``per_second`` tokens a second, starts full."""

    __slots__ = ("_capacity", "_per_second", "_tokens", "_updated")

    def __init__(self, capacity: int, per_second: float, now: float) -> None:
        if capacity < 0 or per_second < 0 or (capacity > 0 and per_second <= 0):
            raise ValueError("need capacity >= 0 and, for a non-empty bucket, per_second > 0")
        self._capacity = capacity
        self._per_second = per_second
        self._tokens = float(capacity)
        self._updated = now

    @property
    def capacity(self) -> int:
        return self._capacity

    def tokens(self, now: float) -> float:
        """The tokens held at ``now`` (fractional)."""
        self._refill(now)
        return self._tokens

    def whole(self, now: float) -> int:
        """The whole tokens held at ``now``: how many notifications it can pay for."""
        self._refill(now)
        return math.floor(self._tokens + _EPSILON)

    def spend(self, now: float) -> None:
        """Take one token; raises ``ValueError`` when there is none."""
        if self.whole(now) < 1:
            raise ValueError("no token to spend")
        self._tokens = max(0.0, self._tokens - 1.0)

    def ready_at(self, now: float) -> float:
        """When the bucket next holds a whole token (``now`` if it does; ``inf`` for an empty
        bucket of capacity 0)."""
        self._refill(now)
        if self._tokens + _EPSILON >= 1.0:
            return now
        if self._capacity < 1:
            return math.inf
        return now + (1.0 - self._tokens) / self._per_second

    def full_at(self, now: float) -> float:
        """When the bucket is full again (``now`` if it is)."""
        self._refill(now)
        missing = self._capacity - self._tokens
        if missing <= _EPSILON:
            return now
        return now + missing / self._per_second

    def _refill(self, now: float) -> None:
        if now > self._updated:
            gained = (now - self._updated) * self._per_second
            self._tokens = min(float(self._capacity), self._tokens + gained)
            self._updated = now
