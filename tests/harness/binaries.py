"""Finding the server binaries a test needs, and the rule for when one is missing.

The rule (DESIGN.md): a test whose binary or package is missing is *skipped* with a reason on a
developer's machine, and *fails* when the ``CI`` environment variable is set (non-empty), so a CI
image that lost a package cannot go green by skipping. Every fixture that needs something from
the machine goes through :func:`skip_or_fail`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["SEARCH_DIRS", "find_binary", "require_binary", "skip_or_fail"]

# Debian installs daemons (mosquitto) in /usr/sbin, which is not on a normal user's PATH.
SEARCH_DIRS: tuple[Path, ...] = (Path("/usr/sbin"), Path("/usr/bin"))


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test with ``reason``, or fail it when ``CI`` is set and non-empty."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} [CI is set, so this fails instead of skipping]", pytrace=False)
    pytest.skip(reason)


def find_binary(name: str, search_dirs: Sequence[Path] = SEARCH_DIRS) -> Path | None:
    """The executable ``name`` on PATH or else in ``search_dirs``; ``None`` if there is none."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for directory in search_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_binary(
    name: str, *, debian_package: str, search_dirs: Sequence[Path] = SEARCH_DIRS
) -> Path:
    """The path of executable ``name``; if it is missing, :func:`skip_or_fail` says so."""
    found = find_binary(name, search_dirs)
    if found is None:
        places = ", ".join(["PATH", *(str(d) for d in search_dirs)])
        skip_or_fail(
            f"{name} not found (looked in {places}); install the Debian package '{debian_package}'"
        )
    return found
