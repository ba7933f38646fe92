"""``python -m cloud.api`` as a process: creating the first administrator, refusing to start
without one, serving on a free port, stopping cleanly on SIGTERM, and refusing bad settings."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.harness import poll_until
from tests.integration.test_api_support import PASSWORD, write_site_files

pytestmark = pytest.mark.integration

WITHIN = 60.0
CONFIG = """\
demo = {demo}

[store]
kind = "sqlite"
path = "{folder}/vitals.sqlite3"

[log]
level = "INFO"

[api]
host = "127.0.0.1"
port = 0
database = "api.sqlite3"
audit_database = "audit.sqlite3"
sites = ["sites"]
{extra}

[api.session]
cookie_secure = false

[api.passwords]
time_cost = 1
memory_kib = 64
parallelism = 1
"""


def config(folder: Path, *, demo: bool = False, extra: str = "") -> Path:
    write_site_files(folder)
    path = folder / "cloud.toml"
    text = CONFIG.format(demo=str(demo).lower(), folder=folder.as_posix(), extra=extra)
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud.api", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WITHIN,
        check=False,
    )


def create_admin(path: Path, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return run(
        "create-admin",
        "--config",
        str(path),
        "--username",
        "root",
        "--site",
        "home-a",
        "--password-stdin",
        stdin=password + "\n",
    )


class Served:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def url(self) -> str:
        def check() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"the API exited: {self.text()}")
            found = re.search(r"api listening url=(http://[0-9.]+:\d+)", self.text())
            return found.group(1) if found else None

        return poll_until(check, within=WITHIN, what="the API listening")


@contextmanager
def serving(path: Path, log: Path) -> Iterator[Served]:
    """``python -m cloud.api serve`` as a child process, killed at exit if still running."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cloud.api", "serve", "--config", str(path)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Served(process, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WITHIN)


def test_create_admin_once(tmp_path: Path) -> None:
    path = config(tmp_path)

    first = create_admin(path)
    second = create_admin(path)

    assert first.returncode == 0, first.stderr
    assert "created administrator id=1 username=root" in first.stdout
    assert second.returncode == 2
    assert "an administrator exists already" in second.stderr


def test_create_admin_refuses_a_weak_password_without_echoing_it(tmp_path: Path) -> None:
    path = config(tmp_path)

    result = create_admin(path, "Welcome2024!")

    assert result.returncode == 2
    assert "too common" in result.stderr
    assert "Welcome2024!" not in result.stderr + result.stdout


def test_the_api_refuses_to_start_without_an_admin(tmp_path: Path) -> None:
    path = config(tmp_path)

    result = run("serve", "--config", str(path))

    assert result.returncode == 2
    assert "no administrator account" in result.stderr
    assert "create-admin" in result.stderr


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    path = config(tmp_path, extra='unknown_key = "x"')

    result = run("serve", "--config", str(path))

    assert result.returncode == 2
    assert "api.unknown_key" in result.stderr


def test_insecure_cookies_off_loopback_are_refused(tmp_path: Path) -> None:
    path = config(tmp_path)
    path.write_text(
        path.read_text(encoding="utf-8").replace('host = "127.0.0.1"', 'host = "0.0.0.0"'),
        encoding="utf-8",
    )

    result = run("serve", "--config", str(path))

    assert result.returncode == 2
    assert "cookie_secure" in result.stderr


def test_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = config(tmp_path)
    assert create_admin(path).returncode == 0
    with serving(path, tmp_path / "api.log") as served:
        with httpx.Client(base_url=served.url(), timeout=WITHIN) as client:
            assert client.get("/api/openapi.json").status_code == 200
            login = client.post(
                "/api/v1/auth/login", json={"username": "root", "password": PASSWORD}
            )
            assert login.status_code == 200
            assert client.get("/api/v1/sites").json() == [
                {"id": "home-a", "name": "Home A", "timezone": "Europe/London"}
            ]

        served.process.send_signal(signal.SIGTERM)

        assert served.process.wait(timeout=WITHIN) == 0
        assert "api stopped" in served.text()
        assert PASSWORD not in served.text()


def test_the_demo_starts_without_an_admin(tmp_path: Path) -> None:
    path = config(tmp_path, demo=True)
    with serving(path, tmp_path / "api.log") as served:
        with httpx.Client(base_url=served.url(), timeout=WITHIN) as client:
            assert client.get("/api/v1/auth/me").status_code == 401

        served.process.send_signal(signal.SIGINT)

        assert served.process.wait(timeout=WITHIN) == 0
