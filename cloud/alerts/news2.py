"""NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).

Chart 1 of the RCP report, "The NEWS scoring system", checked band by band against copies of
the chart and of the report (RCP, *National Early Warning Score (NEWS) 2: Standardising the
assessment of acute-illness severity in the NHS*, updated report of a working party, London,
December 2017; chart 1 as reproduced by the RCP-licensed copies on scribd and radiopaedia):

===================== ====== ======= ======= ================ ========= ========= ======
parameter             3      2       1       0                1         2         3
===================== ====== ======= ======= ================ ========= ========= ======
respiration rate /min <= 8           9-11    12-20                      21-24     >= 25
SpO2 scale 1 %        <= 91  92-93   94-95   >= 96
SpO2 scale 2 %        <= 83  84-85   86-87   88-92, >= 93 air 93-94 O2  95-96 O2  >= 97 O2
air or oxygen                oxygen          air
systolic BP mmHg      <= 90  91-100  101-110 111-219                              >= 220
pulse /min            <= 40          41-50   51-90            91-110    111-130   >= 131
consciousness                                alert                                C,V,P,U
temperature degC      <= 35.0        35.1-36 36.1-38.0        38.1-39.0 >= 39.1
===================== ====== ======= ======= ================ ========= ========= ======

Chart 2 (thresholds and triggers): aggregate 0-4 is *low*; a score of 3 in any single
parameter with an aggregate of 0-4 is *low-medium* (the "red score"); 5-6 is *medium*; 7 or more
is *high*. Chart 4 gives the clinical response for each (:func:`clinical_response`).

Scale 2 is only for residents with hypercapnic respiratory failure whose prescribed target is
88-92 % (typically COPD), as decided by a clinician; it is part of the resident's record.

**Rounding.** The chart has whole numbers for everything but temperature, which it gives to
0.1 degC, so a value between two rows (respiration rate 20.5, SpO2 95.5, temperature 38.05)
has no row. It is first rounded to the chart's resolution as a nurse would chart it, half up
(20.5 -> 21 scores 2; 95.5 -> 96 scores 0; 38.05 -> 38.1 scores 1; 38.04 -> 38.0 scores 0). Values
are held as binary floats, where 38.05 is 38.049999...; a tolerance of 1e-9 of the resolution
makes such values round as the decimal they stand for. The scalar and the vectorised versions
do exactly the same float operations, so they agree on every input.

**Missing parameters are never scored as normal.** A parameter without a value (``None``, or
NaN in the arrays) gets no score and is listed in ``missing``; the total is then *partial*: the
sum of the parameters that were scored. Scores are never negative, so a partial total and its
band are a lower bound: the missing parameters can only raise them. SpO2 on scale 2 at 93 % or
more scores 0 on air and 1-3 on oxygen, so when oxygen is unknown it cannot be scored and is
missing too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from cloud.alerts.errors import InputError

__all__ = [
    "PARAMETERS",
    "Band",
    "Consciousness",
    "News2",
    "News2Arrays",
    "Parameter",
    "Response",
    "SpO2Scale",
    "chart_value",
    "clinical_response",
    "score",
    "score_arrays",
]

FloatArray = npt.NDArray[np.float64]


class Parameter(StrEnum):
    """The seven rows of the NEWS2 chart, in chart order."""

    RESPIRATION_RATE = "respiration_rate"
    SPO2 = "spo2"
    AIR_OR_OXYGEN = "air_or_oxygen"
    SYSTOLIC_BP = "systolic_bp"
    PULSE = "pulse"
    CONSCIOUSNESS = "consciousness"
    TEMPERATURE = "temperature"


PARAMETERS: Final = tuple(Parameter)
"""The parameters in chart order: the column order of :class:`News2Arrays`."""


class SpO2Scale(IntEnum):
    SCALE_1 = 1
    SCALE_2 = 2
    """Hypercapnic respiratory failure with a prescribed target of 88-92 %."""


class Consciousness(StrEnum):
    """ACVPU. Its :attr:`code` (0-4) is what the arrays carry."""

    ALERT = "A"
    CONFUSION = "C"
    """New confusion."""
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"

    @property
    def code(self) -> int:
        return _CONSCIOUSNESS_CODES[self]


_CONSCIOUSNESS_CODES: Final = {level: index for index, level in enumerate(Consciousness)}


class Band(IntEnum):
    """The NEWS2 clinical risk bands (chart 2), in rising order."""

    LOW = 0
    """Aggregate 0-4 and no single parameter scoring 3."""
    LOW_MEDIUM = 1
    """Aggregate 0-4 with a score of 3 in one parameter (a "red score")."""
    MEDIUM = 2
    """Aggregate 5-6."""
    HIGH = 3
    """Aggregate 7 or more."""

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(slots=True, frozen=True)
class Response:
    """What chart 4 asks for at a score: how often to observe, who does what."""

    monitoring: str
    action: str


_RESPONSES: Final = {
    "zero": Response(
        "minimum 12-hourly",
        "continue routine NEWS monitoring",
    ),
    Band.LOW: Response(
        "minimum 4-6-hourly",
        "a registered nurse assesses the resident and decides whether observations should be "
        "more frequent or care escalated",
    ),
    Band.LOW_MEDIUM: Response(
        "minimum 1-hourly",
        "urgent ward-based response: a registered nurse informs the medical team caring for "
        "the resident, who reviews and decides whether to escalate care",
    ),
    Band.MEDIUM: Response(
        "minimum 1-hourly",
        "urgent response: a registered nurse immediately informs the medical team and asks "
        "for urgent assessment by a clinician competent in acute illness; care where the "
        "resident can be monitored",
    ),
    Band.HIGH: Response(
        "continuous monitoring of vital signs",
        "emergency response: immediate assessment by a team with critical-care competencies, "
        "including airway skills; consider transfer to a higher level of care",
    ),
}


def clinical_response(total: int, band: Band) -> Response:
    """Chart 4's response for an aggregate ``total`` in ``band`` (a total of 0 has its own)."""
    if total == 0 and band is Band.LOW:
        return _RESPONSES["zero"]
    return _RESPONSES[band]


