"""The dashboard's routes: the HTML shells of :mod:`cloud.api.web.pages` and the static files
of :mod:`cloud.api.web.assets`, outside ``/api/v1`` and out of the OpenAPI document.

The shells and files hold no data, so they are served without a session; every page's
module asks ``/api/v1/auth/me`` first and goes to ``/login`` on 401. HTML responses carry
:data:`CONTENT_SECURITY_POLICY`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from cloud.api.web.assets import NAME_PATTERN, Assets
from cloud.api.web.pages import PAGES, render
from vitals.topics import ID_PATTERN

__all__ = ["CONTENT_SECURITY_POLICY", "dashboard_router"]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
"""Everything from this origin only; no inline script or style, no framing."""

_HTML_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}

SitePath = Annotated[str, Path(pattern=f"^{ID_PATTERN}$")]
ResidentPath = Annotated[str, Path(pattern=f"^{ID_PATTERN}$")]
AssetName = Annotated[str, Path(pattern=NAME_PATTERN)]


def _page(name: str, data: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(render(PAGES[name], data), headers=_HTML_HEADERS)


def dashboard_router(assets: Assets | None = None) -> APIRouter:
    """The dashboard's routes over ``assets`` (default: the package's static files, read
    now). Include it in the app without a prefix."""
    files = assets if assets is not None else Assets.from_package()
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> RedirectResponse:
        # The wall sends family accounts on to their own page.
        return RedirectResponse("/wall", status_code=status.HTTP_303_SEE_OTHER)

    @router.get("/login")
    async def login() -> HTMLResponse:
        return _page("login")

    @router.get("/wall")
    async def wall() -> HTMLResponse:
        return _page("wall")

    @router.get("/alerts")
    async def alerts() -> HTMLResponse:
        return _page("alerts")

    @router.get("/resident/{site}/{resident}")
    async def resident(site: SitePath, resident: ResidentPath) -> HTMLResponse:
        return _page("resident", {"site": site, "resident": resident})

    @router.get("/family")
    async def family() -> HTMLResponse:
        return _page("family")

    @router.get("/family/{site}/{resident}")
    async def relative(site: SitePath, resident: ResidentPath) -> HTMLResponse:
        return _page("family", {"site": site, "resident": resident})

    @router.get("/admin")
    async def admin() -> HTMLResponse:
        return _page("admin")

    @router.get("/static/{name}")
    async def static(request: Request, name: AssetName) -> Response:
        asset = files.get(name)
        if asset is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if asset.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return router


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}
