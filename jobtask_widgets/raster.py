"""One raster source: band metadata, stretch statistics, overviews, and rendering via rio-tiler.

Reads never touch full resolution for display: previews, parts and tiles go through rio-tiler,
which reads overviews and decimates; a large raster without overviews gets them once from the
overview cache (``overviews.py``). Stretch statistics come from one decimated read per band set
and are cached. The maths (stretch, colours) is in ``stretch.py``; this module owns the file
handles: one rio-tiler ``Reader`` per thread, so tiles can render in a thread pool, and
``close()`` (or leaving a ``with RasterSource(...)`` block) closes every thread's reader.
Every GDAL, rasterio and rio-tiler failure is translated here into a ``RasterError`` that
names the file, also when the damage only shows once pixels or overviews are read.
"""

from __future__ import annotations

import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.env import env_ctx_if_needed
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform_bounds
from rio_tiler.colormap import cmap as colormaps
from rio_tiler.errors import NoOverviewWarning, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.utils import render

from . import stretch as maths
from .errors import JobTaskError, RasterError
from .gdalerrors import GDAL_ERRORS, gdal_reason
from .overviews import OverviewProgress, cached_overviews, needs_overviews
from .remote import RENEW_MARGIN, RemoteFile, gdal_http_options, url_expiry

T = TypeVar("T")

DEFAULT_COLORMAP = "viridis"
STATS_MAX_SIZE = 1024  # statistics come from a read this many pixels across
TILE_SIZE = 256
READ_ERRORS: tuple[type[Exception], ...] = (*GDAL_ERRORS, ValueError)  # rio-tiler raises ValueError for bad reads


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


