"""The FastAPI dependencies that turn a request into a caller and ask the policy.

Every endpoint but login and the OpenAPI document depends on :func:`current_caller` (a test
walks the routes to make sure), which

* finds the session of the cookie: none, unknown, expired, or an account disabled or deleted
  since is **401**;
* on every state-changing method (anything but GET, HEAD, OPTIONS) compares the
  ``X-CSRF-Token`` header with the session's token in constant time: missing or wrong is
  **403** (synchroniser-token pattern; the session cookie alone can never change anything);
* loads the account's active family links afresh, so a revoked link stops working at once.

Authorisation goes through :func:`authorize` (and the dependency factories built on it:
:func:`site_access`, :func:`resident_access`, :func:`account_access`), which asks
:func:`cloud.api.policy.decide` and turns a refusal into **403**. The policy decides on the
identifiers in the request before anything is looked up, so whether a site or resident exists
is never told outside the caller's scope; **404** comes only after the policy allowed.

Audit: an allowed read of a resident's data or of a site-wide listing, and every refusal, is
appended to the audit log *before* the endpoint runs; if that fails, the request fails (503)
and nothing is served.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.routing import APIRoute

from cloud.api.accounts import User, principal_of
from cloud.api.audit import AuditAction, AuditEvent, Outcome
from cloud.api.context import ApiContext
from cloud.api.directory import ResidentInfo, SiteInfo
from cloud.api.policy import Action, Principal, Resource, Role, decide
from cloud.api.sessions import Session
from vitals.topics import ID_PATTERN

__all__ = [
    "AUDITED_READS",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "AccountAccess",
    "AccountManager",
    "Caller",
    "Context",
    "CurrentCaller",
    "ResidentAccess",
    "ResidentPath",
    "SiteAccess",
    "SitePath",
    "account_access",
    "authorize",
    "client_address",
    "context",
    "current_caller",
    "endpoint_of",
    "manage_accounts",
    "record",
    "resident_access",
    "site_access",
]

logger = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
AUDITED_READS = frozenset({Action.READ_RESIDENT, Action.LIST_SITE})
"""Actions whose allowed requests are recorded in the audit log as reads."""

SitePath = Annotated[str, Path(pattern=f"^{ID_PATTERN}$", description="A site id.")]
ResidentPath = Annotated[
    str, Path(pattern=f"^{ID_PATTERN}$", description="A resident id (unique within its site).")
]


def context(request: Request) -> ApiContext:
    """The app's :class:`ApiContext` (set by ``create_app``)."""
    return cast(ApiContext, request.app.state.carewatch)


Context = Annotated[ApiContext, Depends(context)]


@dataclass(slots=True, frozen=True)
class Caller:
    """Who a request acts for: the account, its principal, its session."""

    user: User
    principal: Principal
    session: Session


def endpoint_of(request: Request) -> str:
    """``METHOD /route/{template}`` under ``/api/v1`` (ids stay out of it: they are in their
    own fields)."""
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else request.url.path
    return f"{request.method} {path}"


def client_address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def _unauthenticated(detail: str = "not logged in") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail)


async def current_caller(request: Request, ctx: Context) -> Caller:
    """The caller of a request with a live session (and, for a state-changing method, the
    right CSRF token); 401 or 403 otherwise."""
    settings = ctx.settings.session
    token = request.cookies.get(settings.cookie_name)
    if not token:
        raise _unauthenticated()
    session = await ctx.sessions.get(token)
    if session is None:
        raise _unauthenticated()
    now = ctx.clock.now()
    if not session.is_live(now, settings):
        await ctx.sessions.revoke(session.id)
        raise _unauthenticated("the session has expired")
    user = await ctx.accounts.user(session.user_id)
    if user is None or user.disabled:
        await ctx.sessions.revoke(session.id)
        raise _unauthenticated()
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            logger.warning(
                "csrf token missing or wrong user_id=%d endpoint=%s", user.id, endpoint_of(request)
            )
            raise HTTPException(status.HTTP_403_FORBIDDEN, "CSRF token missing or wrong")
    if session.needs_touch(now, settings):
        await ctx.sessions.touch(session.id, now=now)
    links = await ctx.accounts.links(user.id) if user.role is Role.FAMILY else []
    return Caller(user=user, principal=principal_of(user, links), session=session)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def record(
    ctx: ApiContext,
    request: Request,
    *,
    user_id: int | None,
    action: AuditAction,
    outcome: Outcome = Outcome.OK,
    site: str | None = None,
    resident: str | None = None,
    target: str | None = None,
) -> None:
    """Append an entry about ``request`` to the audit log."""
    await ctx.audit.record(
        AuditEvent(
            time=ctx.clock.now(),
            user_id=user_id,
            action=action,
            outcome=outcome,
            endpoint=endpoint_of(request),
            site=site,
            resident=resident,
            target=target,
            address=client_address(request),
        )
    )


