"""What a raster shows: each band's metadata, and the style that turns bands into colours.

Plain data, no I/O: ``RasterSource`` fills :class:`Band` from the file, and everything that draws a
raster (tiles, plots, the offline page) takes a :class:`Style`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import stretch as maths


@dataclass(frozen=True)
class Style:
    """How bands become colours.

    Attributes:
        bands: 1 or 3 band numbers (1-based); ``None`` for the raster's default.
        stretch: ``"auto"`` (8-bit as it is, else 2-98 %), ``"percentile"`` or ``"minmax"``;
            ignored where vmin/vmax are given.
        percentiles: The low and high percentiles of the percentile stretch.
        vmin: An explicit low end for every band.
        vmax: An explicit high end for every band.
        colormap: A rio-tiler colormap name for one band; ``None`` for the raster's own palette
            or ``"viridis"``.
    """

    bands: tuple[int, ...] | None = None
    stretch: maths.Stretch = "auto"
    percentiles: tuple[float, float] = (2.0, 98.0)
    vmin: float | None = None
    vmax: float | None = None
    colormap: str | None = None


@dataclass(frozen=True)
class Band:
    """One band's metadata."""

    index: int
    dtype: str
    description: str | None
    colorinterp: str

    @property
    def label(self) -> str:
        name = self.description or (self.colorinterp if self.colorinterp not in ("undefined", "gray") else "")
        return f"{self.index} ({name})" if name else str(self.index)

    @property
    def name(self) -> str:
        """The band's name as the file gives it: its description, else its colour (red, ...), else ``band N``."""
        if self.description:
            return self.description
        if self.colorinterp not in ("undefined", "gray", "palette"):
            return self.colorinterp
        return f"band {self.index}"


def unique_band_names(bands: Sequence[Band]) -> list[str]:
    """Each band's :attr:`Band.name`, made unique (``band N (name)`` where two bands share one)."""
    names = [band.name for band in bands]
    return [
        name if names.count(name) == 1 else f"band {band.index} ({name})"
        for band, name in zip(bands, names, strict=True)
    ]


def default_bands(bands: Sequence[Band]) -> tuple[int, ...]:
    """Red, green, blue by colour interpretation; else 1, 2, 3; else 1 (with a colormap)."""
    by_interp = {b.colorinterp: b.index for b in bands}
    if all(c in by_interp for c in ("red", "green", "blue")):
        return (by_interp["red"], by_interp["green"], by_interp["blue"])
    data = [b.index for b in bands if b.colorinterp != "alpha"]
    return tuple(data[:3]) if len(data) >= 3 else (data[0] if data else 1,)


def check_bands(bands: Sequence[Band], chosen: Sequence[int] | None, file_name: str) -> tuple[int, ...]:
    """``chosen`` checked against a file's ``bands``, or the default.

    Raises:
        ValueError: unless 1 or 3 band numbers of the file, naming its bands.
    """
    if chosen is None:
        return default_bands(bands)
    labels = ", ".join(b.label for b in bands)
    accepted = f"{file_name} has bands {labels}; give 1 band or 3 (red, green, blue)"
    if isinstance(chosen, (str, bytes)) or not isinstance(chosen, Sequence):
        raise ValueError(f"bands must be a list of band numbers, not {chosen!r}: {accepted}")
    if len(chosen) not in (1, 3) or not all(isinstance(b, (int, np.integer)) for b in chosen):
        raise ValueError(f"bands {list(chosen)!r} cannot be shown: {accepted}")
    outside = [b for b in chosen if not 1 <= b <= len(bands)]
    if outside:
        raise ValueError(f"band {outside[0]} is not in the file: {accepted}")
    return tuple(int(b) for b in chosen)
