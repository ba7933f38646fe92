"""Acknowledging MQTT messages in the order they arrived, once each is fully handled.

MQTT requires a client to send PUBACKs in the order the PUBLISH packets arrived (MQTT 3.1.1
4.6.0-2, MQTT 5.0 4.6.0-2 for QoS 1), and paho's ``manual_ack`` leaves that to the caller. A
message is *done* when it is sealed (decoded: nothing more will be added to it) and nothing it
holds is outstanding (each write batch that carries some of its readings, each of its dead
letters until the broker's PUBACK). The tracker acknowledges the longest done prefix of the
queue, so a message is acknowledged only after every reading in it is stored or dead-lettered,
and never before one that arrived earlier.

Pure bookkeeping: the acknowledgement itself is the ``ack`` callable (which skips messages of
a connection that is gone: the broker sends those again).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["AckTracker", "Delivery"]


class Delivery:
    """One MQTT message from its arrival until it is acknowledged (or dropped unacknowledged
    because its connection is gone)."""

    __slots__ = (
        "connection",
        "mid",
        "outstanding",
        "payload",
        "qos",
        "received_ns",
        "sealed",
        "topic",
    )

    def __init__(
        self,
        connection: object,
        mid: int,
        qos: int,
        topic: str,
        payload: bytes,
        *,
        received_ns: int,
    ) -> None:
        self.connection = connection
        """The connection it came on; an acknowledgement goes back on that one only."""
        self.mid = mid
        self.qos = qos
        self.topic = topic
        self.payload = payload
        self.received_ns = received_ns
        self.outstanding = 0
        self.sealed = False

    def __repr__(self) -> str:
        return (
            f"Delivery(mid={self.mid}, topic={self.topic!r}, outstanding={self.outstanding}, "
            f"sealed={self.sealed})"
        )


class AckTracker:
    """The deliveries in hand, in arrival order; acknowledges each done prefix."""

    def __init__(self, finish: Callable[[Delivery], None]) -> None:
        self._finish = finish
        self._queue: deque[Delivery] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, delivery: Delivery) -> None:
        """Track ``delivery`` (in arrival order; unsealed until :meth:`seal`)."""
        self._queue.append(delivery)

    @staticmethod
    def hold(delivery: Delivery, count: int = 1) -> None:
        """``delivery`` waits for ``count`` more things (a write batch, a dead letter)."""
        delivery.outstanding += count

    def release(self, delivery: Delivery, count: int = 1) -> None:
        """``count`` of the things ``delivery`` waited for are done."""
        delivery.outstanding -= count
        if delivery.outstanding < 0:
            raise RuntimeError(f"{delivery!r} released more than it held")
        self.flush()

    def seal(self, delivery: Delivery) -> None:
        """Nothing more will be held for ``delivery``."""
        delivery.sealed = True
        self.flush()

    def flush(self) -> int:
        """Finish (acknowledge) every done delivery at the head; return how many."""
        queue = self._queue
        finished = 0
        while queue:
            head = queue[0]
            if not head.sealed or head.outstanding:
                break
            queue.popleft()
            finished += 1
            self._finish(head)
        return finished
