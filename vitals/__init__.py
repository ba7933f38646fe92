"""The vocabulary every part of CareWatch shares: metrics, the wire schema, topic names.

Pure: nothing in this package does I/O. The Bluetooth SIG codecs live in ``vitals.gatt``.
"""

from vitals import topics
from vitals.errors import TopicError, VitalsError, WireError
from vitals.metrics import BP_PANEL_LOINC, Metric, MetricInfo, MetricKind
from vitals.wire import (
    Alert,
    AlertKind,
    AlertState,
    BatchParse,
    DeadLetter,
    DeviceState,
    GatewayState,
    Quality,
    Reading,
    ReadingBatch,
    RejectedReading,
    Severity,
    Status,
    parse_batch,
    parse_message,
)

__all__ = [
    "BP_PANEL_LOINC",
    "Alert",
    "AlertKind",
    "AlertState",
    "BatchParse",
    "DeadLetter",
    "DeviceState",
    "GatewayState",
    "Metric",
    "MetricInfo",
    "MetricKind",
    "Quality",
    "Reading",
    "ReadingBatch",
    "RejectedReading",
    "Severity",
    "Status",
    "TopicError",
    "VitalsError",
    "WireError",
    "parse_batch",
    "parse_message",
    "topics",
]
