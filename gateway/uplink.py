"""The MQTT uplink: drains the outbox to the broker and loses nothing.

Per connection (all of it rebuilt on every connect):

* a new client (MQTT v5, client id ``carewatch-{site}-{gateway}``, ``clean_start=False`` and a
  session expiry, so the broker keeps the session across reconnects), with a retained QoS 1
  last will that says ``offline``;
* an ``online`` status (retained, QoS 1, with health figures) as soon as it is connected,
  then again every ``heartbeat_s``;
* the sender: readings leave in seq order as ``ReadingBatch`` JSON on
  ``carewatch/v1/{site}/{gateway}/readings``, up to ``batch_size`` per message; a live reading
  waits at most ``batch_interval_s`` for its batch to fill, a backlog goes at once. Up to
  ``max_in_flight`` batches await their PUBACK at a time. Rows are deleted from the outbox
  only after the PUBACK of the batch that carried them, and only if its reason code is a
  success: a refusal (MQTT v5 reason >= 0x80, e.g. 0x87 "not authorised" from an ACL) keeps
  them and is treated like a lost connection. aiomqtt 2.x ignores PUBACK reason codes, so
  :class:`_Client` adds a publish that checks them;
* companions (:class:`Companion`, e.g. ``gateway.homeassistant``) publish over the same
  connection beside the sender, one message in flight each;
* in-flight bookkeeping is one cursor (the last seq handed out on this connection). When the
  connection ends it is dropped: whatever was not acknowledged is sent again on the next one,
  as the same readings (the outbox seals their ``late`` flag), so the cloud sees duplicates
  only as identical readings under the same (gateway, device, seq).

Between connections: random, growing, capped delays (``reconnect_min_s`` .. ``reconnect_max_s``),
each attempt bounded by ``connect_timeout_s``; the delays start over after a connection that
lasted longer than ``reconnect_max_s``. A PUBACK that does not come within ``ack_timeout_s``
ends the connection too, so the uplink never waits silently on a half-dead socket. Each
disconnect is logged once with its cause, a long outage again every few minutes, and each
recovery once. A clean stop (cancellation) publishes a retained ``offline`` status and
disconnects; a crash or a lost network leaves the will to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from gateway.errors import (
    GatewayError,
    PublishRefusedError,
    SettingsError,
    UplinkConnectionError,
    UplinkError,
    UplinkStalledError,
)
from gateway.health import Clock, HealthSource, NoDevices, utc_now, versions
from gateway.outbox import AsyncOutbox, Stored
from gateway.settings import MqttSettings, StatusSettings
from vitals import topics
from vitals.backoff import Backoff
from vitals.wire import GatewayState, Reading, ReadingBatch, Status

__all__ = [
    "AiomqttConnector",
    "Companion",
    "Connector",
    "MqttLink",
    "Uplink",
    "UplinkStats",
    "Will",
    "client_id",
]

logger = logging.getLogger(__name__)

_GOODBYE_S = 5.0
"""Longest a clean stop waits to publish the offline status."""
_STILL_OFFLINE_EVERY_S = 300.0
_MAX_STATUS_DEVICES = 1024
_PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")
"""paho's own messages (it logs a socket error when a connection drops, besides our line)."""


def client_id(site: str, gateway: str) -> str:
    """The gateway's MQTT client id: stable, so the broker resumes its session."""
    return f"carewatch-{site}-{gateway}"


# -- the I/O interface ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Will:
    """The last will: published (retained, QoS 1) by the broker if the gateway vanishes."""

    topic: str
    payload: bytes


class MqttLink(Protocol):
    """One live connection to the broker, as the uplink uses it."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> Awaitable[None]:
        """Send a QoS 1 PUBLISH now (so messages leave in call order) and return an awaitable
        that completes at its successful PUBACK; it raises :class:`PublishRefusedError` on a
        failure reason code and :class:`UplinkConnectionError` if it cannot be sent."""
        ...

    async def closed(self) -> str:
        """Wait until the connection is lost; return the cause."""
        ...


class Connector(Protocol):
    """Makes connections: ``async with connector.connect(will) as link``. Entering raises
    :class:`UplinkConnectionError` when the broker cannot be reached or refuses us; leaving
    disconnects (with a DISCONNECT when the connection is still up)."""

    def connect(self, will: Will) -> contextlib.AbstractAsyncContextManager[MqttLink]: ...


class Companion(Protocol):
    """Something else the gateway publishes over the uplink's connection (Home Assistant
    discovery): ``serve(link)`` runs beside the sender on every connection, from just after
    the online status until the connection ends. A :class:`GatewayError` it raises ends the
    connection, as the sender's do."""

    async def serve(self, link: MqttLink) -> None: ...


