"""The shipped broker ACL against the real Mosquitto: a gateway publishes its own readings and
nothing else, reads nothing, and needs its password.

The broker runs with ``allow_anonymous false``, the password file and ACL written by the shipped
provisioning script (``deploy/mosquitto/provision.py``, run as a program, as an operator would)
or the shipped ``acl.example`` itself, and the global settings of the shipped
``mosquitto.conf`` (queue and packet limits, keepalive, ...; its listeners and paths are the
harness's). Clients are paho with MQTT v5, so refusals show as reason codes. What Debian's
Mosquitto 2.0.11 does:

* a publish outside the account's ``write`` rules: PUBACK 0x87 (Not authorized) at QoS 1, and
  the message is dropped. The drop is shown too: a valid publish sent after the refused one on
  the same connection reaches the ingestors' subscription, and the refused one never did;
* a subscription outside the account's ``read`` rules: SUBACK *grants* it (0x01), and then
  every message is checked against ``read`` at delivery and none is delivered. Shown by a
  round trip: once the ingestors have the message, the gateway's own PUBACK (sent after any
  delivery the broker would have queued for it) comes back with nothing before it;
* a wrong password, an unknown user, or no credentials: CONNACK 0x87 (not 0x86);
* a gateway provisioned while the broker runs is let in after SIGHUP, without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.homeassistant import default_node_id, discovery_topic, state_topic
from tests.harness import (
    MosquittoOptions,
    MosquittoServer,
    poll_until,
    write_password_file,
)
from vitals import topics
from vitals.metrics import Metric
from vitals.wire import Reading, ReadingBatch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
PROVISION = ROOT / "deploy" / "mosquitto" / "provision.py"
ACL_EXAMPLE = ROOT / "deploy" / "mosquitto" / "acl.example"
SHIPPED_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
WAIT = 10.0

NOT_AUTHORIZED = 0x87
BAD_USER_NAME_OR_PASSWORD = 0x86
GRANTED_QOS_1 = 0x01

SITE, OTHER_SITE = "home-0001", "home-0002"
GATEWAY = "gw-0001"
"""A gateway of SITE without Home Assistant."""
NEIGHBOUR = "gw-0002"
"""Another gateway of SITE, with Home Assistant topics."""

OTHER_PASSWORD = "other-site-password-0123"
"""gw-0003, a gateway of OTHER_SITE."""

PASSWORDS = {
    "ingest": "ingest-password-0123456789",
    "alerts": "alerts-password-0123456789",
    "api": "api-password-0123456789abc",
    GATEWAY: "gateway-password-0123456789",
    NEIGHBOUR: "neighbour-password-012345",
}

GLOBAL_SETTINGS = (
    "max_queued_bytes",
    "max_packet_size",
    "persistent_client_expiration",
    "queue_qos0_messages",
    "max_keepalive",
)
"""Settings of the shipped mosquitto.conf that the harness's config does not set itself."""


def shipped_settings() -> tuple[str, ...]:
    lines = SHIPPED_CONF.read_text(encoding="utf-8").splitlines()
    found = tuple(line.strip() for line in lines if line.split(" ", 1)[0] in GLOBAL_SETTINGS)
    assert len(found) == len(GLOBAL_SETTINGS), found
    return found


