"""The demo's exceptions: one root, :class:`DemoError`, and subclasses that carry what the
command line prints (which part, its exit status, the tail of its log)."""

from __future__ import annotations

__all__ = [
    "BrokerUnavailableError",
    "ChildExitedError",
    "DemoError",
    "DemoUsageError",
    "StartTimeoutError",
]


class DemoError(Exception):
    """Root of the demo's errors."""


class DemoUsageError(DemoError):
    """Bad options or an unusable machine, found before anything was started (exit 2)."""


class BrokerUnavailableError(DemoUsageError):
    """No broker the services can talk to: none given, and no embedded one usable."""


class ChildExitedError(DemoError):
    """A part of the demo (a service process) exited while it should have been running."""

    def __init__(self, name: str, returncode: int, tail: str) -> None:
        super().__init__(f"{name} exited with status {returncode}")
        self.name = name
        self.returncode = returncode
        self.tail = tail


class StartTimeoutError(DemoError):
    """A part of the demo was not ready within its time limit."""

    def __init__(self, name: str, what: str, seconds: float, tail: str = "") -> None:
        super().__init__(f"{name}: {what} not within {seconds:g} s")
        self.name = name
        self.what = what
        self.seconds = seconds
        self.tail = tail
