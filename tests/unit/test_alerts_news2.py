"""NEWS2 against the RCP 2017 chart: both sides of every band edge of every parameter, both
SpO2 scales, the aggregate bands, missing parameters, rounding, and vectorised == scalar."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.alerts.errors import InputError
from cloud.alerts.news2 import (
    PARAMETERS,
    Band,
    Consciousness,
    News2,
    Parameter,
    SpO2Scale,
    chart_value,
    clinical_response,
    score,
    score_arrays,
)

NORMAL = {
    "respiration_rate": 16.0,
    "spo2": 97.0,
    "on_oxygen": False,
    "systolic_bp": 130.0,
    "pulse": 70.0,
    "consciousness": Consciousness.ALERT,
    "temperature": 36.8,
}


def scored(scale: SpO2Scale = SpO2Scale.SCALE_1, /, **changes: object) -> News2:
    values = {**NORMAL, **changes}
    return score(scale=scale, **values)  # type: ignore[arg-type]


# (value, score): every edge of chart 1, from both sides.
RESPIRATION = [
    (0, 3),
    (8, 3),
    (9, 1),
    (11, 1),
    (12, 0),
    (20, 0),
    (21, 2),
    (24, 2),
    (25, 3),
    (60, 3),
]
SPO2_SCALE_1 = [(70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
SPO2_SCALE_2_AIR = [
    (70, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 0), (97, 0),
    (100, 0),
]  # fmt: skip
SPO2_SCALE_2_OXYGEN = [
    (70, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0), (93, 1), (94, 1),
    (95, 2), (96, 2), (97, 3), (100, 3),
]  # fmt: skip
SYSTOLIC = [(60, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
PULSE = [
    (30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2),
    (131, 3), (180, 3),
]  # fmt: skip
TEMPERATURE = [
    (33.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1),
    (39.1, 2), (41.0, 2),
]  # fmt: skip


@pytest.mark.parametrize(("value", "points"), RESPIRATION)
def test_respiration_rate(value: float, points: int) -> None:
    assert scored(respiration_rate=value).respiration_rate == points


@pytest.mark.parametrize(("value", "points"), SPO2_SCALE_1)
def test_spo2_scale_1(value: float, points: int) -> None:
    assert scored(spo2=value).spo2 == points
    # scale 1 does not depend on oxygen (which scores on its own row)
    assert scored(spo2=value, on_oxygen=True).spo2 == points


@pytest.mark.parametrize(("value", "points"), SPO2_SCALE_2_AIR)
def test_spo2_scale_2_on_air(value: float, points: int) -> None:
    result = scored(SpO2Scale.SCALE_2, spo2=value, on_oxygen=False)
    assert result.spo2 == points
    assert result.air_or_oxygen == 0


@pytest.mark.parametrize(("value", "points"), SPO2_SCALE_2_OXYGEN)
def test_spo2_scale_2_on_oxygen(value: float, points: int) -> None:
    result = scored(SpO2Scale.SCALE_2, spo2=value, on_oxygen=True)
    assert result.spo2 == points
    assert result.air_or_oxygen == 2


@pytest.mark.parametrize("value", [70.0, 83.0, 88.0, 92.0, 92.4])
def test_spo2_scale_2_up_to_92_needs_no_oxygen_status(value: float) -> None:
    result = scored(SpO2Scale.SCALE_2, spo2=value, on_oxygen=None)
    assert result.spo2 is not None
    assert result.missing == {Parameter.AIR_OR_OXYGEN}


@pytest.mark.parametrize("value", [92.5, 93.0, 97.0])
def test_spo2_scale_2_from_93_with_unknown_oxygen_is_missing(value: float) -> None:
    result = scored(SpO2Scale.SCALE_2, spo2=value, on_oxygen=None)
    assert result.spo2 is None
    assert result.missing == {Parameter.AIR_OR_OXYGEN, Parameter.SPO2}


def test_air_or_oxygen() -> None:
    assert scored(on_oxygen=False).air_or_oxygen == 0
    assert scored(on_oxygen=True).air_or_oxygen == 2
    assert scored(on_oxygen=True).total == 2


@pytest.mark.parametrize(("value", "points"), SYSTOLIC)
def test_systolic_bp(value: float, points: int) -> None:
    assert scored(systolic_bp=value).systolic_bp == points


@pytest.mark.parametrize(("value", "points"), PULSE)
def test_pulse(value: float, points: int) -> None:
    assert scored(pulse=value).pulse == points


@pytest.mark.parametrize(
    ("level", "points"),
    [
        (Consciousness.ALERT, 0),
        (Consciousness.CONFUSION, 3),
        (Consciousness.VOICE, 3),
        (Consciousness.PAIN, 3),
        (Consciousness.UNRESPONSIVE, 3),
    ],
)
def test_consciousness(level: Consciousness, points: int) -> None:
    assert scored(consciousness=level).consciousness == points


@pytest.mark.parametrize(("value", "points"), TEMPERATURE)
def test_temperature(value: float, points: int) -> None:
    assert scored(temperature=value).temperature == points


@pytest.mark.parametrize(
    ("changes", "parameter", "points"),
    [
        # rounded half up to the chart's resolution, as a nurse charts
        ({"respiration_rate": 20.4}, "respiration_rate", 0),
        ({"respiration_rate": 20.5}, "respiration_rate", 2),
        ({"respiration_rate": 8.5}, "respiration_rate", 1),
        ({"respiration_rate": 8.49}, "respiration_rate", 3),
        ({"respiration_rate": 24.5}, "respiration_rate", 3),
        ({"spo2": 95.5}, "spo2", 0),
        ({"spo2": 95.49}, "spo2", 1),
        ({"spo2": 91.5}, "spo2", 2),
        ({"systolic_bp": 90.5}, "systolic_bp", 2),
        ({"systolic_bp": 219.5}, "systolic_bp", 3),
        ({"pulse": 130.5}, "pulse", 3),
        ({"pulse": 50.5}, "pulse", 0),
        ({"temperature": 38.05}, "temperature", 1),
        ({"temperature": 38.04}, "temperature", 0),
        ({"temperature": 35.05}, "temperature", 1),
        ({"temperature": 35.04}, "temperature", 3),
        ({"temperature": 34.95}, "temperature", 3),
        ({"temperature": 36.05}, "temperature", 0),
        ({"temperature": 39.05}, "temperature", 2),
    ],
)
def test_values_between_rows_round_to_the_chart(
    changes: dict[str, float], parameter: str, points: int
) -> None:
    assert getattr(scored(**changes), parameter) == points


def test_chart_value() -> None:
    assert chart_value(Parameter.TEMPERATURE, 38.05) == 381
    assert chart_value(Parameter.TEMPERATURE, 38.0) == 380
    assert chart_value(Parameter.RESPIRATION_RATE, 20.5) == 21
    assert chart_value(Parameter.SPO2, 95.5) == 96


def test_all_normal_is_zero_and_low() -> None:
    result = scored()
    assert result.total == 0
    assert result.band is Band.LOW
    assert not result.partial
    assert result.response.monitoring == "minimum 12-hourly"


@pytest.mark.parametrize(
    ("changes", "total", "band"),
    [
        # 4 without a 3 is low; 5 is medium (the 4/5 edge)
        ({"pulse": 95, "temperature": 38.5, "respiration_rate": 22}, 4, Band.LOW),
        ({"pulse": 115, "temperature": 38.5, "respiration_rate": 22}, 5, Band.MEDIUM),
        # 6 is medium, 7 is high (the 6/7 edge)
        ({"pulse": 115, "temperature": 39.5, "respiration_rate": 22}, 6, Band.MEDIUM),
        ({"pulse": 115, "temperature": 39.5, "respiration_rate": 22, "spo2": 95}, 7, Band.HIGH),
        # a single 3 with a total of 0-4 is low-medium
        ({"pulse": 135}, 3, Band.LOW_MEDIUM),
        ({"consciousness": Consciousness.CONFUSION}, 3, Band.LOW_MEDIUM),
        ({"respiration_rate": 7, "spo2": 95}, 4, Band.LOW_MEDIUM),
        # ...but a total of 5 or more with a 3 is medium or high by the total
        ({"respiration_rate": 7, "spo2": 93}, 5, Band.MEDIUM),
        ({"systolic_bp": 85, "pulse": 135, "temperature": 38.5}, 7, Band.HIGH),
        # oxygen scores 2 and is never a "red" 3
        ({"on_oxygen": True, "pulse": 95, "spo2": 95}, 4, Band.LOW),
        ({"on_oxygen": True, "pulse": 115, "spo2": 95}, 5, Band.MEDIUM),
    ],
)
def test_aggregate_bands(changes: dict[str, object], total: int, band: Band) -> None:
    result = scored(**changes)
    assert result.total == total
    assert result.band is band
    assert result.red == any(points == 3 for points in result.scores.values())


def test_clinical_responses() -> None:
    assert clinical_response(0, Band.LOW).monitoring == "minimum 12-hourly"
    assert clinical_response(3, Band.LOW).monitoring == "minimum 4-6-hourly"
    assert "urgent ward-based" in clinical_response(3, Band.LOW_MEDIUM).action
    assert clinical_response(3, Band.LOW_MEDIUM).monitoring == "minimum 1-hourly"
    assert "urgent response" in clinical_response(5, Band.MEDIUM).action
    assert clinical_response(8, Band.HIGH).monitoring == "continuous monitoring of vital signs"
    assert "emergency" in clinical_response(8, Band.HIGH).action
    assert Band.LOW_MEDIUM.label == "low-medium"


def test_missing_parameters_are_reported_not_scored() -> None:
    result = score(
        respiration_rate=None,
        spo2=97,
        on_oxygen=False,
        systolic_bp=float("nan"),
        pulse=135,
        consciousness=None,
        temperature=None,
    )
    assert result.missing == {
        Parameter.RESPIRATION_RATE,
        Parameter.SYSTOLIC_BP,
        Parameter.CONSCIOUSNESS,
        Parameter.TEMPERATURE,
    }
    assert result.partial
    assert result.respiration_rate is None
    assert result.systolic_bp is None
    assert result.total == 3  # pulse only: a lower bound
    assert result.band is Band.LOW_MEDIUM
    assert set(result.scores) == {Parameter.SPO2, Parameter.AIR_OR_OXYGEN, Parameter.PULSE}


def test_nothing_observed() -> None:
    result = score(
        respiration_rate=None,
        spo2=None,
        on_oxygen=None,
        systolic_bp=None,
        pulse=None,
        consciousness=None,
        temperature=None,
    )
    assert result.missing == set(PARAMETERS)
    assert result.total == 0
    assert result.band is Band.LOW


def test_bad_scale() -> None:
    with pytest.raises(InputError):
        scored(3)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        score_arrays(
            respiration_rate=[16.0],
            spo2=[97.0],
            on_oxygen=[0.0],
            systolic_bp=[120.0],
            pulse=[70.0],
            consciousness=[0.0],
            temperature=[36.8],
            scale=[3],
        )


def test_arrays_shape_mismatch() -> None:
    with pytest.raises(InputError):
        score_arrays(
            respiration_rate=[16.0, 17.0],
            spo2=[97.0],
            on_oxygen=[0.0, 0.0],
            systolic_bp=[120.0, 120.0],
            pulse=[70.0, 70.0],
            consciousness=[0.0, 0.0],
            temperature=[36.8, 36.8],
        )


def _tables() -> list[tuple[str, list[tuple[float, int]], dict[str, object]]]:
    return [
        ("respiration_rate", [(float(v), p) for v, p in RESPIRATION], {}),
        ("spo2", [(float(v), p) for v, p in SPO2_SCALE_1], {}),
        ("systolic_bp", [(float(v), p) for v, p in SYSTOLIC], {}),
        ("pulse", [(float(v), p) for v, p in PULSE], {}),
        ("temperature", TEMPERATURE, {}),
    ]


def test_arrays_match_the_chart_tables() -> None:
    for parameter, table, _ in _tables():
        values = np.array([value for value, _ in table])
        n = len(values)
        columns = {
            "respiration_rate": np.full(n, 16.0),
            "spo2": np.full(n, 97.0),
            "on_oxygen": np.zeros(n),
            "systolic_bp": np.full(n, 130.0),
            "pulse": np.full(n, 70.0),
            "consciousness": np.zeros(n),
            "temperature": np.full(n, 36.8),
        }
        columns[parameter] = values
        arrays = score_arrays(**columns)
        column = PARAMETERS.index(Parameter(parameter))
        assert arrays.scores[:, column].tolist() == [points for _, points in table], parameter
    for oxygen, scale_2 in ((0.0, SPO2_SCALE_2_AIR), (1.0, SPO2_SCALE_2_OXYGEN)):
        n = len(scale_2)
        arrays = score_arrays(
            respiration_rate=np.full(n, 16.0),
            spo2=np.array([float(v) for v, _ in scale_2]),
            on_oxygen=np.full(n, oxygen),
            systolic_bp=np.full(n, 130.0),
            pulse=np.full(n, 70.0),
            consciousness=np.zeros(n),
            temperature=np.full(n, 36.8),
            scale=2,
        )
        assert arrays.scores[:, 1].tolist() == [points for _, points in scale_2]


def _maybe(values: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), st.just(math.nan), values)


def _vital(low: float, high: float) -> st.SearchStrategy[float]:
    # whole numbers, halves (the rounding edges) and arbitrary floats
    return st.one_of(
        st.integers(int(low), int(high)).map(float),
        st.integers(int(low) * 2, int(high) * 2).map(lambda v: v / 2),
        st.integers(int(low * 100), int(high * 100)).map(lambda v: v / 100),
        st.floats(low, high, allow_nan=False),
    )


OBSERVATIONS = st.fixed_dictionaries(
    {
        "respiration_rate": _maybe(_vital(0, 60)),
        "spo2": _maybe(_vital(50, 100)),
        "on_oxygen": st.one_of(st.none(), st.booleans()),
        "systolic_bp": _maybe(_vital(40, 300)),
        "pulse": _maybe(_vital(20, 250)),
        "consciousness": st.one_of(st.none(), st.sampled_from(Consciousness)),
        "temperature": _maybe(_vital(30, 43)),
        "scale": st.sampled_from(SpO2Scale),
    }
)


def _column(rows: list[dict[str, object]], name: str) -> np.ndarray:
    return np.array([math.nan if row[name] is None else row[name] for row in rows], dtype=float)


@settings(max_examples=300)
@given(st.lists(OBSERVATIONS, min_size=1, max_size=40))
def test_vectorised_equals_scalar(rows: list[dict[str, object]]) -> None:
    arrays = score_arrays(
        respiration_rate=_column(rows, "respiration_rate"),
        spo2=_column(rows, "spo2"),
        on_oxygen=np.array(
            [
                math.nan if row["on_oxygen"] is None else float(bool(row["on_oxygen"]))
                for row in rows
            ]
        ),
        systolic_bp=_column(rows, "systolic_bp"),
        pulse=_column(rows, "pulse"),
        consciousness=np.array(
            [
                math.nan if row["consciousness"] is None else row["consciousness"].code  # type: ignore[attr-defined]
                for row in rows
            ]
        ),
        temperature=_column(rows, "temperature"),
        scale=np.array([int(row["scale"]) for row in rows]),  # type: ignore[call-overload]
    )
    assert len(arrays) == len(rows)
    for index, row in enumerate(rows):
        expected = score(**row)  # type: ignore[arg-type]
        assert arrays.result(index) == expected, row
        assert bool(arrays.partial[index]) == expected.partial
