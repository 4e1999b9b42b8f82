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
leaves the root can be read through the server.

The store knows nothing of HTTP: it raises :class:`~.errors.NotInStore` for what it does not
hold and :class:`~jobtask_widgets.errors.StoreError` for a broken folder; the app maps both to
answers.
"""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..jsonfile import read_json_object
from .errors import NotInStore

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
QUICKLOOK_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is an acceptable id or quicklook name."""
    return ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True)
class TaskRef:
    """The ids that name one job task."""

    project_id: str
    job_id: str
    task_id: str

    def __str__(self) -> str:
        return f"project {self.project_id} / job {self.job_id} / task {self.task_id}"


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
        resolved = path.resolve()
        return resolved if resolved.is_relative_to(self.root) else None

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

    def data_json(self, ref: TaskRef) -> Path:
        """The path of a task's ``output/data.json``.

        Raises:
            NotInStore: when the task is unknown or has no ``data.json``.
        """
        path = self.task_dir(ref) / "output" / "data.json"
        return self._existing(path, f"data.json of task {ref.task_id!r}", folder=False)

    def quicklook_names(self, ref: TaskRef) -> list[str]:
        """The names of a task's quicklook images, sorted.

        Raises:
            NotInStore: when the task is unknown.
        """
        folder = self.task_dir(ref) / "quicklooks"
        if not folder.is_dir() or self._inside(folder) is None:
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if is_valid_id(p.name)
            and p.suffix.lower() in QUICKLOOK_TYPES
            and (inside := self._inside(p)) is not None
            and inside.is_file()
        )

    def quicklook(self, ref: TaskRef, name: str) -> tuple[Path, str]:
        """The path and media type of one quicklook.

        Raises:
            NotInStore: when the task or the quicklook is unknown, or the name is not an image's.
        """
        folder = self.task_dir(ref) / "quicklooks"
        what = f"quicklook {name!r} of task {ref.task_id!r}"
        if not is_valid_id(name) or Path(name).suffix.lower() not in QUICKLOOK_TYPES:
            raise NotInStore(f"unknown {what}")
        path = self._existing(folder / name, what, folder=False)
        media_type = QUICKLOOK_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(name)[0]
        return path, media_type or "application/octet-stream"

    def output_files(self, ref: TaskRef) -> list[tuple[str, Path]]:
        """The regular files under a task's ``output/``: ``(path relative to output/, path)``.

        Sorted by relative path; symlinks are followed only while they stay inside the root,
        anything else (devices, sockets, links that leave the root) is left out.

        Raises:
            NotInStore: when the task is unknown.
        """
        output = self.task_dir(ref) / "output"
        if self._inside(output) is None or not output.is_dir():
            return []
        files = []
        for dirpath, dirnames, filenames in os.walk(output, followlinks=False):
            base = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())
            for name in filenames:
                path = base / name
                inside = self._inside(path)
                if inside is not None and inside.is_file():
                    files.append((path.relative_to(output).as_posix(), inside))
        return sorted(files)

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
        refs, problems = [], []
        for task in sorted(projects.glob("*/jobs/*/tasks/*")):
            rel = task.relative_to(self.root).as_posix()
            p, _, j, _, t = task.relative_to(projects).parts
            bad = [x for x in (p, j, t) if not is_valid_id(x)]
            if bad:
                problems.append(f"{rel}: folder name {bad[0]!r} is not a valid id ({ID_PATTERN.pattern})")
            elif self._inside(task) is None:
                problems.append(f"{rel}: the folder is a link that leaves the store root")
            elif task.is_dir():
                try:
                    info = _read_info(task / "info.json", self._inside(task / "info.json"))
                except StoreError as exc:
                    problems.append(f"{rel}: {exc}")
                    continue
                if info.get("id") != t:
                    problems.append(f"{rel}: info.json has id {info.get('id')!r}, expected the folder name {t!r}")
                else:
                    refs.append(TaskRef(p, j, t))
        if problems:
            raise StoreError(f"the store {self.root} has broken tasks:\n  " + "\n  ".join(problems))
        return refs


def _read_info(path: Path, inside: Path | None) -> dict[str, Any]:
    if inside is None:
        raise StoreError("info.json is a link that leaves the store root")
    try:
        return read_json_object(inside)
    except FileNotFoundError as exc:
        raise StoreError("no info.json") from exc
    except ValueError as exc:
        raise StoreError(f"info.json {exc}") from exc
