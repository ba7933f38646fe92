"""The alert rules' view of the sites: residents' records, devices and gateways, from the
same TOML site files the ingestor reads (``seeds/``; a database can serve it later).

Read from a site file, beyond what :func:`cloud.registry.parse_site` reads for the devices:
``timezone`` (the residents' local time, for "night"), ``gateway`` (the home's gateway id,
required: gateway-offline and device-silent alerts are per gateway), and per resident
``copd`` (true: NEWS2 SpO2 scale 2, the prescribed 88-92 % target) and ``on_oxygen``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud.alerts.config import Device, Resident, Roster
from cloud.alerts.engine import Condition
from cloud.alerts.errors import ConfigError
from cloud.alerts.news2 import SpO2Scale
from cloud.errors import RegistryError
from cloud.registry import parse_site, read_site_files
from vitals.devices import DeviceKind
from vitals.topics import ID_PATTERN

__all__ = ["AlertSite", "SiteMap", "load_sites", "parse_alert_site"]


@dataclass(slots=True, frozen=True)
class AlertSite:
    id: str
    timezone: str
    gateway: str
    residents: tuple[Resident, ...]
    devices: tuple[Device, ...]


@dataclass(slots=True, frozen=True)
class SiteMap:
    """One engine for every site (the rules are vectorised across all residents), while ids
    are unique only within a site (two homes both have a resident ``r01`` and a device
    ``r01-hr``). So the engine's roster uses internal ids (``r17``, ``d230``, ``g3``): the
    service translates readings and statuses in (:meth:`device`, :meth:`gateway`) and
    conditions out (:meth:`external`)."""

    roster: Roster
    sites: tuple[AlertSite, ...]
    residents: Mapping[tuple[str, str], str]
    """(site, resident) -> internal id."""
    devices: Mapping[tuple[str, str], str]
    gateways: Mapping[tuple[str, str], str]
    owners: Mapping[str, tuple[str, str]]
    """Internal id (of a resident, device or gateway) -> (site, real id)."""

    @classmethod
    def of(cls, sites: Sequence[AlertSite], at: datetime) -> SiteMap:
        """``at`` decides the residents' UTC offsets (reconfigure when summer time starts
        or ends)."""
        residents_in: dict[tuple[str, str], str] = {}
        devices_in: dict[tuple[str, str], str] = {}
        gateways_in: dict[tuple[str, str], str] = {}
        owners: dict[str, tuple[str, str]] = {}
        residents: list[Resident] = []
        devices: list[Device] = []
        gateways: list[str] = []
        seen: set[str] = set()
        for site in sites:
            if site.id in seen:
                raise ConfigError(f"site {site.id} is defined twice")
            seen.add(site.id)
            offset = at.astimezone(ZoneInfo(site.timezone)).utcoffset()
            gateway = gateways_in[site.id, site.gateway] = f"g{len(gateways)}"
            owners[gateway] = (site.id, site.gateway)
            gateways.append(gateway)
            for resident in site.residents:
                internal = residents_in[site.id, resident.id] = f"r{len(residents)}"
                owners[internal] = (site.id, resident.id)
                moved = replace(resident, id=internal)
                residents.append(
                    moved if offset is None else _with_offset(moved, offset.total_seconds())
                )
            for device in site.devices:
                internal = devices_in[site.id, device.id] = f"d{len(devices)}"
                owners[internal] = (site.id, device.id)
                devices.append(
                    replace(
                        device,
                        id=internal,
                        gateway=gateway,
                        resident=(
                            residents_in[site.id, device.resident]
                            if device.resident is not None
                            else None
                        ),
                        users=tuple(
                            (user, residents_in[site.id, rid]) for user, rid in device.users
                        ),
                    )
                )
        roster = Roster(tuple(residents), tuple(devices), tuple(gateways))
        return cls(roster, tuple(sites), residents_in, devices_in, gateways_in, owners)

    def resident(self, site: str, resident: str) -> str | None:
        return self.residents.get((site, resident))

    def device(self, site: str, device: str) -> str | None:
        return self.devices.get((site, device))

    def gateway(self, site: str, gateway: str) -> str | None:
        return self.gateways.get((site, gateway))

    def real(self, internal: str | None) -> str | None:
        return None if internal is None else self.owners[internal][1]

    def external(self, condition: Condition) -> tuple[str, Condition] | None:
        """The site of an engine condition and the condition in that site's real ids."""
        subject = condition.resident or condition.device or condition.gateway
        if subject is None or subject not in self.owners:
            return None
        site = self.owners[subject][0]
        resident = self.real(condition.resident)
        device = self.real(condition.device)
        gateway = self.real(condition.gateway)
        rule, name, *rest = condition.key.split(":")
        real_name = self.real(name) if name in self.owners else name
        key = ":".join([rule, str(real_name), *rest])
        label = str(real_name)
        if name.startswith("d") and resident is not None:
            label = f"{real_name} ({resident})"
        _prefix, _sep, body = condition.message.partition(": ")
        message = f"[{condition.severity.value}] {label}: {body}"
        return site, replace(
            condition,
            key=key,
            resident=resident,
            device=device,
            gateway=gateway,
            message=message,
        )


