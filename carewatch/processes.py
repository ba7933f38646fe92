"""The demo's service processes: spawned with their output in a log file, watched, stopped.

Each child runs in its own session, so a Ctrl-C in the terminal reaches the demo alone, which
then stops the children one by one in reverse order (SIGTERM, then SIGKILL after a time
limit). Each child is also tied to the demo's life: it is started through a few lines of
Python (:data:`_TETHER`) that ask Linux for SIGKILL when the parent dies
(``PR_SET_PDEATHSIG``) and then ``exec`` the real command, so even a demo killed with
SIGKILL leaves no service running. SIGKILL, not SIGTERM: this is the last resort, when no
orderly stop is possible anyway, and a SIGTERM that reaches every service at the same moment
can leave one stuck (the gateway, when its broker and its radio vanish as it stops).
(The tether is a separate ``exec`` rather than a ``preexec_fn``: running Python between
``fork`` and ``exec`` is unsafe when the parent has threads, and asyncio's resolver and
child watcher use threads.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from carewatch.errors import ChildExitedError

__all__ = ["Child", "tail"]

logger = logging.getLogger(__name__)

_TETHER = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: the demo's own shutdown is all there is
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the demo died before the signal was armed
os.execv(sys.argv[2], sys.argv[2:])
"""


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - 64 * 1024))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Child:
    """One running service of the demo; make it with :meth:`start`."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.log = log
        self._process = process

    @classmethod
    async def start(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path,
        env: Mapping[str, str],
    ) -> Child:
        """Spawn ``argv`` (its first item an executable's path) with stdout and stderr
        in ``log`` (emptied first: a kept data folder must not show an earlier run's lines
        to the readiness checks)."""
        command = [sys.executable, "-I", "-S", "-c", _TETHER, str(os.getpid()), *argv]
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
            )
        logger.info("started %s pid=%d", name, process.pid)
        return cls(name, process, log)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def tail(self, lines: int = 25) -> str:
        return tail(self.log, lines)

    def check(self) -> None:
        """Raise :class:`ChildExitedError` if the process has exited."""
        code = self._process.returncode
        if code is not None:
            raise ChildExitedError(self.name, code, self.tail())

    async def exited(self) -> ChildExitedError:
        """Wait until the process exits; the error that says so."""
        code = await self._process.wait()
        return ChildExitedError(self.name, code, self.tail())

    async def stop(self, grace_s: float) -> int:
        """SIGTERM, up to ``grace_s`` seconds for it to exit, then SIGKILL. The exit status
        (negative: the signal that ended it)."""
        process = self._process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace_s):
                    await process.wait()
            except TimeoutError:
                logger.warning("%s did not stop within %g s: killing it", self.name, grace_s)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        code = process.returncode
        assert code is not None
        logger.info("stopped %s pid=%d status=%d", self.name, process.pid, code)
        return code
