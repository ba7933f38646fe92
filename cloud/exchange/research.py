"""Pseudonymised research export: stored readings as CSV, with no name or id in clear.

Pure: readings in, CSV text out (to a text stream, or as bytes); the API decides where it goes.

Pseudonyms
----------
Sites, residents and devices are replaced by ``HMAC-SHA256(key, text)`` cut to
:data:`PSEUDONYM_HEX` hex digits (64 bits; with a few thousand residents the chance that two
share one is below 1e-12), where the text is ``"site:" + site``, ``"resident:" + site + "/" +
resident`` or ``"device:" + site + "/" + device``. Identifiers are CareWatch ids
(``vitals.topics.ID_PATTERN``: no ``/``), so the text is unambiguous; anything else is refused.
The same key gives the same pseudonyms in every export (a study can follow a resident across
exports); another key gives unrelated ones, and without the key a pseudonym cannot be turned
back into an id or matched against a list of guessed ids. Keys shorter than
:data:`MIN_KEY_BYTES` are refused. Use one key per study and keep it apart from the data:
whoever holds both can re-identify, so the export is pseudonymised personal data (GDPR
recital 26), not anonymous data.

What is left out: names and addresses (never in a reading in the first place: they live only
in the registry), gateway ids, the device's user index, sequence numbers and receive times
(the path a reading took, not what was measured; all could help link rows to a home).

Columns: ``site, resident, device`` (pseudonyms), ``metric`` (the wire name), ``value`` (the
shortest decimal that reads back as the stored float), ``unit`` (UCUM), ``loinc`` (empty when
the metric has none), ``time`` (UTC, ISO 8601 with ``Z``) and ``flags`` (the quality flags,
comma-separated as stored). Rows come in the order the readings are given; CSV as RFC 4180
(``\\r\\n`` line ends, quoting where needed), UTF-8, with a header.

Times: precision against re-identification
------------------------------------------
By default times are exact (to the microsecond) and true: a study can line up the residents
of one home in time (an outbreak, a heat wave, the weekday rota), and so can anyone holding
outside knowledge of an event's date and time (a known fall or hospital admission), which is
the main way back to a person. Two options trade analysis for protection:

* ``time_resolution`` floors every time to a multiple of it since the Unix epoch (a minute,
  an hour). It hides exact event times, at the cost of the order of readings within one
  interval and of beat-to-beat dynamics.
* ``max_date_shift_days`` (0, off, by default) moves every time of a resident by a whole number
  of days in ``-N..+N`` derived from the key and the resident (the same in every export with
  that key). Time of day (sleep, meals, medication rounds) and every interval within one
  resident (trends, baselines, time from an event to a deterioration) are kept; alignment
  between residents, the true weekday and the season (within N days) are lost. Residents of
  one home still share the site pseudonym, so the shift does not hide who lived together.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from cloud.exchange.errors import ExchangeKeyError, ExchangeValueError
from cloud.store.base import StoredReading, datetime_from_ns, flags_text
from vitals.metrics import Metric
from vitals.topics import ID_PATTERN

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "COLUMNS",
    "MAX_DATE_SHIFT_DAYS",
    "MIN_KEY_BYTES",
    "PSEUDONYM_HEX",
    "Pseudonymiser",
    "ResearchOptions",
    "research_csv",
    "write_research_csv",
]

MIN_KEY_BYTES = 16
"""Shortest key accepted (128 bits)."""
PSEUDONYM_HEX = 16
"""Hex digits of a pseudonym (64 bits of the HMAC)."""
MAX_DATE_SHIFT_DAYS = 3650
COLUMNS = ("site", "resident", "device", "metric", "value", "unit", "loinc", "time", "flags")
"""The header of the CSV, in order."""

_ID = re.compile(ID_PATTERN)
_NS_PER_US = 1_000
_NS_PER_S = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_S


@dataclass(slots=True, frozen=True)
class Pseudonymiser:
    """Keyed pseudonyms of sites, residents and devices, and the per-resident date shift."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes):
            raise ExchangeKeyError("the pseudonymisation key must be bytes", None)
        if len(self.key) < MIN_KEY_BYTES:
            raise ExchangeKeyError(
                f"the pseudonymisation key has {len(self.key)} bytes; at least "
                f"{MIN_KEY_BYTES} are needed",
                len(self.key),
            )

    def _digest(self, text: str) -> bytes:
        return hmac.new(self.key, text.encode(), hashlib.sha256).digest()

    def _pseudonym(self, text: str) -> str:
        return self._digest(text).hex()[:PSEUDONYM_HEX]

    def site(self, site: str) -> str:
        return self._pseudonym("site:" + _checked(site, "site"))

    def resident(self, site: str, resident: str) -> str:
        return self._pseudonym(
            "resident:" + _checked(site, "site") + "/" + _checked(resident, "resident")
        )

    def device(self, site: str, device: str) -> str:
        return self._pseudonym(
            "device:" + _checked(site, "site") + "/" + _checked(device, "device")
        )

    def date_shift(self, site: str, resident: str, max_days: int) -> timedelta:
        """Whole days in ``-max_days..max_days``, fixed for the key and the resident."""
        _check_shift(max_days)
        if max_days == 0:
            return timedelta(0)
        text = "date-shift:" + _checked(site, "site") + "/" + _checked(resident, "resident")
        draw = int.from_bytes(self._digest(text)[:8], "big")  # bias below 1e-15
        return timedelta(days=draw % (2 * max_days + 1) - max_days)


