"""The API's routers, one per area, each included under ``/api/v1`` by
:func:`cloud.api.app.create_app`. Routers for alerts, staff entries and exports are added
the same way (``create_app(..., routers=[...])``) and authorise through
:mod:`cloud.api.access`."""

from cloud.api.routes import alerts, audit, auth, exports, links, sites, users, vitals

ROUTERS = (
    auth.router,
    sites.router,
    vitals.router,
    alerts.router,
    links.router,
    users.router,
    audit.router,
    exports.router,
)

__all__ = ["ROUTERS"]
