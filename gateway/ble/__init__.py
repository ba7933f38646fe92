"""The gateway's BLE radio behind bleak: BlueZ in production, Bumble against the simulator.

The gateway is written against bleak's public API and takes its backend classes by argument.
In production those are bleak's own (BlueZ over D-Bus); against the simulator they come from
:func:`make_backends`, bound to a :class:`BumbleHost` that drives a (virtual) controller over
an HCI transport. Nothing else differs.
"""

from gateway.ble.bumble_backend import BumbleBackends, make_backends
from gateway.ble.bumble_client import BumbleClient
from gateway.ble.bumble_host import (
    BumbleBackendError,
    BumbleConnectError,
    BumbleConnectTimeoutError,
    BumbleDeviceDetails,
    BumbleDeviceNotFoundError,
    BumbleDisconnectedError,
    BumbleGATTError,
    BumbleHost,
    BumbleHostError,
    BumbleTimeoutError,
)
from gateway.ble.bumble_scanner import BumbleScanner, advertisement_data

__all__ = [
    "BumbleBackendError",
    "BumbleBackends",
    "BumbleClient",
    "BumbleConnectError",
    "BumbleConnectTimeoutError",
    "BumbleDeviceDetails",
    "BumbleDeviceNotFoundError",
    "BumbleDisconnectedError",
    "BumbleGATTError",
    "BumbleHost",
    "BumbleHostError",
    "BumbleScanner",
    "BumbleTimeoutError",
    "advertisement_data",
    "make_backends",
]
