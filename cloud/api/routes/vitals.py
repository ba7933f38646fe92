"""A resident's readings: ``/sites/{site}/residents/{resident}/latest`` and ``/history``
(downsampled by the store: mean, min, max and count per interval)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from cloud.api.access import Context, ResidentAccess, resident_access
from cloud.api.history import history_window
from cloud.api.models import BucketOut, HistoryOut, LatestOut, ReadingOut
from cloud.api.policy import Action
from vitals.metrics import Metric

__all__ = ["router"]

router = APIRouter(tags=["vitals"])

ResidentRead = Annotated[ResidentAccess, Depends(resident_access(Action.READ_RESIDENT))]


@router.get("/sites/{site}/residents/{resident}/latest")
async def latest(
    access: ResidentRead,
    ctx: Context,
    since: Annotated[
        AwareDatetime | None, Query(description="Only readings measured at or after this.")
    ] = None,
) -> LatestOut:
    """The newest reading of every metric of the resident."""
    resident = access.resident
    readings = await ctx.store.latest(resident.site, resident.id, since=since)
    return LatestOut(
        site=resident.site,
        resident=resident.id,
        readings=[
            ReadingOut.of(reading) for reading in readings if reading.resident == resident.id
        ],
    )


@router.get("/sites/{site}/residents/{resident}/history")
async def history(
    *,
    access: ResidentRead,
    ctx: Context,
    metric: Metric,
    start: Annotated[
        AwareDatetime | None, Query(description="Inclusive; default: `end` minus a day.")
    ] = None,
    end: Annotated[AwareDatetime | None, Query(description="Exclusive; default: now.")] = None,
    every: Annotated[
        timedelta | None,
        Query(description="Interval as an ISO 8601 duration (`PT5M`); default: ~500 points."),
    ] = None,
) -> HistoryOut:
    """Mean, minimum, maximum and count of one metric per interval; only intervals that
    hold readings, oldest first."""
    settings = ctx.settings
    window = history_window(
        start=start,
        end=end,
        every=every,
        now=ctx.clock.now(),
        default_span=timedelta(seconds=settings.default_history_span_s),
        max_span=timedelta(days=settings.max_history_span_days),
        max_buckets=settings.max_history_buckets,
    )
    resident = access.resident
    buckets = await ctx.store.history(
        resident.site, resident.id, metric, window.start, window.end, every=window.every
    )
    return HistoryOut(
        site=resident.site,
        resident=resident.id,
        metric=metric,
        unit=metric.unit,
        start=window.start,
        end=window.end,
        every_s=window.every.total_seconds(),
        buckets=[BucketOut.of(bucket) for bucket in buckets],
    )
