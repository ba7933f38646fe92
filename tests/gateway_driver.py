"""A gateway without BLE for the integration tests: recorder + outbox + uplink in one process,
fed with synthetic observations, so a test can SIGKILL it mid-stream and start it again.

    python -m tests.gateway_driver CONFIG.toml --count N --rate R [--events path.jsonl]

Settings come from the TOML file and ``CAREWATCH_*`` (as in production). It offers ``count``
observations at ``rate`` per second (heart rate from three wearables, every 25th a body
temperature, every 100th a fall), then idles. It appends one JSON object per line to
``--events``: ``{"event": "ready"}``, ``{"event": "produced", "count": N}`` and, once
everything produced is acknowledged by the broker, ``{"event": "drained", "last_seq": S}``.
SIGTERM stops it cleanly (offline status, DISCONNECT); SIGKILL leaves the will.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from gateway.health import utc_now
from gateway.outbox import AsyncOutbox
from gateway.recorder import Recorder
from gateway.settings import GatewaySettings
from gateway.uplink import Uplink
from tests.harness import poll_until_async
from vitals.metrics import Metric
from vitals.observations import Observation


def observation(n: int) -> tuple[str, Observation]:
    if n % 100 == 99:
        return "pendant-1", Observation(Metric.FALL, 1.0)
    if n % 25 == 24:
        return "thermo-1", Observation(Metric.BODY_TEMPERATURE, 36.0 + (n % 20) / 10)
    return f"wear-{n % 3}", Observation(Metric.HEART_RATE, float(50 + n % 70))


class Events:
    def __init__(self, path: Path | None) -> None:
        self._path = path

    def write(self, **fields: object) -> None:
        if self._path is None:
            return
        with self._path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(fields) + "\n")


async def produce(recorder: Recorder, count: int, rate: float, events: Events) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(count):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        device, obs = observation(n)
        recorder.offer(device, obs, utc_now())  # as a BLE callback: a full queue drops it
    events.write(event="produced", count=count)


async def report_drained(recorder: Recorder, outbox: AsyncOutbox, events: Events) -> None:
    async def drained() -> bool | None:
        return True if recorder.queued == 0 and outbox.depth == 0 else None

    await poll_until_async(drained, within=3600, what="outbox drained", every=0.05)
    events.write(event="drained", last_seq=outbox.last_seq)


async def main(config: Path, count: int, rate: float, events: Events) -> None:
    settings = GatewaySettings.load(config)
    async with AsyncOutbox.open(
        settings.outbox.path,
        max_rows=settings.outbox.max_rows,
        policy=settings.outbox.policy,
        late_after=settings.outbox.late_after,
    ) as outbox:
        recorder = Recorder(
            gateway=settings.gateway, sink=outbox, settings=settings.recorder, zone=settings.zone
        )
        uplink = Uplink(
            site=settings.site,
            gateway=settings.gateway,
            outbox=outbox,
            mqtt=settings.mqtt,
            status=settings.status,
            health=recorder,
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(recorder.run(), name="recorder")
            tasks.create_task(uplink.run(), name="uplink")
            events.write(event="ready")
            await produce(recorder, count, rate, events)
            await report_drained(recorder, outbox, events)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--events", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r",
    )

    async def until_stopped() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await main(args.config, args.count, args.rate, Events(args.events))
            await asyncio.Event().wait()  # idle until SIGTERM
        except asyncio.CancelledError:
            return

    asyncio.run(until_stopped())


if __name__ == "__main__":
    run()
