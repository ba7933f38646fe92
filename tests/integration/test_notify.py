"""The notification dispatcher delivering through apprise to real HTTP receivers on loopback:
title and body arrive, failures are retried, a recipient over its limit gets one digest, a
critical alert is not held behind warnings, a dead or silent recipient delays nobody else,
and no URL secret or message text reaches the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloud.notify import (
    Dispatcher,
    DispatcherStateError,
    Message,
    NotifyMetrics,
    NotifySettings,
)
from tests.harness import LOOPBACK, free_port, poll_until_async
from vitals.wire import Severity

pytestmark = pytest.mark.integration

WITHIN = 10.0


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    payload: dict[str, Any]
    at: float
    """``time.monotonic()`` when it arrived."""


class Receiver:
    """A real HTTP server on a free loopback port, in a thread: it records every POST and
    answers with the next status of ``statuses``, then 200."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self._statuses = list(statuses)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = {"raw": raw.decode(errors="replace")}
                status = receiver._record(Received(self.path, payload, time.monotonic()))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # Port 0: the kernel picks a free port at bind time, so there is no race for it.
        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"receiver-{self.port}", daemon=True
        )
        self._thread.start()

    def _record(self, received: Received) -> int:
        with self._lock:
            self._received.append(received)
            return self._statuses.pop(0) if self._statuses else 200

    def url(self, path: str = "/hook") -> str:
        return f"json://{LOOPBACK}:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def receiver(statuses: Iterable[int] = ()) -> Iterator[Receiver]:
    server = Receiver(statuses)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def message(
    recipient: str,
    urls: tuple[str, ...],
    *,
    title: str = "SpO2 low",
    body: str = "SpO2 84 % at 03:12 (room 12)",
    severity: Severity = Severity.WARNING,
    alert_id: str | None = None,
) -> Message:
    return Message(
        recipient=recipient,
        urls=urls,
        title=title,
        body=body,
        severity=severity,
        alert_id=alert_id or f"al-{uuid.uuid4().hex[:8]}",
        created=datetime.now(UTC),
    )


def fast(**fields: Any) -> NotifySettings:
    defaults: dict[str, Any] = {"retry_min_s": 0.05, "retry_max_s": 0.2, "timeout_s": 5.0}
    defaults.update(fields)
    return NotifySettings.model_validate(defaults)


