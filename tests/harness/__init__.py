"""Real servers for tests: Mosquitto and InfluxDB on free loopback ports in temporary folders.

The fixtures in ``tests/conftest.py`` are the usual way in; the classes are here for tests
that need their own server (see the ``fresh_*`` fixtures).
"""

from tests.harness.binaries import find_binary, require_binary, skip_or_fail
from tests.harness.errors import (
    HarnessError,
    InfluxDBError,
    PollTimeoutError,
    PortInUseError,
    ServerStartError,
    ServerStateError,
)
from tests.harness.influxdb import (
    PRECISIONS,
    InfluxDBFactory,
    InfluxDBOptions,
    InfluxDBServer,
    quote_identifier,
)
from tests.harness.mosquitto import (
    MosquittoFactory,
    MosquittoOptions,
    MosquittoServer,
    mqtt_connack,
    password_file_line,
    write_password_file,
)
from tests.harness.polling import poll_until, poll_until_async
from tests.harness.ports import LOOPBACK, free_port, listens_on
from tests.harness.server import LocalServer, PortPicker, ServerFactory

__all__ = [
    "LOOPBACK",
    "PRECISIONS",
    "HarnessError",
    "InfluxDBError",
    "InfluxDBFactory",
    "InfluxDBOptions",
    "InfluxDBServer",
    "LocalServer",
    "MosquittoFactory",
    "MosquittoOptions",
    "MosquittoServer",
    "PollTimeoutError",
    "PortInUseError",
    "PortPicker",
    "ServerFactory",
    "ServerStartError",
    "ServerStateError",
    "find_binary",
    "free_port",
    "listens_on",
    "mqtt_connack",
    "password_file_line",
    "poll_until",
    "poll_until_async",
    "quote_identifier",
    "require_binary",
    "skip_or_fail",
    "write_password_file",
]
