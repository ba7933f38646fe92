"""The demo's logins: an administrator, a member of staff, and a relative of one resident,
each with a new random password per run (printed at start, never stored in clear).

They are written straight into the API's account database (``cloud.api.accounts``, the same
rules as ``python -m cloud.api create-admin``) before the API starts. With a kept data
folder (``--data``) the accounts exist already: their passwords are replaced.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cloud.api.accounts import SqliteAccountStore, create_user
from cloud.api.errors import AlreadyLinkedError, UsernameTakenError
from cloud.api.passwords import Passwords
from cloud.api.policy import Role
from cloud.settings import PasswordSettings

__all__ = ["DemoLogin", "create_demo_logins", "demo_logins", "new_password"]

_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Letters and digits that cannot be mistaken for one another (no l/1, O/0)."""
PASSWORD_LENGTH = 16


@dataclass(slots=True, frozen=True)
class DemoLogin:
    """One account of the demo."""

    username: str
    password: str
    role: Role
    description: str
    resident: str | None = None
    """The resident a family account is linked to."""


def new_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password (about 5.8 bits per character)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def demo_logins(site: str, family_of: str) -> tuple[DemoLogin, ...]:
    """The demo's accounts with new passwords: ``admin``, ``staff``, ``family-<resident>``."""
    return (
        DemoLogin("admin", new_password(), Role.ADMIN, f"administrator of {site}"),
        DemoLogin("staff", new_password(), Role.STAFF, f"care staff of {site}"),
        DemoLogin(
            f"family-{family_of}",
            new_password(),
            Role.FAMILY,
            f"family of resident {family_of}",
            resident=family_of,
        ),
    )


async def create_demo_logins(
    database: Path,
    passwords: PasswordSettings,
    logins: Sequence[DemoLogin],
    *,
    site: str,
    now: datetime,
) -> None:
    """Create ``logins`` in the API's account ``database`` (or set their passwords when they
    exist), all on ``site``, and link each family account to its resident (the first
    administrator grants the links). Raises ``cloud.api.errors.AccountError`` subclasses
    for a refused name or password."""
    hasher = Passwords(passwords)
    async with SqliteAccountStore(database) as accounts:
        ids: dict[str, int] = {}
        for login in logins:
            try:
                user = await create_user(
                    accounts,
                    hasher,
                    username=login.username,
                    password=login.password,
                    role=login.role,
                    sites=[site],
                    now=now,
                )
                ids[login.username] = user.id
            except UsernameTakenError:
                existing = await accounts.credentials(login.username)
                if existing is None:  # deleted: the name cannot be used again
                    raise
                hasher.check(login.password, username=login.username)
                await accounts.set_password_hash(
                    existing.user.id, await hasher.hash(login.password), now=now
                )
                if existing.user.disabled:
                    await accounts.set_disabled(existing.user.id, False)
                ids[login.username] = existing.user.id
        granter = next(ids[x.username] for x in logins if x.role is Role.ADMIN)
        for login in logins:
            if login.role is Role.FAMILY and login.resident is not None:
                with contextlib.suppress(AlreadyLinkedError):  # a kept data folder
                    await accounts.add_link(
                        ids[login.username],
                        site,
                        login.resident,
                        contact=True,
                        granted_by=granter,
                        now=now,
                    )
