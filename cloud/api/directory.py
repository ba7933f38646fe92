"""The directory of sites, residents and their devices, as the API shows them.

Served by a :class:`ResidentDirectory`; today from the TOML site files of ``seeds/``
(:class:`SiteFileDirectory`, read with the same device rules as the ingestor's registry,
:func:`cloud.registry.parse_site`), in memory for tests and the demo
(:class:`StaticDirectory`). A database can serve the same interface later.

What is read from a site file (other keys are the simulator's and are ignored)::

    id = "oak-house"            # or [site] id = ...
    name = "Oak House"
    timezone = "Europe/London"
    [[residents]]
    id = "r01"
    name = "..."                # shown to staff and to linked family only, never logged
    room = "12"                 # optional
    age = 86                    # record fields: see RECORD_FIELDS
    devices = [{ id = "r01-hr", kind = "wearable" }, { id = "r01-bp", user_id = 1 }]
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from cloud.api.errors import DirectoryError
from cloud.api.policy import ResidentRef
from cloud.errors import RegistryError
from cloud.registry import parse_site, read_site_files

__all__ = [
    "RECORD_FIELDS",
    "DeviceInfo",
    "ResidentDirectory",
    "ResidentInfo",
    "Roster",
    "SiteFileDirectory",
    "SiteInfo",
    "StaticDirectory",
    "parse_site_data",
]

logger = logging.getLogger(__name__)

RecordValue = str | int | float | bool

RECORD_FIELDS: Mapping[str, tuple[type, ...]] = {
    "age": (int,),
    "sex": (str,),
    "height": (int, float),
    "weight": (int, float),
    "copd": (bool,),
    "on_oxygen": (bool,),
}
"""The resident record fields the API shows, with their accepted TOML types (``copd`` and
``on_oxygen`` decide the NEWS2 SpO2 scale)."""
_MAX_TEXT = 100


@dataclass(slots=True, frozen=True)
class DeviceInfo:
    id: str
    kind: str | None = None
    user: int | None = None


@dataclass(slots=True, frozen=True)
class ResidentInfo:
    site: str
    id: str
    name: str | None = None
    room: str | None = None
    devices: tuple[DeviceInfo, ...] = ()
    record: tuple[tuple[str, RecordValue], ...] = ()

    @property
    def ref(self) -> ResidentRef:
        return ResidentRef(self.site, self.id)


@dataclass(slots=True, frozen=True)
class SiteInfo:
    id: str
    name: str
    timezone: str | None = None
    residents: tuple[ResidentInfo, ...] = ()


@dataclass(slots=True, frozen=True)
class Roster:
    """An immutable snapshot of the directory, indexed."""

    sites: tuple[SiteInfo, ...] = ()
    _sites: Mapping[str, SiteInfo] = field(default_factory=dict, repr=False, compare=False)
    _residents: Mapping[tuple[str, str], ResidentInfo] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, sites: Iterable[SiteInfo]) -> Roster:
        ordered = tuple(sorted(sites, key=lambda s: s.id))
        by_id = {site.id: site for site in ordered}
        if len(by_id) != len(ordered):
            raise DirectoryError("a site is defined twice")
        residents = {(r.site, r.id): r for site in ordered for r in site.residents}
        return cls(ordered, by_id, residents)

    def site(self, site: str) -> SiteInfo | None:
        return self._sites.get(site)

    def resident(self, site: str, resident: str) -> ResidentInfo | None:
        return self._residents.get((site, resident))


class ResidentDirectory(Protocol):
    """Serves sites, residents and devices. Raises :class:`DirectoryError`."""

    async def sites(self) -> tuple[SiteInfo, ...]: ...

    async def site(self, site: str) -> SiteInfo | None: ...

    async def resident(self, site: str, resident: str) -> ResidentInfo | None: ...


class StaticDirectory:
    """A :class:`ResidentDirectory` of given sites (tests, the demo)."""

    def __init__(self, sites: Iterable[SiteInfo] = ()) -> None:
        self._roster = Roster.of(sites)

    @property
    def roster(self) -> Roster:
        return self._roster

    def replace(self, roster: Roster) -> None:
        self._roster = roster

    async def sites(self) -> tuple[SiteInfo, ...]:
        return self._roster.sites

    async def site(self, site: str) -> SiteInfo | None:
        return self._roster.site(site)

    async def resident(self, site: str, resident: str) -> ResidentInfo | None:
        return self._roster.resident(site, resident)


def _text(value: Any, where: str, errors: list[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # room = 12
    if isinstance(value, str) and 0 < len(value) <= _MAX_TEXT and value.isprintable():
        return value
    errors.append(f"{where}: expected printable text of 1-{_MAX_TEXT} characters")
    return None


def parse_site_data(data: Mapping[str, Any], source: str = "site") -> SiteInfo:
    """The site in one parsed site file; raises :class:`DirectoryError` naming every
    problem. Devices are read by :func:`cloud.registry.parse_site` (the ingestor's rules)."""
    try:
        site_id, entries = parse_site(data, source)
    except RegistryError as exc:
        raise DirectoryError(str(exc), exc.errors) from exc
    errors: list[str] = []
    section = data.get("site")
    meta: Mapping[str, Any] = section if isinstance(section, Mapping) else data
    name = _text(meta.get("name"), f"{source}: name", errors) or site_id
    timezone = _text(meta.get("timezone"), f"{source}: timezone", errors)
    devices: dict[str, list[DeviceInfo]] = {}
    for entry in entries:
        devices.setdefault(entry.resident, []).append(
            DeviceInfo(id=entry.device, kind=entry.kind, user=entry.user)
        )
    residents: list[ResidentInfo] = []
    seen: set[str] = set()
    for raw in data.get("residents", []):
        resident_id = raw["id"]  # parse_site checked every resident's id
        where = f"{source}: residents[{resident_id}]"
        if resident_id in seen:
            errors.append(f"{where}: defined twice")
            continue
        seen.add(resident_id)
        record: list[tuple[str, RecordValue]] = []
        for key, types in RECORD_FIELDS.items():
            value = raw.get(key)
            if value is None:
                continue
            if isinstance(value, types) and (bool in types or not isinstance(value, bool)):
                record.append((key, cast(RecordValue, value)))
            else:
                errors.append(f"{where}.{key}: expected {' or '.join(t.__name__ for t in types)}")
        residents.append(
            ResidentInfo(
                site=site_id,
                id=resident_id,
                name=_text(raw.get("name"), f"{where}.name", errors),
                room=_text(raw.get("room"), f"{where}.room", errors),
                devices=tuple(devices.get(resident_id, ())),
                record=tuple(record),
            )
        )
    if errors:
        raise DirectoryError(f"invalid site file {source}: {errors[0]}", tuple(errors))
    return SiteInfo(
        id=site_id,
        name=name,
        timezone=timezone,
        residents=tuple(sorted(residents, key=lambda r: r.id)),
    )


class SiteFileDirectory(StaticDirectory):
    """The directory from TOML site files and folders of them (every ``*.toml`` inside).

    Empty until :meth:`refresh` (or :meth:`refresh_now`) has read the files; a refresh that
    fails keeps the previous snapshot and raises :class:`DirectoryError`.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._paths = tuple(paths)

    async def refresh(self) -> Roster:
        roster = await asyncio.to_thread(self.read)
        self.replace(roster)
        return roster

    def refresh_now(self) -> Roster:
        """The blocking form of :meth:`refresh`."""
        roster = self.read()
        self.replace(roster)
        return roster

    def read(self) -> Roster:
        """Read every site file (blocking) without replacing the current snapshot."""
        parsed, errors = read_site_files(self._paths)
        sites: dict[str, tuple[Path, SiteInfo]] = {}
        for file, data in parsed:
            try:
                site = parse_site_data(data, str(file))
            except DirectoryError as exc:
                errors.extend(exc.errors or (str(exc),))
                continue
            if site.id in sites:
                errors.append(f"{file}: site {site.id} is also defined in {sites[site.id][0]}")
                continue
            sites[site.id] = (file, site)
        if errors:
            raise DirectoryError(f"invalid site files: {errors[0]}", tuple(errors))
        return Roster.of(site for _, site in sites.values())
