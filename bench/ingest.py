"""Ingest throughput beside its two baselines, measured in one run on one machine.

    .venv/bin/python -m bench.ingest [--quick] [--large 250] [--small 5] [--processes 2]

Starts its own Mosquitto and InfluxDB (tests.harness, 127.0.0.1 only), then measures:

(a) raw: bulk line-protocol writes of 5,000 points (the ingestor's schema) from one writer
    into that InfluxDB: the store's limit, nothing else in the way.
(b) naive bridge: a paho subscriber (auto-ack) that turns each MQTT message into line
    protocol (``json.loads``, no validation) and writes it at once, one HTTP request per
    message.
(c) this ingestor, end to end: ``python -m cloud ingest`` as its own process, fed by a
    separate publisher process (``python -m tests.ingest_driver publish``, QoS 1, payloads
    built before the clock starts); the time runs from the first publish until InfluxDB holds
    every reading. With ``--processes N`` (N > 1) it is measured again with N ingestor
    processes in one share group.

(b) and (c) run on two workloads: large messages (``--large`` readings each, as a care home's
gateway sends them) and small ones (``--small`` readings, a single resident's gateway). Every
phase has a deadline, so the run is bounded; ``--quick`` makes it short.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.harness import (
    InfluxDBServer,
    MosquittoOptions,
    MosquittoServer,
    find_binary,
    free_port,
    poll_until,
)
from tests.ingest_driver import ingest_config

SITE = "bench-home"
RAW_BATCH = 5000
BASE_NS = 1_714_550_400_000_000_000


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    readings: int
    messages: int

    @property
    def total(self) -> int:
        return self.readings * self.messages


@dataclass(slots=True)
class Result:
    readings: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0


# -- helpers --------------------------------------------------------------------------------


def count(influx: InfluxDBServer, db: str) -> int:
    rows = influx.query_rows(db, "SELECT count(value) FROM vitals")
    return int(rows[0]["count"]) if rows else 0


def wait_count(influx: InfluxDBServer, db: str, total: int, within: float) -> float:
    """Poll until ``db`` holds ``total`` points; return the monotonic time it was seen."""
    poll_until(
        lambda: True if count(influx, db) >= total else None,
        within=within,
        what=f"{total} points in {db}",
        every=0.2,
    )
    return time.monotonic()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def publisher(
    broker: MosquittoServer, workload: Workload, events: Path, gateways: int = 8
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "tests.ingest_driver", "publish",
            "--port", str(broker.port), "--site", SITE, "--gateways", str(gateways),
            "--messages", str(workload.messages), "--readings", str(workload.readings),
            "--inflight", "200", "--events", str(events),
        ],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def publishing_started(events: Path, within: float = 120) -> float:
    """Wait for the publisher's first publish; return it on the monotonic clock."""

    def started() -> float | None:
        if not events.exists():
            return None
        for line in events.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "publishing":
                return float(event["time"])
        return None

    wall = poll_until(started, within=within, what="publisher started", every=0.005)
    return time.monotonic() - (time.time() - wall)


# -- (a) raw --------------------------------------------------------------------------------


