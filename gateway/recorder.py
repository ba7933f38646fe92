"""The step between the BLE central and the outbox: observations in, durable readings out.

The central's notification callbacks call :meth:`Recorder.offer` (``put_nowait`` onto a bounded
queue; when it is full the observation is dropped and counted). :meth:`Recorder.run` takes
them off in batches (up to ``flush_size``, or whatever came within ``flush_interval_s`` of the
first), turns each into a reading, validates it with the wire model and appends the batch to
the outbox in one transaction, which gives the readings their seqs.

Measurement time
    An observation with a device timestamp carries the device's *naive local* time: devices
    keep wall-clock time as set by their owner or by the gateway's Current Time Service. It is
    read in the gateway's configured time zone (``timezone`` in the settings) and converted to
    UTC. On the repeated hour when clocks go back (and in the skipped hour when they go
    forward) the reading nearer to the receive time is taken. A device time that is
    implausible -- before 2000, more than 5 minutes after the receive time (the wire model's
    limit), or older than ``max_device_time_age`` before it -- is a wrong device clock: the
    receive time is used instead and the ``device_time`` flag removed (counted as a clock
    fallback). Without a device timestamp the measurement time is the receive time.

What is lost and where it is counted
    Full queue: ``queue_dropped``. A reading the wire model refuses (a value outside the
    metric's physical range, a bad identifier): ``invalid``, reported as decode errors and
    logged with the device, metric and failing field -- never the value (health data) above
    DEBUG. An outbox that cannot store (disk full, I/O error): ``store_failed``. Readings in
    the queue when the process is killed have no seq yet and are gone; on a clean stop the
    queue is flushed to the outbox first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from pydantic import ValidationError

from gateway.errors import OutboxError
from gateway.outbox import AppendResult, Entry, retention_of
from gateway.settings import RecorderSettings
from vitals.observations import Observation
from vitals.wire import EARLIEST, MAX_CLOCK_AHEAD, DeviceState, Quality, Reading

__all__ = [
    "EntrySink",
    "Received",
    "Recorder",
    "RecorderStats",
    "device_time_to_utc",
    "measurement_time",
]

logger = logging.getLogger(__name__)

_FLUSH_ON_STOP_S = 5.0
_LOGGED_KEYS_MAX = 1024


class EntrySink(Protocol):
    """Where the recorder appends readings: :class:`gateway.outbox.AsyncOutbox`. An append,
    once called, must complete even if the caller is cancelled (the recorder has let go of
    the batch by then)."""

    async def append(self, entries: Sequence[Entry]) -> AppendResult: ...


@dataclass(slots=True, frozen=True)
class Received:
    """One observation as the BLE central received it."""

    device: str
    observation: Observation
    received: datetime
    """When the gateway received it (aware)."""


@dataclass(slots=True)
class RecorderStats:
    recorded: int = 0
    """Readings handed to the outbox and stored."""
    queue_dropped: int = 0
    invalid: int = 0
    clock_fallbacks: int = 0
    store_failed: int = 0


def device_time_to_utc(local: datetime, zone: tzinfo, received: datetime) -> datetime:
    """A device's timestamp in UTC. A naive one is wall-clock time in ``zone``; when that is
    ambiguous or skipped (DST changes), the reading nearer to ``received`` is taken."""
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    candidates = [local.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    return min(candidates, key=lambda moment: abs(moment - received))


def measurement_time(
    observation: Observation, received: datetime, zone: tzinfo, max_age: timedelta
) -> tuple[datetime, tuple[Quality, ...], bool]:
    """``(time, flags, fell_back)`` for ``observation`` received at ``received``: the device
    time in UTC with the ``device_time`` flag when it is plausible, else the receive time
    without it (``fell_back`` is True then)."""
    flags = observation.flags
    if observation.device_time is None:
        return received, flags, False
    moment = device_time_to_utc(observation.device_time, zone, received)
    if EARLIEST <= moment <= received + MAX_CLOCK_AHEAD and moment >= received - max_age:
        if Quality.DEVICE_TIME not in flags:
            flags = (*flags, Quality.DEVICE_TIME)
        return moment, flags, False
    return received, tuple(flag for flag in flags if flag is not Quality.DEVICE_TIME), True


class Recorder:
    """Turns offered observations into readings and appends them to the outbox in batches.

    Implements the BLE central's ``ObservationSink`` (:meth:`offer`) and
    :class:`gateway.health.HealthSource` (its drops and refusals).

    ``is_streaming(device)`` says whether a device streams (a continuous pulse oximeter) rather
    than takes spot measurements; it decides whether SpO2 and pulse rate are continuous
    readings (dropped first when the outbox is full) or spot ones. By default every device
    counts as spot, which keeps those readings longer.
    """

    def __init__(
        self,
        *,
        gateway: str,
        sink: EntrySink,
        settings: RecorderSettings,
        zone: tzinfo = UTC,
        is_streaming: Callable[[str], bool] | None = None,
    ) -> None:
        self._gateway = gateway
        self._sink = sink
        self._settings = settings
        self._zone = zone
        self._is_streaming = is_streaming
        self._max_age = settings.max_device_time_age
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=settings.queue_size)
        self.stats = RecorderStats()
        self._queue_full_since: int | None = None
        """``queue_dropped`` when the current full-queue episode began."""
        self._store_failing_since: int | None = None
        self._logged_invalid: set[tuple[str, str]] = set()
        self._batch: list[Received] = []
        self._storing = 0

    # -- the BLE side ---------------------------------------------------------------------

    def offer(self, device: str, observation: Observation, received: datetime) -> bool:
        """Queue one observation without blocking; ``False`` (and counted) when full."""
        try:
            self._queue.put_nowait(Received(device, observation, received))
        except asyncio.QueueFull:
            self.stats.queue_dropped += 1
            if self._queue_full_since is None:
                self._queue_full_since = self.stats.queue_dropped - 1
                logger.warning(
                    "recorder queue full (%d observations): dropping new ones", self._queue.maxsize
                )
            return False
        return True

    @property
    def queued(self) -> int:
        """Observations received and not yet handed to the outbox (queue and batch)."""
        return self._queue.qsize() + len(self._batch) + self._storing

    # -- HealthSource ---------------------------------------------------------------------

    def device_states(self) -> Sequence[DeviceState]:
        return ()

    @property
    def decode_errors(self) -> int:
        return self.stats.invalid

    @property
    def dropped(self) -> int:
        return self.stats.queue_dropped + self.stats.store_failed

    # -- the outbox side ------------------------------------------------------------------

    async def run(self) -> None:
        """Record until cancelled; on cancellation, flush what is queued, then re-raise."""
        batch = self._batch  # taken off the queue, not yet stored: kept on cancel
        try:
            while True:
                await self._collect(batch)
                entries = self._convert_all(batch)
                batch.clear()  # handed over: the sink completes an append once called
                await self._store(entries)
        except asyncio.CancelledError:
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            entries = self._convert_all(batch)
            if entries:
                try:
                    async with asyncio.timeout(_FLUSH_ON_STOP_S):
                        await self._store(entries)
                except TimeoutError:
                    logger.error("recorder: %d readings not stored at shutdown", len(entries))
            raise

    def convert(self, item: Received) -> Entry | None:
        """The outbox entry for one observation, or ``None`` (counted, logged) if the wire
        model refuses it."""
        observation = item.observation
        received = item.received
        if received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        moment, flags, fell_back = measurement_time(
            observation, received, self._zone, self._max_age
        )
        if fell_back:
            self.stats.clock_fallbacks += 1
            logger.debug(
                "device=%s metric=%s: implausible device time %s, using the receive time",
                item.device,
                observation.metric.value,
                observation.device_time,
            )
        try:
            reading = Reading(
                gateway=self._gateway,
                device=item.device,
                user=observation.user,
                metric=observation.metric,
                value=observation.value,
                unit=observation.metric.unit,
                time=moment,
                received=received,
                seq=0,  # the outbox gives the real one
                flags=flags,
            )
        except ValidationError as exc:
            self._refused(item, exc)
            return None
        streamed = self._is_streaming is not None and self._is_streaming(item.device)
        return Entry(
            device=reading.device,
            metric=reading.metric,
            value=reading.value,
            time=reading.time,
            received=reading.received,
            user=reading.user,
            flags=reading.flags,
            retention=retention_of(reading.metric, streamed=streamed),
        )

    async def _collect(self, batch: list[Received]) -> None:
        """Fill ``batch`` (empty on entry) with what arrives within the flush interval."""
        batch.append(await self._queue.get())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.flush_interval_s
        while len(batch) < self._settings.flush_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await self._queue.get())
            except TimeoutError:
                break
        self._check_queue_recovered()

    def _convert_all(self, batch: Sequence[Received]) -> list[Entry]:
        return [entry for item in batch if (entry := self.convert(item)) is not None]

    async def _store(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        self._storing = len(entries)
        try:
            result = await self._sink.append(entries)
        except OutboxError as exc:
            self.stats.store_failed += len(entries)
            if self._store_failing_since is None:
                self._store_failing_since = self.stats.store_failed - len(entries)
                logger.error("recorder: the outbox cannot store readings: %s", exc)
            return
        finally:
            self._storing = 0
        if self._store_failing_since is not None:
            logger.warning(
                "recorder: the outbox stores again; %d readings were lost meanwhile",
                self.stats.store_failed - self._store_failing_since,
            )
            self._store_failing_since = None
        self.stats.recorded += len(result.seqs)

    def _check_queue_recovered(self) -> None:
        if self._queue_full_since is None or self._queue.qsize() > self._queue.maxsize // 2:
            return
        logger.warning(
            "recorder queue has room again; %d observations were dropped meanwhile",
            self.stats.queue_dropped - self._queue_full_since,
        )
        self._queue_full_since = None

    def _refused(self, item: Received, exc: ValidationError) -> None:
        self.stats.invalid += 1
        key = (item.device, item.observation.metric.value)
        errors = exc.errors(include_url=False, include_input=False)
        where = ",".join(".".join(str(part) for part in e["loc"]) or e["type"] for e in errors)
        if key not in self._logged_invalid:
            if len(self._logged_invalid) >= _LOGGED_KEYS_MAX:
                self._logged_invalid.clear()
            self._logged_invalid.add(key)
            # The field, never the value: a value is health data.
            logger.warning(
                "reading refused by the wire model: device=%s metric=%s problem=%s "
                "(first for this device and metric; %d refused in all)",
                item.device,
                item.observation.metric.value,
                where,
                self.stats.invalid,
            )
        logger.debug("refused reading from device=%s: %s", item.device, exc)
