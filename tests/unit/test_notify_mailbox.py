"""The pure pacing of notifications: token buckets, a recipient's mailbox (order, rate limit,
critical reserve, digests, full queue) and the text of digests, all at explicit times."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.notify import (
    Delivery,
    Held,
    Mailbox,
    Message,
    MessageError,
    RateLimit,
    TokenBucket,
    compose_digest,
    compose_single,
)
from vitals.wire import Severity

T0 = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)
URLS = ("json://127.0.0.1:9/hook",)


def msg(
    n: int,
    severity: Severity = Severity.WARNING,
    *,
    recipient: str = "u1",
    body: str = "",
    urls: tuple[str, ...] = URLS,
) -> Message:
    return Message(
        recipient=recipient,
        urls=urls,
        title=f"alert {n}",
        body=body or f"body {n}",
        severity=severity,
        alert_id=f"a{n}",
        created=T0 + timedelta(minutes=n),
    )


def mailbox(
    rate: int = 5,
    period_s: float = 600.0,
    burst: int = 5,
    critical_burst: int = 3,
    *,
    capacity: int = 50,
    digest_items: int = 20,
    now: float = 0.0,
) -> Mailbox:
    limit = RateLimit(rate=rate, period_s=period_s, burst=burst, critical_burst=critical_burst)
    return Mailbox("u1", limit, capacity=capacity, digest_items=digest_items, now=now)


def delivered(step: Delivery | Held | None) -> Delivery:
    assert isinstance(step, Delivery), step
    return step


def held(step: Delivery | Held | None) -> Held:
    assert isinstance(step, Held), step
    return step


# -- token buckets ---------------------------------------------------------------------------


def test_bucket_starts_full_spends_and_refills_to_its_capacity() -> None:
    bucket = TokenBucket(2, 1 / 60, now=100.0)
    assert bucket.whole(100.0) == 2
    bucket.spend(100.0)
    bucket.spend(100.0)
    assert bucket.whole(100.0) == 0
    with pytest.raises(ValueError, match="no token"):
        bucket.spend(100.0)
    assert bucket.ready_at(100.0) == pytest.approx(160.0)
    assert bucket.tokens(130.0) == pytest.approx(0.5)
    assert bucket.full_at(130.0) == pytest.approx(220.0)
    assert bucket.whole(160.0) == 1
    assert bucket.ready_at(160.0) == 160.0
    assert bucket.tokens(10_000.0) == 2.0
    assert bucket.full_at(10_000.0) == 10_000.0


def test_bucket_ignores_a_clock_stepping_back() -> None:
    bucket = TokenBucket(1, 1.0, now=50.0)
    bucket.spend(50.0)
    assert bucket.tokens(10.0) == 0.0
    assert bucket.tokens(50.5) == pytest.approx(0.5)


def test_bucket_ready_at_is_honoured_despite_rounding() -> None:
    bucket = TokenBucket(5, 5 / 600, now=0.0)
    for t in (0.1, 0.2, 0.3, 0.4, 0.5):
        bucket.spend(t)
    ready = bucket.ready_at(0.7)
    assert ready > 0.7
    assert bucket.whole(ready) == 1


def test_empty_bucket_is_never_ready() -> None:
    bucket = TokenBucket(0, 0.0, now=0.0)
    assert bucket.whole(1e9) == 0
    assert bucket.ready_at(5.0) == math.inf
    assert bucket.full_at(5.0) == 5.0
    with pytest.raises(ValueError, match="need capacity"):
        TokenBucket(1, 0.0, now=0.0)


def test_rate_limit_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate >= 1"):
        RateLimit(rate=0)
    with pytest.raises(ValueError, match="critical_burst >= 0"):
        RateLimit(critical_burst=-1)
    with pytest.raises(ValueError, match="period_s"):
        RateLimit(period_s=0.0)
    with pytest.raises(ValueError, match="period_s"):
        RateLimit(period_s=math.inf)


# -- the mailbox ------------------------------------------------------------------------------


def test_singles_while_the_burst_lasts_then_held_messages_make_one_digest() -> None:
    box = mailbox()
    for n in range(5):
        box.put(msg(n))
        single = delivered(box.take(float(n)))
        assert single.messages == (msg(n),)
        assert not single.digest
        assert (single.title, single.body) == (f"alert {n}", f"body {n}")
    # The burst is spent; the next token comes 600/5 = 120 s after the first was spent.
    for n, t in ((5, 10.0), (6, 20.0), (7, 30.0)):
        box.put(msg(n))
        wait = held(box.take(t))
        assert wait.until == pytest.approx(120.0)
        assert wait.newly_held == 1
    assert held(box.take(119.0)).newly_held == 0
    digest = delivered(box.take(120.0))
    assert digest.digest
    assert digest.alert_ids == ("a5", "a6", "a7")
    assert digest.title == "3 more alerts: alert 5"
    assert all(f"alert {n}" in digest.body for n in (5, 6, 7))
    assert box.take(120.0) is None
    assert len(box) == 0


def test_a_burst_at_once_spends_its_last_token_on_a_digest() -> None:
    box = mailbox()
    for n in range(7):
        assert box.put(msg(n)).accepted
    singles = [delivered(box.take(0.0)) for _ in range(4)]
    assert [d.alert_ids for d in singles] == [("a0",), ("a1",), ("a2",), ("a3",)]
    digest = delivered(box.take(0.0))
    assert digest.alert_ids == ("a4", "a5", "a6")
    assert box.take(0.0) is None
    box.put(msg(7))
    assert held(box.take(1.0)).until == pytest.approx(120.0)


def test_messages_go_most_severe_first_then_oldest_first() -> None:
    box = mailbox(burst=10)
    box.put(msg(0, Severity.INFO))
    box.put(msg(1, Severity.WARNING))
    box.put(msg(2, Severity.CRITICAL))
    box.put(msg(3, Severity.WARNING))
    box.put(msg(4, Severity.URGENT))
    order = [delivered(box.take(0.0)).alert_ids[0] for _ in range(5)]
    assert order == ["a2", "a4", "a1", "a3", "a0"]


def test_a_critical_alert_uses_the_reserve_while_warnings_are_held() -> None:
    box = mailbox(rate=1, period_s=60.0, burst=1, critical_burst=1)
    box.put(msg(0))
    assert delivered(box.take(0.0)).alert_ids == ("a0",)
    box.put(msg(1))
    assert held(box.take(1.0)).until == pytest.approx(60.0)
    box.put(msg(2, Severity.CRITICAL))
    critical = delivered(box.take(2.0))
    assert critical.alert_ids == ("a2",)
    assert critical.reserve
    assert critical.severity is Severity.CRITICAL
    # Both buckets are empty now: the next critical waits for whichever refills first (the
    # ordinary one at 60 s; the reserve at 62 s).
    box.put(msg(3, Severity.CRITICAL))
    wait = held(box.take(3.0))
    assert wait.until == pytest.approx(60.0)
    assert wait.newly_held == 1
    # At 60 s the ordinary bucket has its one token and the reserve none: one digest, the
    # critical first.
    digest = delivered(box.take(60.0))
    assert (digest.alert_ids, digest.reserve) == (("a3", "a1"), False)
    assert box.take(60.0) is None


def test_with_one_token_each_a_critical_goes_alone_before_the_digest() -> None:
    box = mailbox(rate=1, period_s=60.0, burst=1, critical_burst=1)
    box.put(msg(0))
    box.put(msg(1))
    box.put(msg(2, Severity.CRITICAL))
    first = delivered(box.take(0.0))
    assert (first.alert_ids, first.reserve) == (("a2",), True)
    rest = delivered(box.take(0.0))
    assert (rest.alert_ids, rest.reserve) == (("a0", "a1"), False)
    assert rest.title == "2 more alerts: alert 0"


def test_a_critical_joins_a_digest_when_there_is_no_reserve() -> None:
    box = mailbox(rate=1, period_s=60.0, burst=1, critical_burst=0)
    box.put(msg(0))
    assert delivered(box.take(0.0)).alert_ids == ("a0",)
    box.put(msg(1))
    box.put(msg(2, Severity.CRITICAL))
    assert held(box.take(1.0)).until == pytest.approx(60.0)
    digest = delivered(box.take(60.0))
    assert digest.alert_ids == ("a2", "a1")
    assert digest.severity is Severity.CRITICAL
    assert digest.title == "2 more alerts: alert 2"
    assert digest.body.index("[CRITICAL]") < digest.body.index("[WARNING]")


def test_the_reserve_pays_only_for_critical_alerts() -> None:
    box = mailbox(rate=1, period_s=60.0, burst=1, critical_burst=2)
    box.put(msg(0))
    delivered(box.take(0.0))
    box.put(msg(1))
    box.put(msg(2, Severity.CRITICAL))
    box.put(msg(3, Severity.CRITICAL))
    box.put(msg(4, Severity.CRITICAL))
    assert delivered(box.take(0.0)).alert_ids == ("a2",)
    # One reserve token left, two criticals waiting: they go as one digest of criticals.
    criticals = delivered(box.take(0.0))
    assert (criticals.alert_ids, criticals.reserve) == (("a3", "a4"), True)
    # The warning waits for the ordinary bucket.
    assert held(box.take(0.0)).until == pytest.approx(60.0)
    assert delivered(box.take(60.0)).alert_ids == ("a1",)


def test_a_full_queue_keeps_the_newest_and_the_most_severe() -> None:
    box = mailbox(capacity=3)
    assert box.put(msg(0, Severity.INFO)).accepted
    assert box.put(msg(1, Severity.WARNING)).accepted
    assert box.put(msg(2, Severity.INFO)).accepted
    # A warning pushes out the oldest info.
    admission = box.put(msg(3, Severity.WARNING))
    assert (admission.accepted, admission.dropped) == (True, msg(0, Severity.INFO))
    # An info pushes out the older info (the newest is kept).
    admission = box.put(msg(4, Severity.INFO))
    assert (admission.accepted, admission.dropped) == (True, msg(2, Severity.INFO))
    admission = box.put(msg(5, Severity.WARNING))
    assert (admission.accepted, admission.dropped) == (True, msg(4, Severity.INFO))
    # Everything waiting is more severe than a new info: the new one is refused.
    admission = box.put(msg(6, Severity.INFO))
    assert (admission.accepted, admission.dropped) == (False, msg(6, Severity.INFO))
    assert len(box) == 3
    assert box.dropped == 4
    first = delivered(box.take(0.0))
    assert first.dropped == 4
    assert "4 other alerts were dropped" in first.body
    assert box.dropped == 0
    assert delivered(box.take(0.0)).dropped == 0


def test_idle_once_the_allowance_is_full_again() -> None:
    box = mailbox(rate=1, period_s=60.0, burst=2, critical_burst=1)
    assert box.idle_at(0.0) == 0.0
    box.put(msg(0))
    assert box.idle_at(0.0) == math.inf
    delivered(box.take(10.0))
    assert box.idle_at(10.0) == pytest.approx(70.0)
    box.put(msg(1, Severity.CRITICAL))
    box.put(msg(2, Severity.CRITICAL))
    delivered(box.take(10.0))
    delivered(box.take(10.0))
    # Ordinary bucket: 2 spent at 10 s, full at 130 s; the reserve was not used.
    assert box.idle_at(20.0) == pytest.approx(130.0)


def test_a_mailbox_takes_only_its_recipients_messages() -> None:
    with pytest.raises(ValueError, match="another recipient"):
        mailbox().put(msg(0, recipient="u2"))
    with pytest.raises(ValueError, match="at least 1"):
        mailbox(capacity=0)


def test_a_digest_goes_to_the_newest_urls() -> None:
    box = mailbox(burst=1, critical_burst=0)
    box.put(msg(0))
    box.put(msg(1, Severity.CRITICAL))
    box.put(msg(2, urls=("json://127.0.0.1:9/new",)))
    digest = delivered(box.take(0.0))
    assert digest.alert_ids == ("a1", "a0", "a2")
    assert digest.urls == ("json://127.0.0.1:9/new",)


# -- the text ---------------------------------------------------------------------------------


def test_digest_text_lists_caps_and_counts() -> None:
    messages = [msg(n, body="x" * 1000 if n == 0 else f"SpO2 {90 - n} %") for n in range(5)]
    title, body = compose_digest(messages, dropped=1, max_items=3)
    assert title == "5 more alerts: alert 0"
    assert body.startswith("5 alerts were held back")
    assert "[WARNING] 2025-03-01 03:01 UTC alert 1" in body
    assert "SpO2 88 %" in body
    assert "alert 3" not in body
    assert "... and 2 more." in body
    assert "1 other alert was dropped" in body
    assert "x" * 279 + "\u2026" in body
    assert "x" * 280 not in body
    with pytest.raises(ValueError, match="at least two"):
        compose_digest(messages[:1])
    with pytest.raises(ValueError, match="max_items"):
        compose_digest(messages, max_items=0)


def test_single_text_is_the_message_plus_drops() -> None:
    assert compose_single(msg(1)) == ("alert 1", "body 1")
    assert compose_single(msg(1), dropped=2) == (
        "alert 1",
        "body 1\n\n2 other alerts were dropped: too many were waiting. See the dashboard.",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"urls": ()}, "urls"),
        ({"urls": ["json://a/b"]}, "urls"),
        ({"urls": ("",)}, "urls"),
        ({"recipient": ""}, "recipient"),
        ({"alert_id": ""}, "alert_id"),
        ({"created": datetime(2025, 3, 1)}, "created"),  # naive on purpose
        ({"severity": "critical"}, "severity"),
    ],
)
def test_a_message_refuses_what_cannot_be_sent(change: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "recipient": "u1",
        "urls": URLS,
        "title": "t",
        "body": "b",
        "severity": Severity.WARNING,
        "alert_id": "a1",
        "created": T0,
    }
    fields.update(change)
    with pytest.raises(MessageError, match=field):
        Message(**fields)  # type: ignore[arg-type]


# -- properties -------------------------------------------------------------------------------

SEVERITIES = list(Severity)

steps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=200.0, allow_nan=False),
        st.one_of(st.none(), st.sampled_from(SEVERITIES)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.integers(1, 5),
    burst=st.integers(1, 5),
    critical_burst=st.integers(0, 3),
    capacity=st.integers(1, 8),
    plan=steps,
)
def test_nothing_is_lost_and_the_limit_holds(
    rate: int,
    burst: int,
    critical_burst: int,
    capacity: int,
    plan: list[tuple[float, Severity | None]],
) -> None:
    period = 600.0
    box = mailbox(rate, period, burst, critical_burst, capacity=capacity)
    now = 0.0
    accepted: set[str] = set()
    dropped: set[str] = set()
    sent: list[str] = []
    normal_sends = reserve_sends = 0

    def take_all(at: float) -> None:
        nonlocal normal_sends, reserve_sends
        while True:
            step = box.take(at)
            if step is None:
                return
            if isinstance(step, Held):
                assert step.until > at
                return
            assert step.messages
            assert step.digest == (len(step.messages) > 1)
            if step.reserve:
                reserve_sends += 1
                assert all(m.severity is Severity.CRITICAL for m in step.messages)
            else:
                normal_sends += 1
            assert normal_sends <= burst + rate * at / period + 1e-6
            assert reserve_sends <= critical_burst + critical_burst * at / period + 1e-6
            sent.extend(step.alert_ids)

    for n, (dt, severity) in enumerate(plan):
        now += dt
        if severity is None:
            take_all(now)
            continue
        admission = box.put(msg(n, severity))
        if admission.accepted:
            accepted.add(f"a{n}")
        if admission.dropped is not None:
            dropped.add(admission.dropped.alert_id)
    # Far in the future every bucket is full: everything still waiting goes out.
    take_all(now + 10 * period)
    assert len(box) == 0
    assert len(sent) == len(set(sent))
    assert set(sent) == accepted - dropped