def raw_writes(influx: InfluxDBServer, points: int) -> Result:
    influx.create_database("raw")
    batches = []
    for b in range(points // RAW_BATCH):
        lines = []
        for i in range(RAW_BATCH):
            n = b * RAW_BATCH + i
            ts = BASE_NS + n * 1_000_000
            lines.append(
                f"vitals,device=gw-0{n % 8}-dev-0{n % 4},metric=heart_rate,resident=r0{n % 9},"
                f'site={SITE} value={55.0 + n % 60},seq={n}i,gateway="gw-0{n % 8}",flags="",'
                f"received={ts + 40_000_000}i {ts}"
            )
        batches.append("\n".join(lines).encode())
    with httpx.Client(base_url=influx.url, timeout=30) as http:
        began = time.monotonic()
        for body in batches:
            response = http.post("/write", params={"db": "raw", "precision": "n"}, content=body)
            response.raise_for_status()
        seconds = time.monotonic() - began
    return Result(len(batches) * RAW_BATCH, seconds)


# -- (b) the naive bridge -------------------------------------------------------------------


class NaiveBridge:
    """One HTTP write per MQTT message, as it arrives; paho acknowledges on its own."""

    def __init__(self, broker: MosquittoServer, influx: InfluxDBServer, db: str) -> None:
        self._http = httpx.Client(base_url=influx.url, timeout=30)
        self._params = {"db": db, "precision": "n"}
        self.errors = 0
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"naive-{db}", protocol=paho.MQTTv5
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        self._client.subscribe("carewatch/v1/+/+/readings", qos=1)
        if not self._subscribed.wait(10):
            raise TimeoutError("no SUBACK")

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        try:
            batch = json.loads(message.payload)
            lines = []
            for r in batch["readings"]:
                lines.append(
                    f"vitals,device={r['device']},metric={r['metric']},site={batch['site']} "
                    f'value={float(r["value"])},seq={r["seq"]}i,gateway="{r["gateway"]}" '
                    f"{_iso_ns(r['time']) + r['seq'] % 1000}"
                )
            self._http.post("/write", params=self._params, content="\n".join(lines).encode())
        except (ValueError, KeyError, httpx.HTTPError):
            self.errors += 1

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._http.close()


def _iso_ns(text: str) -> int:
    from datetime import datetime  # noqa: PLC0415 (local: this is the baseline's own code)

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def naive(
    broker: MosquittoServer, influx: InfluxDBServer, workload: Workload, work: Path
) -> Result:
    db = f"naive_{workload.name}"
    influx.create_database(db)
    bridge = NaiveBridge(broker, influx, db)
    try:
        events = work / f"naive-{workload.name}.jsonl"
        with publisher(broker, workload, events):
            began = publishing_started(events)
            done = wait_count(influx, db, workload.total, within=240)
    finally:
        bridge.close()
    return Result(workload.total, done - began)


# -- (c) the ingestor -----------------------------------------------------------------------


def ingest(
    broker: MosquittoServer,
    influx: InfluxDBServer,
    workload: Workload,
    work: Path,
    processes: int = 1,
) -> tuple[Result, float]:
    """Run ``processes`` ingestors; return the result and their CPU seconds during it."""
    db = f"ingest_{workload.name}_{processes}"
    influx.create_database(db)
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    group = f"bench{processes}{workload.name}"
    try:
        for n in range(processes):
            config = ingest_config(
                work / f"{db}-{n}.toml",
                {
                    "mqtt": {
                        "url": broker.url,
                        "client_id": f"{group}-{n}",
                        "share_group": group,
                        "session_expiry_s": 60,
                    },
                    "store": {"url": influx.url, "database": db},
                    "metrics": {"port": free_port()},
                    "log": {"level": "WARNING"},
                },
            )
            log = work / f"{db}-{n}.log"
            with log.open("wb") as sink:
                procs.append(
                    (
                        subprocess.Popen(
                            [sys.executable, "-m", "cloud", "ingest", "--config", str(config)],
                            stdout=sink,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                        ),
                        config,
                    )
                )
        for proc, config in procs:
            port = _metrics_port(config)

            def connected(port: int = port, proc: subprocess.Popen[bytes] = proc) -> bool | None:
                if proc.poll() is not None:
                    raise RuntimeError(f"the ingestor exited with {proc.returncode}")
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.TransportError:
                    return None
                return True if "carewatch_ingest_mqtt_connected 1.0" in text else None

            poll_until(connected, within=30, what="ingestor connected", every=0.05)
        cpu_before = sum(cpu_seconds(proc.pid) for proc, _ in procs)
        events = work / f"{db}.jsonl"
        with publisher(broker, workload, events):
            began = publishing_started(events)
            done = wait_count(influx, db, workload.total, within=300)
        cpu = sum(cpu_seconds(proc.pid) for proc, _ in procs) - cpu_before
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return Result(workload.total, done - began), cpu


def _metrics_port(config: Path) -> int:
    import tomllib  # noqa: PLC0415

    return int(tomllib.loads(config.read_text())["metrics"]["port"])


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~1 minute)")
    parser.add_argument("--large", type=int, default=250, help="readings per large message")
    parser.add_argument("--small", type=int, default=5, help="readings per small message")
    parser.add_argument("--processes", type=int, default=2, help="also run N ingestors (0: no)")
    args = parser.parse_args()
    scale = 1 if args.quick else 4
    raw_points = 100_000 * scale
    workloads = [
        Workload("large", args.large, max(1, 200_000 * scale // args.large)),
        Workload("small", args.small, max(1, 8_000 * scale)),
    ]
    mosquitto_bin, influxd_bin = find_binary("mosquitto"), find_binary("influxd")
    if mosquitto_bin is None or influxd_bin is None:
        sys.exit("bench.ingest needs the Debian packages 'mosquitto' and 'influxdb'")
    cores = os.cpu_count()
    print(
        f"cores: {cores} (Mosquitto, InfluxDB, publisher and ingestor all share them); "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        work = Path(folder)
        broker = MosquittoServer(
            work / "mosquitto",
            binary=mosquitto_bin,
            options=MosquittoOptions(max_queued_messages=10_000_000, autosave_interval=60),
        )
        influx = InfluxDBServer(work / "influxdb", binary=influxd_bin)
        with broker, influx:
            raw = raw_writes(influx, raw_points)
            print(
                f"(a) raw line protocol, 1 writer, batches of {RAW_BATCH}: "
                f"{raw.rate:,.0f} points/s ({raw.readings:,} points)"
            )
            for workload in workloads:
                print(
                    f"\nworkload '{workload.name}': {workload.messages:,} messages x "
                    f"{workload.readings} readings = {workload.total:,} readings, QoS 1"
                )
                b = naive(broker, influx, workload, work)
                print(f"(b) naive bridge (1 write per message):   {b.rate:>10,.0f} readings/s")
                influx_cpu = cpu_seconds(influx.pid)
                mosquitto_cpu = cpu_seconds(broker.pid)
                c, cpu = ingest(broker, influx, workload, work)
                influx_cpu = cpu_seconds(influx.pid) - influx_cpu
                mosquitto_cpu = cpu_seconds(broker.pid) - mosquitto_cpu
                print(
                    f"(c) ingestor, 1 process, end to end:      {c.rate:>10,.0f} readings/s"
                    f"  ({c.seconds:.1f} s; CPU s: ingestor {cpu:.1f}, influxd "
                    f"{influx_cpu:.1f}, mosquitto {mosquitto_cpu:.1f})"
                )
                print(f"    c/a = {c.rate / raw.rate:.2f}   c/b = {c.rate / b.rate:.1f}")
                if args.processes > 1:
                    cn, cpu_n = ingest(broker, influx, workload, work, args.processes)
                    print(
                        f"(c) ingestor, {args.processes} processes (share group):"
                        f" {cn.rate:>10,.0f} readings/s  (CPU s: ingestors {cpu_n:.1f})"
                        f"   c/a = {cn.rate / raw.rate:.2f}   c/b = {cn.rate / b.rate:.1f}"
                    )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
