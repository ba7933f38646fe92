"""How a CareWatch service reaches the MQTT broker: the connection settings every service
shares (the gateway's uplink, the cloud's ingestor), validated once. Each service's settings
extend :class:`BrokerSettings` with what only it needs (batching, share group, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    UrlConstraints,
    model_validator,
)

__all__ = ["BrokerSettings", "MqttUrl"]

MqttUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["mqtt", "mqtts"], host_required=True)]
"""``mqtt://host[:1883]`` (plain TCP) or ``mqtts://host[:8883]`` (TLS)."""


class BrokerSettings(BaseModel):
    """Address, credentials, TLS and reconnect pacing of one broker connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: MqttUrl = Field(default=AnyUrl("mqtt://localhost:1883"))
    """Broker address; ``mqtts://`` turns TLS on."""
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    """CA bundle that signs the broker's certificate (system CAs when absent)."""
    cert_file: Path | None = None
    """Client certificate for mutual TLS (with ``key_file``)."""
    key_file: Path | None = None
    tls_insecure: bool = False
    """Skip the broker hostname check (never in production)."""
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Hard limit on one connection attempt (TCP, TLS, CONNECT/CONNACK)."""
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    """Cap of the random, growing delay between connection attempts."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT v5 (production: session expiry, Receive Maximum, PUBACK reason codes, shared
    subscriptions) or 3.1.1 for brokers that speak only that, such as the demo's embedded
    amqtt: the session is then kept by ``clean_session = false`` and lasts as the broker
    decides, and the in-flight window is the broker's setting."""

    @property
    def v5(self) -> bool:
        return self.protocol == "5"

    @property
    def tls(self) -> bool:
        return self.url.scheme == "mqtts"

    @property
    def host(self) -> str:
        host = self.url.host
        if host is None:  # pragma: no cover (host_required)
            raise ValueError("mqtt.url has no host")
        return host

    @property
    def port(self) -> int:
        port = self.url.port
        if port is not None:
            return port
        return 8883 if self.tls else 1883

    @model_validator(mode="after")
    def _check_connection(self) -> Self:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is below reconnect_min_s")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        if not self.tls and any((self.ca_file, self.cert_file, self.tls_insecure)):
            raise ValueError("TLS files or tls_insecure given for a plain mqtt:// url")
        return self
