"""Alerts and what staff do with them, live events, NEWS2, staff entries and thresholds.

Who sees what: staff and admins see every alert of their sites; a family account sees only
the *clinical* alerts of the residents it is linked to (never technical ones, never another
resident's), in the list, in the trail and on the live stream. Acting on an alert is
``WRITE_RESIDENT`` on its resident, or ``WRITE_SITE`` for one that concerns no resident (a
gateway). Every read is written to the audit log. Without the alert service in this process
(``python -m cloud api`` alone) these endpoints answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from cloud.alerts.errors import (
    AlertNotFoundError,
    InputError,
    InvalidTransitionError,
    SnoozeTooLongError,
)
from cloud.alerts.feed import Event
from cloud.alerts.news2 import Consciousness, Parameter
from cloud.api.access import (
    Caller,
    Context,
    ResidentAccess,
    SiteAccess,
    authorize,
    record,
    resident_access,
    site_access,
)
from cloud.api.alertdesk import AlertDesk
from cloud.api.audit import AuditAction
from cloud.api.context import ApiContext
from cloud.api.policy import Action, Resource, Role
from vitals.wire import Alert, AlertKind, AlertState

__all__ = ["router"]

router = APIRouter(tags=["alerts"])

SiteView = Annotated[SiteAccess, Depends(site_access(Action.VIEW_SITE))]
ResidentRead = Annotated[ResidentAccess, Depends(resident_access(Action.READ_RESIDENT))]
ResidentWrite = Annotated[ResidentAccess, Depends(resident_access(Action.WRITE_RESIDENT))]

PING_EVERY_S = 15.0


class AlertsOut(BaseModel):
    alerts: list[Alert]


class TrailEntry(BaseModel):
    time: str
    action: str
    actor: str
    detail: str


class TrailOut(BaseModel):
    trail: list[TrailEntry]


class CommentIn(BaseModel):
    comment: Annotated[str, Field(max_length=500)] | None = None


class SnoozeIn(BaseModel):
    minutes: float = Field(gt=0, le=24 * 60)


class News2Out(BaseModel):
    total: int | None
    band: str | None
    scores: dict[str, int | None]
    missing: list[str]
    time: str | None


class ObservationIn(BaseModel):
    consciousness: Literal["A", "C", "V", "P", "U"] | None = None
    on_oxygen: bool | None = None


class Band(BaseModel):
    severity: str
    value: float


class ThresholdOut(BaseModel):
    rule: str
    metric: str
    low: list[Band]
    high: list[Band]


class ThresholdsOut(BaseModel):
    rules: list[ThresholdOut]


def desk_of(ctx: ApiContext) -> AlertDesk:
    if ctx.alerts is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the alert service does not run in this process"
        )
    return ctx.alerts


def _family_may_see(caller: Caller, site: str, resident: str | None, kind: AlertKind) -> bool:
    principal = caller.principal
    if principal.role is not Role.FAMILY:
        return True
    return (
        kind is AlertKind.CLINICAL
        and resident is not None
        and any(ref.site == site and ref.resident == resident for ref in principal.links)
    )


async def _visible_alert(
    ctx: ApiContext, request: Request, caller: Caller, site: str, alert_id: str
) -> Alert:
    """The alert if the caller may see it: 403 for a family account and anything but a
    clinical alert of its own relative (whether or not it exists), 404 for staff when there
    is no such alert at their site."""
    alert = await desk_of(ctx).alert(site, alert_id)
    if caller.principal.role is Role.FAMILY:
        resident = alert.resident if alert is not None else None
        if alert is None or resident is None or alert.kind is not AlertKind.CLINICAL:
            await authorize(ctx, request, caller, Action.LIST_SITE, Resource.of_site(site))
        assert resident is not None
        await authorize(
            ctx, request, caller, Action.READ_RESIDENT, Resource.of_resident(site, resident)
        )
    else:
        await authorize(ctx, request, caller, Action.LIST_SITE, Resource.of_site(site))
    if alert is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    await record(
        ctx,
        request,
        user_id=caller.user.id,
        action=AuditAction.READ,
        site=site,
        resident=alert.resident,
        target=alert_id,
    )
    return alert


@router.get("/sites/{site}/alerts")
async def list_alerts(
    *,
    request: Request,
    access: SiteView,
    ctx: Context,
    state: Annotated[list[AlertState] | None, Query()] = None,
    resident: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertsOut:
    """The site's alerts, newest first (by default every state; ``state`` filters)."""
    caller, site = access.caller, access.site.id
    if caller.principal.role is not Role.FAMILY:
        await authorize(ctx, request, caller, Action.LIST_SITE, Resource.of_site(site))
    elif resident is not None:
        await authorize(
            ctx, request, caller, Action.READ_RESIDENT, Resource.of_resident(site, resident)
        )
    alerts = await desk_of(ctx).alerts(site, states=state, resident=resident, limit=limit)
    visible = [a for a in alerts if _family_may_see(caller, site, a.resident, a.kind)]
    await record(
        ctx, request, user_id=caller.user.id, action=AuditAction.READ, site=site, resident=resident
    )
    return AlertsOut(alerts=visible)


