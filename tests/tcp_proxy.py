"""A TCP relay on loopback that a test or benchmark can cut, as a home's internet goes down.

    async with TcpProxy(broker.host, broker.port) as proxy:
        ...  # point the client at proxy.port
        closed = await proxy.cut()  # every connection reset; new ones refused
        ...
        await proxy.restore()       # relaying again, on the same port

While refusing, nothing listens on the port, so a client's connect fails at once with
"connection refused", exactly as when the server itself is down; the port stays bound (by a
socket that does not listen) so that nobody else can take it before :meth:`TcpProxy.restore`.
:meth:`TcpProxy.refuse` refuses new connections and keeps the open ones (put it in front of a
server restart, so that clients see the server's own refusal rather than a connection that is
accepted and then reset); :meth:`TcpProxy.cut` also resets every open connection.

Relaying is byte for byte; each connection is two copying tasks in a task group of its own,
and a connection ends as soon as either side closes or fails. A connection accepted while the
target does not answer is reset at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tests.harness.ports import LOOPBACK

__all__ = ["ProxyStats", "TcpProxy", "TcpProxyError"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_CONNECT_TIMEOUT_S = 5.0


class TcpProxyError(Exception):
    """The proxy was used in a state that does not allow it (e.g. its port before start)."""


@dataclass(slots=True)
class ProxyStats:
    """What the proxy did so far (counters only grow)."""

    accepted: int = 0
    """Connections relayed to the target."""
    reset_at_once: int = 0
    """Connections accepted and reset at once: the target did not answer (or the proxy was
    cut while it connected to the target)."""
    closed_by_cut: int = 0
    """Relayed connections closed by :meth:`TcpProxy.cut`."""
    bytes_up: int = 0
    """Client to target."""
    bytes_down: int = 0
    """Target to client."""


class _Relay:
    """One relayed connection: the client's streams and the target's."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_reader, self.client_writer = client
        self.target_reader, self.target_writer = target

    def abort(self) -> None:
        """Reset both sides at once (no FIN, nothing more delivered)."""
        self.client_writer.transport.abort()
        self.target_writer.transport.abort()


class TcpProxy:
    """Relays connections on ``listen_host:listen_port`` (0: a free port) to the target."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = LOOPBACK,
        listen_port: int = 0,
    ) -> None:
        self._target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._server: asyncio.Server | None = None
        self._placeholder: socket.socket | None = None
        """Holds the port, without listening, while the proxy refuses connections."""
        self._port: int | None = None
        self._relays: set[_Relay] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        """The connection handlers asyncio runs for the server (closing waits for them)."""
        self._started = False
        self._cuts = 0
        self.stats = ProxyStats()

    @property
    def host(self) -> str:
        return self._listen[0]

    @property
    def port(self) -> int:
        if self._port is None:
            raise TcpProxyError("the proxy has no port yet: call start() first")
        return self._port

    @property
    def refusing(self) -> bool:
        return self._started and self._server is None

    @property
    def connections(self) -> int:
        """Connections being relayed now."""
        return len(self._relays)

    async def start(self) -> None:
        if self._started:
            raise TcpProxyError("the proxy is already started")
        self._server = await asyncio.start_server(self._handle, *self._listen)
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._started = True
        logger.info("tcp proxy listening port=%d target=%s:%d", self._port, *self._target)

    async def refuse(self) -> None:
        """Stop listening (new connections are refused); open connections go on."""
        server = self._server
        if server is None:
            return
        placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.close()
        try:
            placeholder.bind((self.host, self.port))
        except OSError:
            placeholder.close()
            raise
        self._server, self._placeholder = None, placeholder
        await server.wait_closed()
        logger.info("tcp proxy refusing port=%d", self.port)

    async def cut(self) -> int:
        """Refuse new connections and reset every relayed one until :meth:`restore`.
        Returns how many connections were reset."""
        await self.refuse()
        self._cuts += 1
        relays, self._relays = list(self._relays), set()
        for relay in relays:
            relay.abort()
        self.stats.closed_by_cut += len(relays)
        await asyncio.sleep(0)  # let the relays see their aborted transports
        logger.info("tcp proxy cut port=%d reset=%d", self.port, len(relays))
        return len(relays)

    async def restore(self) -> None:
        """Listen and relay again, on the same port."""
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is None:
            return
        placeholder.close()
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        logger.info("tcp proxy restored port=%d", self.port)

    async def close(self) -> None:
        """Stop listening, close every connection and wait until their handlers are done."""
        server, self._server = self._server, None
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is not None:
            placeholder.close()
        for relay in list(self._relays):
            relay.abort()
        self._relays.clear()
        if server is not None:
            server.close()
            await server.wait_closed()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=_CONNECT_TIMEOUT_S + 1)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- machinery ------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        cuts = self._cuts
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                target = await asyncio.open_connection(*self._target)
        except (OSError, TimeoutError) as exc:
            logger.info("tcp proxy: target %s:%d unreachable: %s", *self._target, exc)
            self.stats.reset_at_once += 1
            writer.transport.abort()
            return
        if self._cuts != cuts:  # cut while we were connecting
            self.stats.reset_at_once += 1
            target[1].transport.abort()
            writer.transport.abort()
            return
        relay = _Relay((reader, writer), target)
        self._relays.add(relay)
        self.stats.accepted += 1
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pump(relay, up=True), name="tcp-proxy-up")
                group.create_task(self._pump(relay, up=False), name="tcp-proxy-down")
        finally:
            self._relays.discard(relay)
            relay.abort()

    async def _pump(self, relay: _Relay, *, up: bool) -> None:
        source = relay.client_reader if up else relay.target_reader
        sink = relay.target_writer if up else relay.client_writer
        try:
            while data := await source.read(_CHUNK):
                sink.write(data)
                await sink.drain()
                if up:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
        except OSError:
            pass  # a reset or a closed socket ends this connection, nothing more to relay
        # One side is done: end the other direction too (it would otherwise wait forever).
        relay.abort()
        with contextlib.suppress(OSError):
            sink.close()
