"""Sending one notification to one URL: the :class:`Channel` interface and its apprise
implementation, the only place apprise's send API is called.

Failures come out as :class:`~cloud.notify.errors.DeliveryError` naming the scheme and a fixed
reason; apprise's exceptions are translated here and their text (which may hold the URL) is
never passed on.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from apprise import Apprise, AppriseAsset, AppriseResultStatus, NotifyFormat, NotifyType

from cloud.notify.errors import DeliveryError
from cloud.notify.urls import load_url, scheme_of, silence_apprise_logs
from vitals.wire import Severity

__all__ = ["AppriseChannel", "Channel"]

_NOTIFY_TYPE = {
    Severity.INFO: NotifyType.INFO,
    Severity.WARNING: NotifyType.WARNING,
    Severity.URGENT: NotifyType.FAILURE,
    Severity.CRITICAL: NotifyType.FAILURE,
}


class Channel(Protocol):
    async def send(
        self, url: str, *, title: str, body: str, severity: Severity, timeout_s: float
    ) -> None:
        """Deliver one notification to ``url`` within about ``timeout_s`` seconds, or raise
        :class:`~cloud.notify.errors.DeliveryError`."""
        ...


class AppriseChannel:
    """Delivers through apprise (``Apprise.async_notify``); each URL is loaded on its own, so
    a recipient's URLs succeed and fail independently.

    Apprise runs each send in its shared worker thread pool (``min(32, cores + 4)`` threads):
    a send abandoned at its timeout keeps its thread until the service's socket timeouts end
    it (``cto``/``rto`` URL parameters, 4 s by default).

    Apprise's own log lines carry URLs, topics, addresses and payloads, so unless
    ``apprise_logs`` is true they are dropped (:func:`~cloud.notify.urls.silence_apprise_logs`,
    a process-wide filter on the ``apprise`` logger). The default asset keeps apprise's
    persistent store in memory.
    """

    def __init__(self, asset: AppriseAsset | None = None, *, apprise_logs: bool = False) -> None:
        self._asset = asset if asset is not None else AppriseAsset(storage_mode="memory")
        if not apprise_logs:
            silence_apprise_logs()

    async def send(
        self, url: str, *, title: str, body: str, severity: Severity, timeout_s: float
    ) -> None:
        scheme = scheme_of(url)
        plugin = load_url(url, self._asset)
        if plugin is None:
            raise DeliveryError(scheme, "invalid_url", permanent=True)
        apobj = Apprise(asset=self._asset)
        apobj.add(plugin)
        try:
            result = await apobj.async_notify(
                body=body,
                title=title,
                notify_type=_NOTIFY_TYPE[severity],
                body_format=NotifyFormat.TEXT,
                timeout=timeout_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise DeliveryError(scheme, f"exception:{type(exc).__name__}") from exc
        if result:
            return
        if result.status == AppriseResultStatus.TIMEOUT:
            raise DeliveryError(scheme, "timeout")
        raise DeliveryError(scheme, "failed")
