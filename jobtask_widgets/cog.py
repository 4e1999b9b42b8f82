"""Cloud-Optimized GeoTIFFs: which files are ones (rio-cogeo's validation), and writing one
(GDAL's COG driver, through rasterio).

A COG keeps its tiles and internal overviews in the order a reader needs them, so GDAL reads
one window or one overview of a remote file with a few range requests. The sample's rasters and
every raster ``jobtask-widgets publish`` puts on the server are COGs; the server's STAC Items
say which files are.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.errors import RasterioError

from .errors import RasterError

BLOCKSIZE = 512
GEOTIFF_SUFFIXES = (".tif", ".tiff")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders


def is_tiff(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts as a TIFF does (so GDAL's GTiff driver reads it, not, say, a VRT
    named ``.tif`` that points at other files)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in TIFF_MAGIC
    except OSError:
        return False


def is_cog(path: str | os.PathLike[str], *, known_tiff: bool = False) -> bool:
    """Whether ``path`` is a valid Cloud-Optimized GeoTIFF (rio-cogeo's ``cog_validate``).

    False for anything that is not a TIFF or that rasterio cannot read.

    Args:
        path: A local path, or a GDAL path (``/vsicurl/...``) with ``known_tiff``.
        known_tiff: The caller has checked the file's first bytes already (a GDAL path cannot
            be opened here to check them).
    """
    from rio_cogeo.cogeo import cog_validate

    if not known_tiff and not is_tiff(path):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            valid, _, _ = cog_validate(str(path), quiet=True)
    except (RasterioError, OSError, ValueError):
        return False
    return bool(valid)


def write_cog(
    source: str | os.PathLike[str], destination: str | os.PathLike[str], *, resampling: str | None = None
) -> Path:
    """Copy a raster into a new COG: deflate, 512 px tiles, internal overviews down to one tile.

    Band descriptions, tags, nodata and colour interpretation are kept; the pixels are copied
    losslessly. The overviews are averaged, or taken by nearest neighbour for a raster with a
    colour table (classes) unless ``resampling`` says otherwise.

    Args:
        source: A raster rasterio can open.
        destination: The COG to write (replaced when it exists).
        resampling: GDAL's overview resampling name (``"average"``, ``"nearest"``, ...).

    Returns:
        The destination.

    Raises:
        RasterError: when the source cannot be read or the COG cannot be written (names both).
    """
    destination = Path(destination)
    try:
        with rasterio.open(source) as src:
            floating = src.dtypes[0].startswith("float")
            try:
                has_colormap = src.colormap(1) is not None
            except ValueError:
                has_colormap = False
            options = {
                "driver": "COG",
                "compress": "DEFLATE",
                "predictor": 3 if floating else 2,
                "blocksize": BLOCKSIZE,
                "overview_resampling": (resampling or ("nearest" if has_colormap else "average")).upper(),
                "bigtiff": "IF_SAFER",
                "num_threads": "ALL_CPUS",  # a creation option of this one file, not GDAL's global setting
            }
            if has_colormap:
                options.pop("predictor")
            rasterio.shutil.copy(src, destination, **options)
    except (RasterioError, OSError) as exc:
        destination.unlink(missing_ok=True)
        raise RasterError(f"could not write {source} as a Cloud-Optimized GeoTIFF to {destination}: {exc}") from exc
    return destination


__all__ = ["BLOCKSIZE", "GEOTIFF_SUFFIXES", "TIFF_MAGIC", "is_cog", "is_tiff", "write_cog"]
