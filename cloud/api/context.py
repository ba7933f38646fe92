"""What the endpoints work with, built once by :func:`cloud.api.app.create_app` and reached
through the ``context`` dependency (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cloud.api.accounts import AccountStore
from cloud.api.alertdesk import AlertDesk
from cloud.api.audit import AuditLog
from cloud.api.clock import Clock
from cloud.api.devices import DeviceStatusSource
from cloud.api.directory import ResidentDirectory
from cloud.api.passwords import Passwords
from cloud.api.ratelimit import FailureWindow
from cloud.api.sessions import SessionStore
from cloud.api.settings import ApiSettings
from cloud.store.base import ReadingStore

__all__ = ["ApiContext"]


@dataclass(slots=True, frozen=True)
class ApiContext:
    settings: ApiSettings
    store: ReadingStore
    accounts: AccountStore
    sessions: SessionStore
    audit: AuditLog
    directory: ResidentDirectory
    devices: DeviceStatusSource
    clock: Clock
    passwords: Passwords
    user_failures: FailureWindow
    """Failed logins per username."""
    address_failures: FailureWindow
    """Failed logins per client address."""
    alerts: AlertDesk | None = None
    """The alert service when it runs in this process (else the alert endpoints are 503)."""

    @classmethod
    def build(
        cls,
        settings: ApiSettings,
        *,
        store: ReadingStore,
        accounts: AccountStore,
        sessions: SessionStore,
        audit: AuditLog,
        directory: ResidentDirectory,
        devices: DeviceStatusSource,
        clock: Clock,
        alerts: AlertDesk | None = None,
    ) -> ApiContext:
        limits = settings.login_limit
        window = timedelta(seconds=limits.window_s)
        return cls(
            settings=settings,
            store=store,
            accounts=accounts,
            sessions=sessions,
            audit=audit,
            directory=directory,
            devices=devices,
            clock=clock,
            passwords=Passwords(settings.passwords),
            user_failures=FailureWindow(
                limits.max_failures_per_user, window, max_keys=limits.max_tracked
            ),
            address_failures=FailureWindow(
                limits.max_failures_per_address, window, max_keys=limits.max_tracked
            ),
            alerts=alerts,
        )