def sample(metrics: NotifyMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(f"carewatch_notify_{name}", labels)
    return 0.0 if value is None else value


@asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(dispatcher.run(), name="dispatcher")
        try:
            yield dispatcher
        finally:
            dispatcher.stop()


async def counted(metrics: NotifyMetrics, name: str, value: float, **labels: str) -> None:
    """Wait until a metric reaches ``value`` (a receiver sees a request before the dispatcher
    has its answer)."""

    async def check() -> bool | None:
        return True if sample(metrics, name, **labels) >= value else None

    await poll_until_async(check, within=WITHIN, what=f"{name} {labels} to reach {value}")


async def arrivals(server: Receiver, count: int, what: str) -> list[Received]:
    async def check() -> list[Received] | None:
        got = server.received
        return got if len(got) >= count else None

    return await poll_until_async(check, within=WITHIN, what=what)


async def test_a_message_arrives_with_its_title_and_body() -> None:
    with receiver() as server:
        dispatcher = Dispatcher(fast())
        async with running(dispatcher):
            sent = message(
                "nurse-1",
                (server.url("/hooks/carewatch"),),
                title="Resident r01: SpO2 critical",
                body="SpO2 82 % for 5 min\nNEWS2 7",
                severity=Severity.CRITICAL,
            )
            assert dispatcher.submit(sent)
            (got,) = await arrivals(server, 1, "the notification")
            await counted(dispatcher.metrics, "sent_total", 1, scheme="json")
        assert got.path == "/hooks/carewatch"
        assert got.payload["title"] == "Resident r01: SpO2 critical"
        assert got.payload["message"] == "SpO2 82 % for 5 min\nNEWS2 7"
        assert got.payload["type"] == "failure"
        metrics = dispatcher.metrics
        assert sample(metrics, "sent_total", scheme="json") == 1
        assert sample(metrics, "failed_total", scheme="json") == 0
        assert sample(metrics, "delay_seconds_count") == 1
        assert sample(metrics, "pending") == 0
        assert server.received == [got]


async def test_a_message_submitted_before_run_goes_once_run_starts() -> None:
    with receiver() as server:
        dispatcher = Dispatcher(fast())
        assert dispatcher.submit(message("nurse-1", (server.url(),), title="early"))
        assert dispatcher.pending == 1
        async with running(dispatcher):
            with pytest.raises(DispatcherStateError, match="already running"):
                await asyncio.wait_for(dispatcher.run(), timeout=WITHIN)
            (got,) = await arrivals(server, 1, "the early notification")
        assert got.payload["title"] == "early"
        assert dispatcher.pending == 0


async def test_a_recipient_is_forgotten_once_its_allowance_is_full_again() -> None:
    # One token comes back every 0.1 s: the worker ends soon after the last send.
    settings = fast(rate=5, period_s=0.5, burst=5, critical_burst=1)
    with receiver() as server:
        dispatcher = Dispatcher(settings)
        async with running(dispatcher):
            for round_ in (1, 2):
                dispatcher.submit(message("nurse-9", (server.url(),), title=f"round {round_}"))
                await arrivals(server, round_, f"round {round_}")

                async def forgotten() -> bool | None:
                    return True if sample(dispatcher.metrics, "recipients") == 0 else None

                await poll_until_async(forgotten, within=WITHIN, what="the mailbox to go")
        assert [r.payload["title"] for r in server.received] == ["round 1", "round 2"]
        assert sample(dispatcher.metrics, "sent_total", scheme="json") == 2


async def test_a_failed_attempt_is_retried() -> None:
    with receiver(statuses=[500]) as server:
        dispatcher = Dispatcher(fast(), rng=random.Random(7))
        async with running(dispatcher):
            dispatcher.submit(message("nurse-1", (server.url(),), title="retry me"))
            first, second = await arrivals(server, 2, "the retried notification")
            await counted(dispatcher.metrics, "sent_total", 1, scheme="json")
        assert first.payload == second.payload
        assert second.payload["title"] == "retry me"
        # The backoff waited at least half of retry_min_s before trying again.
        assert second.at - first.at >= 0.025
        metrics = dispatcher.metrics
        assert sample(metrics, "retried_total", scheme="json") == 1
        assert sample(metrics, "sent_total", scheme="json") == 1
        assert sample(metrics, "failed_total", scheme="json") == 0


async def test_a_channel_that_keeps_failing_is_given_up_after_its_attempts() -> None:
    with receiver(statuses=[500, 503, 500]) as server:
        dispatcher = Dispatcher(fast(retry_attempts=3))
        async with running(dispatcher):
            dispatcher.submit(message("nurse-1", (server.url(),)))
            await counted(dispatcher.metrics, "failed_total", 1, scheme="json")
            # The recipient is not blocked: its next message goes normally.
            dispatcher.submit(message("nurse-1", (server.url(),), title="after"))
            got = await arrivals(server, 4, "the next notification")
            await counted(dispatcher.metrics, "sent_total", 1, scheme="json")
        assert [r.payload["title"] for r in got] == ["SpO2 low"] * 3 + ["after"]
        metrics = dispatcher.metrics
        assert sample(metrics, "retried_total", scheme="json") == 2
        assert sample(metrics, "failed_total", scheme="json") == 1


async def test_over_the_limit_one_digest_arrives_when_the_bucket_refills() -> None:
    # Two at once, then one every 3 s; no critical reserve.
    settings = fast(rate=1, period_s=3.0, burst=2, critical_burst=0)
    with receiver() as server:
        dispatcher = Dispatcher(settings)
        async with running(dispatcher):
            for n in (1, 2):
                dispatcher.submit(message("family-7", (server.url(),), title=f"alert {n}"))
            await arrivals(server, 2, "the two notifications of the burst")
            held_at = time.monotonic()
            for n in (3, 4, 5):
                assert dispatcher.submit(message("family-7", (server.url(),), title=f"alert {n}"))
            got = await arrivals(server, 3, "the digest")
            await counted(dispatcher.metrics, "sent_total", 3, scheme="json")
            assert dispatcher.pending == 0
        titles = [r.payload["title"] for r in got]
        assert titles[:2] == ["alert 1", "alert 2"]
        digest = got[2]
        assert digest.payload["title"] == "3 more alerts: alert 3"
        for n in (3, 4, 5):
            assert f"alert {n}" in digest.payload["message"]
        # It waited for the refill: the next token comes 3 s after the burst was spent.
        assert digest.at - held_at >= 0.5
        metrics = dispatcher.metrics
        assert sample(metrics, "rate_limited_total") == 3
        assert sample(metrics, "coalesced_total") == 3
        assert sample(metrics, "digests_total") == 1
        assert sample(metrics, "sent_total", scheme="json") == 3
        assert len(server.received) == 3


async def test_a_critical_alert_is_not_held_behind_warnings() -> None:
    settings = fast(rate=1, period_s=600.0, burst=1, critical_burst=1)
    with receiver() as server:
        dispatcher = Dispatcher(settings)
        async with running(dispatcher):
            dispatcher.submit(message("nurse-2", (server.url(),), title="warning 1"))
            await arrivals(server, 1, "the first warning")
            dispatcher.submit(message("nurse-2", (server.url(),), title="warning 2"))
            await counted(dispatcher.metrics, "rate_limited_total", 1)
            dispatcher.submit(
                message("nurse-2", (server.url(),), title="critical", severity=Severity.CRITICAL)
            )
            got = await arrivals(server, 2, "the critical alert")
            assert dispatcher.pending == 1
        assert [r.payload["title"] for r in got] == ["warning 1", "critical"]
        assert got[1].payload["type"] == "failure"


async def test_a_dead_or_silent_recipient_does_not_delay_another() -> None:
    # The dead recipient's retries wait >= 2.5 s each, the silent one's attempt times out
    # after 3 s: a dispatcher that served recipients one after the other would deliver the
    # live recipient's message seconds late.
    settings = fast(retry_min_s=5.0, retry_max_s=10.0, retry_attempts=3, timeout_s=3.0)
    dead_port = free_port()
    with receiver() as live, silent_listener() as silent_port:
        dispatcher = Dispatcher(settings)
        async with running(dispatcher):
            dispatcher.submit(message("dead-1", (f"json://{LOOPBACK}:{dead_port}/hook",)))
            dispatcher.submit(message("silent-1", (f"json://{LOOPBACK}:{silent_port}/hook",)))

            # The dead recipient's first attempt has failed; its retry waits >= 2.5 s.
            await counted(dispatcher.metrics, "retried_total", 1, scheme="json")
            submitted = time.monotonic()
            dispatcher.submit(message("live-1", (live.url(),), title="for the live one"))
            (got,) = await arrivals(live, 1, "the live recipient's notification")
            # Neither the dead recipient's retry nor the silent one's timeout has ended yet.
            assert sample(dispatcher.metrics, "failed_total", scheme="json") == 0
            assert sample(dispatcher.metrics, "retried_total", scheme="json") == 1
        assert got.payload["title"] == "for the live one"
        assert got.at - submitted < 2.5


async def test_a_silent_channel_times_out_and_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud.notify")
    settings = fast(timeout_s=0.3, retry_attempts=2)
    with silent_listener() as port:
        dispatcher = Dispatcher(settings)
        async with running(dispatcher):
            # rto/cto: apprise's own socket timeouts, so its worker thread is freed soon.
            dispatcher.submit(message("nurse-3", (f"json://{LOOPBACK}:{port}/hook?rto=1&cto=1",)))
            await counted(dispatcher.metrics, "failed_total", 1, scheme="json")
    assert sample(dispatcher.metrics, "retried_total", scheme="json") == 1
    failures = [
        r
        for r in caplog.records
        if r.name.startswith("cloud.notify") and r.levelno >= logging.WARNING
    ]
    assert len(failures) == 1
    assert "recipient=nurse-3 scheme=json" in failures[0].getMessage()
    assert "reason=timeout" in failures[0].getMessage()


async def test_no_url_secret_and_no_message_text_in_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The service logs at INFO; our own package at DEBUG here too. Apprise itself writes ntfy
    # topics (a secret on a public ntfy server) into its warnings, and URLs into its debug
    # lines: the channel keeps its records out of the service's log.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="cloud.notify")
    caplog.set_level(logging.DEBUG, logger="apprise")
    # Letters only: apprise's own masking of secrets in its log lines leaves such words whole.
    secret = "tokSECRETfive"
    password = "pwSECRETseven"
    topic = "topicSECRETnine"
    title = "Resident Jane Doe: SpO2 low"
    body = "SpO2 84 % at 03:12"
    dead_port = free_port()
    with receiver(statuses=[500] * 20) as failing, receiver() as fine:
        urls = {
            "fam-1": (f"json://bot:{password}@{LOOPBACK}:{failing.port}/hook/{secret}",),
            "fam-2": (f"json://{LOOPBACK}:{dead_port}/hook/{secret}",),
            "fam-3": (f"tgram://{secret}/",),  # unusable: never retried
            "fam-4": (fine.url(f"/hook/{secret}"),),
            "fam-5": (f"ntfy://{LOOPBACK}:{failing.port}/{topic}",),
        }
        dispatcher = Dispatcher(fast(retry_attempts=2))
        async with running(dispatcher):
            for recipient, recipient_urls in urls.items():
                dispatcher.submit(message(recipient, recipient_urls, title=title, body=body))
            m = dispatcher.metrics
            await counted(m, "failed_total", 2, scheme="json")
            await counted(m, "failed_total", 1, scheme="tgram")
            await counted(m, "failed_total", 1, scheme="ntfy")
            await counted(m, "sent_total", 1, scheme="json")
        assert fine.received[0].path == f"/hook/{secret}"
        ntfy = [r.payload for r in failing.received if r.payload.get("topic") == topic]
        assert len(ntfy) == 2
        assert ntfy[0]["message"] == body
    assert sample(dispatcher.metrics, "retried_total", scheme="tgram") == 0
    assert sample(dispatcher.metrics, "retried_total", scheme="ntfy") == 1
    lines = [record.getMessage() for record in caplog.records]
    text = "\n".join(lines) + caplog.text
    for recipient in urls:
        assert f"recipient={recipient}" in text
    assert "scheme=tgram" in text
    assert "reason=invalid_url" in text
    for forbidden in (secret, password, topic, title, body, "SpO2", "Jane", "/hook"):
        assert forbidden not in text, forbidden
