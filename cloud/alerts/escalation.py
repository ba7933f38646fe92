"""Who is told about an alert, and when: recipients, quiet hours and a site's escalation ladder.

Pure frozen values, checked when built (:class:`~cloud.alerts.errors.ConfigError` names the
problem). The alert lifecycle (:mod:`cloud.alerts.lifecycle`) reads them; it never sends
anything itself.

The ladder
----------
A :class:`Ladder` is a list of :class:`Step`\\s. Step 0 is notified when an alert opens (its
``after`` must be zero); step *n* is notified when the alert has not been acknowledged
``after`` from the moment its escalation started (the opening, in the simple case), so the
``after``\\s are measured from the same origin and must rise strictly. After the last step,
the last step is notified again every ``repeat_every`` until someone acknowledges or
resolves the alert (``None``: never repeated).

Who gets what
-------------
A step names roles, recipient ids, or both; a recipient matching either is in the step.
Then, for one alert:

* **Family** recipients get only *clinical* alerts of the residents they follow
  (:attr:`Recipient.residents`, which must not be empty for family: a relative following
  "the whole site" would be a privacy breach, so it is refused).
* **Technical** alerts (devices, gateways, batteries) never reach family.
* Staff with an empty ``residents`` cover the whole site; staff with residents (a carer
  assigned to one wing) get the alerts of those residents plus every alert that concerns
  no resident (a gateway offline), so equipment problems always reach someone on the step.
* **Quiet hours** hold back INFO and WARNING notifications while they last, in the
  recipient's own time zone; URGENT and CRITICAL ones are never held back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud.alerts.errors import ConfigError, InputError
from vitals.wire import AlertKind, Severity

__all__ = [
    "MAX_STEPS",
    "Ladder",
    "QuietHours",
    "Recipient",
    "Role",
    "SiteEscalation",
    "Step",
]

MAX_STEPS: Final = 17
"""Steps 0..16: the wire model's ``escalation_level`` goes up to 16."""
_MAX_ID: Final = 64
_LOUD: Final = Severity.URGENT.rank
"""From this severity up, quiet hours never hold a notification back."""


class Role(StrEnum):
    CARER = "carer"
    NURSE = "nurse"
    MANAGER = "manager"
    FAMILY = "family"

    @property
    def is_staff(self) -> bool:
        return self is not Role.FAMILY


