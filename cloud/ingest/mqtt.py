"""The ingestor's MQTT connection: paho-mqtt with manual acknowledgements.

paho is used directly because acknowledging after the write is the whole point, and only
paho has it (``manual_ack=True`` and ``client.ack(mid, qos)``; aiomqtt 2.x has no public
manual ack). Measured on the development machine draining QoS 1: paho ~30k msg/s (~33k/s with
manual acks), aiomqtt ~13k msg/s (~9k/s with manual acks through its internals).

Threads: paho's network loop runs in its own thread (``loop_start()``). Its callbacks do
nothing slow: a message becomes a :class:`~cloud.ingest.tracker.Delivery` handed to the loop
through the bounded :class:`~cloud.ingest.inbox.Inbox`; CONNACK, SUBACK, PUBACK and the
disconnect resolve futures on the loop with ``call_soon_threadsafe``. Acknowledgements and
dead-letter publishes are called from the loop (paho queues them; its thread writes them, in
the order queued).

Two clients per connection: the *consumer* (subscribes, receives, acknowledges) and the
*publisher* (``{client_id}-out``, clean session; it publishes dead letters). Dead letters are
held until their PUBACK, and that PUBACK must never queue behind a consumer thread waiting for
room in the inbox (which would wait for those very dead letters): hence their own connection
and their own network thread. The end of either connection ends both.

Per connection everything is new: new paho clients (``reconnect_on_failure=False``, so
reconnecting is the caller's loop with random, growing, capped delays, never paho's), the
futures, the subscription (sent on every connect: Mosquitto 2.0.11 keeps a persistent
session's plain subscriptions across its own restart but not its shared ones). The session is
persistent (``clean_start=False``, a long session expiry) under a stable client id, so the
broker keeps the subscription and the unacknowledged messages while we are away and sends them
again on the next connection. A message is acknowledged only on the connection it came on;
those of a connection that ended are let go and come again.

CONNECT carries Receive Maximum: the broker should send at most that many unacknowledged
messages (Mosquitto takes it as the client's in-flight limit in place of
``max_inflight_messages``). Mosquitto 2.0.11 honours it only until the first PUBACK, so the
bound that holds is the inbox's: when it is full paho's thread waits (TCP back-pressure), for
at most half the keepalive; then the connection is given up (no later message may be
acknowledged past one that was not taken) and everything unacknowledged comes again on the
next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud.errors import MqttConnectionError, MqttRefusedError
from cloud.ingest.inbox import Inbox
from cloud.ingest.tracker import Delivery
from cloud.settings import MqttSettings

__all__ = ["MqttLink"]

logger = logging.getLogger(__name__)
_PAHO_LOGGER = logging.getLogger(f"{__name__}.paho")


class _PahoNoise(logging.Filter):
    """paho's network thread logs "Client is not connected" at ERROR once more after every
    clean disconnect (its loop runs once after the socket is closed): not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_PAHO_LOGGER.addFilter(_PahoNoise())

PublishDone = Callable[[bool], None]
"""Called on the loop when a publish is acknowledged (True) or cannot be (False)."""


