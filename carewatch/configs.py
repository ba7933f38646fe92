"""The demo's configuration files, as text (pure: no I/O).

:func:`cloud_toml` is the ``python -m cloud serve`` settings, :func:`gateway_toml` the
``python -m gateway`` settings for the simulated home, :func:`mosquitto_conf` the stopgap
broker's. Every path written is absolute (the services resolve only some relative paths
against the file's folder), everything listens on 127.0.0.1, and both services run with
``demo = true``. The services' own loaders (``CloudSettings.load``,
``GatewaySettings.load``) validate what is written here; the demo loads the cloud file
before starting anything, so a mistake is reported before a process is spawned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MQTT_PROTOCOL_311",
    "BrokerTarget",
    "GatewayDevice",
    "InfluxTarget",
    "cloud_toml",
    "gateway_toml",
    "mosquitto_conf",
    "toml_string",
]

LOOPBACK = "127.0.0.1"

MQTT_PROTOCOL_311 = "3.1.1"
"""The value of ``[mqtt] protocol`` that asks a service for MQTT 3.1.1 (amqtt speaks nothing
else). The key does not exist yet in the services' settings: see ``broker.py``."""


@dataclass(slots=True, frozen=True)
class BrokerTarget:
    """The broker every service of the demo uses."""

    url: str
    """``mqtt://host:port``."""
    mqtt311: bool = False
    """The services must speak MQTT 3.1.1 to it (the embedded amqtt broker)."""


@dataclass(slots=True, frozen=True)
class InfluxTarget:
    """A real InfluxDB instead of the embedded store (``--influx``)."""

    url: str
    database: str


@dataclass(slots=True, frozen=True)
class GatewayDevice:
    """One device as the gateway registers it: the simulator's id, kind and address."""

    id: str
    kind: str
    address: str
    resident: str


def toml_string(value: str | Path) -> str:
    """``value`` as a TOML basic string (JSON's escapes are TOML's; non-ASCII stays as is,
    so no surrogate pair is written)."""
    return json.dumps(str(value), ensure_ascii=False)


def _array(values: Iterable[str | Path]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def _mqtt_lines(broker: BrokerTarget) -> list[str]:
    lines = [f"url = {toml_string(broker.url)}"]
    if broker.mqtt311:
        lines.append(f"protocol = {toml_string(MQTT_PROTOCOL_311)}")
    return lines


def cloud_toml(
    *,
    data: Path,
    site_file: Path,
    people: Sequence[Path],
    broker: BrokerTarget,
    port: int,
    influx: InfluxTarget | None,
    site: str,
) -> str:
    """``python -m cloud serve`` for the demo: one ingestor with a plain subscription (no
    share group: amqtt has none, and one ingestor needs none), short broker sessions (the
    demo's client ids must not leave week-long queues on a real broker), the embedded
    SQLite store in ``data`` unless ``influx``, the API on 127.0.0.1:``port`` with cookies
    over plain HTTP (allowed on loopback only), no metrics server."""
    if influx is None:
        store = [
            'kind = "sqlite"',
            f"path = {toml_string(data / 'vitals.sqlite3')}",
            'sqlite_synchronous = "NORMAL"',
        ]
    else:
        store = [
            'kind = "influxdb"',
            f"url = {toml_string(influx.url)}",
            f"database = {toml_string(influx.database)}",
        ]
    lines = [
        "# Written by `carewatch demo` for this run (python -m cloud serve --config FILE).",
        "demo = true",
        "shutdown_timeout_s = 5",
        "",
        "[mqtt]",
        *_mqtt_lines(broker),
        f"client_id = {toml_string(f'demo-ingest-{site}')}",
        'share_group = ""',
        "session_expiry_s = 300",
        "reconnect_max_s = 5",
        "",
        "[store]",
        *store,
        "batch_interval_s = 0.2",
        "retry_max_s = 5",
        "",
        "[registry]",
        f"sites = {_array([site_file])}",
        "",
        "[alerts]",
        f"client_id = {toml_string(f'demo-alerts-{site}')}",
        "session_expiry_s = 300",
        f"ledger = {toml_string(data / 'alerts.sqlite3')}",
        f"people = {_array(people)}",
        "",
        "[metrics]",
        "enabled = false",
        "",
        "[api]",
        f"host = {toml_string(LOOPBACK)}",
        f"port = {port}",
        f"database = {toml_string(data / 'api.sqlite3')}",
        f"audit_database = {toml_string(data / 'audit.sqlite3')}",
        f"sites = {_array([site_file])}",
        "session = { cookie_secure = false }",
        "",
        "[log]",
        'level = "INFO"',
        'format = "kv"',
    ]
    return "\n".join(lines) + "\n"


def gateway_toml(
    *,
    data: Path,
    site: str,
    gateway: str,
    timezone: str,
    broker: BrokerTarget,
    hci: str,
    devices: Sequence[GatewayDevice],
) -> str:
    """``python -m gateway`` for the simulated home: the Bumble backend on the simulator's
    HCI transport, every device of the site registered by address, a status every 5 s (the
    dashboard's device view is fed by it), the outbox in ``data``."""
    lines = [
        "# Written by `carewatch demo` for this run (python -m gateway --config FILE).",
        "demo = true",
        f"site = {toml_string(site)}",
        f"gateway = {toml_string(gateway)}",
        f"timezone = {toml_string(timezone)}",
        "",
        "[mqtt]",
        *_mqtt_lines(broker),
        "batch_interval_s = 0.5",
        "session_expiry_s = 300",
        "reconnect_max_s = 5",
        "",
        "[outbox]",
        f"path = {toml_string(data / 'outbox.sqlite3')}",
        "",
        "[status]",
        "heartbeat_s = 5",
        "",
        "[log]",
        'level = "INFO"',
        "",
        "[ble]",
        'backend = "bumble"',
        f"transport = {toml_string(hci)}",
        "backoff_initial_s = 0.5",
        "backoff_max_s = 10",
    ]
    for device in devices:
        lines += [
            "",
            "[[ble.devices]]",
            f"id = {toml_string(device.id)}",
            f"kind = {toml_string(device.kind)}",
            f"address = {toml_string(device.address)}",
            f"resident = {toml_string(device.resident)}",
        ]
    return "\n".join(lines) + "\n"


def mosquitto_conf(*, port: int, as_root: bool) -> str:
    """The stopgap Mosquitto: 127.0.0.1:``port`` only, anonymous, no persistence (the demo's
    data dir holds no broker state), logs to stderr (the demo's broker log)."""
    lines = ["# Written by `carewatch demo`: the stopgap broker (see carewatch/broker.py)."]
    if as_root:
        lines.append("user root")  # else Mosquitto 2 switches to the 'mosquitto' user
    lines += [
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "per_listener_settings false",
        "allow_anonymous true",
        "max_queued_messages 10000",
        f"listener {port} {LOOPBACK}",
    ]
    return "\n".join(lines) + "\n"
