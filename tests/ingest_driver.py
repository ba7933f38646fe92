"""Helpers for the ingestor's integration tests and benchmark, and a publisher process.

    python -m tests.ingest_driver publish --host H --port P --site S --gateways 4 \\
        --messages 1000 --readings 250 [--rate MSGS_PER_S] [--events FILE]

publishes ``messages`` readings batches (round robin over the gateways, ``readings`` each,
seqs counting from 0 per gateway) at QoS 1 and exits once the broker has acknowledged all of
them. The payloads are built before the first publish; ``--events`` gets one JSON line when
publishing starts and one when it is done (with the seconds it took).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from cloud.ingest import Ingestor
from cloud.settings import CloudSettings
from vitals import topics

__all__ = [
    "IngestProcess",
    "Listener",
    "Publisher",
    "batch_payload",
    "device_ids",
    "expected_keys",
    "ingest_config",
    "ingest_settings",
    "running",
    "site_file",
]

START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
"""Measurement time of seq 0; seq n is measured n ms later (RR intervals share one)."""


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def reading_dict(gateway: str, seq: int, devices: Sequence[str]) -> dict[str, Any]:
    """The reading with ``seq`` of ``gateway``: mostly heart rates; seqs ending in 7, 8, 9 are
    RR intervals stamped with the same time (as one heart-rate notification gives them)."""
    device = devices[seq // 10 % len(devices)]
    if seq % 10 >= 7:
        at = START + timedelta(milliseconds=seq - seq % 10 + 7)
        return {
            "gateway": gateway,
            "device": device,
            "metric": "rr_interval",
            "value": 0.7 + (seq % 10) / 100,
            "unit": "s",
            "time": _iso(at),
            "received": _iso(at + timedelta(milliseconds=40)),
            "seq": seq,
        }
    at = START + timedelta(milliseconds=seq)
    return {
        "gateway": gateway,
        "device": device,
        "metric": "heart_rate",
        "value": float(55 + seq % 60),
        "unit": "/min",
        "time": _iso(at),
        "received": _iso(at + timedelta(milliseconds=40)),
        "seq": seq,
    }


def batch_payload(
    site: str,
    gateway: str,
    seqs: Iterable[int],
    devices: Sequence[str],
    *,
    bad: Mapping[int, Mapping[str, Any]] | None = None,
) -> bytes:
    """A ReadingBatch as JSON; ``bad`` overrides fields of some readings (by seq)."""
    readings = []
    for seq in seqs:
        item = reading_dict(gateway, seq, devices)
        if bad and seq in bad:
            item.update(bad[seq])
        readings.append(item)
    message = {"v": 1, "site": site, "gateway": gateway, "sent": _iso(START), "readings": readings}
    return json.dumps(message, separators=(",", ":")).encode()


def device_ids(gateway: str, count: int) -> list[str]:
    """The devices of one gateway (a device is heard by one gateway)."""
    return [f"{gateway}-dev-{n:02d}" for n in range(count)]


def expected_keys(gateways: Sequence[str], per_gateway: int) -> set[tuple[str, int]]:
    return {(gateway, seq) for gateway in gateways for seq in range(per_gateway)}


def site_file(path: Path, site: str, residents: Mapping[str, Sequence[str]]) -> Path:
    """Write a site file in the seeds' layout (resident -> device ids)."""
    lines = [f"id = {json.dumps(site)}", 'name = "Test site"', ""]
    for resident, devices in residents.items():
        lines += ["[[residents]]", f"id = {json.dumps(resident)}", "devices = ["]
        lines += [f'    {{ id = {json.dumps(d)}, kind = "wearable" }},' for d in devices]
        lines += ["]", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def ingest_config(path: Path, sections: Mapping[str, Mapping[str, object]]) -> Path:
    """Write a cloud settings file: ``{"mqtt": {...}, "store": {...}, ...}``."""
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def ingest_settings(
    broker_url: str,
    *,
    store: Mapping[str, object],
    sites: Sequence[Path] = (),
    mqtt: Mapping[str, object] | None = None,
    registry: Mapping[str, object] | None = None,
) -> CloudSettings:
    """Settings for a test ingestor: a client id and share group of its own, a short session
    expiry (so the session broker forgets it soon), fast retries, metrics off."""
    tag = uuid.uuid4().hex[:10]
    data: dict[str, Any] = {
        "mqtt": {
            "url": broker_url,
            "client_id": f"ingest-{tag}",
            "share_group": f"g{tag}",
            "session_expiry_s": 120,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 1.0,
            **(mqtt or {}),
        },
        "store": {"retry_min_s": 0.1, "retry_max_s": 1.0, **store},
        "registry": {"sites": [str(p) for p in sites], **(registry or {})},
        "metrics": {"enabled": False},
    }
    return CloudSettings(**data)


@asynccontextmanager
async def running(ingestor: Ingestor, *, connect_within: float = 15.0) -> AsyncIterator[Ingestor]:
    """Run ``ingestor`` while inside; connected and subscribed on entry, stopped on exit."""
    task = asyncio.ensure_future(ingestor.run())
    try:
        async with asyncio.timeout(connect_within):
            while not ingestor.connected.is_set():
                if task.done():
                    task.result()
                    raise RuntimeError("the ingestor stopped before it connected")
                await asyncio.sleep(0.01)
        yield ingestor
    finally:
        ingestor.stop()
        await asyncio.wait_for(task, 60)


class Publisher:
    """A QoS 1 publisher (paho, network thread) that can wait for every PUBACK."""

    def __init__(self, host: str, port: int, *, max_inflight: int = 100) -> None:
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-pub-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv5,
        )
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._lock = threading.Lock()
        self._published = 0
        self._acknowledged = 0
        self._failed = 0
        self._client.on_publish = self._on_publish
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_publish(self, _c: paho.Client, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        # paho calls this holding its own locks: take nothing but ours, briefly.
        with self._lock:
            self._acknowledged += 1
            if reason.is_failure:
                self._failed += 1

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish failed: {paho.error_string(info.rc)}")
        with self._lock:
            self._published += 1

    @property
    def pending(self) -> int:
        with self._lock:
            return self._published - self._acknowledged

    def flush(self, timeout: float) -> None:
        """Wait until the broker acknowledged everything published."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.pending} publishes not acknowledged in {timeout} s")
            time.sleep(0.01)
        if self._failed:
            raise RuntimeError(f"the broker refused {self._failed} publishes")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Listener:
    """A QoS 1 subscriber that keeps every message it gets (for dead letters)."""

    def __init__(self, host: str, port: int, topic_filter: str) -> None:
        self._lock = threading.Lock()
        self._messages: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-listen-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_args: self._subscribed.set()
        self._client.connect(host, port)
        self._client.loop_start()
        self._client.subscribe(topic_filter, qos=1)
        if not self._subscribed.wait(10):
            raise TimeoutError("no SUBACK")

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((message.topic, bytes(message.payload)))

    @property
    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self._messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class IngestProcess:
    """``python -m cloud ingest --config FILE`` as a child process, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "cloud", "ingest", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> int:
        """SIGKILL: a crash, nothing flushed."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        proc.kill()
        return proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for the exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        proc.terminate()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def _publish_main(args: argparse.Namespace) -> int:
    gateways = [f"gw-{n:02d}" for n in range(args.gateways)]
    devices = {g: device_ids(g, args.devices) for g in gateways}
    messages: list[tuple[str, bytes]] = []
    next_seq = dict.fromkeys(gateways, args.seq_start)
    for n in range(args.messages):
        gateway = gateways[n % len(gateways)]
        first = next_seq[gateway]
        next_seq[gateway] = first + args.readings
        seqs = range(first, first + args.readings)
        payload = batch_payload(args.site, gateway, seqs, devices[gateway])
        messages.append((topics.readings(args.site, gateway), payload))

    def event(**fields: object) -> None:
        if args.events:
            with Path(args.events).open("a", encoding="utf-8") as file:
                file.write(json.dumps(fields) + "\n")

    publisher = Publisher(args.host, args.port, max_inflight=args.inflight)
    began = time.monotonic()
    event(event="publishing", messages=len(messages), time=time.time())
    try:
        for index, (topic, payload) in enumerate(messages):
            if args.rate:
                delay = began + index / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            publisher.publish(topic, payload)
        publisher.flush(timeout=600)
    finally:
        publisher.close()
    event(event="published", seconds=time.monotonic() - began, time=time.time())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ingest_driver")
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish")
    publish.add_argument("--host", default="127.0.0.1")
    publish.add_argument("--port", type=int, required=True)
    publish.add_argument("--site", required=True)
    publish.add_argument("--gateways", type=int, default=4)
    publish.add_argument("--devices", type=int, default=8)
    publish.add_argument("--messages", type=int, required=True)
    publish.add_argument("--readings", type=int, default=250)
    publish.add_argument("--seq-start", type=int, default=0)
    publish.add_argument("--rate", type=float, default=0.0, help="messages/s (0: as fast)")
    publish.add_argument("--inflight", type=int, default=100)
    publish.add_argument("--events", default=None)
    args = parser.parse_args(argv)
    return _publish_main(args)


if __name__ == "__main__":
    sys.exit(main())
