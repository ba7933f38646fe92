"""Free loopback ports, and whether a given process is the one listening on a port.

A port found free by binding port 0 can be taken by someone else before the server binds it
(the kernel hands out the same ephemeral range to outgoing connections and to other test
workers). The servers therefore retry on a fresh port when the bind fails, and check with
:func:`listens_on` that the process answering on the port is really theirs.
"""

from __future__ import annotations

import socket
from pathlib import Path

__all__ = ["LOOPBACK", "free_port", "listens_on"]

LOOPBACK = "127.0.0.1"
_TCP_TABLE = Path("/proc/net/tcp")
_TCP_LISTEN = "0A"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago (bind port 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a listening IPv4 TCP socket on ``port``.

    Reads ``/proc/net/tcp`` and the process's file descriptors (Linux). Where ``/proc`` is not
    available this cannot be told, and the answer is ``True`` so that readiness rests on the
    protocol probe alone.
    """
    try:
        table = _TCP_TABLE.read_text(encoding="ascii")
    except OSError:
        return True
    inodes: set[str] = set()
    for row in table.splitlines()[1:]:
        fields = row.split()
        if len(fields) < 10 or fields[3] != _TCP_LISTEN:
            continue
        _, _, port_hex = fields[1].partition(":")
        if int(port_hex, 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        links = list(fd_dir.iterdir())
    except OSError:
        return False
    for link in links:
        try:
            if str(link.readlink()) in inodes:
                return True
        except OSError:
            continue  # the descriptor was closed while we looked
    return False