@dataclass(slots=True, frozen=True)
class ResearchOptions:
    """How much time detail the export keeps and which metrics it carries."""

    time_resolution: timedelta | None = None
    """Floor times to a multiple of this since the epoch; ``None``: exact (microseconds)."""
    max_date_shift_days: int = 0
    """Shift each resident's times by whole days in ``-N..+N``; 0: no shift."""
    metrics: frozenset[Metric] | None = None
    """Only these metrics; ``None``: every metric."""

    def __post_init__(self) -> None:
        _check_shift(self.max_date_shift_days)
        if self.time_resolution is not None and _resolution_ns(self.time_resolution) <= 0:
            raise ExchangeValueError(
                f"time_resolution must be at least a microsecond, not {self.time_resolution}"
            )


def _checked(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ExchangeValueError(f"{what} {value!r} is not a CareWatch id")
    return value


def _check_shift(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_DATE_SHIFT_DAYS:
        raise ExchangeValueError(
            f"max_date_shift_days must be a whole number 0..{MAX_DATE_SHIFT_DAYS}, not {days!r}"
        )


def _resolution_ns(value: timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * _NS_PER_S + value.microseconds * _NS_PER_US


def write_research_csv(
    out: SupportsWrite[str],
    readings: Iterable[StoredReading],
    *,
    key: bytes,
    time_resolution: timedelta | None = None,
    max_date_shift_days: int = 0,
    metrics: Collection[Metric] | None = None,
) -> int:
    """Write the header and one row per reading to ``out`` (a text stream; open files with
    ``newline=""``) and return how many rows were written.

    The key and options are checked before anything is written. A reading whose site,
    resident or device is not a CareWatch id raises
    :class:`~cloud.exchange.errors.ExchangeValueError` when reached, after the rows before it
    were written: use :func:`research_csv` for all or nothing.
    """
    pseudonyms = Pseudonymiser(key)
    options = ResearchOptions(
        time_resolution=time_resolution,
        max_date_shift_days=max_date_shift_days,
        metrics=None if metrics is None else frozenset(metrics),
    )
    resolution_ns = None if time_resolution is None else _resolution_ns(time_resolution)
    timespec = (
        "seconds"
        if resolution_ns is not None and resolution_ns % _NS_PER_S == 0
        else "microseconds"
    )
    # Pseudonyms and shifts repeat for every reading of a resident: compute each once.
    sites: dict[str, str] = {}
    residents: dict[tuple[str, str], tuple[str, int]] = {}
    devices: dict[tuple[str, str], str] = {}
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    rows = 0
    for reading in readings:
        metric = reading.metric
        if options.metrics is not None and metric not in options.metrics:
            continue
        site = reading.site
        site_pseudonym = sites.get(site)
        if site_pseudonym is None:
            site_pseudonym = sites[site] = pseudonyms.site(site)
        who = (site, reading.resident)
        resident = residents.get(who)
        if resident is None:
            shift = pseudonyms.date_shift(site, reading.resident, options.max_date_shift_days)
            resident = residents[who] = (
                pseudonyms.resident(site, reading.resident),
                shift.days * _NS_PER_DAY,
            )
        which = (site, reading.device)
        device_pseudonym = devices.get(which)
        if device_pseudonym is None:
            device_pseudonym = devices[which] = pseudonyms.device(site, reading.device)
        resident_pseudonym, shift_ns = resident
        time_ns = reading.time_ns - reading.time_ns % _NS_PER_US + shift_ns
        if resolution_ns is not None:
            time_ns -= time_ns % resolution_ns
        time = datetime_from_ns(time_ns).isoformat(timespec=timespec).replace("+00:00", "Z")
        writer.writerow(
            (
                site_pseudonym,
                resident_pseudonym,
                device_pseudonym,
                metric.value,
                repr(float(reading.value)),
                metric.unit,
                metric.loinc or "",
                time,
                flags_text(reading.flags),
            )
        )
        rows += 1
    return rows


def research_csv(
    readings: Iterable[StoredReading],
    *,
    key: bytes,
    time_resolution: timedelta | None = None,
    max_date_shift_days: int = 0,
    metrics: Collection[Metric] | None = None,
) -> bytes:
    """The whole export as UTF-8 CSV bytes (see :func:`write_research_csv`)."""
    buffer = io.StringIO(newline="")
    write_research_csv(
        buffer,
        readings,
        key=key,
        time_resolution=time_resolution,
        max_date_shift_days=max_date_shift_days,
        metrics=metrics,
    )
    return buffer.getvalue().encode()
