"""Health-record exports: ``/sites/{site}/residents/{resident}/fhir`` (a FHIR R4 Bundle of
one resident's vital signs) and ``/sites/{site}/research.csv`` (the site's readings with
keyed pseudonyms instead of ids, for research).

Who may: the FHIR export is a read of the resident's data (staff and admins of the site, and
family accounts linked to the resident), audited like any other read. The research export is
for administrators of the site only, and is audited as a read of the site.

Both read the readings of ``start <= time < end`` (default: the day before now; at most
``max_history_span_days``) and hold at most :data:`MAX_EXPORT_READINGS` of them: a range
holding more is refused (422, "narrow the range") rather than cut short, so an export is
always complete for the range it names. The research export needs ``[api] research_key``
(``CAREWATCH_API__RESEARCH_KEY``); without it, 503.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import AwareDatetime

from cloud.api.access import (
    Context,
    ResidentAccess,
    SiteAccess,
    record,
    resident_access,
    site_access,
)
from cloud.api.audit import AuditAction
from cloud.api.context import ApiContext
from cloud.api.errors import HistoryRangeError
from cloud.api.models import ErrorOut
from cloud.api.policy import Action
from cloud.exchange import (
    EXPORTED_METRICS,
    FHIR_VERSION,
    PatientRef,
    research_csv,
    vital_signs_bundle,
)
from cloud.store.base import StoredReading
from vitals.metrics import Metric, MetricKind

__all__ = [
    "FHIR_MEDIA_TYPE",
    "MAX_EXPORT_READINGS",
    "RESEARCH_METRICS",
    "export_window",
    "router",
]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["exports"])

MAX_EXPORT_READINGS = 200_000
"""Most readings one export holds (about 40 MB of CSV); a range holding more is refused."""
FHIR_MEDIA_TYPE = f"application/fhir+json; fhirVersion={FHIR_VERSION}"
RESEARCH_METRICS = tuple(metric for metric in Metric if metric.kind is not MetricKind.DEVICE)
"""What the research export carries: the resident's measurements and events, not the
devices' battery levels."""

ResidentRead = Annotated[ResidentAccess, Depends(resident_access(Action.READ_RESIDENT))]
# The one admin-only, site-scoped action of the policy today (see the module docstring of
# cloud.api.policy: a dedicated EXPORT_RESEARCH action would say so better).
ResearchExport = Annotated[SiteAccess, Depends(site_access(Action.EXPORT_RESEARCH))]
Start = Annotated[AwareDatetime | None, Query(description="Inclusive; default: `end` minus a day.")]
End = Annotated[AwareDatetime | None, Query(description="Exclusive; default: now.")]

_TOO_MANY = f"the range holds more than {MAX_EXPORT_READINGS} readings: narrow it (start, end)"


def export_window(
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    default_span: timedelta,
    max_span: timedelta,
) -> tuple[datetime, datetime]:
    """``(start, end)`` of an export, or :class:`HistoryRangeError` saying what is wrong
    (pure: ``now`` is passed in)."""
    end = now if end is None else end
    start = end - default_span if start is None else start
    if start.tzinfo is None or end.tzinfo is None:
        raise HistoryRangeError("start and end need a time zone")
    if start >= end:
        raise HistoryRangeError("start must be before end")
    if end - start > max_span:
        raise HistoryRangeError(f"the range is longer than {max_span.days} days")
    return start, end


def _window(
    ctx: ApiContext, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    settings = ctx.settings
    return export_window(
        start=start,
        end=end,
        now=ctx.clock.now(),
        default_span=timedelta(seconds=settings.default_history_span_s),
        max_span=timedelta(days=settings.max_history_span_days),
    )


async def _readings(
    ctx: ApiContext,
    *,
    site: str,
    residents: Iterable[str],
    metrics: Iterable[Metric],
    start: datetime,
    end: datetime,
) -> list[StoredReading]:
    """Every reading of the residents and metrics in the range (422 beyond the limit)."""
    found: list[StoredReading] = []
    metrics = tuple(metrics)
    for resident in residents:
        for metric in metrics:
            room = MAX_EXPORT_READINGS - len(found)
            readings = await ctx.store.window(site, resident, metric, start, end, limit=room + 1)
            if len(readings) > room:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _TOO_MANY)
            found.extend(readings)
    return found


@router.get(
    "/sites/{site}/residents/{resident}/fhir",
    response_class=Response,
    responses={
        200: {
            "content": {"application/fhir+json": {}},
            "description": "A FHIR R4 `collection` Bundle: the Patient and its vital signs.",
        },
        422: {"model": ErrorOut, "description": "A bad or too large range."},
    },
)
async def fhir_bundle(
    request: Request, access: ResidentRead, ctx: Context, start: Start = None, end: End = None
) -> Response:
    """The resident's vital signs in ``start <= time < end`` as a FHIR R4 Bundle (Patient
    and Observations; blood pressure as one panel per measurement)."""
    resident = access.resident
    first, last = _window(ctx, start, end)
    readings = await _readings(
        ctx,
        site=resident.site,
        residents=(resident.id,),
        metrics=sorted(EXPORTED_METRICS),
        start=first,
        end=last,
    )
    patient = PatientRef(site=resident.site, id=resident.id, display_name=resident.name)
    base_url = f"{str(request.base_url).rstrip('/')}/fhir/{resident.site}"
    bundle = await asyncio.to_thread(
        vital_signs_bundle,
        patient,
        readings,
        bundle_id=str(uuid.uuid4()),
        timestamp=ctx.clock.now(),
        base_url=base_url,
    )
    logger.info(
        "fhir export user_id=%d site=%s resident=%s observations=%d",
        access.caller.user.id,
        resident.site,
        resident.id,
        len(bundle.entry or ()) - 1,
    )
    return Response(
        content=bundle.model_dump_json(exclude_none=True),
        media_type=FHIR_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{resident.site}-{resident.id}.fhir.json"'
        },
    )


@router.get(
    "/sites/{site}/research.csv",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "The site's readings with keyed pseudonyms (no names, no ids).",
        },
        422: {"model": ErrorOut, "description": "A bad or too large range."},
        503: {"model": ErrorOut, "description": "No research key is configured."},
    },
)
async def research_export(
    request: Request, access: ResearchExport, ctx: Context, start: Start = None, end: End = None
) -> Response:
    """Every reading of the site's residents in ``start <= time < end`` as CSV, sites,
    residents and devices replaced by pseudonyms keyed with ``research_key``
    (see :mod:`cloud.exchange.research` for the columns)."""
    key = ctx.settings.research_key
    if key is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the research export is off: set CAREWATCH_API__RESEARCH_KEY",
        )
    site = access.site
    first, last = _window(ctx, start, end)
    readings = await _readings(
        ctx,
        site=site.id,
        residents=[resident.id for resident in site.residents],
        metrics=RESEARCH_METRICS,
        start=first,
        end=last,
    )
    await record(
        ctx,
        request,
        user_id=access.caller.user.id,
        action=AuditAction.READ,
        site=site.id,
        target="research.csv",
    )
    body = await asyncio.to_thread(research_csv, readings, key=key.get_secret_value().encode())
    logger.info(
        "research export user_id=%d site=%s rows=%d",
        access.caller.user.id,
        site.id,
        len(readings),
    )
    return Response(
        content=body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="research.csv"'},
    )
