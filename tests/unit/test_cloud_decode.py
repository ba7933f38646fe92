"""From MQTT messages to stored readings and dead letters (pure)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from cloud.ingest.deadletter import MAX_PAYLOAD, Outgoing, refused_message, refused_readings
from cloud.ingest.decode import Decoder
from cloud.registry import DeviceEntry, Directory
from cloud.settings import UnknownDevicePolicy
from cloud.store.base import storage_time_ns
from tests.ingest_driver import START, batch_payload, reading_dict
from vitals import DeadLetter, Metric, parse_message, topics

NOW = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SITE = "oak-house"
GATEWAY = "gw-01"
TOPIC = topics.readings(SITE, GATEWAY)
DEVICES = ["r01-hr", "r02-hr"]


def decoder(policy: UnknownDevicePolicy = UnknownDevicePolicy.STORE) -> Decoder:
    directory = Directory.of(
        [DeviceEntry(SITE, "r01", "r01-hr"), DeviceEntry(SITE, "r02", "r02-hr")]
    )
    return Decoder(directory, unknown_device=policy, unassigned_resident="unassigned")


def letters(decoded_letters: Sequence[Outgoing]) -> list[DeadLetter]:
    out = []
    for letter in decoded_letters:
        assert letter.topic == topics.deadletter(SITE)
        out.append(parse_message(DeadLetter, letter.payload))
    return out


def test_a_good_batch_becomes_stored_readings() -> None:
    payload = batch_payload(SITE, GATEWAY, range(20), DEVICES)

    decoded = decoder().decode(TOPIC, payload, NOW)

    assert not decoded.refused_message
    assert decoded.deadletters == []
    assert len(decoded.readings) == 20
    first = decoded.readings[0]
    assert (first.site, first.resident, first.device, first.gateway) == (
        SITE,
        "r01",
        "r01-hr",
        GATEWAY,
    )
    assert {r.resident for r in decoded.readings} == {"r01", "r02"}
    # seqs 7, 8, 9 are RR intervals measured at the same instant: three distinct points
    rr = [r for r in decoded.readings if r.metric is Metric.RR_INTERVAL]
    assert [r.seq for r in rr] == [7, 8, 9, 17, 18, 19]
    assert len({r.time_ns for r in rr[:3]}) == 3
    assert rr[0].time_ns == storage_time_ns(int(START.timestamp()) * 10**9 + 7_000_000, 7)


def test_the_fast_path_and_the_models_store_the_same_readings() -> None:
    devices = ["r01-hr", "stranger", "r02-hr"]
    good = batch_payload(SITE, GATEWAY, range(30), devices)
    # One bad reading sends the whole message down the slow path (models + dead letter).
    mixed = batch_payload(SITE, GATEWAY, range(31), devices, bad={30: {"unit": "bpm"}})

    fast = decoder().decode(TOPIC, good, NOW)
    slow = decoder().decode(TOPIC, mixed, NOW)

    assert slow.invalid == 1
    assert fast.invalid == 0
    assert fast.readings == slow.readings
    assert fast.unknown == slow.unknown == {(SITE, "stranger")}


def test_unknown_devices_are_stored_as_unassigned_by_default() -> None:
    payload = batch_payload(SITE, GATEWAY, range(30), ["r01-hr", "stranger", "r02-hr"])

    decoded = decoder().decode(TOPIC, payload, NOW)

    assert len(decoded.readings) == 30
    assert {r.resident for r in decoded.readings if r.device == "stranger"} == {"unassigned"}
    assert decoded.unknown == {(SITE, "stranger")}
    assert decoded.deadletters == []


@pytest.mark.parametrize("bad_beside", [False, True])
def test_the_gateways_probe_is_stored_unassigned_and_not_reported_unknown(
    bad_beside: bool,
) -> None:
    probe = reading_dict(GATEWAY, 5, [GATEWAY]) | {
        "device": GATEWAY,
        "metric": "probe",
        "unit": "{probe}",
        "value": 1.0,
    }
    readings = [probe] + (
        [reading_dict(GATEWAY, 6, DEVICES) | {"unit": "bpm"}] if bad_beside else []
    )
    payload = json.dumps(
        {"v": 1, "site": SITE, "gateway": GATEWAY, "sent": NOW.isoformat(), "readings": readings}
    ).encode()

    decoded = decoder().decode(TOPIC, payload, NOW)

    [stored] = decoded.readings
    assert (stored.metric, stored.resident, stored.device) == (Metric.PROBE, "unassigned", GATEWAY)
    assert decoded.unknown == set()
    assert decoded.invalid == (1 if bad_beside else 0)


def test_unknown_devices_are_dead_lettered_under_that_policy() -> None:
    payload = batch_payload(SITE, GATEWAY, range(30), ["r01-hr", "stranger", "r02-hr"])

    decoded = decoder(UnknownDevicePolicy.DEADLETTER).decode(TOPIC, payload, NOW)

    assert len(decoded.readings) == 20
    assert decoded.unknown_refused == 10
    [letter] = letters(decoded.deadletters)
    assert letter.reason == "10 of 30 readings refused"
    assert all("stranger" in line and "not in the registry" in line for line in letter.errors)
    assert [r["seq"] for r in json.loads(letter.payload)] == list(range(10, 20))


def test_one_bad_reading_never_costs_the_good_ones() -> None:
    bad: dict[int, dict[str, object]] = {
        3: {"value": 400.0},
        11: {"unit": "bpm"},
        12: {"time": "yesterday"},
    }
    payload = batch_payload(SITE, GATEWAY, range(20), DEVICES, bad=bad)

    decoded = decoder().decode(TOPIC, payload, NOW)

    assert sorted(r.seq for r in decoded.readings) == [s for s in range(20) if s not in bad]
    assert decoded.invalid == 3
    [letter] = letters(decoded.deadletters)
    assert letter.site == SITE
    assert letter.topic == TOPIC
    assert letter.received == NOW
    assert letter.reason == "3 of 20 readings refused"
    assert [json.loads(letter.payload)[i]["seq"] for i in range(3)] == [3, 11, 12]
    assert letter.errors[0].startswith("readings.3: value 400.0 of heart_rate is outside")
    assert "bpm" in letter.errors[1]
    assert letter.errors[2].startswith("readings.12.time")


def test_many_bad_readings_give_several_dead_letters_and_lose_none() -> None:
    bad = {seq: {"value": -1.0} for seq in range(250) if seq % 10 < 7}  # 175 heart rates
    payload = batch_payload(SITE, GATEWAY, range(250), DEVICES, bad=bad)

    decoded = decoder().decode(TOPIC, payload, NOW)

    out = letters(decoded.deadletters)
    assert [len(letter.errors) for letter in out] == [100, 75]
    refused = [item["seq"] for letter in out for item in json.loads(letter.payload)]
    assert refused == sorted(bad)
    assert len(decoded.readings) == 75


@pytest.mark.parametrize(
    ("payload", "reason", "error"),
    [
        (b"{not json", "invalid readings batch", "not JSON"),
        (b"[1, 2]", "invalid readings batch", "JSON object"),
        (b'{"v": 1, "site": "oak-house"}', "invalid readings batch", "gateway"),
        (b'{"v": 2, "site": "oak-house", "gateway": "gw-01", "sent": "2024-05-01T08:00:00Z",'
         b' "readings": [{}]}', "invalid readings batch", "v:"),
        (b"\xff\xfe\x00binary", "invalid readings batch", "not JSON"),
    ],
)  # fmt: skip
def test_a_bad_message_is_refused_whole(payload: bytes, reason: str, error: str) -> None:
    decoded = decoder().decode(TOPIC, payload, NOW)

    assert decoded.refused_message
    assert decoded.readings == []
    [letter] = letters(decoded.deadletters)
    assert letter.reason == reason
    assert any(error in line for line in letter.errors), letter.errors
    if payload.startswith(b"\xff"):
        assert letter.payload == "base64:" + base64.b64encode(payload).decode()
    else:
        assert letter.payload == payload.decode()


def test_the_payload_must_agree_with_the_topic() -> None:
    payload = batch_payload(SITE, "gw-02", range(3), DEVICES)

    decoded = decoder().decode(TOPIC, payload, NOW)

    [letter] = letters(decoded.deadletters)
    assert letter.reason == "topic mismatch"
    assert "gw-02" in letter.errors[0]


def test_a_topic_without_a_valid_site_goes_to_the_unroutable_dead_letters() -> None:
    topic = "carewatch/v1/bad site!/gw-01/readings"

    decoded = decoder().decode(topic, b"{}", NOW)

    [letter] = decoded.deadletters
    assert letter.topic == "carewatch/v1/unroutable/deadletter"
    assert parse_message(DeadLetter, letter.payload).reason == "not a readings topic"


def test_dead_letters_are_cut_to_what_the_schema_allows() -> None:
    huge = b"x" * (MAX_PAYLOAD * 2)
    letter = refused_message(SITE, TOPIC, NOW, reason="r" * 500, errors=["e" * 900] * 150,
                             payload=huge)  # fmt: skip

    parsed = parse_message(DeadLetter, letter.payload)

    assert len(parsed.payload) == MAX_PAYLOAD
    assert len(parsed.reason) == 200
    assert len(parsed.errors) == 100
    assert parsed.errors[-1] == "... and 51 more"
    assert all(len(line) <= 500 for line in parsed.errors)


def test_refused_readings_split_by_size() -> None:
    item = reading_dict(GATEWAY, 1, DEVICES) | {"note": "y" * 3000}
    out = refused_readings(SITE, TOPIC, NOW, reason="r", items=[(item, "bad")] * 50)

    parsed = [parse_message(DeadLetter, letter.payload) for letter in out]

    assert len(parsed) > 2
    assert sum(len(json.loads(p.payload)) for p in parsed) == 50
    assert all(len(p.payload) <= MAX_PAYLOAD for p in parsed)
