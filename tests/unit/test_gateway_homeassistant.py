"""Home Assistant discovery: the metric table, the discovery configs (valid JSON, stable
unique ids, no real names), the latest-value tracker, the settings section, and the publisher
against a scripted link. The real broker is in tests/integration."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import PublishRefusedError, SettingsError
from gateway.homeassistant import (
    EXCLUDED_METRICS,
    SENSORS,
    HomeAssistantPublisher,
    LatestValues,
    Message,
    Plan,
    default_node_id,
    discovery_messages,
    ha_unit,
    state_payload,
    state_topic,
)
from gateway.outbox import Entry, retention_of
from gateway.registry import DeviceEntry
from gateway.settings import GatewaySettings, HomeAssistantSettings
from tests.harness import poll_until_async
from vitals import topics
from vitals.devices import DeviceKind
from vitals.metrics import Metric, MetricKind

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SITE, GATEWAY = "home-0001", "gw-0001"
EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "gateway.toml"

DEVICES = (
    DeviceEntry(id="r01-hr", kind=DeviceKind.WEARABLE, address="C0:12:34:56:78:9A", resident="r01"),
    DeviceEntry(id="r01-cuff", kind=DeviceKind.BP_CUFF, name="CW r01-cuff", resident="r01"),
    DeviceEntry(id="r01-pendant", kind=DeviceKind.PENDANT, name="CW pendant", resident="r01"),
    DeviceEntry(id="r02-scale", kind=DeviceKind.SCALE, name="CW scale", resident="r02"),
    DeviceEntry(id="r02-temp", kind=DeviceKind.THERMOMETER, name="CW temp", resident="r02"),
    DeviceEntry(id="spare-ox", kind=DeviceKind.PULSE_OXIMETER, name="CW ox"),
)


def settings(**changes: Any) -> HomeAssistantSettings:
    base: dict[str, Any] = {"enabled": True, "residents": ["r01", "r02"]}
    return HomeAssistantSettings.model_validate(base | changes)


def plan(**changes: Any) -> Plan:
    return Plan.from_settings(SITE, GATEWAY, settings(**changes), DEVICES, sw_version="0.1.0")


def configs(shown: Plan) -> dict[str, dict[str, Any]]:
    """Discovery topic -> parsed config."""
    found: dict[str, dict[str, Any]] = {}
    for message in discovery_messages(shown):
        assert message.retain
        config = json.loads(message.payload)
        assert isinstance(config, dict)
        found[message.topic] = config
    return found


def entry(
    device: str, metric: Metric, value: float, at: datetime, user: int | None = None
) -> Entry:
    return Entry(device, metric, value, at, at, user=user, retention=retention_of(metric))


# -- the metric table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "component", "unit", "device_class"),
    [
        (Metric.HEART_RATE, "sensor", "bpm", None),
        (Metric.PULSE_RATE, "sensor", "bpm", None),
        (Metric.SPO2, "sensor", "%", None),
        (Metric.RESPIRATORY_RATE, "sensor", "breaths/min", None),
        (Metric.BODY_TEMPERATURE, "sensor", "°C", "temperature"),
        (Metric.SYSTOLIC_BP, "sensor", "mmHg", None),
        (Metric.DIASTOLIC_BP, "sensor", "mmHg", None),
        (Metric.MEAN_ARTERIAL_PRESSURE, "sensor", "mmHg", None),
        (Metric.BODY_WEIGHT, "sensor", "kg", "weight"),
        (Metric.BODY_HEIGHT, "sensor", "m", "distance"),
        (Metric.BMI, "sensor", "kg/m²", None),
        (Metric.BLOOD_GLUCOSE, "sensor", "mmol/L", None),
        (Metric.BATTERY_LEVEL, "sensor", "%", "battery"),
        (Metric.FALL, "binary_sensor", None, "safety"),
        (Metric.HELP_BUTTON, "binary_sensor", None, "safety"),
    ],
)
def test_metrics_map_to_home_assistant_fields(
    metric: Metric, component: str, unit: str | None, device_class: str | None
) -> None:
    spec = SENSORS[metric]
    assert (spec.component, ha_unit(metric), spec.device_class) == (component, unit, device_class)


def test_every_metric_a_device_sends_is_shown_or_deliberately_left_out() -> None:
    carried = {metric for kind in DeviceKind for metric in kind.info.metrics}
    assert carried <= set(SENSORS) | EXCLUDED_METRICS
    assert not set(SENSORS) & EXCLUDED_METRICS
    for metric in SENSORS:
        is_event = metric.kind is MetricKind.EVENT
        assert (SENSORS[metric].component == "binary_sensor") == is_event, metric


def test_config_fields_per_metric_kind() -> None:
    found = configs(plan())
    hr = found[f"homeassistant/sensor/carewatch_{SITE}_{GATEWAY}/r01-hr_heart_rate/config"]
    assert hr["name"] == "Heart rate"
    assert hr["unit_of_measurement"] == "bpm"
    assert "device_class" not in hr
    assert hr["state_class"] == "measurement"
    assert hr["value_template"] == "{{ value_json.value }}"
    assert hr["suggested_display_precision"] == 0
    assert hr["expire_after"] == 300  # a continuous vital goes unavailable when it stops
    assert hr["state_topic"] == f"carewatch/v1/{SITE}/{GATEWAY}/ha/r01-hr/heart_rate"
    assert hr["availability"] == [
        {
            "topic": topics.status(SITE, GATEWAY),
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]
    assert hr["device"]["via_device"] == f"carewatch_{SITE}_{GATEWAY}"
    assert hr["origin"] == {"name": "CareWatch", "sw_version": "0.1.0"}

    systolic = found[f"homeassistant/sensor/carewatch_{SITE}_{GATEWAY}/r01-cuff_systolic_bp/config"]
    assert systolic["unit_of_measurement"] == "mmHg"
    assert "expire_after" not in systolic  # a spot measurement stays until the next one

    battery = found[f"homeassistant/sensor/carewatch_{SITE}_{GATEWAY}/r01-hr_battery_level/config"]
    assert (battery["device_class"], battery["entity_category"]) == ("battery", "diagnostic")
    assert "expire_after" not in battery

    fall = found[f"homeassistant/binary_sensor/carewatch_{SITE}_{GATEWAY}/r01-pendant_fall/config"]
    assert fall["device_class"] == "safety"
    assert fall["off_delay"] == 120
    assert (fall["payload_on"], fall["payload_off"]) == ("ON", "OFF")
    assert "unit_of_measurement" not in fall

    gateway = found[f"homeassistant/binary_sensor/carewatch_{SITE}_{GATEWAY}/gateway/config"]
    assert gateway["device_class"] == "connectivity"
    assert gateway["state_topic"] == topics.status(SITE, GATEWAY)
    assert "availability" not in gateway


def test_discovery_covers_each_shown_metric_once_and_nothing_else() -> None:
    found = configs(plan())
    shown = {(c["device"]["identifiers"][0], c["name"]) for c in found.values()}
    assert len(shown) == len(found)
    expected = 1 + sum(
        len([m for m in DeviceKind(kind).info.metrics if m not in EXCLUDED_METRICS])
        for kind in ("wearable", "bp_cuff", "pendant", "scale", "thermometer")
    )
    assert len(found) == expected
    assert not any("rr_interval" in topic for topic in found)
    assert not any("spare-ox" in topic for topic in found)  # no resident: never shown


def test_unique_ids_are_stable_and_unique() -> None:
    first = configs(plan())
    again = configs(plan(display_names={"r01": "Else Example"}, state_interval_s=30))
    ids = [config["unique_id"] for config in first.values()]
    assert len(set(ids)) == len(ids)
    assert ids == [config["unique_id"] for config in again.values()]
    assert f"carewatch_{SITE}_{GATEWAY}_r01-hr_heart_rate" in ids
    assert list(first) == list(again)  # topics do not change with names either


def test_no_real_names_unless_the_family_configures_one() -> None:
    anonymous = discovery_messages(plan())
    for message in anonymous:
        config = json.loads(message.payload)
        if config["device"]["identifiers"][0].endswith(("r01-hr", "r01-cuff", "r01-pendant")):
            assert config["device"]["name"].startswith("r01 ")
    named = discovery_messages(plan(display_names={"r01": "Else Müller"}))
    shown = [json.loads(message.payload) for message in named]
    with_name = [c for c in shown if "Else Müller" in json.dumps(c, ensure_ascii=False)]
    assert {c["device"]["identifiers"][0] for c in with_name} == {
        f"carewatch_{SITE}_{GATEWAY}_{device}" for device in ("r01-hr", "r01-cuff", "r01-pendant")
    }
    for config in with_name:
        # Only the device's display name carries it: never a topic, id or template.
        assert config["device"]["name"] in (
            "Else Müller Wearable",
            "Else Müller Blood pressure cuff",
            "Else Müller Pendant",
        )
        assert "Else" not in config["unique_id"] + config["state_topic"]
    for message in named:
        assert "Else" not in message.topic
    assert all("Müller" not in json.dumps(c) for c in shown if c not in with_name)


def test_payloads_are_valid_json_with_the_topic_layout() -> None:
    for message in discovery_messages(plan(discovery_prefix="family/ha", node_id="oma")):
        prefix, component, node, object_id, config = message.topic.rsplit("/", 4)
        assert (prefix, node, config) == ("family/ha", "oma", "config")
        assert component in ("sensor", "binary_sensor")
        assert object_id.replace("_", "").replace("-", "").isalnum()
        assert json.loads(message.payload.decode("utf-8"))["unique_id"]


def test_plan_filters_devices_and_users() -> None:
    only_hr = plan(residents=["r01"], devices=["r01-hr"], users={"r01-hr": 2})
    assert [(d.device, d.user, d.label) for d in only_hr.devices] == [("r01-hr", 2, "r01")]
    assert plan().node_id == default_node_id(SITE, GATEWAY) == f"carewatch_{SITE}_{GATEWAY}"


def test_state_topic_and_payload() -> None:
    assert state_topic(SITE, GATEWAY, "r01-hr", Metric.SPO2) == (
        "carewatch/v1/home-0001/gw-0001/ha/r01-hr/spo2"
    )
    payload = state_payload(97.5, datetime(2024, 3, 1, 13, 0, tzinfo=UTC) + timedelta(hours=0))
    assert json.loads(payload) == {"time": "2024-03-01T13:00:00.000Z", "value": 97.5}
    with pytest.raises(ValueError, match="device"):
        state_topic(SITE, GATEWAY, "bad/device", Metric.SPO2)


# -- the latest values ------------------------------------------------------------------------


def test_the_newest_value_wins_and_is_published_once() -> None:
    values = LatestValues(plan(), event_max_age=timedelta(minutes=5))
    assert values.offer([entry("r01-hr", Metric.HEART_RATE, 70, T0)])
    assert values.offer([entry("r01-hr", Metric.HEART_RATE, 72, T0 + timedelta(seconds=1))])
    # An older reading (a backlog) never moves the sensor back in time.
    assert not values.offer([entry("r01-hr", Metric.HEART_RATE, 50, T0 - timedelta(hours=1))])
    messages = values.take(T0 + timedelta(seconds=2))
    assert messages == [
        Message(
            "carewatch/v1/home-0001/gw-0001/ha/r01-hr/heart_rate",
            state_payload(72, T0 + timedelta(seconds=1)),
            True,
        )
    ]
    assert values.take(T0 + timedelta(seconds=3)) == []
    values.republish()  # a new connection: every sensor value again
    assert [m.topic for m in values.take(T0)] == [messages[0].topic]


def test_readings_of_other_devices_users_and_metrics_are_ignored() -> None:
    values = LatestValues(plan(users={"r02-scale": 1}), event_max_age=timedelta(minutes=5))
    assert not values.offer(
        [
            entry("spare-ox", Metric.SPO2, 97, T0),  # no listed resident
            entry("unknown", Metric.HEART_RATE, 60, T0),
            entry("r01-hr", Metric.RR_INTERVAL, 0.8, T0),  # not shown
            entry("r01-cuff", Metric.SYSTOLIC_BP, 120, T0, user=2),  # a user index, not listed
            entry("r02-scale", Metric.BODY_WEIGHT, 80, T0, user=2),  # another user of the scale
            entry("r02-scale", Metric.BODY_WEIGHT, 81, T0),  # no user: not the listed one
            entry("r01-hr", Metric.SPO2, 97, T0),  # not a metric of the device's kind
        ]
    )
    assert values.offer([entry("r02-scale", Metric.BODY_WEIGHT, 64.2, T0, user=1)])
    assert [m.topic.rsplit("/", 2)[1:] for m in values.take(T0)] == [["r02-scale", "body_weight"]]


def test_events_are_sent_once_not_retained_and_not_when_old() -> None:
    values = LatestValues(plan(), event_max_age=timedelta(minutes=5))
    assert values.offer([entry("r01-pendant", Metric.FALL, 1, T0)])
    fresh = values.take(T0 + timedelta(seconds=10))
    assert [(m.topic.rsplit("/", 1)[1], m.retain) for m in fresh] == [("fall", False)]
    values.republish()
    assert values.take(T0 + timedelta(seconds=20)) == []  # never again after a reconnect
    assert values.offer([entry("r01-pendant", Metric.HELP_BUTTON, 1, T0)])
    assert values.take(T0 + timedelta(minutes=6)) == []  # too old when it could be sent


# -- the settings -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CAREWATCH_"):
            monkeypatch.delenv(name)


GATEWAY_TOML = """
site = "home-0001"
gateway = "gw-0001"

