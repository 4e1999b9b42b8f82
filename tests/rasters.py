"""Rasters the tests write for every case the raster engine must handle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

BERLIN_UTM = Affine(10.0, 0.0, 390_000.0, 0.0, -10.0, 5_820_000.0)


def write(
    path: Path,
    data: np.ndarray,
    *,
    crs: Any = "EPSG:32633",
    transform: Affine = BERLIN_UTM,
    nodata: float | None = None,
    colorinterp: list[ColorInterp] | None = None,
    descriptions: list[str] | None = None,
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
    **profile: Any,
) -> Path:
    count, height, width = data.shape
    options: dict[str, Any] = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": data.dtype.name,
        "nodata": nodata, **profile,
    }  # fmt: skip
    if crs is not None:
        options.update(crs=crs, transform=transform)
    with rasterio.open(path, "w", **options) as dst:
        dst.write(data)
        if colorinterp:
            dst.colorinterp = colorinterp
        for i, text in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, text)
        if colormap:
            dst.write_colormap(1, colormap)
    return path


def halves_rgb(path: Path, size: int = 100) -> Path:
    """uint8 RGB: left half red (200, 0, 0), right half blue (0, 0, 200), a 10 px nodata border."""
    data = np.zeros((3, size, size), dtype="uint8")
    data[0, :, : size // 2] = 200
    data[2, :, size // 2 :] = 200
    data[:, :10, :] = data[:, -10:, :] = data[:, :, :10] = data[:, :, -10:] = 0
    rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    return write(path, data, nodata=0, colorinterp=rgb)


def reflectance(path: Path, size: int = 200) -> Path:
    """uint16 4-band B, G, R, NIR in 300..5000, nodata 0 in the first 20 rows."""
    rng = np.random.default_rng(1)
    data = rng.integers(300, 5000, size=(4, size, size)).astype("uint16")
    data[:, :20, :] = 0
    interp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]
    return write(path, data, nodata=0, colorinterp=interp, descriptions=["blue", "green", "red", "nir"])


def signed(path: Path) -> Path:
    """int16 1 band, -1000..1000 left to right."""
    row = np.linspace(-1000, 1000, 100).astype("int16")
    return write(path, np.tile(row, (1, 80, 1)))


def float_nan(path: Path) -> Path:
    """float32 1 band with NaN in the top-left 20 x 20, no nodata set."""
    data = np.linspace(0, 1, 100 * 100, dtype="float32").reshape(1, 100, 100)
    data[0, :20, :20] = np.nan
    return write(path, data)


def rgba(path: Path) -> Path:
    """uint8 RGBA: grey everywhere, alpha 0 in the left 30 columns."""
    data = np.full((4, 60, 60), 128, dtype="uint8")
    data[3] = 255
    data[3, :, :30] = 0
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
    return write(path, data, colorinterp=interp)


def paletted(path: Path) -> Path:
    """uint8 classes 0..2 with their own colours: 1 is green (0, 160, 0), 2 is yellow."""
    data = np.zeros((1, 60, 60), dtype="uint8")
    data[0, :, 20:40] = 1
    data[0, :, 40:] = 2
    palette = {0: (0, 0, 255, 255), 1: (0, 160, 0, 255), 2: (250, 220, 0, 255)}
    return write(path, data, colormap=palette, photometric="palette")


def two_bands(path: Path) -> Path:
    """uint16 2 bands."""
    data = np.stack([np.full((50, 50), 100, "uint16"), np.full((50, 50), 900, "uint16")])
    data[0, :, 25:] = 300
    return write(path, data)


def custom_crs(path: Path) -> Path:
    """uint8 1 band in an azimuthal equidistant CRS that has no EPSG code."""
    data = np.arange(64 * 64, dtype="uint32").reshape(1, 64, 64).astype("uint8")
    crs = "+proj=aeqd +lat_0=52.5 +lon_0=13.4 +datum=WGS84 +units=m +no_defs"
    return write(path, data, crs=crs, transform=Affine(100.0, 0, -3200.0, 0, -100.0, 3200.0))


def no_crs(path: Path) -> Path:
    """uint16 1 band without any georeferencing."""
    return write(path, np.arange(40 * 50, dtype="uint16").reshape(1, 40, 50), crs=None)


def large_plain(path: Path, size: int = 2400) -> Path:
    """uint8 1 band, larger than the overview threshold, tiled, with no overviews."""
    data = (np.add.outer(np.arange(size), np.arange(size)) % 251).astype("uint8")[None]
    return write(path, data, tiled=True, blockxsize=256, blockysize=256, compress="deflate")


def damaged_pixels(path: Path) -> Path:
    """A GeoTIFF whose header is fine but whose compressed tiles are garbage."""
    write(path, np.random.default_rng(2).integers(0, 255, (1, 512, 512)).astype("uint8"), tiled=True,
          blockxsize=256, blockysize=256, compress="deflate")  # fmt: skip
    raw = bytearray(path.read_bytes())
    with rasterio.open(path) as src:
        offsets = [int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1)) for x in (0, 1) for y in (0, 1)]
    for offset in offsets:
        raw[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    return path


def cut_overviews(path: Path) -> Path:
    """A GeoTIFF with internal overviews whose overview directories are cut off: it opens, reading fails."""
    from rasterio.enums import Resampling

    data = np.random.default_rng(3).integers(0, 255, (3, 1024, 1024)).astype("uint8")
    write(path, data, tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4, 8], Resampling.average)
    with rasterio.open(path) as src:
        last_block = max(
            int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b)) for b in (1, 2, 3) for x in range(4)
            for y in range(4)
        )  # fmt: skip
    raw = path.read_bytes()
    path.write_bytes(raw[: last_block + 70_000])  # the full resolution stays whole; the overviews go
    return path


def grid(path: Path, dtype: str = "uint32", *, height: int = 60, width: int = 80, **options: Any) -> Path:
    """1 band whose value is ``row * 1000 + col``: every pixel tells where it is (``write``'s options)."""
    data = (np.arange(height)[:, None] * 1000 + np.arange(width)[None, :]).astype(dtype)[None]
    return write(path, data, **options)
