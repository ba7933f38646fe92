"""cloud.api.settings (validation, loading the ``[api]`` section), cloud.api.directory (site
files) and cloud.api.devices (the device status board)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cloud.api.devices import DeviceStatusBoard
from cloud.api.directory import SiteFileDirectory, parse_site_data
from cloud.api.errors import DirectoryError
from cloud.api.settings import ApiSettings, is_loopback, load_api_config
from cloud.errors import SettingsError
from cloud.settings import StoreKind
from vitals.wire import DeviceState, GatewayState, Status

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SEEDS = Path(__file__).resolve().parents[2] / "seeds"

# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("api.example.org", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_insecure_cookies_only_on_loopback() -> None:
    ApiSettings(host="127.0.0.1", session={"cookie_secure": False})
    ApiSettings(host="0.0.0.0")
    with pytest.raises(ValidationError, match="only allowed on a loopback host"):
        ApiSettings(host="0.0.0.0", session={"cookie_secure": False})


def test_cookie_names() -> None:
    assert ApiSettings().session.cookie_name == "__Host-carewatch_session"
    insecure = ApiSettings(session={"cookie_secure": False})
    assert insecure.session.cookie_name == "carewatch_session"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"session": {"idle_s": 7200, "absolute_s": 3600}}, "idle_s is longer"),
        ({"passwords": {"memory_kib": 16, "parallelism": 4}}, "at least 8 \\* parallelism"),
        ({"passwords": {"min_length": 7}}, "greater than or equal to 8"),
        ({"login_limit": {"max_failures_per_user": 0}}, "greater than or equal to 1"),
        ({"port": 70000}, "less than or equal to 65535"),
        ({"nonsense": 1}, "Extra inputs"),
    ],
)
def test_invalid_settings(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ApiSettings.model_validate(data)


def test_the_api_section_is_read_next_to_the_store(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(
        """
