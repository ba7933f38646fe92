"""What ``Dispatcher.submit`` does on its own, before any I/O: bounded queues and recipients,
counted and logged once, and ``stop()`` before ``run()``."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from cloud.notify import Dispatcher, Message, NotifyMetrics, NotifySettings
from vitals.wire import Severity

T0 = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)


def msg(recipient: str, n: int, severity: Severity = Severity.WARNING) -> Message:
    return Message(
        recipient=recipient,
        urls=("json://127.0.0.1:9/hook/plainSECRETword",),
        title=f"Resident Jane: alert {n}",
        body="SpO2 84 %",
        severity=severity,
        alert_id=f"a{n}",
        created=T0,
    )


def sample(metrics: NotifyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(f"carewatch_notify_{name}", labels)
    assert value is not None, name
    return value


def test_a_full_queue_refuses_less_severe_messages_and_counts_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud.notify")
    dispatcher = Dispatcher(NotifySettings(queue_size=2))
    assert dispatcher.submit(msg("u1", 1, Severity.WARNING))
    assert dispatcher.submit(msg("u1", 2, Severity.CRITICAL))
    assert not dispatcher.submit(msg("u1", 3, Severity.INFO))
    assert dispatcher.submit(msg("u1", 4, Severity.URGENT))  # pushes out the warning
    metrics = dispatcher.metrics
    assert sample(metrics, "dropped_total", reason="queue_full") == 2
    assert sample(metrics, "pending") == 2
    assert dispatcher.pending == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["notify queue full recipient=u1 capacity=2 dropped_alert=a3"]


def test_recipients_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud.notify")
    dispatcher = Dispatcher(NotifySettings(max_recipients=2))
    assert dispatcher.submit(msg("u1", 1))
    assert dispatcher.submit(msg("u2", 2))
    assert not dispatcher.submit(msg("u3", 3))
    assert not dispatcher.submit(msg("u4", 4))
    assert dispatcher.submit(msg("u1", 5))
    metrics = dispatcher.metrics
    assert sample(metrics, "dropped_total", reason="too_many_recipients") == 2
    assert sample(metrics, "recipients") == 2
    assert sample(metrics, "pending") == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "recipient=u3 alert=a3" in warnings[0]
    for line in caplog.text.splitlines():
        assert "SECRET" not in line
        assert "Jane" not in line


async def test_stop_before_run_makes_run_return_at_once() -> None:
    dispatcher = Dispatcher(NotifySettings())
    dispatcher.submit(msg("u1", 1))
    dispatcher.stop()
    await asyncio.wait_for(dispatcher.run(), timeout=5)
    # Nothing was sent: the message waits for the next run.
    assert dispatcher.pending == 1
