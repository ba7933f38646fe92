"""The device registry matches advertisements to registered devices; backoff grows, is capped
and random."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from pydantic import ValidationError

from gateway.registry import DeviceEntry, Registry
from vitals.backoff import Backoff
from vitals.devices import DeviceKind


def entry(**fields: object) -> DeviceEntry:
    return DeviceEntry.model_validate(fields)


def test_match_by_address_then_name() -> None:
    registry = Registry(
        [
            entry(id="r01-hr", kind="wearable", address="c0:11:22:33:44:55", resident="r01"),
            entry(id="r02-cuff", kind="bp_cuff", name=r"CW-CUFF-0*2"),
        ]
    )
    by_address = registry.match("C0:11:22:33:44:55", "anything")
    assert by_address is not None
    assert by_address.id == "r01-hr"
    by_name = registry.match("D0:00:00:00:00:01", "CW-CUFF-002")
    assert by_name is not None
    assert by_name.id == "r02-cuff"
    assert registry.match("D0:00:00:00:00:01", "CW-CUFF-002x") is None
    assert registry.match("D0:00:00:00:00:01", None) is None
    assert len(registry) == 2
    assert registry.get("r01-hr") is by_address


def test_cadence_defaults_to_the_kind() -> None:
    wearable = entry(id="w", kind="wearable", address="C0:00:00:00:00:01")
    assert wearable.expected_cadence == DeviceKind.WEARABLE.info.cadence
    assert not wearable.spot
    scale = entry(id="s", kind="scale", name="SCALE", cadence=timedelta(hours=6))
    assert scale.expected_cadence == timedelta(hours=6)
    assert scale.spot


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "x", "kind": "wearable"}, "give an address or a name pattern"),
        ({"id": "x", "kind": "toaster", "name": "T"}, "kind"),
        ({"id": "x/y", "kind": "wearable", "name": "T"}, "id"),
        ({"id": "x", "kind": "wearable", "address": "C0:11"}, "address"),
        ({"id": "x", "kind": "wearable", "name": "("}, "bad name pattern"),
        ({"id": "x", "kind": "wearable", "name": "T", "colour": "red"}, "colour"),
    ],
)
def test_bad_entries(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        entry(**fields)


def test_duplicate_ids_refused() -> None:
    a = entry(id="x", kind="wearable", name="A")
    with pytest.raises(ValueError, match="registered twice: x"):
        Registry([a, a])


def test_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(1.0, 30.0, random.Random(7))
    delays = [backoff.next() for _ in range(10)]
    caps = [min(30.0, 2.0**n) for n in range(10)]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap
    assert max(delays) <= 30.0
    assert backoff.failures == 10
    backoff.reset()
    assert backoff.next() <= 1.0


def test_backoff_is_random() -> None:
    a = Backoff(1.0, 60.0, random.Random(1))
    b = Backoff(1.0, 60.0, random.Random(2))
    assert [a.next() for _ in range(5)] != [b.next() for _ in range(5)]
    with pytest.raises(ValueError, match="initial"):
        Backoff(0, 1)