class RasterSource:
    """A raster file, read for display.

    Args:
        path: The raster (any format GDAL reads).

    Raises:
        RasterError: when the file cannot be opened (names the file and GDAL's reason).
    """

    def __init__(self, path: str | os.PathLike[str] | RemoteFile) -> None:
        self._remote = path if isinstance(path, RemoteFile) else None
        self.path = Path(path.path) if isinstance(path, RemoteFile) else Path(path)
        self.name = self.path.name
        self._location = path.url if isinstance(path, RemoteFile) else str(self.path)
        self._location_lock = threading.Lock()
        self._renew_lock = threading.Lock()
        self._obtained = time.time()  # when the URL was had, to tell its lifetime
        self._stats: dict[tuple[Any, ...], list[maths.Range]] = {}
        self._luts: dict[Style, np.ndarray | None] = {}
        self._lock = threading.Lock()
        self._readers: dict[int, Reader] = {}  # by thread ident; these three guarded by _readers_lock
        self._busy: dict[int, int] = {}  # reads running, by thread ident
        self._leftover: dict[int, Reader] = {}  # readers of a closed source still busy in their thread
        self._readers_lock = threading.Lock()
        self._closed = threading.Event()
        self._display_path: Path | None = None
        for attempt in (1, 2):
            try:
                with _quiet(), self._env(), rasterio.open(self._location) as src:
                    self.width, self.height, self.count = src.width, src.height, src.count
                    self.bands = [
                        Band(i, src.dtypes[i - 1], src.descriptions[i - 1], src.colorinterp[i - 1].name)
                        for i in src.indexes
                    ]
                    self.nodata = src.nodata
                    self.crs = src.crs
                    self.bounds = tuple(src.bounds)
                    self.transform = src.transform
                    self.has_overviews = bool(src.overviews(1))
                    self.palette = src.colormap(1) if src.colorinterp[0] == ColorInterp.palette else None
                break
            except GDAL_ERRORS as exc:
                if attempt == 1 and self._renewable():  # GDAL tells a 403 as any failed read
                    self._renew_location(self._location)
                    continue
                raise RasterError(f"{self.label} cannot be read: {self._reason(exc)}") from exc
        self.georeferenced = self.crs is not None
        self.bounds_4326: tuple[float, float, float, float] | None = (
            transform_bounds(self.crs, "EPSG:4326", *self.bounds) if self.crs else None
        )

    @property
    def remote(self) -> RemoteFile | None:
        """The remote file read in place, or None for a local file."""
        return self._remote

    @property
    def label(self) -> str:
        """How messages name the raster: its path, and for a remote file its URL without the signature."""
        return f"{self.path} ({self._remote.public_url})" if self._remote is not None else str(self.path)

    def _env(self) -> AbstractContextManager[Any]:
        """GDAL's HTTP settings around an open or a read of a remote file; nothing for a local one."""
        return rasterio.Env(**gdal_http_options(self._remote.headers)) if self._remote is not None else nullcontext()

    def _reason(self, exc: BaseException) -> str:
        """GDAL's reason in words, with a remote file's URL (and its signature) left out."""
        reason = gdal_reason(exc)
        if self._remote is not None:
            with self._location_lock:
                locations = {self._location, self._remote.url}
            for location in sorted(locations, key=len, reverse=True):
                reason = reason.replace(location, self._remote.public_url)
            reason = re.sub(r"[?&](expires|signature|X-Amz-[A-Za-z]+|sig|token)=[^\s'\"&]*", "", reason)
        return reason

    def _renewable(self) -> bool:
        """Whether a failed open or read may be an expired signed URL that can be renewed."""
        return self._remote is not None and self._remote.renew is not None

    def _renew_if_expiring(self) -> None:
        """Renew the URL before a read when it expires within ``RENEW_MARGIN`` seconds (or within
        half its lifetime, for URLs that live less than twice that)."""
        if not self._renewable():
            return
        with self._location_lock:
            location, obtained = self._location, self._obtained
        expiry = url_expiry(location)
        if expiry is not None and time.time() > expiry - min(RENEW_MARGIN, (expiry - obtained) / 2):
            self._renew_location(location)

    def _renew_location(self, stale: str) -> None:
        """A fresh URL of the remote file in place of ``stale`` (its signed URL expired); every
        reader reopens on it. One renewal at a time: a thread whose URL was renewed meanwhile
        renews nothing."""
        assert self._remote is not None and self._remote.renew is not None
        with self._renew_lock:
            with self._location_lock:
                if self._location != stale:
                    return
            try:
                url = self._remote.renew()
            except JobTaskError as exc:
                raise RasterError(f"{self.label}: its URL expired and no new one could be had: {exc}") from exc
            with self._location_lock:
                self._location, self._obtained = url, time.time()
        self._drop_readers()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RasterSource({self.name!r}, {self.count} bands {self.bands[0].dtype}, {self.width}x{self.height})"

    # -- bands -------------------------------------------------------------------------------
    @property
    def band_labels(self) -> str:
        """The bands as ``1 (blue), 2 (green), ...`` for messages and pickers."""
        return ", ".join(b.label for b in self.bands)

    @property
    def alpha_band(self) -> int | None:
        """The alpha band's number, if any."""
        return next((b.index for b in self.bands if b.colorinterp == "alpha"), None)

    def default_bands(self) -> tuple[int, ...]:
        """Red, green, blue by colour interpretation; else 1, 2, 3; else 1 (with a colormap)."""
        by_interp = {b.colorinterp: b.index for b in self.bands}
        if all(c in by_interp for c in ("red", "green", "blue")):
            return (by_interp["red"], by_interp["green"], by_interp["blue"])
        data = [b.index for b in self.bands if b.colorinterp != "alpha"]
        return tuple(data[:3]) if len(data) >= 3 else (data[0] if data else 1,)

    def check_bands(self, bands: Sequence[int] | None) -> tuple[int, ...]:
        """``bands`` checked against this file, or the default.

        Raises:
            ValueError: unless 1 or 3 band numbers of this file, naming its bands.
        """
        if bands is None:
            return self.default_bands()
        accepted = f"{self.name} has bands {self.band_labels}; give 1 band or 3 (red, green, blue)"
        if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence):
            raise ValueError(f"bands must be a list of band numbers, not {bands!r}: {accepted}")
        if len(bands) not in (1, 3) or not all(isinstance(b, (int, np.integer)) for b in bands):
            raise ValueError(f"bands {list(bands)!r} cannot be shown: {accepted}")
        outside = [b for b in bands if not 1 <= b <= self.count]
        if outside:
            raise ValueError(f"band {outside[0]} is not in the file: {accepted}")
        return tuple(int(b) for b in bands)

    # -- files and readers ---------------------------------------------------------------------
    def display_path(self, progress: OverviewProgress | None = None) -> Path | str:
        """The file to read for display: the raster, or its cached overviews when it lacks them.

        A remote raster is read where it is (its URL): overviews are not built for it.
        """
        if self._remote is not None:
            with self._location_lock:
                return self._location
        if self._display_path is None:
            if needs_overviews(self.width, self.height, self.has_overviews):
                self._display_path = cached_overviews(self.path, progress)
            else:
                self._display_path = self.path
        return self._display_path

    @contextmanager
    def _using(self) -> Iterator[Reader]:
        """This thread's reader of the display file (opened on first use), held while the block runs.

        A reader in use is never closed under its read: :meth:`close` closes the idle readers and
        leaves each busy one to the read that holds it, which closes it on its way out (closing a
        dataset under a running read crashes GDAL).
        """
        path = self.display_path()
        thread = threading.get_ident()
        with self._readers_lock:
            if self._closed.is_set():
                raise RasterError(f"{self.label}: the raster source is closed")
            reader = self._readers.get(thread)
            self._busy[thread] = self._busy.get(thread, 0) + 1
        try:
            if reader is None:
                reader = self._open_reader(path)
                with self._readers_lock:
                    if self._closed.is_set():  # closed while this one opened: it goes with this read
                        self._leftover[thread] = reader
                    else:
                        self._readers[thread] = reader
            yield reader
        finally:
            self._release(thread)

    def _open_reader(self, path: Path | str) -> Reader:
        # opened inside a GDAL environment of its own that ends here, so the dataset holds none:
        # rasterio's environments are per thread, and one held by a dataset opened in a tile
        # thread could neither be closed from another thread nor ever end (docs/architecture.md,
        # "GDAL state"); a remote file's environment carries its HTTP settings
        with _quiet(), self._env() if self._remote is not None else env_ctx_if_needed():
            return Reader(str(path))

    def _release(self, thread: int) -> None:
        with self._readers_lock:
            self._busy[thread] -= 1
            if self._busy[thread]:
                return
            del self._busy[thread]
            leftover = self._leftover.pop(thread, None)
        if leftover is not None:  # the source was closed while this thread read
            leftover.close()  # type: ignore[no-untyped-call]  # rio-tiler's Reader.close has no annotations

    def close(self) -> None:
        """Close every thread's reader (a busy one as its read ends); later reads raise ``RasterError``.

        Safe to call twice, and from any thread.
        """
        self._drop_readers(closing=True)

    def _drop_readers(self, *, closing: bool = False) -> None:
        """Close every thread's reader: the idle ones now, each busy one as its read ends.

        Args:
            closing: Also mark the source closed (under the same lock), so no reader opens again.
        """
        with self._readers_lock:
            if closing:
                self._closed.set()
            idle = [r for t, r in self._readers.items() if t not in self._busy]
            self._leftover.update({t: r for t, r in self._readers.items() if t in self._busy})
            self._readers = {}
        for reader in idle:
            reader.close()  # type: ignore[no-untyped-call]  # rio-tiler's Reader.close has no annotations

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    def _read(self, what: str, read: Callable[[Reader], T]) -> T:
        """``read(reader)`` with this thread's reader, every failure a ``RasterError`` naming the raster.

        A remote file's read runs under its HTTP settings; one refused with 403 (its signed URL
        expired) renews the URL once and reads again. An ``ImageData`` result gets its invalid
        pixels masked.
        """
        self._renew_if_expiring()
        for attempt in (1, 2):
            with self._location_lock:
                location = self._location
            try:
                with self._using() as reader, _quiet(), self._env():
                    result = read(reader)
                break
            except TileOutsideBounds:
                raise
            except READ_ERRORS as exc:
                if attempt == 1 and self._renewable():  # GDAL tells a 403 as a short read, not by its status
                    self._renew_location(location)
                    continue
                raise RasterError(f"{self.label}: the {what} cannot be read: {self._reason(exc)}") from exc
        if isinstance(result, ImageData):
            result.array = maths.mask_invalid(result.array)
        return result

    # -- statistics -------------------------------------------------------------------------------
    def ranges(self, style: Style) -> list[maths.Range] | None:
        """The stretch of each shown band; ``None`` when a palette shows its own colours."""
        bands = self.check_bands(style.bands)
        if style.vmin is not None and style.vmax is not None:
            return [(style.vmin, style.vmax)] * len(bands)
        if style.vmin is not None or style.vmax is not None:  # one end given: the other from the data
            stats = self.statistics(bands, "minmax")
            return [
                (style.vmin if style.vmin is not None else low, style.vmax if style.vmax is not None else high)
                for low, high in stats
            ]
        if self.palette is not None and bands == (1,) and style.colormap is None:
            return None
        return self.statistics(bands, style.stretch, style.percentiles)

    def statistics(
        self, bands: Sequence[int], stretch: maths.Stretch = "auto", percentiles: tuple[float, float] = (2, 98)
    ) -> list[maths.Range]:
        """Each band's stretch range, from one decimated read, cached per band set."""
        key = (tuple(bands), stretch, tuple(percentiles))
        with self._lock:
            if key not in self._stats:
                image = self._read(
                    "statistics", lambda reader: reader.preview(indexes=list(bands), max_size=STATS_MAX_SIZE)
                )
                self._stats[key] = maths.band_ranges(image.array, stretch, percentiles)
            return self._stats[key]

    def lut(self, style: Style) -> np.ndarray | None:
        """The colour table for a one-band style (``None`` for three bands), cached per style."""
        if style not in self._luts:
            self._luts[style] = self._make_lut(style)
        return self._luts[style]

    def _make_lut(self, style: Style) -> np.ndarray | None:
        if len(self.check_bands(style.bands)) != 1:
            return None
        if self.palette is not None and style.colormap is None:
            return maths.lut_from_colormap(self.palette)
        name = style.colormap or DEFAULT_COLORMAP
        try:
            table = colormaps.get(name.lower())
        except Exception as exc:  # rio-tiler raises its InvalidColorMapName
            raise ValueError(
                f"unknown colormap {name!r}; known: {', '.join(sorted(colormaps.list())[:12])}, ..."
            ) from exc
        if not isinstance(table, dict):  # an interval colormap: not one of the named ones
            raise ValueError(f"colormap {name!r} is an interval colormap; give a named one")
        return maths.lut_from_colormap(table)

    # -- rendering ---------------------------------------------------------------------------------
    def preview(self, max_size: int, bands: Sequence[int] | None = None) -> ImageData:
        """1 or 3 bands decimated to at most ``max_size`` pixels across (masked array inside)."""
        return self.read_preview(max_size, self.check_bands(bands))

    def read_preview(self, max_size: int, indexes: Sequence[int]) -> ImageData:
        """Any bands decimated to at most ``max_size`` pixels across (masked array inside)."""
        return self._read("preview", lambda reader: reader.preview(indexes=list(indexes), max_size=max_size))

    def rgba(self, image: ImageData, style: Style) -> np.ndarray:
        """An image's ``(4, h, w)`` uint8 RGBA under ``style``."""
        return maths.to_rgba(image.array, self.ranges(style), lut=self.lut(style))

    def tile_rgba(self, z: int, x: int, y: int, style: Style = Style()) -> np.ndarray | None:
        """A 256 px Web Mercator tile as RGBA, or ``None`` outside the raster."""
        self.require_crs("tiles")
        bands = self.check_bands(style.bands)

        def read(reader: Reader) -> ImageData | None:
            if not reader.tile_exists(x, y, z):
                return None
            try:
                return reader.tile(x, y, z, tilesize=TILE_SIZE, indexes=list(bands))
            except TileOutsideBounds:
                return None

        image = self._read("tile", read)
        return None if image is None else self.rgba(image, style)

    def tile(self, z: int, x: int, y: int, style: Style = Style(), img_format: str = "PNG") -> bytes | None:
        """A 256 px Web Mercator tile as PNG or WEBP bytes, or ``None`` outside the raster."""
        rgba = self.tile_rgba(z, x, y, style)
        return None if rgba is None else encode(rgba, img_format)

    def part_rgba(
        self, bounds: tuple[float, float, float, float], width: int, height: int, style: Style = Style(),
        *, bounds_crs: str = "EPSG:4326", dst_crs: str = "EPSG:3857",
    ) -> np.ndarray:  # fmt: skip
        """The part of the raster inside ``bounds``, warped to ``dst_crs``, as RGBA."""
        self.require_crs("map overlays")
        bands = self.check_bands(style.bands)
        source_crs, target_crs = rasterio.CRS.from_user_input(bounds_crs), rasterio.CRS.from_user_input(dst_crs)
        image = self._read(
            "part", lambda reader: reader.part(
                bounds, dst_crs=target_crs, bounds_crs=source_crs, indexes=list(bands), width=width, height=height
            ),
        )  # fmt: skip
        return self.rgba(image, style)

    def require_crs(self, what: str) -> tuple[float, float, float, float]:
        """The bounds in EPSG:4326; ``RasterError`` saying why a raster without a CRS cannot be used for ``what``."""
        if self.bounds_4326 is None:
            raise RasterError(
                f"{self.label} has no coordinate reference system, so it cannot be placed on a map for {what}; "
                "plots still work"
            )
        return self.bounds_4326


def encode(rgba: np.ndarray, img_format: str = "PNG") -> bytes:
    """RGBA ``(4, h, w)`` uint8 as PNG or WEBP bytes (alpha kept)."""
    fmt = img_format.upper()
    if fmt not in ("PNG", "WEBP"):
        raise ValueError(f"img_format must be PNG or WEBP (got {img_format!r})")
    with _quiet():
        return render(rgba[:3], mask=rgba[3], img_format=fmt)


class _quiet(warnings.catch_warnings):
    """Silence rasterio's NotGeoreferencedWarning: a raster without a CRS is legitimate here."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        warnings.simplefilter("ignore", NoOverviewWarning)  # the overview cache deals with that
