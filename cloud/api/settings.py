"""The HTTP API's settings: one pydantic section, ``[api]`` of the cloud's settings file.

:class:`ApiSettings` is a plain section (not a ``BaseSettings``): the cloud's top-level
``CloudSettings`` will embed it as ``api`` and give it the environment overrides
(``CAREWATCH_API__PORT=...``). Until then :func:`load_api_config` reads the ``[api]`` section
next to the shared ``[store]`` and ``demo`` keys of the same file.

Session cookies are ``Secure`` unless ``session.cookie_secure = false``, which is accepted only
when the API listens on a loopback address (tests and the local demo over plain HTTP): anything
reachable from another machine must be served over HTTPS with Secure cookies.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloud.errors import SettingsError
from cloud.settings import CloudSettings

__all__ = [
    "ApiSettings",
    "LoginLimitSettings",
    "PasswordSettings",
    "SessionSettings",
    "is_loopback",
    "load_api_config",
]

_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this
    machine."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.session.cookie_secure and not is_loopback(self.host):
            raise ValueError(
                "session.cookie_secure = false is only allowed on a loopback host "
                f"(127.0.0.1, ::1), not {self.host!r}: serve the API over HTTPS"
            )
        return self


def load_api_config(path: Path) -> tuple[ApiSettings, CloudSettings]:
    """The ``[api]`` section of the cloud settings file at ``path`` and the rest of the file
    as :class:`CloudSettings` (its ``store``, ``log`` and ``demo``; ``CAREWATCH_*`` variables
    override those). Relative paths in ``[api]`` are taken from the file's folder.

    Raises :class:`SettingsError`. Once ``CloudSettings`` embeds ``api`` this becomes
    ``CloudSettings.load(path).api``.
    """
    try:
        with path.open("rb") as file:
            data: dict[str, Any] = tomllib.load(file)
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from exc
    section = data.pop("api", {})
    if not isinstance(section, dict):
        raise SettingsError(f"invalid settings in {path}: api: expected a table", ("api",))
    base = path.parent
    for key in ("database", "audit_database"):
        if isinstance(section.get(key), str):
            section[key] = str(base / section[key])
    if isinstance(section.get("sites"), list):
        section["sites"] = [str(base / s) if isinstance(s, str) else s for s in section["sites"]]
    try:
        api = ApiSettings.model_validate(section)
    except ValidationError as exc:
        errors = tuple(
            f"api.{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise SettingsError(f"invalid api settings in {path}: {'; '.join(errors)}", errors) from exc
    try:
        cloud = CloudSettings(**data)
    except ValidationError as exc:
        errors = tuple(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise SettingsError(
            f"invalid cloud settings in {path}: {'; '.join(errors)}", errors
        ) from exc
    return api, cloud
