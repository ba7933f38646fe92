"""``python -m cloud serve`` as a real process: ingest, alerts and the API in one, on a real
Mosquitto and the embedded store. A low SpO2 published by a "gateway" is stored, raises an
alert on the alerts topic and is listed by the API; SIGTERM stops it cleanly. And a bad
people file is a configuration error (exit 2) for ``python -m cloud alerts``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud.store import SqliteStore
from tests.harness import MosquittoServer, free_port, poll_until
from tests.integration.test_alerts_service import first_alert, publish, site_file, spo2_batch
from vitals import topics
from vitals.metrics import Metric

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WITHIN = 30.0


def config(folder: Path, broker: MosquittoServer, site: str, port: int, people: str = "") -> Path:
    path = folder / "cloud.toml"
    path.write_text(
        f"""
demo = true
[mqtt]
url = "{broker.url}"
client_id = "serve-{site}"
share_group = "serve-{site}"
session_expiry_s = 60
[store]
kind = "sqlite"
path = "vitals.sqlite3"
batch_interval_s = 0.05
[registry]
sites = ["{site}.toml"]
[alerts]
client_id = "serve-alerts-{site}"
ledger = "alerts.sqlite3"
tick_s = 0.2
people = [{people}]
[metrics]
enabled = false
[api]
host = "127.0.0.1"
port = {port}
database = "api.sqlite3"
audit_database = "audit.sqlite3"
sites = ["{site}.toml"]
session = {{ cookie_secure = false }}
[log]
level = "INFO"
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def running(command: str, path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (path.parent / f"{command}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud", command, "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=path.parent,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def logs(path: Path, command: str) -> str:
    return (path.parent / f"{command}.log").read_text(errors="replace")


async def test_serve_stores_alerts_and_lists_in_one_process(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = f"serve-{uuid.uuid4().hex[:8]}"
    site_file(tmp_path, site)
    port = free_port()
    path = config(tmp_path, mosquitto, site, port)
    with running("serve", path) as proc:

        def up() -> bool | None:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited {proc.returncode}: {logs(path, 'serve')}")
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/openapi.json", timeout=2)
            except httpx.TransportError:
                return None
            return True if response.status_code == 200 else None

        await asyncio.to_thread(poll_until, up, within=WITHIN, what="the API up", every=0.1)

        def subscribed() -> bool | None:
            text = logs(path, "serve")
            return True if "alerts: connected" in text and "mqtt connected" in text else None

        await asyncio.to_thread(
            poll_until, subscribed, within=WITHIN, what="ingest and alerts connected", every=0.1
        )
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as watcher:
            await watcher.subscribe(topics.alerts(site), qos=1)
            now = datetime.now(UTC) - timedelta(seconds=1)
            await publish(
                mosquitto, topics.readings(site, "gw-1"), spo2_batch(site, [88.0] * 120, now, 0)
            )
            alert = await first_alert(watcher, "spo2_low")
        assert (alert.site, alert.resident, alert.rule) == (site, "r01", "spo2_low")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, logs(path, "serve")
    async with SqliteStore(tmp_path / "vitals.sqlite3") as store:
        assert await store.count(site, "r01", Metric.SPO2) == 120


def test_a_bad_people_file_is_a_configuration_error(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    site = f"serve-{uuid.uuid4().hex[:8]}"
    site_file(tmp_path, site)
    (tmp_path / "people.toml").write_text(
        f'site = "{site}"\n[ladder]\nsteps = [{{ roles = ["janitor"] }}]\n', encoding="utf-8"
    )
    path = config(tmp_path, mosquitto, site, free_port(), people='"people.toml"')
    with running("alerts", path) as proc:
        assert proc.wait(30) == 2
    assert "configuration refused" in logs(path, "alerts")
    assert "people.toml" in logs(path, "alerts")
