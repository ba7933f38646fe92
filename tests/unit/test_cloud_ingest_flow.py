"""The ingestor's flow control, without a broker: in-order acknowledgements, the bounded
inbox, and the retry delays."""

from __future__ import annotations

import asyncio
import random

import pytest

from cloud.ingest.inbox import Inbox
from cloud.ingest.tracker import AckTracker, Delivery
from vitals.backoff import Backoff

CONNECTION = object()


def delivery(mid: int) -> Delivery:
    return Delivery(CONNECTION, mid, 1, "t", b"", received_ns=0)


# -- acknowledgements in arrival order ------------------------------------------------------


def test_acks_follow_arrival_order_whatever_order_work_finishes_in() -> None:
    acked: list[int] = []
    tracker = AckTracker(lambda d: acked.append(d.mid))
    first, second, third = delivery(1), delivery(2), delivery(3)
    for d in (first, second, third):
        tracker.add(d)
        tracker.hold(d)  # each waits for one write batch
        tracker.seal(d)

    tracker.release(third)
    tracker.release(second)
    assert acked == []  # the first is still being written
    tracker.release(first)
    assert acked == [1, 2, 3]
    assert len(tracker) == 0


def test_an_unsealed_message_holds_back_the_ones_after_it() -> None:
    acked: list[int] = []
    tracker = AckTracker(lambda d: acked.append(d.mid))
    first, second = delivery(1), delivery(2)
    tracker.add(first)
    tracker.add(second)
    tracker.seal(second)
    assert acked == []
    tracker.hold(first, 2)  # its readings went into two batches
    tracker.seal(first)
    tracker.release(first)
    assert acked == []
    tracker.release(first)
    assert acked == [1, 2]


def test_a_message_with_nothing_to_wait_for_is_acked_when_sealed() -> None:
    acked: list[int] = []
    tracker = AckTracker(lambda d: acked.append(d.mid))
    only = delivery(7)
    tracker.add(only)
    tracker.seal(only)
    assert acked == [7]


def test_releasing_more_than_held_is_a_bug() -> None:
    tracker = AckTracker(lambda d: None)
    d = delivery(1)
    tracker.add(d)
    with pytest.raises(RuntimeError, match="released more"):
        tracker.release(d)


# -- the bounded inbox ------------------------------------------------------------------------


async def test_the_inbox_hands_over_in_order_and_counts_what_it_holds() -> None:
    inbox = Inbox(4)
    items = [delivery(n) for n in range(3)]
    for item in items:
        assert inbox.room
        inbox.put(item)
    await asyncio.wait_for(inbox.wait(), 1)
    got: list[Delivery] = []
    while (taken := inbox.get_nowait()) is not None:
        got.append(taken)
    assert got == items
    assert inbox.held == 3  # taken from the queue, not yet finished
    for _ in got:
        inbox.release()
    assert inbox.held == 0
    await asyncio.wait_for(inbox.wait_empty(), 1)


async def test_a_full_inbox_calls_the_reader_back_when_a_message_is_finished() -> None:
    waits: list[int] = []
    inbox = Inbox(2, on_wait=lambda: waits.append(1))
    inbox.put(delivery(0))
    inbox.put(delivery(1))
    assert not inbox.room
    resumed: list[bool] = []
    inbox.when_room(lambda: resumed.append(inbox.room))
    assert waits == [1]
    assert inbox.get_nowait() is not None
    assert resumed == []  # taken from the queue is not finished
    inbox.release()
    assert resumed == [True]
    inbox.release()
    assert resumed == [True]  # called once


async def test_a_closed_inbox_drops_what_is_queued_and_calls_nobody_back() -> None:
    inbox = Inbox(1)
    inbox.put(delivery(0))
    called: list[int] = []
    inbox.when_room(lambda: called.append(1))
    assert inbox.close() == 1
    assert inbox.closed
    assert inbox.held == 0
    assert called == []
    await asyncio.wait_for(inbox.wait(), 1)  # a closed inbox never blocks the pipeline


async def test_purge_lets_go_of_a_dead_connections_messages() -> None:
    inbox = Inbox(8)
    old, new = object(), object()
    for n, connection in enumerate([old, new, old]):
        inbox.put(Delivery(connection, n, 1, "t", b"", received_ns=0))

    assert inbox.purge(lambda d: d.connection is new) == 2
    kept = inbox.get_nowait()
    assert kept is not None
    assert kept.connection is new
    assert inbox.held == 1


# -- delays ----------------------------------------------------------------------------------


def test_backoff_grows_randomly_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.5, 8.0, random.Random(4))
    delays = [backoff.next() for _ in range(8)]
    caps = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)
    assert backoff.failures == 8
    backoff.reset()
    assert backoff.next() <= 0.5
    with pytest.raises(ValueError, match="initial"):
        Backoff(2, 1)
