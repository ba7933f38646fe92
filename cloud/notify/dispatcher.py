"""The dispatcher: messages in (``submit``), notifications out through the channels, per
recipient rate limited and coalesced (:mod:`cloud.notify.mailbox`), retried on failure.

How it runs:

* ``submit(message)`` never blocks and never waits for I/O: it puts the message in its
  recipient's :class:`~cloud.notify.mailbox.Mailbox` (bounded; the full-queue policy is the
  mailbox's) and wakes that recipient's worker. It is called from the event loop's thread.
* ``run()`` lives in the service's ``TaskGroup``. It keeps one worker task per recipient that
  has something to send or a rate limit still refilling, all in its own ``TaskGroup``; a
  worker ends once its recipient's allowance is full again and nothing waits. So a slow or
  dead channel only ever delays its own recipient.
* A worker sends one notification at a time, to each of the recipient's URLs at once. Each
  URL is tried up to ``retry_attempts`` times with random, growing, capped delays
  (:class:`vitals.backoff.Backoff`), not after the notification's newest message is
  ``max_age_s`` old, and not at all again when the URL itself is unusable. At most
  ``max_concurrent`` attempts run at once across all recipients, each limited to
  ``timeout_s``.
* A notification given up on a channel is counted and logged once, with the recipient id, the
  URL scheme, the alert id and the reason: never the URL (it holds secrets), never the title
  or body (health data).

What is not kept: waiting messages live in memory; on shutdown they are lost (the alert
lifecycle, which owns the alerts, can hand open ones again on start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from cloud.notify.channel import AppriseChannel, Channel
from cloud.notify.clock import Clock, SystemClock
from cloud.notify.errors import DeliveryError, DispatcherStateError
from cloud.notify.mailbox import Mailbox
from cloud.notify.message import Delivery, Held, Message
from cloud.notify.metrics import NotifyMetrics
from cloud.notify.settings import NotifySettings
from cloud.notify.urls import scheme_of
from vitals.backoff import Backoff

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

_TIMEOUT_GRACE_S = 1.0
"""Added to ``timeout_s`` for the hard limit around a channel that should time out itself."""


class _Recipient:
    __slots__ = ("holding", "mailbox", "overflowing", "task", "wake")

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.holding = False
        """Over the limit since the last delivery (logged once)."""
        self.overflowing = False
        """Dropping since the last delivery (logged once)."""


class _Outcome:
    __slots__ = ("delivered",)

    def __init__(self) -> None:
        self.delivered = False


class Dispatcher:
    """Delivers :class:`~cloud.notify.message.Message`\\s to people through their channels.

    ``channel`` sends one notification to one URL (default: :class:`AppriseChannel`);
    ``clock`` gives monotonic and wall time; ``rng`` makes retry delays reproducible.
    """

    def __init__(
        self,
        settings: NotifySettings,
        *,
        channel: Channel | None = None,
        clock: Clock | None = None,
        metrics: NotifyMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._limit = settings.limit
        self._channel: Channel = channel if channel is not None else AppriseChannel()
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.metrics = metrics if metrics is not None else NotifyMetrics()
        self._rng = rng if rng is not None else random.Random()
        self._recipients: dict[str, _Recipient] = {}
        self._slots = asyncio.Semaphore(settings.max_concurrent)
        self._tg: asyncio.TaskGroup | None = None
        self._running = False
        self._stopping = asyncio.Event()
        self._refusing_recipients = False

    @property
    def pending(self) -> int:
        """Messages waiting (queued or held by a rate limit), all recipients together."""
        return sum(len(r.mailbox) for r in self._recipients.values())

    def submit(self, message: Message) -> bool:
        """Queue ``message`` for its recipient; never blocks.

        Returns ``False`` when the message was not queued: its recipient's queue is full of
        more severe messages, or ``max_recipients`` recipients already have a mailbox. A
        ``True`` may still have pushed out a less severe, older message of the same recipient
        (counted as dropped, and mentioned in that recipient's next notification).
        """
        rid = message.recipient
        state = self._recipients.get(rid)
        if state is None:
            if len(self._recipients) >= self._settings.max_recipients:
                self.metrics.dropped.labels("too_many_recipients").inc()
                if not self._refusing_recipients:
                    self._refusing_recipients = True
                    logger.warning(
                        "notify dropping messages: %d recipients already waiting "
                        "recipient=%s alert=%s",
                        len(self._recipients),
                        rid,
                        message.alert_id,
                    )
                return False
            self._refusing_recipients = False
            state = _Recipient(
                Mailbox(
                    rid,
                    self._limit,
                    capacity=self._settings.queue_size,
                    digest_items=self._settings.digest_items,
                    now=self._clock.monotonic(),
                )
            )
            self._recipients[rid] = state
            self.metrics.recipients.set(len(self._recipients))
        admission = state.mailbox.put(message)
        if admission.dropped is not None:
            self.metrics.dropped.labels("queue_full").inc()
            if not state.overflowing:
                state.overflowing = True
                logger.warning(
                    "notify queue full recipient=%s capacity=%d dropped_alert=%s",
                    rid,
                    self._settings.queue_size,
                    admission.dropped.alert_id,
                )
        elif admission.accepted:
            self.metrics.pending.inc()
        state.wake.set()
        self._start_worker(rid, state)
        return admission.accepted

    def stop(self) -> None:
        """Make ``run()`` return, at once if it has not started yet (workers are cancelled;
        waiting messages stay queued for a later ``run()``)."""
        self._stopping.set()

    async def run(self) -> None:
        """Deliver until cancelled or ``stop()``; put it in the service's ``TaskGroup``."""
        if self._running:
            raise DispatcherStateError("the dispatcher is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                for rid, state in list(self._recipients.items()):
                    if len(state.mailbox):
                        self._start_worker(rid, state)
                await self._stopping.wait()
                self._tg = None
                for state in self._recipients.values():
                    if state.task is not None:
                        state.task.cancel()
        finally:
            self._tg = None
            self._running = False
            self._stopping.clear()

    def _start_worker(self, rid: str, state: _Recipient) -> None:
        if state.task is not None or self._tg is None:
            return
        try:
            state.task = self._tg.create_task(self._work(rid, state), name=f"notify:{rid}")
        except RuntimeError:
            # The group is shutting down: the message stays queued for the next run().
            state.task = None

    async def _work(self, rid: str, state: _Recipient) -> None:
        mailbox = state.mailbox
        try:
            while True:
                state.wake.clear()
                now = self._clock.monotonic()
                step = mailbox.take(now)
                if isinstance(step, Delivery):
                    self._taken(state, step)
                    await self._deliver(step)
                    continue
                if isinstance(step, Held):
                    self._held(rid, state, step, now)
                    wait = step.until - now
                else:
                    wait = mailbox.idle_at(now) - now
                    if wait <= 0:
                        return
                await self._pause(state.wake, min(wait, self._settings.period_s))
        finally:
            state.task = None
            now = self._clock.monotonic()
            idle = not len(mailbox) and mailbox.idle_at(now) <= now
            if idle and self._recipients.get(rid) is state:
                del self._recipients[rid]
                self.metrics.recipients.set(len(self._recipients))

    @staticmethod
    async def _pause(wake: asyncio.Event, seconds: float) -> None:
        """Until ``seconds`` have passed or a message arrives (it may change what can go)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await wake.wait()

    def _held(self, rid: str, state: _Recipient, held: Held, now: float) -> None:
        if held.newly_held:
            self.metrics.rate_limited.inc(held.newly_held)
        if not state.holding:
            state.holding = True
            logger.info(
                "notify rate limit reached recipient=%s waiting=%d next_in_s=%.1f",
                rid,
                len(state.mailbox),
                held.until - now,
            )

    def _taken(self, state: _Recipient, delivery: Delivery) -> None:
        self.metrics.pending.dec(len(delivery.messages))
        state.holding = False
        state.overflowing = False
        if delivery.digest:
            self.metrics.digests.inc()
            self.metrics.coalesced.inc(len(delivery.messages))

    async def _deliver(self, delivery: Delivery) -> None:
        outcome = _Outcome()
        urls = tuple(dict.fromkeys(delivery.urls))
        async with asyncio.TaskGroup() as tg:
            for number, url in enumerate(urls, start=1):
                tg.create_task(
                    self._send(delivery, url, outcome),
                    name=f"notify:{delivery.recipient}:{number}",
                )

    async def _send(self, delivery: Delivery, url: str, outcome: _Outcome) -> None:
        settings = self._settings
        scheme = scheme_of(url)
        backoff = Backoff(settings.retry_min_s, settings.retry_max_s, self._rng)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._slots, asyncio.timeout(settings.timeout_s + _TIMEOUT_GRACE_S):
                    await self._channel.send(
                        url,
                        title=delivery.title,
                        body=delivery.body,
                        severity=delivery.severity,
                        timeout_s=settings.timeout_s,
                    )
            except DeliveryError as exc:
                error = exc
            except TimeoutError:
                error = DeliveryError(scheme, "timeout")
            except Exception as exc:
                # A channel must raise DeliveryError; anything else is its bug, and it must
                # not stop the other recipients.
                error = DeliveryError(scheme, f"exception:{type(exc).__name__}")
            else:
                self._sent(delivery, scheme, attempt, outcome)
                return
            age = (self._clock.now() - delivery.newest_created).total_seconds()
            if error.permanent or attempt >= settings.retry_attempts or age >= settings.max_age_s:
                self.metrics.failed.labels(scheme).inc()
                logger.warning(
                    "notify delivery failed recipient=%s scheme=%s alert=%s messages=%d "
                    "attempts=%d reason=%s",
                    delivery.recipient,
                    scheme,
                    delivery.messages[0].alert_id,
                    len(delivery.messages),
                    attempt,
                    error.reason,
                )
                return
            self.metrics.retried.labels(scheme).inc()
            delay = backoff.next()
            logger.debug(
                "notify attempt failed recipient=%s scheme=%s alert=%s attempt=%d reason=%s "
                "retry_in_s=%.2f",
                delivery.recipient,
                scheme,
                delivery.messages[0].alert_id,
                attempt,
                error.reason,
                delay,
            )
            await asyncio.sleep(delay)

    def _sent(self, delivery: Delivery, scheme: str, attempt: int, outcome: _Outcome) -> None:
        self.metrics.sent.labels(scheme).inc()
        logger.info(
            "notify sent recipient=%s scheme=%s alert=%s messages=%d attempts=%d",
            delivery.recipient,
            scheme,
            delivery.messages[0].alert_id,
            len(delivery.messages),
            attempt,
        )
        if not outcome.delivered:
            outcome.delivered = True
            now = self._clock.now()
            for message in delivery.messages:
                self.metrics.delay_seconds.observe(
                    max(0.0, (now - message.created).total_seconds())
                )