@router.get("/sites/{site}/alerts/{alert_id}/trail")
async def trail(request: Request, alert_id: str, access: SiteView, ctx: Context) -> TrailOut:
    """Who did what to the alert, and when (the audit trail, oldest first)."""
    site = access.site.id
    await _visible_alert(ctx, request, access.caller, site, alert_id)
    records = await desk_of(ctx).trail(site, alert_id)
    return TrailOut(
        trail=[
            TrailEntry(
                time=r.time.isoformat(), action=r.action.value, actor=r.actor, detail=r.detail
            )
            for r in records
        ]
    )


async def _act(
    request: Request, ctx: ApiContext, caller: Caller, site: str, alert_id: str
) -> tuple[AlertDesk, str]:
    desk = desk_of(ctx)
    alert = await desk.alert(site, alert_id)
    if alert is None:
        # Whether it exists is only told to those who may act on the site at all.
        await authorize(ctx, request, caller, Action.WRITE_SITE, Resource.of_site(site))
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert")
    if alert.resident is not None:
        resource = Resource.of_resident(site, alert.resident)
        await authorize(ctx, request, caller, Action.WRITE_RESIDENT, resource)
    else:
        await authorize(ctx, request, caller, Action.WRITE_SITE, Resource.of_site(site))
    return desk, caller.user.username


StaffAction = Callable[[AlertDesk, str], Awaitable[Alert]]
"""What staff do to an alert, given the desk and who does it."""


async def _staff_action(
    request: Request, ctx: ApiContext, access: SiteAccess, alert_id: str, action: StaffAction
) -> Alert:
    """Authorise the caller on the alert's resident (or site), then act; a refused
    transition is 409, a snooze beyond the cap 422."""
    desk, by = await _act(request, ctx, access.caller, access.site.id, alert_id)
    try:
        return await action(desk, by)
    except SnoozeTooLongError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except AlertNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such alert") from exc
    except (InvalidTransitionError, InputError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post("/sites/{site}/alerts/{alert_id}/acknowledge")
async def acknowledge(
    request: Request, alert_id: str, body: CommentIn, access: SiteView, ctx: Context
) -> Alert:
    """I have it: stops the escalation; the comment is kept in the trail."""
    site = access.site.id
    return await _staff_action(
        request,
        ctx,
        access,
        alert_id,
        lambda desk, by: desk.acknowledge(site, alert_id, by, body.comment),
    )


@router.post("/sites/{site}/alerts/{alert_id}/resolve")
async def resolve(
    request: Request, alert_id: str, body: CommentIn, access: SiteView, ctx: Context
) -> Alert:
    """Done: the alert is closed (a new one opens if the condition comes back)."""
    site = access.site.id
    return await _staff_action(
        request,
        ctx,
        access,
        alert_id,
        lambda desk, by: desk.resolve(site, alert_id, by, body.comment),
    )


@router.post("/sites/{site}/alerts/{alert_id}/snooze")
async def snooze(
    request: Request, alert_id: str, body: SnoozeIn, access: SiteView, ctx: Context
) -> Alert:
    """Quiet for ``minutes`` (critical alerts: at most the configured cap), then back."""
    site = access.site.id
    return await _staff_action(
        request,
        ctx,
        access,
        alert_id,
        lambda desk, by: desk.snooze(site, alert_id, by, body.minutes),
    )


@router.get("/sites/{site}/events")
async def events(request: Request, access: SiteView, ctx: Context) -> StreamingResponse:
    """Server-sent events of the site: ``alert`` (an alert changed), ``reading`` (a latest
    value), ``resync`` (some were lost: reload), ``ping`` every 15 s."""
    desk = desk_of(ctx)
    caller, site = access.caller, access.site.id
    await record(ctx, request, user_id=caller.user.id, action=AuditAction.READ, site=site)

    def visible(event: Event) -> bool:
        if event.kind == "resync":
            return True
        kind = AlertKind(event.data.get("kind", AlertKind.CLINICAL.value))
        return _family_may_see(caller, site, event.resident, kind)

    async def stream() -> AsyncIterator[bytes]:
        source = desk.events(site).__aiter__()
        pending: asyncio.Task[Event] | None = None
        try:
            yield b"retry: 3000\n\n"
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(source))
                done, _ = await asyncio.wait({pending}, timeout=PING_EVERY_S)
                if not done:
                    yield b"event: ping\ndata: {}\n\n"
                    continue
                event = pending.result()
                pending = None
                if visible(event):
                    data = json.dumps(event.data, separators=(",", ":"))
                    yield f"event: {event.kind}\ndata: {data}\n\n".encode()
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending
            await source.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/sites/{site}/residents/{resident}/news2")
