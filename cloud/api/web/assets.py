"""The dashboard's static files (ES modules, the stylesheet, the icon), read once from the
package's ``static`` folder and served from memory with a strong ``ETag``.

Only files with a known type are served (``.js``, ``.css``, ``.svg``), by their plain name:
the folder is flat and a name is never a path, so nothing outside it can be asked for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["MEDIA_TYPES", "NAME_PATTERN", "Asset", "Assets"]

MEDIA_TYPES: Mapping[str, str] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*\.(js|css|svg)$"
_NAME = re.compile(NAME_PATTERN)


@dataclass(slots=True, frozen=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    etag: str
    """A strong validator: ``"<sha256 prefix>"`` of the body."""


class Assets:
    """The static files by name."""

    def __init__(self, files: Iterable[tuple[str, bytes]]) -> None:
        found: dict[str, Asset] = {}
        for name, body in files:
            if not _NAME.fullmatch(name):
                continue
            media_type = MEDIA_TYPES[name[name.rindex(".") :]]
            etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            found[name] = Asset(name, body, media_type, etag)
        self._assets = found

    @classmethod
    def from_package(cls) -> Assets:
        """The files of ``cloud/api/web/static``."""
        folder = resources.files(__package__ or "cloud.api.web").joinpath("static")
        return cls(_read(folder))

    def get(self, name: str) -> Asset | None:
        return self._assets.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._assets)


def _read(folder: Traversable) -> Iterable[tuple[str, bytes]]:
    for entry in folder.iterdir():
        if entry.is_file():
            yield entry.name, entry.read_bytes()
