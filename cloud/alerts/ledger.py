"""Where alerts and their audit trail are kept: the :class:`AlertLedger` interface, the values
that cross it, and :class:`SqliteLedger`.

The ledger holds every alert (open and resolved: the working state of the lifecycle plus its
history) and an append-only audit trail of everything that happened to them. The lifecycle
(:mod:`cloud.alerts.lifecycle`) writes each operation's alerts and audit records in one
:meth:`AlertLedger.write` call, which is one transaction: all of it is stored or none. It
writes *before* it returns anything to publish or notify, so nothing is announced that is
not stored.

The interface is coarse on purpose (one write of a batch, a few queries by site, id and
time) so that a PostgreSQL implementation can serve it with the same semantics: an upsert by
alert id, an append-only audit table, a unique index on ``(site, key)`` over the unresolved
alerts (at most one alert per condition while it is not resolved, enforced by the store as
well as by the lifecycle).

Times cross the interface as aware datetimes and are stored as integer nanoseconds since the
Unix epoch (UTC).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from cloud.alerts.errors import InputError, LedgerError
from cloud.sqlite import SqliteDatabase, SqliteOwner
from vitals.metrics import Metric
from vitals.wire import Alert, AlertKind, AlertState, Severity

__all__ = [
    "MAX_QUERY_LIMIT",
    "SYSTEM",
    "AlertAction",
    "AlertLedger",
    "AlertRecord",
    "AuditRecord",
    "SqliteLedger",
]

MAX_QUERY_LIMIT: Final = 10_000
SYSTEM: Final = "system"
"""The actor of everything the lifecycle does on its own (opening, escalating, auto-resolve)."""

T = TypeVar("T")


class AlertAction(StrEnum):
    """What happened to an alert (the audit trail's ``action``, a change's kind)."""

    OPENED = "opened"
    RETRIGGERED = "retriggered"
    """The condition triggered again while the alert was not resolved: ``count`` went up."""
    SEVERITY_RAISED = "severity_raised"
    EASED = "eased"
    """The condition went on at a lower severity (the alert keeps its peak; audit only)."""
    CLEARED = "cleared"
    """The condition ended but the alert needs a person to resolve it (audit only)."""
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    UNSNOOZED = "unsnoozed"
    ESCALATED = "escalated"
    """A step of the ladder fired: a new level, or a reminder at the last one."""
    RESOLVED = "resolved"


@dataclass(slots=True, frozen=True)
class AlertRecord:
    """An alert as the lifecycle keeps it: the wire fields plus what it needs to carry on
    after a restart (escalation timers, the state a snooze returns to, the condition)."""

    id: str
    site: str
    key: str
    """The condition's key (``rule:subject[:metric]``)."""
    rule: str
    kind: AlertKind
    severity: Severity
    """The highest severity the alert reached (it does not go down while unresolved)."""
    state: AlertState
    title: str
    resident: str | None
    device: str | None
    gateway: str | None
    metric: Metric | None
    value: float | None
    opened: datetime
    updated: datetime
    count: int = 1
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    comment: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    """A staff id, or ``"system"`` when the condition cleared."""
    snoozed_until: datetime | None = None
    snoozed_from: AlertState | None = None
    """The state a snooze returns to when it expires (open or acknowledged)."""
    escalation_level: int = 0
    escalation_origin: datetime | None = None
    """The moment the ladder's ``after``\\s are measured from."""
    next_escalation_at: datetime | None = None
    """When the next step (or reminder) is due; None when nothing is scheduled (acknowledged,
    snoozed, resolved, below the escalating severity, or the ladder has no more)."""
    condition_active: bool = True
    condition_severity: Severity = Severity.INFO
    """The severity the condition was last seen at (may be below :attr:`severity`)."""
    condition_time: datetime | None = None
    """When the condition's deciding data was measured (the event time for fall and help)."""

    @property
    def resolved(self) -> bool:
        return self.state is AlertState.RESOLVED

    @property
    def wake(self) -> datetime | None:
        """When the lifecycle's tick has something to do with this alert."""
        if self.state is AlertState.SNOOZED:
            return self.snoozed_until
        if self.state is AlertState.OPEN:
            return self.next_escalation_at
        return None

    def to_wire(self) -> Alert:
        """The alert as published (validated: raises pydantic's ValidationError if an id
        does not fit the wire format)."""
        return Alert(
            id=self.id,
            site=self.site,
            resident=self.resident,
            device=self.device,
            gateway=self.gateway,
            rule=self.rule,
            kind=self.kind,
            severity=self.severity,
            state=self.state,
            title=self.title,
            metric=self.metric,
            value=self.value,
            opened=self.opened,
            updated=self.updated,
            count=self.count,
            acknowledged_by=self.acknowledged_by,
            acknowledged_at=self.acknowledged_at,
            comment=self.comment,
            resolved_at=self.resolved_at,
            snoozed_until=self.snoozed_until,
            escalation_level=self.escalation_level,
        )


