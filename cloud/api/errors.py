"""The errors ``cloud.api`` raises: one root (:class:`ApiError`), subclasses that carry data.

``sqlite3`` errors are translated where they leave :mod:`cloud.api.database`, so callers match
on these classes, never on message text. The HTTP layer maps them to statuses in one place
(:mod:`cloud.api.app`): :class:`StorageError` is 503, the value errors 409 or 422.
"""

from __future__ import annotations

from cloud.errors import CloudError, ConfigurationError

__all__ = [
    "AccountError",
    "AlreadyLinkedError",
    "ApiError",
    "DirectoryError",
    "HistoryRangeError",
    "InvalidAccountError",
    "LastAdminError",
    "NoAdminError",
    "PasswordRejectedError",
    "ServerStartError",
    "StorageError",
    "UsernameTakenError",
]


class ApiError(CloudError):
    """Root of the HTTP API's errors."""


class StorageError(ApiError):
    """The API's own database (accounts, sessions, audit) failed or is closed. Nothing was
    decided for the content of the request: retrying later is right (HTTP 503)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class AccountError(ApiError, ValueError):
    """An account operation that cannot be done as asked (HTTP 409 or 422)."""


class UsernameTakenError(AccountError):
    """Another account (possibly deleted: usernames are never reused) has this username."""


class InvalidAccountError(AccountError):
    """A username, role, site list or link that the accounts cannot take; ``field`` names
    what was wrong (``"username"``, ``"sites"``, ``"role"``, ``"link"``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AlreadyLinkedError(AccountError):
    """The family account already has an active link to this resident (HTTP 409)."""


class LastAdminError(AccountError):
    """The change would leave no enabled administrator (HTTP 409)."""


class PasswordRejectedError(AccountError):
    """A new password the policy refuses; ``reason`` says why (never holds the password)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoAdminError(ApiError, ConfigurationError):
    """The accounts hold no enabled administrator: outside the demo the service refuses to
    start (create one with ``python -m cloud.api create-admin``)."""


class DirectoryError(ApiError, ConfigurationError):
    """A site file is missing or invalid; ``errors`` holds one line per problem."""

    def __init__(self, message: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.errors = errors


class HistoryRangeError(ApiError, ValueError):
    """A history request the API will not serve: an empty or too long range, an interval
    shorter than a second or would give too many points (HTTP 422)."""


class ServerStartError(ApiError):
    """The HTTP server stopped or did not come up while starting."""
