"""The reading store's contract, run against every implementation: the real InfluxDB (1.6.7,
from the harness) and the embedded SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.errors import StoreUnavailableError, StoreValueError
from cloud.store import InfluxStore, ReadingStore, SqliteStore, StoredReading, storage_time_ns
from cloud.store.base import ns_from_datetime
from tests.harness import InfluxDBServer
from vitals.metrics import Metric
from vitals.wire import Quality

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SITE = "oak-house"


def reading(
    *,
    resident: str = "r01",
    device: str = "r01-hr",
    metric: Metric = Metric.HEART_RATE,
    value: float = 72.0,
    at: datetime = T0,
    seq: int = 1,
    user: int | None = None,
    site: str = SITE,
    gateway: str = "gw-01",
    flags: tuple[Quality, ...] = (),
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
        received_ns=measured + 250_000_000,
    )


@pytest.fixture(params=["influxdb", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadingStore]:
    if request.param == "influxdb":
        server: InfluxDBServer = request.getfixturevalue("influxdb")
        database: str = request.getfixturevalue("influx_db")
        async with InfluxStore(server.url, database) as influx:
            yield influx
    else:
        async with SqliteStore(tmp_path / "vitals.sqlite3") as sqlite:
            yield sqlite


async def test_write_and_read_back_every_field(store: ReadingStore) -> None:
    written = [
        reading(seq=1, flags=(Quality.LATE, Quality.NO_CONTACT)),
        reading(seq=2, at=T0 + timedelta(seconds=1), value=73.5),
        reading(
            seq=3,
            device="r01-bp",
            metric=Metric.SYSTOLIC_BP,
            value=128.0,
            user=1,
            flags=(Quality.MOVEMENT,),
        ),
    ]

    result = await store.write(written)

    assert result.written == 3
    assert result.rejected == ()
    hr = await store.window(SITE, "r01", Metric.HEART_RATE, T0, T0 + timedelta(minutes=1))
    bp = await store.window(SITE, "r01", Metric.SYSTOLIC_BP, T0, T0 + timedelta(minutes=1))
    assert hr == written[:2]
    assert bp == [written[2]]
    assert hr[0].time == T0  # the seq part of the timestamp never shows in the time
    assert hr[0].received == T0 + timedelta(milliseconds=250)
    assert await store.count(SITE) == 3


async def test_writing_the_same_readings_again_overwrites_them(store: ReadingStore) -> None:
    batch = [reading(seq=n, at=T0 + timedelta(seconds=n), value=60.0 + n) for n in range(50)]

    for _ in range(3):  # a message delivered three times
        await store.write(batch)
    await store.write(batch[10:20])  # and a batch that overlaps it

    assert await store.count(SITE) == 50
    window = await store.window(SITE, "r01", Metric.HEART_RATE, T0, T0 + timedelta(hours=1))
    assert window == batch


async def test_the_last_write_of_a_key_wins(store: ReadingStore) -> None:
    await store.write([reading(value=72.0, gateway="gw-01")])
    await store.write([reading(value=75.0, gateway="gw-02", flags=(Quality.LATE,))])

    [stored] = await store.window(SITE, "r01", Metric.HEART_RATE, T0, T0 + timedelta(1))
    assert (stored.value, stored.gateway, stored.flags) == (75.0, "gw-02", (Quality.LATE,))
    assert await store.count(SITE) == 1


async def test_readings_sharing_a_timestamp_stay_apart(store: ReadingStore) -> None:
    # The RR intervals of one heart-rate notification share its receive time; consecutive
    # seqs keep them apart. Two users of one shared (unassigned) cuff do not collide either.
    rr = [reading(metric=Metric.RR_INTERVAL, value=0.8 + n / 100, seq=1000 + n) for n in range(5)]
    cuff = [
        reading(resident="unassigned", device="bp-shared", metric=Metric.SYSTOLIC_BP,
                value=120.0 + user, user=user, seq=7)
        for user in (1, 2)
    ]  # fmt: skip

    await store.write(rr + cuff)
    await store.write(rr)

    window = await store.window(SITE, "r01", Metric.RR_INTERVAL, T0, T0 + timedelta(1))
    assert [r.value for r in window] == pytest.approx([0.8, 0.81, 0.82, 0.83, 0.84])
    assert {r.time for r in window} == {T0}
    shared = await store.window(SITE, "unassigned", Metric.SYSTOLIC_BP, T0, T0 + timedelta(1))
    assert sorted((r.user, r.value) for r in shared) == [(1, 121.0), (2, 122.0)]


async def test_latest_per_resident_and_metric(store: ReadingStore) -> None:
    await store.write(
        [
            reading(resident="r01", value=70.0, seq=1, at=T0),
            reading(resident="r01", value=71.0, seq=2, at=T0 + timedelta(minutes=1)),
            reading(resident="r01", metric=Metric.SPO2, device="r01-spo2", value=96.0, seq=3),
            reading(resident="r02", device="r02-hr", value=80.0, seq=4, at=T0),
            reading(resident="r02", device="r02-hr", value=81.0, seq=5,
                    at=T0 + timedelta(minutes=2)),
            reading(site="other-home", resident="r01", value=99.0, seq=6,
                    at=T0 + timedelta(hours=1)),
        ]
    )  # fmt: skip

    latest = await store.latest(SITE)
    one = await store.latest(SITE, "r02")
    recent = await store.latest(SITE, since=T0 + timedelta(seconds=90))

    assert [(r.resident, r.metric, r.value) for r in latest] == [
        ("r01", Metric.HEART_RATE, 71.0),
        ("r01", Metric.SPO2, 96.0),
        ("r02", Metric.HEART_RATE, 81.0),
    ]
    assert latest[0].seq == 2
    assert latest[0].device == "r01-hr"
    assert [(r.resident, r.value) for r in one] == [("r02", 81.0)]
    assert [(r.resident, r.value) for r in recent] == [("r02", 81.0)]
    assert await store.latest("nobody-home") == []


async def test_window_is_half_open_ordered_and_limited(store: ReadingStore) -> None:
    batch = [reading(seq=n, at=T0 + timedelta(seconds=10 * n), value=float(n)) for n in range(10)]
    await store.write(list(reversed(batch)))

    start, end = T0 + timedelta(seconds=20), T0 + timedelta(seconds=60)
    window = await store.window(SITE, "r01", Metric.HEART_RATE, start, end)
    limited = await store.window(SITE, "r01", Metric.HEART_RATE, T0, end, limit=3)
    other = await store.window(SITE, "r01", Metric.SPO2, T0, end)

    assert [r.value for r in window] == [2.0, 3.0, 4.0, 5.0]
    assert [r.value for r in limited] == [0.0, 1.0, 2.0]
    assert other == []


async def test_downsampled_history(store: ReadingStore) -> None:
    # One reading every 10 s for 30 minutes: values 0..179.
    batch = [reading(seq=n, at=T0 + timedelta(seconds=10 * n), value=float(n)) for n in range(180)]
    await store.write(batch)

    buckets = await store.history(
        SITE,
        "r01",
        Metric.HEART_RATE,
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=25),
        every=timedelta(minutes=10),
    )

    # Intervals are aligned to multiples of 10 min since the epoch, so the first one starts
    # before the window does (and holds only what lies inside the window).
    assert [b.start for b in buckets] == [
        T0,
        T0 + timedelta(minutes=10),
        T0 + timedelta(minutes=20),
    ]
    assert [(b.minimum, b.maximum, b.count) for b in buckets] == [
        (30.0, 59.0, 30),
        (60.0, 119.0, 60),
        (120.0, 149.0, 30),
    ]
    assert [b.mean for b in buckets] == pytest.approx([44.5, 89.5, 134.5])
    empty = await store.history(
        SITE, "r01", Metric.SPO2, T0, T0 + timedelta(hours=1), every=timedelta(minutes=1)
    )
    assert empty == []


@pytest.mark.parametrize(
    "odd",
    [
        "a b",
        "comma,equals=space ",
        'double"quote',
        "o'brien",
        "' OR '1'='1",
        "unicode-€-ü-日本",
        "#hash $dollar %percent",
        "-leading-dash",
        "select",
    ],
)
async def test_odd_identifiers_round_trip(store: ReadingStore, odd: str) -> None:
    stored = reading(site=odd, resident=odd, device=odd, gateway=odd)
    control = reading(site=odd, resident="r01", seq=2)

    result = await store.write([stored, control])

    assert result.rejected == ()
    window = await store.window(odd, odd, Metric.HEART_RATE, T0, T0 + timedelta(1))
    assert window == [stored]
    assert [r.resident for r in await store.latest(odd)] == sorted([odd, "r01"])
    assert await store.count(odd, odd) == 1
    buckets = await store.history(
        odd, odd, Metric.HEART_RATE, T0, T0 + timedelta(1), every=timedelta(hours=1)
    )
    assert [b.count for b in buckets] == [1]


async def test_identifiers_the_store_cannot_hold_are_refused(store: ReadingStore) -> None:
    good = reading(seq=1)
    backslash = reading(resident="back\\slash", seq=2)
    newline = reading(device="new\nline", seq=3)
    empty = reading(gateway="", seq=4)

    result = await store.write([good, backslash, newline, empty])

    assert result.written == 1
    assert [r.reading for r in result.rejected] == [backslash, newline, empty]
    assert all("resident" in r.reason or "device" in r.reason or "gateway" in r.reason
               for r in result.rejected)  # fmt: skip
    with pytest.raises(StoreValueError):
        await store.latest(SITE, "back\\slash")
    with pytest.raises(StoreValueError):
        await store.window(SITE, "r01", Metric.HEART_RATE, T0.replace(tzinfo=None), T0)
    assert await store.count(SITE) == 1


async def test_a_large_write(store: ReadingStore) -> None:
    batch = [
        reading(seq=n, at=T0 + timedelta(milliseconds=n))._replace(value=float(n % 200))
        for n in range(5000)
    ]

    result = await store.write(batch)

    assert result.written == 5000
    assert await store.count(SITE, "r01", Metric.HEART_RATE) == 5000


async def test_an_unreachable_influxdb_is_unavailable_not_a_refusal() -> None:
    async with InfluxStore("http://127.0.0.1:9", "nowhere", timeout_s=2) as influx:
        with pytest.raises(StoreUnavailableError):
            await influx.write([reading()])
        with pytest.raises(StoreUnavailableError):
            await influx.latest(SITE)


async def test_a_missing_influxdb_database_is_unavailable(
    influxdb: InfluxDBServer,
) -> None:
    async with InfluxStore(influxdb.url, "no_such_database") as influx:
        with pytest.raises(StoreUnavailableError) as write:
            await influx.write([reading()])
        with pytest.raises(StoreUnavailableError):
            await influx.count(SITE)
    assert write.value.status == 404


async def test_influxdb_refusals_come_back_per_reading(
    influxdb: InfluxDBServer, influx_db: str
) -> None:
    # A point whose 'value' is an integer fixes the field's type for its shard (one week of
    # 2001): our float values for that week are refused, the others are stored.
    conflict = datetime(2001, 1, 3, tzinfo=UTC)
    influxdb.write_lines(
        influx_db,
        f"vitals,site={SITE},resident=r09,device=x,metric=heart_rate value=1i "
        f"{ns_from_datetime(conflict)}",
    )
    good = [reading(seq=n, at=T0 + timedelta(seconds=n)) for n in range(20)]
    bad = [reading(seq=100 + n, at=conflict + timedelta(seconds=n)) for n in range(3)]
    batch = good[:7] + bad[:1] + good[7:15] + bad[1:] + good[15:]

    async with InfluxStore(influxdb.url, influx_db) as influx:
        result = await influx.write(batch)
        all_bad = await influx.write(bad)

    assert result.written == 20
    assert sorted(r.reading.seq for r in result.rejected) == [100, 101, 102]
    assert all("field type conflict" in r.reason for r in result.rejected)
    assert len(all_bad.rejected) == 3
    rows = influxdb.query_rows(influx_db, "SELECT count(value) FROM vitals WHERE resident='r01'")
    assert rows[0]["count"] == 20
