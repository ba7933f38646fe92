"""Deliveries waiting for the pipeline, bounded in messages held by the process.

The bound is a count of *slots*: a slot is taken when a message arrives and given back only
when that message is finished (acknowledged, or dropped unacknowledged because its connection
is gone), so it covers every message the process holds: queued, decoded, in a write batch or
waiting for a dead letter's PUBACK.

Everything runs on the event loop (paho is driven by the loop, :mod:`cloud.ingest.mqtt`).
The reader of the MQTT socket asks :attr:`Inbox.room` before it reads the next packet; when
there is none it stops reading (TCP back-pressure onto the broker) and asks to be called back
(:meth:`Inbox.when_room`) as soon as a message is finished. Nothing is ever dropped for lack of
room. With MQTT v5 the broker should send at most Receive Maximum unacknowledged messages,
and the capacity is set to that, so the inbox would fill only briefly after a reconnect;
Mosquitto 2.0.11 (Debian's) honours Receive Maximum only until the first PUBACK and then sends
more, so in practice this bound is the one that holds.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from cloud.ingest.tracker import Delivery

__all__ = ["Inbox"]


class Inbox:
    """Deliveries waiting for the pipeline; at most ``capacity`` held in the process."""

    def __init__(self, capacity: int, *, on_wait: Callable[[], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._held = 0
        self._items: deque[Delivery] = deque()
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._closed = False
        self._on_wait = on_wait
        self._waiting: Callable[[], None] | None = None
        self.waits = 0
        """How many times the reader had to stop for lack of room."""

    @property
    def held(self) -> int:
        """Messages held by the process (queued here or further down the pipeline)."""
        return self._held

    @property
    def room(self) -> bool:
        return self._held < self.capacity

    def __len__(self) -> int:
        return len(self._items)

    # -- the reader -----------------------------------------------------------------------

    def put(self, delivery: Delivery) -> None:
        """Take ``delivery`` (the reader asked :attr:`room` first)."""
        self._held += 1
        self._empty.clear()
        self._items.append(delivery)
        self._ready.set()

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when a slot is given back; counts a wait."""
        self._waiting = callback
        self.waits += 1
        if self._on_wait is not None:
            self._on_wait()

    def cancel_when_room(self) -> None:
        self._waiting = None

    # -- the pipeline ---------------------------------------------------------------------

    def get_nowait(self) -> Delivery | None:
        return self._items.popleft() if self._items else None

    async def wait(self) -> None:
        """Return once a delivery is queued (or the inbox is closed); takes nothing, so a
        timeout around it can never lose one."""
        if not self._items and not self._closed:
            self._ready.clear()
            await self._ready.wait()

    def release(self) -> None:
        """Give back the slot of a finished delivery."""
        self._held -= 1
        if not self._held:
            self._empty.set()
        waiting = self._waiting
        if waiting is not None and self._held < self.capacity:
            self._waiting = None
            waiting()

    async def wait_empty(self) -> None:
        """Return once no delivery is held anywhere in the process."""
        await self._empty.wait()

    def purge(self, keep: Callable[[Delivery], bool]) -> int:
        """Drop (unacknowledged, slots given back) the queued deliveries ``keep`` refuses;
        return how many."""
        kept: deque[Delivery] = deque()
        dropped: list[Delivery] = []
        for item in self._items:
            (kept if keep(item) else dropped).append(item)
        self._items = kept
        for _ in dropped:
            self.release()
        return len(dropped)

    def close(self) -> int:
        """Take nothing more; drop what is queued (unacknowledged). Return how many."""
        self._closed = True
        self._waiting = None
        self._ready.set()
        return self.purge(lambda _item: False)

    @property
    def closed(self) -> bool:
        return self._closed
