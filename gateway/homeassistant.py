"""Home Assistant MQTT discovery: a family's own Home Assistant shows the resident's sensors.

Opt-in (``[homeassistant] enabled = true`` and the residents to show). The gateway then
publishes, over its uplink connection and on every connect:

* one discovery config per shown metric on ``{prefix}/sensor/{node_id}/{device}_{metric}/config``
  (``binary_sensor`` for the fall and help-button events), retained, so that Home Assistant
  finds them whenever it (re)starts; and one for the gateway's own connectivity;
* the latest value of each metric on a small state topic of its own,
  ``carewatch/v1/{site}/{gateway}/ha/{device}/{metric}``: ``{"time": ..., "value": ...}``,
  retained, at most every ``state_interval_s``. Why not point Home Assistant at the readings
  topic: a readings message is a batch of up to 5,000 readings of every device, which a
  ``value_template`` cannot pick the latest value of one metric from, and it carries backlog
  (readings hours old, sent after an outage) that would move a sensor back in time. A retained
  per-metric topic gives Home Assistant the current value at once after its own restart, and
  costs the broker one retained message per metric. Events (fall, help button) are published
  *not* retained: an old fall must not light up again when Home Assistant restarts;
* availability comes from the gateway's own retained status (``online``) and its last will
  (``offline``), so every sensor shows unavailable when the gateway is gone.

Names: the entities are named by the metric (``Heart rate``) under a device named by the
resident's *id* and the device kind (``r01 Wearable``). A real name appears only where the
family configures one (``display_names``). Unique ids are
``carewatch_{site}_{gateway}_{device}_{metric}``: stable across restarts and reconfiguration.

The builders (:func:`discovery_messages`, :class:`LatestValues`) are pure; the
:class:`HomeAssistantPublisher` is what the uplink runs on each connection and what the
recorder's sink tees readings into (:meth:`HomeAssistantPublisher.sink`).

Removing a resident or device from the list does not remove its entities from Home Assistant:
publish an empty retained message on its config topic (``mosquitto_pub -r -n -t ...``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from gateway.errors import PublishRefusedError, UplinkStalledError
from gateway.outbox import AppendResult, Entry
from gateway.recorder import EntrySink
from gateway.registry import DeviceEntry
from gateway.settings import HomeAssistantSettings
from gateway.uplink import MqttLink
from vitals import topics
from vitals.devices import DeviceKind
from vitals.metrics import Metric, MetricKind

__all__ = [
    "EXCLUDED_METRICS",
    "KIND_TITLES",
    "SENSORS",
    "HomeAssistantPublisher",
    "LatestValues",
    "Message",
    "Plan",
    "SensorSpec",
    "ShownDevice",
    "default_node_id",
    "discovery_messages",
    "discovery_topic",
    "ha_unit",
    "state_payload",
    "state_topic",
]

logger = logging.getLogger(__name__)

UCUM_TO_HA: Final[Mapping[str, str]] = {
    "%": "%",
    "Cel": "°C",
    "kg": "kg",
    "m": "m",
    "kg/m2": "kg/m²",
    "mm[Hg]": "mmHg",
    "mmol/L": "mmol/L",
    "s": "s",
}
"""UCUM codes (the wire's units) -> Home Assistant's unit strings. ``/min`` depends on the
metric (beats or breaths): see :func:`ha_unit`."""

EXCLUDED_METRICS: Final[frozenset[Metric]] = frozenset({Metric.RR_INTERVAL})
"""Not shown: beat-to-beat intervals arrive several times a second and mean nothing as a
"latest value" (heart rate is there)."""

KIND_TITLES: Final[Mapping[DeviceKind, str]] = {
    DeviceKind.WEARABLE: "Wearable",
    DeviceKind.PULSE_OXIMETER: "Pulse oximeter",
    DeviceKind.THERMOMETER: "Thermometer",
    DeviceKind.BP_CUFF: "Blood pressure cuff",
    DeviceKind.SCALE: "Scale",
    DeviceKind.GLUCOSE_METER: "Glucose meter",
    DeviceKind.PENDANT: "Pendant",
}

Component = Literal["sensor", "binary_sensor"]


@dataclass(slots=True, frozen=True)
class SensorSpec:
    """How one metric looks in Home Assistant."""

    component: Component
    device_class: str | None = None
    """Home Assistant's device class; none where HA has none that fits (heart rate, SpO2,
    blood pressure: HA's ``pressure`` class is barometric and would convert units)."""
    precision: int | None = None
    """``suggested_display_precision``."""
    diagnostic: bool = False
    """About the device, not the resident (``entity_category: diagnostic``)."""


SENSORS: Final[Mapping[Metric, SensorSpec]] = {
    Metric.HEART_RATE: SensorSpec("sensor", precision=0),
    Metric.PULSE_RATE: SensorSpec("sensor", precision=0),
    Metric.SPO2: SensorSpec("sensor", precision=0),
    Metric.RESPIRATORY_RATE: SensorSpec("sensor", precision=0),
    Metric.BODY_TEMPERATURE: SensorSpec("sensor", "temperature", precision=1),
    Metric.SYSTOLIC_BP: SensorSpec("sensor", precision=0),
    Metric.DIASTOLIC_BP: SensorSpec("sensor", precision=0),
    Metric.MEAN_ARTERIAL_PRESSURE: SensorSpec("sensor", precision=0),
    Metric.BODY_WEIGHT: SensorSpec("sensor", "weight", precision=1),
    Metric.BODY_HEIGHT: SensorSpec("sensor", "distance", precision=2),
    Metric.BMI: SensorSpec("sensor", precision=1),
    Metric.BLOOD_GLUCOSE: SensorSpec("sensor", precision=1),
    Metric.BATTERY_LEVEL: SensorSpec("sensor", "battery", precision=0, diagnostic=True),
    Metric.FALL: SensorSpec("binary_sensor", "safety"),
    Metric.HELP_BUTTON: SensorSpec("binary_sensor", "safety"),
}
"""Every metric a device kind carries (``vitals.devices``) but :data:`EXCLUDED_METRICS`."""

_ORIGIN = "CareWatch"
_MANUFACTURER = "CareWatch"


def ha_unit(metric: Metric) -> str | None:
    """Home Assistant's unit of ``metric`` (``None`` for events)."""
    if metric.kind is MetricKind.EVENT:
        return None
    if metric.unit == "/min":
        return "breaths/min" if metric is Metric.RESPIRATORY_RATE else "bpm"
    return UCUM_TO_HA[metric.unit]


def default_node_id(site: str, gateway: str) -> str:
    """The discovery node id unless configured: one per gateway, named in the broker's ACL
    (the same rule as ``deploy/mosquitto/provision.py``)."""
    return f"carewatch_{topics.check_id(site, 'site')}_{topics.check_id(gateway, 'gateway')}"


def discovery_topic(prefix: str, component: Component, node_id: str, object_id: str) -> str:
    return f"{prefix}/{component}/{node_id}/{object_id}/config"


def state_topic(site: str, gateway: str, device: str, metric: Metric) -> str:
    """The retained latest-value topic of one metric of one device."""
    return (
        f"{topics.PREFIX}/{topics.check_id(site, 'site')}/{topics.check_id(gateway, 'gateway')}"
        f"/ha/{topics.check_id(device, 'device')}/{metric.value}"
    )


def state_payload(value: float, time: datetime) -> bytes:
    """``{"time":"2024-05-01T08:00:00.000Z","value":72.0}``."""
    moment = time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"time": moment, "value": value}, separators=(",", ":")).encode()


