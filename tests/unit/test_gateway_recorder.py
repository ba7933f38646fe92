"""The recorder: observations to outbox entries, time zones, fallbacks, drops, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.errors import OutboxError
from gateway.outbox import AppendResult, Entry, Retention
from gateway.recorder import Received, Recorder, device_time_to_utc, measurement_time
from gateway.settings import RecorderSettings
from tests.harness import poll_until_async
from vitals.metrics import Metric
from vitals.observations import Observation
from vitals.wire import Quality

BERLIN = ZoneInfo("Europe/Berlin")
RECEIVED = datetime(2024, 7, 1, 10, 0, 5, tzinfo=UTC)  # 12:00:05 in Berlin (CEST, +2)
MAX_AGE = timedelta(days=30)


class Sink:
    """An outbox stand-in that records what it was given."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[Entry]] = []
        self.fail = fail
        self.next_seq = 1

    async def append(self, entries: Sequence[Entry]) -> AppendResult:
        if self.fail:
            raise OutboxError("disk full")
        self.batches.append(list(entries))
        first = self.next_seq
        self.next_seq += len(entries)
        return AppendResult(tuple(range(first, self.next_seq)))

    @property
    def entries(self) -> list[Entry]:
        return [entry for batch in self.batches for entry in batch]


async def eventually(condition: Callable[[], bool]) -> None:
    async def check() -> bool | None:
        return True if condition() else None

    await poll_until_async(check, within=5.0, what="condition", every=0.005)


def recorder(sink: Sink, **settings: float) -> Recorder:
    return Recorder(gateway="gw-1", sink=sink, settings=RecorderSettings(**settings), zone=BERLIN)


# -- device time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "received", "expected"),
    [
        # Summer (CEST, UTC+2) and winter (CET, UTC+1).
        (datetime(2024, 7, 1, 12, 0), RECEIVED, datetime(2024, 7, 1, 10, 0, tzinfo=UTC)),
        (
            datetime(2024, 1, 15, 8, 30),
            datetime(2024, 1, 15, 7, 31, tzinfo=UTC),
            datetime(2024, 1, 15, 7, 30, tzinfo=UTC),
        ),
        # 02:30 happens twice on 2024-10-27: the one nearer to the receive time is taken.
        (
            datetime(2024, 10, 27, 2, 30),
            datetime(2024, 10, 27, 0, 31, tzinfo=UTC),
            datetime(2024, 10, 27, 0, 30, tzinfo=UTC),
        ),
        (
            datetime(2024, 10, 27, 2, 30),
            datetime(2024, 10, 27, 1, 31, tzinfo=UTC),
            datetime(2024, 10, 27, 1, 30, tzinfo=UTC),
        ),
    ],
)
def test_device_time_is_local_time_in_the_gateway_zone(
    local: datetime, received: datetime, expected: datetime
) -> None:
    assert device_time_to_utc(local, BERLIN, received) == expected


@pytest.mark.parametrize(
    "device_time",
    [
        datetime(1999, 12, 31, 23, 0),  # an unset clock
        datetime(2024, 7, 1, 12, 6),  # 6 minutes after receipt: beyond the wire's 5
        datetime(2024, 5, 1, 12, 0),  # 61 days old
    ],
)
def test_implausible_device_time_falls_back_to_receive_time(device_time: datetime) -> None:
    observation = Observation(
        Metric.BODY_TEMPERATURE, 37.0, device_time, flags=(Quality.DEVICE_TIME,)
    )
    moment, flags, fell_back = measurement_time(observation, RECEIVED, BERLIN, MAX_AGE)
    assert (moment, flags, fell_back) == (RECEIVED, (), True)


def test_plausible_device_time_is_kept_with_its_flag() -> None:
    observation = Observation(
        Metric.BODY_WEIGHT, 80.0, datetime(2024, 6, 20, 7, 0), flags=(Quality.DEVICE_TIME,)
    )
    moment, flags, fell_back = measurement_time(observation, RECEIVED, BERLIN, MAX_AGE)
    assert moment == datetime(2024, 6, 20, 5, 0, tzinfo=UTC)
    assert flags == (Quality.DEVICE_TIME,)
    assert not fell_back


def test_no_device_time_means_receive_time() -> None:
    observation = Observation(Metric.HEART_RATE, 70.0, flags=(Quality.NO_CONTACT,))
    assert measurement_time(observation, RECEIVED, BERLIN, MAX_AGE) == (
        RECEIVED,
        (Quality.NO_CONTACT,),
        False,
    )


# -- conversion -----------------------------------------------------------------------------


