"""How many devices one simulator process sustains, with a central subscribed to all of them.

For N = 10, 25, 50, 100, 200, 400, 800, 1200, ... this starts ``python -m firmware_sim`` on a
generated site of N wearables (each notifies Heart Rate and Respiratory Rate at 1 Hz, so the
nominal rate is 2 notifications a second per device), connects a Bumble central to its HCI
transport server from this process, subscribes to both characteristics of every device and
counts what arrives during a measurement window. It prints, for each N: the delivered share of
the nominal rate, the simulator's CPU share (its CPU time from ``/proc/<pid>/stat`` over the
window's wall time; 1.0 is one core, and asyncio runs on one), its RSS, and the same figures
for the **baseline**: a process with N bare Bumble devices that notify the same payload sizes
at the same rate with no firmware model, peripheral logic or delivery log, on the same virtual
radio (``firmware_sim.controller``), so the ratio is the simulator's own cost. The central's
work happens in this process and is in neither figure.

It stops at the first N where the delivered share drops below 95 % or the simulator's CPU
share passes 90 % (saturated), or when the next step would not fit the time budget (default
170 s; ``--quick``: 10 and 50 devices with a short window).

    .venv/bin/python bench/sim_devices.py [--quick] [--budget SECONDS] [--window SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bumble import core, hci
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic, Service
from bumble.host import Host
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
sys.path.insert(0, str(REPO))

from firmware_sim.controller import HciServer, SimController, SimLink  # noqa: E402
from vitals.gatt import (  # noqa: E402
    HEART_RATE_MEASUREMENT,
    HEART_RATE_SERVICE,
    RESPIRATORY_RATE_CHARACTERISTIC,
    WEARABLE_EXTENSION_SERVICE,
    HeartRateMeasurement,
    RespiratoryRate,
    encode,
)

STEPS = (10, 25, 50, 100, 200, 400, 800, 1200, 1600, 2400, 3200)
QUICK_STEPS = (10, 50)
HZ = 1.0
CHARACTERISTICS = 2  # heart rate and respiratory rate
ADVERTISING_INTERVAL = 0.05
START = "2025-03-10T10:30:00+00:00"
HR = core.UUID.from_16_bits(HEART_RATE_MEASUREMENT)
RR = core.UUID(str(RESPIRATORY_RATE_CHARACTERISTIC))
HR_SERVICE = core.UUID.from_16_bits(HEART_RATE_SERVICE)
EXTENSION_SERVICE = core.UUID(str(WEARABLE_EXTENSION_SERVICE))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the measured process --------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _site(count: int) -> str:
    lines = ['id = "bench"', 'name = "Bench"', 'timezone = "UTC"']
    for index in range(count):
        rid = f"r{index:04d}"
        lines += [
            "[[residents]]",
            f'id = "{rid}"',
            f'devices = [{{ id = "{rid}-hr", kind = "wearable", artefacts_per_hour = 0 }}]',
        ]
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def _server(command: Sequence[str]) -> AsyncIterator[tuple[int, str]]:
    """Start a server process; yield its pid and the HCI transport it prints; stop it."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(120):
            while True:
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise RuntimeError(f"{command[1:3]} ended before listening")
                if line.startswith("hci: "):
                    break
        drain = asyncio.create_task(_relay_warnings(process.stderr))
        try:
            yield process.pid, line.removeprefix("hci: ").strip()
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await process.wait()
            await drain
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _relay_warnings(stream: asyncio.StreamReader) -> None:
    """Print the server's warnings (an overloaded simulator says so) and drop the rest."""
    while line := await stream.readline():
        if b" WARNING " in line or b" ERROR " in line:
            print(f"    server: {line.decode().strip()}", flush=True)


# -- the central (in this process) ------------------------------------------------------------


def _aligned_window(
    arrivals: Iterable[list[float]], start: float, stop: float
) -> tuple[float, float]:
    """A window of whole periods whose edges fall in the quietest part of the period.

    Notifications come in one burst a period (every device is advanced by the same tick), so
    a window edge in the middle of a burst would count a device whose notification came a
    millisecond early as having missed one. The edges go to the middle of the largest gap
    between arrival phases instead; then every device should have exactly
    ``periods x characteristics`` notifications inside."""
    period = 1.0 / HZ
    phases = sorted(
        (stamp - start) % period for stamps in arrivals for stamp in stamps if start <= stamp < stop
    )
    if not phases:
        return start, start + math.floor((stop - start) / period - 1) * period
    gaps = [(b - a, a) for a, b in itertools.pairwise([*phases, phases[0] + period])]
    width, after = max(gaps)
    begin = start + (after + width / 2) % period
    periods = math.floor((stop - begin) / period)
    return begin, begin + periods * period


