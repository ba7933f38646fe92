"""Outbox throughput beside its baselines, measured in one run.

    .venv/bin/python -m bench.outbox [--seconds 2]

1. Persist: readings/s appended in batches of 500 (one transaction each, WAL,
   synchronous=FULL as the gateway runs it) against a naive outbox that commits every reading
   in its own transaction (same pragmas); the same two with synchronous=NORMAL for scale; and
   the time one 500-reading append holds its caller (why it runs on its own thread).
2. Drain: readings/s from a filled outbox to a real Mosquitto (started with tests.harness)
   through the uplink (batches of 500, 4 in flight, delete after each PUBACK) against a naive
   drain that publishes each reading as its own QoS 1 message, waits for its PUBACK and
   deletes it. Without a mosquitto binary only fetch+delete is measured.

Each phase stops after ``--seconds`` (or its row count), so the whole run is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from gateway.outbox import AsyncOutbox, Entry, Outbox, Retention, Synchronous
from gateway.settings import MqttSettings
from gateway.uplink import Uplink
from tests.harness import MosquittoServer, PollTimeoutError, find_binary, poll_until_async
from vitals.metrics import Metric

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
BATCH = 500


def entries(count: int) -> Iterator[Entry]:
    for n in range(count):
        moment = T0 + timedelta(milliseconds=n)
        yield Entry(
            f"wear-{n % 3}",
            Metric.HEART_RATE,
            float(50 + n % 70),
            moment,
            moment,
            retention=Retention.CONTINUOUS,
        )


def timed(budget: float, step: Callable[[], int]) -> tuple[int, float]:
    """Call ``step`` (which returns how many readings it handled) until ``budget`` seconds
    have passed; return (readings, seconds)."""
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget:
        done += step()
    return done, elapsed


def persist_batched(
    folder: Path, synchronous: Synchronous, budget: float
) -> tuple[float, list[float]]:
    pool = list(entries(BATCH))
    holds: list[float] = []
    with Outbox(
        folder / f"batched-{synchronous}.sqlite3", max_rows=10**8, synchronous=synchronous
    ) as box:

        def step() -> int:
            began = time.perf_counter()
            box.append(pool)
            holds.append(time.perf_counter() - began)
            return BATCH

        count, seconds = timed(budget, step)
    return count / seconds, holds


def persist_naive(folder: Path, synchronous: Synchronous, budget: float) -> float:
    """One transaction per reading: what an outbox without batching does."""
    db = sqlite3.connect(folder / f"naive-{synchronous}.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    db.execute(
        "CREATE TABLE readings (seq INTEGER PRIMARY KEY, device TEXT, metric TEXT, value REAL,"
        " time_us INTEGER, received_us INTEGER, flags TEXT)"
    )
    n = 0

    def step() -> int:
        nonlocal n
        n += 1
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO readings VALUES (?, 'wear-1', 'heart_rate', 70.0, ?, ?, '')", (n, n, n)
        )
        db.execute("COMMIT")
        return 1

    count, seconds = timed(budget, step)
    db.close()
    return count / seconds


def drain_local(folder: Path, rows: int) -> float:
    with Outbox(folder / "drain-local.sqlite3", max_rows=10**8) as box:
        pool = list(entries(BATCH))
        for _ in range(rows // BATCH):
            box.append(pool)
        start = time.perf_counter()
        cursor = 0
        while batch := box.fetch(after=cursor, limit=BATCH, now=T0):
            cursor = batch[-1].seq
            box.delete([row.seq for row in batch])
        return rows / (time.perf_counter() - start)


async def drain_uplink(folder: Path, url: str, rows: int, budget: float) -> float:
    async with AsyncOutbox.open(folder / "drain-uplink.sqlite3", max_rows=10**8) as outbox:
        pool = list(entries(BATCH))
        for _ in range(rows // BATCH):
            await outbox.append(pool)
        uplink = Uplink(
            site="bench",
            gateway="gw-bench",
            outbox=outbox,
            mqtt=MqttSettings.model_validate(
                {"url": url, "batch_size": BATCH, "max_in_flight": 4, "batch_interval_s": 0.05}
            ),
        )
        start = time.perf_counter()
        async with asyncio.TaskGroup() as tasks:
            task = tasks.create_task(uplink.run(), name="uplink")

            async def drained() -> bool | None:
                return True if outbox.depth == 0 else None

            with contextlib.suppress(PollTimeoutError):  # a slow machine: report what went
                await poll_until_async(drained, within=budget * 5, what="drained", every=0.01)
            seconds = time.perf_counter() - start
            task.cancel()
        return (rows - outbox.depth) / seconds


async def drain_naive(folder: Path, host: str, port: int, rows: int, budget: float) -> float:
    """One QoS 1 message per reading, awaited, then that row deleted."""
    with Outbox(folder / "drain-naive.sqlite3", max_rows=10**8) as box:
        pool = list(entries(BATCH))
        for _ in range(rows // BATCH):
            box.append(pool)
        async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            start = time.perf_counter()
            sent = 0
            cursor = 0
            while time.perf_counter() - start < budget:
                rows_now = box.fetch(after=cursor, limit=1, now=T0)
                if not rows_now:
                    break
                row = rows_now[0]
                cursor = row.seq
                payload = json.dumps(row.reading("gw-naive").model_dump(mode="json")).encode()
                await client.publish("carewatch/v1/bench/gw-naive/readings", payload, qos=1)
                box.delete([row.seq])
                sent += 1
            return sent / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per phase")
    parser.add_argument("--drain-rows", type=int, default=50_000)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the files go (the gateway's disk)"
    )
    args = parser.parse_args()
    budget = args.seconds
    print(f"cores: {os.cpu_count()}   sqlite {sqlite3.sqlite_version}   budget {budget:g} s/phase")
    with tempfile.TemporaryDirectory(prefix="carewatch-bench-", dir=args.dir) as tmp:
        folder = Path(tmp)
        print("\n-- persist (append) --")
        for sync in ("full", "normal"):
            batched, holds = persist_batched(folder, sync, budget)
            naive = persist_naive(folder, sync, budget)
            print(
                f"synchronous={sync:<6}  batched x{BATCH}: {batched:>10,.0f} readings/s   "
                f"naive 1/txn: {naive:>8,.0f} readings/s   ratio {batched / naive:,.1f}x"
            )
            p50 = statistics.median(holds) * 1000
            p99 = sorted(holds)[int(len(holds) * 0.99)] * 1000
            print(f"   one {BATCH}-reading append takes p50 {p50:.2f} ms, p99 {p99:.2f} ms")

        print("\n-- drain (fetch + publish + delete after PUBACK) --")
        local = drain_local(folder, args.drain_rows)
        print(f"fetch+delete alone (no network):   {local:>10,.0f} readings/s")
        binary = find_binary("mosquitto")
        if binary is None:
            print("mosquitto not found: broker drain skipped")
            return
        with MosquittoServer(folder / "mosquitto", binary=binary) as broker:
            uplink = asyncio.run(drain_uplink(folder, broker.url, args.drain_rows, budget))
            naive = asyncio.run(
                drain_naive(folder, broker.host, broker.port, args.drain_rows, budget)
            )
        print(f"uplink (x{BATCH}/msg, 4 in flight):  {uplink:>10,.0f} readings/s")
        print(f"naive (1/msg, awaited, 1 delete):  {naive:>10,.0f} readings/s")
        print(f"ratio uplink/naive:                {uplink / naive:>10,.1f}x")


if __name__ == "__main__":
    main()