class MqttLink:
    """One broker connection at a time; :meth:`connect` makes a new one."""

    def __init__(
        self,
        settings: MqttSettings,
        inbox: Inbox,
        loop: asyncio.AbstractEventLoop,
        *,
        topic_filter: str,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._loop = loop
        self._topic_filter = topic_filter
        self._client: paho.Client | None = None
        self._publisher: paho.Client | None = None
        self._lost: asyncio.Future[str] | None = None
        self._publishes: dict[int, PublishDone] = {}
        self._abandoned: paho.Client | None = None
        """Set (by paho's thread) when a message of that connection could not be taken."""

    @property
    def current(self) -> object | None:
        """The live connection (compare with :attr:`Delivery.connection`), or None."""
        return self._client

    @property
    def endpoint(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    # -- connecting -----------------------------------------------------------------------

    async def connect(self) -> bool:
        """Connect both clients (wait for their CONNACKs), subscribe, wait for the SUBACK.
        Return whether the broker had our session. Raises MqttConnectionError /
        MqttRefusedError; the caller bounds the time and calls :meth:`drop` afterwards in
        every case."""
        if self._client is not None or self._publisher is not None:
            raise RuntimeError("connect() while connected: drop() first")
        s = self._settings
        loop = self._loop
        lost: asyncio.Future[str] = loop.create_future()
        self._lost = lost

        # The publisher first: dead letters must have somewhere to go before messages come.
        publisher = self._new_client(f"{s.client_id}-out", manual_ack=False)
        self._publisher = publisher
        pub_connack = self._watch(publisher, lost, "publisher")

        def on_publish(_c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
            self._call(self._published, publisher, mid, not reason.is_failure)

        publisher.on_publish = on_publish
        await self._open(publisher, clean_start=True, session_expiry_s=0, receive_maximum=None)
        reason, _ = await pub_connack
        if reason.is_failure:
            raise MqttRefusedError("connection", reason.value, str(reason))

        consumer = self._new_client(s.client_id, manual_ack=True)
        self._client = consumer
        connack = self._watch(consumer, lost, "consumer")
        suback: asyncio.Future[list[ReasonCode]] = loop.create_future()

        def on_subscribe(
            _c: paho.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any
        ) -> None:
            self._resolve(suback, list(reasons))

        def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
            if self._abandoned is consumer:
                return  # a message was not taken: nothing after it may be acknowledged
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = repr(message._topic)
            delivery = Delivery(
                consumer,
                message.mid,
                message.qos,
                topic,
                bytes(message.payload),
                received_ns=time.time_ns(),
            )
            if not self._inbox.put_threadsafe(
                delivery, lambda: self._client is consumer, max_wait_s=s.keepalive_s / 2
            ):
                # Not taken (the window stayed full, or we are letting go of this
                # connection): acknowledging later messages would skip it, so take none and
                # reconnect; the broker sends it and everything after it again.
                self._abandoned = consumer
                self._call(self._overflowed, consumer)

        consumer.on_subscribe = on_subscribe
        consumer.on_message = on_message
        await self._open(
            consumer,
            clean_start=False,
            session_expiry_s=s.session_expiry_s,
            receive_maximum=s.receive_maximum,
        )
        reason, session_present = await connack
        if reason.is_failure:
            raise MqttRefusedError("connection", reason.value, str(reason))
        lost.add_done_callback(lambda _f: suback.cancel())
        result, _mid = consumer.subscribe(self._topic_filter, options=SubscribeOptions(qos=1))
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttConnectionError(f"subscribe failed: {paho.error_string(result)}")
        try:
            codes = await suback
        except asyncio.CancelledError:
            if lost.done():
                raise MqttConnectionError(lost.result()) from None
            raise
        for code in codes:
            if code.is_failure:
                raise MqttRefusedError("subscription", code.value, str(code))
        return session_present

    def _watch(
        self, client: paho.Client, lost: asyncio.Future[str], role: str
    ) -> asyncio.Future[tuple[ReasonCode, bool]]:
        """CONNACK and disconnect callbacks of ``client``; the end of either connection is
        the end of the link."""
        connack: asyncio.Future[tuple[ReasonCode, bool]] = self._loop.create_future()

        def on_connect(_c: paho.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
            self._resolve(connack, (reason, bool(getattr(flags, "session_present", False))))

        def on_disconnect(
            _c: paho.Client, _u: Any, _flags: Any, reason: ReasonCode, _p: Any
        ) -> None:
            cause = f"{role} disconnected: {reason}"
            self._fail(connack, MqttConnectionError(cause))
            self._resolve(lost, cause)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        return connack

    async def _open(
        self,
        client: paho.Client,
        *,
        clean_start: bool,
        session_expiry_s: int,
        receive_maximum: int | None,
    ) -> None:
        s = self._settings
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry_s
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        try:
            await asyncio.to_thread(
                client.connect,
                s.host,
                s.port,
                keepalive=s.keepalive_s,
                clean_start=clean_start,
                properties=properties,
            )
        except (OSError, ValueError) as exc:
            raise MqttConnectionError(f"cannot connect to {self.endpoint}: {exc!r}") from exc
        client.loop_start()

    async def wait_lost(self) -> str:
        """Wait until the connection ends; return why."""
        if self._lost is None:
            raise RuntimeError("not connected")
        return await self._lost

    async def drop(self) -> None:
        """End the connection (a clean DISCONNECT if it is up, after the acknowledgements
        already queued) and stop paho's thread. Publishes not yet acknowledged report
        failure; messages of this connection are let go (the session keeps them)."""
        clients = [c for c in (self._client, self._publisher) if c is not None]
        self._client = self._publisher = None
        self._lost = None
        self._abandoned = None
        publishes, self._publishes = self._publishes, {}
        for done in publishes.values():
            done(False)
        for client in clients:
            client.disconnect()
        for client in clients:
            await asyncio.to_thread(client.loop_stop)

    def _new_client(self, client_id: str, *, manual_ack: bool) -> paho.Client:
        s = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            manual_ack=manual_ack,
            reconnect_on_failure=False,
        )
        client.enable_logger(_PAHO_LOGGER)
        client.connect_timeout = s.connect_timeout_s
        # Dead letters in flight are bounded by the inbox window (each holds its message).
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        if s.username is not None:
            password = s.password.get_secret_value() if s.password is not None else None
            client.username_pw_set(s.username, password)
        if s.tls:
            try:
                client.tls_set(
                    ca_certs=str(s.ca_file) if s.ca_file else None,
                    certfile=str(s.cert_file) if s.cert_file else None,
                    keyfile=str(s.key_file) if s.key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise MqttConnectionError(f"TLS setup failed: {exc!r}") from exc
            client.tls_insecure_set(s.tls_insecure)
        return client

    # -- acknowledging and publishing (on the loop) ---------------------------------------

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge ``delivery`` if its connection is the live one; False if it is not
        (the broker will send it again)."""
        client = self._client
        if client is None or delivery.connection is not client:
            return False
        if delivery.qos > 0:
            client.ack(delivery.mid, delivery.qos)
        return True

    def publish(self, topic: str, payload: bytes, done: PublishDone) -> None:
        """Publish at QoS 1 on the publisher connection; ``done`` is called on the loop with
        the outcome."""
        client = self._publisher
        if client is None:
            self._loop.call_soon(done, False)
            return
        info = client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            logger.debug("publish to %s not sent: %s", topic, paho.error_string(info.rc))
            self._loop.call_soon(done, False)
            return
        self._publishes[info.mid] = done

    def _overflowed(self, client: paho.Client) -> None:
        lost = self._lost
        if client is self._client and lost is not None and not lost.done():
            lost.set_result(
                f"in-flight window of {self._inbox.capacity} messages full for "
                f"{self._settings.keepalive_s / 2:g} s (the broker sends beyond Receive Maximum)"
            )

    def _published(self, client: paho.Client, mid: int, ok: bool) -> None:
        if client is not self._publisher:
            return
        done = self._publishes.pop(mid, None)
        if done is not None:
            done(ok)

    # -- from paho's thread ---------------------------------------------------------------

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
            self._loop.call_soon_threadsafe(callback, *args)

    def _resolve(self, future: asyncio.Future[Any], value: object) -> None:
        def settle() -> None:
            if not future.done():
                future.set_result(value)

        self._call(settle)

    def _fail(self, future: asyncio.Future[Any], error: BaseException) -> None:
        def settle() -> None:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: nobody may be waiting any more

        self._call(settle)