@dataclass(slots=True)
class Step:
    devices: int
    delivered: float
    """Share of the nominal notification rate that arrived (worst device)."""
    mean_delivered: float
    cpu: float
    rss_mib: float
    setup_s: float
    central_cpu: float
    """CPU share of this process (the central) during the window: near 1.0, the central and
    not the server limits what arrives."""


async def _measure(pid: int, spec: str, count: int, window: float) -> Step:
    began_setup = time.monotonic()
    transport = await open_transport(spec)
    try:
        central = Device(
            name="bench-central",
            address=hci.Address("F0:F0:F0:F0:F0:F0"),
            host=Host(transport.source, transport.sink),
        )
        seen: set[hci.Address] = set()
        everyone = asyncio.Event()

        def on_advertisement(advertisement: object) -> None:
            seen.add(advertisement.address)  # type: ignore[attr-defined]
            if len(seen) >= count:
                everyone.set()

        central.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
        await central.power_on()
        await central.start_scanning(filter_duplicates=True)
        async with asyncio.timeout(60 + count * 0.1):
            await everyone.wait()
        await central.stop_scanning()
        counts: dict[hci.Address, list[float]] = {address: [] for address in seen}
        for address in sorted(seen, key=str):
            connection: Connection = await central.connect(address, timeout=10)
            peer = Peer(connection)
            await peer.discover_services([HR_SERVICE, EXTENSION_SERVICE])
            for uuid in (HR, RR):
                (characteristic,) = await peer.discover_characteristics(uuids=[uuid])

                def on_value(_value: bytes, stamps: list[float] = counts[address]) -> None:
                    stamps.append(time.monotonic())

                await peer.subscribe(characteristic, on_value)
        setup = time.monotonic() - began_setup
        cpu0, own0, wall0 = _cpu_seconds(pid), time.process_time(), time.monotonic()
        await asyncio.sleep(window + 1.0 / HZ)  # the measurement window (and a period more)
        cpu1, own1, wall1 = _cpu_seconds(pid), time.process_time(), time.monotonic()
        begin, end = _aligned_window(counts.values(), wall0, wall1)
        nominal = (end - begin) * HZ * CHARACTERISTICS
        shares = [
            sum(1 for stamp in stamps if begin <= stamp < end) / nominal
            for stamps in counts.values()
        ]
        return Step(
            devices=count,
            delivered=min(shares),
            mean_delivered=sum(shares) / len(shares),
            cpu=(cpu1 - cpu0) / (wall1 - wall0),
            rss_mib=_rss_mib(pid),
            setup_s=setup,
            central_cpu=(own1 - own0) / (wall1 - wall0),
        )
    finally:
        await transport.close()


async def _simulator(count: int, window: float, folder: Path) -> Step:
    site = folder / f"bench-{count}.toml"
    site.write_text(_site(count), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "firmware_sim",
        "--site",
        str(site),
        "--listen",
        "tcp-server:127.0.0.1:0",
        "--speed",
        "1",
        "--tick",
        "0.25",
        "--start",
        START,
        "--no-table",
        "--log-level",
        "WARNING",
        "--advertising-interval",
        str(ADVERTISING_INTERVAL),
    ]
    async with _server(command) as (pid, spec):
        return await _measure(pid, spec, count, window)


async def _baseline(count: int, window: float) -> Step:
    command = [sys.executable, str(SCRIPT), "--serve-baseline", str(count)]
    async with _server(command) as (pid, spec):
        return await _measure(pid, spec, count, window)


# -- the baseline server (a child process of this script) -------------------------------------


async def serve_baseline(count: int) -> None:
    """N bare Bumble devices notifying fixed payloads at 1 Hz per characteristic."""
    link = SimLink()
    hr_payload = encode(HeartRateMeasurement(72, sensor_contact=True, rr_intervals=(850,)))
    rr_payload = encode(RespiratoryRate(16.0, sensor_contact=True))
    devices: list[tuple[Device, Characteristic[bytes], Characteristic[bytes]]] = []
    for index in range(count):
        controller = SimController(f"baseline-{index}", link=link)
        device = Device(
            name=f"base{index}",
            address=hci.Address(f"C2:00:00:00:{index >> 8:02X}:{index & 0xFF:02X}"),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        hr: Characteristic[bytes] = Characteristic(
            HR, Characteristic.Properties.NOTIFY, Characteristic.Permissions(0), b""
        )
        rr: Characteristic[bytes] = Characteristic(
            RR, Characteristic.Properties.NOTIFY, Characteristic.Permissions(0), b""
        )
        device.add_services(
            [
                Service(HR_SERVICE, [hr]),
                Service(EXTENSION_SERVICE, [rr]),
            ]
        )
        await device.power_on()
        interval = ADVERTISING_INTERVAL * 1000
        await device.start_advertising(
            advertising_interval_min=interval, advertising_interval_max=interval
        )
        devices.append((device, hr, rr))
    gateway = SimController("gateway", link=link)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with HciServer(gateway, "tcp-server:127.0.0.1:0") as server:
        print(f"hci: {server.client_spec}", file=sys.stderr, flush=True)
        next_at = loop.time()
        while not stop.is_set():
            next_at += 1.0 / HZ
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_at - loop.time())):
                    await stop.wait()
            for device, hr, rr in devices:
                for connection in list(device.connections.values()):
                    await device.gatt_server.notify_subscriber(connection, hr, hr_payload)
                    await device.gatt_server.notify_subscriber(connection, rr, rr_payload)


