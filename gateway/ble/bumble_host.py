"""One Bumble host stack on one HCI transport, shared by every Bumble scanner and client.

bleak's BlueZ backend talks to one BlueZ daemon that owns the radio; here :class:`BumbleHost`
plays that daemon's part for the simulator: it opens an HCI transport (``tcp-client:HOST:PORT``
to a virtual controller, or anything else :func:`bumble.transport.open_transport` accepts),
runs a :class:`bumble.device.Device` as an LE central with a random static address, and
arbitrates what the controller can do only once at a time:

* **Scanning** is shared: every scanner adds a listener, the controller scans while there is
  at least one (actively if any listener asked for active scanning), and each advertisement
  goes to every listener.
* **Connecting** is serialised: a controller has one LE Create Connection pending at a time.
  A connection attempt that times out or is cancelled is withdrawn with LE Create Connection
  Cancel, and the host waits (briefly) for the controller to confirm it. Bumble's stock
  virtual controller never confirms (it answers the command and keeps the attempt pending):
  the attempt is then given up, reported as unconfirmed, and the controller refuses the next
  attempt with Command Disallowed until that peer shows up; a connection the controller
  makes behind our back like that is disconnected as soon as it appears.

The host is created by the caller (one per gateway process), entered with ``async with``,
and handed to :func:`gateway.ble.make_backends`. There is no module-level instance.

The errors of this package live here too, because every other module of it depends on this
one: they all derive from :class:`BumbleBackendError`, which is both the gateway's
:class:`~gateway.errors.GatewayError` and a :class:`bleak.exc.BleakError`, so callers written
against bleak need no Bumble-specific handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import core, hci
from bumble.device import Advertisement, Connection, Device
from bumble.transport import open_transport
from bumble.transport.common import Transport

from gateway.errors import GatewayError

__all__ = [
    "BumbleBackendError",
    "BumbleConnectError",
    "BumbleConnectTimeoutError",
    "BumbleDeviceDetails",
    "BumbleDeviceNotFoundError",
    "BumbleDisconnectedError",
    "BumbleGATTError",
    "BumbleHost",
    "BumbleHostError",
    "BumbleTimeoutError",
    "ScanListener",
    "error_name",
    "uuid_text",
]

logger = logging.getLogger(__name__)

ScanListener = Callable[[Advertisement], None]
"""Called with every advertisement (already merged with its scan response) while scanning."""

_DISCONNECT_REASONS_KEPT: Final = 256


def error_name(code: int | None) -> str:
    """``"CONNECTION_TIMEOUT_ERROR (0x08)"`` for an HCI error code; ``"none"`` for ``None``."""
    if code is None:
        return "none"
    return f"{hci.HCI_ErrorCode(code).name} (0x{code:02X})"


def uuid_text(value: core.UUID) -> str:
    """A Bumble UUID in bleak's form: 128-bit, lower case, with hyphens
    (``"00002a37-0000-1000-8000-00805f9b34fb"``)."""
    return str(uuid.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


# --- errors ------------------------------------------------------------------------------


class BumbleBackendError(GatewayError, BleakError):
    """Root of the errors of the Bumble backend: a :class:`~gateway.errors.GatewayError`
    like every error of the gateway, and a :class:`~bleak.exc.BleakError`, so code written
    against bleak catches it as it catches the BlueZ backend's errors."""


class BumbleHostError(BumbleBackendError):
    """The host cannot open its HCI transport or bring the controller up, is not open, or
    lost its transport."""

    def __init__(self, transport: str, message: str) -> None:
        super().__init__(f"{message} (HCI transport {transport})")
        self.transport = transport


class BumbleTimeoutError(BumbleBackendError, TimeoutError):
    """Something did not happen in time. Also a :class:`TimeoutError`, which is what the
    BlueZ backend raises in these cases."""


