"""The simulator at run time: the residents' devices on the air, and a radio for the gateway.

:class:`SimulatorRuntime` owns one :class:`~firmware_sim.controller.SimLink` with one
:class:`~firmware_sim.peripheral.Peripheral` per simulated device and, when asked to listen,
one more virtual controller exposed over an HCI transport server
(:class:`~firmware_sim.controller.HciServer`): the gateway opens
:attr:`SimulatorRuntime.hci_client_spec` (``tcp-client:127.0.0.1:PORT``) exactly as it would
open a radio. A tick loop advances the simulated clock every :attr:`RuntimeOptions.tick` wall
seconds, asks each device's firmware for its state and emissions, and hands them to its
peripheral; radio state changes drive disconnections and advertising.

Use::

    async with SimulatorRuntime(simulation, clock, RuntimeOptions(listen=...)) as runtime:
        await runtime.finished.wait()     # or anything else; leaving the block shuts down

Everything runs in one ``asyncio.TaskGroup`` (a task per peripheral and the tick loop);
leaving the ``async with`` block cancels them and closes the links, the HCI server and the
files. A failing firmware model or peripheral is logged once, counted and skipped; the other
devices go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from firmware_sim.controller import HciServer, SimController, SimLink
from firmware_sim.firmware import DeviceFirmware, Simulation
from firmware_sim.peripheral import DeliveryLog, Peripheral, PeripheralOptions, PeripheralStatus
from firmware_sim.scenarios import TruthEvent

__all__ = [
    "ClockLike",
    "RuntimeOptions",
    "RuntimeStatus",
    "SimulatorRuntime",
    "truth_to_json",
]

logger = logging.getLogger(__name__)


class ClockLike(Protocol):
    """The simulated clock (``firmware_sim.clock.SimClock``)."""

    @property
    def start(self) -> float:
        """Simulated Unix time when the clock started."""
        ...

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        ...

    def now(self) -> float:
        """Simulated Unix time now."""
        ...


@dataclass(slots=True, frozen=True)
class RuntimeOptions:
    tick: float = 0.5
    """Wall seconds between two ticks of the simulated clock."""
    listen: str | None = None
    """Where the gateway's radio listens: ``tcp-server:HOST:PORT`` (port 0: any free port)
    or ``unix-server:PATH``; ``None`` for no gateway radio (tests put their own central on
    :attr:`SimulatorRuntime.link`)."""
    record: Path | None = None
    """A JSONL file to append every delivered payload to."""
    truth: Path | None = None
    """A JSONL file that holds the ground-truth events so far, one a line
    (:func:`truth_to_json`); rewritten whole (atomically) when they change, at most every
    :attr:`truth_every` wall seconds, and at shutdown. Events change as they become
    detectable and end, so a reader takes the file as a whole."""
    truth_every: float = 1.0
    stop_at: float | None = None
    """Simulated Unix time at which :attr:`SimulatorRuntime.finished` is set."""
    peripheral: PeripheralOptions = field(default_factory=PeripheralOptions)
    delivery_capacity: int = 50_000
    """Deliveries kept in memory, the latest (all of them go to ``record``). Each costs a
    few hundred bytes and the garbage collector's time: a long run that only needs the
    file keeps this small."""
    stop_grace: float = 5.0
    """Wall seconds the peripherals get to finish what they are doing when the runtime
    stops, before they are cancelled."""


@dataclass(slots=True)
class RuntimeStatus:
    """A snapshot of the whole simulator, for the live table."""

    sim_time: float
    ticks: int
    devices: list[PeripheralStatus]
    residents: dict[str, str]
    """Device id -> resident id."""
    host_attached: bool
    deliveries: int
    firmware_errors: int
    scenarios: list[str]
    """The truth events under way (scenarios and artefacts), as ``name (resident)``."""


class SimulatorRuntime:
    """The simulated devices on a virtual link, and the gateway's radio (module docstring)."""

    def __init__(
        self,
        simulation: Simulation,
        clock: ClockLike,
        options: RuntimeOptions | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.simulation = simulation
        self.clock = clock
        self.options = options or RuntimeOptions()
        if self.options.tick <= 0:
            raise ValueError("tick must be positive")
        self._wall_clock = wall_clock
        self.link = SimLink()
        self.deliveries = DeliveryLog(self.options.record, capacity=self.options.delivery_capacity)
        self.finished = asyncio.Event()
        """Set when the simulated clock reaches :attr:`RuntimeOptions.stop_at`."""
        self.ticks = 0
        self.late_ticks = 0
        """Ticks that came more than one period late (each skips a grid point)."""
        self.max_tick_lateness = 0.0
        self.firmware_errors = 0
        self._firmware: list[DeviceFirmware] = list(simulation.devices)
        self._peripherals: dict[str, Peripheral] = {}
        self._failing: set[str] = set()
        self._hci: HciServer | None = None
        self._truth: tuple[TruthEvent, ...] = ()
        self._truth_written_at = -math.inf
        self._stack: contextlib.AsyncExitStack | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_sim_time = 0.0

    # -- access ------------------------------------------------------------------------------

    @property
    def peripherals(self) -> Mapping[str, Peripheral]:
        return self._peripherals

    def peripheral(self, device: str) -> Peripheral:
        return self._peripherals[device]

    @property
    def hci_client_spec(self) -> str | None:
        """The transport name the gateway opens (``tcp-client:HOST:PORT`` or ``unix:PATH``),
        or ``None`` when the runtime does not listen."""
        return self._hci.client_spec if self._hci is not None else None

    @property
    def hci_server(self) -> HciServer | None:
        return self._hci

    def status(self) -> RuntimeStatus:
        return RuntimeStatus(
            sim_time=self._last_sim_time,
            ticks=self.ticks,
            devices=[p.status() for p in self._peripherals.values()],
            residents={f.id: f.resident for f in self._firmware},
            host_attached=self._hci is not None and self._hci.host_attached,
            deliveries=self.deliveries.total,
            firmware_errors=self.firmware_errors,
            scenarios=[
                f"{event.scenario} ({event.resident})"
                for event in self.simulation.labels_at(self._last_sim_time)
            ],
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            await self._open(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        options = self.options
        stack.enter_context(self.deliveries)
        if options.truth is not None:
            stack.callback(self.write_truth)  # the final truth, after everything has stopped
        for firmware in self._firmware:
            peripheral = Peripheral(
                firmware,
                self.link,
                self.deliveries,
                self.clock.now,
                options=options.peripheral,
                wall_clock=self._wall_clock,
            )
            self._peripherals[firmware.id] = await stack.enter_async_context(peripheral)
        if options.listen is not None:
            gateway = SimController("gateway", link=self.link)
            self._hci = await stack.enter_async_context(HciServer(gateway, options.listen))
        self.tick()  # radios and first emissions in place before anything runs
        group = await stack.enter_async_context(asyncio.TaskGroup())
        for peripheral in self._peripherals.values():
            self._tasks.append(
                group.create_task(peripheral.run(), name=f"peripheral:{peripheral.id}")
            )
        self._tasks.append(group.create_task(self._tick_loop(), name="tick"))
        # Runs before the task group's exit, which then waits for the tasks.
        stack.push_async_callback(self._stop_tasks)
        logger.info(
            "simulator started devices=%d listen=%s", len(self._peripherals), self.hci_client_spec
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)
        logger.info("simulator stopped ticks=%d deliveries=%d", self.ticks, self.deliveries.total)

    async def _stop_tasks(self) -> None:
        """Let the peripherals finish the step under way (up to ``stop_grace`` seconds),
        then cancel whatever is left."""
        for peripheral in self._peripherals.values():
            peripheral.stop()
        pending = [task for task in self._tasks if not task.done() and task.get_name() != "tick"]
        for task in self._tasks:
            if task.get_name() == "tick":
                task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=self.options.stop_grace)
        for task in self._tasks:
            task.cancel()

    # -- running -----------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.options.tick
        next_at = loop.time()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            late = loop.time() - next_at
            self.max_tick_lateness = max(self.max_tick_lateness, late)
            if late > period:
                next_at = loop.time()  # fell behind: skip, never burst
                self.late_ticks += 1
                if self.late_ticks in (1, 10, 100) or self.late_ticks % 1000 == 0:
                    logger.warning(
                        "tick late by %.3f s (%d late ticks so far): the simulator is "
                        "overloaded and continuous notifications are being skipped",
                        late,
                        self.late_ticks,
                    )
            now = self.tick()
            if self.options.stop_at is not None and now >= self.options.stop_at:
                self.finished.set()

    def sim_now(self) -> float:
        """The clock's time rounded down to the tick grid: ``start + k * tick * speed``.

        Ticks then land on exact multiples of the grid whatever the loop's jitter, so a 1 s
        cadence ticked every 0.25 s at speed 1 gives exactly one notification a second (not
        one every 1.25 s whenever a tick comes a millisecond early), and a rerun with the same
        seed advances the firmware through the same times."""
        clock = self.clock
        grid = self.options.tick * clock.speed
        return clock.start + math.floor((clock.now() - clock.start) / grid + 1e-9) * grid

    def tick(self) -> float:
        """Advance every device to :meth:`sim_now`; returns that time."""
        t = self.sim_now()
        if self.ticks and t <= self._last_sim_time:
            return t
        self._last_sim_time = t
        for firmware in self._firmware:
            try:
                emissions = firmware.advance(t)
                self._peripherals[firmware.id].update(
                    firmware.radio(t), firmware.battery(t), firmware.contact(t), emissions
                )
            except Exception:
                self._firmware_failed(firmware.id)
            else:
                if firmware.id in self._failing:
                    self._failing.discard(firmware.id)
                    logger.info("device=%s firmware recovered", firmware.id)
        self._maybe_write_truth()
        self.ticks += 1
        return t

    def _firmware_failed(self, device: str) -> None:
        self.firmware_errors += 1
        if device not in self._failing:
            self._failing.add(device)
            logger.exception("device=%s firmware failed; skipping it until it recovers", device)

    def _maybe_write_truth(self) -> None:
        if self.options.truth is None:
            return
        now = time.monotonic()
        if now - self._truth_written_at < self.options.truth_every:
            return
        self._truth_written_at = now
        self.write_truth()

    def write_truth(self) -> None:
        """Rewrite the truth file (if any) with the events so far, if they changed."""
        path = self.options.truth
        if path is None:
            return
        events = self.simulation.truth_events()
        if events == self._truth and path.exists():
            return
        self._truth = events
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as file:
            for event in events:
                file.write(json.dumps(truth_to_json(event), separators=(",", ":")) + "\n")
        os.replace(temporary, path)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def truth_to_json(event: TruthEvent) -> dict[str, object]:
    """One truth event as a JSON object (times as ISO 8601 UTC)."""
    return {
        "scenario": event.scenario,
        "kind": event.kind.value,
        "resident": event.resident,
        "device": event.device,
        "started": _iso(event.started),
        "detectable": _iso(event.detectable),
        "ended": _iso(event.ended),
        "expected": None if event.expected is None else event.expected.value,
        "related": [item.value for item in event.related],
    }
