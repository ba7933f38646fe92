"""The alert lifecycle: conditions and staff actions in; alerts, escalations and notifications
out. No clock, no network: every operation takes ``now``, and the only I/O is through the
:class:`~cloud.alerts.ledger.AlertLedger` it is given, which stores each operation's result
*before* the operation returns it. The lifecycle never sends anything: each operation returns
:class:`Change`\\s, each with the updated wire :class:`vitals.wire.Alert` (to publish on
MQTT) and the :class:`Notification`\\s to deliver.

What a care home can expect
---------------------------
*One alert per condition.* While an alert is not resolved, its site and condition key
(``rule:subject[:metric]``) stay bound to it: the condition triggering again adds to
``count`` (a fall or help call with a new event time, a condition that cleared and came
back, a condition that worsened again within the alert's peak severity) and notifies nobody.
Seeing the same active condition again (the engine lists every active condition after a
restart) changes nothing.

*A worsening resident is seen again.* A condition arriving at a severity above the alert's
raises the alert's severity and its count and notifies everyone the alert has reached so far
(steps 0 to its current level). If the alert was acknowledged or snoozed it goes back to
OPEN (the acknowledgement is cleared; the audit trail keeps it) and escalation starts again
from its current level, as if that step had just fired. An alert that was already open keeps
its timer (a worsening never delays escalation). A condition going on at a lower severity is
written to the audit trail (``eased``); the alert keeps its peak severity.

*Auto-resolve.* When a condition ends (a :class:`~cloud.alerts.engine.Condition` with
``active=False``), its alert is resolved by ``"system"`` -- except falls and help calls
(rules ``fall`` and ``help``: :attr:`LifecycleConfig.manual_rules`) and, if
:attr:`LifecycleConfig.manual_from` is set, every alert that reached that severity. Those
stay until a person resolves them: the end of a fall event's hold time says nothing about the
resident being all right. Their condition ending is written to the audit trail
(``cleared``). Staff can resolve any alert, with an optional comment.

  A condition that ends because its data went stale (``known=False``: a silent or removed
  oximeter is not a recovered resident) is never auto-resolved either: it is written to the
  audit trail as ``cleared`` with "no fresh data" and waits for a person, like a fall.

*Acknowledge* (OPEN or SNOOZED alerts): records who and when, stops escalation, and tells the
people it escalated to (steps 1 and up; not the one who acknowledged) so they can stand down.
Acknowledging an acknowledged alert is refused (someone already has it).

*Snooze* (OPEN, ACKNOWLEDGED or SNOOZED alerts) until a time after ``now``: escalation pauses;
when the snooze expires (at the first :meth:`Lifecycle.tick` at or after it) the alert returns
to the state it was snoozed from. Back to OPEN, it notifies steps 0 to its level again
("snooze ended") and escalation resumes from its level as if that step had just fired; back
to ACKNOWLEDGED, it stays quiet. A CRITICAL alert may be snoozed for at most
:attr:`LifecycleConfig.critical_snooze_cap` (15 min), any other for at most
:attr:`LifecycleConfig.max_snooze` (12 h); a longer snooze is refused with
:class:`~cloud.alerts.errors.SnoozeTooLongError` (the screen should offer the cap), never
silently shortened.

*Escalation* follows the site's :class:`~cloud.alerts.escalation.Ladder`: step 0 at opening,
step *n* at ``origin + steps[n].after`` while nobody has acknowledged, then the last step again
every ``repeat_every`` (the reminders stay on the grid ``origin + last.after + k * repeat``).
Alerts below :attr:`LifecycleConfig.escalate_from` (WARNING) notify step 0 and never escalate.
The due time is stored with the alert (``next_escalation_at``), so a restart keeps it. A
:meth:`Lifecycle.tick` fires what is due once: after an outage, the alert jumps to the highest
step that fell due (notifying the recipients of every step it skipped, once each) or sends one
reminder, never a burst of the repetitions that were missed.

*Who is told* is decided by :mod:`cloud.alerts.escalation` (family only about the clinical
alerts of the residents they follow; technical alerts never to family; quiet hours hold back
INFO and WARNING, never URGENT or CRITICAL). Held-back notifications are returned in
:attr:`Change.held` (to count them; no digest is made). A resolved alert is announced to
steps 0 to its level, except to the person who resolved it. A site without a
:class:`~cloud.alerts.escalation.SiteEscalation` still gets its alerts (stored, published),
but nobody is notified; it is logged once.

*Audit.* Every change appends an :class:`~cloud.alerts.ledger.AuditRecord` (alert id, time,
action, actor or ``"system"``, detail with the ids notified and held back and the staff
comment), in the same ledger transaction as the alert itself.

*Time.* A staff action or an update is stamped ``max(now, alert.updated)``, so a clock that
steps back a little never makes an alert's history run backwards.

*Restart.* :meth:`Lifecycle.load` reads every unresolved alert from the ledger (counts,
states, levels, timers, whether the condition was active); a new lifecycle on the same ledger
carries on exactly where the old one stopped. Conditions that ended while the service was
down are not seen as edges: pass the engine's first full evaluation to
:meth:`Lifecycle.reconcile`.

*Failure.* If the ledger refuses a write (:class:`~cloud.alerts.errors.LedgerError`), the
operation changes nothing in memory and returns nothing: retry it with the same input (the
engine's edges for that tick included). If the calling task is cancelled while a write is in
flight, the write is finished and kept in memory before the cancellation goes on, so memory
and storage never disagree.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import ValidationError

from cloud.alerts.engine import Condition
from cloud.alerts.errors import (
    AlertNotFoundError,
    ConfigError,
    InputError,
    InvalidTransitionError,
    NotLoadedError,
    SnoozeTooLongError,
)
from cloud.alerts.escalation import Ladder, Recipient, SiteEscalation
from cloud.alerts.ledger import SYSTEM, AlertAction, AlertLedger, AlertRecord, AuditRecord
from vitals.topics import ID_PATTERN
from vitals.wire import Alert, AlertState, Severity

__all__ = ["Change", "Lifecycle", "LifecycleConfig", "Notification"]

logger = logging.getLogger(__name__)

MAX_TITLE: Final = 200
MAX_COMMENT: Final = 500
MAX_ACTOR: Final = 64
MAX_ALERT_ID: Final = 64
_ID: Final = re.compile(ID_PATTERN)
_LOUD: Final = Severity.URGENT.rank


@dataclass(slots=True, frozen=True)
class LifecycleConfig:
    critical_snooze_cap: timedelta = timedelta(minutes=15)
    """The longest snooze of a CRITICAL alert."""
    max_snooze: timedelta = timedelta(hours=12)
    """The longest snooze of any other alert."""
    escalate_from: Severity = Severity.WARNING
    """Alerts below this severity notify step 0 only and never escalate."""
    manual_rules: frozenset[str] = frozenset({"fall", "help"})
    """Rules whose alerts a person must resolve: they do not resolve when the condition ends."""
    manual_from: Severity | None = None
    """If set, an alert that reached this severity also needs a person to resolve it."""
    event_rules: frozenset[str] = frozenset({"fall", "help"})
    """Rules whose conditions are events: the same condition with a new ``time`` is a new
    event and counts (the engine's :func:`~cloud.alerts.engine.edges` does the same)."""

    def __post_init__(self) -> None:
        if self.critical_snooze_cap <= timedelta(0) or self.max_snooze <= timedelta(0):
            raise ConfigError("snooze caps must be positive")
        if self.critical_snooze_cap > self.max_snooze:
            raise ConfigError("critical_snooze_cap must not exceed max_snooze")


@dataclass(slots=True, frozen=True)
class Notification:
    """Tell ``recipient`` about ``alert`` (its state after the change), because ``reason``
    (``"new"``, ``"escalated to level 2"``, ``"resolved by n-07"``...)."""

    recipient: Recipient
    alert: Alert
    reason: str


@dataclass(slots=True, frozen=True)
class Change:
    """One change of one alert, already stored: publish ``alert``, deliver
    ``notifications``. ``held`` are the notifications quiet hours held back (not to send)."""

    action: AlertAction
    alert: Alert
    notifications: tuple[Notification, ...] = ()
    held: tuple[Notification, ...] = ()


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{what}: naive datetime {moment.isoformat()}: give a time zone")
    return moment.astimezone(UTC)


def _title(message: str, key: str) -> str:
    text = message.strip() or key
    return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "\u2026"


def _actor(by: str) -> str:
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_ACTOR:
        raise InputError(f"by: give a staff id of 1 to {MAX_ACTOR} characters")
    if by == SYSTEM:
        raise InputError(f"by: {SYSTEM!r} is reserved for the lifecycle itself")
    return by


def _comment(comment: str | None) -> str | None:
    if comment is None or not comment.strip():
        return None
    if len(comment) > MAX_COMMENT:
        raise InputError(f"comment: at most {MAX_COMMENT} characters, not {len(comment)}")
    return comment


def _ids(notifications: Sequence[Notification]) -> str:
    return ",".join(n.recipient.id for n in notifications)


def _closed(record: AlertRecord, by: str, now: datetime) -> AlertRecord:
    """``record`` resolved by ``by`` at ``now``: no snooze and no escalation left."""
    return replace(
        record,
        state=AlertState.RESOLVED,
        resolved_at=now,
        resolved_by=by,
        snoozed_until=None,
        snoozed_from=None,
        next_escalation_at=None,
        updated=now,
    )


class _Book:
    """The working set (unresolved alerts) and the pure rules that change it."""

    def __init__(
        self,
        escalation: Mapping[str, SiteEscalation],
        config: LifecycleConfig,
        new_id: Callable[[], str],
    ) -> None:
        for site, entry in escalation.items():
            if entry.site != site:
                raise ConfigError(f"escalation for site {site!r} is for site {entry.site!r}")
        self.escalation = dict(escalation)
        self.config = config
        self.new_id = new_id
        self.alerts: dict[str, AlertRecord] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.wakes: list[tuple[datetime, str]] = []
        self.warned_sites: set[str] = set()

    def reset(self, records: Iterable[AlertRecord]) -> None:
        self.alerts.clear()
        self.keys.clear()
        self.wakes.clear()
        for record in records:
            if record.resolved:
                continue
            key = (record.site, record.key)
            if key in self.keys:
                raise InputError(f"two unresolved alerts for {record.site}/{record.key}")
            self.alerts[record.id] = record
            self.keys[key] = record.id
            if (wake := record.wake) is not None:
                self.wakes.append((wake, record.id))
        heapq.heapify(self.wakes)

    def commit(self, txn: _Txn) -> None:
        for record in txn.alerts.values():
            key = (record.site, record.key)
            if record.resolved:
                self.alerts.pop(record.id, None)
                if self.keys.get(key) == record.id:
                    del self.keys[key]
                continue
            self.alerts[record.id] = record
            self.keys[key] = record.id
            if (wake := record.wake) is not None:
                heapq.heappush(self.wakes, (wake, record.id))
        if len(self.wakes) > 4 * len(self.alerts) + 1024:
            self.wakes = [
                (wake, record.id)
                for record in self.alerts.values()
                if (wake := record.wake) is not None
            ]
            heapq.heapify(self.wakes)

    def pop_due(self, now: datetime) -> list[tuple[datetime, str]]:
        """Take the wake-ups due at ``now`` off the heap (stale entries included: the caller
        checks each against its alert, and pushes them back if its write fails)."""
        due: list[tuple[datetime, str]] = []
        while self.wakes and self.wakes[0][0] <= now:
            due.append(heapq.heappop(self.wakes))
        return due

    def push_back(self, entries: Iterable[tuple[datetime, str]]) -> None:
        for entry in entries:
            heapq.heappush(self.wakes, entry)

    def next_wake(self) -> datetime | None:
        while self.wakes:
            wake, alert_id = self.wakes[0]
            record = self.alerts.get(alert_id)
            if record is not None and record.wake == wake:
                return wake
            heapq.heappop(self.wakes)
        return None

    def ladder(self, site: str) -> Ladder | None:
        entry = self.escalation.get(site)
        if entry is None:
            if site not in self.warned_sites:
                self.warned_sites.add(site)
                logger.warning("alerts: site %s has no escalation ladder: nobody is notified", site)
            return None
        return entry.ladder


class _Txn:
    """One operation's changes over the working set, not applied to it until stored."""

    def __init__(self, book: _Book, now: datetime) -> None:
        self.book = book
        self.now = now
        self.alerts: dict[str, AlertRecord] = {}
        """Every alert this operation touched, its latest state, in first-touch order."""
        self.audit: list[AuditRecord] = []
        self.changes: list[Change] = []
        self.skipped = 0
        self._keys: dict[tuple[str, str], str | None] = {}
        self._quiet: dict[tuple[str, str], bool] = {}

    # -- the overlay ----------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRecord | None:
        found = self.alerts.get(alert_id)
        return found if found is not None else self.book.alerts.get(alert_id)

    def by_key(self, site: str, key: str) -> AlertRecord | None:
        pair = (site, key)
        alert_id = self._keys[pair] if pair in self._keys else self.book.keys.get(pair)
        if alert_id is None:
            return None
        record = self.get(alert_id)
        return None if record is None or record.resolved else record

    def _store(self, record: AlertRecord) -> None:
        self.alerts[record.id] = record
        self._keys[(record.site, record.key)] = None if record.resolved else record.id

    def _log(
        self,
        record: AlertRecord,
        action: AlertAction,
        actor: str,
        detail: str,
        time: datetime | None = None,
    ) -> None:
        when = record.updated if time is None else time
        self.audit.append(AuditRecord(record.id, record.site, when, action, actor, detail))

    def _announce(
        self,
        record: AlertRecord,
        action: AlertAction,
        actor: str,
        detail: str,
        *,
        levels: Iterable[int] = (),
        reason: str = "",
        exclude: str | None = None,
    ) -> None:
        wire = record.to_wire()  # first: a record that cannot be published is not stored
        sent: list[Notification] = []
        held: list[Notification] = []
        entry = self.book.escalation.get(record.site)
        if entry is not None:
            for recipient in entry.members(levels):
                if recipient.id == exclude or not recipient.may_receive(
                    record.kind, record.resident
                ):
                    continue
                notification = Notification(recipient, wire, reason)
                if self._quiet_now(record, recipient):
                    held.append(notification)
                else:
                    sent.append(notification)
        if sent:
            detail = f"{detail}; notified {_ids(sent)}" if detail else f"notified {_ids(sent)}"
        if held:
            detail = f"{detail}; held {_ids(held)}" if detail else f"held {_ids(held)}"
        self._store(record)
        self._log(record, action, actor, detail)
        self.changes.append(Change(action, wire, tuple(sent), tuple(held)))
        logger.debug("alert %s %s site=%s by=%s", record.id, action.value, record.site, actor)

    def _quiet_now(self, record: AlertRecord, recipient: Recipient) -> bool:
        if record.severity.rank >= _LOUD or recipient.quiet_hours is None:
            return False
        pair = (record.site, recipient.id)
        quiet = self._quiet.get(pair)
        if quiet is None:
            quiet = self._quiet[pair] = recipient.quiet_hours.contains(self.now)
        return quiet

    # -- timers ---------------------------------------------------------------------------

    def _schedule(
        self, site: str, severity: Severity, level: int, origin: datetime, after: datetime
    ) -> datetime | None:
        """When the step after ``level`` (or the next reminder) is due, strictly after
        ``after``; None if nothing will be."""
        ladder = self.book.ladder(site)
        if ladder is None or severity.rank < self.book.config.escalate_from.rank:
            return None
        level = min(level, ladder.last)
        if level < ladder.last:
            return origin + ladder.steps[level + 1].after
        if ladder.repeat_every is None:
            return None
        base = origin + ladder.steps[level].after
        repeats = max(1, (after - base) // ladder.repeat_every + 1)
        return base + repeats * ladder.repeat_every

    def _restart(self, record: AlertRecord, moment: datetime) -> tuple[datetime, datetime | None]:
        """(origin, next due) for escalation restarting at the alert's level at ``moment``,
        as if that level's step had just fired."""
        ladder = self.book.ladder(record.site)
        level = (
            record.escalation_level if ladder is None else min(record.escalation_level, ladder.last)
        )
        origin = moment if ladder is None else moment - ladder.steps[level].after
        return origin, self._schedule(record.site, record.severity, level, origin, moment)

    def _manual(self, record: AlertRecord) -> bool:
        config = self.book.config
        return record.rule in config.manual_rules or (
            config.manual_from is not None and record.severity.rank >= config.manual_from.rank
        )

    # -- conditions -----------------------------------------------------------------------

    def condition(self, site: str, condition: Condition) -> None:
        record = self.by_key(site, condition.key)
        try:
            if condition.active:
                if record is None:
                    self._open(site, condition)
                else:
                    self._again(record, condition)
            elif record is not None and record.condition_active:
                self.ended(record, known=condition.known)
        except ValidationError as exc:
            # An id that does not fit the wire format: the roster's fault, not the others'.
            self.skipped += 1
            logger.warning(
                "alerts: skipped condition %s of site %s: %d wire errors",
                condition.key,
                site,
                exc.error_count(),
            )

    def _open(self, site: str, condition: Condition) -> None:
        now = self.now
        alert_id = self.book.new_id()
        if not alert_id or len(alert_id) > MAX_ALERT_ID:
            raise InputError(f"alert ids must have 1 to {MAX_ALERT_ID} characters")
        severity = condition.severity
        record = AlertRecord(
            id=alert_id,
            site=site,
            key=condition.key,
            rule=condition.rule,
            kind=condition.kind,
            severity=severity,
            state=AlertState.OPEN,
            title=_title(condition.message, condition.key),
            resident=condition.resident,
            device=condition.device,
            gateway=condition.gateway,
            metric=condition.metric,
            value=condition.value,
            opened=now,
            updated=now,
            escalation_origin=now,
            next_escalation_at=self._schedule(site, severity, 0, now, now),
            condition_active=True,
            condition_severity=severity,
            condition_time=condition.time,
        )
        self._announce(
            record,
            AlertAction.OPENED,
            SYSTEM,
            f"{condition.key} severity={severity.value}",
            levels=(0,),
            reason="new",
        )

    def _again(self, record: AlertRecord, condition: Condition) -> None:
        now = max(self.now, record.updated)
        severity = condition.severity
        seen = replace(
            record,
            condition_active=True,
            condition_severity=severity,
            condition_time=condition.time,
        )
        if severity.rank > record.severity.rank:
            raised = replace(
                seen,
                severity=severity,
                count=record.count + 1,
                value=condition.value,
                title=_title(condition.message, condition.key),
                updated=now,
            )
            detail = f"{record.severity.value}->{severity.value} count={raised.count}"
            if record.state is AlertState.OPEN and record.next_escalation_at is not None:
                pass  # already escalating: keep its timer, a worsening never delays it
            else:
                if record.state is not AlertState.OPEN:
                    detail += f"; reopened from {record.state.value}"
                origin, due = self._restart(raised, now)
                raised = replace(
                    raised,
                    state=AlertState.OPEN,
                    acknowledged_by=None,
                    acknowledged_at=None,
                    snoozed_until=None,
                    snoozed_from=None,
                    escalation_origin=origin,
                    next_escalation_at=due,
                )
            self._announce(
                raised,
                AlertAction.SEVERITY_RAISED,
                SYSTEM,
                detail,
                levels=range(raised.escalation_level + 1),
                reason=f"severity raised to {severity.value}",
            )
        elif (
            not record.condition_active
            or (
                record.rule in self.book.config.event_rules
                and condition.time != record.condition_time
            )
            or severity.rank > record.condition_severity.rank
        ):
            again = replace(
                seen,
                count=record.count + 1,
                value=condition.value,
                title=_title(condition.message, condition.key),
                updated=now,
            )
            self._announce(again, AlertAction.RETRIGGERED, SYSTEM, f"count={again.count}")
        elif severity.rank < record.condition_severity.rank:
            self._store(seen)
            self._log(seen, AlertAction.EASED, SYSTEM, f"now {severity.value}", now)
        # else: the same condition seen again (a full evaluation after a restart): nothing.

    def ended(self, record: AlertRecord, *, known: bool = True) -> None:
        now = max(self.now, record.updated)
        if self._manual(record) or not known:
            cleared = replace(record, condition_active=False)
            self._store(cleared)
            why = "condition ended" if known else "no fresh data to decide on"
            self._log(
                cleared,
                AlertAction.CLEARED,
                SYSTEM,
                f"{why}; stays until a person resolves it",
                now,
            )
            return
        resolved = replace(_closed(record, SYSTEM, now), condition_active=False)
        self._announce(
            resolved,
            AlertAction.RESOLVED,
            SYSTEM,
            "condition ended",
            levels=range(record.escalation_level + 1),
            reason="resolved: condition ended",
        )

    # -- staff ----------------------------------------------------------------------------

    def acknowledge(self, record: AlertRecord, by: str, comment: str | None) -> None:
        if record.state is AlertState.ACKNOWLEDGED:
            raise InvalidTransitionError(
                record.id, record.state.value, "acknowledge", f"done by {record.acknowledged_by}"
            )
        now = max(self.now, record.updated)
        acknowledged = replace(
            record,
            state=AlertState.ACKNOWLEDGED,
            acknowledged_by=by,
            acknowledged_at=now,
            comment=comment if comment is not None else record.comment,
            snoozed_until=None,
            snoozed_from=None,
            next_escalation_at=None,
            updated=now,
        )
        self._announce(
            acknowledged,
            AlertAction.ACKNOWLEDGED,
            by,
            comment or "",
            levels=range(1, record.escalation_level + 1),
            reason=f"acknowledged by {by}",
            exclude=by,
        )

    def snooze(self, record: AlertRecord, by: str, until: datetime) -> None:
        now = max(self.now, record.updated)
        if until <= now:
            raise InvalidTransitionError(
                record.id, record.state.value, "snooze", "until is not after now"
            )
        config = self.book.config
        cap = (
            config.critical_snooze_cap
            if record.severity is Severity.CRITICAL
            else config.max_snooze
        )
        if until - now > cap:
            raise SnoozeTooLongError(record.id, record.state.value, cap)
        back = record.snoozed_from if record.state is AlertState.SNOOZED else record.state
        snoozed = replace(
            record,
            state=AlertState.SNOOZED,
            snoozed_until=until,
            snoozed_from=back,
            next_escalation_at=None,
            updated=now,
        )
        self._announce(snoozed, AlertAction.SNOOZED, by, f"until {until.isoformat()}")

    def resolve(self, record: AlertRecord, by: str, comment: str | None) -> None:
        now = max(self.now, record.updated)
        resolved = replace(
            _closed(record, by, now),
            comment=comment if comment is not None else record.comment,
        )
        self._announce(
            resolved,
            AlertAction.RESOLVED,
            by,
            comment or "",
            levels=range(record.escalation_level + 1),
            reason=f"resolved by {by}",
            exclude=by,
        )

    # -- timers firing --------------------------------------------------------------------

    def wake(self, record: AlertRecord) -> None:
        due = record.wake
        if due is None or due > self.now:
            return
        if record.state is AlertState.SNOOZED:
            self._unsnooze(record)
        else:
            self._escalate(record)

    def _unsnooze(self, record: AlertRecord) -> None:
        now = max(self.now, record.updated)
        if record.snoozed_from is AlertState.ACKNOWLEDGED:
            back = replace(
                record,
                state=AlertState.ACKNOWLEDGED,
                snoozed_until=None,
                snoozed_from=None,
                updated=now,
            )
            self._announce(back, AlertAction.UNSNOOZED, SYSTEM, "back to acknowledged")
            return
        reopened = replace(
            record, state=AlertState.OPEN, snoozed_until=None, snoozed_from=None, updated=now
        )
        origin, due = self._restart(reopened, now)
        reopened = replace(reopened, escalation_origin=origin, next_escalation_at=due)
        self._announce(
            reopened,
            AlertAction.UNSNOOZED,
            SYSTEM,
            f"back to open at level {record.escalation_level}",
            levels=range(record.escalation_level + 1),
            reason="snooze ended",
        )

    def _escalate(self, record: AlertRecord) -> None:
        now = self.now
        ladder = self.book.ladder(record.site)
        if ladder is None or record.severity.rank < self.book.config.escalate_from.rank:
            self._store(replace(record, next_escalation_at=None))
            return
        origin = record.escalation_origin or record.opened
        level = min(record.escalation_level, ladder.last)
        reached: list[int] = []
        while level < ladder.last and origin + ladder.steps[level + 1].after <= now:
            level += 1
            reached.append(level)
        due = self._schedule(record.site, record.severity, level, origin, now)
        updated = max(now, record.updated)
        if reached:
            escalated = replace(
                record, escalation_level=level, next_escalation_at=due, updated=updated
            )
            skipped = f" (skipped to it from {record.escalation_level})" if len(reached) > 1 else ""
            self._announce(
                escalated,
                AlertAction.ESCALATED,
                SYSTEM,
                f"level {level}{skipped}",
                levels=reached,
                reason=f"escalated to level {level}",
            )
        elif level == ladder.last and ladder.repeat_every is not None:
            reminded = replace(
                record, escalation_level=level, next_escalation_at=due, updated=updated
            )
            self._announce(
                reminded,
                AlertAction.ESCALATED,
                SYSTEM,
                f"reminder at level {level}",
                levels=(level,),
                reason=f"reminder: still not acknowledged (level {level})",
            )
        else:  # the ladder changed since this was scheduled
            self._store(replace(record, next_escalation_at=due))


class Lifecycle:
    """The alert lifecycle over a ledger (see the module docstring).

    ``escalation`` maps each site to its :class:`~cloud.alerts.escalation.SiteEscalation`.
    ``new_id`` makes alert ids (default: uuid4 hex, 32 characters; any unique strings of at
    most 64 characters will do). Call :meth:`load` once before anything else. Operations are
    serialised (one at a time); each returns its changes after they are stored.
    """

    def __init__(
        self,
        ledger: AlertLedger,
        escalation: Mapping[str, SiteEscalation],
        config: LifecycleConfig | None = None,
        *,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._ledger = ledger
        self._book = _Book(
            escalation,
            config if config is not None else LifecycleConfig(),
            new_id if new_id is not None else (lambda: uuid.uuid4().hex),
        )
        self._lock = asyncio.Lock()
        self._loaded = False
        self.skipped = 0
        """Conditions skipped because their ids do not fit the wire format."""

    @property
    def ledger(self) -> AlertLedger:
        return self._ledger

    @property
    def config(self) -> LifecycleConfig:
        return self._book.config

    async def load(self) -> int:
        """Read the unresolved alerts from the ledger; returns how many."""
        async with self._lock:
            records = await self._ledger.unresolved()
            self._book.reset(records)
            self._loaded = True
        logger.info("alerts: loaded %d unresolved alerts", len(self._book.alerts))
        return len(self._book.alerts)

    # -- reading the working set ----------------------------------------------------------

    def unresolved(self, site: str | None = None) -> list[AlertRecord]:
        """The unresolved alerts (of one site), oldest first."""
        found = [a for a in self._book.alerts.values() if site is None or a.site == site]
        found.sort(key=lambda a: (a.opened, a.id))
        return found

    def find(self, site: str, key: str) -> AlertRecord | None:
        """The unresolved alert of a condition key, if any."""
        alert_id = self._book.keys.get((site, key))
        return None if alert_id is None else self._book.alerts.get(alert_id)

    def next_wake(self) -> datetime | None:
        """The earliest time :meth:`tick` has something to do (an escalation or the end of a
        snooze); None when nothing is scheduled."""
        return self._book.next_wake()

    # -- operations -----------------------------------------------------------------------

    async def apply(
        self, site: str, conditions: Iterable[Condition], now: datetime
    ) -> list[Change]:
        """Conditions of one site that changed (the engine's edges): open, count, raise,
        resolve."""
        self._check_site(site)
        batch = list(conditions)
        return await self._run(now, lambda txn: self._conditions(txn, site, batch))

    async def reconcile(
        self, site: str, active: Iterable[Condition], now: datetime
    ) -> list[Change]:
        """A full evaluation of one site (every condition active now, e.g. the first after a
        restart): like :meth:`apply`, and every unresolved alert of the site whose condition
        is not among them has its condition ended."""
        self._check_site(site)
        batch = [condition for condition in active if condition.active]

        def work(txn: _Txn) -> None:
            self._conditions(txn, site, batch)
            keys = {condition.key for condition in batch}
            for alert_id, record in list(self._book.alerts.items()):
                if record.site != site or record.key in keys:
                    continue
                current = txn.get(alert_id)
                if current is not None and not current.resolved and current.condition_active:
                    txn.ended(current)

        return await self._run(now, work)

    async def acknowledge(
        self, alert_id: str, by: str, comment: str | None = None, *, now: datetime
    ) -> list[Change]:
        actor, text = _actor(by), _comment(comment)
        return await self._staff(
            alert_id, "acknowledge", now, lambda txn, r: txn.acknowledge(r, actor, text)
        )

    async def snooze(
        self, alert_id: str, by: str, until: datetime, *, now: datetime
    ) -> list[Change]:
        actor = _actor(by)
        until = _aware(until, "until")
        return await self._staff(
            alert_id, "snooze", now, lambda txn, r: txn.snooze(r, actor, until)
        )

    async def resolve(
        self, alert_id: str, by: str, comment: str | None = None, *, now: datetime
    ) -> list[Change]:
        actor, text = _actor(by), _comment(comment)
        return await self._staff(
            alert_id, "resolve", now, lambda txn, r: txn.resolve(r, actor, text)
        )

    async def tick(self, now: datetime) -> list[Change]:
        """Fire what is due at ``now``: escalation steps, reminders, ends of snoozes."""
        self._require_loaded()
        now = _aware(now, "now")
        async with self._lock:
            due = self._book.pop_due(now)
            txn = _Txn(self._book, now)
            try:
                for alert_id in dict.fromkeys(alert_id for _, alert_id in due):
                    record = txn.get(alert_id)
                    if record is not None and not record.resolved:
                        txn.wake(record)
                await self._store(txn)
            except BaseException:
                # Stale entries are harmless: a wake-up is checked against its alert.
                self._book.push_back(due)
                raise
            return txn.changes

    # -- machinery ------------------------------------------------------------------------

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise NotLoadedError("call Lifecycle.load() before using it")

    @staticmethod
    def _check_site(site: str) -> None:
        if not isinstance(site, str) or _ID.fullmatch(site) is None:
            raise InputError(f"site {site!r} is not a valid id")

    def _conditions(self, txn: _Txn, site: str, batch: Sequence[Condition]) -> None:
        for condition in batch:
            txn.condition(site, condition)

    async def _run(self, now: datetime, work: Callable[[_Txn], None]) -> list[Change]:
        self._require_loaded()
        now = _aware(now, "now")
        async with self._lock:
            txn = _Txn(self._book, now)
            work(txn)
            await self._store(txn)
            return txn.changes

    async def _staff(
        self,
        alert_id: str,
        action: str,
        now: datetime,
        work: Callable[[_Txn, AlertRecord], None],
    ) -> list[Change]:
        self._require_loaded()
        now = _aware(now, "now")
        async with self._lock:
            record = self._book.alerts.get(alert_id)
            if record is None:
                stored = await self._ledger.get(alert_id)
                if stored is None:
                    raise AlertNotFoundError(alert_id)
                raise InvalidTransitionError(alert_id, stored.state.value, action)
            txn = _Txn(self._book, now)
            work(txn, record)
            await self._store(txn)
            return txn.changes

    async def _store(self, txn: _Txn) -> None:
        """Write the operation through the ledger, then apply it to the working set."""
        if not txn.alerts and not txn.audit:
            self.skipped += txn.skipped
            return
        write = asyncio.ensure_future(self._ledger.write(list(txn.alerts.values()), txn.audit))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # The write may land anyway: let it finish so memory matches storage.
            try:
                await write
            except Exception:
                logger.warning("alerts: a write interrupted by cancellation failed")
            else:
                self._commit(txn)
            raise
        self._commit(txn)

    def _commit(self, txn: _Txn) -> None:
        self._book.commit(txn)
        self.skipped += txn.skipped
