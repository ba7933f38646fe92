"""Topic names are built and parsed in one place; metrics carry their units and codes."""

from __future__ import annotations

import pytest

from vitals import BP_PANEL_LOINC, Metric, MetricKind, TopicError, topics


def test_topic_names() -> None:
    assert topics.readings("oak", "gw-1") == "carewatch/v1/oak/gw-1/readings"
    assert topics.status("oak", "gw-1") == "carewatch/v1/oak/gw-1/status"
    assert topics.alerts("oak") == "carewatch/v1/oak/alerts"
    assert topics.deadletter("oak") == "carewatch/v1/oak/deadletter"
    assert topics.READINGS_FILTER == "carewatch/v1/+/+/readings"
    assert (
        topics.shared("ingest", topics.READINGS_FILTER) == "$share/ingest/carewatch/v1/+/+/readings"
    )


@pytest.mark.parametrize(
    ("topic", "kind", "site", "gateway"),
    [
        ("carewatch/v1/oak/gw-1/readings", topics.TopicKind.READINGS, "oak", "gw-1"),
        ("carewatch/v1/oak/gw-1/status", topics.TopicKind.STATUS, "oak", "gw-1"),
        ("carewatch/v1/oak/alerts", topics.TopicKind.ALERTS, "oak", None),
        ("carewatch/v1/oak/deadletter", topics.TopicKind.DEADLETTER, "oak", None),
    ],
)
def test_parse_round_trips(
    topic: str, kind: topics.TopicKind, site: str, gateway: str | None
) -> None:
    parsed = topics.parse(topic)
    assert (parsed.kind, parsed.site, parsed.gateway) == (kind, site, gateway)


@pytest.mark.parametrize(
    "topic",
    [
        "carewatch/v2/oak/gw-1/readings",
        "carewatch/v1/oak/gw-1/alerts",
        "carewatch/v1/oak/readings",
        "carewatch/v1/oak/gw-1/readings/extra",
        "carewatch/v1/+/gw-1/readings",
        "carewatch/v1//gw-1/readings",
        "other/v1/oak/gw-1/readings",
        "",
    ],
)
def test_parse_refuses_other_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        topics.parse(topic)


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "$SYS", "-x", "é", "x" * 65, "a b"])
def test_identifiers_that_would_break_a_topic_are_refused(bad: str) -> None:
    with pytest.raises(TopicError, match="invalid site"):
        topics.readings(bad, "gw")
    with pytest.raises(TopicError, match="invalid gateway"):
        topics.status("oak", bad)


@pytest.mark.parametrize(
    ("metric", "unit", "loinc"),
    [
        (Metric.HEART_RATE, "/min", "8867-4"),
        (Metric.SPO2, "%", "2708-6"),
        (Metric.BODY_TEMPERATURE, "Cel", "8310-5"),
        (Metric.SYSTOLIC_BP, "mm[Hg]", "8480-6"),
        (Metric.DIASTOLIC_BP, "mm[Hg]", "8462-4"),
        (Metric.BODY_WEIGHT, "kg", "29463-7"),
        (Metric.RESPIRATORY_RATE, "/min", "9279-1"),
        (Metric.BATTERY_LEVEL, "%", None),
    ],
)
def test_metric_units_and_loinc_codes(metric: Metric, unit: str, loinc: str | None) -> None:
    assert metric.unit == unit
    assert metric.loinc == loinc


def test_bp_panel_code() -> None:
    assert BP_PANEL_LOINC == "85354-9"


def test_events_and_ranges() -> None:
    assert Metric.FALL.kind is MetricKind.EVENT
    assert Metric.HELP_BUTTON.kind is MetricKind.EVENT
    assert Metric.BATTERY_LEVEL.kind is MetricKind.DEVICE
    assert Metric.HEART_RATE.in_range(300)
    assert not Metric.HEART_RATE.in_range(300.01)
    assert not Metric.HEART_RATE.in_range(float("nan"))
    for metric in Metric:
        assert metric.info.minimum <= metric.info.maximum
        assert metric.display
