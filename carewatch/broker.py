"""The demo's own MQTT broker: amqtt inside the demo process, on 127.0.0.1 and a free port.

amqtt is the zero-install broker (a Python package, no server to install), with limits that
are fine for the demo and never for production: it speaks MQTT 3.1.1 only (an MQTT v5
CONNECT is refused with "unacceptable protocol version"), it has no shared subscriptions,
and it keeps nothing across its own crash (unacknowledged messages are not redelivered).

The gateway's uplink, the cloud's ingestor and the alert service all connect with MQTT v5
today, so they cannot use amqtt until their settings gain an MQTT 3.1.1 fallback:
:func:`services_speak_mqtt311` checks for it (a ``protocol`` field of
``vitals.broker.BrokerSettings`` that accepts ``"3.1.1"``). Until then the demo runs
Mosquitto instead when its binary is installed (:func:`find_mosquitto`), and says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from carewatch.configs import LOOPBACK, MQTT_PROTOCOL_311
from carewatch.errors import BrokerUnavailableError

__all__ = ["EmbeddedBroker", "amqtt_installed", "find_mosquitto", "services_speak_mqtt311"]

logger = logging.getLogger(__name__)

_SEARCH_DIRS = (Path("/usr/sbin"), Path("/usr/bin"))
"""Debian installs mosquitto in /usr/sbin, which is not on a normal user's PATH."""


def services_speak_mqtt311() -> bool:
    """Whether the services' broker settings can ask for MQTT 3.1.1 (``protocol =
    "3.1.1"``), which the embedded amqtt broker needs."""
    from pydantic import ValidationError  # noqa: PLC0415 (kept with its only use)

    from vitals.broker import BrokerSettings  # noqa: PLC0415

    if "protocol" not in BrokerSettings.model_fields:
        return False
    try:
        BrokerSettings.model_validate({"protocol": MQTT_PROTOCOL_311})
    except ValidationError:
        return False
    return True


def amqtt_installed() -> bool:
    """Whether the ``amqtt`` package (the ``demo`` extra) can be imported."""
    try:
        import amqtt  # type: ignore[import-untyped]  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def find_mosquitto() -> Path | None:
    """The ``mosquitto`` executable on PATH, in /usr/sbin or /usr/bin; None if absent."""
    found = shutil.which("mosquitto")
    if found is not None:
        return Path(found)
    for directory in _SEARCH_DIRS:
        candidate = directory / "mosquitto"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class EmbeddedBroker:
    """amqtt serving MQTT 3.1.1 on ``host`` (127.0.0.1) and ``port`` (0: a free one) while
    the context is open. The listening socket is ours (amqtt's "external" listener takes
    each accepted connection), so a free port is picked without a race and :attr:`port`
    says which. Anonymous clients are allowed: it listens on loopback only."""

    def __init__(self, host: str = LOOPBACK, port: int = 0) -> None:
        self._host = host
        self._port = port
        self._broker: Any = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise BrokerUnavailableError("the embedded broker is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"mqtt://{self._host}:{self.port}"

    async def __aenter__(self) -> Self:
        try:
            from amqtt.adapters import (  # type: ignore[import-untyped]  # noqa: PLC0415
                StreamReaderAdapter,
                StreamWriterAdapter,
            )
            from amqtt.broker import Broker  # type: ignore[import-untyped]  # noqa: PLC0415
        except ImportError as exc:
            raise BrokerUnavailableError(
                "the embedded broker needs the amqtt package: pip install -e '.[demo]'"
            ) from exc
        broker = Broker(
            {
                "listeners": {"default": {"type": "external", "bind": f"{self._host}:0"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await broker.start()
        self._broker = broker

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await broker.external_connected(
                    StreamReaderAdapter(reader), StreamWriterAdapter(writer), "default"
                )
            finally:
                self._connections.discard(task)
                writer.close()

        try:
            self._server = await asyncio.start_server(connected, self._host, self._port)
        except OSError:
            await broker.shutdown()
            raise
        logger.info("embedded broker listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        try:
            if self._broker is not None:
                await self._broker.shutdown()
        finally:
            connections = list(self._connections)
            for task in connections:
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            if server is not None:
                await server.wait_closed()
            self._broker = None
        logger.info("embedded broker stopped")
