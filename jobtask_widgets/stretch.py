"""Stretch and colour maths: pure functions on arrays, no I/O.

Arrays are masked ``(bands, height, width)``; the mask marks nodata, NaN and alpha. A pixel
becomes transparent where every shown band is masked (GDAL's rule for per-band nodata: a red
pixel of an RGB with nodata 0 is (200, 0, 0), not a hole). A stretch maps each band's ``(low, high)`` range onto 0..255.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Stretch = Literal["auto", "percentile", "minmax"]
Range = tuple[float, float]
STRETCHES = ("auto", "percentile", "minmax")


def mask_invalid(array: np.ma.MaskedArray) -> np.ma.MaskedArray:
    """``array`` with NaN and infinite values masked too."""
    array = np.ma.asarray(array)
    if array.dtype.kind == "f":
        array = np.ma.masked_where(~np.isfinite(array.filled(0)) | np.ma.getmaskarray(array), array)
    return array


def band_ranges(
    array: np.ma.MaskedArray, stretch: Stretch = "percentile", percentiles: tuple[float, float] = (2.0, 98.0)
) -> list[Range]:
    """Each band's ``(low, high)`` over its valid pixels; ``(0, 1)`` for a band with none.

    Args:
        array: ``(bands, height, width)``, masked where invalid.
        stretch: ``"percentile"`` (between ``percentiles``) or ``"minmax"``; ``"auto"`` is
            0..255 for 8-bit data and the percentile stretch otherwise.
        percentiles: The low and high percentiles, 0..100.
    """
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)} (got {stretch!r})")
    low_p, high_p = percentiles
    if not 0 <= low_p < high_p <= 100:
        raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100 (got {percentiles!r})")
    if stretch == "auto":
        if array.dtype == np.uint8:
            return [(0.0, 255.0)] * array.shape[0]
        stretch = "percentile"
    ranges = []
    for band in mask_invalid(array):
        valid = band.compressed().astype("float64")
        if valid.size == 0:
            ranges.append((0.0, 1.0))
            continue
        if stretch == "minmax":
            low, high = float(valid.min()), float(valid.max())
        else:
            low, high = (float(v) for v in np.percentile(valid, [low_p, high_p]))
        ranges.append((low, high if high > low else low + 1.0))
    return ranges


def to_unit(array: np.ma.MaskedArray, ranges: Sequence[Range]) -> np.ma.MaskedArray:
    """Each band scaled from its range onto 0..1 (clipped), as float32, mask kept."""
    array = mask_invalid(array)
    if len(ranges) != array.shape[0]:
        raise ValueError(f"{len(ranges)} ranges for {array.shape[0]} bands")
    low = np.array([r[0] for r in ranges], dtype="float32")[:, None, None]
    span = np.array([r[1] - r[0] for r in ranges], dtype="float32")[:, None, None]
    scaled = np.subtract(array.filled(0), low, dtype="float32")  # float32 throughout: no float64 copies
    scaled /= span
    np.clip(scaled, 0.0, 1.0, out=scaled)
    return np.ma.MaskedArray(scaled, mask=np.ma.getmaskarray(array))


def to_rgba(
    array: np.ma.MaskedArray,
    ranges: Sequence[Range] | None,
    *,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """An RGBA ``(4, height, width)`` uint8 image; masked pixels get alpha 0.

    Args:
        array: 1 band (a colour table ``lut`` applies) or 3 bands (red, green, blue).
        ranges: The stretch of each band; ``None`` uses the values as they are (with ``lut``,
            a palette's own indices).
        lut: A ``(256, 4)`` uint8 colour table for one band.
    """
    array = mask_invalid(array)
    count = array.shape[0]
    if count not in (1, 3):
        raise ValueError(f"an image needs 1 or 3 bands (got {count})")
    if ranges is None:
        byte = np.clip(array.filled(0), 0, 255).astype("uint8")
    else:
        byte = np.round(to_unit(array, ranges).filled(0) * 255).astype("uint8")
    invalid = np.ma.getmaskarray(array).all(axis=0)  # GDAL's rule: nodata only where every band is
    if count == 1:
        table = lut if lut is not None else grey_lut()
        rgba = np.moveaxis(table[byte[0]], -1, 0).copy()
    else:
        rgba = np.concatenate([byte, np.full((1, *byte.shape[1:]), 255, dtype="uint8")])
    rgba[3][invalid] = 0
    return np.asarray(rgba, dtype="uint8")


def grey_lut() -> np.ndarray:
    """A (256, 4) grey colour table."""
    ramp = np.arange(256, dtype="uint8")
    return np.stack([ramp, ramp, ramp, np.full(256, 255, dtype="uint8")], axis=1)


def lut_from_colormap(colormap: Mapping[Any, Sequence[int]]) -> np.ndarray:
    """A (256, 4) uint8 table from a GDAL/rio-tiler colormap ``{value: (r, g, b[, a])}``."""
    table = np.zeros((256, 4), dtype="uint8")
    for value, colour in colormap.items():
        if 0 <= int(value) <= 255:
            rgba = tuple(colour) + (255,) * (4 - len(colour))
            table[int(value)] = rgba[:4]
    return table


HISTOGRAM_BINS = 64


@dataclass(frozen=True)
class Histogram:
    """Each band's counts over one shared value axis.

    Attributes:
        low: The first bin's low edge (the smallest valid value of any band).
        high: The last bin's high edge (the largest).
        counts: Per band, the count of valid pixels in each of the bins.
    """

    low: float
    high: float
    counts: list[list[int]]


def histogram(array: np.ma.MaskedArray, bins: int = HISTOGRAM_BINS) -> Histogram:
    """The histograms of ``(bands, h, w)`` over its valid pixels, on one axis from their min to max.

    A band without valid pixels counts zeros; an array without any gets the axis 0..1.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1 (got {bins})")
    bands = [band.compressed().astype("float64") for band in mask_invalid(array)]
    valid = [band for band in bands if band.size]
    low = min((float(band.min()) for band in valid), default=0.0)
    high = max((float(band.max()) for band in valid), default=1.0)
    if high <= low:
        high = low + 1.0
    counts = [np.histogram(band, bins=bins, range=(low, high))[0].astype(int).tolist() for band in bands]
    return Histogram(low, high, counts)
