"""One SQLite file owned by one worker thread: what the cloud's embedded stores are kept in
(readings for the demo and small sites, the alert ledger, the API's accounts, sessions and
audit log).

sqlite3 blocks, so every call runs on a single worker thread that owns the connection, in
order (SQLite wants one writer anyway), and never blocks the event loop. The file is in WAL
mode; ``synchronous=FULL`` by default, so a write that returned survives a power cut. The
schema is applied when the connection opens, and a file written by a newer version of the
program (a higher ``user_version``) is refused. ``sqlite3`` errors become the owner's own
error type (``error``); other exceptions raised inside a call pass through unchanged.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, TypeVar

__all__ = ["SqliteDatabase", "SqliteOwner", "transaction"]

T = TypeVar("T")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteDatabase:
    """A SQLite file in WAL mode with ``schema`` applied, used through :meth:`run`."""

    def __init__(
        self,
        path: Path | str,
        schema: str,
        *,
        version: int,
        name: str,
        error: Callable[[str], Exception],
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        foreign_keys: bool = False,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self._path = Path(path)
        self._schema = schema
        self._version = version
        self._name = name
        self._error = error
        self._synchronous = synchronous
        self._foreign_keys = foreign_keys
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{name}")
        self._db: sqlite3.Connection | None = None
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` with the connection on the worker thread."""
        if self._closed:
            raise self._error(f"the {self._name} database is closed")

        def call() -> T:
            try:
                return work(self._connection())
            except sqlite3.Error as exc:
                raise self._error(f"{self._name} database: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        finally:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        await self.run(lambda db: None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, timeout=self._busy_timeout_s, isolation_level=None)
            try:
                db.row_factory = sqlite3.Row
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise self._error(f"{self._name} database {self._path} cannot use WAL")
                db.execute(f"PRAGMA synchronous={self._synchronous}")
                if self._foreign_keys:
                    db.execute("PRAGMA foreign_keys=ON")
                found = int(db.execute("PRAGMA user_version").fetchone()[0])
                if found > self._version:
                    raise self._error(
                        f"{self._name} database {self._path} has schema version {found}, "
                        f"newer than this program's {self._version}"
                    )
                db.executescript(self._schema)
                db.execute(f"PRAGMA user_version={self._version}")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db


class SqliteOwner:
    """A store kept in one :class:`SqliteDatabase` (``self._db``): its life is the
    database's (``async with``, :meth:`aclose`)."""

    _db: SqliteDatabase

    async def aclose(self) -> None:
        await self._db.aclose()

    async def __aenter__(self) -> Self:
        await self._db.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
