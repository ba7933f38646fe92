"""The wire schema: what gateways and the cloud send each other over MQTT, version 1.

Every top-level message carries ``"v": 1``. Models are strict: unknown fields, a unit that
is not the metric's unit, NaN or infinity, values outside what the metric can physically be,
naive timestamps and identifiers that would break a topic or a tag are all rejected with a
message that names the field.

A ``ReadingBatch`` is the unit of transport (many readings in one MQTT message). The ingestor
must not lose the good readings of a batch because one of them is bad, so besides the strict
model there is :func:`parse_batch`, which validates the envelope strictly and then each
reading on its own, returning the good ones and the reasons for the bad ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from vitals.errors import WireError
from vitals.metrics import Metric, MetricKind
from vitals.topics import ID_PATTERN

__all__ = [
    "MAX_BATCH_READINGS",
    "MAX_CLOCK_AHEAD",
    "Alert",
    "AlertKind",
    "AlertState",
    "BatchParse",
    "DeadLetter",
    "DeviceState",
    "GatewayState",
    "Id",
    "Quality",
    "Reading",
    "ReadingBatch",
    "RejectedReading",
    "Severity",
    "Status",
    "UtcDatetime",
    "parse_batch",
    "parse_message",
]

WIRE_VERSION: Literal[1] = 1
MAX_BATCH_READINGS = 5000
"""Largest batch a gateway may send; bounds the ingestor's memory per message."""
MAX_CLOCK_AHEAD = timedelta(minutes=5)
"""How far a measurement time may lie after the gateway's receive time (clock skew)."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""Earlier timestamps are an unset device clock, not a measurement."""


def _only_text_or_datetime(value: Any) -> Any:
    # Lax datetime parsing would take a bare number as Unix time; a wire timestamp is text.
    if isinstance(value, str | datetime):
        return value
    raise ValueError("a timestamp must be an ISO 8601 string with a time zone")


def _to_utc(value: datetime) -> datetime:
    if value < EARLIEST:
        raise ValueError(f"timestamp {value.isoformat()} is before 2000: an unset clock")
    return value.astimezone(UTC)


UtcDatetime = Annotated[
    AwareDatetime, BeforeValidator(_only_text_or_datetime), AfterValidator(_to_utc)
]
"""A timezone-aware timestamp, normalised to UTC. Naive timestamps are rejected."""

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
"""A site, gateway, device or resident identifier: safe in topics and as a tag value."""

FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A JSON number (int or float), never a string, NaN or infinity."""
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_max_length=512,
    )

    def to_json(self) -> bytes:
        """The message as compact UTF-8 JSON, ready to publish."""
        return self.model_dump_json(exclude_none=True).encode()


class _Message(_Model):
    """A top-level wire message. ``v`` defaults to 1 when built in Python, but a message
    arriving from the wire (validated with :data:`WIRE_CONTEXT`) must say its version."""

    v: Literal[1] = WIRE_VERSION

    @model_validator(mode="before")
    @classmethod
    def _version_is_stated(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context is WIRE_CONTEXT and isinstance(data, dict) and "v" not in data:
            raise ValueError("v: Field required: every wire message states its version")
        return data


WIRE_CONTEXT: dict[str, bool] = {"wire": True}
"""Validation context for payloads that arrive from the wire."""


class Quality(StrEnum):
    """Quality flags on a reading."""

    LATE = "late"
    """Backfilled: sent from the gateway's outbox after an outage, not live."""
    NO_CONTACT = "no_contact"
    """The sensor reports it is not in contact with the skin."""
    QUESTIONABLE = "questionable"
    """The device flagged the measurement as questionable, early or unvalidated."""
    MOVEMENT = "movement"
    """The device detected body movement during the measurement (BP cuff)."""
    IRREGULAR_PULSE = "irregular_pulse"
    """The device detected an irregular pulse during the measurement."""
    DEVICE_TIME = "device_time"
    """The measurement time comes from the device's own clock (not the gateway's)."""


