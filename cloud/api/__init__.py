"""The CareWatch HTTP API (FastAPI): accounts, sessions, roles, site and resident scoping, the
audit log, and the read endpoints for sites, residents, devices and vital signs.

* :mod:`cloud.api.policy` decides who may do what (pure); :mod:`cloud.api.access` holds the
  FastAPI dependencies every endpoint goes through.
* :mod:`cloud.api.accounts`, :mod:`cloud.api.sessions`, :mod:`cloud.api.audit`: SQLite
  behind small interfaces; :mod:`cloud.api.passwords`: policy and argon2id.
* :mod:`cloud.api.directory` (residents from the site files), :mod:`cloud.api.devices`
  (device status from the gateways).
* :func:`create_app` builds the app; :mod:`cloud.api.server` runs it
  (``python -m cloud.api serve --config FILE``).
"""

from cloud.api.access import Caller, CurrentCaller, authorize, resident_access, site_access
from cloud.api.accounts import (
    AccountStore,
    FamilyLink,
    SqliteAccountStore,
    User,
    create_first_admin,
    create_user,
    ensure_admin,
)
from cloud.api.app import API_PREFIX, OPENAPI_URL, create_app
from cloud.api.audit import AuditAction, AuditEntry, AuditEvent, AuditLog, SqliteAuditLog
from cloud.api.clock import Clock, SystemClock
from cloud.api.devices import DeviceStatus, DeviceStatusBoard, DeviceStatusSource
from cloud.api.directory import ResidentDirectory, SiteFileDirectory, StaticDirectory
from cloud.api.errors import ApiError
from cloud.api.policy import Action, Decision, Principal, Resource, Role, decide
from cloud.api.server import ApiServer, serve
from cloud.api.sessions import SessionStore, SqliteSessionStore
from cloud.api.settings import ApiSettings

__all__ = [
    "API_PREFIX",
    "OPENAPI_URL",
    "AccountStore",
    "Action",
    "ApiError",
    "ApiServer",
    "ApiSettings",
    "AuditAction",
    "AuditEntry",
    "AuditEvent",
    "AuditLog",
    "Caller",
    "Clock",
    "CurrentCaller",
    "Decision",
    "DeviceStatus",
    "DeviceStatusBoard",
    "DeviceStatusSource",
    "FamilyLink",
    "Principal",
    "ResidentDirectory",
    "Resource",
    "Role",
    "SessionStore",
    "SiteFileDirectory",
    "SqliteAccountStore",
    "SqliteAuditLog",
    "SqliteSessionStore",
    "StaticDirectory",
    "SystemClock",
    "User",
    "authorize",
    "create_app",
    "create_first_admin",
    "create_user",
    "decide",
    "ensure_admin",
    "resident_access",
    "serve",
    "site_access",
]
