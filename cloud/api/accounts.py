"""Accounts: users (argon2id password hashes, a role, their sites), family links to residents,
and the operations an administrator or the command line performs on them.

The storage is behind :class:`AccountStore` (SQLite today, :class:`SqliteAccountStore`; a
PostgreSQL store can serve the same interface). The functions at the bottom
(:func:`create_user`, :func:`create_first_admin`, :func:`ensure_admin`) hold the rules that do
not depend on the storage: usernames, sites, the password policy.

Accounts are never removed: :meth:`AccountStore.delete_user` marks the account deleted (it can
no longer log in and is no longer listed), revokes its links, and keeps the row so that the
audit log's user ids keep pointing at someone; a username is therefore never reused. No
account exists until one is created: there are no default credentials.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from cloud.api.database import SqliteDatabase, transaction
from cloud.api.errors import (
    AccountError,
    AlreadyLinkedError,
    InvalidAccountError,
    LastAdminError,
    NoAdminError,
    UsernameTakenError,
)
from cloud.api.passwords import Passwords
from cloud.api.policy import Principal, ResidentRef, Role
from cloud.sqlite import SqliteOwner
from cloud.store.base import datetime_from_ns, ns_from_datetime
from vitals.topics import ID_PATTERN

__all__ = [
    "USERNAME_PATTERN",
    "AccountStore",
    "Credentials",
    "FamilyLink",
    "SqliteAccountStore",
    "User",
    "check_sites",
    "check_username",
    "create_first_admin",
    "create_user",
    "ensure_admin",
    "principal_of",
]

USERNAME_PATTERN = r"[a-z0-9][a-z0-9._@+-]{2,63}"
"""3-64 characters: lower-case letters, digits and ``._@+-`` (an e-mail address fits)."""
_USERNAME = re.compile(USERNAME_PATTERN)
_SITE = re.compile(ID_PATTERN)
MAX_SITES = 256


@dataclass(slots=True, frozen=True)
class User:
    """An account (never with its password hash: see :class:`Credentials`)."""

    id: int
    username: str
    role: Role
    sites: frozenset[str]
    disabled: bool
    created: datetime
    password_changed: datetime


@dataclass(slots=True, frozen=True)
class Credentials:
    """An account with its password hash, for login only."""

    user: User
    password_hash: str


@dataclass(slots=True, frozen=True)
class FamilyLink:
    """A family account's access to one resident, from ``granted`` until ``revoked``."""

    id: int
    user_id: int
    site: str
    resident: str
    contact: bool
    """The account is the resident's contact: it may see and revoke the resident's links."""
    granted_by: int
    granted: datetime
    revoked: datetime | None = None
    revoked_by: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    @property
    def ref(self) -> ResidentRef:
        return ResidentRef(self.site, self.resident)


def check_username(username: str) -> str:
    """The username in its stored form (lower case), or :class:`InvalidAccountError`."""
    folded = username.strip().lower()
    if _USERNAME.fullmatch(folded) is None:
        raise InvalidAccountError(
            "username", "expected 3-64 letters, digits or ._@+- starting with a letter or digit"
        )
    return folded


def check_sites(sites: Iterable[str]) -> frozenset[str]:
    """At least one site, each a valid id, at most :data:`MAX_SITES`."""
    found = frozenset(sites)
    if not found:
        raise InvalidAccountError("sites", "an account needs at least one site")
    if len(found) > MAX_SITES:
        raise InvalidAccountError("sites", f"at most {MAX_SITES} sites")
    for site in found:
        if not isinstance(site, str) or _SITE.fullmatch(site) is None:
            raise InvalidAccountError("sites", "a site id is 1-64 letters, digits, '_' or '-'")
    return found


def principal_of(user: User, links: Iterable[FamilyLink]) -> Principal:
    """The principal of ``user`` with its active ``links``."""
    active = [link for link in links if link.active and link.user_id == user.id]
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        sites=user.sites,
        links=frozenset(link.ref for link in active),
        contacts=frozenset(link.ref for link in active if link.contact),
    )


