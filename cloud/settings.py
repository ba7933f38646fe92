"""The cloud's one ``Settings``: a TOML file given by path, overridden by environment variables
``CAREWATCH_...`` (nested with ``__``: ``CAREWATCH_STORE__TOKEN=...``).

Built once in ``__main__`` with :meth:`CloudSettings.load` and passed down; no module reads
settings on its own. Unknown keys are refused (a typo must not silently fall back to a default),
and so are placeholder secrets such as ``password = "changeme"`` unless ``demo = true``.
Every cloud service (``python -m cloud ingest``, and later ``alerts`` and ``api``) reads the
same file and takes the sections it needs. A commented example is :data:`EXAMPLE_TOML`.
"""

from __future__ import annotations

import ipaddress
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cloud.errors import SettingsError
from cloud.notify.settings import NotifySettings
from vitals.broker import BrokerSettings, MqttUrl
from vitals.topics import ID_PATTERN

__all__ = [
    "EXAMPLE_TOML",
    "PLACEHOLDER_SECRETS",
    "AlertSettings",
    "ApiSettings",
    "CloudSettings",
    "LogSettings",
    "LoginLimitSettings",
    "MetricsSettings",
    "MqttSettings",
    "MqttUrl",
    "PasswordSettings",
    "RegistrySettings",
    "SessionSettings",
    "StoreKind",
    "StoreSettings",
    "UnknownDevicePolicy",
    "is_loopback",
]

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "password", "secret", "carewatch", "token"}
)
"""Secrets refused outside the demo (compared case-insensitively)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(BrokerSettings):
    """The broker the ingestor consumes from."""

    client_id: Id = "carewatch-ingest-1"
    """Stable per process: the broker keeps this session's unacknowledged messages for it
    (a second process needs its own id, ``carewatch-ingest-2``)."""
    share_group: Annotated[str, Field(pattern=f"^({ID_PATTERN})?$")] = "ingest"
    """MQTT v5 shared subscription group: processes in one group split the readings. Empty:
    a plain subscription, for a single ingestor (Mosquitto 2.0.11 does not restore shared
    subscriptions from its persistence file after a restart, so readings published between
    the broker's restart and the ingestors' new SUBSCRIBE are dropped; a plain subscription
    of a persistent session is restored and queues them; see deploy/mosquitto/README.md)."""
    receive_maximum: int = Field(default=512, ge=1, le=65_535)
    """MQTT v5 Receive Maximum: the most unacknowledged messages the broker sends us. This
    bounds the ingestor's memory (at most this many messages are held) and must cover a few
    write batches of messages for throughput."""
    session_expiry_s: int = Field(default=7 * 86_400, ge=0, le=2**32 - 1)
    """How long the broker keeps the session (and queues readings) while we are away."""


class StoreKind(StrEnum):
    INFLUXDB = "influxdb"
    SQLITE = "sqlite"


class StoreSettings(_Section):
    """Where readings are stored, and how they are written."""

    kind: StoreKind = StoreKind.INFLUXDB
    url: HttpUrl = Field(default=HttpUrl("http://localhost:8086"))
    """InfluxDB's HTTP API (1.x, or 2.x/3.x through their v1 compatibility endpoints)."""
    database: Annotated[str, Field(min_length=1, max_length=256)] = "carewatch"
    retention_policy: str | None = None
    token: SecretStr | None = None
    """InfluxDB 2.x/3.x API token (``Authorization: Token ...``)."""
    username: str | None = None
    password: SecretStr | None = None
    """InfluxDB 1.x credentials when its auth is on (HTTP basic auth)."""
    path: Path = Path("/var/lib/carewatch/vitals.sqlite3")
    """The SQLite file (kind = "sqlite")."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Most points in one write."""
    batch_interval_s: float = Field(default=0.1, gt=0, le=60)
    """Longest a reading waits for its write batch to fill."""
    max_concurrent_writes: int = Field(default=2, ge=1, le=16)
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    """Limit on one HTTP request to InfluxDB."""
    gzip: bool = False
    """Compress write bodies (worth it over a slow network, not on loopback)."""
    retry_min_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=10.0, gt=0)
    """Cap of the random, growing delay between attempts of a failed write. A failed write
    is retried until it succeeds: its messages stay unacknowledged, held by the broker."""
    give_up_after_s: float | None = Field(default=None, gt=0)
    """When set, a store unavailable for this long ends the process (exit status 1) so the
    supervisor notices; nothing is lost (unacknowledged messages stay with the broker)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s is below retry_min_s")
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        if self.token is not None and self.username is not None:
            raise ValueError("give either token (2.x/3.x) or username/password (1.x), not both")
        return self


class UnknownDevicePolicy(StrEnum):
    """What the ingestor does with a reading whose device the registry does not know."""

    STORE = "store"
    """Store it under the resident ``unassigned`` (counted, logged once per device)."""
    DEADLETTER = "deadletter"
    """Refuse it to the dead-letter topic."""


class RegistrySettings(_Section):
    """Which device belongs to which resident."""

    sites: tuple[Path, ...] = ()
    """Site files (TOML, as in ``seeds/``) or folders of them."""
    refresh_s: float = Field(default=60.0, gt=0)
    """How often the site files are read again (a change applies without a restart)."""
    unknown_device: UnknownDevicePolicy = UnknownDevicePolicy.STORE
    unassigned_resident: Id = "unassigned"


class MetricsSettings(_Section):
    """Prometheus metrics (``/metrics``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65_535)
    """0 picks a free port (tests)."""


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "kv"] = "kv"


