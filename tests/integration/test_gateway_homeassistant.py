"""Home Assistant discovery through the real uplink and a real Mosquitto with the shipped ACL:
the discovery configs are retained (a Home Assistant that connects later finds them), the
states follow the readings, availability follows the gateway's status, and a broker whose ACL
lacks the Home Assistant topics refuses them without disturbing the readings.

The gateway's account is written by ``deploy/mosquitto/provision.py``; "Home Assistant" is a
client with a read-only account for the gateway's site and the discovery prefix (what a
family's bridge would get), so nothing here needs a Home Assistant installation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.health import utc_now
from gateway.homeassistant import HomeAssistantPublisher, Plan, discovery_messages
from gateway.outbox import AsyncOutbox, Entry, retention_of
from gateway.registry import DeviceEntry
from gateway.settings import HomeAssistantSettings, MqttSettings
from gateway.uplink import Uplink
from tests.harness import (
    MosquittoFactory,
    MosquittoOptions,
    MosquittoServer,
    password_file_line,
    poll_until_async,
)
from vitals import topics
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import GatewayState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
PROVISION = ROOT / "deploy" / "mosquitto" / "provision.py"
WAIT = 15.0
GATEWAY_PASSWORD = "gateway-password-0123456789"
FAMILY_PASSWORD = "family-password-0123456789"

DEVICES = (
    DeviceEntry(id="r01-hr", kind=DeviceKind.WEARABLE, address="C0:12:34:56:78:9A", resident="r01"),
    DeviceEntry(id="r01-pendant", kind=DeviceKind.PENDANT, name="CW pendant", resident="r01"),
)


def _ids() -> tuple[str, str]:
    token = uuid.uuid4().hex[:10]
    return f"site-{token}", f"gw-{token}"


def entry(device: str, metric: Metric, value: float, offset_s: float = 0.0) -> Entry:
    moment = utc_now() + timedelta(seconds=offset_s)
    return Entry(device, metric, value, moment, moment, retention=retention_of(metric))


def broker_with_acl(
    fresh_mosquitto: MosquittoFactory, folder: Path, site: str, gateway: str, *, ha: bool
) -> MosquittoServer:
    """A broker whose ACL and passwords provision.py wrote for ``gateway`` (with or without
    its Home Assistant topics), plus a read-only "family" account for the site."""
    folder.mkdir()
    command = [
        sys.executable,
        str(PROVISION),
        "--acl",
        str(folder / "acl"),
        "--passwd",
        str(folder / "passwd"),
        "add-gateway",
        "--site",
        site,
        "--gateway",
        gateway,
        *(["--homeassistant"] if ha else []),
        "--password-stdin",
    ]
    result = subprocess.run(
        command,
        input=f"{GATEWAY_PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with (folder / "acl").open("a", encoding="utf-8") as acl:
        acl.write(
            f"\nuser family\ntopic read homeassistant/#\ntopic read {topics.PREFIX}/{site}/#\n"
        )
    with (folder / "passwd").open("a", encoding="utf-8") as passwd:
        passwd.write(password_file_line("family", FAMILY_PASSWORD) + "\n")
    return fresh_mosquitto(
        MosquittoOptions(
            allow_anonymous=False, password_file=folder / "passwd", acl_file=folder / "acl"
        )
    )


def mqtt(broker: MosquittoServer, gateway: str) -> MqttSettings:
    return MqttSettings.model_validate(
        {
            "url": broker.url,
            "username": gateway,
            "password": GATEWAY_PASSWORD,
            "batch_size": 100,
            "batch_interval_s": 0.05,
            "ack_timeout_s": 5.0,
            "connect_timeout_s": 2.0,
            "reconnect_min_s": 0.05,
            "reconnect_max_s": 0.5,
            "keepalive_s": 5,
        }
    )


def publisher(site: str, gateway: str) -> HomeAssistantPublisher:
    settings = HomeAssistantSettings(enabled=True, residents=("r01",))
    return HomeAssistantPublisher(
        Plan.from_settings(site, gateway, settings, DEVICES),
        ack_timeout_s=5.0,
        state_interval_s=0.05,
        event_max_age=timedelta(minutes=5),
        clock=utc_now,
    )


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[Uplink]:
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(uplink.run(), name="uplink")
        yield uplink
        task.cancel()


async def eventually(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool | None:
        return True if condition() else None

    await poll_until_async(check, within=WAIT, what=what)


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class HomeAssistant:
    """What a Home Assistant subscribed to the discovery prefix and the site would see."""

    messages: list[Seen] = field(default_factory=list)

    def on(self, topic: str) -> list[Seen]:
        return [seen for seen in self.messages if seen.topic == topic]


@contextlib.asynccontextmanager
async def home_assistant(broker: MosquittoServer, site: str) -> AsyncIterator[HomeAssistant]:
    seen = HomeAssistant()
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=f"ha-{uuid.uuid4().hex[:12]}",
        username="family",
        password=FAMILY_PASSWORD,
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe("homeassistant/#", qos=1)
        await client.subscribe(f"{topics.PREFIX}/{site}/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                seen.messages.append(Seen(message.topic.value, message.payload, message.retain))

        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(collect(), name="ha-collect")
            yield seen
            task.cancel()


async def test_discovery_is_retained_and_states_follow_the_readings(
    fresh_mosquitto: MosquittoFactory, tmp_path: Path
) -> None:
    site, gateway = _ids()
    broker = broker_with_acl(fresh_mosquitto, tmp_path / "auth", site, gateway, ha=True)
    ha = publisher(site, gateway)
    expected = discovery_messages(ha.plan)
    async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=10_000) as outbox:
        sink = ha.sink(outbox)
        await sink.append([entry("r01-hr", Metric.HEART_RATE, 71.0)])  # before connecting
        uplink = Uplink(
            site=site,
            gateway=gateway,
            outbox=outbox,
            mqtt=mqtt(broker, gateway),
            companions=[ha],
        )
        async with running(uplink):
            await eventually(
                lambda: ha.discovery_published == len(expected) and ha.states_published >= 1,
                "discovery and the first state published",
            )
            # Home Assistant connects afterwards: everything it needs is retained.
            async with home_assistant(broker, site) as seen:
                await eventually(
                    lambda: (
                        all(seen.on(m.topic) for m in expected)
                        and bool(seen.on(topics.status(site, gateway)))
                    ),
                    "retained configs and status",
                )
                configs = {m.topic: seen.on(m.topic)[0] for m in expected}
                assert all(c.retain for c in configs.values())
                assert [c.payload for c in configs.values()] == [m.payload for m in expected]
                hr_config = configs[
                    f"homeassistant/sensor/carewatch_{site}_{gateway}/r01-hr_heart_rate/config"
                ].json()
                hr_state = hr_config["state_topic"]
                await eventually(lambda: bool(seen.on(hr_state)), "the retained heart rate")
                first = seen.on(hr_state)[0]
                assert first.retain
                assert first.json()["value"] == 71.0
                status = seen.on(hr_config["availability"][0]["topic"])[0].json()
                assert status["state"] == GatewayState.ONLINE.value

                # A new reading becomes a state update; an older one does not.
                await sink.append([entry("r01-hr", Metric.HEART_RATE, 88.0, offset_s=1)])
                await sink.append([entry("r01-hr", Metric.HEART_RATE, 40.0, offset_s=-60)])
                await eventually(
                    lambda: any(s.json()["value"] == 88.0 for s in seen.on(hr_state)),
                    "the heart rate update",
                )
                # A fall arrives live, not retained.
                fall_topic = configs[
                    f"homeassistant/binary_sensor/carewatch_{site}_{gateway}/r01-pendant_fall/config"
                ].json()["state_topic"]
                await sink.append([entry("r01-pendant", Metric.FALL, 1.0)])
                await eventually(lambda: bool(seen.on(fall_topic)), "the fall event")
                assert not seen.on(fall_topic)[0].retain
                assert seen.on(fall_topic)[0].json()["value"] == 1.0
                # The readings went their usual way beside it.
                await eventually(lambda: outbox.depth == 0, "the readings delivered")
                assert uplink.stats.readings_sent == 4
                assert all(s.json()["value"] != 40.0 for s in seen.on(hr_state))
        # The gateway stopped: its retained status says offline, so every sensor is
        # unavailable in Home Assistant, and the last value is still retained.
        async with home_assistant(broker, site) as later:
            await eventually(
                lambda: bool(later.on(topics.status(site, gateway))) and bool(later.on(hr_state)),
                "retained status and state after the stop",
            )
            assert later.on(topics.status(site, gateway))[0].json()["state"] == "offline"
            assert later.on(hr_state)[0].json()["value"] == 88.0


async def test_an_acl_without_home_assistant_refuses_it_and_the_readings_go_on(
    fresh_mosquitto: MosquittoFactory, tmp_path: Path
) -> None:
    site, gateway = _ids()
    broker = broker_with_acl(fresh_mosquitto, tmp_path / "auth", site, gateway, ha=False)
    ha = publisher(site, gateway)
    async with AsyncOutbox.open(tmp_path / "outbox.sqlite3", max_rows=10_000) as outbox:
        sink = ha.sink(outbox)
        uplink = Uplink(
            site=site,
            gateway=gateway,
            outbox=outbox,
            mqtt=mqtt(broker, gateway),
            companions=[ha],
        )
        async with running(uplink):
            await eventually(lambda: ha.refused == 1, "the discovery config refused")
            await sink.append([entry("r01-hr", Metric.HEART_RATE, 70.0 + i) for i in range(5)])
            await eventually(lambda: uplink.stats.readings_sent == 5, "the readings delivered")
            assert outbox.depth == 0
            assert ha.discovery_published == 0
            assert ha.states_published == 0
            assert (uplink.stats.connects, uplink.stats.refused) == (1, 0)
