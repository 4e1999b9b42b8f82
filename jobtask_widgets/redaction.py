"""Secrets out of log lines and error messages: the values of secret query parameters.

A signed URL opens its file for anyone until it expires, so its ``signature`` is a secret for
that long (ours, and S3's ``X-Amz-Signature``); an access token or a password in a query string
is one for longer. The server's access log and the client's error messages and urllib3's retry
warnings pass through :func:`redact`, which replaces those values with ``REDACTED``.
"""

from __future__ import annotations

import functools
import logging
import re

SECRET_PARAMETERS = (
    "signature",
    "access_token",
    "token",
    "password",
    "client_secret",
    "api_key",
    "project_api_key",
    "x-amz-signature",
    "x-amz-security-token",
    "x-amz-credential",
    "sig",  # Azure SAS
    "x-goog-signature",
    "x-goog-credential",
)
_SECRET = re.compile(r"(?i)([?&](?:" + "|".join(re.escape(p) for p in SECRET_PARAMETERS) + r")=)[^&#\s'\"]*")


def redact(text: str) -> str:
    """``text`` with the value of every secret query parameter replaced by ``REDACTED``."""
    return _SECRET.sub(r"\1REDACTED", text)


class RedactSecrets(logging.Filter):
    """Redacts secret query parameters in a log record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else _redacted(arg) for arg in record.args)
        record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
        return True


def _redacted(value: object) -> object:
    """An argument that is no string but prints a URL (urllib3's errors and ``Retry``): as redacted text."""
    if value is None or isinstance(value, int | float):
        return value
    text = str(value)
    cleaned = redact(text)
    return cleaned if cleaned != text else value


# the loggers of libraries that name a URL, query and all, in what they log: urllib3's retry
# warnings, and GDAL's messages as rasterio logs them ("HTTP error code: 0 - http://...?signature=...")
LIBRARY_LOGGERS = (
    "urllib3.connectionpool",
    "rasterio._err",
    "rasterio._env",
    "rasterio._base",
    "rasterio._io",
    "rasterio._filepath",
    "rasterio.env",
    "rasterio",
)


@functools.cache
def redact_library_logs() -> None:
    """Put :class:`RedactSecrets` on :data:`LIBRARY_LOGGERS`, once per process (later calls cost a
    cache lookup); it only ever takes secrets out of what would be logged. Called where signed
    URLs start to be read: the client, GDAL's HTTP options of remote reads, and the server's app."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


__all__ = ["LIBRARY_LOGGERS", "SECRET_PARAMETERS", "RedactSecrets", "redact", "redact_library_logs"]
