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
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.env import env_ctx_if_needed
from rasterio.errors import NotGeoreferencedWarning
from rasterio.warp import transform_bounds
from rio_tiler.colormap import cmap as colormaps
from rio_tiler.constants import WGS84_CRS
from rio_tiler.errors import NoOverviewWarning, PointOutsideBounds, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.utils import render

from . import stretch as maths
from .bands import Band, Style, check_bands, default_bands, unique_band_names
from .errors import JobTaskError, RasterError
from .gdalerrors import GDAL_ERRORS, gdal_reason
from .overviews import FINISHER, OverviewProgress, first_overviews, needs_overviews
from .pixels import PixelValues, pixel_values
from .readers import ThreadReaders
from .remote import RENEW_MARGIN, RemoteFile, gdal_http_options, url_expiry

T = TypeVar("T")

DEFAULT_COLORMAP = "viridis"
STATS_MAX_SIZE = 1024  # statistics come from a read this many pixels across
SAMPLES_KEPT = 4  # band sets whose statistics read is kept (for histograms)
TILE_SIZE = 256
READ_ERRORS: tuple[type[Exception], ...] = (*GDAL_ERRORS, ValueError)  # rio-tiler raises ValueError for bad reads


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
        self._samples: OrderedDict[tuple[int, ...], np.ma.MaskedArray] = OrderedDict()  # the statistics' reads
        self._luts: dict[Style, np.ndarray | None] = {}
        self._lock = threading.Lock()
        self._readers = ThreadReaders(self._open_reader, lambda: self.label)
        self._closed = self._readers.closed_event
        self._display_path: Path | None = None
        self._display_lock = threading.Lock()
        self._finished_event = threading.Event()  # clear while the overview build's second step runs for us
        self._finished_event.set()
        self._stop_listening: Callable[[], None] | None = None  # to that step (the finisher runs it)
        self._listeners: list[Callable[[RasterSource], None]] = []
        self.overview_error: RasterError | None = None
        for attempt in (1, 2):
            try:
                with _quiet(), self._env(), rasterio.open(self._location) as src:
                    self.width, self.height, self.count = src.width, src.height, src.count
                    self.bands = [
                        Band(i, src.dtypes[i - 1], src.descriptions[i - 1], src.colorinterp[i - 1].name)
                        for i in src.indexes
                    ]
                    self.nodata = src.nodata
                    self.scales, self.offsets = tuple(src.scales), tuple(src.offsets)
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
        self._readers.drop()  # every reader reopens on the new URL

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
        return default_bands(self.bands)

    def check_bands(self, bands: Sequence[int] | None) -> tuple[int, ...]:
        """``bands`` checked against this file, or the default.

        Raises:
            ValueError: unless 1 or 3 band numbers of this file, naming its bands.
        """
        return check_bands(self.bands, bands, self.name)

    # -- files and readers ---------------------------------------------------------------------
    def display_path(self, progress: OverviewProgress | None = None) -> Path | str:
        """The file to read for display: the raster, or its cached overviews when it lacks them.

        A large local raster without overviews gets them from the overview cache in two steps: this
        call waits for the first (every level written in one pass; ``progress`` gets its steps) and
        returns that VRT; the second (the large levels compressed) runs in the background
        (``overviews.FINISHER``), still reporting to ``progress``, and when it ends the source reads
        the finished VRT and tells :meth:`on_display_change`'s listeners. A remote raster is read
        where it is (its URL): overviews are not built for it.
        """
        if self._remote is not None:
            with self._location_lock:
                return self._location
        with self._display_lock:
            if self._display_path is None:
                if needs_overviews(self.width, self.height, self.has_overviews):
                    shown, complete = first_overviews(self.path, progress)
                    if not complete and not self.closed:
                        self._finished_event.clear()
                        self._stop_listening = FINISHER.submit(self.path, self._finished, progress)
                    self._display_path = shown
                else:
                    self._display_path = self.path
            return self._display_path

    def _finished(self, result: Path | RasterError) -> None:
        """The background step ended: read the finished VRT (every thread reopens), tell the listeners."""
        try:
            if self.closed:
                return
            if isinstance(result, RasterError):
                self.overview_error = result  # the first step's overviews stay in use
            else:
                with self._display_lock:
                    self._display_path = result
                self._readers.drop()
            for listener in list(self._listeners):
                listener(self)
        finally:
            self._finished_event.set()

    @property
    def overviews_pending(self) -> bool:
        """Whether the overview build's second step is still running in the background."""
        return not self._finished_event.is_set()

    def wait_for_overviews(self, timeout: float | None = None) -> bool:
        """Wait until the background overview step has ended; ``False`` if it still runs after ``timeout`` s."""
        return self._finished_event.wait(timeout)

    def on_display_change(self, listener: Callable[[RasterSource], None]) -> Callable[[], None]:
        """Call ``listener(source)`` when the background overview step ends (``overview_error`` tells
        whether it failed); returns the function that unsubscribes it. It runs in that step's thread."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _open_reader(self, path: Path | str) -> Reader:
        # opened inside a GDAL environment of its own that ends here, so the dataset holds none:
        # rasterio's environments are per thread, and one held by a dataset opened in a tile
        # thread could neither be closed from another thread nor ever end (docs/architecture.md,
        # "GDAL state"); a remote file's environment carries its HTTP settings
        with _quiet(), self._env() if self._remote is not None else env_ctx_if_needed():
            return Reader(str(path))

    def close(self) -> None:
        """Close every thread's reader (a busy one as its read ends) and stop listening to a background
        overview step (which goes on: the overviews get finished for the next display); later reads
        raise ``RasterError``. Safe to call twice, and from any thread."""
        self._readers.drop(closing=True)
        stop_listening, self._stop_listening = self._stop_listening, None
        if stop_listening is not None:
            stop_listening()
        self._finished_event.set()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._readers.closed

    def _read(self, what: str, read: Callable[[Reader], T], *, raw: bool = False) -> T:
        """``read(reader)`` with this thread's reader, every failure a ``RasterError`` naming the raster.

        A remote file's read runs under its HTTP settings; one refused with 403 (its signed URL
        expired) renews the URL once and reads again. An ``ImageData`` result gets its invalid
        pixels masked. ``raw``: read the raster itself, not the file shown (its overviews).
        """
        self._renew_if_expiring()
        for attempt in (1, 2):
            with self._location_lock:
                location = self._location
            try:
                path = location if raw else str(self.display_path())
                with self._readers.using(path) as reader, _quiet(), self._env():
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
                self._stats[key] = maths.band_ranges(self._sample(bands), stretch, percentiles)
            return self._stats[key]

    def _sample(self, bands: Sequence[int]) -> np.ma.MaskedArray:
        """The bands decimated to ``STATS_MAX_SIZE`` pixels across: what statistics and histograms
        are computed from (one read per band set; the last few kept)."""
        key = tuple(bands)
        if key not in self._samples:
            image = self._read(
                "statistics", lambda reader: reader.preview(indexes=list(bands), max_size=STATS_MAX_SIZE)
            )
            self._samples[key] = image.array
            while len(self._samples) > SAMPLES_KEPT:
                self._samples.popitem(last=False)
        self._samples.move_to_end(key)
        return self._samples[key]

    def histogram(self, bands: Sequence[int], bins: int = maths.HISTOGRAM_BINS) -> maths.Histogram:
        """Each band's histogram over one shared value axis, from the statistics' decimated read."""
        with self._lock:
            sample = self._sample(self.check_bands_any(bands))
        return maths.histogram(sample, bins)

    def check_bands_any(self, bands: Sequence[int]) -> tuple[int, ...]:
        """``bands``, any number of this file's band numbers.

        Raises:
            ValueError: for a band not in the file, naming its bands.
        """
        chosen = tuple(int(b) for b in bands)
        outside = [b for b in chosen if not 1 <= b <= self.count]
        if outside or not chosen:
            raise ValueError(f"band {outside[0] if outside else '(none)'} is not in {self.name}: "
                             f"it has bands {self.band_labels}")  # fmt: skip
        return chosen

    # -- pixel values --------------------------------------------------------------------------
    @property
    def band_names(self) -> list[str]:
        """Each band's name from the file (description, colour, else ``band N``), unique."""
        return unique_band_names(self.bands)

    def values_at(self, lon: float, lat: float) -> PixelValues:
        """The raster's values at a point: ``{band name: value}``, through rio-tiler's point read.

        Values are of the raster's data type; ``None`` where the pixel is nodata, NaN or masked,
        and for every band outside the raster. Where the file declares a scale or offset the value
        is ``raw * scale + offset`` and the stored value is kept in ``.raw``. The raster itself is
        read (at full resolution), never its overviews.

        Args:
            lon: Longitude in degrees (EPSG:4326).
            lat: Latitude in degrees.

        Raises:
            RasterError: for a raster without a CRS, or one that cannot be read.
        """
        self.require_crs("pixel values")
        lon = (lon + 180.0) % 360.0 - 180.0  # a longitude from a copy of the world east or west of this one

        def read(reader: Reader) -> np.ma.MaskedArray | None:
            try:
                # every band by number: by default rio-tiler leaves an alpha band out
                return reader.point(lon, lat, coord_crs=WGS84_CRS, indexes=list(range(1, self.count + 1))).array
            except PointOutsideBounds:
                return None

        return pixel_values(self.band_names, self._read("pixel value", read, raw=True), self.scales, self.offsets,
                            lon=lon, lat=lat)  # fmt: skip

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


__all__ = ["Band", "RasterSource", "Style", "encode"]  # Band and Style live in bands.py, named here too
