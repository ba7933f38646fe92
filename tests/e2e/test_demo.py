"""``carewatch demo`` (``make demo``) as a user runs it: one process that starts a broker, the
cloud services, the simulated Oak House and its gateway, prints the URL and the logins, and
stops everything on SIGTERM.

The whole demo is driven headless through its API as the printed staff user: every resident of
the site is listed with live readings measured after the demo was launched, and the scripted
help-button scenario (30 s after the simulator starts) becomes an alert within a minute of the
demo being ready; SIGTERM then ends it with status 0 and no service process left. A second
run points the demo at a real Mosquitto and a real InfluxDB, and a service killed under it
stops everything with status 1 and its log's tail. Around them: the embedded amqtt broker
itself (MQTT 3.1.1 round trip; the services' MQTT v5 refused, which is why the demo runs
Mosquitto as a stopgap today), the configuration files as the services' own loaders read
them, bad arguments, a port in use, and the ``make demo`` target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from carewatch.broker import EmbeddedBroker, services_speak_mqtt311
from carewatch.configs import (
    BrokerTarget,
    GatewayDevice,
    InfluxTarget,
    cloud_toml,
    gateway_toml,
)
from cloud.settings import CloudSettings, StoreKind
from firmware_sim.firmware import Simulation
from firmware_sim.site import SEEDS_DIR, load_site
from gateway.settings import GatewaySettings
from tests.harness import (
    InfluxDBServer,
    MosquittoServer,
    free_port,
    poll_until,
    require_binary,
)
from vitals.devices import DeviceKind

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
SITE_FILE = SEEDS_DIR / "oak-house.toml"
SITE = load_site(SITE_FILE)
API = "/api/v1"
READY_WITHIN = 150.0
"""The demo's own limits add up to about four minutes; on a quiet machine it takes ~15 s."""
STOP_WITHIN = 60.0


def _command() -> list[str]:
    """The console script when the venv has it, else the same entry point through ``-m``
    (a venv installed before the script was declared)."""
    script = Path(sys.executable).parent / "carewatch"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "carewatch"]


@dataclass
class Banner:
    api: str
    dashboard: str | None
    logins: dict[str, str]
    pids: dict[str, int]
    data: Path


@dataclass
class DemoRun:
    process: subprocess.Popen[bytes]
    output: Path
    banner: Banner | None = None
    stopped: list[int] = field(default_factory=list)

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> Banner:
        def ready() -> Banner | None:
            text = self.text()
            if "Press Ctrl-C to stop." in text:
                return _parse_banner(text)
            if self.process.poll() is not None:
                raise AssertionError(f"the demo exited {self.process.returncode}:\n{text}")
            return None

        self.banner = poll_until(ready, within=READY_WITHIN, what="the demo ready", every=0.2)
        return self.banner

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_WITHIN)


def _parse_banner(text: str) -> Banner:
    def one(pattern: str) -> str:
        match = re.search(pattern, text, re.MULTILINE)
        assert match is not None, (pattern, text)
        return match.group(1)

    dashboard = re.search(r"^  dashboard  (http://\S+)$", text, re.MULTILINE)
    return Banner(
        api=one(r"^  api        (http://\S+)/api/v1"),
        dashboard=dashboard.group(1) if dashboard else None,
        logins=dict(re.findall(r"^  login      (\S+) / (\S+)", text, re.MULTILINE)),
        pids={
            name: int(pid) for name, pid in re.findall(r"(\w+)=(\d+)", one(r"^  processes  (.*)$"))
        },
        data=Path(one(r"^  data       (\S+) \(")),
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    try:  # a zombie has exited: only its parent has not read the status yet
        return status.read_text().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Any]:
    """``demo(*arguments)`` starts ``carewatch demo``; at teardown the demo and anything it
    started that is still running is stopped."""
    runs: list[DemoRun] = []

    def start(*arguments: str) -> DemoRun:
        output = tmp_path / f"demo-{len(runs)}.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [*_command(), "demo", *arguments],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        run = DemoRun(process, output)
        runs.append(run)
        return run

    try:
        yield start
    finally:
        for run in runs:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(timeout=30)
            pids = run.banner.pids.values() if run.banner else []
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _session(api: str, username: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=10.0) as client:
        login = {"username": username, "password": password}
        response = client.post(f"{API}/auth/login", json=login)
        assert response.status_code == 200, response.text
        yield client


