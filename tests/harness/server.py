"""The life of a local test server: ports, config, start with readiness, stop, kill, restart.

:class:`LocalServer` holds what Mosquitto and InfluxDB have in common; each subclass says how
to pick its ports, write its config, build its command line and probe it once.
:class:`ServerFactory` backs the ``fresh_*`` fixtures: it makes servers on demand and stops all
of them when it is closed.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from tests.harness.errors import (
    PollTimeoutError,
    PortInUseError,
    ServerStartError,
    ServerStateError,
)
from tests.harness.polling import poll_until
from tests.harness.ports import LOOPBACK, free_port, listens_on
from tests.harness.process import ChildProcess, read_log, tail

__all__ = ["LocalServer", "PortPicker", "ServerFactory"]

logger = logging.getLogger(__name__)

PortPicker = Callable[[], int]
"""Returns a port to try; :func:`tests.harness.ports.free_port` unless a test injects one."""

_BIND_FAILED = "address already in use"  # EADDRINUSE as both mosquitto and Go print it


class _ExitedError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class LocalServer(abc.ABC):
    """A server process on loopback ports with its config, data and log in ``workdir``.

    ``start()`` picks free ports on first use and retries on new ones if the bind loses a race;
    after one successful start the ports are fixed, so ``stop()``/``kill()`` followed by
    ``start()`` (or ``restart()``) brings the server back on the same port with the same data.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        workdir: Path,
        *,
        binary: Path,
        start_timeout: float,
        stop_timeout: float,
        port_attempts: int,
        port_picker: PortPicker = free_port,
    ) -> None:
        if port_attempts < 1:
            raise ValueError("port_attempts must be at least 1")
        workdir.mkdir(parents=True, exist_ok=True)
        self._workdir = workdir
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._port_attempts = port_attempts
        self._port_picker = port_picker
        self._ports_fixed = False
        self._child: ChildProcess | None = None
        self.last_start_seconds: float | None = None
        """How long the last successful ``start()`` took, readiness included."""

    # -- what a subclass provides ---------------------------------------------------------

    @abc.abstractmethod
    def _pick_ports(self, pick: PortPicker) -> None:
        """Choose (new) ports with ``pick`` and remember them."""

    @abc.abstractmethod
    def _listen_ports(self) -> tuple[int, ...]:
        """The ports the process must be listening on before it counts as up."""

    @abc.abstractmethod
    def _write_config(self) -> None:
        """Write the config files for the current ports into the work folder."""

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The command line, starting with the binary."""

    @abc.abstractmethod
    def _answers(self) -> bool:
        """One quick protocol-level probe: does the server answer requests yet?"""

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _release(self) -> None:  # noqa: B027 (a hook; most servers hold nothing)
        """Drop whatever talks to the running process (called whenever it goes away)."""

    # -- public face ----------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def log_path(self) -> Path:
        return self._workdir / f"{self.kind}.log"

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.returncode is None

    @property
    def pid(self) -> int:
        if self._child is None:
            raise ServerStateError(f"{self.kind} is not running")
        return self._child.pid

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log (stdout and stderr included)."""
        return tail(self.log_path, lines)

    def start(self) -> None:
        """Start the server and return once it answers; raise :class:`ServerStartError` if not."""
        if self._child is not None:
            if self._child.returncode is None:
                raise ServerStateError(f"{self.kind} is already running (pid {self._child.pid})")
            self._child = None  # it died on its own; start it again
        began = time.monotonic()
        if self._ports_fixed:
            self._start_once()
        else:
            self._start_on_fresh_ports()
            self._ports_fixed = True
        self.last_start_seconds = time.monotonic() - began
        logger.info(
            "%s started pid=%d ports=%s in %.3f s",
            self.kind,
            self.pid,
            self._listen_ports(),
            self.last_start_seconds,
        )

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL if it does not exit in time. Return the exit status, or
        ``None`` if it was not running. Safe to call more than once."""
        child, self._child = self._child, None
        self._release()
        if child is None:
            return None
        return child.terminate(self._stop_timeout)

    def kill(self) -> int | None:
        """SIGKILL: a crash, no chance to save anything. Return the exit status."""
        child, self._child = self._child, None
        self._release()
        if child is None:
            return None
        return child.kill()

    def restart(self) -> None:
        """Stop gracefully and start again on the same ports with the same data."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- machinery ------------------------------------------------------------------------

    def _start_on_fresh_ports(self) -> None:
        for attempt in range(1, self._port_attempts + 1):
            self._pick_ports(self._port_picker)
            try:
                self._start_once()
            except PortInUseError:
                if attempt == self._port_attempts:
                    raise
                logger.warning(
                    "%s lost a race for ports %s, trying new ones (attempt %d)",
                    self.kind,
                    self._listen_ports(),
                    attempt,
                )
            else:
                return

    def _start_once(self) -> None:
        self._write_config()
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        child = ChildProcess(
            self._command(), output=self.log_path, cwd=self._workdir, env=self._environment()
        )
        self._child = child

        def ready() -> bool | None:
            # Ours must hold the ports (not a stranger that took them) and answer on them.
            if child.returncode is not None:
                raise _ExitedError(child.returncode)
            if not all(listens_on(child.pid, port) for port in self._listen_ports()):
                return None
            return True if self._answers() else None

        try:
            poll_until(
                ready,
                within=self._start_timeout,
                what=f"{self.kind} answering on {self.host} ports {self._listen_ports()}",
            )
        except _ExitedError as exc:
            self._child = None
            self._release()
            fresh_log = read_log(self.log_path, start=log_start)
            error = PortInUseError if _BIND_FAILED in fresh_log.lower() else ServerStartError
            raise error(
                self.kind, f"exited with status {exc.code}", self.log_path, self.log_tail()
            ) from None
        except PollTimeoutError as exc:
            self.kill()
            raise ServerStartError(self.kind, str(exc), self.log_path, self.log_tail()) from exc
        except BaseException:
            self.kill()
            raise


ServerT = TypeVar("ServerT", bound=LocalServer)
OptionsT = TypeVar("OptionsT")


class ServerFactory(Generic[ServerT, OptionsT]):
    """Makes servers in fresh folders on demand and stops every one of them on ``close()``.

    ``make(workdir, options)`` builds an unstarted server; ``new_workdir()`` returns an empty
    folder (the fixtures pass ``tmp_path_factory.mktemp``).
    """

    def __init__(
        self, make: Callable[[Path, OptionsT | None], ServerT], new_workdir: Callable[[], Path]
    ) -> None:
        self._make = make
        self._new_workdir = new_workdir
        self._stack = contextlib.ExitStack()

    def __call__(self, options: OptionsT | None = None, *, start: bool = True) -> ServerT:
        server = self._make(self._new_workdir(), options)
        self._stack.callback(server.stop)
        if start:
            server.start()
        return server

    def close(self) -> None:
        """Stop every server made here (each one is tried even if another fails)."""
        self._stack.close()