# -- the aiomqtt implementation -------------------------------------------------------------


class _Client(aiomqtt.Client):
    """aiomqtt's client plus a publish whose PUBACK reason code is checked.

    aiomqtt 2.x resolves ``publish()`` on any PUBACK, ignoring its reason code, so a publish
    the broker refused (0x87 not authorised, 0x97 quota exceeded, ...) looks delivered. This
    subclass keeps its own future per message id and reads the reason code in the
    ``_on_publish`` hook that aiomqtt registers with paho. It relies on two aiomqtt internals,
    ``_client`` (the paho client) and ``_on_publish``; the uplink's integration tests (an ACL
    that refuses publishes) catch a change in them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}
        self._early: dict[int, ReasonCode] = {}

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        future = self._acks.pop(mid, None)
        if future is None:
            self._early[mid] = reason_code  # acknowledged before send() registered it
        elif not future.done():
            future.set_result(reason_code)
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def send(self, topic: str, payload: bytes, *, retain: bool) -> asyncio.Future[ReasonCode]:
        """Hand a QoS 1 PUBLISH to paho now; the future resolves at its PUBACK."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise UplinkConnectionError(f"publish failed: {paho.error_string(info.rc)}")
        future: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        early = self._early.pop(info.mid, None)
        if early is not None:
            future.set_result(early)
        else:
            self._acks[info.mid] = future
        return future


class _AiomqttLink:
    def __init__(self, client: _Client) -> None:
        self._client = client

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> Awaitable[None]:
        return self._acknowledged(topic, self._client.send(topic, payload, retain=retain))

    @staticmethod
    async def _acknowledged(topic: str, ack: asyncio.Future[ReasonCode]) -> None:
        reason = await ack
        if reason.is_failure:
            raise PublishRefusedError(topic, reason.value, str(reason))

    async def closed(self) -> str:
        try:
            async for _ in self._client.messages:  # nothing is subscribed: this only waits
                pass
        except aiomqtt.MqttError as exc:
            return _describe(exc)
        return "connection closed"


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) != text:
        return f"{text}: {cause}"
    return text


class AiomqttConnector:
    """Connections to the broker in ``settings`` with aiomqtt (MQTT v5, persistent session,
    TLS and credentials from the settings)."""

    def __init__(self, settings: MqttSettings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._tls = _tls_context(settings) if settings.tls else None

    @contextlib.asynccontextmanager
    async def connect(self, will: Will) -> AsyncIterator[MqttLink]:
        s = self._settings
        session: dict[str, Any]
        if s.v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = s.session_expiry_s
            session = {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": False,
                "properties": properties,
            }
        else:
            session = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        client = _Client(
            s.host,
            s.port,
            identifier=self._client_id,
            **session,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=True),
            keepalive=s.keepalive_s,
            timeout=s.connect_timeout_s,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None else None,
            tls_context=self._tls,
            tls_insecure=s.tls_insecure if self._tls is not None else None,
            max_inflight_messages=s.max_in_flight + 2,
            logger=_PAHO_LOGGER,
        )
        try:
            async with client:
                yield _AiomqttLink(client)
        except (aiomqtt.MqttError, OSError) as exc:
            raise UplinkConnectionError(_describe(exc)) from exc


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the TLS handshake fails: paho leaves the socket it wrapped to the
    garbage collector then (one unclosed socket per refused attempt, forever retrying)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _tls_context(settings: MqttSettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file is not None else None
        )
        if settings.cert_file is not None and settings.key_file is not None:
            context.load_cert_chain(settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"mqtt: cannot load the TLS files: {exc}") from exc
    if settings.tls_insecure:
        context.check_hostname = False
    context.sslsocket_class = _ClosingSSLSocket
    return context


# -- the uplink -----------------------------------------------------------------------------


@dataclass(slots=True)
class UplinkStats:
    connected: bool = False
    connects: int = 0
    connection_failures: int = 0
    """Connection attempts that failed and connections that were lost."""
    batches_sent: int = 0
    readings_sent: int = 0
    """Readings acknowledged by the broker (resends included)."""
    refused: int = 0
    """Publishes the broker refused with a failure reason code."""
    stalls: int = 0
    corrupt: int = 0
    """Outbox rows that no longer made a valid reading and were removed."""


def _first(group: BaseExceptionGroup[GatewayError]) -> GatewayError:
    for exc in group.exceptions:
        return _first(exc) if isinstance(exc, BaseExceptionGroup) else exc
    raise AssertionError("empty exception group")  # pragma: no cover


