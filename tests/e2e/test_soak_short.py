"""The reliability soak in short (issue 8): 50 residents for two minutes through the real path
(``firmware_sim`` → ``python -m gateway`` → TCP proxy → Mosquitto → ``python -m cloud
ingest`` → InfluxDB) with each fault once: a broker restart, an InfluxDB restart, a SIGKILL of
the ingestor and the gateway cut off from the broker. Nothing delivered over the air may be
lost or stored twice. The latency target (p99 < 500 ms outside the fault windows) is the
benchmark's to report (``python -m bench.soak``), not a test's to assert.

Beside it, without servers: the soak's ledger does see a lost, a doubled and an invented
reading (so the soak's "0 lost, 0 duplicated" can fail), its fault plan fits its period, and
the TCP proxy it cuts does cut (real sockets on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.soak import (
    FaultKind,
    Ledger,
    SoakConfig,
    SoakSetupError,
    StoredPoint,
    expected_readings,
    fault_schedule,
    format_report,
    main,
    run_soak,
)
from firmware_sim.peripheral import Delivery, DeliveryMethod
from tests.harness import poll_until_async
from tests.tcp_proxy import TcpProxy
from vitals.gatt import HEART_RATE_MEASUREMENT, HeartRateMeasurement, encode
from vitals.gatt.uuids import uuid16_to_str

# -- the short soak ---------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.timeout(300)
async def test_short_soak_with_every_fault_loses_and_doubles_nothing(
    tmp_path: Path, mosquitto_binary: Path, influxd_binary: Path
) -> None:
    config = SoakConfig(residents=50, duration_s=120, drain_timeout_s=60)
    report = await run_soak(
        config,
        mosquitto_binary=mosquitto_binary,
        influxd_binary=influxd_binary,
        workdir=tmp_path,
        emit=print,
    )
    text = format_report(report)
    print(text)  # shown when the test fails, and with -s
    accounting = report.accounting
    assert [fault.kind for fault in report.faults] == list(FaultKind), text
    assert accounting.produced >= config.residents, text
    assert accounting.lost == 0, text
    assert accounting.duplicated_seq == 0, text
    assert accounting.unexpected == 0, text
    assert accounting.seq_gaps == 0, text
    assert accounting.stored == accounting.produced, text
    assert report.drained, text
    assert report.outbox_left == 0, text


# -- the ledger, without servers --------------------------------------------------------------

HR = uuid.UUID(uuid16_to_str(HEART_RATE_MEASUREMENT))
T0 = 1_800_000_000.0


def _delivery(device: str, heart_rate: int, rr: int, at: float) -> Delivery:
    payload = encode(HeartRateMeasurement(heart_rate, sensor_contact=True, rr_intervals=(rr,)))
    return Delivery(
        device=device,
        characteristic=HR,
        payload=payload,
        method=DeliveryMethod.NOTIFY,
        sim_time=at,
        measured_at=at,
        wall_time=at,
        central="E0:00:00:00:00:01",
    )


def _stored(seq: int, device: str, metric: str, value: float, received: float) -> StoredPoint:
    ns = int(received * 1e9)
    return StoredPoint("gw-1", seq, device, metric, value, ns + seq % 1000, ns)


def test_ledger_counts_lost_doubled_and_invented_readings() -> None:
    ledger = Ledger()
    deliveries = [_delivery("r1-hr", 70 + n % 3, 800 + n, T0 + n) for n in range(6)]
    for delivery in deliveries:
        ledger.add_delivery(delivery)
    expected = [r for d in deliveries for r in expected_readings(d)]
    assert [r.metric for r in expected[:2]] == ["heart_rate", "rr_interval"]
    assert len(expected) == 12

    stored = [
        _stored(seq, r.device, r.metric, r.value, r.delivered_at + 0.02)
        for seq, r in enumerate(expected, start=1)
    ]
    lost = stored.pop(5)  # never stored
    ledger.add_stored(stored[:6], seen_at=T0 + 10)
    # Seen again by a later poll (same point): nothing new. The same seq as another point
    # (another timestamp): a duplicate. A point no delivery accounts for: invented. A battery
    # level read on connecting: neither.
    ledger.add_stored([*stored[:6], *stored[6:]], seen_at=T0 + 11)
    twin = stored[0]
    ledger.add_stored(
        [
            StoredPoint(twin.gateway, twin.seq, twin.device, twin.metric, twin.value,
                        twin.time_ns + 1_000_000, twin.received_ns),
            _stored(100, "r1-hr", "heart_rate", 99.0, T0 + 2.5),
            _stored(101, "r1-hr", "battery_level", 95.0, T0),
        ],
        seen_at=T0 + 12,
    )  # fmt: skip

    accounting = ledger.accounting(cutoff=T0 + 60)
    assert accounting.deliveries == 6
    assert accounting.produced == 12
    assert accounting.lost == 1
    assert accounting.lost_examples[0].metric == lost.metric
    assert accounting.lost_examples[0].delivered_at == pytest.approx(lost.received - 0.02)
    assert accounting.stored == 11
    assert accounting.duplicated_seq == 1
    assert accounting.unexpected == 1
    assert accounting.duplicated == 2
    assert accounting.gateway_own == 1
    assert (lost.gateway, lost.seq) in accounting.seq_gap_examples
    # Latency: from the delivery to the poll that first saw the point.
    latencies = sorted(lat for _at, lat in ledger.latencies(T0, T0 + 60) if lat is not None)
    assert latencies[0] == pytest.approx(11 - 5)  # delivered at T0 + 5, seen at T0 + 11
    assert latencies[-1] == pytest.approx(10 - 0)  # delivered at T0, seen at T0 + 10
    # A cutoff before the last deliveries counts only what was delivered until then.
    assert ledger.accounting(cutoff=T0 + 1.5).produced == 4


def test_ledger_matches_a_point_seen_before_its_delivery_was_read() -> None:
    ledger = Ledger()
    delivery = _delivery("r2-hr", 64, 900, T0)
    (heart_rate, rr) = expected_readings(delivery)
    ledger.add_stored(
        [
            _stored(1, "r2-hr", "heart_rate", heart_rate.value, T0 + 0.01),
            _stored(2, "r2-hr", "rr_interval", rr.value, T0 + 0.01),
        ],
        seen_at=T0 + 0.3,
    )
    ledger.add_delivery(delivery)
    accounting = ledger.accounting(cutoff=T0 + 1)
    assert (accounting.lost, accounting.unexpected, accounting.stored) == (0, 0, 2)
    assert [lat for _at, lat in ledger.latencies(T0, T0)] == [pytest.approx(0.3)] * 2


def test_ledger_polls_from_the_oldest_reading_not_yet_stored() -> None:
    ledger = Ledger()
    for n in range(3):
        ledger.add_delivery(_delivery("r3-hr", 70, 800, T0 + n))
    assert ledger.horizon(now=T0 + 3) == pytest.approx(T0 - 1)
    first = expected_readings(_delivery("r3-hr", 70, 800, T0))
    ledger.add_stored(
        [_stored(n + 1, "r3-hr", r.metric, r.value, T0 + 0.01) for n, r in enumerate(first)],
        seen_at=T0 + 0.2,
    )
    assert ledger.horizon(now=T0 + 3) == pytest.approx(T0)
    assert ledger.seq_floor("gw-1", now=T0 + 3) == 2


def test_ledger_measures_latency_on_its_sample_and_accounts_for_everyone() -> None:
    ledger = Ledger(sample=frozenset({"r4-hr"}))
    for n, device in enumerate(("r4-hr", "r5-hr")):
        ledger.add_delivery(_delivery(device, 60, 900, T0 + n))
    assert ledger.horizon(now=T0 + 5, sample=True) == pytest.approx(T0 - 1)
    points = [
        _stored(seq, r.device, r.metric, r.value, r.delivered_at + 0.01)
        for seq, r in enumerate(
            [
                r
                for n, d in enumerate(("r4-hr", "r5-hr"))
                for r in expected_readings(_delivery(d, 60, 900, T0 + n))
            ],
            start=1,
        )
    ]
    ledger.add_stored(points[:2], seen_at=T0 + 0.5)  # r4-hr's, by the sample's poll
    assert ledger.horizon(now=T0 + 5, sample=True) == pytest.approx(T0 + 1 - 1)
    ledger.add_stored(points[2:], seen_at=T0 + 3)  # r5-hr's, by the full poll
    assert [lat for _at, lat in ledger.latencies(T0, T0 + 5)] == [pytest.approx(0.5)] * 2
    assert ledger.accounting(cutoff=T0 + 5).stored == 4


@pytest.mark.parametrize("minutes", [2, 3, 10, 60])
def test_fault_plan_has_each_fault_once_apart_and_within_the_period(minutes: int) -> None:
    duration = minutes * 60.0
    plan = fault_schedule(duration)
    assert [fault.kind for fault in plan] == list(FaultKind)
    for before, after in itertools.pairwise(plan):
        assert before.at_s + before.duration_s < after.at_s
    assert plan[-1].at_s + plan[-1].duration_s < duration
    assert fault_schedule(duration, faults=False) == ()


def test_fault_plan_needs_two_minutes() -> None:
    with pytest.raises(ValueError, match="at least two minutes"):
        fault_schedule(90.0)


def test_command_refuses_a_run_too_short_for_its_faults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--residents", "5", "--minutes", "1"])
    assert exited.value.code == 2
    assert "at least two minutes" in capsys.readouterr().err


@pytest.mark.timeout(60)
async def test_a_server_that_does_not_start_is_a_setup_error(tmp_path: Path) -> None:
    not_a_broker = Path("/bin/false")  # starts, and exits at once with status 1
    with pytest.raises(SoakSetupError, match="mosquitto failed to start"):
        await run_soak(
            SoakConfig(residents=1, duration_s=120),
            mosquitto_binary=not_a_broker,
            influxd_binary=not_a_broker,
            workdir=tmp_path,
            emit=lambda _line: None,
        )


# -- the TCP proxy, on real loopback sockets --------------------------------------------------


@contextlib.asynccontextmanager
async def _echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def _round_trip(port: int, message: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(message)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(message)), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.timeout(30)
async def test_proxy_relays_then_cuts_every_connection_and_refuses_new_ones_until_restored() -> (
    None
):
    async with _echo_server() as target, TcpProxy("127.0.0.1", target) as proxy:
        message = uuid.uuid4().bytes
        assert await _round_trip(proxy.port, message) == message
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"

        assert await proxy.cut() == 1
        # The open connection is gone: the next read sees a reset or the end of the stream.
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(10), 5) == b""
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        # A new one is refused, as by a server that is down.
        with pytest.raises(ConnectionRefusedError):
            await _round_trip(proxy.port, message)
        assert proxy.refusing

        await proxy.restore()
        assert await _round_trip(proxy.port, message) == message

        async def relays_gone() -> bool | None:
            return True if proxy.connections == 0 else None

        await poll_until_async(relays_gone, within=5, what="relayed connections closed")
        assert proxy.stats.accepted == 3
        assert proxy.stats.closed_by_cut == 1
        assert proxy.stats.reset_at_once == 0


@pytest.mark.timeout(30)
async def test_proxy_refusing_keeps_open_connections_and_resets_when_the_target_is_down() -> None:
    async with _echo_server() as target, TcpProxy("127.0.0.1", target) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            await _round_trip(proxy.port, b"x")
        writer.write(b"still here")  # the open connection is untouched
        assert await asyncio.wait_for(reader.readexactly(10), 5) == b"still here"
        writer.close()
        await writer.wait_closed()
        await proxy.restore()
        assert await _round_trip(proxy.port, b"back") == b"back"
    # The target is gone now: the proxy accepts and resets at once.
    async with TcpProxy("127.0.0.1", target) as proxy:
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await _round_trip(proxy.port, b"x")
        assert proxy.stats.reset_at_once == 1
