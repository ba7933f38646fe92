"""cloud.api.policy: a table of known decisions, and properties over random principals and
resources (family never reaches an unlinked resident, nobody reaches outside their sites)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.api.policy import Action, Principal, ResidentRef, Resource, Role, decide

A, B = "home-a", "home-b"
R1 = ResidentRef(A, "r01")
R2 = ResidentRef(A, "r02")

ADMIN = Principal(1, "admin", Role.ADMIN, frozenset({A}))
STAFF = Principal(2, "staff", Role.STAFF, frozenset({A}))
STAFF_B = Principal(3, "staff-b", Role.STAFF, frozenset({B}))
FAMILY = Principal(4, "family", Role.FAMILY, frozenset({A}), frozenset({R1}))
CONTACT = Principal(5, "contact", Role.FAMILY, frozenset({A}), frozenset({R1}), frozenset({R1}))
UNLINKED = Principal(6, "unlinked", Role.FAMILY, frozenset({A}))

site_a = Resource.of_site(A)
r01 = Resource.of_resident(A, "r01")
r02 = Resource.of_resident(A, "r02")
b_r01 = Resource.of_resident(B, "r01")

TABLE = [
    # (principal, action, resource, allowed)
    (ADMIN, Action.VIEW_SITE, site_a, True),
    (ADMIN, Action.VIEW_SITE, Resource.of_site(B), False),
    (STAFF, Action.LIST_SITE, site_a, True),
    (STAFF_B, Action.LIST_SITE, site_a, False),
    (FAMILY, Action.VIEW_SITE, site_a, True),
    (FAMILY, Action.VIEW_SITE, Resource.of_site(B), False),
    (UNLINKED, Action.VIEW_SITE, site_a, False),
    (FAMILY, Action.LIST_SITE, site_a, False),
    (STAFF, Action.READ_RESIDENT, r01, True),
    (STAFF, Action.READ_RESIDENT, b_r01, False),
    (STAFF, Action.READ_RESIDENT, site_a, False),  # no resident given
    (STAFF, Action.WRITE_RESIDENT, r01, True),
    (STAFF, Action.WRITE_RESIDENT, site_a, False),
    (FAMILY, Action.READ_RESIDENT, r01, True),
    (FAMILY, Action.READ_RESIDENT, r02, False),
    (FAMILY, Action.READ_RESIDENT, b_r01, False),  # same resident id, other site
    (FAMILY, Action.WRITE_RESIDENT, r01, False),
    (ADMIN, Action.VIEW_LINKS, r01, True),
    (STAFF, Action.VIEW_LINKS, r01, False),
    (FAMILY, Action.VIEW_LINKS, r01, False),
    (CONTACT, Action.VIEW_LINKS, r01, True),
    (CONTACT, Action.VIEW_LINKS, r02, False),
    (ADMIN, Action.GRANT_LINK, r01, True),
    (ADMIN, Action.GRANT_LINK, b_r01, False),
    (CONTACT, Action.GRANT_LINK, r01, False),
    (ADMIN, Action.REVOKE_LINK, Resource.of_link(A, "r01", 99), True),
    (STAFF, Action.REVOKE_LINK, Resource.of_link(A, "r01", 99), False),
    (FAMILY, Action.REVOKE_LINK, Resource.of_link(A, "r01", FAMILY.user_id), True),
    (FAMILY, Action.REVOKE_LINK, Resource.of_link(A, "r01", 99), False),
    (FAMILY, Action.REVOKE_LINK, Resource.of_link(A, "r02", FAMILY.user_id), False),
    (CONTACT, Action.REVOKE_LINK, Resource.of_link(A, "r01", 99), True),
    (CONTACT, Action.REVOKE_LINK, Resource.of_link(A, "r02", 99), False),
    (ADMIN, Action.MANAGE_USERS, Resource.of_accounts(()), True),
    (ADMIN, Action.MANAGE_USERS, Resource.of_accounts({A}), True),
    (ADMIN, Action.MANAGE_USERS, Resource.of_accounts({A, B}), False),
    (STAFF, Action.MANAGE_USERS, Resource.of_accounts(()), False),
    (ADMIN, Action.READ_AUDIT, site_a, True),
    (ADMIN, Action.READ_AUDIT, Resource.of_site(B), False),
    (ADMIN, Action.READ_AUDIT, Resource(), False),
    (STAFF, Action.READ_AUDIT, site_a, False),
    (FAMILY, Action.CHANGE_OWN_PASSWORD, Resource.of_accounts({A}, FAMILY.user_id), True),
    (ADMIN, Action.CHANGE_OWN_PASSWORD, Resource.of_accounts({A}, STAFF.user_id), False),
]


@pytest.mark.parametrize(
    ("principal", "action", "resource", "allowed"),
    TABLE,
    ids=[f"{p.username}-{a.value}-{i}" for i, (p, a, _, _) in enumerate(TABLE)],
)
def test_known_decisions(
    principal: Principal, action: Action, resource: Resource, allowed: bool
) -> None:
    decision = decide(principal, action, resource)
    assert decision.allowed is allowed
    assert bool(decision) is allowed
    assert decision.reason


def test_every_action_has_a_rule() -> None:
    for action in Action:
        for principal in (ADMIN, STAFF, FAMILY, CONTACT):
            decide(principal, action, Resource.of_link(A, "r01", principal.user_id))


# -- properties -------------------------------------------------------------------------------

ids = st.sampled_from(["home-a", "home-b", "home-c"])
residents = st.sampled_from(["r01", "r02", "r03"])
refs = st.builds(ResidentRef, ids, residents)


@st.composite
def principals(draw: st.DrawFn) -> Principal:
    role = draw(st.sampled_from(Role))
    links = frozenset(draw(st.sets(refs, max_size=3))) if role is Role.FAMILY else frozenset()
    contacts = frozenset(draw(st.sets(st.sampled_from(sorted(links))))) if links else frozenset()
    return Principal(
        user_id=draw(st.integers(1, 5)),
        username="someone",
        role=role,
        sites=frozenset(draw(st.sets(ids, max_size=3))),
        links=links,
        contacts=contacts,
    )


resources = st.builds(
    Resource,
    site=st.none() | ids,
    resident=st.none() | residents,
    owner=st.none() | st.integers(1, 5),
    sites=st.frozensets(ids, max_size=3),
)


@given(principals(), st.sampled_from(Action), resources)
def test_family_never_reaches_a_resident_it_is_not_linked_to(
    principal: Principal, action: Action, resource: Resource
) -> None:
    # VIEW_SITE is about the site only (its name), CHANGE_OWN_PASSWORD about the account.
    if action in (Action.VIEW_SITE, Action.CHANGE_OWN_PASSWORD):
        return
    ref = resource.ref
    if principal.role is Role.FAMILY and ref is not None and ref not in principal.links:
        assert not decide(principal, action, resource)


@given(principals(), st.sampled_from(Action), resources)
def test_family_never_writes_lists_or_manages(
    principal: Principal, action: Action, resource: Resource
) -> None:
    if principal.role is Role.FAMILY and action in (
        Action.LIST_SITE,
        Action.WRITE_RESIDENT,
        Action.GRANT_LINK,
        Action.MANAGE_USERS,
        Action.READ_AUDIT,
    ):
        assert not decide(principal, action, resource)


@given(principals(), st.sampled_from(Action), resources)
def test_staff_and_admins_never_reach_outside_their_sites(
    principal: Principal, action: Action, resource: Resource
) -> None:
    if principal.role is Role.FAMILY or action is Action.CHANGE_OWN_PASSWORD:
        return
    if not decide(principal, action, resource):
        return
    if action is Action.MANAGE_USERS:
        assert resource.sites <= principal.sites
    else:
        assert resource.site in principal.sites


@given(principals(), st.sampled_from(Action), resources)
def test_only_admins_manage_accounts_and_read_the_audit_log(
    principal: Principal, action: Action, resource: Resource
) -> None:
    if action in (Action.MANAGE_USERS, Action.READ_AUDIT, Action.GRANT_LINK) and decide(
        principal, action, resource
    ):
        assert principal.role is Role.ADMIN
