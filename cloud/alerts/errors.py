"""The errors ``cloud.alerts`` raises: one root, subclasses that say what was wrong."""

from __future__ import annotations

__all__ = ["AlertsError", "ConfigError", "InputError"]


class AlertsError(Exception):
    """Root of every error the alert rules raise."""


class ConfigError(AlertsError, ValueError):
    """A rule, threshold, override or roster that cannot be used; the message names it."""


class InputError(AlertsError, ValueError):
    """An argument the rules cannot take: a naive time, an unknown resident or device id,
    arrays of different lengths, an index out of range."""
