"""From one MQTT message to stored readings and dead letters (pure: no I/O).

A message on ``carewatch/v1/{site}/{gateway}/readings`` is validated with
:func:`vitals.parse_batch`, which keeps the good readings of a batch beside the bad ones.
Then:

* the whole message is refused (one dead letter) when it is not JSON or its envelope is
  invalid, when its topic is not a readings topic, or when the site or gateway in the payload
  differs from the topic's (the broker's ACL vouches for the topic, not for the payload);
* each invalid reading is refused with its errors, the good ones go on;
* each good reading is given its resident from the registry snapshot. A device the registry
  does not know is, by default, stored under the placeholder resident ``unassigned`` and
  reported once per device (:attr:`Decoded.unknown`): a reading from a device registered a
  little late, or from a pendant whose registry entry has a typo, is still kept, the set of
  tag values stays bounded (one placeholder; device ids are already bounded by the gateways'
  credentials), and the readings can be found and re-attributed by device. The
  ``deadletter`` policy refuses them instead, for installations that want strict routing.
  The gateway's end-to-end test reading (metric ``probe``, device = the gateway) is stored
  under ``unassigned`` too, as expected rather than unknown (the alert service looks for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloud.ingest.deadletter import Outgoing, refused_message, refused_readings
from cloud.registry import Directory
from cloud.settings import UnknownDevicePolicy
from cloud.store.base import StoredReading
from vitals import topics
from vitals.errors import TopicError, WireError
from vitals.fastwire import FastBatch, fast_batch
from vitals.metrics import Metric
from vitals.wire import parse_batch

__all__ = ["Decoded", "Decoder", "stored_json"]

_PROBE = Metric.PROBE


@dataclass(slots=True)
class Decoded:
    """What one message gave."""

    site: str | None
    readings: list[StoredReading] = field(default_factory=list)
    deadletters: list[Outgoing] = field(default_factory=list)
    refused_message: bool = False
    """The whole message was refused."""
    invalid: int = 0
    """Readings refused as invalid."""
    unknown: set[tuple[str, str]] = field(default_factory=set)
    """(site, device) of readings whose device the registry does not know."""
    unknown_refused: int = 0
    """Readings refused because their device is unknown (``deadletter`` policy)."""


def stored_json(reading: StoredReading) -> dict[str, Any]:
    """A stored reading as JSON-able data (for a dead letter of a store refusal)."""
    r = reading
    data: dict[str, Any] = {
        "site": r.site,
        "resident": r.resident,
        "gateway": r.gateway,
        "device": r.device,
        "metric": r.metric.value,
        "value": r.value,
        "unit": r.metric.unit,
        "time": r.time.isoformat(),
        "received": r.received.isoformat(),
        "seq": r.seq,
        "flags": list(r.flags),
    }
    if r.user is not None:
        data["user"] = r.user
    return data


class Decoder:
    """Turns messages into :class:`Decoded` with the current registry snapshot."""

    def __init__(
        self,
        directory: Directory,
        *,
        unknown_device: UnknownDevicePolicy = UnknownDevicePolicy.STORE,
        unassigned_resident: str = "unassigned",
    ) -> None:
        self.directory = directory
        self._policy = unknown_device
        self._unassigned = unassigned_resident

    def decode(self, topic: str, payload: bytes, received: datetime) -> Decoded:
        """``received`` is when the ingestor got the message (for dead letters)."""
        try:
            name = topics.parse(topic)
        except TopicError as exc:
            return _refuse(None, topic, received, "not a readings topic", str(exc), payload)
        if name.kind is not topics.TopicKind.READINGS or name.gateway is None:
            return _refuse(name.site, topic, received, "not a readings topic", topic, payload)
        fast = fast_batch(payload)
        if (
            fast is not None
            and fast.site == name.site
            and fast.gateway == name.gateway
            and self._policy is UnknownDevicePolicy.STORE
        ):
            return self._decode_fast(name.site, fast)
        try:
            batch = parse_batch(payload)
        except WireError as exc:
            errors = exc.errors or (str(exc),)
            return _refuse(name.site, topic, received, "invalid readings batch", errors, payload)
        if batch.site != name.site or batch.gateway != name.gateway:
            detail = (
                f"payload site/gateway {batch.site}/{batch.gateway} differ from the topic's "
                f"{name.site}/{name.gateway}"
            )
            return _refuse(name.site, topic, received, "topic mismatch", detail, payload)

        site = name.site
        result = Decoded(site)
        refused: list[tuple[Any, str]] = [
            (rejected.raw, "; ".join(rejected.errors)) for rejected in batch.rejected
        ]
        result.invalid = len(refused)
        directory = self.directory
        readings = result.readings
        for reading in batch.readings:
            resident = directory.resident(site, reading.device, reading.user)
            if resident is None and reading.metric is _PROBE:
                resident = self._unassigned  # the gateway's own test reading: expected
            if resident is None:
                if self._policy is UnknownDevicePolicy.DEADLETTER:
                    refused.append(
                        (
                            reading.model_dump(mode="json", exclude_none=True),
                            f"device {reading.device}: not in the registry of site {site}",
                        )
                    )
                    result.unknown_refused += 1
                    continue
                result.unknown.add((site, reading.device))
                resident = self._unassigned
            readings.append(StoredReading.from_reading(site, resident, reading))
        if refused:
            reason = f"{len(refused)} of {len(refused) + len(readings)} readings refused"
            result.deadletters = refused_readings(
                site, topic, received, reason=reason, items=refused
            )
        return result

    def _decode_fast(self, site: str, batch: FastBatch) -> Decoded:
        """A wholly valid batch (the common case): records straight to stored readings."""
        result = Decoded(site)
        resident_of = self.directory.resident
        unassigned = self._unassigned
        unknown = result.unknown
        from_record = StoredReading.from_record
        readings = result.readings
        for record, time_ns, received_ns in zip(
            batch.readings, batch.time_ns, batch.received_ns, strict=True
        ):
            device = record["device"]
            resident = resident_of(site, device, record.get("user"))
            if resident is None:
                if record["metric"] is not _PROBE:
                    unknown.add((site, device))
                resident = unassigned
            readings.append(from_record(site, resident, record, time_ns, received_ns))
        return result


def _refuse(  # noqa: PLR0917 (a private shorthand)
    site: str | None,
    topic: str,
    received: datetime,
    reason: str,
    errors: tuple[str, ...] | str,
    payload: bytes,
) -> Decoded:
    lines = (errors,) if isinstance(errors, str) else errors
    letter = refused_message(site, topic, received, reason=reason, errors=lines, payload=payload)
    return Decoded(site, deadletters=[letter], refused_message=True)
