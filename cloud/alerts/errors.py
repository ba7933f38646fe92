"""The errors ``cloud.alerts`` raises: one root, subclasses that say what was wrong."""

from __future__ import annotations

from datetime import timedelta

from cloud.errors import ConfigurationError

__all__ = [
    "AlertNotFoundError",
    "AlertsError",
    "ConfigError",
    "InputError",
    "InvalidTransitionError",
    "LedgerError",
    "NotLoadedError",
    "SnoozeTooLongError",
]


class AlertsError(Exception):
    """Root of every error the alert rules raise."""


class ConfigError(AlertsError, ConfigurationError, ValueError):
    """A rule, threshold, override, roster or people file that cannot be used; the message
    names it, and ``errors`` lists every problem when a file had several."""

    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class InputError(AlertsError, ValueError):
    """An argument the rules cannot take: a naive time, an unknown resident or device id,
    arrays of different lengths, an index out of range."""


class AlertNotFoundError(AlertsError, LookupError):
    """No alert has this id (neither open nor resolved)."""

    def __init__(self, alert_id: str) -> None:
        super().__init__(f"no alert {alert_id!r}")
        self.alert_id = alert_id


class InvalidTransitionError(AlertsError):
    """A staff action the alert's state does not allow: acknowledging or snoozing a resolved
    alert, resolving it twice, acknowledging an acknowledged one, snoozing into the past."""

    def __init__(self, alert_id: str, state: str, action: str, why: str = "") -> None:
        reason = f": {why}" if why else ""
        super().__init__(f"cannot {action} alert {alert_id} in state {state}{reason}")
        self.alert_id = alert_id
        self.state = state
        self.action = action


class SnoozeTooLongError(InvalidTransitionError):
    """A snooze beyond what the alert's severity allows (``cap``: the longest allowed)."""

    def __init__(self, alert_id: str, state: str, cap: timedelta) -> None:
        super().__init__(alert_id, state, "snooze", f"at most {cap} for this severity")
        self.cap = cap


class LedgerError(AlertsError):
    """The alert ledger could not store or answer (database unavailable, disk full, a
    constraint refused the write). Nothing of the failed operation was kept: retry it."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class NotLoadedError(AlertsError, RuntimeError):
    """The lifecycle was used before :meth:`~cloud.alerts.lifecycle.Lifecycle.load`."""