# --- bands ------------------------------------------------------------------------------
# Each parameter is a list of (highest charted value, score) rows in rising order and the
# score above the last row. Charted values are in units of the chart's resolution (tenths
# of a degree for temperature), so every comparison is between whole numbers.

_Rows = tuple[tuple[int, int], ...]

_RESPIRATION: Final[_Rows] = ((8, 3), (11, 1), (20, 0), (24, 2))
_RESPIRATION_ABOVE: Final = 3
_SPO2_SCALE_1: Final[_Rows] = ((91, 3), (93, 2), (95, 1))
_SPO2_SCALE_1_ABOVE: Final = 0
_SPO2_SCALE_2_AIR: Final[_Rows] = ((83, 3), (85, 2), (87, 1))
"""Scale 2 up to 92 %, and at any value on air."""
_SPO2_SCALE_2_AIR_ABOVE: Final = 0
_SPO2_SCALE_2_OXYGEN: Final[_Rows] = ((94, 1), (96, 2))
"""Scale 2 from 93 % on oxygen."""
_SPO2_SCALE_2_OXYGEN_ABOVE: Final = 3
_SCALE_2_OXYGEN_FROM: Final = 93
_SYSTOLIC: Final[_Rows] = ((90, 3), (100, 2), (110, 1), (219, 0))
_SYSTOLIC_ABOVE: Final = 3
_PULSE: Final[_Rows] = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2))
_PULSE_ABOVE: Final = 3
_TEMPERATURE: Final[_Rows] = ((350, 3), (360, 1), (380, 0), (390, 1))
_TEMPERATURE_ABOVE: Final = 2
_OXYGEN_SCORE: Final = 2
_NOT_ALERT_SCORE: Final = 3

_RESOLUTION: Final = {
    Parameter.RESPIRATION_RATE: 1,
    Parameter.SPO2: 1,
    Parameter.SYSTOLIC_BP: 1,
    Parameter.PULSE: 1,
    Parameter.TEMPERATURE: 10,
}
"""Charted units per unit of the value: the chart has whole numbers, temperature in tenths."""
_TOLERANCE: Final = 1e-9


def chart_value(parameter: Parameter, value: float) -> int:
    """``value`` as charted, in the chart's units (tenths of a degree for temperature):
    rounded half up to the chart's resolution (see the module docstring).

    >>> chart_value(Parameter.TEMPERATURE, 38.05)
    381
    """
    scale = _RESOLUTION[parameter]
    return math.floor(value * scale + 0.5 + _TOLERANCE)


def _band(charted: int, rows: _Rows, above: int) -> int:
    for highest, points in rows:
        if charted <= highest:
            return points
    return above


