"""The ingestor's fast path for readings batches: the same verdict as :func:`parse_batch` on
a wholly valid batch, at a third of the cost.

:func:`vitals.wire.parse_batch` validates into :class:`~vitals.wire.Reading` models, whose
checks run as Python validators on every reading (UTC normalisation, unit, range, clock skew,
repeated flags): about 6 µs per reading, most of the ingestor's CPU. Here the per-field checks
that pydantic-core can do in Rust are declared as constraints on ``TypedDict`` records (types,
patterns, lengths, bounds, aware timestamps on or after 2000, numbers never taken for
timestamps), and the checks that tie fields together run in one tight loop over the batch with
precomputed per-metric limits. The result is plain records, not models: the ingestor turns
them straight into stored readings.

The fast path only ever *accepts*: :func:`fast_batch` returns ``None`` as soon as anything is
wrong, and the caller then runs :func:`~vitals.wire.parse_batch`, which keeps the good
readings and explains the bad ones. So the reasons a reading is refused are written once, in
the models; this module must only never accept what they refuse. A property test
(tests/unit/test_fastwire.py) holds the two to that, and to accepting everything the models
accept (or the fast path would silently stop being used).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal, NotRequired

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from vitals.metrics import Metric
from vitals.wire import (
    EARLIEST,
    MAX_BATCH_READINGS,
    MAX_CLOCK_AHEAD,
    FiniteFloat,
    Id,
    Quality,
    StrictInt,
)

__all__ = ["FastBatch", "ReadingRecord", "fast_batch"]

_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
WireTime = Annotated[str, Strict(), Field(pattern=_ISO)]
"""The common RFC 3339 form of an aware timestamp, checked in Rust and parsed here with
:meth:`datetime.fromisoformat` (C): cheaper than pydantic's datetimes, whose offsets are a
Python-level ``tzinfo`` that every later subtraction has to call. Any other form the models
accept (lower-case ``t``, a space, more digits) goes the slow way."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)

_CONFIG = ConfigDict(extra="forbid", str_max_length=512)


class ReadingRecord(TypedDict):
    """One reading as the fast path checks it (field meanings: :class:`vitals.wire.Reading`);
    the times as sent. :class:`FastBatch` has them as nanoseconds."""

    __pydantic_config__ = _CONFIG  # type: ignore[misc]

    gateway: Id
    device: Id
    user: NotRequired[Annotated[StrictInt, Field(ge=0, le=254)] | None]
    metric: Metric
    value: FiniteFloat
    unit: str
    time: WireTime
    received: WireTime
    seq: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
    flags: NotRequired[tuple[Quality, ...]]


class _BatchRecord(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]

    v: Literal[1]
    site: Id
    gateway: Id
    sent: WireTime
    readings: Annotated[list[ReadingRecord], Field(min_length=1, max_length=MAX_BATCH_READINGS)]


_ADAPTER: Final = TypeAdapter(_BatchRecord)
_LIMITS: Final = {m: (m.info.unit, m.info.minimum, m.info.maximum) for m in Metric}


@dataclass(slots=True, frozen=True)
class FastBatch:
    site: str
    gateway: str
    sent: datetime
    readings: list[ReadingRecord]
    time_ns: list[int]
    """Measurement times, whole microseconds as nanoseconds since the epoch (per reading)."""
    received_ns: list[int]


def fast_batch(payload: bytes | str) -> FastBatch | None:
    """The batch's records when every part of it is valid, else None (then ask
    :func:`vitals.wire.parse_batch` what is wrong and which readings are still good)."""
    try:
        batch = _ADAPTER.validate_json(payload)
    except ValidationError:
        return None
    parse, epoch, microsecond = datetime.fromisoformat, _EPOCH, _MICROSECOND
    earliest, ahead = EARLIEST, MAX_CLOCK_AHEAD
    gateway = batch["gateway"]
    readings = batch["readings"]
    limits = _LIMITS
    times: list[int] = []
    receipts: list[int] = []
    seqs = set()
    try:
        sent = parse(batch["sent"])
        for record in readings:
            unit, low, high = limits[record["metric"]]
            value = record["value"]
            measured = parse(record["time"])
            received = parse(record["received"])
            if (
                record["unit"] != unit
                or not low <= value <= high
                or record["gateway"] != gateway
                or measured < earliest
                or received < earliest
                or measured > received + ahead
            ):
                return None
            flags = record.get("flags")
            if flags and len(set(flags)) != len(flags):
                return None
            seqs.add(record["seq"])
            times.append((measured - epoch) // microsecond * 1_000)
            receipts.append((received - epoch) // microsecond * 1_000)
    except ValueError:  # a date that does not exist, an offset of a day or more
        return None
    if len(seqs) != len(readings) or sent < earliest:
        return None
    return FastBatch(batch["site"], gateway, sent.astimezone(UTC), readings, times, receipts)
