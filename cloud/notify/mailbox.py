"""One recipient's waiting messages, rate limit and digests: pure, times passed in.

The policy, in full:

* **Order.** Waiting messages are sent most severe first, then oldest first, so a critical
  alert is never queued behind warnings.
* **Allowance.** Each notification (a single message or a digest) costs one token of the
  ordinary bucket (``burst`` tokens, refilled at ``rate`` per ``period_s``). A critical
  message may also be paid from the *critical reserve* (``critical_burst`` tokens, refilled at
  ``critical_burst`` per ``period_s``) when the ordinary bucket cannot send it on its own.
* **Coalescing.** While a bucket has two or more tokens, or as many as the messages waiting for
  it, the first message goes on its own. With its last token and more than one message
  waiting, it sends them all as *one digest* ("3 more alerts: ..."). When no bucket can pay,
  the messages are held (counted as rate limited) until the next token, and then go out as
  one digest. Nothing is dropped for the rate limit.
* **Critical alerts** go on their own whenever either bucket can pay for that; they join a
  digest only when the reserve is empty too. The reserve pays only for critical messages
  (a digest of the critical ones, if it comes to that).
* **Full queue.** At most ``capacity`` messages wait. When a message arrives to a full queue,
  the least severe, oldest one among the waiting and the new one is dropped (the newest and
  the most severe are kept); the new message itself is refused when everything waiting is
  more severe. Drops are counted, and the recipient's next notification says how many.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from cloud.notify.message import Delivery, Held, Message, compose_digest, compose_single
from cloud.notify.ratelimit import RateLimit, TokenBucket
from vitals.wire import Severity

__all__ = ["Admission", "Mailbox"]


@dataclass(slots=True, frozen=True)
class Admission:
    """The outcome of :meth:`Mailbox.put`: whether the message was queued, and which
    message (the new one, or one that was waiting) was dropped for lack of room."""

    accepted: bool
    dropped: Message | None = None


@dataclass(slots=True, order=True)
class _Entry:
    key: tuple[int, int]
    """(minus the severity rank, arrival number): the sending order."""
    message: Message = field(compare=False)
    held: bool = field(default=False, compare=False)

    @property
    def critical(self) -> bool:
        return self.message.severity is Severity.CRITICAL


class Mailbox:
    """The queue and the allowance of one recipient (see the module's documentation).

    ``put`` queues; ``take(now)`` gives the next :class:`Delivery` to send, a :class:`Held`
    saying until when nothing may go, or ``None`` when nothing waits.
    """

    def __init__(
        self,
        recipient: str,
        limit: RateLimit,
        *,
        capacity: int,
        digest_items: int,
        now: float,
    ) -> None:
        if capacity < 1 or digest_items < 1:
            raise ValueError("capacity and digest_items must be at least 1")
        self.recipient = recipient
        self._capacity = capacity
        self._digest_items = digest_items
        self._normal: TokenBucket = limit.normal(now)
        self._reserve: TokenBucket = limit.reserve(now)
        self._entries: list[_Entry] = []
        self._arrivals = 0
        self._dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def dropped(self) -> int:
        """Messages dropped since the last delivery (reported in the next one)."""
        return self._dropped

    def put(self, message: Message) -> Admission:
        """Queue ``message`` (never blocks; see the full-queue policy)."""
        if message.recipient != self.recipient:
            raise ValueError("the message is for another recipient")
        self._arrivals += 1
        entry = _Entry((-message.severity.rank, self._arrivals), message)
        if len(self._entries) < self._capacity:
            bisect.insort(self._entries, entry)
            return Admission(accepted=True)
        # Full: drop the least severe, oldest of the waiting ones and the new one.
        victim_index = min(
            range(len(self._entries)),
            key=lambda i: (self._entries[i].message.severity.rank, self._entries[i].key[1]),
        )
        victim = self._entries[victim_index]
        self._dropped += 1
        if victim.message.severity.rank > message.severity.rank:
            return Admission(accepted=False, dropped=message)
        del self._entries[victim_index]
        bisect.insort(self._entries, entry)
        return Admission(accepted=True, dropped=victim.message)

    def take(self, now: float) -> Delivery | Held | None:
        """What to send at ``now``: a delivery (its token is spent), ``Held`` (over the limit
        until ``until``), or ``None`` (nothing waits)."""
        if not self._entries:
            return None
        head = self._entries[0]
        normal = self._normal.whole(now)
        reserve = self._reserve.whole(now)
        waiting = len(self._entries)
        if head.critical:
            if normal >= 2 or (normal == 1 and waiting == 1):
                return self._single(now, self._normal, reserve=False)
            criticals = [e for e in self._entries if e.critical]
            if reserve >= 2 or (reserve == 1 and (len(criticals) == 1 or normal >= 1)):
                return self._single(now, self._reserve, reserve=True)
            if reserve == 1:
                return self._digest(now, criticals, self._reserve, reserve=True)
            if normal == 1:
                return self._digest(now, list(self._entries), self._normal, reserve=False)
            until = min(self._normal.ready_at(now), self._reserve.ready_at(now))
        else:
            if normal >= 2 or (normal == 1 and waiting == 1):
                return self._single(now, self._normal, reserve=False)
            if normal == 1:
                return self._digest(now, list(self._entries), self._normal, reserve=False)
            until = self._normal.ready_at(now)
        newly = 0
        for entry in self._entries:
            if not entry.held:
                entry.held = True
                newly += 1
        return Held(until=until, newly_held=newly)

    def idle_at(self, now: float) -> float:
        """When this mailbox, if still empty, is as good as a new one (both buckets full):
        from then on it may be forgotten. ``inf`` while messages wait."""
        if self._entries:
            return math.inf
        return max(self._normal.full_at(now), self._reserve.full_at(now))

    def _single(self, now: float, bucket: TokenBucket, *, reserve: bool) -> Delivery:
        bucket.spend(now)
        entry = self._entries.pop(0)
        message = entry.message
        title, body = compose_single(message, self._dropped)
        delivery = Delivery(
            recipient=self.recipient,
            urls=message.urls,
            title=title,
            body=body,
            severity=message.severity,
            messages=(message,),
            dropped=self._dropped,
            reserve=reserve,
        )
        self._dropped = 0
        return delivery

    def _digest(
        self, now: float, entries: list[_Entry], bucket: TokenBucket, *, reserve: bool
    ) -> Delivery:
        bucket.spend(now)
        taken = {id(e) for e in entries}
        self._entries = [e for e in self._entries if id(e) not in taken]
        messages = tuple(e.message for e in entries)
        newest = max(entries, key=lambda e: e.key[1]).message
        title, body = compose_digest(messages, self._dropped, max_items=self._digest_items)
        delivery = Delivery(
            recipient=self.recipient,
            urls=newest.urls,
            title=title,
            body=body,
            severity=messages[0].severity,
            messages=messages,
            dropped=self._dropped,
            reserve=reserve,
        )
        self._dropped = 0
        return delivery
