"""The root of every error the ``gateway`` package raises, and its subclasses.

Library exceptions (``sqlite3``, ``aiomqtt``/``paho``, ``ssl``, ``OSError``, pydantic) are
translated where they enter the gateway (``raise ... from exc``), so callers match on these
classes and on the data they carry, never on message text.
"""

from __future__ import annotations

__all__ = [
    "GatewayError",
    "OutboxClosedError",
    "OutboxError",
    "OutboxLockedError",
    "PublishRefusedError",
    "SettingsError",
    "UplinkConnectionError",
    "UplinkError",
    "UplinkStalledError",
]


class GatewayError(Exception):
    """Root of the gateway's errors."""


class SettingsError(GatewayError, ValueError):
    """The gateway's configuration is missing, unreadable or invalid.

    ``errors`` holds one readable line per problem (``"mqtt.password: ..."``).
    """

    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class OutboxError(GatewayError):
    """The durable outbox failed (SQLite error, disk full, corrupt file)."""


class OutboxLockedError(OutboxError):
    """Another process holds the outbox file: two writers would hand out the same seq."""

    def __init__(self, path: str) -> None:
        super().__init__(f"outbox {path} is in use by another process")
        self.path = path


class OutboxClosedError(OutboxError):
    """The outbox was used after it was closed."""


class UplinkError(GatewayError):
    """The MQTT uplink could not deliver (the reconnect loop handles every subclass)."""


class UplinkConnectionError(UplinkError):
    """Connecting failed or the connection was lost; ``cause`` says why, for the log."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class UplinkStalledError(UplinkError):
    """The broker did not acknowledge a publish in time: the connection is treated as dead."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"no PUBACK within {waited_s:g} s")
        self.waited_s = waited_s


class PublishRefusedError(UplinkError):
    """The broker answered a publish with a failure reason code (MQTT v5 PUBACK >= 0x80),
    e.g. 0x87 not authorised by its ACL. The readings stay in the outbox."""

    def __init__(self, topic: str, reason_code: int, reason: str) -> None:
        super().__init__(f"broker refused a publish on {topic}: {reason} (0x{reason_code:02x})")
        self.topic = topic
        self.reason_code = reason_code
        self.reason = reason
