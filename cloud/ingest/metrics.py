"""The ingestor's Prometheus metrics, in a registry of their own (no global state).

Labels are bounded: ``outcome`` and ``reason`` take a handful of fixed values; there is no
per-site, per-device or per-resident label (those belong in the data, not in the metrics).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["IngestMetrics"]

_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 3000, 4000, 5000, 10_000)
_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86_400)


class IngestMetrics:
    """Counters, gauges and histograms of one ingestor; ``registry`` is what to expose."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "carewatch_ingest_messages",
            "MQTT messages handled, by outcome: stored (every reading stored), partial (some "
            "readings dead-lettered), refused (the whole message dead-lettered)",
            ["outcome"],
            registry=r,
        )
        self.readings_stored = Counter(
            "carewatch_ingest_readings_stored", "Readings written to the store", registry=r
        )
        self.readings_rejected = Counter(
            "carewatch_ingest_readings_rejected",
            "Readings refused, by reason: invalid, unknown_device, store_refused",
            ["reason"],
            registry=r,
        )
        self.readings_unassigned = Counter(
            "carewatch_ingest_readings_unassigned",
            "Readings of devices the registry does not know, stored as unassigned",
            registry=r,
        )
        self.deadletters = Counter(
            "carewatch_ingest_deadletters",
            "Dead letters published, by kind: message (a whole message) or readings",
            ["kind"],
            registry=r,
        )
        self.deadletter_failures = Counter(
            "carewatch_ingest_deadletter_failures",
            "Dead letters the broker refused (the message is acknowledged anyway)",
            registry=r,
        )
        self.batch_readings = Histogram(
            "carewatch_ingest_batch_readings",
            "Readings per store write",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.write_seconds = Histogram(
            "carewatch_ingest_write_seconds",
            "Latency of successful store writes",
            buckets=_WRITE_BUCKETS,
            registry=r,
        )
        self.write_retries = Counter(
            "carewatch_ingest_write_retries",
            "Store writes that failed (unavailable) and were retried",
            registry=r,
        )
        self.store_available = Gauge(
            "carewatch_ingest_store_available",
            "1 while the last store write succeeded, 0 during an outage",
            registry=r,
        )
        self.lag_seconds = Histogram(
            "carewatch_ingest_lag_seconds",
            "Per write: now minus the gateway receive time of the newest reading written",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "carewatch_ingest_in_flight_messages",
            "MQTT messages held (received, not yet acknowledged)",
            registry=r,
        )
        self.connected = Gauge(
            "carewatch_ingest_mqtt_connected", "1 while connected to the broker", registry=r
        )
        self.connects = Counter(
            "carewatch_ingest_mqtt_connects", "Successful connections to the broker", registry=r
        )
        self.stale = Counter(
            "carewatch_ingest_stale_messages",
            "Messages let go unacknowledged because their connection ended (the broker "
            "sends them again)",
            registry=r,
        )
        self.backpressure_waits = Counter(
            "carewatch_ingest_backpressure_waits",
            "Times reading from the broker paused for room (the in-flight window was full)",
            registry=r,
        )
