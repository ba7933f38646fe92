"""Device status for the API: what the gateways last said about their devices.

Served by a :class:`DeviceStatusSource`. :class:`DeviceStatusBoard` is the in-memory one: the
MQTT consumer of ``carewatch/v1/{site}/{gateway}/status`` (retained, with an ``offline`` last
will) calls :meth:`DeviceStatusBoard.update` with every :class:`vitals.wire.Status`; the API
reads it. A gateway that goes offline leaves its devices listed, not connected.

Bounded: at most ``max_gateways`` gateways are remembered (a status from one more is counted
in :attr:`DeviceStatusBoard.dropped` and ignored), and a status lists at most 1,024 devices
(the wire schema's limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from vitals.wire import GatewayState, Status

__all__ = ["DeviceStatus", "DeviceStatusBoard", "DeviceStatusSource"]


@dataclass(slots=True, frozen=True)
class DeviceStatus:
    """One device as its gateway last reported it."""

    site: str
    gateway: str
    device: str
    connected: bool
    gateway_state: GatewayState
    updated: datetime
    """When the gateway's status arrived."""
    last_seen: datetime | None = None
    battery: int | None = None
    rssi: int | None = None


class DeviceStatusSource(Protocol):
    async def statuses(self, site: str) -> Mapping[str, DeviceStatus]:
        """The last known status of every device of ``site`` that a gateway reported, by
        device id."""
        ...


class DeviceStatusBoard:
    """A :class:`DeviceStatusSource` in memory, fed by gateway status messages."""

    def __init__(self, *, max_gateways: int = 10_000) -> None:
        self._max_gateways = max_gateways
        self._gateways: dict[tuple[str, str], dict[str, DeviceStatus]] = {}
        self.dropped = 0
        """Statuses ignored because ``max_gateways`` were already known."""

    def update(self, status: Status, *, received: datetime) -> None:
        """Take a gateway's status (``received``: when it arrived)."""
        key = (status.site, status.gateway)
        known = self._gateways.get(key)
        if known is None:
            if len(self._gateways) >= self._max_gateways:
                self.dropped += 1
                return
            known = self._gateways[key] = {}
        online = status.state is GatewayState.ONLINE
        reported = {device.device: device for device in status.devices}
        board: dict[str, DeviceStatus] = {}
        for device_id, device in reported.items():
            board[device_id] = DeviceStatus(
                site=status.site,
                gateway=status.gateway,
                device=device_id,
                connected=device.connected and online,
                gateway_state=status.state,
                updated=received,
                last_seen=device.last_seen,
                battery=device.battery,
                rssi=device.rssi,
            )
        if not online:
            # The last will lists no devices: keep the ones known, disconnected.
            for device_id, previous in known.items():
                board.setdefault(
                    device_id,
                    DeviceStatus(
                        site=previous.site,
                        gateway=previous.gateway,
                        device=device_id,
                        connected=False,
                        gateway_state=status.state,
                        updated=received,
                        last_seen=previous.last_seen,
                        battery=previous.battery,
                        rssi=previous.rssi,
                    ),
                )
        self._gateways[key] = board

    async def statuses(self, site: str) -> Mapping[str, DeviceStatus]:
        found: dict[str, DeviceStatus] = {}
        for (gateway_site, _), devices in self._gateways.items():
            if gateway_site != site:
                continue
            for device_id, device in devices.items():
                current = found.get(device_id)
                if current is None or device.updated > current.updated:
                    found[device_id] = device
        return found
