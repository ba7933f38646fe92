"""What the gateway knows about itself: the clock it reads, where its health figures come
from, and the ``Status`` message built from them.

* :data:`Clock` is how every gateway component reads the time (a callable returning an aware
  UTC ``datetime``); tests pass their own, nothing is patched.
* :class:`HealthSource` is the small interface through which the BLE central (and the
  recorder) report connected devices, decode errors and readings dropped before the outbox.
  :class:`CombinedHealth` adds several sources together.
* :func:`versions` names the software a status message reports.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Protocol

from vitals.wire import DeviceState

__all__ = [
    "Clock",
    "CombinedHealth",
    "HealthSource",
    "NoDevices",
    "utc_now",
    "versions",
]

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime."""


def utc_now() -> datetime:
    """The system clock as an aware UTC datetime (the production :data:`Clock`)."""
    return datetime.now(UTC)


class HealthSource(Protocol):
    """Health figures a gateway component reports for the status heartbeat (the BLE
    central's ``Central`` has this shape as it stands).

    The BLE central implements it (its devices, its decode errors, readings its callbacks
    could not queue); the recorder implements it (readings refused by the wire model count
    as decode errors, a full queue as drops). Calls must be cheap and must not block.
    """

    def device_states(self) -> Sequence[DeviceState]:
        """Every known device: connected or not, last seen, battery, RSSI."""
        ...

    @property
    def decode_errors(self) -> int:
        """Payloads or observations refused as malformed since the gateway started."""
        ...

    @property
    def dropped(self) -> int:
        """Readings lost before reaching the outbox since the gateway started."""
        ...


class NoDevices:
    """A :class:`HealthSource` with nothing to report (no BLE central wired in)."""

    def device_states(self) -> Sequence[DeviceState]:
        return ()

    @property
    def decode_errors(self) -> int:
        return 0

    @property
    def dropped(self) -> int:
        return 0


class CombinedHealth:
    """Several health sources as one: devices concatenated, counters added."""

    def __init__(self, *sources: HealthSource) -> None:
        self._sources = sources

    def device_states(self) -> Sequence[DeviceState]:
        return tuple(state for source in self._sources for state in source.device_states())

    @property
    def decode_errors(self) -> int:
        return sum(source.decode_errors for source in self._sources)

    @property
    def dropped(self) -> int:
        return sum(source.dropped for source in self._sources)


_DISTRIBUTIONS = ("carewatch", "bleak", "aiomqtt", "paho-mqtt")


def versions() -> dict[str, str]:
    """The versions a status reports: carewatch, bleak, aiomqtt, paho-mqtt and python
    (a package that is not installed is left out)."""
    found: dict[str, str] = {}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)[:64]
        except metadata.PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found
