"""Deterministic noise: a pure function of (seed, stream, time).

Every random-looking quantity in the simulator comes from here, keyed by the simulation seed, a
*stream* (a path of names such as ``("resident", "r03", "hr")``) and an integer *knot*. Nothing
keeps state, so a value never depends on how often, or in which order, it was asked for: a
wearable ticked every 0.25 s and one ticked every second read the same heart rate at the same
simulated instant, and adding a resident to a site does not change anybody else's readings.

* :meth:`Noise.uniform` and :meth:`Noise.gaussian` give one value per knot (per sample);
* :meth:`Noise.smooth` is value noise: uniform values at knots ``n * period`` joined by a
  smoothstep, so it is continuous in time, stays in [-1, 1] and changes on the scale of
  ``period``;
* :meth:`Noise.at` and :meth:`Noise.gaussian_at` key a per-sample value by a time rounded to a
  resolution.

The hash is splitmix64's finaliser over the stream key and the knot (Steele, Lea and Flood,
"Fast splittable pseudorandom number generators", 2014); stream names are hashed with BLAKE2b,
which unlike :func:`hash` does not change between Python processes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Final

__all__ = ["Noise", "derive_seed", "mix64", "smoothstep"]

_MASK: Final = (1 << 64) - 1
_GOLDEN: Final = 0x9E3779B97F4A7C15
_TWO_53: Final = 1.0 / (1 << 53)
_TWO_32: Final = 1.0 / (1 << 32)
_TAU: Final = 2.0 * math.pi


def mix64(value: int) -> int:
    """splitmix64: a bijective, well-mixed 64-bit hash of ``value`` (taken modulo 2**64)."""
    z = (value + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _name_key(name: str | int) -> int:
    if isinstance(name, int):
        return mix64(name & _MASK)
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def derive_seed(seed: int, *names: str | int) -> int:
    """A 64-bit seed for a named sub-stream of ``seed`` (e.g. one resident or one device)."""
    key = mix64(seed & _MASK)
    for name in names:
        key = mix64(key ^ _name_key(name))
    return key


def smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, and the cubic ``3x^2 - 2x^3`` between (zero slope at both ends)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return x * x * (3.0 - 2.0 * x)


@dataclass(slots=True, frozen=True)
class Noise:
    """One noise stream. Build it with :meth:`of`; every method is a pure function."""

    key: int
    """The stream's 64-bit key (from the seed and the stream's names)."""

    @classmethod
    def of(cls, seed: int, *names: str | int) -> Noise:
        return cls(derive_seed(seed, *names))

    def child(self, *names: str | int) -> Noise:
        """A sub-stream, independent of this one and of its other children."""
        return Noise(derive_seed(self.key, *names))

    def bits(self, knot: int, lane: int = 0) -> int:
        """64 random bits for ``knot``; ``lane`` picks one of several values per knot."""
        z = mix64(self.key ^ ((knot * _GOLDEN) & _MASK))
        if lane:
            z = mix64(z ^ lane)
        return z

    def uniform(self, knot: int, lane: int = 0) -> float:
        """Uniform in [0, 1)."""
        return (self.bits(knot, lane) >> 11) * _TWO_53

    def between(self, knot: int, low: float, high: float, lane: int = 0) -> float:
        """Uniform in [low, high)."""
        return low + (high - low) * self.uniform(knot, lane)

    def gaussian(self, knot: int, lane: int = 0) -> float:
        """Standard normal (Box-Muller on the two 32-bit halves of one hash), clipped to +-4
        standard deviations."""
        z = self.bits(knot, lane + 101)
        u1 = ((z >> 32) + 0.5) * _TWO_32
        u2 = (z & 0xFFFFFFFF) * _TWO_32
        value = math.sqrt(-2.0 * math.log(u1)) * math.cos(_TAU * u2)
        return max(-4.0, min(4.0, value))

    def smooth(self, t: float, period: float) -> float:
        """Value noise in [-1, 1]: random values at ``n * period`` joined by a smoothstep."""
        position = t / period
        knot = math.floor(position)
        a = 2.0 * self.uniform(knot) - 1.0
        b = 2.0 * self.uniform(knot + 1) - 1.0
        return a + (b - a) * smoothstep(position - knot)

    def at(self, t: float, resolution: float = 1.0, lane: int = 0) -> float:
        """Uniform in [0, 1) for the sample at time ``t`` (rounded to ``resolution``)."""
        return self.uniform(round(t / resolution), lane)

    def gaussian_at(self, t: float, resolution: float = 1.0, lane: int = 0) -> float:
        """Standard normal for the sample at time ``t`` (rounded to ``resolution``)."""
        return self.gaussian(round(t / resolution), lane)
