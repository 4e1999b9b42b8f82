"""What every store gives the app, whether it is a folder (``store.py``) or object storage
(``objectstore.py``): the same layout (``storelayout.py``), the same names, the same errors,
and one start-up check of every task (:func:`checked_tasks`).

A store hands a file over opened, as a :class:`StoreFile`: its size, time and version as they
were when it was opened, and reads of exactly that version (a local file through its open
descriptor; an object through ranged GETs conditional on its ETag). A read that meets another
version reports it (:meth:`StoreFile.unchanged` turns False), so no answer and no archive ever
joins two versions.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, Self

from ..credentials import Credentials
from ..errors import StoreError
from ..storelayout import ID_PATTERN, is_valid_id

QUICKLOOK_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
CHUNK = 256 * 1024


@dataclass(frozen=True)
class TaskRef:
    """The ids that name one job task."""

    project_id: str
    job_id: str
    task_id: str

    def __str__(self) -> str:
        return f"project {self.project_id} / job {self.job_id} / task {self.task_id}"

    @property
    def key(self) -> str:
        """The task's folder, relative to the store's root: ``projects/{p}/jobs/{j}/tasks/{t}``."""
        return f"projects/{self.project_id}/jobs/{self.job_id}/tasks/{self.task_id}"


@dataclass(frozen=True)
class Listed:
    """One result file as a listing saw it.

    Attributes:
        path: Its path relative to the task's ``output/``, ``/``-separated.
        size: Its size in bytes.
        tag: What tells its versions apart in a listing, as :attr:`StoreFile.tag` gives it for
            the opened file: a local file's modification time in nanoseconds, an object's ETag.
    """

    path: str
    size: int
    tag: str


class StoreFile(Protocol):
    """One version of a file of the store, opened for reading; close it (or use ``with``)."""

    @property
    def media_type(self) -> str:
        """What it is, for ``Content-Type``."""

    @property
    def size(self) -> int:
        """Its size in bytes, as opened."""

    @property
    def mtime(self) -> float:
        """Its modification time in seconds since the epoch, as opened."""

    @property
    def mtime_ns(self) -> int:
        """Its modification time in nanoseconds, as opened."""

    @property
    def version(self) -> str:
        """A text that differs between any two versions of the file (for a strong ETag)."""

    @property
    def tag(self) -> str:
        """The version as a listing shows it (:attr:`Listed.tag`): equal when the file opened is the one listed."""

    @property
    def where(self) -> str:
        """Where it is, for messages (a path or an object URL)."""

    def chunks(self, first: int = 0, last: int | None = None, size: int = CHUNK) -> Generator[bytes]:
        """Its bytes ``first``..``last`` (inclusive; default to the end) in chunks of about ``size``.

        Stops early (short) when the file is no longer the version that was opened; then
        :meth:`unchanged` is False.
        """

    def unchanged(self) -> bool:
        """Whether every read so far met the version that was opened."""

    def gdal_path(self) -> str | None:
        """A path GDAL can open this very version at (``/proc/self/fd/N``, a presigned
        ``/vsicurl/`` URL), or None."""

    def close(self) -> None:
        """Let it go."""

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class TaskStore(Protocol):
    """Read access to a store of job tasks: a folder or object storage."""

    @property
    def where(self) -> str:
        """The store's root, for messages and the log (a folder, or a URL)."""

    def check(self) -> list[TaskRef]:
        """Check every task; return them all, or raise ``StoreError`` naming each broken one."""

    def credentials(self) -> Credentials:
        """The store's own ``credentials.json``."""

    def require_task(self, ref: TaskRef) -> None:
        """Raise ``NotInStore`` when the task is unknown."""

    def list_tasks(self, project_id: str, job_id: str) -> list[dict[str, object]]:
        """The ``info.json`` of every task of a job, sorted by task id."""

    def task_info(self, ref: TaskRef) -> dict[str, object]:
        """A task's ``info.json``, with ``id`` set to its folder name."""

    def info_time(self, ref: TaskRef) -> float:
        """When a task's ``info.json`` was last written, in seconds since the epoch."""

    def open_data_json(self, ref: TaskRef) -> StoreFile:
        """A task's ``output/data.json``, opened."""

    def quicklook_names(self, ref: TaskRef) -> list[str]:
        """The names of a task's quicklook images, sorted."""

    def open_quicklook(self, ref: TaskRef, name: str) -> StoreFile:
        """One quicklook, opened."""

    def output_files(self, ref: TaskRef) -> list[Listed]:
        """The result files under a task's ``output/``, sorted by path."""

    def open_output_file(self, ref: TaskRef, path: str, media_type: str = "application/octet-stream") -> StoreFile:
        """One file of a task's ``output/`` (``path`` as :meth:`output_files` lists it), opened."""

    def presigned_url(self, ref: TaskRef, path: str, expires: timedelta) -> str | None:
        """The store's own URL of one result file, valid for ``expires``; None where the store
        cannot sign (a folder)."""


def read_all(opened: StoreFile) -> bytes:
    """All of an open file's bytes (for the small ones: ``info.json``, ``data.json``)."""
    return b"".join(opened.chunks())


def checked_tasks(
    where: str, found: Iterable[tuple[tuple[str, str, str], Callable[[], Mapping[str, Any] | None]]]
) -> list[TaskRef]:
    """The tasks a store holds, checked; or a ``StoreError`` naming every broken one.

    Args:
        where: The store, for the message.
        found: Each candidate's ``(project, job, task)`` names and a function that reads its
            ``info.json`` (``StoreError`` saying why it cannot; None for no task at all, such as
            a stray file among the task folders).

    Raises:
        StoreError: when a name is no valid id, an ``info.json`` cannot be read, or its ``id``
            differs from the task's name.
    """
    refs, problems = [], []
    for (p, j, t), read_info in found:
        ref = TaskRef(p, j, t)
        bad = [x for x in (p, j, t) if not is_valid_id(x)]
        if bad:
            problems.append(f"{ref.key}: folder name {bad[0]!r} is not a valid id ({ID_PATTERN.pattern})")
            continue
        try:
            info = read_info()
        except StoreError as exc:
            problems.append(f"{ref.key}: {exc}")
            continue
        if info is not None and info.get("id") != t:
            problems.append(f"{ref.key}: info.json has id {info.get('id')!r}, expected the folder name {t!r}")
        elif info is not None:
            refs.append(ref)
    if problems:
        raise StoreError(f"the store {where} has broken tasks:\n  " + "\n  ".join(problems))
    return refs


def is_relative_path(path: str) -> bool:
    """Whether ``path`` is a plain relative ``/``-separated path: no empty, ``.`` or ``..`` part, no NUL."""
    parts = path.split("/")
    return bool(path) and "\0" not in path and all(part not in ("", ".", "..") for part in parts)


__all__ = [
    "CHUNK",
    "QUICKLOOK_TYPES",
    "Listed",
    "StoreFile",
    "TaskRef",
    "TaskStore",
    "checked_tasks",
    "is_relative_path",
    "read_all",
]
