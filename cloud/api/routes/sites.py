"""Sites, residents and devices: ``/sites``, ``/residents``, ``/sites/{site}/residents``,
``/sites/{site}/residents/{resident}``, ``/sites/{site}/devices``.

Family accounts see the sites and residents they are linked to (``/sites``, ``/residents``,
the resident itself); site-wide listings are for staff and admins of the site.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from cloud.api.access import (
    Context,
    CurrentCaller,
    ResidentAccess,
    SiteAccess,
    record,
    resident_access,
    site_access,
)
from cloud.api.audit import AuditAction
from cloud.api.models import (
    DeviceStatusOut,
    ResidentOut,
    ResidentSummaryOut,
    SiteOut,
)
from cloud.api.policy import Action, Resource, decide

__all__ = ["router"]

router = APIRouter(tags=["residents"])

SiteList = Annotated[SiteAccess, Depends(site_access(Action.LIST_SITE))]
ResidentRead = Annotated[ResidentAccess, Depends(resident_access(Action.READ_RESIDENT))]


@router.get("/sites")
async def sites(caller: CurrentCaller, ctx: Context) -> list[SiteOut]:
    """The sites the caller may see."""
    principal = caller.principal
    return [
        SiteOut.of(site)
        for site in await ctx.directory.sites()
        if decide(principal, Action.VIEW_SITE, Resource.of_site(site.id))
    ]


@router.get("/residents")
async def my_residents(
    request: Request, caller: CurrentCaller, ctx: Context
) -> list[ResidentSummaryOut]:
    """Every resident whose data the caller may read (a family account: its relatives)."""
    principal = caller.principal
    found = [
        ResidentSummaryOut.of(resident)
        for site in await ctx.directory.sites()
        for resident in site.residents
        if decide(principal, Action.READ_RESIDENT, Resource.of_resident(site.id, resident.id))
    ]
    await record(ctx, request, user_id=caller.user.id, action=AuditAction.READ)
    return found


@router.get("/sites/{site}/residents")
async def site_residents(access: SiteList) -> list[ResidentSummaryOut]:
    """The residents of a site (staff and admins of the site)."""
    return [ResidentSummaryOut.of(resident) for resident in access.site.residents]


@router.get("/sites/{site}/residents/{resident}")
async def resident(access: ResidentRead) -> ResidentOut:
    """A resident's record and devices."""
    return ResidentOut.of(access.resident)


@router.get("/sites/{site}/devices")
async def site_devices(access: SiteList, ctx: Context) -> list[DeviceStatusOut]:
    """Every device of the site's residents with its last reported status, then devices a
    gateway reports that no site file lists."""
    statuses = await ctx.devices.statuses(access.site.id)
    found: list[DeviceStatusOut] = []
    listed: set[str] = set()
    for resident in access.site.residents:
        for device in resident.devices:  # a shared cuff is listed under each of its residents
            listed.add(device.id)
            found.append(
                DeviceStatusOut.of(
                    device.id,
                    resident=resident.id,
                    kind=device.kind,
                    status=statuses.get(device.id),
                )
            )
    for device_id in sorted(set(statuses) - listed):
        found.append(
            DeviceStatusOut.of(device_id, resident=None, kind=None, status=statuses[device_id])
        )
    return found