def provision(workdir: Path, *args: str, password: str, hasher: str = "auto") -> None:
    """Run the shipped provisioning script as a program, the password on stdin."""
    command = [
        sys.executable,
        str(PROVISION),
        "--acl",
        str(workdir / "acl"),
        "--passwd",
        str(workdir / "passwd"),
        "--hasher",
        hasher,
        *args,
        "--password-stdin",
    ]
    result = subprocess.run(
        command, input=f"{password}\n", capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # a given password is never echoed


def provisioned_files(workdir: Path) -> tuple[Path, Path]:
    for service in ("ingest", "alerts", "api"):
        provision(workdir, "add-service", service, password=PASSWORDS[service])
    # Both hashers: mosquitto_passwd (when installed) and the script's own PBKDF2 lines.
    provision(
        workdir, "add-gateway", "--site", SITE, "--gateway", GATEWAY, password=PASSWORDS[GATEWAY]
    )
    provision(
        workdir,
        "add-gateway",
        "--site",
        SITE,
        "--gateway",
        NEIGHBOUR,
        "--homeassistant",
        password=PASSWORDS[NEIGHBOUR],
        hasher="builtin",
    )
    provision(
        workdir,
        "add-gateway",
        "--site",
        OTHER_SITE,
        "--gateway",
        "gw-0003",
        password=OTHER_PASSWORD,
    )
    return workdir / "acl", workdir / "passwd"


@pytest.fixture(scope="module", params=["provisioned", "acl.example"])
def broker(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mosquitto_binary: Path,
) -> Iterator[MosquittoServer]:
    """A broker with the shipped ACL: written by provision.py, or acl.example as shipped."""
    workdir = tmp_path_factory.mktemp(f"acl-{request.param}")
    if request.param == "provisioned":
        acl, passwords = provisioned_files(workdir / "files")
    else:
        # acl.example as shipped, plus a gateway of another site added by provision.py, as an
        # operator starting from the example would.
        acl = workdir / "acl"
        shutil.copyfile(ACL_EXAMPLE, acl)
        passwords = write_password_file(workdir / "passwd", PASSWORDS)
        provision(
            workdir,
            "add-gateway",
            "--site",
            OTHER_SITE,
            "--gateway",
            "gw-0003",
            password=OTHER_PASSWORD,
        )
        assert acl.read_text(encoding="utf-8").startswith(ACL_EXAMPLE.read_text(encoding="utf-8"))
    options = MosquittoOptions(
        allow_anonymous=False,
        password_file=passwords,
        acl_file=acl,
        extra_config=shipped_settings(),
    )
    server = MosquittoServer(workdir / "broker", binary=mosquitto_binary, options=options)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- a small synchronous MQTT v5 client that reports reason codes --------------------------


@dataclass
class Client:
    """paho with MQTT v5 on its own network thread; every wait is bounded."""

    broker: MosquittoServer
    username: str | None
    password: str | None
    connack: ReasonCode | None = None
    messages: list[paho.MQTTMessage] = field(default_factory=list)
    _acks: dict[int, ReasonCode] = field(default_factory=dict)
    _subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._paho = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"acl-test-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv5,
        )
        if self.username is not None:
            self._paho.username_pw_set(self.username, self.password)
        self._paho.on_connect = self._on_connect
        self._paho.on_publish = self._on_publish
        self._paho.on_subscribe = self._on_subscribe
        self._paho.on_message = self._on_message

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: object,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connack = reason

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._acks[mid] = reason

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._subacks[mid] = reasons

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def connect(self) -> int:
        """Connect and return the CONNACK's reason code (0 accepted)."""
        self._paho.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=True)
        self._paho.loop_start()
        reason = poll_until(lambda: self.connack, within=WAIT, what=f"CONNACK for {self.username}")
        if reason.is_failure:
            self._paho.loop_stop()  # paho would try again and again
        return reason.value

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self._paho.publish(topic, payload, qos=1, retain=retain)
        assert info.rc == paho.MQTT_ERR_SUCCESS

        def acked() -> ReasonCode | None:
            with self._lock:
                return self._acks.get(info.mid)

        return poll_until(acked, within=WAIT, what=f"PUBACK for {topic}").value

    def subscribe(self, topic_filter: str) -> int:
        """Subscribe at QoS 1 and return the SUBACK's reason code (1 = granted QoS 1)."""
        result, mid = self._paho.subscribe(topic_filter, qos=1)
        assert result == paho.MQTT_ERR_SUCCESS
        assert mid is not None

        def subacked() -> list[ReasonCode] | None:
            with self._lock:
                return self._subacks.get(mid)

        reasons = poll_until(subacked, within=WAIT, what=f"SUBACK for {topic_filter}")
        assert len(reasons) == 1
        return reasons[0].value

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(message.topic, bytes(message.payload)) for message in self.messages]

    def received_after_round_trip(self) -> list[tuple[str, bytes]]:
        """What was received once a PUBACK for a new publish is back: the broker sends a
        client's packets in order, so anything it delivered to us before is in by then."""
        self.publish(f"{topics.PREFIX}/round-trip/{uuid.uuid4().hex}", b"")  # refused or not
        return self.received()

    def wait_for(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        """Wait until ``payload`` arrived on ``topic``; return everything received so far."""

        def arrived() -> list[tuple[str, bytes]] | None:
            got = self.received()
            return got if (topic, payload) in got else None

        return poll_until(arrived, within=WAIT, what=f"{payload!r} on {topic}")

    def close(self) -> None:
        self._paho.disconnect()
        self._paho.loop_stop()


class Connect(Protocol):
    def __call__(self, username: str, password: str | None = None) -> Client: ...


@pytest.fixture
def connect(broker: MosquittoServer) -> Iterator[Connect]:
    """Connected clients by account name (the account's password unless given); all of them
    are disconnected at the end."""
    made: list[Client] = []

    def make(username: str, password: str | None = None) -> Client:
        client = Client(broker, username, password if password is not None else PASSWORDS[username])
        made.append(client)
        assert client.connect() == 0, f"{username} was refused"
        return client

    try:
        yield make
    finally:
        for client in made:
            client.close()


def batch(site: str, gateway: str, marker: str) -> bytes:
    """A real readings batch; ``marker`` (a device id) tells the test's messages apart."""
    now = datetime.now(UTC)
    reading = Reading(
        gateway=gateway,
        device=marker,
        seq=1,
        metric=Metric.HEART_RATE,
        value=72.0,
        unit=Metric.HEART_RATE.unit,
        time=now,
        received=now,
    )
    return ReadingBatch(site=site, gateway=gateway, sent=now, readings=(reading,)).to_json()


def marker() -> str:
    return f"d-{uuid.uuid4().hex[:12]}"


# -- the tests --------------------------------------------------------------------------------


def test_a_gateway_publishes_its_own_readings_and_the_ingestors_receive_them(
    connect: Connect,
) -> None:
    ingest = connect("ingest")
    assert ingest.subscribe(topics.shared("ingest", topics.READINGS_FILTER)) == 1
    gateway = connect(GATEWAY)
    payload = batch(SITE, GATEWAY, marker())
    assert gateway.publish(topics.readings(SITE, GATEWAY), payload) == 0
    assert gateway.publish(topics.status(SITE, GATEWAY), b'{"state":"online"}') < 0x80
    received = ingest.wait_for(topics.readings(SITE, GATEWAY), payload)
    assert received == [(topics.readings(SITE, GATEWAY), payload)]


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param(topics.readings(OTHER_SITE, GATEWAY), id="own-id-other-site"),
        pytest.param(topics.readings(SITE, NEIGHBOUR), id="other-gateway-same-site"),
        pytest.param(topics.readings(OTHER_SITE, "gw-0003"), id="other-site-other-gateway"),
    ],
)
def test_a_gateway_is_refused_when_it_publishes_for_another_site_or_gateway(
    connect: Connect, topic: str
) -> None:
    ingest = connect("ingest")
    assert ingest.subscribe(topics.shared("ingest", topics.READINGS_FILTER)) == 1
    gateway = connect(GATEWAY)
    forged = batch(topics.parse(topic).site, GATEWAY, marker())
    assert gateway.publish(topic, forged) == NOT_AUTHORIZED
    # Dropped, not merely flagged: a valid message sent after it on the same connection
    # arrives, and the forged one never did.
    valid = batch(SITE, GATEWAY, marker())
    assert gateway.publish(topics.readings(SITE, GATEWAY), valid) == 0
    received = ingest.wait_for(topics.readings(SITE, GATEWAY), valid)
    assert all(payload != forged for _, payload in received)
    assert received == [(topics.readings(SITE, GATEWAY), valid)]


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param(topics.status(OTHER_SITE, GATEWAY), id="status-other-site"),
        pytest.param(topics.status(SITE, NEIGHBOUR), id="status-other-gateway"),
        pytest.param(topics.alerts(SITE), id="alerts"),
        pytest.param(topics.deadletter(SITE), id="deadletter"),
        pytest.param(f"{topics.PREFIX}/{SITE}/{GATEWAY}/other", id="own-prefix-other-topic"),
        pytest.param(state_topic(SITE, GATEWAY, "r01-hr", Metric.HEART_RATE), id="ha-not-granted"),
        pytest.param("anything/else", id="outside-carewatch"),
    ],
)
def test_a_gateway_may_publish_nothing_else(connect: Connect, topic: str) -> None:
    assert connect(GATEWAY).publish(topic, b"{}") == NOT_AUTHORIZED


