"""A store in object storage (S3 and the other stores obstore speaks), with a folder's layout.

```
URL/credentials.json
URL/projects/{p}/jobs/{j}/tasks/{t}/info.json, output/..., quicklooks/...
```

``ObjectStore("s3://bucket/prefix")`` reads the same layout as :class:`~.store.Store` reads
in a folder, through `obstore <https://developmentseed.org/obstore/>`_: its configuration comes
from the usual environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ...; ``GOOGLE_*`` and ``AZURE_*``
for the others), with ``endpoint_url`` for an S3-compatible store (MinIO, Ceph, moto). Ids and
paths are checked as a folder's are, so no key outside a task's ``output/`` or ``quicklooks/``
is ever read for a request.

An object is handed over opened (:class:`ObjectFile`): its size, time and ETag as a ``HEAD``
saw them, and every read a ranged ``GET`` with ``If-Match`` on that ETag, so an object replaced
meanwhile is never mixed into an answer or an archive (the read stops, as for a local file
rewritten in place). The store's own presigned URLs (``presigned_url``) let downloads go to
the store directly (``serve --redirect-downloads``).

Errors: an object that is not there is :class:`~.errors.NotInStore` (404); a store that cannot
be reached, or refuses our credentials, is :class:`~.errors.StoreUnreachable` (503), with the
store's own message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import PurePosixPath
from typing import Any, NoReturn, cast

import obstore
from obstore.exceptions import BaseError, PreconditionError
from obstore.store import ObjectStore as ObstoreStore
from obstore.store import from_url

from ..credentials import Credentials
from ..errors import StoreError
from ..redaction import redact
from ..storelayout import is_valid_id
from .errors import NotInStore, StoreUnreachable
from .storebase import CHUNK, QUICKLOOK_TYPES, Listed, StoreFile, TaskRef, checked_tasks, is_relative_path, read_all

log = logging.getLogger("jobtask_widgets.server")

SCHEMES = ("s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "abfss://", "adl://", "memory://")
RETRIES = {"max_retries": 3, "retry_timeout": timedelta(seconds=20)}  # an unreachable store fails in seconds
TIMEOUTS = {"connect_timeout": "5s", "timeout": "60s"}


def is_store_url(root: str | os.PathLike[str]) -> bool:
    """Whether ``root`` names object storage (``s3://...``, ``gs://...``, ...) rather than a folder."""
    return isinstance(root, str) and root.lower().startswith(SCHEMES)


def open_object_store(url: str, *, endpoint_url: str | None = None) -> ObstoreStore:
    """obstore's store for ``url``, configured from the environment and ``endpoint_url``.

    Raises:
        ValueError: when the URL is not one obstore supports, or the configuration is refused.
    """
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
    config: dict[str, Any] = {"endpoint": endpoint_url} if endpoint_url else {}
    client_options: dict[str, Any] = {**TIMEOUTS}
    if endpoint and endpoint.startswith("http://"):
        client_options["allow_http"] = True  # a local S3-compatible store (MinIO, moto) without TLS
    try:
        made: ObstoreStore = cast(Any, from_url)(
            url, config=config or None, client_options=client_options, retry_config=RETRIES
        )
        return made
    except (BaseError, ValueError, TypeError) as exc:
        raise ValueError(
            f"cannot use {url} as a store: {exc} (accepted: s3://bucket/prefix, gs://, az://, memory://; "
            "S3 reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and --endpoint-url)"
        ) from exc


def _mtime_ns(when: datetime) -> int:
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _tag(etag: str | None, size: int, modified: datetime) -> str:
    """An object's version as a listing and a ``HEAD`` both give it: its ETag (times differ in
    precision between the two on some stores); size and whole seconds where there is none."""
    return etag or f"{size}-{int(modified.timestamp())}"


class ObjectFile:
    """One version of an object, opened: what a ``HEAD`` saw, read by conditional ranged ``GET``s.

    Args:
        store: The obstore store.
        key: The object's path in it.
        meta: Its ``HEAD`` (obstore's ``ObjectMeta``).
        media_type: What it is, for ``Content-Type``.
        url: The store's URL, for messages.
    """

    def __init__(self, store: ObstoreStore, key: str, meta: Any, media_type: str, url: str) -> None:
        self._store, self._key, self._url = store, key, url
        self._size, self._modified, self._etag = int(meta["size"]), meta["last_modified"], meta.get("e_tag")
        self.media_type = media_type
        self._changed = False

    @property
    def size(self) -> int:
        """Its size as opened."""
        return self._size

    @property
    def mtime(self) -> float:
        """Its modification time as opened, in seconds."""
        return float(self._modified.timestamp())

    @property
    def mtime_ns(self) -> int:
        """Its modification time as opened, in nanoseconds."""
        return _mtime_ns(self._modified)

    @property
    def version(self) -> str:
        """Its ETag, size and time."""
        return f"{self._etag}-{self._size}-{self.mtime_ns}"

    @property
    def tag(self) -> str:
        """Its ETag, as a listing gives it."""
        return _tag(self._etag, self._size, self._modified)

    @property
    def where(self) -> str:
        """Its URL."""
        return f"{self._url.rstrip('/')}/{self._key}"

    def chunks(self, first: int = 0, last: int | None = None, size: int = CHUNK) -> Generator[bytes]:
        """Bytes ``first``..``last`` in one ranged ``GET`` of this version; stops short when the
        object was replaced (412 on ``If-Match``) or removed.

        Raises:
            StoreUnreachable: when the store cannot be read.
        """
        last = self._size - 1 if last is None else min(last, self._size - 1)
        if first > last:
            return
        options: dict[str, Any] = {"range": (first, last + 1)}
        if self._etag:
            options["if_match"] = self._etag
        try:
            result = obstore.get(self._store, self._key, options=options)  # type: ignore[arg-type]
            for chunk in result.stream(min_chunk_size=size):
                yield bytes(chunk)
        except (PreconditionError, FileNotFoundError):
            self._changed = True
        except BaseError as exc:
            _unreachable(self._url, exc)

    def unchanged(self) -> bool:
        """Whether every read so far met the version that was opened."""
        return not self._changed

    def gdal_path(self) -> str | None:
        """A presigned ``/vsicurl/`` URL of the object (None where the store cannot sign)."""
        try:
            url = obstore.sign(cast(Any, self._store), "GET", self._key, timedelta(minutes=15))
        except (BaseError, TypeError, ValueError):
            return None
        return f"/vsicurl/{url}"

    def close(self) -> None:
        """Nothing to close: each read is its own request."""

    def __enter__(self) -> ObjectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unreachable(url: str, exc: BaseException) -> NoReturn:
    """Log what the store said (for the operator; redacted), and raise what a client may read."""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    log.warning("cannot read the store %s: %s", url, redact(first_line))
    raise StoreUnreachable(f"cannot read the store {url} now (the server's log says why); ask again later") from exc


class ObjectStore:
    """Read access to a store in object storage (see the module's docstring).

    Args:
        url: The store's URL, e.g. ``s3://bucket/prefix``.
        endpoint_url: The endpoint of an S3-compatible store; default ``AWS_ENDPOINT_URL`` or AWS.
        store: An obstore store to use instead of one built from ``url`` (tests, custom auth).

    Raises:
        ValueError: when the URL or configuration is not usable.
    """

    def __init__(self, url: str, *, endpoint_url: str | None = None, store: ObstoreStore | None = None) -> None:
        self.url = url.rstrip("/")
        self.store = store if store is not None else open_object_store(url, endpoint_url=endpoint_url)

    @property
    def where(self) -> str:
        """The store's URL."""
        return self.url

    # -- objects ---------------------------------------------------------------------------
    def _head(self, key: str, what: str) -> Any:
        try:
            return obstore.head(self.store, key)
        except (FileNotFoundError, ValueError):  # ValueError: a key obstore cannot even spell (control characters)
            raise NotInStore(f"unknown {what}") from None
        except BaseError as exc:
            _unreachable(self.url, exc)

    def _open(self, key: str, what: str, media_type: str) -> ObjectFile:
        return ObjectFile(self.store, key, self._head(key, what), media_type, self.url)

    def _list(self, prefix: str) -> list[Any]:
        try:
            return [meta for page in obstore.list(self.store, prefix=prefix) for meta in page]
        except BaseError as exc:
            if "empty path segment" in str(exc):  # a key with "//": obstore cannot list what holds one
                raise StoreError(
                    f"{self.url}/{prefix} holds a key with an empty path segment (//), which cannot be listed; "
                    "rename it (e.g. a/b.tif, not a//b.tif)"
                ) from exc
            _unreachable(self.url, exc)

    def _children(self, prefix: str) -> tuple[list[str], list[Any]]:
        """The "folders" (names) and the objects right under ``prefix`` (which ends with ``/``)."""
        try:
            found = obstore.list_with_delimiter(self.store, prefix=prefix)
        except BaseError as exc:
            _unreachable(self.url, exc)
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in found["common_prefixes"]]
        return sorted(names), list(found["objects"])

    def _json(self, key: str, what: str) -> dict[str, Any]:
        with self._open(key, what, "application/json") as opened:
            raw = read_all(opened)
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreError(f"{what} is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise StoreError(f"{what} is not a JSON object")
        return value

    # -- tasks -----------------------------------------------------------------------------
    def _job_prefix(self, project_id: str, job_id: str) -> str:
        for label, value in (("project", project_id), ("job", job_id)):
            if not is_valid_id(value):
                raise NotInStore(f"unknown {label} {value!r}")
        return f"projects/{project_id}/jobs/{job_id}/"

    def _task_key(self, ref: TaskRef) -> str:
        self._job_prefix(ref.project_id, ref.job_id)
        if not is_valid_id(ref.task_id):
            raise NotInStore(f"unknown task {ref.task_id!r}")
        return ref.key

    def require_task(self, ref: TaskRef) -> None:
        """Raise :class:`NotInStore` when the task (its ``info.json``) is unknown."""
        self._head(f"{self._task_key(ref)}/info.json", f"task {ref.task_id!r} in job {ref.job_id!r}")

    def list_tasks(self, project_id: str, job_id: str) -> list[dict[str, Any]]:
        """The ``info.json`` of every task of a job, sorted by task id.

        Raises:
            NotInStore: when the job holds no object.
            StoreError: when a task's ``info.json`` is broken.
        """
        prefix = self._job_prefix(project_id, job_id)
        tasks, objects = self._children(prefix + "tasks/")
        if not tasks and not objects and not self._children(prefix)[0]:
            raise NotInStore(f"unknown job {job_id!r} in project {project_id!r}")
        infos = []
        for task_id in tasks:
            if is_valid_id(task_id):
                try:
                    infos.append(self.task_info(TaskRef(project_id, job_id, task_id)))
                except NotInStore:  # a "folder" without info.json is no task
                    continue
        return infos

    def task_info(self, ref: TaskRef) -> dict[str, Any]:
        """A task's ``info.json``, with ``id`` set to its name.

        Raises:
            NotInStore: when the task is unknown.
            StoreError: when its ``info.json`` is not a JSON object.
        """
        info = self._json(f"{self._task_key(ref)}/info.json", f"task {ref.task_id!r} in job {ref.job_id!r}")
        info["id"] = ref.task_id
        return info

    def info_time(self, ref: TaskRef) -> float:
        """When a task's ``info.json`` was last written.

        Raises:
            NotInStore: when the task is unknown.
        """
        meta = self._head(f"{self._task_key(ref)}/info.json", f"task {ref.task_id!r} in job {ref.job_id!r}")
        return float(meta["last_modified"].timestamp())

    def open_data_json(self, ref: TaskRef) -> ObjectFile:
        """A task's ``output/data.json``, opened.

        Raises:
            NotInStore: when the task or its ``data.json`` is unknown.
        """
        self.require_task(ref)
        return self._open(f"{ref.key}/output/data.json", f"data.json of task {ref.task_id!r}", "application/json")

    def quicklook_names(self, ref: TaskRef) -> list[str]:
        """The names of a task's quicklook images, sorted.

        Raises:
            NotInStore: when the task is unknown.
        """
        self.require_task(ref)
        _, objects = self._children(f"{ref.key}/quicklooks/")
        names = (str(meta["path"]).rsplit("/", 1)[-1] for meta in objects)
        return sorted(n for n in names if is_valid_id(n) and PurePosixPath(n).suffix.lower() in QUICKLOOK_TYPES)

    def open_quicklook(self, ref: TaskRef, name: str) -> ObjectFile:
        """One quicklook, opened, with its media type.

        Raises:
            NotInStore: when the task or the quicklook is unknown, or the name is not an image's.
        """
        what = f"quicklook {name!r} of task {ref.task_id!r}"
        if not is_valid_id(name) or PurePosixPath(name).suffix.lower() not in QUICKLOOK_TYPES:
            raise NotInStore(f"unknown {what}")
        self.require_task(ref)
        return self._open(f"{ref.key}/quicklooks/{name}", what, QUICKLOOK_TYPES[PurePosixPath(name).suffix.lower()])

    def output_files(self, ref: TaskRef) -> list[Listed]:
        """The objects under a task's ``output/``, by path relative to it, sorted.

        Keys that no folder could hold (empty parts, ``.`` or ``..``, "folder" markers ending
        with ``/``) are left out.

        Raises:
            NotInStore: when the task is unknown.
        """
        self.require_task(ref)
        prefix = f"{ref.key}/output/"
        listed = []
        for meta in self._list(prefix):
            rel, size = str(meta["path"])[len(prefix) :], int(meta["size"])
            if not is_relative_path(rel) or (size == 0 and not self._exists(prefix + rel)):
                continue  # a "folder" marker (key/) is listed without its slash, as an empty object it is not
            listed.append(Listed(rel, size, _tag(meta.get("e_tag"), size, meta["last_modified"])))
        return sorted(listed, key=lambda f: f.path)

    def _exists(self, key: str) -> bool:
        try:
            self._head(key, key)
        except NotInStore:
            return False
        return True

    def open_output_file(self, ref: TaskRef, path: str, media_type: str = "application/octet-stream") -> ObjectFile:
        """One object of a task's ``output/``, opened.

        Raises:
            NotInStore: when the task or the file is unknown, or the path is not a plain one.
        """
        what = f"file {path!r} of task {ref.task_id!r}"
        if not is_relative_path(path):
            raise NotInStore(f"unknown {what}")
        self.require_task(ref)
        return self._open(f"{ref.key}/output/{path}", what, media_type)

    def presigned_url(self, ref: TaskRef, path: str, expires: timedelta) -> str | None:
        """The store's own presigned ``GET`` URL of one result file (None where it cannot sign).

        Raises:
            NotInStore: when the path is not a plain one.
        """
        if not is_relative_path(path):
            raise NotInStore(f"unknown file {path!r} of task {ref.task_id!r}")
        try:
            return str(obstore.sign(cast(Any, self.store), "GET", f"{self._task_key(ref)}/output/{path}", expires))
        except (TypeError, ValueError, NotImplementedError):
            return None
        except BaseError as exc:
            _unreachable(self.url, exc)

    def credentials(self) -> Credentials:
        """The store's ``credentials.json``.

        Raises:
            StoreError: when it is missing or broken.
        """
        try:
            raw = self._json("credentials.json", f"credentials.json of {self.url}")
        except NotInStore as exc:
            raise StoreError(
                f"no credentials.json in {self.url}; upload one (`jobtask-widgets upload`) or pass --credentials"
            ) from exc
        try:
            loaded = Credentials.from_json(raw)
        except ValueError as exc:
            raise StoreError(f"credentials.json of {self.url}: {exc}") from exc
        return replace(loaded, source=f"{self.url}/credentials.json")

    # -- start-up check ----------------------------------------------------------------------
    def check(self) -> list[TaskRef]:
        """Check every task; return them all, or raise naming each broken one.

        Raises:
            StoreError: when a task has a bad name, no readable ``info.json``, or one whose
                ``id`` differs from its name; StoreUnreachable when the store cannot be read.
        """
        keys = [str(meta["path"]) for meta in self._list("projects/")]
        if not keys:
            raise StoreError(
                f"{self.url} is not a job-task store: it holds no projects/ "
                "(expected projects/{p}/jobs/{j}/tasks/{t}/info.json; `jobtask-widgets upload ROOT URL` "
                "copies a store folder there)"
            )
        parts = sorted({tuple(key.split("/")[:6]) for key in keys if len(key.split("/")) >= 7})
        tasks = [(p, j, t) for _, p, jobs, j, word, t in parts if (jobs, word) == ("jobs", "tasks")]

        def read_info(p: str, j: str, t: str) -> dict[str, Any]:
            try:
                return self._json(f"{TaskRef(p, j, t).key}/info.json", "info.json")
            except NotInStore:
                raise StoreError("no info.json") from None

        return checked_tasks(self.url, ((ids, partial(read_info, *ids)) for ids in tasks))


__all__ = ["SCHEMES", "ObjectFile", "ObjectStore", "StoreFile", "is_store_url", "open_object_store"]
