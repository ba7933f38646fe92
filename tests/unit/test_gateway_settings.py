"""Gateway settings: TOML file, environment overrides, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import SettingsError
from gateway.settings import FullPolicy, GatewaySettings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "gateway" / "gateway.toml"

TOML = """
site = "home-12"
gateway = "gw-1"
timezone = "Europe/Berlin"

[mqtt]
url = "mqtts://broker.example.org"
username = "gw-1"
password = "s3cret-enough"
ca_file = "/etc/carewatch/ca.pem"
batch_size = 200
max_in_flight = 6

[outbox]
path = "/tmp/outbox.sqlite3"
max_rows = 5000
policy = "refuse_new"

[status]
heartbeat_s = 15
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CAREWATCH_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_from_toml(tmp_path: Path) -> None:
    settings = GatewaySettings.load(write(tmp_path, TOML))
    assert (settings.site, settings.gateway, settings.timezone) == (
        "home-12",
        "gw-1",
        "Europe/Berlin",
    )
    assert settings.mqtt.tls
    assert (settings.mqtt.host, settings.mqtt.port) == ("broker.example.org", 8883)
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "s3cret-enough"
    assert "s3cret" not in repr(settings)
    assert settings.mqtt.batch_size == 200
    assert settings.outbox.policy is FullPolicy.REFUSE_NEW
    assert settings.outbox.max_rows == 5000
    assert settings.status.heartbeat_s == 15
    assert settings.recorder.flush_interval_s == 0.05  # defaults fill the rest


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREWATCH_MQTT__URL", "mqtt://127.0.0.1:1884")
    monkeypatch.setenv("CAREWATCH_OUTBOX__MAX_ROWS", "777")
    monkeypatch.setenv("CAREWATCH_GATEWAY", "gw-2")
    settings = GatewaySettings.load(
        write(tmp_path, TOML.replace('ca_file = "/etc/carewatch/ca.pem"\n', ""))
    )
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls) == ("127.0.0.1", 1884, False)
    assert settings.outbox.max_rows == 777
    assert settings.outbox.policy is FullPolicy.REFUSE_NEW  # the file's, not overridden
    assert settings.gateway == "gw-2"
    assert settings.mqtt.username == "gw-1"


def test_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREWATCH_SITE", "s1")
    monkeypatch.setenv("CAREWATCH_GATEWAY", "g1")
    settings = GatewaySettings.load(None)
    assert (settings.mqtt.host, settings.mqtt.port) == ("localhost", 1883)


@pytest.mark.parametrize("secret", ["changeme", "CHANGEME", "password", " secret ", ""])
def test_placeholder_password_is_refused_outside_the_demo(tmp_path: Path, secret: str) -> None:
    text = TOML.replace('"s3cret-enough"', f'"{secret}"')
    with pytest.raises(SettingsError, match="placeholder") as refused:
        GatewaySettings.load(write(tmp_path, text))
    assert refused.value.errors == (
        "settings: mqtt.password is a placeholder: set a real secret (or demo = true for the demo)",
    )
    demo = GatewaySettings.load(write(tmp_path, "demo = true\n" + text))
    assert demo.demo


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("gw-1", "gw/1"), "gateway"),
        (('"Europe/Berlin"', '"Mars/Olympus"'), "timezone"),
        (("mqtts://broker.example.org", "http://broker.example.org"), "mqtt.url"),
        (("batch_size = 200", "batch_size = 6000"), "mqtt.batch_size"),
        (('policy = "refuse_new"', 'policy = "drop_everything"'), "outbox.policy"),
        (("heartbeat_s = 15", "heartbeat_s = 15\nheartbeat = 3"), "status.heartbeat"),
        (("mqtts://", "mqtt://"), "mqtt"),  # a CA file for a plain connection
    ],
)
def test_invalid_settings_name_the_field(
    tmp_path: Path, change: tuple[str, str], field: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        GatewaySettings.load(write(tmp_path, TOML.replace(*change)))
    assert any(line.startswith(field) for line in refused.value.errors), refused.value.errors


def test_unreadable_and_malformed_files_are_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        GatewaySettings.load(tmp_path / "missing.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        GatewaySettings.load(write(tmp_path, "site = \n"))


def test_the_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GatewaySettings.load(EXAMPLE)
    assert settings.site
    assert settings.outbox.policy is FullPolicy.DROP_OLDEST_CONTINUOUS
