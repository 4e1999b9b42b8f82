"""The results archive of a task: a ``.tar.gz`` of its ``output/``, built once into the cache.

Members are the regular files of ``output/``, each named ``output/<relative path>``, in sorted
order, with normalised owners and modes, so the same output gives the same bytes. A file that
does not compress (a deflated GeoTIFF, a JPEG) goes into the gzip stream as stored deflate
blocks, at disk speed, instead of being squeezed by 1 % at 50 MB/s; the rest is compressed. An archive is
keyed by a fingerprint of the files (paths, sizes, modification times): a changed output gets
a new archive and a new ETag, an unchanged one is never rebuilt. Concurrent first requests,
from threads or from several workers, build it once: the builder holds an exclusive ``flock``
on a lock file beside it, and the archive appears by an atomic rename.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import struct
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
                _GzipWriter(raw) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                for rel, path in files:
                    st = path.stat()
                    member = tarfile.TarInfo(f"output/{rel}")
                    member.size, member.mtime, member.mode = st.st_size, int(st.st_mtime), 0o644
                    gz.store = not compressible(path)
                    with open(path, "rb") as src:
                        tar.addfile(member, src)
                gz.store = False  # the end-of-archive blocks
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


SAMPLE_BYTES = 256 * 1024
INCOMPRESSIBLE = 0.95  # a file whose sample shrinks less than 5 % is stored, not compressed


def compressible(path: Path) -> bool:
    """Whether a file's first bytes shrink by 5 % or more under zlib."""
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    return len(sample) < 4096 or len(zlib.compress(sample, 1)) <= INCOMPRESSIBLE * len(sample)


class _GzipWriter(io.RawIOBase):
    """One gzip member whose deflate stream mixes compressed blocks and stored blocks.

    ``store = True`` writes what follows as stored (uncompressed) deflate blocks, at disk speed;
    ``store = False`` goes back to zlib. Before stored blocks the compressor is flushed with
    ``Z_FULL_FLUSH``: the stream is then byte-aligned and later blocks never refer back across
    the stored bytes, so the result is one ordinary gzip stream for every reader (streaming
    ``tarfile`` modes included, which stop after a first gzip member).
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._zlib = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0
        self._store = False
        raw.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # gzip header: deflate, mtime 0

    @property
    def store(self) -> bool:
        return self._store

    @store.setter
    def store(self, value: bool) -> None:
        if value and not self._store:
            self._raw.write(self._zlib.flush(zlib.Z_FULL_FLUSH))
        self._store = value

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._size  # uncompressed bytes, for tarfile

    def write(self, data: bytes) -> int:  # type: ignore[override]  # RawIOBase.write takes any buffer; we copy it
        data = bytes(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        if not self._store:
            self._raw.write(self._zlib.compress(data))
            return len(data)
        view = memoryview(data)
        for start in range(0, len(view), 0xFFFF):
            block = view[start : start + 0xFFFF]
            self._raw.write(struct.pack("<BHH", 0, len(block), 0xFFFF ^ len(block)))  # stored, not final
            self._raw.write(block)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.write(self._zlib.flush(zlib.Z_FINISH))
            self._raw.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        super().close()