class AccountStore(Protocol):
    """Where accounts and family links are kept. Raises
    :class:`~cloud.api.errors.StorageError` when it cannot answer, and the
    :class:`~cloud.api.errors.AccountError` subclasses named below."""

    async def add_user(
        self,
        username: str,
        password_hash: str,
        role: Role,
        sites: frozenset[str],
        *,
        now: datetime,
        disabled: bool = False,
    ) -> User:
        """Store a new account (arguments already checked); :class:`UsernameTakenError`."""
        ...

    async def user(self, user_id: int) -> User | None:
        """The account, unless it does not exist or was deleted."""
        ...

    async def users(self) -> list[User]:
        """Every account not deleted, by id."""
        ...

    async def credentials(self, username: str) -> Credentials | None:
        """The account of ``username`` (stored form) with its hash, unless deleted."""
        ...

    async def set_password_hash(
        self, user_id: int, password_hash: str, *, now: datetime, changed: bool = True
    ) -> None:
        """Store a new hash; ``changed=False`` for a re-hash of the same password (the time
        of the last password change stays)."""
        ...

    async def set_disabled(self, user_id: int, disabled: bool) -> User | None:
        """:class:`LastAdminError` if this would disable the last enabled admin."""
        ...

    async def delete_user(self, user_id: int, *, by: int, now: datetime) -> bool:
        """Mark deleted and revoke its links; ``False`` if there was no such account.
        :class:`LastAdminError` if it is the last enabled admin."""
        ...

    async def count_admins(self) -> int:
        """Enabled, not deleted administrators."""
        ...

    async def add_link(
        self,
        user_id: int,
        site: str,
        resident: str,
        *,
        contact: bool,
        granted_by: int,
        now: datetime,
    ) -> FamilyLink:
        """Link a family account to a resident of one of its sites.
        :class:`InvalidAccountError` (no such family account, site not its),
        :class:`AlreadyLinkedError`."""
        ...

    async def link(self, link_id: int) -> FamilyLink | None: ...

    async def links(self, user_id: int, *, active_only: bool = True) -> list[FamilyLink]: ...

    async def resident_links(
        self, site: str, resident: str, *, active_only: bool = True
    ) -> list[FamilyLink]: ...

    async def revoke_link(self, link_id: int, *, by: int, now: datetime) -> FamilyLink | None:
        """End a link (a link already revoked is returned unchanged); ``None`` if there is
        no such link."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id                  INTEGER PRIMARY KEY,
    username            TEXT    NOT NULL UNIQUE,
    password_hash       TEXT    NOT NULL,
    role                TEXT    NOT NULL CHECK (role IN ('admin', 'staff', 'family')),
    disabled            INTEGER NOT NULL DEFAULT 0,
    created_ns          INTEGER NOT NULL,
    password_changed_ns INTEGER NOT NULL,
    deleted_ns          INTEGER
);
CREATE TABLE IF NOT EXISTS user_sites (
    user_id INTEGER NOT NULL REFERENCES users (id),
    site    TEXT    NOT NULL,
    PRIMARY KEY (user_id, site)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS family_links (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    site       TEXT    NOT NULL,
    resident   TEXT    NOT NULL,
    contact    INTEGER NOT NULL DEFAULT 0,
    granted_by INTEGER NOT NULL,
    granted_ns INTEGER NOT NULL,
    revoked_by INTEGER,
    revoked_ns INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS family_links_active
    ON family_links (user_id, site, resident) WHERE revoked_ns IS NULL;
CREATE INDEX IF NOT EXISTS family_links_resident ON family_links (site, resident);
"""

_USER_COLUMNS = (
    "id, username, password_hash, role, disabled, created_ns, password_changed_ns, "
    "(SELECT group_concat(site, ' ') FROM user_sites WHERE user_id = users.id) AS sites"
)
_LINK_COLUMNS = (
    "id, user_id, site, resident, contact, granted_by, granted_ns, revoked_by, revoked_ns"
)


def _user(row: sqlite3.Row) -> User:
    sites = row["sites"]
    return User(
        id=int(row["id"]),
        username=row["username"],
        role=Role(row["role"]),
        sites=frozenset(sites.split(" ")) if sites else frozenset(),
        disabled=bool(row["disabled"]),
        created=datetime_from_ns(int(row["created_ns"])),
        password_changed=datetime_from_ns(int(row["password_changed_ns"])),
    )


def _link(row: sqlite3.Row) -> FamilyLink:
    revoked = row["revoked_ns"]
    revoked_by = row["revoked_by"]
    return FamilyLink(
        id=int(row["id"]),
        user_id=int(row["user_id"]),
        site=row["site"],
        resident=row["resident"],
        contact=bool(row["contact"]),
        granted_by=int(row["granted_by"]),
        granted=datetime_from_ns(int(row["granted_ns"])),
        revoked=None if revoked is None else datetime_from_ns(int(revoked)),
        revoked_by=None if revoked_by is None else int(revoked_by),
    )


