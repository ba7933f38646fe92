"""The embedded store: SQLite in WAL mode, for the zero-install demo and small single-home
installs. Same interface and the same upsert semantics as InfluxDB: one row per key
``(site, resident, metric, time_ns, device, user)``, a second write of a key overwrites it.

sqlite3 blocks, so one worker thread owns the connection and every call runs there, in order
(a single writer is what SQLite wants anyway). ``synchronous=FULL`` by default: a write that
returned is on disk even after a power cut, which is what acknowledging an MQTT message after
the write promises (``NORMAL`` is durable against a process crash only).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from cloud.errors import StoreUnavailableError, StoreValueError
from cloud.sqlite import SqliteDatabase, SqliteOwner
from cloud.store.base import (
    Bucket,
    Rejected,
    StoredReading,
    WriteResult,
    check_identifier,
    checked_every,
    checked_range,
    flags_from_text,
    flags_text,
    ns_from_datetime,
)
from vitals.metrics import Metric

__all__ = ["SqliteStore"]

T = TypeVar("T")

SCHEMA_VERSION = 1
_NO_USER = -1
"""``user_index`` of a reading without a user index (NULL would not take part in the key)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    site        TEXT    NOT NULL,
    resident    TEXT    NOT NULL,
    metric      TEXT    NOT NULL,
    time_ns     INTEGER NOT NULL,
    device      TEXT    NOT NULL,
    user_index  INTEGER NOT NULL,
    value       REAL    NOT NULL,
    seq         INTEGER NOT NULL,
    gateway     TEXT    NOT NULL,
    flags       TEXT    NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (site, resident, metric, time_ns, device, user_index)
) WITHOUT ROWID;
"""

_UPSERT = """
INSERT INTO readings (site, resident, metric, time_ns, device, user_index,
                      value, seq, gateway, flags, received_ns)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, resident, metric, time_ns, device, user_index) DO UPDATE SET
    value = excluded.value, seq = excluded.seq, gateway = excluded.gateway,
    flags = excluded.flags, received_ns = excluded.received_ns
"""

_COLUMNS = (
    "site, resident, metric, time_ns, device, user_index, value, seq, gateway, flags, received_ns"
)


def _row(reading: StoredReading) -> tuple[Any, ...]:
    r = reading
    for what, value in (
        ("site", r.site),
        ("resident", r.resident),
        ("device", r.device),
        ("gateway", r.gateway),
    ):
        check_identifier(value, what)
    return (
        r.site,
        r.resident,
        r.metric.value,
        r.time_ns,
        r.device,
        _NO_USER if r.user is None else r.user,
        float(r.value),
        r.seq,
        r.gateway,
        flags_text(r.flags),
        r.received_ns,
    )


def _reading(row: sqlite3.Row) -> StoredReading:
    user = int(row["user_index"])
    return StoredReading(
        site=row["site"],
        resident=row["resident"],
        device=row["device"],
        metric=Metric(row["metric"]),
        user=None if user == _NO_USER else user,
        time_ns=int(row["time_ns"]),
        value=float(row["value"]),
        seq=int(row["seq"]),
        gateway=row["gateway"],
        flags=flags_from_text(row["flags"]),
        received_ns=int(row["received_ns"]),
    )


class SqliteStore(SqliteOwner):
    """A :class:`~cloud.store.base.ReadingStore` in one SQLite file (WAL mode)."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout_s: float = 5.0,
    ) -> None:
        self._db = SqliteDatabase(
            path,
            _SCHEMA,
            version=SCHEMA_VERSION,
            name="sqlite store",
            error=StoreUnavailableError,
            synchronous=synchronous,
            busy_timeout_s=busy_timeout_s,
        )
        self._call = self._db.run

    # -- writes ---------------------------------------------------------------------------

    async def write(self, readings: Sequence[StoredReading]) -> WriteResult:
        rows: list[tuple[Any, ...]] = []
        rejected: list[Rejected] = []
        for reading in readings:
            try:
                rows.append(_row(reading))
            except StoreValueError as exc:
                rejected.append(Rejected(reading, str(exc)))

        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        if rows:
            await self._call(work)
        return WriteResult(written=len(rows), rejected=tuple(rejected))

    # -- queries --------------------------------------------------------------------------

    async def latest(
        self, site: str, resident: str | None = None, *, since: datetime | None = None
    ) -> list[StoredReading]:
        where = ["site = ?"]
        args: list[Any] = [check_identifier(site, "site")]
        if resident is not None:
            where.append("resident = ?")
            args.append(check_identifier(resident, "resident"))
        if since is not None:
            where.append("time_ns >= ?")
            args.append(ns_from_datetime(since))
        sql = (
            f"SELECT {_COLUMNS} FROM (SELECT {_COLUMNS}, row_number() OVER "
            "(PARTITION BY resident, metric ORDER BY time_ns DESC) AS rank "
            f"FROM readings WHERE {' AND '.join(where)}) WHERE rank = 1 "
            "ORDER BY resident, metric"
        )
        rows = await self._call(lambda db: db.execute(sql, args).fetchall())
        return [_reading(row) for row in rows]

    async def window(
        self,
        site: str,
        resident: str,
        metric: Metric,
        start: datetime,
        end: datetime,
        *,
        limit: int = 10_000,
    ) -> list[StoredReading]:
        if limit < 1:
            raise StoreValueError(f"limit must be positive, not {limit}")
        where, args = self._series_where(site, resident, metric, start, end)
        sql = f"SELECT {_COLUMNS} FROM readings WHERE {where} ORDER BY time_ns LIMIT ?"
        rows = await self._call(lambda db: db.execute(sql, [*args, limit]).fetchall())
        return [_reading(row) for row in rows]

    async def history(
        self,
        site: str,
        resident: str,
        metric: Metric,
        start: datetime,
        end: datetime,
        *,
        every: timedelta,
    ) -> list[Bucket]:
        every_ns = checked_every(every)
        where, args = self._series_where(site, resident, metric, start, end)
        sql = (
            "SELECT (time_ns / ?) * ? AS bucket, avg(value), min(value), max(value), count(*) "
            f"FROM readings WHERE {where} GROUP BY bucket ORDER BY bucket"
        )
        rows = await self._call(lambda db: db.execute(sql, [every_ns, every_ns, *args]).fetchall())
        return [
            Bucket(
                start_ns=int(row[0]),
                mean=float(row[1]),
                minimum=float(row[2]),
                maximum=float(row[3]),
                count=int(row[4]),
            )
            for row in rows
        ]

    async def count(
        self,
        site: str,
        resident: str | None = None,
        metric: Metric | None = None,
    ) -> int:
        where = ["site = ?"]
        args: list[Any] = [check_identifier(site, "site")]
        if resident is not None:
            where.append("resident = ?")
            args.append(check_identifier(resident, "resident"))
        if metric is not None:
            where.append("metric = ?")
            args.append(Metric(metric).value)
        sql = f"SELECT count(*) FROM readings WHERE {' AND '.join(where)}"
        row = await self._call(lambda db: db.execute(sql, args).fetchone())
        return int(row[0])

    @staticmethod
    def _series_where(
        site: str, resident: str, metric: Metric, start: datetime, end: datetime
    ) -> tuple[str, list[Any]]:
        start_ns, end_ns = checked_range(start, end)
        return (
            "site = ? AND resident = ? AND metric = ? AND time_ns >= ? AND time_ns < ?",
            [
                check_identifier(site, "site"),
                check_identifier(resident, "resident"),
                Metric(metric).value,
                start_ns,
                end_ns,
            ],
        )
