"""The wire schema: valid messages round-trip through JSON, every kind of bad input is refused
with a message that names the field, and a bad reading never costs the good ones beside it."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitals import (
    Alert,
    AlertKind,
    AlertState,
    DeadLetter,
    DeviceState,
    GatewayState,
    Metric,
    MetricKind,
    Quality,
    Reading,
    ReadingBatch,
    Severity,
    Status,
    WireError,
    parse_batch,
    parse_message,
)

T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def reading(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "gateway": "gw-1",
        "device": "hr-1",
        "metric": "heart_rate",
        "value": 72,
        "unit": "/min",
        "time": "2026-11-24T05:00:00Z",
        "received": "2026-11-24T05:00:01.250+00:00",
        "seq": 1,
    }
    base.update(changes)
    return base


def batch(*readings: dict[str, Any], **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "site": "oak-house",
        "gateway": "gw-1",
        "sent": "2026-11-24T05:00:02Z",
        "readings": list(readings) or [reading()],
    }
    base.update(changes)
    return base


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- valid messages ----------------------------------------------------------------------


def test_batch_round_trips_through_json() -> None:
    parsed = parse_message(
        ReadingBatch,
        dumps(
            batch(
                reading(),
                reading(seq=2, metric="spo2", value=97, unit="%", user=3, flags=["late"]),
                reading(seq=3, metric="body_temperature", value=36.6, unit="Cel"),
            )
        ),
    )
    assert len(parsed.readings) == 3
    assert parsed.readings[1].flags == (Quality.LATE,)
    assert parsed.readings[1].user == 3
    assert parsed.readings[0].received == T0 + timedelta(seconds=1.25)
    again = parse_message(ReadingBatch, parsed.to_json())
    assert again == parsed


def test_timestamps_are_normalised_to_utc() -> None:
    r = Reading.model_validate(reading(time="2026-11-24T06:00:00+01:00"))
    assert r.time == T0
    assert r.time.tzinfo is UTC
    assert r.time_ns == int(T0.timestamp()) * 1_000_000_000


def test_time_ns_keeps_microseconds_exactly() -> None:
    r = Reading.model_validate(reading(time="2026-11-24T05:00:00.123456Z"))
    assert r.time_ns == int(T0.timestamp()) * 1_000_000_000 + 123_456_000


METRIC_SAMPLES = {
    Metric.HEART_RATE: 64.0,
    Metric.RR_INTERVAL: 0.8,
    Metric.SPO2: 96.0,
    Metric.PULSE_RATE: 70.0,
    Metric.BODY_TEMPERATURE: 36.9,
    Metric.SYSTOLIC_BP: 128.0,
    Metric.DIASTOLIC_BP: 82.0,
    Metric.MEAN_ARTERIAL_PRESSURE: 97.0,
    Metric.BODY_WEIGHT: 71.35,
    Metric.BODY_HEIGHT: 1.62,
    Metric.BMI: 27.2,
    Metric.BLOOD_GLUCOSE: 6.1,
    Metric.RESPIRATORY_RATE: 16.0,
    Metric.BATTERY_LEVEL: 88.0,
    Metric.FALL: 1.0,
    Metric.HELP_BUTTON: 1.0,
    Metric.PROBE: 1.0,
}


def test_every_metric_has_a_sample_value() -> None:
    assert set(METRIC_SAMPLES) == set(Metric)


@pytest.mark.parametrize("metric", list(Metric))
def test_every_metric_is_accepted_in_its_own_unit(metric: Metric) -> None:
    value = METRIC_SAMPLES[metric]
    r = Reading.model_validate(reading(metric=metric.value, unit=metric.unit, value=value))
    assert r.value == value
    assert r.is_event == (metric.kind is MetricKind.EVENT)


def test_status_and_last_will_round_trip() -> None:
    online = Status(
        site="oak-house",
        gateway="gw-1",
        state=GatewayState.ONLINE,
        time=T0,
        uptime_s=3600.5,
        devices=(
            DeviceState(device="hr-1", connected=True, last_seen=T0, battery=80, rssi=-60),
            DeviceState(device="cuff-1", connected=False),
        ),
        outbox_depth=12,
        dropped=0,
        decode_errors=1,
        versions={"carewatch": "0.1.0", "bleak": "3.1.0"},
    )
    assert parse_message(Status, online.to_json()) == online
    assert online.devices_connected == 1
    will = Status(site="oak-house", gateway="gw-1", state=GatewayState.OFFLINE)
    assert json.loads(will.to_json()) == {
        "v": 1,
        "site": "oak-house",
        "gateway": "gw-1",
        "state": "offline",
        "devices": [],
        "versions": {},
    }
    assert parse_message(Status, will.to_json()) == will


def test_alert_round_trips() -> None:
    alert = Alert(
        id="a-1",
        site="oak-house",
        resident="r3",
        device="ox-3",
        rule="spo2_low",
        kind=AlertKind.CLINICAL,
        severity=Severity.URGENT,
        state=AlertState.ACKNOWLEDGED,
        title="SpO2 below 90% for 2 min",
        metric=Metric.SPO2,
        value=88.0,
        opened=T0,
        updated=T0 + timedelta(minutes=3),
        count=2,
        acknowledged_by="staff-7",
        acknowledged_at=T0 + timedelta(minutes=3),
        comment="on my way",
    )
    assert parse_message(Alert, alert.to_json()) == alert
    assert Severity.CRITICAL.rank > Severity.URGENT.rank > Severity.WARNING.rank


def test_dead_letter_round_trips() -> None:
    letter = DeadLetter(
        site="oak-house",
        topic="carewatch/v1/oak-house/gw-1/readings",
        received=T0,
        reason="invalid reading",
        errors=("readings.0.value: Input should be a finite number",),
        payload='{"v": 1}',
    )
    assert parse_message(DeadLetter, letter.to_json()) == letter


# --- bad input --------------------------------------------------------------------------

BAD_READINGS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", reading(colour="red"), "colour: Extra inputs are not permitted"),
    ("wrong unit", reading(unit="bpm"), "unit 'bpm' is wrong for heart_rate: expected '/min'"),
    ("unit of another metric", reading(unit="%"), "expected '/min'"),
    ("NaN", reading(value=float("nan")), "value: Input should be a finite number"),
    ("infinity", reading(value=float("inf")), "value: Input should be a finite number"),
    ("number as text", reading(value="72"), "value: Input should be a valid number"),
    ("out of range high", reading(value=301), "outside the possible range 0..300 /min"),
    ("out of range low", reading(value=-1), "outside the possible range"),
    (
        "SpO2 above 100",
        reading(metric="spo2", unit="%", value=101),
        "outside the possible range 0..100 %",
    ),
    (
        "event value other than 1",
        reading(metric="fall", unit="{event}", value=2),
        "outside the possible range 1..1",
    ),
    ("unknown metric", reading(metric="mood"), "metric: Input should be"),
    ("naive time", reading(time="2026-11-24T05:00:00"), "time: Input should have timezone info"),
    ("unix time", reading(time=1_700_000_000), "time: a timestamp must be an ISO 8601 string"),
    ("unset device clock", reading(time="1970-01-01T00:00:00Z"), "before 2000: an unset clock"),
    (
        "time far after receipt",
        reading(time="2026-11-24T06:00:00Z"),
        "is after the receive time",
    ),
    ("negative seq", reading(seq=-1), "seq: Input should be greater than or equal to 0"),
    ("seq as text", reading(seq="4"), "seq: Input should be a valid integer"),
    ("fractional seq", reading(seq=1.5), "seq: Input should be a valid integer"),
    ("user 255", reading(user=255), "user: Input should be less than or equal to 254"),
    ("topic wildcard in device", reading(device="hr/+"), "device: String should match pattern"),
    ("empty device", reading(device=""), "device: String should match pattern"),
    ("unknown flag", reading(flags=["shiny"]), "flags.0: Input should be"),
    ("repeated flag", reading(flags=["late", "late"]), "flags repeat"),
    (
        "missing value",
        {k: v for k, v in reading().items() if k != "value"},
        "value: Field required",
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [(r, e) for _, r, e in BAD_READINGS], ids=[n for n, _, _ in BAD_READINGS]
)
def test_bad_reading_is_rejected_with_a_readable_message(
    raw: dict[str, Any], expected: str
) -> None:
    with pytest.raises(WireError) as info:
        parse_message(ReadingBatch, dumps(batch(raw)))
    assert any(expected in line for line in info.value.errors), info.value.errors
    assert expected in str(info.value) or len(info.value.errors) > 3


BAD_BATCHES: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{nope", "not JSON"),
    ("not UTF-8", b"\xff\xfe", "not JSON"),
    ("a list", b"[]", "must be a JSON object"),
    ("no version", dumps({k: v for k, v in batch().items() if k != "v"}), "v: Field required"),
    ("version 2", dumps(batch(v=2)), "v: Input should be 1"),
    ("version as text", dumps(batch(v="1")), "v: Input should be 1"),
    ("empty readings", dumps(batch(readings=[])), "readings: Tuple should have at least 1 item"),
    ("site with slash", dumps(batch(site="a/b")), "site: String should match pattern"),
    ("unknown field", dumps(batch(extra=True)), "extra: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(p, e) for _, p, e in BAD_BATCHES],
    ids=[n for n, _, _ in BAD_BATCHES],
)
def test_bad_envelope_is_rejected_whole(payload: bytes, expected: str) -> None:
    with pytest.raises(WireError) as info:
        parse_batch(payload)
    assert any(expected in line for line in info.value.errors), info.value.errors


def test_too_many_readings_are_rejected() -> None:
    many = [reading(seq=i) for i in range(5001)]
    with pytest.raises(WireError, match="at most 5000"):
        parse_batch(dumps(batch(*many)))


def test_strict_batch_refuses_foreign_gateway_and_repeated_seq() -> None:
    with pytest.raises(WireError, match="differs from the batch's gateway"):
        parse_message(ReadingBatch, dumps(batch(reading(gateway="gw-2"))))
    with pytest.raises(WireError, match="share a seq"):
        parse_message(ReadingBatch, dumps(batch(reading(), reading())))


def test_one_bad_reading_never_drops_the_good_ones() -> None:
    raws: list[Any] = [
        reading(seq=1),
        reading(seq=2, value=float("nan")),
        reading(seq=3, metric="spo2", unit="%", value=95),
        reading(seq=4, gateway="gw-9"),
        reading(seq=3),
        reading(seq=5, unit="bpm"),
        "not an object",
        reading(seq=6, value=0),
    ]
    result = parse_batch(dumps(batch(*raws)))
    assert [r.seq for r in result.readings] == [1, 3, 6]
    assert [r.index for r in result.rejected] == [1, 3, 4, 5, 6]
    reasons = {r.index: " ".join(r.errors) for r in result.rejected}
    assert "finite number" in reasons[1]
    assert "is not the batch's gateway" in reasons[3]
    assert "repeats in this batch" in reasons[4]
    assert "expected '/min'" in reasons[5]
    assert "readings.6" in reasons[6]
    assert result.site == "oak-house"
    assert result.gateway == "gw-1"


def test_parse_batch_fast_path_returns_everything() -> None:
    raws = [reading(seq=i, value=60 + i) for i in range(100)]
    result = parse_batch(dumps(batch(*raws)))
    assert len(result.readings) == 100
    assert result.rejected == ()


def test_alert_states_need_their_timestamps() -> None:
    base: dict[str, Any] = {
        "v": 1,
        "id": "a-1",
        "site": "s",
        "rule": "r",
        "kind": "technical",
        "severity": "warning",
        "title": "t",
        "opened": "2026-11-24T05:00:00Z",
        "updated": "2026-11-24T05:00:00Z",
    }
    for state, missing in [
        ("acknowledged", "acknowledged_at"),
        ("resolved", "resolved_at"),
        ("snoozed", "snoozed_until"),
    ]:
        with pytest.raises(WireError, match=missing):
            parse_message(Alert, dumps(dict(base, state=state)))
    with pytest.raises(WireError, match="updated is before opened"):
        parse_message(Alert, dumps(dict(base, state="open", updated="2026-11-24T04:00:00Z")))


# --- property tests ---------------------------------------------------------------------

_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)
_times = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@st.composite
def readings_of(draw: st.DrawFn, gateway: str, seq: int) -> Reading:
    metric = draw(st.sampled_from(list(Metric)))
    info = metric.info
    value = draw(
        st.floats(min_value=info.minimum, max_value=info.maximum, allow_nan=False, width=64)
    )
    received = draw(_times)
    time = received - draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
    return Reading(
        gateway=gateway,
        device=draw(_ids),
        user=draw(st.none() | st.integers(0, 254)),
        metric=metric,
        value=value,
        unit=metric.unit,
        time=max(time, datetime(2000, 1, 1, tzinfo=UTC)),
        received=received,
        seq=seq,
        flags=tuple(draw(st.sets(st.sampled_from(list(Quality))))),
    )


@st.composite
def batches(draw: st.DrawFn) -> ReadingBatch:
    gateway = draw(_ids)
    first = draw(st.integers(0, 2**62))
    count = draw(st.integers(1, 20))
    return ReadingBatch(
        site=draw(_ids),
        gateway=gateway,
        sent=draw(_times),
        readings=tuple(draw(readings_of(gateway, first + i)) for i in range(count)),
    )


@settings(max_examples=200)
@given(batches())
def test_any_valid_batch_round_trips(original: ReadingBatch) -> None:
    assert parse_message(ReadingBatch, original.to_json()) == original
    parsed = parse_batch(original.to_json())
    assert parsed.readings == original.readings
    assert parsed.rejected == ()


@settings(max_examples=300)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_payloads_raise_only_wire_error(payload: bytes) -> None:
    with contextlib.suppress(WireError):
        parse_batch(payload)
