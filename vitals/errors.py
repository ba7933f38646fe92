"""The root of every error the ``vitals`` package raises."""

from __future__ import annotations

__all__ = ["TopicError", "VitalsError", "WireError"]


class VitalsError(Exception):
    """Root of the errors of the shared vocabulary."""


class WireError(VitalsError, ValueError):
    """A wire payload that is not a valid CareWatch message.

    ``errors`` holds one readable line per problem (``"readings.3.value: ..."``), so a
    dead-letter message can carry them without anyone matching on exception text.
    """

    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class TopicError(VitalsError, ValueError):
    """An MQTT topic or identifier that does not follow the CareWatch topic scheme."""
