"""The reading store's interface and the values that cross it.

One interface, :class:`ReadingStore`, served by InfluxDB (:mod:`cloud.store.influx`, for
production) and by SQLite (:mod:`cloud.store.sqlite`, for the zero-install demo and small
single-home installs). The same contract tests run against both.

The key of a stored reading
---------------------------
A reading is stored under ``(site, resident, device, metric, user, time_ns)``, and writing the
same key again overwrites it (InfluxDB keeps the last write for the same series and timestamp;
SQLite upserts). Redelivery of an MQTT message therefore never counts a reading twice.

``time_ns`` is the measurement time plus ``seq % 1000`` nanoseconds. Wire timestamps have
microsecond resolution, so the three sub-microsecond digits are free; filling them from the
per-gateway sequence number keeps apart readings of one device and metric that share a
timestamp (the RR intervals of one heart-rate notification are all stamped with its receive
time and get consecutive seqs), without a tag per reading (which would be unbounded) and
deterministically (a redelivered reading has the same seq, hence the same point). Two readings
of one series collide only if they share a microsecond *and* their seqs differ by a multiple
of 1,000, i.e. a device repeated a timestamp a thousand readings later; the later one then
replaces the earlier. :attr:`StoredReading.time` gives the measurement time back exactly.

``user`` (the device's user index, for BP cuffs and scales shared by residents) is in the key
so that two users of one unassigned device never overwrite each other. The gateway is not:
it is the path a reading took, not what was measured, and it is kept as a field with ``seq``.

Identifiers (site, resident, device, gateway) are stored verbatim. Anything printable is
accepted except a backslash (InfluxDB 1.x and 2.x disagree on backslashes in tag values, so it
could not be read back faithfully everywhere) and control characters; such a value is refused
with :class:`~cloud.errors.StoreValueError`, per reading on write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import NamedTuple, Protocol, Self

from cloud.errors import StoreValueError
from vitals.fastwire import ReadingRecord
from vitals.metrics import Metric
from vitals.wire import Quality, Reading

__all__ = [
    "MAX_IDENTIFIER_LENGTH",
    "SEQ_SLOTS",
    "Bucket",
    "ReadingStore",
    "Rejected",
    "StoredReading",
    "WriteResult",
    "check_identifier",
    "checked_every",
    "checked_range",
    "datetime_from_ns",
    "flags_from_text",
    "flags_text",
    "ns_from_datetime",
    "storage_time_ns",
]

SEQ_SLOTS = 1000
"""Sub-microsecond nanoseconds filled from ``seq`` (see the module docstring)."""
MAX_IDENTIFIER_LENGTH = 256

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FORBIDDEN = re.compile(r"[\\\x00-\x1f\x7f]")


def storage_time_ns(measured_ns: int, seq: int) -> int:
    """The stored timestamp of a reading measured at ``measured_ns`` with sequence ``seq``."""
    return measured_ns - measured_ns % SEQ_SLOTS + seq % SEQ_SLOTS


def ns_from_datetime(value: datetime) -> int:
    """Integer nanoseconds since the Unix epoch of a timezone-aware datetime."""
    if value.tzinfo is None:
        raise StoreValueError(f"naive datetime {value.isoformat()}: give a time zone")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def datetime_from_ns(value: int) -> datetime:
    """The UTC datetime of integer nanoseconds since the epoch (cut to microseconds)."""
    return _EPOCH + timedelta(microseconds=value // 1_000)


def check_identifier(value: str, what: str) -> str:
    """Return ``value`` if the store can hold it faithfully, else raise StoreValueError."""
    if not isinstance(value, str) or not value:
        raise StoreValueError(f"{what} must be a non-empty string, not {value!r}")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise StoreValueError(f"{what} is longer than {MAX_IDENTIFIER_LENGTH} characters")
    if _FORBIDDEN.search(value) is not None:
        raise StoreValueError(f"{what} {value!r} holds a backslash or a control character")
    return value


class StoredReading(NamedTuple):
    """One reading as stored: the wire reading plus the site and the resident it belongs to.

    A ``NamedTuple`` rather than a frozen dataclass because one is made for every reading on
    the ingest path: building a frozen slots dataclass costs ~1.3 µs (one ``object.__setattr__``
    per field), a named tuple ~0.3 µs, and both are immutable and compare by value.
    """

    site: str
    resident: str
    device: str
    metric: Metric
    user: int | None
    time_ns: int
    """The stored timestamp: measurement time plus ``seq % 1000`` ns (part of the key)."""
    value: float
    seq: int
    gateway: str
    flags: tuple[Quality, ...]
    received_ns: int
    """When the gateway received it, ns since the epoch."""

    @classmethod
    def from_reading(cls, site: str, resident: str, reading: Reading) -> StoredReading:
        seq = reading.seq
        measured = (reading.time - _EPOCH) // _MICROSECOND * 1_000
        return cls(
            site,
            resident,
            reading.device,
            reading.metric,
            reading.user,
            measured + seq % SEQ_SLOTS,
            reading.value,
            seq,
            reading.gateway,
            reading.flags,
            (reading.received - _EPOCH) // _MICROSECOND * 1_000,
        )

    @classmethod
    def from_record(
        cls, site: str, resident: str, record: ReadingRecord, time_ns: int, received_ns: int
    ) -> StoredReading:
        """The same as :meth:`from_reading`, from the ingestor's fast path
        (:func:`vitals.fastwire.fast_batch`, which gives the times as nanoseconds)."""
        seq = record["seq"]
        return cls(
            site,
            resident,
            record["device"],
            record["metric"],
            record.get("user"),
            time_ns + seq % SEQ_SLOTS,
            record["value"],
            seq,
            record["gateway"],
            record.get("flags", ()),
            received_ns,
        )

    @property
    def time(self) -> datetime:
        """The measurement time as sent (the stored timestamp without the seq part)."""
        return datetime_from_ns(self.time_ns)

    @property
    def received(self) -> datetime:
        return datetime_from_ns(self.received_ns)

    @property
    def key(self) -> tuple[str, str, str, Metric, int | None, int]:
        """What identifies the stored point: writing the same key again overwrites it."""
        return (self.site, self.resident, self.device, self.metric, self.user, self.time_ns)


@dataclass(slots=True, frozen=True)
class Rejected:
    """A reading the store refused for its content, with the store's reason."""

    reading: StoredReading
    reason: str