# -- the HTTP API ([api]) ----------------------------------------------------------------

_LOOPBACK_NAMES = frozenset({"localhost"})
_MIN_RESEARCH_KEY_BYTES = 16
"""As ``cloud.exchange.research.MIN_KEY_BYTES`` (not imported: settings import no service)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this
    machine."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PasswordSettings(_Section):
    """The password policy and the argon2id cost. Hashes made with other costs are
    re-hashed at the next successful login."""

    min_length: int = Field(default=12, ge=8, le=128)
    max_length: int = Field(default=1024, ge=64, le=4096)
    """Longer passwords are refused before hashing (bounds the work one request can ask)."""
    time_cost: int = Field(default=3, ge=1, le=20)
    memory_kib: int = Field(default=65_536, ge=8, le=4 * 1024 * 1024)
    parallelism: int = Field(default=4, ge=1, le=64)
    max_concurrent_hashes: int = Field(default=2, ge=1, le=64)
    """Hashes computed at once (each takes ``memory_kib`` of memory and a core for a while);
    further logins wait their turn."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("memory_kib must be at least 8 * parallelism (argon2)")
        if self.max_length < self.min_length:
            raise ValueError("max_length is below min_length")
        return self


class SessionSettings(_Section):
    """Server-side sessions, referred to by a cookie."""

    idle_s: float = Field(default=30 * 60, gt=0, le=7 * 86_400)
    """A session unused this long ends."""
    absolute_s: float = Field(default=12 * 3_600, gt=0, le=30 * 86_400)
    """A session ends this long after login, however busy."""
    cookie_secure: bool = True
    """``Secure`` cookies (HTTPS only). ``false`` only on a loopback address (tests, demo)."""
    same_site: Literal["lax", "strict"] = "lax"
    """``Lax`` lets a link from a notification e-mail open the dashboard logged in; CSRF is
    stopped by the token either way."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.idle_s > self.absolute_s:
            raise ValueError("idle_s is longer than absolute_s")
        return self

    @property
    def cookie_name(self) -> str:
        """``__Host-`` pins a Secure cookie to this host and path ``/`` (browsers refuse it
        otherwise); a cookie over plain HTTP cannot carry the prefix."""
        return "__Host-carewatch_session" if self.cookie_secure else "carewatch_session"


class LoginLimitSettings(_Section):
    """Failed logins allowed per username and per client address within ``window_s``;
    beyond, logins are refused with 429 and ``Retry-After`` until the oldest failure ages
    out. The per-address limit is higher because a care home's staff share one address."""

    max_failures_per_user: int = Field(default=5, ge=1, le=1000)
    max_failures_per_address: int = Field(default=30, ge=1, le=100_000)
    window_s: float = Field(default=15 * 60, gt=0, le=86_400)
    max_tracked: int = Field(default=100_000, ge=100, le=10_000_000)
    """Usernames and addresses remembered; when full the least recently failed is forgotten."""


