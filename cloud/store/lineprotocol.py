"""InfluxDB line protocol for stored readings (pure: strings in, strings out).

The schema (one measurement, bounded tags, everything per-reading in fields)::

    vitals,device=r01-hr,metric=heart_rate,resident=r01,site=oak-house[,user=1]
        value=72.0,seq=4711i,gateway="gw-01",flags="late,no_contact",received=...i  <time_ns>

* tags (the series key; all bounded by configuration): ``site``, ``resident`` (``unassigned``
  for a device the registry does not know), ``device``, ``metric`` and, only for readings
  that carry one, ``user`` (the device's user index, 0-254);
* fields: ``value`` (float, always written with a decimal point or exponent so that its
  type never flips to integer), ``seq`` (integer), ``gateway`` (string), ``flags`` (string,
  comma-separated quality flags, empty when there are none) and ``received`` (integer ns);
* timestamp: the measurement time plus ``seq % 1000`` ns (see :mod:`cloud.store.base`).

Escaping follows the line protocol reference: in the measurement, commas and spaces; in tag
keys and values, commas, equals signs and spaces; in string fields, double quotes and
backslashes. Backslashes and control characters in identifiers are refused beforehand
(:func:`cloud.store.base.check_identifier`), so every escape here is unambiguous.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cloud.errors import StoreValueError
from cloud.store.base import (
    Rejected,
    StoredReading,
    check_identifier,
    flags_text,
)

__all__ = [
    "MEASUREMENT",
    "LineEncoder",
    "escape_field_string",
    "escape_measurement",
    "escape_tag",
    "format_float",
]

MEASUREMENT = "vitals"

_PREFIX_CACHE_SIZE = 100_000
"""Series keys kept ready-made; the cache is emptied when it would grow beyond."""


def escape_measurement(value: str) -> str:
    return value.replace(",", r"\,").replace(" ", r"\ ")


def escape_tag(value: str) -> str:
    """A tag key or value: commas, equals signs and spaces get a backslash."""
    return value.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def escape_field_string(value: str) -> str:
    """A string field value, quoted."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(value: float) -> str:
    """A float field value that InfluxDB reads as a float (``72.0``, never ``72``)."""
    number = float(value)
    if not math.isfinite(number):
        raise StoreValueError(f"value {number!r} is not finite")
    return repr(number)


class LineEncoder:
    """Turns stored readings into line protocol, caching the series keys it builds."""

    def __init__(self, measurement: str = MEASUREMENT) -> None:
        check_identifier(measurement, "measurement")
        self._measurement = escape_measurement(measurement)
        self._prefixes: dict[tuple[str, str, str, str, int | None], str] = {}
        self._gateways: dict[str, str] = {}

    def line(self, reading: StoredReading) -> str:
        """One line; raises :class:`StoreValueError` for an identifier the store refuses."""
        r = reading
        key = (r.site, r.resident, r.device, r.metric.value, r.user)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefix(key)
        gateway = self._gateways.get(r.gateway)
        if gateway is None:
            gateway = escape_field_string(check_identifier(r.gateway, "gateway"))
            if len(self._gateways) >= _PREFIX_CACHE_SIZE:
                self._gateways.clear()
            self._gateways[r.gateway] = gateway
        flags = flags_text(r.flags) if r.flags else ""
        return (
            f"{prefix} value={format_float(r.value)},seq={r.seq}i,gateway={gateway},"
            f'flags="{flags}",received={r.received_ns}i {r.time_ns}'
        )

    def encode(
        self, readings: Sequence[StoredReading]
    ) -> tuple[list[StoredReading], list[str], list[Rejected]]:
        """Lines for ``readings``: the readings that could be encoded, their lines (same
        order), and the refused ones with the reason."""
        good: list[StoredReading] = []
        lines: list[str] = []
        rejected: list[Rejected] = []
        for reading in readings:
            try:
                text = self.line(reading)
            except StoreValueError as exc:
                rejected.append(Rejected(reading, str(exc)))
                continue
            good.append(reading)
            lines.append(text)
        return good, lines, rejected

    def _prefix(self, key: tuple[str, str, str, str, int | None]) -> str:
        site, resident, device, metric, user = key
        parts = [
            self._measurement,
            f"device={escape_tag(check_identifier(device, 'device'))}",
            f"metric={escape_tag(metric)}",
            f"resident={escape_tag(check_identifier(resident, 'resident'))}",
            f"site={escape_tag(check_identifier(site, 'site'))}",
        ]
        if user is not None:
            parts.append(f"user={user}")
        prefix = ",".join(parts)
        if len(self._prefixes) >= _PREFIX_CACHE_SIZE:
            self._prefixes.clear()
        self._prefixes[key] = prefix
        return prefix