@dataclass(slots=True, frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


@dataclass(slots=True, frozen=True)
class ShownDevice:
    """A device whose metrics are shown."""

    device: str
    kind: DeviceKind
    resident: str
    label: str
    """The resident's display name if the family gave one, else the resident's id."""
    streaming: bool
    user: int | None = None
    """Only readings of this device user are shown (shared devices); None: readings without
    a user index only."""

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.kind.info.metrics if m not in EXCLUDED_METRICS)


@dataclass(slots=True, frozen=True)
class Plan:
    """What one gateway shows: its ids, topics and devices (from its settings)."""

    site: str
    gateway: str
    prefix: str
    node_id: str
    devices: tuple[ShownDevice, ...]
    stale_after_s: int = 300
    event_display_s: int = 120
    sw_version: str | None = None

    @classmethod
    def from_settings(
        cls,
        site: str,
        gateway: str,
        settings: HomeAssistantSettings,
        entries: Iterable[DeviceEntry],
        *,
        sw_version: str | None = None,
    ) -> Plan:
        shown: list[ShownDevice] = []
        for entry in entries:
            if entry.resident is None or entry.resident not in settings.residents:
                continue
            if settings.devices and entry.id not in settings.devices:
                continue
            shown.append(
                ShownDevice(
                    device=entry.id,
                    kind=entry.kind,
                    resident=entry.resident,
                    label=settings.display_names.get(entry.resident, entry.resident),
                    streaming=not entry.spot,
                    user=settings.users.get(entry.id),
                )
            )
        return cls(
            site=topics.check_id(site, "site"),
            gateway=topics.check_id(gateway, "gateway"),
            prefix=settings.discovery_prefix,
            node_id=settings.node_id or default_node_id(site, gateway),
            devices=tuple(shown),
            stale_after_s=settings.stale_after_s,
            event_display_s=settings.event_display_s,
            sw_version=sw_version,
        )

    @property
    def status_topic(self) -> str:
        return topics.status(self.site, self.gateway)

    @property
    def gateway_uid(self) -> str:
        return f"carewatch_{self.site}_{self.gateway}"

    def unique_id(self, device: str, metric: Metric) -> str:
        return f"{self.gateway_uid}_{device}_{metric.value}"

    def state_topic(self, device: str, metric: Metric) -> str:
        return state_topic(self.site, self.gateway, device, metric)


