"""The durable outbox: every reading the gateway makes waits here, on disk, until the broker
has acknowledged the MQTT message that carried it.

Storage
    SQLite in WAL mode with ``synchronous=FULL``: every commit (a batch of appends, a batch's
    deletion) is fsynced to the WAL before it returns. On a Raspberry Pi a power cut is the
    usual way the gateway stops; with ``NORMAL`` the last commits before it (up to the kernel's
    writeback delay, ~30 s) can roll back, and that would roll back ``next_seq`` too, so seq
    numbers already published could be handed out again for different readings. Appends are
    batched (the recorder flushes every 50 ms or 500 readings), so FULL costs a few fsyncs a
    second; ``bench/outbox.py`` measures it against NORMAL. (An SD card that acknowledges a
    flush it has not done can still lose data; SQLite cannot help that.)

Schema (version 1)::

    meta(key TEXT PRIMARY KEY, value INTEGER)     -- 'schema' = 1, 'next_seq'
    readings(
        seq INTEGER PRIMARY KEY,      -- assigned here, strictly increasing, never reused
        retention INTEGER NOT NULL,   -- 0 continuous, 1 spot, 2 event: the drop order
        device TEXT NOT NULL, user INTEGER, metric TEXT NOT NULL, value REAL NOT NULL,
        time_us INTEGER NOT NULL,     -- measurement time, microseconds since the epoch (UTC)
        received_us INTEGER NOT NULL, -- receive time, same unit
        flags TEXT NOT NULL,          -- quality flags, comma separated, in order
        late INTEGER)                 -- NULL until first handed to the uplink, then 0 or 1
    readings_by_retention ON readings(retention, seq)

``seq`` comes from ``meta.next_seq``, updated in the same transaction as the inserts, so it
keeps increasing across restarts even when the outbox is empty (and a reading dropped by the
full policy leaves a gap the cloud can see).

The ``late`` rule
    A reading is sent with the ``late`` quality flag when it is first handed to the uplink more
    than ``late_after`` (30 s by default) after the gateway received it: it waited out an
    uplink outage, a full queue, or a restart. The decision is made once, at that first
    :meth:`Outbox.fetch`, and stored with the row in the same transaction, so every resend of a
    seq (after a lost PUBACK, a reconnect, a crash) carries exactly the same reading. A
    reading first sent live and then resent after an outage therefore keeps ``late`` off.

When full (``max_rows``)
    ``drop_oldest_continuous`` (default): the new readings are stored, then the oldest rows are
    removed until ``max_rows`` remain: continuous high-rate readings first (heart rate, RR
    interval, respiratory rate, battery, continuous oximetry), spot measurements only when no
    continuous reading is left, events (fall, help button) only when nothing else is.
    ``refuse_new``: the readings that do not fit are refused (no seq), whatever they are.
    Either way the loss is counted by retention class, logged once when a full episode
    starts and summarised when it ends (the outbox is back below 90 % of ``max_rows``).

Threads
    :class:`Outbox` is synchronous and belongs to one thread (its SQLite connection is made
    there). :class:`AsyncOutbox` runs one on a dedicated worker thread, so the event loop
    never waits on SQLite or fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Literal, TypeVar

from gateway.errors import OutboxClosedError, OutboxError, OutboxLockedError
from gateway.settings import FullPolicy
from vitals.metrics import Metric, MetricKind
from vitals.wire import Quality, Reading

__all__ = [
    "SCHEMA_VERSION",
    "AppendResult",
    "AsyncOutbox",
    "Entry",
    "Outbox",
    "OutboxStats",
    "Retention",
    "Stored",
    "retention_of",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPISODE_END = 0.9
"""A full episode ends when the outbox is back below this share of ``max_rows``."""
Synchronous = Literal["full", "normal"]


class Retention(IntEnum):
    """How precious a reading is when the outbox is full: lower values are dropped first."""

    CONTINUOUS = 0
    SPOT = 1
    EVENT = 2


_ALWAYS_CONTINUOUS = frozenset(
    {Metric.HEART_RATE, Metric.RR_INTERVAL, Metric.RESPIRATORY_RATE, Metric.BATTERY_LEVEL}
)
_CONTINUOUS_WHEN_STREAMED = frozenset({Metric.SPO2, Metric.PULSE_RATE})


def retention_of(metric: Metric, *, streamed: bool = False) -> Retention:
    """The retention class of ``metric``. ``streamed`` says the value came from a continuous
    stream (PLX Continuous Measurement): SpO2 and pulse rate are continuous then, and spot
    measurements otherwise (PLX spot-check, a blood-pressure cuff's pulse)."""
    if metric.kind is MetricKind.EVENT:
        return Retention.EVENT
    if metric in _ALWAYS_CONTINUOUS or (streamed and metric in _CONTINUOUS_WHEN_STREAMED):
        return Retention.CONTINUOUS
    return Retention.SPOT


@dataclass(slots=True, frozen=True)
class Entry:
    """One reading as the recorder hands it to the outbox: validated, without its seq."""

    device: str
    metric: Metric
    value: float
    time: datetime
    """Measurement time, aware."""
    received: datetime
    """Receive time, aware."""
    user: int | None = None
    flags: tuple[Quality, ...] = ()
    retention: Retention = Retention.SPOT


@dataclass(slots=True, frozen=True)
class Stored:
    """One reading as the outbox returns it: with its seq and its sealed ``late`` decision."""

    seq: int
    entry: Entry
    late: bool

    def reading(self, gateway: str) -> Reading:
        """The wire reading (validated again: a row damaged on disk raises here)."""
        entry = self.entry
        flags = (*entry.flags, Quality.LATE) if self.late else entry.flags
        return Reading(
            gateway=gateway,
            device=entry.device,
            user=entry.user,
            metric=entry.metric,
            value=entry.value,
            unit=entry.metric.unit,
            time=entry.time,
            received=entry.received,
            seq=self.seq,
            flags=flags,
        )


@dataclass(slots=True, frozen=True)
class AppendResult:
    """What one :meth:`Outbox.append` did."""

    seqs: tuple[int, ...]
    """The seqs given to the stored readings, in the order given (empty if all refused)."""
    refused: int = 0
    """New readings refused (``refuse_new`` policy)."""
    dropped: int = 0
    """Rows removed to make room (``drop_oldest_continuous``); may include new ones."""


@dataclass(slots=True)
class OutboxStats:
    """Counters since the outbox was opened (``depth`` and ``next_seq`` are current)."""

    depth: int = 0
    next_seq: int = 1
    appended: int = 0
    deleted: int = 0
    refused: int = 0
    dropped: dict[Retention, int] = field(default_factory=lambda: dict.fromkeys(Retention, 0))

    @property
    def lost(self) -> int:
        """Readings the outbox lost to its full policy (dropped or refused)."""
        return self.refused + sum(self.dropped.values())

    def copy(self) -> OutboxStats:
        return OutboxStats(
            self.depth, self.next_seq, self.appended, self.deleted, self.refused, dict(self.dropped)
        )


def _us(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS readings (
    seq INTEGER PRIMARY KEY,
    retention INTEGER NOT NULL,
    device TEXT NOT NULL,
    user INTEGER,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    time_us INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    flags TEXT NOT NULL,
    late INTEGER
);
CREATE INDEX IF NOT EXISTS readings_by_retention ON readings (retention, seq);
"""

_COLUMNS = "seq, retention, device, user, metric, value, time_us, received_us, flags, late"

T = TypeVar("T")


class Outbox:
    """The outbox on one SQLite file, used from one thread. See the module docstring.

    Opening takes an exclusive lock on ``<path>.lock`` (released by the OS if the process
    dies), so two processes can never hand out the same seq.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_rows: int,
        policy: FullPolicy = FullPolicy.DROP_OLDEST_CONTINUOUS,
        late_after: timedelta = timedelta(seconds=30),
        synchronous: Synchronous = "full",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.path = path
        self.max_rows = max_rows
        self.policy = policy
        self._late_after_us = int(late_after / timedelta(microseconds=1))
        self._monotonic = monotonic
        self._full_since: float | None = None
        self._episode: dict[Retention, int] = dict.fromkeys(Retention, 0)
        self._episode_refused = 0
        self._lock_fd = self._lock(path)
        try:
            self._db = self._connect(path, synchronous)
            self._stats = OutboxStats(depth=self._count(), next_seq=self._meta("next_seq", 1))
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._closed = False

    # -- opening and closing --------------------------------------------------------------

    @staticmethod
    def _lock(path: Path) -> int:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutboxError(f"cannot open outbox lock {path}.lock: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutboxLockedError(str(path)) from None
        return fd

    def _connect(self, path: Path, synchronous: Synchronous) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(path, isolation_level=None)
            try:
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise OutboxError(f"outbox {path}: SQLite refused WAL mode ({mode})")
                db.execute(f"PRAGMA synchronous={synchronous.upper()}")
                db.execute("PRAGMA busy_timeout=5000")
                db.execute("PRAGMA journal_size_limit=67108864")
                db.executescript(_SCHEMA)
                with self._transaction(db):
                    db.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                        (SCHEMA_VERSION,),
                    )
                    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1)")
                version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
                if version != SCHEMA_VERSION:
                    raise OutboxError(
                        f"outbox {path} has schema {version}, this gateway reads {SCHEMA_VERSION}"
                    )
            except BaseException:
                db.close()
                raise
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        return db

    def close(self) -> None:
        """Checkpoint and close the database, then release the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise OutboxError(f"closing outbox {self.path}: {exc}") from exc
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- state ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Rows waiting in the outbox."""
        return self._stats.depth

    @property
    def next_seq(self) -> int:
        """The seq the next stored reading will get."""
        return self._stats.next_seq

    def stats(self) -> OutboxStats:
        return self._stats.copy()

    # -- operations -----------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> AppendResult:
        """Store ``entries`` in one transaction, giving them the next seqs in order, and apply
        the full policy. Returns the seqs given and what the policy refused or dropped."""
        if not entries:
            return AppendResult(())
        self._check_open()
        db = self._db
        stats = self._stats
        refused = 0
        dropped: dict[Retention, int] = {}
        with self._errors("append"), self._transaction(db):
            first = stats.next_seq
            accepted: Sequence[Entry] = entries
            if self.policy is FullPolicy.REFUSE_NEW:
                room = max(self.max_rows - stats.depth, 0)
                accepted = entries[:room]
                refused = len(entries) - len(accepted)
            db.executemany(
                f"INSERT INTO readings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    (
                        first + index,
                        int(e.retention),
                        e.device,
                        e.user,
                        e.metric.value,
                        e.value,
                        _us(e.time),
                        _us(e.received),
                        ",".join(e.flags),
                    )
                    for index, e in enumerate(accepted)
                ),
            )
            next_seq = first + len(accepted)
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (next_seq,))
            excess = stats.depth + len(accepted) - self.max_rows
            if excess > 0 and self.policy is FullPolicy.DROP_OLDEST_CONTINUOUS:
                dropped = self._trim(db, excess)
        # Committed: only now does the in-memory state follow.
        stats.next_seq = next_seq
        dropped_total = sum(dropped.values())
        stats.depth += len(accepted) - dropped_total
        stats.appended += len(accepted)
        stats.refused += refused
        for retention, count in dropped.items():
            stats.dropped[retention] += count
        if refused or dropped_total:
            self._note_loss(refused, dropped)
        return AppendResult(tuple(range(first, next_seq)), refused, dropped_total)

    def fetch(self, *, after: int, limit: int, now: datetime) -> list[Stored]:
        """The oldest ``limit`` rows with ``seq > after``, in seq order (the uplink passes the
        last seq it has in flight). Rows fetched for the first time get their ``late``
        decision (see the module docstring), committed before they are returned."""
        if limit < 1:
            return []
        self._check_open()
        db = self._db
        with self._errors("fetch"), self._transaction(db):
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM readings WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
            if not rows:
                return []
            cutoff = _us(now) - self._late_after_us
            if any(row[9] is None for row in rows):
                db.execute(
                    "UPDATE readings SET late = (received_us < ?) "
                    "WHERE seq > ? AND seq <= ? AND late IS NULL",
                    (cutoff, after, rows[-1][0]),
                )
        return [
            Stored(
                seq,
                Entry(
                    device=device,
                    metric=Metric(metric),
                    value=value,
                    time=_from_us(time_us),
                    received=_from_us(received_us),
                    user=user,
                    flags=tuple(Quality(flag) for flag in flags.split(",") if flag),
                    retention=Retention(retention),
                ),
                bool(received_us < cutoff) if late is None else bool(late),
            )
            for (
                seq,
                retention,
                device,
                user,
                metric,
                value,
                time_us,
                received_us,
                flags,
                late,
            ) in rows
        ]

    def delete(self, seqs: Iterable[int]) -> int:
        """Delete the rows with these seqs (after their PUBACK); returns how many existed."""
        self._check_open()
        db = self._db
        with self._errors("delete"), self._transaction(db):
            before = db.total_changes
            db.executemany("DELETE FROM readings WHERE seq = ?", ((seq,) for seq in seqs))
            deleted = db.total_changes - before
        self._stats.depth -= deleted
        self._stats.deleted += deleted
        self._check_episode_end()
        return deleted

    def count(self) -> int:
        """Rows in the table, counted by SQLite (``depth`` is the cached figure)."""
        self._check_open()
        with self._errors("count"):
            return self._count()

    # -- internals ------------------------------------------------------------------------

    def _trim(self, db: sqlite3.Connection, excess: int) -> dict[Retention, int]:
        dropped: dict[Retention, int] = {}
        for retention in Retention:
            if excess <= 0:
                break
            cursor = db.execute(
                "DELETE FROM readings WHERE seq IN "
                "(SELECT seq FROM readings WHERE retention = ? ORDER BY seq LIMIT ?)",
                (int(retention), excess),
            )
            if cursor.rowcount > 0:
                dropped[retention] = cursor.rowcount
                excess -= cursor.rowcount
        return dropped

    def _note_loss(self, refused: int, dropped: dict[Retention, int]) -> None:
        if self._full_since is None:
            self._full_since = self._monotonic()
            logger.warning(
                "outbox full: max_rows=%d policy=%s; %s (summary when it has room again)",
                self.max_rows,
                self.policy.value,
                "refusing new readings"
                if self.policy is FullPolicy.REFUSE_NEW
                else "dropping the oldest continuous readings first",
            )
        self._episode_refused += refused
        for retention, count in dropped.items():
            self._episode[retention] += count

    def _check_episode_end(self) -> None:
        if self._full_since is None or self._stats.depth >= self.max_rows * _EPISODE_END:
            return
        logger.warning(
            "outbox has room again after %.1f s full: refused=%d dropped_continuous=%d "
            "dropped_spot=%d dropped_event=%d",
            self._monotonic() - self._full_since,
            self._episode_refused,
            self._episode[Retention.CONTINUOUS],
            self._episode[Retention.SPOT],
            self._episode[Retention.EVENT],
        )
        self._full_since = None
        self._episode = dict.fromkeys(Retention, 0)
        self._episode_refused = 0

    def _count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])

    def _meta(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxClosedError(f"outbox {self.path} is closed")

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {what} failed: {exc}") from exc


class AsyncOutbox:
    """An :class:`Outbox` on its own worker thread, for the event loop.

    Open it with ``async with AsyncOutbox.open(path, max_rows=...) as outbox``. Writes
    (``append``, ``delete``) are shielded: once submitted they complete even if the awaiting
    task is cancelled, and closing waits for them.
    """

    def __init__(self, executor: ThreadPoolExecutor, outbox: Outbox) -> None:
        self._executor = executor
        self._outbox = outbox
        self._stats = outbox.stats()
        self._issued = 0
        """Snapshots taken (on the worker thread)."""
        self._ticket = 0
        """The newest snapshot installed (on the loop)."""
        self._changed = asyncio.Condition()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        path: Path,
        *,
        max_rows: int,
        policy: FullPolicy = FullPolicy.DROP_OLDEST_CONTINUOUS,
        late_after: timedelta = timedelta(seconds=30),
        synchronous: Synchronous = "full",
    ) -> AsyncIterator[AsyncOutbox]:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carewatch-outbox")
        try:
            outbox = await asyncio.get_running_loop().run_in_executor(
                executor,
                lambda: Outbox(
                    path,
                    max_rows=max_rows,
                    policy=policy,
                    late_after=late_after,
                    synchronous=synchronous,
                ),
            )
            this = cls(executor, outbox)
            try:
                yield this
            finally:
                await this._run(outbox.close, shield=True)
        finally:
            executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self._stats.depth

    @property
    def last_seq(self) -> int:
        """The highest seq handed out so far (0 when none ever was)."""
        return self._stats.next_seq - 1

    def stats(self) -> OutboxStats:
        return self._stats.copy()

    async def append(self, entries: Sequence[Entry]) -> AppendResult:
        result = await self._run(lambda: self._outbox.append(entries), shield=True)
        if result.seqs:
            async with self._changed:
                self._changed.notify_all()
        return result

    async def fetch(self, *, after: int, limit: int, now: datetime) -> list[Stored]:
        return await self._run(lambda: self._outbox.fetch(after=after, limit=limit, now=now))

    async def delete(self, seqs: Sequence[int]) -> int:
        return await self._run(lambda: self._outbox.delete(seqs), shield=True)

    async def wait_for_rows(self, after: int) -> None:
        """Return once a reading with a seq above ``after`` has been stored."""
        if self.last_seq > after:
            return
        async with self._changed:
            await self._changed.wait_for(lambda: self.last_seq > after)

    async def _run(self, call: Callable[[], T], *, shield: bool = False) -> T:
        def work() -> tuple[T, int, OutboxStats]:
            # The snapshot is taken on the worker thread right after the call; the ticket
            # orders snapshots, so a late-resuming caller can never install an older one.
            result = call()
            self._issued += 1
            return result, self._issued, self._outbox.stats()

        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        future.add_done_callback(self._take_stats)  # runs even if the caller is cancelled
        result, _, _ = await (asyncio.shield(future) if shield else future)
        return result

    def _take_stats(self, future: asyncio.Future[tuple[T, int, OutboxStats]]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        _, ticket, stats = future.result()
        if ticket > self._ticket:
            self._ticket = ticket
            self._stats = stats
