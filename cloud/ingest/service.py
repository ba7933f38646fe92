"""The ingestor: MQTT readings -> validated batches -> the store, acknowledged after storing.

Tasks (one ``asyncio.TaskGroup``, each named):

``ingest-mqtt``
    The connection loop: connect (bounded by ``connect_timeout_s``), subscribe to
    ``$share/{group}/carewatch/v1/+/+/readings``, wait until the connection ends, let go of
    its messages, wait a random, growing, capped delay, connect again (everything rebuilt).
``ingest-pipeline``
    Takes messages from the inbox in arrival order, decodes them (:mod:`cloud.ingest.decode`),
    publishes their dead letters and packs their readings into write batches of at most
    ``batch_size`` readings. A batch is shipped when full, when its oldest reading has waited
    ``batch_interval_s``, or at once when the in-flight window is full (nothing more can
    arrive until something is acknowledged).
``ingest-writer-N`` (``max_concurrent_writes`` of them)
    Write batches. A write that fails because the store is unavailable is retried, with
    random, growing, capped delays, until it succeeds: its messages stay unacknowledged (the
    broker holds them), the bounded queues fill, and the broker stops sending at Receive
    Maximum; nothing is dropped and memory stays bounded. Readings the store refuses for
    their content are dead-lettered, one by one.
``ingest-registry``
    Reloads the device registry every ``refresh_s``.

At-least-once: a message is acknowledged only when every reading in it is stored or
dead-lettered (dead letters only after the broker's PUBACK), in the order messages arrived
(:class:`~cloud.ingest.tracker.AckTracker`). A crash loses nothing: unacknowledged messages
come again, and a reading written twice lands on the same key (:mod:`cloud.store.base`).

Bounds: the inbox holds at most ``receive_maximum`` messages in the whole process (the same
number the broker may have unacknowledged); the write queue holds ``max_concurrent_writes``
batches and the pipeline one more, so at most ``(2 * max_concurrent_writes + 1) *
batch_size`` readings are in memory besides the raw messages.

Stopping (:meth:`Ingestor.stop`, SIGTERM): take no new messages, write and acknowledge what
is in hand (at most ``shutdown_timeout_s``), disconnect cleanly. Whatever was not
acknowledged comes again on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from cloud.errors import (
    IngestError,
    MqttConnectionError,
    RegistryError,
    StoreUnavailableError,
)
from cloud.ingest.clock import Clock, SystemClock
from cloud.ingest.deadletter import Outgoing, refused_readings
from cloud.ingest.decode import Decoded, Decoder, stored_json
from cloud.ingest.inbox import Inbox
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.mqtt import MqttLink
from cloud.ingest.tracker import AckTracker, Delivery
from cloud.registry import DeviceRegistry
from cloud.settings import CloudSettings
from cloud.store.base import ReadingStore, Rejected, StoredReading
from vitals import topics
from vitals.backoff import Backoff

__all__ = ["Ingestor", "StoreOutageError"]

logger = logging.getLogger(__name__)

MAX_LOGGED_UNKNOWN = 10_000
"""Unknown devices remembered for logging each once; beyond, they are only counted."""
_OUTAGE_LOG_EVERY_S = 300.0
_YIELD_EVERY_S = 0.002
"""Longest the pipeline decodes without letting other tasks run."""


class StoreOutageError(IngestError):
    """The store stayed unavailable longer than ``give_up_after_s``."""

    def __init__(self, seconds: float, cause: str) -> None:
        super().__init__(f"store unavailable for {seconds:.0f} s: {cause}")
        self.seconds = seconds
        self.cause = cause


class _Batch:
    """Readings on their way into the store, and the messages they came from."""

    __slots__ = ("deliveries", "opened", "owners", "readings")

    def __init__(self, opened: float) -> None:
        self.opened = opened
        self.readings: list[StoredReading] = []
        self.owners: list[Delivery] = []
        self.deliveries: list[Delivery] = []


class Ingestor:
    """Consumes readings from MQTT into a :class:`~cloud.store.base.ReadingStore`.

    ``settings`` supplies the ``mqtt``, ``store`` (batching and retries; the store itself is
    ``store``), ``registry`` and ``shutdown_timeout_s`` settings. ``run()`` until ``stop()``.
    """

    def __init__(
        self,
        settings: CloudSettings,
        *,
        store: ReadingStore,
        registry: DeviceRegistry,
        metrics: IngestMetrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self._clock = clock if clock is not None else SystemClock()
        group = settings.mqtt.share_group
        self.topic_filter = (
            topics.shared(group, topics.READINGS_FILTER) if group else topics.READINGS_FILTER
        )
        self.connected = asyncio.Event()
        """Set while connected and subscribed (tests wait for it before publishing)."""
        self._stopping = asyncio.Event()
        self._draining = False
        self._outcome = {
            outcome: self.metrics.messages.labels(outcome)
            for outcome in ("stored", "partial", "refused")
        }
        self._unknown_logged: set[tuple[str, str]] = set()
        self._outage_since: float | None = None
        self._outage_logged = 0.0
        self._outage_retries = 0
        # Made in run(), on the running loop:
        self._inbox: Inbox | None = None
        self._link: MqttLink | None = None
        self._decoder: Decoder | None = None
        self._tracker = AckTracker(self._finish)
        self._batch: _Batch | None = None
        self._writes: asyncio.Queue[_Batch] = asyncio.Queue(
            maxsize=settings.store.max_concurrent_writes
        )

    # -- public face ----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to finish what is in hand and return."""
        self._stopping.set()

    @property
    def held(self) -> int:
        """Messages received and not yet acknowledged or let go."""
        return self._inbox.held if self._inbox is not None else 0

    async def run(self) -> None:
        """Run until :meth:`stop`. Raises RegistryError if the registry cannot be loaded at
        start, StoreOutageError when ``give_up_after_s`` runs out."""
        loop = asyncio.get_running_loop()
        s = self._settings
        directory = await self._registry.load()
        self._decoder = Decoder(
            directory,
            unknown_device=s.registry.unknown_device,
            unassigned_resident=s.registry.unassigned_resident,
        )
        inbox = Inbox(s.mqtt.receive_maximum, on_wait=self.metrics.backpressure_waits.inc)
        self._inbox = inbox
        self._link = MqttLink(s.mqtt, inbox, loop, topic_filter=self.topic_filter)
        self.metrics.in_flight.set_function(lambda: inbox.held)
        logger.info(
            "ingest starting client_id=%s filter=%s receive_maximum=%d sites=%d devices=%d",
            s.mqtt.client_id,
            self.topic_filter,
            s.mqtt.receive_maximum,
            len(directory.sites),
            len(directory),
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._connection_loop(), name="ingest-mqtt"),
                    group.create_task(self._pipeline(), name="ingest-pipeline"),
                    group.create_task(self._refresh_registry(), name="ingest-registry"),
                    *(
                        group.create_task(self._writer(), name=f"ingest-writer-{n}")
                        for n in range(s.store.max_concurrent_writes)
                    ),
                ]
                await self._stopping.wait()
                await self._drain()
                # The connection loop goes last: its clean DISCONNECT follows the acks.
                for task in reversed(tasks):
                    task.cancel()
        except BaseExceptionGroup as group:
            errors = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
            if len(errors) == 1:
                raise errors[0] from group
            raise
        logger.info("ingest stopped")

    # -- connection -----------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        s = self._settings.mqtt
        link = self._link
        assert link is not None
        backoff = Backoff(s.reconnect_min_s, s.reconnect_max_s)
        failing_since: float | None = None
        logged_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            connected_at: float | None = None
            try:
                async with asyncio.timeout(s.connect_timeout_s):
                    session_present = await link.connect()
                connected_at = loop.time()
                self.connected.set()
                self.metrics.connected.set(1)
                self.metrics.connects.inc()
                if failing_since is not None:
                    logger.info(
                        "mqtt connected again broker=%s after %.1f s",
                        link.endpoint,
                        loop.time() - failing_since,
                    )
                    failing_since = None
                logger.info(
                    "mqtt connected broker=%s client_id=%s session_present=%s",
                    link.endpoint,
                    s.client_id,
                    session_present,
                )
                cause = await link.wait_lost()
                logger.warning("mqtt connection lost broker=%s cause=%s", link.endpoint, cause)
                failing_since = logged_at = loop.time()
            except (MqttConnectionError, TimeoutError) as exc:
                cause = getattr(exc, "cause", None) or "no CONNACK/SUBACK in time"
                now = loop.time()
                if failing_since is None or now - logged_at >= _OUTAGE_LOG_EVERY_S:
                    failing_since = failing_since or now
                    logged_at = now
                    logger.warning(
                        "mqtt connect failed broker=%s for %.0f s cause=%s",
                        link.endpoint,
                        now - failing_since,
                        cause,
                    )
                else:
                    logger.debug("mqtt connect failed broker=%s cause=%s", link.endpoint, cause)
            finally:
                self.connected.clear()
                self.metrics.connected.set(0)
                await link.drop()
                if self._inbox is not None:
                    dropped = self._inbox.purge(lambda d: d.connection is link.current)
                    self.metrics.stale.inc(dropped)
            if connected_at is not None and loop.time() - connected_at > s.reconnect_max_s:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    # -- pipeline -------------------------------------------------------------------------

    async def _pipeline(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        loop = asyncio.get_running_loop()
        interval = self._settings.store.batch_interval_s
        yielded = loop.time()
        while True:
            delivery = inbox.get_nowait()
            if delivery is not None:
                await self._handle(delivery)
                # Decoding is CPU work: let the writers' HTTP I/O and paho's hand-offs run
                # every few milliseconds, or a full inbox would starve the writes.
                if loop.time() - yielded >= _YIELD_EVERY_S:
                    await asyncio.sleep(0)
                    yielded = loop.time()
                continue
            batch = self._batch
            if batch is not None and batch.readings:
                remaining = batch.opened + interval - loop.time()
                if remaining <= 0 or self._draining or inbox.held >= inbox.capacity:
                    await self._ship()
                    continue
                try:
                    async with asyncio.timeout(remaining):
                        await inbox.wait()  # takes nothing: a timeout cannot lose a message
                except TimeoutError:
                    pass
            elif inbox.closed:
                await loop.create_future()  # stopping: nothing more comes; wait to be cancelled
            else:
                await inbox.wait()

    async def _handle(self, delivery: Delivery) -> None:
        link, inbox, decoder = self._link, self._inbox, self._decoder
        assert link is not None
        assert inbox is not None
        assert decoder is not None
        if delivery.connection is not link.current:
            inbox.release()
            self.metrics.stale.inc()
            return
        tracker = self._tracker
        tracker.add(delivery)
        decoded = decoder.decode(delivery.topic, delivery.payload, self._clock.now())
        delivery.payload = b""  # not needed any more
        self._count(decoded)
        for letter in decoded.deadletters:
            kind = "message" if decoded.refused_message else "readings"
            self._publish_deadletter(delivery, letter, kind)
        readings = decoded.readings
        start, total = 0, len(readings)
        size = self._settings.store.batch_size
        loop = asyncio.get_running_loop()
        while start < total:
            batch = self._batch
            if batch is None:
                batch = self._batch = _Batch(loop.time())
            take = min(total - start, size - len(batch.readings))
            batch.readings.extend(readings[start : start + take])
            batch.owners.extend([delivery] * take)
            if not batch.deliveries or batch.deliveries[-1] is not delivery:
                batch.deliveries.append(delivery)
                tracker.hold(delivery)
            start += take
            if len(batch.readings) >= size:
                await self._ship()
        tracker.seal(delivery)

    def _count(self, decoded: Decoded) -> None:
        m = self.metrics
        if decoded.refused_message:
            self._outcome["refused"].inc()
            return
        refused = decoded.invalid + decoded.unknown_refused
        self._outcome["partial" if refused else "stored"].inc()
        if decoded.invalid:
            m.readings_rejected.labels("invalid").inc(decoded.invalid)
        if decoded.unknown_refused:
            m.readings_rejected.labels("unknown_device").inc(decoded.unknown_refused)
        if decoded.unknown:
            self._note_unknown(decoded)

    def _note_unknown(self, decoded: Decoded) -> None:
        unassigned = self._settings.registry.unassigned_resident
        count = sum(1 for r in decoded.readings if r.resident == unassigned)
        self.metrics.readings_unassigned.inc(count)
        for site, device in decoded.unknown:
            if (site, device) in self._unknown_logged:
                continue
            if len(self._unknown_logged) >= MAX_LOGGED_UNKNOWN:
                return
            self._unknown_logged.add((site, device))
            logger.info(
                "unknown device site=%s device=%s: stored as resident=%s", site, device, unassigned
            )
            if len(self._unknown_logged) == MAX_LOGGED_UNKNOWN:
                logger.warning(
                    "%d unknown devices seen: further ones are only counted", MAX_LOGGED_UNKNOWN
                )

    async def _ship(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None and batch.readings:
            await self._writes.put(batch)

    def _publish_deadletter(self, delivery: Delivery, letter: Outgoing, kind: str) -> None:
        link = self._link
        assert link is not None
        self._tracker.hold(delivery)
        link.publish(letter.topic, letter.payload, partial(self._deadletter_done, delivery, kind))

    def _deadletter_done(self, delivery: Delivery, kind: str, ok: bool) -> None:
        link = self._link
        if ok:
            self.metrics.deadletters.labels(kind).inc()
        elif link is not None and delivery.connection is link.current:
            # Connected, yet the broker refused it (e.g. an ACL): acknowledge anyway, or the
            # message would come back forever.
            self.metrics.deadletter_failures.inc()
            logger.error("dead letter for topic=%s refused by the broker", delivery.topic)
        self._tracker.release(delivery)

    # -- writing --------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            batch = await self._writes.get()
            await self._write(batch)

    async def _write(self, batch: _Batch) -> None:
        s = self._settings.store
        link = self._link
        assert link is not None
        loop = asyncio.get_running_loop()
        backoff = Backoff(s.retry_min_s, s.retry_max_s)
        while True:
            if all(d.connection is not link.current for d in batch.deliveries):
                # Every message of this batch belongs to an ended connection: the broker sends
                # them again, so stop retrying and give their slots back (unacknowledged).
                self._release(batch)
                return
            began = loop.time()
            try:
                result = await self._store.write(batch.readings)
            except StoreUnavailableError as exc:
                self._store_failed(exc, loop.time())
                await asyncio.sleep(backoff.next())
                continue
            break
        m = self.metrics
        m.write_seconds.observe(loop.time() - began)
        m.batch_readings.observe(len(batch.readings))
        m.readings_stored.inc(result.written)
        newest = max(r.received_ns for r in batch.readings)
        m.lag_seconds.observe(max(0.0, (time.time_ns() - newest) / 1e9))
        self._store_recovered(loop.time())
        if result.rejected:
            self._deadletter_rejected(batch, result.rejected)
        self._release(batch)

    def _release(self, batch: _Batch) -> None:
        for delivery in batch.deliveries:
            self._tracker.release(delivery)

    def _deadletter_rejected(self, batch: _Batch, rejected: Sequence[Rejected]) -> None:
        position = {id(reading): index for index, reading in enumerate(batch.readings)}
        by_owner: dict[int, tuple[Delivery, str, list[tuple[Any, str]]]] = {}
        for item in rejected:
            owner = batch.owners[position[id(item.reading)]]
            entry = by_owner.setdefault(id(owner), (owner, item.reading.site, []))
            entry[2].append((stored_json(item.reading), f"refused by the store: {item.reason}"))
        self.metrics.readings_rejected.labels("store_refused").inc(len(rejected))
        now = self._clock.now()
        for owner, site, items in by_owner.values():
            reason = f"{len(items)} readings refused by the store"
            letters = refused_readings(site, owner.topic, now, reason=reason, items=items)
            logger.warning(
                "store refused %d readings of topic=%s: %s", len(items), owner.topic, items[0][1]
            )
            for letter in letters:
                self._publish_deadletter(owner, letter, "readings")

    def _store_failed(self, exc: StoreUnavailableError, now: float) -> None:
        s = self._settings.store
        self.metrics.write_retries.inc()
        self.metrics.store_available.set(0)
        self._outage_retries += 1
        if self._outage_since is None:
            self._outage_since = now
            self._outage_logged = now
            logger.warning("store unavailable, retrying: %s", exc.cause)
        elif now - self._outage_logged >= _OUTAGE_LOG_EVERY_S:
            self._outage_logged = now
            logger.warning(
                "store still unavailable after %.0f s (%d retries): %s",
                now - self._outage_since,
                self._outage_retries,
                exc.cause,
            )
        if s.give_up_after_s is not None and now - self._outage_since >= s.give_up_after_s:
            raise StoreOutageError(now - self._outage_since, exc.cause)

    def _store_recovered(self, now: float) -> None:
        self.metrics.store_available.set(1)
        if self._outage_since is not None:
            logger.info(
                "store available again after %.1f s (%d retries)",
                now - self._outage_since,
                self._outage_retries,
            )
            self._outage_since = None
            self._outage_retries = 0

    def _finish(self, delivery: Delivery) -> None:
        """The tracker's callback: ``delivery`` is done, in arrival order."""
        link, inbox = self._link, self._inbox
        assert link is not None
        assert inbox is not None
        # The slot first: once the PUBACK is out the broker may send the next message at
        # once, and it must find room.
        inbox.release()
        if not link.ack(delivery):
            self.metrics.stale.inc()

    # -- registry -------------------------------------------------------------------------

    async def _refresh_registry(self) -> None:
        every = self._settings.registry.refresh_s
        failing = False
        while True:
            await asyncio.sleep(every)
            try:
                directory = await self._registry.load()
            except RegistryError as exc:
                if not failing:
                    logger.warning("registry reload failed, keeping the previous one: %s", exc)
                failing = True
                continue
            if failing:
                logger.info("registry reloads again")
            failing = False
            decoder = self._decoder
            assert decoder is not None
            if directory.entries != decoder.directory.entries:
                decoder.directory = directory
                self._unknown_logged.clear()
                logger.info(
                    "registry reloaded sites=%d devices=%d", len(directory.sites), len(directory)
                )

    # -- stopping -------------------------------------------------------------------------

    async def _drain(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        dropped = inbox.close()
        self._draining = True
        logger.info(
            "ingest stopping: finishing %d messages in hand (%d queued let go)",
            inbox.held,
            dropped,
        )
        try:
            async with asyncio.timeout(self._settings.shutdown_timeout_s):
                await inbox.wait_empty()
        except TimeoutError:
            logger.warning(
                "ingest stopping: %d messages not acknowledged in time (they come again)",
                inbox.held,
            )
