"""Where readings are kept: one interface (:class:`ReadingStore`), InfluxDB and SQLite behind it.

Schema and key: :mod:`cloud.store.base` and :mod:`cloud.store.lineprotocol`.
"""

from pydantic import SecretStr

from cloud.settings import StoreKind, StoreSettings
from cloud.store.base import (
    SEQ_SLOTS,
    Bucket,
    ReadingStore,
    Rejected,
    StoredReading,
    WriteResult,
    storage_time_ns,
)
from cloud.store.influx import InfluxStore
from cloud.store.lineprotocol import MEASUREMENT
from cloud.store.sqlite import SqliteStore

__all__ = [
    "MEASUREMENT",
    "SEQ_SLOTS",
    "Bucket",
    "InfluxStore",
    "ReadingStore",
    "Rejected",
    "SqliteStore",
    "StoredReading",
    "WriteResult",
    "open_store",
    "storage_time_ns",
]


def open_store(settings: StoreSettings) -> InfluxStore | SqliteStore:
    """The store ``settings`` describe (not yet connected: both connect on first use)."""
    if settings.kind is StoreKind.SQLITE:
        return SqliteStore(settings.path, synchronous=settings.sqlite_synchronous)

    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    return InfluxStore(
        str(settings.url),
        settings.database,
        retention_policy=settings.retention_policy,
        token=secret(settings.token),
        username=settings.username,
        password=secret(settings.password),
        timeout_s=settings.timeout_s,
        gzip=settings.gzip,
    )
