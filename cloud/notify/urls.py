"""Apprise URLs: checking them when they are configured, loading them when sending, and the
scheme that names a channel in logs and metrics.

An apprise URL holds its service's secrets (``tgram://<bot token>/<chat>``,
``mailto://user:password@host``, ``json://host/hook/<token>``). Nothing here puts a URL, or
any part of one but its scheme, in an error message; and while apprise parses one, its own log
records from this thread are muted, because apprise writes an unusable URL (token and all)
into its error and warning lines.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import apprise
from apprise import AppriseAsset, NotificationManager, NotifyBase

__all__ = ["APPRISE_LOGGER", "check_urls", "load_url", "scheme_of", "silence_apprise_logs"]

APPRISE_LOGGER = "apprise"
"""The logger apprise writes to. Its lines are not fit for the service's log: whole target
URLs and payloads at DEBUG, ntfy URLs and e-mail addresses at INFO, ntfy topics and URLs at
WARNING (see :func:`silence_apprise_logs`)."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_NATIVE = frozenset({"http", "https"})
"""Schemes apprise accepts for a service's own URL (a Discord or Slack webhook address)."""


def _plugins() -> NotificationManager:
    """Apprise's registry of services (a singleton of apprise's own), loaded on first use.

    Loading imports every plugin; on Python 3.11 the e-mail plugin's PGP support imports
    ``imghdr``, which warns that it is deprecated. That warning is about apprise's
    dependencies, not about us, and is silenced for the load alone.
    """
    manager: NotificationManager = NotificationManager()  # type: ignore[no-untyped-call]
    if not manager:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
            manager.load_modules()  # type: ignore[no-untyped-call]
    return manager


class _ThisThread(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self._thread


@contextmanager
def _apprise_muted() -> Iterator[None]:
    """Drop apprise's log records emitted by this thread for the duration (other threads'
    records, such as apprise's sends in its worker threads, pass)."""
    log = logging.getLogger(APPRISE_LOGGER)
    muted = _ThisThread()
    log.addFilter(muted)
    try:
        yield
    finally:
        log.removeFilter(muted)


class _Nothing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


_SILENCE = _Nothing()


def silence_apprise_logs() -> None:
    """Drop every record of the ``apprise`` logger, whatever its level and whoever listens
    (a filter on the logger: it holds even when the service's logging setup changes levels).
    The dispatcher logs every outcome itself, by recipient id and scheme. Process-wide and
    idempotent; :class:`~cloud.notify.channel.AppriseChannel` calls it unless asked not to."""
    log = logging.getLogger(APPRISE_LOGGER)
    if _SILENCE not in log.filters:
        log.addFilter(_SILENCE)


def scheme_of(url: str) -> str:
    """The channel's name for logs and metric labels: the URL's scheme when apprise knows it
    (``"ntfy"``, ``"mailto"``, ``"https"`` for a service's native webhook URL), else
    ``"unknown"``. A bounded set of values, and never a secret."""
    match = _SCHEME.match(url)
    if match is None:
        return "unknown"
    scheme = match.group(1).lower()
    if scheme in _NATIVE or scheme in _plugins():
        return scheme
    return "unknown"


def _load(url: str, asset: AppriseAsset) -> NotifyBase | str:
    """The apprise service for ``url``, or why there is none (text without the URL)."""
    if url != url.strip():
        return "has leading or trailing spaces"
    match = _SCHEME.match(url)
    if match is None:
        return "is not an apprise URL (expected scheme://...)"
    scheme = match.group(1).lower()
    known = scheme in _plugins()
    if known and not _plugins()[scheme].enabled:
        return f"{scheme}:// is not available on this system (a library it needs is missing)"
    if any(c.isspace() for c in url):
        return "holds a space: give one URL per entry"
    with _apprise_muted():
        plugin = apprise.Apprise.instantiate(url, asset=asset)
    if plugin is not None:
        return plugin
    if known:
        return f"apprise cannot use this {scheme}:// URL (a required part is missing or invalid)"
    if scheme in _NATIVE:
        return f"is a plain {scheme}:// address, not a service apprise recognises"
    return f"unknown scheme {scheme!r} (not an apprise service)"


def load_url(url: str, asset: AppriseAsset) -> NotifyBase | None:
    """The apprise service for ``url``, or ``None`` when apprise cannot use it (nothing is
    logged: the caller reports it by scheme)."""
    loaded = _load(url, asset)
    return loaded if isinstance(loaded, NotifyBase) else None


def check_urls(urls: Iterable[str]) -> list[str]:
    """The problems with a recipient's apprise URLs, one line each (``"url 2: unknown scheme
    'ntfyy' (not an apprise service)"``); empty when every URL can be used.

    URLs are numbered from 1 and named by position only, never by content. Checked: the
    scheme is a service apprise knows and can run here, apprise accepts the URL's parts, one
    URL per entry, no duplicates. Whether the service accepts the credentials is only known
    when sending.
    """
    asset = AppriseAsset(storage_mode="memory")
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, url in enumerate(urls, start=1):
        where = f"url {number}"
        if not isinstance(url, str) or not url:
            errors.append(f"{where}: is empty")
            continue
        if url in seen:
            errors.append(f"{where}: repeats url {seen[url]}")
            continue
        seen[url] = number
        loaded = _load(url, asset)
        if isinstance(loaded, str):
            errors.append(f"{where}: {loaded}")
    return errors
