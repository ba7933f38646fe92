"""The ingestor: MQTT readings -> validated batches -> the store, acknowledged after storing.

Design and guarantees: :mod:`cloud.ingest.service`; the MQTT side: :mod:`cloud.ingest.mqtt`.
"""

from cloud.ingest.clock import Clock, SystemClock
from cloud.ingest.decode import Decoded, Decoder
from cloud.ingest.metrics import IngestMetrics
from cloud.ingest.service import Ingestor, StoreOutageError

__all__ = [
    "Clock",
    "Decoded",
    "Decoder",
    "IngestMetrics",
    "Ingestor",
    "StoreOutageError",
    "SystemClock",
]
