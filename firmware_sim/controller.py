"""Bumble's virtual radio, with the fixes the simulator needs.

:class:`SimController` is a small subclass of :class:`bumble.controller.Controller` (bumble
0.0.236); :class:`SimLink` a small subclass of :class:`bumble.link.LocalLink`. What they
change, and why:

* **LE Create Connection Cancel really cancels.** The stock handler answers SUCCESS and does
  nothing else: the controller keeps its pending connection, so the host's next LE Create
  Connection is refused with COMMAND_DISALLOWED (and a host that waits for the cancel's
  outcome waits forever, because no LE Connection Complete ever comes; worse, the forgotten
  connection is silently made the next time that peer advertises). Here, as the Core
  specification requires (Vol 4, Part E, 7.8.13), the pending connection is dropped, the
  Command Complete is followed by an LE Connection Complete with status Unknown Connection
  Identifier (0x02), "connection cancelled by host", and a cancel with nothing pending is
  refused with Command Disallowed (0x0C).
* **HCI Reset forgets the LE state.** The stock reset is a no-op, so a gateway that restarts
  and reconnects to the HCI transport finds its old connections still held by the controller:
  the peripherals stay "connected" to a host that no longer exists and never advertise again.
  Here a reset drops every LE link (the peer sees a supervision timeout, 0x08, as it would
  from a real controller that reset), stops advertising and scanning and clears a pending
  connection.
* **Radio range.** :attr:`SimController.on_air` set to ``False`` stops the controller from
  sending or hearing advertising PDUs, and :meth:`SimController.drop_links` ends its links the
  way a lost radio does: both ends report Connection Timeout (0x08). The link has no
  supervision timer, so the peer's end is closed at the same moment with that reason.
  (Links ended this way, or by a reset, end at both controllers at once; data a host sent
  before it heard of the end is dropped quietly, as a real controller does, instead of
  Bumble's warning per packet.)
* **Scan responses.** The stock controller reports an advertiser's advertising data a second
  time where the scan response belongs, so a name carried only in the scan response (the
  31-byte legacy payload rarely fits a 128-bit service UUID and a name) never reaches the
  central. On a :class:`SimLink`, the scanning :class:`SimController` reports the advertiser's
  real scan response data.
* **Duplicate filtering.** The stock controller records the host's Filter_Duplicates and
  ignores it: a host scanning N advertisers gets every PDU of every one (two reports each,
  over the HCI transport, ten times a second per device). Here, while it is enabled, an
  advertiser's report is passed once per scan (again if its data changes).
* **The link's cost does not grow with the square of the devices.** Stock
  :meth:`LocalLink.send_advertising_pdu` schedules a callback on every other controller for
  every advertising PDU, and :meth:`LocalLink.find_le_controller` walks every controller and
  connection for every ACL packet, so N devices cost N² per advertising interval and per
  notification round. :class:`SimLink` delivers advertising PDUs only to controllers that may
  be listening (any that is not a :class:`SimController`, and those that have ever scanned,
  initiated a connection or synced to periodic advertising), and only when they are
  (scanning, initiating or syncing); a CONNECT_IND still goes to every controller (only the
  addressed advertiser acts on it). It finds a packet's destination through a cache checked
  on every use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from types import TracebackType
from typing import Self, TypeVar

from bumble import core, hci, ll
from bumble.controller import Connection, Controller
from bumble.link import LocalLink
from bumble.transport.common import PacketParser

from firmware_sim.scenarios import SimulatorError

__all__ = ["HciServer", "HciServerError", "SimController", "SimLink", "check_listen_spec"]

logger = logging.getLogger(__name__)

_ExtendedReport = hci.HCI_LE_Extended_Advertising_Report_Event
_LegacyReport = hci.HCI_LE_Advertising_Report_Event
_LISTENING_COMMANDS = frozenset(
    {
        hci.HCI_LE_SET_SCAN_ENABLE_COMMAND,
        hci.HCI_LE_SET_EXTENDED_SCAN_ENABLE_COMMAND,
        hci.HCI_LE_CREATE_CONNECTION_COMMAND,
        hci.HCI_LE_EXTENDED_CREATE_CONNECTION_COMMAND,
        hci.HCI_LE_PERIODIC_ADVERTISING_CREATE_SYNC_COMMAND,
    }
)
_HOST_BACKLOG_LIMIT = 16 * 1024 * 1024
"""Bytes of HCI traffic a host may leave unread before :class:`HciServer` drops it."""
_SCAN_ENABLE_COMMANDS = frozenset(
    {hci.HCI_LE_SET_SCAN_ENABLE_COMMAND, hci.HCI_LE_SET_EXTENDED_SCAN_ENABLE_COMMAND}
)


class SimLink(LocalLink):
    """A :class:`~bumble.link.LocalLink` whose cost does not grow with the square of the
    devices, and which remembers each advertiser's scan response data for
    :class:`SimController` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._scan_responses: dict[hci.Address, bytes] = {}
        self._may_listen: set[Controller] = set()
        self._by_address: dict[hci.Address, Controller] = {}

    def add_controller(self, controller: Controller) -> None:
        super().add_controller(controller)
        if not isinstance(controller, SimController):
            self._may_listen.add(controller)  # it does not say when it scans: assume it may

    def remove_controller(self, controller: Controller) -> None:
        super().remove_controller(controller)
        self._may_listen.discard(controller)
        for address in [a for a, c in self._by_address.items() if c is controller]:
            del self._by_address[address]

    def may_listen(self, controller: Controller) -> None:
        """Note that ``controller`` scans, initiates or syncs (now or from now on)."""
        self._may_listen.add(controller)

    def scan_response(self, advertiser: hci.Address) -> bytes | None:
        """The scan response data last advertised by ``advertiser``, if it is known."""
        return self._scan_responses.get(advertiser)

    def find_le_controller(self, address: hci.Address) -> Controller | None:
        cached = self._by_address.get(address)
        if cached is not None and cached in self.controllers and _answers_to(cached, address):
            return cached
        found = super().find_le_controller(address)
        if found is not None:
            self._by_address[address] = found
        return found

    def send_advertising_pdu(
        self, sender_controller: Controller, packet: ll.AdvertisingPdu
    ) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(packet, ll.ConnectInd):
            receivers = [c for c in self.controllers if c is not sender_controller]
        else:
            if isinstance(packet, ll.AdvInd | ll.AdvExtInd):
                self._remember_scan_response(sender_controller, packet.advertiser_address)
            receivers = [
                c for c in self._may_listen if c is not sender_controller and _listening(c)
            ]
        for receiver in receivers:
            loop.call_soon(receiver.on_ll_advertising_pdu, packet)

    def _remember_scan_response(self, sender: Controller, address: hci.Address) -> None:
        legacy = sender.le_legacy_advertiser
        if legacy.enabled and legacy.address == address:
            self._scan_responses[address] = legacy.scan_response_data
            return
        for advertising_set in sender.advertising_sets.values():
            if advertising_set.enabled and advertising_set.address == address:
                self._scan_responses[address] = bytes(advertising_set.scan_response_data)
                return


