"""The audit log: who read which resident's data, when, through which endpoint, and every
change (logins, accounts, links), append-only.

Entries hold ids, never names or health values. The SQLite table refuses ``UPDATE`` and
``DELETE`` with triggers, so the application cannot rewrite history by mistake (whoever holds
the file can, of course: ship it to write-once storage for stronger guarantees). Retention
(deleting entries older than the law requires) is an operator's job done with the triggers
dropped in a maintenance window.

Health reads are recorded *before* the data is fetched, by the access dependency that allows
them (:mod:`cloud.api.access`): if the entry cannot be written, the data is not served (503).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from cloud.api.database import SqliteDatabase
from cloud.sqlite import SqliteOwner
from cloud.store.base import datetime_from_ns, ns_from_datetime

__all__ = [
    "AuditAction",
    "AuditEntry",
    "AuditEvent",
    "AuditLog",
    "AuditQuery",
    "Outcome",
    "SqliteAuditLog",
]

MAX_QUERY_LIMIT = 10_000


class AuditAction(StrEnum):
    READ = "read"
    """A resident's record or health data (or a site-wide listing) was read."""
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGIN_LIMITED = "login_limited"
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password_changed"
    USER_CREATED = "user_created"
    USER_DELETED = "user_deleted"
    LINK_GRANTED = "link_granted"
    LINK_REVOKED = "link_revoked"
    CHANGE = "change"
    """Any other change (routers added later use it with their endpoint)."""


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(slots=True, frozen=True)
class AuditEvent:
    time: datetime
    user_id: int | None
    """Who acted (``None``: nobody logged in, e.g. a failed login for an unknown name)."""
    action: AuditAction
    outcome: Outcome
    endpoint: str | None = None
    """``METHOD /route/{template}`` of the request, under ``/api/v1``
    (``GET /sites/{site}/residents/{resident}/latest``)."""
    site: str | None = None
    resident: str | None = None
    target: str | None = None
    """What else the entry is about: an account id, a link id."""
    address: str | None = None
    """The client address."""


@dataclass(slots=True, frozen=True)
class AuditEntry:
    id: int
    event: AuditEvent


@dataclass(slots=True, frozen=True)
class AuditQuery:
    """Entries matching every field given, newest first."""

    site: str | None = None
    sites: frozenset[str] | None = None
    """Only entries of these sites, or without a site."""
    user_id: int | None = None
    resident: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    before_id: int | None = None
    """Only entries older than this one (paging)."""


class AuditLog(Protocol):
    """Where audit entries are appended. Raises :class:`~cloud.api.errors.StorageError`."""

    async def record(self, event: AuditEvent) -> int:
        """Append ``event``; its entry id."""
        ...

    async def query(self, query: AuditQuery) -> list[AuditEntry]: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ns  INTEGER NOT NULL,
    user_id  INTEGER,
    action   TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    endpoint TEXT,
    site     TEXT,
    resident TEXT,
    target   TEXT,
    address  TEXT
);
CREATE INDEX IF NOT EXISTS audit_site ON audit (site, id);
CREATE INDEX IF NOT EXISTS audit_user ON audit (user_id, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def _entry(row: sqlite3.Row) -> AuditEntry:
    user_id = row["user_id"]
    return AuditEntry(
        id=int(row["id"]),
        event=AuditEvent(
            time=datetime_from_ns(int(row["time_ns"])),
            user_id=None if user_id is None else int(user_id),
            action=AuditAction(row["action"]),
            outcome=Outcome(row["outcome"]),
            endpoint=row["endpoint"],
            site=row["site"],
            resident=row["resident"],
            target=row["target"],
            address=row["address"],
        ),
    )


class SqliteAuditLog(SqliteOwner):
    """An :class:`AuditLog` in its own SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self._db = SqliteDatabase(path, _SCHEMA, version=SCHEMA_VERSION, name="audit")

    async def record(self, event: AuditEvent) -> int:
        row = (
            ns_from_datetime(event.time),
            event.user_id,
            event.action.value,
            event.outcome.value,
            event.endpoint,
            event.site,
            event.resident,
            event.target,
            event.address,
        )

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO audit (time_ns, user_id, action, outcome, endpoint, site, "
                "resident, target, address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            entry_id = cursor.lastrowid
            assert entry_id is not None
            return entry_id

        return await self._db.run(work)

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        where: list[str] = []
        args: list[Any] = []
        if query.site is not None:
            where.append("site = ?")
            args.append(query.site)
        if query.sites is not None:
            marks = ", ".join("?" for _ in query.sites)
            where.append(f"(site IS NULL OR site IN ({marks}))" if marks else "site IS NULL")
            args.extend(sorted(query.sites))
        if query.user_id is not None:
            where.append("user_id = ?")
            args.append(query.user_id)
        if query.resident is not None:
            where.append("resident = ?")
            args.append(query.resident)
        if query.since is not None:
            where.append("time_ns >= ?")
            args.append(ns_from_datetime(query.since))
        if query.until is not None:
            where.append("time_ns < ?")
            args.append(ns_from_datetime(query.until))
        if query.before_id is not None:
            where.append("id < ?")
            args.append(query.before_id)
        limit = max(1, min(query.limit, MAX_QUERY_LIMIT))
        sql = (
            "SELECT id, time_ns, user_id, action, outcome, endpoint, site, resident, target, "
            f"address FROM audit {'WHERE ' + ' AND '.join(where) if where else ''} "
            "ORDER BY id DESC LIMIT ?"
        )
        rows = await self._db.run(lambda db: db.execute(sql, [*args, limit]).fetchall())
        return [_entry(row) for row in rows]
