"""Shared fixtures: real Mosquitto and InfluxDB servers (machinery in ``tests.harness``).

* ``mosquitto`` / ``influxdb``: one server each per test session (starting is slow); share them
  through ``mqtt_topic_prefix`` / ``influx_db`` so tests never see each other's data.
* ``fresh_mosquitto`` / ``fresh_influxdb``: factories for a test's own servers, which it may
  stop, kill and restart; all of them are stopped when the test ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (
    InfluxDBFactory,
    InfluxDBOptions,
    InfluxDBServer,
    MosquittoFactory,
    MosquittoOptions,
    MosquittoServer,
    require_binary,
)


@pytest.fixture(scope="session")
def mosquitto_binary() -> Path:
    return require_binary("mosquitto", debian_package="mosquitto")


@pytest.fixture(scope="session")
def influxd_binary() -> Path:
    return require_binary("influxd", debian_package="influxdb")


@pytest.fixture(scope="session")
def mosquitto(
    tmp_path_factory: pytest.TempPathFactory, mosquitto_binary: Path
) -> Iterator[MosquittoServer]:
    """The session's broker. Do not stop or restart it: use ``fresh_mosquitto`` for that."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"), binary=mosquitto_binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def influxdb(
    tmp_path_factory: pytest.TempPathFactory, influxd_binary: Path
) -> Iterator[InfluxDBServer]:
    """The session's InfluxDB. Do not stop or restart it: use ``fresh_influxdb`` for that."""
    server = InfluxDBServer(tmp_path_factory.mktemp("influxdb"), binary=influxd_binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxDBServer) -> Iterator[str]:
    """The name of a new, empty database on ``influxdb``, dropped after the test."""
    name = f"test_{uuid.uuid4().hex}"
    influxdb.create_database(name)
    try:
        yield name
    finally:
        influxdb.drop_database(name)


@pytest.fixture
def mqtt_topic_prefix() -> str:
    """A topic prefix no other test uses, ``test/<32 hex digits>`` (no trailing slash)."""
    return f"test/{uuid.uuid4().hex}"


@pytest.fixture
def fresh_mosquitto(
    tmp_path_factory: pytest.TempPathFactory, mosquitto_binary: Path
) -> Iterator[MosquittoFactory]:
    """``fresh_mosquitto(options=None, *, start=True) -> MosquittoServer``: a broker of the
    test's own; every one made is stopped at teardown."""

    def make(workdir: Path, options: MosquittoOptions | None) -> MosquittoServer:
        return MosquittoServer(workdir, binary=mosquitto_binary, options=options)

    factory = MosquittoFactory(make, lambda: tmp_path_factory.mktemp("fresh-mosquitto"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def fresh_influxdb(
    tmp_path_factory: pytest.TempPathFactory, influxd_binary: Path
) -> Iterator[InfluxDBFactory]:
    """``fresh_influxdb(options=None, *, start=True) -> InfluxDBServer``: an InfluxDB of the
    test's own; every one made is stopped at teardown."""

    def make(workdir: Path, options: InfluxDBOptions | None) -> InfluxDBServer:
        return InfluxDBServer(workdir, binary=influxd_binary, options=options)

    factory = InfluxDBFactory(make, lambda: tmp_path_factory.mktemp("fresh-influxdb"))
    try:
        yield factory
    finally:
        factory.close()
