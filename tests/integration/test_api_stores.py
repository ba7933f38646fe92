"""The API's SQLite stores on real files: accounts and family links, sessions, the audit log,
and the first-administrator rules."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud.api import (
    Role,
    SqliteAccountStore,
    SqliteAuditLog,
    SqliteSessionStore,
    create_first_admin,
    create_user,
    ensure_admin,
)
from cloud.api.accounts import principal_of
from cloud.api.audit import AuditAction, AuditEvent, AuditQuery, Outcome
from cloud.api.errors import (
    AccountError,
    AlreadyLinkedError,
    InvalidAccountError,
    LastAdminError,
    NoAdminError,
    PasswordRejectedError,
    StorageError,
    UsernameTakenError,
)
from cloud.api.passwords import Passwords
from cloud.api.policy import ResidentRef
from cloud.api.sessions import token_id
from cloud.api.settings import PasswordSettings, SessionSettings

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
FAST = PasswordSettings(time_cost=1, memory_kib=64, parallelism=1)


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[SqliteAccountStore]:
    async with SqliteAccountStore(tmp_path / "api.sqlite3") as store:
        yield store


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(FAST)


async def make(
    accounts: SqliteAccountStore,
    passwords: Passwords,
    username: str,
    role: Role = Role.STAFF,
    sites: tuple[str, ...] = ("home-a",),
) -> int:
    user = await create_user(
        accounts,
        passwords,
        username=username,
        password=PASSWORD,
        role=role,
        sites=sites,
        now=T0,
    )
    return user.id


# -- accounts -------------------------------------------------------------------------------


async def test_accounts_round_trip_and_survive_a_reopen(
    tmp_path: Path, passwords: Passwords
) -> None:
    path = tmp_path / "api.sqlite3"
    async with SqliteAccountStore(path) as accounts:
        user = await create_user(
            accounts,
            passwords,
            username="Nurse.Jo",
            password=PASSWORD,
            role=Role.STAFF,
            sites=["home-b", "home-a"],
            now=T0,
        )
    async with SqliteAccountStore(path) as accounts:
        again = await accounts.user(user.id)
        credentials = await accounts.credentials("nurse.jo")

    assert again == user
    assert (user.username, user.role) == ("nurse.jo", Role.STAFF)
    assert user.sites == frozenset({"home-a", "home-b"})
    assert (user.created, user.password_changed, user.disabled) == (T0, T0, False)
    assert credentials is not None
    assert credentials.user == user
    assert credentials.password_hash.startswith("$argon2id$")
    assert (await passwords.verify(credentials.password_hash, PASSWORD)).ok


@pytest.mark.parametrize(
    ("username", "sites", "field"),
    [
        ("ab", ["home-a"], "username"),
        ("has space", ["home-a"], "username"),
        ("-leading", ["home-a"], "username"),
        ("ok-name", [], "sites"),
        ("ok-name", ["bad site"], "sites"),
    ],
)
async def test_invalid_accounts_are_refused(
    accounts: SqliteAccountStore, passwords: Passwords, username: str, sites: list[str], field: str
) -> None:
    with pytest.raises(InvalidAccountError) as caught:
        await create_user(
            accounts,
            passwords,
            username=username,
            password=PASSWORD,
            role=Role.STAFF,
            sites=sites,
            now=T0,
        )
    assert caught.value.field == field
    assert await accounts.users() == []


async def test_usernames_are_unique_without_case(
    accounts: SqliteAccountStore, passwords: Passwords
) -> None:
    await make(accounts, passwords, "nurse.jo")
    with pytest.raises(UsernameTakenError):
        await make(accounts, passwords, "NURSE.JO")


async def test_a_weak_password_is_refused_before_anything_is_stored(
    accounts: SqliteAccountStore, passwords: Passwords
) -> None:
    with pytest.raises(PasswordRejectedError):
        await create_user(
            accounts,
            passwords,
            username="nurse.jo",
            password="qwerty123456",
            role=Role.STAFF,
            sites=["home-a"],
            now=T0,
        )
    assert await accounts.credentials("nurse.jo") is None


async def test_deleting_an_account_keeps_its_row_and_revokes_its_links(
    accounts: SqliteAccountStore, passwords: Passwords
) -> None:
    admin = await make(accounts, passwords, "boss", Role.ADMIN)
    family = await make(accounts, passwords, "relative", Role.FAMILY)
    link = await accounts.add_link(family, "home-a", "r01", contact=False, granted_by=admin, now=T0)

    assert await accounts.delete_user(family, by=admin, now=T0 + timedelta(hours=1))

    assert await accounts.user(family) is None
    assert await accounts.credentials("relative") is None
    assert [u.id for u in await accounts.users()] == [admin]
    assert await accounts.links(family) == []
    revoked = await accounts.link(link.id)
    assert revoked is not None
    assert (revoked.revoked, revoked.revoked_by) == (T0 + timedelta(hours=1), admin)
    assert not await accounts.delete_user(family, by=admin, now=T0)
    with pytest.raises(UsernameTakenError):
        await make(accounts, passwords, "relative", Role.FAMILY)


async def test_the_last_enabled_admin_cannot_be_removed(
    accounts: SqliteAccountStore, passwords: Passwords
) -> None:
    first = await make(accounts, passwords, "first-admin", Role.ADMIN)
    second = await make(accounts, passwords, "second-admin", Role.ADMIN)
    assert await accounts.count_admins() == 2

    disabled = await accounts.set_disabled(second, True)

    assert disabled is not None
    assert disabled.disabled
    assert await accounts.count_admins() == 1
    with pytest.raises(LastAdminError):
        await accounts.delete_user(first, by=first, now=T0)
    with pytest.raises(LastAdminError):
        await accounts.set_disabled(first, True)
    assert await accounts.count_admins() == 1
    assert await accounts.delete_user(second, by=first, now=T0)  # a disabled admin can go


async def test_family_links(accounts: SqliteAccountStore, passwords: Passwords) -> None:
    admin = await make(accounts, passwords, "boss", Role.ADMIN)
    family = await make(accounts, passwords, "relative", Role.FAMILY)
    staff = await make(accounts, passwords, "nurse", Role.STAFF)

    first = await accounts.add_link(family, "home-a", "r01", contact=True, granted_by=admin, now=T0)
    second = await accounts.add_link(
        family, "home-a", "r02", contact=False, granted_by=admin, now=T0
    )
    with pytest.raises(AlreadyLinkedError):
        await accounts.add_link(family, "home-a", "r01", contact=False, granted_by=admin, now=T0)
    with pytest.raises(InvalidAccountError):
        await accounts.add_link(staff, "home-a", "r01", contact=False, granted_by=admin, now=T0)
    with pytest.raises(InvalidAccountError):
        await accounts.add_link(family, "home-b", "r01", contact=False, granted_by=admin, now=T0)

    user = await accounts.user(family)
    assert user is not None
    principal = principal_of(user, await accounts.links(family))
    assert principal.links == {ResidentRef("home-a", "r01"), ResidentRef("home-a", "r02")}
    assert principal.contacts == {ResidentRef("home-a", "r01")}

    later = T0 + timedelta(days=1)
    revoked = await accounts.revoke_link(first.id, by=admin, now=later)
    again = await accounts.revoke_link(first.id, by=family, now=later + timedelta(days=1))
    assert revoked is not None
    assert again == revoked  # revoking twice changes nothing
    assert (revoked.revoked, revoked.revoked_by, revoked.active) == (later, admin, False)
    assert await accounts.revoke_link(9999, by=admin, now=later) is None
    assert [link.id for link in await accounts.links(family)] == [second.id]
    assert [link.id for link in await accounts.links(family, active_only=False)] == [
        first.id,
        second.id,
    ]
    assert await accounts.resident_links("home-a", "r01") == []
    relinked = await accounts.add_link(
        family, "home-a", "r01", contact=False, granted_by=admin, now=later
    )
    assert [link.id for link in await accounts.resident_links("home-a", "r01")] == [relinked.id]


async def test_the_first_admin(accounts: SqliteAccountStore, passwords: Passwords) -> None:
    with pytest.raises(NoAdminError):
        await ensure_admin(accounts, demo=False)
    await ensure_admin(accounts, demo=True)

    admin = await create_first_admin(
        accounts, passwords, username="root", password=PASSWORD, sites=["home-a"], now=T0
    )

    assert admin.role is Role.ADMIN
    await ensure_admin(accounts, demo=False)
    with pytest.raises(AccountError):
        await create_first_admin(
            accounts, passwords, username="root2", password=PASSWORD, sites=["home-a"], now=T0
        )


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    store = SqliteAccountStore(path)
    with pytest.raises(StorageError, match="newer"):
        await store.__aenter__()
    await store.aclose()
    with pytest.raises(StorageError, match="closed"):
        await store.users()


# -- sessions -------------------------------------------------------------------------------


async def test_sessions(tmp_path: Path) -> None:
    settings = SessionSettings(idle_s=600, absolute_s=3600)
    async with SqliteSessionStore(tmp_path / "api.sqlite3") as sessions:
        token, session = await sessions.create(7, now=T0)
        other_token, other = await sessions.create(7, now=T0)
        _, third = await sessions.create(8, now=T0)

        assert session.id == token_id(token)
        assert token != other_token
        assert session.csrf_token != other.csrf_token
        assert await sessions.get(token) == session
        assert await sessions.get("not a token") is None
        assert await sessions.get("A" * 43) is None
        assert session.expires(settings) == T0 + timedelta(seconds=600)

        await sessions.touch(session.id, now=T0 + timedelta(seconds=500))
        touched = await sessions.get(token)
        assert touched is not None
        assert touched.last_seen == T0 + timedelta(seconds=500)
        assert touched.is_live(T0 + timedelta(seconds=1099), settings)
        assert not touched.is_live(T0 + timedelta(seconds=1100), settings)

        assert await sessions.revoke_user(7, keep=session.id) == 1
        assert await sessions.get(other_token) is None
        assert await sessions.get(token) is not None

        purged = await sessions.purge(now=T0 + timedelta(seconds=1100), settings=settings)
        assert purged == 2
        assert await sessions.get(token) is None
        assert third.user_id == 8


# -- the audit log --------------------------------------------------------------------------


async def test_audit_entries_are_appended_and_queried_newest_first(tmp_path: Path) -> None:
    async with SqliteAuditLog(tmp_path / "audit.sqlite3") as audit:
        events = [
            AuditEvent(T0, 1, AuditAction.LOGIN, Outcome.OK, address="10.0.0.1"),
            AuditEvent(
                T0 + timedelta(seconds=1),
                1,
                AuditAction.READ,
                Outcome.OK,
                endpoint="GET /sites/{site}/residents/{resident}",
                site="home-a",
                resident="r01",
            ),
            AuditEvent(
                T0 + timedelta(seconds=2), 2, AuditAction.READ, Outcome.DENIED, site="home-b"
            ),
            AuditEvent(T0 + timedelta(seconds=3), 1, AuditAction.READ, Outcome.OK, site="home-b"),
        ]
        ids = [await audit.record(event) for event in events]

        everything = await audit.query(AuditQuery())
        home_a = await audit.query(AuditQuery(site="home-a"))
        user_1_in_a = await audit.query(AuditQuery(user_id=1, sites=frozenset({"home-a"})))
        window = await audit.query(
            AuditQuery(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
        )
        page = await audit.query(AuditQuery(limit=2, before_id=ids[3]))

    assert [entry.id for entry in everything] == ids[::-1]
    assert [entry.event for entry in everything] == events[::-1]
    assert [entry.id for entry in home_a] == [ids[1]]
    assert [entry.id for entry in user_1_in_a] == [ids[1], ids[0]]
    assert [entry.id for entry in window] == [ids[2], ids[1]]
    assert [entry.id for entry in page] == [ids[2], ids[1]]
