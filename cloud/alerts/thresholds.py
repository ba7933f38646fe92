"""Threshold rules: care-home defaults, per-resident overrides, and the per-resident table.

A :class:`ThresholdRule` watches one or more metrics in one direction (too high or too low)
with one or more :class:`Level`\\s of rising severity. Each level has a *trigger* and a
separate *clear* level (hysteresis): it fires when readings have stayed beyond the trigger
long enough (``sustain`` seconds and ``min_readings`` readings, see :mod:`cloud.alerts.latch`)
and, once fired, stays active until readings have stayed back within the clear level for
``clear_sustain`` seconds and ``clear_readings`` readings. A single artefact (a heart rate of
210 for 3 s) never fires, and a value hovering at the line does not flap.

Care-home defaults (:data:`DEFAULT_RULES`) and why:

================ ======================= ============================== ======================
rule             warning                 urgent                         sustained
================ ======================= ============================== ======================
hr_high          -                       > 130 /min (clear <= 120)      60 s, 5 readings
hr_low           < 50 /min (clear >= 55) < 40 /min (clear >= 45)        60 s, 5 readings
spo2_low scale 1 < 92 % (clear >= 94)    < 90 % (clear >= 92)           60 s, 5 readings
spo2_low scale 2 < 86 % (clear >= 88)    < 84 % (clear >= 86)           60 s, 5 readings
rr_high          >= 25 /min (clear <= 22) >= 30 /min (clear <= 26)      120 s, 5 readings
rr_low           -                       <= 8 /min (clear >= 10)        120 s, 5 readings
temperature_high >= 38.0 C (clear <= 37.7) >= 39.0 C (clear <= 38.5)  1 reading
temperature_low  -                       <= 35.0 C (clear >= 35.5)      1 reading
sbp_low          <= 100 mmHg (clear >= 105) <= 90 mmHg (clear >= 95)   1 reading
sbp_high         >= 180 mmHg (clear <= 170) >= 220 mmHg (clear <= 200) 1 reading
glucose_low      < 4.0 mmol/L (clear >= 4.5) < 3.0 mmol/L (clear >= 3.5) 1 reading
glucose_high     >= 15.0 mmol/L (clear <= 13.0) -                      2 readings
================ ======================= ============================== ======================

* Heart rate, SpO2 and respiration limits sit on the NEWS2 "red" (score 3) rows (RCP 2017:
  pulse <= 40 or >= 131, SpO2 <= 91 on scale 1 and <= 83 on scale 2, respiration <= 8 or
  >= 25), with a warning a step before where a missed low is dangerous (bradycardia < 50,
  SpO2 < 92 / < 86). Scale 2 (COPD, target 88-92 %) uses the scale 2 rows, so a resident
  living at 88 % is not alarmed all day. There is no heart-rate warning under 130: elderly
  residents walking reach 110-120 and a warning there would be noise.
* A continuous reading must be sustained for 60 s (120 s for the wearable's respiration
  rate, which motion disturbs more): pulse-oximeter alarm studies show delays of 15-60 s
  remove most nuisance alarms (Lansdowne et al., BMC Nursing 2016; the Johns Hopkins and
  Rheineck studies cited by Masimo's BI&T 2011 analysis), and a care home is not an ICU.
* Temperature: 38.0 degC warning and 39.0 degC urgent (NEWS2 scores 38.1-39.0 as 1 and >= 39.1
  as 2); fever is often blunted in the elderly, so :mod:`cloud.alerts.trends` adds a rise over
  the resident's own baseline (IDSA 2008 long-term-care guideline: >= 1.1 degC). <= 35.0 degC
  is hypothermia (NEWS2 3).
* Systolic BP: <= 90 is NEWS2 3 and <= 100 scores 2; >= 180 is the hypertensive-urgency line
  (ACC/AHA) and >= 220 NEWS2 3.
* Glucose: < 4.0 mmol/L is hypoglycaemia to treat ("4 is the floor"; level 1 is <= 3.9),
  < 3.0 mmol/L is clinically significant (level 2, International Hypoglycaemia Study Group,
  ADA); >= 15 mmol/L on two readings is the usual community trigger to check ketones and call
  the diabetes team.
* Spot readings (thermometer, cuff, glucose meter) are deliberate measurements: one reading
  is enough. Continuous readings flagged questionable or no-contact never count.

Comparisons are inclusive (``>=``, ``<=``) unless the level is ``strict`` (``>``, ``<``).
Every level can be overridden per resident (:class:`Override`), or switched off.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

import numpy as np

from cloud.alerts.errors import ConfigError, InputError
from vitals.metrics import Metric, MetricKind
from vitals.wire import Severity

__all__ = [
    "DEFAULT_RULES",
    "Direction",
    "Level",
    "Override",
    "ThresholdRule",
    "ThresholdTable",
]


class Direction(StrEnum):
    HIGH = "high"
    """Fires when the value is too high."""
    LOW = "low"
    """Fires when the value is too low."""


@dataclass(slots=True, frozen=True)
class Level:
    """One severity of a threshold rule."""

    severity: Severity
    trigger: float
    """Beyond this (``>=`` / ``<=``, or ``>`` / ``<`` when strict) the level may fire."""
    clear: float
    """A fired level clears once readings are back within this (``<=`` / ``>=``)."""
    strict: bool = False


@dataclass(slots=True, frozen=True)
class ThresholdRule:
    """A threshold rule on one or more metrics (each metric gets its own condition)."""

    rule: str
    metrics: tuple[Metric, ...]
    direction: Direction
    levels: tuple[Level, ...]
    """In rising severity."""
    sustain: timedelta = timedelta(0)
    min_readings: int = 1
    clear_sustain: timedelta = timedelta(0)
    clear_readings: int = 1
    stale_after: timedelta = timedelta(minutes=5)
    """With no reading for this long the condition is unknown, so not active (the silent
    device is then a technical alert of its own)."""
    scale_2_levels: tuple[Level, ...] | None = None
    """Levels for residents on NEWS2 SpO2 scale 2, if they differ."""

    def __post_init__(self) -> None:
        if not self.rule or not self.metrics or not self.levels:
            raise ConfigError(f"threshold rule {self.rule!r} needs an id, metrics and levels")
        for metric in self.metrics:
            if metric.kind is not MetricKind.VITAL:
                raise ConfigError(f"{self.rule}: {metric.value} is not a vital sign")
        for levels in (self.levels, self.scale_2_levels or self.levels):
            ranks = [level.severity.rank for level in levels]
            if ranks != sorted(set(ranks)) or len(levels) != len(self.levels):
                raise ConfigError(
                    f"{self.rule}: levels must have distinct severities in rising order, and "
                    "scale 2 levels the same severities"
                )
            for level in levels:
                check_level(self, level.trigger, level.clear, level.strict)
        if self.scale_2_levels is not None and [lv.severity for lv in self.scale_2_levels] != [
            lv.severity for lv in self.levels
        ]:
            raise ConfigError(f"{self.rule}: scale 2 levels must have the same severities")
        if self.min_readings < 1 or self.clear_readings < 1:
            raise ConfigError(f"{self.rule}: readings counts must be at least 1")
        if self.sustain < timedelta(0) or self.clear_sustain < timedelta(0):
            raise ConfigError(f"{self.rule}: sustain times cannot be negative")


def check_level(rule: ThresholdRule, trigger: float, clear: float, strict: bool) -> None:
    """Raise :class:`ConfigError` unless ``clear`` lies inside ``trigger`` (so that no value
    is both beyond the trigger and within the clear level)."""
    if not (math.isfinite(trigger) and math.isfinite(clear)):
        raise ConfigError(f"{rule.rule}: trigger and clear levels must be finite numbers")
    if rule.direction is Direction.HIGH:
        ok = clear < trigger or (strict and clear == trigger)
    else:
        ok = clear > trigger or (strict and clear == trigger)
    if not ok:
        side = "below" if rule.direction is Direction.HIGH else "above"
        raise ConfigError(
            f"{rule.rule}: the clear level {clear:g} must be {side} the trigger {trigger:g}"
        )


@dataclass(slots=True, frozen=True)
class Override:
    """A resident's own limit for one level of one rule; ``trigger=None`` switches it off.
    ``clear=None`` keeps the default distance between trigger and clear level."""

    rule: str
    severity: Severity
    trigger: float | None
    clear: float | None = None


_W = Severity.WARNING
_U = Severity.URGENT

DEFAULT_RULES: Final[tuple[ThresholdRule, ...]] = (
    ThresholdRule(
        "hr_high",
        (Metric.HEART_RATE, Metric.PULSE_RATE),
        Direction.HIGH,
        (Level(_U, 130, 120, strict=True),),
        sustain=timedelta(seconds=60),
        min_readings=5,
        clear_sustain=timedelta(seconds=60),
        clear_readings=5,
    ),
    ThresholdRule(
        "hr_low",
        (Metric.HEART_RATE, Metric.PULSE_RATE),
        Direction.LOW,
        (Level(_W, 50, 55, strict=True), Level(_U, 40, 45, strict=True)),
        sustain=timedelta(seconds=60),
        min_readings=5,
        clear_sustain=timedelta(seconds=60),
        clear_readings=5,
    ),
    ThresholdRule(
        "spo2_low",
        (Metric.SPO2,),
        Direction.LOW,
        (Level(_W, 92, 94, strict=True), Level(_U, 90, 92, strict=True)),
        sustain=timedelta(seconds=60),
        min_readings=5,
        clear_sustain=timedelta(seconds=60),
        clear_readings=5,
        scale_2_levels=(Level(_W, 86, 88, strict=True), Level(_U, 84, 86, strict=True)),
    ),
    ThresholdRule(
        "rr_high",
        (Metric.RESPIRATORY_RATE,),
        Direction.HIGH,
        (Level(_W, 25, 22), Level(_U, 30, 26)),
        sustain=timedelta(seconds=120),
        min_readings=5,
        clear_sustain=timedelta(seconds=120),
        clear_readings=5,
    ),
    ThresholdRule(
        "rr_low",
        (Metric.RESPIRATORY_RATE,),
        Direction.LOW,
        (Level(_U, 8, 10),),
        sustain=timedelta(seconds=120),
        min_readings=5,
        clear_sustain=timedelta(seconds=120),
        clear_readings=5,
    ),
    ThresholdRule(
        "temperature_high",
        (Metric.BODY_TEMPERATURE,),
        Direction.HIGH,
        (Level(_W, 38.0, 37.7), Level(_U, 39.0, 38.5)),
        stale_after=timedelta(hours=24),
    ),
    ThresholdRule(
        "temperature_low",
        (Metric.BODY_TEMPERATURE,),
        Direction.LOW,
        (Level(_U, 35.0, 35.5),),
        stale_after=timedelta(hours=24),
    ),
    ThresholdRule(
        "sbp_low",
        (Metric.SYSTOLIC_BP,),
        Direction.LOW,
        (Level(_W, 100, 105), Level(_U, 90, 95)),
        stale_after=timedelta(hours=24),
    ),
    ThresholdRule(
        "sbp_high",
        (Metric.SYSTOLIC_BP,),
        Direction.HIGH,
        (Level(_W, 180, 170), Level(_U, 220, 200)),
        stale_after=timedelta(hours=24),
    ),
    ThresholdRule(
        "glucose_low",
        (Metric.BLOOD_GLUCOSE,),
        Direction.LOW,
        (Level(_W, 4.0, 4.5, strict=True), Level(_U, 3.0, 3.5, strict=True)),
        stale_after=timedelta(hours=24),
    ),
    ThresholdRule(
        "glucose_high",
        (Metric.BLOOD_GLUCOSE,),
        Direction.HIGH,
        (Level(_W, 15.0, 13.0),),
        min_readings=2,
        stale_after=timedelta(hours=24),
    ),
)


@dataclass(slots=True, frozen=True)
class Slot:
    """One (rule, metric, level) whose hysteresis latch the state keeps."""

    rule_index: int
    metric: Metric
    level_index: int
    column: int
    """The level's column in :attr:`ThresholdTable.trigger`."""


