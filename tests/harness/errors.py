"""The errors the test harness raises, rooted in :class:`HarnessError`."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "HarnessError",
    "InfluxDBError",
    "PollTimeoutError",
    "PortInUseError",
    "ServerStartError",
    "ServerStateError",
]


class HarnessError(Exception):
    """Root of every error the test harness raises."""


class PollTimeoutError(HarnessError, TimeoutError):
    """A condition polled with a deadline did not hold in time."""

    def __init__(self, what: str, within: float) -> None:
        super().__init__(f"{what}: not true within {within:.1f} s")
        self.what = what
        self.within = within


class ServerStateError(HarnessError):
    """The server is asked for something its state does not allow (e.g. its port before start)."""


class ServerStartError(HarnessError):
    """A server process exited or did not answer in time while starting.

    The message ends with the tail of the server's log; ``log_path`` names the whole log.
    """

    def __init__(self, server: str, reason: str, log_path: Path, log_tail: str) -> None:
        super().__init__(
            f"{server} failed to start: {reason}\n--- last lines of {log_path} ---\n{log_tail}"
        )
        self.server = server
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail


class PortInUseError(ServerStartError):
    """The server could not bind its port: someone took it after it was found free."""


class InfluxDBError(HarnessError):
    """InfluxDB refused a query or a write; ``status`` is the HTTP status, ``body`` its text."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(f"{message} (HTTP {status}): {body[:500]}")
        self.status = status
        self.body = body