# -- the driver -------------------------------------------------------------------------------


def _row(label: str, step: Step) -> str:
    return (
        f"{label:<10} {step.devices:>5} {step.delivered:>8.1%} {step.mean_delivered:>8.1%} "
        f"{step.cpu:>7.1%} {step.rss_mib:>8.1f} {step.setup_s:>7.1f} {step.central_cpu:>8.1%}"
    )


async def run(steps: Sequence[int], window: float, budget: float) -> int:
    began = time.monotonic()
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    print(f"cores: {cores} (usable: {usable}); window {window:.0f} s; budget {budget:.0f} s")
    print(f"nominal: {HZ:g} Hz x {CHARACTERISTICS} characteristics per device")
    print(
        f"{'':<10} {'N':>5} {'worst':>8} {'mean':>8} {'CPU':>7} {'RSS MiB':>8} {'setup':>7} "
        f"{'central':>8}"
    )
    sustained: Step | None = None
    fell_behind = False
    stopped = "every N in the list kept up"
    last_cost: tuple[int, float] | None = None
    with tempfile.TemporaryDirectory() as folder:
        for count in steps:
            if last_cost is not None:
                previous_count, previous_seconds = last_cost
                estimate = previous_seconds * count / previous_count
                if time.monotonic() - began + estimate > budget:
                    stopped = f"time budget: N={count} would take about {estimate:.0f} s more"
                    break
            step_began = time.monotonic()
            try:
                async with asyncio.timeout(max(10.0, budget - (step_began - began)) + 10.0):
                    simulated = await _simulator(count, window, Path(folder))
                    baseline = await _baseline(count, window)
            except TimeoutError:
                stopped = f"time budget: N={count} did not finish in it"
                break
            last_cost = (count, time.monotonic() - step_began)
            print(_row("simulator", simulated))
            print(_row("baseline", baseline))
            resolution = 2 / CLOCK_TICKS / window
            if baseline.cpu < resolution:
                print(f"{'ratio':<10} {count:>5} (baseline CPU below /proc's resolution)")
            else:
                ratio = simulated.cpu / baseline.cpu
                print(f"{'ratio':<10} {count:>5} CPU simulator/baseline = {ratio:.2f}x", flush=True)
            if simulated.delivered < 0.95 or simulated.cpu > 0.9:
                why = "delivery below 95 %" if simulated.delivered < 0.95 else "CPU saturated"
                stopped = f"{why} at N={count}"
                fell_behind = True
                if simulated.central_cpu > 0.8:
                    stopped += " (the central in this process was busy too: it may be the limit)"
                break
            sustained = simulated
    print(f"stopped: {stopped}")
    if sustained is None:
        print("sustained: none of the N tried")
    else:
        bound = "" if fell_behind else "at least "
        print(
            f"sustained: {bound}{sustained.devices} devices at >= 95 % of the nominal rate, "
            f"simulator CPU {sustained.cpu:.0%} of one core, RSS {sustained.rss_mib:.0f} MiB"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 and 50 devices, 4 s windows")
    parser.add_argument("--window", type=float, default=None, help="measurement seconds")
    parser.add_argument("--budget", type=float, default=170.0, help="total seconds, at most")
    parser.add_argument("--steps", help="comma-separated device counts, e.g. 100,1200")
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline is not None:
        asyncio.run(serve_baseline(args.serve_baseline))
        return 0
    window = args.window or (4.0 if args.quick else 8.0)
    steps: tuple[int, ...] = QUICK_STEPS if args.quick else STEPS
    if args.steps:
        steps = tuple(int(part) for part in args.steps.split(","))
    return asyncio.run(run(steps, window, args.budget))


if __name__ == "__main__":
    sys.exit(main())