def _present(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(slots=True, frozen=True)
class News2:
    """A NEWS2 score: the score of each parameter (``None`` when it was missing), the total of
    those that were scored, the band, and which parameters were missing."""

    respiration_rate: int | None
    spo2: int | None
    air_or_oxygen: int | None
    systolic_bp: int | None
    pulse: int | None
    consciousness: int | None
    temperature: int | None
    total: int
    band: Band
    missing: frozenset[Parameter] = field(default_factory=frozenset)

    @property
    def partial(self) -> bool:
        """True when a parameter is missing: the total and band are then a lower bound."""
        return bool(self.missing)

    @property
    def red(self) -> bool:
        """True when a single parameter scores 3."""
        return 3 in self.scores.values()

    @property
    def scores(self) -> Mapping[Parameter, int]:
        """The scored parameters and their scores, in chart order."""
        values = (
            self.respiration_rate,
            self.spo2,
            self.air_or_oxygen,
            self.systolic_bp,
            self.pulse,
            self.consciousness,
            self.temperature,
        )
        return {p: v for p, v in zip(PARAMETERS, values, strict=True) if v is not None}

    @property
    def response(self) -> Response:
        return clinical_response(self.total, self.band)


def _band_of(total: int, red: bool) -> Band:
    if total >= 7:
        return Band.HIGH
    if total >= 5:
        return Band.MEDIUM
    if red:
        return Band.LOW_MEDIUM
    return Band.LOW


def score(
    *,
    respiration_rate: float | None,
    spo2: float | None,
    on_oxygen: bool | None,
    systolic_bp: float | None,
    pulse: float | None,
    consciousness: Consciousness | None,
    temperature: float | None,
    scale: SpO2Scale = SpO2Scale.SCALE_1,
) -> News2:
    """Score one set of observations. ``None`` (or NaN, or an infinity) means the parameter
    was not observed: it is reported in ``missing``, never scored as normal."""
    if scale not in (SpO2Scale.SCALE_1, SpO2Scale.SCALE_2):
        raise InputError(f"SpO2 scale {scale!r} is not 1 or 2")
    missing: set[Parameter] = set()

    def banded(parameter: Parameter, value: float | None, rows: _Rows, above: int) -> int | None:
        if not _present(value):
            missing.add(parameter)
            return None
        assert value is not None
        return _band(chart_value(parameter, value), rows, above)

    rr = banded(Parameter.RESPIRATION_RATE, respiration_rate, _RESPIRATION, _RESPIRATION_ABOVE)
    sbp = banded(Parameter.SYSTOLIC_BP, systolic_bp, _SYSTOLIC, _SYSTOLIC_ABOVE)
    hr = banded(Parameter.PULSE, pulse, _PULSE, _PULSE_ABOVE)
    temp = banded(Parameter.TEMPERATURE, temperature, _TEMPERATURE, _TEMPERATURE_ABOVE)

    if on_oxygen is None:
        oxygen = None
        missing.add(Parameter.AIR_OR_OXYGEN)
    else:
        oxygen = _OXYGEN_SCORE if on_oxygen else 0

    sat: int | None = None
    if not _present(spo2):
        missing.add(Parameter.SPO2)
    else:
        assert spo2 is not None
        charted = chart_value(Parameter.SPO2, spo2)
        if scale == SpO2Scale.SCALE_1:
            sat = _band(charted, _SPO2_SCALE_1, _SPO2_SCALE_1_ABOVE)
        elif charted < _SCALE_2_OXYGEN_FROM or on_oxygen is False:
            sat = _band(charted, _SPO2_SCALE_2_AIR, _SPO2_SCALE_2_AIR_ABOVE)
        elif on_oxygen:
            sat = _band(charted, _SPO2_SCALE_2_OXYGEN, _SPO2_SCALE_2_OXYGEN_ABOVE)
        else:
            missing.add(Parameter.SPO2)  # >= 93 % on scale 2 with oxygen unknown

    if consciousness is None:
        acvpu = None
        missing.add(Parameter.CONSCIOUSNESS)
    else:
        acvpu = 0 if consciousness is Consciousness.ALERT else _NOT_ALERT_SCORE

    parts = (rr, sat, oxygen, sbp, hr, acvpu, temp)
    total = sum(part for part in parts if part is not None)
    red = any(part == 3 for part in parts)
    return News2(
        respiration_rate=rr,
        spo2=sat,
        air_or_oxygen=oxygen,
        systolic_bp=sbp,
        pulse=hr,
        consciousness=acvpu,
        temperature=temp,
        total=total,
        band=_band_of(total, red),
        missing=frozenset(missing),
    )


# --- vectorised -------------------------------------------------------------------------


@dataclass(slots=True, frozen=True, eq=False)
class News2Arrays:
    """NEWS2 for many residents at once. Row ``i`` is what :func:`score` gives for resident
    ``i`` (:meth:`result` builds that object)."""

    columns: tuple[npt.NDArray[np.int8], ...]
    """For each parameter in :data:`PARAMETERS` order, its score per resident, -1 when
    missing."""
    total: npt.NDArray[np.int16]
    """(n,): the sum of the scored parameters."""
    band: npt.NDArray[np.int8]
    """(n,): :class:`Band` values."""

    def __len__(self) -> int:
        return int(self.total.shape[0])

    @property
    def scores(self) -> npt.NDArray[np.int8]:
        """(n, 7): the score of each parameter in :data:`PARAMETERS` order; -1 when missing."""
        return np.stack(self.columns, axis=1)

    @property
    def missing(self) -> npt.NDArray[np.bool_]:
        """(n, 7): True where the parameter was missing."""
        return self.scores < 0

    @property
    def partial(self) -> npt.NDArray[np.bool_]:
        partial = np.zeros(len(self), dtype=np.bool_)
        for column in self.columns:
            partial |= column < 0
        return partial

    def result(self, index: int) -> News2:
        row = [int(column[index]) for column in self.columns]
        return News2(
            respiration_rate=row[0] if row[0] >= 0 else None,
            spo2=row[1] if row[1] >= 0 else None,
            air_or_oxygen=row[2] if row[2] >= 0 else None,
            systolic_bp=row[3] if row[3] >= 0 else None,
            pulse=row[4] if row[4] >= 0 else None,
            consciousness=row[5] if row[5] >= 0 else None,
            temperature=row[6] if row[6] >= 0 else None,
            total=int(self.total[index]),
            band=Band(int(self.band[index])),
            missing=frozenset(p for p, points in zip(PARAMETERS, row, strict=True) if points < 0),
        )


def _charted(values: FloatArray, parameter: Parameter) -> FloatArray:
    scale = _RESOLUTION[parameter]
    return np.floor(values * scale + 0.5 + _TOLERANCE)


@dataclass(slots=True, frozen=True)
class _Table:
    """A parameter's rows as the first row's score and the change at each edge."""

    first: int
    steps: tuple[tuple[float, int], ...]
    """(highest charted value of a row, score of the next row minus its score)."""

    @classmethod
    def of(cls, rows: _Rows, above: int) -> _Table:
        points = [p for _, p in rows] + [above]
        steps = tuple(
            (float(highest), points[i + 1] - points[i])
            for i, (highest, _) in enumerate(rows)
            if points[i + 1] != points[i]
        )
        return cls(points[0], steps)

    def score(self, charted: FloatArray) -> npt.NDArray[np.int8]:
        # A handful of comparisons beat a search or a lookup table here. NaN is above no
        # edge; its score is discarded as missing anyway.
        points: npt.NDArray[np.int8] = np.full(charted.shape, self.first, dtype=np.int8)
        for edge, step in self.steps:
            points += (charted > edge).view(np.int8) * np.int8(step)
        return points


_TABLES: Final = {
    "respiration": _Table.of(_RESPIRATION, _RESPIRATION_ABOVE),
    "spo2_1": _Table.of(_SPO2_SCALE_1, _SPO2_SCALE_1_ABOVE),
    "spo2_2_air": _Table.of(_SPO2_SCALE_2_AIR, _SPO2_SCALE_2_AIR_ABOVE),
    "spo2_2_oxygen": _Table.of(_SPO2_SCALE_2_OXYGEN, _SPO2_SCALE_2_OXYGEN_ABOVE),
    "systolic": _Table.of(_SYSTOLIC, _SYSTOLIC_ABOVE),
    "pulse": _Table.of(_PULSE, _PULSE_ABOVE),
    "temperature": _Table.of(_TEMPERATURE, _TEMPERATURE_ABOVE),
}


def _as_float(values: npt.ArrayLike, n: int | None = None) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if n is not None and array.ndim == 0:
        array = np.full(n, float(array))
    return array


def score_arrays(
    *,
    respiration_rate: npt.ArrayLike,
    spo2: npt.ArrayLike,
    on_oxygen: npt.ArrayLike,
    systolic_bp: npt.ArrayLike,
    pulse: npt.ArrayLike,
    consciousness: npt.ArrayLike,
    temperature: npt.ArrayLike,
    scale: npt.ArrayLike = 1,
) -> News2Arrays:
    """Score many residents at once; the same results as :func:`score`, row by row.

    Every argument is a 1-D array of one value per resident, NaN (or an infinity) where the
    parameter is missing: ``on_oxygen`` is 1.0 on oxygen, 0.0 on air; ``consciousness`` is the
    :attr:`Consciousness.code` (0 alert .. 4 unresponsive); ``scale`` is 1 or 2 per resident
    (or one value for all) and is never missing.
    """
    rr = _as_float(respiration_rate)
    if rr.ndim != 1:
        raise InputError(f"respiration_rate has shape {rr.shape}: expected one value per resident")
    n = rr.shape[0]
    sat = _as_float(spo2, n)
    oxygen = _as_float(on_oxygen, n)
    sbp = _as_float(systolic_bp, n)
    hr = _as_float(pulse, n)
    acvpu = _as_float(consciousness, n)
    temp = _as_float(temperature, n)
    try:
        scales = np.broadcast_to(np.asarray(scale, dtype=np.int64), (n,))
    except ValueError as exc:
        raise InputError(f"scale does not fit {n} residents: {exc}") from exc
    if not ((scales == 1) | (scales == 2)).all():
        raise InputError("every SpO2 scale must be 1 or 2")
    for name, array in (
        ("spo2", sat),
        ("on_oxygen", oxygen),
        ("systolic_bp", sbp),
        ("pulse", hr),
        ("consciousness", acvpu),
        ("temperature", temp),
    ):
        if array.shape != (n,):
            raise InputError(f"{name} has shape {array.shape}, expected ({n},)")

    rr_missing = ~np.isfinite(rr)
    rr_points = _TABLES["respiration"].score(_charted(rr, Parameter.RESPIRATION_RATE))

    oxygen_known = np.isfinite(oxygen)
    on_o2 = oxygen_known & (oxygen != 0)
    oxygen_points = np.where(on_o2, np.int8(_OXYGEN_SCORE), np.int8(0))

    sat_charted = _charted(sat, Parameter.SPO2)
    sat_points = _TABLES["spo2_1"].score(sat_charted)
    sat_missing = ~np.isfinite(sat)
    on_scale_2 = scales == SpO2Scale.SCALE_2
    if on_scale_2.any():
        high_sat = sat_charted >= _SCALE_2_OXYGEN_FROM
        scale_2 = np.where(
            high_sat & on_o2,
            _TABLES["spo2_2_oxygen"].score(sat_charted),
            _TABLES["spo2_2_air"].score(sat_charted),
        )
        sat_points = np.where(on_scale_2, scale_2, sat_points)
        sat_missing |= on_scale_2 & high_sat & ~oxygen_known

    sbp_missing = ~np.isfinite(sbp)
    sbp_points = _TABLES["systolic"].score(_charted(sbp, Parameter.SYSTOLIC_BP))
    hr_missing = ~np.isfinite(hr)
    hr_points = _TABLES["pulse"].score(_charted(hr, Parameter.PULSE))
    acvpu_missing = ~np.isfinite(acvpu)
    acvpu_points = np.where(
        acvpu == Consciousness.ALERT.code, np.int8(0), np.int8(_NOT_ALERT_SCORE)
    )
    temp_missing = ~np.isfinite(temp)
    temp_points = _TABLES["temperature"].score(_charted(temp, Parameter.TEMPERATURE))

    columns = (
        (rr_points, rr_missing),
        (sat_points, sat_missing),
        (oxygen_points, ~oxygen_known),
        (sbp_points, sbp_missing),
        (hr_points, hr_missing),
        (acvpu_points, acvpu_missing),
        (temp_points, temp_missing),
    )
    kept = tuple(np.where(absent, np.int8(-1), points) for points, absent in columns)
    total = np.zeros(n, dtype=np.int16)
    red = np.zeros(n, dtype=np.bool_)
    for points in kept:
        total += np.maximum(points, np.int8(0))
        red |= points == 3
    band = np.where(
        total >= 7,
        np.int8(Band.HIGH),
        np.where(
            total >= 5,
            np.int8(Band.MEDIUM),
            np.where(red, np.int8(Band.LOW_MEDIUM), np.int8(Band.LOW)),
        ),
    )
    return News2Arrays(columns=kept, total=total, band=band)
