"""``carewatch demo``: the whole CareWatch on one machine, started in order, stopped on a signal.

The parts, each ready before the next starts (with a time limit each):

1. the broker: amqtt in this process (see :mod:`carewatch.broker`; Mosquitto as a stopgap
   while the services speak MQTT v5 only), or the one given with ``--broker``;
2. ``python -m cloud serve`` (ingest, alerts and the API in one process) on the embedded
   SQLite store or the InfluxDB given with ``--influx``, after the demo's logins are written
   into its account database (:mod:`carewatch.accounts`);
3. ``python -m firmware_sim``: the site's residents as BLE devices on Bumble virtual
   controllers, with the site file's scripted scenarios;
4. ``python -m gateway`` on the Bumble backend, on the simulator's radio; ready once the API
   shows it online with devices connected;
5. live readings: stored and served by the API.

Then the URLs and logins are printed and the demo waits. SIGINT or SIGTERM stops every part in
reverse order (SIGTERM, then SIGKILL after a time limit) and :meth:`Demo.run` returns 0; a
part that exits on its own stops everything too, after its log's tail is shown, and the
result is 1. Everything listens on 127.0.0.1 only; each service's log is in the data folder
(a temporary one unless ``--data``, removed at exit unless ``--keep`` or a failure).

This is the composition root: it may import every package (``firmware_sim`` for the site's
devices, ``cloud.api`` for the accounts), while the services run as separate processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit

import aiomqtt
import httpx

from carewatch.accounts import DemoLogin, create_demo_logins, demo_logins
from carewatch.broker import (
    EmbeddedBroker,
    amqtt_installed,
    find_mosquitto,
    services_speak_mqtt311,
)
from carewatch.configs import (
    LOOPBACK,
    BrokerTarget,
    GatewayDevice,
    InfluxTarget,
    cloud_toml,
    gateway_toml,
    mosquitto_conf,
)
from carewatch.errors import (
    BrokerUnavailableError,
    ChildExitedError,
    DemoError,
    DemoUsageError,
    StartTimeoutError,
)
from carewatch.processes import Child
from cloud.api.errors import AccountError
from cloud.errors import SettingsError
from cloud.settings import CloudSettings, StoreSettings
from cloud.store.influxql import quote_identifier
from firmware_sim.firmware import Simulation
from firmware_sim.scenarios import SimulatorError
from firmware_sim.site import SEEDS_DIR, Site, load_site

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "STEPS", "Demo", "DemoOptions", "Timeouts"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

STEPS = 5
API_PREFIX = "/api/v1"
_API_LISTENING = re.compile(r"api listening url=(http://[0-9A-Za-z.\[\]:]+)")
_HCI = re.compile(r"^hci: (\S+)", re.MULTILINE)
_POLL_S = 0.2
_MOSQUITTO_TRIES = 3

T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class Timeouts:
    """Seconds each part has to get ready, and to stop."""

    broker: float = 20.0
    cloud: float = 60.0
    simulator: float = 60.0
    gateway: float = 90.0
    readings: float = 60.0
    stop: float = 15.0


@dataclass(slots=True, frozen=True)
class DemoOptions:
    """What ``carewatch demo`` was asked for (checked by the command line)."""

    site: Path = SEEDS_DIR / "oak-house.toml"
    port: int = 8080
    """The API's (and dashboard's) port on 127.0.0.1; 0 picks a free one."""
    broker: str | None = None
    """``mqtt://host:port`` of a broker to use instead of the embedded one."""
    influx: str | None = None
    """``http://host:8086`` of an InfluxDB to use instead of the embedded store."""
    influx_db: str = "carewatch"
    speed: float = 1.0
    """Simulated seconds per second."""
    data: Path | None = None
    """The folder for the services' files and logs; None: a temporary one."""
    keep: bool = False
    """Keep the temporary data folder at exit."""
    family_of: str = "r05"
    """The resident the demo's family login is linked to."""
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass(slots=True, frozen=True)
class _Broker:
    target: BrokerTarget
    label: str


