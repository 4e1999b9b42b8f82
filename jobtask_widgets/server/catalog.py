"""The routes that publish a task's results file by file and as STAC, on one module-level :data:`router`.

- ``GET .../tasks/{t}/outputs/files/``: every regular file under ``output/`` with its size,
  media type, SHA-256 and a signed URL of that file alone (bearer token needed).
- ``GET``/``HEAD /files/{p}/{j}/{t}/{path}?expires=&signature=``: one result file; no token,
  the signature opens that one file until it expires. ``Range`` (one or several), ``If-Range``,
  ``ETag`` and ``Accept-Ranges``, so GDAL's ``/vsicurl/`` reads a COG from it by ranges.
- ``GET``/``HEAD /quicklooks/{p}/{j}/{t}/{name}?expires=&signature=``: one quicklook, signed
  the same way (the STAC Item's thumbnail and overviews).
- ``GET .../tasks/{t}/stac/``: the task as a STAC 1.1 Item (:mod:`.stac`), asset hrefs signed.
- ``GET /projects/{p}/jobs/{j}/stac/``: the job's tasks as a STAC ItemCollection.

A forged, expired or other file's signature is refused with 403 in the error envelope; a path
that is not a plain relative path (``..``, empty parts) or not a regular file inside the task's
own ``output/`` is 404, as an unknown file.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from .auth import file_resource
from .dependencies import FactsDep, JobIds, ServerSettings, Settings, SignerDep, StoreDep, VisibleTask
from .errors import NotInStore
from .files import OpenFileResponse, file_response
from .models import QUICKLOOK_CONTENT, RESULT_FILE_CONTENT, STAC_CONTENT, ResultFile, ResultFilesAnswer
from .outputs import FileFacts, media_type_of
from .problems import forbidden
from .routes import TASK, errors
from .stac import QuicklookAsset, ResultAsset, item_dict, task_item
from .store import QUICKLOOK_TYPES, Store, TaskRef

log = logging.getLogger("jobtask_widgets.server")

FILE = "/files/{project_id}/{job_id}/{task_id}/{path:path}"
QUICKLOOK = "/quicklooks/{project_id}/{job_id}/{task_id}/{name}"
STAC_MEDIA_TYPE = "application/geo+json"

_UNAUTHORIZED = "The bearer token is missing, not valid or expired."
_NOT_FOUND_TASK = "Unknown project, job or task (or one the token may not open), or a malformed id."
_HEADER = {"schema": {"type": "string"}}
_FILE_HEADERS: dict[str, Any] = {
    "ETag": {**_HEADER, "description": "The file's version: a rewritten file gets another."},
    "Accept-Ranges": {**_HEADER, "description": "Always `bytes`."},
}

router = APIRouter()


class Signing:
    """Signs the file URLs of one answer: one base URL, one expiry."""

    def __init__(self, request: Request, settings: ServerSettings) -> None:
        self.base = (settings.public_url or str(request.base_url)).rstrip("/")
        self.expires = int(time.time()) + settings.url_ttl
        self._signer = settings.signer

    def url(self, ref: TaskRef, kind: str, path: str) -> str:
        """The signed URL of one output file (``kind="output"``) or quicklook (``"quicklook"``)."""
        query = urlencode(
            self._signer.sign(file_resource(ref.project_id, ref.job_id, ref.task_id, kind, path), self.expires)
        )
        folder, safe = ("files", "/") if kind == "output" else ("quicklooks", "")
        return f"{self.base}/{folder}/{ref.project_id}/{ref.job_id}/{ref.task_id}/{quote(path, safe=safe)}?{query}"


def _files(store: Store, facts: FileFacts, ref: TaskRef, *, with_raster: bool) -> list[tuple[str, Any]]:
    """``(path, facts)`` of every result file still there when it is opened."""
    found = []
    for path, _ in store.output_files(ref):
        try:
            opened = store.open_output_file(ref, path)
        except NotInStore:  # gone since it was listed
            continue
        with opened:
            found.append((path, facts.of(path, opened, with_raster=with_raster)))
    return found


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
        for path, f in _files(settings.store, facts, ref, with_raster=False)
    ]
    return ResultFilesAnswer(data=data)


def _check_signed(request: Request, signer: Any, resource: str, expires: str, signature: str, *, ask: str) -> None:
    if any(len(request.query_params.getlist(name)) > 1 for name in ("expires", "signature")):
        raise forbidden(f"the file URL repeats expires or signature; ask {ask} for a new one")
    refusal = signer.check(resource, expires, signature, what="file URL", thing="this file", ask=ask)
    if refusal:
        raise forbidden(refusal)


def _disposition(name: str) -> str:
    return f"inline; filename*=UTF-8''{quote(name, safe='')}"


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


def _file_options(summary: str, content: dict[str, Any]) -> dict[str, Any]:
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
            **errors(_SIGNED_ERRORS),
        },
    )


@router.get(FILE, operation_id="result_file_get", **_file_options("One result file", RESULT_FILE_CONTENT))
@router.head(FILE, operation_id="result_file_head", **_file_options("One result file", RESULT_FILE_CONTENT))
def result_file(
    request: Request,
    signer: SignerDep,
    store: StoreDep,
    project_id: str,
    job_id: str,
    task_id: str,
    path: str,
    expires: Annotated[str, _SIGNED_QUERY["expires"]] = "",
    signature: Annotated[str, _SIGNED_QUERY["signature"]] = "",
) -> OpenFileResponse:
    """One file of a task's ``output/`` at a signed URL; ranges read it in place."""
    resource = file_resource(project_id, job_id, task_id, "output", path)
    _check_signed(request, signer, resource, expires, signature, ask="outputs/files/")
    ref = TaskRef(project_id, job_id, task_id)
    opened = store.open_output_file(ref, path, media_type_of(path))
    headers = {"cache-control": "private, no-transform", "content-disposition": _disposition(path.rsplit("/", 1)[-1])}
    return file_response(opened, request.headers, headers=headers)


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
    _check_signed(request, signer, resource, expires, signature, ask="stac/")
    opened = store.open_quicklook(TaskRef(project_id, job_id, task_id), name)
    return file_response(opened, request.headers, headers={"cache-control": "private, no-transform"})


