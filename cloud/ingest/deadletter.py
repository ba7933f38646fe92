"""Dead letters: what the ingestor refused, with why, for ``carewatch/v1/{site}/deadletter``.

Pure: builds :class:`vitals.DeadLetter` messages, publishes nothing.

* A whole message refused (not JSON, a bad envelope, a topic that disagrees with the payload)
  becomes one dead letter carrying the message's bytes (UTF-8 text, or ``base64:...``; cut to
  64 KiB as the schema says) and every error line (up to 100).
* Readings refused inside an otherwise good batch (invalid, an unknown device under the
  ``deadletter`` policy, refused by the store) become dead letters whose payload is a JSON
  array of those readings exactly as they arrived, and whose errors have one line per reading
  in the same order. A dead letter holds at most 100 readings and 64 KiB, so a batch with many
  refused readings gives several dead letters and nothing is cut.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vitals import topics
from vitals.wire import DeadLetter

__all__ = [
    "MAX_ERRORS",
    "MAX_PAYLOAD",
    "UNROUTABLE_SITE",
    "Outgoing",
    "refused_message",
    "refused_readings",
]

MAX_ERRORS = 100
MAX_ERROR_LENGTH = 500
MAX_REASON_LENGTH = 200
MAX_PAYLOAD = 65_536
UNROUTABLE_SITE = "unroutable"
"""Site of the dead letters for messages whose topic names no valid site."""


@dataclass(slots=True, frozen=True)
class Outgoing:
    """A message to publish (QoS 1, not retained)."""

    topic: str
    payload: bytes


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload_text(data: bytes) -> str:
    """``data`` as DeadLetter.payload: UTF-8 text, or ``base64:...``, cut to 64 KiB."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "base64:" + base64.b64encode(data[: MAX_PAYLOAD * 3 // 4]).decode("ascii")
    return text[:MAX_PAYLOAD]


def _errors(lines: Sequence[str]) -> tuple[str, ...]:
    cut = [_cut(line, MAX_ERROR_LENGTH) for line in lines[:MAX_ERRORS]]
    if len(lines) > MAX_ERRORS:
        cut[-1] = f"... and {len(lines) - MAX_ERRORS + 1} more"
    return tuple(cut)


def _letter(
    site: str, topic: str, received: datetime, *, reason: str, errors: Sequence[str], payload: str
) -> Outgoing:
    letter = DeadLetter(
        site=site,
        topic=_cut(topic, 512),
        received=received,
        reason=_cut(reason, MAX_REASON_LENGTH),
        errors=_errors(errors),
        payload=payload,
    )
    return Outgoing(topics.deadletter(site), letter.to_json())


def refused_message(
    site: str | None,
    topic: str,
    received: datetime,
    *,
    reason: str,
    errors: Sequence[str],
    payload: bytes,
) -> Outgoing:
    """The dead letter of a whole refused message (``site`` None: the topic had none)."""
    return _letter(
        site or UNROUTABLE_SITE,
        topic,
        received,
        reason=reason,
        errors=errors,
        payload=payload_text(payload),
    )


def refused_readings(
    site: str,
    topic: str,
    received: datetime,
    *,
    reason: str,
    items: Sequence[tuple[Any, str]],
) -> list[Outgoing]:
    """Dead letters for refused readings: ``items`` are (the reading as JSON-able data, its
    error line), in the order of the batch."""
    letters: list[Outgoing] = []
    chunk: list[str] = []
    lines: list[str] = []
    size = 2
    for raw, line in items:
        try:
            text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = json.dumps(repr(raw))
        if chunk and (len(chunk) >= MAX_ERRORS or size + len(text) + 1 > MAX_PAYLOAD):
            letters.append(
                _letter(site, topic, received, reason=reason, errors=lines, payload=_array(chunk))
            )
            chunk, lines, size = [], [], 2
        chunk.append(text)
        lines.append(line)
        size += len(text) + 1
    if chunk:
        letters.append(
            _letter(site, topic, received, reason=reason, errors=lines, payload=_array(chunk))
        )
    return letters


def _array(chunk: list[str]) -> str:
    return ("[" + ",".join(chunk) + "]")[:MAX_PAYLOAD]
