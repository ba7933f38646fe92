"""The HTTP bodies: what requests may carry (strict, unknown fields refused) and what
responses hold (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cloud.api.accounts import FamilyLink, User
from cloud.api.audit import AuditAction, AuditEntry, Outcome
from cloud.api.devices import DeviceStatus
from cloud.api.directory import DeviceInfo, ResidentInfo, SiteInfo
from cloud.api.policy import Role
from cloud.store.base import Bucket, StoredReading
from vitals.metrics import Metric
from vitals.topics import ID_PATTERN
from vitals.wire import GatewayState, Quality

__all__ = [
    "AuditEntryOut",
    "BucketOut",
    "DeviceOut",
    "DeviceStatusOut",
    "ErrorOut",
    "HistoryOut",
    "LatestOut",
    "LinkCreateIn",
    "LinkOut",
    "LoginIn",
    "PasswordChangeIn",
    "ReadingOut",
    "ResidentOut",
    "ResidentSummaryOut",
    "SessionOut",
    "SiteOut",
    "UserCreateIn",
    "UserOut",
]

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
Secret = Annotated[SecretStr, Field(min_length=1, max_length=4096)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=4096)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorOut(_Out):
    detail: str


# -- auth -------------------------------------------------------------------------------------


class LoginIn(_In):
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Secret


class PasswordChangeIn(_In):
    current_password: Secret
    new_password: Secret


class LinkOut(_Out):
    id: int
    user_id: int
    site: str
    resident: str
    contact: bool
    granted_by: int
    granted_at: datetime
    revoked_at: datetime | None = None
    revoked_by: int | None = None

    @classmethod
    def of(cls, link: FamilyLink) -> LinkOut:
        return cls(
            id=link.id,
            user_id=link.user_id,
            site=link.site,
            resident=link.resident,
            contact=link.contact,
            granted_by=link.granted_by,
            granted_at=link.granted,
            revoked_at=link.revoked,
            revoked_by=link.revoked_by,
        )


class UserOut(_Out):
    id: int
    username: str
    role: Role
    sites: list[str]
    disabled: bool
    created_at: datetime
    links: list[LinkOut] = []
    """Active family links (family accounts)."""

    @classmethod
    def of(cls, user: User, links: list[FamilyLink] | None = None) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            sites=sorted(user.sites),
            disabled=user.disabled,
            created_at=user.created,
            links=[LinkOut.of(link) for link in links or ()],
        )


class SessionOut(_Out):
    user: UserOut
    csrf_token: str
    """Send it back in the ``X-CSRF-Token`` header of every POST, PUT, PATCH and DELETE."""
    expires_at: datetime
    """When the session ends unless used before (idle expiry)."""
    absolute_expires_at: datetime


# -- directory ------------------------------------------------------------------------------


class SiteOut(_Out):
    id: str
    name: str
    timezone: str | None = None

    @classmethod
    def of(cls, site: SiteInfo) -> SiteOut:
        return cls(id=site.id, name=site.name, timezone=site.timezone)


class ResidentSummaryOut(_Out):
    site: str
    id: str
    name: str | None = None
    room: str | None = None

    @classmethod
    def of(cls, resident: ResidentInfo) -> ResidentSummaryOut:
        return cls(site=resident.site, id=resident.id, name=resident.name, room=resident.room)


class DeviceOut(_Out):
    id: str
    kind: str | None = None
    user: int | None = None
    """The device's user index for this resident (shared BP cuffs and scales)."""

    @classmethod
    def of(cls, device: DeviceInfo) -> DeviceOut:
        return cls(id=device.id, kind=device.kind, user=device.user)


class ResidentOut(ResidentSummaryOut):
    devices: list[DeviceOut] = []
    record: dict[str, str | int | float | bool] = {}

    @classmethod
    def of(cls, resident: ResidentInfo) -> ResidentOut:
        return cls(
            site=resident.site,
            id=resident.id,
            name=resident.name,
            room=resident.room,
            devices=[DeviceOut.of(device) for device in resident.devices],
            record=dict(resident.record),
        )


class DeviceStatusOut(_Out):
    id: str
    resident: str | None = None
    """``None``: a device a gateway reports but no site file lists."""
    kind: str | None = None
    gateway: str | None = None
    connected: bool | None = None
    """``None``: no gateway has reported this device."""
    gateway_state: GatewayState | None = None
    last_seen: datetime | None = None
    battery: int | None = None
    rssi: int | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(
        cls,
        device_id: str,
        *,
        resident: str | None,
        kind: str | None,
        status: DeviceStatus | None,
    ) -> DeviceStatusOut:
        if status is None:
            return cls(id=device_id, resident=resident, kind=kind)
        return cls(
            id=device_id,
            resident=resident,
            kind=kind,
            gateway=status.gateway,
            connected=status.connected,
            gateway_state=status.gateway_state,
            last_seen=status.last_seen,
            battery=status.battery,
            rssi=status.rssi,
            updated_at=status.updated,
        )


# -- vitals -----------------------------------------------------------------------------------


class ReadingOut(_Out):
    metric: Metric
    value: float
    unit: str
    time: datetime
    device: str
    user: int | None = None
    flags: list[Quality] = []

    @classmethod
    def of(cls, reading: StoredReading) -> ReadingOut:
        return cls(
            metric=reading.metric,
            value=reading.value,
            unit=reading.metric.unit,
            time=reading.time,
            device=reading.device,
            user=reading.user,
            flags=list(reading.flags),
        )


class LatestOut(_Out):
    site: str
    resident: str
    readings: list[ReadingOut]
    """The newest reading of every metric, sorted by metric."""


class BucketOut(_Out):
    start: datetime
    mean: float
    min: float
    max: float
    count: int

    @classmethod
    def of(cls, bucket: Bucket) -> BucketOut:
        return cls(
            start=bucket.start,
            mean=bucket.mean,
            min=bucket.minimum,
            max=bucket.maximum,
            count=bucket.count,
        )


class HistoryOut(_Out):
    site: str
    resident: str
    metric: Metric
    unit: str
    start: datetime
    end: datetime
    every_s: float
    buckets: list[BucketOut]
    """Only intervals that hold readings, oldest first."""


# -- administration ---------------------------------------------------------------------------


class UserCreateIn(_In):
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Secret
    role: Role
    sites: Annotated[list[Id], Field(min_length=1, max_length=256)]


class LinkCreateIn(_In):
    site: Id
    resident: Id
    contact: bool = False


class AuditEntryOut(_Out):
    id: int
    time: datetime
    user_id: int | None
    action: AuditAction
    outcome: Outcome
    endpoint: str | None = None
    site: str | None = None
    resident: str | None = None
    target: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        event = entry.event
        return cls(
            id=entry.id,
            time=event.time,
            user_id=event.user_id,
            action=event.action,
            outcome=event.outcome,
            endpoint=event.endpoint,
            site=event.site,
            resident=event.resident,
            target=event.target,
            address=event.address,
        )
