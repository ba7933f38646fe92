"""Random, growing, capped delays for retry and reconnect loops ("full jitter" with a floor).

Shared by the gateway (BLE connections, MQTT uplink) and the cloud (broker, store retries).
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays for successive failures: the n-th is uniform in ``[cap_n / 2, cap_n]`` where
    ``cap_n = min(maximum, initial * 2**n)``. Half the cap is kept as a floor so that a
    failing peer is never hammered; the randomness keeps many clients from retrying in step
    after an outage. ``reset()`` after a success."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        self._initial = initial
        self._maximum = maximum
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures

    def next(self) -> float:
        cap = min(self._maximum, self._initial * 2 ** min(self._failures, 32))
        self._failures += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self._failures = 0
