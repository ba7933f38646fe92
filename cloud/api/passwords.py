"""Passwords: the policy a new password must meet (pure) and argon2id hashing off the event
loop.

Policy (:func:`check_password`): at least ``min_length`` characters (after Unicode NFKC
normalisation, so the same password typed on another keyboard still matches), at most
``max_length``, not containing the username, at least four distinct characters, and not one
of the very common passwords, also with digits or punctuation around it (``Password123!``).
No rules about character classes: length is what makes a password strong (NIST SP 800-63B).

Hashing (:class:`Passwords`): argon2id with the configured cost, at most
``max_concurrent_hashes`` at a time (each takes ``memory_kib`` and a core), in worker threads.
A hash made with other parameters verifies and is re-hashed (the caller stores the new hash).
When the username is unknown, :meth:`Passwords.verify_dummy` hashes anyway, so a failed login
takes as long whether or not the account exists.

Passwords are never logged, never put in an exception message, never returned.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cloud.api.errors import PasswordRejectedError
from cloud.api.settings import PasswordSettings

__all__ = ["COMMON_WORDS", "Passwords", "Verification", "check_password", "normalise"]

COMMON_WORDS = frozenset(
    {
        "",
        "password",
        "passw0rd",
        "p@ssw0rd",
        "p@ssword",
        "qwerty",
        "qwertyuiop",
        "qwertyuiopas",
        "asdfghjkl",
        "azerty",
        "letmein",
        "welcome",
        "admin",
        "administrator",
        "carewatch",
        "changeme",
        "iloveyou",
        "monkey",
        "dragon",
        "football",
        "sunshine",
        "princess",
        "abc",
        "abcdef",
        "abcdefgh",
        "1q2w3e4r",
        "1q2w3e4r5t",
        "1q2w3e4r5t6y",
        "q1w2e3r4",
        "zaq12wsx",
        "trustno1",
        "master",
        "secret",
        "nurse",
        "carehome",
        "default",
        "passwordpassword",
        "guest",
        "test",
        "user",
        "login",
    }
)
"""Very common passwords and stems, compared case-insensitively once digits and punctuation
around them are removed (``Welcome2024!`` is ``welcome``); a password of only digits and
punctuation reduces to ``""`` and is refused too."""

_AROUND = re.compile(r"^[\W\d_]*(.*?)[\W\d_]*$", re.DOTALL)


def normalise(password: str) -> str:
    """The form a password is hashed and compared in (NFKC)."""
    return unicodedata.normalize("NFKC", password)


def check_password(password: str, settings: PasswordSettings, *, username: str = "") -> None:
    """Raise :class:`PasswordRejectedError` if ``password`` may not be used; the reason never
    holds the password."""
    text = normalise(password)
    if len(text) < settings.min_length:
        raise PasswordRejectedError(
            f"the password must have at least {settings.min_length} characters"
        )
    if len(text) > settings.max_length:
        raise PasswordRejectedError(
            f"the password must have at most {settings.max_length} characters"
        )
    folded = text.casefold()
    if len(username) >= 4 and username.casefold() in folded:
        raise PasswordRejectedError("the password must not contain the username")
    if len(set(folded)) < 4:
        raise PasswordRejectedError("the password must have at least four different characters")
    match = _AROUND.match(folded)
    stem = match.group(1) if match is not None else folded
    if stem in COMMON_WORDS or folded in COMMON_WORDS:
        raise PasswordRejectedError("the password is too common")


@dataclass(slots=True, frozen=True)
class Verification:
    """The outcome of checking a password against a stored hash."""

    ok: bool
    rehash: str | None = None
    """A new hash with the current parameters, when the password was right and the stored
    hash was made with other ones: store it in place of the old."""


class Passwords:
    """argon2id hashing and verification with the configured cost, off the event loop."""

    def __init__(self, settings: PasswordSettings) -> None:
        self._settings = settings
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_kib,
            parallelism=settings.parallelism,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(settings.max_concurrent_hashes)
        self._dummy: str | None = None

    @property
    def settings(self) -> PasswordSettings:
        return self._settings

    def check(self, password: str, *, username: str = "") -> None:
        """:func:`check_password` with these settings."""
        check_password(password, self._settings, username=username)

    async def hash(self, password: str) -> str:
        """The argon2id hash of ``password`` (checked against the policy by the caller)."""
        text = normalise(password)
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, text)

    async def verify(self, stored_hash: str, password: str) -> Verification:
        """Whether ``password`` matches ``stored_hash``; a wrong, overlong or unreadable
        input is simply not ``ok``."""
        text = normalise(password)
        if len(text) > self._settings.max_length:
            return Verification(ok=False)

        def work() -> Verification:
            try:
                self._hasher.verify(stored_hash, text)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return Verification(ok=False)
            if self._hasher.check_needs_rehash(stored_hash):
                return Verification(ok=True, rehash=self._hasher.hash(text))
            return Verification(ok=True)

        async with self._slots:
            return await asyncio.to_thread(work)

    async def verify_dummy(self, password: str) -> Verification:
        """Spend the time a real verification would (the username is unknown or the account
        disabled); never ``ok``."""
        if self._dummy is None:
            self._dummy = await self.hash("carewatch dummy password that matches nothing")
        await self.verify(self._dummy, password)
        return Verification(ok=False)