def _origin(plan: Plan) -> dict[str, str]:
    origin = {"name": _ORIGIN}
    if plan.sw_version:
        origin["sw_version"] = plan.sw_version
    return origin


def _config_message(plan: Plan, component: Component, object_id: str, config: Any) -> Message:
    payload = json.dumps(config, ensure_ascii=False, sort_keys=True).encode()
    return Message(discovery_topic(plan.prefix, component, plan.node_id, object_id), payload, True)


def _gateway_config(plan: Plan) -> Message:
    config = {
        "unique_id": f"{plan.gateway_uid}_connectivity",
        "name": "Connection",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "state_topic": plan.status_topic,
        "value_template": "{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "qos": 1,
        "device": {
            "identifiers": [plan.gateway_uid],
            "name": f"CareWatch gateway {plan.gateway}",
            "manufacturer": _MANUFACTURER,
            "model": "Gateway",
        },
        "origin": _origin(plan),
    }
    return _config_message(plan, "binary_sensor", "gateway", config)


def _metric_config(plan: Plan, shown: ShownDevice, metric: Metric) -> Message:
    spec = SENSORS[metric]
    config: dict[str, Any] = {
        "unique_id": plan.unique_id(shown.device, metric),
        "name": metric.display,
        "state_topic": plan.state_topic(shown.device, metric),
        "qos": 1,
        "availability": [
            {
                "topic": plan.status_topic,
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "json_attributes_topic": plan.state_topic(shown.device, metric),
        "json_attributes_template": "{{ {'measured_at': value_json.time} | tojson }}",
        "device": {
            "identifiers": [f"{plan.gateway_uid}_{shown.device}"],
            "name": f"{shown.label} {KIND_TITLES[shown.kind]}",
            "manufacturer": _MANUFACTURER,
            "model": KIND_TITLES[shown.kind],
            "via_device": plan.gateway_uid,
        },
        "origin": _origin(plan),
    }
    if spec.device_class is not None:
        config["device_class"] = spec.device_class
    if spec.diagnostic:
        config["entity_category"] = "diagnostic"
    if spec.component == "binary_sensor":
        config |= {
            "value_template": "{{ 'ON' if value_json.value == 1 else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "off_delay": plan.event_display_s,
        }
    else:
        config |= {
            "value_template": "{{ value_json.value }}",
            "unit_of_measurement": ha_unit(metric),
            "state_class": "measurement",
        }
        if spec.precision is not None:
            config["suggested_display_precision"] = spec.precision
        if shown.streaming and metric.kind is MetricKind.VITAL and plan.stale_after_s:
            config["expire_after"] = plan.stale_after_s
    return _config_message(plan, spec.component, f"{shown.device}_{metric.value}", config)


def discovery_messages(plan: Plan) -> tuple[Message, ...]:
    """Every discovery config of ``plan`` (retained): the gateway's connectivity first, then
    one per shown metric of each shown device."""
    messages = [_gateway_config(plan)]
    for shown in plan.devices:
        messages += [_metric_config(plan, shown, metric) for metric in shown.metrics]
    return tuple(messages)


# -- the latest values ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Value:
    value: float
    time: datetime


class LatestValues:
    """The newest value of each shown metric and what is still to publish (pure; bounded by
    the shown devices' metrics: readings of anything else are ignored).

    A value replaces the held one only if it was measured later (a device's backlog never
    moves a sensor back in time). Events are held until taken and dropped once older than
    ``event_max_age``; sensors are taken once per new value and again after
    :meth:`republish` (a new connection)."""

    def __init__(self, plan: Plan, *, event_max_age: timedelta) -> None:
        self._plan = plan
        self._event_max_age = event_max_age
        self._devices = {shown.device: shown for shown in plan.devices}
        self._latest: dict[tuple[str, Metric], _Value] = {}
        self._dirty: set[tuple[str, Metric]] = set()
        self._events: dict[tuple[str, Metric], _Value] = {}

    def offer(self, entries: Iterable[Entry]) -> bool:
        """Take note of ``entries``; True when there is something new to publish."""
        changed = False
        for entry in entries:
            shown = self._devices.get(entry.device)
            if shown is None or entry.user != shown.user or entry.metric not in SENSORS:
                continue
            if entry.metric not in shown.metrics:
                continue
            key = (entry.device, entry.metric)
            held = self._latest.get(key)
            if held is not None and held.time >= entry.time:
                continue
            value = _Value(entry.value, entry.time)
            self._latest[key] = value
            if entry.metric.kind is MetricKind.EVENT:
                self._events[key] = value
            else:
                self._dirty.add(key)
            changed = True
        return changed

    def republish(self) -> None:
        """Publish every held sensor value again (on a new connection)."""
        self._dirty = {key for key in self._latest if key[1].kind is not MetricKind.EVENT}

    @property
    def pending(self) -> bool:
        return bool(self._dirty or self._events)

    def take(self, now: datetime) -> list[Message]:
        """The state messages to publish now (sensors retained, events not)."""
        messages: list[Message] = []
        for key in sorted(self._dirty):
            held = self._latest[key]
            topic = self._plan.state_topic(*key)
            messages.append(Message(topic, state_payload(held.value, held.time), True))
        self._dirty.clear()
        for key, event in sorted(self._events.items()):
            if now - event.time <= self._event_max_age:
                topic = self._plan.state_topic(*key)
                messages.append(Message(topic, state_payload(event.value, event.time), False))
        self._events.clear()
        return messages


# -- the publisher --------------------------------------------------------------------------


class _Tee:
    """The recorder's sink: offers each batch to the publisher, then appends it."""

    def __init__(self, inner: EntrySink, publisher: HomeAssistantPublisher) -> None:
        self._inner = inner
        self._publisher = publisher

    async def append(self, entries: Sequence[Entry]) -> AppendResult:
        self._publisher.offer(entries)
        return await self._inner.append(entries)


class HomeAssistantPublisher:
    """Publishes ``plan``'s discovery configs and state topics over the uplink's connection.

    :meth:`serve` is an uplink companion: the uplink runs it beside its sender on every
    connection. A publish the broker refuses (an ACL without the gateway's Home Assistant
    topics) is logged once and stops Home Assistant publishing on that connection; the
    readings go on. A missing PUBACK ends the connection like any other."""

    def __init__(
        self,
        plan: Plan,
        *,
        ack_timeout_s: float,
        state_interval_s: float,
        event_max_age: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.plan = plan
        self._ack_timeout_s = ack_timeout_s
        self._interval_s = state_interval_s
        self._clock = clock
        self._values = LatestValues(plan, event_max_age=event_max_age)
        self._changed = asyncio.Event()
        self._refusal_logged = False
        self.discovery_published = 0
        self.states_published = 0
        self.refused = 0

    @classmethod
    def from_settings(
        cls,
        site: str,
        gateway: str,
        settings: HomeAssistantSettings,
        entries: Iterable[DeviceEntry],
        *,
        ack_timeout_s: float,
        clock: Callable[[], datetime],
        sw_version: str | None = None,
    ) -> HomeAssistantPublisher:
        plan = Plan.from_settings(site, gateway, settings, entries, sw_version=sw_version)
        return cls(
            plan,
            ack_timeout_s=ack_timeout_s,
            state_interval_s=settings.state_interval_s,
            event_max_age=timedelta(seconds=settings.event_max_age_s),
            clock=clock,
        )

    def sink(self, inner: EntrySink) -> EntrySink:
        """``inner`` with every appended batch offered to this publisher first."""
        return _Tee(inner, self)

    def offer(self, entries: Iterable[Entry]) -> None:
        if self._values.offer(entries):
            self._changed.set()

    async def serve(self, link: MqttLink) -> None:
        """Publish the discovery configs, then the states as they change, until cancelled."""
        try:
            for message in discovery_messages(self.plan):
                await self._publish(link, message)
                self.discovery_published += 1
            logger.info(
                "home assistant discovery published node=%s entities=%d",
                self.plan.node_id,
                sum(len(shown.metrics) for shown in self.plan.devices) + 1,
            )
            self._values.republish()
            while True:
                if not self._values.pending:
                    self._changed.clear()
                    await self._changed.wait()
                for message in self._values.take(self._clock()):
                    await self._publish(link, message)
                    self.states_published += 1
                await asyncio.sleep(self._interval_s)
        except PublishRefusedError as exc:
            self.refused += 1
            if not self._refusal_logged:
                self._refusal_logged = True
                logger.warning(
                    "home assistant publishing stopped: the broker refused topic=%s reason=0x%02x"
                    " (does the gateway's ACL have its Home Assistant topics?)",
                    exc.topic,
                    exc.reason_code,
                )

    async def _publish(self, link: MqttLink, message: Message) -> None:
        try:
            async with asyncio.timeout(self._ack_timeout_s):
                await link.publish(message.topic, message.payload, retain=message.retain)
        except TimeoutError:
            raise UplinkStalledError(self._ack_timeout_s) from None