def test_a_forged_status_never_reaches_the_alert_engine(connect: Connect) -> None:
    alerts = connect("alerts")
    assert alerts.subscribe(topics.STATUS_FILTER) == 1
    gateway = connect(GATEWAY)
    assert gateway.publish(topics.status(SITE, NEIGHBOUR), b'{"forged":true}') == NOT_AUTHORIZED
    own = json.dumps({"state": "online", "marker": marker()}).encode()
    assert gateway.publish(topics.status(SITE, GATEWAY), own) < 0x80
    received = alerts.wait_for(topics.status(SITE, GATEWAY), own)
    assert all(topic != topics.status(SITE, NEIGHBOUR) for topic, _ in received), received


@pytest.mark.parametrize(
    "topic_filter",
    [
        f"{topics.PREFIX}/{OTHER_SITE}/+/readings",
        topics.READINGS_FILTER,
        f"{topics.PREFIX}/{SITE}/{NEIGHBOUR}/readings",
        f"{topics.PREFIX}/{SITE}/{GATEWAY}/readings",
        f"{topics.PREFIX}/#",
        "#",
    ],
)
def test_a_gateway_cannot_read_other_sites_or_any_readings(
    connect: Connect, topic_filter: str
) -> None:
    gateway = connect(GATEWAY)
    # 2.0.11 grants the SUBSCRIBE and checks every delivery instead (a broker that refuses
    # the subscription outright would be as good).
    assert gateway.subscribe(topic_filter) in (GRANTED_QOS_1, NOT_AUTHORIZED)
    ingest = connect("ingest")
    assert ingest.subscribe(topics.READINGS_FILTER) == GRANTED_QOS_1
    for publisher, site, gateway_id in (
        (connect("gw-0003", OTHER_PASSWORD), OTHER_SITE, "gw-0003"),
        (connect(NEIGHBOUR), SITE, NEIGHBOUR),
        (gateway, SITE, GATEWAY),
    ):
        payload = batch(site, gateway_id, marker())
        assert publisher.publish(topics.readings(site, gateway_id), payload) == 0
        ingest.wait_for(topics.readings(site, gateway_id), payload)
    assert gateway.received_after_round_trip() == []


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param(GATEWAY, "wrong-password-0123456789", id="wrong-password"),
        pytest.param(GATEWAY, PASSWORDS[NEIGHBOUR], id="another-accounts-password"),
        pytest.param("gw-unknown", PASSWORDS[GATEWAY], id="unknown-user"),
        pytest.param(None, None, id="anonymous"),
    ],
)
def test_bad_credentials_are_refused_at_connect(
    broker: MosquittoServer, username: str | None, password: str | None
) -> None:
    client = Client(broker, username, password)
    try:
        code = client.connect()
    finally:
        client.close()
    # Mosquitto 2.0.11 answers 0x87 (Not authorized) to all of them; 0x86 (Bad user name or
    # password) would say the same.
    assert code in (BAD_USER_NAME_OR_PASSWORD, NOT_AUTHORIZED)


