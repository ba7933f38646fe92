"""firmware_sim.site: the demo home, the test home, and clear errors for bad site files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from firmware_sim import SimulatorError
from firmware_sim.scenarios import FeverSpec, HelpButtonSpec, ScenarioError
from firmware_sim.site import SEEDS_DIR, SiteError, find_site, load_site, parse_site
from vitals.devices import DeviceKind


def test_the_demo_home_loads() -> None:
    site = load_site(SEEDS_DIR / "oak-house.toml")
    assert site.id == "oak-house"
    assert str(site.zone) == "Europe/London"
    assert [r.id for r in site.residents] == [f"r{i:02d}" for i in range(1, 13)]
    kinds = {device.kind for _, device in site.devices()}
    assert kinds == set(DeviceKind)
    with_scenario = {spec.resident for spec in site.scenarios}
    assert len({r.id for r in site.residents} - with_scenario) >= 3
    assert any(r.copd and r.on_oxygen for r in site.residents)
    assert any(r.glucose is not None for r in site.residents)
    starts = sorted(spec.start for spec in site.scenarios if isinstance(spec.start, dt.timedelta))
    assert starts[0] <= dt.timedelta(seconds=30)
    for resident, device in site.devices():
        assert device.id.startswith(f"{resident.id}-")


def test_the_test_home_loads() -> None:
    site = load_site(find_site("test-home"))
    assert [r.id for r in site.residents] == ["r01", "r02", "r03"]
    assert {d.kind for d in site.resident("r01").devices} == set(DeviceKind)
    assert isinstance(site.scenarios[0], HelpButtonSpec)
    assert isinstance(site.scenarios[1], FeverSpec)
    assert site.scenarios[1].start == dt.timedelta(minutes=10)


def test_defaults_fill_in() -> None:
    site = parse_site('id = "x"\nname = "X"\n[[residents]]\nid = "a1"\n')
    resident = site.residents[0]
    assert resident.sleep == (dt.time(22, 0), dt.time(7, 0))
    assert site.schedules.for_kind(DeviceKind.BP_CUFF) == (dt.time(8), dt.time(18))
    assert site.schedules.for_kind(DeviceKind.WEARABLE) == ()
    assert resident.profile().spo2_scale == 1


def test_find_site() -> None:
    assert find_site("oak-house") == SEEDS_DIR / "oak-house.toml"
    assert find_site("some/where.toml") == Path("some/where.toml")


HEAD = 'id = "t"\nname = "T"\ntimezone = "Europe/London"\n'
ONE = HEAD + '[[residents]]\nid = "r01"\ndevices = [{ id = "r01-hr", kind = "wearable" }]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            HEAD + '[[residents]]\nid = "r01"\ndevices = [{ id = "r01-x", kind = "toaster" }]\n',
            "residents[r01].devices[r01-x].kind: Input should be 'wearable'",
            id="unknown-device-kind",
        ),
        pytest.param(
            HEAD + '[[residents]]\nid = "r01"\n[[residents]]\nid = "r01"\n',
            "residents[r01]: duplicate resident id",
            id="duplicate-resident",
        ),
        pytest.param(
            ONE + '[[residents]]\nid = "r02"\ndevices = [{ id = "r01-hr", kind = "pendant" }]\n',
            "residents[r02].devices[r01-hr]: duplicate device id (also a device of r01)",
            id="duplicate-device",
        ),
        pytest.param(
            ONE + '[[scenarios]]\nkind = "fever"\nresident = "r99"\nstart = "10m"\n',
            "scenarios[0]: fever:r99@10m: unknown resident 'r99' (known: r01)",
            id="unknown-resident",
        ),
        pytest.param(
            ONE + '[[scenarios]]\nkind = "fever"\nresident = "r01"\nstart = "10 minutes"\n',
            "scenarios[0].start: '10 minutes' is neither an offset",
            id="bad-offset",
        ),
        pytest.param(
            ONE + '[[scenarios]]\nkind = "fever"\nresident = "r01"\nstart = "1m"\npeak = 50\n',
            "scenarios[0].peak: Input should be less than or equal to 42",
            id="bad-parameter",
        ),
        pytest.param(
            ONE + '[[scenarios]]\nkind = "flood"\nresident = "r01"\nstart = "1m"\n',
            "scenarios[0]: Input tag 'flood' found using 'kind' does not match",
            id="unknown-scenario-kind",
        ),
        pytest.param(
            ONE + '[[scenarios]]\nkind = "help_button"\nresident = "r01"\nstart = "1m"\n',
            "help_button needs a pendant, and 'r01' has none",
            id="help-without-pendant",
        ),
        pytest.param(
            ONE + '[[scenarios]]\nkind = "sensor_removed"\nresident = "r01"\n'
            'device = "r01-temp"\nstart = "1m"\n',
            "device 'r01-temp' is not one of the devices of resident 'r01' (r01-hr)",
            id="scenario-device-not-the-residents",
        ),
        pytest.param(
            HEAD.replace("Europe/London", "Europe/Atlantis") + '[[residents]]\nid = "r01"\n',
            "timezone: 'Europe/Atlantis' is not an IANA time zone",
            id="bad-time-zone",
        ),
        pytest.param(
            HEAD + '[[residents]]\nid = "r01"\nshoe_size = 7\n',
            "residents[r01].shoe_size: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            HEAD + '[[residents]]\nid = "r01"\nspo2 = 90\n',
            "spo2 below 93 % at baseline needs copd = true",
            id="low-spo2-without-copd",
        ),
        pytest.param(
            HEAD + '[[residents]]\nid = "r01"\nsleep = "22:00"\n',
            "residents[r01].sleep: '22:00' is not a sleep window like 22:00-07:00",
            id="bad-sleep-window",
        ),
        pytest.param(
            HEAD + '[[residents]]\nid = "r01"\ndevices = [{ id = "g", kind = "glucose_meter" }]\n',
            "a resident with a glucose meter needs a fasting glucose baseline",
            id="glucose-meter-without-glucose",
        ),
        pytest.param(
            HEAD + '[schedules]\nscale = ["7am"]\n[[residents]]\nid = "r01"\n',
            "schedules.scale[0]: '7am' is not a time of day like 07:30",
            id="bad-schedule",
        ),
        pytest.param(
            HEAD + '[[residents]]\nid = "r 01"\n',
            "residents[r 01].id: String should match pattern",
            id="bad-id",
        ),
        pytest.param(HEAD + "residents = [\n", "not valid TOML", id="toml-syntax"),
        pytest.param(HEAD, "residents: Field required", id="no-residents"),
        pytest.param(HEAD + "residents = []\n", "a site needs at least one resident", id="empty"),
    ],
)
def test_bad_site_files_are_refused_clearly(text: str, expected: str) -> None:
    with pytest.raises(SiteError) as caught:
        parse_site(text, source="bad.toml")
    message = str(caught.value)
    assert message.startswith("bad.toml: invalid site file:")
    assert expected in message, message
    assert isinstance(caught.value, SimulatorError)
    assert caught.value.source == "bad.toml"
    assert any(expected in line for line in caught.value.errors)


def test_several_problems_are_all_reported() -> None:
    text = (
        HEAD
        + '[[residents]]\nid = "r01"\nheart_rate = 300\n'
        + 'devices = [{ id = "d", kind = "toaster" }]\n'
        + '[[scenarios]]\nkind = "fever"\nresident = "r01"\nstart = "soon"\n'
    )
    with pytest.raises(SiteError) as caught:
        parse_site(text)
    assert len(caught.value.errors) == 3


def test_a_missing_file_is_a_site_error(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="cannot read it"):
        load_site(tmp_path / "nowhere.toml")


def test_check_scenario_against_the_site() -> None:
    site = load_site(SEEDS_DIR / "test-home.toml")
    spec = FeverSpec(resident="r09", start=dt.timedelta(minutes=1))
    with pytest.raises(ScenarioError, match="unknown resident 'r09'"):
        site.check_scenario(spec)
    assert site.check_scenario(HelpButtonSpec(resident="r01", start=dt.timedelta(0))) == (
        "r01-pendant"
    )
