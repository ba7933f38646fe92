"""One simulated device on the air: a Bumble ``Device`` on its own virtual controller.

A :class:`Peripheral` serves its kind's GATT services (``vitals.devices``) with the properties
the Bluetooth SIG specifications give them, advertises its name and primary service, and sends
what its firmware model emits (``firmware_sim.firmware``) to a subscribed central, recording
every payload that went over the air in a :class:`DeliveryLog`.

Served characteristics (every notify/indicate one has a CCCD, so a central can subscribe):

=============================  ===========================================================
service                        characteristics
=============================  ===========================================================
Heart Rate 0x180D              Heart Rate Measurement 0x2A37 (notify), Body Sensor
                               Location 0x2A38 (read: wrist)
Battery 0x180F                 Battery Level 0x2A19 (read, notify)
Device Information 0x180A      Manufacturer Name 0x2A29, Model Number 0x2A24, Serial Number
                               0x2A25, Hardware/Firmware/Software Revision 0x2A27/0x2A26/
                               0x2A28: those the firmware's ``device_information`` names
Pulse Oximeter 0x1822          PLX Spot-Check 0x2A5E (indicate), PLX Continuous 0x2A5F
                               (notify), PLX Features 0x2A60 (read)
Health Thermometer 0x1809      Temperature Measurement 0x2A1C (indicate)
Blood Pressure 0x1810          Blood Pressure Measurement 0x2A35 (indicate), Blood Pressure
                               Feature 0x2A49 (read)
Weight Scale 0x181D            Weight Measurement 0x2A9D (indicate), Weight Scale Feature
                               0x2A9E (read)
Glucose 0x1808                 Glucose Measurement 0x2A18 (notify), Glucose Feature 0x2A51
                               (read). The Record Access Control Point is not simulated: the
                               meter sends its new records as soon as a central subscribes.
Wearable Extension (vendor)    Respiratory Rate (notify)
Pendant (vendor)               Pendant Event (indicate)
=============================  ===========================================================

Behaviour:

* A **continuous** device (wearable, oximeter, pendant) advertises while it is not connected
  and its radio is on, and never while connected (on a ``LocalLink`` every advertising PDU
  costs work in every listening controller). Connected, it notifies or indicates what it
  emits to a subscribed central; a notification nobody is subscribed to is gone (counted as
  missed).
* A **spot** device (thermometer, cuff, scale, glucose meter) keeps its measurements pending
  (the last :attr:`PeripheralOptions.pending_limit`, older ones counted as overflow) and
  advertises only while it has one. Once a central subscribes it sends them, oldest first
  (an indication waits for its confirmation before the next is sent), and disconnects
  :attr:`PeripheralOptions.release_after` seconds after the last one unless the central has
  disconnected first; a central that connects and never subscribes is disconnected after
  :attr:`PeripheralOptions.subscribe_timeout`. Indicated emissions of continuous devices
  (PLX Spot-Check, Pendant Event) are kept pending the same way until a central takes them.
* **Out of range**: every link ends with reason 0x08 (Connection Timeout) at both ends and the
  device neither advertises nor hears anything until its radio is back on. **Dead**: the same,
  for good.

Advertising data (legacy, 31 bytes): Flags (LE General Discoverable, BR/EDR not supported);
the service UUIDs of the primary service's size (16- or 128-bit), as a complete list if all
of the device's services of that size fit and as an incomplete list of the primary alone if
not; then the local name, complete if it fits and shortened to the room left if not. The scan
response carries the complete local name (delivered to scanners by
:class:`firmware_sim.controller.SimController`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Protocol, Self

from bumble import core, hci
from bumble.att import AttributeValue
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, Service
from bumble.host import Host
from bumble.transport.common import AsyncPipeSink

from firmware_sim.controller import SimController, SimLink
from firmware_sim.firmware import Emission, RadioState
from vitals.devices import DeviceKind
from vitals.gatt import Measurement, uuid16_from
from vitals.gatt import uuids as sig
from vitals.gatt.pendant import PENDANT_EVENT_CHARACTERISTIC, PENDANT_SERVICE
from vitals.gatt.respiration import RESPIRATORY_RATE_CHARACTERISTIC, WEARABLE_EXTENSION_SERVICE

__all__ = [
    "Delivery",
    "DeliveryLog",
    "DeliveryMethod",
    "DeviceIdentity",
    "Peripheral",
    "PeripheralOptions",
    "PeripheralStatus",
    "advertising_payloads",
]

logger = logging.getLogger(__name__)

_Props = Characteristic.Properties

_CONNECTION_TIMEOUT: Final = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR
_REMOTE_USER_TERMINATED: Final = hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR
_POWER_OFF: Final = hci.HCI_ErrorCode.REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR


# -- the delivered-payload log ----------------------------------------------------------------


class DeliveryMethod(StrEnum):
    NOTIFY = "notify"
    INDICATE = "indicate"


@dataclass(slots=True, frozen=True)
class Delivery:
    """One payload that went over the air to a subscribed central."""

    device: str
    characteristic: uuid.UUID
    payload: bytes
    method: DeliveryMethod
    sim_time: float
    """Simulated Unix time when it was delivered (an indication: when it was confirmed)."""
    measured_at: float
    """Simulated Unix time of the emission (earlier than ``sim_time`` for a pending one)."""
    wall_time: float
    """Wall-clock Unix time when it was delivered."""
    central: str
    """The central's address."""

    def to_json(self) -> dict[str, object]:
        """The JSONL form: ``payload`` in lower-case hex, ``characteristic`` as the 128-bit
        UUID string."""
        return {
            "device": self.device,
            "characteristic": str(self.characteristic),
            "payload": self.payload.hex(),
            "method": self.method.value,
            "sim_time": self.sim_time,
            "measured_at": self.measured_at,
            "wall_time": self.wall_time,
            "central": self.central,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Delivery:
        """Parse one line of the JSONL form (the inverse of :meth:`to_json`)."""
        return cls(
            device=str(data["device"]),
            characteristic=uuid.UUID(str(data["characteristic"])),
            payload=bytes.fromhex(str(data["payload"])),
            method=DeliveryMethod(str(data["method"])),
            sim_time=float(str(data["sim_time"])),
            measured_at=float(str(data["measured_at"])),
            wall_time=float(str(data["wall_time"])),
            central=str(data["central"]),
        )


class DeliveryLog:
    """Every payload delivered over the air, in memory and optionally in a JSONL file.

    The memory keeps the last ``capacity`` deliveries (the oldest are dropped when it is full
    and counted in :attr:`evicted`); the file, when given, gets every one, one JSON object a
    line, flushed as written. Use as a context manager to open and close the file.
    """

    def __init__(self, path: Path | None = None, *, capacity: int = 50_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._path = path
        self._memory: deque[Delivery] = deque(maxlen=capacity)
        self._file: IO[str] | None = None
        self.evicted = 0
        self.total = 0

    def __enter__(self) -> Self:
        if self._path is not None:
            self._file = self._path.open("a", encoding="utf-8", buffering=1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def record(self, delivery: Delivery) -> None:
        if len(self._memory) == self._memory.maxlen:
            self.evicted += 1
        self._memory.append(delivery)
        self.total += 1
        if self._file is not None:
            self._file.write(json.dumps(delivery.to_json(), separators=(",", ":")) + "\n")

    def for_device(self, device: str) -> list[Delivery]:
        return [d for d in self._memory if d.device == device]

    def __iter__(self) -> Iterator[Delivery]:
        return iter(list(self._memory))

    def __len__(self) -> int:
        return len(self._memory)


# -- what a peripheral needs to know about its device ----------------------------------------


class DeviceIdentity(Protocol):
    """The static facts of a simulated device (``firmware_sim.firmware.DeviceFirmware``)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> DeviceKind: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def device_information(self) -> Mapping[str, str]: ...


@dataclass(slots=True, frozen=True)
class PeripheralOptions:
    advertising_interval: float = 0.1
    """Seconds between advertising PDUs; a central connects within about one interval."""
    release_after: float = 1.0
    """Seconds a spot device stays connected after its last pending measurement was sent."""
    subscribe_timeout: float = 30.0
    """Seconds a spot device waits for a connected central to subscribe before releasing it."""
    pending_limit: int = 20
    """Pending measurements kept; the oldest beyond this are dropped and counted."""
    live_limit: int = 32
    """Notifications queued while the device is busy (e.g. awaiting a confirmation); the
    oldest beyond this are dropped and counted."""


@dataclass(slots=True)
class PeripheralStatus:
    """A snapshot of one peripheral, for the live table and for tests."""

    id: str
    kind: DeviceKind
    name: str
    address: str
    radio: RadioState | None
    central: str | None
    advertising: bool
    battery: int | None
    contact: bool | None
    pending: int
    delivered: int
    missed: int
    overflow: int
    truncated: int
    last_values: dict[uuid.UUID, Measurement] = field(default_factory=dict)
    last_disconnect_reason: int | None = None


# -- the GATT table ----------------------------------------------------------------------------


def _sig(value: int) -> uuid.UUID:
    return uuid.UUID(sig.uuid16_to_str(value))


def _bumble_uuid(value: uuid.UUID) -> core.UUID:
    short = uuid16_from(value)
    return core.UUID.from_16_bits(short) if short is not None else core.UUID(str(value))


_BATTERY_LEVEL: Final = _sig(sig.BATTERY_LEVEL)

_DEVICE_INFORMATION_FIELDS: Final[Mapping[str, int]] = {
    "manufacturer": 0x2A29,
    "manufacturer_name": 0x2A29,
    "model": 0x2A24,
    "model_number": 0x2A24,
    "serial": 0x2A25,
    "serial_number": 0x2A25,
    "hardware": 0x2A27,
    "hardware_revision": 0x2A27,
    "firmware": 0x2A26,
    "firmware_revision": 0x2A26,
    "software": 0x2A28,
    "software_revision": 0x2A28,
}
"""Keys of ``device_information`` and the Device Information characteristic each fills."""


@dataclass(slots=True, frozen=True)
class _Char:
    uuid: uuid.UUID
    properties: Characteristic.Properties
    value: bytes = b""
    """The fixed value of a readable characteristic (features, sensor location)."""


_STATIC_SERVICES: Final[Mapping[uuid.UUID, tuple[_Char, ...]]] = {
    _sig(sig.HEART_RATE_SERVICE): (
        _Char(_sig(sig.HEART_RATE_MEASUREMENT), _Props.NOTIFY),
        _Char(_sig(0x2A38), _Props.READ, bytes([0x02])),  # Body Sensor Location: wrist
    ),
    _sig(sig.PULSE_OXIMETER_SERVICE): (
        _Char(_sig(sig.PLX_SPOT_CHECK_MEASUREMENT), _Props.INDICATE),
        _Char(_sig(sig.PLX_CONTINUOUS_MEASUREMENT), _Props.NOTIFY),
        # PLX Features: measurement status and device/sensor status supported (each followed
        # by its support field, here: all of them), timestamp for spot-check.
        _Char(_sig(0x2A60), _Props.READ, bytes.fromhex("0b00" + "e0ff" + "ffff00")),
    ),
    _sig(sig.HEALTH_THERMOMETER_SERVICE): (
        _Char(_sig(sig.TEMPERATURE_MEASUREMENT), _Props.INDICATE),
    ),
    _sig(sig.BLOOD_PRESSURE_SERVICE): (
        _Char(_sig(sig.BLOOD_PRESSURE_MEASUREMENT), _Props.INDICATE),
        # Blood Pressure Feature: body movement, cuff fit, irregular pulse, pulse rate range,
        # measurement position detection.
        _Char(_sig(0x2A49), _Props.READ, (0x001F).to_bytes(2, "little")),
    ),
    _sig(sig.WEIGHT_SCALE_SERVICE): (
        _Char(_sig(sig.WEIGHT_MEASUREMENT), _Props.INDICATE),
        # Weight Scale Feature: time stamp and BMI supported; resolutions not specified.
        _Char(_sig(0x2A9E), _Props.READ, (0x00000005).to_bytes(4, "little")),
    ),
    _sig(sig.GLUCOSE_SERVICE): (
        _Char(_sig(sig.GLUCOSE_MEASUREMENT), _Props.NOTIFY),
        # Glucose Feature: low battery, sensor malfunction, sample size, strip insertion,
        # strip type, result high/low, temperature high/low, read interrupt, device fault,
        # time fault detection.
        _Char(_sig(0x2A51), _Props.READ, (0x03FF).to_bytes(2, "little")),
    ),
    WEARABLE_EXTENSION_SERVICE: (_Char(RESPIRATORY_RATE_CHARACTERISTIC, _Props.NOTIFY),),
    PENDANT_SERVICE: (_Char(PENDANT_EVENT_CHARACTERISTIC, _Props.INDICATE),),
}


# -- advertising -------------------------------------------------------------------------------

_AD_FLAGS: Final = 0x01
_AD_INCOMPLETE_16: Final = 0x02
_AD_COMPLETE_16: Final = 0x03
_AD_INCOMPLETE_128: Final = 0x06
_AD_COMPLETE_128: Final = 0x07
_AD_SHORTENED_NAME: Final = 0x08
_AD_COMPLETE_NAME: Final = 0x09
_LE_GENERAL_DISCOVERABLE_NO_BREDR: Final = 0x06
_LEGACY_AD_MAX: Final = 31


def _ad(ad_type: int, data: bytes) -> bytes:
    return bytes([len(data) + 1, ad_type]) + data


def _uuid_bytes(value: uuid.UUID) -> bytes:
    short = uuid16_from(value)
    return short.to_bytes(2, "little") if short is not None else value.bytes[::-1]


def _name_ad(name: bytes, room: int) -> bytes:
    if len(name) + 2 <= room:
        return _ad(_AD_COMPLETE_NAME, name)
    cut = name[: max(room - 2, 0)]
    while cut:  # never split a UTF-8 sequence
        try:
            cut.decode("utf-8")
            break
        except UnicodeDecodeError:
            cut = cut[:-1]
    return _ad(_AD_SHORTENED_NAME, cut) if cut else b""


def advertising_payloads(name: str, services: Sequence[uuid.UUID]) -> tuple[bytes, bytes]:
    """The advertising data and scan response of a device (see the module docstring).

    ``services[0]`` is the primary service. Both payloads fit in 31 bytes.
    """
    if not services:
        raise ValueError("a device serves at least one service")
    flags = _ad(_AD_FLAGS, bytes([_LE_GENERAL_DISCOVERABLE_NO_BREDR]))
    primary = services[0]
    is_short = uuid16_from(primary) is not None
    same_size = [s for s in services if (uuid16_from(s) is not None) == is_short]
    complete_type, incomplete_type = (
        (_AD_COMPLETE_16, _AD_INCOMPLETE_16) if is_short else (_AD_COMPLETE_128, _AD_INCOMPLETE_128)
    )
    listed = _ad(complete_type, b"".join(_uuid_bytes(s) for s in same_size))
    if len(flags) + len(listed) + 3 > _LEGACY_AD_MAX:
        # No room left for a name: list the primary service alone.
        listed = _ad(incomplete_type if len(same_size) > 1 else complete_type, _uuid_bytes(primary))
    encoded_name = name.encode("utf-8")
    advertising = flags + listed
    advertising += _name_ad(encoded_name, _LEGACY_AD_MAX - len(advertising))
    scan_response = _name_ad(encoded_name, _LEGACY_AD_MAX)
    return advertising, scan_response


# -- the peripheral ----------------------------------------------------------------------------


def _reraise_lost_cancellation() -> None:
    """Raise the cancellation of the current task if an await swallowed it.

    Bumble waits for every HCI command's response with ``asyncio.wait_for(..., timeout)``;
    on Python 3.11 that returns the result and drops the cancellation when both arrive in the
    same loop turn (CPython gh-86296, fixed in 3.12), so a task cancelled while it starts
    advertising would carry on. A pending request shows in ``Task.cancelling()``.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Peripheral:
    """One simulated device: a Bumble ``Device`` on its own :class:`SimController`.

    Use as ``async with Peripheral(...) as p:``; run :meth:`run` in a task for as long as the
    device lives, and feed it with :meth:`update` (from the simulator's tick) which never
    blocks.
    """

    def __init__(
        self,
        identity: DeviceIdentity,
        link: SimLink,
        log: DeliveryLog,
        sim_clock: Callable[[], float],
        *,
        options: PeripheralOptions | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._link = link
        self._log = log
        self._sim_clock = sim_clock
        self._wall_clock = wall_clock
        self.options = options or PeripheralOptions()
        info = identity.kind.info
        self._spot = info.spot
        self._services = info.services
        self._controller: SimController | None = None
        self._device: Device | None = None
        self._chars: dict[uuid.UUID, Characteristic[bytes]] = {}
        self._indicated: frozenset[uuid.UUID] = frozenset()
        self._radio: RadioState | None = None
        self._battery: int | None = None
        self._contact: bool | None = None
        self._pending: list[Emission] = []
        self._live: deque[Emission] = deque()
        self._connection: Connection | None = None
        self._connected_at = 0.0
        self._release_at: float | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_values: dict[uuid.UUID, Measurement] = {}
        self._last_disconnect_reason: int | None = None
        self._warned_truncation = False
        self.delivered = 0
        self.missed = 0
        self.overflow = 0
        self.truncated = 0
        self.errors = 0

    @property
    def id(self) -> str:
        return self.identity.id

    @property
    def controller(self) -> SimController:
        if self._controller is None:
            raise RuntimeError("the peripheral is not open")
        return self._controller

    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError("the peripheral is not open")
        return self._device

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        identity = self.identity
        controller = SimController(f"sim-{identity.id}", link=self._link)
        controller.on_air = False  # silent until the first update says the radio is on
        device = Device(
            name=identity.name,
            address=hci.Address(identity.address),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        advertising, scan_response = advertising_payloads(identity.name, self._services)
        device.advertising_data = advertising
        device.scan_response_data = scan_response
        device.add_services(self._build_services())
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        device.on("characteristic_subscription", self._on_subscription)
        self._controller, self._device = controller, device
        self._indicated = frozenset(
            u for u, c in self._chars.items() if c.properties & _Props.INDICATE
        )
        try:
            await device.power_on()
        except BaseException:
            self._link.remove_controller(controller)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        controller = self.controller
        controller.on_air = False
        controller.drop_links(_POWER_OFF)
        controller.le_legacy_advertiser.stop()
        for advertising_set in controller.advertising_sets.values():
            advertising_set.stop()
        self._link.remove_controller(controller)

    def _build_services(self) -> list[Service]:
        services: list[Service] = []
        for service_uuid in self._services:
            if service_uuid == _sig(sig.BATTERY_SERVICE):
                battery: Characteristic[bytes] = Characteristic(
                    _bumble_uuid(_BATTERY_LEVEL),
                    _Props.READ | _Props.NOTIFY,
                    Characteristic.READABLE,
                    AttributeValue(read=self._read_battery),
                )
                self._chars[_BATTERY_LEVEL] = battery
                services.append(Service(_bumble_uuid(service_uuid), [battery]))
            elif service_uuid == _sig(sig.DEVICE_INFORMATION_SERVICE):
                services.append(self._device_information_service())
            else:
                chars: list[Characteristic[bytes]] = []
                for spec in _STATIC_SERVICES[service_uuid]:
                    readable = bool(spec.properties & _Props.READ)
                    char: Characteristic[bytes] = Characteristic(
                        _bumble_uuid(spec.uuid),
                        spec.properties,
                        Characteristic.READABLE if readable else Characteristic.Permissions(0),
                        spec.value,
                    )
                    if spec.properties & (_Props.NOTIFY | _Props.INDICATE):
                        self._chars[spec.uuid] = char
                    chars.append(char)
                services.append(Service(_bumble_uuid(service_uuid), chars))
        return services

    def _device_information_service(self) -> Service:
        chars: dict[int, Characteristic[bytes]] = {}
        for key, text in self.identity.device_information.items():
            code = _DEVICE_INFORMATION_FIELDS.get(key.lower())
            if code is None:
                logger.debug("device=%s unknown device information %r ignored", self.id, key)
                continue
            chars[code] = Characteristic(
                core.UUID.from_16_bits(code),
                _Props.READ,
                Characteristic.READABLE,
                text.encode("utf-8"),
            )
        return Service(
            core.UUID.from_16_bits(sig.DEVICE_INFORMATION_SERVICE),
            [chars[code] for code in sorted(chars)],
        )

    def _read_battery(self, _connection: Connection) -> bytes:
        return bytes([self._battery if self._battery is not None else 100])

    # -- feeding -----------------------------------------------------------------------------

    def update(
        self,
        radio: RadioState,
        battery: int,
        contact: bool,
        emissions: Sequence[Emission] = (),
    ) -> None:
        """Apply the firmware's state at one tick. Never blocks: radio changes take effect
        on the air at once, emissions are queued for :meth:`run` (bounded)."""
        self._battery = max(0, min(100, battery))
        self._contact = contact
        if self._radio is RadioState.DEAD:
            return
        if radio is not self._radio:
            self._set_radio(radio)
        if radio is RadioState.DEAD:
            return
        for emission in emissions:
            if self._spot or emission.characteristic in self._indicated:
                if len(self._pending) >= self.options.pending_limit:
                    del self._pending[0]
                    self.overflow += 1
                self._pending.append(emission)
            elif radio is RadioState.ON:
                if len(self._live) >= self.options.live_limit:
                    self._live.popleft()
                    self.overflow += 1
                self._live.append(emission)
            else:
                self.missed += 1
        self._wake.set()

    def _set_radio(self, radio: RadioState) -> None:
        previous, self._radio = self._radio, radio
        controller = self.controller
        controller.on_air = radio is RadioState.ON
        dropped = 0 if radio is RadioState.ON else controller.drop_links(_CONNECTION_TIMEOUT)
        if radio is not RadioState.ON:
            self.missed += len(self._live)
            self._live.clear()
        logger.log(
            logging.DEBUG if previous is None else logging.INFO,
            "device=%s radio=%s previous=%s links_dropped=%d",
            self.id,
            radio.value,
            previous.value if previous is not None else "-",
            dropped,
        )
        self._wake.set()

    # -- Bumble callbacks (nothing slow here) ------------------------------------------------

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self._connected_at = asyncio.get_running_loop().time()
        self._release_at = None
        connection.on(
            Connection.EVENT_DISCONNECTION,
            lambda reason: self._on_disconnection(connection, reason),
        )
        logger.info("device=%s connected central=%s", self.id, connection.peer_address)
        self._wake.set()

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if self._connection is connection:
            self._connection = None
        self._last_disconnect_reason = reason
        logger.info(
            "device=%s disconnected central=%s reason=0x%02X",
            self.id,
            connection.peer_address,
            reason,
        )
        self._wake.set()

    def _on_subscription(
        self,
        _connection: Connection,
        _characteristic: Characteristic[bytes],
        _notify: bool,
        _indicate: bool,
    ) -> None:
        self._wake.set()

    # -- the device's task -------------------------------------------------------------------

    def stop_requested(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Ask :meth:`run` to return once the step under way is done (a task cancelled in the
        middle of an HCI command leaves Bumble's host expecting the response)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Advertise, deliver and release as the state asks, until :meth:`stop` or
        cancellation."""
        loop = asyncio.get_running_loop()
        while not self.stop_requested():
            self._wake.clear()
            try:
                await self._step()
                _reraise_lost_cancellation()
            except Exception:
                # A failing device is logged once, counted and skipped: it tries again at its
                # next wake-up (or in a second), and the other devices never notice.
                self.errors += 1
                if self.errors == 1:
                    logger.exception("device=%s peripheral step failed", self.id)
                await asyncio.sleep(1.0)
                continue
            if self.stop_requested():
                return
            deadline = self._next_deadline()
            delay = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _next_deadline(self) -> float | None:
        if not self._spot or self._connection is None:
            return None
        if self._release_at is not None:
            return self._release_at
        return self._connected_at + self.options.subscribe_timeout

    def _wants_to_advertise(self) -> bool:
        if self._radio is not RadioState.ON or self._connection is not None:
            return False
        return bool(self._pending) or not self._spot

    async def _step(self) -> None:
        if self._radio is None:
            return  # no update yet
        await self._sync_advertising()
        connection = self._connection
        if connection is None or self._radio is not RadioState.ON:
            return
        await self._deliver_pending(connection)
        await self._deliver_live(connection)
        if self._spot and self._connection is connection:
            await self._maybe_release(connection)

    async def _sync_advertising(self) -> None:
        device = self.device
        advertising_set = device.legacy_advertising_set
        active = advertising_set is not None and advertising_set.enabled
        wanted = self._wants_to_advertise()
        if wanted and not active:
            await device.stop_advertising()  # clears a set a connection ended
            interval = self.options.advertising_interval * 1000
            await device.start_advertising(
                advertising_interval_min=interval, advertising_interval_max=interval
            )
        elif not wanted and advertising_set is not None:
            await device.stop_advertising()

    def _subscribed(self, connection: Connection, characteristic: Characteristic[bytes]) -> bool:
        cccds = self.device.gatt_server.subscribers.get(connection, {})
        cccd = cccds.get(characteristic.handle)
        if cccd is None or len(cccd) != 2:
            return False
        bit = 0x02 if characteristic.properties & _Props.INDICATE else 0x01
        return bool(cccd[0] & bit)

    async def _deliver_pending(self, connection: Connection) -> None:
        index = 0
        while index < len(self._pending) and self._connection is connection:
            emission = self._pending[index]
            characteristic = self._chars.get(emission.characteristic)
            if characteristic is None or not self._subscribed(connection, characteristic):
                index += 1
                continue
            if not await self._send(connection, characteristic, emission):
                return
            for position, item in enumerate(self._pending):
                if item is emission:
                    del self._pending[position]
                    break
        if self._spot and not self._pending_for(connection):
            if self._release_at is None:
                loop = asyncio.get_running_loop()
                subscribed = any(self._subscribed(connection, c) for c in self._chars.values())
                if subscribed:
                    self._release_at = loop.time() + self.options.release_after
        else:
            self._release_at = None

    def _pending_for(self, connection: Connection) -> bool:
        return any(
            (c := self._chars.get(e.characteristic)) is not None and self._subscribed(connection, c)
            for e in self._pending
        )

    async def _deliver_live(self, connection: Connection) -> None:
        while self._live and self._connection is connection:
            emission = self._live.popleft()
            characteristic = self._chars.get(emission.characteristic)
            if characteristic is None:
                logger.warning(
                    "device=%s emission for unserved characteristic %s",
                    self.id,
                    emission.characteristic,
                )
                self.missed += 1
                continue
            if not self._subscribed(connection, characteristic):
                self.missed += 1
                continue
            if not await self._send(connection, characteristic, emission):
                self.missed += 1

    async def _maybe_release(self, connection: Connection) -> None:
        now = asyncio.get_running_loop().time()
        if self._release_at is not None:
            if now < self._release_at:
                return
            reason = "measurements sent"
        elif now >= self._connected_at + self.options.subscribe_timeout and not any(
            self._subscribed(connection, c) for c in self._chars.values()
        ):
            reason = "central never subscribed"
        else:
            return
        logger.info("device=%s releasing central=%s: %s", self.id, connection.peer_address, reason)
        self._release_at = None
        try:
            await connection.disconnect(_REMOTE_USER_TERMINATED)
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            logger.warning("device=%s release failed: %s", self.id, exc)

    async def _send(
        self,
        connection: Connection,
        characteristic: Characteristic[bytes],
        emission: Emission,
    ) -> bool:
        payload = emission.payload
        room = connection.att_mtu - 3
        if len(payload) > room:
            self.truncated += 1
            if not self._warned_truncation:
                self._warned_truncation = True
                logger.warning(
                    "device=%s payload of %d bytes truncated to ATT MTU room %d",
                    self.id,
                    len(payload),
                    room,
                )
            payload = payload[:room]
        server = self.device.gatt_server
        if characteristic.properties & _Props.INDICATE:
            method = DeliveryMethod.INDICATE
            if not await self._indicate(connection, characteristic, payload):
                return False
        else:
            method = DeliveryMethod.NOTIFY
            await server.notify_subscriber(connection, characteristic, payload, force=True)
        self._log.record(
            Delivery(
                device=self.id,
                characteristic=emission.characteristic,
                payload=payload,
                method=method,
                sim_time=self._sim_clock(),
                measured_at=emission.time,
                wall_time=self._wall_clock(),
                central=str(connection.peer_address),
            )
        )
        self._last_values[emission.characteristic] = emission.value
        self.delivered += 1
        return True

    async def _indicate(
        self, connection: Connection, characteristic: Characteristic[bytes], payload: bytes
    ) -> bool:
        """Indicate and wait for the confirmation or the end of the link, whichever first
        (Bumble's own wait does not end when the link does)."""
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[int] = loop.create_future()

        def on_disconnection(reason: int) -> None:
            if not gone.done():
                gone.set_result(reason)

        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)
        task = asyncio.create_task(
            self.device.gatt_server.indicate_subscriber(
                connection, characteristic, payload, force=True
            ),
            name=f"indicate:{self.id}",
        )
        waiters: list[asyncio.Future[Any]] = [task, gone]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connection.remove_listener(Connection.EVENT_DISCONNECTION, on_disconnection)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            return False
        error = task.exception()
        if error is not None:
            logger.warning("device=%s indication not confirmed: %s", self.id, error)
            return False
        return True

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> PeripheralStatus:
        device = self._device
        advertising_set = device.legacy_advertising_set if device is not None else None
        connection = self._connection
        return PeripheralStatus(
            id=self.id,
            kind=self.identity.kind,
            name=self.identity.name,
            address=self.identity.address,
            radio=self._radio,
            central=str(connection.peer_address) if connection is not None else None,
            advertising=advertising_set is not None and advertising_set.enabled,
            battery=self._battery,
            contact=self._contact,
            pending=len(self._pending),
            delivered=self.delivered,
            missed=self.missed,
            overflow=self.overflow,
            truncated=self.truncated,
            last_values=dict(self._last_values),
            last_disconnect_reason=self._last_disconnect_reason,
        )