def test_home_assistant_topics_only_for_a_gateway_provisioned_with_them(
    connect: Connect,
) -> None:
    neighbour = connect(NEIGHBOUR)
    own_node = default_node_id(SITE, NEIGHBOUR)
    config = discovery_topic("homeassistant", "sensor", own_node, "r01-hr_heart_rate")
    state = state_topic(SITE, NEIGHBOUR, "r01-hr", Metric.HEART_RATE)
    assert neighbour.publish(config, b"{}", retain=True) < 0x80
    assert neighbour.publish(state, b'{"value":72.0}', retain=True) < 0x80
    # Not under another gateway's node id or state topics, nor outside the config topics.
    other_node = default_node_id(SITE, GATEWAY)
    for topic in (
        discovery_topic("homeassistant", "sensor", other_node, "r01-hr_heart_rate"),
        state_topic(SITE, GATEWAY, "r01-hr", Metric.HEART_RATE),
        f"homeassistant/sensor/{own_node}/r01-hr_heart_rate/state",
        "homeassistant/status",
    ):
        assert neighbour.publish(topic, b"{}") == NOT_AUTHORIZED, topic
    # The gateway provisioned without them has none.
    gateway = connect(GATEWAY)
    assert gateway.publish(discovery_topic("homeassistant", "sensor", other_node, "x"), b"{}") == (
        NOT_AUTHORIZED
    )
    for topic in (config, state):  # clear the retained messages
        assert neighbour.publish(topic, b"", retain=True) < 0x80


