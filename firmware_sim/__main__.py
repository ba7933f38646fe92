"""``python -m firmware_sim``: run a simulated care home as BLE devices, with a radio for the
gateway.

    python -m firmware_sim --site seeds/oak-house.toml --listen tcp-server:127.0.0.1:7000 \\
        --speed 60 --seed 1 --scenario fever:r03@10m --record sent.jsonl --truth truth.jsonl

The gateway opens ``tcp-client:127.0.0.1:7000`` as its radio (with port 0 the simulator
picks a free port; the line ``hci: tcp-client:...`` on stderr says which). ``--duration`` is
simulated time (``10m`` at ``--speed 60`` takes ten wall seconds); without it the simulator
runs until SIGINT or SIGTERM, and shuts down cleanly on either. A live table shows the
residents and devices when stdout is a terminal (``--no-table`` turns it off).

Exit status: 0 after a normal run or a signal, 2 for bad arguments or a bad site file (with a
message saying what is wrong), 1 when the simulator fails while running.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.logging import RichHandler

from firmware_sim.clock import SimClock
from firmware_sim.controller import HciServerError, check_listen_spec
from firmware_sim.firmware import Simulation
from firmware_sim.peripheral import PeripheralOptions
from firmware_sim.runtime import RuntimeOptions, SimulatorRuntime
from firmware_sim.scenarios import (
    ScenarioError,
    ScenarioSpec,
    SimulatorError,
    parse_duration,
    parse_scenario_arg,
)
from firmware_sim.site import find_site, load_site
from firmware_sim.table import show_live

logger = logging.getLogger("firmware_sim")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m firmware_sim",
        description="Simulated residents' BLE vital-sign devices on Bumble virtual controllers.",
    )
    parser.add_argument(
        "--site",
        default="oak-house",
        help="site file, or the name of one in seeds/ (default: oak-house)",
    )
    parser.add_argument(
        "--listen",
        default="tcp-server:127.0.0.1:0",
        help="HCI transport for the gateway's radio: tcp-server:HOST:PORT or "
        "unix-server:PATH (default: tcp-server:127.0.0.1:0, any free port)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start",
        help="simulated start, ISO 8601 with an offset (default: now, UTC, whole seconds)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="KIND:RESIDENT[/DEVICE]@START[,PARAM=VALUE...]",
        help="add a scenario to the site's, e.g. fever:r03@10m (repeatable)",
    )
    parser.add_argument(
        "--no-site-scenarios", action="store_true", help="leave out the site file's scenarios"
    )
    parser.add_argument("--duration", help="simulated time to run for, e.g. 10m (default: ever)")
    parser.add_argument("--tick", type=float, default=0.5, help="wall seconds between ticks")
    parser.add_argument(
        "--advertising-interval",
        type=float,
        default=PeripheralOptions().advertising_interval,
        help="seconds between a device's advertisements (default: %(default)s)",
    )
    parser.add_argument("--record", type=Path, help="JSONL file of every delivered payload")
    parser.add_argument("--truth", type=Path, help="JSONL file of the ground-truth events")
    parser.add_argument("--no-table", action="store_true", help="no live table")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default: INFO, or WARNING under the live table",
    )
    return parser


class _UsageError(SimulatorError):
    """A bad argument that argparse cannot see by itself."""


def _start(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"--start {text!r} is not an ISO 8601 time") from None
    if start.tzinfo is None:
        raise _UsageError(f"--start {text!r} needs an offset, e.g. {text}+00:00 or {text}Z")
    return start


def _build(args: argparse.Namespace) -> tuple[Simulation, SimClock, RuntimeOptions]:
    """Everything from the arguments; raises SimulatorError subclasses for bad ones."""
    if args.speed <= 0 or args.speed != args.speed:
        raise _UsageError("--speed must be a positive number")
    if not 0.01 <= args.tick <= 60:
        raise _UsageError("--tick must be between 0.01 and 60 seconds")
    if not 0.02 <= args.advertising_interval <= 10.24:
        raise _UsageError("--advertising-interval must be between 0.02 and 10.24 seconds")
    try:
        check_listen_spec(args.listen)
    except HciServerError as exc:
        raise _UsageError(f"--listen: {exc}") from None
    start = _start(args.start)
    duration = None if args.duration is None else parse_duration(args.duration)
    if duration is not None and duration.total_seconds() <= 0:
        raise _UsageError("--duration must be positive")
    extra: list[ScenarioSpec] = [parse_scenario_arg(text) for text in args.scenario]
    site = load_site(find_site(args.site))
    scenarios = [*([] if args.no_site_scenarios else site.scenarios), *extra]
    simulation = Simulation(site, seed=args.seed, start=start, scenarios=scenarios)
    clock = SimClock(start, args.speed, time.monotonic)
    options = RuntimeOptions(
        tick=args.tick,
        listen=args.listen,
        record=args.record,
        truth=args.truth,
        stop_at=None if duration is None else clock.start + duration.total_seconds(),
        peripheral=PeripheralOptions(advertising_interval=args.advertising_interval),
        delivery_capacity=1_000,  # only the table reads it; --record gets every delivery
    )
    return simulation, clock, options


async def _until_set(event: asyncio.Event, then: asyncio.Event) -> None:
    await event.wait()
    then.set()


async def _run(
    simulation: Simulation, clock: SimClock, options: RuntimeOptions, console: Console | None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with (
            SimulatorRuntime(simulation, clock, options) as runtime,
            asyncio.TaskGroup() as group,
        ):
            # Everything built so far (devices, GATT databases, models) lives as long as the
            # process: keep the collector from rescanning it. With a thousand devices a full
            # collection otherwise pauses the loop for half a second, long enough to skip a
            # tick and the notifications due in it.
            gc.freeze()
            print(f"hci: {runtime.hci_client_spec}", file=sys.stderr, flush=True)
            tasks = [group.create_task(_until_set(runtime.finished, stop), name="duration")]
            if console is not None:
                tasks.append(group.create_task(show_live(runtime.status, console=console)))
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    table = not args.no_table and sys.stdout.isatty()
    console = Console() if table else None
    level = args.log_level or ("WARNING" if table else "INFO")
    handler: logging.Handler = (
        RichHandler(console=Console(stderr=True), show_path=False)
        if table
        else logging.StreamHandler(sys.stderr)
    )
    if not table:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)

    try:
        simulation, clock, options = _build(args)
    except (SimulatorError, ScenarioError) as exc:
        print(f"python -m firmware_sim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        asyncio.run(_run(simulation, clock, options, console))
    except KeyboardInterrupt:
        return EXIT_OK
    except HciServerError as exc:
        print(f"python -m firmware_sim: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception:
        logger.exception("simulator failed")
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