def _with_offset(resident: Resident, seconds: float) -> Resident:
    return replace(resident, utc_offset=timedelta(seconds=seconds))


def parse_alert_site(data: Mapping[str, Any], source: str = "site") -> AlertSite:
    """One parsed site file as the rules see it; raises :class:`ConfigError` naming every
    problem."""
    try:
        site, entries = parse_site(data, source)
    except RegistryError as exc:
        raise ConfigError(str(exc), exc.errors) from exc
    errors: list[str] = []
    zone = data.get("timezone", "UTC")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{source}: timezone: {zone!r} is not an IANA time zone")
        zone = "UTC"
    gateway = data.get("gateway")
    if not isinstance(gateway, str) or not re.fullmatch(ID_PATTERN, gateway):
        errors.append(
            f"{source}: gateway: the home's gateway id is required for alerts "
            f'(e.g. gateway = "{site}-gw")'
        )
        gateway = ""
    residents: list[Resident] = []
    for raw in data.get("residents", []):
        copd = raw.get("copd", False)
        oxygen = raw.get("on_oxygen", False)
        if not isinstance(copd, bool) or not isinstance(oxygen, bool):
            errors.append(
                f"{source}: residents[{raw.get('id')}]: copd and on_oxygen are true/false"
            )
            continue
        residents.append(
            Resident(
                raw["id"],
                spo2_scale=SpO2Scale.SCALE_2 if copd else SpO2Scale.SCALE_1,
                on_oxygen=oxygen,
            )
        )
    users: dict[str, list[tuple[int, str]]] = {}
    owners: dict[str, str] = {}
    kinds: dict[str, DeviceKind] = {}
    for entry in entries:
        try:
            kinds[entry.device] = DeviceKind(entry.kind or "")
        except ValueError:
            errors.append(f"{source}: device {entry.device}: unknown kind {entry.kind!r}")
            continue
        if entry.user is not None:
            users.setdefault(entry.device, []).append((entry.user, entry.resident))
        else:
            owners[entry.device] = entry.resident
    devices = tuple(
        Device(
            device,
            kind,
            gateway,
            resident=owners.get(device),
            users=tuple(sorted(users.get(device, ()))),
        )
        for device, kind in kinds.items()
    )
    if errors:
        raise ConfigError(f"invalid site file {source}: {errors[0]}", tuple(errors))
    return AlertSite(site, str(zone), gateway, tuple(residents), devices)


def load_sites(paths: Sequence[Path]) -> list[AlertSite]:
    """Every site file in ``paths`` (files, or folders of ``*.toml``)."""
    parsed, errors = read_site_files(paths)
    sites: list[AlertSite] = []
    for file, data in parsed:
        try:
            sites.append(parse_alert_site(data, str(file)))
        except ConfigError as exc:
            errors.extend(exc.errors or (str(exc),))
    if errors:
        raise ConfigError(f"invalid site files: {errors[0]}", tuple(errors))
    return sites
