"""The gateway's one ``Settings``: a TOML file given by path, overridden by environment
variables ``CAREWATCH_...`` (nested with ``__``: ``CAREWATCH_MQTT__URL=mqtts://...``).

Built once in ``__main__`` with :meth:`GatewaySettings.load` and passed down; no module reads
settings on its own. Unknown keys are refused (a typo must not silently fall back to a
default), and so are placeholder secrets such as ``password = "changeme"`` unless
``demo = true``. Example: ``deploy/gateway/gateway.toml``.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.errors import SettingsError
from gateway.registry import DeviceEntry, Registry
from vitals.broker import BrokerSettings, MqttUrl
from vitals.topics import ID_PATTERN
from vitals.wire import MAX_BATCH_READINGS

__all__ = [
    "PLACEHOLDER_SECRETS",
    "FullPolicy",
    "GatewaySettings",
    "HomeAssistantSettings",
    "LogSettings",
    "MqttSettings",
    "MqttUrl",
    "OutboxSettings",
    "RecorderSettings",
    "StatusSettings",
]

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "password", "secret", "carewatch", "mqtt"}
)
"""Passwords that are refused outside the demo (compared case-insensitively)."""


class FullPolicy(StrEnum):
    """What the outbox does when it holds ``max_rows`` readings."""

    DROP_OLDEST_CONTINUOUS = "drop_oldest_continuous"
    """Drop the oldest readings of continuous high-rate metrics first (heart rate, RR
    interval, respiratory rate, battery, continuous oximetry), then the oldest spot
    measurements, and events (fall, help button) only when nothing else is left."""
    REFUSE_NEW = "refuse_new"
    """Keep what is stored and refuse the new readings that do not fit (any metric)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(BrokerSettings):
    ack_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """A publish not acknowledged within this time marks the connection dead: reconnect."""
    batch_size: int = Field(default=500, ge=1, le=MAX_BATCH_READINGS)
    """Most readings in one MQTT message."""
    batch_interval_s: float = Field(default=1.0, ge=0, le=60)
    """Longest a live reading waits for its batch to fill."""
    max_in_flight: int = Field(default=4, ge=1, le=16)
    """Batches published and awaiting their PUBACK at once (below the broker's receive
    maximum, 20 by default in Mosquitto)."""
    session_expiry_s: int = Field(default=86_400, ge=0, le=2**32 - 1)
    """MQTT v5 session expiry: the broker keeps the gateway's session this long offline."""


class OutboxSettings(_Section):
    path: Path = Path("/var/lib/carewatch/outbox.sqlite3")
    max_rows: int = Field(default=2_000_000, ge=10)
    """About 4 days of three continuous wearables at ~6 readings/s in ~250 MB."""
    policy: FullPolicy = FullPolicy.DROP_OLDEST_CONTINUOUS
    late_after_s: float = Field(default=30.0, ge=0)
    """A reading first handed to the uplink more than this after it was received is sent
    with the ``late`` flag (see ``gateway.outbox``)."""

    @property
    def late_after(self) -> timedelta:
        return timedelta(seconds=self.late_after_s)


class RecorderSettings(_Section):
    queue_size: int = Field(default=10_000, ge=1)
    """Observations waiting between the BLE callbacks and the outbox; beyond, new ones are
    dropped and counted."""
    flush_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=0.05, gt=0, le=10)
    max_device_time_age_days: float = Field(default=30.0, gt=0)
    """A device timestamp older than this before receipt is taken as a wrong device clock."""

    @property
    def max_device_time_age(self) -> timedelta:
        return timedelta(days=self.max_device_time_age_days)


class StatusSettings(_Section):
    heartbeat_s: float = Field(default=60.0, gt=0, le=3600)
    """Interval of the retained online status with health figures."""
    probe_interval_s: float = Field(default=300.0, ge=0, le=86_400)
    """Interval of the end-to-end test reading (:mod:`gateway.probe`); 0 sends none (the
    cloud then raises a technical alert for the home)."""


class BleSettings(_Section):
    """The BLE central: which radio it drives and which devices are ours."""

    backend: Literal["bluez", "bumble"] = "bluez"
    """``bluez``: the host's Bluetooth adapter through BlueZ (production). ``bumble``: a Bumble
    host on an HCI transport, e.g. the simulator's virtual controller."""
    transport: str | None = None
    """The HCI transport for ``bumble``, e.g. ``tcp-client:127.0.0.1:9001``."""
    connect_attempts: int = Field(default=3, ge=1, le=10)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=60)
    backoff_max_s: float = Field(default=60.0, gt=0, le=3600)
    spot_idle_s: float = Field(default=3.0, gt=0, le=120)
    """A spot device (cuff, scale, thermometer, glucose meter) is released after being quiet
    this long once connected."""
    watchdog_silence_s: float = Field(default=120.0, gt=0)
    """The scanner is restarted when it reports nothing for this long while a device waits."""
    devices: tuple[DeviceEntry, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.backend == "bumble" and not self.transport:
            raise ValueError("ble.transport is required with backend = 'bumble'")
        Registry(self.devices)  # refuses duplicate ids
        return self


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "kv"] = "kv"


