"""Cloud settings (TOML file, environment overrides, refusals) and the command line's exit
statuses for configuration errors."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.__main__ import EXIT_CONFIG, main
from cloud.errors import SettingsError
from cloud.settings import EXAMPLE_TOML, CloudSettings, StoreKind, UnknownDevicePolicy
from vitals.logs import JsonFormatter, KeyValueFormatter


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CAREWATCH_"):
            monkeypatch.delenv(key)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers  # main() configures logging for its process
    root.setLevel(level)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_loads(tmp_path: Path) -> None:
    settings = CloudSettings.load(write(tmp_path, EXAMPLE_TOML))

    assert settings.mqtt.client_id == "carewatch-ingest-1"
    assert settings.mqtt.tls
    assert settings.mqtt.port == 8883
    assert settings.store.kind is StoreKind.INFLUXDB
    assert settings.store.batch_size == 5000
    assert settings.registry.sites == (Path("/etc/carewatch/sites"),)
    assert settings.registry.unknown_device is UnknownDevicePolicy.STORE


def test_defaults_without_a_file() -> None:
    settings = CloudSettings.load(None)
    assert settings.mqtt.url.host == "localhost"
    assert settings.mqtt.port == 1883
    assert settings.mqtt.receive_maximum == 512
    assert settings.store.batch_interval_s == 0.1
    assert settings.metrics.enabled


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[store]\nkind = "sqlite"\nbatch_size = 100\n')
    monkeypatch.setenv("CAREWATCH_STORE__BATCH_SIZE", "250")
    monkeypatch.setenv("CAREWATCH_STORE__TOKEN", "a-real-token-value")
    monkeypatch.setenv("CAREWATCH_MQTT__CLIENT_ID", "ingest-7")

    settings = CloudSettings.load(path)

    assert settings.store.kind is StoreKind.SQLITE
    assert settings.store.batch_size == 250
    assert settings.store.token is not None
    assert settings.store.token.get_secret_value() == "a-real-token-value"
    assert "a-real-token-value" not in repr(settings)
    assert settings.mqtt.client_id == "ingest-7"


def test_site_paths_are_relative_to_the_settings_file(tmp_path: Path) -> None:
    settings = CloudSettings.load(write(tmp_path, '[registry]\nsites = ["sites", "/abs.toml"]\n'))
    assert settings.registry.sites == (tmp_path / "sites", Path("/abs.toml"))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[mqtt]\nurl = 'http://x'\n", "mqtt.url"),
        ("[mqtt]\nreceive_maximum = 0\n", "mqtt.receive_maximum"),
        ("[mqtt]\nclient_id = 'has space'\n", "mqtt.client_id"),
        ("[mqtt]\nreconnect_min_s = 5\nreconnect_max_s = 1\n", "reconnect_max_s"),
        ("[store]\nkind = 'mongodb'\n", "store.kind"),
        ("[store]\nbatch_sise = 10\n", "store.batch_sise"),
        ("[store]\ntoken = 'abc-real'\nusername = 'u'\n", "not both"),
        ("[mqtt]\nusername = 'u'\npassword = 'changeme'\n", "placeholder"),
        ("[store]\ntoken = 'token'\n", "placeholder"),
        ("[alerts]\nx = 1\n", "alerts"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        CloudSettings.load(write(tmp_path, text))


def test_placeholders_are_allowed_in_the_demo(tmp_path: Path) -> None:
    settings = CloudSettings.load(
        write(tmp_path, "demo = true\n[mqtt]\nusername = 'u'\npassword = 'changeme'\n")
    )
    assert settings.demo


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        CloudSettings.load(tmp_path / "missing.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        CloudSettings.load(write(tmp_path, "[store\n"))


def test_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "--config", str(write(tmp_path, "[store]\nbatch_size = -1\n"))]) == 2
    assert "store.batch_size" in capsys.readouterr().err
    assert main(["ingest", "--config", str(tmp_path / "missing.toml")]) == EXIT_CONFIG


def test_a_bad_site_file_exits_2(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('id = "bad site"\n')
    config = write(
        tmp_path,
        f"[registry]\nsites = [{json.dumps(str(site))}]\n"
        f'[store]\nkind = "sqlite"\npath = {json.dumps(str(tmp_path / "v.sqlite3"))}\n'
        "[metrics]\nenabled = false\n",
    )
    assert main(["ingest", "--config", str(config)]) == EXIT_CONFIG


def test_an_unknown_service_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as usage:
        main(["nonsense"])
    assert usage.value.code == 2


def test_log_lines_are_one_event_each() -> None:
    record = logging.makeLogRecord(
        {"name": "cloud.x", "levelname": "INFO", "msg": 'a "quoted"\nline %d', "args": (3,)}
    )

    kv = KeyValueFormatter().format(record)
    as_json = json.loads(JsonFormatter().format(record))

    assert "\n" not in kv
    assert kv.endswith('level=INFO logger=cloud.x msg="a \\"quoted\\"\\nline 3"')
    assert as_json["msg"] == 'a "quoted"\nline 3'
    assert as_json["level"] == "INFO"