def _enabled_admins(db: sqlite3.Connection) -> int:
    row = db.execute(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0 AND deleted_ns IS NULL"
    ).fetchone()
    return int(row[0])


def _is_enabled_admin(db: sqlite3.Connection, user_id: int) -> bool:
    row = db.execute(
        "SELECT 1 FROM users WHERE id = ? AND role = 'admin' AND disabled = 0 "
        "AND deleted_ns IS NULL",
        (user_id,),
    ).fetchone()
    return row is not None


class SqliteAccountStore(SqliteOwner):
    """An :class:`AccountStore` in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self._db = SqliteDatabase(path, _SCHEMA, version=SCHEMA_VERSION, name="accounts")

    # -- accounts -------------------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        password_hash: str,
        role: Role,
        sites: frozenset[str],
        *,
        now: datetime,
        disabled: bool = False,
    ) -> User:
        now_ns = ns_from_datetime(now)

        def work(db: sqlite3.Connection) -> int:
            with transaction(db):
                try:
                    cursor = db.execute(
                        "INSERT INTO users (username, password_hash, role, disabled, created_ns,"
                        " password_changed_ns) VALUES (?, ?, ?, ?, ?, ?)",
                        (username, password_hash, role.value, int(disabled), now_ns, now_ns),
                    )
                except sqlite3.IntegrityError as exc:
                    raise UsernameTakenError("this username is taken") from exc
                user_id = cursor.lastrowid
                assert user_id is not None
                db.executemany(
                    "INSERT INTO user_sites (user_id, site) VALUES (?, ?)",
                    [(user_id, site) for site in sorted(sites)],
                )
            return user_id

        user_id = await self._db.run(work)
        user = await self.user(user_id)
        assert user is not None
        return user

    async def user(self, user_id: int) -> User | None:
        row = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE id = ? AND deleted_ns IS NULL",
                (user_id,),
            ).fetchone()
        )
        return None if row is None else _user(row)

    async def users(self) -> list[User]:
        rows = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE deleted_ns IS NULL ORDER BY id"
            ).fetchall()
        )
        return [_user(row) for row in rows]

    async def credentials(self, username: str) -> Credentials | None:
        row = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE username = ? AND deleted_ns IS NULL",
                (username,),
            ).fetchone()
        )
        return None if row is None else Credentials(_user(row), row["password_hash"])

    async def set_password_hash(
        self, user_id: int, password_hash: str, *, now: datetime, changed: bool = True
    ) -> None:
        now_ns = ns_from_datetime(now)
        if changed:
            sql = "UPDATE users SET password_hash = ?, password_changed_ns = ? WHERE id = ?"
            args: tuple[object, ...] = (password_hash, now_ns, user_id)
        else:
            sql = "UPDATE users SET password_hash = ? WHERE id = ?"
            args = (password_hash, user_id)
        await self._db.run(lambda db: db.execute(sql, args))

    async def set_disabled(self, user_id: int, disabled: bool) -> User | None:
        def work(db: sqlite3.Connection) -> None:
            with transaction(db):
                if disabled and _is_enabled_admin(db, user_id) and _enabled_admins(db) <= 1:
                    raise LastAdminError("this is the last enabled administrator")
                db.execute(
                    "UPDATE users SET disabled = ? WHERE id = ? AND deleted_ns IS NULL",
                    (int(disabled), user_id),
                )

        await self._db.run(work)
        return await self.user(user_id)

    async def delete_user(self, user_id: int, *, by: int, now: datetime) -> bool:
        now_ns = ns_from_datetime(now)

        def work(db: sqlite3.Connection) -> bool:
            with transaction(db):
                if _is_enabled_admin(db, user_id) and _enabled_admins(db) <= 1:
                    raise LastAdminError("this is the last enabled administrator")
                cursor = db.execute(
                    "UPDATE users SET deleted_ns = ?, disabled = 1 "
                    "WHERE id = ? AND deleted_ns IS NULL",
                    (now_ns, user_id),
                )
                if cursor.rowcount == 0:
                    return False
                db.execute(
                    "UPDATE family_links SET revoked_ns = ?, revoked_by = ? "
                    "WHERE user_id = ? AND revoked_ns IS NULL",
                    (now_ns, by, user_id),
                )
                return True

        return await self._db.run(work)

    async def count_admins(self) -> int:
        return await self._db.run(_enabled_admins)

    # -- family links ---------------------------------------------------------------------

    async def add_link(
        self,
        user_id: int,
        site: str,
        resident: str,
        *,
        contact: bool,
        granted_by: int,
        now: datetime,
    ) -> FamilyLink:
        now_ns = ns_from_datetime(now)

        def work(db: sqlite3.Connection) -> int:
            with transaction(db):
                row = db.execute(
                    "SELECT role FROM users WHERE id = ? AND deleted_ns IS NULL", (user_id,)
                ).fetchone()
                if row is None or row["role"] != Role.FAMILY.value:
                    raise InvalidAccountError("link", "links are for family accounts only")
                if (
                    db.execute(
                        "SELECT 1 FROM user_sites WHERE user_id = ? AND site = ?", (user_id, site)
                    ).fetchone()
                    is None
                ):
                    raise InvalidAccountError("link", "the resident's site is not the account's")
                try:
                    cursor = db.execute(
                        "INSERT INTO family_links (user_id, site, resident, contact, granted_by,"
                        " granted_ns) VALUES (?, ?, ?, ?, ?, ?)",
                        (user_id, site, resident, int(contact), granted_by, now_ns),
                    )
                except sqlite3.IntegrityError as exc:
                    raise AlreadyLinkedError("the account is already linked") from exc
                link_id = cursor.lastrowid
                assert link_id is not None
                return link_id

        link = await self.link(await self._db.run(work))
        assert link is not None
        return link

    async def link(self, link_id: int) -> FamilyLink | None:
        row = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_LINK_COLUMNS} FROM family_links WHERE id = ?", (link_id,)
            ).fetchone()
        )
        return None if row is None else _link(row)

    async def links(self, user_id: int, *, active_only: bool = True) -> list[FamilyLink]:
        active = " AND revoked_ns IS NULL" if active_only else ""
        rows = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_LINK_COLUMNS} FROM family_links WHERE user_id = ?{active} ORDER BY id",
                (user_id,),
            ).fetchall()
        )
        return [_link(row) for row in rows]

    async def resident_links(
        self, site: str, resident: str, *, active_only: bool = True
    ) -> list[FamilyLink]:
        active = " AND revoked_ns IS NULL" if active_only else ""
        rows = await self._db.run(
            lambda db: db.execute(
                f"SELECT {_LINK_COLUMNS} FROM family_links WHERE site = ? AND resident = ?"
                f"{active} ORDER BY id",
                (site, resident),
            ).fetchall()
        )
        return [_link(row) for row in rows]

    async def revoke_link(self, link_id: int, *, by: int, now: datetime) -> FamilyLink | None:
        now_ns = ns_from_datetime(now)
        await self._db.run(
            lambda db: db.execute(
                "UPDATE family_links SET revoked_ns = ?, revoked_by = ? "
                "WHERE id = ? AND revoked_ns IS NULL",
                (now_ns, by, link_id),
            )
        )
        return await self.link(link_id)


# -- operations -----------------------------------------------------------------------------


async def create_user(
    accounts: AccountStore,
    passwords: Passwords,
    *,
    username: str,
    password: str,
    role: Role,
    sites: Sequence[str],
    now: datetime,
) -> User:
    """Check the username, the sites and the password policy, hash, store.

    Raises :class:`InvalidAccountError`, :class:`PasswordRejectedError`,
    :class:`UsernameTakenError`.
    """
    name = check_username(username)
    checked = check_sites(sites)
    passwords.check(password, username=name)
    password_hash = await passwords.hash(password)
    return await accounts.add_user(name, password_hash, Role(role), checked, now=now)


async def create_first_admin(
    accounts: AccountStore,
    passwords: Passwords,
    *,
    username: str,
    password: str,
    sites: Sequence[str],
    now: datetime,
) -> User:
    """Create the first administrator (``python -m cloud.api create-admin``). Refused with
    :class:`AccountError` when an enabled administrator exists: they create the others."""
    if await accounts.count_admins() > 0:
        raise AccountError("an administrator exists already: ask them to create the account")
    return await create_user(
        accounts,
        passwords,
        username=username,
        password=password,
        role=Role.ADMIN,
        sites=sites,
        now=now,
    )


async def ensure_admin(accounts: AccountStore, *, demo: bool) -> None:
    """Raise :class:`NoAdminError` if there is no enabled administrator, unless ``demo``
    (the demo creates its own accounts; without one it still starts, read-only for lack of
    anyone to log in)."""
    if not demo and await accounts.count_admins() == 0:
        raise NoAdminError(
            "no administrator account: create one with "
            "`python -m cloud.api create-admin --config FILE --username NAME --site SITE`"
        )
