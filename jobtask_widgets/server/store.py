"""The store: one folder per job task, read safely.

```
ROOT/credentials.json
ROOT/projects/{p}/jobs/{j}/tasks/{t}/
    info.json      the task's metadata
    output/        data.json and the result files
    quicklooks/    PNG/JPEG previews
```

Every id and name is checked against ``ID_PATTERN`` before it touches the file system, and
every path is resolved and must stay inside the root, so neither ``..`` nor a symlink that
leaves the root can be read through the server. A file is served (listed, sent, put into an
archive) only when it is a regular file inside its task's own ``output/`` or ``quicklooks/``
after links are followed: a link to ``ROOT/credentials.json``, to another task's files or to
the archive cache is left out, and those two folders must be real folders, not links. Files
are opened once (:func:`open_inside`: no link as the last step, no FIFO, checked again on the
open file) and served from that open file, so a file replaced meanwhile cannot swap in
something else. Hard links cannot be told from the file they share: whoever writes the store
must not hard-link files of other tasks into a task.

The store knows nothing of HTTP: it raises :class:`~.errors.NotInStore` for what it does not
hold and :class:`~jobtask_widgets.errors.StoreError` for a broken folder; the app maps both to
answers.
"""

from __future__ import annotations

import io
import mimetypes
import os
import stat
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from ..credentials import Credentials
from ..errors import StoreError
from ..jsonfile import read_json_object
from ..storelayout import is_valid_id, regular_files
from .errors import NotInStore
from .storebase import CHUNK, QUICKLOOK_TYPES, Listed, TaskRef, checked_tasks, is_relative_path


@dataclass(frozen=True)
class OpenFile:
    """A regular file of the store folder, opened for reading (a :class:`~.storebase.StoreFile`);
    close it (or use it in a ``with`` block).

    Attributes:
        file: The open file (unbuffered; read at offsets with ``os.pread``).
        stat: Its ``fstat`` as it was opened: the size and time to announce.
        media_type: What it is, for ``Content-Type``.
        path: Where it was opened, for messages.
    """

    file: io.FileIO
    stat: os.stat_result
    media_type: str = "application/octet-stream"
    path: Path | None = None

    @property
    def size(self) -> int:
        """Its size as opened."""
        return self.stat.st_size

    @property
    def mtime(self) -> float:
        """Its modification time as opened, in seconds."""
        return self.stat.st_mtime

    @property
    def mtime_ns(self) -> int:
        """Its modification time as opened, in nanoseconds."""
        return self.stat.st_mtime_ns

    @property
    def version(self) -> str:
        """Inode, size, and modification and change times: a rewrite in place that keeps the size
        and restores the modification time still moves the change time."""
        st = self.stat
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}"

    @property
    def tag(self) -> str:
        """Its modification time in nanoseconds, as a listing gives it."""
        return str(self.stat.st_mtime_ns)

    @property
    def where(self) -> str:
        """Where it was opened."""
        return str(self.path)

    def chunks(self, first: int = 0, last: int | None = None, size: int = CHUNK) -> Generator[bytes]:
        """Bytes ``first``..``last`` of the open file; stops short when it is rewritten in place."""
        fd = self.file.fileno()
        last = self.stat.st_size - 1 if last is None else last
        offset = first
        while offset <= last:
            chunk = os.pread(fd, min(size, last - offset + 1), offset)
            if not chunk or not self.unchanged():  # checked after the read: a chunk across a rewrite is never given
                return
            offset += len(chunk)
            yield chunk

    def unchanged(self) -> bool:
        """Whether the open file still has the size and time it was opened with."""
        now = os.fstat(self.file.fileno())
        return (now.st_size, now.st_mtime_ns) == (self.stat.st_size, self.stat.st_mtime_ns)

    def gdal_path(self) -> str | None:
        """``/proc/self/fd/N`` (this very open file) where the system has it, else the path opened."""
        fd_path = f"/proc/self/fd/{self.file.fileno()}"
        return fd_path if Path(fd_path).exists() else (str(self.path) if self.path is not None else None)

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# no link as the last step; O_NONBLOCK: opening a FIFO never hangs (and it is refused as no regular file)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _real_path(fd: int) -> Path | None:
    """Where an open file really is (Linux's ``/proc/self/fd``), or None where that is unknown."""
    try:
        target = Path(f"/proc/self/fd/{fd}").readlink()
    except OSError:
        return None
    return Path(str(target).removesuffix(" (deleted)"))


