"""The alert engine: readings in, conditions out. Pure and deterministic.

:class:`AlertEngine` holds the :class:`~cloud.alerts.state.RuleState` and the roster, turns
wire :class:`vitals.Reading`\\s and :class:`vitals.Status` messages into state updates, and
:meth:`AlertEngine.evaluate` turns the rules' arrays into :class:`Condition`\\s. Time comes
only from the arguments (``now``, ``arrived``, ``start``); nothing reads a clock, so the same
inputs always give the same conditions.

Conditions are *edge-friendly*: each has a stable :attr:`Condition.key` (rule, subject and
metric; not the device, not the value), :meth:`AlertEngine.evaluate` lists the conditions
active now, and :func:`edges` compares two evaluations, giving the conditions that became
active, changed severity (or, for an event, happened again) and those that ended
(``active=False``). A service ticking every second should keep the arrays of its last tick
and call :meth:`AlertEngine.changes` (the same edges, computed on the arrays, so a tick costs
the rules plus the few conditions that changed, not one object per active condition).

The alert lifecycle (dedup, open, acknowledge, resolve, escalate, notify) is the next step
and consumes exactly this; it should resolve an alert only when its rule is *known* and
inactive (:attr:`cloud.alerts.rules.RuleResult.known`), since a series that went quiet is
not a resident who got better.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from cloud.alerts.config import EngineConfig, Resident, Roster
from cloud.alerts.errors import InputError
from cloud.alerts.news2 import Consciousness, SpO2Scale
from cloud.alerts.rules import SEVERITIES, RuleResult, Subject
from cloud.alerts.rules import evaluate as evaluate_rules
from cloud.alerts.state import METRIC_INDEX, RuleState, Samples
from vitals.metrics import Metric
from vitals.wire import AlertKind, GatewayState, Quality, Reading, Severity, Status

__all__ = ["AlertEngine", "Condition", "IngestReport", "edges", "seconds"]

_EVENT_RULES: Final = frozenset({"fall", "help"})
_SEVERITY_NAMES: Final = [severity.value for severity in SEVERITIES]
_BATTERY: Final = Metric.BATTERY_LEVEL


def seconds(moment: datetime) -> float:
    """An aware datetime as float seconds since the Unix epoch."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"naive datetime {moment.isoformat()}: times must carry a time zone")
    return moment.timestamp()


@dataclass(slots=True, frozen=True)
class Condition:
    """One rule's verdict on one resident, device or gateway."""

    key: str
    """``rule:subject[:metric]``: stable while the condition lasts, whatever its value."""
    rule: str
    kind: AlertKind
    severity: Severity
    active: bool
    resident: str | None
    device: str | None
    gateway: str | None
    metric: Metric | None
    value: float | None
    time: datetime | None
    """When the deciding data was measured (the event's time for fall and help)."""
    message: str
    """Ids and values only, never a name."""
    known: bool = True
    """For an ended condition (``active=False``): whether the rule still had fresh data to
    decide on. False means the condition is no longer *measurable* (a silent or removed
    sensor), which is not a recovery: the lifecycle keeps such an alert for a person."""


@dataclass(slots=True, frozen=True)
class IngestReport:
    applied: int
    unknown_device: int
    """Readings from devices the roster does not know (skipped)."""
    unknown_resident: int
    """Readings of a shared device whose user index maps to no resident (presence only)."""


def edges(previous: Iterable[Condition], current: Iterable[Condition]) -> list[Condition]:
    """What changed between two evaluations: conditions new in ``current`` or with another
    severity (or, for fall and help, another event time), then those of ``previous`` that
    are gone, as copies with ``active=False``."""
    before = {condition.key: condition for condition in previous}
    now = {condition.key: condition for condition in current}
    changed = [
        condition
        for key, condition in now.items()
        if (old := before.get(key)) is None
        or old.severity is not condition.severity
        or (condition.rule in _EVENT_RULES and old.time != condition.time)
    ]
    ended = [replace(old, active=False) for key, old in before.items() if key not in now]
    return changed + ended


