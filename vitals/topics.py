"""MQTT topic names, built and parsed in this one place.

::

    carewatch/v1/{site}/{gateway}/readings   ReadingBatch, QoS 1, gateway -> cloud
    carewatch/v1/{site}/{gateway}/status     Status, QoS 1, retained; also the gateway's last will
    carewatch/v1/{site}/alerts               Alert, QoS 1, cloud -> staff apps
    carewatch/v1/{site}/deadletter           DeadLetter, QoS 1, what the ingestor refused and why

Site and gateway identifiers are restricted to ``[A-Za-z0-9][A-Za-z0-9_-]{0,63}`` so that they
can never contain an MQTT level separator or wildcard and are safe as InfluxDB tag values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from vitals.errors import TopicError

__all__ = [
    "ID_PATTERN",
    "PREFIX",
    "READINGS_FILTER",
    "STATUS_FILTER",
    "TopicKind",
    "TopicName",
    "alerts",
    "check_id",
    "deadletter",
    "parse",
    "readings",
    "shared",
    "status",
]

PREFIX = "carewatch/v1"
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
_ID_RE = re.compile(ID_PATTERN)

READINGS_FILTER = f"{PREFIX}/+/+/readings"
"""Subscription filter matching every gateway's readings."""
STATUS_FILTER = f"{PREFIX}/+/+/status"
"""Subscription filter matching every gateway's status."""


class TopicKind(StrEnum):
    READINGS = "readings"
    STATUS = "status"
    ALERTS = "alerts"
    DEADLETTER = "deadletter"


@dataclass(slots=True, frozen=True)
class TopicName:
    """A parsed CareWatch topic; ``gateway`` is None for site-level topics."""

    kind: TopicKind
    site: str
    gateway: str | None = None


def check_id(value: str, what: str = "identifier") -> str:
    """Return ``value`` if it is a valid site, gateway, device or resident identifier."""
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise TopicError(
            f"invalid {what} {value!r}: expected 1-64 characters of letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )
    return value


def readings(site: str, gateway: str) -> str:
    return f"{PREFIX}/{check_id(site, 'site')}/{check_id(gateway, 'gateway')}/readings"


def status(site: str, gateway: str) -> str:
    return f"{PREFIX}/{check_id(site, 'site')}/{check_id(gateway, 'gateway')}/status"


def alerts(site: str) -> str:
    return f"{PREFIX}/{check_id(site, 'site')}/alerts"


def deadletter(site: str) -> str:
    return f"{PREFIX}/{check_id(site, 'site')}/deadletter"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT v5 shared subscription: the broker splits ``topic_filter`` across the group."""
    return f"$share/{check_id(group, 'share group')}/{topic_filter}"


def parse(topic: str) -> TopicName:
    """Parse a concrete CareWatch topic name (no wildcards) into its parts."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PREFIX:
        raise TopicError(f"not a CareWatch v1 topic: {topic!r}")
    rest = parts[2:]
    try:
        if len(rest) == 2 and rest[1] in (TopicKind.ALERTS, TopicKind.DEADLETTER):
            return TopicName(TopicKind(rest[1]), check_id(rest[0], "site"))
        if len(rest) == 3 and rest[2] in (TopicKind.READINGS, TopicKind.STATUS):
            return TopicName(
                TopicKind(rest[2]), check_id(rest[0], "site"), check_id(rest[1], "gateway")
            )
    except TopicError as exc:
        raise TopicError(f"bad topic {topic!r}: {exc}") from exc
    raise TopicError(f"unknown CareWatch topic: {topic!r}")
