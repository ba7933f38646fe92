"""Failed-login counting: at most N failures per key within a sliding window (pure; the time
is passed in).

The API keeps two of these, keyed by username and by client address
(:class:`~cloud.api.settings.LoginLimitSettings`). While a key has ``max_failures`` failures
younger than ``window``, logins for it are refused (429) without checking the password, and
:meth:`FailureWindow.retry_after` says when the oldest of them ages out.

Memory is bounded: at most ``max_keys`` keys are remembered; when a new key arrives and the
table is full, the key whose last failure is oldest is forgotten (an attacker spraying
addresses can push out a locked key, but not faster than it can make ``max_keys`` failures).
The counts live in the process: with several API processes each counts on its own (the limit
becomes N per process), which is stated in the settings' documentation.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta

__all__ = ["FailureWindow"]


class FailureWindow:
    """Failures per key within ``window``; locked at ``max_failures``."""

    def __init__(self, max_failures: int, window: timedelta, *, max_keys: int = 100_000) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if window <= timedelta(0):
            raise ValueError("window must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max = max_failures
        self._window = window
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, key: str, now: datetime) -> deque[datetime] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, now: datetime) -> timedelta | None:
        """How long ``key`` stays locked, or ``None`` if it may try now."""
        times = self._recent(key, now)
        if times is None or len(times) < self._max:
            return None
        return times[0] + self._window - now

    def failed(self, key: str, now: datetime) -> None:
        """Count a failure of ``key`` at ``now``."""
        times = self._recent(key, now)
        if times is None:
            while len(self._failures) >= self._max_keys:
                self._failures.popitem(last=False)
            times = self._failures[key] = deque(maxlen=self._max)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def succeeded(self, key: str) -> None:
        """Forget the failures of ``key`` (a correct password for this username)."""
        self._failures.pop(key, None)
