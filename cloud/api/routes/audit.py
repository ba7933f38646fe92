"""The audit log, for administrators: ``GET /audit?site=...`` (the entries of one of their
sites) or ``GET /audit?user_id=...`` (what one account they manage did: its logins and its
entries without a site or within the administrator's sites). Newest first; page with
``before_id``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import AwareDatetime

from cloud.api.access import AccountManager, Context, authorize
from cloud.api.audit import MAX_QUERY_LIMIT, AuditQuery
from cloud.api.models import AuditEntryOut
from cloud.api.policy import Action, Resource
from vitals.topics import ID_PATTERN

__all__ = ["router"]

router = APIRouter(tags=["audit"])

IdQuery = Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")]


async def _audit_query(
    *,
    request: Request,
    caller: AccountManager,
    ctx: Context,
    site: IdQuery = None,
    user_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    resident: IdQuery = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_QUERY_LIMIT)] = 100,
) -> AuditQuery:
    if site is not None:
        await authorize(ctx, request, caller, Action.READ_AUDIT, Resource.of_site(site))
        return AuditQuery(
            site=site,
            user_id=user_id,
            resident=resident,
            since=since,
            until=until,
            limit=limit,
            before_id=before_id,
        )
    if user_id is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "give site or user_id")
    account = await ctx.accounts.user(user_id)
    if account is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    await authorize(
        ctx,
        request,
        caller,
        Action.MANAGE_USERS,
        Resource.of_accounts(account.sites, owner=account.id),
        denied_status=status.HTTP_404_NOT_FOUND,
    )
    return AuditQuery(
        sites=caller.principal.sites,
        user_id=user_id,
        resident=resident,
        since=since,
        until=until,
        limit=limit,
        before_id=before_id,
    )


@router.get("/audit")
async def audit_entries(
    query: Annotated[AuditQuery, Depends(_audit_query)], ctx: Context
) -> list[AuditEntryOut]:
    """Audit entries, newest first."""
    return [AuditEntryOut.of(entry) for entry in await ctx.audit.query(query)]