def _dashboard_wired() -> bool:
    """Whether the API app serves the web dashboard (``cloud/api/web`` is being written and
    wired in by another change)."""
    if not (ROOT / "cloud" / "api" / "web" / "__init__.py").is_file():
        return False
    wiring = ("cloud/api/server.py", "cloud/api/app.py", "cloud/__main__.py")
    return any("dashboard_router" in (ROOT / name).read_text(encoding="utf-8") for name in wiring)


def _check_live_residents_and_alert(
    staff: httpx.Client, family: httpx.Client, *, launched: datetime, ready: float
) -> None:
    residents = staff.get(f"{API}/sites/{SITE.id}/residents")
    assert residents.status_code == 200, residents.text
    assert {r["id"] for r in residents.json()} == {r.id for r in SITE.residents}

    # Every resident with a wearable has readings measured after the launch.
    worn = {r.id for r in SITE.residents if any(d.kind is DeviceKind.WEARABLE for d in r.devices)}
    assert len(worn) >= 10

    def live() -> dict[str, datetime] | None:
        newest: dict[str, datetime] = {}
        for resident in sorted(worn):
            answer = staff.get(f"{API}/sites/{SITE.id}/residents/{resident}/latest")
            assert answer.status_code == 200, answer.text
            times = [datetime.fromisoformat(r["time"]) for r in answer.json()["readings"]]
            if times and max(times) > launched:
                newest[resident] = max(times)
        return newest if set(newest) == worn else None

    poll_until(live, within=30, what="live readings of every worn resident", every=1.0)

    # The help button (30 s into the simulation) becomes an alert within a minute of ready.
    def alerted() -> list[dict[str, Any]] | None:
        answer = staff.get(f"{API}/sites/{SITE.id}/alerts")
        assert answer.status_code == 200, answer.text
        alerts: list[dict[str, Any]] = answer.json()["alerts"]
        return alerts if any(a["rule"] == "help" for a in alerts) else None

    left_s = max(1.0, 60.0 - (time.monotonic() - ready))
    alerts = poll_until(alerted, within=left_s, what="the help-button alert", every=1.0)
    assert time.monotonic() - ready <= 61, "the first alert came more than a minute after ready"
    help_alert = next(a for a in alerts if a["rule"] == "help")
    assert help_alert["resident"] == "r07", alerts

    # The family login sees its resident only.
    mine = family.get(f"{API}/residents")
    assert mine.status_code == 200, mine.text
    assert [r["id"] for r in mine.json()] == ["r05"]
    assert family.get(f"{API}/sites/{SITE.id}/residents/r07/latest").status_code == 403


# -- the demo, whole ---------------------------------------------------------------------------


def _needs_a_local_broker() -> None:
    """Until the services speak MQTT 3.1.1 (amqtt), the demo runs Mosquitto as a stopgap."""
    if not services_speak_mqtt311():
        require_binary("mosquitto", debian_package="mosquitto")


def test_demo_shows_live_residents_and_an_alert_within_a_minute_and_stops_cleanly(
    demo: Any,
) -> None:
    _needs_a_local_broker()
    launched = datetime.now(UTC)
    run = demo("--port", str(free_port()))
    banner = run.wait_ready()
    ready = time.monotonic()
    text = run.text()
    assert set(banner.logins) == {"admin", "staff", "family-r05"}, text
    assert {"cloud", "simulator", "gateway"} <= set(banner.pids), text
    if not services_speak_mqtt311():
        assert "STOPGAP" in text, text
        assert "broker" in banner.pids, text
    assert banner.data.is_dir()

    with (
        _session(banner.api, "staff", banner.logins["staff"]) as staff,
        _session(banner.api, "family-r05", banner.logins["family-r05"]) as family,
    ):
        _check_live_residents_and_alert(staff, family, launched=launched, ready=ready)
    home = httpx.get(f"{banner.api}/", follow_redirects=True, timeout=10.0)
    if _dashboard_wired():
        assert banner.dashboard == f"{banner.api}/", text
        assert home.status_code == 200, home.text
        assert home.headers["content-type"].startswith("text/html")
        assert "<html" in home.text.lower()
    else:
        assert banner.dashboard is None, text
        assert home.status_code == 404

    assert run.stop(signal.SIGTERM) == 0, run.text()
    text = run.text()
    assert "stopped." in text
    for name in ("gateway", "simulator", "cloud"):
        assert f"{name} stopped (status 0)" in text, text
    # Stopped in reverse order of start.
    order = [text.index(f"{name} stopped") for name in ("gateway", "simulator", "cloud")]
    assert order == sorted(order), text
    left = {name: pid for name, pid in banner.pids.items() if _alive(pid)}
    assert not left, (left, text)
    assert not banner.data.exists(), "the temporary data folder is removed at exit"