class Reading(_Model):
    """One measured value of one metric, from one device, via one gateway."""

    gateway: Id
    device: Id
    user: StrictInt | None = Field(default=None, ge=0, le=254)
    """The device's user index (BP cuffs and scales shared by residents); 255 means unknown
    on the device and is sent as absent."""
    metric: Metric
    value: FiniteFloat
    unit: str
    time: UtcDatetime
    """When it was measured (the device's timestamp when it has a set clock)."""
    received: UtcDatetime
    """When the gateway received it."""
    seq: StrictInt = Field(ge=0, le=2**63 - 1)
    """Per-gateway sequence number, increasing by one for every reading the gateway makes."""
    flags: tuple[Quality, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Self:
        metric = self.metric
        if self.unit != metric.unit:
            raise ValueError(
                f"unit {self.unit!r} is wrong for {metric.value}: expected {metric.unit!r}"
            )
        if not metric.in_range(self.value):
            info = metric.info
            raise ValueError(
                f"value {self.value!r} of {metric.value} is outside the possible range "
                f"{info.minimum:g}..{info.maximum:g} {info.unit}"
            )
        if self.time > self.received + MAX_CLOCK_AHEAD:
            raise ValueError(
                f"measurement time {self.time.isoformat()} is after the receive time "
                f"{self.received.isoformat()} by more than {MAX_CLOCK_AHEAD}"
            )
        if len(set(self.flags)) != len(self.flags):
            raise ValueError("flags repeat")
        return self

    @property
    def is_event(self) -> bool:
        return self.metric.kind is MetricKind.EVENT

    @property
    def time_ns(self) -> int:
        """Measurement time as integer nanoseconds since the epoch (storage resolution)."""
        return _ns(self.time)


def _ns(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class ReadingBatch(_Message):
    """Many readings from one gateway in one MQTT message."""

    site: Id
    gateway: Id
    sent: UtcDatetime
    readings: tuple[Reading, ...] = Field(min_length=1, max_length=MAX_BATCH_READINGS)

    @model_validator(mode="after")
    def _check(self) -> Self:
        for index, reading in enumerate(self.readings):
            if reading.gateway != self.gateway:
                raise ValueError(
                    f"readings.{index}.gateway {reading.gateway!r} differs from the batch's "
                    f"gateway {self.gateway!r}"
                )
        seqs = [reading.seq for reading in self.readings]
        if len(set(seqs)) != len(seqs):
            raise ValueError("two readings in one batch share a seq")
        return self


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class DeviceState(_Model):
    """What a gateway knows about one of its devices."""

    device: Id
    connected: StrictBool
    last_seen: UtcDatetime | None = None
    battery: StrictInt | None = Field(default=None, ge=0, le=100)
    rssi: StrictInt | None = Field(default=None, ge=-127, le=20)


class Status(_Message):
    """A gateway's health, retained on ``.../status``; the last will says ``offline``."""

    site: Id
    gateway: Id
    state: GatewayState
    time: UtcDatetime | None = None
    """When the status was made; absent in the last will (written at connect time)."""
    uptime_s: FiniteFloat | None = Field(default=None, ge=0)
    devices: tuple[DeviceState, ...] = Field(default=(), max_length=1024)
    outbox_depth: StrictInt | None = Field(default=None, ge=0)
    dropped: StrictInt | None = Field(default=None, ge=0)
    """Readings lost inside the gateway since it started (full queue or outbox policy)."""
    decode_errors: StrictInt | None = Field(default=None, ge=0)
    versions: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=64)]] = (
        Field(default_factory=dict, max_length=32)
    )

    @property
    def devices_connected(self) -> int:
        return sum(1 for device in self.devices if device.connected)


class Severity(StrEnum):
    """How urgent an alert is, in rising order (compare with :meth:`rank`)."""

    INFO = "info"
    WARNING = "warning"
    URGENT = "urgent"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class AlertKind(StrEnum):
    CLINICAL = "clinical"
    """About the resident's health."""
    TECHNICAL = "technical"
    """About the equipment: silent device, gateway offline, low battery."""


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Alert(_Message):
    """An alert as published on ``carewatch/v1/{site}/alerts`` on every change."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    site: Id
    resident: Id | None = None
    device: Id | None = None
    gateway: Id | None = None
    rule: Annotated[str, Field(min_length=1, max_length=64)]
    kind: AlertKind
    severity: Severity
    state: AlertState
    title: Annotated[str, Field(min_length=1, max_length=200)]
    """Short text for staff. Holds identifiers and values, never a resident's name."""
    metric: Metric | None = None
    value: FiniteFloat | None = None
    opened: UtcDatetime
    updated: UtcDatetime
    count: StrictInt = Field(default=1, ge=1)
    """How many times the condition triggered while this alert was open."""
    acknowledged_by: Annotated[str, Field(max_length=64)] | None = None
    acknowledged_at: UtcDatetime | None = None
    comment: Annotated[str, Field(max_length=500)] | None = None
    resolved_at: UtcDatetime | None = None
    snoozed_until: UtcDatetime | None = None
    escalation_level: StrictInt = Field(default=0, ge=0, le=16)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.updated < self.opened:
            raise ValueError("updated is before opened")
        if self.state is AlertState.ACKNOWLEDGED and self.acknowledged_at is None:
            raise ValueError("an acknowledged alert needs acknowledged_at")
        if self.state is AlertState.RESOLVED and self.resolved_at is None:
            raise ValueError("a resolved alert needs resolved_at")
        if self.state is AlertState.SNOOZED and self.snoozed_until is None:
            raise ValueError("a snoozed alert needs snoozed_until")
        return self