def _features(store: Store, ref: TaskRef) -> list[dict[str, Any]]:
    """The features of the task's data.json; none when it has none or it is not a FeatureCollection."""
    try:
        opened = store.open_data_json(ref)
    except NotInStore:
        return []
    with opened:
        try:
            collection = json.loads(opened.file.readall())
        except (ValueError, UnicodeDecodeError):
            log.warning("the data.json of %s is not JSON: its Item's geometry comes from the rasters", ref)
            return []
    features = collection.get("features") if isinstance(collection, dict) else None
    return [f for f in features if isinstance(f, dict)] if isinstance(features, list) else []


def _item(ref: TaskRef, settings: ServerSettings, facts: FileFacts, signing: Signing) -> dict[str, Any]:
    store = settings.store
    info = store.task_info(ref)
    files = [
        ResultAsset(path, f, signing.url(ref, "output", path))
        for path, f in _files(store, facts, ref, with_raster=True)
    ]
    quicklooks = [
        QuicklookAsset(name, QUICKLOOK_TYPES[name[name.rfind(".") :].lower()], signing.url(ref, "quicklook", name))
        for name in store.quicklook_names(ref)
    ]
    info_time = datetime.fromtimestamp((store.task_dir(ref) / "info.json").stat().st_mtime, UTC)
    item = task_item(
        info,
        _features(store, ref),
        files,
        quicklooks,
        self_href=f"{signing.base}{TASK.format(**ref.__dict__)}/stac/",
        hrefs_expire=datetime.fromtimestamp(signing.expires, UTC),
        fallback_time=info_time,
    )
    return item_dict(item)


@router.get(
    TASK + "/stac/",
    summary="A task as a STAC Item",
    response_class=JSONResponse,
    responses={
        200: {"description": "A STAC 1.1 Item; its asset hrefs are signed file URLs.", "content": STAC_CONTENT},
        **errors({401: _UNAUTHORIZED, 404: _NOT_FOUND_TASK}),
    },
)
def task_stac(ref: VisibleTask, request: Request, settings: Settings, facts: FactsDep) -> JSONResponse:
    """The task's results as a STAC 1.1 Item, readable by pystac, GDAL, QGIS and STAC Browser."""
    settings.store.task_dir(ref)
    return JSONResponse(_item(ref, settings, facts, Signing(request, settings)), media_type=STAC_MEDIA_TYPE)


@router.get(
    "/projects/{project_id}/jobs/{job_id}/stac/",
    summary="A job's tasks as a STAC ItemCollection",
    response_class=JSONResponse,
    responses={
        200: {"description": "A STAC ItemCollection of the job's tasks, by task id.", "content": STAC_CONTENT},
        **errors({401: _UNAUTHORIZED, 404: "Unknown project or job (or a project the token may not open)."}),
    },
)
def job_stac(job: JobIds, request: Request, settings: Settings, facts: FactsDep) -> JSONResponse:
    """Every task of the job as a STAC Item, in one ItemCollection."""
    signing = Signing(request, settings)
    refs = [TaskRef(*job, str(info["id"])) for info in settings.store.list_tasks(*job)]
    items = [_item(ref, settings, facts, signing) for ref in refs]
    collection = {
        "type": "FeatureCollection",
        "features": items,
        "links": [
            {"rel": "self", "href": f"{signing.base}/projects/{job[0]}/jobs/{job[1]}/stac/", "type": STAC_MEDIA_TYPE}
        ],
    }
    return JSONResponse(collection, media_type=STAC_MEDIA_TYPE)


__all__ = ["FILE", "QUICKLOOK", "router"]