def test_demo_on_real_mosquitto_and_influxdb_and_a_dead_service_stops_everything(
    demo: Any, tmp_path: Path, mosquitto: MosquittoServer, influxdb: InfluxDBServer
) -> None:
    database = f"demo_{uuid.uuid4().hex}"
    data = tmp_path / "data"
    run = demo(
        "--port",
        "0",
        "--broker",
        mosquitto.url,
        "--influx",
        influxdb.url,
        "--influx-db",
        database,
        "--data",
        str(data),
        "--speed",
        "2",
    )
    try:
        banner = run.wait_ready()
        text = run.text()
        assert "STOPGAP" not in text
        assert f"broker     {mosquitto.url} (given)" in text
        assert "broker" not in banner.pids  # nothing started for it
        assert banner.data == data.resolve()

        def stored() -> int | None:
            rows = influxdb.query_rows(database, "SELECT count(value) FROM vitals")
            count = int(rows[0]["count"]) if rows else 0
            return count if count > 0 else None

        poll_until(stored, within=30, what="readings in InfluxDB", every=0.5)
        with _session(banner.api, "staff", banner.logins["staff"]) as staff:
            latest = staff.get(f"{API}/sites/{SITE.id}/residents/r01/latest")
        assert latest.status_code == 200, latest.text
        assert latest.json()["readings"], latest.text

        os.kill(banner.pids["gateway"], signal.SIGKILL)
        assert run.process.wait(timeout=STOP_WITHIN) == 1, run.text()
        text = run.text()
        assert "gateway exited with status -9" in text, text
        assert "the end of the gateway log" in text, text
        left = {name: pid for name, pid in banner.pids.items() if _alive(pid)}
        assert not left, (left, text)
        assert (data / "gateway.log").is_file()
        assert (data / "cloud.log").is_file()
    finally:
        influxdb.drop_database(database)


def test_a_demo_killed_with_sigkill_leaves_no_service_running(demo: Any, tmp_path: Path) -> None:
    """No orderly stop is possible then: every service is tied to the demo's life and dies
    with it (Linux's parent-death signal, armed before the service's program starts)."""
    _needs_a_local_broker()
    run = demo("--port", "0", "--data", str(tmp_path / "data"))
    banner = run.wait_ready()
    assert all(_alive(pid) for pid in banner.pids.values()), banner.pids
    run.process.kill()
    assert run.process.wait(timeout=30) == -signal.SIGKILL

    def all_gone() -> bool | None:
        return True if not any(_alive(pid) for pid in banner.pids.values()) else None

    poll_until(all_gone, within=10, what="every service gone with the demo", every=0.1)


# -- the parts -------------------------------------------------------------------------------


async def test_embedded_broker_carries_mqtt_311_and_refuses_the_services_mqtt_v5() -> None:
    async with EmbeddedBroker() as broker:
        port = broker.port
        assert broker.url == f"mqtt://127.0.0.1:{port}"
        topic = f"carewatch/v1/demo-{uuid.uuid4().hex[:8]}/gw/readings"
        async with (
            aiomqtt.Client(
                "127.0.0.1", port, identifier="sub", protocol=aiomqtt.ProtocolVersion.V311
            ) as subscriber,
            aiomqtt.Client(
                "127.0.0.1", port, identifier="pub", protocol=aiomqtt.ProtocolVersion.V311
            ) as publisher,
        ):
            await subscriber.subscribe(topic, qos=1)
            await publisher.publish(topic, b"reading", qos=1)
            async with asyncio.timeout(10):
                message = await anext(aiter(subscriber.messages))
            assert (str(message.topic), message.payload, message.qos) == (topic, b"reading", 1)
        # What the gateway, the ingestor and the alert service send today: an MQTT v5 CONNECT.
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="v5", protocol=aiomqtt.ProtocolVersion.V5, timeout=5
            ):
                pass
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass


def test_the_demo_configs_are_what_the_services_load(tmp_path: Path) -> None:
    data = tmp_path / 'a "quoted" folder ü'
    data.mkdir()
    people = SEEDS_DIR / "people" / "oak-house.toml"
    broker = BrokerTarget("mqtt://127.0.0.1:1884")
    cloud_file = data / "cloud.toml"
    cloud_file.write_text(
        cloud_toml(
            data=data,
            site_file=SITE_FILE,
            people=[people],
            broker=broker,
            port=8123,
            influx=None,
            site=SITE.id,
        ),
        encoding="utf-8",
    )
    cloud = CloudSettings.load(cloud_file)
    assert cloud.demo
    assert cloud.mqtt.share_group == ""  # a plain subscription
    assert (cloud.mqtt.host, cloud.mqtt.port) == ("127.0.0.1", 1884)
    assert cloud.store.kind is StoreKind.SQLITE
    assert cloud.store.path == data / "vitals.sqlite3"
    assert cloud.registry.sites == (SITE_FILE,)
    assert cloud.alerts.people == (people,)
    assert cloud.alerts.ledger == data / "alerts.sqlite3"
    assert (cloud.api.host, cloud.api.port) == ("127.0.0.1", 8123)
    assert cloud.api.database == data / "api.sqlite3"
    assert not cloud.api.session.cookie_secure
    assert not cloud.metrics.enabled

    cloud_file.write_text(
        cloud_toml(
            data=data,
            site_file=SITE_FILE,
            people=[],
            broker=broker,
            port=0,
            influx=InfluxTarget("http://127.0.0.1:8086", "demo_db"),
            site=SITE.id,
        ),
        encoding="utf-8",
    )
    influx = CloudSettings.load(cloud_file).store
    assert (influx.kind, str(influx.url), influx.database) == (
        StoreKind.INFLUXDB,
        "http://127.0.0.1:8086/",
        "demo_db",
    )

    simulation = Simulation(SITE, seed=1, start=datetime.now(UTC), scenarios=[])
    devices = [GatewayDevice(d.id, d.kind.value, d.address, d.resident) for d in simulation.devices]
    gateway_file = data / "gateway.toml"
    gateway_file.write_text(
        gateway_toml(
            data=data,
            site=SITE.id,
            gateway="oak-house-gw",
            timezone=SITE.timezone,
            broker=broker,
            hci="tcp-client:127.0.0.1:40000",
            devices=devices,
        ),
        encoding="utf-8",
    )
    gateway = GatewaySettings.load(gateway_file)
    assert (gateway.site, gateway.gateway, gateway.timezone) == (
        "oak-house",
        "oak-house-gw",
        "Europe/London",
    )
    assert (gateway.ble.backend, gateway.ble.transport) == ("bumble", "tcp-client:127.0.0.1:40000")
    assert [(d.id, d.address, d.resident) for d in gateway.ble.devices] == [
        (d.id, d.address, d.resident) for d in devices
    ]
    assert {d.kind for d in gateway.ble.devices} == set(DeviceKind)  # every device kind
    assert gateway.outbox.path == data / "outbox.sqlite3"


def _run_demo(*arguments: str, within: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), "demo", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (("--broker", "http://127.0.0.1:1883"), "expected mqtt://HOST[:PORT]"),
        (("--influx", "influx:8086"), "expected http://HOST:PORT"),
        (("--speed", "0"), "above 0"),
        (("--port", "70000"), "not a port number"),
        (("--site", "no-such-home"), "no site file"),
        (("--family-of", "r99"), "no resident r99"),
    ],
)
def test_bad_arguments_exit_2_saying_why(arguments: tuple[str, ...], said: str) -> None:
    result = _run_demo(*arguments)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert said in result.stdout + result.stderr


def test_a_port_in_use_exits_2_and_leaves_nothing_running(tmp_path: Path) -> None:
    _needs_a_local_broker()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_demo("--port", str(port), "--data", str(tmp_path / "data"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"port {port} on 127.0.0.1 is in use" in result.stdout
    assert not (tmp_path / "data" / "cloud.log").exists()  # the cloud was never started
    stopped = dict(re.findall(r"  (\w+) stopped \(status (-?\d+)\)", result.stdout))
    if not services_speak_mqtt311():  # the stopgap Mosquitto was started, and is stopped
        assert stopped == {"broker": "0"}, result.stdout
    else:
        assert stopped == {}, result.stdout


def test_make_demo_runs_the_console_script_and_installs_no_debian_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    target = pyproject["project"]["scripts"]["carewatch"]
    entry = EntryPoint(name="carewatch", value=target, group="console_scripts").load()
    from carewatch.cli import main

    assert entry is main
    assert "demo" in pyproject["project"]["optional-dependencies"]
    assert any(d.startswith("amqtt") for d in pyproject["project"]["optional-dependencies"]["demo"])

    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", "DEMO_ARGS=--port 8099"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        # Run under `make test`, the outer make's flags would make this one a sub-make.
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
    )
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if not line.startswith("make")]
    assert commands[-1] == ".venv/bin/carewatch demo --port 8099"
    assert "apt-get" not in result.stdout
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^EXTRAS := \S*\bdemo\b", makefile, re.MULTILINE)