class DeadLetter(_Message):
    """A message (or part of one) the ingestor refused, published with the reasons."""

    site: Id
    topic: Annotated[str, Field(max_length=512)]
    received: UtcDatetime
    reason: Annotated[str, Field(max_length=200)]
    errors: tuple[Annotated[str, Field(max_length=500)], ...] = Field(default=(), max_length=100)
    payload: Annotated[str, Field(max_length=65536)]
    """The refused bytes: UTF-8 text, or ``base64:...`` when they were not text; cut to 64 KiB."""


# --- lenient batch parsing -------------------------------------------------------------


class _Envelope(_Model):
    v: Literal[1]
    site: Id
    gateway: Id
    sent: UtcDatetime
    readings: tuple[Any, ...] = Field(min_length=1, max_length=MAX_BATCH_READINGS)


@dataclass(slots=True, frozen=True)
class RejectedReading:
    """A reading of a batch that failed validation, with why."""

    index: int
    raw: Any
    errors: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class BatchParse:
    """The result of :func:`parse_batch`: the good readings and the refused ones."""

    site: str
    gateway: str
    sent: datetime
    readings: tuple[Reading, ...]
    rejected: tuple[RejectedReading, ...]


def _describe(exc: ValidationError, prefix: str = "") -> tuple[str, ...]:
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        where = f"{prefix}{where}" if where else prefix.rstrip(".") or "message"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return tuple(lines)


def _load_json(payload: bytes | str) -> Any:
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"payload is not JSON: {exc}", (f"message: not JSON: {exc}",)) from exc
    except RecursionError as exc:
        raise WireError("payload is nested too deeply", ("message: nested too deeply",)) from exc


def parse_batch(payload: bytes | str) -> BatchParse:
    """Validate a readings message, keeping every good reading even if others are bad.

    The envelope (version, site, gateway, sent, a non-empty list of at most
    ``MAX_BATCH_READINGS`` readings) must be valid, or :class:`WireError` is raised for the
    whole message. Each reading is then validated on its own; a reading whose ``gateway``
    differs from the envelope's, or whose ``seq`` repeats one earlier in the batch, is
    rejected like any other invalid reading.
    """
    try:
        # The fast path: a whole valid batch is validated by pydantic-core in one call.
        batch = ReadingBatch.model_validate_json(payload, context=WIRE_CONTEXT)
    except ValidationError:
        pass
    else:
        return BatchParse(batch.site, batch.gateway, batch.sent, batch.readings, ())
    data = _load_json(payload)
    if not isinstance(data, dict):
        raise WireError(
            "a readings batch must be a JSON object", ("message: must be a JSON object",)
        )
    try:
        envelope = _Envelope.model_validate(data)
    except ValidationError as exc:
        errors = _describe(exc)
        raise WireError(f"invalid readings batch: {'; '.join(errors[:3])}", errors) from exc
    good: list[Reading] = []
    rejected: list[RejectedReading] = []
    seen: set[int] = set()
    for index, raw in enumerate(envelope.readings):
        try:
            reading = Reading.model_validate(raw)
        except ValidationError as exc:
            rejected.append(RejectedReading(index, raw, _describe(exc, f"readings.{index}.")))
            continue
        if reading.gateway != envelope.gateway:
            reason = f"readings.{index}.gateway: {reading.gateway!r} is not the batch's gateway"
            rejected.append(RejectedReading(index, raw, (reason,)))
        elif reading.seq in seen:
            reason = f"readings.{index}.seq: {reading.seq} repeats in this batch"
            rejected.append(RejectedReading(index, raw, (reason,)))
        else:
            seen.add(reading.seq)
            good.append(reading)
    return BatchParse(envelope.site, envelope.gateway, envelope.sent, tuple(good), tuple(rejected))


M = TypeVar("M", bound=BaseModel)


def parse_message(model: type[M], payload: bytes | str) -> M:
    """Validate a whole JSON message as ``model``, raising :class:`WireError` if it is bad."""
    try:
        return model.model_validate_json(payload, context=WIRE_CONTEXT)
    except ValidationError as exc:
        errors = _describe(exc)
        raise WireError(f"invalid {model.__name__}: {'; '.join(errors[:3])}", errors) from exc