def _answers_to(controller: Controller, address: hci.Address) -> bool:
    """Whether ``controller`` is the one :meth:`LocalLink.find_le_controller` would pick."""
    if address in (controller.random_address, controller.public_address):
        return True
    return any(c.self_address == address for c in controller.le_connections.values())


def _listening(controller: Controller) -> bool:
    """Whether ``controller`` does anything with an advertising PDU it hears."""
    return bool(
        controller.le_scan_enable
        or controller.pending_le_connection is not None
        or controller.pending_periodic_advertising_syncs
        or controller.established_periodic_advertising_syncs
    )


class SimController(Controller):
    """Bumble's virtual controller with a working connection cancel, a real reset, radio
    range, scan responses and duplicate filtering (see the module docstring)."""

    on_air: bool = True
    """Whether the radio is within range of the others: when ``False`` it neither sends nor
    hears advertising PDUs. Set it back to ``True`` to come back in range."""

    _reported: set[tuple[hci.Address, int, bytes]] | None = None
    """Advertising reports passed to the host during this scan (duplicate filtering)."""

    def on_hci_command_packet(self, command: hci.HCI_Command) -> None:
        if command.op_code in _LISTENING_COMMANDS and isinstance(self.link, SimLink):
            self.link.may_listen(self)
        if command.op_code in _SCAN_ENABLE_COMMANDS:
            self._reported = None  # a new scan (or none): report every advertiser again
        super().on_hci_command_packet(command)

    def drop_links(self, reason: int = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR) -> int:
        """End every LE link as a lost radio does: the host and the peer both see a
        disconnection with ``reason`` (Connection Timeout by default). Returns how many."""
        connections = list(self.le_connections.values())
        for connection in connections:
            self._terminate_at_peer(connection, reason)
            self.on_le_disconnected(connection, reason)
        return len(connections)

    def _terminate_at_peer(self, connection: Connection, reason: int) -> None:
        """End the peer's side of ``connection`` now, as its LL_TERMINATE_IND handler would.

        Doing it at once rather than through a scheduled PDU keeps the two ends consistent:
        nothing the peer sends in between reaches a controller that no longer knows the link,
        and a peer that drops the same link a moment later does not terminate it twice.
        """
        peer = self.link.find_le_controller(connection.peer_address) if self.link else None
        if peer is None:
            logger.debug("controller=%s peer=%s already gone", self.name, connection.peer_address)
            return
        peer_side = peer.le_connections.get(connection.self_address)
        if peer_side is not None:
            peer.on_le_disconnected(peer_side, reason)

    # -- links that a host or peer is still using as they end --------------------------------

    def on_hci_acl_data_packet(self, packet: hci.HCI_AclDataPacket) -> None:
        if self.find_connection_by_handle(packet.connection_handle) is None:
            # The host sent this before it heard the link had ended: a real controller drops
            # it too. (Bumble's warns once per packet.)
            logger.debug("controller=%s dropped data for ended link", self.name)
            return
        super().on_hci_acl_data_packet(packet)

    def on_link_acl_data(
        self, sender_address: hci.Address, transport: core.PhysicalTransport, data: bytes
    ) -> None:
        if transport == core.PhysicalTransport.LE and sender_address not in self.le_connections:
            logger.debug("controller=%s dropped data from ended link", self.name)
            return
        super().on_link_acl_data(sender_address, transport, data)

    # -- LE Create Connection Cancel -------------------------------------------------------

    def on_hci_le_create_connection_cancel_command(
        self, _command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Vol 4, Part E, 7.8.13: cancel the pending LE Create Connection, then report it with
        an LE Connection Complete event carrying Unknown Connection Identifier."""
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        # The Command Complete for this command is queued when this handler returns; queueing
        # the send one loop turn later keeps the order the specification prescribes.
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        logger.debug("controller=%s connection to %s cancelled", self.name, pending.peer_address)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    # -- HCI Reset -------------------------------------------------------------------------

    def on_hci_reset_command(
        self, command: hci.HCI_Reset_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Vol 4, Part E, 7.3.2: forget the LE state (see :meth:`forget_le_state`)."""
        self.forget_le_state()
        return super().on_hci_reset_command(command)

    def forget_le_state(self) -> None:
        """Drop every LE link without telling the host (the peers see a supervision timeout),
        stop advertising and scanning, and clear a pending connection: what a reset, or a
        host that went away, leaves behind."""
        for connection in list(self.le_connections.values()):
            self._terminate_at_peer(connection, hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)
        self.le_connections.clear()
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()
        self.advertising_sets.clear()
        self.le_scan_enable = False
        self._reported = None
        self.pending_le_connection = None
        self.pending_periodic_advertising_syncs.clear()
        self.established_periodic_advertising_syncs.clear()

    # -- Radio range -----------------------------------------------------------------------

    def send_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if self.on_air:
            super().send_advertising_pdu(packet)

    def on_ll_advertising_pdu(self, packet: ll.AdvertisingPdu) -> None:
        if self.on_air:
            super().on_ll_advertising_pdu(packet)

    # -- Scan responses --------------------------------------------------------------------

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if isinstance(packet, _ExtendedReport | _LegacyReport):
            if isinstance(self.link, SimLink):
                packet = self._with_scan_response(packet, self.link)
            if self.filter_duplicates:
                filtered = self._without_duplicates(packet)
                if filtered is None:
                    return
                packet = filtered
        super().send_hci_packet(packet)

    def _without_duplicates(
        self, packet: _ExtendedReport | _LegacyReport
    ) -> _ExtendedReport | _LegacyReport | None:
        reported = self._reported if self._reported is not None else set()
        self._reported = reported

        def fresh(report: _ExtendedReport.Report | _LegacyReport.Report) -> bool:
            key = (report.address, int(report.event_type), bytes(report.data))
            if key in reported:
                return False
            reported.add(key)
            return True

        if isinstance(packet, _ExtendedReport):
            extended = [r for r in packet.reports if fresh(r)]
            return _ExtendedReport(extended) if extended else None
        legacy = [r for r in packet.reports if fresh(r)]
        return _LegacyReport(legacy) if legacy else None

    @staticmethod
    def _with_scan_response(
        packet: _ExtendedReport | _LegacyReport, link: SimLink
    ) -> _ExtendedReport | _LegacyReport:
        if isinstance(packet, _ExtendedReport):
            reports = packet.reports
            if any(r.event_type & _ExtendedReport.EventType.SCAN_RESPONSE for r in reports):
                return _ExtendedReport(
                    [
                        _scan_response_report(r, link)
                        if r.event_type & _ExtendedReport.EventType.SCAN_RESPONSE
                        else r
                        for r in reports
                    ]
                )
        else:
            reports_ = packet.reports
            if any(r.event_type == _LegacyReport.EventType.SCAN_RSP for r in reports_):
                return _LegacyReport(
                    [
                        _scan_response_report(r, link)
                        if r.event_type == _LegacyReport.EventType.SCAN_RSP
                        else r
                        for r in reports_
                    ]
                )
        return packet


_Report = TypeVar("_Report", _ExtendedReport.Report, _LegacyReport.Report)


def _scan_response_report(report: _Report, link: SimLink) -> _Report:
    data = link.scan_response(report.address)
    return report if data is None else dataclasses.replace(report, data=data)


class HciServerError(SimulatorError):
    """The HCI transport server cannot listen where it was asked to."""


def check_listen_spec(spec: str) -> tuple[tuple[str, int] | None, str | None]:
    """Parse ``tcp-server:HOST:PORT`` into ``((host, port), None)`` and
    ``unix-server:PATH`` into ``(None, path)``; raises :class:`HciServerError`."""
    scheme, _, rest = spec.partition(":")
    if scheme == "tcp-server":
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise HciServerError(f"expected tcp-server:HOST:PORT, got {spec!r}")
        return (host, int(port)), None
    if scheme == "unix-server" and rest:
        return None, rest
    raise HciServerError(f"expected tcp-server:HOST:PORT or unix-server:PATH, got {spec!r}")


class HciServer:
    """Exposes one controller to one host process at a time over a TCP or UNIX stream socket,
    with the H4 framing of Bumble's ``tcp-server:`` and ``unix-server:`` transports, so a
    host opens it with ``tcp-client:HOST:PORT`` or ``unix:PATH`` as it would a radio.

    Bumble's own server transports are not used because they leave the listening socket open
    when closed, keep a half-parsed packet across clients and never tell the controller that
    its host went away. Here a host that disconnects makes the controller forget its LE state
    (:meth:`SimController.forget_le_state`: the peripherals see a supervision timeout and
    advertise again), a second host is refused while one is attached, a host that leaves more
    than 16 MiB unread is dropped (the socket's buffer is the only one here, and a radio cannot
    wait), and closing closes everything. ``spec`` is ``tcp-server:HOST:PORT`` (port 0 picks a
    free one, see :attr:`client_spec`) or ``unix-server:PATH``.
    """

    def __init__(self, controller: SimController, spec: str) -> None:
        self._tcp, self._unix = check_listen_spec(spec)
        self.spec = spec
        self._controller = controller
        self._server: asyncio.Server | None = None
        self._client: _HostConnection | None = None
        self.hosts_served = 0
        controller.host = self

    @property
    def client_spec(self) -> str:
        """The transport name a host opens to reach the controller (``tcp-client:...``)."""
        if self._unix is not None:
            return f"unix:{self._unix}"
        if self._server is None or self._tcp is None:
            raise RuntimeError("the HCI server is not listening")
        port = self._server.sockets[0].getsockname()[1]
        return f"tcp-client:{self._tcp[0]}:{port}"

    @property
    def host_attached(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        try:
            if self._tcp is not None:
                self._server = await loop.create_server(
                    lambda: _HostConnection(self), self._tcp[0], self._tcp[1]
                )
            else:
                assert self._unix is not None
                self._server = await loop.create_unix_server(
                    lambda: _HostConnection(self), self._unix
                )
        except OSError as exc:
            raise HciServerError(f"cannot listen on {self.spec}: {exc}") from exc
        logger.info("hci server listening on %s", self.client_spec)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        client = self._client
        if client is not None:
            client.close()
        if server is not None:
            server.close()
            await server.wait_closed()

    # The controller's packet sink: controller -> host.
    def on_packet(self, packet: bytes) -> None:
        if self._client is not None:
            self._client.write(packet)

    def _attach(self, client: _HostConnection) -> bool:
        if self._client is not None:
            logger.warning("hci server: a host is already attached; refusing another")
            return False
        self._client = client
        self.hosts_served += 1
        logger.info("hci server: host attached")
        return True

    def _detach(self, client: _HostConnection) -> None:
        if self._client is client:
            self._client = None
            self._controller.forget_le_state()
            logger.info("hci server: host detached; controller state forgotten")

    def _from_host(self, packet: bytes) -> None:
        self._controller.on_packet(packet)


class _HostConnection(asyncio.Protocol):
    def __init__(self, server: HciServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._parser = PacketParser(self)
        self._attached = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._attached = self._server._attach(self)
        if not self._attached:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._attached:
            return
        try:
            self._parser.feed_data(data)
        except core.InvalidPacketError:
            logger.warning("hci server: invalid packet from host; closing its connection")
            self.close()

    def on_packet(self, packet: bytes) -> None:  # the parser's sink: host -> controller
        self._server._from_host(packet)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._attached:
            self._attached = False
            self._server._detach(self)

    def write(self, packet: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > _HOST_BACKLOG_LIMIT:
            # A radio cannot wait for its host; a host this far behind is treated as gone.
            logger.warning(
                "hci server: host %d bytes behind; dropping its connection",
                transport.get_write_buffer_size(),
            )
            transport.close()
            return
        transport.write(packet)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
