"""The errors ``cloud.exchange`` raises: one root, subclasses that say what was wrong."""

from __future__ import annotations

from cloud.errors import CloudError

__all__ = ["ExchangeError", "ExchangeKeyError", "ExchangeValueError"]


class ExchangeError(CloudError):
    """Root of every error the health-record exports raise."""


class ExchangeValueError(ExchangeError, ValueError):
    """An argument an export cannot take: a reading of another resident, a naive time, a
    base URL that is not absolute, an identifier outside the wire's pattern, a resolution
    that is not positive. The message names the argument (and ids only, never values)."""


class ExchangeKeyError(ExchangeError, ValueError):
    """A pseudonymisation key that is too short (or not bytes). ``length`` is its length
    in bytes (``None`` when it was not bytes at all)."""

    def __init__(self, message: str, length: int | None) -> None:
        super().__init__(message)
        self.length = length
