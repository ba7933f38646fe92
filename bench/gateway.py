"""CPU share and memory of the gateway holding N wearables at 1 Hz, beside a bare BLE central.

    .venv/bin/python -m bench.gateway [--devices 20] [--seconds 30]

Runs, on this machine and in one run: a real Mosquitto (tests.harness), ``firmware_sim`` with
N residents each wearing a wearable (heart rate with RR intervals and respiratory rate at 1 Hz,
battery), then

1. **baseline** -- a bare central: the same Bumble host and bleak backend, connected to every
   wearable and subscribed to the same characteristics, that only counts notifications (no
   decoding, no outbox, no MQTT);
2. **gateway** -- ``python -m gateway`` with the same devices: decode, observations, recorder,
   SQLite outbox (synchronous=FULL), uplink to the broker.

For each it waits until every device is connected, then samples the process's CPU time and
resident memory from /proc for ``--seconds`` of wall time, and prints the CPU share (CPU
seconds per wall second; 1.0 = one core), peak RSS, notifications or readings per second, the
ratio gateway/baseline, and the core count. Everything is on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firmware_sim.firmware import Simulation
from firmware_sim.site import load_site
from tests.harness import MosquittoServer, find_binary

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BARE_CENTRAL = """
import asyncio, sys, json
from bleak import BleakClient, BleakScanner
from gateway.ble import BumbleHost, make_backends

