"""The hand-off from paho's network thread to the asyncio loop, bounded in messages held.

paho calls ``on_message`` in its own thread; :meth:`Inbox.put_threadsafe` passes the message
to the loop with ``loop.call_soon_threadsafe`` (no lock on the hot path, FIFO kept). The bound
is a count of *slots*: a slot is taken when a message arrives and given back only when that
message is finished (acknowledged, or dropped unacknowledged because its connection is gone),
so it covers every message the process holds, queued, decoded, in a write batch or waiting
for a dead letter's PUBACK.

When full, ``put_threadsafe`` *waits* for a slot (blocking paho's thread, which stops reading
the socket: TCP back-pressure onto the broker); it never drops. With MQTT v5 the broker should
send at most Receive Maximum unacknowledged messages, and the capacity is set to that, so the
wait would only happen briefly after a reconnect (while messages of the old connection are let
go). Mosquitto 2.0.11 (Debian's) honours Receive Maximum only until the first PUBACK and then
sends more, so in practice this wait is the bound. A blocked network thread sends no PINGREQ,
so the wait is capped (``max_wait_s``, half the keepalive): the caller then lets the
connection go and reconnects rather than be dropped by the broker's keepalive check; the
message not taken comes again with the others.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable

from cloud.ingest.tracker import Delivery

__all__ = ["Inbox"]

_WAIT_STEP_S = 0.25


class Inbox:
    """Deliveries waiting for the pipeline; at most ``capacity`` held in the process."""

    def __init__(
        self,
        capacity: int,
        loop: asyncio.AbstractEventLoop,
        *,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._loop = loop
        self._slots = threading.Semaphore(capacity)
        self._held = 0  # slots taken; changed on the loop only
        self._items: deque[Delivery] = deque()
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._closed = threading.Event()
        self._on_wait = on_wait
        self.waits = 0
        """How many times paho's thread had to wait for a slot (counted on the loop)."""

    @property
    def held(self) -> int:
        """Messages held by the process (queued here or further down the pipeline)."""
        return self._held

    def __len__(self) -> int:
        return len(self._items)

    # -- paho's thread --------------------------------------------------------------------

    def put_threadsafe(
        self,
        delivery: Delivery,
        wanted: Callable[[], bool] = lambda: True,
        max_wait_s: float | None = None,
    ) -> bool:
        """Hand ``delivery`` to the loop, waiting for a slot. False, without waiting any
        longer, once the inbox is closed, ``wanted()`` turns false (its connection was let
        go) or ``max_wait_s`` has passed: the message was not taken, stays unacknowledged,
        and the broker sends it again on the next connection."""
        if not self._slots.acquire(blocking=False):
            self._call(self._count_wait)
            deadline = None if max_wait_s is None else time.monotonic() + max_wait_s
            while not self._slots.acquire(timeout=_WAIT_STEP_S):
                if self._closed.is_set() or not wanted():
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        if self._closed.is_set():
            self._slots.release()
            return False
        if not self._call(self._append, delivery):
            self._slots.release()
            return False
        return True

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: we are shutting down
            return False
        return True

    # -- the loop -------------------------------------------------------------------------

    def _count_wait(self) -> None:
        self.waits += 1
        if self._on_wait is not None:
            self._on_wait()

    def _append(self, delivery: Delivery) -> None:
        self._held += 1
        self._empty.clear()
        if self._closed.is_set():
            self.release()
            return
        self._items.append(delivery)
        self._ready.set()

    def get_nowait(self) -> Delivery | None:
        return self._items.popleft() if self._items else None

    async def wait(self) -> None:
        """Return once a delivery is queued (or the inbox is closed); takes nothing, so a
        timeout around it can never lose one."""
        if not self._items and not self._closed.is_set():
            self._ready.clear()
            await self._ready.wait()

    def release(self) -> None:
        """Give back the slot of a finished delivery (on the loop)."""
        self._held -= 1
        self._slots.release()
        if not self._held:
            self._empty.set()

    async def wait_empty(self) -> None:
        """Return once no delivery is held anywhere in the process."""
        await self._empty.wait()

    def purge(self, keep: Callable[[Delivery], bool]) -> int:
        """Drop (unacknowledged, slots given back) the queued deliveries ``keep`` refuses;
        return how many."""
        kept: deque[Delivery] = deque()
        dropped = 0
        for item in self._items:
            if keep(item):
                kept.append(item)
            else:
                dropped += 1
                self.release()
        self._items = kept
        return dropped

    def close(self) -> int:
        """Take nothing more; drop what is queued (unacknowledged). Return how many."""
        self._closed.set()
        self._ready.set()
        return self.purge(lambda _item: False)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()
