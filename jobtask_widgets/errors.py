"""The exceptions raised by jobtask_widgets.

Every error the package raises on purpose derives from one base, so a caller can catch
``JobTaskError`` and know it came from here. Bad arguments raise ``ValueError`` instead,
with what was wrong and what is accepted.

```
JobTaskError
├── AuthenticationError      bad or missing credentials, refused token
├── APIError                 any other error answer (status, code, message, URL)
│   └── NotFoundError        unknown project, job, task or quicklook
├── DownloadError            transfer failed after retries, size mismatch, expired URL twice
│   ├── DownloadCancelled    the caller cancelled it (nothing partial is left on disk)
│   └── UnsafeArchiveError   a member that would escape, a link, a device, a bomb
├── RasterError              a raster that cannot be read (names the file and GDAL's reason)
├── SaveError                a file saved to the browser changed, vanished or could not be read
└── StoreError               a server store folder that breaks the layout (names the task)
```

Errors from other libraries (requests, rasterio, tarfile) are translated at the boundary
with ``raise ... from exc``, so the original cause stays attached.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "DownloadCancelled",
    "DownloadError",
    "JobTaskError",
    "NotFoundError",
    "RasterError",
    "SaveError",
    "StoreError",
    "UnsafeArchiveError",
    "explain",
]


class JobTaskError(Exception):
    """Base of every error raised on purpose by jobtask_widgets."""


class AuthenticationError(JobTaskError):
    """Credentials are missing or wrong, or the server refused the token."""


class APIError(JobTaskError):
    """The server answered with an error other than an authentication failure.

    Attributes:
        status: The HTTP status code, or ``None`` when no answer came (connection failed).
        code: The error code from the answer's envelope (e.g. ``"BAD_REQUEST"``).
        message: The server's message.
        url: The URL that was asked for.
    """

    def __init__(self, message: str, *, status: int | None, code: str | None = None, url: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.url = url
        where = f" for {url}" if url else ""
        label = " ".join(str(x) for x in (status, code) if x) or "no answer"
        super().__init__(f"{label}{where}: {message}")


class NotFoundError(APIError):
    """An unknown project, job, task or quicklook."""


class DownloadError(JobTaskError):
    """A transfer failed after its retries, or what arrived is not what was announced."""


class DownloadCancelled(DownloadError):
    """The caller cancelled a download; its partial files are removed."""


class UnsafeArchiveError(DownloadError):
    """A results archive holds a member that must not be unpacked."""


class RasterError(JobTaskError):
    """A raster that cannot be read; the message names the file and GDAL's reason."""


class SaveError(JobTaskError):
    """A file being saved to the browser changed, vanished or could not be read (names the file)."""


class StoreError(JobTaskError):
    """A folder served by the reference server does not follow the store layout."""


def explain(exc: BaseException) -> str:
    """What went wrong, in plain words for the person at the screen.

    The exception's own text (and its cause) is the detail; this is the headline a widget
    shows first.
    """
    if isinstance(exc, AuthenticationError):
        return "The server refused the credentials. Check the project id and API key, or log in again."
    if isinstance(exc, NotFoundError):
        return "The server does not know this project, job, task or file."
    if isinstance(exc, APIError):
        if exc.status is None:
            return "The server could not be reached. Check the API URL and the network."
        if exc.status >= 500:
            return "The server failed while answering. Try again later."
        return "The server refused the request."
    if isinstance(exc, DownloadCancelled):
        return "The download was cancelled. Nothing partial was kept."
    if isinstance(exc, UnsafeArchiveError):
        return "The results archive is unsafe, so nothing was unpacked."
    if isinstance(exc, DownloadError):
        return "The download failed. Try again: it goes on from where it stopped."
    if isinstance(exc, RasterError):
        return "A result raster cannot be read."
    if isinstance(exc, SaveError):
        return "The save to your computer stopped: a file changed or vanished while it was sent."
    if isinstance(exc, ValueError):
        return "The input was not accepted."
    if isinstance(exc, OSError):
        return "A file or folder could not be written or read. Check the output folder."
    return "Something unexpected went wrong."
