"""cloud.api.passwords: the password policy (a table of refused and accepted passwords) and
argon2id hashing, verification and re-hashing when the parameters change."""

from __future__ import annotations

import pytest

from cloud.api.errors import PasswordRejectedError
from cloud.api.passwords import Passwords, check_password, normalise
from cloud.api.settings import PasswordSettings

SETTINGS = PasswordSettings(time_cost=1, memory_kib=64, parallelism=1)
PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 12 characters"),
        ("elevenchars", "at least 12 characters"),
        ("x" * 1025, "at most 1024 characters"),
        ("passwordpassword", "too common"),
        ("Password123!", "too common"),
        ("!!Welcome2024!!", "too common"),
        ("QWERTYUIOPAS", "too common"),
        ("123456789012", "too common"),
        ("carewatch-2024", "too common"),
        ("aaaaaaaaaaaaaaaa", "four different characters"),
        ("abababababababab", "four different characters"),
        ("nurse.jo is my name", "must not contain the username"),
    ],
)
def test_refused_passwords(password: str, reason: str) -> None:
    with pytest.raises(PasswordRejectedError) as caught:
        check_password(password, SETTINGS, username="nurse.jo")
    assert reason in caught.value.reason
    assert password not in str(caught.value)


@pytest.mark.parametrize(
    "password",
    [
        PASSWORD,
        "twelve chars",
        "my password is long enough",  # contains a common word, but is not one
        "Ünïcødé pässwörd",
        "jo is fine here",  # usernames shorter than 4 characters are not looked for
    ],
)
def test_accepted_passwords(password: str) -> None:
    check_password(password, SETTINGS, username="jo")


def test_length_is_counted_after_normalisation() -> None:
    # "ﬁ" (U+FB01) and "ﬂ" are two characters each once normalised (NFKC).
    password = "ﬁﬁﬁxyzﬂﬂ"
    assert len(password) == 8
    assert normalise(password) == "fififixyzflfl"
    check_password(password, SETTINGS)


async def test_hash_and_verify() -> None:
    passwords = Passwords(SETTINGS)
    stored = await passwords.hash(PASSWORD)

    assert stored.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert PASSWORD not in stored
    assert (await passwords.verify(stored, PASSWORD)).ok
    assert (await passwords.verify(stored, PASSWORD)).rehash is None
    assert not (await passwords.verify(stored, PASSWORD + " ")).ok
    assert not (await passwords.verify("not a hash", PASSWORD)).ok
    assert not (await passwords.verify(stored, "x" * 5000)).ok


async def test_the_same_password_typed_differently_verifies() -> None:
    passwords = Passwords(SETTINGS)
    stored = await passwords.hash("caf\u00e9 au lait please")  # é precomposed
    assert (await passwords.verify(stored, "cafe\u0301 au lait please")).ok  # e + accent


async def test_a_hash_with_other_parameters_is_rehashed() -> None:
    old = Passwords(PasswordSettings(time_cost=2, memory_kib=128, parallelism=1))
    new = Passwords(SETTINGS)
    stored = await old.hash(PASSWORD)

    result = await new.verify(stored, PASSWORD)
    wrong = await new.verify(stored, "a wrong password")

    assert result.ok
    assert result.rehash is not None
    assert result.rehash.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert (await new.verify(result.rehash, PASSWORD)).rehash is None
    assert not wrong.ok
    assert wrong.rehash is None


async def test_the_dummy_never_verifies() -> None:
    passwords = Passwords(SETTINGS)
    assert not (await passwords.verify_dummy("carewatch dummy password that matches nothing")).ok
    assert not (await passwords.verify_dummy(PASSWORD)).ok
