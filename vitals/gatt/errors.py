"""Errors raised by the GATT codecs.

Everything derives from :class:`GattError` (itself a :class:`vitals.errors.VitalsError`), so a
caller that only wants to skip a bad payload catches that one class. The subclasses carry
data (characteristic name, byte offset, UUID) so that no caller has to match on message text.
"""

from __future__ import annotations

from vitals.errors import VitalsError

__all__ = [
    "DecodeError",
    "EncodeError",
    "GattError",
    "InvalidUUIDError",
    "UnknownCharacteristicError",
]


class GattError(VitalsError):
    """Root of every error raised by :mod:`vitals.gatt`."""


class DecodeError(GattError, ValueError):
    """A payload does not follow the characteristic's layout.

    ``characteristic`` names the characteristic being decoded (``None`` for a bare field codec
    called directly) and ``offset`` is the byte offset in the payload where the problem was
    found (``None`` when it concerns the payload as a whole).
    """

    def __init__(
        self,
        reason: str,
        characteristic: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(reason, characteristic, offset)
        self.reason = reason
        self.characteristic = characteristic
        self.offset = offset

    def __str__(self) -> str:
        if self.characteristic is None:
            return self.reason
        return f"{self.characteristic}: {self.reason}"


class EncodeError(GattError, ValueError):
    """A value cannot be put on the wire: out of range, or not exactly representable."""

    def __init__(self, reason: str, characteristic: str | None = None) -> None:
        super().__init__(reason, characteristic)
        self.reason = reason
        self.characteristic = characteristic

    def __str__(self) -> str:
        if self.characteristic is None:
            return self.reason
        return f"{self.characteristic}: {self.reason}"


class InvalidUUIDError(GattError, ValueError):
    """Something given as a UUID is not one in any accepted form."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(value, reason)
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"invalid UUID {self.value!r}: {self.reason}"


class UnknownCharacteristicError(GattError, LookupError):
    """A well-formed UUID names no characteristic that :mod:`vitals.gatt` can decode."""

    def __init__(self, uuid: str) -> None:
        super().__init__(uuid)
        self.uuid = uuid

    def __str__(self) -> str:
        return f"no decoder for characteristic {self.uuid}"
