"""Answers that send a file the server has already opened: whole, one range or several.

The store and the archive cache open a file once and hand it over as a
:class:`~.storebase.StoreFile` (a local :class:`~.store.OpenFile`, or an object's
:class:`~.objectstore.ObjectFile`); :func:`file_response` answers from that one version only,
so the bytes sent are the ones announced even when the path is replaced, or the archive
removed, while they are sent. ``Range`` and ``If-Range`` are those of Starlette's ``FileResponse`` (a
weak or other validator in ``If-Range`` gets the whole file; overlapping ranges are merged;
several ranges are sent as ``multipart/byteranges``), with a bad ``Range`` refused by
:func:`~.ranges.parse_range`, so in the error envelope.

A local file replaced by a rename keeps its bytes in the open file. A file rewritten in place
while it is sent (its size or time on the open file change), or an object replaced while it is
sent (its ``If-Match`` read fails), cannot be sent whole: the answer is cut off before its last
bytes, so a client never takes a mix of two versions as a whole file (it sees a short answer and
asks again), and the server logs a warning that names the file. So is an answer whose object
store stops answering midway.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Mapping
from email.utils import formatdate
from secrets import token_hex

import anyio
import anyio.to_thread
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import StoreError
from .ranges import parse_range
from .storebase import StoreFile

log = logging.getLogger("jobtask_widgets.server")

CHUNK = 256 * 1024
MAX_RANGES = 100  # more, once merged, and the whole file is sent (as FileResponse does)


def stat_etag(opened: StoreFile) -> str:
    """The ETag Starlette's ``FileResponse`` gives a file of this size and time."""
    return f'"{hashlib.md5(f"{opened.mtime}-{opened.size}".encode(), usedforsecurity=False).hexdigest()}"'


def version_etag(opened: StoreFile) -> str:
    """A strong ETag of one version of a file (:attr:`~.storebase.StoreFile.version`).

    Unlike :func:`stat_etag`, a local file rewritten in place that keeps its size and restores
    its modification time gets another one (its change time moves), so ``If-Range`` never
    joins two versions of a result file.
    """
    return f'"{hashlib.sha256(opened.version.encode()).hexdigest()[:32]}"'


def requested_ranges(
    headers: Headers, size: int, etag: str, last_modified: str, *, what: str = "file"
) -> list[tuple[int, int]] | None:
    """The byte ranges to send, both ends inclusive and merged, or None for the whole file.

    Raises:
        MalformedRange: when ``Range`` is not a byte-range set.
        RangeNotSatisfiable: when a range lies outside the file.
    """
    http_range, if_range = headers.get("range"), headers.get("if-range")
    if http_range is None:
        return None
    if if_range is not None and (if_range.startswith("W/") or if_range not in (etag, last_modified)):
        return None
    merged: list[tuple[int, int]] = []
    for first, last in sorted(parse_range(http_range, size, what=what)):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged if len(merged) <= MAX_RANGES else None


class OpenFileResponse(Response):
    """Sends an open file's bytes (``ranges`` None: all of them), then closes it.

    Use :func:`file_response`, which checks the request's ``Range`` first.
    """

    def __init__(
        self,
        opened: StoreFile,
        *,
        ranges: list[tuple[int, int]] | None,
        headers: Mapping[str, str],
    ) -> None:
        self._opened = opened
        size = opened.size
        all_headers = {**headers}
        self._parts: list[tuple[bytes, int, int]] = []  # (part head, first, last) per range
        self._tail = b""
        if ranges is None:
            status, length = 200, size
            self._parts = [(b"", 0, size - 1)]
        elif len(ranges) == 1:
            status, (first, last) = 206, ranges[0]
            length = last - first + 1
            all_headers["content-range"] = f"bytes {first}-{last}/{size}"
            self._parts = [(b"", first, last)]
        else:
            status, boundary = 206, token_hex(13)
            for first, last in ranges:
                head = (
                    f"--{boundary}\r\ncontent-type: {opened.media_type}\r\n"
                    f"content-range: bytes {first}-{last}/{size}\r\n\r\n"
                )
                self._parts.append((head.encode("latin-1"), first, last))
            self._tail = f"--{boundary}--".encode("latin-1")
            length = sum(len(h) + last - first + 1 + 2 for h, first, last in self._parts) + len(self._tail)
            all_headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
        all_headers["content-length"] = str(length)
        super().__init__(None, status_code=status, headers=all_headers, media_type=opened.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    problem = await self._send_body(send)
                    if problem is not None:
                        log.warning("%s: the answer was cut short: %s", self._opened.where, problem)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                while (await receive())["type"] != "http.disconnect":  # a client that leaves stops the copy
                    pass
                group.cancel_scope.cancel()
        finally:
            self._opened.close()

    async def _send_body(self, send: Send) -> str | None:
        """Send the parts; why the answer was left unfinished, or None when it was sent whole."""
        opened = self._opened
        for head, first, last in self._parts:
            if head:
                await send({"type": "http.response.body", "body": head, "more_body": True})
            sent = 0
            with contextlib.closing(opened.chunks(first, last, CHUNK)) as chunks:
                try:
                    while (chunk := await anyio.to_thread.run_sync(next, chunks, b"")) != b"":
                        sent += len(chunk)
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except StoreError as exc:  # object storage gone away mid-answer (its log line says why)
                    return f"the store could not be read: {exc}"
            if sent != last - first + 1:  # chunks() stops at the first read that meets another version
                return (
                    "it was replaced or rewritten in place while it was sent "
                    "(write a new file and rename it over the old one, or put a new object, instead)"
                )
            if head:
                await send({"type": "http.response.body", "body": b"\r\n", "more_body": True})
        await send({"type": "http.response.body", "body": self._tail, "more_body": False})
        return None


def file_response(
    opened: StoreFile,
    request_headers: Headers,
    *,
    etag: str | None = None,
    headers: Mapping[str, str] | None = None,
    what: str = "file",
) -> OpenFileResponse:
    """The answer that sends ``opened`` (which it closes, also when the ``Range`` is refused).

    Args:
        opened: The open file.
        request_headers: The request's headers (``Range``, ``If-Range``).
        etag: The ETag; default the one Starlette's ``FileResponse`` would give.
        headers: More headers of the answer.
        what: What the file is, for the message of a range outside it.

    Raises:
        MalformedRange: when ``Range`` is not a byte-range set.
        RangeNotSatisfiable: when a range lies outside the file.
    """
    try:
        validators = {
            "accept-ranges": "bytes",
            "etag": etag or stat_etag(opened),
            "last-modified": formatdate(opened.mtime, usegmt=True),
        }
        etag, last_modified = validators["etag"], validators["last-modified"]
        ranges = requested_ranges(request_headers, opened.size, etag, last_modified, what=what)
        return OpenFileResponse(opened, ranges=ranges, headers={**validators, **(headers or {})})
    except BaseException:
        opened.close()
        raise


__all__ = [
    "CHUNK",
    "MAX_RANGES",
    "OpenFileResponse",
    "file_response",
    "requested_ranges",
    "stat_etag",
    "version_etag",
]
