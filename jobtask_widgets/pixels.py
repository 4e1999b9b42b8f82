"""Pixel values as users read them: masked, scaled and named. Pure functions, no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Value = int | float | None


class PixelValues(dict[str, Value]):
    """``{band name: value}`` at one point, with what the file stores beside it.

    Attributes:
        raw: ``{band name: stored value}``; differs from the values only where the file declares
            a scale or offset.
        lon: The point's longitude.
        lat: The point's latitude.
        inside: Whether the point is on the raster.
    """

    def __init__(
        self, values: dict[str, Value], raw: dict[str, Value], *, lon: float, lat: float, inside: bool
    ) -> None:
        super().__init__(values)
        self.raw = raw
        self.lon, self.lat, self.inside = lon, lat, inside

    @property
    def scaled(self) -> bool:
        """Whether any value differs from the stored one (a scale or offset applied)."""
        return any(self[name] != self.raw[name] for name in self)

    def __repr__(self) -> str:
        return f"PixelValues({dict(self)!r}, raw={self.raw!r})" if self.scaled else f"PixelValues({dict(self)!r})"


def pixel_values(
    names: Sequence[str],
    array: np.ma.MaskedArray | None,
    scales: Sequence[float],
    offsets: Sequence[float],
    *,
    lon: float,
    lat: float,
) -> PixelValues:
    """The values of one pixel, ``array`` ``(bands,)`` as read (``None``: outside the raster).

    A masked, NaN or infinite value is ``None``; a band with a scale or offset other than 1 and 0
    gets ``raw * scale + offset`` (a float), its stored value kept in ``raw``.
    """
    if array is None:
        empty = dict.fromkeys(names)
        return PixelValues(empty, dict(empty), lon=lon, lat=lat, inside=False)
    masks = np.ma.getmaskarray(array)
    values: dict[str, Value] = {}
    raw: dict[str, Value] = {}
    for index, name in enumerate(names):
        stored = _plain(array.data[index]) if not masks[index] else None
        raw[name] = stored
        scale, offset = float(scales[index]), float(offsets[index])
        if stored is None or (scale == 1.0 and offset == 0.0):
            values[name] = stored
        else:
            values[name] = stored * scale + offset
    return PixelValues(values, raw, lon=lon, lat=lat, inside=True)


def _plain(value: Any) -> Value:
    """A numpy scalar as a Python int or float; ``None`` for NaN and infinities."""
    plain = value.item() if hasattr(value, "item") else value
    if isinstance(plain, float) and not math.isfinite(plain):
        return None
    return int(plain) if isinstance(plain, (int, np.integer)) and not isinstance(plain, bool) else plain


def format_value(value: Value) -> str:
    """A value as the map's popup shows it: ``nodata`` for ``None``, floats to 6 significant digits."""
    if value is None:
        return "nodata"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
