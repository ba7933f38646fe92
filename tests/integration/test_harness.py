"""Self-tests of the test harness against the real servers it starts."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.harness import (
    LOOPBACK,
    InfluxDBError,
    InfluxDBFactory,
    InfluxDBServer,
    MosquittoFactory,
    MosquittoOptions,
    MosquittoServer,
    PortInUseError,
    ServerStartError,
    free_port,
    mqtt_connack,
    poll_until,
    require_binary,
    write_password_file,
)

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z, all nine digits significant
NETWORK_SECONDS = 10.0


def _session_properties(expiry_seconds: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry_seconds
    return props


# -- (a) InfluxDB: line protocol in, InfluxQL out -------------------------------------------


def test_influxdb_round_trip_keeps_values_tags_and_ns_timestamps(
    influxdb: InfluxDBServer, influx_db: str
) -> None:
    influxdb.write_lines(
        influx_db,
        "\n".join(
            [
                f"vitals,resident=r1,metric=heart_rate value=72i,quality=0.95 {T0}",
                f"vitals,resident=r1,metric=heart_rate value=75i,quality=0.5 {T0 + 1}",
                f"vitals,resident=r2,metric=spo2 value=97i,quality=1 {T0}",
            ]
        ),
    )

    rows = influxdb.query_rows(
        influx_db, "SELECT value, quality FROM vitals GROUP BY resident, metric"
    )

    assert rows == [
        {
            "_measurement": "vitals",
            "resident": "r1",
            "metric": "heart_rate",
            "time": T0,
            "value": 72,
            "quality": 0.95,
        },
        {
            "_measurement": "vitals",
            "resident": "r1",
            "metric": "heart_rate",
            "time": T0 + 1,
            "value": 75,
            "quality": 0.5,
        },
        {
            "_measurement": "vitals",
            "resident": "r2",
            "metric": "spo2",
            "time": T0,
            "value": 97,
            "quality": 1.0,
        },
    ]
    assert all(isinstance(row["value"], int) for row in rows)


def test_influxdb_same_series_and_timestamp_keeps_one_point_last_write_wins(
    influxdb: InfluxDBServer, influx_db: str
) -> None:
    influxdb.write_lines(influx_db, f"vitals,resident=r1,metric=heart_rate value=72i {T0}")
    influxdb.write_lines(influx_db, f"vitals,resident=r1,metric=heart_rate value=80i {T0}")

    rows = influxdb.query_rows(influx_db, "SELECT value FROM vitals")
    count = influxdb.query_rows(influx_db, "SELECT count(value) FROM vitals")

    assert rows == [{"_measurement": "vitals", "time": T0, "value": 80}]
    assert count[0]["count"] == 1


@pytest.mark.parametrize(
    ("precision", "timestamp", "expected_ns"),
    [
        ("ns", T0, T0),
        ("us", T0 // 1_000, T0 // 1_000 * 1_000),
        ("ms", T0 // 1_000_000, T0 // 1_000_000 * 1_000_000),
        ("s", T0 // 1_000_000_000, T0 // 1_000_000_000 * 1_000_000_000),
    ],
)
def test_influxdb_write_precision_scales_timestamps(
    influxdb: InfluxDBServer, influx_db: str, precision: str, timestamp: int, expected_ns: int
) -> None:
    # 1.x reads an unknown precision such as "us" as nanoseconds, silently: this would catch it.
    influxdb.write_lines(influx_db, f"m value=1i {timestamp}", precision=precision)

    assert influxdb.query_rows(influx_db, "SELECT value FROM m")[0]["time"] == expected_ns


def test_influxdb_errors_are_typed(influxdb: InfluxDBServer, influx_db: str) -> None:
    missing = f"missing_{uuid.uuid4().hex}"
    with pytest.raises(InfluxDBError, match="database not found") as refused:
        influxdb.write_lines(missing, f"m value=1i {T0}")
    assert refused.value.status == 404
    with pytest.raises(InfluxDBError, match="database not found"):
        influxdb.query(missing, "SELECT * FROM m")
    with pytest.raises(InfluxDBError, match="unable to parse") as bad_line:
        influxdb.write_lines(influx_db, "m value= 1")
    assert bad_line.value.status == 400
    with pytest.raises(ValueError, match="precision"):
        influxdb.write_lines(influx_db, f"m value=1i {T0}", precision="n")


def test_influxdb_keeps_acknowledged_writes_across_stop_and_kill(
    fresh_influxdb: InfluxDBFactory,
) -> None:
    server = fresh_influxdb()
    port = server.port
    server.create_database("kept")
    server.write_lines("kept", f"m value=1i {T0}")

    server.restart()
    server.write_lines("kept", f"m value=2i {T0 + 1}")
    server.kill()
    assert not server.running
    server.start()

    assert server.port == port
    rows = server.query_rows("kept", "SELECT value FROM m")
    assert [(row["time"], row["value"]) for row in rows] == [(T0, 1), (T0 + 1, 2)]


# -- (b) Mosquitto: a QoS 1 round trip ------------------------------------------------------


async def test_mosquitto_qos1_round_trip(
    mosquitto: MosquittoServer, mqtt_topic_prefix: str
) -> None:
    topic = f"{mqtt_topic_prefix}/readings"
    payload = b'{"v":1,"hr":72}'
    async with asyncio.timeout(NETWORK_SECONDS):
        async with (
            aiomqtt.Client(
                mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as subscriber,
            aiomqtt.Client(
                mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as publisher,
        ):
            await subscriber.subscribe(topic, qos=1)
            await publisher.publish(topic, payload, qos=1)
            message = await anext(subscriber.messages)

    assert message.topic.value == topic
    assert message.payload == payload
    assert message.qos == 1


def test_mosquitto_lets_more_than_20_messages_await_their_ack(
    mosquitto: MosquittoServer, mqtt_topic_prefix: str
) -> None:
    # The ingestor acks only after storing; Mosquitto's default max_inflight_messages (20)
    # would stop delivery at 20 unacknowledged messages.
    topic = f"{mqtt_topic_prefix}/readings"
    count = 100
    received: list[paho.MQTTMessage] = []
    subscribed: list[int] = []
    subscriber = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    subscriber.manual_ack_set(True)
    subscriber.on_message = lambda _client, _userdata, message: received.append(message)
    subscriber.on_subscribe = lambda _client, _userdata, mid, _codes, _props: subscribed.append(mid)
    publisher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    subscriber.connect(mosquitto.host, mosquitto.port)
    subscriber.loop_start()
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    try:
        _, mid = subscriber.subscribe(topic, qos=1)
        poll_until(lambda: mid in subscribed or None, within=NETWORK_SECONDS, what="SUBACK")
        for info in [publisher.publish(topic, str(n).encode(), qos=1) for n in range(count)]:
            info.wait_for_publish(timeout=NETWORK_SECONDS)
        poll_until(
            lambda: len(received) >= count or None,
            within=NETWORK_SECONDS,
            what=f"{count} unacknowledged messages delivered",
        )
        assert [message.payload for message in received] == [str(n).encode() for n in range(count)]
        for message in received:
            subscriber.ack(message.mid, message.qos)
    finally:
        for client in (subscriber, publisher):
            client.disconnect()
            client.loop_stop()


async def test_mosquitto_queues_more_than_1000_messages_for_an_offline_session(
    mosquitto: MosquittoServer, mqtt_topic_prefix: str
) -> None:
    # Mosquitto's default max_queued_messages (1000) would silently drop the rest.
    topic = f"{mqtt_topic_prefix}/readings"
    count = 1500
    subscriber_id = f"harness-sub-{uuid.uuid4().hex[:12]}"

    def subscriber() -> aiomqtt.Client:
        return aiomqtt.Client(
            mosquitto.host,
            mosquitto.port,
            identifier=subscriber_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=_session_properties(60),
        )

    async with asyncio.timeout(NETWORK_SECONDS * 3):
        async with subscriber() as client:
            await client.subscribe(topic, qos=1)
        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as publisher:
            for n in range(count):
                await publisher.publish(topic, str(n).encode(), qos=1)
        async with subscriber() as client:
            payloads = [(await anext(client.messages)).payload for _ in range(count)]

    assert payloads == [str(n).encode() for n in range(count)]


# -- (c) Mosquitto: a persistent session survives a broker restart --------------------------


async def test_persistent_session_and_queued_qos1_survive_broker_restart(
    fresh_mosquitto: MosquittoFactory, mqtt_topic_prefix: str
) -> None:
    broker = fresh_mosquitto()
    port = broker.port
    topic = f"{mqtt_topic_prefix}/readings"
    payload = b"queued while the subscriber was away"
    subscriber_id = f"harness-sub-{uuid.uuid4().hex[:12]}"

    def subscriber() -> aiomqtt.Client:
        return aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=subscriber_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=_session_properties(300),
        )

    async with asyncio.timeout(NETWORK_SECONDS):
        async with subscriber() as client:
            await client.subscribe(topic, qos=1)
        async with aiomqtt.Client(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as publisher:
            await publisher.publish(topic, payload, qos=1)

    broker.restart()  # SIGTERM saves the in-memory state; the new process loads it
    assert broker.port == port
    assert (broker.data_dir / "mosquitto.db").is_file()

    async with asyncio.timeout(NETWORK_SECONDS), subscriber() as client:
        message = await anext(client.messages)

    assert message.topic.value == topic
    assert message.payload == payload
    assert message.qos == 1


# -- Mosquitto: configuration hooks and start failures --------------------------------------


async def test_mosquitto_password_and_acl_files(
    fresh_mosquitto: MosquittoFactory, mqtt_topic_prefix: str, tmp_path: Path
) -> None:
    passwords = write_password_file(tmp_path / "passwd", {"gateway": "s3cret"})
    acl = tmp_path / "acl"
    acl.write_text("user gateway\ntopic readwrite test/#\n", encoding="utf-8")
    broker = fresh_mosquitto(
        MosquittoOptions(allow_anonymous=False, password_file=passwords, acl_file=acl)
    )
    topic = f"{mqtt_topic_prefix}/readings"

    assert mqtt_connack(broker.host, broker.port, timeout=NETWORK_SECONDS) == 5  # refused
    async with (
        asyncio.timeout(NETWORK_SECONDS),
        aiomqtt.Client(
            broker.host,
            broker.port,
            username="gateway",
            password="s3cret",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as client,
    ):
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"hello", qos=1)
        message = await anext(client.messages)
    assert message.payload == b"hello"


def test_mosquitto_start_failure_reports_the_log_tail(fresh_mosquitto: MosquittoFactory) -> None:
    broker = fresh_mosquitto(MosquittoOptions(extra_config=("no_such_option 1",)), start=False)

    with pytest.raises(ServerStartError, match="no_such_option") as failed:
        broker.start()

    assert not isinstance(failed.value, PortInUseError)
    assert str(broker.log_path) in str(failed.value)
    assert not broker.running


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port with a listener on it that never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        yield squatter.getsockname()[1]


def test_mosquitto_retries_on_a_new_port_when_its_port_is_taken(
    tmp_path: Path, mosquitto_binary: Path, taken_port: int
) -> None:
    picks = iter([taken_port])
    broker = MosquittoServer(
        tmp_path, binary=mosquitto_binary, port_picker=lambda: next(picks, None) or free_port()
    )
    with broker:
        assert broker.port != taken_port
        assert mqtt_connack(broker.host, broker.port, timeout=NETWORK_SECONDS) == 0
    assert "Address already in use" in broker.log_tail(100)


def test_influxdb_retries_on_new_ports_when_its_rpc_port_is_taken(
    tmp_path: Path, influxd_binary: Path, taken_port: int
) -> None:
    http_port = free_port()
    picks = iter([http_port, taken_port])  # HTTP first, then RPC (the 8088 analogue)
    server = InfluxDBServer(
        tmp_path, binary=influxd_binary, port_picker=lambda: next(picks, None) or free_port()
    )
    with server:
        assert taken_port not in (server.port, server.rpc_port)
        assert server.query(None, "SHOW DATABASES")["results"][0]["statement_id"] == 0
    assert not server.running


# -- (d) the skip-or-fail rule for missing binaries -----------------------------------------

MISSING = "carewatch-no-such-binary"


def test_missing_binary_is_skipped_without_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_binary(MISSING, debian_package="carewatch-pkg")
    assert MISSING in str(skipped.value)
    assert "carewatch-pkg" in str(skipped.value)


def test_missing_binary_is_skipped_when_ci_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_binary(MISSING, debian_package="carewatch-pkg")


def test_missing_binary_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_binary(MISSING, debian_package="carewatch-pkg")
    assert MISSING in str(failed.value)
    assert "carewatch-pkg" in str(failed.value)


def test_present_binary_is_found_even_off_path(
    monkeypatch: pytest.MonkeyPatch, mosquitto_binary: Path
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    found = require_binary(
        mosquitto_binary.name, debian_package="mosquitto", search_dirs=(mosquitto_binary.parent,)
    )
    assert found == mosquitto_binary