class Demo:
    """One run of the demo; :meth:`run` returns the exit status. Progress and the final
    banner are written to ``out`` (the terminal); the demo's own log (and the embedded
    broker's) goes to ``demo.log`` in the data folder."""

    def __init__(self, options: DemoOptions, out: TextIO) -> None:
        self._options = options
        self._out = out
        self._children: list[Child] = []
        self._keep_data = options.keep
        self._started = datetime.now(UTC)

    # -- output ---------------------------------------------------------------------------

    def _say(self, text: str = "", *, end: str = "\n") -> None:
        self._out.write(text + end)
        self._out.flush()

    @contextlib.asynccontextmanager
    async def _step(self, number: int, text: str) -> AsyncIterator[Callable[[str], None]]:
        """``[n/5] text ...`` then ``ok (1.2 s)``; the body may add to the line with the
        function it is given (called before the body returns)."""
        begun = time.monotonic()
        self._say(f"[{number}/{STEPS}] {text} ...", end="")
        extra: list[str] = []
        try:
            yield extra.append
        except asyncio.CancelledError:
            self._say(" interrupted")
            raise
        except BaseException:
            self._say(" failed")
            raise
        detail = f" {', '.join(extra)};" if extra else ""
        self._say(f"{detail} ok ({time.monotonic() - begun:.1f} s)")

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> int:
        """Start everything, wait for SIGINT or SIGTERM, stop everything."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            return await self._run(stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    async def _run(self, stop: asyncio.Event) -> int:
        options = self._options
        try:
            site = load_site(options.site)
        except SimulatorError as exc:
            self._say(f"carewatch demo: {exc}")
            return EXIT_USAGE
        if options.family_of not in {r.id for r in site.residents}:
            self._say(f"carewatch demo: the site has no resident {options.family_of}")
            return EXIT_USAGE
        data, temporary = self._data_folder()
        handler = logging.FileHandler(data / "demo.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per readiness poll
        failure: DemoError | None = None
        try:
            async with AsyncExitStack() as stack:
                failure = await self._until_stopped(self._start_and_watch(stack, site, data), stop)
                if failure is not None:
                    self._report(failure)
                    self._keep_data = self._keep_data or not isinstance(failure, DemoUsageError)
                self._say("stopping ...")
        except Exception:
            self._keep_data = True  # the logs tell what happened
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            handler.close()
            if temporary and not self._keep_data:
                shutil.rmtree(data, ignore_errors=True)
            elif temporary:
                self._say(f"the data folder is kept: {data}")
        if failure is None:
            self._say("stopped.")
            return EXIT_OK
        return EXIT_USAGE if isinstance(failure, DemoUsageError) else EXIT_FAILURE

    def _data_folder(self) -> tuple[Path, bool]:
        if self._options.data is None:
            return Path(tempfile.mkdtemp(prefix="carewatch-demo-")).resolve(), True
        data = self._options.data.expanduser().resolve()
        data.mkdir(parents=True, exist_ok=True)
        return data, False

    def _report(self, failure: DemoError) -> None:
        self._say(f"carewatch demo: {failure}")
        if isinstance(failure, ChildExitedError | StartTimeoutError) and failure.tail:
            self._say(f"--- the end of the {failure.name} log ---")
            for line in failure.tail.splitlines():
                self._say(f"  {line}")
            self._say("---")

    @staticmethod
    async def _until_stopped(
        work: Coroutine[Any, Any, None], stop: asyncio.Event
    ) -> DemoError | None:
        """Run ``work`` until it fails or ``stop`` is set; the DemoError it raised, if any."""
        failures: list[DemoError] = []

        async def guarded() -> None:
            try:
                await work
            except DemoError as exc:
                failures.append(exc)

        async with asyncio.TaskGroup() as group:
            task = group.create_task(guarded(), name="demo")
            signalled = group.create_task(stop.wait(), name="demo-signal")
            await asyncio.wait({task, signalled}, return_when=asyncio.FIRST_COMPLETED)
            task.cancel()
            signalled.cancel()
        return failures[0] if failures else None

    async def _start_and_watch(self, stack: AsyncExitStack, site: Site, data: Path) -> None:
        options = self._options
        broker = await self._start_broker(stack, data)
        cloud_file = data / "cloud.toml"
        people = SEEDS_DIR / "people" / f"{site.id}.toml"
        cloud_file.write_text(
            cloud_toml(
                data=data,
                site_file=options.site.resolve(),
                people=[people] if people.is_file() else [],
                broker=broker.target,
                port=options.port,
                influx=(
                    None
                    if options.influx is None
                    else InfluxTarget(options.influx, options.influx_db)
                ),
                site=site.id,
            ),
            encoding="utf-8",
        )
        settings = _load_cloud_settings(cloud_file)
        logins = demo_logins(site.id, options.family_of)
        api_url = await self._start_cloud(
            stack=stack,
            data=data,
            cloud_file=cloud_file,
            settings=settings,
            site=site,
            logins=logins,
        )
        hci = await self._start_simulator(stack, data, site)
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=api_url, timeout=10.0, follow_redirects=False)
        )
        await self._start_gateway(
            stack=stack,
            data=data,
            site=site,
            broker=broker,
            hci=hci,
            client=client,
            logins=logins,
        )
        await self._wait_for_readings(site, client)
        await self._banner(
            site=site, broker=broker, api_url=api_url, client=client, logins=logins, data=data
        )
        await self._watch()

    # -- 1: the broker --------------------------------------------------------------------

    async def _start_broker(self, stack: AsyncExitStack, data: Path) -> _Broker:
        timeout = self._options.timeouts.broker
        given = self._options.broker
        if given is not None:
            async with self._step(1, f"broker: {given}"):
                await self._until(
                    lambda: _mqtt_answers(given, v5=True),
                    within=timeout,
                    name="broker",
                    what=f"an MQTT v5 CONNACK from {given}",
                )
            return _Broker(BrokerTarget(given), f"{given} (given)")
        if services_speak_mqtt311() and amqtt_installed():
            async with self._step(1, "broker: embedded amqtt (MQTT 3.1.1)") as note:
                embedded = await stack.enter_async_context(EmbeddedBroker(LOOPBACK, 0))
                note(embedded.url)
                await self._until(
                    lambda: _mqtt_answers(embedded.url, v5=False),
                    within=timeout,
                    name="broker",
                    what="a CONNACK from the embedded broker",
                )
            return _Broker(BrokerTarget(embedded.url, mqtt311=True), f"{embedded.url} (amqtt)")
        if services_speak_mqtt311():
            why = ["the embedded broker needs the amqtt package (pip install -e '.[demo]'),"]
        else:
            why = [
                "the embedded amqtt broker speaks MQTT 3.1.1 only, and the gateway's and",
                "the cloud's MQTT clients speak MQTT v5 only for now,",
            ]
        binary = find_mosquitto()
        if binary is None:
            raise BrokerUnavailableError(
                f"no broker the services can use: {' '.join(why)} and mosquitto is not "
                "installed. Install it (Debian: apt-get install mosquitto) or give a broker "
                "with --broker mqtt://HOST:PORT."
            )
        self._say("!" * 78)
        self._say(f"!! STOPGAP: {why[0]}")
        for line in why[1:]:
            self._say(f"!! {line}")
        self._say(f"!! so this demo runs Mosquitto ({binary}) on 127.0.0.1 instead.")
        self._say("!" * 78)
        async with self._step(1, "broker: Mosquitto (stopgap)") as note:
            url = await self._start_mosquitto(stack, data, binary, within=timeout)
            note(url)
        return _Broker(BrokerTarget(url), f"{url} (Mosquitto, stopgap)")

    async def _start_mosquitto(
        self, stack: AsyncExitStack, data: Path, binary: Path, *, within: float
    ) -> str:
        config = data / "mosquitto.conf"
        for attempt in range(1, _MOSQUITTO_TRIES + 1):
            port = _free_port()
            config.write_text(mosquitto_conf(port=port, as_root=os.geteuid() == 0), "utf-8")
            child = await self._spawn(
                stack, "broker", [str(binary), "-c", str(config)], data / "broker.log", data
            )
            url = f"mqtt://{LOOPBACK}:{port}"
            try:
                await self._until(
                    functools.partial(_mqtt_answers, url, v5=True),
                    within=within,
                    name="broker",
                    what="a CONNACK from Mosquitto",
                    watch=[child],
                )
            except ChildExitedError:
                if attempt == _MOSQUITTO_TRIES:
                    raise
                self._children.remove(child)  # exited: nothing left to watch or stop
                logger.warning("mosquitto exited (port %d taken?): trying another port", port)
                continue
            return url
        raise AssertionError("unreachable")  # pragma: no cover

    # -- 2: the cloud ---------------------------------------------------------------------

    async def _start_cloud(
        self,
        *,
        stack: AsyncExitStack,
        data: Path,
        cloud_file: Path,
        settings: CloudSettings,
        site: Site,
        logins: Sequence[DemoLogin],
    ) -> str:
        options = self._options
        store = "embedded SQLite store" if options.influx is None else f"InfluxDB {options.influx}"
        async with self._step(2, f"cloud: ingest, alerts and API on the {store}") as note:
            if options.port != 0 and not _port_free(LOOPBACK, options.port):
                raise DemoUsageError(
                    f"port {options.port} on {LOOPBACK} is in use: choose another with --port"
                )
            if options.influx is not None:
                await _prepare_influx(settings.store)
            try:
                await create_demo_logins(
                    settings.api.database,
                    settings.api.passwords,
                    logins,
                    site=site.id,
                    now=datetime.now(UTC),
                )
            except AccountError as exc:
                raise DemoError(f"cannot create the demo's logins: {exc}") from exc
            command = [sys.executable, "-m", "cloud", "serve", "--config", str(cloud_file)]
            child = await self._spawn(stack, "cloud", command, data / "cloud.log", data)

            async def listening() -> str | None:
                match = _API_LISTENING.search(child.tail(200))
                return match.group(1) if match else None

            url = await self._until(
                listening,
                within=options.timeouts.cloud,
                name="cloud",
                what="the API listening",
                watch=[child],
            )

            async def answers() -> bool | None:
                try:
                    async with httpx.AsyncClient(timeout=5.0) as http:
                        response = await http.get(f"{url}/api/openapi.json")
                except httpx.TransportError:
                    return None
                return True if response.status_code == 200 else None

            await self._until(
                answers,
                within=options.timeouts.cloud,
                name="cloud",
                what="the API answering",
                watch=[child],
            )
            note(url)
        return url

    # -- 3: the simulator -----------------------------------------------------------------

    async def _start_simulator(self, stack: AsyncExitStack, data: Path, site: Site) -> str:
        options = self._options
        devices = sum(len(r.devices) for r in site.residents)
        text = f"simulator: {len(site.residents)} residents, {devices} devices"
        if options.speed != 1:
            text += f" at speed {options.speed:g}"
        async with self._step(3, text):
            command = [
                sys.executable,
                "-m",
                "firmware_sim",
                "--site",
                str(options.site.resolve()),
                "--listen",
                f"tcp-server:{LOOPBACK}:0",
                "--speed",
                repr(options.speed),
                "--seed",
                "1",
                "--no-table",
            ]
            child = await self._spawn(stack, "simulator", command, data / "simulator.log", data)

            async def radio() -> str | None:
                match = _HCI.search(child.tail(200))
                return match.group(1) if match else None

            return await self._until(
                radio,
                within=options.timeouts.simulator,
                name="simulator",
                what="the simulated radio",
                watch=[child],
            )

    # -- 4: the gateway -------------------------------------------------------------------

    async def _start_gateway(
        self,
        *,
        stack: AsyncExitStack,
        data: Path,
        site: Site,
        broker: _Broker,
        hci: str,
        client: httpx.AsyncClient,
        logins: Sequence[DemoLogin],
    ) -> None:
        options = self._options
        gateway = site.gateway or f"{site.id}-gw"
        simulation = Simulation(site, seed=1, start=datetime.now(UTC), scenarios=[])
        devices = [
            GatewayDevice(d.id, d.kind.value, d.address, d.resident) for d in simulation.devices
        ]
        async with self._step(4, f"gateway: {gateway} on the simulated radio") as note:
            config = data / "gateway.toml"
            config.write_text(
                gateway_toml(
                    data=data,
                    site=site.id,
                    gateway=gateway,
                    timezone=site.timezone,
                    broker=broker.target,
                    hci=hci,
                    devices=devices,
                ),
                encoding="utf-8",
            )
            command = [sys.executable, "-m", "gateway", "--config", str(config)]
            await self._spawn(stack, "gateway", command, data / "gateway.log", data)
            admin = next(login for login in logins if login.username == "admin")
            await _login(client, admin)

            async def online() -> int | None:
                try:
                    response = await client.get(f"{API_PREFIX}/sites/{site.id}/devices")
                except httpx.TransportError:
                    return None
                if response.status_code != 200:
                    return None
                statuses = response.json()
                connected = sum(
                    1
                    for s in statuses
                    if s.get("gateway_state") == "online" and s.get("connected") is True
                )
                return connected if connected > 0 else None

            connected = await self._until(
                online,
                within=options.timeouts.gateway,
                name="gateway",
                what="the gateway online with a device connected",
            )
            note(f"online, {connected} of {len(devices)} devices connected")

    # -- 5: live readings -----------------------------------------------------------------

    async def _wait_for_readings(self, site: Site, client: httpx.AsyncClient) -> None:
        since = (self._started - timedelta(minutes=1)).isoformat()

        async def fresh() -> int | None:
            count = 0
            for resident in site.residents:
                try:
                    response = await client.get(
                        f"{API_PREFIX}/sites/{site.id}/residents/{resident.id}/latest",
                        params={"since": since},
                    )
                except httpx.TransportError:
                    return None
                if response.status_code == 200 and response.json().get("readings"):
                    count += 1
            return count if count else None

        async with self._step(5, "live readings") as note:
            count = await self._until(
                fresh,
                within=self._options.timeouts.readings,
                name="cloud",
                what="readings stored and served",
            )
            note(f"stored for {count} of {len(site.residents)} residents")

    # -- ready ----------------------------------------------------------------------------

    async def _banner(
        self,
        *,
        site: Site,
        broker: _Broker,
        api_url: str,
        client: httpx.AsyncClient,
        logins: Sequence[DemoLogin],
        data: Path,
    ) -> None:
        try:
            dashboard = (await client.get("/")).status_code != 404
        except httpx.TransportError:
            dashboard = False
        width = max(len(f"{x.username} / {x.password}") for x in logins)
        self._say()
        self._say(
            f"CareWatch demo is running: {site.name} ({site.id}), {len(site.residents)} residents."
        )
        if dashboard:
            self._say(f"  dashboard  {api_url}/")
        else:
            self._say("  dashboard  (not served by this version of the API yet)")
        self._say(f"  api        {api_url}{API_PREFIX}  (documentation: {api_url}/api/docs)")
        for login in logins:
            self._say(
                f"  login      {f'{login.username} / {login.password}':<{width}}  "
                f"{login.description}"
            )
        self._say(f"  broker     {broker.label}")
        temporary = self._options.data is None
        keep = "removed at exit" if temporary and not self._keep_data else "kept"
        self._say(f"  data       {data} ({keep}; the services' logs are there)")
        pids = " ".join(f"{child.name}={child.pid}" for child in self._children)
        self._say(f"  processes  {pids}")
        self._say(
            "The site's scripted scenarios began with the simulator (in Oak House: the help "
            "button after 30 s, hypoxaemia after 1 min, more in the site file)."
        )
        self._say("Press Ctrl-C to stop.")

    async def _watch(self) -> None:
        """Until a child exits (raises :class:`ChildExitedError`)."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(child.exited(), name=f"watch-{child.name}")
                for child in self._children
            ]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        raise next(iter(done)).result()

    # -- helpers --------------------------------------------------------------------------

    async def _spawn(
        self, stack: AsyncExitStack, name: str, argv: Sequence[str], log: Path, cwd: Path
    ) -> Child:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = await Child.start(name, argv, log=log, cwd=cwd, env=env)
        self._children.append(child)
        stack.push_async_callback(self._stop, child)
        return child

    async def _stop(self, child: Child) -> None:
        code = await child.stop(self._options.timeouts.stop)
        self._say(f"  {child.name} stopped (status {code})")

    async def _until(
        self,
        check: Callable[[], Awaitable[T | None]],
        *,
        within: float,
        name: str,
        what: str,
        watch: Sequence[Child] | None = None,
    ) -> T:
        """Poll ``check`` until it gives a value; raise :class:`ChildExitedError` as soon as a
        watched child (every child so far by default) exits, :class:`StartTimeoutError` at
        the deadline."""
        children = self._children if watch is None else watch
        deadline = time.monotonic() + within
        while True:
            for child in children:
                child.check()
            result = await check()
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                owner = next((c for c in self._children if c.name == name), None)
                raise StartTimeoutError(name, what, within, owner.tail() if owner else "")
            await asyncio.sleep(_POLL_S)


