"""Reliability soak: N residents at 1 Hz through the real home and cloud path, with faults.

    .venv/bin/python -m bench.soak --residents 200 --minutes 10 [--faults default|none]
        [--seed S] [--poll 0.1] [--share-group G] [--workdir DIR]

**What runs**, all on 127.0.0.1 in one folder (``--workdir``, else a temporary one): a real
Mosquitto and a real InfluxDB (``tests.harness``); ``python -m firmware_sim`` with N residents,
each wearing a wearable (heart rate with RR intervals, and respiratory rate, both at 1 Hz, at
speed 1: real time) and every fifth also a pendant whose help button is pressed once in the
run; ``python -m gateway`` on the Bumble backend with its SQLite outbox, reaching the broker
through a TCP proxy in this process that can be cut (``tests.tcp_proxy``: the home's internet
going down); one ``python -m cloud ingest`` (a plain subscription by default: Mosquitto 2.0.11
does not restore shared ones after a restart, see ``deploy/mosquitto/README.md``) writing to
InfluxDB; and ``python -m cloud alerts`` when it exists. The bench acts as the services'
supervisor: one that exits by itself is started again (and the timeline says so).

**Faults.** Once every device is connected, it measures for ``--minutes`` while it injects,
each once, at times scaled to the run and never before the previous fault's backlog is stored
(``--faults default``): a broker restart (SIGTERM, down 3-10 s, started again on the same port
with its persistence; the proxy refuses meanwhile, so the gateway sees what a direct client
would: a refused connection), an InfluxDB restart (down 20-30 s), a SIGKILL of the ingestor
(started again at once on its persistent session), and the gateway cut off from the broker
(every connection reset, new ones refused: 24 s in a 2-minute run, 2 minutes in a 10-minute
one).

**Accounting.** The simulator's delivery log (``--record``) is the truth of what went over the
air: every delivered payload, decoded with ``vitals.gatt`` and mapped with
``vitals.observations``, gives the readings the gateway must make. Each point stored in
InfluxDB is matched to one of them by (device, metric, value) and the gateway's receive time
(its ``received`` field, within a few seconds of the delivery). *Lost*: delivered before the
end of the measured period and never stored. *Duplicated*: a (gateway, seq) stored as two
different points (another series or timestamp), plus stored points that match no delivery
(battery levels the gateway *reads* on connecting are not notifications: they are counted
apart). A redelivered reading keeps its (gateway, seq) and measurement time, so it lands on
the same series and timestamp and overwrites itself: by design that is not a duplicate, and
the store cannot show it. *Seq gaps*: seqs below the highest stored one that are not stored.

**Latency**, device notification -> point visible in InfluxDB: from the delivery's wall time
in the log to the poll that first returned the point, for a sample of the devices (those of
about 20 residents; all of them in a smaller home): every ``--poll`` seconds the bench asks
for the sample's points measured after its oldest reading not yet seen, so each figure is an
upper bound within one poll period (the measured period is printed). Every device's points are
read every 2 s (those measured after the oldest reading not yet seen, with a seq above the
highest contiguous one seen, and a catch-up query for readings overdue by 10 s): each query
costs InfluxDB 1.6 about 60 us per series it touches, and polling all 1,000 series of 200
residents ten times a second would load the store more than the ingestor does. Readings
delivered from one second before a fault until the path was back (by the services' own log
lines) and every reading delivered until then was visible are *inside* that fault's window;
the rest of the measured period is *outside*. The **baseline** is the measurement's own floor,
taken in the same run: a probe point the bench writes straight to InfluxDB every second, and
how long until the same poller sees it. **To alert**: from a help-button press (the pendant's
delivery) to its ``help`` alert arriving on ``carewatch/v1/{site}/alerts`` (the rule engine
ticks every second).

**Memory and CPU**: peak RSS (``VmHWM``) and CPU time of each process, sampled every second
(a restarted process counts its largest run and the CPU of all its runs). At the end the bench
waits (bounded) until every reading delivered in the measured period is stored, stops the
gateway and the simulator, and reads the whole store back. It prints a timeline, the tables
and ``TARGETS MET`` or ``NOT MET: ...`` (0 lost, 0 duplicated, p99 < 500 ms outside the fault
windows), and leaves ``readings.csv`` (every expected reading with its times and seq),
``poller.log`` and every service's log in the folder. Exit status 0 whatever the figures; 1
when the setup fails (a server or process that does not start), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import csv
import enum
import functools
import itertools
import json
import math
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_sim.firmware import Simulation
from firmware_sim.peripheral import Delivery
from firmware_sim.site import load_site
from tests.harness import (
    InfluxDBServer,
    MosquittoServer,
    PollTimeoutError,
    ServerStartError,
    find_binary,
    poll_until_async,
)
from tests.ingest_driver import ingest_config
from tests.tcp_proxy import TcpProxy
from vitals import topics
from vitals.gatt import decode
from vitals.observations import observations

__all__ = [
    "Accounting",
    "AlertFigures",
    "ExecutedFault",
    "ExpectedReading",
    "FaultKind",
    "FaultOutcome",
    "Latency",
    "Ledger",
    "PlannedFault",
    "ProcessUsage",
    "SoakConfig",
    "SoakError",
    "SoakReport",
    "SoakSetupError",
    "StoredPoint",
    "expected_readings",
    "fault_schedule",
    "format_report",
    "main",
    "run_soak",
]

ROOT: Final = Path(__file__).resolve().parents[1]
SITE: Final = "soak-home"
GATEWAY: Final = "gw-soak"
DATABASE: Final = "carewatch_soak"
MEASUREMENT: Final = "vitals"
PROBE_MEASUREMENT: Final = "soak_probe"

LATENCY_TARGET_S: Final = 0.5
MATCH_TOLERANCE_S: Final = 5.0
"""Longest gap between a delivery and the gateway's receive time of its reading."""
MATCH_EARLY_S: Final = 0.25
"""How much earlier than the logged delivery time the gateway may stamp its receipt (the
simulator logs a delivery just after handing it to the radio)."""
FAULT_LEAD_S: Final = 1.0
"""A fault's window opens this long before the fault: readings then in flight are hit too."""
HORIZON_MARGIN_S: Final = 1.0
OVERDUE_S: Final = 10.0
"""A delivery still unseen when points received this much later are stored is overdue: the
fast poll stops looking for it and a slower catch-up query does."""
CATCH_UP_GIVE_UP_S: Final = 120.0
CATCH_UP_SPAN_S: Final = 60.0
RESTARTS: Final = 5
"""How many times the bench starts a service again that exited by itself."""
RECOVERY_WAIT_S: Final = 30.0
"""Longest a fault waits past its time for the previous one's backlog to be stored."""
FULL_POLL_S: Final = 2.0
"""How often the poller asks for every device's new points (the latency sample's more
often): each query costs InfluxDB 1.6 about 60 us per series it touches."""
LATENCY_SAMPLE: Final = 20
"""About this many residents' devices are the latency sample (all of them up to this)."""
GAP_SKIP_S: Final = 10.0
"""A seq missing this long while later ones are stored no longer holds the poll's seq floor."""
EXAMPLES: Final = 5
_HORIZON_LOOKAHEAD: Final = 2000
"""Pending readings looked at for the earliest time (deliveries arrive in wall-time order, and
a device time is at most seconds older)."""
GATEWAY_OWN_METRICS: Final = frozenset({"battery_level", "probe"})
"""Metrics of readings the gateway may make without a notification: a battery level read on
connecting, an end-to-end probe reading."""
PENDANT_EVERY: Final = 5
"""Every fifth resident also has a pendant, whose help button is pressed once in the run."""

Key = tuple[str, str, float]
"""(device, metric, value rounded to 6 decimals): how a reading is recognised in the store."""


class SoakError(Exception):
    """Root of the soak's errors."""


class SoakSetupError(SoakError):
    """Something the soak needs did not start or is missing (exit status 1)."""


def _key(device: str, metric: str, value: float) -> Key:
    return (device, metric, round(float(value), 6))


# -- the plan ---------------------------------------------------------------------------------


class FaultKind(enum.StrEnum):
    BROKER_RESTART = "broker restart"
    INFLUXDB_RESTART = "influxdb restart"
    INGESTOR_KILL = "ingestor SIGKILL"
    GATEWAY_CUT = "gateway cut off"


@dataclass(frozen=True, slots=True)
class PlannedFault:
    kind: FaultKind
    at_s: float
    """Offset from the start of the measured period."""
    duration_s: float
    """How long the fault lasts (down time, cut time; for the kill, the pause before the
    restart)."""


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def fault_schedule(duration_s: float, *, faults: bool = True) -> tuple[PlannedFault, ...]:
    """Each fault once, scaled to a measured period of ``duration_s`` seconds.

    At 2 minutes: broker down 3 s at 9.6 s, InfluxDB down 20 s at 24 s, ingestor killed at
    54 s, gateway cut 24 s at 72 s (back at 96 s, leaving 24 s to spare for a late start). At
    10 minutes: broker down 10 s at 48 s, InfluxDB 30 s at 120 s, the kill at 270 s and the
    cut 120 s at 360 s."""
    if not faults:
        return ()
    if duration_s < 120:
        raise ValueError("a soak with faults needs at least two minutes to space them")
    return (
        PlannedFault(FaultKind.BROKER_RESTART, 0.08 * duration_s, _clamp(duration_s / 60, 3, 10)),
        PlannedFault(
            FaultKind.INFLUXDB_RESTART, 0.20 * duration_s, _clamp(duration_s / 20, 20, 30)
        ),
        PlannedFault(FaultKind.INGESTOR_KILL, 0.45 * duration_s, 0.5),
        PlannedFault(FaultKind.GATEWAY_CUT, 0.60 * duration_s, _clamp(duration_s / 5, 20, 300)),
    )


