"""The notification section of the cloud settings (``[notify]``), and a checked type for a
recipient's apprise URLs.

The cloud's ``CloudSettings`` embeds :class:`NotifySettings`; whatever configures recipients
(site files, the users table) validates their URLs with :data:`AppriseUrls`, so a bad URL
stops the service at start with a line naming the entry, never the URL.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from cloud.notify.ratelimit import RateLimit
from cloud.notify.urls import check_urls

__all__ = ["AppriseUrls", "NotifySettings"]


def _checked(urls: tuple[str, ...]) -> tuple[str, ...]:
    errors = check_urls(urls)
    if errors:
        # The text names positions only; build the model's errors without their input
        # (``include_input=False``) so that the URL is not echoed either.
        raise ValueError("; ".join(errors))
    return urls


AppriseUrls = Annotated[tuple[str, ...], Field(min_length=1), AfterValidator(_checked)]
"""A recipient's apprise URLs, at least one, each usable (see
:func:`~cloud.notify.urls.check_urls`)."""


class NotifySettings(BaseModel):
    """How notifications are paced, retried and bounded. Per recipient: at most ``burst``
    at once, then ``rate`` per ``period_s``; critical alerts also have ``critical_burst``
    of their own (see :mod:`cloud.notify.mailbox` for the whole policy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: int = Field(default=5, ge=1, le=10_000)
    """Notifications a recipient gets per ``period_s`` once the burst is spent."""
    period_s: float = Field(default=600.0, gt=0, le=86_400)
    burst: int = Field(default=5, ge=1, le=10_000)
    """Notifications a recipient may get at once."""
    critical_burst: int = Field(default=3, ge=0, le=1000)
    """Extra notifications for critical alerts only, refilled at this many per ``period_s``
    (0: critical alerts share the ordinary allowance)."""
    queue_size: int = Field(default=50, ge=1, le=10_000)
    """Messages that may wait per recipient; beyond, the least severe, oldest is dropped."""
    digest_items: int = Field(default=20, ge=1, le=1000)
    """Messages listed in full in a digest (the rest are counted)."""
    retry_attempts: int = Field(default=5, ge=1, le=100)
    """Attempts per channel for one notification, the first included."""
    retry_min_s: float = Field(default=2.0, gt=0, le=3600)
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)
    """Cap of the random, growing delay between attempts."""
    max_age_s: float = Field(default=3600.0, gt=0)
    """A notification whose newest message is older than this is not tried again."""
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Limit on one attempt on one channel."""
    max_concurrent: int = Field(default=8, ge=1, le=1024)
    """Attempts in progress at once, all recipients together."""
    max_recipients: int = Field(default=10_000, ge=1)
    """Recipients with a mailbox at once (messages waiting or a rate limit refilling)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s is below retry_min_s")
        return self

    @property
    def limit(self) -> RateLimit:
        """The per-recipient allowance these settings describe."""
        return RateLimit(
            rate=self.rate,
            period_s=self.period_s,
            burst=self.burst,
            critical_burst=self.critical_burst,
        )
