"""The CareWatch gateway: BLE central, recorder, durable outbox and MQTT uplink.

BLE central -> :class:`Recorder` (bounded queue, observations to readings) ->
:class:`AsyncOutbox` (SQLite, seq, full policy) -> :class:`Uplink` (MQTT v5, QoS 1, deleted
only after PUBACK). One :class:`GatewaySettings` is built in ``__main__`` and passed down.
"""

from gateway.errors import (
    GatewayError,
    OutboxClosedError,
    OutboxError,
    OutboxLockedError,
    PublishRefusedError,
    SettingsError,
    UplinkConnectionError,
    UplinkError,
    UplinkStalledError,
)
from gateway.health import Clock, CombinedHealth, HealthSource, NoDevices, utc_now
from gateway.outbox import (
    AppendResult,
    AsyncOutbox,
    Entry,
    Outbox,
    OutboxStats,
    Retention,
    Stored,
    retention_of,
)
from gateway.recorder import Received, Recorder, RecorderStats
from gateway.settings import (
    FullPolicy,
    GatewaySettings,
    LogSettings,
    MqttSettings,
    OutboxSettings,
    RecorderSettings,
    StatusSettings,
)
from gateway.uplink import AiomqttConnector, Connector, MqttLink, Uplink, UplinkStats, Will

__all__ = [
    "AiomqttConnector",
    "AppendResult",
    "AsyncOutbox",
    "Clock",
    "CombinedHealth",
    "Connector",
    "Entry",
    "FullPolicy",
    "GatewayError",
    "GatewaySettings",
    "HealthSource",
    "LogSettings",
    "MqttLink",
    "MqttSettings",
    "NoDevices",
    "Outbox",
    "OutboxClosedError",
    "OutboxError",
    "OutboxLockedError",
    "OutboxSettings",
    "OutboxStats",
    "PublishRefusedError",
    "Received",
    "Recorder",
    "RecorderSettings",
    "RecorderStats",
    "Retention",
    "SettingsError",
    "StatusSettings",
    "Stored",
    "Uplink",
    "UplinkConnectionError",
    "UplinkError",
    "UplinkStalledError",
    "UplinkStats",
    "Will",
    "retention_of",
    "utc_now",
]
