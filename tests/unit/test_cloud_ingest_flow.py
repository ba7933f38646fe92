"""The ingestor's flow control, without a broker: in-order acknowledgements, the bounded
hand-off from paho's thread, and the retry delays."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from cloud.ingest.inbox import Inbox
from cloud.ingest.tracker import AckTracker, Delivery
from tests.harness import poll_until_async
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


# -- the bounded hand-off -------------------------------------------------------------------


async def test_the_inbox_hands_over_in_order_and_counts_what_it_holds() -> None:
    inbox = Inbox(4, asyncio.get_running_loop())
    items = [delivery(n) for n in range(3)]

    def produce() -> None:
        for item in items:
            assert inbox.put_threadsafe(item)

    await asyncio.to_thread(produce)
    await inbox.wait()
    got = []
    while (item := inbox.get_nowait()) is not None:
        got.append(item)
    while len(got) < 3:  # the last call_soon_threadsafe may still be on its way
        await inbox.wait()
        if (item := inbox.get_nowait()) is not None:
            got.append(item)
    assert got == items
    assert inbox.held == 3  # taken from the queue, not yet finished
    for _ in got:
        inbox.release()
    assert inbox.held == 0
    await asyncio.wait_for(inbox.wait_empty(), 1)


async def test_a_full_inbox_makes_the_network_thread_wait_never_drop() -> None:
    waits: list[int] = []
    inbox = Inbox(2, asyncio.get_running_loop(), on_wait=lambda: waits.append(1))
    results: list[bool] = []
    finished = threading.Event()

    def produce() -> None:
        for n in range(3):
            results.append(inbox.put_threadsafe(delivery(n)))
        finished.set()

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        while inbox.held < 2:
            await inbox.wait()
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        assert not finished.is_set()  # the third waits for room
        assert waits == [1]
        first = inbox.get_nowait()
        assert first is not None
        inbox.release()  # the first is finished: room for the third
        await asyncio.to_thread(finished.wait, 5)
        assert results == [True, True, True]
    finally:
        inbox.close()
        thread.join(5)


async def test_a_waiting_put_gives_up_when_closed_unwanted_or_too_long() -> None:
    inbox = Inbox(1, asyncio.get_running_loop())
    assert await asyncio.to_thread(inbox.put_threadsafe, delivery(0))

    began = time.monotonic()
    assert not await asyncio.to_thread(inbox.put_threadsafe, delivery(1), lambda: True, 0.3)
    assert time.monotonic() - began < 2

    assert not await asyncio.to_thread(inbox.put_threadsafe, delivery(2), lambda: False)

    waiting = asyncio.ensure_future(asyncio.to_thread(inbox.put_threadsafe, delivery(3)))
    await asyncio.sleep(0.1)
    dropped = inbox.close()
    assert await asyncio.wait_for(waiting, 5) is False
    assert dropped <= 1
    assert not await asyncio.to_thread(inbox.put_threadsafe, delivery(4))


async def test_purge_lets_go_of_a_dead_connections_messages() -> None:
    inbox = Inbox(8, asyncio.get_running_loop())
    old, new = object(), object()

    def produce() -> None:
        for n, connection in enumerate([old, new, old]):
            inbox.put_threadsafe(Delivery(connection, n, 1, "t", b"", received_ns=0))

    await asyncio.to_thread(produce)
    await poll_until_async(
        lambda: asyncio.sleep(0, True if len(inbox) == 3 else None), within=5, what="3 queued"
    )

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
