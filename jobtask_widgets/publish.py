"""Publish a folder of processing outputs as a job task of a store, for the server to serve.

``jobtask-widgets publish SRC ROOT --project P --job J`` (or :func:`publish`) makes a task of a
folder: every file of ``SRC`` goes to the task's ``output/`` under the same relative path, each
GeoTIFF that is not a Cloud-Optimized GeoTIFF converted to one (so the server's file URLs read
it in place by ranges); a ``data.json`` gets one footprint feature per raster, naming it in
``up42.data_path`` (the features of a ``data.json`` in ``SRC`` are kept); each raster gets a PNG
quicklook rendered by :class:`~jobtask_widgets.raster.RasterSource` from a decimated read; and
``info.json`` says the task SUCCEEDED, with the publishing times and the given name.

Nothing partial reaches the store: the task is built in ``ROOT/.publishing/`` and moved into
place in one rename once it is whole (with ``replace``, the old task is moved aside first and
removed after), under a lock (``ROOT/.publishing/.lock``, left in place) that lets one
publisher at a time check and move. A store without ``credentials.json`` gets one with a new random API key for the
project, readable by its owner only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.errors import RasterioError

from .bands import Style
from .cog import GEOTIFF_SUFFIXES, is_cog, write_cog
from .credentials import Credentials
from .errors import RasterError, StoreError
from .footprint import footprint_4326
from .raster import RasterSource, encode
from .storelayout import ID_PATTERN, is_valid_id, regular_files, task_path, write_json, write_private_json

QUICKLOOK_SIZE = 512
MASK_SIZE = 1024  # the footprint is traced on the mask decimated to this many pixels across
STAGING = ".publishing"


@dataclass
class Published:
    """What :func:`publish` made.

    Attributes:
        task_dir: The task's folder in the store.
        task_id: Its id.
        files: The paths under ``output/``, sorted.
        converted: The GeoTIFFs that were converted to COGs.
        quicklooks: The quicklook names.
        api_key: The new project API key when the store had no credentials file, else None.
        note: What the publisher should know about the store's credentials, or "".
    """

    task_dir: Path
    task_id: str
    files: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    quicklooks: list[str] = field(default_factory=list)
    api_key: str | None = None
    note: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _source_files(source: Path) -> list[tuple[str, Path]]:
    """``(relative path, file)`` of every regular file under ``source`` but GDAL's ``.aux.xml`` sidecars."""
    return [(rel, path) for rel, path in regular_files(source) if not rel.endswith(".aux.xml")]


def _quicklook_name(rel: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(rel).stem).lstrip("._-")[:100] or "raster"
    name, number = f"{stem}.png", 2
    while name in taken:
        name, number = f"{stem}-{number}.png", number + 1
    taken.add(name)
    return name


def _footprint_feature(path: Path, rel: str) -> dict[str, Any] | None:
    """One raster's footprint feature (from its decimated mask), or None when it has no CRS or no data."""
    with rasterio.open(path) as src:
        if src.crs is None:
            return None
        scale = max(src.width, src.height) / MASK_SIZE
        height, width = (
            (max(1, round(src.height / scale)), max(1, round(src.width / scale))) if scale > 1 else src.shape
        )
        mask = src.dataset_mask(out_shape=(height, width))
        transform = src.transform @ Affine.scale(src.width / width, src.height / height)
        tolerance = max(abs(transform.a), abs(transform.e))
        geometry = footprint_4326(mask, transform, src.crs, tolerance, largest_only=False)
        properties = {
            "up42.data_path": rel,
            "uid": rel,
            "crs": src.crs.to_string(),
            "width": src.width,
            "height": src.height,
            "bands": src.count,
            "dtype": src.dtypes[0],
        }
    if geometry is None:
        return None
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _read_features(path: Path) -> list[dict[str, Any]]:
    try:
        collection = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"{path} is not readable JSON ({exc}); publish needs data.json to be a FeatureCollection"
        ) from exc
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise StoreError(f"{path} is not a GeoJSON FeatureCollection; publish keeps its features only when it is one")
    return [f for f in collection.get("features", []) if isinstance(f, dict)]


def publish(
    source: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    project_id: str,
    job_id: str,
    task_id: str | None = None,
    name: str | None = None,
    replace: bool = False,
    report: Callable[[str], None] | None = None,
) -> Published:
    """Make a task of the store at ``root`` from the folder ``source`` (see the module docstring).

    Args:
        source: The folder of outputs.
        root: The store's root folder (created when missing).
        project_id: The project's id.
        job_id: The job's id.
        task_id: The task's id; default a new UUID.
        name: The task's name and block name; default the folder's name.
        replace: Replace a task of that id that is already there.
        report: Called with a line per step (progress); default none.

    Returns:
        What was published.

    Raises:
        ValueError: when an id is not one the store accepts.
        StoreError: when ``source`` is not a folder of files, the task exists and ``replace``
            is not given, or a ``data.json`` in it is not a FeatureCollection.
        RasterError: when a GeoTIFF cannot be read or converted (names it).
    """
    say = report or (lambda line: None)
    source, root = Path(source).resolve(), Path(root).resolve()
    task_id = task_id or str(uuid.uuid4())
    for label, value in (("project", project_id), ("job", job_id), ("task", task_id)):
        if not is_valid_id(value):
            raise ValueError(f"{label} id {value!r} is not accepted: ids match {ID_PATTERN.pattern}")
    if not source.is_dir():
        raise StoreError(f"{source} is not a folder; publish takes a folder of outputs")
    files = _source_files(source)
    if not files:
        raise StoreError(f"{source} holds no files to publish")
    destination = task_path(root, project_id, job_id, task_id)
    if destination.exists() and not replace:
        raise StoreError(f"task {task_id} already exists at {destination}; pass --replace to overwrite it")
    name = name or source.name
    started = _now()
    staging_root = root / STAGING
    published = Published(destination, task_id)
    try:
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{task_id}-", dir=staging_root))
        try:
            _build(staging, files, published, say)
            _write_data_json(staging, published, say)
            finished = _now()
            write_json(staging / "info.json", _info(task_id, project_id, job_id, name, started, finished, published))
            with _publishing_lock(staging_root):  # one publisher at a time decides and moves
                if destination.exists() and not replace:
                    raise StoreError(
                        f"task {task_id} appeared at {destination} meanwhile; pass --replace to overwrite it"
                    )
                _move_into_place(staging, destination, staging_root)
                published.api_key, published.note = _credentials(root, project_id)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # the folder keeps only its lock file
    except OSError as exc:
        raise StoreError(f"could not publish {source} as task {task_id} in {root}: {exc}") from exc
    say(f"published task {task_id} at {destination}")
    return published


