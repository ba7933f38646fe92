"""The root of every error the ``cloud`` package raises, and its subclasses.

Library exceptions (``httpx``, ``sqlite3``, ``paho``, ``tomllib``, pydantic) are translated where
they enter the cloud (``raise ... from exc``), so callers match on these classes and on the data
they carry, never on message text.
"""

from __future__ import annotations

__all__ = [
    "CloudError",
    "ConfigurationError",
    "IngestError",
    "MqttConnectionError",
    "MqttRefusedError",
    "RegistryError",
    "SettingsError",
    "StoreError",
    "StoreRejectedError",
    "StoreUnavailableError",
    "StoreValueError",
]


class CloudError(Exception):
    """Root of the cloud's errors."""


class ConfigurationError(CloudError):
    """A configuration a service cannot run with (settings, site files, people files, no
    admin account): restarting will not help, so the service exits with status 2."""


class SettingsError(CloudError, ValueError):
    """The configuration is missing, unreadable or invalid (exit status 2).

    ``errors`` holds one readable line per problem (``"store.batch_size: ..."``).
    """

    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class RegistryError(ConfigurationError):
    """A site file (or whatever serves the device registry) is missing or invalid.

    ``errors`` holds one readable line per problem, naming the file and the field.
    """

    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class StoreError(CloudError):
    """Root of the reading store's errors."""


class StoreUnavailableError(StoreError):
    """The store cannot take or answer anything now (down, timeout, 5xx, refused credentials,
    missing database). Nothing was refused for its content: retrying the same call later is
    right. ``status`` is the HTTP status when there was one."""

    def __init__(self, cause: str, *, status: int | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status


class StoreRejectedError(StoreError):
    """The store refused a request for its content (HTTP 400 for a query, a bad statement)."""

    def __init__(self, cause: str, *, status: int | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status


class StoreValueError(StoreError, ValueError):
    """A value the store cannot hold faithfully (an identifier with a backslash or a control
    character, an empty identifier); refused before anything is sent."""


class IngestError(CloudError):
    """Root of the ingestor's errors (the reconnect loop handles the MQTT ones)."""


class MqttConnectionError(IngestError):
    """Connecting to the broker failed or the connection was lost; ``cause`` says why."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class MqttRefusedError(MqttConnectionError):
    """The broker refused the connection or the subscription (bad credentials, ACL):
    ``reason_code`` is the MQTT v5 reason code."""

    def __init__(self, what: str, reason_code: int, reason: str) -> None:
        super().__init__(f"broker refused the {what}: {reason} (0x{reason_code:02x})")
        self.what = what
        self.reason_code = reason_code
        self.reason = reason
