"""Server-side sessions: a random 256-bit token in a cookie, only its SHA-256 kept.

A session ends when unused for ``idle_s``, ``absolute_s`` after login however busy, at logout,
when its account's password changes (every other session of the account), and when the account
is disabled or deleted. Each session has its own CSRF token (synchroniser token): state-changing
requests must send it back in ``X-CSRF-Token`` (:mod:`cloud.api.access`).

A leaked copy of the session table gives neither usable cookies (only hashes are stored) nor
anything a CSRF token alone could do.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from cloud.api.database import SqliteDatabase
from cloud.api.settings import SessionSettings
from cloud.sqlite import SqliteOwner
from cloud.store.base import datetime_from_ns, ns_from_datetime

__all__ = [
    "Session",
    "SessionStore",
    "SqliteSessionStore",
    "is_token",
    "new_token",
    "token_id",
]

TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: str) -> bool:
    """Whether ``value`` has the form of a token (anything else is refused unread)."""
    return _TOKEN.fullmatch(value) is not None


def token_id(token: str) -> str:
    """What a session is stored under: the SHA-256 of its token (hex). The token has 256
    bits of entropy, so a plain hash cannot be reversed by guessing."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(slots=True, frozen=True)
class Session:
    id: str
    """SHA-256 of the token (hex)."""
    user_id: int
    csrf_token: str
    created: datetime
    last_seen: datetime

    def expires(self, settings: SessionSettings) -> datetime:
        """When the session ends unless used again before."""
        return min(
            self.last_seen + timedelta(seconds=settings.idle_s),
            self.created + timedelta(seconds=settings.absolute_s),
        )

    def absolute_expiry(self, settings: SessionSettings) -> datetime:
        return self.created + timedelta(seconds=settings.absolute_s)

    def is_live(self, now: datetime, settings: SessionSettings) -> bool:
        return now < self.expires(settings)

    def needs_touch(self, now: datetime, settings: SessionSettings) -> bool:
        """Whether ``last_seen`` should be written again: not on every request, but often
        enough that idle expiry is off by at most a tenth of ``idle_s`` (and a minute)."""
        return now - self.last_seen >= min(
            timedelta(seconds=settings.idle_s / 10), timedelta(minutes=1)
        )


class SessionStore(Protocol):
    """Where sessions are kept. Raises :class:`~cloud.api.errors.StorageError`."""

    async def create(self, user_id: int, *, now: datetime) -> tuple[str, Session]:
        """A new session: its token (for the cookie, never stored) and the session."""
        ...

    async def get(self, token: str) -> Session | None:
        """The session of ``token`` (whether expired or not: the caller decides)."""
        ...

    async def touch(self, session_id: str, *, now: datetime) -> None: ...

    async def revoke(self, session_id: str) -> None: ...

    async def revoke_user(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of the account (but ``keep``); how many ended."""
        ...

    async def purge(self, *, now: datetime, settings: SessionSettings) -> int:
        """Remove expired sessions; how many."""
        ...

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
CREATE TABLE IF NOT EXISTS sessions (
    id           TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL,
    csrf_token   TEXT    NOT NULL,
    created_ns   INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
"""


def _session(row: sqlite3.Row) -> Session:
    return Session(
        id=row["id"],
        user_id=int(row["user_id"]),
        csrf_token=row["csrf_token"],
        created=datetime_from_ns(int(row["created_ns"])),
        last_seen=datetime_from_ns(int(row["last_seen_ns"])),
    )


class SqliteSessionStore(SqliteOwner):
    """A :class:`SessionStore` in one SQLite file (it may be the accounts' file)."""

    def __init__(self, path: Path | str) -> None:
        self._db = SqliteDatabase(path, _SCHEMA, version=SCHEMA_VERSION, name="sessions")

    async def create(self, user_id: int, *, now: datetime) -> tuple[str, Session]:
        token = new_token()
        now_ns = ns_from_datetime(now)
        session = Session(
            id=token_id(token),
            user_id=user_id,
            csrf_token=new_token(),
            created=datetime_from_ns(now_ns),
            last_seen=datetime_from_ns(now_ns),
        )
        await self._db.run(
            lambda db: db.execute(
                "INSERT INTO sessions (id, user_id, csrf_token, created_ns, last_seen_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (session.id, user_id, session.csrf_token, now_ns, now_ns),
            )
        )
        return token, session

    async def get(self, token: str) -> Session | None:
        if not is_token(token):
            return None
        session_id = token_id(token)
        row = await self._db.run(
            lambda db: db.execute(
                "SELECT id, user_id, csrf_token, created_ns, last_seen_ns FROM sessions "
                "WHERE id = ?",
                (session_id,),
            ).fetchone()
        )
        return None if row is None else _session(row)

    async def touch(self, session_id: str, *, now: datetime) -> None:
        now_ns = ns_from_datetime(now)
        await self._db.run(
            lambda db: db.execute(
                "UPDATE sessions SET last_seen_ns = max(last_seen_ns, ?) WHERE id = ?",
                (now_ns, session_id),
            )
        )

    async def revoke(self, session_id: str) -> None:
        await self._db.run(
            lambda db: db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        )

    async def revoke_user(self, user_id: int, *, keep: str | None = None) -> int:
        cursor = await self._db.run(
            lambda db: db.execute(
                "DELETE FROM sessions WHERE user_id = ? AND id IS NOT ?", (user_id, keep)
            )
        )
        return int(cursor.rowcount)

    async def purge(self, *, now: datetime, settings: SessionSettings) -> int:
        idle_ns = ns_from_datetime(now - timedelta(seconds=settings.idle_s))
        created_ns = ns_from_datetime(now - timedelta(seconds=settings.absolute_s))
        cursor = await self._db.run(
            lambda db: db.execute(
                "DELETE FROM sessions WHERE last_seen_ns <= ? OR created_ns <= ?",
                (idle_ns, created_ns),
            )
        )
        return int(cursor.rowcount)
