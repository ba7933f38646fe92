"""A real Mosquitto 2.x broker on a free loopback port, with its data and log in a folder.

Config choices (all in :meth:`MosquittoServer.config_text`):

* persistence on, in the work folder, saved every ``autosave_interval`` seconds and on SIGTERM,
  so ``restart()`` keeps persistent sessions and their queued QoS 1 messages (a ``kill()``
  loses what changed since the last autosave, as a real crash would);
* ``max_inflight_messages`` / ``max_queued_messages`` raised from Mosquitto's 20 / 1000: the
  ingestor acknowledges only after storing, so the defaults would stall or silently drop;
* ``user root`` when run as root: Mosquitto otherwise switches to the ``mosquitto`` user,
  which cannot write the temporary folder (as any other user it runs as that user);
* log to ``mosquitto.log`` in the work folder; the process's stdout/stderr go there too, so
  errors printed before the log file is opened (a bad config line) are kept as well.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tests.harness.errors import ServerStateError
from tests.harness.ports import free_port
from tests.harness.server import LocalServer, PortPicker, ServerFactory

__all__ = [
    "MosquittoFactory",
    "MosquittoOptions",
    "MosquittoServer",
    "mqtt_connack",
    "password_file_line",
    "write_password_file",
]

_PROBE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class MosquittoOptions:
    """What a test may change about its broker. Paths are copied into the work folder (mode
    0600) at every start, so a test may edit the source file and ``restart()``."""

    allow_anonymous: bool = True
    password_file: Path | None = None
    acl_file: Path | None = None
    extra_config: tuple[str, ...] = ()
    """Lines appended after the default listener (so listener options apply to it)."""
    max_inflight_messages: int = 1000
    max_queued_messages: int = 100_000
    autosave_interval: int = 1
    """Seconds between saves of the in-memory state; 0 saves only on exit."""
    start_timeout: float = 10.0
    stop_timeout: float = 10.0
    port_attempts: int = 5


class MosquittoServer(LocalServer):
    """``/usr/sbin/mosquitto -c <workdir>/mosquitto.conf`` listening on 127.0.0.1 only."""

    kind: ClassVar[str] = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        binary: Path,
        options: MosquittoOptions | None = None,
        port_picker: PortPicker = free_port,
    ) -> None:
        self.options = options if options is not None else MosquittoOptions()
        for line in self.options.extra_config:
            if "\n" in line or "\r" in line:
                raise ValueError(f"extra_config lines must be single lines: {line!r}")
        super().__init__(
            workdir,
            binary=binary,
            start_timeout=self.options.start_timeout,
            stop_timeout=self.options.stop_timeout,
            port_attempts=self.options.port_attempts,
            port_picker=port_picker,
        )
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerStateError("mosquitto has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def config_text(self) -> str:
        """The mosquitto.conf for the current port and options."""
        opts = self.options
        lines = [
            "# Written by tests/harness/mosquitto.py for one test broker.",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else 2.0 switches to 'mosquitto', locked out of workdir
        lines += [
            "persistence true",
            # 1.x glued location and file name together; 2.0 adds a '/', so '//' is harmless.
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            f"autosave_interval {opts.autosave_interval}",
            "autosave_on_changes false",
            f"max_inflight_messages {opts.max_inflight_messages}",
            f"max_queued_messages {opts.max_queued_messages}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_type subscribe",
            "log_type unsubscribe",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            "per_listener_settings false",
            f"allow_anonymous {'true' if opts.allow_anonymous else 'false'}",
        ]
        if opts.password_file is not None:
            lines.append(f"password_file {self.workdir / 'passwd'}")
        if opts.acl_file is not None:
            lines.append(f"acl_file {self.workdir / 'acl'}")
        lines.append(f"listener {self.port} {self.host}")
        lines.extend(opts.extra_config)
        return "\n".join(lines) + "\n"

    # -- LocalServer hooks ----------------------------------------------------------------

    def _pick_ports(self, pick: PortPicker) -> None:
        self._port = pick()

    def _listen_ports(self) -> tuple[int, ...]:
        return (self.port,)

    def _write_config(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        if self.options.password_file is not None:
            _copy_private(self.options.password_file, self.workdir / "passwd")
        if self.options.acl_file is not None:
            _copy_private(self.options.acl_file, self.workdir / "acl")
        self.config_path.write_text(self.config_text(), encoding="utf-8")

    def _command(self) -> list[str]:
        return [str(self._binary), "-c", str(self.config_path)]

    def _answers(self) -> bool:
        return mqtt_connack(self.host, self.port, timeout=_PROBE_SECONDS) is not None


MosquittoFactory = ServerFactory[MosquittoServer, MosquittoOptions]
"""The ``fresh_mosquitto`` fixture: ``fresh_mosquitto(options=None, *, start=True)``."""


def _copy_private(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    target.chmod(0o600)


def mqtt_connack(host: str, port: int, *, timeout: float) -> int | None:
    """Send an MQTT 3.1.1 CONNECT (clean session, anonymous) and return the CONNACK's return
    code (0 accepted, 5 not authorised, ...), or ``None`` if no CONNACK came within ``timeout``.

    Any CONNACK means the broker is up, even one that refuses an anonymous client.
    """
    client_id = f"harness-probe-{uuid.uuid4().hex[:12]}".encode()
    variable_header = b"\x00\x04MQTT\x04\x02\x00\x0a"  # level 4, clean session, keepalive 10 s
    body = variable_header + len(client_id).to_bytes(2, "big") + client_id
    connect = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(connect)
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return None
                reply += chunk
            if reply[0] != 0x20 or reply[1] != 0x02:
                return None
            if reply[3] == 0:
                sock.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean goodbye
            return reply[3]
    except OSError:
        return None


def password_file_line(
    username: str, password: str, *, salt: bytes | None = None, iterations: int = 101
) -> str:
    """One line of a Mosquitto 2.x password file (``$7$``: PBKDF2-SHA512, as mosquitto_passwd
    writes it), so tests need no ``mosquitto_passwd`` binary."""
    if ":" in username or "\n" in username:
        raise ValueError(f"invalid Mosquitto username: {username!r}")
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    encoded_salt = base64.b64encode(salt).decode()
    return f"{username}:$7${iterations}${encoded_salt}${base64.b64encode(digest).decode()}"


def write_password_file(path: Path, users: Mapping[str, str]) -> Path:
    """Write a password file for ``users`` (name -> password) to ``path`` and return it."""
    text = "".join(password_file_line(name, secret) + "\n" for name, secret in users.items())
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path
