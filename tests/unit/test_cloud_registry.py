"""The device registry: site files (the seeds' layout) and who a reading belongs to."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.errors import RegistryError
from cloud.registry import DeviceEntry, Directory, SiteFileRegistry, parse_site

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def test_the_demo_and_test_homes_load() -> None:
    directory = SiteFileRegistry([SEEDS / "oak-house.toml", SEEDS / "test-home.toml"]).load_now()

    assert directory.sites == {"oak-house", "test-home"}
    assert directory.resident("oak-house", "r01-hr", None) == "r01"
    assert directory.resident("oak-house", "r04-bp", 2) == "r04"  # user_id = 2 in the seed
    assert directory.resident("test-home", "r02-spo2", None) == "r02"
    assert directory.resident("test-home", "r01-hr", None) == "r01"
    assert directory.resident("oak-house", "no-such-device", None) is None
    assert directory.resident("no-such-home", "r01-hr", None) is None


async def test_a_folder_of_site_files_loads(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('id = "a"\n[[residents]]\nid = "r1"\n'
                                     'devices = [{ id = "d1", kind = "wearable" }]\n')  # fmt: skip
    (tmp_path / "b.toml").write_text(
        '[site]\nid = "b"\n[[residents]]\nid = "r2"\n[[residents.devices]]\nid = "d2"\n'
        'kind = "scale"\nuser = 1\n'
    )
    (tmp_path / "notes.txt").write_text("not a site")

    directory = await SiteFileRegistry([tmp_path]).load()

    assert directory.sites == {"a", "b"}
    assert directory.resident("a", "d1", None) == "r1"
    assert directory.resident("b", "d2", 1) == "r2"
    assert len(directory) == 2


@pytest.mark.parametrize(
    ("entries", "device", "user", "expected"),
    [
        # a personal device: whatever user index it reports
        ([("r1", None)], "d", None, "r1"),
        ([("r1", None)], "d", 3, "r1"),
        # a personal device registered with its user index
        ([("r1", 1)], "d", 1, "r1"),
        ([("r1", 1)], "d", None, "r1"),
        ([("r1", 1)], "d", 2, None),  # someone else used it
        # a shared cuff
        ([("r1", 1), ("r2", 2)], "d", 1, "r1"),
        ([("r1", 1), ("r2", 2)], "d", 2, "r2"),
        ([("r1", 1), ("r2", 2)], "d", 3, None),
        ([("r1", 1), ("r2", 2)], "d", None, None),  # ambiguous
        # one resident listed twice with two user slots
        ([("r1", 1), ("r1", 2)], "d", None, "r1"),
        ([("r1", None)], "other", None, None),
    ],
)
def test_resolution(
    entries: list[tuple[str, int | None]], device: str, user: int | None, expected: str | None
) -> None:
    directory = Directory.of(DeviceEntry("s", resident, "d", u) for resident, u in entries)
    assert directory.resident("s", device, user) == expected


@pytest.mark.parametrize(
    "entries",
    [
        [("r1", None), ("r2", None)],
        [("r1", 1), ("r2", 1)],
        [("r1", None), ("r2", 2)],
    ],
)
def test_one_device_for_two_residents_needs_distinct_user_ids(
    entries: list[tuple[str, int | None]],
) -> None:
    with pytest.raises(RegistryError, match="registered to both"):
        Directory.of(DeviceEntry("s", resident, "d", user) for resident, user in entries)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "no id"', "id"),
        ('id = "bad id!"', "id"),
        ('id = "s"\nresidents = "x"', "residents"),
        ('id = "s"\n[[residents]]\nname = "no id"', r"residents\[0\]\.id"),
        ('id = "s"\n[[residents]]\nid = "r1"\ndevices = [{ kind = "scale" }]', r"devices\[0\]\.id"),
        ('id = "s"\n[[residents]]\nid = "r1"\ndevices = [{ id = "d", user_id = 300 }]', "user_id"),
        ('id = "s"\n[[residents]]\nid = "r1"\ndevices = [{ id = "d", user_id = true }]', "user_id"),
    ],
)
def test_invalid_site_files_are_refused_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "site.toml"
    path.write_text(text)

    with pytest.raises(RegistryError, match=message) as refused:
        SiteFileRegistry([path]).load_now()

    assert str(path) in refused.value.errors[0]


def test_unreadable_and_missing_files_and_duplicate_sites(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("id = ")
    with pytest.raises(RegistryError, match="not valid TOML"):
        SiteFileRegistry([tmp_path / "broken.toml"]).load_now()
    with pytest.raises(RegistryError, match="no such file"):
        SiteFileRegistry([tmp_path / "missing.toml"]).load_now()
    (tmp_path / "one.toml").write_text('id = "same"')
    (tmp_path / "two.toml").write_text('id = "same"')
    with pytest.raises(RegistryError, match="also defined"):
        SiteFileRegistry([tmp_path / "one.toml", tmp_path / "two.toml"]).load_now()


def test_extra_keys_are_ignored() -> None:
    site, entries = parse_site(
        {
            "id": "s",
            "timezone": "Europe/London",
            "schedules": {"scale": ["07:00"]},
            "residents": [
                {"id": "r1", "age": 80, "devices": [{"id": "d", "kind": "pendant", "battery": 9}]}
            ],
            "scenarios": [{"kind": "fall"}],
        }
    )
    assert site == "s"
    assert entries == [DeviceEntry("s", "r1", "d", None, "pendant")]
