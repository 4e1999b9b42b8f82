"""The routes that serve each result file at a signed URL, on one module-level :data:`router`.

- ``GET .../tasks/{t}/outputs/files/``: every regular file under ``output/`` with its size,
  media type, SHA-256 and a signed URL of that file alone (bearer token needed).
- ``GET``/``HEAD /files/{p}/{j}/{t}/{path}?expires=&signature=``: one result file; no token,
  the signature opens that one file until it expires. ``Range`` (one or several), ``If-Range``,
  ``ETag`` and ``Accept-Ranges``, so GDAL's ``/vsicurl/`` reads a COG from it by ranges.
- ``GET``/``HEAD /quicklooks/{p}/{j}/{t}/{name}?expires=&signature=``: one quicklook, signed
  the same way (the STAC Items' thumbnails and overviews).

A forged, expired or other file's signature is refused with 403 in the error envelope; a path
that is not a plain relative path (``..``, empty parts, a linked folder) or not a regular file
inside the task's own ``output/`` is 404, as an unknown file. The files are whatever a task's
producer wrote, so they are sent as data, never as a page of the server's origin: with
``X-Content-Type-Options: nosniff``, a sandboxing ``Content-Security-Policy``, and
``Content-Disposition: attachment`` for every type but images, text, JSON and TIFF.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from .auth import file_resource
from .dependencies import FactsDep, Settings, SignerDep, StoreDep, VisibleTask
from .errors import NotInStore
from .files import OpenFileResponse, file_response, version_etag
from .models import QUICKLOOK_CONTENT, RESULT_FILE_CONTENT, ResultFile, ResultFilesAnswer
from .outputs import Facts, FileFacts, media_type_of
from .routes import TASK, errors
from .signed import Signing, require_signature
from .storebase import StoreFile, TaskRef, TaskStore

log = logging.getLogger("jobtask_widgets.server")

FILE = "/files/{project_id}/{job_id}/{task_id}/{path:path}"
QUICKLOOK = "/quicklooks/{project_id}/{job_id}/{task_id}/{name}"
INLINE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/tiff", "text/plain", "text/csv", "application/json",
                "application/geo+json")  # fmt: skip
SAFE_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "sandbox; default-src 'none'",
    "cache-control": "private, no-transform",
}

_UNAUTHORIZED = "The bearer token is missing, not valid or expired."
_NOT_FOUND_TASK = "Unknown project, job or task (or one the token may not open), or a malformed id."
_HEADER = {"schema": {"type": "string"}}
_FILE_HEADERS: dict[str, Any] = {
    "ETag": {**_HEADER, "description": "The file's version: a rewritten file gets another."},
    "Accept-Ranges": {**_HEADER, "description": "Always `bytes`."},
}

router = APIRouter()


def result_files(store: TaskStore, facts: FileFacts, ref: TaskRef, *, with_raster: bool) -> list[tuple[str, Facts]]:
    """``(path, facts)`` of every result file still there when it is opened.

    A name that is not UTF-8 cannot be put in a URL: it is left out, with a warning naming it.
    """
    found = []
    for listed in store.output_files(ref):
        path = listed.path
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            log.warning("%s: the result file %r is left out: its name is not UTF-8", ref, path)
            continue
        try:
            opened = store.open_output_file(ref, path)
        except NotInStore:  # gone since it was listed
            continue
        with opened:
            found.append((path, facts.of(path, opened, with_raster=with_raster)))
    return found


def _send(request: Request, opened: StoreFile, name: str) -> OpenFileResponse:
    """A signed file's answer: the safe headers, its disposition, its version's ETag, ranges."""
    headers = {**SAFE_HEADERS, "content-disposition": disposition(name, opened.media_type)}
    return file_response(opened, request.headers, etag=version_etag(opened), headers=headers)


def disposition(name: str, media_type: str) -> str:
    """``Content-Disposition``: inline for the types a browser shows as data, else an attachment."""
    kind = "inline" if media_type.split(";")[0].strip() in INLINE_TYPES else "attachment"
    return f"{kind}; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    TASK + "/outputs/files/",
    summary="List a task's result files",
    responses=errors({401: _UNAUTHORIZED, 404: _NOT_FOUND_TASK}),
)
def list_files(ref: VisibleTask, request: Request, settings: Settings, facts: FactsDep) -> ResultFilesAnswer:
    """Every regular file under the task's ``output/``, by path, each with a signed URL of its own."""
    signing = Signing(request, settings)
    data = [
        ResultFile(
            path=path, size=f.size, media_type=f.media_type, sha256=f.sha256, url=signing.url(ref, "output", path)
        )
        for path, f in result_files(settings.store, facts, ref, with_raster=False)
    ]
    return ResultFilesAnswer(data=data)


