"""The clock this package reads: :mod:`cloud.clock` (injected, so tests move time instead of
patching it)."""

from cloud.clock import Clock, SystemClock

__all__ = ["Clock", "SystemClock"]
