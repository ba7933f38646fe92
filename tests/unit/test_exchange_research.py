"""Pseudonymised research export: no names or ids in clear, keyed pseudonyms, refused short
keys, time coarsening and date shifts, and CSV that reads back to the stored values."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.exchange import (
    COLUMNS,
    MIN_KEY_BYTES,
    PSEUDONYM_HEX,
    ExchangeKeyError,
    ExchangeValueError,
    Pseudonymiser,
    research_csv,
    write_research_csv,
)
from cloud.store.base import StoredReading, flags_from_text, ns_from_datetime, storage_time_ns
from firmware_sim.site import load_site
from vitals.metrics import Metric
from vitals.wire import Quality

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
T0 = datetime(2024, 3, 1, 8, 0, 0, 250_000, tzinfo=UTC)
HEX = re.compile(f"[0-9a-f]{{{PSEUDONYM_HEX}}}")


def reading(
    metric: Metric = Metric.HEART_RATE,
    value: float = 72.0,
    *,
    site: str = "oak-house",
    resident: str = "r01",
    device: str = "r01-hr",
    gateway: str = "oak-house-gw1",
    at: datetime = T0,
    seq: int = 1,
    flags: tuple[Quality, ...] = (),
    user: int | None = None,
) -> StoredReading:
    measured = ns_from_datetime(at)
    return StoredReading(
        site=site,
        resident=resident,
        device=device,
        metric=metric,
        user=user,
        time_ns=storage_time_ns(measured, seq),
        value=value,
        seq=seq,
        gateway=gateway,
        flags=flags,
        received_ns=measured + 2_000_000,
    )


def rows(data: bytes) -> list[dict[str, str]]:
    text = data.decode()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def a_value(metric: Metric) -> float:
    info = metric.info
    return (info.minimum + info.maximum) / 2


def test_no_name_or_id_of_the_demo_home_appears_in_the_export() -> None:
    site = load_site(SEEDS / "oak-house.toml")
    gateway = f"{site.id}-gw1"
    readings = [
        reading(
            metric,
            a_value(metric),
            site=site.id,
            resident=resident.id,
            device=device.id,
            gateway=gateway,
            seq=index,
            user=device.user_id,
            at=T0 + timedelta(seconds=index),
        )
        for index, (resident, device) in enumerate(site.devices())
        for metric in Metric
    ]

    text = research_csv(readings, key=KEY).decode()

    assert len(rows(text.encode())) == len(readings)
    secrets = {site.id, site.name, gateway}
    for resident in site.residents:
        assert resident.name is not None  # the demo home names every resident
        secrets |= {resident.name, *resident.name.split(), resident.id}
        secrets |= {device.id for device in resident.devices}
    lowered = text.lower()
    leaked = sorted(secret for secret in secrets if secret.lower() in lowered)
    assert leaked == []
    assert len(secrets) > 12 * 4  # names, name parts, resident and device ids were checked


def test_pseudonyms_are_hmac_digests_stable_per_key() -> None:
    readings = [
        reading(resident="r01", device="r01-hr"),
        reading(resident="r02", device="r02-hr", seq=2),
        reading(resident="r01", device="r01-bp", seq=3, metric=Metric.SYSTOLIC_BP, value=130),
    ]

    first = rows(research_csv(readings, key=KEY))
    again = rows(research_csv(readings, key=KEY))

    assert first == again
    for row in first:
        assert HEX.fullmatch(row["site"])
        assert HEX.fullmatch(row["resident"])
        assert HEX.fullmatch(row["device"])
    assert first[0]["resident"] == first[2]["resident"] != first[1]["resident"]
    assert first[0]["device"] != first[2]["device"]
    assert len({row["site"] for row in first}) == 1
    pseudonyms = Pseudonymiser(KEY)
    assert first[0]["site"] == pseudonyms.site("oak-house")
    assert first[1]["resident"] == pseudonyms.resident("oak-house", "r02")
    assert first[2]["device"] == pseudonyms.device("oak-house", "r01-bp")


def test_the_pseudonym_is_hmac_sha256_of_the_documented_text() -> None:
    import hashlib
    import hmac

    expected = hmac.new(KEY, b"resident:oak-house/r01", hashlib.sha256).hexdigest()[:16]

    assert Pseudonymiser(KEY).resident("oak-house", "r01") == expected


def test_pseudonyms_differ_between_keys() -> None:
    readings = [reading(resident=f"r{i:02}", device=f"r{i:02}-hr", seq=i) for i in range(20)]

    mine = rows(research_csv(readings, key=KEY))
    theirs = rows(research_csv(readings, key=OTHER_KEY))

    for column in ("site", "resident", "device"):
        assert not {row[column] for row in mine} & {row[column] for row in theirs}
    assert [row["value"] for row in mine] == [row["value"] for row in theirs]


def test_the_same_id_at_two_sites_gets_two_pseudonyms() -> None:
    pseudonyms = Pseudonymiser(KEY)

    assert pseudonyms.resident("oak-house", "r01") != pseudonyms.resident("elm-court", "r01")
    assert pseudonyms.device("oak-house", "d1") != pseudonyms.device("elm-court", "d1")
    # a resident, a device and a site of the same name are not linked either
    assert (
        len({pseudonyms.site("x"), pseudonyms.resident("x", "x"), pseudonyms.device("x", "x")}) == 3
    )


@pytest.mark.parametrize("key", [b"", b"short", bytes(MIN_KEY_BYTES - 1)])
def test_a_short_key_is_refused(key: bytes) -> None:
    with pytest.raises(ExchangeKeyError) as caught:
        research_csv([reading()], key=key)
    assert caught.value.length == len(key)
    with pytest.raises(ExchangeKeyError):
        Pseudonymiser(key)


def test_a_key_that_is_not_bytes_is_refused_and_nothing_is_written() -> None:
    out = io.StringIO()
    with pytest.raises(ExchangeKeyError):
        write_research_csv(out, [reading()], key="a text key, long enough")  # type: ignore[arg-type]
    assert out.getvalue() == ""


def test_a_key_of_the_minimum_length_is_accepted() -> None:
    assert len(rows(research_csv([reading()], key=bytes(MIN_KEY_BYTES)))) == 1


def test_columns_and_values() -> None:
    flags = (Quality.QUESTIONABLE, Quality.LATE)
    data = research_csv(
        [
            reading(Metric.SPO2, 94.5, flags=flags, device="r01-spo2"),
            reading(Metric.FALL, 1.0, device="r01-pendant", seq=2),
        ],
        key=KEY,
    )

    assert data.startswith(b"site,resident,device,metric,value,unit,loinc,time,flags\r\n")
    spo2, fall = rows(data)
    assert (spo2["metric"], spo2["value"], spo2["unit"], spo2["loinc"]) == (
        "spo2",
        "94.5",
        "%",
        "2708-6",
    )
    assert spo2["time"] == "2024-03-01T08:00:00.250000Z"
    assert flags_from_text(spo2["flags"]) == flags
    assert (fall["metric"], fall["unit"], fall["loinc"], fall["flags"]) == (
        "fall",
        "{event}",
        "",
        "",
    )


def test_the_gateway_user_seq_and_receive_time_are_not_exported() -> None:
    data = research_csv([reading(gateway="gw-7f3a", user=3, seq=987_654)], key=KEY)

    (row,) = rows(data)
    assert set(row) == set(COLUMNS)
    text = data.decode()
    assert "gw-7f3a" not in text
    assert "987654" not in text
    assert "08:00:00.252" not in text  # the receive time


def test_times_are_coarsened_to_the_resolution() -> None:
    at = datetime(2024, 3, 1, 8, 17, 42, 999_999, tzinfo=UTC)

    (minute,) = rows(research_csv([reading(at=at)], key=KEY, time_resolution=timedelta(minutes=1)))
    (hour,) = rows(research_csv([reading(at=at)], key=KEY, time_resolution=timedelta(hours=1)))
    (tenth,) = rows(
        research_csv([reading(at=at)], key=KEY, time_resolution=timedelta(milliseconds=100))
    )

    assert minute["time"] == "2024-03-01T08:17:00Z"
    assert hour["time"] == "2024-03-01T08:00:00Z"
    assert tenth["time"] == "2024-03-01T08:17:42.900000Z"


@pytest.mark.parametrize("resolution", [timedelta(0), timedelta(minutes=-1)])
def test_a_resolution_that_is_not_positive_is_refused(resolution: timedelta) -> None:
    with pytest.raises(ExchangeValueError, match="time_resolution"):
        research_csv([reading()], key=KEY, time_resolution=resolution)


def test_date_shift_is_off_by_default_and_whole_days_per_resident_when_on() -> None:
    readings = [
        reading(resident=f"r{i:02}", device=f"r{i:02}-hr", at=T0 + timedelta(hours=h), seq=i)
        for i in range(40)
        for h in (0, 5)
    ]

    plain = rows(research_csv(readings, key=KEY))
    shifted = rows(research_csv(readings, key=KEY, max_date_shift_days=30))
    shifted_again = rows(research_csv(readings, key=KEY, max_date_shift_days=30))
    other = rows(research_csv(readings, key=OTHER_KEY, max_date_shift_days=30))

    assert [parse_time(row["time"]) for row in plain] == [r.time for r in readings]
    assert shifted == shifted_again
    shifts: dict[str, set[timedelta]] = {}
    for row, original in zip(shifted, readings, strict=True):
        shift = parse_time(row["time"]) - original.time
        assert shift.seconds == shift.microseconds == 0  # whole days: time of day kept
        assert -30 <= shift.days <= 30
        shifts.setdefault(row["resident"], set()).add(shift)
    assert all(len(found) == 1 for found in shifts.values())  # intervals kept per resident
    assert len({shift for found in shifts.values() for shift in found}) > 10
    other_shifts = [
        parse_time(a["time"]) - parse_time(b["time"]) for a, b in zip(other, shifted, strict=True)
    ]
    assert any(delta != timedelta(0) for delta in other_shifts)  # another key, other shifts


@pytest.mark.parametrize("days", [-1, 3651, True])
def test_a_bad_date_shift_is_refused(days: int) -> None:
    with pytest.raises(ExchangeValueError, match="max_date_shift_days"):
        research_csv([reading()], key=KEY, max_date_shift_days=days)


def test_metrics_can_be_selected() -> None:
    readings = [
        reading(Metric.HEART_RATE, 70),
        reading(Metric.BATTERY_LEVEL, 80, seq=2),
        reading(Metric.SPO2, 95, seq=3),
    ]

    selected = rows(research_csv(readings, key=KEY, metrics={Metric.SPO2, Metric.HEART_RATE}))

    assert [row["metric"] for row in selected] == ["heart_rate", "spo2"]


@pytest.mark.parametrize(
    "bad",
    [
        {"resident": "r/01"},
        {"site": "oak house"},
        {"device": "r01\u00e9"},
    ],
)
def test_an_identifier_outside_the_wire_pattern_is_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ExchangeValueError, match="is not a CareWatch id"):
        research_csv([reading(**bad)], key=KEY)  # type: ignore[arg-type]


def test_the_streaming_writer_writes_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    readings = [reading(seq=i, at=T0 + timedelta(seconds=i), value=60 + i) for i in range(100)]

    with path.open("w", encoding="utf-8", newline="") as out:
        written = write_research_csv(out, readings, key=KEY)

    assert written == 100
    assert path.read_bytes() == research_csv(readings, key=KEY)


IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)


@st.composite
def stored_readings(draw: st.DrawFn) -> StoredReading:
    metric = draw(st.sampled_from(list(Metric)))
    info = metric.info
    value = draw(
        st.floats(min_value=info.minimum, max_value=info.maximum, allow_nan=False, width=64)
    )
    at = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.just(UTC),
        )
    )
    flags = draw(st.lists(st.sampled_from(list(Quality)), unique=True, max_size=3))
    return reading(
        metric,
        value,
        site=draw(IDS),
        resident=draw(IDS),
        device=draw(IDS),
        gateway=draw(IDS),
        at=at,
        seq=draw(st.integers(min_value=0, max_value=2**63 - 1)),
        flags=tuple(flags),
        user=draw(st.none() | st.integers(min_value=0, max_value=254)),
    )


@settings(max_examples=200, deadline=None, print_blob=True)
@given(st.lists(stored_readings(), max_size=20), st.binary(min_size=16, max_size=64))
def test_the_csv_round_trips_the_values(readings: list[StoredReading], key: bytes) -> None:
    parsed = rows(research_csv(readings, key=key))

    pseudonyms = Pseudonymiser(key)
    assert len(parsed) == len(readings)
    for row, original in zip(parsed, readings, strict=True):
        assert row["site"] == pseudonyms.site(original.site)
        assert row["resident"] == pseudonyms.resident(original.site, original.resident)
        assert row["device"] == pseudonyms.device(original.site, original.device)
        assert Metric(row["metric"]) is original.metric
        assert float(row["value"]) == original.value
        assert row["unit"] == original.metric.unit
        assert row["loinc"] == (original.metric.loinc or "")
        assert parse_time(row["time"]) == original.time
        assert flags_from_text(row["flags"]) == original.flags


RESOLUTIONS = [timedelta(seconds=1), timedelta(minutes=1), timedelta(minutes=15), timedelta(days=1)]


@settings(max_examples=100, deadline=None, print_blob=True)
@given(stored_readings(), st.sampled_from(RESOLUTIONS))
def test_coarsened_times_are_the_floor_to_the_resolution(
    original: StoredReading, resolution: timedelta
) -> None:
    (row,) = rows(research_csv([original], key=KEY, time_resolution=resolution))

    time = parse_time(row["time"])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert (time - epoch) % resolution == timedelta(0)
    assert time <= original.time < time + resolution
