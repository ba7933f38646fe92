"""The HTTP API's settings: the ``[api]`` section of the cloud's settings file.

The models live in :mod:`cloud.settings` (the cloud's one settings object embeds them as
``api``, with the environment overrides ``CAREWATCH_API__PORT=...``) and are re-exported here.

Session cookies are ``Secure`` unless ``session.cookie_secure = false``, which is accepted only
when the API listens on a loopback address (tests and the local demo over plain HTTP): anything
reachable from another machine must be served over HTTPS with Secure cookies.
"""

from __future__ import annotations

from pathlib import Path

from cloud.settings import (
    ApiSettings,
    CloudSettings,
    LoginLimitSettings,
    PasswordSettings,
    SessionSettings,
    is_loopback,
)

__all__ = [
    "ApiSettings",
    "LoginLimitSettings",
    "PasswordSettings",
    "SessionSettings",
    "is_loopback",
    "load_api_config",
]


def load_api_config(path: Path) -> tuple[ApiSettings, CloudSettings]:
    """The ``[api]`` section of the cloud settings file at ``path`` and the whole file (its
    ``store``, ``log`` and ``demo``; ``CAREWATCH_*`` variables override them). Relative paths
    in ``[api]`` are taken from the file's folder. Raises :class:`SettingsError`."""
    settings = CloudSettings.load(path)
    return settings.api, settings
