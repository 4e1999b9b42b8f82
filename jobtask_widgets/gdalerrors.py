"""What GDAL, rasterio and rio-tiler raise for a file they cannot read, and GDAL's reason in words.

``raster`` and ``overviews`` translate these into ``RasterError`` at their boundary; nothing
else in the package catches GDAL's exceptions.
"""

from __future__ import annotations

from rasterio._err import CPLE_BaseError  # GDAL's own errors; rasterio does not re-export them
from rasterio.errors import RasterioError
from rio_tiler.errors import RioTilerError

# A raw CPLE_AppDefinedError escapes rasterio when, say, a TIFF's overview directories are cut off.
GDAL_ERRORS: tuple[type[Exception], ...] = (RasterioError, CPLE_BaseError, RioTilerError)


def gdal_reason(exc: BaseException) -> str:
    """The messages of an exception and its causes, GDAL's own first-hand reason included."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 4:
        text = str(seen).strip()
        if text and "See previous exception" not in text and text not in parts:
            parts.append(text)
        seen = seen.__cause__ or seen.__context__
    return "; ".join(parts) or type(exc).__name__
