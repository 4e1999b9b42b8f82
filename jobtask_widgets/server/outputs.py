"""What the server knows of each result file, worked out once per file version.

A task's file list (``outputs/files/``) gives each file's media type and SHA-256, and its STAC
Item gives the same plus, for a GeoTIFF, whether it is a Cloud-Optimized GeoTIFF and the
projection, raster and eo fields rio-stac reads from it. Hashing a gigabyte or reading a
raster's statistics on every request would make both slow, so :class:`FileFacts` keeps what it
found per *file version* (:attr:`~.storebase.StoreFile.version`: a local file's inode, size,
modification and change times, so a rewrite in place that keeps the size and restores the
modification time is still another version; an object's ETag). A file rewritten or replaced is
another version and is looked at again; the cache keeps the most recent :data:`CACHE_SIZE`
versions.

Everything is read from the version the store handed over (its digest from its own bytes, and a
digest read across a change is refused, never cached; the raster fields through
``/proc/self/fd/N`` for a local file, a presigned ``/vsicurl/`` URL for an object), so the
facts are those of the bytes that are served, whatever is renamed over the path meanwhile.
Only a file that starts as a TIFF is opened by rasterio, and with the GTiff driver only: a VRT
named ``.tif`` that points at other files is never read. The raster fields come from a read
decimated to at most 1024 pixels across (rio-stac's own), so even a large raster costs a
fraction of a second once.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pystac
import rasterio
from rasterio.errors import RasterioError
from rio_stac.stac import get_dataset_geom, get_eobands_info, get_projection_info, get_raster_info

from ..cog import GEOTIFF_SUFFIXES, TIFF_MAGIC, is_cog
from .errors import NotInStore
from .storebase import StoreFile

CACHE_SIZE = 4096
VECTOR_TYPES = {  # suffix: media type, for the vector formats the field uses
    ".geojson": "application/geo+json",
    ".gpkg": "application/geopackage+sqlite3",
    ".fgb": "application/vnd.flatgeobuf",
    ".parquet": "application/vnd.apache.parquet",
    ".geoparquet": "application/vnd.apache.parquet",
    ".shp": "application/vnd.shp",
    ".kml": "application/vnd.google-earth.kml+xml",
}
OTHER_TYPES = {".json": "application/json", ".txt": "text/plain", ".csv": "text/csv", ".md": "text/markdown"}
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class RasterFacts:
    """What rio-stac reads from one raster.

    Attributes:
        fields: The asset's projection, ``raster:bands`` and ``eo:bands`` fields (JSON-ready).
        bbox: Its bounds in EPSG:4326 (west, south, east, north), or None without a CRS.
        geometry: Those bounds as a GeoJSON polygon in EPSG:4326, or None without a CRS.
    """

    fields: dict[str, Any]
    bbox: tuple[float, float, float, float] | None
    geometry: dict[str, Any] | None


@dataclass(frozen=True)
class Facts:
    """One version of one result file, as the file list and the STAC Item describe it.

    Attributes:
        media_type: Its media type (the COG profile for a Cloud-Optimized GeoTIFF).
        sha256: The lower-case hex SHA-256 of its bytes.
        size: Its size in bytes.
        roles: Its STAC roles: ``data`` for rasters and vectors, ``metadata`` for data.json.
        raster: What rio-stac read, for a GeoTIFF rasterio could open; else None.
    """

    media_type: str
    sha256: str
    size: int
    roles: tuple[str, ...] = ()
    raster: RasterFacts | None = field(default=None)
    raster_read: bool = field(default=False, repr=False)  # whether ``raster`` was looked for

    @property
    def multihash(self) -> str:
        """The digest as the STAC file extension's ``file:checksum``: a SHA-256 multihash in hex."""
        return "1220" + self.sha256


def media_type_of(path: str) -> str:
    """The media type a result file's name suggests (a GeoTIFF's without the COG profile)."""
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in GEOTIFF_SUFFIXES:
        return str(pystac.MediaType.GEOTIFF)
    if PurePosixPath(path).name == "data.json":
        return "application/geo+json"
    return (
        VECTOR_TYPES.get(suffix)
        or OTHER_TYPES.get(suffix)
        or mimetypes.guess_type(path)[0]
        or "application/octet-stream"
    )