def _build(staging: Path, files: list[tuple[str, Path]], published: Published, say: Callable[[str], None]) -> None:
    """Copy every file into ``staging/output/`` (GeoTIFFs as COGs) and render the quicklooks."""
    output, quicklooks = staging / "output", staging / "quicklooks"
    taken: set[str] = set()
    for number, (rel, path) in enumerate(files, start=1):
        target = output / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        is_raster = path.suffix.lower() in GEOTIFF_SUFFIXES
        if is_raster and not is_cog(path):
            say(f"[{number}/{len(files)}] {rel}: converting to a Cloud-Optimized GeoTIFF")
            write_cog(path, target)
            published.converted.append(rel)
        else:
            say(f"[{number}/{len(files)}] {rel}: copying")
            shutil.copy2(path, target)
        published.files.append(rel)
        if is_raster:
            quicklook = _quicklook_name(rel, taken)
            quicklooks.mkdir(exist_ok=True)
            try:
                with RasterSource(target) as raster:
                    (quicklooks / quicklook).write_bytes(encode(raster.rgba(raster.preview(QUICKLOOK_SIZE), Style())))
            except (RasterError, RasterioError) as exc:
                raise RasterError(f"could not render a quicklook of {rel}: {exc}") from exc
            published.quicklooks.append(quicklook)


def _write_data_json(staging: Path, published: Published, say: Callable[[str], None]) -> None:
    """data.json: the features of the source's own, and a footprint for every raster it does not name."""
    path = staging / "output" / "data.json"
    features = _read_features(path) if path.is_file() else []
    named = {f["properties"].get("up42.data_path") for f in features if isinstance(f.get("properties"), dict)}
    for rel in published.files:
        if Path(rel).suffix.lower() in GEOTIFF_SUFFIXES and rel not in named:
            say(f"tracing the footprint of {rel}")
            try:
                feature = _footprint_feature(staging / "output" / rel, rel)
            except RasterioError as exc:
                raise RasterError(f"could not read the footprint of {rel}: {exc}") from exc
            if feature is not None:
                features.append(feature)
    write_json(path, {"type": "FeatureCollection", "features": features})
    if "data.json" not in published.files:
        published.files.append("data.json")
        published.files.sort()


def _info(
    task_id: str, project_id: str, job_id: str, name: str, started: str, finished: str, published: Published
) -> dict[str, Any]:
    rasters = sum(Path(rel).suffix.lower() in GEOTIFF_SUFFIXES for rel in published.files)
    return {
        "id": task_id,
        "name": name,
        "status": "SUCCEEDED",
        "startedAt": started,
        "finishedAt": finished,
        "block": {"name": name, "displayName": name},
        "blockVersion": "published",
        "jobId": job_id,
        "projectId": project_id,
        "progress": 100,
        "description": f"Published with jobtask-widgets publish: {len(published.files)} files, {rasters} rasters",
    }


def _credentials(root: Path, project_id: str) -> tuple[str | None, str]:
    """A new API key for the project when the store's credentials do not name it yet (a new store
    gets a version 2 ``credentials.json``, mode 0600; the key is stored hashed), else None; and a
    note about a version 1 file, which names one project only and is left as it is."""
    path = root / "credentials.json"
    if not path.exists():
        login, key = Credentials().with_project(project_id)
        try:
            write_private_json(path, login.to_json(), exclusive=True)
            return key, ""
        except FileExistsError:
            pass
    try:
        login = Credentials.load(path)
    except StoreError as exc:
        return None, f"the store's credentials could not be read ({exc}); this task's project has no key yet"
    if project_id in login.projects:
        return None, ""
    if login.version == 1:
        return None, (
            f"the store's credentials (version 1) open project {login.project_id} only: "
            f"`jobtask-widgets project add {project_id} --root {root}` turns them into version 2 and adds this one"
        )
    login, key = login.with_project(project_id)
    login.save(path)
    return key, ""


@contextlib.contextmanager
def _publishing_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock of the store's publishing (an ``flock`` on ``ROOT/.publishing/.lock``)."""
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _move_into_place(staging: Path, destination: Path, staging_root: Path) -> None:
    """Rename the whole task into place; an old one is moved aside first, then removed."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if destination.exists():
        old = staging_root / f"{destination.name}-replaced-{secrets.token_hex(4)}"
        destination.rename(old)
    try:
        staging.rename(destination)
    except OSError:
        if old is not None:
            old.rename(destination)  # the old task stays when the new one cannot take its place
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def print_report(line: str) -> None:
    """The command's progress: one line per step on standard error."""
    print(line, file=sys.stderr, flush=True)


__all__ = ["Published", "print_report", "publish"]