async def news2(access: ResidentRead, ctx: Context) -> News2Out:
    """NEWS2 now from the freshest parameters; missing ones are named, never scored."""
    resident = access.resident
    found = desk_of(ctx).news2(resident.site, resident.id)
    if found is None:
        return News2Out(total=None, band=None, scores={}, missing=[], time=None)
    score, measured = found
    scores = {
        Parameter.RESPIRATION_RATE.value: score.respiration_rate,
        Parameter.SPO2.value: score.spo2,
        Parameter.AIR_OR_OXYGEN.value: score.air_or_oxygen,
        Parameter.SYSTOLIC_BP.value: score.systolic_bp,
        Parameter.PULSE.value: score.pulse,
        Parameter.CONSCIOUSNESS.value: score.consciousness,
        Parameter.TEMPERATURE.value: score.temperature,
    }
    nothing = len(score.missing) == len(scores)
    return News2Out(
        total=None if nothing else score.total,
        band=None if nothing else score.band.label,
        scores=scores,
        missing=sorted(p.value for p in score.missing),
        time=measured.isoformat() if measured is not None else None,
    )


@router.post("/sites/{site}/residents/{resident}/observations", status_code=204)
async def observe(
    request: Request, body: ObservationIn, access: ResidentWrite, ctx: Context
) -> None:
    """A staff entry: consciousness (ACVPU) and/or whether the resident is on oxygen."""
    resident = access.resident
    level = Consciousness(body.consciousness) if body.consciousness else None
    if not desk_of(ctx).observe(
        resident.site, resident.id, consciousness=level, on_oxygen=body.on_oxygen
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the alert rules do not know this resident")
    await record(
        ctx,
        request,
        user_id=access.caller.user.id,
        action=AuditAction.CHANGE,
        site=resident.site,
        resident=resident.id,
    )


@router.get("/sites/{site}/residents/{resident}/thresholds")
async def thresholds(access: ResidentRead, ctx: Context) -> ThresholdsOut:
    """The threshold rules as they apply to this resident, to draw on charts."""
    resident = access.resident
    rules = desk_of(ctx).thresholds(resident.site, resident.id) or []
    out: list[ThresholdOut] = []
    for rule in rules:
        bands = [Band(severity=level.severity.value, value=level.trigger) for level in rule.levels]
        for metric in rule.metrics:
            high = rule.direction.value == "high"
            out.append(
                ThresholdOut(
                    rule=rule.rule,
                    metric=metric.value,
                    low=[] if high else bands,
                    high=bands if high else [],
                )
            )
    return ThresholdsOut(rules=out)