def resolve(path: Path) -> Path | None:
    """``path`` with every link followed, or None when that fails (a link loop, a path too long)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11's "Symlink loop"
        return None


def open_inside(path: Path, base: Path, media_type: str = "application/octet-stream") -> OpenFile | None:
    """``path`` opened for reading when it is a regular file inside ``base`` once links are followed.

    ``base`` must be a resolved path. The path is resolved first, then opened without following
    a link in its last step (a link swapped in meanwhile fails), and the open file must be a
    regular file whose real location (where the system tells it) is still inside ``base``.

    Returns:
        The open file with its ``fstat``, or None when it is missing, not a regular file, or
        outside ``base``.
    """
    resolved = resolve(path)
    if resolved is None or not resolved.is_relative_to(base):
        return None
    try:
        fd = os.open(resolved, _OPEN_FLAGS)
    except OSError:
        return None
    file = io.FileIO(fd, "rb", closefd=True)
    try:
        st = os.fstat(fd)
        real = _real_path(fd)
    except OSError:
        file.close()
        return None
    if not stat.S_ISREG(st.st_mode) or (real is not None and not real.is_relative_to(base)):
        file.close()
        return None
    return OpenFile(file, st, media_type, resolved)


class Store:
    """Read access to a store folder.

    Args:
        root: The store's root folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise StoreError(f"store root {self.root} is not a folder")

    # -- paths ---------------------------------------------------------------------------
    def _inside(self, path: Path) -> Path | None:
        """``path`` resolved, or None when it leaves the root."""
        resolved = resolve(path)
        return resolved if resolved is not None and resolved.is_relative_to(self.root) else None

    @staticmethod
    def _own_folder(task: Path, name: str) -> Path | None:
        """A task's ``output/`` or ``quicklooks/`` (``task`` resolved), or None when it is missing or a link."""
        folder = task / name
        return folder if folder.is_dir() and resolve(folder) == folder else None

    def _existing(self, path: Path, what: str, *, folder: bool) -> Path:
        resolved = self._inside(path)
        ok = resolved is not None and (resolved.is_dir() if folder else resolved.is_file())
        if not ok or resolved is None:
            raise NotInStore(f"unknown {what}")
        return resolved

    def job_dir(self, project_id: str, job_id: str) -> Path:
        """The folder of a job.

        Raises:
            NotInStore: when the project or job is unknown or its id malformed.
        """
        for label, value in (("project", project_id), ("job", job_id)):
            if not is_valid_id(value):
                raise NotInStore(f"unknown {label} {value!r}")
        self._existing(self.root / "projects" / project_id, f"project {project_id!r}", folder=True)
        job = self.root / "projects" / project_id / "jobs" / job_id
        return self._existing(job, f"job {job_id!r} in project {project_id!r}", folder=True)

    def task_dir(self, ref: TaskRef) -> Path:
        """The folder of a task.

        Raises:
            NotInStore: when the project, job or task is unknown or an id malformed.
        """
        job = self.job_dir(ref.project_id, ref.job_id)
        if not is_valid_id(ref.task_id):
            raise NotInStore(f"unknown task {ref.task_id!r}")
        task = job / "tasks" / ref.task_id
        return self._existing(task, f"task {ref.task_id!r} in job {ref.job_id!r}", folder=True)

    # -- reads -----------------------------------------------------------------------------
    def list_tasks(self, project_id: str, job_id: str) -> list[dict[str, Any]]:
        """The ``info.json`` of every task of a job, sorted by task id.

        Raises:
            NotInStore: when the project or job is unknown.
            StoreError: when a task's ``info.json`` has become unreadable since the start.
        """
        tasks_dir = self.job_dir(project_id, job_id) / "tasks"
        if not tasks_dir.is_dir():
            return []
        infos = []
        for entry in sorted(tasks_dir.iterdir()):
            if is_valid_id(entry.name) and self._inside(entry) and entry.is_dir():
                infos.append(self.task_info(TaskRef(project_id, job_id, entry.name)))
        return infos

    def task_info(self, ref: TaskRef) -> dict[str, Any]:
        """A task's ``info.json``, with ``id`` set to its folder name.

        Raises:
            NotInStore: when the task is unknown.
            StoreError: when its ``info.json`` is missing, unreadable or not an object.
        """
        path = self.task_dir(ref) / "info.json"
        info = _read_info(path, self._inside(path))
        info["id"] = ref.task_id
        return info

    def output_dir(self, ref: TaskRef) -> Path | None:
        """A task's own ``output/`` folder, resolved; None when it has none (or it is a link).

        Raises:
            NotInStore: when the task is unknown.
        """
        return self._own_folder(self.task_dir(ref), "output")

    def open_data_json(self, ref: TaskRef) -> OpenFile:
        """A task's ``output/data.json``, opened (see :func:`open_inside`).

        Raises:
            NotInStore: when the task is unknown or has no ``data.json`` of its own.
        """
        output = self.output_dir(ref)
        opened = open_inside(output / "data.json", output, "application/json") if output else None
        if opened is None:
            raise NotInStore(f"unknown data.json of task {ref.task_id!r}")
        return opened

    def quicklook_names(self, ref: TaskRef) -> list[str]:
        """The names of a task's quicklook images, sorted: regular files inside its ``quicklooks/``.

        Raises:
            NotInStore: when the task is unknown.
        """
        folder = self._own_folder(self.task_dir(ref), "quicklooks")
        if folder is None:
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if is_valid_id(p.name) and p.suffix.lower() in QUICKLOOK_TYPES and _regular_inside(p, folder)
        )

    def open_quicklook(self, ref: TaskRef, name: str) -> OpenFile:
        """One quicklook, opened (see :func:`open_inside`), with its media type.

        Raises:
            NotInStore: when the task or the quicklook is unknown, or the name is not an image's.
        """
        folder = self._own_folder(self.task_dir(ref), "quicklooks")
        what = f"quicklook {name!r} of task {ref.task_id!r}"
        if folder is None or not is_valid_id(name) or Path(name).suffix.lower() not in QUICKLOOK_TYPES:
            raise NotInStore(f"unknown {what}")
        media_type = QUICKLOOK_TYPES.get(Path(name).suffix.lower()) or mimetypes.guess_type(name)[0]
        opened = open_inside(folder / name, folder, media_type or "application/octet-stream")
        if opened is None:
            raise NotInStore(f"unknown {what}")
        return opened

    def open_output_file(self, ref: TaskRef, path: str, media_type: str = "application/octet-stream") -> OpenFile:
        """One file of a task's ``output/``, opened (see :func:`open_inside`).

        Args:
            ref: The task.
            path: The file's path relative to ``output/``, ``/``-separated, as
                :meth:`output_files` lists it.
            media_type: What it is, for ``Content-Type``.

        Raises:
            NotInStore: when the task or the file is unknown, or the path is not one that
                :meth:`output_files` could list (empty parts, ``.`` or ``..``, a NUL).
        """
        output = self.output_dir(ref)
        what = f"file {path!r} of task {ref.task_id!r}"
        if output is None or not is_relative_path(path):
            raise NotInStore(f"unknown {what}")
        parts = path.split("/")
        if any(output.joinpath(*parts[:n]).is_symlink() for n in range(1, len(parts))):
            raise NotInStore(f"unknown {what}")  # output_files never lists what a linked folder holds
        opened = open_inside(output.joinpath(*parts), output, media_type)
        if opened is None:
            raise NotInStore(f"unknown {what}")
        return opened

    def output_files(self, ref: TaskRef) -> list[Listed]:
        """The regular files under a task's ``output/``, sorted by path relative to it.

        Links to files are followed only while they stay inside the task's own ``output/``;
        links to folders are not followed; anything else (devices, sockets, links elsewhere)
        is left out. A file gone between listing and its ``stat`` is left out too.

        Raises:
            NotInStore: when the task is unknown.
        """
        output = self.output_dir(ref)
        listed = []
        for rel, path in regular_files(output, inside=output) if output is not None else []:
            try:
                st = path.stat()
            except OSError:
                continue
            listed.append(Listed(rel, st.st_size, str(st.st_mtime_ns)))
        return listed

    def require_task(self, ref: TaskRef) -> None:
        """Raise :class:`NotInStore` when the task is unknown."""
        self.task_dir(ref)

    def info_time(self, ref: TaskRef) -> float:
        """When a task's ``info.json`` was last written (now, when it is gone meanwhile).

        Raises:
            NotInStore: when the task is unknown.
        """
        try:
            return (self.task_dir(ref) / "info.json").stat().st_mtime
        except OSError:
            return time.time()

    def presigned_url(self, ref: TaskRef, path: str, expires: timedelta) -> str | None:
        """None: a folder has no URLs of its own (file URLs are always served)."""
        return None

    def credentials(self) -> Credentials:
        """``ROOT/credentials.json``.

        Raises:
            StoreError: when it is missing or broken.
        """
        return Credentials.load(self.root / "credentials.json")

    @property
    def where(self) -> str:
        """The root folder."""
        return str(self.root)

    # -- start-up check ----------------------------------------------------------------------
    def check(self) -> list[TaskRef]:
        """Check every task folder; return them all, or raise naming each broken one.

        Raises:
            StoreError: when a task folder has a bad name, no readable ``info.json``, or one
                whose ``id`` differs from its folder name.
        """
        projects = self.root / "projects"
        if not projects.is_dir():
            raise StoreError(
                f"{self.root} is not a job-task store: it has no projects/ folder "
                "(expected ROOT/projects/{p}/jobs/{j}/tasks/{t}/info.json; "
                "`jobtask-widgets sample ROOT` writes an example)"
            )

        def read_info(task: Path) -> dict[str, Any] | None:
            if self._inside(task) is None:
                raise StoreError("the folder is a link that leaves the store root")
            return _read_info(task / "info.json", self._inside(task / "info.json")) if task.is_dir() else None

        tasks = sorted(projects.glob("*/jobs/*/tasks/*"))
        found = (((t.parts[-5], t.parts[-3], t.parts[-1]), partial(read_info, t)) for t in tasks)
        return checked_tasks(str(self.root), found)


def _regular_inside(path: Path, base: Path) -> bool:
    resolved = resolve(path)
    return resolved is not None and resolved.is_relative_to(base) and resolved.is_file()


def _read_info(path: Path, inside: Path | None) -> dict[str, Any]:
    if inside is None:
        raise StoreError("info.json is a link that leaves the store root")
    try:
        return read_json_object(inside)
    except FileNotFoundError as exc:
        raise StoreError("no info.json") from exc
    except ValueError as exc:
        raise StoreError(f"info.json {exc}") from exc


__all__ = ["QUICKLOOK_TYPES", "OpenFile", "Store", "TaskRef", "is_relative_path", "open_inside", "resolve"]
