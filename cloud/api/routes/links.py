"""A resident's family links: ``GET /sites/{site}/residents/{resident}/links`` (admins of the
site and the resident's contact) and ``DELETE .../links/{link_id}`` (those, and the family
account of the link itself). Granting a link is an admin's: ``POST /users/{id}/links``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status

from cloud.api.access import (
    Caller,
    Context,
    CurrentCaller,
    ResidentAccess,
    ResidentPath,
    SitePath,
    authorize,
    record,
    resident_access,
)
from cloud.api.accounts import FamilyLink
from cloud.api.audit import AuditAction
from cloud.api.models import LinkOut
from cloud.api.policy import Action, Resource

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["family links"])

LinksView = Annotated[ResidentAccess, Depends(resident_access(Action.VIEW_LINKS))]


@router.get("/sites/{site}/residents/{resident}/links")
async def resident_links(access: LinksView, ctx: Context) -> list[LinkOut]:
    """The resident's active family links."""
    resident = access.resident
    links = await ctx.accounts.resident_links(resident.site, resident.id)
    return [LinkOut.of(link) for link in links]


async def _revocable(
    *,
    request: Request,
    site: SitePath,
    resident: ResidentPath,
    link_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    caller: CurrentCaller,
    ctx: Context,
) -> tuple[Caller, FamilyLink]:
    # First whether the caller could revoke any link of this resident at all (its own, if
    # linked): refused before the link is looked up, so nothing is told about it.
    await authorize(
        ctx,
        request,
        caller,
        Action.REVOKE_LINK,
        Resource.of_link(site, resident, caller.user.id),
    )
    link = await ctx.accounts.link(link_id)
    if link is None or link.site != site or link.resident != resident:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such link")
    await authorize(
        ctx, request, caller, Action.REVOKE_LINK, Resource.of_link(site, resident, link.user_id)
    )
    return caller, link


@router.delete(
    "/sites/{site}/residents/{resident}/links/{link_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def revoke_link(
    request: Request,
    revocable: Annotated[tuple[Caller, FamilyLink], Depends(_revocable)],
    ctx: Context,
) -> Response:
    """End a family link at once (its account's sessions lose the resident on their next
    request). Revoking a link already revoked changes nothing."""
    caller, link = revocable
    if link.active:
        await ctx.accounts.revoke_link(link.id, by=caller.user.id, now=ctx.clock.now())
        await record(
            ctx,
            request,
            user_id=caller.user.id,
            action=AuditAction.LINK_REVOKED,
            site=link.site,
            resident=link.resident,
            target=str(link.id),
        )
        logger.info("link revoked link_id=%d by user_id=%d", link.id, caller.user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