class ThresholdTable:
    """The trigger and clear level of every rule level for every resident.

    ``trigger[r, c]`` and ``clear[r, c]`` hold resident ``r``'s limits for level column ``c``
    (one column per (rule, level)); NaN switches the level off for that resident. The
    per-column constants (direction, strictness, severity, sustain) are arrays too, so a
    whole metric's levels are updated in one vectorised step.
    """

    __slots__ = (
        "clear",
        "clear_readings",
        "clear_sustain",
        "column_level",
        "column_rule",
        "group_start",
        "high",
        "level_code",
        "level_slots",
        "min_readings",
        "rules",
        "severity_rank",
        "slot_column",
        "slot_rule",
        "slots",
        "slots_by_metric",
        "slots_by_rule_metric",
        "stale_after",
        "strict",
        "sustain",
        "trigger",
    )

    def __init__(self, rules: Sequence[ThresholdRule], n_residents: int) -> None:
        ids = [rule.rule for rule in rules]
        if len(set(ids)) != len(ids):
            raise ConfigError("threshold rule ids repeat")
        self.rules = tuple(rules)
        column_rule: list[int] = []
        column_level: list[int] = []
        for rule_index, rule in enumerate(self.rules):
            for level_index in range(len(rule.levels)):
                column_rule.append(rule_index)
                column_level.append(level_index)
        self.column_rule = np.array(column_rule, dtype=np.int64)
        self.column_level = np.array(column_level, dtype=np.int64)
        n_columns = len(column_rule)
        self.trigger = np.full((n_residents, n_columns), np.nan)
        self.clear = np.full((n_residents, n_columns), np.nan)
        rule_of = [self.rules[i] for i in column_rule]
        levels = [rule.levels[j] for rule, j in zip(rule_of, column_level, strict=True)]
        self.high = np.array([r.direction is Direction.HIGH for r in rule_of], dtype=np.bool_)
        self.strict = np.array([lv.strict for lv in levels], dtype=np.bool_)
        self.severity_rank = np.array([lv.severity.rank for lv in levels], dtype=np.int8)
        self.sustain = np.array([r.sustain.total_seconds() for r in rule_of])
        self.min_readings = np.array([r.min_readings for r in rule_of], dtype=np.int64)
        self.clear_sustain = np.array([r.clear_sustain.total_seconds() for r in rule_of])
        self.clear_readings = np.array([r.clear_readings for r in rule_of], dtype=np.int64)
        self.stale_after = np.array([r.stale_after.total_seconds() for r in self.rules])
        # Slots in (rule, metric, level) order, so that each group of one rule on one metric
        # is a contiguous run of slots (its levels in rising severity).
        slots: list[Slot] = []
        group_start: list[int] = []
        first_column = 0
        for rule_index, rule in enumerate(self.rules):
            for metric in rule.metrics:
                group_start.append(len(slots))
                for level_index in range(len(rule.levels)):
                    slots.append(Slot(rule_index, metric, level_index, first_column + level_index))
            first_column += len(rule.levels)
        self.slots = tuple(slots)
        self.group_start = np.array(group_start, dtype=np.int64)
        """Index of each (rule, metric) group's first slot."""
        severity_rank = self.severity_rank
        ends = [*group_start[1:], len(slots)]
        depth = max((end - start for start, end in zip(group_start, ends, strict=True)), default=0)
        level_slots = np.zeros((depth, len(group_start)), dtype=np.int64)
        level_code = np.zeros((depth, len(group_start)), dtype=np.int8)
        for group, (start, end) in enumerate(zip(group_start, ends, strict=True)):
            for k, index in enumerate(range(start, end)):
                level_slots[k, group] = index
                level_code[k, group] = severity_rank[slots[index].column] + 1
        self.level_slots = level_slots
        """(level, group) -> slot; padded with slot 0 where a group has fewer levels."""
        self.level_code = level_code
        """(level, group) -> the level's severity rank + 1, 0 for padding: the max over the
        latched levels, minus one, is the group's highest latched severity (-1 when none)."""
        self.slot_column = np.array([slot.column for slot in slots], dtype=np.int64)
        self.slot_rule = np.array([slot.rule_index for slot in slots], dtype=np.int64)
        by_metric: dict[Metric, list[int]] = {}
        for index, slot in enumerate(self.slots):
            by_metric.setdefault(slot.metric, []).append(index)
        self.slots_by_metric = {
            metric: np.array(indices, dtype=np.int64) for metric, indices in by_metric.items()
        }
        by_rule_metric: dict[tuple[int, Metric], list[int]] = {}
        for index, slot in enumerate(self.slots):
            by_rule_metric.setdefault((slot.rule_index, slot.metric), []).append(index)
        self.slots_by_rule_metric = {
            key: np.array(indices, dtype=np.int64) for key, indices in by_rule_metric.items()
        }
        """(rule index, metric) -> its slots, in level order."""
        for resident in range(n_residents):
            self.configure(resident)

    @property
    def n_residents(self) -> int:
        return int(self.trigger.shape[0])

    def rule_index(self, rule: str) -> int:
        for index, candidate in enumerate(self.rules):
            if candidate.rule == rule:
                return index
        raise ConfigError(f"no threshold rule {rule!r}")

    def configure(
        self, resident: int, *, scale_2: bool = False, overrides: Iterable[Override] = ()
    ) -> None:
        """Set a resident's limits: the defaults for their SpO2 scale, then their overrides."""
        if not 0 <= resident < self.n_residents:
            raise InputError(f"resident index {resident} out of range")
        trigger = self.trigger[resident]
        clear = self.clear[resident]
        for column, (rule_index, level_index) in enumerate(
            zip(self.column_rule, self.column_level, strict=True)
        ):
            rule = self.rules[rule_index]
            levels = rule.scale_2_levels if scale_2 and rule.scale_2_levels else rule.levels
            trigger[column] = levels[level_index].trigger
            clear[column] = levels[level_index].clear
        for override in overrides:
            rule_index = self.rule_index(override.rule)
            rule = self.rules[rule_index]
            matches = [
                column
                for column in range(trigger.shape[0])
                if self.column_rule[column] == rule_index
                and rule.levels[self.column_level[column]].severity is override.severity
            ]
            if not matches:
                raise ConfigError(f"{override.rule} has no {override.severity.value} level")
            column = matches[0]
            if override.trigger is None:
                trigger[column] = np.nan
                clear[column] = np.nan
                continue
            new_clear = (
                override.clear
                if override.clear is not None
                else override.trigger + (clear[column] - trigger[column])
            )
            check_level(rule, override.trigger, new_clear, bool(self.strict[column]))
            trigger[column] = override.trigger
            clear[column] = new_clear