demo = true
[store]
kind = "sqlite"
path = "/tmp/x.sqlite3"
[api]
port = 9000
database = "db/api.sqlite3"
sites = ["sites", "/etc/carewatch/sites"]
[api.session]
idle_s = 60
absolute_s = 600
""",
        encoding="utf-8",
    )

    api, cloud = load_api_config(path)

    assert api.port == 9000
    assert api.database == tmp_path / "db/api.sqlite3"
    assert api.audit_database == Path("/var/lib/carewatch/audit.sqlite3")
    assert api.sites == (tmp_path / "sites", Path("/etc/carewatch/sites"))
    assert (api.session.idle_s, api.session.absolute_s) == (60, 600)
    assert cloud.demo
    assert cloud.store.kind is StoreKind.SQLITE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[api]\nport = -1\n", "api.port"),
        ("[api\n", "not valid TOML"),
        ("api = 3\n", "api: Input should be a valid dictionary"),
        ("[store]\nkind = 'paper'\n", "store.kind"),
    ],
)
def test_bad_files_raise_settings_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=expected):
        load_api_config(path)


def test_a_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_api_config(tmp_path / "nowhere.toml")


# -- the directory ----------------------------------------------------------------------------


def test_a_site_with_its_residents_records_and_devices() -> None:
    site = parse_site_data(
        {
            "id": "home-a",
            "name": "Home A",
            "timezone": "Europe/London",
            "residents": [
                {
                    "id": "r02",
                    "name": "Bob",
                    "room": 14,
                    "age": 81,
                    "weight": 77.5,
                    "on_oxygen": True,
                    "heart_rate": 66,  # the simulator's, not shown
                    "devices": [{"id": "bp", "kind": "bp_cuff", "user_id": 2}],
                },
                {"id": "r01", "devices": [{"id": "hr", "kind": "wearable"}]},
            ],
        }
    )

    assert (site.id, site.name, site.timezone) == ("home-a", "Home A", "Europe/London")
    assert [r.id for r in site.residents] == ["r01", "r02"]
    bob = site.residents[1]
    assert (bob.name, bob.room) == ("Bob", "14")
    assert bob.record == (("age", 81), ("weight", 77.5), ("on_oxygen", True))
    assert [(d.id, d.kind, d.user) for d in bob.devices] == [("bp", "bp_cuff", 2)]
    assert site.residents[0].name is None


@pytest.mark.parametrize(
    ("resident", "problem"),
    [
        ({"id": "r01", "age": "old"}, "r01].age: expected int"),
        ({"id": "r01", "age": True}, "r01].age: expected int"),
        ({"id": "r01", "copd": 1}, "r01].copd: expected bool"),
        ({"id": "r01", "name": ""}, "r01].name: expected printable text"),
        ({"id": "r01", "name": "a\nb"}, "r01].name: expected printable text"),
        ({"id": "bad id"}, "residents[0].id"),
        ({"id": "r01", "devices": [{"id": "x", "user_id": 300}]}, "user_id"),
    ],
)
def test_invalid_residents_are_refused(resident: dict[str, Any], problem: str) -> None:
    with pytest.raises(DirectoryError) as caught:
        parse_site_data({"id": "home-a", "residents": [resident]}, "home-a.toml")
    assert any(problem in line for line in caught.value.errors), caught.value.errors


def test_the_seed_sites_load() -> None:
    directory = SiteFileDirectory([SEEDS])
    roster = directory.refresh_now()

    oak = roster.site("oak-house")
    assert oak is not None
    assert oak.name == "Oak House"
    assert len(oak.residents) == 12
    r01 = roster.resident("oak-house", "r01")
    assert r01 is not None
    assert dict(r01.record)["age"] == 86
    assert {d.id for d in r01.devices} >= {"r01-hr", "r01-bp"}
    assert roster.resident("test-home", "r01") is not None  # same id, other site


async def test_a_failed_refresh_keeps_the_previous_sites(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('id = "home-a"\nname = "A"\n', encoding="utf-8")
    directory = SiteFileDirectory([tmp_path])
    await directory.refresh()
    (tmp_path / "b.toml").write_text('id = "home-a"\n', encoding="utf-8")  # the same id again

    with pytest.raises(DirectoryError, match="also defined"):
        await directory.refresh()

    assert [site.id for site in await directory.sites()] == ["home-a"]
    missing = SiteFileDirectory([tmp_path / "nowhere"])
    with pytest.raises(DirectoryError, match="no such file"):
        missing.refresh_now()


# -- device status ----------------------------------------------------------------------------


def status(gateway: str, state: GatewayState, *devices: DeviceState) -> Status:
    return Status(site="home-a", gateway=gateway, state=state, devices=devices)


async def test_the_board_keeps_the_last_status_of_each_device() -> None:
    board = DeviceStatusBoard()
    board.update(
        status(
            "gw-1",
            GatewayState.ONLINE,
            DeviceState(device="hr", connected=True, battery=80),
            DeviceState(device="ox", connected=False),
        ),
        received=T0,
    )
    board.update(
        status("gw-2", GatewayState.ONLINE, DeviceState(device="hr", connected=True, battery=79)),
        received=T0 + timedelta(seconds=5),
    )

    found = await board.statuses("home-a")

    assert found["hr"].gateway == "gw-2"  # the newer report wins
    assert found["hr"].battery == 79
    assert found["ox"].connected is False
    assert await board.statuses("home-b") == {}


async def test_an_offline_gateway_leaves_its_devices_disconnected() -> None:
    board = DeviceStatusBoard()
    board.update(
        status("gw-1", GatewayState.ONLINE, DeviceState(device="hr", connected=True, battery=80)),
        received=T0,
    )
    board.update(status("gw-1", GatewayState.OFFLINE), received=T0 + timedelta(minutes=1))

    hr = (await board.statuses("home-a"))["hr"]

    assert (hr.connected, hr.gateway_state, hr.battery) == (False, GatewayState.OFFLINE, 80)
    assert hr.updated == T0 + timedelta(minutes=1)


async def test_the_board_is_bounded() -> None:
    board = DeviceStatusBoard(max_gateways=1)
    board.update(status("gw-1", GatewayState.ONLINE), received=T0)
    board.update(
        status("gw-2", GatewayState.ONLINE, DeviceState(device="x", connected=True)), received=T0
    )
    assert board.dropped == 1
    assert await board.statuses("home-a") == {}
