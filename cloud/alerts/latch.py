"""Hysteresis latches: "sustained for N seconds / N readings" without flapping, streaming.

A latch watches one series (a resident's heart rate against one level of one rule) and is
updated reading by reading, in time order; many latches (residents x levels) are updated at
once with numpy. Each reading is *beyond* the trigger, *within* the clear level, or in the
band between them.

The latch **fires** at a reading when, over at least ``sustain`` seconds up to it:

* no reading was back within the clear level,
* the recent readings were mostly beyond the trigger: an exponentially weighted share with
  time constant ``sustain / 4`` of at least one half at every reading of the stretch (a
  reading within the clear level, or one that drops the share under one half, ends the
  stretch and restarts the share), and
* at least ``min_readings`` readings were beyond the trigger.

It then stays latched until the same holds the other way round: ``clear_sustain`` seconds of
readings that are mostly within the clear level, none beyond the trigger, at least
``clear_readings`` of them within.

So a 3-s artefact (HR 80, 80, 210, 210, 210, 80) never fires: the reading of 80 ends the
stretch. A breach sustained for 60 s fires at the reading 60 s after it began. A value hovering
around the trigger (129, 131, 129, 131...) keeps dropping below the one-half share and does not
fire; a value hovering between trigger and clear level after a real breach keeps the latch on;
and a latch never flips back and forth faster than the sustain times allow. With ``sustain``
0 and one reading (spot measurements) a latch fires on the first reading beyond the trigger
and clears on the first reading back within the clear level.

The latch only moves when a reading arrives: the rules decide at evaluation time whether the
series is still fresh (``stale_after``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["LatchParams", "Latches", "update_latches"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class LatchParams:
    """Per-column constants of a set of latches (arrays of shape ``(k,)``)."""

    __slots__ = ("clear_readings", "clear_sustain", "min_readings", "sustain")

    def __init__(
        self,
        sustain: FloatArray,
        min_readings: IntArray,
        clear_sustain: FloatArray,
        clear_readings: IntArray,
    ) -> None:
        self.sustain = sustain
        self.min_readings = min_readings
        self.clear_sustain = clear_sustain
        self.clear_readings = clear_readings

    def take(self, columns: IntArray) -> LatchParams:
        return LatchParams(
            self.sustain[columns],
            self.min_readings[columns],
            self.clear_sustain[columns],
            self.clear_readings[columns],
        )


class Latches:
    """The state of ``rows x columns`` latches, stored column-major (``latched[column, row]``)
    so that one column (one rule level) for every resident is one contiguous row. ``since``
    is when each latch fired (NaN when it is not latched)."""

    __slots__ = (
        "clear_count",
        "clear_n",
        "clear_share",
        "clear_start",
        "latched",
        "set_count",
        "set_n",
        "set_share",
        "set_start",
        "since",
    )

    def __init__(self, rows: int, columns: int) -> None:
        shape = (columns, rows)
        self.latched = np.zeros(shape, dtype=np.bool_)
        self.since = np.full(shape, np.nan)
        self.set_start = np.full(shape, np.nan)
        self.set_share = np.zeros(shape)
        self.set_n = np.zeros(shape)
        self.set_count = np.zeros(shape, dtype=np.int64)
        self.clear_start = np.full(shape, np.nan)
        self.clear_share = np.zeros(shape)
        self.clear_n = np.zeros(shape)
        self.clear_count = np.zeros(shape, dtype=np.int64)

    def reset(self, rows: IntArray | int) -> None:
        """Forget everything about some rows (a resident's limits changed)."""
        self.latched[:, rows] = False
        self.since[:, rows] = np.nan
        self.set_start[:, rows] = np.nan
        self.set_share[:, rows] = 0.0
        self.set_n[:, rows] = 0.0
        self.set_count[:, rows] = 0
        self.clear_start[:, rows] = np.nan
        self.clear_share[:, rows] = 0.0
        self.clear_n[:, rows] = 0.0
        self.clear_count[:, rows] = 0


def _decay(dt: FloatArray, tau: FloatArray) -> FloatArray:
    """exp(-dt / tau), 0 where tau is 0 or dt unknown (the first reading)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.exp(-np.maximum(dt, 0.0) / tau)
    return np.where((tau > 0) & np.isfinite(weight), weight, 0.0)


def _stretch(
    *,
    start: FloatArray,
    share: FloatArray,
    n: FloatArray,
    count: IntArray,
    t: FloatArray,
    weight: FloatArray,
    hit: BoolArray,
    breaks: BoolArray,
) -> tuple[FloatArray, FloatArray, FloatArray, IntArray, BoolArray]:
    """One side of the latch: the stretch of readings that are mostly ``hit`` and never
    ``breaks``. Returns the new start, weighted hits, weighted readings, hit count, and
    whether the reading is inside a stretch."""
    n = n * weight + 1.0
    share = share * weight + hit
    n = np.where(breaks, 0.0, n)
    share = np.where(breaks, 0.0, share)
    inside = ~breaks & (share >= 0.5 * n) & (n > 0)
    # A reading that ends the majority (and is no hit) also restarts the share, so the next
    # stretch begins at its first hit instead of waiting for the old share to decay.
    lost = ~inside & ~hit
    n = np.where(lost, 0.0, n)
    share = np.where(lost, 0.0, share)
    start = np.where(inside, np.where(np.isnan(start), t, start), np.nan)
    count = np.where(inside, count + hit, 0)
    return start, share, n, count, inside


def update_latches(
    latches: Latches,
    rows: IntArray,
    columns: IntArray,
    *,
    t: FloatArray,
    dt: FloatArray,
    beyond: BoolArray,
    within: BoolArray,
    params: LatchParams,
) -> None:
    """Feed one reading to each of ``len(rows)`` series, for the latch ``columns`` of each.

    ``rows`` must not repeat (one reading per series per call; call again for the next
    reading, in time order). ``t`` and ``dt`` (time since the series' previous reading, NaN
    for the first) have shape ``(n,)``; ``beyond`` and ``within`` have shape ``(n, k)`` for
    the ``k`` columns; ``params`` holds the constants of those ``k`` columns.
    """
    index = (columns[None, :], rows[:, None])  # (n, k) views of the column-major arrays
    now = t[:, None]
    gap = dt[:, None]
    latched = latches.latched[index]

    set_start, set_share, set_n, set_count, set_inside = _stretch(
        start=latches.set_start[index],
        share=latches.set_share[index],
        n=latches.set_n[index],
        count=latches.set_count[index],
        t=now,
        weight=_decay(gap, params.sustain[None, :] / 4.0),
        hit=beyond,
        breaks=within,
    )
    fire = (
        ~latched
        & set_inside
        & (now - set_start >= params.sustain[None, :])
        & (set_count >= params.min_readings[None, :])
    )

    clear_start, clear_share, clear_n, clear_count, clear_inside = _stretch(
        start=latches.clear_start[index],
        share=latches.clear_share[index],
        n=latches.clear_n[index],
        count=latches.clear_count[index],
        t=now,
        weight=_decay(gap, params.clear_sustain[None, :] / 4.0),
        hit=within,
        breaks=beyond,
    )
    reset = (
        latched
        & clear_inside
        & (now - clear_start >= params.clear_sustain[None, :])
        & (clear_count >= params.clear_readings[None, :])
    )

    new_latched = (latched | fire) & ~reset
    latches.latched[index] = new_latched
    latches.since[index] = np.where(fire, now, np.where(new_latched, latches.since[index], np.nan))
    latches.set_start[index] = set_start
    latches.set_share[index] = set_share
    latches.set_n[index] = set_n
    latches.set_count[index] = set_count
    latches.clear_start[index] = clear_start
    latches.clear_share[index] = clear_share
    latches.clear_n[index] = clear_n
    latches.clear_count[index] = clear_count