class FileFacts:
    """The facts of result files, each worked out once per file version (thread-safe).

    Args:
        size: How many file versions to keep.
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], Facts] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def _get(self, key: tuple[Any, ...]) -> Facts | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _put(self, key: tuple[Any, ...], facts: Facts) -> None:
        with self._lock:
            self._cache[key] = facts
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def of(self, path: str, opened: StoreFile, *, with_raster: bool = False) -> Facts:
        """The facts of one open result file (which stays open; the caller closes it).

        Args:
            path: Its path relative to ``output/``.
            opened: The file, as the store opened it.
            with_raster: Whether the raster fields are wanted too (the STAC Item's); a file
                list needs only the digest.
        """
        key = (path, opened.where, opened.version)
        found = self._get(key)
        wants_raster = with_raster and PurePosixPath(path).suffix.lower() in GEOTIFF_SUFFIXES
        if found is not None and (found.raster_read or not wants_raster):
            return found
        readable = _readable_path(opened) if path.lower().endswith(GEOTIFF_SUFFIXES) else None
        with _remote_reads():
            if found is not None:
                sha256, media_type = found.sha256, found.media_type
            else:
                sha256, media_type = _sha256(opened), media_type_of(path)
                if not opened.unchanged():  # rewritten or replaced while hashed: no digest is this version's
                    raise NotInStore(f"file {path!r} changed while it was read; ask again")
                if readable is not None and is_cog(readable, known_tiff=True):
                    media_type = str(pystac.MediaType.COG)  # a few header reads: cheap next to the digest
            raster = _raster_facts(readable) if wants_raster and readable is not None else None
        facts = Facts(media_type, sha256, opened.size, _roles(path), raster, raster_read=wants_raster)
        self._put(key, facts)
        return facts


def _roles(path: str) -> tuple[str, ...]:
    name, suffix = PurePosixPath(path).name, PurePosixPath(path).suffix.lower()
    if name == "data.json":
        return ("metadata",)
    if suffix in GEOTIFF_SUFFIXES or suffix in VECTOR_TYPES:
        return ("data",)
    return ()


def _sha256(opened: StoreFile) -> str:
    digest = hashlib.sha256()
    for chunk in opened.chunks(size=_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _readable_path(opened: StoreFile) -> str | None:
    """Where GDAL can read this very version of the file (see ``StoreFile.gdal_path``), when it
    starts as a TIFF; else None."""
    if b"".join(opened.chunks(0, 3)) not in TIFF_MAGIC:
        return None
    return opened.gdal_path()


def _remote_reads() -> rasterio.Env:
    """GDAL's options for reading a presigned object URL, for these reads only: no listing of
    the URL's "folder", and GET instead of HEAD (a URL signed for GET refuses HEAD)."""
    return rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_VSIL_CURL_USE_HEAD="NO")


def _raster_facts(path: str) -> RasterFacts | None:
    """rio-stac's fields of a GeoTIFF; None when rasterio cannot read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rasters without a CRS, rio-stac's notes
            with rasterio.open(path, driver="GTiff") as src:
                fields = _projection_v2(get_projection_info(src))
                fields["raster:bands"] = get_raster_info(src, max_size=1024)
                eo = get_eobands_info(src)
                if eo:
                    fields["eo:bands"] = eo
                bbox, geometry = None, None
                if src.crs is not None:
                    geom = get_dataset_geom(src, densify_pts=21, precision=6)
                    bbox, geometry = tuple(geom["bbox"]), geom["footprint"]
    except (RasterioError, OSError, ValueError):
        return None
    return RasterFacts(finite(fields), bbox, geometry)


def _projection_v2(info: dict[str, Any]) -> dict[str, Any]:
    """rio-stac's projection fields (extension v1.1) as extension v2.0 names them: ``epsg`` becomes ``code``."""
    fields = {f"proj:{k}": v for k, v in info.items() if k != "epsg"}
    if info.get("epsg") is not None:
        fields["proj:code"] = f"EPSG:{info['epsg']}"
    return fields


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, so it is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return finite(value.item())
    return value


__all__ = ["CACHE_SIZE", "Facts", "FileFacts", "RasterFacts", "finite", "media_type_of"]
