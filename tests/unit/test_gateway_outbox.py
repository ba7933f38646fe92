"""The durable outbox: seq, append/fetch/delete, crash safety, the full policies, ``late``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.errors import OutboxClosedError, OutboxLockedError
from gateway.outbox import AsyncOutbox, Entry, Outbox, Retention, retention_of
from gateway.settings import FullPolicy
from vitals.metrics import Metric
from vitals.wire import Quality

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def entry(
    metric: Metric = Metric.HEART_RATE,
    value: float = 72.0,
    *,
    device: str = "wear-1",
    at: datetime = T0,
    flags: tuple[Quality, ...] = (),
    user: int | None = None,
) -> Entry:
    return Entry(
        device=device,
        metric=metric,
        value=value,
        time=at,
        received=at,
        user=user,
        flags=flags,
        retention=retention_of(metric),
    )


def open_outbox(path: Path, **kwargs: object) -> Outbox:
    options: dict[str, object] = {"max_rows": 1000} | kwargs
    return Outbox(path / "outbox.sqlite3", **options)  # type: ignore[arg-type]


def test_seq_starts_at_one_and_increases_across_appends(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as outbox:
        first = outbox.append([entry(), entry()])
        second = outbox.append([entry()])
        assert first.seqs == (1, 2)
        assert second.seqs == (3,)
        assert outbox.next_seq == 4
        assert outbox.depth == 3


def test_seq_keeps_increasing_across_reopen_with_an_empty_outbox(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as outbox:
        seqs = outbox.append([entry() for _ in range(5)]).seqs
        assert outbox.delete(seqs) == 5
        assert outbox.depth == 0
    with open_outbox(tmp_path) as outbox:
        assert outbox.depth == 0
        assert outbox.append([entry()]).seqs == (6,)


def test_fetch_returns_oldest_after_cursor_and_delete_removes(tmp_path: Path) -> None:
    with open_outbox(tmp_path) as outbox:
        outbox.append([entry(value=float(v)) for v in range(60, 70)])
        first = outbox.fetch(after=0, limit=4, now=T0)
        assert [row.seq for row in first] == [1, 2, 3, 4]
        assert [row.entry.value for row in first] == [60.0, 61.0, 62.0, 63.0]
        rest = outbox.fetch(after=4, limit=100, now=T0)
        assert [row.seq for row in rest] == list(range(5, 11))
        assert outbox.delete([1, 2, 3, 4]) == 4
        assert outbox.delete([1, 99]) == 0  # already gone, never there
        assert [row.seq for row in outbox.fetch(after=0, limit=100, now=T0)] == list(range(5, 11))
        assert outbox.depth == outbox.count() == 6


def test_rows_round_trip_into_valid_readings(tmp_path: Path) -> None:
    measured = datetime(2024, 3, 1, 11, 59, 30, 123456, tzinfo=UTC)
    stored = Entry(
        device="cuff-7",
        metric=Metric.SYSTOLIC_BP,
        value=128.5,
        time=measured,
        received=T0,
        user=2,
        flags=(Quality.MOVEMENT, Quality.DEVICE_TIME),
        retention=Retention.SPOT,
    )
    with open_outbox(tmp_path) as outbox:
        outbox.append([stored])
        (row,) = outbox.fetch(after=0, limit=10, now=T0)
    assert row.entry == stored
    reading = row.reading("gw-1")
    assert (reading.gateway, reading.device, reading.user, reading.seq) == ("gw-1", "cuff-7", 2, 1)
    assert reading.time == measured
    assert reading.unit == "mm[Hg]"
    assert reading.flags == (Quality.MOVEMENT, Quality.DEVICE_TIME)


def test_rows_survive_a_process_killed_without_closing(tmp_path: Path) -> None:
    # A child process appends, then SIGKILLs itself with the outbox still open.
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import UTC, datetime
        from pathlib import Path
        from gateway.outbox import Entry, Outbox, Retention
        from vitals.metrics import Metric
        t = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
        outbox = Outbox(Path({str(tmp_path / "outbox.sqlite3")!r}), max_rows=1000)
        for _ in range(3):
            outbox.append([Entry("wear-1", Metric.HEART_RATE, 70.0, t, t,
                                 retention=Retention.CONTINUOUS)] * 10)
        outbox.delete(range(1, 6))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, timeout=30)
    assert done.returncode == -9
    with open_outbox(tmp_path) as outbox:  # the lock died with the process
        assert outbox.depth == 25
        assert [row.seq for row in outbox.fetch(after=0, limit=100, now=T0)] == list(range(6, 31))
        assert outbox.append([entry()]).seqs == (31,)


def test_a_second_opener_is_refused_while_the_first_holds_it(tmp_path: Path) -> None:
    with open_outbox(tmp_path), pytest.raises(OutboxLockedError):
        open_outbox(tmp_path)
    with open_outbox(tmp_path) as again:  # released on close
        assert again.depth == 0


def test_closed_outbox_refuses_use(tmp_path: Path) -> None:
    outbox = open_outbox(tmp_path)
    outbox.close()
    outbox.close()
    with pytest.raises(OutboxClosedError):
        outbox.append([entry()])


# -- the full policies ------------------------------------------------------------------------


def test_full_drops_oldest_continuous_first_and_keeps_events_and_spot(tmp_path: Path) -> None:
    with open_outbox(tmp_path, max_rows=10) as outbox:
        outbox.append([entry(Metric.FALL, 1.0)])  # seq 1
        outbox.append([entry(Metric.HEART_RATE, float(v)) for v in range(60, 66)])  # 2..7
        outbox.append([entry(Metric.BODY_TEMPERATURE, 36.6)])  # 8
        outbox.append([entry(Metric.HEART_RATE, 70.0), entry(Metric.HELP_BUTTON, 1.0)])  # 9, 10
        result = outbox.append([entry(Metric.HEART_RATE, 80.0) for _ in range(3)])  # 11..13
        assert result.seqs == (11, 12, 13)
        assert result.dropped == 3
        seqs = [row.seq for row in outbox.fetch(after=0, limit=100, now=T0)]
        assert seqs == [1, 5, 6, 7, 8, 9, 10, 11, 12, 13]  # HR 2, 3, 4 went
        assert outbox.stats().dropped[Retention.CONTINUOUS] == 3


def test_full_drops_new_continuous_before_old_spot_or_events(tmp_path: Path) -> None:
    with open_outbox(tmp_path, max_rows=3) as outbox:
        outbox.append([entry(Metric.FALL, 1.0), entry(Metric.BODY_WEIGHT, 80.0)])
        outbox.append([entry(Metric.BLOOD_GLUCOSE, 5.5)])
        result = outbox.append([entry(Metric.HEART_RATE, 70.0), entry(Metric.RR_INTERVAL, 0.8)])
        assert result.dropped == 2
        kept = [row.entry.metric for row in outbox.fetch(after=0, limit=10, now=T0)]
        assert kept == [Metric.FALL, Metric.BODY_WEIGHT, Metric.BLOOD_GLUCOSE]
        assert outbox.next_seq == 6  # the dropped ones had seqs: the gap shows the loss


def test_full_drops_spot_then_events_only_when_nothing_else_is_left(tmp_path: Path) -> None:
    with open_outbox(tmp_path, max_rows=3) as outbox:
        outbox.append([entry(Metric.FALL, 1.0), entry(Metric.BODY_TEMPERATURE, 37.0)])
        outbox.append([entry(Metric.HELP_BUTTON, 1.0), entry(Metric.FALL, 1.0)])
        kept = [(row.seq, row.entry.metric) for row in outbox.fetch(after=0, limit=9, now=T0)]
        assert kept == [(1, Metric.FALL), (3, Metric.HELP_BUTTON), (4, Metric.FALL)]
        outbox.append([entry(Metric.FALL, 1.0)])
        kept = [(row.seq, row.entry.metric) for row in outbox.fetch(after=0, limit=9, now=T0)]
        assert kept == [(3, Metric.HELP_BUTTON), (4, Metric.FALL), (5, Metric.FALL)]
        dropped = outbox.stats().dropped
        assert dropped[Retention.SPOT] == 1
        assert dropped[Retention.EVENT] == 1
        assert outbox.stats().lost == 2


def test_refuse_new_keeps_what_is_stored(tmp_path: Path) -> None:
    with open_outbox(tmp_path, max_rows=3, policy=FullPolicy.REFUSE_NEW) as outbox:
        outbox.append([entry(Metric.HEART_RATE, 70.0), entry(Metric.HEART_RATE, 71.0)])
        result = outbox.append([entry(Metric.FALL, 1.0), entry(Metric.HEART_RATE, 72.0)])
        assert result.seqs == (3,)
        assert result.refused == 1
        assert outbox.append([entry(Metric.FALL, 1.0)]).refused == 1
        assert outbox.depth == 3
        assert outbox.next_seq == 4  # refused readings get no seq
        assert outbox.stats().refused == 2


def test_full_episode_is_logged_once_then_summarised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_outbox(tmp_path, max_rows=10) as outbox:
        outbox.append([entry() for _ in range(10)])
        for _ in range(5):
            outbox.append([entry(), entry()])
        outbox.delete(range(1, 30))
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.outbox"]
    assert len(messages) == 2
    assert messages[0].startswith("outbox full: max_rows=10")
    assert "dropped_continuous=10" in messages[1]


@pytest.mark.parametrize(
    ("metric", "streamed", "expected"),
    [
        (Metric.HEART_RATE, False, Retention.CONTINUOUS),
        (Metric.RR_INTERVAL, False, Retention.CONTINUOUS),
        (Metric.RESPIRATORY_RATE, False, Retention.CONTINUOUS),
        (Metric.BATTERY_LEVEL, False, Retention.CONTINUOUS),
        (Metric.SPO2, True, Retention.CONTINUOUS),
        (Metric.PULSE_RATE, True, Retention.CONTINUOUS),
        (Metric.SPO2, False, Retention.SPOT),
        (Metric.PULSE_RATE, False, Retention.SPOT),
        (Metric.BODY_TEMPERATURE, True, Retention.SPOT),
        (Metric.SYSTOLIC_BP, False, Retention.SPOT),
        (Metric.BODY_WEIGHT, False, Retention.SPOT),
        (Metric.BLOOD_GLUCOSE, False, Retention.SPOT),
        (Metric.FALL, False, Retention.EVENT),
        (Metric.HELP_BUTTON, True, Retention.EVENT),
    ],
)
def test_retention_classes(metric: Metric, streamed: bool, expected: Retention) -> None:
    assert retention_of(metric, streamed=streamed) is expected


# -- the late rule ----------------------------------------------------------------------------


def test_late_is_decided_at_first_fetch_and_then_fixed(tmp_path: Path) -> None:
    with open_outbox(tmp_path, late_after=timedelta(seconds=30)) as outbox:
        outbox.append([entry(at=T0), entry(at=T0 + timedelta(seconds=20))])
        # First handed out 25 s after the first reading's receipt: neither is late.
        first = outbox.fetch(after=0, limit=1, now=T0 + timedelta(seconds=25))
        assert [(row.seq, row.late) for row in first] == [(1, False)]
        # Much later (an outage): seq 2 is fetched for the first time and is late; seq 1,
        # fetched again for a resend, keeps its first decision.
        later = outbox.fetch(after=0, limit=9, now=T0 + timedelta(minutes=10))
        assert [(row.seq, row.late) for row in later] == [(1, False), (2, True)]
        assert Quality.LATE in later[1].reading("gw-1").flags
        assert Quality.LATE not in later[0].reading("gw-1").flags
    with open_outbox(tmp_path) as outbox:  # and across a restart
        again = outbox.fetch(after=0, limit=9, now=T0 + timedelta(days=1))
        assert [(row.seq, row.late) for row in again] == [(1, False), (2, True)]


def test_late_threshold_is_exclusive(tmp_path: Path) -> None:
    with open_outbox(tmp_path, late_after=timedelta(seconds=30)) as outbox:
        outbox.append([entry(at=T0), entry(at=T0 - timedelta(microseconds=1))])
        rows = outbox.fetch(after=0, limit=9, now=T0 + timedelta(seconds=30))
        assert [row.late for row in rows] == [False, True]


# -- the asyncio face -------------------------------------------------------------------------


async def test_async_outbox_appends_waits_and_deletes(tmp_path: Path) -> None:
    async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=100) as outbox:
        assert outbox.last_seq == 0
        waiter = asyncio.create_task(outbox.wait_for_rows(0))
        await asyncio.sleep(0)
        assert not waiter.done()
        result = await outbox.append([entry(), entry()])
        async with asyncio.timeout(5):
            await waiter
        assert result.seqs == (1, 2)
        assert (outbox.last_seq, outbox.depth) == (2, 2)
        rows = await outbox.fetch(after=0, limit=10, now=T0)
        assert await outbox.delete([row.seq for row in rows]) == 2
        assert outbox.depth == 0
    async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=100) as outbox:
        assert outbox.last_seq == 2


async def test_async_append_completes_even_if_its_caller_is_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    async with AsyncOutbox.open(path, max_rows=100) as outbox, asyncio.TaskGroup() as tasks:
        task = tasks.create_task(outbox.append([entry() for _ in range(50)]), name="append")
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with AsyncOutbox.open(path, max_rows=100) as outbox:
        assert outbox.depth == 50