# -- the accounting (pure: every time is passed in) -------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedReading:
    """A reading the gateway must make for one delivery."""

    device: str
    metric: str
    value: float
    delivered_at: float
    """Wall time of the delivery (Unix seconds)."""
    measured_at: float | None = None
    """The simulator's time of the measurement (Unix seconds; its clock starts at ``--start``
    and so runs a little behind the wall clock): a reading with a device timestamp is stored
    at about this time, not at its delivery."""

    @property
    def earliest(self) -> float:
        """The earliest time the stored point may carry."""
        if self.measured_at is None:
            return self.delivered_at
        return min(self.delivered_at, self.measured_at)


def expected_readings(delivery: Delivery) -> list[ExpectedReading]:
    """The readings of one delivered payload: its decoded observations whose value is
    physically possible (a payload that does not decode gives none, as in the gateway)."""
    try:
        measurement = decode(delivery.characteristic, delivery.payload)
    except ValueError:
        return []
    return [
        ExpectedReading(
            delivery.device,
            obs.metric.value,
            float(obs.value),
            delivery.wall_time,
            delivery.measured_at,
        )
        for obs in observations(measurement)
        if obs.metric.in_range(obs.value)
    ]


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One point read back from the store."""

    gateway: str
    seq: int
    device: str
    metric: str
    value: float
    time_ns: int
    received_ns: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredPoint:
        return cls(
            gateway=str(row["gateway"]),
            seq=int(row["seq"]),
            device=str(row["device"]),
            metric=str(row["metric"]),
            value=float(row["value"]),
            time_ns=int(row["time"]),
            received_ns=int(row["received"]),
        )

    @property
    def received(self) -> float:
        return self.received_ns / 1e9


class _Slot:
    """Bookkeeping of one expected reading (mutable, internal)."""

    __slots__ = ("matched", "reading", "visible_at")

    def __init__(self, reading: ExpectedReading) -> None:
        self.reading = reading
        self.matched: StoredPoint | None = None
        self.visible_at: float | None = None


@dataclass(frozen=True, slots=True)
class Accounting:
    deliveries: int
    """Payloads delivered over the air up to the end of the measured period."""
    produced: int
    """Readings those deliveries must give."""
    stored: int
    lost: int
    lost_examples: tuple[ExpectedReading, ...]
    duplicated_seq: int
    """(gateway, seq) stored as more than one point."""
    duplicate_examples: tuple[StoredPoint, ...]
    unexpected: int
    """Stored points that match no delivery (the gateway's own readings excepted)."""
    unexpected_examples: tuple[StoredPoint, ...]
    gateway_own: int
    """Readings the gateway makes itself, not from a notification (battery levels it reads on
    connecting, end-to-end probe readings): stored, and not in the delivery log."""
    seq_gaps: int
    """Seqs below the highest stored one that are not stored (per gateway)."""
    seq_gap_examples: tuple[tuple[str, int], ...]
    not_seen_live: int
    """Stored readings the live poll never saw (found by the final read: no latency)."""

    @property
    def duplicated(self) -> int:
        return self.duplicated_seq + self.unexpected


class Ledger:
    """Matches what was delivered over the air with what became visible in the store.

    Feed it deliveries (:meth:`add_delivery`, in log order) and stored points
    (:meth:`add_stored`, with the time the poll saw them, or ``None`` for the final read);
    it tells the poller which time range and seqs to ask for (:meth:`horizon`,
    :meth:`seq_floor`, :meth:`catch_up_range`) and gives the figures (:meth:`accounting`,
    :meth:`latencies`).
    """

    def __init__(self, sample: frozenset[str] | None = None) -> None:
        self.sample = sample
        """The devices whose latency is measured (``None``: all); the poller asks for their
        points often and for everyone's only every ``FULL_POLL_S``."""
        self._slots: list[_Slot] = []
        self._delivered: list[float] = []
        """The slots' delivery times, in order (the log is written in delivery order)."""
        self._unmatched: dict[Key, list[tuple[float, int]]] = collections.defaultdict(list)
        self._orphans: dict[Key, list[tuple[StoredPoint, float | None]]] = collections.defaultdict(
            list
        )
        self._pending: collections.deque[int] = collections.deque()
        self._pending_sample: collections.deque[int] = collections.deque()
        self._overdue: dict[int, float] = {}
        """Slot index -> the time it became overdue."""
        self._points: dict[tuple[str, int], StoredPoint] = {}
        self._duplicates: list[StoredPoint] = []
        self._deliveries: list[float] = []
        self._newest_received = 0.0
        self._newest_delivery: float | None = None
        self._highest: dict[str, int] = {}
        self._floors: dict[str, int] = {}
        self._gap_since: dict[str, tuple[int, float]] = {}

    # -- feeding ---------------------------------------------------------------------------

    def add_delivery(self, delivery: Delivery) -> None:
        self._deliveries.append(delivery.wall_time)
        self._newest_delivery = max(self._newest_delivery or 0.0, delivery.wall_time)
        for reading in expected_readings(delivery):
            index = len(self._slots)
            slot = _Slot(reading)
            self._slots.append(slot)
            self._delivered.append(reading.delivered_at)
            key = _key(reading.device, reading.metric, reading.value)
            orphan = self._take_orphan(key, reading.delivered_at)
            if orphan is not None:
                slot.matched, slot.visible_at = orphan
            else:
                self._unmatched[key].append((reading.delivered_at, index))
                self._pending.append(index)
                if self.sampled(reading.device):
                    self._pending_sample.append(index)

    def sampled(self, device: str) -> bool:
        return self.sample is None or device in self.sample

    def add_stored(self, points: Iterable[StoredPoint], seen_at: float | None) -> int:
        """Record points read from the store; returns how many were new."""
        new = 0
        for point in points:
            known = self._points.get((point.gateway, point.seq))
            if known is not None:
                if known.time_ns != point.time_ns or (known.device, known.metric) != (
                    point.device,
                    point.metric,
                ):
                    self._duplicates.append(point)
                continue
            new += 1
            self._points[(point.gateway, point.seq)] = point
            self._newest_received = max(self._newest_received, point.received)
            if point.seq > self._highest.get(point.gateway, 0):
                self._highest[point.gateway] = point.seq
            key = _key(point.device, point.metric, point.value)
            index = self._take_unmatched(key, point.received)
            if index is None:
                self._orphans[key].append((point, seen_at))
            else:
                slot = self._slots[index]
                slot.matched, slot.visible_at = point, seen_at
                self._overdue.pop(index, None)
        return new

    def _take_unmatched(self, key: Key, received: float) -> int | None:
        """The delivery of a point received at ``received``: the latest unmatched one of
        its key delivered no later than just after ``received`` (and not too long before)."""
        candidates = self._unmatched.get(key)
        if not candidates:
            return None
        position = bisect.bisect_right(candidates, (received + MATCH_EARLY_S, math.inf))
        if position == 0:
            return None
        delivered_at, index = candidates[position - 1]
        if received - delivered_at > MATCH_TOLERANCE_S:
            return None
        del candidates[position - 1]
        return index

    def _take_orphan(
        self, key: Key, delivered_at: float
    ) -> tuple[StoredPoint, float | None] | None:
        """A stored point seen before its delivery was read: the earliest received one in
        the delivery's window."""
        orphans = self._orphans.get(key)
        if not orphans:
            return None
        best: int | None = None
        for position, (point, _seen) in enumerate(orphans):
            lag = point.received - delivered_at
            if -MATCH_EARLY_S <= lag <= MATCH_TOLERANCE_S and (
                best is None or point.received < orphans[best][0].received
            ):
                best = position
        if best is None:
            return None
        return orphans.pop(best)

    # -- what to poll for ------------------------------------------------------------------

    def horizon(self, now: float, *, sample: bool = False) -> float:
        """The poll asks for points measured after this (Unix seconds): a margin before the
        oldest delivery not yet seen in the store (of the sampled devices with ``sample``),
        overdue ones excepted."""
        pending = self._pending_sample if sample else self._pending
        while pending:
            slot = self._slots[pending[0]]
            if slot.matched is not None:
                pending.popleft()
            elif slot.reading.delivered_at < self._newest_received - OVERDUE_S:
                index = pending.popleft()
                if not sample:
                    self._overdue[index] = now
            else:
                break
        if pending:
            # The oldest pending one, or one a little younger with an older device time.
            base = min(
                self._slots[index].reading.earliest
                for index in itertools.islice(pending, _HORIZON_LOOKAHEAD)
            )
        else:
            base = self._newest_delivery if self._newest_delivery is not None else now
        return min(base, now) - HORIZON_MARGIN_S

    def seq_floor(self, gateway: str, now: float) -> int:
        """Every seq of ``gateway`` up to this one has been seen (a gap that has lasted
        ``GAP_SKIP_S`` while later seqs were stored is skipped: the final read decides)."""
        floor = self._floors.get(gateway, 0)
        while True:
            while (gateway, floor + 1) in self._points:
                floor += 1
            highest = self._highest.get(gateway)
            if highest is None or highest <= floor:
                break
            since = self._gap_since.get(gateway)
            if since is None or since[0] != floor + 1:
                self._gap_since[gateway] = (floor + 1, now)
                break
            if now - since[1] < GAP_SKIP_S:
                break
            # Give up on the whole gap for the live poll: jump to the next seq seen.
            floor += 1
            while (gateway, floor + 1) not in self._points and floor < highest:
                floor += 1
        self._floors[gateway] = floor
        return floor

    def catch_up_range(self, now: float) -> tuple[float, float] | None:
        """A time range (Unix seconds) to search without a seq floor for overdue deliveries,
        or ``None`` when there are none (each is given up after ``CATCH_UP_GIVE_UP_S``)."""
        for index, since in list(self._overdue.items()):
            if self._slots[index].matched is not None or now - since > CATCH_UP_GIVE_UP_S:
                del self._overdue[index]
        if not self._overdue:
            return None
        earliest = min(self._slots[i].reading.earliest for i in self._overdue)
        latest = max(self._slots[i].reading.delivered_at for i in self._overdue)
        low = earliest - HORIZON_MARGIN_S
        high = min(latest + MATCH_TOLERANCE_S, low + CATCH_UP_SPAN_S)
        return low, high

    def unmatched_until(self, cutoff: float) -> int:
        """Expected readings delivered up to ``cutoff`` that are not yet seen in the store."""
        return self.unmatched_between(-math.inf, cutoff)

    def unmatched_between(self, since: float, until: float) -> int:
        """Expected readings delivered in [since, until] not yet seen in the store."""
        return sum(1 for slot in self._between(since, until) if slot.matched is None)

    def _between(self, since: float, until: float) -> list[_Slot]:
        low = bisect.bisect_left(self._delivered, since)
        high = bisect.bisect_right(self._delivered, until)
        return self._slots[low:high]

    # -- figures ---------------------------------------------------------------------------

    @property
    def points(self) -> int:
        return len(self._points)

    def state(self, gateway: str) -> str:
        """The poller's view, for its trace."""
        return (
            f"pending={len(self._pending)}/{len(self._pending_sample)} "
            f"overdue={len(self._overdue)} "
            f"floor={self._floors.get(gateway, 0)} highest={self._highest.get(gateway, 0)} "
            f"points={len(self._points)} orphans={sum(map(len, self._orphans.values()))} "
            f"newest_received={self._newest_received:.3f}"
        )

    def accounting(self, cutoff: float) -> Accounting:
        """The figures for everything delivered up to ``cutoff`` (Unix seconds)."""
        counted = [slot for slot in self._slots if slot.reading.delivered_at <= cutoff]
        lost = [slot.reading for slot in counted if slot.matched is None]
        unexpected = [
            point
            for orphans in self._orphans.values()
            for point, _seen in orphans
            if point.metric not in GATEWAY_OWN_METRICS
        ]
        own = sum(
            1
            for orphans in self._orphans.values()
            for point, _seen in orphans
            if point.metric in GATEWAY_OWN_METRICS
        )
        gaps: list[tuple[str, int]] = []
        by_gateway: dict[str, set[int]] = collections.defaultdict(set)
        for gateway, seq in self._points:
            by_gateway[gateway].add(seq)
        for gateway, seqs in sorted(by_gateway.items()):
            gaps.extend((gateway, seq) for seq in range(1, max(seqs)) if seq not in seqs)
        unexpected.sort(key=lambda p: (p.gateway, p.seq))
        return Accounting(
            deliveries=sum(1 for wall in self._deliveries if wall <= cutoff),
            produced=len(counted),
            stored=len(counted) - len(lost),
            lost=len(lost),
            lost_examples=tuple(lost[:EXAMPLES]),
            duplicated_seq=len(self._duplicates),
            duplicate_examples=tuple(self._duplicates[:EXAMPLES]),
            unexpected=len(unexpected),
            unexpected_examples=tuple(unexpected[:EXAMPLES]),
            gateway_own=own,
            seq_gaps=len(gaps),
            seq_gap_examples=tuple(gaps[:EXAMPLES]),
            not_seen_live=sum(
                1 for slot in counted if slot.matched is not None and slot.visible_at is None
            ),
        )

    def latencies(self, since: float, until: float) -> list[tuple[float, float | None]]:
        """(delivered_at, latency or ``None`` when not seen live) of every stored reading of
        the sampled devices delivered in [since, until]."""
        return [
            (
                slot.reading.delivered_at,
                None if slot.visible_at is None else slot.visible_at - slot.reading.delivered_at,
            )
            for slot in self._between(since, until)
            if slot.matched is not None and self.sampled(slot.reading.device)
        ]

    def rows(
        self,
    ) -> Iterator[tuple[str, str, float, float, float | None, int | None, float | None]]:
        """Per expected reading: device, metric, value, delivered_at, visible_at, and the
        stored point's seq and receive time (``None`` when not stored)."""
        for slot in self._slots:
            r, point = slot.reading, slot.matched
            yield (
                r.device,
                r.metric,
                r.value,
                r.delivered_at,
                slot.visible_at,
                None if point is None else point.seq,
                None if point is None else point.received,
            )

    def expected_of(self, metric: str) -> list[ExpectedReading]:
        """Every expected reading of ``metric`` (delivered or not, stored or not)."""
        return [slot.reading for slot in self._slots if slot.reading.metric == metric]

    def backlog_stored_at(self, since: float, until: float) -> float | None:
        """When the last reading of the sampled devices delivered in [since, until] became
        visible (seen live)."""
        seen = [
            slot.visible_at
            for slot in self._between(since, until)
            if slot.visible_at is not None and self.sampled(slot.reading.device)
        ]
        return max(seen) if seen else None


# -- figures ----------------------------------------------------------------------------------


def _percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency percentiles (seconds) of a set of readings."""

    count: int
    """Readings with a measured latency."""
    unseen: int = 0
    """Stored readings whose visibility the live poll did not observe."""
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Latency:
        measured = sorted(v for v in values if v is not None)
        unseen = len(values) - len(measured)
        if not measured:
            return cls(0, unseen)
        return cls(
            count=len(measured),
            unseen=unseen,
            p50=_percentile(measured, 0.50),
            p95=_percentile(measured, 0.95),
            p99=_percentile(measured, 0.99),
            max=measured[-1],
        )


@dataclass(frozen=True, slots=True)
class ExecutedFault:
    kind: FaultKind
    started: float
    """Unix time the fault began."""
    ended: float
    """Unix time it was undone (server answering again, proxy restored, ingestor started)."""
    note: str = ""


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    kind: FaultKind
    at_s: float
    """Offset from the start of the measured period."""
    lasted_s: float
    back_s: float
    """From the end of the fault until the path worked again (by the services' logs)."""
    recovered_s: float
    """From the end of the fault until every reading delivered before the path was back
    was visible: where the fault's window closes."""
    latency: Latency
    """Readings in the fault's window."""
    note: str


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    role: str
    peak_rss_mib: float
    cpu_s: float
    runs: int


@dataclass(frozen=True, slots=True)
class PollStats:
    polls: int
    mean_period_s: float
    p99_period_s: float
    mean_query_s: float
    errors: int
    catch_ups: int


@dataclass(frozen=True, slots=True)
class SoakConfig:
    residents: int = 200
    duration_s: float = 600.0
    """The measured period (after every device is connected)."""
    faults: bool = True
    seed: int = 1
    poll_s: float = 0.1
    share_group: str = ""
    """The ingestor's MQTT share group; "" is a plain subscription, which Mosquitto 2.0.11
    restores after a restart (deploy/mosquitto/README.md)."""
    gateway_batch_interval_s: float = 0.1
    drain_timeout_s: float = 90.0
    connect_timeout_s: float | None = None
    """Default: 60 s + 0.5 s per device."""

    def __post_init__(self) -> None:
        if self.residents < 1:
            raise ValueError("residents must be at least 1")
        if self.duration_s <= 0:
            raise ValueError("the duration must be positive")
        if not 0.01 <= self.poll_s <= 5:
            raise ValueError("poll must be between 0.01 and 5 seconds")


@dataclass(frozen=True, slots=True)
class AlertFigures:
    """Device notification to alert: help-button presses against the alerts they raised."""

    available: bool
    note: str
    presses: int = 0
    """Presses delivered in the measured period."""
    alerted: int = 0
    """Of those, how many got their alert."""
    outside: Latency = Latency(0)
    inside: Latency = Latency(0)
    opened_by_rule: tuple[tuple[str, int], ...] = ()
    """Every alert opened during the run, by rule (the others are the simulated physiology's
    and the faults' own, e.g. a gateway offline)."""


@dataclass(frozen=True, slots=True)
class SoakReport:
    config: SoakConfig
    origin: float
    """Unix time the measured period began."""
    cores: int
    usable_cores: int
    versions: str
    load: tuple[float, float]
    """The machine's 1-minute load average at the start and at the end of the run (other
    work on the machine shares its cores with the soak)."""
    devices: int
    latency_devices: int
    """The devices whose latency is measured (the sample the poller asks for every
    ``poll_s``; everyone's points are read every ``FULL_POLL_S``)."""
    setup_s: float
    measured_s: float
    drain_s: float
    total_s: float
    drained: bool
    outbox_left: int | None
    timeline: tuple[str, ...]
    accounting: Accounting
    outside: Latency
    inside: Latency
    faults: tuple[FaultOutcome, ...]
    planned_faults: int
    floor: Latency
    polls: PollStats
    processes: tuple[ProcessUsage, ...]
    alerts: AlertFigures

    def unmet(self) -> list[str]:
        """The targets not met (empty: all met)."""
        problems = []
        if self.accounting.lost:
            problems.append(f"{self.accounting.lost} readings lost")
        if self.accounting.duplicated:
            problems.append(f"{self.accounting.duplicated} readings duplicated")
        p99 = self.outside.p99
        if p99 is None:
            problems.append("no latency measured outside the fault windows")
        elif p99 >= LATENCY_TARGET_S:
            problems.append(
                f"p99 latency outside fault windows {p99 * 1000:.0f} ms >= "
                f"{LATENCY_TARGET_S * 1000:.0f} ms"
            )
        if len(self.faults) < self.planned_faults:
            problems.append(f"only {len(self.faults)} of {self.planned_faults} faults injected")
        return problems


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds * 1000:,.0f} ms"
    return f"{seconds:,.1f} s"


def _latency_row(label: str, latency: Latency) -> str:
    unseen = f"  (+{latency.unseen:,} not seen)" if latency.unseen else ""
    return (
        f"  {label:<36} {latency.count:>9,} {_duration(latency.p50):>10} "
        f"{_duration(latency.p95):>10} {_duration(latency.p99):>10} "
        f"{_duration(latency.max):>10}{unseen}"
    )


def _reading_text(reading: ExpectedReading, origin: float) -> str:
    return (
        f"{reading.device} {reading.metric}={reading.value:g} delivered at "
        f"{reading.delivered_at - origin:+.1f} s"
    )


def _point_text(point: StoredPoint) -> str:
    return f"{point.gateway}#{point.seq} {point.device} {point.metric}={point.value:g}"


def format_report(report: SoakReport) -> str:
    """The soak's result as text: what ran, the timeline, the table and the verdict."""
    origin = report.origin
    c = report.config
    a = report.accounting
    lines = [
        "",
        f"CareWatch reliability soak: {c.residents} residents ({report.devices} devices: a "
        "wearable each, heart rate + RR intervals and respiratory rate at 1 Hz; a pendant "
        f"for every {PENDANT_EVERY}th), {c.duration_s / 60:g} min measured, "
        f"faults {'default' if c.faults else 'none'}, seed {c.seed}",
        f"machine: {report.cores} cores ({report.usable_cores} usable), load average "
        f"{report.load[0]:.1f} at the start and {report.load[1]:.1f} at the end; "
        f"{report.versions}",
        f"path: firmware_sim -> gateway (Bumble backend, SQLite outbox, batch interval "
        f"{c.gateway_batch_interval_s:g} s) -> TCP proxy -> Mosquitto -> 1 ingestor "
        f"({'plain subscription' if not c.share_group else 'share group ' + c.share_group})"
        f" -> InfluxDB; store polled every {c.poll_s * 1000:.0f} ms",
        f"wall time: setup {report.setup_s:.1f} s, measured {report.measured_s:.1f} s, "
        f"drain {report.drain_s:.1f} s, total {report.total_s:.1f} s",
        "",
        "timeline (offsets from the start of the measured period):",
        *(f"  {line}" for line in report.timeline),
        "",
        "readings (everything delivered up to the end of the measured period):",
        f"  deliveries over the air                {a.deliveries:>12,}",
        f"  readings produced (decoded)            {a.produced:>12,}",
        f"  stored                                 {a.stored:>12,}",
        f"  lost                                   {a.lost:>12,}",
        f"  duplicated                             {a.duplicated:>12,}"
        f"   ((gateway, seq) stored twice: {a.duplicated_seq}; stored but never delivered: "
        f"{a.unexpected})",
        f"  the gateway's own readings             {a.gateway_own:>12,}   (battery levels "
        "read on connecting: not notifications, not in the delivery log)",
        f"  seq gaps in the store                  {a.seq_gaps:>12,}",
        f"  outbox rows of the period left at end  "
        f"{'-' if report.outbox_left is None else f'{report.outbox_left:,}':>12}"
        + ("" if report.drained else "   (the drain timed out)"),
    ]
    lines += [f"    lost: {_reading_text(r, origin)}" for r in a.lost_examples]
    lines += [f"    duplicate: {_point_text(p)}" for p in a.duplicate_examples]
    lines += [f"    never delivered: {_point_text(p)}" for p in a.unexpected_examples]
    lines += [f"    seq gap: {g}#{s}" for g, s in a.seq_gap_examples]
    p = report.polls
    header = f"  {'':<36} {'readings':>9} {'p50':>10} {'p95':>10} {'p99':>10} {'max':>10}"
    lines += [
        "",
        "latency, device notification -> point visible in InfluxDB, of "
        f"{report.latency_devices} of the {report.devices} devices (upper bounds: polled every "
        f"{p.mean_period_s * 1000:.0f} ms measured, p99 {p.p99_period_s * 1000:.0f} ms, "
        f"query {p.mean_query_s * 1000:.0f} ms; every device's points every "
        f"{FULL_POLL_S:g} s; {p.polls:,} polls, {p.errors} failed while InfluxDB was down, "
        f"{p.catch_ups} catch-up queries):",
        header,
        _latency_row("outside fault windows", report.outside),
        _latency_row("inside fault windows", report.inside),
        _latency_row("baseline: bench's probe -> visible", report.floor),
    ]
    if report.outside.p99 is not None and report.floor.p99:
        lines.append(
            f"  ratio p99 outside fault windows / baseline p99: "
            f"{report.outside.p99 / report.floor.p99:.1f}x"
        )
    lines += [
        "",
        f"faults (a window opens {FAULT_LEAD_S:g} s before the fault and closes when the path "
        "is back and every reading delivered until then is visible):",
    ]
    for outcome in report.faults:
        lines += [
            f"  {outcome.kind.value} at {outcome.at_s:+.1f} s, lasted {outcome.lasted_s:.1f} s;"
            f" path back {outcome.back_s:.1f} s after, backlog stored "
            f"{outcome.recovered_s:.1f} s after",
            _latency_row("  readings in its window", outcome.latency),
        ]
    alerts = report.alerts
    lines += ["", f"device notification -> alert: {alerts.note}"]
    if alerts.available:
        lines += [
            f"  {alerts.presses} presses in the measured period, {alerts.alerted} alerted",
            header,
            _latency_row("outside fault windows", alerts.outside),
            _latency_row("inside fault windows", alerts.inside),
            "  alerts opened during the run, by rule: "
            + (", ".join(f"{rule} {count}" for rule, count in alerts.opened_by_rule) or "none"),
        ]
    lines += [
        "",
        "processes (peak RSS = largest VmHWM of any run; CPU over the whole run):",
        f"  {'':<22} {'peak RSS':>10} {'CPU':>9} {'runs':>5}",
    ]
    lines += [
        f"  {u.role:<22} {u.peak_rss_mib:>6.0f} MiB {u.cpu_s:>7.1f} s {u.runs:>5}"
        for u in report.processes
    ]
    unmet = report.unmet()
    lines += [
        "",
        "targets: 0 lost, 0 duplicated, p99 < 500 ms outside fault windows",
        "TARGETS MET" if not unmet else "NOT MET: " + "; ".join(unmet),
    ]
    return "\n".join(lines)


# -- the processes ----------------------------------------------------------------------------


class _Child:
    """A project process (``python -m ...``) with its stdout and stderr in a log file, in a
    session of its own (a Ctrl-C reaches the bench, which stops it)."""

    def __init__(self, role: str, argv: Sequence[str], log: Path) -> None:
        self.role = role
        self.argv = list(argv)
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        self.runs += 1

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def exit_status(self) -> int | None:
        """The status it exited with on its own, ``None`` while it runs (or was stopped)."""
        return None if self._proc is None else self._proc.poll()

    def kill(self) -> int:
        """SIGKILL: a crash."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        proc.kill()
        return proc.wait(timeout=10)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal, wait, SIGKILL if it does not go; the exit status (``None``: not running)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signum)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(timeout=10)
        return proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def _site_toml(config: SoakConfig) -> str:
    """N residents with a wearable each, and a pendant for every ``PENDANT_EVERY``-th whose
    help button is pressed once, the presses spread over the expected measured period (the
    first ``PENDANT_EVERY`` residents' start after the setup's expected length)."""
    residents = config.residents
    pendants = [n for n in range(1, residents + 1) if n % PENDANT_EVERY == 1]
    setup_guess = 5.0 + 0.3 * (residents + len(pendants))
    lines = [
        f'id = "{SITE}"',
        'name = "Soak Home"',
        'timezone = "UTC"',
        f'gateway = "{GATEWAY}"',
        "",
    ]
    for n in range(1, residents + 1):
        rid = f"r{n:04d}"
        devices = [f'{{ id = "{rid}-hr", kind = "wearable", battery = 95 }}']
        if n in pendants:
            devices.append(f'{{ id = "{rid}-pendant", kind = "pendant", battery = 95 }}')
        lines += ["[[residents]]", f'id = "{rid}"', f"devices = [{', '.join(devices)}]", ""]
    for index, n in enumerate(pendants):
        at = setup_guess + (index + 0.5) * config.duration_s / len(pendants)
        lines += [
            "[[scenarios]]",
            'kind = "help_button"',
            f'resident = "r{n:04d}"',
            f'start = "{int(at)}s"',
            "",
        ]
    return "\n".join(lines)


def _gateway_toml(
    folder: Path, simulation: Simulation, hci: str, broker_port: int, config: SoakConfig
) -> str:
    devices = "\n".join(
        f'[[ble.devices]]\nid = "{d.id}"\nkind = "{d.kind.value}"\naddress = "{d.address}"\n'
        f'resident = "{d.resident}"\n'
        for d in simulation.devices
    )
    return (
        f'site = "{SITE}"\ngateway = "{GATEWAY}"\ntimezone = "UTC"\n\n'
        f'[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\n'
        f"batch_interval_s = {config.gateway_batch_interval_s}\n"
        "reconnect_min_s = 0.5\nreconnect_max_s = 5\n\n"
        f'[outbox]\npath = "{folder / "outbox.sqlite3"}"\n\n'
        "[status]\nheartbeat_s = 10\n\n"
        f'[ble]\nbackend = "bumble"\ntransport = "{hci}"\n\n{devices}'
    )


def _outbox_rows(path: Path, until: float) -> int | None:
    """Rows still in the gateway's outbox (read-only) that it received by ``until`` (Unix
    seconds: the end of the measured period; the gateway keeps recording after it, and those
    rows may rightly still be waiting), ``None`` if it cannot be read."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (rows,) = db.execute(
                "SELECT count(*) FROM readings WHERE received_us <= ?", (int(until * 1e6),)
            ).fetchone()
            return int(rows)
    except sqlite3.Error:
        return None


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()
    return text[0] if text else "?"


