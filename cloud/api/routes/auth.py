"""``/auth``: log in and out, who am I, change my password.

Login (``POST /auth/login``, JSON only) answers 401 with the same words and, as near as can
be, the same time whether the username exists, the account is disabled or the password is
wrong (a dummy hash is checked for unknown usernames). After ``max_failures_per_user`` failures
for a username, or ``max_failures_per_address`` from a client address, within ``window_s``,
logins are refused with 429 and ``Retry-After`` (seconds) without looking at the password.
A successful login always starts a new session (any session of the request's cookie ends).
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from cloud.api.access import (
    Caller,
    Context,
    CurrentCaller,
    authorize,
    client_address,
    record,
)
from cloud.api.accounts import User
from cloud.api.audit import AuditAction, Outcome
from cloud.api.context import ApiContext
from cloud.api.models import ErrorOut, LoginIn, PasswordChangeIn, SessionOut, UserOut
from cloud.api.policy import Action, Resource, Role
from cloud.api.sessions import Session

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/auth", tags=["auth"])

_WRONG = "wrong username or password"
_MAX_USERNAME_KEY = 128


def _require_json(request: Request) -> None:
    # A cross-site form can post urlencoded or multipart bodies without a CORS preflight,
    # never application/json: refusing other types closes login CSRF.
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send application/json")


async def _session_out(ctx: ApiContext, user: User, session: Session) -> SessionOut:
    links = await ctx.accounts.links(user.id) if user.role is Role.FAMILY else []
    settings = ctx.settings.session
    return SessionOut(
        user=UserOut.of(user, links),
        csrf_token=session.csrf_token,
        expires_at=session.expires(settings),
        absolute_expires_at=session.absolute_expiry(settings),
    )


def _too_many(seconds: float) -> HTTPException:
    wait = max(1, math.ceil(seconds))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "too many failed logins: try again later",
        headers={"Retry-After": str(wait)},
    )


@router.post(
    "/login",
    dependencies=[Depends(_require_json)],
    responses={
        401: {"model": ErrorOut, "description": "Wrong username or password."},
        429: {"model": ErrorOut, "description": "Too many failures; see Retry-After."},
    },
)
async def login(request: Request, body: LoginIn, response: Response, ctx: Context) -> SessionOut:
    """Start a session: sets the session cookie and returns the CSRF token."""
    now = ctx.clock.now()
    username = body.username.strip().lower()[:_MAX_USERNAME_KEY]
    address = client_address(request) or "unknown"
    waits = [
        wait
        for wait in (
            ctx.user_failures.retry_after(username, now),
            ctx.address_failures.retry_after(address, now),
        )
        if wait is not None
    ]
    if waits:
        await record(
            ctx, request, user_id=None, action=AuditAction.LOGIN_LIMITED, outcome=Outcome.DENIED
        )
        logger.info("login refused: too many failures")
        raise _too_many(max(waits).total_seconds())

    password = body.password.get_secret_value()
    credentials = await ctx.accounts.credentials(username)
    if credentials is None or credentials.user.disabled:
        verification = await ctx.passwords.verify_dummy(password)
    else:
        verification = await ctx.passwords.verify(credentials.password_hash, password)
    if credentials is None or credentials.user.disabled or not verification.ok:
        ctx.user_failures.failed(username, now)
        ctx.address_failures.failed(address, now)
        user_id = None if credentials is None else credentials.user.id
        await record(
            ctx, request, user_id=user_id, action=AuditAction.LOGIN_FAILED, outcome=Outcome.DENIED
        )
        logger.info("login failed user_id=%s", user_id)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, _WRONG)

    user = credentials.user
    if verification.rehash is not None:
        await ctx.accounts.set_password_hash(user.id, verification.rehash, now=now, changed=False)
        logger.info("password re-hashed with the current parameters user_id=%d", user.id)
    ctx.user_failures.succeeded(username)
    settings = ctx.settings.session
    previous = request.cookies.get(settings.cookie_name)
    if previous:
        old = await ctx.sessions.get(previous)
        if old is not None:
            await ctx.sessions.revoke(old.id)
    token, session = await ctx.sessions.create(user.id, now=now)
    response.set_cookie(
        settings.cookie_name,
        token,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite=settings.same_site,
    )
    await record(ctx, request, user_id=user.id, action=AuditAction.LOGIN)
    logger.info("login user_id=%d", user.id)
    return await _session_out(ctx, user, session)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, caller: CurrentCaller, ctx: Context) -> Response:
    """End the session and clear its cookie."""
    await ctx.sessions.revoke(caller.session.id)
    await record(ctx, request, user_id=caller.user.id, action=AuditAction.LOGOUT)
    settings = ctx.settings.session
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        settings.cookie_name,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite=settings.same_site,
    )
    return response


@router.get("/me")
async def me(caller: CurrentCaller, ctx: Context) -> SessionOut:
    """The account of the session, its links, and the session's CSRF token and expiry."""
    return await _session_out(ctx, caller.user, caller.session)


async def _own_password(request: Request, caller: CurrentCaller, ctx: Context) -> Caller:
    await authorize(
        ctx,
        request,
        caller,
        Action.CHANGE_OWN_PASSWORD,
        Resource.of_accounts(caller.user.sites, owner=caller.user.id),
    )
    return caller


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"model": ErrorOut, "description": "The current password is wrong."},
        422: {"model": ErrorOut, "description": "The new password is refused by the policy."},
        429: {"model": ErrorOut, "description": "Too many failures; see Retry-After."},
    },
)
async def change_password(
    request: Request,
    body: PasswordChangeIn,
    caller: Annotated[Caller, Depends(_own_password)],
    ctx: Context,
) -> Response:
    """Change one's own password (every other session of the account ends)."""
    now = ctx.clock.now()
    user = caller.user
    wait = ctx.user_failures.retry_after(user.username, now)
    if wait is not None:
        raise _too_many(wait.total_seconds())
    credentials = await ctx.accounts.credentials(user.username)
    if credentials is None:  # deleted a moment ago
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in")
    verification = await ctx.passwords.verify(
        credentials.password_hash, body.current_password.get_secret_value()
    )
    if not verification.ok:
        ctx.user_failures.failed(user.username, now)
        await record(
            ctx,
            request,
            user_id=user.id,
            action=AuditAction.PASSWORD_CHANGED,
            outcome=Outcome.DENIED,
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
    new_password = body.new_password.get_secret_value()
    ctx.passwords.check(new_password, username=user.username)
    await ctx.accounts.set_password_hash(user.id, await ctx.passwords.hash(new_password), now=now)
    ended = await ctx.sessions.revoke_user(user.id, keep=caller.session.id)
    await record(ctx, request, user_id=user.id, action=AuditAction.PASSWORD_CHANGED)
    logger.info("password changed user_id=%d other_sessions_ended=%d", user.id, ended)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
