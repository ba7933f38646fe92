"""What the dispatcher is given (:class:`Message`) and what it sends (:class:`Delivery`), and
the text of a digest: pure values and functions, no I/O and no clock.

A digest stands for several messages a recipient's rate limit held back: its title says how
many (``"3 more alerts: SpO2 low"``, the most severe first) and its body lists each one with
its severity, time and title, so nothing is silently lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cloud.notify.errors import MessageError
from vitals.wire import Severity

__all__ = [
    "DIGEST_BODY_CHARS",
    "Delivery",
    "Held",
    "Message",
    "compose_digest",
    "compose_single",
]

DIGEST_BODY_CHARS = 280
"""Longest excerpt of one message's body in a digest (the rest is on the dashboard)."""

_MAX_ID = 256


@dataclass(slots=True, frozen=True)
class Message:
    """One notification for one person, as the alert lifecycle produces it."""

    recipient: str
    """Recipient id (logged; never a name)."""
    urls: tuple[str, ...]
    """The recipient's apprise URLs (``mailto://``, ``ntfy://``, ``tgram://``, ``json://``,
    ...). They hold secrets: never logged, never in metrics."""
    title: str
    body: str
    severity: Severity
    alert_id: str
    created: datetime
    """When the lifecycle produced it (timezone-aware)."""

    def __post_init__(self) -> None:
        if not self.recipient or len(self.recipient) > _MAX_ID:
            raise MessageError(f"recipient: give an id of 1 to {_MAX_ID} characters")
        if not self.alert_id or len(self.alert_id) > _MAX_ID:
            raise MessageError(f"alert_id: give an id of 1 to {_MAX_ID} characters")
        if not isinstance(self.urls, tuple) or not self.urls:
            raise MessageError("urls: give a non-empty tuple of apprise URLs")
        if not all(isinstance(url, str) and url for url in self.urls):
            raise MessageError("urls: every URL must be a non-empty string")
        if not isinstance(self.severity, Severity):
            raise MessageError("severity: give a vitals.wire.Severity")
        if self.created.tzinfo is None or self.created.utcoffset() is None:
            raise MessageError("created: give a timezone-aware datetime")


@dataclass(slots=True, frozen=True)
class Delivery:
    """One notification to send now: a single message or a digest of several."""

    recipient: str
    urls: tuple[str, ...]
    """The URLs of the newest message it carries (a recipient's URLs may have changed)."""
    title: str
    body: str
    severity: Severity
    """The highest severity among the messages it carries."""
    messages: tuple[Message, ...]
    """What it stands for, most severe first, then oldest first."""
    dropped: int = 0
    """Messages of this recipient dropped (queue full) since the previous delivery; the body
    says so."""
    reserve: bool = False
    """Paid from the critical reserve rather than from the ordinary allowance."""

    @property
    def digest(self) -> bool:
        return len(self.messages) > 1

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(m.alert_id for m in self.messages)

    @property
    def newest_created(self) -> datetime:
        return max(m.created for m in self.messages)


@dataclass(slots=True, frozen=True)
class Held:
    """Nothing may be sent now: the recipient is over its rate limit until ``until``
    (monotonic seconds). ``newly_held`` counts the messages held for the first time."""

    until: float
    newly_held: int


def _dropped_line(dropped: int) -> str:
    noun = "alert was" if dropped == 1 else "alerts were"
    return f"{dropped} other {noun} dropped: too many were waiting. See the dashboard."


def compose_single(message: Message, dropped: int = 0) -> tuple[str, str]:
    """Title and body of a delivery of one message (the message's own, plus a line about
    dropped messages if any)."""
    body = message.body
    if dropped:
        body = f"{body}\n\n{_dropped_line(dropped)}" if body else _dropped_line(dropped)
    return message.title, body


def _excerpt(text: str) -> str:
    text = text.strip()
    if len(text) <= DIGEST_BODY_CHARS:
        return text
    return text[: DIGEST_BODY_CHARS - 1].rstrip() + "\u2026"


def compose_digest(
    messages: Sequence[Message], dropped: int = 0, *, max_items: int = 20
) -> tuple[str, str]:
    """Title and body of a digest of ``messages`` (in the order given: most severe first).

    The title is ``"<n> more alerts: <title of the first>"``; the body lists at most
    ``max_items`` of them (severity, UTC time, title, an excerpt of the body) and says how
    many more there are.
    """
    if len(messages) < 2:
        raise ValueError("a digest needs at least two messages")
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    count = len(messages)
    title = f"{count} more alerts: {messages[0].title}"
    lines = [f"{count} alerts were held back by the notification limit, most severe first:"]
    for message in messages[:max_items]:
        when = message.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines.append("")
        lines.append(f"[{message.severity.value.upper()}] {when} {message.title}")
        excerpt = _excerpt(message.body)
        if excerpt:
            lines.append(excerpt)
    if count > max_items:
        lines.append("")
        lines.append(f"... and {count - max_items} more. See the dashboard.")
    if dropped:
        lines.append("")
        lines.append(_dropped_line(dropped))
    return title, "\n".join(lines)
