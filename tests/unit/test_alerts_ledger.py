"""The SQLite alert ledger on real files: round trips, upserts, the queries the API needs,
one unresolved alert per condition, the append-only audit trail, WAL, reopening."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.alerts import (
    AlertAction,
    AlertLedger,
    AlertRecord,
    AuditRecord,
    InputError,
    LedgerError,
    SqliteLedger,
)
from vitals.metrics import Metric
from vitals.wire import AlertKind, AlertState, Severity

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def record(
    alert_id: str = "a1",
    *,
    site: str = "s1",
    key: str = "spo2_low:r01:spo2",
    resident: str | None = "r01",
    state: AlertState = AlertState.OPEN,
    opened: datetime = T0,
    resolved_at: datetime | None = None,
) -> AlertRecord:
    return AlertRecord(
        id=alert_id,
        site=site,
        key=key,
        rule=key.split(":", maxsplit=1)[0],
        kind=AlertKind.CLINICAL,
        severity=Severity.WARNING,
        state=state,
        title="[warning] r01: SpO2 91 %",
        resident=resident,
        device="r01-ox",
        gateway=None,
        metric=Metric.SPO2,
        value=91.0,
        opened=opened,
        updated=resolved_at or opened,
        resolved_at=resolved_at,
        resolved_by="system" if resolved_at is not None else None,
        escalation_origin=opened,
        next_escalation_at=None if resolved_at is not None else opened + 5 * MIN,
        condition_severity=Severity.WARNING,
        condition_time=opened,
    )


def audit(
    alert_id: str = "a1",
    at: datetime = T0,
    action: AlertAction = AlertAction.OPENED,
    *,
    site: str = "s1",
    actor: str = "system",
) -> AuditRecord:
    return AuditRecord(alert_id, site, at, action, actor, f"{action.value} at {at:%H:%M}")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    async with SqliteLedger(tmp_path / "ledger.db") as opened:
        yield opened


async def test_a_full_record_round_trips(ledger: SqliteLedger) -> None:
    full = replace(
        record(),
        state=AlertState.SNOOZED,
        count=7,
        severity=Severity.CRITICAL,
        acknowledged_by="n1",
        acknowledged_at=T0 + MIN,
        comment="checking — ünïcode",
        snoozed_until=T0 + 10 * MIN,
        snoozed_from=AlertState.ACKNOWLEDGED,
        escalation_level=3,
        escalation_origin=T0 - 15 * MIN,
        next_escalation_at=None,
        condition_active=False,
        condition_severity=Severity.URGENT,
        condition_time=T0 + timedelta(microseconds=123_457),
    )
    bare = replace(
        record("a2", key="gateway_offline:gw1", resident=None),
        kind=AlertKind.TECHNICAL,
        device=None,
        gateway="gw1",
        metric=None,
        value=None,
        escalation_origin=None,
        next_escalation_at=None,
        condition_time=None,
    )
    await ledger.write([full, bare], [])
    assert await ledger.get("a1") == full
    assert await ledger.get("a2") == bare
    assert await ledger.get("nope") is None
    back = await ledger.get("a1")
    assert back is not None
    assert back.opened.tzinfo is not None
    assert back.to_wire() == full.to_wire()


async def test_a_write_replaces_by_id_and_appends_audit(ledger: SqliteLedger) -> None:
    await ledger.write([record()], [audit()])
    acked = replace(
        record(),
        state=AlertState.ACKNOWLEDGED,
        acknowledged_by="n1",
        acknowledged_at=T0 + MIN,
        updated=T0 + MIN,
        next_escalation_at=None,
    )
    await ledger.write([acked], [audit(at=T0 + MIN, action=AlertAction.ACKNOWLEDGED, actor="n1")])
    assert await ledger.unresolved() == [acked]
    trail = await ledger.audit("a1")
    assert [(r.action, r.actor) for r in trail] == [
        (AlertAction.OPENED, "system"),
        (AlertAction.ACKNOWLEDGED, "n1"),
    ]
    assert trail[1] == audit(at=T0 + MIN, action=AlertAction.ACKNOWLEDGED, actor="n1")


async def test_one_unresolved_alert_per_condition(ledger: SqliteLedger) -> None:
    await ledger.write([record("a1")], [audit("a1")])
    with pytest.raises(LedgerError):
        await ledger.write([record("a2"), record("b1", key="fall:r01:fall")], [audit("a2")])
    # nothing of the refused batch was kept
    assert [r.id for r in await ledger.unresolved()] == ["a1"]
    assert await ledger.audit("a2") == []
    # resolving the first, then opening the next, in one batch, is fine
    done = record("a1", state=AlertState.RESOLVED, resolved_at=T0 + MIN)
    await ledger.write([done, record("a2", opened=T0 + 2 * MIN)], [])
    assert [r.id for r in await ledger.unresolved()] == ["a2"]


async def test_listing_a_sites_alerts(ledger: SqliteLedger) -> None:
    rows = [
        record("a1", resident="r01", opened=T0, state=AlertState.RESOLVED, resolved_at=T0 + MIN),
        record("a2", resident="r02", opened=T0 + 2 * MIN, key="spo2_low:r02:spo2"),
        record(
            "a3",
            resident="r01",
            opened=T0 + 5 * MIN,
            state=AlertState.RESOLVED,
            resolved_at=T0 + 20 * MIN,
        ),
        record("a4", resident="r01", opened=T0 + 30 * MIN),
        record("b1", site="s2", opened=T0),
    ]
    await ledger.write(rows, [])

    async def ids(**query: object) -> list[str]:
        return [r.id for r in await ledger.alerts("s1", **query)]  # type: ignore[arg-type]

    assert await ids() == ["a4", "a3", "a2", "a1"]  # newest opened first
    assert await ids(states=[AlertState.OPEN]) == ["a4", "a2"]
    assert await ids(states=[AlertState.RESOLVED, AlertState.SNOOZED]) == ["a3", "a1"]
    assert await ids(states=[]) == []
    assert await ids(resident="r01") == ["a4", "a3", "a1"]
    assert await ids(resident="r01", states=[AlertState.OPEN]) == ["a4"]
    # active during [T0 + 10 min, T0 + 25 min): a1 was over, a4 had not begun
    assert await ids(start=T0 + 10 * MIN, end=T0 + 25 * MIN) == ["a3", "a2"]
    assert await ids(end=T0 + 2 * MIN) == ["a1"]
    assert await ids(start=T0 + 21 * MIN) == ["a4", "a2"]
    assert await ids(limit=2) == ["a4", "a3"]
    with pytest.raises(InputError):
        await ids(limit=0)
    with pytest.raises(InputError):
        await ids(limit=10_001)
    assert [r.id for r in await ledger.alerts("s2")] == ["b1"]
    assert await ledger.alerts("s3") == []


async def test_the_audit_trail_by_alert_and_by_site(ledger: SqliteLedger) -> None:
    entries = [
        audit("a1", T0),
        audit("a2", T0 + MIN),
        audit("a1", T0 + 2 * MIN, AlertAction.ESCALATED),
        audit("b1", T0 + 2 * MIN, site="s2"),
        audit("a1", T0 + 3 * MIN, AlertAction.ACKNOWLEDGED, actor="n1"),
    ]
    await ledger.write([], entries[:2])
    await ledger.write([], entries[2:])
    assert await ledger.audit("a1") == [entries[0], entries[2], entries[4]]
    window = await ledger.site_audit("s1", start=T0 + MIN, end=T0 + 3 * MIN)
    assert window == [entries[1], entries[2]]
    assert await ledger.site_audit("s1", start=T0, end=T0 + 9 * MIN, limit=1) == [entries[0]]
    assert await ledger.site_audit("s2", start=T0, end=T0 + 9 * MIN) == [entries[3]]


async def test_the_audit_trail_is_append_only(tmp_path: Path) -> None:
    path = tmp_path / "append.db"
    async with SqliteLedger(path) as ledger:
        await ledger.write([record()], [audit()])
    db = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit SET actor = 'someone else'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit")
        assert db.execute("SELECT actor FROM audit").fetchall() == [("system",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        db.close()


async def test_the_file_keeps_everything_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    async with SqliteLedger(path) as first:
        await first.write([record()], [audit()])
    second: AlertLedger = SqliteLedger(path)  # the Protocol is what the lifecycle sees
    try:
        assert await second.unresolved() == [record()]
        assert await second.audit("a1") == [audit()]
    finally:
        await second.aclose()


async def test_errors_are_ledger_errors(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "closed.db")
    await ledger.aclose()
    with pytest.raises(LedgerError, match="closed"):
        await ledger.unresolved()
    future = tmp_path / "future.db"
    db = sqlite3.connect(future)
    db.execute("PRAGMA user_version=99")
    db.close()
    newer = SqliteLedger(future)
    with pytest.raises(LedgerError, match="schema version 99"):
        await newer.unresolved()
    await newer.aclose()
    async with SqliteLedger(tmp_path / "naive.db") as ledger:
        with pytest.raises(InputError, match="naive"):
            await ledger.write([replace(record(), opened=datetime(2025, 1, 6, 12))], [])
        assert await ledger.unresolved() == []


async def test_a_large_batch_is_one_write(ledger: SqliteLedger) -> None:
    rows = [record(f"a{i}", key=f"spo2_low:r{i:05d}:spo2") for i in range(5000)]
    entries = [audit(f"a{i}") for i in range(5000)]
    await ledger.write(rows, entries)
    assert len(await ledger.unresolved()) == 5000
    assert len(await ledger.site_audit("s1", start=T0, end=T0 + MIN, limit=10_000)) == 5000
