"""The dispatcher's Prometheus metrics, in a registry of their own (no global state).

Labels are bounded: ``scheme`` is an apprise URL scheme (``"ntfy"``, ``"mailto"``) or
``"unknown"``, never the URL (it holds secrets); ``reason`` takes a few fixed values. There is
no per-recipient label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["DROP_REASONS", "NotifyMetrics"]

DROP_REASONS = ("queue_full", "too_many_recipients")

_DELAY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class NotifyMetrics:
    """Counters, gauges and a histogram of one dispatcher; ``registry`` is what to expose."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sent = Counter(
            "carewatch_notify_sent",
            "Notifications (single or digest) a channel accepted, by URL scheme",
            ["scheme"],
            registry=r,
        )
        self.failed = Counter(
            "carewatch_notify_failed",
            "Notifications given up on a channel after the last attempt, by URL scheme",
            ["scheme"],
            registry=r,
        )
        self.retried = Counter(
            "carewatch_notify_retried",
            "Failed attempts that were tried again, by URL scheme",
            ["scheme"],
            registry=r,
        )
        self.rate_limited = Counter(
            "carewatch_notify_rate_limited",
            "Messages held back by their recipient's rate limit (each counted once)",
            registry=r,
        )
        self.coalesced = Counter(
            "carewatch_notify_coalesced",
            "Messages sent as part of a digest",
            registry=r,
        )
        self.digests = Counter(
            "carewatch_notify_digests", "Digests made (one notification each)", registry=r
        )
        self.dropped = Counter(
            "carewatch_notify_dropped",
            "Messages dropped, by reason: queue_full (the recipient's queue was full; the "
            "least severe, oldest went), too_many_recipients",
            ["reason"],
            registry=r,
        )
        self.pending = Gauge(
            "carewatch_notify_pending", "Messages waiting (queued or held)", registry=r
        )
        self.recipients = Gauge(
            "carewatch_notify_recipients",
            "Recipients with a mailbox (messages waiting or a rate limit not yet refilled)",
            registry=r,
        )
        self.delay_seconds = Histogram(
            "carewatch_notify_delay_seconds",
            "Per message delivered: from its creation to the first channel accepting it",
            buckets=_DELAY_BUCKETS,
            registry=r,
        )
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
