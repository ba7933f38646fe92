"""The ingestor's MQTT connection: paho-mqtt with manual acknowledgements.

paho is used directly because acknowledging after the write is the whole point, and only
paho has it (``manual_ack=True`` and ``client.ack(mid, qos)``; aiomqtt 2.x has no public
manual ack). Measured on the development machine draining QoS 1: paho ~30k msg/s (~33k/s with
manual acks), aiomqtt ~13k msg/s (~9k/s with manual acks through its internals).

No threads: paho is driven by the event loop, the way aiomqtt drives it (paho's "external
event loop" interface): the socket's readiness calls ``loop_read``/``loop_write`` (registered
with ``add_reader``/``add_writer``), a timer calls ``loop_misc`` for the keepalive. So a
message goes from the socket to the inbox in the same callback, and an acknowledgement is
written at the loop's next turn together with the others queued meanwhile: no hand-over
between threads, no wake-up pipe per message, no fight for the GIL. (Measured on the
development machine with 5-reading messages: the threaded version spent ~170 µs of CPU per
message, most of it in the hand-over.) Only the blocking TCP/TLS connect runs in a worker
thread, before the socket is handed to the loop.

Two clients per connection: the *consumer* (subscribes, receives, acknowledges) and the
*publisher* (``{client_id}-out``, clean session; it publishes dead letters). Dead letters are
held until their PUBACK, and that PUBACK must never queue behind messages the consumer has
stopped reading (for lack of room, the room those very dead letters hold): hence their own
connection and socket. The end of either connection ends both.

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
bound that holds is the inbox's: when it is full the link stops reading the socket (TCP
back-pressure) until a message is finished. Not reading also means not reading PINGRESP, so
a pause is capped at half the keepalive: then the connection is given up and everything
unacknowledged comes again on the next one.
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

_READ_BURST = 256
"""Packets read in one go before the loop gets a turn (writes, timers, the pipeline)."""
_MISC_EVERY_S = 1.0
_CLOSE_WITHIN_S = 2.0


class _Driver:
    """Drives one paho client from the event loop: socket readiness calls ``read`` (the
    caller's) and ``loop_write``, a timer ``loop_misc``. Created once the client's socket
    is connected; :meth:`stop` takes everything off the loop."""

    def __init__(
        self,
        client: paho.Client,
        loop: asyncio.AbstractEventLoop,
        read: Callable[[], object],
    ) -> None:
        sock = client.socket()
        if sock is None:
            raise MqttConnectionError("the connection closed while it was being opened")
        self.client = client
        self._loop = loop
        self._sock = sock
        self._read = read
        self._reading = False
        self._writing = False
        self.closed = asyncio.Event()
        client.on_socket_register_write = lambda _c, _u, _s: self._want_write(True)
        client.on_socket_unregister_write = lambda _c, _u, _s: self._want_write(False)
        client.on_socket_close = lambda _c, _u, _s: self._on_close()
        self.resume()
        self._want_write(client.want_write())
        self._misc: asyncio.TimerHandle | None = loop.call_later(_MISC_EVERY_S, self._tick)

    def pause(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._sock)

    def resume(self) -> None:
        if not self._reading and not self.closed.is_set():
            self._reading = True
            self._loop.add_reader(self._sock, self._read)

    def pending(self) -> bool:
        """Bytes already read from the socket and decrypted, which select() cannot see."""
        sock = self._sock
        return isinstance(sock, ssl.SSLSocket) and not self.closed.is_set() and sock.pending() > 0

    def _want_write(self, wanted: bool) -> None:
        if wanted and not self._writing and not self.closed.is_set():
            self._writing = True
            self._loop.add_writer(self._sock, self.client.loop_write)
        elif not wanted and self._writing:
            self._writing = False
            self._loop.remove_writer(self._sock)

    def _tick(self) -> None:
        self._misc = None
        if self.client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._misc = self._loop.call_later(_MISC_EVERY_S, self._tick)

    def _on_close(self) -> None:
        # paho calls this just before it closes the socket: take it off the loop first.
        self.pause()
        self._want_write(False)
        self.closed.set()

    def stop(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        self._on_close()


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
        self._drivers: list[_Driver] = []
        self._consumer_driver: _Driver | None = None
        self._lost: asyncio.Future[str] | None = None
        self._publishes: dict[int, PublishDone] = {}
        self._received = 0
        self._paused_too_long: asyncio.TimerHandle | None = None

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
        publisher = self._new_client(f"{s.client_id}-out", manual_ack=False, clean=True)
        self._publisher = publisher
        pub_connack = self._watch(publisher, lost, "publisher")

        def on_publish(_c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
            loop.call_soon(self._published, publisher, mid, not reason.is_failure)

        publisher.on_publish = on_publish
        await self._open(
            publisher,
            publisher.loop_read,
            clean_start=True,
            session_expiry_s=0,
            receive_maximum=None,
        )
        reason, _ = await pub_connack
        if reason.is_failure:
            raise MqttRefusedError("connection", reason.value, str(reason))

        consumer = self._new_client(s.client_id, manual_ack=True, clean=False)
        self._client = consumer
        connack = self._watch(consumer, lost, "consumer")
        suback: asyncio.Future[list[ReasonCode]] = loop.create_future()

        def on_subscribe(
            _c: paho.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any
        ) -> None:
            self._resolve(suback, list(reasons))

        inbox = self._inbox

        def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = repr(message._topic)
            self._received += 1
            inbox.put(
                Delivery(
                    consumer,
                    message.mid,
                    message.qos,
                    topic,
                    bytes(message.payload),
                    received_ns=time.time_ns(),
                )
            )

        consumer.on_subscribe = on_subscribe
        consumer.on_message = on_message
        driver = await self._open(
            consumer,
            lambda: self._read(consumer),
            clean_start=False,
            session_expiry_s=s.session_expiry_s,
            receive_maximum=s.receive_maximum,
        )
        self._consumer_driver = driver
        reason, session_present = await connack
        if reason.is_failure:
            raise MqttRefusedError("connection", reason.value, str(reason))
        lost.add_done_callback(lambda _f: suback.cancel())
        if s.v5:
            result, _mid = consumer.subscribe(self._topic_filter, options=SubscribeOptions(qos=1))
        else:
            result, _mid = consumer.subscribe(self._topic_filter, qos=1)
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
        read: Callable[[], object],
        *,
        clean_start: bool,
        session_expiry_s: int,
        receive_maximum: int | None,
    ) -> _Driver:
        """Open the TCP (TLS) connection in a worker thread (the only blocking part) and
        send CONNECT; from then on the loop drives the client."""
        s = self._settings
        session: dict[str, Any] = {}
        if s.v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = session_expiry_s
            if receive_maximum is not None:
                properties.ReceiveMaximum = receive_maximum
            session = {"clean_start": clean_start, "properties": properties}
        # MQTT 3.1.1: the session flag was given to the client (clean_session); there is no
        # expiry and no Receive Maximum, so the inbox's own bound is the only one.
        try:
            await asyncio.to_thread(
                client.connect, s.host, s.port, keepalive=s.keepalive_s, **session
            )
        except (OSError, ValueError) as exc:
            raise MqttConnectionError(f"cannot connect to {self.endpoint}: {exc!r}") from exc
        driver = _Driver(client, self._loop, read)
        self._drivers.append(driver)
        return driver

    def _read(self, consumer: paho.Client) -> None:
        """Read packets while the inbox has room; stop reading (back-pressure) when not."""
        driver, inbox = self._consumer_driver, self._inbox
        if driver is None or consumer is not self._client or driver.closed.is_set():
            return
        for _ in range(_READ_BURST):
            if not inbox.room:
                self._pause(consumer, driver)
                return
            before = self._received
            if consumer.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # paho reported the disconnect (on_disconnect)
            if self._received == before and not driver.pending():
                return  # nothing more for now: the loop calls again when bytes come
        self._loop.call_soon(self._read, consumer)  # more may be waiting: others first

    def _pause(self, consumer: paho.Client, driver: _Driver) -> None:
        driver.pause()
        self._inbox.when_room(lambda: self._resume(consumer, driver))
        if self._paused_too_long is None:
            self._paused_too_long = self._loop.call_later(
                self._settings.keepalive_s / 2, self._overflowed, consumer
            )

    def _resume(self, consumer: paho.Client, driver: _Driver) -> None:
        if self._paused_too_long is not None:
            self._paused_too_long.cancel()
            self._paused_too_long = None
        if consumer is self._client:
            driver.resume()
            self._loop.call_soon(self._read, consumer)

    async def wait_lost(self) -> str:
        """Wait until the connection ends; return why."""
        if self._lost is None:
            raise RuntimeError("not connected")
        return await self._lost

    async def drop(self) -> None:
        """End the connection (a clean DISCONNECT if it is up, after the acknowledgements
        already queued) and take it off the loop. Publishes not yet acknowledged report
        failure; messages of this connection are let go (the session keeps them)."""
        clients = [c for c in (self._client, self._publisher) if c is not None]
        drivers, self._drivers = self._drivers, []
        self._client = self._publisher = self._consumer_driver = None
        self._lost = None
        self._inbox.cancel_when_room()
        if self._paused_too_long is not None:
            self._paused_too_long.cancel()
            self._paused_too_long = None
        publishes, self._publishes = self._publishes, {}
        for done in publishes.values():
            done(False)
        for client in clients:
            client.disconnect()  # queued behind the acks; paho closes the socket once sent
        if drivers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_WITHIN_S):
                    for driver in drivers:
                        await driver.closed.wait()
        for driver in drivers:
            driver.stop()
            sock = driver.client.socket()
            if sock is not None:  # the broker did not take the DISCONNECT in time
                sock.close()

    def _new_client(self, client_id: str, *, manual_ack: bool, clean: bool) -> paho.Client:
        s = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if s.v5 else paho.MQTTv311,
            clean_session=None if s.v5 else clean,
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
        self._paused_too_long = None
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

    # -- paho's callbacks (on the loop) ---------------------------------------------------

    @staticmethod
    def _resolve(future: asyncio.Future[Any], value: object) -> None:
        if not future.done():
            future.set_result(value)

    @staticmethod
    def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)
            future.exception()  # retrieved: nobody may be waiting any more
