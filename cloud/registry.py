"""Which device belongs to which resident: the registry behind the ingestor.

The ingestor asks a :class:`DeviceRegistry` for a :class:`Directory` (an immutable snapshot,
looked up in memory for every reading) at start and again every ``refresh_s``. Today the
snapshot comes from TOML site files (:class:`SiteFileRegistry`); a database can serve the same
interface later by implementing ``load()``.

Site files are the ones in ``seeds/`` (written for the simulator; extra keys are ignored)::

    id = "oak-house"                  # or [site] id = "oak-house"
    [[residents]]
    id = "r01"
    devices = [
        { id = "r01-hr", kind = "wearable" },
        { id = "r01-bp", kind = "bp_cuff", user_id = 1 },   # "user" is accepted too
    ]

(``[[residents.devices]]`` tables are the same thing written differently.)

A reading is resolved by ``(site, device, user)``:

* a device listed without a user index belongs to that resident whatever user it reports;
* a device listed with user indexes (a BP cuff or scale shared by residents) belongs, for a
  reading with a user index, to the resident listed with that index; for a reading without
  one, to its only resident if it has just one;
* anything else is *unknown* (``None``): the ingestor's ``unknown_device`` policy decides.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cloud.errors import RegistryError
from vitals.topics import ID_PATTERN

__all__ = [
    "DeviceEntry",
    "DeviceRegistry",
    "Directory",
    "SiteFileRegistry",
    "parse_site",
    "read_site_files",
    "site_files",
]

_ID = re.compile(ID_PATTERN)
_MAX_USER = 254


@dataclass(slots=True, frozen=True)
class DeviceEntry:
    """One device of one resident, as registered."""

    site: str
    resident: str
    device: str
    user: int | None = None
    kind: str | None = None


@dataclass(slots=True, frozen=True)
class Directory:
    """An immutable snapshot of the registry, indexed for lookups."""

    entries: tuple[DeviceEntry, ...] = ()
    sites: frozenset[str] = frozenset()
    _answers: Mapping[tuple[str, str, int | None], str | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    """(site, device, user) -> resident, for every user index the registry names and for
    no user index (None); looked up once per stored reading, so it is precomputed."""
    _fallback: Mapping[tuple[str, str], str] = field(
        default_factory=dict, repr=False, compare=False
    )
    """(site, device) -> the resident of a registration without a user index, which then
    answers for every user index the registry does not name."""

    @classmethod
    def of(cls, entries: Iterable[DeviceEntry], sites: Iterable[str] = ()) -> Directory:
        """Index ``entries``; raises RegistryError if one (site, device, user) has two
        residents."""
        entries = tuple(entries)
        index: dict[tuple[str, str], list[DeviceEntry]] = {}
        errors: list[str] = []
        for entry in entries:
            same = index.setdefault((entry.site, entry.device), [])
            for other in same:
                if other.resident != entry.resident and (
                    other.user == entry.user or other.user is None or entry.user is None
                ):
                    errors.append(
                        f"{entry.site}: device {entry.device} is registered to both "
                        f"{other.resident} and {entry.resident}; give each a distinct user_id"
                    )
            same.append(entry)
        if errors:
            raise RegistryError(f"conflicting device registrations: {errors[0]}", tuple(errors))
        answers: dict[tuple[str, str, int | None], str | None] = {}
        fallback: dict[tuple[str, str], str] = {}
        for (site, device), same in index.items():
            # Without a user index: the resident when the device has only one.
            residents = {entry.resident for entry in same}
            answers[site, device, None] = next(iter(residents)) if len(residents) == 1 else None
            for entry in same:
                if entry.user is None:
                    # No conflict was found, so every registration names this resident.
                    fallback[site, device] = entry.resident
                else:
                    answers[site, device, entry.user] = entry.resident
        all_sites = frozenset(sites) | {entry.site for entry in entries}
        return cls(entries, all_sites, answers, fallback)

    def resident(self, site: str, device: str, user: int | None) -> str | None:
        """The resident of a reading from ``device`` at ``site`` with user index ``user``,
        or ``None`` when the registry cannot tell (see the module docstring)."""
        answer = self._answers.get((site, device, user))
        if answer is None and user is not None:
            return self._fallback.get((site, device))
        return answer

    def __len__(self) -> int:
        return len(self.entries)


class DeviceRegistry(Protocol):
    """Serves the registry as snapshots."""

    async def load(self) -> Directory:
        """The current registry; raises :class:`~cloud.errors.RegistryError`."""
        ...


class SiteFileRegistry:
    """The registry from TOML site files (and folders of them, every ``*.toml`` inside)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)

    async def load(self) -> Directory:
        return await asyncio.to_thread(self.load_now)

    def load_now(self) -> Directory:
        """The blocking form of :meth:`load`."""
        parsed, errors = read_site_files(self._paths)
        entries: list[DeviceEntry] = []
        sites: dict[str, Path] = {}
        for file, data in parsed:
            try:
                site, found = parse_site(data, str(file))
            except RegistryError as exc:
                errors.extend(exc.errors or (str(exc),))
                continue
            if site in sites:
                errors.append(f"{file}: site {site} is also defined in {sites[site]}")
                continue
            sites[site] = file
            entries.extend(found)
        if errors:
            raise RegistryError(f"invalid device registry: {errors[0]}", tuple(errors))
        return Directory.of(entries, sites)