class BumbleConnectError(BumbleBackendError):
    """An LE connection could not be made. ``status`` is the controller's HCI error code when
    it gave one."""

    def __init__(self, address: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{address}: {message}")
        self.address = address
        self.status = status


class BumbleConnectTimeoutError(BumbleConnectError, BumbleTimeoutError):
    """Connecting took longer than the timeout. Also a :class:`TimeoutError`, as with the
    BlueZ backend, so bleak-retry-connector counts it as a timeout.

    ``cancel_confirmed`` says whether the controller confirmed the withdrawal of the
    attempt; when it did not, the controller may refuse the next attempt (see the module
    docstring)."""

    def __init__(
        self, address: str, timeout: float, *, cancel_confirmed: bool, queued: bool = False
    ) -> None:
        if queued:
            outcome = "still waiting for another connection attempt to end"
        elif cancel_confirmed:
            outcome = "attempt cancelled"
        else:
            outcome = "the controller did not confirm the cancel; it may still hold the attempt"
        super().__init__(address, f"no connection within {timeout:.1f} s ({outcome})")
        self.timeout = timeout
        self.cancel_confirmed = cancel_confirmed


class BumbleDeviceNotFoundError(BumbleBackendError, BleakDeviceNotFoundError):
    """A client was given a bare address and no advertisement from it was seen in time."""

    def __init__(self, address: str, timeout: float) -> None:
        super().__init__(address, f"device {address} was not found within {timeout:.1f} s")


class BumbleDisconnectedError(BumbleBackendError):
    """The operation needs a link that is down, or that went down while it ran. ``reason``
    is the HCI reason of the disconnection when known (0x08: connection timeout)."""

    def __init__(self, address: str, reason: int | None, operation: str) -> None:
        super().__init__(f"{address}: {operation}: not connected (reason {error_name(reason)})")
        self.address = address
        self.reason = reason


class BumbleGATTError(BumbleBackendError, BleakGATTProtocolError):
    """The peripheral answered with an ATT Error Response. Also bleak's
    :class:`~bleak.exc.BleakGATTProtocolError` with the same ``code``."""

    def __init__(self, error_code: int, *, handle: int) -> None:
        super().__init__(error_code)
        self.handle = handle


# --- devices -----------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` of the devices the Bumble scanner reports: the address with its
    type (public or random), which connecting needs and the address text lacks. Not a dict,
    so bleak-retry-connector's BlueZ-only paths (which look for ``details["path"]``) leave
    these devices alone."""

    address: hci.Address


@dataclass(slots=True)
class _ScanRequest:
    listener: ScanListener
    active: bool


@dataclass(slots=True, frozen=True)
class _Withdrawal:
    """How the withdrawal of a connection attempt ended."""

    connection: Connection | None
    """The connection, when it was made before the controller took the cancel."""
    confirmed: bool
    """The controller reported the attempt cancelled (or made the connection)."""


# --- the host ----------------------------------------------------------------------------


class BumbleHost:
    """A Bumble host on one HCI transport, used as ``async with BumbleHost(spec) as host``.

    ``transport`` is a :func:`bumble.transport.open_transport` name, e.g.
    ``"tcp-client:127.0.0.1:9001"``. ``address`` is the host's random static address
    (``"C3:..."``; generated when ``None``). ``open_timeout`` bounds opening the transport and
    resetting the controller; ``cancel_timeout`` bounds the wait for the controller to
    confirm a withdrawn connection attempt, and ``disconnect_timeout`` each disconnection
    made while closing.
    """

    def __init__(
        self,
        transport: str,
        *,
        name: str = "CareWatch gateway",
        address: str | None = None,
        open_timeout: float = 10.0,
        cancel_timeout: float = 2.0,
        disconnect_timeout: float = 2.0,
    ) -> None:
        self._spec = transport
        self._name = name
        self._address = hci.Address(address) if address is not None else None
        self._open_timeout = open_timeout
        self._cancel_timeout = cancel_timeout
        self._disconnect_timeout = disconnect_timeout

        self._stack: contextlib.AsyncExitStack | None = None
        self._device: Device | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._lost = False
        self._closing = False

        self._scan_requests: dict[object, _ScanRequest] = {}
        self._scan_lock = asyncio.Lock()
        self._scanning: bool | None = None  # None: not scanning; else whether actively

        self._connect_lock = asyncio.Lock()
        self._initiating: hci.Address | None = None
        self._stale_attempt: hci.Address | None = None
        self._reasons: OrderedDict[str, int] = OrderedDict()

        self.listener_errors = 0
        """Exceptions raised by scan listeners (each is logged, the first and every 100th)."""
        self.reaped_connections = 0
        """Connections the controller made that nobody asked for, disconnected on sight."""

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise BumbleHostError(self._spec, "host is already open")
        async with contextlib.AsyncExitStack() as stack:
            transport = await self._open_transport()
            stack.push_async_callback(transport.close)
            address = self._address or hci.Address.generate_static_address()
            device = Device.with_hci(self._name, address, transport.source, transport.sink)
            try:
                async with asyncio.timeout(self._open_timeout):
                    await device.power_on()
            except TimeoutError as exc:
                raise BumbleHostError(
                    self._spec, f"controller did not come up within {self._open_timeout:.1f} s"
                ) from exc
            except (core.BaseBumbleError, OSError) as exc:
                raise BumbleHostError(self._spec, f"controller did not come up: {exc}") from exc
            # Bumble resets this to None after each connection attempt, and asserts it is set
            # when a central connection completes: keep it set so that a connection the
            # controller completes late (after a cancel it ignored) is still accepted, and
            # then disconnected by _on_connection.
            device.connect_own_address_type = hci.OwnAddressType.RANDOM
            device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            device.on(Device.EVENT_CONNECTION, self._on_connection)
            device.on(Device.EVENT_FLUSH, self._on_flush)
            self._tasks = await stack.enter_async_context(asyncio.TaskGroup())
            self._device = device
            self._lost = False
            self._closing = False
            self._stack = stack.pop_all()
        logger.info("bumble host up: transport=%s address=%s", self._spec, self.address)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        self._closing = True
        try:
            await self._shut_down_radio()
        finally:
            for task in list(self._running):
                task.cancel()
            self._device = None
            self._tasks = None
            self._scan_requests.clear()
            self._scanning = None
            await stack.aclose()
            logger.info("bumble host down: transport=%s", self._spec)

    async def _open_transport(self) -> Transport:
        try:
            async with asyncio.timeout(self._open_timeout):
                return await open_transport(self._spec)
        except TimeoutError as exc:
            raise BumbleHostError(
                self._spec, f"transport did not open within {self._open_timeout:.1f} s"
            ) from exc
        except (OSError, ValueError, core.BaseBumbleError) as exc:
            raise BumbleHostError(self._spec, f"cannot open HCI transport: {exc}") from exc

    async def _shut_down_radio(self) -> None:
        device = self._device
        if device is None or self._lost:
            return
        for connection in list(device.connections.values()):
            with contextlib.suppress(TimeoutError, core.BaseBumbleError):
                async with asyncio.timeout(self._disconnect_timeout):
                    await connection.disconnect()
        with contextlib.suppress(TimeoutError, core.BaseBumbleError):
            async with asyncio.timeout(self._disconnect_timeout):
                if self._scanning is not None:
                    await device.stop_scanning()
                await device.power_off()  # flushes: connected clients see a disconnection

    # --- state ---------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        return self._spec

    @property
    def address(self) -> str:
        """The host's own address (``"C3:14:..."``), once open."""
        return self.device.random_address.to_string(with_type_qualifier=False)

    @property
    def device(self) -> Device:
        """The Bumble device, for the scanner and client modules; raises if not usable."""
        if self._device is None:
            raise BumbleHostError(self._spec, "host is not open")
        if self._lost:
            raise BumbleHostError(self._spec, "HCI transport lost")
        return self._device

    @property
    def is_open(self) -> bool:
        return self._device is not None and not self._lost

    def last_disconnect_reason(self, address: str) -> int | None:
        """The HCI reason of the last disconnection of ``address`` ("AA:BB:..."), if any:
        0x08 is a connection (supervision) timeout, 0x13 the peripheral's own decision."""
        return self._reasons.get(address.upper())

    def _on_flush(self) -> None:
        if not self._closing and not self._lost:
            logger.warning("bumble host lost its HCI transport: transport=%s", self._spec)
            self._lost = True
        self._scanning = None

    # --- scanning ------------------------------------------------------------------------

    async def add_scan_listener(self, listener: ScanListener, *, active: bool) -> object:
        """Start delivering advertisements to ``listener`` (starting the controller's scan
        if needed) and return a token for :meth:`remove_scan_listener`."""
        token = object()
        async with self._scan_lock:
            self._scan_requests[token] = _ScanRequest(listener, active)
            try:
                await self._apply_scan_mode()
            except BaseException:
                del self._scan_requests[token]
                raise
        return token

    async def remove_scan_listener(self, token: object) -> None:
        """Stop delivering to the listener of ``token``; the last one stops the scan."""
        async with self._scan_lock:
            if self._scan_requests.pop(token, None) is None:
                return
            if self.is_open:
                await self._apply_scan_mode()

    async def _apply_scan_mode(self) -> None:
        device = self.device
        wanted: bool | None = None
        if self._scan_requests:
            wanted = any(request.active for request in self._scan_requests.values())
        if wanted == self._scanning:
            return
        try:
            if self._scanning is not None:
                await device.stop_scanning()
                self._scanning = None
            if wanted is not None:
                await device.start_scanning(active=wanted, filter_duplicates=False)
                self._scanning = wanted
        except core.BaseBumbleError as exc:
            raise BumbleHostError(self._spec, f"controller refused to scan: {exc}") from exc
        logger.debug("scanning: %s", {None: "off", True: "active", False: "passive"}[wanted])

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for request in list(self._scan_requests.values()):
            try:
                request.listener(advertisement)
            except Exception:
                self.listener_errors += 1
                if self.listener_errors == 1 or self.listener_errors % 100 == 0:
                    logger.exception("scan listener failed (%d so far)", self.listener_errors)

    async def find_address(self, address: str) -> hci.Address:
        """Scan (actively) until ``address`` ("AA:BB:...") advertises and return it with its
        address type. Waits as long as it takes: bound it with ``asyncio.timeout``."""
        wanted = address.upper()
        found: asyncio.Future[hci.Address] = asyncio.get_running_loop().create_future()

        def listener(advertisement: Advertisement) -> None:
            seen = advertisement.address
            if not found.done() and seen.to_string(with_type_qualifier=False) == wanted:
                found.set_result(seen)

        token = await self.add_scan_listener(listener, active=True)
        try:
            return await found
        finally:
            await self.remove_scan_listener(token)

    # --- connecting ----------------------------------------------------------------------

    # The timeout is a deadline this method handles itself (the attempt is withdrawn from
    # the controller before it gives up), not a plain cancellation: hence ASYNC109's noqa.
    async def connect(self, address: hci.Address, *, timeout: float) -> Connection:  # noqa: ASYNC109
        """Make an LE connection to ``address`` as central within ``timeout`` seconds.

        Raises :class:`BumbleConnectTimeoutError` when it takes longer (the attempt is
        withdrawn first, which may add up to ``cancel_timeout`` seconds) and
        :class:`BumbleConnectError` when the controller refuses or fails the attempt. When the
        calling task is cancelled the attempt is withdrawn the same way before the
        cancellation goes on.
        """
        device = self.device
        text = address.to_string(with_type_qualifier=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._connect_lock.acquire()
        except TimeoutError as exc:
            raise BumbleConnectTimeoutError(
                text, timeout, cancel_confirmed=True, queued=True
            ) from exc
        try:
            if device.find_connection_by_bd_addr(address, transport=core.PhysicalTransport.LE):
                raise BumbleConnectError(
                    text,
                    "already connected",
                    status=hci.HCI_ErrorCode.CONNECTION_ALREADY_EXISTS_ERROR,
                )
            return await self._initiate(device, address, text, deadline, timeout)
        finally:
            self._connect_lock.release()

    async def _initiate(
        self,
        device: Device,
        address: hci.Address,
        text: str,
        deadline: float,
        timeout: float,  # noqa: ASYNC109 (see connect)
    ) -> Connection:
        self._initiating = address
        attempt = asyncio.create_task(
            device.connect_le(address, own_address_type=hci.OwnAddressType.RANDOM, timeout=None),
            name=f"bumble-connect-{text}",
        )
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    # wait() neither raises the attempt's error nor cancels the attempt when
                    # this task is cancelled: the attempt is withdrawn properly instead.
                    await asyncio.wait({attempt})
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                withdrawal = await self._withdraw(device, attempt, text)
                if withdrawal.connection is not None:
                    self._reap(withdrawal.connection, "connection made while cancelled")
                raise
            if not attempt.done():
                withdrawal = await self._withdraw(device, attempt, text)
                if withdrawal.connection is not None:
                    return withdrawal.connection
                raise BumbleConnectTimeoutError(
                    text, timeout, cancel_confirmed=withdrawal.confirmed
                )
            return self._outcome(attempt, text)
        finally:
            if not attempt.done():
                attempt.cancel()
                await asyncio.wait({attempt})
            self._initiating = None
            # Bumble's connect_le resets it on the way out; see __aenter__.
            device.connect_own_address_type = hci.OwnAddressType.RANDOM

    def _outcome(self, attempt: asyncio.Task[Connection], text: str) -> Connection:
        if attempt.cancelled():
            raise BumbleConnectError(text, "connection attempt aborted: HCI transport lost")
        error = attempt.exception()
        if error is None:
            return attempt.result()
        if isinstance(error, core.BaseBumbleError | OSError):
            raise self._connect_error(text, error) from error
        raise error

    async def _withdraw(
        self, device: Device, attempt: asyncio.Task[Connection], text: str
    ) -> _Withdrawal:
        """Cancel the pending LE connection and wait for the controller's verdict. Bounded
        by ``cancel_timeout``; raises only CancelledError, when this task is cancelled."""
        if not attempt.done():
            try:
                async with asyncio.timeout(self._cancel_timeout):
                    await device.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
            except (TimeoutError, core.BaseBumbleError) as exc:
                # Command Disallowed: nothing pending any more; the attempt ended meanwhile.
                logger.debug("device=%s connection cancel refused: %s", text, exc)
            await asyncio.wait({attempt}, timeout=self._cancel_timeout)
        if attempt.done() and not attempt.cancelled():
            error = attempt.exception()
            if error is None:
                return _Withdrawal(attempt.result(), confirmed=True)
            if isinstance(error, core.ConnectionError):
                logger.debug("device=%s connection attempt withdrawn: %s", text, error)
                return _Withdrawal(None, confirmed=True)
            logger.warning("device=%s connection attempt failed while withdrawn: %s", text, error)
            return _Withdrawal(None, confirmed=False)
        self._stale_attempt = self._initiating
        logger.warning(
            "device=%s controller did not confirm LE Create Connection Cancel within %.1f s; "
            "it may refuse new connections until that device appears",
            text,
            self._cancel_timeout,
        )
        return _Withdrawal(None, confirmed=False)

    def _connect_error(self, text: str, exc: BaseException) -> BumbleConnectError:
        if isinstance(exc, hci.HCI_Error | core.ConnectionError):
            status = exc.error_code
            message = f"connection failed: {error_name(status)}"
            stale = self._stale_attempt
            if status == hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR and stale is not None:
                message += f"; the controller still holds the attempt to {stale} it did not cancel"
            return BumbleConnectError(text, message, status=status)
        return BumbleConnectError(text, f"connection failed: {exc}")

    def _on_connection(self, connection: Connection) -> None:
        if connection.role != hci.Role.CENTRAL:
            return
        address = connection.peer_address.to_string(with_type_qualifier=False)
        connection.on(
            Connection.EVENT_DISCONNECTION,
            lambda reason: self._note_disconnection(address, reason),
        )
        if self._initiating is not None and connection.peer_address == self._initiating:
            return
        if self._stale_attempt is not None and connection.peer_address == self._stale_attempt:
            self._stale_attempt = None
        self._reap(connection, "connection nobody asked for")

    def _note_disconnection(self, address: str, reason: int) -> None:
        if self._lost or self._closing:
            return  # Bumble's flush reports every link as disconnected with reason 0
        self._reasons[address] = reason
        self._reasons.move_to_end(address)
        while len(self._reasons) > _DISCONNECT_REASONS_KEPT:
            self._reasons.popitem(last=False)

    def _reap(self, connection: Connection, why: str) -> None:
        """Disconnect ``connection`` in the background (a task of the host's group)."""
        address = connection.peer_address.to_string(with_type_qualifier=False)
        logger.warning("device=%s disconnecting: %s", address, why)
        self.reaped_connections += 1
        if self._tasks is None:
            return
        task = self._tasks.create_task(self._disconnect(connection), name=f"bumble-reap-{address}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _disconnect(self, connection: Connection) -> None:
        try:
            async with asyncio.timeout(self._disconnect_timeout):
                await connection.disconnect()
        except (TimeoutError, core.BaseBumbleError) as exc:
            logger.debug("disconnect of %s failed: %s", connection.peer_address, exc)
