"""A real InfluxDB 1.x server (Debian's 1.6.7) on free loopback ports, data in a folder.

The helpers speak the v1 HTTP API (``/query`` with InfluxQL, ``/write`` with line protocol),
which InfluxDB 2.x and 3.x also serve. The ``influxdb-client`` library speaks only the v2 API
and gets 404 from 1.x, so it is not used.

Pitfalls handled here:

* 1.x listens for RPC/backup on ``127.0.0.1:8088`` by default, so two servers (or a system
  one) collide: the config gives the RPC ``bind-address`` its own free port.
* ``INFLUXDB_*`` environment variables override the config file; they are removed from the
  child's environment.
* ``/write``'s ``precision`` takes ``n``/``u``/``ms``/``s`` in 1.x, and any unknown value (e.g.
  ``us``) is silently read as nanoseconds; :meth:`InfluxDBServer.write_lines` maps and checks it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import httpx

from tests.harness.errors import InfluxDBError, ServerStateError
from tests.harness.ports import free_port
from tests.harness.server import LocalServer, PortPicker, ServerFactory

__all__ = ["PRECISIONS", "InfluxDBFactory", "InfluxDBOptions", "InfluxDBServer", "quote_identifier"]

_PROBE_SECONDS = 0.5
_DISTINCT_PORT_TRIES = 16

# The v1 /write precision letters, keyed by the names the v2 API (and this harness) use.
PRECISIONS: Final[dict[str, str]] = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}


@dataclass(frozen=True, slots=True)
class InfluxDBOptions:
    """What a test may change about its InfluxDB."""

    extra_config: str = ""
    """TOML appended to the generated config (new tables only: TOML forbids repeating one)."""
    log_level: str = "warn"
    request_timeout: float = 10.0
    start_timeout: float = 30.0
    stop_timeout: float = 15.0
    port_attempts: int = 5


def quote_identifier(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class InfluxDBServer(LocalServer):
    """``influxd run -config <workdir>/influxdb.conf``, HTTP and RPC on 127.0.0.1 only."""

    kind: ClassVar[str] = "influxdb"

    def __init__(
        self,
        workdir: Path,
        *,
        binary: Path,
        options: InfluxDBOptions | None = None,
        port_picker: PortPicker = free_port,
    ) -> None:
        self.options = options if options is not None else InfluxDBOptions()
        super().__init__(
            workdir,
            binary=binary,
            start_timeout=self.options.start_timeout,
            stop_timeout=self.options.stop_timeout,
            port_attempts=self.options.port_attempts,
            port_picker=port_picker,
        )
        self._port: int | None = None
        self._rpc_port: int | None = None
        self._http: httpx.Client | None = None

    @property
    def port(self) -> int:
        """The HTTP API port."""
        if self._port is None:
            raise ServerStateError("influxdb has no port yet: call start() first")
        return self._port

    @property
    def rpc_port(self) -> int:
        """The RPC/backup port (``bind-address`` at the top of the config)."""
        if self._rpc_port is None:
            raise ServerStateError("influxdb has no port yet: call start() first")
        return self._rpc_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "influxdb.conf"

    def config_text(self) -> str:
        """The influxd config for the current ports and options."""
        home = self.workdir
        return f"""\
# Written by tests/harness/influxdb.py for one test server.
reporting-enabled = false
bind-address = {_toml_string(f"{self.host}:{self.rpc_port}")}

[meta]
  dir = {_toml_string(str(home / "meta"))}
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = {_toml_string(str(home / "data"))}
  wal-dir = {_toml_string(str(home / "wal"))}
  wal-fsync-delay = "0s"
  index-version = "inmem"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = true
  log-enabled = false

[http]
  enabled = true
  bind-address = {_toml_string(f"{self.host}:{self.port}")}
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  pprof-enabled = false
  https-enabled = false
  unix-socket-enabled = false

[ifql]
  enabled = false

[logging]
  format = "logfmt"
  level = {_toml_string(self.options.log_level)}
  suppress-logo = true

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

