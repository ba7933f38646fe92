"""Live events of the alert service for the web (server-sent events): alert changes and the
latest readings, fanned out to every subscriber.

Each subscriber has its own bounded queue; a subscriber too slow to keep up loses the oldest
events and gets a ``resync`` event in their place (the page then reloads its lists), so one
stalled browser never holds memory or slows the service. Publishing never blocks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "EventFeed"]


@dataclass(slots=True, frozen=True)
class Event:
    kind: str
    """``alert``, ``reading`` or ``resync``."""
    site: str
    resident: str | None
    data: dict[str, Any]


class _Subscriber:
    def __init__(self, size: int) -> None:
        self.events: deque[Event] = deque()
        self.size = size
        self.lost = False
        self.ready = asyncio.Event()

    def put(self, event: Event) -> None:
        if len(self.events) >= self.size:
            self.events.popleft()
            self.lost = True
        self.events.append(event)
        self.ready.set()


class EventFeed:
    """Fan-out of :class:`Event`\\s; :meth:`subscribe` yields them until the caller stops."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._size = queue_size
        self._subscribers: set[_Subscriber] = set()
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscriber in self._subscribers:
            subscriber.put(event)

    async def subscribe(self, site: str) -> AsyncIterator[Event]:
        """Events of ``site`` as they come (a ``resync`` when some were lost)."""
        subscriber = _Subscriber(self._size)
        self._subscribers.add(subscriber)
        try:
            while True:
                if not subscriber.events:
                    subscriber.ready.clear()
                    await subscriber.ready.wait()
                if subscriber.lost:
                    subscriber.lost = False
                    yield Event("resync", site, None, {})
                while subscriber.events:
                    event = subscriber.events.popleft()
                    if event.site == site:
                        yield event
        finally:
            self._subscribers.discard(subscriber)