@dataclass(slots=True, frozen=True)
class WriteResult:
    """What :meth:`ReadingStore.write` did: every reading not in ``rejected`` is stored."""

    written: int
    rejected: tuple[Rejected, ...] = ()


@dataclass(slots=True, frozen=True)
class Bucket:
    """One interval of downsampled history. ``start_ns`` is a multiple of the interval
    since the Unix epoch (as InfluxDB's ``GROUP BY time()`` aligns them)."""

    start_ns: int
    mean: float
    minimum: float
    maximum: float
    count: int

    @property
    def start(self) -> datetime:
        return datetime_from_ns(self.start_ns)


class ReadingStore(Protocol):
    """Where readings are kept. Every implementation passes ``tests/integration/
    test_store_contract.py``.

    ``write`` either stores every reading not listed in the result's ``rejected`` or raises
    :class:`~cloud.errors.StoreUnavailableError` (then nothing is known to be stored and the
    whole call may be repeated: writes are idempotent). Queries raise
    :class:`~cloud.errors.StoreUnavailableError`, :class:`~cloud.errors.StoreRejectedError`
    or :class:`~cloud.errors.StoreValueError` (bad identifiers, naive datetimes).
    """

    async def write(self, readings: Sequence[StoredReading]) -> WriteResult: ...

    async def latest(
        self, site: str, resident: str | None = None, *, since: datetime | None = None
    ) -> list[StoredReading]:
        """The newest reading of every (resident, metric) of ``site`` (or of one resident),
        optionally only among readings measured at or after ``since``; sorted by resident
        and metric."""
        ...

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
        """Readings of one resident and metric with ``start <= time < end``, oldest first,
        at most ``limit`` of them."""
        ...

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
        """Mean, minimum, maximum and count per ``every`` over ``start <= time < end``; only
        intervals that hold readings, oldest first."""
        ...

    async def count(
        self,
        site: str,
        resident: str | None = None,
        metric: Metric | None = None,
    ) -> int:
        """How many readings are stored for ``site`` (and one resident, one metric)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def checked_range(start: datetime, end: datetime) -> tuple[int, int]:
    """``start`` and ``end`` as ns, refusing naive datetimes."""
    return ns_from_datetime(start), ns_from_datetime(end)


def checked_every(every: timedelta) -> int:
    """``every`` as a positive whole number of nanoseconds."""
    every_ns = (every.days * 86_400 + every.seconds) * 1_000_000_000 + every.microseconds * 1_000
    if every_ns <= 0:
        raise StoreValueError(f"history interval must be positive, not {every}")
    return every_ns


def flags_text(flags: Sequence[Quality]) -> str:
    """Quality flags as stored: comma-separated, in the order sent."""
    return ",".join(flags)


def flags_from_text(text: str | None) -> tuple[Quality, ...]:
    """The inverse of :func:`flags_text`; unknown flags are dropped."""
    if not text:
        return ()
    known = {q.value for q in Quality}
    return tuple(Quality(part) for part in text.split(",") if part in known)
