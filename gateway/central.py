"""The BLE central: one scanner, one connection manager per registered device, a watchdog.

Written against bleak's public API only (``BleakScanner``, ``BleakClient`` and
bleak-retry-connector's ``establish_connection``); which radio it drives is decided by the
backend classes passed in — BlueZ in production, Bumble against the simulator.

- **One scanner** for the whole gateway, running for the gateway's life (never ``discover()``
  in a loop). Its callback only matches the advertisement against the registry and wakes the
  device's connection task.
- **One task per registered device.** It waits until the device advertises, connects through
  ``establish_connection`` (its own retries) and then backs off with random, growing, capped
  delays when that fails; subscribes to the kind's characteristics by UUID; reads the battery;
  and waits. A continuous device (wearable, oximeter, pendant) is held until it disconnects; a
  spot device (cuff, scale, thermometer, glucose meter) advertises when it has a measurement, is
  connected, sends it, and is released once it has been quiet for a moment.
- **Notification callbacks do nothing slow:** decode with ``vitals.gatt``, map to observations,
  offer them to a bounded sink (``put_nowait``; what does not fit is counted as dropped). A
  payload that fails to decode, or decodes to a value that is not physically possible, is
  counted and logged (the first per device, then every 100th) and never stops anything.
- **A watchdog** restarts the scanner when it has reported nothing for too long while some
  device is waiting to be connected: the "stalls silently until a reboot" failure of many
  BLE gateways.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from gateway.registry import DeviceEntry, Registry
from vitals import DeviceState, Metric
from vitals.backoff import Backoff
from vitals.gatt import BATTERY_LEVEL, DecodeError, decode, uuid16_to_str
from vitals.observations import Observation, observations

__all__ = [
    "Central",
    "CentralOptions",
    "DeviceCounters",
    "ObservationSink",
    "ScannerFactory",
]

logger = logging.getLogger(__name__)

_BATTERY_UUID = uuid16_to_str(BATTERY_LEVEL)


class ObservationSink(Protocol):
    """Where decoded observations go; ``offer`` must not block and says if it took it."""

    def offer(self, device: str, observation: Observation, received: datetime) -> bool: ...


class ScannerLike(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


DetectionCallback = Callable[[BLEDevice, AdvertisementData], None]
ScannerFactory = Callable[[DetectionCallback], ScannerLike]
"""Builds the one scanner, e.g. ``lambda cb: BleakScanner(cb, backend=...)``."""


@dataclass(slots=True, frozen=True)
class CentralOptions:
    connect_attempts: int = 3
    """Attempts inside one ``establish_connection`` call before backing off."""
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    spot_idle: float = 3.0
    """Release a spot device this long after its last measurement arrived."""
    spot_max_hold: float = 60.0
    """Release a spot device after this long whatever happens."""
    watchdog_silence: float = 60.0
    """Restart the scanner after this long without any advertisement while a device waits."""
    watchdog_period: float = 5.0
    disconnect_timeout: float = 10.0


@dataclass(slots=True)
class DeviceCounters:
    """What happened to one device since the gateway started."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    notifications: int = 0
    observations: int = 0
    decode_errors: int = 0
    dropped: int = 0


@dataclass(slots=True)
class _Device:
    entry: DeviceEntry
    advertised: asyncio.Event
    disconnected: asyncio.Event
    counters: DeviceCounters
    ble_device: BLEDevice | None = None
    last_seen: datetime | None = None
    rssi: int | None = None
    battery: int | None = None
    connected: bool = False
    busy: bool = False
    last_data: float = 0.0


