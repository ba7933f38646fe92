"""The alert service: readings and gateway statuses in from MQTT, rules evaluated every tick,
alerts through their lifecycle, out to MQTT, to people (apprise) and to the live web.

``python -m cloud alerts`` runs it alone; ``python -m cloud serve`` runs it in one process
with the API, which then acts on alerts through this object (:class:`AlertService` is the
API's ``AlertDesk``).

Where the readings come from
----------------------------
The service subscribes to the readings and status topics itself (``[alerts]`` account, a
persistent session), beside the ingestor's shared subscription, instead of being fed by the
ingestor: an InfluxDB outage then delays storage but never alerts, and the ingestors scale
out without knowing about alerts. At start the rules' recent history is refilled from the
store (raw readings for the last hours, one-minute means for the days that the trends need),
and the first evaluation is reconciled with the unresolved alerts of the ledger; readings
that the broker kept for the session during a restart are then applied on top (the engine
skips those it has already seen).

One tick (``[alerts] tick_s``, 1 s): evaluate every rule for every resident (numpy, a few ms
for 10,000 residents), turn what changed into lifecycle operations per site, fire the
escalations that are due, then publish every change (``carewatch/v1/{site}/alerts``, QoS 1,
JSON), hand the notifications to the dispatcher and the events to the web.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiomqtt
import numpy as np
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.alerts.config import EngineConfig, Resident
from cloud.alerts.engine import AlertEngine, Condition
from cloud.alerts.errors import AlertNotFoundError
from cloud.alerts.escalation import SiteEscalation
from cloud.alerts.feed import Event, EventFeed
from cloud.alerts.ledger import AlertLedger, AuditRecord
from cloud.alerts.lifecycle import Change, Lifecycle, LifecycleConfig
from cloud.alerts.news2 import Consciousness, News2, SpO2Scale
from cloud.alerts.rules import RuleResult, news2_inputs, news2_scores
from cloud.alerts.sites import SiteMap
from cloud.alerts.state import METRIC_INDEX
from cloud.alerts.thresholds import ThresholdRule
from cloud.clock import Clock, SystemClock
from cloud.errors import StoreError
from cloud.notify.dispatcher import Dispatcher
from cloud.notify.message import Message
from cloud.settings import AlertSettings, CloudSettings
from cloud.store.base import ReadingStore
from vitals import topics
from vitals.backoff import Backoff
from vitals.broker import BrokerSettings
from vitals.errors import TopicError, WireError
from vitals.metrics import Metric, MetricKind
from vitals.wire import (
    Alert,
    AlertKind,
    AlertState,
    Quality,
    Reading,
    Severity,
    Status,
    parse_batch,
    parse_message,
)

__all__ = ["AlertService", "ServiceStats"]

logger = logging.getLogger(__name__)

_RAW: Final = {
    # metric: how far back raw readings are refilled
    Metric.HEART_RATE: timedelta(hours=2),
    Metric.PULSE_RATE: timedelta(hours=2),
    Metric.SPO2: timedelta(hours=2),
    Metric.RESPIRATORY_RATE: timedelta(hours=2),
    Metric.BODY_TEMPERATURE: timedelta(days=15),
    Metric.SYSTOLIC_BP: timedelta(days=2),
    Metric.DIASTOLIC_BP: timedelta(days=2),
    Metric.BODY_WEIGHT: timedelta(days=8),
    Metric.BLOOD_GLUCOSE: timedelta(days=2),
    Metric.BATTERY_LEVEL: timedelta(days=1),
    Metric.FALL: timedelta(hours=3),
    Metric.HELP_BUTTON: timedelta(hours=3),
}
_MEANS: Final = {
    # metric: how far back one-minute means are refilled (before the raw window)
    Metric.HEART_RATE: timedelta(days=8),
}
_NO_CONTACT_OR_QUESTIONABLE: Final = frozenset({Quality.NO_CONTACT, Quality.QUESTIONABLE})


@dataclass(slots=True)
class ServiceStats:
    readings: int = 0
    batches_refused: int = 0
    statuses: int = 0
    ticks: int = 0
    tick_seconds: float = 0.0
    changes: int = 0
    published: int = 0
    publish_dropped: int = 0
    notifications: int = 0
    notifications_refused: int = 0
    refilled: int = 0
    connected: bool = False


class AlertService:
    """See the module docstring. Build it, ``await start()``, then ``await run()`` (or drive
    :meth:`tick` yourself, as tests do)."""

    def __init__(
        self,
        settings: CloudSettings,
        *,
        sites: SiteMap,
        escalation: Mapping[str, SiteEscalation],
        ledger: AlertLedger,
        store: ReadingStore | None = None,
        dispatcher: Dispatcher | None = None,
        clock: Clock | None = None,
        engine_config: EngineConfig | None = None,
        on_status: Callable[[Status, datetime], None] | None = None,
    ) -> None:
        self._settings = settings
        self._alerts: AlertSettings = settings.alerts
        self._clock = clock if clock is not None else SystemClock()
        self.sites = sites
        now = self._clock.now()
        self.engine = AlertEngine(sites.roster, engine_config, start=now)
        for site in sites.sites:
            if site.id not in escalation:
                logger.warning("alerts: site %s has no people file: nobody is notified", site.id)
        self.lifecycle = Lifecycle(
            ledger,
            {site.id: escalation[site.id] for site in sites.sites if site.id in escalation},
            LifecycleConfig(
                critical_snooze_cap=timedelta(seconds=self._alerts.critical_snooze_cap_s),
                max_snooze=timedelta(seconds=self._alerts.max_snooze_s),
            ),
        )
        self._store = store
        self._dispatcher = dispatcher
        self._on_status = on_status
        self.feed = EventFeed()
        self.stats = ServiceStats()
        self._previous: list[RuleResult] | None = None
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._outgoing_ready = asyncio.Event()
        self._last_event: dict[tuple[str, Metric], float] = {}
        self._stopping = asyncio.Event()
        self._started = False
        self._started_at = now
        self._probe_missing: dict[str, bool] = {}

    # -- start -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the unresolved alerts, refill the rules from the store, reconcile."""
        await self.lifecycle.load()
        now = self._clock.now()
        if self._store is not None and self._alerts.refill:
            await self._refill(now)
        results = self.engine.evaluate_arrays(now)
        by_site = self._by_site(self.engine.conditions(results))
        changes: list[Change] = []
        for site in self.sites.sites:
            changes.extend(await self.lifecycle.reconcile(site.id, by_site.get(site.id, []), now))
        self._previous = results
        self._started = True
        self._emit(changes, now)

    async def _refill(self, now: datetime) -> None:
        store = self._store
        assert store is not None
        engine = self.engine
        began = time.monotonic()
        resident_idx: list[int] = []
        metric_idx: list[int] = []
        times: list[int] = []
        values: list[float] = []
        devices: list[int] = []
        valid: list[bool] = []
        for site in self.sites.sites:
            for resident in site.residents:
                internal = self.sites.resident(site.id, resident.id)
                assert internal is not None
                index = engine.resident_index(internal)
                for metric, span in _RAW.items():
                    try:
                        for r in await store.window(site.id, resident.id, metric, now - span, now):
                            resident_idx.append(-1 if metric is Metric.BATTERY_LEVEL else index)
                            metric_idx.append(METRIC_INDEX[metric])
                            times.append(r.time_ns)
                            values.append(r.value)
                            device = self.sites.device(site.id, r.device)
                            devices.append(-1 if device is None else engine.find_device(device))
                            valid.append(not _NO_CONTACT_OR_QUESTIONABLE.intersection(r.flags))
                        mean_span = _MEANS.get(metric)
                        if mean_span is None:
                            continue
                        buckets = await store.history(
                            site.id,
                            resident.id,
                            metric,
                            now - mean_span,
                            now - span,
                            every=timedelta(minutes=1),
                        )
                    except StoreError as exc:
                        logger.warning("alerts: refill of %s incomplete: %s", site.id, exc)
                        continue
                    for bucket in buckets:
                        resident_idx.append(index)
                        metric_idx.append(METRIC_INDEX[metric])
                        times.append(bucket.start_ns)
                        values.append(bucket.mean)
                        devices.append(-1)
                        valid.append(True)
        if times:
            engine.refill(
                np.array(resident_idx, dtype=np.int64),
                np.array(metric_idx, dtype=np.int64),
                np.array(times, dtype=np.int64),
                np.array(values, dtype=np.float64),
                device=np.array(devices, dtype=np.int64),
                valid=np.array(valid, dtype=np.bool_),
            )
        self.stats.refilled = len(times)
        logger.info(
            "alerts: refilled %d readings from the store in %.1f s",
            len(times),
            time.monotonic() - began,
        )

    # -- input -----------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, arrived: datetime | None = None) -> None:
        """One MQTT message from the readings or status topics."""
        moment = arrived if arrived is not None else self._clock.now()
        try:
            name = topics.parse(topic)
        except TopicError:
            return
        if name.kind is topics.TopicKind.READINGS:
            try:
                batch = parse_batch(payload)
            except WireError:
                self.stats.batches_refused += 1  # the ingestor dead-letters it
                return
            if batch.site != name.site:
                self.stats.batches_refused += 1
                return
            self.ingest(batch.site, batch.readings, moment)
        elif name.kind is topics.TopicKind.STATUS:
            try:
                status = parse_message(Status, payload)
            except WireError:
                return
            gateway = self.sites.gateway(status.site, status.gateway)
            if gateway is None:
                return
            devices = tuple(
                entry.model_copy(update={"device": internal})
                for entry in status.devices
                if (internal := self.sites.device(status.site, entry.device)) is not None
            )
            self.engine.apply_status(
                status.model_copy(update={"gateway": gateway, "devices": devices}),
                arrived=moment,
            )
            self.stats.statuses += 1
            if self._on_status is not None:
                self._on_status(status, moment)

    def ingest(self, site: str, readings: Sequence[Reading], arrived: datetime) -> None:
        """Readings of ``site`` (real ids); those of devices the roster does not know are
        skipped."""
        known: list[Reading] = []
        for reading in readings:
            device = self.sites.device(site, reading.device)
            if device is not None:
                known.append(reading.model_copy(update={"device": device}))
        report = self.engine.ingest(known, arrived=arrived)
        self.stats.readings += report.applied
        every = self._alerts.reading_events_every_s
        clock = time.monotonic()
        for reading in known:
            if reading.metric.kind is not MetricKind.VITAL:
                continue
            resident = self.sites.real(self.engine.resident_of(reading.device, reading.user))
            if resident is None:
                continue
            key = (resident, reading.metric)
            if clock - self._last_event.get(key, -1e18) < every:
                continue
            self._last_event[key] = clock
            self.feed.publish(
                Event(
                    "reading",
                    site,
                    resident,
                    {
                        "resident": resident,
                        "metric": reading.metric.value,
                        "value": reading.value,
                        "unit": reading.metric.unit,
                        "time": reading.time.isoformat(),
                    },
                )
            )

    # -- the tick --------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> list[Change]:
        """Evaluate every rule at ``now`` and act on what changed; returns the changes."""
        moment = now if now is not None else self._clock.now()
        began = time.perf_counter()
        results = self.engine.evaluate_arrays(moment)
        changed = self.engine.changes(self._previous, results)
        self._previous = results
        changes: list[Change] = []
        for site, conditions in self._by_site(changed).items():
            changes.extend(await self.lifecycle.apply(site, conditions, moment))
        changes.extend(await self.lifecycle.tick(moment))
        self.stats.ticks += 1
        self.stats.tick_seconds = time.perf_counter() - began
        self._emit(changes, moment)
        return changes

    def _by_site(self, conditions: Iterable[Condition]) -> dict[str, list[Condition]]:
        """Engine conditions (internal ids) by site, in each site's real ids."""
        by_site: dict[str, list[Condition]] = {}
        for condition in conditions:
            found = self.sites.external(condition)
            if found is not None:
                by_site.setdefault(found[0], []).append(found[1])
        return by_site

    def _emit(self, changes: Iterable[Change], now: datetime) -> None:
        queue_size = self._alerts.publish_queue
        for change in changes:
            alert = change.alert
            self.stats.changes += 1
            if len(self._outgoing) >= queue_size:
                self._outgoing.popleft()
                self.stats.publish_dropped += 1
            self._outgoing.append((topics.alerts(alert.site), alert.to_json()))
            self._outgoing_ready.set()
            self.feed.publish(
                Event("alert", alert.site, alert.resident, alert.model_dump(mode="json"))
            )
            if self._dispatcher is None:
                continue
            for notification in change.notifications:
                recipient = notification.recipient
                if not recipient.urls:
                    continue
                message = Message(
                    recipient=recipient.id,
                    urls=tuple(recipient.urls),
                    title=alert.title,
                    body=_body(alert, notification.reason),
                    severity=alert.severity,
                    alert_id=alert.id,
                    created=now,
                )
                if self._dispatcher.submit(message):
                    self.stats.notifications += 1
                else:
                    self.stats.notifications_refused += 1

    # -- running ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._outgoing_ready.set()
        if self._dispatcher is not None:
            self._dispatcher.stop()

    async def run(self) -> None:
        """Until :meth:`stop`: MQTT in and out, the ticks, the notifications."""
        if not self._started:
            await self.start()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._mqtt(), name="alerts-mqtt"),
                    group.create_task(self._ticks(), name="alerts-tick"),
                    group.create_task(self._probe_checks(), name="alerts-probes"),
                ]
                if self._dispatcher is not None:
                    tasks.append(group.create_task(self._dispatcher.run(), name="alerts-notify"))
                await self._stopping.wait()
                for task in tasks:
                    task.cancel()
        finally:
            await self.lifecycle.ledger.aclose()

    async def check_probes(self, now: datetime | None = None) -> list[Change]:
        """The end-to-end check: each site's gateway sends a test reading on a schedule
        (metric ``probe``) that travels gateway -> broker -> ingest -> store like any other.
        A site with none stored within ``probe_silence_s`` gets an urgent technical alert
        (clinical alerts from that home may be blind); it resolves when one is stored."""
        if self._store is None:
            return []
        moment = now if now is not None else self._clock.now()
        silence = timedelta(seconds=self._alerts.probe_silence_s)
        if moment - self._started_at < silence:
            return []  # give a freshly started system the time a probe needs
        changes: list[Change] = []
        for site in self.sites.sites:
            try:
                recent = await self._store.latest(
                    site.id, self._settings.registry.unassigned_resident, since=moment - silence
                )
            except StoreError as exc:
                logger.warning("alerts: probe check of %s skipped: %s", site.id, exc)
                continue
            arrived = any(r.metric is Metric.PROBE and r.device == site.gateway for r in recent)
            missing = not arrived
            if self._probe_missing.get(site.id, False) == missing:
                continue
            self._probe_missing[site.id] = missing
            condition = Condition(
                key=f"probe_missing:{site.gateway}",
                rule="probe_missing",
                kind=AlertKind.TECHNICAL,
                severity=Severity.URGENT,
                active=missing,
                resident=None,
                device=None,
                gateway=site.gateway,
                metric=Metric.PROBE,
                value=None,
                time=moment,
                message=(
                    f"[urgent] {site.gateway}: no end-to-end test reading stored for "
                    f"{int(silence.total_seconds() // 60)} min: alerts from this home may "
                    "not arrive"
                ),
            )
            changes.extend(await self.lifecycle.apply(site.id, [condition], moment))
        self._emit(changes, moment)
        return changes

    async def _probe_checks(self) -> None:
        every = min(60.0, self._alerts.probe_silence_s / 4)
        while True:
            await asyncio.sleep(every)
            try:
                await self.check_probes()
            except Exception:
                logger.exception("alerts: probe check failed")

    async def _ticks(self) -> None:
        interval = self._alerts.tick_s
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.tick()
            except Exception:
                # A failing tick (e.g. the ledger's disk) is logged and tried again: the
                # conditions are recomputed from the state on the next tick.
                logger.exception("alerts: tick failed")
                self._previous = None
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def _mqtt(self) -> None:
        broker: BrokerSettings = self._alerts.mqtt or self._settings.mqtt
        backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s)
        tls = _tls_context(broker) if broker.tls else None
        while not self._stopping.is_set():
            session: dict[str, Any]
            if broker.v5:
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = self._alerts.session_expiry_s
                session = {
                    "protocol": aiomqtt.ProtocolVersion.V5,
                    "clean_start": False,
                    "properties": properties,
                }
            else:
                session = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
            client = aiomqtt.Client(
                broker.host,
                broker.port,
                identifier=self._alerts.client_id,
                **session,
                keepalive=broker.keepalive_s,
                timeout=broker.connect_timeout_s,
                username=broker.username,
                password=broker.password.get_secret_value() if broker.password else None,
                tls_context=tls,
                tls_insecure=broker.tls_insecure if tls is not None else None,
                max_queued_incoming_messages=10_000,
            )
            try:
                async with client:
                    await client.subscribe([(topics.READINGS_FILTER, 1), (topics.STATUS_FILTER, 1)])
                    self.stats.connected = True
                    backoff.reset()
                    logger.info("alerts: connected to %s:%d", broker.host, broker.port)
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publish(client), name="alerts-publish")
                        async for message in client.messages:
                            payload = message.payload
                            if isinstance(payload, bytes | bytearray):
                                self.on_message(str(message.topic), bytes(payload))
            except* aiomqtt.MqttError as group:
                # The receiving loop raises it directly, the publisher from inside the task
                # group: either way it ends this connection, never the service.
                logger.warning("alerts: broker connection lost: %s", group.exceptions[0])
            finally:
                self.stats.connected = False
            await asyncio.sleep(backoff.next())

    async def _publish(self, client: aiomqtt.Client) -> None:
        # The stop flag, not only cancellation, ends this loop: on Python 3.11 a PUBACK that
        # arrives as the task is cancelled makes aiomqtt's wait_for swallow the cancellation
        # (fixed in 3.12), and the loop would go on forever (seen as a hang on stopping).
        while not self._stopping.is_set():
            if not self._outgoing:
                self._outgoing_ready.clear()
                await self._outgoing_ready.wait()
                continue
            topic, payload = self._outgoing[0]
            await client.publish(topic, payload, qos=1)  # raises MqttError when the link ends
            self._outgoing.popleft()
            self.stats.published += 1

    # -- the API's alert desk --------------------------------------------------------------

    async def alerts(
        self,
        site: str,
        *,
        states: Sequence[AlertState] | None = None,
        resident: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        records = await self.lifecycle.ledger.alerts(
            site, states=states, resident=resident, limit=limit
        )
        return [record.to_wire() for record in records]

    async def alert(self, site: str, alert_id: str) -> Alert | None:
        record = await self.lifecycle.ledger.get(alert_id)
        if record is None or record.site != site:
            return None
        return record.to_wire()

    async def trail(self, site: str, alert_id: str) -> list[AuditRecord]:
        if await self.alert(site, alert_id) is None:
            raise AlertNotFoundError(alert_id)
        return await self.lifecycle.ledger.audit(alert_id)

    async def acknowledge(self, site: str, alert_id: str, by: str, comment: str | None) -> Alert:
        await self._check(site, alert_id)
        now = self._clock.now()
        return self._last(await self.lifecycle.acknowledge(alert_id, by, comment, now=now), now)

    async def resolve(self, site: str, alert_id: str, by: str, comment: str | None) -> Alert:
        await self._check(site, alert_id)
        now = self._clock.now()
        return self._last(await self.lifecycle.resolve(alert_id, by, comment, now=now), now)

    async def snooze(self, site: str, alert_id: str, by: str, minutes: float) -> Alert:
        await self._check(site, alert_id)
        now = self._clock.now()
        until = now + timedelta(minutes=minutes)
        return self._last(await self.lifecycle.snooze(alert_id, by, until, now=now), now)

    async def _check(self, site: str, alert_id: str) -> None:
        if await self.alert(site, alert_id) is None:
            raise AlertNotFoundError(alert_id)

    def _last(self, changes: list[Change], now: datetime) -> Alert:
        self._emit(changes, now)
        return changes[-1].alert

    def events(self, site: str) -> AsyncIterator[Event]:
        """Live events of ``site`` (alert changes, latest readings) until the caller stops."""
        return self.feed.subscribe(site)

    def thresholds(self, site: str, resident: str) -> list[ThresholdRule] | None:
        """The threshold rules as they apply to the resident (their scale and overrides);
        None for a resident the rules do not know."""
        internal = self.sites.resident(site, resident)
        if internal is None:
            return None
        record = self.engine.roster.residents[self.engine.resident_index(internal)]
        return [_levels(rule, record) for rule in self.engine.config.thresholds]

    def news2(self, site: str, resident: str) -> tuple[News2, datetime | None] | None:
        """The resident's NEWS2 now, from the freshest parameters (missing ones named), and
        when the newest of them was measured; None for a resident the rules do not know."""
        internal = self.sites.resident(site, resident)
        if internal is None:
            return None
        index = self.engine.resident_index(internal)
        moment = self._clock.now()
        inputs = news2_inputs(self.engine.state, moment.timestamp())
        result = news2_scores(inputs).result(index)
        newest = float(inputs.time[index])
        return result, (datetime.fromtimestamp(newest, UTC) if np.isfinite(newest) else None)

    def observe(
        self,
        site: str,
        resident: str,
        *,
        consciousness: Consciousness | None = None,
        on_oxygen: bool | None = None,
    ) -> bool:
        """A staff entry: ACVPU now, and/or whether the resident is on oxygen. False for a
        resident the rules do not know."""
        internal = self.sites.resident(site, resident)
        if internal is None:
            return False
        now = self._clock.now()
        if consciousness is not None:
            self.engine.observe_consciousness(internal, consciousness, now)
        if on_oxygen is not None:
            self.engine.set_oxygen(internal, on_oxygen)
        return True


def _levels(rule: ThresholdRule, resident: Resident) -> ThresholdRule:
    """``rule`` as it applies to ``resident``: scale 2 levels, then their own overrides."""
    scale_2 = resident.spo2_scale is SpO2Scale.SCALE_2 and rule.scale_2_levels is not None
    levels = list(rule.scale_2_levels if scale_2 and rule.scale_2_levels else rule.levels)
    for override in resident.overrides:
        if override.rule != rule.rule:
            continue
        for index, level in enumerate(levels):
            if level.severity is not override.severity:
                continue
            if override.trigger is None:
                del levels[index]
            else:
                clear = override.clear
                if clear is None:
                    clear = override.trigger + (level.clear - level.trigger)
                levels[index] = replace(level, trigger=override.trigger, clear=clear)
            break
    return replace(rule, levels=tuple(levels), scale_2_levels=None)


def _body(alert: Alert, reason: str) -> str:
    who = f"resident {alert.resident}" if alert.resident else (alert.device or alert.gateway)
    return (
        f"{reason}: {alert.title}\n"
        f"site {alert.site}, {who}, {alert.severity.value}, opened "
        f"{alert.opened.strftime('%Y-%m-%d %H:%M UTC')}"
    )


def _tls_context(broker: BrokerSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(broker.ca_file) if broker.ca_file is not None else None
    )
    if broker.cert_file is not None and broker.key_file is not None:
        context.load_cert_chain(broker.cert_file, broker.key_file)
    if broker.tls_insecure:
        context.check_hostname = False
    return context
