"""Accounts, for administrators: ``/users`` (create, list), ``/users/{user_id}`` (see,
delete) and ``POST /users/{user_id}/links`` (link a family account to a resident).

An administrator manages the accounts whose sites are all among theirs; other accounts do
not exist for them (404). Deleting an account ends its sessions and links; the last enabled
administrator and one's own account cannot be deleted (409).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from cloud.api.access import (
    AccountAccess,
    AccountManager,
    Caller,
    Context,
    account_access,
    authorize,
    record,
)
from cloud.api.accounts import create_user
from cloud.api.audit import AuditAction
from cloud.api.models import ErrorOut, LinkCreateIn, LinkOut, UserCreateIn, UserOut
from cloud.api.policy import Action, Resource, decide

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/users", tags=["accounts"])

Account = Annotated[AccountAccess, Depends(account_access)]


async def _creator(
    request: Request, body: UserCreateIn, caller: AccountManager, ctx: Context
) -> Caller:
    await authorize(ctx, request, caller, Action.MANAGE_USERS, Resource.of_accounts(body.sites))
    return caller


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"model": ErrorOut, "description": "The username is taken."},
        422: {"model": ErrorOut, "description": "Username, sites or password refused."},
    },
)
async def add_user(
    request: Request,
    body: UserCreateIn,
    caller: Annotated[Caller, Depends(_creator)],
    ctx: Context,
) -> UserOut:
    """Create an account (within the administrator's sites)."""
    user = await create_user(
        ctx.accounts,
        ctx.passwords,
        username=body.username,
        password=body.password.get_secret_value(),
        role=body.role,
        sites=body.sites,
        now=ctx.clock.now(),
    )
    await record(
        ctx, request, user_id=caller.user.id, action=AuditAction.USER_CREATED, target=str(user.id)
    )
    logger.info(
        "account created user_id=%d role=%s by user_id=%d", user.id, user.role, caller.user.id
    )
    return UserOut.of(user)


@router.get("")
async def list_users(caller: AccountManager, ctx: Context) -> list[UserOut]:
    """The accounts the administrator manages."""
    principal = caller.principal
    return [
        UserOut.of(user)
        for user in await ctx.accounts.users()
        if decide(principal, Action.MANAGE_USERS, Resource.of_accounts(user.sites, user.id))
    ]


@router.get("/{user_id}")
async def get_user(access: Account, ctx: Context) -> UserOut:
    """An account and its active family links."""
    return UserOut.of(access.account, await ctx.accounts.links(access.account.id))


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"model": ErrorOut, "description": "One's own or the last admin."}},
)
async def delete_user(request: Request, access: Account, ctx: Context) -> Response:
    """Delete an account: it can no longer log in, its sessions and links end."""
    caller, account = access.caller, access.account
    if account.id == caller.user.id:
        raise HTTPException(status.HTTP_409_CONFLICT, "an administrator cannot delete themself")
    if await ctx.accounts.delete_user(account.id, by=caller.user.id, now=ctx.clock.now()):
        await ctx.sessions.revoke_user(account.id)
        await record(
            ctx,
            request,
            user_id=caller.user.id,
            action=AuditAction.USER_DELETED,
            target=str(account.id),
        )
        logger.info("account deleted user_id=%d by user_id=%d", account.id, caller.user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _linkable(
    request: Request, body: LinkCreateIn, access: Account, ctx: Context
) -> AccountAccess:
    await authorize(
        ctx,
        request,
        access.caller,
        Action.GRANT_LINK,
        Resource.of_resident(body.site, body.resident),
    )
    if await ctx.directory.resident(body.site, body.resident) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such resident")
    return access


@router.post(
    "/{user_id}/links",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"model": ErrorOut, "description": "Already linked."},
        422: {"model": ErrorOut, "description": "Not a family account, or not its site."},
    },
)
async def add_link(
    request: Request,
    body: LinkCreateIn,
    access: Annotated[AccountAccess, Depends(_linkable)],
    ctx: Context,
) -> LinkOut:
    """Link a family account to a resident of one of its sites (``contact``: the account
    may also see and revoke the resident's other links)."""
    caller = access.caller
    link = await ctx.accounts.add_link(
        access.account.id,
        body.site,
        body.resident,
        contact=body.contact,
        granted_by=caller.user.id,
        now=ctx.clock.now(),
    )
    await record(
        ctx,
        request,
        user_id=caller.user.id,
        action=AuditAction.LINK_GRANTED,
        site=link.site,
        resident=link.resident,
        target=str(link.id),
    )
    logger.info("link granted link_id=%d user_id=%d", link.id, access.account.id)
    return LinkOut.of(link)