class Central:
    """Keeps every registered device connected or collected; see the module docstring."""

    def __init__(
        self,
        registry: Registry,
        sink: ObservationSink,
        *,
        scanner_factory: ScannerFactory,
        client_backend: type[BaseBleakClient] | None = None,
        options: CentralOptions | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._sink = sink
        self._scanner_factory = scanner_factory
        self._client_backend = client_backend
        self._options = options or CentralOptions()
        self._now = wall_clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._devices = {
            entry.id: _Device(entry, asyncio.Event(), asyncio.Event(), DeviceCounters())
            for entry in registry
        }
        self._last_advertisement = monotonic()
        self._restart_scanner = asyncio.Event()
        self.scanner_restarts = 0
        self.advertisements = 0

    # --- public face -------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._scan_forever(), name="ble-scanner")
            group.create_task(self._watchdog(), name="ble-watchdog")
            for device in self._devices.values():
                group.create_task(self._serve_forever(device), name=f"ble-device-{device.entry.id}")

    def device_states(self) -> tuple[DeviceState, ...]:
        """Connection, last seen, battery and RSSI of every device, for the gateway's status."""
        return tuple(
            DeviceState(
                device=d.entry.id,
                connected=d.connected,
                last_seen=d.last_seen,
                battery=d.battery,
                rssi=max(-127, min(20, d.rssi)) if d.rssi is not None else None,
            )
            for d in self._devices.values()
        )

    def counters(self) -> dict[str, DeviceCounters]:
        return {device_id: d.counters for device_id, d in self._devices.items()}

    @property
    def decode_errors(self) -> int:
        return sum(d.counters.decode_errors for d in self._devices.values())

    @property
    def dropped(self) -> int:
        return sum(d.counters.dropped for d in self._devices.values())

    @property
    def connected(self) -> int:
        return sum(1 for d in self._devices.values() if d.connected)

    # --- scanning ----------------------------------------------------------------------

    def _on_advertisement(self, ble_device: BLEDevice, advertisement: AdvertisementData) -> None:
        self._last_advertisement = self._monotonic()
        self.advertisements += 1
        entry = self._registry.match(
            ble_device.address, advertisement.local_name or ble_device.name
        )
        if entry is None:
            return
        device = self._devices[entry.id]
        device.ble_device = ble_device
        device.last_seen = self._now()
        device.rssi = advertisement.rssi
        if not device.busy:
            device.advertised.set()

    async def _scan_forever(self) -> None:
        backoff = Backoff(self._options.backoff_initial, self._options.backoff_max, self._rng)
        while True:
            self._restart_scanner.clear()
            try:
                async with self._scanning():
                    backoff.reset()
                    await self._restart_scanner.wait()
            except (BleakError, OSError, TimeoutError) as exc:
                delay = backoff.next()
                logger.warning("scanner failed: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            else:
                self.scanner_restarts += 1
                logger.warning(
                    "scanner restarted by the watchdog (restart %d)", self.scanner_restarts
                )

    @contextlib.asynccontextmanager
    async def _scanning(self) -> AsyncIterator[None]:
        scanner = self._scanner_factory(self._on_advertisement)
        await scanner.start()
        self._last_advertisement = self._monotonic()
        logger.info("scanning for %d registered devices", len(self._devices))
        try:
            yield
        finally:
            with contextlib.suppress(BleakError, OSError, TimeoutError):
                await asyncio.wait_for(scanner.stop(), self._options.disconnect_timeout)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self._options.watchdog_period)
            silent = self._monotonic() - self._last_advertisement
            waiting = any(not d.connected for d in self._devices.values())
            if waiting and silent > self._options.watchdog_silence:
                logger.warning(
                    "scanner silent for %.0f s while devices wait: restarting it", silent
                )
                self._last_advertisement = self._monotonic()
                self._restart_scanner.set()

    # --- connections -------------------------------------------------------------------

    async def _serve_forever(self, device: _Device) -> None:
        backoff = Backoff(self._options.backoff_initial, self._options.backoff_max, self._rng)
        failing = False
        while True:
            await device.advertised.wait()
            device.advertised.clear()
            ble_device = device.ble_device
            if ble_device is None:
                continue
            device.busy = True
            try:
                client = await self._connect(device, ble_device)
            except (BleakError, TimeoutError, OSError) as exc:
                device.busy = False
                device.counters.connect_failures += 1
                delay = backoff.next()
                if not failing:
                    logger.warning(
                        "device %s: connect failed (%s); retrying with backoff",
                        device.entry.id,
                        exc,
                    )
                    failing = True
                await asyncio.sleep(delay)
                continue
            if failing:
                logger.info("device %s: connected again", device.entry.id)
                failing = False
            backoff.reset()
            try:
                await self._hold(device, client)
            except (BleakError, TimeoutError, OSError) as exc:
                logger.warning("device %s: connection lost: %s", device.entry.id, exc)
            finally:
                await self._release(device, client)

    async def _connect(self, device: _Device, ble_device: BLEDevice) -> BleakClient:
        disconnected = device.disconnected = asyncio.Event()

        def on_disconnect(_client: BleakClient) -> None:
            disconnected.set()

        kwargs: dict[str, Any] = {}
        if self._client_backend is not None:
            kwargs["backend"] = self._client_backend
        client = await establish_connection(
            BleakClient,
            ble_device,
            device.entry.id,
            disconnected_callback=on_disconnect,
            max_attempts=self._options.connect_attempts,
            **kwargs,
        )
        device.connected = True
        device.counters.connects += 1
        logger.info("device %s: connected", device.entry.id)
        return client

    async def _hold(self, device: _Device, client: BleakClient) -> None:
        disconnected = device.disconnected
        device.last_data = self._monotonic()
        for uuid in device.entry.kind.info.subscribe:
            characteristic = client.services.get_characteristic(str(uuid))
            if characteristic is None:
                logger.info("device %s: has no characteristic %s", device.entry.id, uuid)
                continue
            callback = self._callback(device, str(uuid))
            if str(uuid) == _BATTERY_UUID and "read" in characteristic.properties:
                callback(characteristic, await client.read_gatt_char(characteristic))
            if {"notify", "indicate"} & set(characteristic.properties):
                await client.start_notify(characteristic, callback)
        if not device.entry.spot:
            await disconnected.wait()
            return
        held_since = self._monotonic()
        while not disconnected.is_set():
            now = self._monotonic()
            quiet = now - device.last_data
            if quiet >= self._options.spot_idle or now - held_since >= self._options.spot_max_hold:
                logger.debug("device %s: measurement collected, releasing", device.entry.id)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(disconnected.wait(), self._options.spot_idle - quiet)

    async def _release(self, device: _Device, client: BleakClient) -> None:
        try:
            if client.is_connected:
                await asyncio.wait_for(client.disconnect(), self._options.disconnect_timeout)
        except (BleakError, TimeoutError, OSError) as exc:
            logger.debug("device %s: disconnect failed: %s", device.entry.id, exc)
        finally:
            device.connected = False
            device.busy = False
            device.counters.disconnects += 1
            logger.info("device %s: disconnected", device.entry.id)

    def _callback(
        self, device: _Device, uuid: str
    ) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
        counters = device.counters
        device_id = device.entry.id

        def on_data(_characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
            received = self._now()
            device.last_data = self._monotonic()
            counters.notifications += 1
            try:
                measurement = decode(uuid, data)
            except DecodeError as exc:
                self._decode_error(device, f"{exc}")
                return
            for observation in observations(measurement):
                if not observation.metric.in_range(observation.value):
                    self._decode_error(
                        device,
                        f"{observation.metric.value} value outside the possible range",
                    )
                    continue
                if observation.metric is Metric.BATTERY_LEVEL:
                    device.battery = int(observation.value)
                counters.observations += 1
                if not self._sink.offer(device_id, observation, received):
                    counters.dropped += 1

        return on_data

    def _decode_error(self, device: _Device, reason: str) -> None:
        counters = device.counters
        counters.decode_errors += 1
        if counters.decode_errors == 1 or counters.decode_errors % 100 == 0:
            logger.warning(
                "device %s: undecodable payload (%d so far): %s",
                device.entry.id,
                counters.decode_errors,
                reason,
            )
