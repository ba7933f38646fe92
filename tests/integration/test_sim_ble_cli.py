"""``python -m firmware_sim``: exit codes, messages, a short run, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]

SITE = """
id = "cli-test"
name = "CLI test home"
timezone = "UTC"

[[residents]]
id = "r01"
devices = [
    { id = "r01-hr", kind = "wearable" },
    { id = "r01-temp", kind = "thermometer" },
    { id = "r01-pendant", kind = "pendant" },
]

[[scenarios]]
kind = "help_button"
resident = "r01"
start = "5s"
"""


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware_sim", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "-3"], "--speed must be a positive number"),
        (["--duration", "soon"], "'soon' is not a duration"),
        (["--listen", "usb:0"], "--listen: expected tcp-server:HOST:PORT or unix-server:PATH"),
        (["--scenario", "fever:r09@10m"], "unknown resident 'r09'"),
        (["--scenario", "flu:r01@1m"], "unknown kind 'flu'"),
        (["--start", "2025-01-01T08:00"], "needs an offset"),
        (["--seed", "many"], "invalid int value: 'many'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    site: Path, args: list[str], message: str
) -> None:
    result = run("--site", str(site), "--no-table", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_site_file_exits_2_naming_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SITE.replace('kind = "wearable"', 'kind = "toaster"'), encoding="utf-8")
    result = run("--site", str(bad), "--no-table")
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "r01-hr" in result.stderr
    assert "kind" in result.stderr
    missing = run("--site", str(tmp_path / "nowhere.toml"), "--no-table")
    assert missing.returncode == 2
    assert "cannot read it" in missing.stderr


def test_a_short_run_exits_0_and_writes_its_files(site: Path, tmp_path: Path) -> None:
    record, truth = tmp_path / "sent.jsonl", tmp_path / "truth.jsonl"
    result = run(
        "--site",
        str(site),
        "--no-table",
        "--speed",
        "20",
        "--duration",
        "30s",
        "--start",
        "2025-03-10T08:00:00Z",
        "--listen",
        "tcp-server:127.0.0.1:0",
        "--record",
        str(record),
        "--truth",
        str(truth),
    )
    assert result.returncode == 0, result.stderr
    assert "hci: tcp-client:127.0.0.1:" in result.stderr
    assert record.exists()  # nobody connected: nothing delivered, but the file is there
    events = [json.loads(line) for line in truth.read_text().splitlines()]
    assert [(e["kind"], e["resident"], e["device"]) for e in events] == [
        ("help_button", "r01", "r01-pendant")
    ]
    assert events[0]["started"] == "2025-03-10T08:00:05+00:00"


async def test_sigterm_stops_it_cleanly(site: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_sim",
        "--site",
        str(site),
        "--no-table",
        "--listen",
        "tcp-server:127.0.0.1:0",
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while True:
            line = await process.stderr.readline()
            assert line, "the simulator ended before it listened"
            if line.startswith(b"hci: "):
                break
        process.send_signal(signal.SIGTERM)
        rest = await process.stderr.read()
        assert await process.wait() == 0, rest.decode()
    assert b"simulator stopped" in rest
