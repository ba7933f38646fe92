"""The gateway's end-to-end test reading goes through the real recorder into the real outbox,
as a reading of the gateway itself, on its schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from gateway.outbox import AsyncOutbox
from gateway.probe import send_probes
from gateway.recorder import Recorder
from gateway.settings import GatewaySettings, RecorderSettings
from tests.harness import poll_until_async
from vitals.metrics import Metric

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


async def test_probes_reach_the_outbox_as_readings_of_the_gateway(tmp_path: Path) -> None:
    async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=1000) as outbox:
        recorder = Recorder(gateway="gw-1", sink=outbox, settings=RecorderSettings())
        async with asyncio.TaskGroup() as group:
            recording = group.create_task(recorder.run())
            probing = group.create_task(send_probes(recorder, "gw-1", 0.05, lambda: NOW))

            async def three() -> bool | None:
                return True if outbox.depth >= 3 else None

            await poll_until_async(three, within=10, what="three probes stored")
            probing.cancel()
            recording.cancel()
        stored = await outbox.fetch(after=0, limit=10, now=NOW)
    assert len(stored) >= 3
    assert {(s.entry.device, s.entry.metric, s.entry.value) for s in stored} == {
        ("gw-1", Metric.PROBE, 1.0)
    }


def test_probes_are_on_by_default_and_can_be_switched_off() -> None:
    base = {"site": "home-0001", "gateway": "gw-0001", "mqtt": {"url": "mqtt://127.0.0.1"}}
    assert GatewaySettings.model_validate(base).status.probe_interval_s == 300
    off = GatewaySettings.model_validate({**base, "status": {"probe_interval_s": 0}})
    assert off.status.probe_interval_s == 0
