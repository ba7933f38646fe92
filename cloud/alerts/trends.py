"""Row-wise statistics over masked windows: medians, MADs, means and least-squares slopes.

Every function takes ``(n, k)`` arrays (one row per resident, one column per reading of a
window) and a mask of the same shape saying which cells belong to the window, and returns one
value per row, NaN where the row has too few cells. No Python loop runs over rows. They are
what the state uses to keep personal baselines and trends up to date as readings arrive.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAD_TO_SD",
    "masked_count",
    "masked_mad",
    "masked_mean",
    "masked_median",
    "masked_slope",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MAD_TO_SD: Final = 1.4826
"""The median absolute deviation times this estimates the standard deviation of normal data."""


def masked_count(mask: BoolArray) -> npt.NDArray[np.int64]:
    return np.asarray(mask.sum(axis=1), dtype=np.int64)


def masked_median(values: FloatArray, mask: BoolArray, minimum: int = 1) -> FloatArray:
    """The median of each row's masked cells (NaN cells never count)."""
    mask = mask & ~np.isnan(values)
    cells = np.sort(np.where(mask, values, np.nan), axis=1)  # NaN sorts last
    count = masked_count(mask)
    low = np.clip((count - 1) // 2, 0, None)[:, None]
    high = np.clip(count // 2, 0, None)[:, None]
    below = np.take_along_axis(cells, low, axis=1)[:, 0]
    above = np.take_along_axis(cells, high, axis=1)[:, 0]
    result = (below + above) / 2.0 if cells.shape[1] else np.full(count.shape, np.nan)
    return np.where(count >= max(minimum, 1), result, np.nan)


def masked_mad(
    values: FloatArray, mask: BoolArray, median: FloatArray, minimum: int = 1
) -> FloatArray:
    """The median absolute deviation of each row's masked cells from ``median``."""
    return masked_median(np.abs(values - median[:, None]), mask, minimum)


def masked_mean(values: FloatArray, mask: BoolArray, minimum: int = 1) -> FloatArray:
    mask = mask & ~np.isnan(values)
    count = masked_count(mask)
    total = np.where(mask, values, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
    return np.where(count >= max(minimum, 1), mean, np.nan)


def masked_slope(x: FloatArray, y: FloatArray, mask: BoolArray, minimum: int = 2) -> FloatArray:
    """The least-squares slope of ``y`` on ``x`` over each row's masked cells (units of y per
    unit of x); NaN with fewer than ``minimum`` cells or when every x is the same."""
    mask = mask & ~np.isnan(x) & ~np.isnan(y)
    count = masked_count(mask)
    x0 = np.where(mask, x, 0.0)
    y0 = np.where(mask, y, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_x = x0.sum(axis=1) / count
        mean_y = y0.sum(axis=1) / count
        dx = np.where(mask, x - mean_x[:, None], 0.0)
        dy = np.where(mask, y - mean_y[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        sxy = (dx * dy).sum(axis=1)
        slope = sxy / sxx
    return np.where((count >= max(minimum, 2)) & (sxx > 0), slope, np.nan)
