"""The SQLite files of the API's accounts, sessions and audit log: :mod:`cloud.sqlite`, with
``sqlite3`` errors as :class:`~cloud.api.errors.StorageError` and foreign keys on."""

from __future__ import annotations

from pathlib import Path

from cloud.api.errors import StorageError
from cloud.sqlite import SqliteDatabase as _Database
from cloud.sqlite import transaction

__all__ = ["SqliteDatabase", "transaction"]


class SqliteDatabase(_Database):
    def __init__(
        self, path: Path | str, schema: str, *, version: int, name: str, busy_timeout_s: float = 5.0
    ) -> None:
        super().__init__(
            path,
            schema,
            version=version,
            name=name,
            error=StorageError,
            foreign_keys=True,
            busy_timeout_s=busy_timeout_s,
        )
