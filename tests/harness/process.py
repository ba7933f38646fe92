"""One child server process: spawned with its output in a log file, stopped, killed, reaped.

Every process spawned here is also entered in a process-wide registry that an ``atexit`` hook
empties with SIGKILL, the last resort when a fixture's teardown never ran. (It is global because
``atexit`` is; nothing else in the harness is.) A SIGKILL of pytest itself, or ``os._exit``,
skips ``atexit``: such leftovers listen on loopback only and live in temporary folders.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ChildProcess", "read_log", "tail"]

_LIVE: set[subprocess.Popen[bytes]] = set()
_REAP_SECONDS = 5.0


def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=_REAP_SECONDS)
        except subprocess.TimeoutExpired:
            continue
    _LIVE.clear()


atexit.register(_kill_leftovers)


class ChildProcess:
    """A spawned server; stdout and stderr are appended to ``output``.

    The child runs in its own session, so a Ctrl-C in the terminal reaches pytest (which then
    tears the fixtures down) rather than the servers directly.
    """

    def __init__(
        self, argv: Sequence[str], *, output: Path, cwd: Path, env: Mapping[str, str]
    ) -> None:
        with output.open("ab") as sink:
            self._proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
            )
        _LIVE.add(self._proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited (it is reaped then), else ``None``."""
        code = self._proc.poll()
        if code is not None:
            _LIVE.discard(self._proc)
        return code

    def send_signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` unless the process has already exited."""
        if self.returncode is None:
            self._proc.send_signal(signum)

    def terminate(self, grace: float) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; return the exit status."""
        self.send_signal(signal.SIGTERM)
        try:
            return self._reap(grace)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL and reap; return the exit status."""
        self.send_signal(signal.SIGKILL)
        return self._reap(_REAP_SECONDS)

    def _reap(self, within: float) -> int:
        code = self._proc.wait(timeout=within)
        _LIVE.discard(self._proc)
        return code


def read_log(path: Path, *, start: int = 0, max_bytes: int = 256 * 1024) -> str:
    """The text of ``path`` from byte ``start`` (at most its last ``max_bytes``), or ``""``."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(start, size - max_bytes))
            data = log.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of the log at ``path``, or a note that there is none."""
    text = read_log(path, max_bytes=64 * 1024)
    if not text:
        return f"(log {path} is empty or missing)"
    return "\n".join(text.splitlines()[-lines:])
