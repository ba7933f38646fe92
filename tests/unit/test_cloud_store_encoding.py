"""The store's pure parts: the key's timestamp, line protocol and InfluxQL quoting."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.errors import StoreValueError
from cloud.store.base import (
    SEQ_SLOTS,
    StoredReading,
    check_identifier,
    datetime_from_ns,
    flags_from_text,
    flags_text,
    ns_from_datetime,
    storage_time_ns,
)
from cloud.store.influxql import quote_identifier, quote_string
from cloud.store.lineprotocol import (
    LineEncoder,
    escape_field_string,
    escape_measurement,
    escape_tag,
    format_float,
)
from vitals.metrics import Metric
from vitals.wire import Quality, Reading

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T0_NS = 1_709_294_400_123_456_000


def stored(**changes: object) -> StoredReading:
    base = StoredReading(
        site="oak-house",
        resident="r01",
        device="r01-hr",
        metric=Metric.HEART_RATE,
        user=None,
        time_ns=T0_NS + 42,
        value=72.0,
        seq=42,
        gateway="gw-01",
        flags=(),
        received_ns=T0_NS + 1_000_000,
    )
    return base._replace(**changes)  # type: ignore[arg-type]


# -- the key's timestamp -----------------------------------------------------------------


def test_ns_conversions_are_exact() -> None:
    assert ns_from_datetime(T0) == T0_NS
    assert datetime_from_ns(T0_NS + 999) == T0
    with pytest.raises(StoreValueError, match="naive"):
        ns_from_datetime(T0.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("measured", "seq", "expected"),
    [
        (T0_NS, 0, T0_NS),
        (T0_NS, 1, T0_NS + 1),
        (T0_NS, 999, T0_NS + 999),
        (T0_NS, 1000, T0_NS),
        (T0_NS, 123_456_789, T0_NS + 789),
        (T0_NS + 5, 7, T0_NS + 7),  # sub-µs digits never come from the wire; replaced
    ],
)
def test_storage_time_fills_the_sub_microsecond_digits_from_seq(
    measured: int, seq: int, expected: int
) -> None:
    assert storage_time_ns(measured, seq) == expected


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    seq=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_storage_time_keeps_the_measurement_time_and_is_deterministic(
    moment: datetime, seq: int
) -> None:
    stamp = storage_time_ns(ns_from_datetime(moment), seq)
    assert datetime_from_ns(stamp) == moment
    assert stamp % SEQ_SLOTS == seq % SEQ_SLOTS
    assert stamp == storage_time_ns(ns_from_datetime(moment), seq)  # redelivery: same point


def test_rr_intervals_of_one_notification_get_distinct_points() -> None:
    seqs = range(5000, 5009)
    assert len({storage_time_ns(T0_NS, seq) for seq in seqs}) == len(seqs)


def test_stored_reading_from_a_wire_reading() -> None:
    reading = Reading(
        gateway="gw-01",
        device="r01-bp",
        user=2,
        metric=Metric.SYSTOLIC_BP,
        value=131,
        unit="mm[Hg]",
        time=T0,
        received=T0 + timedelta(seconds=1),
        seq=1_000_017,
        flags=(Quality.MOVEMENT,),
    )

    result = StoredReading.from_reading("oak-house", "r01", reading)

    assert result == StoredReading(
        site="oak-house",
        resident="r01",
        device="r01-bp",
        metric=Metric.SYSTOLIC_BP,
        user=2,
        time_ns=T0_NS + 17,
        value=131,
        seq=1_000_017,
        gateway="gw-01",
        flags=(Quality.MOVEMENT,),
        received_ns=T0_NS + 1_000_000_000,
    )
    assert result.time == T0
    assert result.received == T0 + timedelta(seconds=1)
    assert result.key == ("oak-house", "r01", "r01-bp", Metric.SYSTOLIC_BP, 2, T0_NS + 17)


def test_flags_text_round_trips_and_drops_unknown_flags() -> None:
    flags = (Quality.LATE, Quality.IRREGULAR_PULSE)
    assert flags_text(flags) == "late,irregular_pulse"
    assert flags_from_text("late,irregular_pulse") == flags
    assert flags_from_text("") == ()
    assert flags_from_text(None) == ()
    assert flags_from_text("late,nonsense") == (Quality.LATE,)


@pytest.mark.parametrize("bad", ["", "a\\b", "line\nbreak", "tab\there", "nul\x00", "x" * 257])
def test_identifiers_the_store_cannot_hold(bad: str) -> None:
    with pytest.raises(StoreValueError):
        check_identifier(bad, "resident")


# -- line protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a b", r"a\ b"),
        ("a,b", r"a\,b"),
        ("a=b", r"a\=b"),
        ('q"uote', 'q"uote'),
        ("o'brien", "o'brien"),
        ("€", "€"),
    ],
)
def test_escape_tag(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped


def test_escape_measurement_and_field_strings() -> None:
    assert escape_measurement("my vitals,x=1") == r"my\ vitals\,x=1"
    assert escape_field_string('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert escape_field_string("") == '""'


@pytest.mark.parametrize(
    ("value", "text"),
    [(72, "72.0"), (72.0, "72.0"), (36.6, "36.6"), (1e-05, "1e-05"), (0.0, "0.0"), (1e21, "1e+21")],
)
def test_floats_are_always_written_as_floats(value: float, text: str) -> None:
    assert format_float(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(StoreValueError):
        format_float(value)


def test_line_schema() -> None:
    encoder = LineEncoder()

    plain = encoder.line(stored())
    shared = encoder.line(stored(user=3, flags=(Quality.LATE, Quality.NO_CONTACT)))

    assert plain == (
        "vitals,device=r01-hr,metric=heart_rate,resident=r01,site=oak-house "
        'value=72.0,seq=42i,gateway="gw-01",flags="",received=1709294400124456000i '
        "1709294400123456042"
    )
    assert shared.startswith(
        "vitals,device=r01-hr,metric=heart_rate,resident=r01,site=oak-house,user=3 "
    )
    assert 'flags="late,no_contact"' in shared


def test_line_escapes_odd_identifiers() -> None:
    line = LineEncoder().line(stored(site="Oak House", resident="o'b,=x", gateway='g"w'))
    assert line.startswith(
        r"vitals,device=r01-hr,metric=heart_rate,resident=o'b\,\=x,site=Oak\ House "
    )
    assert 'gateway="g\\"w"' in line


def test_encode_refuses_per_reading() -> None:
    good, bad = stored(), stored(resident="back\\slash")

    readings, lines, rejected = LineEncoder().encode([good, bad, good])

    assert readings == [good, good]
    assert len(lines) == 2
    assert [r.reading for r in rejected] == [bad]
    assert "resident" in rejected[0].reason


_UNESCAPED_SEPARATOR = re.compile(r"(?<!\\)[ ,=]")


def _unescape_tag(text: str) -> str:
    return re.sub(r"\\([ ,=])", r"\1", text)


@given(
    value=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\"),
        min_size=1,
        max_size=40,
    )
)
def test_tag_escaping_round_trips(value: str) -> None:
    escaped = escape_tag(value)
    assert _UNESCAPED_SEPARATOR.search(escaped) is None  # no bare separator is left
    assert _unescape_tag(escaped) == value


# -- InfluxQL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("r01", "'r01'"),
        ("o'brien", r"'o\'brien'"),
        ("' OR '1'='1", r"'\' OR \'1\'=\'1'"),
        ("back\\slash", r"'back\\slash'"),
        ('dq"', "'dq\"'"),
    ],
)
def test_quote_string(raw: str, quoted: str) -> None:
    assert quote_string(raw) == quoted


def test_quote_identifier() -> None:
    assert quote_identifier("vitals") == '"vitals"'
    assert quote_identifier('my "db"') == r'"my \"db\""'
    assert quote_identifier("a\\b") == r'"a\\b"'