{self.options.extra_config}
"""

    # -- helpers for tests: thin calls to the v1 HTTP API ---------------------------------

    def query(self, db: str | None, influxql: str, *, epoch: str | None = "ns") -> dict[str, Any]:
        """Run InfluxQL via POST ``/query`` and return the JSON answer.

        Times come back as integer nanoseconds (``epoch="ns"``; ``None`` gives RFC 3339 text).
        Raises :class:`InfluxDBError` for an HTTP error or any statement's ``error``.
        """
        params = {key: value for key, value in (("db", db), ("epoch", epoch)) if value}
        response = self._client().post("/query", params=params, data={"q": influxql})
        if response.status_code != httpx.codes.OK:
            raise InfluxDBError("query refused", status=response.status_code, body=response.text)
        answer: dict[str, Any] = response.json()
        for result in answer.get("results", []):
            if "error" in result:
                raise InfluxDBError(
                    f"statement {result.get('statement_id')} failed: {result['error']}",
                    status=response.status_code,
                    body=response.text,
                )
        return answer

    def query_rows(self, db: str, influxql: str) -> list[dict[str, Any]]:
        """The rows of the first statement's series as dicts (column -> value), with each
        series' ``GROUP BY`` tags merged in and its measurement under ``"_measurement"``."""
        answer = self.query(db, influxql)
        rows: list[dict[str, Any]] = []
        for series in answer["results"][0].get("series", []):
            columns: list[str] = series["columns"]
            extra = {"_measurement": series["name"], **series.get("tags", {})}
            rows.extend(
                {**extra, **dict(zip(columns, values, strict=True))} for values in series["values"]
            )
        return rows

    def write_lines(
        self, db: str, lines: str, *, precision: str = "ns", rp: str | None = None
    ) -> None:
        """Write line protocol via POST ``/write``. ``precision`` is ``ns``, ``us``, ``ms`` or
        ``s`` (sent as 1.x's ``n``/``u``/``ms``/``s``). Raises :class:`InfluxDBError` unless 204."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
        params = {"db": db, "precision": PRECISIONS[precision]}
        if rp is not None:
            params["rp"] = rp
        response = self._client().post("/write", params=params, content=lines.encode())
        if response.status_code != httpx.codes.NO_CONTENT:
            raise InfluxDBError("write refused", status=response.status_code, body=response.text)

    def create_database(self, name: str) -> None:
        self.query(None, f"CREATE DATABASE {quote_identifier(name)}")

    def drop_database(self, name: str) -> None:
        self.query(None, f"DROP DATABASE {quote_identifier(name)}")

    def _client(self) -> httpx.Client:
        if not self.running:
            raise ServerStateError("influxdb is not running")
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=self.options.request_timeout)
        return self._http

    # -- LocalServer hooks ----------------------------------------------------------------

    def _pick_ports(self, pick: PortPicker) -> None:
        self._port = pick()
        for _ in range(_DISTINCT_PORT_TRIES):
            self._rpc_port = pick()
            if self._rpc_port != self._port:
                return
        raise ServerStateError("the port picker keeps returning the same port")

    def _listen_ports(self) -> tuple[int, ...]:
        return (self.port, self.rpc_port)

    def _write_config(self) -> None:
        self.config_path.write_text(self.config_text(), encoding="utf-8")

    def _command(self) -> list[str]:
        return [str(self._binary), "run", "-config", str(self.config_path)]

    def _environment(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}

    def _answers(self) -> bool:
        try:
            response = self._client().get("/ping", timeout=_PROBE_SECONDS)
        except httpx.TransportError:
            return False
        return (
            response.status_code == httpx.codes.NO_CONTENT
            and "X-Influxdb-Version" in response.headers
        )

    def _release(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.close()


InfluxDBFactory = ServerFactory[InfluxDBServer, InfluxDBOptions]
"""The ``fresh_influxdb`` fixture: ``fresh_influxdb(options=None, *, start=True)``."""
