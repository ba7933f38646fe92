"""The ingestor's fast path never accepts what the wire models refuse, gives the same values
when it accepts, and accepts every batch a gateway sends (or it would silently never be used)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_wire import BAD_READINGS, batch, batches, reading
from vitals import Reading, ReadingBatch, WireError, parse_batch
from vitals.fastwire import fast_batch

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def _ns(moment: datetime) -> int:
    return round((moment - _EPOCH).total_seconds() * 1e6) * 1000


def assert_same(payload: bytes) -> None:
    """If the fast path accepts ``payload``, the models accept all of it with equal values."""
    fast = fast_batch(payload)
    if fast is None:
        return
    slow = parse_batch(payload)  # raises WireError: the fast path accepted a bad envelope
    assert slow.rejected == (), slow.rejected
    assert (fast.site, fast.gateway, fast.sent) == (slow.site, slow.gateway, slow.sent)
    assert len(fast.readings) == len(slow.readings)
    for record, time_ns, received_ns, model in zip(
        fast.readings, fast.time_ns, fast.received_ns, slow.readings, strict=True
    ):
        assert record["device"] == model.device
        assert record.get("user") == model.user
        assert record["metric"] is model.metric
        assert record["value"] == model.value
        assert type(record["value"]) is float
        assert record["seq"] == model.seq
        assert tuple(record.get("flags", ())) == model.flags
        assert time_ns == model.time_ns
        assert received_ns == _ns(model.received)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_batch_a_gateway_sends_takes_the_fast_path(original: ReadingBatch) -> None:
    payload = original.to_json()
    fast = fast_batch(payload)
    assert fast is not None
    assert_same(payload)
    assert fast.time_ns == [r.time_ns for r in original.readings]


@pytest.mark.parametrize(
    "raw", [r for _, r, _ in BAD_READINGS], ids=[n for n, _, _ in BAD_READINGS]
)
def test_every_bad_reading_leaves_the_fast_path(raw: dict[str, Any]) -> None:
    assert fast_batch(dumps(batch(raw))) is None
    # ... and with good readings beside it, the slow path keeps those.
    payload = dumps(batch(reading(seq=7), raw))
    assert fast_batch(payload) is None


ODD_BUT_VALID = [
    ("lower-case t", reading(time="2026-11-24t05:00:00Z")),
    ("space separator", reading(time="2026-11-24 05:00:00Z")),
    ("nanoseconds", reading(time="2026-11-24T05:00:00.123456789Z")),
    ("integer value", reading(value=72)),
]


@pytest.mark.parametrize("raw", [r for _, r in ODD_BUT_VALID], ids=[n for n, _ in ODD_BUT_VALID])
def test_forms_the_fast_path_does_not_know_are_still_judged_by_the_models(
    raw: dict[str, Any],
) -> None:
    payload = dumps(batch(raw))
    assert_same(payload)
    with_models = parse_batch(payload) if fast_batch(payload) is None else None
    if with_models is not None:
        assert len(with_models.readings) + len(with_models.rejected) == 1


FAST_REFUSES = [
    ("a date that does not exist", reading(time="2026-02-30T05:00:00Z")),
    ("an offset of a day", reading(time="2026-11-24T05:00:00+24:00")),
    ("a leap second", reading(time="2026-12-31T23:59:60Z")),
    ("received before 2000", reading(received="1999-12-31T23:59:59Z")),
    ("time 5 min 1 s after receipt", reading(time="2026-11-24T05:05:02.251Z")),
    ("gateway of another batch", reading(gateway="gw-2")),
]


@pytest.mark.parametrize("raw", [r for _, r in FAST_REFUSES], ids=[n for n, _ in FAST_REFUSES])
def test_the_fast_path_refuses(raw: dict[str, Any]) -> None:
    assert fast_batch(dumps(batch(raw))) is None


@pytest.mark.parametrize(
    "changes",
    [{"v": 2}, {"sent": 1_700_000_000}, {"sent": "1999-01-01T00:00:00Z"}, {"readings": []}],
)
def test_a_bad_envelope_leaves_the_fast_path(changes: dict[str, Any]) -> None:
    payload = dumps(batch(**changes))
    assert fast_batch(payload) is None
    with pytest.raises(WireError):
        parse_batch(payload)


def test_repeated_seq_and_repeated_flags_leave_the_fast_path() -> None:
    assert fast_batch(dumps(batch(reading(seq=1), reading(seq=1)))) is None
    assert fast_batch(dumps(batch(reading(flags=["late", "late"])))) is None
    assert fast_batch(dumps(batch(reading(flags=["late", "no_contact"])))) is not None


_field = st.sampled_from(sorted(reading().keys()))
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.from_regex(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", fullmatch=True
    ),
    st.lists(st.sampled_from(["late", "no_contact", "questionable", "x"]), max_size=3),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_field, _junk), min_size=1, max_size=3), st.booleans())
def test_mutated_readings_are_never_accepted_wrongly(
    mutations: list[tuple[str, Any]], beside_a_good_one: bool
) -> None:
    raw = reading(seq=2)
    for key, value in mutations:
        raw[key] = value
    readings = [reading(seq=1), raw] if beside_a_good_one else [raw]
    assert_same(dumps(batch(*readings)))


def test_reading_model_and_record_agree_on_an_offset_time() -> None:
    payload = dumps(batch(reading(time="2026-11-24T06:00:00+01:00")))
    fast = fast_batch(payload)
    assert fast is not None
    assert fast.time_ns[0] == Reading.model_validate(reading()).time_ns
    assert_same(payload)