@dataclass(slots=True, frozen=True)
class AuditRecord:
    """One entry of the audit trail. ``detail`` holds ids, levels and staff comments, never
    a resident's name."""

    alert_id: str
    site: str
    time: datetime
    action: AlertAction
    actor: str
    """A staff id, or ``"system"``."""
    detail: str = ""


class AlertLedger(Protocol):
    """Durable storage of alerts and their audit trail (see the module docstring)."""

    async def write(self, alerts: Sequence[AlertRecord], audit: Sequence[AuditRecord]) -> None:
        """Store the alerts (insert or replace by id, in order) and append the audit records,
        all in one transaction. Raises :class:`~cloud.alerts.errors.LedgerError` and keeps
        nothing if any of it fails (two unresolved alerts for one ``(site, key)`` included)."""
        ...

    async def unresolved(self) -> list[AlertRecord]:
        """Every alert that is not resolved, of every site (the lifecycle's start-up load)."""
        ...

    async def get(self, alert_id: str) -> AlertRecord | None: ...

    async def alerts(
        self,
        site: str,
        *,
        states: Collection[AlertState] | None = None,
        resident: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[AlertRecord]:
        """A site's alerts, newest opened first: those in ``states`` (all when None), about
        ``resident``, and *active during* ``[start, end)``: opened before ``end`` and not
        resolved before ``start``."""
        ...

    async def audit(self, alert_id: str) -> list[AuditRecord]:
        """One alert's audit trail, in the order it was written."""
        ...

    async def site_audit(
        self, site: str, *, start: datetime, end: datetime, limit: int = 1000
    ) -> list[AuditRecord]:
        """A site's audit records with ``start <= time < end``, oldest first."""
        ...

    async def aclose(self) -> None: ...


# --- SQLite ----------------------------------------------------------------------------

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS alerts (
    id                  TEXT    PRIMARY KEY,
    site                TEXT    NOT NULL,
    key                 TEXT    NOT NULL,
    rule                TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    severity            TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    title               TEXT    NOT NULL,
    resident            TEXT,
    device              TEXT,
    gateway             TEXT,
    metric              TEXT,
    value               REAL,
    opened_ns           INTEGER NOT NULL,
    updated_ns          INTEGER NOT NULL,
    count               INTEGER NOT NULL,
    acknowledged_by     TEXT,
    acknowledged_ns     INTEGER,
    comment             TEXT,
    resolved_ns         INTEGER,
    resolved_by         TEXT,
    snoozed_until_ns    INTEGER,
    snoozed_from        TEXT,
    escalation_level    INTEGER NOT NULL,
    escalation_origin_ns INTEGER,
    next_escalation_ns  INTEGER,
    condition_active    INTEGER NOT NULL,
    condition_severity  TEXT    NOT NULL,
    condition_ns        INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS alerts_unresolved_key
    ON alerts (site, key) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS alerts_site_opened ON alerts (site, opened_ns);
CREATE INDEX IF NOT EXISTS alerts_unresolved ON alerts (state) WHERE state != 'resolved';
CREATE TABLE IF NOT EXISTS audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT    NOT NULL,
    site     TEXT    NOT NULL,
    time_ns  INTEGER NOT NULL,
    action   TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    detail   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_alert ON audit (alert_id, seq);
CREATE INDEX IF NOT EXISTS audit_site_time ON audit (site, time_ns, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""

_ALERT_COLUMNS: Final = (
    "id",
    "site",
    "key",
    "rule",
    "kind",
    "severity",
    "state",
    "title",
    "resident",
    "device",
    "gateway",
    "metric",
    "value",
    "opened_ns",
    "updated_ns",
    "count",
    "acknowledged_by",
    "acknowledged_ns",
    "comment",
    "resolved_ns",
    "resolved_by",
    "snoozed_until_ns",
    "snoozed_from",
    "escalation_level",
    "escalation_origin_ns",
    "next_escalation_ns",
    "condition_active",
    "condition_severity",
    "condition_ns",
)
_SELECT_ALERT: Final = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts"
_UPSERT_ALERT: Final = (
    f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ALERT_COLUMNS)}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _ALERT_COLUMNS[1:])
)
_AUDIT_COLUMNS: Final = "alert_id, site, time_ns, action, actor, detail"
_INSERT_AUDIT: Final = f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"naive datetime {value.isoformat()}: times must carry a time zone")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _ns_or_none(value: datetime | None) -> int | None:
    return None if value is None else _ns(value)


