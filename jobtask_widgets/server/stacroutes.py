"""The routes that describe tasks as STAC, on one module-level :data:`router`.

- ``GET .../tasks/{t}/stac/``: the task as a STAC 1.1 Item (:mod:`.stac`), asset hrefs the
  signed file URLs of :mod:`.fileroutes`.
- ``GET /projects/{p}/jobs/{j}/stac/``: the job's tasks as a STAC ItemCollection.

Both are ``application/geo+json``, without the envelope (errors are in the envelope).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .dependencies import FactsDep, JobIds, ServerSettings, Settings, VisibleTask
from .errors import NotInStore
from .fileroutes import result_files
from .models import STAC_CONTENT
from .outputs import FileFacts
from .routes import TASK, errors
from .signed import Signing
from .stac import QuicklookAsset, ResultAsset, item_dict, task_item
from .storebase import QUICKLOOK_TYPES, TaskRef, TaskStore, read_all

log = logging.getLogger("jobtask_widgets.server")

STAC_MEDIA_TYPE = "application/geo+json"
_UNAUTHORIZED = "The bearer token is missing, not valid or expired."
_NOT_FOUND_TASK = "Unknown project, job or task (or one the token may not open), or a malformed id."

router = APIRouter()


def _features(store: TaskStore, ref: TaskRef) -> list[dict[str, Any]]:
    """The features of the task's data.json; none when it has none or it is not a FeatureCollection."""
    try:
        opened = store.open_data_json(ref)
    except NotInStore:
        return []
    with opened:
        try:
            collection = json.loads(read_all(opened))
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
        for path, f in result_files(store, facts, ref, with_raster=True)
    ]
    quicklooks = [
        QuicklookAsset(name, QUICKLOOK_TYPES[name[name.rfind(".") :].lower()], signing.url(ref, "quicklook", name))
        for name in store.quicklook_names(ref)
    ]
    info_time = datetime.fromtimestamp(store.info_time(ref), UTC)
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
    settings.store.require_task(ref)
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


__all__ = ["STAC_MEDIA_TYPE", "router"]
