"""What the API needs of the alert service: :class:`AlertDesk`.

:class:`cloud.alerts.service.AlertService` serves it in-process (``python -m cloud serve``
runs the API and the alert service together). An API process without the alert service has
no desk, and the alert endpoints answer 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from cloud.alerts.feed import Event
from cloud.alerts.ledger import AuditRecord
from cloud.alerts.news2 import Consciousness, News2
from cloud.alerts.thresholds import ThresholdRule
from vitals.wire import Alert, AlertState

__all__ = ["AlertDesk"]


class AlertDesk(Protocol):
    """Alerts of a site, staff actions on them, live events, NEWS2 and staff entries.
    Actions raise :class:`cloud.alerts.errors.AlertNotFoundError` (unknown id or another
    site's), ``InvalidTransitionError``, ``SnoozeTooLongError`` or ``InputError``."""

    async def alerts(
        self,
        site: str,
        *,
        states: Sequence[AlertState] | None = None,
        resident: str | None = None,
        limit: int = 100,
    ) -> list[Alert]: ...

    async def alert(self, site: str, alert_id: str) -> Alert | None: ...

    async def trail(self, site: str, alert_id: str) -> list[AuditRecord]: ...

    async def acknowledge(
        self, site: str, alert_id: str, by: str, comment: str | None
    ) -> Alert: ...

    async def resolve(self, site: str, alert_id: str, by: str, comment: str | None) -> Alert: ...

    async def snooze(self, site: str, alert_id: str, by: str, minutes: float) -> Alert: ...

    def events(self, site: str) -> AsyncIterator[Event]: ...

    def news2(self, site: str, resident: str) -> tuple[News2, datetime | None] | None: ...

    def observe(
        self,
        site: str,
        resident: str,
        *,
        consciousness: Consciousness | None = None,
        on_oxygen: bool | None = None,
    ) -> bool: ...

    def thresholds(self, site: str, resident: str) -> Sequence[ThresholdRule] | None: ...
