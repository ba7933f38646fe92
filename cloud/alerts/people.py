"""A site's people file: who is told about alerts and when (TOML, beside the site file).

The site file (``seeds/oak-house.toml``) describes the home and its residents; the people file
(``seeds/people/oak-house.toml``) the recipients and the escalation ladder, so that staff
rotas can change without touching the residents' records::

    site = "oak-house"

    [ladder]
    repeat_every = "10m"             # the last step again until someone acknowledges
    steps = [
        { roles = ["carer"] },                    # at once
        { roles = ["nurse"], after = "5m" },      # not acknowledged 5 min after opening
        { roles = ["manager"], after = "15m" },
        { roles = ["family"], after = "30m" },
    ]

    [[recipients]]
    id = "carer-day"                 # an id, never a name (it is logged)
    role = "carer"                   # carer | nurse | manager | family
    urls = ["ntfy://ntfy.example/oak-carers"]   # apprise URLs; secrets via env (below)
    quiet_hours = { start = "22:00", end = "07:00" }   # in the site's zone unless zone = ...
    residents = []                   # staff: [] = the whole site; family: their relative(s)

A URL may be written ``"env:NAME"``: it is read from the environment variable ``NAME``, so
tokens stay out of the file. Durations are ``"30s"``, ``"5m"``, ``"2h"`` or seconds. Every
problem is reported at once (:class:`~cloud.alerts.errors.ConfigError` with ``errors``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cloud.alerts.errors import ConfigError
from cloud.alerts.escalation import Ladder, QuietHours, Recipient, Role, SiteEscalation, Step
from vitals.topics import ID_PATTERN

__all__ = ["load_people", "parse_people"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, None: 1}


def _duration(value: Any) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION.match(value.strip())):
        return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    raise ValueError(f"{value!r} is not a duration such as '30s', '5m', '2h' or seconds")


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Quiet(_Model):
    start: time
    end: time
    zone: str | None = None


class _Recipient(_Model):
    id: Id
    role: Role
    urls: tuple[str, ...] = ()
    quiet_hours: _Quiet | None = None
    residents: tuple[Id, ...] = ()


class _Step(_Model):
    roles: tuple[Role, ...] = ()
    recipients: tuple[Id, ...] = ()
    after: Duration = timedelta(0)


class _Ladder(_Model):
    steps: tuple[_Step, ...] = Field(min_length=1)
    repeat_every: Duration | None = None


class _People(_Model):
    site: Id
    timezone: str | None = None
    ladder: _Ladder
    recipients: tuple[_Recipient, ...] = ()


def _url(value: str, where: str, environ: Mapping[str, str], errors: list[str]) -> str | None:
    if not value.startswith("env:"):
        return value
    name = value.removeprefix("env:")
    found = environ.get(name)
    if not found:
        errors.append(f"{where}: environment variable {name} is not set")
        return None
    return found


def parse_people(
    data: Mapping[str, Any],
    source: str = "people",
    *,
    zone: str = "UTC",
    environ: Mapping[str, str] | None = None,
) -> SiteEscalation:
    """The escalation of one site from a parsed people file. ``zone`` is the site's time
    zone, the default for quiet hours."""
    env = os.environ if environ is None else environ
    try:
        people = _People.model_validate(data)
    except ValidationError as exc:
        lines = tuple(
            f"{source}: {'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"invalid people file {source}: {lines[0]}", lines) from exc
    errors: list[str] = []
    default_zone = people.timezone or zone
    recipients: list[Recipient] = []
    for entry in people.recipients:
        where = f"{source}: recipients[{entry.id}]"
        urls = [_url(u, f"{where}.urls", env, errors) for u in entry.urls]
        quiet = None
        try:
            if entry.quiet_hours is not None:
                q = entry.quiet_hours
                quiet = QuietHours(q.start, q.end, q.zone or default_zone)
            recipients.append(
                Recipient(
                    entry.id,
                    entry.role,
                    tuple(u for u in urls if u is not None),
                    quiet_hours=quiet,
                    residents=entry.residents,
                )
            )
        except ConfigError as exc:
            errors.append(f"{where}: {exc}")
    try:
        ladder = Ladder(
            tuple(Step(s.roles, s.recipients, s.after) for s in people.ladder.steps),
            people.ladder.repeat_every,
        )
        escalation = SiteEscalation(people.site, ladder, tuple(recipients))
    except ConfigError as exc:
        errors.append(f"{source}: {exc}")
    if errors:
        raise ConfigError(f"invalid people file {source}: {errors[0]}", tuple(errors))
    return escalation


def load_people(
    paths: Sequence[Path],
    zones: Mapping[str, str],
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, SiteEscalation]:
    """Every people file in ``paths`` (files, or folders of them: every ``*.toml``), by site.
    ``zones`` gives each site's time zone (from its site file)."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    found: dict[str, SiteEscalation] = {}
    errors: list[str] = []
    for file in files:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            errors.append(f"{file}: cannot read: {exc}")
            continue
        site = data.get("site")
        try:
            escalation = parse_people(
                data, str(file), zone=zones.get(str(site), "UTC"), environ=environ
            )
        except ConfigError as exc:
            errors.extend(exc.errors or (str(exc),))
            continue
        if escalation.site in found:
            errors.append(f"{file}: site {escalation.site} has two people files")
        found[escalation.site] = escalation
    if errors:
        raise ConfigError(f"invalid people files: {errors[0]}", tuple(errors))
    return found