def _role(value: Role | str, where: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise ConfigError(f"{where}: unknown role {value!r} (known: {known})") from None


@dataclass(slots=True, frozen=True)
class QuietHours:
    """A daily window of local wall-clock time, ``start`` included, ``end`` excluded, in the
    IANA zone ``zone`` (``"Europe/London"``). It wraps midnight when ``end <= start``
    (22:00-07:00); ``start == end`` is refused (it could mean empty or all day)."""

    start: time
    end: time
    zone: str

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is not None:
                raise ConfigError(f"quiet hours {name}: give a wall-clock time without a zone")
        if self.start == self.end:
            raise ConfigError("quiet hours: start and end are equal (empty or all day?)")
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"quiet hours: unknown time zone {self.zone!r}") from exc

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware) falls in the window, in the zone's local time then (so
        daylight saving time moves the window with the clocks on the wall)."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InputError(f"naive datetime {moment.isoformat()}: times must carry a zone")
        local = moment.astimezone(ZoneInfo(self.zone)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(slots=True, frozen=True)
class Recipient:
    """A person who may be notified. Ids only here; names live in the directory."""

    id: str
    role: Role
    """A :class:`Role` (its text, ``"nurse"``, is taken too)."""
    urls: tuple[str, ...] = field(default=(), repr=False)
    """Apprise URLs (they hold secrets: never logged, not in ``repr``). Empty: dashboard
    only."""
    quiet_hours: QuietHours | None = None
    residents: tuple[str, ...] = ()
    """Residents followed; empty means the whole site (staff only, see the module)."""

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > _MAX_ID:
            raise ConfigError(f"recipient id {self.id!r}: give 1 to {_MAX_ID} characters")
        object.__setattr__(self, "role", _role(self.role, f"recipient {self.id}"))
        if not isinstance(self.urls, tuple) or not all(
            isinstance(url, str) and url for url in self.urls
        ):
            raise ConfigError(f"recipient {self.id}: urls must be a tuple of non-empty strings")
        if not isinstance(self.residents, tuple):
            raise ConfigError(f"recipient {self.id}: residents must be a tuple")
        if self.role is Role.FAMILY and not self.residents:
            raise ConfigError(f"recipient {self.id}: a family member must follow named residents")

    def may_receive(self, kind: AlertKind, resident: str | None) -> bool:
        """Whether an alert of this kind about this resident (None: about equipment, no
        resident) may reach this person at all, quiet hours aside."""
        if self.role is Role.FAMILY:
            return kind is AlertKind.CLINICAL and resident in self.residents
        return not self.residents or resident is None or resident in self.residents

    def holds_back(self, severity: Severity, moment: datetime) -> bool:
        """Whether quiet hours hold back a notification of ``severity`` at ``moment``."""
        return (
            self.quiet_hours is not None
            and severity.rank < _LOUD
            and self.quiet_hours.contains(moment)
        )


@dataclass(slots=True, frozen=True)
class Step:
    """One rung of a ladder: everyone with one of ``roles`` and everyone in ``recipients``
    (ids), notified when the alert is still unacknowledged ``after`` its escalation began."""

    roles: tuple[Role, ...] = ()
    recipients: tuple[str, ...] = ()
    after: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not isinstance(self.roles, tuple) or not isinstance(self.recipients, tuple):
            raise ConfigError("step: roles and recipients must be tuples")
        object.__setattr__(self, "roles", tuple(_role(role, "step") for role in self.roles))
        if not self.roles and not self.recipients:
            raise ConfigError("step: name at least one role or recipient")
        if self.after < timedelta(0):
            raise ConfigError(f"step: after must not be negative, not {self.after}")


@dataclass(slots=True, frozen=True)
class Ladder:
    steps: tuple[Step, ...]
    repeat_every: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.steps, tuple) or not self.steps:
            raise ConfigError("ladder: give at least one step")
        if len(self.steps) > MAX_STEPS:
            raise ConfigError(f"ladder: at most {MAX_STEPS} steps, not {len(self.steps)}")
        if self.steps[0].after != timedelta(0):
            raise ConfigError("ladder: step 0 is notified at opening: its after must be 0")
        for index in range(1, len(self.steps)):
            if self.steps[index].after <= self.steps[index - 1].after:
                raise ConfigError(
                    f"ladder: step {index}'s after must be later than step {index - 1}'s"
                )
        if self.repeat_every is not None and self.repeat_every <= timedelta(0):
            raise ConfigError(f"ladder: repeat_every must be positive, not {self.repeat_every}")

    @property
    def last(self) -> int:
        return len(self.steps) - 1


@dataclass(slots=True, frozen=True)
class SiteEscalation:
    """The ladder and the people of one site."""

    site: str
    ladder: Ladder
    recipients: tuple[Recipient, ...]
    _members: tuple[tuple[Recipient, ...], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        if not isinstance(self.recipients, tuple):
            raise ConfigError(f"site {self.site}: recipients must be a tuple")
        ids = [recipient.id for recipient in self.recipients]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"site {self.site}: recipient ids repeat")
        known = set(ids)
        for index, step in enumerate(self.ladder.steps):
            for rid in step.recipients:
                if rid not in known:
                    raise ConfigError(f"site {self.site}: step {index} names unknown {rid!r}")
        members = tuple(
            tuple(
                recipient
                for recipient in self.recipients
                if recipient.role in step.roles or recipient.id in step.recipients
            )
            for step in self.ladder.steps
        )
        object.__setattr__(self, "_members", members)

    def members(self, levels: Iterable[int]) -> list[Recipient]:
        """The recipients of the given steps, each once, in step order."""
        seen: dict[str, Recipient] = {}
        last = self.ladder.last
        for level in levels:
            for recipient in self._members[min(level, last)]:
                seen.setdefault(recipient.id, recipient)
        return list(seen.values())