def _alerts_service() -> bool:
    """Whether ``python -m cloud`` has an ``alerts`` service."""
    done = subprocess.run(
        [sys.executable, "-m", "cloud", "--help"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    return re.search(rb"^\s+alerts\s", done.stdout, re.MULTILINE) is not None


# -- live observation: the delivery log, the store, the processes -----------------------------


class _DeliveryTail:
    """Reads the simulator's delivery log as it grows (whole lines only)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[Delivery]:
        try:
            with self._path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return [Delivery.from_json(json.loads(line)) for line in lines if line.strip()]


class _Usage:
    """Peak RSS and CPU time of each role's processes, sampled from /proc."""

    _TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self._peak_kib: dict[str, int] = collections.defaultdict(int)
        self._cpu: dict[tuple[str, int], float] = {}

    def sample(self, role: str, pid: int | None) -> None:
        if pid is None:
            return
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return  # it has just exited
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self._peak_kib[role] = max(self._peak_kib[role], int(line.split()[1]))
        fields = stat.rsplit(")", 1)[1].split()
        self._cpu[(role, pid)] = (int(fields[11]) + int(fields[12])) / self._TICKS

    def report(self, runs: Mapping[str, int]) -> tuple[ProcessUsage, ...]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        usage = [
            ProcessUsage(
                role=role,
                peak_rss_mib=self._peak_kib[role] / 1024,
                cpu_s=sum(cpu for (r, _pid), cpu in self._cpu.items() if r == role),
                runs=runs.get(role, 1),
            )
            for role in self._peak_kib
        ]
        usage.append(
            ProcessUsage(
                role="bench (ledger, proxy)",
                peak_rss_mib=own.ru_maxrss / 1024,
                cpu_s=own.ru_utime + own.ru_stime,
                runs=1,
            )
        )
        return tuple(usage)


@dataclass(slots=True)
class _PollCounters:
    polls: int = 0
    query_s: float = 0.0
    errors: int = 0
    catch_ups: int = 0
    last: float | None = None
    """When the previous poll succeeded (``None`` after a failed one)."""
    periods: list[float] = field(default_factory=list)
    """Times between consecutive successful polls."""
    probes_written: dict[int, float] = field(default_factory=dict)
    probe_latencies: dict[int, float] = field(default_factory=dict)

    def succeeded(self, at: float, query_s: float) -> None:
        if self.last is not None:
            self.periods.append(at - self.last)
        self.last = at
        self.polls += 1
        self.query_s += query_s

    def failed(self) -> None:
        self.errors += 1
        self.last = None

    def stats(self) -> PollStats:
        periods = sorted(self.periods)
        return PollStats(
            polls=self.polls,
            mean_period_s=sum(periods) / len(periods) if periods else 0.0,
            p99_period_s=_percentile(periods, 0.99) if periods else 0.0,
            mean_query_s=self.query_s / self.polls if self.polls else 0.0,
            errors=self.errors,
            catch_ups=self.catch_ups,
        )


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


_POINT_COLUMNS = "device, metric, value, seq, gateway, received"


def _rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "error" in result:
        raise SoakError(f"InfluxDB refused a query: {result['error']}")
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        columns: list[str] = series["columns"]
        rows.extend(dict(zip(columns, values, strict=True)) for values in series["values"])
    return rows


async def _query(client: httpx.AsyncClient, statements: str) -> list[list[dict[str, Any]]]:
    response = await client.post(
        "/query", params={"db": DATABASE, "epoch": "ns"}, data={"q": statements}
    )
    if response.status_code != httpx.codes.OK:
        raise SoakError(f"InfluxDB query: HTTP {response.status_code}: {response.text[:300]}")
    return [_rows(result) for result in response.json().get("results", [])]


_COLUMNS: Final = ("time", "device", "metric", "value", "seq", "gateway", "received")


def _points(rows: Iterable[Mapping[str, Any]]) -> list[StoredPoint]:
    """The complete rows as points (InfluxDB 1.6 may answer with empty fields while it is
    still loading its shards after a restart: such a row is left for a later poll)."""
    return [
        StoredPoint.from_row(row)
        for row in rows
        if all(row.get(column) is not None for column in _COLUMNS)
    ]


class _Observer:
    """The bench's live loops: tail the delivery log, poll the store, write probes, sample
    the processes. All stop when :attr:`stop` is set."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        tail: _DeliveryTail,
        client: httpx.AsyncClient,
        poll_s: float,
        usage: _Usage,
        roles: Mapping[str, Callable[[], int | None]],
    ) -> None:
        self.ledger = ledger
        self.tail = tail
        self.client = client
        self.poll_s = poll_s
        self.usage = usage
        self.roles = roles
        self.counters = _PollCounters()
        self.stop = asyncio.Event()
        self.trace: list[str] = []
        """One line a second: what the poller asked for and what it knew."""

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()

    def read_deliveries(self) -> int:
        deliveries = self.tail.read()
        for delivery in deliveries:
            self.ledger.add_delivery(delivery)
        return len(deliveries)

    async def tail_loop(self) -> None:
        while not self.stop.is_set():
            self.read_deliveries()
            await self._pause(0.05)

    async def poll_loop(self) -> None:
        """Every ``poll_s``: the latency sample's new points and the probes; every
        ``FULL_POLL_S`` also everyone's (by seq), and a catch-up for overdue readings."""
        ledger = self.ledger
        last_full = last_trace = 0.0
        new = 0
        while not self.stop.is_set():
            began = time.monotonic()
            now = time.time()
            full = ledger.sample is None or began - last_full >= FULL_POLL_S
            statements = [f"SELECT n FROM {PROBE_MEASUREMENT} WHERE time > {_ns(now - 30)}"]
            if ledger.sample is not None:
                devices = "|".join(sorted(re.escape(d) for d in ledger.sample))
                statements.append(
                    f"SELECT {_POINT_COLUMNS} FROM {MEASUREMENT} "
                    f"WHERE time > {_ns(ledger.horizon(now, sample=True))} "
                    f"AND device =~ /^({devices})$/"
                )
            if full:
                horizon = ledger.horizon(now)
                floor = ledger.seq_floor(GATEWAY, now)
                statements.append(
                    f"SELECT {_POINT_COLUMNS} FROM {MEASUREMENT} WHERE time > {_ns(horizon)} "
                    f"AND seq > {floor}"
                )
            try:
                results = await _query(self.client, "; ".join(statements))
            except (httpx.HTTPError, SoakError):
                self.counters.failed()  # InfluxDB is down (a fault): try again
            else:
                seen_at = time.time()
                self._probes_seen(results[0] if results else [], seen_at)
                for rows in results[1:]:
                    new += ledger.add_stored(_points(rows), seen_at)
                self.counters.succeeded(seen_at, time.monotonic() - began)
                if full:
                    last_full = began
                    await self._catch_up()
                if seen_at - last_trace >= 1.0:
                    self.trace.append(f"{seen_at:.3f} new={new} {ledger.state(GATEWAY)}")
                    last_trace, new = seen_at, 0
            await self._pause(max(0.0, self.poll_s - (time.monotonic() - began)))

    def _probes_seen(self, rows: Iterable[Mapping[str, Any]], seen_at: float) -> None:
        c = self.counters
        for row in rows:
            number = int(row["n"])
            written = c.probes_written.get(number)
            if written is not None and number not in c.probe_latencies:
                c.probe_latencies[number] = seen_at - written

    async def _catch_up(self) -> None:
        window = self.ledger.catch_up_range(time.time())
        if window is None:
            return
        low, high = window
        statement = (
            f"SELECT {_POINT_COLUMNS} FROM {MEASUREMENT} "
            f"WHERE time >= {_ns(low)} AND time <= {_ns(high)}"
        )
        try:
            (rows,) = await _query(self.client, statement)
        except (httpx.HTTPError, SoakError, ValueError):
            return  # counted by the next poll, which fails too
        self.counters.catch_ups += 1
        self.ledger.add_stored(_points(rows), time.time())

    async def probe_loop(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            written = time.time()
            line = f"{PROBE_MEASUREMENT} n={number}i {_ns(written)}"
            try:
                response = await self.client.post(
                    "/write", params={"db": DATABASE, "precision": "n"}, content=line.encode()
                )
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code == httpx.codes.NO_CONTENT:
                self.counters.probes_written[number] = written
            await self._pause(1.0)

    def sample_usage(self) -> None:
        for role, pid in self.roles.items():
            self.usage.sample(role, pid())

    async def usage_loop(self) -> None:
        while not self.stop.is_set():
            self.sample_usage()
            await self._pause(1.0)

    def floor(self) -> Latency:
        return Latency.of(list(self.counters.probe_latencies.values()))


# -- the faults -------------------------------------------------------------------------------


class _Timeline:
    """Timestamped lines: printed as they happen and kept for the report."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._began = time.time()
        self.origin: float | None = None
        self.lines: list[str] = []

    def __call__(self, text: str, *, at: float | None = None) -> None:
        moment = time.time() if at is None else at
        if self.origin is None:
            stamp = f"setup {moment - self._began:6.1f} s"
        else:
            stamp = f"{moment - self.origin:+9.1f} s"
        line = f"[{stamp}] {text}"
        self.lines.append(line)
        self._emit(line)


@dataclass(slots=True)
class _Rig:
    """Everything running, for the fault injector."""

    mosquitto: MosquittoServer
    influx: InfluxDBServer
    proxy: TcpProxy
    ingestor: _Child
    gateway: _Child
    simulator: _Child
    note: Callable[..., None]


async def _inject(fault: PlannedFault, rig: _Rig) -> ExecutedFault:
    note = rig.note
    started = time.time()
    detail = ""
    if fault.kind is FaultKind.BROKER_RESTART:
        # While the broker is down the proxy refuses, so that the gateway sees what it would
        # see talking to the broker directly (refused), not a connection accepted and reset.
        note(f"{fault.kind}: SIGTERM to Mosquitto (pid {rig.mosquitto.pid})")
        await rig.proxy.refuse()
        try:
            await asyncio.to_thread(rig.mosquitto.stop)
            await asyncio.sleep(fault.duration_s)
            await asyncio.to_thread(rig.mosquitto.start)
        finally:
            await rig.proxy.restore()
        detail = f"down {time.time() - started:.1f} s, same port, persistence kept"
    elif fault.kind is FaultKind.INFLUXDB_RESTART:
        note(f"{fault.kind}: SIGTERM to InfluxDB (pid {rig.influx.pid})")
        await asyncio.to_thread(rig.influx.stop)
        await asyncio.sleep(fault.duration_s)
        await asyncio.to_thread(rig.influx.start)
        detail = f"down {time.time() - started:.1f} s, same port and data"
    elif fault.kind is FaultKind.INGESTOR_KILL:
        note(f"{fault.kind}: SIGKILL to the ingestor (pid {rig.ingestor.pid})")
        status = await asyncio.to_thread(rig.ingestor.kill)
        await asyncio.sleep(fault.duration_s)
        rig.ingestor.start()
        detail = f"exit status {status}; started again (pid {rig.ingestor.pid})"
    else:
        closed = await rig.proxy.cut()
        note(f"{fault.kind}: proxy cut, {closed} connection(s) closed, new ones refused")
        await asyncio.sleep(fault.duration_s)
        await rig.proxy.restore()
        detail = f"cut {time.time() - started:.1f} s; proxy relaying again"
    ended = time.time()
    note(f"{fault.kind}: over ({detail})", at=ended)
    return ExecutedFault(fault.kind, started, ended, detail)


def _log_times(path: Path, message: re.Pattern[str]) -> list[float]:
    """Unix times of the log lines (``time=...Z ... msg="..."``) whose message matches."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    times = []
    for match in _LOG_LINE.finditer(text):
        if message.search(match["msg"]):
            moment = datetime.strptime(match["time"], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
            times.append(moment.timestamp())
    return times


_LOG_LINE: Final = re.compile(r'^time=(?P<time>\S+)Z level=\S+ logger=\S+ msg="(?P<msg>.*)"$', re.M)
_GATEWAY_BACK: Final = re.compile(r"^uplink (re)?connected")
_INGEST_BACK: Final = re.compile(r"^mqtt connected")
_STORE_BACK: Final = re.compile(r"^store available again")


def _first_after(times: Iterable[float], moment: float) -> float | None:
    return min((t for t in times if t >= moment), default=None)


@dataclass(frozen=True, slots=True)
class _Logs:
    gateway: Path
    ingestor: Path

    def back(self, fault: ExecutedFault) -> float | None:
        """When the path worked again after ``fault``, by the services' own log lines: the
        gateway and the ingestor reconnected (broker restart), the ingestor's store available
        again (InfluxDB restart), the new ingestor connected (SIGKILL), the gateway
        reconnected (cut)."""
        gateway = _log_times(self.gateway, _GATEWAY_BACK)
        if fault.kind is FaultKind.BROKER_RESTART:
            moments = (
                _first_after(gateway, fault.started),
                _first_after(_log_times(self.ingestor, _INGEST_BACK), fault.started),
            )
            return None if None in moments else max(m for m in moments if m is not None)
        if fault.kind is FaultKind.INFLUXDB_RESTART:
            return _first_after(_log_times(self.ingestor, _STORE_BACK), fault.started)
        if fault.kind is FaultKind.INGESTOR_KILL:
            return _first_after(_log_times(self.ingestor, _INGEST_BACK), fault.started)
        return _first_after(gateway, fault.started)


def _outcomes(
    ledger: Ledger, executed: Sequence[ExecutedFault], logs: _Logs, end: float, origin: float
) -> tuple[list[FaultOutcome], list[tuple[float, float]]]:
    """Each fault's figures and window: from ``FAULT_LEAD_S`` before it until the path was
    back (by the logs) and every reading delivered until then was visible."""
    outcomes = []
    windows = []
    for fault in executed:
        opened = fault.started - FAULT_LEAD_S
        back = max(fault.ended, logs.back(fault) or fault.ended)
        stored_at = ledger.backlog_stored_at(opened, back)
        closed = max(back, stored_at or back)
        windows.append((opened, closed))
        in_window = [lat for _at, lat in ledger.latencies(opened, min(closed, end))]
        outcomes.append(
            FaultOutcome(
                kind=fault.kind,
                at_s=fault.started - origin,
                lasted_s=fault.ended - fault.started,
                back_s=back - fault.ended,
                recovered_s=closed - fault.ended,
                latency=Latency.of(in_window),
                note=fault.note,
            )
        )
    return outcomes, windows


def _split(
    items: Iterable[tuple[float, float | None]], windows: Sequence[tuple[float, float]]
) -> tuple[Latency, Latency]:
    """(outside, inside) the windows, by delivery time."""
    inside: list[float | None] = []
    outside: list[float | None] = []
    for delivered_at, latency in items:
        hit = any(low <= delivered_at <= high for low, high in windows)
        (inside if hit else outside).append(latency)
    return Latency.of(outside), Latency.of(inside)


# -- alerts -----------------------------------------------------------------------------------


class _AlertListener:
    """Every message on the site's alerts topic with the time it arrived: a paho client in its
    own thread, on a persistent session (so a broker restart loses nothing) that reconnects
    by itself."""

    def __init__(self, host: str, port: int) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[tuple[float, dict[str, Any]]] = []
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="soak-alerts-listener", protocol=paho.MQTTv5
        )
        self._client.reconnect_delay_set(1, 2)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self._client.connect(host, port, clean_start=False, properties=properties)
        self._client.loop_start()

    def _on_connect(self, client: paho.Client, *_args: Any) -> None:
        client.subscribe(topics.alerts(SITE), qos=1)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: Any) -> None:
        arrived = time.time()
        try:
            alert = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(alert, dict):
            with self._lock:
                self._arrivals.append((arrived, alert))

    @property
    def arrivals(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return list(self._arrivals)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _alert_figures(
    presses: Sequence[ExpectedReading],
    arrivals: Sequence[tuple[float, Mapping[str, Any]]],
    *,
    owners: Mapping[str, str],
    windows: Sequence[tuple[float, float]],
    period: tuple[float, float],
    note: str,
) -> AlertFigures:
    """Help-button presses (delivered in the measured period) against the first ``help``
    alert of the resident that arrived after each."""
    first: dict[str, float] = {}
    by_rule: collections.Counter[str] = collections.Counter()
    for arrived, alert in sorted(arrivals, key=lambda a: a[0]):
        rule, resident = str(alert.get("rule")), str(alert.get("resident"))
        if alert.get("state") == "open" and str(alert.get("id")) not in first:
            first[str(alert.get("id"))] = arrived
            by_rule[rule] += 1
    help_alerts: dict[str, list[float]] = collections.defaultdict(list)
    seen_ids: set[str] = set()
    for arrived, alert in sorted(arrivals, key=lambda a: a[0]):
        if alert.get("rule") == "help" and str(alert.get("id")) not in seen_ids:
            seen_ids.add(str(alert.get("id")))
            help_alerts[str(alert.get("resident"))].append(arrived)
    latencies: list[tuple[float, float | None]] = []
    for press in presses:
        if not period[0] <= press.delivered_at <= period[1]:
            continue
        resident = owners.get(press.device, "")
        arrived_after = [t for t in help_alerts.get(resident, []) if t >= press.delivered_at]
        latencies.append(
            (press.delivered_at, arrived_after[0] - press.delivered_at if arrived_after else None)
        )
    outside, inside = _split(latencies, windows)
    return AlertFigures(
        available=True,
        note=note,
        presses=len(latencies),
        alerted=sum(1 for _at, lat in latencies if lat is not None),
        outside=outside,
        inside=inside,
        opened_by_rule=tuple(sorted(by_rule.items())),
    )


# -- the run ----------------------------------------------------------------------------------


def _prepare(config: SoakConfig, workdir: Path) -> tuple[Path, Simulation, datetime]:
    """Write the site file; the simulation it describes (for the devices' addresses) and
    its start."""
    (workdir / "gateway").mkdir(parents=True, exist_ok=True)
    site_file = workdir / "soak-home.toml"
    site_file.write_text(_site_toml(config), encoding="utf-8")
    start = datetime.now(UTC).replace(microsecond=0)
    site = load_site(site_file)
    simulation = Simulation(site, seed=config.seed, start=start, scenarios=site.scenarios)
    return site_file, simulation, start


def _latency_sample(simulation: Simulation) -> frozenset[str] | None:
    """The devices of every k-th resident, about ``LATENCY_SAMPLE`` residents; ``None`` (all
    devices) for a home that small."""
    residents = sorted({d.resident for d in simulation.devices if d.resident is not None})
    step = len(residents) // LATENCY_SAMPLE
    if step <= 1:
        return None
    chosen = set(residents[::step])
    return frozenset(d.id for d in simulation.devices if d.resident in chosen)


class _Soak:
    """One run: the servers, the processes, the observer; :meth:`run` gives the report."""

    def __init__(
        self,
        config: SoakConfig,
        *,
        mosquitto_binary: Path,
        influxd_binary: Path,
        workdir: Path,
        emit: Callable[[str], None],
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.began = time.time()
        self.load_at_start = os.getloadavg()[0]
        self.timeline = _Timeline(emit)
        self.plan = fault_schedule(config.duration_s, faults=config.faults)
        self.versions = (
            f"{_version([str(mosquitto_binary), '-h'])}; "
            f"{_version([str(influxd_binary), 'version'])}"
        )
        self.site_file, self.simulation, start = _prepare(config, workdir)
        self.mosquitto = MosquittoServer(workdir / "mosquitto", binary=mosquitto_binary)
        self.influx = InfluxDBServer(workdir / "influxdb", binary=influxd_binary)
        self.record = workdir / "deliveries.jsonl"
        self.outbox = workdir / "gateway" / "outbox.sqlite3"
        cloud_toml = str(workdir / "cloud.toml")
        self.simulator = _Child(
            "simulator",
            [
                sys.executable, "-m", "firmware_sim", "--site", str(self.site_file),
                "--listen", "tcp-server:127.0.0.1:0", "--speed", "1",
                "--seed", str(config.seed), "--start", start.isoformat(), "--tick", "0.25",
                "--no-table", "--log-level", "WARNING", "--record", str(self.record),
            ],
            workdir / "simulator.log",
        )  # fmt: skip
        self.gateway = _Child(
            "gateway",
            [sys.executable, "-m", "gateway", "--config", str(workdir / "gateway.toml")],
            workdir / "gateway.log",
        )
        self.ingestor = _Child(
            "ingestor",
            [sys.executable, "-m", "cloud", "ingest", "--config", cloud_toml],
            workdir / "ingest.log",
        )
        self.alerts = _Child(
            "alerts",
            [sys.executable, "-m", "cloud", "alerts", "--config", cloud_toml],
            workdir / "alerts.log",
        )
        self.alerts_note = ""
        self.listener: _AlertListener | None = None
        self.alert_arrivals: list[tuple[float, dict[str, Any]]] = []
        self.ledger = Ledger(_latency_sample(self.simulation))
        self.usage = _Usage()
        self.executed: list[ExecutedFault] = []
        self.origin = self.end = self.setup_s = self.drain_s = 0.0
        self.drained = False
        self.outbox_left: int | None = None

    def _server_pid(self, server: MosquittoServer | InfluxDBServer) -> int | None:
        return server.pid if server.running else None

    def _roles(self) -> dict[str, Callable[[], int | None]]:
        return {
            "simulator": lambda: self.simulator.pid,
            "gateway": lambda: self.gateway.pid,
            "ingestor": lambda: self.ingestor.pid,
            "alerts": lambda: self.alerts.pid,
            "mosquitto": lambda: self._server_pid(self.mosquitto),
            "influxdb": lambda: self._server_pid(self.influx),
        }

    async def run(self) -> SoakReport:
        with contextlib.ExitStack() as stack:
            stack.callback(self.mosquitto.stop)
            stack.callback(self.influx.stop)
            stack.callback(self.simulator.stop, signal.SIGINT)
            stack.callback(self.gateway.stop)
            stack.callback(self.ingestor.stop)
            stack.callback(self.alerts.stop)
            await self._start_servers()
            stack.callback(self._close_listener)
            await self._start_cloud()
            self.simulator.start()
            async with (
                TcpProxy(self.mosquitto.host, self.mosquitto.port) as proxy,
                httpx.AsyncClient(base_url=self.influx.url, timeout=10.0) as client,
            ):
                observer = _Observer(
                    ledger=self.ledger,
                    tail=_DeliveryTail(self.record),
                    client=client,
                    poll_s=self.config.poll_s,
                    usage=self.usage,
                    roles=self._roles(),
                )
                rig = _Rig(
                    self.mosquitto,
                    self.influx,
                    proxy,
                    self.ingestor,
                    self.gateway,
                    self.simulator,
                    self.timeline,
                )
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(observer.tail_loop(), name="soak-tail")
                        group.create_task(observer.poll_loop(), name="soak-poll")
                        group.create_task(observer.probe_loop(), name="soak-probe")
                        group.create_task(observer.usage_loop(), name="soak-usage")
                        group.create_task(self._supervise(observer.stop), name="soak-supervise")
                        try:
                            await self._measure(rig, observer)
                        finally:
                            observer.stop.set()
                except* SoakSetupError as failed:
                    raise failed.exceptions[0] from None
                # The end, with the proxy still relaying: no new readings (the gateway
                # first, so that it stops cleanly rather than lose its radio), then the rest
                # of the delivery log and, below, the whole store.
                for child, signum in (
                    (self.gateway, signal.SIGTERM),
                    (self.simulator, signal.SIGINT),
                ):
                    status = await asyncio.to_thread(child.stop, signum)
                    self.timeline(f"{child.role} stopped (exit status {status})")
                observer.read_deliveries()
            await _read_back(self.ledger, self.influx, self.began - 60, self.timeline)
        await asyncio.to_thread(_write_readings, self.ledger, self.workdir / "readings.csv")
        await asyncio.to_thread(
            (self.workdir / "poller.log").write_text, "\n".join(observer.trace) + "\n"
        )
        return self._report(observer)

    async def _supervise(self, stop: asyncio.Event) -> None:
        """Start a service again when it exits by itself, as systemd would
        (``Restart=on-failure``, at most ``RESTARTS`` times each), and say so."""
        restarts: collections.Counter[str] = collections.Counter()
        while not stop.is_set():
            for child in (self.gateway, self.ingestor, self.alerts):
                status = child.exit_status
                if status is None or not child.runs:
                    continue
                if restarts[child.role] >= RESTARTS:
                    continue
                restarts[child.role] += 1
                self.timeline(
                    f"the {child.role} exited by itself with status {status}: started again, as "
                    f"its supervisor would (last log line: {child.log_tail(1)[-300:]})"
                )
                child.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()

    def _close_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            self.alert_arrivals = listener.arrivals
            listener.close()

    async def _start_servers(self) -> None:
        try:
            await asyncio.to_thread(self.mosquitto.start)
            await asyncio.to_thread(self.influx.start)
            await asyncio.to_thread(self.influx.create_database, DATABASE)
        except ServerStartError as exc:
            raise SoakSetupError(str(exc)) from exc
        self.timeline(
            f"Mosquitto on port {self.mosquitto.port}, InfluxDB on port {self.influx.port}"
        )

    async def _start_cloud(self) -> None:
        config = self.config
        ingest_config(
            self.workdir / "cloud.toml",
            {
                "mqtt": {
                    "url": self.mosquitto.url,
                    "client_id": "soak-ingest",
                    "share_group": config.share_group,
                    "session_expiry_s": 3600,
                    "reconnect_min_s": 0.2,
                    "reconnect_max_s": 2.0,
                },
                "store": {
                    "url": self.influx.url,
                    "database": DATABASE,
                    "retry_min_s": 0.2,
                    "retry_max_s": 2.0,
                    "timeout_s": 5,
                },
                "registry": {"sites": [str(self.site_file)]},
                "alerts": {
                    "client_id": "soak-alerts",
                    "ledger": str(self.workdir / "alerts.sqlite3"),
                },
                "metrics": {"enabled": False},
            },
        )
        self.ingestor.start()
        if not await asyncio.to_thread(_alerts_service):
            self.alerts_note = "not available (`python -m cloud` has no `alerts` service)"
            return
        self.listener = _AlertListener(self.mosquitto.host, self.mosquitto.port)
        self.alerts.start()

    async def _measure(self, rig: _Rig, observer: _Observer) -> None:
        config = self.config
        await _bring_up(config, self.workdir, self.simulation, rig, self.timeline)
        if self.alerts.runs:
            await self._alerts_up()
        self.setup_s = time.time() - self.began
        self.origin = time.time()
        self.timeline.origin = self.origin
        self.end = self.origin + config.duration_s
        self.timeline(
            f"measuring for {config.duration_s:.0f} s; faults planned: "
            + (", ".join(f"{f.kind} at +{f.at_s:.0f} s" for f in self.plan) or "none")
        )
        await _run_faults(
            self.plan,
            rig,
            ledger=self.ledger,
            origin=self.origin,
            end=self.end,
            executed=self.executed,
        )
        await _sleep_until(self.end)
        self.timeline("measured period over: waiting for everything delivered to be stored")
        self.drained = await _drain(self.ledger, self.end, config.drain_timeout_s, self.timeline)
        self.drain_s = time.time() - self.end
        self.outbox_left = _outbox_rows(self.outbox, self.end)
        observer.sample_usage()
        if self.alerts.runs and self.alerts.exit_status is not None:
            self.alerts_note = f"the alerts service exited with status {self.alerts.exit_status}"
            self.timeline(f"{self.alerts_note}:\n{self.alerts.log_tail(10)}")

    async def _alerts_up(self) -> None:
        async def connected() -> bool | None:
            if self.alerts.exit_status is not None:
                raise SoakSetupError(
                    f"the alerts service exited with status {self.alerts.exit_status}:\n"
                    f"{self.alerts.log_tail()}"
                )
            return True if "alerts: connected" in self.alerts.log_text() else None

        try:
            await poll_until_async(connected, within=60, what="the alerts service", every=0.5)
        except (PollTimeoutError, SoakSetupError) as exc:
            # Not ours to fix, and the readings' figures still stand: say so and go on.
            self.alerts_note = f"not measured: {str(exc).splitlines()[0]}"
            self.timeline(f"alerts service not up, going on without it: {exc}")
            await asyncio.to_thread(self.alerts.stop)
            return
        self.timeline("alerts service connected")

    def _report(self, observer: _Observer) -> SoakReport:
        logs = _Logs(self.gateway.log, self.ingestor.log)
        outcomes, windows = _outcomes(self.ledger, self.executed, logs, self.end, self.origin)
        outside, inside = _split(self.ledger.latencies(self.origin, self.end), windows)
        if self.alerts.runs and not self.alerts_note:
            owners = {d.id: d.resident for d in self.simulation.devices}
            alerts = _alert_figures(
                self.ledger.expected_of("help_button"),
                self.alert_arrivals,
                owners=owners,
                windows=windows,
                period=(self.origin, self.end),
                note="help button pressed (pendant) -> `help` alert received on "
                f"{topics.alerts(SITE)}",
            )
        else:
            alerts = AlertFigures(available=False, note=self.alerts_note or "not measured")
        runs = {role: child.runs for role, child in self._children().items()}
        runs["mosquitto"] = 1 + sum(f.kind is FaultKind.BROKER_RESTART for f in self.executed)
        runs["influxdb"] = 1 + sum(f.kind is FaultKind.INFLUXDB_RESTART for f in self.executed)
        return SoakReport(
            config=self.config,
            origin=self.origin,
            cores=os.cpu_count() or 0,
            usable_cores=len(os.sched_getaffinity(0)),
            versions=self.versions,
            load=(self.load_at_start, os.getloadavg()[0]),
            devices=len(self.simulation.devices),
            latency_devices=len(self.ledger.sample or self.simulation.devices),
            setup_s=self.setup_s,
            measured_s=self.end - self.origin,
            drain_s=self.drain_s,
            total_s=time.time() - self.began,
            drained=self.drained,
            outbox_left=self.outbox_left,
            timeline=tuple(self.timeline.lines),
            accounting=self.ledger.accounting(self.end),
            outside=outside,
            inside=inside,
            faults=tuple(outcomes),
            planned_faults=len(self.plan),
            floor=observer.floor(),
            polls=observer.counters.stats(),
            processes=self.usage.report(runs),
            alerts=alerts,
        )

    def _children(self) -> dict[str, _Child]:
        return {
            child.role: child
            for child in (self.simulator, self.gateway, self.ingestor, self.alerts)
        }


async def run_soak(
    config: SoakConfig,
    *,
    mosquitto_binary: Path,
    influxd_binary: Path,
    workdir: Path,
    emit: Callable[[str], None] = print,
) -> SoakReport:
    """Run one soak in ``workdir`` and return its figures (see the module docstring).

    Raises :class:`SoakSetupError` when something does not start; any fault or loss during
    the run is a figure of the report, not an error."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    soak = await asyncio.to_thread(
        functools.partial(
            _Soak,
            config,
            mosquitto_binary=mosquitto_binary,
            influxd_binary=influxd_binary,
            workdir=workdir,
            emit=emit,
        )
    )
    return await soak.run()


async def _run_faults(
    plan: Sequence[PlannedFault],
    rig: _Rig,
    *,
    ledger: Ledger,
    origin: float,
    end: float,
    executed: list[ExecutedFault],
) -> None:
    """Inject the planned faults in turn, each at its time but never before the previous
    one's backlog is stored (waiting at most ``RECOVERY_WAIT_S`` past its time for that),
    and none that could not end before the measured period does."""
    for planned in plan:
        await _sleep_until(origin + planned.at_s)
        if executed:
            previous = executed[-1]

            async def recovered(fault: ExecutedFault = previous) -> bool | None:
                waiting = ledger.unmatched_between(fault.started - FAULT_LEAD_S, fault.ended)
                return True if waiting == 0 else None

            try:
                await poll_until_async(
                    recovered, within=RECOVERY_WAIT_S, what="recovery", every=0.25
                )
            except PollTimeoutError:
                rig.note(f"{previous.kind}: backlog still not stored; going on regardless")
        late = time.time() - (origin + planned.at_s)
        if time.time() + planned.duration_s > end - FAULT_LEAD_S:
            rig.note(f"{planned.kind}: skipped, it would not end before the measured period")
            continue
        if late > 1:
            rig.note(f"{planned.kind}: {late:.1f} s late, waited for the previous recovery")
        executed.append(await _inject(planned, rig))


def _write_readings(ledger: Ledger, path: Path) -> None:
    """Every expected reading with its times, for a closer look after the run."""
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["device", "metric", "value", "delivered_at", "visible_at", "seq", "received"]
        )
        writer.writerows(ledger.rows())


async def _sleep_until(moment: float) -> None:
    """Wait for a moment of the schedule (wall clock, Unix seconds)."""
    await asyncio.sleep(max(0.0, moment - time.time()))


_CONNECTED = re.compile(r"device ([A-Za-z0-9_-]+): connected")


async def _bring_up(
    config: SoakConfig, workdir: Path, simulation: Simulation, rig: _Rig, note: _Timeline
) -> None:
    """Start the gateway on the simulator's radio and wait until every device is connected
    and the first readings are stored."""

    async def hci_line() -> str | None:
        for child in (rig.simulator, rig.ingestor):
            if child.exit_status is not None:
                raise SoakSetupError(
                    f"the {child.role} exited with status {child.exit_status}:\n{child.log_tail()}"
                )
        for line in rig.simulator.log_text().splitlines():
            if line.startswith("hci: "):
                return line.removeprefix("hci: ").strip()
        return None

    try:
        hci = await poll_until_async(hci_line, within=120, what="the simulator's radio", every=0.2)
    except PollTimeoutError as exc:
        raise SoakSetupError(f"{exc}\n{rig.simulator.log_tail()}") from exc
    (workdir / "gateway.toml").write_text(
        _gateway_toml(workdir / "gateway", simulation, hci, rig.proxy.port, config),
        encoding="utf-8",
    )
    rig.gateway.start()
    note(f"simulator radio {hci}; gateway started (pid {rig.gateway.pid}) via proxy port "
         f"{rig.proxy.port}")  # fmt: skip
    wanted = {device.id for device in simulation.devices}
    within = config.connect_timeout_s or 60 + 0.5 * len(wanted)
    last_report = [time.monotonic()]

    def connected_now() -> set[str]:
        for child in (rig.simulator, rig.gateway, rig.ingestor):
            if child.exit_status is not None:
                raise SoakSetupError(
                    f"the {child.role} exited with status {child.exit_status}:\n{child.log_tail()}"
                )
        return set(_CONNECTED.findall(rig.gateway.log_text())) & wanted

    async def everyone() -> bool | None:
        count = len(connected_now())
        if time.monotonic() - last_report[0] >= 15:
            last_report[0] = time.monotonic()
            note(f"{count}/{len(wanted)} devices connected")
        ingest_up = "mqtt connected" in rig.ingestor.log_text()
        return True if count == len(wanted) and ingest_up else None

    try:
        await poll_until_async(everyone, within=within, what="every device connected", every=1)
    except PollTimeoutError as exc:
        missing = sorted(wanted - connected_now())
        if len(missing) > len(wanted) / 2 or "mqtt connected" not in rig.ingestor.log_text():
            raise SoakSetupError(f"{exc}\n{rig.gateway.log_tail()}") from exc
        # The figures do not need every device (what is not delivered is not expected);
        # the gateway's failure to connect them is a finding of its own.
        note(
            f"{len(missing)} of {len(wanted)} devices not connected after {within:.0f} s, "
            f"going on without them: {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
        )
        return
    note(f"all {len(wanted)} devices connected; ingestor subscribed")


async def _drain(ledger: Ledger, end: float, within: float, note: _Timeline) -> bool:
    async def stored_all() -> bool | None:
        return True if ledger.unmatched_until(end) == 0 else None

    try:
        await poll_until_async(stored_all, within=within, what="every reading stored", every=0.5)
    except PollTimeoutError:
        note(f"drain timed out: {ledger.unmatched_until(end):,} readings not stored")
        return False
    note("every reading delivered in the measured period is stored")
    return True


async def _read_back(ledger: Ledger, influx: InfluxDBServer, since: float, note: _Timeline) -> None:
    """Read every point from the store, a minute at a time, into the ledger."""
    began = time.monotonic()
    before = ledger.points
    until = time.time() + 60
    async with httpx.AsyncClient(base_url=influx.url, timeout=60.0) as client:
        low = since
        while low < until:
            high = low + 60
            (rows,) = await _query(
                client,
                f"SELECT {_POINT_COLUMNS} FROM {MEASUREMENT} "
                f"WHERE time >= {_ns(low)} AND time < {_ns(high)}",
            )
            ledger.add_stored(_points(rows), None)
            low = high
    note(
        f"read back the whole store in {time.monotonic() - began:.1f} s: {ledger.points:,} "
        f"points ({ledger.points - before:,} not seen by the live poll)"
    )


# -- the command ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0, help="measured period")
    parser.add_argument("--faults", choices=["default", "none"], default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.1, help="store poll period, seconds")
    parser.add_argument(
        "--share-group",
        default="",
        help="the ingestor's MQTT share group (default: a plain subscription)",
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and data here (default: temp)")
    return parser


@contextlib.contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="carewatch-soak-") as folder:
        yield Path(folder)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = SoakConfig(
            residents=args.residents,
            duration_s=args.minutes * 60,
            faults=args.faults == "default",
            seed=args.seed,
            poll_s=args.poll,
            share_group=args.share_group,
        )
        fault_schedule(config.duration_s, faults=config.faults)
    except ValueError as exc:
        parser.error(str(exc))
    binaries = {name: find_binary(name) for name in ("mosquitto", "influxd")}
    missing = [name for name, path in binaries.items() if path is None]
    if missing:
        print(
            f"bench.soak needs {' and '.join(missing)} (Debian packages mosquitto, influxdb)",
            file=sys.stderr,
        )
        return 1
    mosquitto, influxd = binaries["mosquitto"], binaries["influxd"]
    if mosquitto is None or influxd is None:  # pragma: no cover (checked just above)
        return 1
    with _workdir(args.workdir) as folder:
        try:
            report = asyncio.run(
                run_soak(
                    config,
                    mosquitto_binary=mosquitto,
                    influxd_binary=influxd,
                    workdir=folder,
                    emit=lambda line: print(line, flush=True),
                )
            )
        except SoakSetupError as exc:
            print(f"bench.soak: setup failed: {exc}", file=sys.stderr)
            return 1
    print(format_report(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