class ApiSettings(_Section):
    """The HTTP API (``python -m cloud.api serve``, later ``python -m cloud api``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65_535)
    """0 picks a free port (tests)."""
    database: Path = Path("/var/lib/carewatch/api.sqlite3")
    """Accounts, family links and sessions (SQLite)."""
    audit_database: Path = Path("/var/lib/carewatch/audit.sqlite3")
    """The append-only audit log (SQLite), kept apart so it can be retained and backed up on
    its own terms."""
    sites: tuple[Path, ...] = ()
    """Site files (TOML, as in ``seeds/``) or folders of them: the residents and devices."""
    directory_refresh_s: float = Field(default=60.0, gt=0)
    """How often the site files are read again."""
    forwarded_allow_ips: tuple[str, ...] = ()
    """Reverse proxies trusted to set ``X-Forwarded-For`` (the client address is what login
    rate limiting counts); empty: the peer address is the client's."""
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Largest request body accepted (413 beyond)."""
    max_history_buckets: int = Field(default=5_000, ge=10, le=1_000_000)
    """Most intervals one history request may return."""
    max_history_span_days: int = Field(default=400, ge=1, le=3_660)
    default_history_span_s: float = Field(default=86_400.0, gt=0)
    """History without ``start``: this long before ``end``."""
    session: SessionSettings = SessionSettings()
    passwords: PasswordSettings = PasswordSettings()
    login_limit: LoginLimitSettings = LoginLimitSettings()
    research_key: SecretStr | None = None
    """The key of the research export's pseudonyms (HMAC-SHA256, at least 16 bytes as
    UTF-8; :mod:`cloud.exchange.research`): one per study, from the environment
    (``CAREWATCH_API__RESEARCH_KEY``), never in the file. None: the export is off (503)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (
            self.research_key is not None
            and len(self.research_key.get_secret_value().encode()) < _MIN_RESEARCH_KEY_BYTES
        ):
            raise ValueError(
                f"research_key must be at least {_MIN_RESEARCH_KEY_BYTES} bytes (UTF-8)"
            )
        if not self.session.cookie_secure and not is_loopback(self.host):
            raise ValueError(
                "session.cookie_secure = false is only allowed on a loopback host "
                f"(127.0.0.1, ::1), not {self.host!r}: serve the API over HTTPS"
            )
        return self


# -- the alert service ([alerts]) -----------------------------------------------------------


class AlertSettings(_Section):
    """The alert service (``python -m cloud alerts``): rules, lifecycle, where alerts go."""

    mqtt: BrokerSettings | None = None
    """Its own broker account (the ACL lets ``alerts`` read readings and statuses and write
    alerts); None: the ``[mqtt]`` connection's address and credentials."""
    client_id: Id = "carewatch-alerts"
    session_expiry_s: int = Field(default=3600, ge=0, le=2**32 - 1)
    """The broker keeps readings for the service this long while it restarts (after that, the
    start-up refill from the store covers the gap)."""
    ledger: Path = Path("/var/lib/carewatch/alerts.sqlite3")
    """Alerts and their audit trail (SQLite)."""
    people: tuple[Path, ...] = ()
    """People files (recipients and escalation ladders, :mod:`cloud.alerts.people`) or
    folders of them. A site without one still gets alerts, published and shown,
    but nobody is notified (logged at start)."""
    tick_s: float = Field(default=1.0, gt=0, le=60)
    """How often every rule is evaluated."""
    refill: bool = True
    """Rebuild the rules' recent history from the store at start."""
    critical_snooze_cap_s: float = Field(default=15 * 60, gt=0)
    max_snooze_s: float = Field(default=12 * 3600, gt=0)
    publish_queue: int = Field(default=10_000, ge=1)
    """Alert changes waiting for the broker; beyond, the oldest is dropped (the ledger and the
    API have every change; the topic is for other consumers)."""
    reading_events_every_s: float = Field(default=5.0, ge=0)
    """Latest values sent to the live web at most this often per resident and metric."""
    probe_silence_s: float = Field(default=1800.0, gt=0)
    """The gateway's end-to-end test reading: a technical alert when none has been stored
    for this long (see :mod:`cloud.alerts.probe`)."""