[[ble.devices]]
id = "r01-hr"
kind = "wearable"
address = "C0:12:34:56:78:9A"
resident = "r01"

[[ble.devices]]
id = "r02-hr"
kind = "wearable"
address = "C0:12:34:56:78:9B"
resident = "r02"
"""


def load(tmp_path: Path, section: str) -> GatewaySettings:
    path = tmp_path / "gateway.toml"
    path.write_text(GATEWAY_TOML + "\n[homeassistant]\n" + section, encoding="utf-8")
    return GatewaySettings.load(path)


def test_home_assistant_is_off_unless_enabled(tmp_path: Path) -> None:
    assert not GatewaySettings.load(EXAMPLE).homeassistant.enabled
    assert not HomeAssistantSettings().enabled
    disabled = load(tmp_path, 'residents = ["nobody"]\n')  # not checked while off
    assert not disabled.homeassistant.enabled
    on = load(tmp_path, 'enabled = true\nresidents = ["r01"]\ndisplay_names = { r01 = "Oma" }\n')
    assert on.homeassistant.residents == ("r01",)
    assert on.homeassistant.display_names == {"r01": "Oma"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("enabled = true\n", "list the residents"),
        ('enabled = true\nresidents = ["r09"]\n', "r09 has no device"),
        ('enabled = true\nresidents = ["r01"]\ndevices = ["r02-hr"]\n', "r02-hr is not"),
        ('enabled = true\nresidents = ["r01"]\nusers = { r02-hr = 1 }\n', "r02-hr is not"),
        ('enabled = true\nresidents = ["r01"]\ndisplay_names = { r02 = "X" }\n', "r02 is not"),
        ('enabled = true\nresidents = ["r01"]\ndisplay_names = { r01 = "a\\nb" }\n', "display"),
        ('enabled = true\nresidents = ["r01"]\ndiscovery_prefix = "ha/#"\n', "discovery_prefix"),
        ('enabled = true\nresidents = ["r01"]\nnode_id = "a/b"\n', "node_id"),
    ],
)
def test_home_assistant_settings_are_checked(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(tmp_path, section)


def test_the_shipped_example_enables_with_its_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAREWATCH_HOMEASSISTANT__ENABLED", "true")
    example = GatewaySettings.load(EXAMPLE)
    assert example.homeassistant.enabled
    shown = Plan.from_settings(
        example.site, example.gateway, example.homeassistant, example.ble.devices
    )
    assert shown.devices


# -- the publisher ----------------------------------------------------------------------------


@dataclass
class ScriptedLink:
    """Acknowledges every publish at once, or refuses publishes on ``refuse``d topics."""

    refuse: tuple[str, ...] = ()
    sent: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> Awaitable[None]:
        self.sent.append((topic, payload, retain))
        return self._ack(topic)

    async def _ack(self, topic: str) -> None:
        if topic.startswith(self.refuse):
            raise PublishRefusedError(topic, 0x87, "Not authorized")

    async def closed(self) -> str:
        await asyncio.Event().wait()
        return "never"


def publisher(clock_at: list[datetime]) -> HomeAssistantPublisher:
    return HomeAssistantPublisher(
        plan(),
        ack_timeout_s=5,
        state_interval_s=0.01,
        event_max_age=timedelta(minutes=5),
        clock=lambda: clock_at[0],
    )


async def test_the_publisher_sends_discovery_then_states() -> None:
    now = [T0]
    ha = publisher(now)
    ha.offer([entry("r01-hr", Metric.HEART_RATE, 70, T0)])  # before the connection
    link = ScriptedLink()
    async with asyncio.TaskGroup() as tasks:
        task = tasks.create_task(ha.serve(link))

        async def sent(count: int) -> bool | None:
            return True if len(link.sent) >= count else None

        configs_count = len(discovery_messages(ha.plan))
        await poll_until_async(lambda: sent(configs_count + 1), within=5, what="first state")
        ha.offer([entry("r01-pendant", Metric.FALL, 1, T0)])
        await poll_until_async(lambda: sent(configs_count + 2), within=5, what="fall event")
        task.cancel()
    topics_sent = [topic for topic, _, _ in link.sent]
    assert topics_sent[:configs_count] == [m.topic for m in discovery_messages(ha.plan)]
    assert link.sent[configs_count] == (
        state_topic(SITE, GATEWAY, "r01-hr", Metric.HEART_RATE),
        state_payload(70, T0),
        True,
    )
    assert link.sent[configs_count + 1][0].endswith("/ha/r01-pendant/fall")
    assert link.sent[configs_count + 1][2] is False
    assert ha.discovery_published == configs_count
    assert ha.states_published == 2


async def test_a_refusing_broker_stops_home_assistant_only_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ha = publisher([T0])
    caplog.set_level(logging.INFO, logger="gateway.homeassistant")
    for _ in range(2):  # two connections
        link = ScriptedLink(refuse=("homeassistant/",))
        await asyncio.wait_for(ha.serve(link), timeout=5)  # returns: readings go on
        assert len(link.sent) == 1
    assert ha.refused == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "homeassistant/binary_sensor/carewatch_home-0001_gw-0001/gateway/config" in (
        warnings[0].getMessage()
    )
