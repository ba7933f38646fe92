"""Logging in and out against the real API: the session cookie's flags, CSRF refusal, login
rate limiting, session expiry and revocation, password changes, timing of failed logins, and
passwords kept out of logs, audit entries, databases and error bodies."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from cloud.api import Role
from cloud.api.access import CSRF_HEADER
from cloud.api.audit import AuditQuery
from cloud.api.passwords import Passwords
from cloud.api.settings import PasswordSettings
from tests.integration.test_api_support import (
    API,
    HOME,
    PASSWORD,
    ManualClock,
    World,
    api_world,
)

pytestmark = pytest.mark.integration

NEW_PASSWORD = "an entirely different passphrase"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with api_world(tmp_path) as found:
        yield found


def set_cookie(response: httpx.Response) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    cookie.load(headers[0])
    return cookie


# -- the cookie -------------------------------------------------------------------------------


async def test_login_sets_an_httponly_samesite_session_cookie(world: World) -> None:
    staff = await world.user(Role.STAFF)
    client = await world.client()

    response = await client.login(staff.username)

    assert response.status_code == 200
    cookie = set_cookie(response)
    morsel = cookie["carewatch_session"]
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "lax"
    assert morsel["path"] == "/"
    assert not morsel["secure"]  # configured off: plain HTTP on loopback
    assert not morsel["max-age"]  # a browser-session cookie
    assert len(morsel.value) == 43  # 256 random bits, base64url
    body = response.json()
    assert body["user"]["username"] == staff.username
    assert body["csrf_token"]
    assert body["csrf_token"] != morsel.value
    assert body["expires_at"] == "2024-03-01T12:30:00Z"
    assert body["absolute_expires_at"] == "2024-03-02T00:00:00Z"
    me = await client.get("/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["id"] == staff.id


async def test_a_secure_cookie_carries_the_host_prefix_and_is_not_sent_over_http(
    tmp_path: Path,
) -> None:
    async with api_world(tmp_path, session={"cookie_secure": True, "same_site": "strict"}) as w:
        assert w.admin is not None
        client = await w.client()

        response = await client.login(w.admin.username)

        assert response.status_code == 200
        morsel = set_cookie(response)["__Host-carewatch_session"]
        assert morsel["secure"] is True
        assert morsel["httponly"] is True
        assert morsel["samesite"].lower() == "strict"
        assert morsel["path"] == "/"
        assert not morsel["domain"]
        assert response.headers["strict-transport-security"].startswith("max-age=")
        # A client that honours Secure does not send the cookie back over plain HTTP.
        assert (await client.get("/auth/me")).status_code == 401


async def test_the_session_table_holds_only_the_tokens_hash(world: World) -> None:
    staff = await world.user(Role.STAFF)
    client = await world.client()
    response = await client.login(staff.username)
    token = set_cookie(response)["carewatch_session"].value

    with sqlite3.connect(world.settings.database) as db:
        rows = db.execute("SELECT id, user_id FROM sessions").fetchall()

    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), staff.id)]
    assert token.encode() not in world.settings.database.read_bytes()


async def test_a_new_login_ends_the_session_of_the_old_cookie(world: World) -> None:
    staff = await world.user(Role.STAFF)
    client = await world.client()
    first = set_cookie(await client.login(staff.username))["carewatch_session"].value

    await client.login(staff.username)

    stale = await world.client()
    stale.http.cookies.set("carewatch_session", first)
    assert (await stale.get("/auth/me")).status_code == 401
    assert (await client.get("/auth/me")).status_code == 200


async def test_wrong_and_unknown_credentials_get_the_same_answer(world: World) -> None:
    staff = await world.user(Role.STAFF)
    client = await world.client()

    wrong = await client.login(staff.username, "not the right passphrase")
    unknown = await client.login("nobody-at-all", PASSWORD)
    malformed = await client.login("Not A Username!", PASSWORD)

    assert wrong.status_code == unknown.status_code == malformed.status_code == 401
    assert wrong.json() == unknown.json() == malformed.json()
    assert "set-cookie" not in wrong.headers
    assert (await client.get("/auth/me")).status_code == 401


async def test_usernames_are_matched_without_case(world: World) -> None:
    staff = await world.user(Role.STAFF, username="nurse.jo")
    client = await world.client()
    assert (await client.login("  Nurse.JO ")).status_code == 200
    assert (await client.get("/auth/me")).json()["user"]["id"] == staff.id


async def test_login_takes_json_only(world: World) -> None:
    staff = await world.user(Role.STAFF)
    client = await world.client()

    form = await client.http.post(
        f"{API}/auth/login", data={"username": staff.username, "password": PASSWORD}
    )
    text = await client.http.post(
        f"{API}/auth/login",
        content=f'{{"username": "{staff.username}", "password": "{PASSWORD}"}}',
        headers={"content-type": "text/plain"},
    )

    assert form.status_code == 415
    assert text.status_code == 415
    assert "set-cookie" not in form.headers
    assert "set-cookie" not in text.headers


async def test_a_disabled_account_cannot_log_in_and_loses_its_sessions(world: World) -> None:
    staff = await world.user(Role.STAFF)
    client = await world.logged_in(staff)

    await world.accounts.set_disabled(staff.id, True)

    assert (await client.get("/auth/me")).status_code == 401
    again = await world.client()
    assert (await again.login(staff.username)).status_code == 401


# -- CSRF -------------------------------------------------------------------------------------


async def test_state_changes_without_the_csrf_token_are_refused(world: World) -> None:
    assert world.admin is not None
    admin = await world.logged_in(world.admin)
    other = await world.logged_in(await world.user(Role.ADMIN))
    victim = await world.user(Role.STAFF)
    new_user = {
        "username": "csrf-made",
        "password": "a long enough passphrase",
        "role": "staff",
        "sites": [HOME],
    }

    missing = await admin.post("/users", new_user, csrf=False)
    wrong = await admin.http.post(f"{API}/users", json=new_user, headers={CSRF_HEADER: "x" * 43})
    borrowed = await admin.http.post(  # another session's token
        f"{API}/users", json=new_user, headers={CSRF_HEADER: other.csrf or ""}
    )
    delete = await admin.delete(f"/users/{victim.id}", csrf=False)
    logout = await admin.post("/auth/logout", csrf=False)

    for response in (missing, wrong, borrowed, delete, logout):
        assert response.status_code == 403, response.text
        assert response.json()["detail"] == "CSRF token missing or wrong"
    assert await world.accounts.credentials("csrf-made") is None
    assert await world.accounts.user(victim.id) is not None
    assert (await admin.get("/auth/me")).status_code == 200  # logout did not happen

    assert (await admin.post("/users", new_user)).status_code == 201
    assert (await admin.delete(f"/users/{victim.id}")).status_code == 204


async def test_reads_need_no_csrf_token(world: World) -> None:
    staff = await world.logged_in(await world.user(Role.STAFF))
    assert (await staff.get(f"/sites/{HOME}/residents")).status_code == 200


# -- sessions ---------------------------------------------------------------------------------


async def test_logout_ends_the_session_and_clears_the_cookie(world: World) -> None:
    staff = await world.user(Role.STAFF)
    client = await world.client()
    token = set_cookie(await client.login(staff.username))["carewatch_session"].value
    client.csrf = (await client.get("/auth/me")).json()["csrf_token"]

    response = await client.post("/auth/logout")

    assert response.status_code == 204
    cleared = set_cookie(response)["carewatch_session"]
    assert cleared.value == "" or cleared["max-age"] == "0"
    assert (await client.get("/auth/me")).status_code == 401
    replay = await world.client()
    replay.http.cookies.set("carewatch_session", token)
    assert (await replay.get("/auth/me")).status_code == 401


async def test_an_idle_session_expires(tmp_path: Path) -> None:
    clock = ManualClock()
    async with api_world(tmp_path, clock=clock, session={"idle_s": 600, "absolute_s": 3600}) as w:
        client = await w.logged_in(await w.user(Role.STAFF))
        clock.advance(timedelta(seconds=599))
        assert (await client.get("/auth/me")).status_code == 200  # used: idle time restarts
        clock.advance(timedelta(seconds=599))
        assert (await client.get("/auth/me")).status_code == 200
        clock.advance(timedelta(seconds=600))

        response = await client.get("/auth/me")

        assert response.status_code == 401
        assert response.json()["detail"] == "the session has expired"
        clock.advance(timedelta(seconds=-600))  # gone for good, not just hidden
        assert (await client.get("/auth/me")).status_code == 401


async def test_a_busy_session_ends_at_its_absolute_expiry(tmp_path: Path) -> None:
    clock = ManualClock()
    async with api_world(tmp_path, clock=clock, session={"idle_s": 600, "absolute_s": 3600}) as w:
        client = await w.logged_in(await w.user(Role.STAFF))
        for _ in range(11):
            clock.advance(timedelta(seconds=300))
            assert (await client.get("/auth/me")).status_code == 200
        clock.advance(timedelta(seconds=299))
        assert (await client.get("/auth/me")).status_code == 200  # 3599 s after login
        clock.advance(timedelta(seconds=1))
        assert (await client.get("/auth/me")).status_code == 401


async def test_expired_sessions_are_purged(tmp_path: Path) -> None:
    clock = ManualClock()
    async with api_world(tmp_path, clock=clock, session={"idle_s": 600, "absolute_s": 3600}) as w:
        await w.logged_in(await w.user(Role.STAFF))
        await w.logged_in(await w.user(Role.STAFF))
        clock.advance(timedelta(seconds=300))
        fresh = await w.logged_in(await w.user(Role.STAFF))
        clock.advance(timedelta(seconds=400))

        purged = await w.sessions.purge(now=clock.now(), settings=w.settings.session)

        assert purged == 2
        assert (await fresh.get("/auth/me")).status_code == 200


# -- passwords --------------------------------------------------------------------------------


async def test_changing_the_password_ends_the_other_sessions(world: World) -> None:
    staff = await world.user(Role.STAFF)
    here = await world.logged_in(staff)
    elsewhere = await world.logged_in(staff)

    wrong = await here.post(
        "/auth/password", {"current_password": "not it at all", "new_password": NEW_PASSWORD}
    )
    weak = await here.post(
        "/auth/password", {"current_password": PASSWORD, "new_password": "Password123!"}
    )
    short = await here.post("/auth/password", {"current_password": PASSWORD, "new_password": "x"})
    done = await here.post(
        "/auth/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert wrong.status_code == 403
    assert weak.status_code == 422
    assert weak.json()["detail"] == "the password is too common"
    assert short.status_code == 422
    assert done.status_code == 204
    assert (await here.get("/auth/me")).status_code == 200
    assert (await elsewhere.get("/auth/me")).status_code == 401
    client = await world.client()
    assert (await client.login(staff.username)).status_code == 401
    assert (await client.login(staff.username, NEW_PASSWORD)).status_code == 200


async def test_a_hash_with_old_parameters_is_replaced_at_login(world: World) -> None:
    old = Passwords(PasswordSettings(time_cost=2, memory_kib=128, parallelism=1))
    staff = await world.user(Role.STAFF)
    await world.accounts.set_password_hash(
        staff.id, await old.hash(PASSWORD), now=world.clock.now()
    )
    before = await world.accounts.credentials(staff.username)
    assert before is not None
    assert "m=128,t=2,p=1" in before.password_hash

    client = await world.client()
    assert (await client.login(staff.username)).status_code == 200

    after = await world.accounts.credentials(staff.username)
    assert after is not None
    assert "m=64,t=1,p=1" in after.password_hash
    assert after.user.password_changed == before.user.password_changed
    assert (await (await world.client()).login(staff.username)).status_code == 200


# -- rate limiting ------------------------------------------------------------------------------


async def test_five_failures_lock_the_username_for_fifteen_minutes(tmp_path: Path) -> None:
    clock = ManualClock()
    async with api_world(tmp_path, clock=clock) as w:
        staff = await w.user(Role.STAFF)
        client = await w.client()
        for n in range(5):
            clock.advance(timedelta(seconds=10))
            assert (await client.login(staff.username, f"wrong guess {n}")).status_code == 401

        clock.advance(timedelta(seconds=10))
        locked = await client.login(staff.username)  # even the right password

        assert locked.status_code == 429
        # The first failure was 50 s ago: it ages out in 850 s.
        assert locked.headers["retry-after"] == "850"
        other = await w.user(Role.STAFF)
        assert (await client.login(other.username)).status_code == 200  # only that username
        clock.advance(timedelta(seconds=849))
        assert (await client.login(staff.username)).status_code == 429
        clock.advance(timedelta(seconds=1))
        assert (await client.login(staff.username)).status_code == 200


async def test_failures_from_one_address_lock_it_for_every_username(tmp_path: Path) -> None:
    clock = ManualClock()
    async with api_world(tmp_path, clock=clock, login_limit={"max_failures_per_address": 3}) as w:
        staff = await w.user(Role.STAFF)
        client = await w.client()
        for n in range(3):
            assert (await client.login(f"guess-{n}", "wrong guess")).status_code == 401

        locked = await client.login(staff.username)

        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) == 900
        entries = [e.event.action.value for e in await w.audit.query(_everything())]
        assert entries.count("login_failed") == 3
        assert "login_limited" in entries


async def test_a_success_clears_the_usernames_failures(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        staff = await w.user(Role.STAFF)
        client = await w.client()
        for _ in range(4):
            assert (await client.login(staff.username, "wrong guess")).status_code == 401
        assert (await client.login(staff.username)).status_code == 200
        for _ in range(4):
            assert (await client.login(staff.username, "wrong guess")).status_code == 401
        assert (await client.login(staff.username)).status_code == 200


async def test_wrong_current_passwords_count_as_failures(tmp_path: Path) -> None:
    async with api_world(tmp_path) as w:
        staff = await w.user(Role.STAFF)
        client = await w.logged_in(staff)
        attempt = {"current_password": "a wrong guess", "new_password": NEW_PASSWORD}
        for _ in range(5):
            assert (await client.post("/auth/password", attempt)).status_code == 403
        assert (await client.post("/auth/password", attempt)).status_code == 429


# -- timing -----------------------------------------------------------------------------------


async def test_an_unknown_username_costs_a_hash_like_a_known_one(tmp_path: Path) -> None:
    costly = {"time_cost": 2, "memory_kib": 16 * 1024, "parallelism": 1}
    async with api_world(
        tmp_path,
        passwords=costly,
        login_limit={"max_failures_per_user": 100, "max_failures_per_address": 100},
    ) as w:
        staff = await w.user(Role.STAFF)
        client = await w.client()

        async def timed(username: str) -> float:
            start = time.perf_counter()
            response = await client.login(username, "a wrong guess")
            assert response.status_code == 401
            return time.perf_counter() - start

        await timed("warm-up-unknown")  # the dummy hash is made once, on first use
        known = [await timed(staff.username) for _ in range(5)]
        unknown = [await timed(f"unknown-{n}") for n in range(5)]

    ratio = statistics.median(unknown) / statistics.median(known)
    print(
        f"median failed login: known {statistics.median(known) * 1e3:.1f} ms, "
        f"unknown {statistics.median(unknown) * 1e3:.1f} ms, ratio {ratio:.2f}"
    )
    assert ratio > 0.5


# -- passwords stay secret ----------------------------------------------------------------------


def _every_file(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.rglob("*") if path.is_file())


def _everything() -> AuditQuery:
    return AuditQuery(limit=10_000)


async def test_passwords_never_reach_logs_audit_databases_or_error_bodies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = {
        "first": "first secret passphrase 0xA1",
        "second": "second secret passphrase 0xB2",
        "wrong": "wrong secret passphrase 0xC3",
        "created": "created secret passphrase 0xD4",
        "refused": "refused secret 0xE5",
    }
    async with api_world(tmp_path, passwords={"min_length": 20}) as w:
        assert w.admin is not None
        staff = await w.user(Role.STAFF, password=secrets["first"])
        client = await w.client()
        bodies = [
            await client.login(staff.username, secrets["wrong"]),
            await client.login("unknown-user", secrets["wrong"]),
            await client.login(staff.username, secrets["first"]),
        ]
        client.csrf = bodies[-1].json()["csrf_token"]
        bodies += [
            await client.post(
                "/auth/password",
                {"current_password": secrets["wrong"], "new_password": secrets["second"]},
            ),
            await client.post(
                "/auth/password",
                {"current_password": secrets["first"], "new_password": secrets["refused"]},
            ),
            await client.post(
                "/auth/password",
                {"current_password": secrets["first"], "new_password": secrets["second"]},
            ),
        ]
        admin = await w.logged_in(w.admin)
        bodies += [
            await admin.post(
                "/users",
                {
                    "username": "made-here",
                    "password": secrets["created"],
                    "role": "staff",
                    "sites": [HOME],
                },
            ),
            await admin.post(  # refused by validation: the body must not echo the input
                "/users",
                {"username": "x", "password": secrets["created"], "role": "nobody", "sites": []},
            ),
            await client.http.post(
                f"{API}/auth/login",
                json={"username": staff.username, "password": secrets["wrong"], "extra": 1},
            ),
        ]
        for _ in range(6):
            bodies.append(await client.login(staff.username, secrets["wrong"]))
        assert [b.status_code for b in bodies[:9]] == [401, 401, 200, 403, 422, 204, 201, 422, 422]
        assert bodies[-1].status_code == 429
        audit = await w.audit.query(_everything())

    files = _every_file(tmp_path)
    for secret in secrets.values():
        assert secret not in caplog.text
        assert secret.encode() not in files
        assert all(secret not in body.text for body in bodies)
        assert all(secret not in repr(entry) for entry in audit)
    assert "login failed" in caplog.text  # the logs were captured