class CloudSettings(BaseSettings):
    """Everything the cloud services need, from ``cloud.toml`` and ``CAREWATCH_*``."""

    model_config = SettingsConfigDict(
        env_prefix="CAREWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    demo: bool = False
    """The zero-install demo: placeholder secrets allowed."""
    mqtt: MqttSettings = MqttSettings()
    store: StoreSettings = StoreSettings()
    registry: RegistrySettings = RegistrySettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """On SIGTERM: how long to finish writing and acknowledging what is in hand."""
    alerts: AlertSettings = AlertSettings()
    notify: NotifySettings = NotifySettings()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        if self.demo:
            return self
        for name, secret in (
            ("mqtt.password", self.mqtt.password),
            ("store.password", self.store.password),
            ("store.token", self.store.token),
            ("api.research_key", self.api.research_key),
        ):
            if secret is not None and secret.get_secret_value().strip().lower() in (
                PLACEHOLDER_SECRETS
            ):
                raise ValueError(
                    f"{name} is a placeholder: set a real secret (or demo = true for the demo)"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (whose contents arrive as init arguments).
        return (env_settings, init_settings)

    @classmethod
    def load(cls, path: Path | None) -> CloudSettings:
        """Read ``path`` (TOML; ``None`` for the environment only) and the environment.

        Raises :class:`SettingsError` naming every problem (file, syntax, field).
        """
        data: dict[str, Any] = {}
        if path is not None:
            try:
                with path.open("rb") as file:
                    data = tomllib.load(file)
            except OSError as exc:
                raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from exc
            _resolve_paths(data, path.parent)
        try:
            return cls(**data)
        except ValidationError as exc:
            errors = tuple(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            where = f" in {path}" if path is not None else ""
            raise SettingsError(
                f"invalid cloud settings{where}: {'; '.join(errors)}", errors
            ) from exc


_PATHS = {
    "registry": ("sites",),
    "alerts": ("ledger", "people"),
    "api": ("database", "audit_database", "sites"),
}
"""Path keys per section: relative paths in the file are taken from the file's folder."""


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    for section, keys in _PATHS.items():
        table = data.get(section)
        if not isinstance(table, dict):
            continue
        for key in keys:
            value = table.get(key)
            if isinstance(value, str):
                table[key] = str(base / value)
            elif isinstance(value, list):
                table[key] = [str(base / v) if isinstance(v, str) else v for v in value]


EXAMPLE_TOML = """\
# CareWatch cloud configuration (one file for the cloud services).
# Every key can be overridden by an environment variable: CAREWATCH_<SECTION>__<KEY>,
# e.g. CAREWATCH_STORE__TOKEN=... (keep secrets out of this file). Unknown keys are refused.

demo = false                  # true allows placeholder secrets (the demo only)
shutdown_timeout_s = 10       # on SIGTERM: finish writing and acknowledging what is in hand

[mqtt]
url = "mqtts://mqtt.carewatch.example:8883"
username = "ingest"
# password: CAREWATCH_MQTT__PASSWORD
client_id = "carewatch-ingest-1"   # stable and unique per process (persistent session)
share_group = "ingest"             # processes in one group split the load ("": plain)
receive_maximum = 512              # unacknowledged messages the broker may send us
session_expiry_s = 604800          # the broker queues for us this long while we are away
keepalive_s = 30
reconnect_min_s = 0.5
reconnect_max_s = 30

[store]
kind = "influxdb"                  # or "sqlite" (demo, small single-home installs)
url = "http://influxdb:8086"       # 1.x, or 2.x/3.x via their v1 compatibility API
database = "carewatch"
# retention_policy = "autogen"
# token: CAREWATCH_STORE__TOKEN (2.x/3.x); or username + CAREWATCH_STORE__PASSWORD (1.x)
# path = "/var/lib/carewatch/vitals.sqlite3"   # kind = "sqlite"
batch_size = 5000                  # points per write
batch_interval_s = 0.1             # a reading waits at most this long for its batch
max_concurrent_writes = 2
timeout_s = 10
retry_min_s = 0.2                  # failed writes are retried forever with random,
retry_max_s = 10                   # growing, capped delays (messages stay unacknowledged)
# give_up_after_s = 900            # exit 1 after a store outage this long

[registry]
sites = ["/etc/carewatch/sites"]   # site files (TOML, as in seeds/) or folders of them
refresh_s = 60
unknown_device = "store"           # "store" (resident "unassigned") or "deadletter"
unassigned_resident = "unassigned"

[metrics]
enabled = true
host = "0.0.0.0"
port = 9108

[log]
level = "INFO"
format = "kv"                      # or "json"
"""
"""A commented example, kept here so that a test can check that it loads."""
