"""The store's layout, shared by the server that reads a store and the commands that write one.

```
ROOT/credentials.json
ROOT/projects/{p}/jobs/{j}/tasks/{t}/
    info.json      the task's metadata
    output/        data.json and the result files
    quicklooks/    PNG/JPEG previews
```

Ids and quicklook names match :data:`ID_PATTERN`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is an acceptable id or quicklook name."""
    return ID_PATTERN.fullmatch(value) is not None


def task_path(root: Path, project_id: str, job_id: str, task_id: str) -> Path:
    """Where a task's folder is in the store at ``root``."""
    return root / "projects" / project_id / "jobs" / job_id / "tasks" / task_id


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11's "Symlink loop"
        return None


def regular_files(folder: Path, *, inside: Path | None = None) -> list[tuple[str, Path]]:
    """Every regular file under ``folder``: ``(path relative to it, "/"-separated; resolved path)``, sorted.

    Links to folders are not followed; links to files are, and with ``inside`` (a resolved
    folder) only while their target stays inside it. Devices, sockets, FIFOs and broken links
    are left out.
    """
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not (base / d).is_symlink())
        for name in filenames:
            path = base / name
            resolved = _resolved(path)
            if resolved is None or (inside is not None and not resolved.is_relative_to(inside)):
                continue
            if resolved.is_file():
                files.append((path.relative_to(folder).as_posix(), resolved))
    return sorted(files)


def write_private_json(path: Path, value: Any, *, exclusive: bool = False) -> None:
    """Write a JSON file only its owner can read (mode 0600 from its creation, also when replaced).

    Args:
        path: The file.
        value: What it holds.
        exclusive: Refuse to replace an existing file (``FileExistsError``), atomically.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    mode = os.O_EXCL if exclusive else os.O_TRUNC
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode | getattr(os, "O_CLOEXEC", 0), 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        f.write(text)


def write_json(path: Path, value: Any) -> None:
    """Write a JSON file (indented, UTF-8), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


__all__ = ["ID_PATTERN", "is_valid_id", "regular_files", "task_path", "write_json", "write_private_json"]