class Uplink:
    """Drains ``outbox`` to the broker until cancelled. See the module docstring."""

    def __init__(
        self,
        *,
        site: str,
        gateway: str,
        outbox: AsyncOutbox,
        mqtt: MqttSettings,
        status: StatusSettings | None = None,
        connector: Connector | None = None,
        health: HealthSource | None = None,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        companions: Sequence[Companion] = (),
    ) -> None:
        self._site = topics.check_id(site, "site")
        self._gateway = topics.check_id(gateway, "gateway")
        self._outbox = outbox
        self._mqtt = mqtt
        self._status = status if status is not None else StatusSettings()
        self._connector: Connector = (
            connector
            if connector is not None
            else AiomqttConnector(mqtt, client_id=client_id(site, gateway))
        )
        self._health = health if health is not None else NoDevices()
        self._companions = tuple(companions)
        self._clock = clock
        self._backoff = Backoff(mqtt.reconnect_min_s, mqtt.reconnect_max_s, rng)
        self._started = clock()
        self._versions = versions()
        self.readings_topic = topics.readings(site, gateway)
        self.status_topic = topics.status(site, gateway)
        self.stats = UplinkStats()
        self._where = f"{mqtt.host}:{mqtt.port}"
        # aiomqtt bounds TCP connect and CONNACK itself; this is the hard outer limit.
        self._connect_deadline_s = mqtt.connect_timeout_s + 5.0

    # -- status messages ------------------------------------------------------------------

    def status(self, state: GatewayState = GatewayState.ONLINE) -> Status:
        """The status message as of now."""
        now = self._clock()
        outbox = self._outbox.stats()
        return Status(
            site=self._site,
            gateway=self._gateway,
            state=state,
            time=now,
            uptime_s=max((now - self._started).total_seconds(), 0.0),
            devices=tuple(self._health.device_states())[:_MAX_STATUS_DEVICES],
            outbox_depth=outbox.depth,
            dropped=self._health.dropped + outbox.lost,
            decode_errors=self._health.decode_errors,
            versions=self._versions,
        )

    def will(self) -> Will:
        offline = Status(site=self._site, gateway=self._gateway, state=GatewayState.OFFLINE)
        return Will(self.status_topic, offline.to_json())

    # -- the reconnect loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Connect, drain and reconnect until cancelled. Never returns."""
        loop = asyncio.get_running_loop()
        offline_since = loop.time()
        attempts = 0
        last_cause: str | None = None
        reminded = offline_since
        stopping = False
        while True:
            attempts += 1
            connected_at: float | None = None
            cause = "connection closed"
            try:
                async with contextlib.AsyncExitStack() as stack:
                    try:
                        async with asyncio.timeout(self._connect_deadline_s):
                            link = await stack.enter_async_context(
                                self._connector.connect(self.will())
                            )
                    except TimeoutError:
                        raise UplinkConnectionError(
                            f"no connection within {self._connect_deadline_s:g} s"
                        ) from None
                    connected_at = loop.time()
                    self._on_connected(connected_at - offline_since, attempts)
                    attempts = 0
                    last_cause = None
                    try:
                        await self._serve(link)
                    except asyncio.CancelledError:
                        stopping = True
                        await self._goodbye(link)
                        raise
            except GatewayError as exc:  # UplinkError, or OutboxError from the sender
                if stopping:
                    # Leaving the connection failed while we were being stopped: the
                    # cancellation must win, or the loop would go on after a stop.
                    raise asyncio.CancelledError from exc
                cause = exc.cause if isinstance(exc, UplinkConnectionError) else str(exc)
            self.stats.connected = False
            self.stats.connection_failures += 1
            now = loop.time()
            if connected_at is not None:
                offline_since = reminded = now
                if now - connected_at >= self._mqtt.reconnect_max_s:
                    self._backoff.reset()
                logger.warning("uplink to %s lost: %s; reconnecting", self._where, cause)
            elif last_cause is None and self.stats.connects == 0 and attempts == 1:
                logger.warning("uplink cannot connect to %s: %s; retrying", self._where, cause)
            elif last_cause is not None and cause != last_cause:
                logger.warning("uplink still offline, now: %s", cause)
            elif now - reminded >= _STILL_OFFLINE_EVERY_S:
                reminded = now
                logger.warning(
                    "uplink offline for %.0f s (%d attempts; last cause: %s; outbox depth %d)",
                    now - offline_since,
                    attempts,
                    cause,
                    self._outbox.depth,
                )
            else:
                logger.debug("uplink attempt %d failed: %s", attempts, cause)
            if connected_at is None:
                last_cause = cause
            await asyncio.sleep(self._backoff.next())

    def _on_connected(self, offline_s: float, attempts: int) -> None:
        self.stats.connected = True
        self.stats.connects += 1
        if self.stats.connects == 1:
            logger.info("uplink connected to %s", self._where)
        else:
            logger.info(
                "uplink reconnected to %s after %.1f s offline (%d attempts)",
                self._where,
                offline_s,
                attempts,
            )

    async def _serve(self, link: MqttLink) -> None:
        await self._ack(link.publish(self.status_topic, self.status().to_json(), retain=True))
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._watch(link), name="uplink-watch")
                tasks.create_task(self._heartbeat(link), name="uplink-heartbeat")
                for number, companion in enumerate(self._companions):
                    tasks.create_task(companion.serve(link), name=f"uplink-companion-{number}")
                # The sender runs in the group's body, not as a task: a failing task then
                # interrupts the body, and Python 3.11's TaskGroup balances the cancel it
                # sends this task (with an idle body it leaves cancelling() at 1).
                await self._send(link, tasks)
        except* GatewayError as group:
            raise _first(group) from None

    async def _goodbye(self, link: MqttLink) -> None:
        try:
            async with asyncio.timeout(min(self._mqtt.ack_timeout_s, _GOODBYE_S)):
                payload = self.status(GatewayState.OFFLINE).to_json()
                await link.publish(self.status_topic, payload, retain=True)
        except (UplinkError, TimeoutError) as exc:
            logger.warning("uplink: offline status not delivered at shutdown: %s", exc)
        else:
            logger.info("uplink stopped; offline status published")

    async def _watch(self, link: MqttLink) -> None:
        raise UplinkConnectionError(await link.closed())

    async def _heartbeat(self, link: MqttLink) -> None:
        while True:
            await asyncio.sleep(self._status.heartbeat_s)
            await self._ack(link.publish(self.status_topic, self.status().to_json(), retain=True))

    async def _ack(self, ack: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self._mqtt.ack_timeout_s):
                await ack
        except TimeoutError:
            self.stats.stalls += 1
            raise UplinkStalledError(self._mqtt.ack_timeout_s) from None
        except PublishRefusedError:
            self.stats.refused += 1
            raise

    # -- the sender -----------------------------------------------------------------------

    async def _send(self, link: MqttLink, tasks: asyncio.TaskGroup) -> None:
        outbox = self._outbox
        size = self._mqtt.batch_size
        slots = asyncio.Semaphore(self._mqtt.max_in_flight)
        cursor = 0  # the last seq handed out on this connection
        draining = outbox.depth > 0
        loop = asyncio.get_running_loop()
        while True:
            await outbox.wait_for_rows(cursor)
            if not draining:
                # Live: give the batch batch_interval_s from the first unsent reading to fill.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(loop.time() + self._mqtt.batch_interval_s):
                        await outbox.wait_for_rows(cursor + size - 1)
            await slots.acquire()
            known = outbox.last_seq
            rows = await outbox.fetch(after=cursor, limit=size, now=self._clock())
            if not rows:  # everything up to `known` was dropped by the full policy
                slots.release()
                cursor = max(cursor, known)
                draining = False
                continue
            cursor = rows[-1].seq
            draining = len(rows) == size
            payload, seqs = await self._render(rows)
            if payload is None:
                slots.release()
                continue
            ack = link.publish(self.readings_topic, payload)
            tasks.create_task(
                self._delivered(ack, seqs, slots), name=f"uplink-ack-{seqs[0]}-{seqs[-1]}"
            )

    async def _delivered(
        self, ack: Awaitable[None], seqs: Sequence[int], slots: asyncio.Semaphore
    ) -> None:
        await self._ack(ack)
        slots.release()
        await self._outbox.delete(seqs)
        self.stats.batches_sent += 1
        self.stats.readings_sent += len(seqs)

    async def _render(self, rows: Sequence[Stored]) -> tuple[bytes | None, list[int]]:
        """The batch's JSON and seqs, built on a worker thread. Rows that no longer make a
        valid reading (damaged on disk, or refused by a newer wire model) are removed and
        counted, never retried: one bad row must not block the outbox."""
        payload, seqs, corrupt = await asyncio.to_thread(self._build, rows, self._clock())
        if corrupt:
            self.stats.corrupt += len(corrupt)
            logger.error("removed outbox rows that are no longer valid readings: %s", corrupt[:20])
            await self._outbox.delete(corrupt)
        return payload, seqs

    def _build(
        self, rows: Sequence[Stored], sent: datetime
    ) -> tuple[bytes | None, list[int], list[int]]:
        readings: list[Reading] = []
        corrupt: list[int] = []
        for row in rows:
            try:
                readings.append(row.reading(self._gateway))
            except ValidationError:
                corrupt.append(row.seq)
        if not readings:
            return None, [], corrupt
        batch = ReadingBatch(
            site=self._site, gateway=self._gateway, sent=sent, readings=tuple(readings)
        )
        return batch.to_json(), [reading.seq for reading in readings], corrupt