_SIGNED_ERRORS = {
    400: "A malformed Range header; the message lists the accepted forms.",
    403: "The URL is not signed, its signature is not this file's, it has expired, or it repeats a parameter.",
    404: "The task or the file is unknown (or gone since the URL was signed), or the path is not a plain one.",
    416: "A range that starts at or beyond the end of the file.",
}
_SIGNED_QUERY = {
    "expires": Query(description="When the URL expires, in epoch seconds."),
    "signature": Query(description="The URL's HMAC, as outputs/files/ or stac/ gave it."),
}


_REDIRECT = {
    307: {
        "description": "With `serve --redirect-downloads` over object storage: the store's own presigned "
        "URL of the file, in `Location`.",
        "headers": {"Location": {**_HEADER, "description": "The presigned URL."}},
    }
}


def _file_options(summary: str, content: dict[str, Any], *, redirects: bool = False) -> dict[str, Any]:
    return dict(
        summary=summary,
        response_class=OpenFileResponse,
        status_code=200,  # FastAPI reads a default status from a response class's __init__; ours has none
        responses={
            200: {"description": "The whole file.", "content": content, "headers": _FILE_HEADERS},
            206: {
                "description": "The ranges asked for (If-Range honoured).",
                "content": content,
                "headers": _FILE_HEADERS,
            },
            **(_REDIRECT if redirects else {}),
            **errors(_SIGNED_ERRORS),
        },
    )


@router.get(
    FILE, operation_id="result_file_get", **_file_options("One result file", RESULT_FILE_CONTENT, redirects=True)
)
@router.head(
    FILE, operation_id="result_file_head", **_file_options("One result file", RESULT_FILE_CONTENT, redirects=True)
)
def result_file(
    request: Request,
    signer: SignerDep,
    settings: Settings,
    project_id: str,
    job_id: str,
    task_id: str,
    path: str,
    expires: Annotated[str, _SIGNED_QUERY["expires"]] = "",
    signature: Annotated[str, _SIGNED_QUERY["signature"]] = "",
) -> Response:
    """One file of a task's ``output/`` at a signed URL; ranges read it in place (or, with
    ``--redirect-downloads``, a 307 to the object store's own presigned URL)."""
    resource = file_resource(project_id, job_id, task_id, "output", path)
    require_signature(
        request, signer, resource, expires, signature, what="file URL", thing="this file", ask="outputs/files/"
    )
    ref = TaskRef(project_id, job_id, task_id)
    opened = settings.store.open_output_file(ref, path, media_type_of(path))  # 404 here, not at the store
    if settings.redirect_downloads and request.method == "GET":  # a URL presigned for GET refuses HEAD
        try:
            lifetime = max(1, min(settings.url_ttl, int(expires) - int(time.time())))  # no longer than ours
            target = settings.store.presigned_url(ref, path, timedelta(seconds=lifetime))
        except BaseException:
            opened.close()
            raise
        if target is not None:
            opened.close()
            return RedirectResponse(target, status_code=307, headers={"cache-control": "private, no-store"})
    return _send(request, opened, path.rsplit("/", 1)[-1])


@router.get(QUICKLOOK, operation_id="signed_quicklook_get", **_file_options("One quicklook, signed", QUICKLOOK_CONTENT))
@router.head(
    QUICKLOOK, operation_id="signed_quicklook_head", **_file_options("One quicklook, signed", QUICKLOOK_CONTENT)
)
def signed_quicklook(
    request: Request,
    signer: SignerDep,
    store: StoreDep,
    project_id: str,
    job_id: str,
    task_id: str,
    name: str,
    expires: Annotated[str, _SIGNED_QUERY["expires"]] = "",
    signature: Annotated[str, _SIGNED_QUERY["signature"]] = "",
) -> OpenFileResponse:
    """One quicklook of a task at a signed URL (the STAC Item's thumbnail and overviews)."""
    resource = file_resource(project_id, job_id, task_id, "quicklook", name)
    require_signature(request, signer, resource, expires, signature, what="file URL", thing="this file", ask="stac/")
    return _send(request, store.open_quicklook(TaskRef(project_id, job_id, task_id), name), name)


__all__ = ["FILE", "INLINE_TYPES", "QUICKLOOK", "SAFE_HEADERS", "disposition", "result_files", "router"]