async def authorize(
    ctx: ApiContext,
    request: Request,
    caller: Caller,
    action: Action,
    resource: Resource,
    *,
    denied_status: int = status.HTTP_403_FORBIDDEN,
) -> None:
    """Ask the policy; a refusal is audited, logged with ids and raised as ``denied_status``
    (403; 404 where the thing must not be known to exist, see :func:`account_access`)."""
    decision = decide(caller.principal, action, resource)
    if decision:
        return
    logger.info(
        "access denied user_id=%d action=%s site=%s resident=%s reason=%s",
        caller.user.id,
        action.value,
        resource.site,
        resource.resident,
        decision.reason,
    )
    await record(
        ctx,
        request,
        user_id=caller.user.id,
        action=AuditAction.READ if request.method in SAFE_METHODS else AuditAction.CHANGE,
        outcome=Outcome.DENIED,
        site=resource.site,
        resident=resource.resident,
        target=None if resource.owner is None else str(resource.owner),
    )
    detail = decision.reason if denied_status == status.HTTP_403_FORBIDDEN else "not found"
    raise HTTPException(denied_status, detail)


# -- dependency factories -----------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class SiteAccess:
    caller: Caller
    site: SiteInfo


@dataclass(slots=True, frozen=True)
class ResidentAccess:
    caller: Caller
    resident: ResidentInfo


@dataclass(slots=True, frozen=True)
class AccountAccess:
    caller: Caller
    account: User


def site_access(action: Action) -> Callable[..., Awaitable[SiteAccess]]:
    """A dependency: the caller may do ``action`` on the ``{site}`` of the path (403), and
    the site exists (404). Audited as a read when ``action`` is in :data:`AUDITED_READS`."""

    async def dependency(
        request: Request, site: SitePath, caller: CurrentCaller, ctx: Context
    ) -> SiteAccess:
        await authorize(ctx, request, caller, action, Resource.of_site(site))
        info = await ctx.directory.site(site)
        if info is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
        if action in AUDITED_READS:
            await record(ctx, request, user_id=caller.user.id, action=AuditAction.READ, site=site)
        return SiteAccess(caller, info)

    return dependency


def resident_access(action: Action) -> Callable[..., Awaitable[ResidentAccess]]:
    """A dependency: the caller may do ``action`` on the ``{site}``/``{resident}`` of the path
    (403), and the resident exists (404). Audited as a read when ``action`` is in
    :data:`AUDITED_READS`."""

    async def dependency(
        request: Request,
        site: SitePath,
        resident: ResidentPath,
        caller: CurrentCaller,
        ctx: Context,
    ) -> ResidentAccess:
        await authorize(ctx, request, caller, action, Resource.of_resident(site, resident))
        info = await ctx.directory.resident(site, resident)
        if info is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such resident")
        if action in AUDITED_READS:
            await record(
                ctx,
                request,
                user_id=caller.user.id,
                action=AuditAction.READ,
                site=site,
                resident=resident,
            )
        return ResidentAccess(caller, info)

    return dependency


async def manage_accounts(request: Request, caller: CurrentCaller, ctx: Context) -> Caller:
    """A dependency: the caller is an administrator (403 otherwise)."""
    await authorize(ctx, request, caller, Action.MANAGE_USERS, Resource.of_accounts(()))
    return caller


AccountManager = Annotated[Caller, Depends(manage_accounts)]


async def account_access(
    request: Request,
    user_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    caller: AccountManager,
    ctx: Context,
) -> AccountAccess:
    """A dependency: the ``{user_id}`` of the path is an account the caller administers.
    Non-administrators get 403 before anything is looked up; for an administrator an account
    outside their sites is not found (404), like one that does not exist."""
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
    return AccountAccess(caller, account)
