"""Wait for a condition by polling it until a deadline: the harness's only way to wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tests.harness.errors import PollTimeoutError

__all__ = ["poll_until", "poll_until_async"]

T = TypeVar("T")


def poll_until(
    check: Callable[[], T | None], *, within: float, what: str, every: float = 0.02
) -> T:
    """Call ``check`` until it returns something other than ``None`` and return that.

    Raises :class:`PollTimeoutError` once ``within`` seconds have passed. ``check`` is always
    called at least once, and once more at the deadline, so a slow check cannot be skipped.
    Exceptions from ``check`` propagate at once (that is how a check reports "this will never
    become true", e.g. the server process exited).
    """
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PollTimeoutError(what, within)
        time.sleep(min(every, remaining))


async def poll_until_async(
    check: Callable[[], Awaitable[T | None]], *, within: float, what: str, every: float = 0.02
) -> T:
    """The asyncio form of :func:`poll_until`: ``check`` is awaited, the loop is never blocked."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PollTimeoutError(what, within)
        await asyncio.sleep(min(every, remaining))
