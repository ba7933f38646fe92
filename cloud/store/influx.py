"""The InfluxDB store: line protocol on ``/write``, InfluxQL on ``/query`` (httpx, async).

These two v1 endpoints are served by InfluxDB 1.x (Debian ships 1.6.7, which the tests use),
by 2.x (the v1 compatibility API: a DBRP mapping from database/retention policy to a bucket,
and ``Authorization: Token ...``) and by 3.x, so this one adapter reaches all of them. The
official ``influxdb-client`` library speaks only the v2 API and gets 404 from 1.x.

Writes
------
One ``write()`` is one POST (the caller batches; the ingestor sends up to 5,000 points). The
answer decides what happens:

* 204: everything is stored.
* 400 / 413 / 422 (the content was refused: a field type conflict, points beyond the
  retention policy, a body too large): InfluxDB writes what it can and drops the rest
  (``partial write: ... dropped=N``) without saying which points. If every point was
  dropped they are all refused with the reason; otherwise the batch is split in halves and
  each half written again, down to single points, so exactly the refused readings come back
  in :attr:`WriteResult.rejected`. Writing a stored point again is harmless (same key).
* anything else (a transport error or timeout, 5xx, 401/403, 404 "database not found",
  429): :class:`~cloud.errors.StoreUnavailableError`; the caller retries the whole call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx

from cloud.errors import StoreRejectedError, StoreUnavailableError, StoreValueError
from cloud.store.base import (
    Bucket,
    Rejected,
    StoredReading,
    WriteResult,
    check_identifier,
    checked_every,
    checked_range,
    flags_from_text,
    ns_from_datetime,
)
from cloud.store.influxql import quote_identifier, quote_string
from cloud.store.lineprotocol import MEASUREMENT, LineEncoder
from vitals.metrics import Metric

__all__ = ["InfluxStore"]

logger = logging.getLogger(__name__)

_CONTENT_REFUSED = frozenset({400, 413, 422})
_DROPPED = re.compile(r"dropped=(\d+)")
_REASON_LENGTH = 300


def _reason(response: httpx.Response) -> str:
    """The error text of an InfluxDB answer (1.x ``error``, 2.x/3.x ``message``)."""
    text = response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                text = value
                break
    text = " ".join(text.split())
    return (text or f"HTTP {response.status_code}")[:_REASON_LENGTH]


class InfluxStore:
    """A :class:`~cloud.store.base.ReadingStore` on InfluxDB's v1 HTTP API.

    ``token`` (2.x/3.x) is sent as ``Authorization: Token ...``; ``username``/``password``
    (1.x with auth on) as HTTP basic auth. ``transport`` is for tests that need a custom
    httpx transport; normally None.
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        gzip: bool = False,
        measurement: str = MEASUREMENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        check_identifier(database, "database")
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Token {token}"
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=timeout_s,
            transport=transport,
        )
        self._database = database
        self._retention_policy = retention_policy
        self._gzip = gzip
        self._encoder = LineEncoder(measurement)
        self._from = quote_identifier(measurement)
        if retention_policy is not None:
            self._from = f"{quote_identifier(retention_policy)}.{self._from}"
        self._write_params = {"db": database, "precision": "n"}
        if retention_policy is not None:
            self._write_params["rp"] = retention_policy

    # -- life -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def ping(self) -> str:
        """The server's version (``X-Influxdb-Version``); raises StoreUnavailableError."""
        try:
            response = await self._http.get("/ping")
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"influxdb unreachable: {exc!r}") from exc
        if response.status_code >= 300:
            raise StoreUnavailableError(
                f"influxdb ping: {_reason(response)}", status=response.status_code
            )
        return str(response.headers.get("X-Influxdb-Version", "unknown"))

    # -- writes ---------------------------------------------------------------------------

    async def write(self, readings: Sequence[StoredReading]) -> WriteResult:
        good, lines, rejected = self._encoder.encode(readings)
        if good:
            await self._write_lines(good, lines, rejected)
        return WriteResult(written=len(readings) - len(rejected), rejected=tuple(rejected))

    async def _write_lines(
        self, readings: list[StoredReading], lines: list[str], rejected: list[Rejected]
    ) -> None:
        response = await self._post_write("\n".join(lines).encode())
        status = response.status_code
        if status < 300:
            return
        reason = _reason(response)
        if status not in _CONTENT_REFUSED:
            raise StoreUnavailableError(f"influxdb write: {reason}", status=status)
        dropped = _DROPPED.search(reason)
        if len(readings) == 1 or (dropped is not None and int(dropped[1]) == len(readings)):
            rejected.extend(Rejected(reading, reason) for reading in readings)
            return
        logger.debug("influxdb refused part of %d points (%s): splitting", len(readings), reason)
        half = len(readings) // 2
        await self._write_lines(readings[:half], lines[:half], rejected)
        await self._write_lines(readings[half:], lines[half:], rejected)

    async def _post_write(self, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            import gzip  # noqa: PLC0415 (only when configured)

            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            return await self._http.post(
                "/write", params=self._write_params, content=body, headers=headers
            )
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"influxdb write failed: {exc!r}") from exc

    # -- queries --------------------------------------------------------------------------

    async def latest(
        self, site: str, resident: str | None = None, *, since: datetime | None = None
    ) -> list[StoredReading]:
        where = [self._eq("site", site)]
        if resident is not None:
            where.append(self._eq("resident", resident))
        if since is not None:
            where.append(f"time >= {ns_from_datetime(since)}")
        statement = (
            f"SELECT * FROM {self._from} WHERE {' AND '.join(where)} "
            f'GROUP BY "resident", "metric" ORDER BY time DESC LIMIT 1'
        )
        rows = await self._rows(statement)
        readings = [r for r in (self._reading(row) for row in rows) if r is not None]
        return sorted(readings, key=lambda r: (r.resident, r.metric.value))

    async def window(
        self,
        site: str,
        resident: str,
        metric: Metric,
        start: datetime,
        end: datetime,
        *,
        limit: int = 10_000,
    ) -> list[StoredReading]:
        if limit < 1:
            raise StoreValueError(f"limit must be positive, not {limit}")
        where = self._series_where(site, resident, metric, start, end)
        statement = f"SELECT * FROM {self._from} WHERE {where} ORDER BY time ASC LIMIT {int(limit)}"
        rows = await self._rows(statement)
        return [r for r in (self._reading(row) for row in rows) if r is not None]

    async def history(
        self,
        site: str,
        resident: str,
        metric: Metric,
        start: datetime,
        end: datetime,
        *,
        every: timedelta,
    ) -> list[Bucket]:
        every_ns = checked_every(every)
        where = self._series_where(site, resident, metric, start, end)
        statement = (
            'SELECT mean("value"), min("value"), max("value"), count("value") '
            f"FROM {self._from} WHERE {where} GROUP BY time({every_ns}ns) fill(none)"
        )
        rows = await self._rows(statement)
        return [
            Bucket(
                start_ns=int(row["time"]),
                mean=float(row["mean"]),
                minimum=float(row["min"]),
                maximum=float(row["max"]),
                count=int(row["count"]),
            )
            for row in rows
            if row.get("count")
        ]

    async def count(
        self,
        site: str,
        resident: str | None = None,
        metric: Metric | None = None,
    ) -> int:
        where = [self._eq("site", site)]
        if resident is not None:
            where.append(self._eq("resident", resident))
        if metric is not None:
            where.append(self._eq("metric", metric.value))
        statement = f'SELECT count("value") FROM {self._from} WHERE {" AND ".join(where)}'
        rows = await self._rows(statement)
        return sum(int(row.get("count") or 0) for row in rows)

    def _eq(self, tag: str, value: str) -> str:
        return f"{quote_identifier(tag)} = {quote_string(check_identifier(value, tag))}"

    def _series_where(
        self, site: str, resident: str, metric: Metric, start: datetime, end: datetime
    ) -> str:
        start_ns, end_ns = checked_range(start, end)
        return (
            f"{self._eq('site', site)} AND {self._eq('resident', resident)} AND "
            f"{self._eq('metric', Metric(metric).value)} AND "
            f"time >= {start_ns} AND time < {end_ns}"
        )

    async def _rows(self, statement: str) -> list[dict[str, Any]]:
        """The rows of one statement's series, each series' tags merged in."""
        try:
            response = await self._http.post(
                "/query",
                params={"db": self._database, "epoch": "ns"},
                data={"q": statement},
            )
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"influxdb query failed: {exc!r}") from exc
        status = response.status_code
        if status == 400:
            raise StoreRejectedError(f"influxdb refused a query: {_reason(response)}", status=400)
        if status >= 300:
            raise StoreUnavailableError(f"influxdb query: {_reason(response)}", status=status)
        try:
            answer = response.json()
            results: list[dict[str, Any]] = answer["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreUnavailableError(f"influxdb query: unreadable answer: {exc!r}") from exc
        rows: list[dict[str, Any]] = []
        for result in results:
            error = result.get("error")
            if error:
                if "database not found" in error:
                    raise StoreUnavailableError(f"influxdb query: {error}", status=404)
                raise StoreRejectedError(f"influxdb refused a query: {error}", status=status)
            for series in result.get("series", ()):
                columns: list[str] = series["columns"]
                tags: dict[str, str] = series.get("tags", {})
                rows.extend(
                    {**tags, **dict(zip(columns, values, strict=True))}
                    for values in series["values"]
                )
        return rows

    def _reading(self, row: dict[str, Any]) -> StoredReading | None:
        try:
            user = row.get("user")
            return StoredReading(
                site=str(row["site"]),
                resident=str(row["resident"]),
                device=str(row["device"]),
                metric=Metric(row["metric"]),
                user=int(user) if user not in (None, "") else None,
                time_ns=int(row["time"]),
                value=float(row["value"]),
                seq=int(row["seq"]),
                gateway=str(row["gateway"]),
                flags=flags_from_text(row.get("flags")),
                received_ns=int(row["received"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            logger.debug("influxdb row is not a reading (%r): skipped", exc)
            return None
