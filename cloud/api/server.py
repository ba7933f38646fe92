"""Running the API: :class:`ApiServer` (uvicorn on a socket of our own, as an async context)
and :func:`serve`, the whole service behind ``python -m cloud.api serve``.

:class:`ApiServer` binds the socket itself before uvicorn starts, so ``port = 0`` gives a free
port with no race (tests, the demo) and :attr:`ApiServer.url` says which.

:func:`serve` opens the reading store, the accounts and sessions database, the audit log and
the site files, refuses to start without an enabled administrator (outside the demo:
:class:`~cloud.api.errors.NoAdminError`, exit status 2 in ``__main__``), and runs, in one
``TaskGroup``, uvicorn, a reload of the site files every ``directory_refresh_s`` and a purge
of expired sessions. SIGTERM or SIGINT stops uvicorn (it finishes the requests in hand), and
the rest stops with it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from types import TracebackType
from typing import Self

import uvicorn
from fastapi import FastAPI

from cloud.api.accounts import SqliteAccountStore, ensure_admin
from cloud.api.alertdesk import AlertDesk
from cloud.api.app import create_app
from cloud.api.audit import SqliteAuditLog
from cloud.api.clock import Clock, SystemClock
from cloud.api.devices import DeviceStatusBoard, DeviceStatusSource
from cloud.api.directory import SiteFileDirectory
from cloud.api.errors import ApiError, DirectoryError, ServerStartError
from cloud.api.sessions import SessionStore, SqliteSessionStore
from cloud.api.settings import ApiSettings, SessionSettings
from cloud.settings import CloudSettings
from cloud.store import open_store

__all__ = ["ApiServer", "serve"]

logger = logging.getLogger(__name__)

_SESSION_PURGE_S = 600.0
_STARTUP_TIMEOUT_S = 30.0


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket whose ``proto`` is ``IPPROTO_TCP``: asyncio sets ``TCP_NODELAY`` on
    accepted connections only then (``socket.create_server`` leaves ``proto`` 0, and every
    response then waits ~40 ms for a delayed ACK between its header and body writes)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: it would replace the process's handlers and
    raise the signal again once stopped (killing the process with SIGTERM's default action).
    Whoever runs the server decides what a signal does (:func:`serve`: stop)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """uvicorn serving ``app`` on ``settings.host``/``settings.port`` while the context is
    open. It installs no signal handlers (several services may share the process)."""

    def __init__(self, app: FastAPI, settings: ApiSettings) -> None:
        self._app = app
        self._settings = settings
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._stack = AsyncExitStack()

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket."""
        if self._socket is None:
            raise ServerStartError("the server is not running")
        host, port = self._socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def stop(self) -> None:
        """Ask uvicorn to stop (it finishes the requests in hand); asked again, it stops at
        once."""
        if self._server is not None:
            if self._server.should_exit:
                self._server.force_exit = True
            self._server.should_exit = True

    async def wait(self) -> None:
        """Until uvicorn has stopped."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> Self:
        settings = self._settings
        self._socket = _listening_socket(settings.host, settings.port)
        config = uvicorn.Config(
            self._app,
            log_config=None,
            lifespan="off",
            http="h11",
            ws="none",
            proxy_headers=bool(settings.forwarded_allow_ips),
            forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
        self._server = server = _Uvicorn(config)
        try:
            group = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._task = group.create_task(server.serve(sockets=[self._socket]), name="api-http")
            deadline = time.monotonic() + _STARTUP_TIMEOUT_S
            while not server.started:
                if self._task.done():
                    raise ServerStartError("uvicorn stopped while starting")
                if time.monotonic() > deadline:
                    raise ServerStartError(f"uvicorn did not start in {_STARTUP_TIMEOUT_S} s")
                await asyncio.sleep(0.01)
        except BaseException:
            self.stop()
            try:
                await self._stack.aclose()
            except Exception as failure:  # the server task's own error
                raise ServerStartError(f"uvicorn failed to start: {failure!r}") from failure
            finally:
                self._socket.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        try:
            await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            if self._socket is not None:
                self._socket.close()


async def _refresh_directory(directory: SiteFileDirectory, every_s: float) -> None:
    failing = False
    while True:
        await asyncio.sleep(every_s)
        try:
            await directory.refresh()
        except DirectoryError as exc:
            if not failing:  # log once per outage, and once when it recovers
                logger.error("site files invalid, keeping the previous ones: %s", exc)
            failing = True
        else:
            if failing:
                logger.info("site files readable again")
            failing = False


async def _purge_sessions(sessions: SessionStore, settings: SessionSettings, clock: Clock) -> None:
    while True:
        try:
            purged = await sessions.purge(now=clock.now(), settings=settings)
        except ApiError as exc:
            logger.warning("session purge failed: %s", exc)
        else:
            if purged:
                logger.info("expired sessions removed count=%d", purged)
        await asyncio.sleep(_SESSION_PURGE_S)


async def serve(
    api: ApiSettings,
    cloud: CloudSettings,
    *,
    devices: DeviceStatusSource | None = None,
    clock: Clock | None = None,
    ready: Callable[[str], None] | None = None,
    alerts: AlertDesk | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the API until uvicorn stops (SIGTERM, SIGINT; or, when ``stop`` is given, until
    it is set: the caller then owns the signals). ``ready`` is called with the URL once it
    listens; ``alerts`` is the alert service of this process, if any. Raises
    :class:`DirectoryError` (site files), :class:`~cloud.api.errors.NoAdminError`,
    :class:`~cloud.api.errors.StorageError`."""
    clock = clock if clock is not None else SystemClock()
    directory = SiteFileDirectory(api.sites)
    await directory.refresh()
    if not api.sites:
        logger.warning("no site files configured: the API knows no residents")
    board = devices if devices is not None else DeviceStatusBoard()
    async with (
        open_store(cloud.store) as store,
        SqliteAccountStore(api.database) as accounts,
        SqliteSessionStore(api.database) as sessions,
        SqliteAuditLog(api.audit_database) as audit,
    ):
        await ensure_admin(accounts, demo=cloud.demo)
        app = create_app(
            api,
            store=store,
            accounts=accounts,
            sessions=sessions,
            audit=audit,
            directory=directory,
            devices=board,
            clock=clock,
            alerts=alerts,
        )
        async with ApiServer(app, api) as server, asyncio.TaskGroup() as group:
            loop = asyncio.get_running_loop()
            background: list[asyncio.Task[None]] = []
            if stop is None:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, server.stop)
            else:

                async def stop_when_told() -> None:
                    await stop.wait()
                    server.stop()

                background.append(group.create_task(stop_when_told(), name="api-stop"))
            logger.info("api listening url=%s", server.url)
            if ready is not None:
                ready(server.url)
            background += [
                group.create_task(
                    _refresh_directory(directory, api.directory_refresh_s), name="api-directory"
                ),
                group.create_task(
                    _purge_sessions(sessions, api.session, clock), name="api-sessions"
                ),
            ]
            try:
                await server.wait()
            finally:
                for task in background:
                    task.cancel()
    logger.info("api stopped")