_DisplayName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
_Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]


class HomeAssistantSettings(_Section):
    """Home Assistant MQTT discovery (``gateway.homeassistant``): opt-in, per resident.

    A resident's sensors are announced only when the resident is listed; they are named by
    the resident's id unless the family gives a display name here (the only place a name
    may appear)."""

    enabled: bool = False
    discovery_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")] = (
        "homeassistant"
    )
    node_id: _Id | None = None
    """Discovery node id; default ``carewatch_<site>_<gateway>`` (the broker's ACL names it)."""
    residents: tuple[_Id, ...] = ()
    """The residents whose sensors are shown (required when enabled)."""
    devices: tuple[_Id, ...] = ()
    """Only these devices of those residents; empty: all of their devices."""
    users: dict[_Id, Annotated[int, Field(ge=0, le=255)]] = Field(default_factory=dict)
    """Device id -> the device user index (a shared cuff or scale) whose readings are shown.
    A reading that carries a user index is shown only for a device listed here with it."""
    display_names: dict[_Id, _DisplayName] = Field(default_factory=dict)
    """Resident id -> the name the family wants to see in Home Assistant."""
    state_interval_s: float = Field(default=10.0, ge=1, le=3600)
    """A state topic is published at most this often (the latest value wins)."""
    stale_after_s: int = Field(default=300, ge=0, le=86_400)
    """Continuous vitals show as unavailable in HA after this long without a value (0: never)."""
    event_display_s: int = Field(default=120, ge=1, le=86_400)
    """A fall or help-button event shows as on for this long."""
    event_max_age_s: float = Field(default=300.0, gt=0, le=86_400)
    """An event older than this when it reaches the gateway (a device's backlog) is not shown."""

    def check_devices(self, entries: tuple[DeviceEntry, ...]) -> None:
        """Refuse names that are not in the gateway's device list (raises ValueError)."""
        if not self.enabled:
            return
        if not self.residents:
            raise ValueError("homeassistant.residents: list the residents to show (opt-in)")
        by_id = {entry.id: entry for entry in entries}
        known_residents = {entry.resident for entry in entries if entry.resident is not None}
        for resident in self.residents:
            if resident not in known_residents:
                raise ValueError(f"homeassistant.residents: {resident} has no device here")
        for device in self.devices:
            entry = by_id.get(device)
            if entry is None or entry.resident not in self.residents:
                raise ValueError(f"homeassistant.devices: {device} is not a listed resident's")
        for device in self.users:
            entry = by_id.get(device)
            if entry is None or entry.resident not in self.residents:
                raise ValueError(f"homeassistant.users: {device} is not a listed resident's")
        for resident in self.display_names:
            if resident not in self.residents:
                raise ValueError(f"homeassistant.display_names: {resident} is not listed")


class GatewaySettings(BaseSettings):
    """Everything one gateway process needs, from ``gateway.toml`` and ``CAREWATCH_*``."""

    model_config = SettingsConfigDict(
        env_prefix="CAREWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    site: Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
    gateway: Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
    timezone: str = "UTC"
    """IANA zone of the home (``Europe/Berlin``): devices' naive clocks are read in it."""
    demo: bool = False
    """The zero-install demo: placeholder secrets allowed."""
    mqtt: MqttSettings = MqttSettings()
    outbox: OutboxSettings = OutboxSettings()
    recorder: RecorderSettings = RecorderSettings()
    status: StatusSettings = StatusSettings()
    log: LogSettings = LogSettings()
    ble: BleSettings = BleSettings()
    homeassistant: HomeAssistantSettings = HomeAssistantSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _homeassistant_devices(self) -> Self:
        self.homeassistant.check_devices(self.ble.devices)
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        password = self.mqtt.password
        if (
            not self.demo
            and password is not None
            and password.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
        ):
            raise ValueError(
                "mqtt.password is a placeholder: set a real secret (or demo = true for the demo)"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

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
    def load(cls, path: Path | None) -> GatewaySettings:
        """Read ``path`` (TOML; ``None`` for environment only) and the environment.

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
                f"invalid gateway settings{where}: {'; '.join(errors)}", errors
            ) from exc