async def main(transport, addresses, uuids):
    count = 0
    def on_data(_c, _d):
        nonlocal count
        count += 1
    async with BumbleHost(transport) as host:
        classes = make_backends(host)
        clients = []
        for address in addresses:
            device = await BleakScanner.find_device_by_address(
                address, timeout=30, backend=classes.scanner)
            client = BleakClient(device, backend=classes.client)
            await client.connect()
            for uuid in uuids:
                if client.services.get_characteristic(uuid) is not None:
                    await client.start_notify(uuid, on_data)
            clients.append(client)
        print(json.dumps({"connected": len(clients)}), flush=True)
        while True:
            await asyncio.sleep(1)
            print(json.dumps({"notifications": count}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")))
"""


@dataclass(slots=True)
class Sample:
    cpu_share: float
    peak_rss_mb: float
    rate: float


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _site(folder: Path, devices: int) -> Path:
    residents = "\n".join(
        f'[[residents]]\nid = "r{i:02d}"\nname = "Bench {i:02d}"\n'
        f'devices = [{{ id = "r{i:02d}-hr", kind = "wearable", battery = 95 }}]\n'
        for i in range(1, devices + 1)
    )
    path = folder / "bench-home.toml"
    path.write_text(
        f'id = "bench-home"\nname = "Bench Home"\ntimezone = "UTC"\n\n{residents}',
        encoding="utf-8",
    )
    return path


def _wait_for_line(path: Path, prefix: str, process: subprocess.Popen[bytes], within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited:\n{path.read_text(errors='replace')[-2000:]}")
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        time.sleep(0.2)
    raise TimeoutError(f"no line starting {prefix!r} in {path} within {within} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _measure(pid: int, seconds: float, counter: Callable[[], int]) -> Sample:
    cpu0, count0, wall0 = _cpu_seconds(pid), counter(), time.monotonic()
    time.sleep(seconds)
    cpu1, count1, wall1 = _cpu_seconds(pid), counter(), time.monotonic()
    wall = wall1 - wall0
    return Sample((cpu1 - cpu0) / wall, _peak_rss_mb(pid), (count1 - count0) / wall)


def _bare_central(folder: Path, hci: str, addresses: list[str], seconds: float) -> Sample:
    log = folder / "bare.log"
    uuids = "00002a37-0000-1000-8000-00805f9b34fb,6e0f0011-3c1b-4d2a-9b7e-5a4c61726557"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", BARE_CENTRAL, hci, ",".join(addresses), uuids],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_line(log, '{"connected"', process, within=120)

        def notifications() -> int:
            lines = [x for x in log.read_text().splitlines() if x.startswith('{"notifications"')]
            return int(json.loads(lines[-1])["notifications"]) if lines else 0

        time.sleep(2)
        return _measure(process.pid, seconds, notifications)
    finally:
        _stop(process)


def _gateway(
    folder: Path, hci: str, simulation: Simulation, broker: MosquittoServer, seconds: float
) -> Sample:
    devices = "\n".join(
        f'[[ble.devices]]\nid = "{d.id}"\nkind = "{d.kind.value}"\naddress = "{d.address}"\n'
        for d in simulation.devices
    )
    config = folder / "gateway.toml"
    config.write_text(
        f'site = "bench-home"\ngateway = "gw-bench"\n\n'
        f'[mqtt]\nurl = "mqtt://{broker.host}:{broker.port}"\n\n'
        f'[outbox]\npath = "{folder / "outbox.sqlite3"}"\n\n'
        f'[ble]\nbackend = "bumble"\ntransport = "{hci}"\nbackoff_max_s = 5\n\n{devices}',
        encoding="utf-8",
    )
    log = folder / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        wanted = len(simulation.devices)
        while log.read_text(errors="replace").count(": connected") < wanted:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not connect:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        time.sleep(2)
        readings = _ReadingCounter(broker)
        try:
            return _measure(process.pid, seconds, readings.count)
        finally:
            readings.close()
    finally:
        _stop(process)


class _ReadingCounter:
    """Counts readings arriving on the broker (paho in its own thread)."""

    def __init__(self, broker: MosquittoServer) -> None:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        self._count = 0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.subscribe("carewatch/v1/bench-home/gw-bench/readings", qos=1)
        self._client.loop_start()

    def _on_message(self, _client: object, _userdata: object, message: object) -> None:
        payload = message.payload  # type: ignore[attr-defined]
        self._count += len(json.loads(payload)["readings"])

    def count(self) -> int:
        return self._count

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    mosquitto = find_binary("mosquitto")
    if mosquitto is None:
        sys.exit("bench.gateway needs mosquitto (Debian package mosquitto)")
    with tempfile.TemporaryDirectory(prefix="carewatch-bench-") as tmp:
        folder = Path(tmp)
        site_file = _site(folder, args.devices)
        start = datetime.now(UTC).replace(microsecond=0)
        simulation = Simulation(load_site(site_file), seed=1, start=start, scenarios=[])
        broker = MosquittoServer(folder / "mosquitto", binary=mosquitto)
        broker.start()
        sim_log = folder / "sim.log"
        with sim_log.open("wb") as out:
            sim = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "firmware_sim",
                    "--site",
                    str(site_file),
                    "--listen",
                    "tcp-server:127.0.0.1:0",
                    "--start",
                    start.isoformat(),
                    "--no-table",
                    "--no-site-scenarios",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        try:
            hci = _wait_for_line(sim_log, "hci: ", sim, within=60).removeprefix("hci: ").strip()
            addresses = [d.address for d in simulation.devices]
            bare = _bare_central(folder, hci, addresses, args.seconds)
            full = _gateway(folder, hci, simulation, broker, args.seconds)
        finally:
            _stop(sim)
            broker.stop()
    print(
        f"cores: {os.cpu_count()}  devices: {args.devices} wearables at 1 Hz  "
        f"window: {args.seconds:.0f} s"
    )
    print(
        f"baseline bare central : cpu {bare.cpu_share:6.1%} of one core, peak RSS "
        f"{bare.peak_rss_mb:6.1f} MB, {bare.rate:7.1f} notifications/s"
    )
    print(
        f"carewatch gateway     : cpu {full.cpu_share:6.1%} of one core, peak RSS "
        f"{full.peak_rss_mb:6.1f} MB, {full.rate:7.1f} readings/s published"
    )
    print(
        f"ratio gateway/baseline: cpu x{full.cpu_share / bare.cpu_share:.2f}, "
        f"RSS x{full.peak_rss_mb / bare.peak_rss_mb:.2f}"
    )


if __name__ == "__main__":
    main()
