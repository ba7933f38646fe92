"""The FastAPI application: :func:`create_app` wires the routers to what they use.

Everything is passed in (the reading store, accounts, sessions, audit log, directory, device
status, clock): the app holds no global state, and tests run it on real SQLite files and a
real server. Errors of the layers below map to HTTP statuses here, in one place; validation
errors are returned without the input that failed (it may be a password or health data).

Every response carries ``Cache-Control: no-store`` (health data must not sit in a shared
cache), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY``, and over Secure cookies ``Strict-Transport-Security``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.api.access import endpoint_of
from cloud.api.accounts import AccountStore
from cloud.api.alertdesk import AlertDesk
from cloud.api.audit import AuditLog
from cloud.api.clock import Clock, SystemClock
from cloud.api.context import ApiContext
from cloud.api.devices import DeviceStatusSource
from cloud.api.directory import ResidentDirectory
from cloud.api.errors import (
    AlreadyLinkedError,
    DirectoryError,
    HistoryRangeError,
    InvalidAccountError,
    LastAdminError,
    PasswordRejectedError,
    StorageError,
    UsernameTakenError,
)
from cloud.api.routes import ROUTERS
from cloud.api.sessions import SessionStore
from cloud.api.settings import ApiSettings
from cloud.api.web import dashboard_router
from cloud.errors import StoreRejectedError, StoreUnavailableError, StoreValueError
from cloud.store.base import ReadingStore

__all__ = ["API_PREFIX", "OPENAPI_URL", "create_app"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
OPENAPI_URL = "/api/openapi.json"
VERSION = "1.0.0"


class SecurityHeaders:
    """Adds the headers of the module docstring to every HTTP response."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self._app = app
        headers = [
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if hsts:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self._app(scope, receive, with_headers)


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _detail(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)


def _install_error_handlers(app: FastAPI) -> None:
    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}
            for error in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        return _detail(status.HTTP_409_CONFLICT, str(exc))

    async def unprocessable(request: Request, exc: Exception) -> JSONResponse:
        return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.warning(
            "unavailable endpoint=%s error=%s: %s",
            endpoint_of(request),
            type(exc).__name__,
            exc,
        )
        return JSONResponse(
            {"detail": "temporarily unavailable: try again"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )

    handlers: tuple[tuple[tuple[type[Exception], ...], Handler], ...] = (
        ((UsernameTakenError, AlreadyLinkedError, LastAdminError), conflict),
        (
            (PasswordRejectedError, InvalidAccountError, HistoryRangeError, StoreValueError),
            unprocessable,
        ),
        ((StorageError, StoreUnavailableError, StoreRejectedError, DirectoryError), unavailable),
    )
    for kinds, handler in handlers:
        for kind in kinds:
            app.add_exception_handler(kind, handler)
    app.add_exception_handler(RequestValidationError, validation)


def create_app(
    settings: ApiSettings,
    *,
    store: ReadingStore,
    accounts: AccountStore,
    sessions: SessionStore,
    audit: AuditLog,
    directory: ResidentDirectory,
    devices: DeviceStatusSource,
    clock: Clock | None = None,
    alerts: AlertDesk | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The CareWatch API over the given parts (all opened by the caller, who closes them).

    ``alerts`` is the alert service when it runs in this process (the alert, NEWS2 and
    staff-entry endpoints answer 503 without it). ``routers`` are further areas, included
    under ``/api/v1`` next to the built-in ones; they authorise with :mod:`cloud.api.access`.
    OpenAPI is served at ``/api/openapi.json`` and its viewer at ``/api/docs``.
    """
    app = FastAPI(
        title="CareWatch API",
        version=VERSION,
        summary="Residents, devices, vital signs, accounts and the audit log.",
        openapi_url=OPENAPI_URL,
        docs_url="/api/docs",
        redoc_url=None,
        max_body_size=settings.max_body_bytes,
    )
    app.state.carewatch = ApiContext.build(
        settings,
        store=store,
        accounts=accounts,
        sessions=sessions,
        audit=audit,
        directory=directory,
        devices=devices,
        clock=clock if clock is not None else SystemClock(),
        alerts=alerts,
    )
    for router in (*ROUTERS, *routers):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(dashboard_router())
    _install_error_handlers(app)
    app.add_middleware(SecurityHeaders, hsts=settings.session.cookie_secure)
    return app
