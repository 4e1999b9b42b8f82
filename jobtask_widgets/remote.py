"""Result files read in place over HTTP: where a file is, how its URL is renewed, and GDAL's
HTTP settings for reading Cloud-Optimized GeoTIFFs by range.

A :class:`RemoteFile` is one result file at a (usually signed) URL. GDAL reads a COG from it
with a few range requests per view: the header, the tile offsets, the tiles or overview blocks
the view needs. The settings of :func:`gdal_http_options` are applied by whoever opens or reads
the file, in a ``rasterio.Env`` that covers that open or read only (never GDAL's process-wide
configuration):

- ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``: no directory listing (no sidecar probing) on open;
- ``GDAL_HTTP_MERGE_CONSECUTIVE_RANGES=YES``: neighbouring blocks in one request;
- ``GDAL_HTTP_MULTIPLEX=YES``: HTTP/2 streams on one connection where the server offers them;
- ``VSI_CACHE=TRUE`` with a 64 MB cache per open file, on top of GDAL's own block cache;
- ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY``: transient 429/5xx answers are retried;
- ``GDAL_HTTP_HEADERS``: the source's own headers (e.g. ``Authorization``), on every request.

Signed URLs expire. A read that comes within :data:`RENEW_MARGIN` seconds of the URL's
``expires`` asks ``renew`` for a fresh URL first, and a read that fails anyway (GDAL reports a
403 only as a short read) renews once and reads again (``RasterSource`` does both), so a map
left open for an hour keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .redaction import redact_library_logs

VSI_CACHE_BYTES = 64 * 1024 * 1024
RENEW_MARGIN = 10.0  # seconds before a signed URL expires that a read renews it first


@dataclass(frozen=True)
class RemoteFile:
    """One result file at a URL.

    Attributes:
        path: Its path among the task's results (relative to ``output/``, ``/``-separated).
        url: Where it is read (a signed URL, or any http(s) URL).
        size: Its size in bytes, when known.
        media_type: Its media type, when known.
        sha256: Its SHA-256 (hex), when known.
        renew: Returns a fresh URL of the same file (a signed URL that expired); None when the
            URL does not expire.
        headers: HTTP headers every request for it carries (GDAL's included).
    """

    path: str
    url: str
    size: int | None = None
    media_type: str | None = None
    sha256: str | None = None
    renew: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The file's name (the last part of its path)."""
        return PurePosixPath(self.path).name

    @property
    def suffix(self) -> str:
        """The file's suffix (``.tif``), as ``Path.suffix`` gives it."""
        return PurePosixPath(self.path).suffix

    @property
    def public_url(self) -> str:
        """The URL without its query (no signature) and without credentials, for messages."""
        return public_url(self.url)

    def with_url(self, url: str) -> RemoteFile:
        """The same file at another URL (a renewed one)."""
        return RemoteFile(self.path, url, self.size, self.media_type, self.sha256, self.renew, self.headers)


def public_url(url: str) -> str:
    """``url`` without its query, fragment and user info: what a message may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def gdal_http_options(headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """GDAL's configuration for reading COGs over HTTP (see the module docstring), for a ``rasterio.Env``."""
    redact_library_logs()  # GDAL's HTTP errors, as rasterio logs them, name the signed URL
    options: dict[str, Any] = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "VSI_CACHE": "TRUE",
        "VSI_CACHE_SIZE": VSI_CACHE_BYTES,
        "GDAL_HTTP_MAX_RETRY": 3,
        "GDAL_HTTP_RETRY_DELAY": 0.5,
    }
    if headers:
        lines = []
        for key, value in headers.items():
            if any(c in f"{key}{value}" for c in "\r\n"):
                raise ValueError(f"HTTP header {key!r} holds a line break; headers must be single lines")
            lines.append(f"{key}: {value}")
        options["GDAL_HTTP_HEADERS"] = "\r\n".join(lines)
    return options


def url_expiry(url: str) -> float | None:
    """When a signed URL expires (its ``expires`` query value, epoch seconds), or None when it does not say."""
    values = parse_qs(urlsplit(url).query).get("expires") or []
    try:
        return float(values[0]) if values else None
    except ValueError:
        return None


__all__ = ["RENEW_MARGIN", "VSI_CACHE_BYTES", "RemoteFile", "gdal_http_options", "public_url", "url_expiry"]