def site_files(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The site files named by ``paths`` (files, or folders: every ``*.toml`` directly in
    them), and a line for each path that does not exist."""
    files: list[Path] = []
    errors: list[str] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.toml") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


def read_site_files(
    paths: Sequence[Path],
) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """Every site file of ``paths`` parsed as TOML, and a line for each path or file that
    could not be read (every reader of site files reports problems the same way)."""
    files, errors = site_files(paths)
    parsed: list[tuple[Path, dict[str, Any]]] = []
    for file in files:
        try:
            with file.open("rb") as handle:
                parsed.append((file, tomllib.load(handle)))
        except OSError as exc:
            errors.append(f"{file}: cannot read: {exc}")
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{file}: not valid TOML: {exc}")
    return parsed, errors


def _identifier(value: Any, where: str, errors: list[str]) -> str | None:
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    errors.append(f"{where}: expected an id of 1-64 letters, digits, '_' or '-', got {value!r}")
    return None


def parse_site(data: Mapping[str, Any], source: str = "site") -> tuple[str, list[DeviceEntry]]:
    """The site id and device entries of one parsed site file. Keys other than the ids,
    ``devices``, ``kind`` and ``user_id``/``user`` are ignored (the simulator's profiles)."""
    errors: list[str] = []
    raw_site = data.get("id")
    section = data.get("site")
    if raw_site is None and isinstance(section, Mapping):
        raw_site = section.get("id")
    site = _identifier(raw_site, f"{source}: id", errors)
    residents = data.get("residents", [])
    if not isinstance(residents, list):
        errors.append(f"{source}: residents: expected a list of tables")
        residents = []
    entries: list[DeviceEntry] = []
    for r_index, resident in enumerate(residents):
        if not isinstance(resident, Mapping):
            errors.append(f"{source}: residents[{r_index}]: expected a table")
            continue
        resident_id = _identifier(resident.get("id"), f"{source}: residents[{r_index}].id", errors)
        where_r = f"{source}: residents[{resident_id or r_index}]"
        devices = resident.get("devices", [])
        if not isinstance(devices, list):
            errors.append(f"{where_r}.devices: expected a list of tables")
            continue
        for d_index, device in enumerate(devices):
            if not isinstance(device, Mapping):
                errors.append(f"{where_r}.devices[{d_index}]: expected a table")
                continue
            device_id = _identifier(device.get("id"), f"{where_r}.devices[{d_index}].id", errors)
            where_d = f"{where_r}.devices[{device_id or d_index}]"
            user = device.get("user_id", device.get("user"))
            if user is not None and (
                isinstance(user, bool) or not isinstance(user, int) or not 0 <= user <= _MAX_USER
            ):
                errors.append(f"{where_d}.user_id: expected an integer 0-{_MAX_USER}, got {user!r}")
                continue
            kind = device.get("kind")
            if site is not None and resident_id is not None and device_id is not None:
                entries.append(
                    DeviceEntry(
                        site=site,
                        resident=resident_id,
                        device=device_id,
                        user=user,
                        kind=kind if isinstance(kind, str) else None,
                    )
                )
    if errors or site is None:
        raise RegistryError(f"invalid site file {source}: {errors[0]}", tuple(errors))
    return site, entries
