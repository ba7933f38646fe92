"""The gateway's device registry: which BLE devices are ours, and what they are.

A device is matched by its address (exact, case-insensitive) or, for devices with private or
changing addresses, by a regular expression on its advertised local name. Each entry says the
device id that travels in readings, the device kind (which decides the services subscribed
to), the resident it belongs to (for display only: the cloud's registry is authoritative), and
the cadence at which readings are expected when it differs from the kind's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vitals.devices import DeviceKind
from vitals.topics import ID_PATTERN

__all__ = ["DeviceEntry", "Registry"]

_ADDRESS = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"


class DeviceEntry(BaseModel):
    """One registered device, as written in the gateway's config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
    kind: DeviceKind
    address: Annotated[str, Field(pattern=_ADDRESS)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """A regular expression that must match the whole advertised local name."""
    resident: Annotated[str, Field(pattern=f"^{ID_PATTERN}$")] | None = None
    cadence: timedelta | None = None
    """Expected interval between readings; defaults to the device kind's."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.address is None and self.name is None:
            raise ValueError(f"device {self.id}: give an address or a name pattern")
        if self.name is not None:
            try:
                re.compile(self.name)
            except re.error as exc:
                raise ValueError(
                    f"device {self.id}: bad name pattern {self.name!r}: {exc}"
                ) from exc
        return self

    @property
    def expected_cadence(self) -> timedelta:
        return self.cadence if self.cadence is not None else self.kind.info.cadence

    @property
    def spot(self) -> bool:
        return self.kind.info.spot


class Registry:
    """Looks up registered devices by what an advertisement shows."""

    def __init__(self, entries: list[DeviceEntry] | tuple[DeviceEntry, ...]) -> None:
        ids = [entry.id for entry in entries]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"device ids registered twice: {', '.join(duplicates)}")
        self._entries = tuple(entries)
        self._by_address = {e.address.upper(): e for e in entries if e.address is not None}
        self._by_name = [
            (re.compile(e.name), e) for e in entries if e.address is None and e.name is not None
        ]
        self._by_id = {e.id: e for e in entries}

    def __iter__(self) -> Iterator[DeviceEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[DeviceEntry, ...]:
        return self._entries

    def get(self, device_id: str) -> DeviceEntry | None:
        return self._by_id.get(device_id)

    def match(self, address: str, name: str | None) -> DeviceEntry | None:
        """The entry for an advertising device, or None if it is not ours."""
        entry = self._by_address.get(address.upper())
        if entry is not None:
            return entry
        if name:
            for pattern, candidate in self._by_name:
                if pattern.fullmatch(name):
                    return candidate
        return None