def test_the_service_accounts_have_their_own_rights_only(connect: Connect) -> None:
    ingest, alerts, api = connect("ingest"), connect("alerts"), connect("api")
    assert ingest.publish(topics.deadletter(SITE), b"{}") < 0x80
    assert alerts.publish(topics.alerts(SITE), b"{}") < 0x80
    # No account but the gateway itself may publish a gateway's readings or status.
    for client in (ingest, alerts, api):
        assert client.publish(topics.readings(SITE, GATEWAY), b"{}") == NOT_AUTHORIZED
        assert client.publish(topics.status(SITE, GATEWAY), b"{}") == NOT_AUTHORIZED
    assert ingest.publish(topics.alerts(SITE), b"{}") == NOT_AUTHORIZED
    assert api.publish(topics.alerts(SITE), b"{}") == NOT_AUTHORIZED
    # Reading: the API sees alerts and statuses but no readings; the ingestors no statuses.
    assert api.subscribe(f"{topics.PREFIX}/#") == GRANTED_QOS_1
    assert ingest.subscribe(f"{topics.PREFIX}/+/+/status") == GRANTED_QOS_1
    gateway = connect(GATEWAY)
    status = json.dumps({"state": "online", "marker": marker()}).encode()
    assert gateway.publish(topics.status(SITE, GATEWAY), status) < 0x80
    reading = batch(SITE, GATEWAY, marker())
    assert gateway.publish(topics.readings(SITE, GATEWAY), reading) < 0x80
    alert = json.dumps({"marker": marker()}).encode()
    assert alerts.publish(topics.alerts(SITE), alert) < 0x80
    api.wait_for(topics.alerts(SITE), alert)
    seen_by_api = api.received_after_round_trip()
    assert (topics.status(SITE, GATEWAY), status) in seen_by_api
    assert all(topic != topics.readings(SITE, GATEWAY) for topic, _ in seen_by_api)
    assert ingest.received_after_round_trip() == []


def test_a_gateway_added_while_the_broker_runs_connects_after_sighup(
    tmp_path: Path, mosquitto_binary: Path
) -> None:
    """The operator's routine (deploy/README.md): provision, then SIGHUP, no restart."""
    files = tmp_path / "files"
    provision(files, "add-service", "ingest", password=PASSWORDS["ingest"])
    options = MosquittoOptions(
        allow_anonymous=False, password_file=files / "passwd", acl_file=files / "acl"
    )
    with MosquittoServer(tmp_path / "broker", binary=mosquitto_binary, options=options) as broker:
        newcomer = Client(broker, GATEWAY, PASSWORDS[GATEWAY])
        try:
            assert newcomer.connect() == NOT_AUTHORIZED
        finally:
            newcomer.close()
        provision(
            files, "add-gateway", "--site", SITE, "--gateway", GATEWAY, password=PASSWORDS[GATEWAY]
        )
        # The harness's broker reads copies in its work folder (see MosquittoServer.config_text).
        shutil.copyfile(files / "passwd", broker.workdir / "passwd")
        shutil.copyfile(files / "acl", broker.workdir / "acl")
        os.kill(broker.pid, signal.SIGHUP)

        def accepted() -> Client | None:
            client = Client(broker, GATEWAY, PASSWORDS[GATEWAY])
            if client.connect() == 0:
                return client
            client.close()
            return None

        gateway = poll_until(accepted, within=WAIT, what="the new gateway accepted after SIGHUP")
        try:
            assert (
                gateway.publish(topics.readings(SITE, GATEWAY), batch(SITE, GATEWAY, marker()))
                < 0x80
            )
            assert gateway.publish(topics.readings(OTHER_SITE, GATEWAY), b"{}") == NOT_AUTHORIZED
        finally:
            gateway.close()
        assert broker.running
