"""The results archive of a task: a ``.tar.gz`` of its ``output/``, built once into the cache.

Members are the regular files of ``output/``, each named ``output/<relative path>``, in sorted
order, with normalised owners and modes, so the same output gives the same bytes. An archive is
keyed by a fingerprint of the files (paths, sizes, modification times): a changed output gets
a new archive and a new ETag, an unchanged one is never rebuilt. Concurrent first requests,
from threads or from several workers, build it once: the builder holds an exclusive ``flock``
on a lock file beside it, and the archive appears by an atomic rename.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import logging
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .store import TaskRef

log = logging.getLogger("jobtask_widgets.server")


@dataclass(frozen=True)
class Archive:
    """A built archive on disk."""

    path: Path
    etag: str
    size: int


def fingerprint(files: list[tuple[str, Path]]) -> str:
    """A short hash of the files' relative paths, sizes and modification times."""
    digest = hashlib.sha256()
    for rel, path in files:
        st = path.stat()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


class ArchiveCache:
    """Builds and keeps task archives under ``cache_dir/archives``.

    Args:
        cache_dir: The cache folder (never inside a task folder).
    """

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(cache_dir) / "archives"

    def get(self, ref: TaskRef, files: list[tuple[str, Path]]) -> Archive:
        """The archive of ``files`` for task ``ref``, built if it is not in the cache yet."""
        key = fingerprint(files)
        folder = self.folder / ref.project_id / ref.job_id / ref.task_id
        target = folder / f"{key}.tar.gz"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{key}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not target.is_file():  # another builder may have finished meanwhile
                    self._build(ref, files, target)
            for stale in folder.glob("*.tar.gz"):
                if stale != target:
                    stale.unlink(missing_ok=True)
        return Archive(target, f'"{key}"', target.stat().st_size)

    @staticmethod
    def _build(ref: TaskRef, files: list[tuple[str, Path]], target: Path) -> None:
        started = time.perf_counter()
        fd, tmp = tempfile.mkstemp(prefix=".building-", suffix=".tar.gz", dir=target.parent)
        try:
            with (
                os.fdopen(fd, "wb") as raw,
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for rel, path in files:
                    st = path.stat()
                    member = tarfile.TarInfo(f"output/{rel}")
                    member.size, member.mtime, member.mode = st.st_size, int(st.st_mtime), 0o644
                    with open(path, "rb") as src:
                        tar.addfile(member, src)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        log.info(
            "built the results archive of %s: %d files, %d bytes in %.2f s",
            ref,
            len(files),
            target.stat().st_size,
            time.perf_counter() - started,
        )