def _load_cloud_settings(path: Path) -> CloudSettings:
    try:
        return CloudSettings.load(path)
    except SettingsError as exc:
        raise DemoUsageError(f"the cloud refuses the demo's settings: {exc}") from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


async def _mqtt_answers(url: str, *, v5: bool) -> bool | None:
    """Whether a broker at ``url`` accepts an anonymous connection with the protocol the
    services use; None while it does not (yet)."""
    parts = urlsplit(url)
    host = parts.hostname or LOOPBACK
    protocol = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    try:
        async with aiomqtt.Client(
            host,
            parts.port or 1883,
            identifier=f"carewatch-demo-probe-{secrets.token_hex(4)}",
            protocol=protocol,
            timeout=3.0,
        ):
            return True
    except aiomqtt.MqttError:
        return None


async def _prepare_influx(store: StoreSettings) -> None:
    """Check that InfluxDB answers, and create the database (idempotent in InfluxDB 1.x; a
    2.x/3.x server needs its database or bucket mapping made beforehand: a refusal is only
    logged)."""
    headers = {}
    if store.token is not None:
        headers["Authorization"] = f"Token {store.token.get_secret_value()}"
    auth = None
    if store.username is not None:
        password = store.password.get_secret_value() if store.password is not None else ""
        auth = httpx.BasicAuth(store.username, password)
    base = str(store.url).rstrip("/")
    async with httpx.AsyncClient(base_url=base, headers=headers, auth=auth, timeout=10.0) as http:
        try:
            ping = await http.get("/ping")
        except httpx.TransportError as exc:
            raise DemoUsageError(f"InfluxDB at {base} does not answer: {exc!r}") from exc
        if ping.status_code >= 300:
            raise DemoUsageError(f"InfluxDB at {base} answers /ping with {ping.status_code}")
        created = await http.post(
            "/query", data={"q": f"CREATE DATABASE {quote_identifier(store.database)}"}
        )
        if created.status_code >= 300:
            logger.warning(
                "influxdb: CREATE DATABASE refused (status %d): it must exist already",
                created.status_code,
            )


async def _login(client: httpx.AsyncClient, login: DemoLogin) -> None:
    response = await client.post(
        f"{API_PREFIX}/auth/login", json={"username": login.username, "password": login.password}
    )
    if response.status_code != 200:
        raise DemoError(f"the API refused the demo's {login.username} login: {response.text}")