class AlertEngine:
    """Holds the rule state for a roster; see the module docstring."""

    def __init__(
        self, roster: Roster, config: EngineConfig | None = None, *, start: datetime
    ) -> None:
        self.config = config if config is not None else EngineConfig()
        self.roster = roster
        self.resident_ids = tuple(resident.id for resident in roster.residents)
        self.device_ids = tuple(device.id for device in roster.devices)
        self.gateway_ids = roster.gateway_ids
        self._residents = {rid: index for index, rid in enumerate(self.resident_ids)}
        self._devices = {did: index for index, did in enumerate(self.device_ids)}
        self._gateways = {gid: index for index, gid in enumerate(self.gateway_ids)}
        self._device_resident = [
            self._residents[d.resident] if d.resident is not None else -1 for d in roster.devices
        ]
        self._users = {
            (self._devices[d.id], user): self._residents[rid]
            for d in roster.devices
            for user, rid in d.users
        }
        self._device_owner = [
            self.resident_ids[owner] if owner >= 0 else None for owner in self._device_resident
        ]
        self._device_gateway_id = [device.gateway for device in roster.devices]
        self._device_label = [
            f"{device.id} ({owner})" if owner is not None else device.id
            for device, owner in zip(roster.devices, self._device_owner, strict=True)
        ]
        self.state = RuleState(
            n_residents=len(self.resident_ids),
            device_resident=np.array(self._device_resident, dtype=np.int64),
            device_gateway=np.array(
                [self._gateways[d.gateway] for d in roster.devices], dtype=np.int64
            ),
            device_kind=[d.kind for d in roster.devices],
            device_cadence=np.array(
                [d.expected_cadence.total_seconds() for d in roster.devices], dtype=np.float64
            ),
            n_gateways=len(self.gateway_ids),
            config=self.config,
            start=seconds(start),
        )
        for resident in roster.residents:
            self.configure(resident)

    # --- lookups ------------------------------------------------------------------------

    def resident_index(self, resident: str) -> int:
        try:
            return self._residents[resident]
        except KeyError:
            raise InputError(f"unknown resident {resident!r}") from None

    def device_index(self, device: str) -> int:
        try:
            return self._devices[device]
        except KeyError:
            raise InputError(f"unknown device {device!r}") from None

    def find_device(self, device: str) -> int:
        """The device's index, or -1 when the roster does not know it."""
        return self._devices.get(device, -1)

    def resident_of(self, device: str, user: int | None = None) -> str | None:
        """The resident a reading of ``device`` (with user index ``user``) belongs to."""
        index = self._devices.get(device)
        if index is None:
            return None
        owner = self._device_resident[index]
        if user is not None:
            owner = self._users.get((index, user), owner)
        return self.resident_ids[owner] if owner >= 0 else None

    # --- records and staff observations -------------------------------------------------

    def configure(self, resident: Resident) -> None:
        """Apply a resident's record (scale, oxygen, time zone, overrides)."""
        self.state.configure_resident(
            self.resident_index(resident.id),
            scale_2=resident.spo2_scale == SpO2Scale.SCALE_2,
            on_oxygen=resident.on_oxygen,
            utc_offset=resident.utc_offset.total_seconds(),
            overrides=resident.overrides,
        )

    def observe_consciousness(self, resident: str, level: Consciousness, time: datetime) -> None:
        """A staff entry of ACVPU; it counts for NEWS2 for ``news2.consciousness``."""
        self.state.observe_consciousness(self.resident_index(resident), level.code, seconds(time))

    def set_oxygen(self, resident: str, on_oxygen: bool | None) -> None:
        self.state.set_oxygen(self.resident_index(resident), on_oxygen)

    # --- input --------------------------------------------------------------------------

    def ingest(
        self, readings: Iterable[Reading], *, arrived: datetime | None = None
    ) -> IngestReport:
        """Apply validated readings. ``arrived`` is when they reached the cloud: pass it (the
        ingestor's receive time) so that an event backfilled after an outage still alerts for
        ``events.hold``; it defaults to each reading's gateway receive time."""
        arrival = seconds(arrived) if arrived is not None else None
        residents: list[int] = []
        metrics: list[int] = []
        devices: list[int] = []
        times: list[float] = []
        values: list[float] = []
        valid: list[bool] = []
        no_contact: list[bool] = []
        arrivals: list[float] = []
        unknown_device = 0
        unknown_resident = 0
        for reading in readings:
            device = self._devices.get(reading.device)
            if device is None:
                unknown_device += 1
                continue
            if reading.metric is _BATTERY:
                resident = -1
            else:
                resident = self._device_resident[device]
                if reading.user is not None:
                    resident = self._users.get((device, reading.user), resident)
                if resident < 0:
                    unknown_resident += 1
            flags = reading.flags
            off = Quality.NO_CONTACT in flags
            residents.append(resident)
            metrics.append(METRIC_INDEX[reading.metric])
            devices.append(device)
            times.append(reading.time.timestamp())
            values.append(reading.value)
            valid.append(not (off or Quality.QUESTIONABLE in flags))
            no_contact.append(off)
            arrivals.append(arrival if arrival is not None else reading.received.timestamp())
        self.state.ingest(
            Samples.of(
                residents,
                metrics,
                times,
                values,
                device=devices,
                valid=valid,
                no_contact=no_contact,
                arrival=arrivals,
            )
        )
        return IngestReport(len(times), unknown_device, unknown_resident)

    def apply_status(self, status: Status, *, arrived: datetime) -> None:
        """A gateway status or last will. Unknown gateways and devices are ignored."""
        gateway = self._gateways.get(status.gateway)
        if gateway is None:
            return
        arrival = seconds(arrived)
        time = status.time.timestamp() if status.time is not None else arrival
        self.state.gateway_status(gateway, status.state is GatewayState.ONLINE, time, arrival)
        seen: list[tuple[int, float]] = []
        batteries: list[tuple[int, float]] = []
        for entry in status.devices:
            device = self._devices.get(entry.device)
            if device is None:
                continue
            if entry.last_seen is not None:
                seen.append((device, entry.last_seen.timestamp()))
            if entry.battery is not None:
                batteries.append((device, float(entry.battery)))
        if seen:
            self.state.device_seen(
                np.array([d for d, _ in seen], dtype=np.int64), np.array([t for _, t in seen])
            )
        if batteries:
            self.state.battery_readings(
                np.array([d for d, _ in batteries], dtype=np.int64),
                np.full(len(batteries), time),
                np.array([level for _, level in batteries]),
            )

    def refill(
        self,
        resident: npt.ArrayLike,
        metric: npt.ArrayLike,
        time_ns: npt.ArrayLike,
        value: npt.ArrayLike,
        *,
        device: npt.ArrayLike | None = None,
        valid: npt.ArrayLike | None = None,
    ) -> None:
        """Start-up refill from stored history: resident indices, metric indices
        (:data:`cloud.alerts.state.METRICS`), int nanosecond times and values."""
        self.state.refill(
            resident,
            metric,
            np.asarray(time_ns, dtype=np.int64) / 1e9,
            value,
            device=device,
            valid=valid,
        )

    # --- output -------------------------------------------------------------------------

    def evaluate_arrays(self, now: datetime) -> list[RuleResult]:
        """Every rule as arrays over its subjects."""
        return evaluate_rules(self.state, seconds(now))

    def evaluate(self, now: datetime) -> list[Condition]:
        """The conditions active at ``now``, in rule order then subject order."""
        return self.conditions(self.evaluate_arrays(now))

    def changes(
        self, previous: Sequence[RuleResult] | None, current: Sequence[RuleResult]
    ) -> list[Condition]:
        """:func:`edges` computed on the arrays of two evaluations of this engine: only the
        rows that changed become conditions, so a tick where little changes costs little.
        With no ``previous`` every active condition is new."""
        if previous is None or [(r.rule, r.metric, len(r)) for r in previous] != [
            (r.rule, r.metric, len(r)) for r in current
        ]:
            return self.conditions(current)
        raised: list[Condition] = []
        ended: list[Condition] = []
        for old, new in zip(previous, current, strict=True):
            changed = new.active & (~old.active | (new.severity != old.severity))
            if new.rule in _EVENT_RULES:
                changed |= new.active & (new.time != old.time)
            rows = np.flatnonzero(changed)
            if rows.size:
                raised.extend(self._conditions(new, rows))
            gone = np.flatnonzero(old.active & ~new.active)
            if gone.size:
                ended.extend(
                    replace(c, active=False, known=bool(known))
                    for c, known in zip(
                        self._conditions(old, gone), new.known[gone].tolist(), strict=True
                    )
                )
        return raised + ended

    def conditions(self, results: Sequence[RuleResult]) -> list[Condition]:
        """The active rows of rule results as conditions (ids looked up, messages built)."""
        found: list[Condition] = []
        for result in results:
            rows = np.flatnonzero(result.active)
            if rows.size:
                found.extend(self._conditions(result, rows))
        return found

    def _conditions(self, result: RuleResult, rows: npt.NDArray[np.int64]) -> list[Condition]:
        subject = result.subject
        metric = result.metric
        suffix = f":{metric.value}" if metric is not None and subject is Subject.RESIDENT else ""
        rule = result.rule
        kind = result.kind
        device_ids = self.device_ids
        out = []
        for row, body, rank, value, time, device in zip(
            rows.tolist(),
            result.describe(rows),
            result.severity[rows].tolist(),
            result.value[rows].tolist(),
            result.time[rows].tolist(),
            result.device[rows].tolist(),
            strict=True,
        ):
            gateway: str | None = None
            if subject is Subject.RESIDENT:
                resident: str | None = self.resident_ids[row]
                name = label = self.resident_ids[row]
            elif subject is Subject.DEVICE:
                resident = self._device_owner[row]
                gateway = self._device_gateway_id[row]
                name = device_ids[row]
                label = self._device_label[row]
            else:
                resident = None
                name = label = gateway = self.gateway_ids[row]
            out.append(
                Condition(
                    key=f"{rule}:{name}{suffix}",
                    rule=rule,
                    kind=kind,
                    severity=SEVERITIES[rank],
                    active=True,
                    resident=resident,
                    device=device_ids[device] if device >= 0 else None,
                    gateway=gateway,
                    metric=metric,
                    value=value if math.isfinite(value) else None,
                    time=datetime.fromtimestamp(time, UTC) if math.isfinite(time) else None,
                    message=f"[{_SEVERITY_NAMES[rank]}] {label}: {body}",
                )
            )
        return out
