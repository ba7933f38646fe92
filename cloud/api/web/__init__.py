"""The web dashboard, served by the API's own app: no build step, no CDN.

Server-rendered HTML shells (:mod:`cloud.api.web.pages`) that load small vanilla ES modules
and one stylesheet from ``/static/`` (:mod:`cloud.api.web.assets`); the modules read
everything through the ``/api/v1`` endpoints with the session cookie and the CSRF header, so
the pages hold no data and need no session of their own. Pages: ``/login``, ``/wall`` (staff
wall of resident tiles and the live alert queue), ``/alerts``, ``/resident/{site}/{resident}``
(charts, NEWS2, the resident's alerts and their trail), ``/family`` and
``/family/{site}/{resident}`` (plain language), ``/admin``.

Every HTML response carries :data:`CONTENT_SECURITY_POLICY` (``default-src 'self'``, no
inline script or style), static files are revalidated by ``ETag``. Include
:func:`dashboard_router` in the app without a prefix.
"""

from cloud.api.web.assets import Asset, Assets
from cloud.api.web.dashboard import CONTENT_SECURITY_POLICY, dashboard_router
from cloud.api.web.pages import PAGES, Page, render

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PAGES",
    "Asset",
    "Assets",
    "Page",
    "dashboard_router",
    "render",
]