def test_convert_builds_an_entry_with_utc_time_flags_user_and_retention() -> None:
    rec = recorder(Sink())
    observation = Observation(
        Metric.SYSTOLIC_BP,
        131.0,
        datetime(2024, 7, 1, 11, 58),
        user=3,
        flags=(Quality.IRREGULAR_PULSE, Quality.DEVICE_TIME),
    )
    entry = rec.convert(Received("cuff-1", observation, RECEIVED))
    assert entry == Entry(
        device="cuff-1",
        metric=Metric.SYSTOLIC_BP,
        value=131.0,
        time=datetime(2024, 7, 1, 9, 58, tzinfo=UTC),
        received=RECEIVED,
        user=3,
        flags=(Quality.IRREGULAR_PULSE, Quality.DEVICE_TIME),
        retention=Retention.SPOT,
    )


def test_convert_counts_clock_fallbacks() -> None:
    rec = recorder(Sink())
    observation = Observation(
        Metric.FALL, 1.0, datetime(2017, 1, 1, 0, 0), flags=(Quality.DEVICE_TIME,)
    )
    entry = rec.convert(Received("pendant-1", observation, RECEIVED))
    assert entry is not None
    assert (entry.time, entry.flags, entry.retention) == (RECEIVED, (), Retention.EVENT)
    assert rec.stats.clock_fallbacks == 1


def test_streaming_devices_make_spo2_continuous() -> None:
    rec = Recorder(
        gateway="gw-1",
        sink=Sink(),
        settings=RecorderSettings(),
        is_streaming=lambda device: device.startswith("ox-cont"),
    )
    streamed = rec.convert(Received("ox-cont-1", Observation(Metric.SPO2, 97.0), RECEIVED))
    spot = rec.convert(Received("ox-spot-1", Observation(Metric.SPO2, 97.0), RECEIVED))
    assert streamed is not None
    assert spot is not None
    assert (streamed.retention, spot.retention) == (Retention.CONTINUOUS, Retention.SPOT)


def test_invalid_readings_are_counted_and_logged_without_their_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = recorder(Sink())
    for _ in range(3):
        assert (
            rec.convert(Received("wear-1", Observation(Metric.HEART_RATE, 412.0), RECEIVED)) is None
        )
    assert rec.convert(Received("bad id!", Observation(Metric.HEART_RATE, 70.0), RECEIVED)) is None
    assert rec.stats.invalid == 4
    assert rec.decode_errors == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # once per (device, metric)
    assert "device=wear-1 metric=heart_rate" in warnings[0]
    assert all("412" not in message for message in warnings)
    assert "problem=device" in warnings[1]


# -- the run loop -----------------------------------------------------------------------------


async def test_run_batches_by_size_and_by_time() -> None:
    sink = Sink()
    rec = recorder(sink, flush_size=10, flush_interval_s=0.05)
    for value in range(25):
        assert rec.offer("wear-1", Observation(Metric.HEART_RATE, 60.0 + value), RECEIVED)
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(rec.run(), name="recorder")
        await eventually(lambda: len(sink.entries) >= 25)
        task.cancel()
    assert [len(batch) for batch in sink.batches] == [10, 10, 5]
    assert [entry.value for entry in sink.entries] == [60.0 + v for v in range(25)]
    assert rec.stats.recorded == 25


async def test_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    rec = recorder(Sink(), queue_size=3)
    taken = [rec.offer("wear-1", Observation(Metric.HEART_RATE, 70.0), RECEIVED) for _ in range(5)]
    assert taken == [True, True, True, False, False]
    assert rec.stats.queue_dropped == 2
    assert rec.dropped == 2
    assert sum("queue full" in r.getMessage() for r in caplog.records) == 1


async def test_stop_flushes_what_is_queued() -> None:
    sink = Sink()
    rec = recorder(sink, flush_interval_s=10.0, flush_size=1000)
    task = asyncio.create_task(rec.run())
    for _ in range(7):
        rec.offer("wear-1", Observation(Metric.HEART_RATE, 70.0), RECEIVED)
    await asyncio.sleep(0.05)  # let it pick up the first one and wait for more
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sink.entries) == 7


async def test_outbox_failure_is_counted_and_the_recorder_goes_on() -> None:
    sink = Sink(fail=True)
    rec = recorder(sink, flush_interval_s=0.01)
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(rec.run(), name="recorder")
        rec.offer("wear-1", Observation(Metric.HEART_RATE, 70.0), RECEIVED)
        await eventually(lambda: rec.stats.store_failed >= 1)
        sink.fail = False
        rec.offer("wear-1", Observation(Metric.HEART_RATE, 71.0), RECEIVED)
        await eventually(lambda: rec.stats.recorded >= 1)
        task.cancel()
    assert rec.dropped == 1
    assert [entry.value for entry in sink.entries] == [71.0]


def test_the_recorder_plugs_into_the_ble_central() -> None:
    from gateway.central import Central, ObservationSink
    from gateway.health import CombinedHealth, HealthSource

    rec = recorder(Sink())
    sink: ObservationSink = rec  # mypy checks the shapes; the central offers to it
    assert sink.offer("wear-1", Observation(Metric.HEART_RATE, 70.0), RECEIVED)

    def health_of(central: Central) -> HealthSource:
        return CombinedHealth(central, rec)  # the central is a HealthSource as it stands

    assert callable(health_of)