def _time(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def _time_or_none(ns: int | None) -> datetime | None:
    return None if ns is None else _time(int(ns))


def _alert_row(a: AlertRecord) -> tuple[Any, ...]:
    return (
        a.id,
        a.site,
        a.key,
        a.rule,
        a.kind.value,
        a.severity.value,
        a.state.value,
        a.title,
        a.resident,
        a.device,
        a.gateway,
        None if a.metric is None else a.metric.value,
        a.value,
        _ns(a.opened),
        _ns(a.updated),
        a.count,
        a.acknowledged_by,
        _ns_or_none(a.acknowledged_at),
        a.comment,
        _ns_or_none(a.resolved_at),
        a.resolved_by,
        _ns_or_none(a.snoozed_until),
        None if a.snoozed_from is None else a.snoozed_from.value,
        a.escalation_level,
        _ns_or_none(a.escalation_origin),
        _ns_or_none(a.next_escalation_at),
        int(a.condition_active),
        a.condition_severity.value,
        _ns_or_none(a.condition_time),
    )


def _alert(row: sqlite3.Row) -> AlertRecord:
    return AlertRecord(
        id=row["id"],
        site=row["site"],
        key=row["key"],
        rule=row["rule"],
        kind=AlertKind(row["kind"]),
        severity=Severity(row["severity"]),
        state=AlertState(row["state"]),
        title=row["title"],
        resident=row["resident"],
        device=row["device"],
        gateway=row["gateway"],
        metric=None if row["metric"] is None else Metric(row["metric"]),
        value=None if row["value"] is None else float(row["value"]),
        opened=_time(int(row["opened_ns"])),
        updated=_time(int(row["updated_ns"])),
        count=int(row["count"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=_time_or_none(row["acknowledged_ns"]),
        comment=row["comment"],
        resolved_at=_time_or_none(row["resolved_ns"]),
        resolved_by=row["resolved_by"],
        snoozed_until=_time_or_none(row["snoozed_until_ns"]),
        snoozed_from=None if row["snoozed_from"] is None else AlertState(row["snoozed_from"]),
        escalation_level=int(row["escalation_level"]),
        escalation_origin=_time_or_none(row["escalation_origin_ns"]),
        next_escalation_at=_time_or_none(row["next_escalation_ns"]),
        condition_active=bool(row["condition_active"]),
        condition_severity=Severity(row["condition_severity"]),
        condition_time=_time_or_none(row["condition_ns"]),
    )


def _audit_row(r: AuditRecord) -> tuple[Any, ...]:
    return (r.alert_id, r.site, _ns(r.time), r.action.value, r.actor, r.detail)


def _audit(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        alert_id=row["alert_id"],
        site=row["site"],
        time=_time(int(row["time_ns"])),
        action=AlertAction(row["action"]),
        actor=row["actor"],
        detail=row["detail"],
    )


def _checked_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_QUERY_LIMIT:
        raise InputError(f"limit must be 1..{MAX_QUERY_LIMIT}, not {limit}")
    return limit


class SqliteLedger(SqliteOwner):
    """An :class:`AlertLedger` in one SQLite file: WAL mode, ``synchronous=FULL`` (a write
    that returned survives a power cut), one worker thread owning the connection so calls
    run in order and never block the event loop."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self._db = SqliteDatabase(
            path,
            _SCHEMA,
            version=SCHEMA_VERSION,
            name="alert ledger",
            error=LedgerError,
            busy_timeout_s=busy_timeout_s,
        )
        self._call = self._db.run

    # -- writes ---------------------------------------------------------------------------

    async def write(self, alerts: Sequence[AlertRecord], audit: Sequence[AuditRecord]) -> None:
        alert_rows = [_alert_row(alert) for alert in alerts]
        audit_rows = [_audit_row(record) for record in audit]
        if not alert_rows and not audit_rows:
            return

        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT_ALERT, alert_rows)
                db.executemany(_INSERT_AUDIT, audit_rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._call(work)

    # -- queries --------------------------------------------------------------------------

    async def unresolved(self) -> list[AlertRecord]:
        sql = f"{_SELECT_ALERT} WHERE state != 'resolved' ORDER BY opened_ns, id"
        rows = await self._call(lambda db: db.execute(sql).fetchall())
        return [_alert(row) for row in rows]

    async def get(self, alert_id: str) -> AlertRecord | None:
        sql = f"{_SELECT_ALERT} WHERE id = ?"
        row = await self._call(lambda db: db.execute(sql, (alert_id,)).fetchone())
        return None if row is None else _alert(row)

    async def alerts(
        self,
        site: str,
        *,
        states: Collection[AlertState] | None = None,
        resident: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[AlertRecord]:
        where = ["site = ?"]
        args: list[Any] = [site]
        if states is not None:
            chosen = sorted({AlertState(state).value for state in states})
            if not chosen:
                return []
            where.append(f"state IN ({', '.join('?' for _ in chosen)})")
            args.extend(chosen)
        if resident is not None:
            where.append("resident = ?")
            args.append(resident)
        if end is not None:
            where.append("opened_ns < ?")
            args.append(_ns(end))
        if start is not None:
            where.append("(resolved_ns IS NULL OR resolved_ns >= ?)")
            args.append(_ns(start))
        args.append(_checked_limit(limit))
        sql = f"{_SELECT_ALERT} WHERE {' AND '.join(where)} ORDER BY opened_ns DESC, id LIMIT ?"
        rows = await self._call(lambda db: db.execute(sql, args).fetchall())
        return [_alert(row) for row in rows]

    async def audit(self, alert_id: str) -> list[AuditRecord]:
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE alert_id = ? ORDER BY seq"
        rows = await self._call(lambda db: db.execute(sql, (alert_id,)).fetchall())
        return [_audit(row) for row in rows]

    async def site_audit(
        self, site: str, *, start: datetime, end: datetime, limit: int = 1000
    ) -> list[AuditRecord]:
        args = (site, _ns(start), _ns(end), _checked_limit(limit))
        sql = (
            f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE site = ? AND time_ns >= ? "
            "AND time_ns < ? ORDER BY time_ns, seq LIMIT ?"
        )
        rows = await self._call(lambda db: db.execute(sql, args).fetchall())
        return [_audit(row) for row in rows]
