"""The gateway assembled: BLE central → recorder → outbox → uplink, in one TaskGroup.

Which radio the central drives is the only difference between production and simulation:
``ble.backend = "bluez"`` uses bleak's platform backend, ``"bumble"`` a Bumble host on an HCI
transport (the simulator's virtual controller) through the classes of ``gateway.ble``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient

from gateway.central import Central, CentralOptions, DetectionCallback, ScannerLike
from gateway.health import Clock, CombinedHealth, utc_now, versions
from gateway.homeassistant import HomeAssistantPublisher
from gateway.outbox import AsyncOutbox
from gateway.probe import send_probes
from gateway.recorder import EntrySink, Recorder
from gateway.registry import Registry
from gateway.settings import BleSettings, GatewaySettings
from gateway.uplink import Uplink

__all__ = ["run_gateway"]

logger = logging.getLogger(__name__)


async def _backends(
    ble: BleSettings, stack: contextlib.AsyncExitStack
) -> tuple[Callable[[DetectionCallback], ScannerLike], type[BaseBleakClient] | None]:
    if ble.backend == "bluez":
        return BleakScanner, None
    from gateway.ble import BumbleHost, make_backends  # noqa: PLC0415 (Bumble only when asked)

    assert ble.transport is not None  # checked by BleSettings
    host = await stack.enter_async_context(BumbleHost(ble.transport))
    classes = make_backends(host)
    return (lambda callback: BleakScanner(callback, backend=classes.scanner)), classes.client


async def run_gateway(settings: GatewaySettings, *, clock: Clock = utc_now) -> None:
    """Run the gateway until cancelled; on cancellation the recorder flushes what it holds,
    the uplink says goodbye (retained offline status) and the outbox is closed."""
    registry = Registry(settings.ble.devices)
    if not len(registry):
        logger.warning("no BLE devices registered: the gateway will only report its status")

    def is_streaming(device: str) -> bool:
        entry = registry.get(device)
        return entry is not None and not entry.spot

    async with contextlib.AsyncExitStack() as stack:
        outbox = await stack.enter_async_context(
            AsyncOutbox.open(
                settings.outbox.path,
                max_rows=settings.outbox.max_rows,
                policy=settings.outbox.policy,
                late_after=settings.outbox.late_after,
            )
        )
        sink: EntrySink = outbox
        companions: list[HomeAssistantPublisher] = []
        if settings.homeassistant.enabled:
            # Opt-in: the latest values of the listed residents' metrics, teed off the way
            # into the outbox, and their discovery configs, over the uplink's connection.
            homeassistant = HomeAssistantPublisher.from_settings(
                settings.site,
                settings.gateway,
                settings.homeassistant,
                registry.entries,
                ack_timeout_s=settings.mqtt.ack_timeout_s,
                clock=clock,
                sw_version=versions().get("carewatch"),
            )
            sink = homeassistant.sink(outbox)
            companions.append(homeassistant)
        recorder = Recorder(
            gateway=settings.gateway,
            sink=sink,
            settings=settings.recorder,
            zone=settings.zone,
            is_streaming=is_streaming,
        )
        scanner_factory, client_backend = await _backends(settings.ble, stack)
        ble = settings.ble
        central = Central(
            registry,
            recorder,
            scanner_factory=scanner_factory,
            client_backend=client_backend,
            options=CentralOptions(
                connect_attempts=ble.connect_attempts,
                backoff_initial=ble.backoff_initial_s,
                backoff_max=ble.backoff_max_s,
                spot_idle=ble.spot_idle_s,
                watchdog_silence=ble.watchdog_silence_s,
            ),
            wall_clock=clock,
        )
        uplink = Uplink(
            site=settings.site,
            gateway=settings.gateway,
            outbox=outbox,
            mqtt=settings.mqtt,
            status=settings.status,
            health=CombinedHealth(central, recorder),
            clock=clock,
            companions=companions,
        )
        logger.info(
            "gateway starting site=%s gateway=%s devices=%d backend=%s outbox_depth=%d",
            settings.site,
            settings.gateway,
            len(registry),
            settings.ble.backend,
            outbox.depth,
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(recorder.run(), name="recorder")
            group.create_task(uplink.run(), name="uplink")
            group.create_task(central.run(), name="ble-central")
            if settings.status.probe_interval_s > 0:
                group.create_task(
                    send_probes(
                        recorder, settings.gateway, settings.status.probe_interval_s, clock
                    ),
                    name="probe",
                )
