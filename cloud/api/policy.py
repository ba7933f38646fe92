"""Who may do what: the one place that decides (pure).

A :class:`Principal` (the logged-in user: role, sites, linked residents) asks to do an
:class:`Action` on a :class:`Resource` (a site, a resident of a site, a family link, an
account); :func:`decide` answers with a :class:`Decision`. Every HTTP endpoint reaches it
through the dependencies in :mod:`cloud.api.access`; nothing else decides.

Roles
    ``admin``: everything within their sites, and the accounts whose sites are all among
    theirs. ``staff``: read and write residents' data within their sites. ``family``: read
    the data of the residents they are linked to (active links only), nothing of anyone
    else, and change nothing but their own password and their own links (a family member
    marked as the resident's *contact* may also see and revoke the resident's other links).

Residents are identified by ``(site, resident)``: resident ids are unique within a site only.

Not leaking existence: the decision depends only on the principal and the identifiers asked
for, never on whether the thing exists. A site or resident outside the principal's scope is
therefore refused (403) whether it exists or not, and "not found" (404) is only ever said
within an allowed scope. Accounts, which are not site data, are the exception: an account
outside an admin's sites is reported as not found, like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Action",
    "Decision",
    "Principal",
    "ResidentRef",
    "Resource",
    "Role",
    "decide",
]


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    FAMILY = "family"


class Action(StrEnum):
    """What a request wants to do. Routers added later pick the closest; add one here (with
    its rule in :func:`decide` and rows in the policy tests) rather than deciding elsewhere."""

    VIEW_SITE = "view_site"
    """See a site's name and time zone (the family of a resident there may)."""
    LIST_SITE = "list_site"
    """Site-wide listings: residents, devices and their status, site-wide alerts."""
    READ_RESIDENT = "read_resident"
    """A resident's record and health data (latest, history, NEWS2, alerts, exports)."""
    WRITE_RESIDENT = "write_resident"
    """Change a resident's data: acknowledge or resolve alerts, staff entries."""
    WRITE_SITE = "write_site"
    """Act on what concerns no one resident: acknowledge or resolve a technical alert about
    a gateway or an unassigned device."""
    VIEW_LINKS = "view_links"
    """See who is linked to a resident."""
    GRANT_LINK = "grant_link"
    """Link a family account to a resident."""
    REVOKE_LINK = "revoke_link"
    """End a family link."""
    MANAGE_USERS = "manage_users"
    """Create, list, see and delete accounts whose sites are all in the resource's."""
    EXPORT_RESEARCH = "export_research"
    """A pseudonymised export of a site's readings for research (admin only)."""
    READ_AUDIT = "read_audit"
    CHANGE_OWN_PASSWORD = "change_own_password"


@dataclass(slots=True, frozen=True, order=True)
class ResidentRef:
    """A resident: ids are unique within a site only."""

    site: str
    resident: str


@dataclass(slots=True, frozen=True)
class Principal:
    """The user a request acts for, as loaded for that request (links revoked a moment ago
    are already gone)."""

    user_id: int
    username: str
    role: Role
    sites: frozenset[str]
    links: frozenset[ResidentRef] = frozenset()
    """Residents this (family) account has an active link to."""
    contacts: frozenset[ResidentRef] = frozenset()
    """Residents whose contact this (family) account is: a subset of ``links``."""

    @property
    def link_sites(self) -> frozenset[str]:
        return frozenset(ref.site for ref in self.links)


@dataclass(slots=True, frozen=True)
class Resource:
    """What an action is about; unset fields are not part of it."""

    site: str | None = None
    resident: str | None = None
    owner: int | None = None
    """The account the thing belongs to (a family link's account; an account itself)."""
    sites: frozenset[str] = frozenset()
    """An account's sites (for ``MANAGE_USERS``)."""

    @classmethod
    def of_site(cls, site: str) -> Resource:
        return cls(site=site)

    @classmethod
    def of_resident(cls, site: str, resident: str) -> Resource:
        return cls(site=site, resident=resident)

    @classmethod
    def of_link(cls, site: str, resident: str, owner: int) -> Resource:
        return cls(site=site, resident=resident, owner=owner)

    @classmethod
    def of_accounts(cls, sites: Iterable[str], owner: int | None = None) -> Resource:
        return cls(owner=owner, sites=frozenset(sites))

    @property
    def ref(self) -> ResidentRef | None:
        if self.site is None or self.resident is None:
            return None
        return ResidentRef(self.site, self.resident)


@dataclass(slots=True, frozen=True)
class Decision:
    allowed: bool
    reason: str
    """Why, in a few words without names or health data (safe to log and to return)."""

    def __bool__(self) -> bool:
        return self.allowed


_ALLOW = Decision(True, "allowed")


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def _in_sites(principal: Principal, resource: Resource) -> Decision:
    if resource.site is None:
        return _deny("no site given")
    if resource.site in principal.sites:
        return _ALLOW
    return _deny("outside the account's sites")


def decide(principal: Principal, action: Action, resource: Resource) -> Decision:
    """Whether ``principal`` may do ``action`` on ``resource``."""
    role = principal.role
    if action is Action.CHANGE_OWN_PASSWORD:
        if resource.owner == principal.user_id:
            return _ALLOW
        return _deny("only one's own password")
    if action is Action.VIEW_SITE:
        if role is Role.FAMILY:
            if resource.site is not None and resource.site in principal.link_sites:
                return _ALLOW
            return _deny("no linked resident at this site")
        return _in_sites(principal, resource)
    if action in (Action.LIST_SITE, Action.WRITE_RESIDENT, Action.WRITE_SITE):
        if role is Role.FAMILY:
            return _deny("family accounts see only their linked residents")
        if action is Action.WRITE_RESIDENT and resource.ref is None:
            return _deny("no resident given")
        return _in_sites(principal, resource)
    if action is Action.READ_RESIDENT:
        ref = resource.ref
        if ref is None:
            return _deny("no resident given")
        if role is Role.FAMILY:
            if ref in principal.links:
                return _ALLOW
            return _deny("not linked to this resident")
        return _in_sites(principal, resource)
    if action in (Action.VIEW_LINKS, Action.REVOKE_LINK, Action.GRANT_LINK):
        ref = resource.ref
        if ref is None:
            return _deny("no resident given")
        if role is Role.ADMIN:
            return _in_sites(principal, resource)
        if role is Role.FAMILY and action is not Action.GRANT_LINK:
            if ref in principal.contacts:
                return _ALLOW
            if (
                action is Action.REVOKE_LINK
                and resource.owner == principal.user_id
                and ref in principal.links
            ):
                return _ALLOW
            return _deny("only the resident's contact or the link's own account")
        return _deny("only an admin or the resident's contact")
    if action is Action.MANAGE_USERS:
        if role is not Role.ADMIN:
            return _deny("only an admin manages accounts")
        if resource.sites <= principal.sites:
            return _ALLOW
        return _deny("the account has sites outside the admin's")
    if action is Action.READ_AUDIT:
        if role is not Role.ADMIN:
            return _deny("only an admin reads the audit log")
        return _in_sites(principal, resource)
    if action is Action.EXPORT_RESEARCH:
        if role is not Role.ADMIN:
            return _deny("only an admin exports research data")
        return _in_sites(principal, resource)
    raise AssertionError(f"no rule for {action}")  # pragma: no cover
