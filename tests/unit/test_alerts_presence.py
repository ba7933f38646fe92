"""Missing data and events: silent devices, gateways offline, batteries, sensors off the
skin, falls, help-button presses and no activity after a fall."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from cloud.alerts import AlertEngine, Condition, Device, Resident, Roster
from vitals.devices import DeviceKind
from vitals.metrics import Metric
from vitals.wire import (
    AlertKind,
    DeviceState,
    GatewayState,
    Quality,
    Reading,
    Severity,
    Status,
)

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
_SEQ = itertools.count()


def make_engine(with_wearable: bool = True) -> AlertEngine:
    devices = [
        Device("r01-pen", DeviceKind.PENDANT, "gw1", "r01"),
        Device("r01-th", DeviceKind.THERMOMETER, "gw1", "r01"),
        Device("r02-hr", DeviceKind.WEARABLE, "gw2", "r02"),
    ]
    if with_wearable:
        devices.append(Device("r01-hr", DeviceKind.WEARABLE, "gw1", "r01"))
    roster = Roster((Resident("r01"), Resident("r02")), tuple(devices))
    return AlertEngine(roster, start=T0)


def reading(
    device: str,
    metric: Metric,
    value: float,
    t: datetime,
    *,
    flags: Sequence[Quality] = (),
    received: datetime | None = None,
) -> Reading:
    return Reading(
        gateway="gw1",
        device=device,
        metric=metric,
        value=value,
        unit=metric.unit,
        time=t,
        received=received or t,
        seq=next(_SEQ),
        flags=tuple(flags),
    )


def heart_rate(device: str, values: Sequence[float], start: datetime) -> list[Reading]:
    return [
        reading(device, Metric.HEART_RATE, v, start + timedelta(seconds=i))
        for i, v in enumerate(values)
    ]


def found(engine: AlertEngine, now: datetime, rule: str) -> dict[str, Condition]:
    return {c.key: c for c in engine.evaluate(now) if c.rule == rule}


def keep_alive(engine: AlertEngine, now: datetime) -> None:
    """Statuses from both gateways, so that only the devices are in question."""
    for gateway in ("gw1", "gw2"):
        engine.apply_status(
            Status(site="s", gateway=gateway, state=GatewayState.ONLINE, time=now), arrived=now
        )


# --- devices ----------------------------------------------------------------------------


def test_wearable_silent_after_the_floor() -> None:
    engine = make_engine()
    engine.ingest(heart_rate("r01-hr", [70.0] * 10, T0))
    last = T0 + timedelta(seconds=9)
    keep_alive(engine, last + timedelta(minutes=4))
    assert "device_silent:r01-hr" not in found(engine, last + timedelta(minutes=4), "device_silent")
    silent = found(engine, last + timedelta(minutes=4, seconds=1), "device_silent")
    condition = silent["device_silent:r01-hr"]
    assert condition.kind is AlertKind.TECHNICAL
    assert condition.severity is Severity.WARNING
    assert condition.resident == "r01"
    assert condition.gateway == "gw1"
    assert condition.message == (
        "[warning] r01-hr (r01): wearable silent for 4 min (expected every 1 s)"
    )


def test_spot_device_silent_after_three_cadences_and_pendant_is_urgent() -> None:
    engine = make_engine()
    now = T0 + timedelta(hours=35)
    keep_alive(engine, now)
    silent = found(engine, now, "device_silent")
    assert "device_silent:r01-th" not in silent  # 12 h cadence: silent after 36 h
    assert silent["device_silent:r01-pen"].severity is Severity.URGENT  # 5 min cadence
    now = T0 + timedelta(hours=36, seconds=1)
    keep_alive(engine, now)
    assert "device_silent:r01-th" in found(engine, now, "device_silent")


def test_any_reading_counts_as_presence() -> None:
    engine = make_engine()
    engine.ingest(
        [
            reading(
                "r01-hr",
                Metric.HEART_RATE,
                70,
                T0 + timedelta(minutes=12),
                flags=[Quality.NO_CONTACT],
            ),
            reading("r01-pen", Metric.BATTERY_LEVEL, 80, T0 + timedelta(minutes=12)),
        ]
    )
    now = T0 + timedelta(minutes=15)
    keep_alive(engine, now)
    silent = found(engine, now, "device_silent")
    assert "device_silent:r01-hr" not in silent
    assert "device_silent:r01-pen" not in silent
    assert "device_silent:r02-hr" in silent


def test_status_last_seen_counts_as_presence() -> None:
    engine = make_engine()
    now = T0 + timedelta(minutes=15)
    engine.apply_status(
        Status(
            site="s",
            gateway="gw1",
            state=GatewayState.ONLINE,
            time=now,
            devices=(DeviceState(device="r01-hr", connected=True, last_seen=now),),
        ),
        arrived=now,
    )
    assert "device_silent:r01-hr" not in found(engine, now, "device_silent")


def test_sensor_off_the_skin() -> None:
    engine = make_engine()
    engine.ingest(heart_rate("r01-hr", [70.0] * 10, T0))
    off = [
        reading(
            "r01-hr",
            Metric.HEART_RATE,
            0,
            T0 + timedelta(seconds=10 + i),
            flags=[Quality.NO_CONTACT],
        )
        for i in range(0, 400, 5)
    ]
    engine.ingest(off)
    now = T0 + timedelta(seconds=10 + 179)
    keep_alive(engine, now)
    assert not found(engine, now, "sensor_off")
    now = T0 + timedelta(seconds=10 + 180)
    (condition,) = found(engine, now, "sensor_off").values()
    assert condition.device == "r01-hr"
    assert condition.message == "[warning] r01-hr (r01): wearable reports no skin contact for 3 min"
    engine.ingest(heart_rate("r01-hr", [70.0], T0 + timedelta(seconds=420)))
    assert not found(engine, T0 + timedelta(seconds=421), "sensor_off")


# --- gateways ---------------------------------------------------------------------------


def test_gateway_offline_after_the_grace_and_devices_not_repeated() -> None:
    engine = make_engine()
    engine.ingest(heart_rate("r01-hr", [70.0] * 5, T0))
    will = T0 + timedelta(minutes=1)
    engine.apply_status(Status(site="s", gateway="gw1", state=GatewayState.OFFLINE), arrived=will)
    engine.apply_status(
        Status(site="s", gateway="gw2", state=GatewayState.ONLINE, time=will), arrived=will
    )
    assert not found(engine, will + timedelta(seconds=119), "gateway_offline")
    now = will + timedelta(minutes=2)
    (condition,) = found(engine, now, "gateway_offline").values()
    assert condition.gateway == "gw1"
    assert condition.severity is Severity.URGENT
    assert condition.message == "[urgent] gw1: gateway offline for 2 min"
    later = T0 + timedelta(minutes=20)
    engine.apply_status(
        Status(site="s", gateway="gw2", state=GatewayState.ONLINE, time=later), arrived=later
    )
    silent = found(engine, later, "device_silent")
    assert set(silent) == {"device_silent:r02-hr"}  # gw1's devices are covered by gw1's alert
    engine.apply_status(
        Status(site="s", gateway="gw1", state=GatewayState.ONLINE, time=later), arrived=later
    )
    assert not found(engine, later, "gateway_offline")


def test_gateway_silent_without_status_or_readings() -> None:
    engine = make_engine()
    keep_alive(engine, T0)
    assert not found(engine, T0 + timedelta(minutes=4), "gateway_offline")
    engine.ingest(heart_rate("r02-hr", [70.0], T0 + timedelta(minutes=4)))
    gateways = found(engine, T0 + timedelta(minutes=6), "gateway_offline")
    assert set(gateways) == {"gateway_offline:gw1"}  # gw2's reading kept it alive
    assert gateways["gateway_offline:gw1"].message == "[urgent] gw1: gateway silent for 6 min"


# --- battery ----------------------------------------------------------------------------


def test_battery_levels_with_hysteresis() -> None:
    engine = make_engine()
    levels = [25, 19, 20, 19, 9, 12, 16, 24, 25]
    expected = [
        None,
        Severity.WARNING,
        Severity.WARNING,  # 19/20 jitter does not flap
        Severity.WARNING,
        Severity.URGENT,
        Severity.URGENT,  # urgent clears from 15 %
        Severity.WARNING,
        Severity.WARNING,  # warning clears from 25 %
        None,
    ]
    states = []
    for i, level in enumerate(levels):
        t = T0 + timedelta(minutes=i)
        engine.ingest([reading("r01-pen", Metric.BATTERY_LEVEL, level, t)])
        conditions = found(engine, t, "battery_low")
        states.append(conditions["battery_low:r01-pen"].severity if conditions else None)
    assert states == expected


def test_battery_from_a_status() -> None:
    engine = make_engine()
    engine.apply_status(
        Status(
            site="s",
            gateway="gw1",
            state=GatewayState.ONLINE,
            time=T0,
            devices=(DeviceState(device="r01-hr", connected=True, battery=8),),
        ),
        arrived=T0,
    )
    (condition,) = found(engine, T0, "battery_low").values()
    assert condition.severity is Severity.URGENT
    assert condition.value == 8
    assert condition.message == "[urgent] r01-hr (r01): wearable battery 8 %"


# --- events -----------------------------------------------------------------------------


def test_fall_and_help_are_critical_at_once() -> None:
    engine = make_engine()
    engine.ingest(
        [
            reading("r01-pen", Metric.FALL, 1, T0),
            reading("r01-pen", Metric.HELP_BUTTON, 1, T0 + timedelta(seconds=5)),
        ]
    )
    now = T0 + timedelta(seconds=5)
    fall = found(engine, now, "fall")["fall:r01:fall"]
    help_ = found(engine, now, "help")["help:r01:help_button"]
    for condition in (fall, help_):
        assert condition.severity is Severity.CRITICAL
        assert condition.kind is AlertKind.CLINICAL
        assert condition.device == "r01-pen"
    assert fall.message == "[critical] r01: fall detected at 2025-01-06T12:00:00Z"
    assert fall.time == T0
    assert found(engine, T0 + timedelta(minutes=29), "fall")
    assert not found(engine, T0 + timedelta(minutes=31), "fall")


def test_a_late_fall_still_alerts() -> None:
    engine = make_engine()
    fell = T0 - timedelta(hours=2)
    engine.ingest([reading("r01-pen", Metric.FALL, 1, fell)], arrived=T0)
    (condition,) = found(engine, T0, "fall").values()
    assert condition.message == (
        "[critical] r01: fall detected at 2025-01-06T10:00:00Z, received 2 h late"
    )


def test_questionable_events_still_count() -> None:
    engine = make_engine()
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0, flags=[Quality.QUESTIONABLE])])
    assert found(engine, T0, "fall")


NO_ACTIVITY = "no_activity_after_fall:r01:heart_rate"


def test_no_activity_after_a_fall() -> None:
    seed = 9
    rng = np.random.default_rng(seed)
    engine = make_engine()
    engine.ingest(heart_rate("r01-hr", list(72 + rng.normal(0, 2, 60)), T0 - timedelta(seconds=60)))
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0)])
    shock = list(82 + rng.normal(0, 2, 30))  # the fall's own rise, inside the settle time
    lying = list(76 + rng.normal(0, 2, 900))  # still: a few bpm of noise
    engine.ingest(heart_rate("r01-hr", shock + lying, T0))
    assert not found(engine, T0 + timedelta(minutes=9), "no_activity_after_fall")
    condition = found(engine, T0 + timedelta(minutes=10), "no_activity_after_fall")[NO_ACTIVITY]
    assert condition.severity is Severity.CRITICAL, f"seed {seed}"
    assert condition.value is not None
    assert condition.value < 10
    assert not found(engine, T0 + timedelta(hours=2, seconds=1), "no_activity_after_fall")


def test_getting_up_is_activity() -> None:
    seed = 10
    rng = np.random.default_rng(seed)
    engine = make_engine()
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0)])
    lying = list(76 + rng.normal(0, 2, 240))
    walking = list(96 + rng.normal(0, 3, 300))  # got up: +20 bpm
    engine.ingest(heart_rate("r01-hr", lying + walking, T0))
    assert not found(engine, T0 + timedelta(minutes=10), "no_activity_after_fall"), f"seed {seed}"


def test_wearable_silent_after_a_fall() -> None:
    engine = make_engine()
    engine.ingest(heart_rate("r01-hr", [72.0] * 30, T0 - timedelta(seconds=30)))
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0)])
    (condition,) = found(engine, T0 + timedelta(minutes=10), "no_activity_after_fall").values()
    assert condition.value is None
    assert condition.message.endswith("the wearable has sent no heart rate")


def test_no_wearable_means_no_proxy() -> None:
    engine = make_engine(with_wearable=False)
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0)])
    now = T0 + timedelta(minutes=10)
    assert not found(engine, now, "no_activity_after_fall")
    results = {r.rule: r for r in engine.evaluate_arrays(now)}
    assert not results["no_activity_after_fall"].known[0]
    assert found(engine, now, "fall")  # the fall itself of course


def test_a_new_fall_restarts_the_watch() -> None:
    engine = make_engine()
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0)])
    engine.ingest(heart_rate("r01-hr", [76.0] * 100 + [100.0] * 100, T0))  # got up
    second = T0 + timedelta(seconds=300)
    engine.ingest([reading("r01-pen", Metric.FALL, 1, second)])
    engine.ingest(heart_rate("r01-hr", [80.0] * 700, second))
    assert engine.state.after_fall_count[0] == 700 - 60
    assert found(engine, second + timedelta(minutes=10), "no_activity_after_fall")


def test_a_fall_that_arrives_after_the_heart_rates() -> None:
    engine = make_engine()
    engine.ingest(heart_rate("r01-hr", [76.0] * 600, T0))  # measured after the fall...
    engine.ingest([reading("r01-pen", Metric.FALL, 1, T0)])  # ...which reaches us later
    assert engine.state.after_fall_count[0] == 32  # what the smoothed ring still holds
    assert found(engine, T0 + timedelta(minutes=10), "no_activity_after_fall")
