"""The clocks the dispatcher reads (injected, so the logic never reads time itself)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never steps (rate limits and delays)."""
        ...

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC (the age of a message)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)
