"""The results archive of a task: a ``.tar.gz`` of its ``output/``, built once into the cache.

Members are the regular files of ``output/``, each named ``output/<relative path>``, in sorted
order, with normalised owners and modes, so the same output gives the same bytes. A file that
does not compress (a deflated GeoTIFF, a JPEG) goes into the gzip stream as stored deflate
blocks, at disk speed, instead of being squeezed by 1 % at 50 MB/s; the rest is compressed. An
archive is keyed by a fingerprint of the files (paths, sizes, and modification times or ETags): a changed
output gets a new archive and a new ETag, an unchanged one is never rebuilt.

The cache folder of a task holds, by name:

- ``KEY-SHA256.tar.gz``: a finished archive; ``SHA256`` is the hex SHA-256 of its bytes,
  computed while it was written (the ``Repr-Digest`` of its answers), so the digest and the
  bytes appear together, by one atomic rename;
- ``KEY.lock``: held (``flock``) while ``KEY`` is built, so concurrent first requests, from
  threads or from several workers, build it once; the builder removes it when it is done;
- ``.building-*.tmp``: a build under way, also held by its builder; no cleanup pattern of
  finished archives matches it.

A build reads one consistent snapshot: each file is opened once through the store (a folder's
file inside the task's own ``output/``, or an object), read as that one version (a local file
whose size or time changes, or an object replaced, stops the read), and the sizes and version
tags of what was read must be the fingerprint the archive is named by; otherwise the build starts
again from a new listing, at most :data:`MAX_BUILDS` times, then fails with a
:class:`~.errors.OutputChanging` (a 503). A truncated or mixed member is never published.
After a build, finished archives of other keys are removed (a download already under way keeps
reading its open file), and so are lock files and abandoned builds that nobody holds.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import struct
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import StoreError
from .errors import NotInStore, OutputChanging
from .store import OpenFile, open_inside
from .storebase import Listed, StoreFile, TaskRef

log = logging.getLogger("jobtask_widgets.server")

MAX_BUILDS = 3  # builds of one request before it gives up on an output that keeps changing
ABANDONED_AFTER = 60.0  # seconds before an unheld .building-*.tmp counts as a crashed build's
_ARCHIVE = re.compile(r"(?P<key>[0-9a-f]{32})(?:-(?P<sha256>[0-9a-f]{64}))?\.tar\.gz")
_LOCK = re.compile(r"[0-9a-f]{32}\.lock")
_TEMP_PREFIX, _TEMP_SUFFIX = ".building-", ".tmp"

Opener = Callable[[str], StoreFile]  # a result file by its path relative to output/; NotInStore when gone


@dataclass(frozen=True)
class Archive:
    """A built archive on disk.

    Attributes:
        path: Where it is (it may be removed once a newer one is built; keep it open to read it).
        etag: Its ETag, the quoted fingerprint.
        size: Its size in bytes.
        sha256: The SHA-256 of its bytes.
    """

    path: Path
    etag: str
    size: int
    sha256: bytes

    @property
    def repr_digest(self) -> str:
        """The ``Repr-Digest`` header's value (RFC 9530): ``sha-256=:<base64>:``."""
        return f"sha-256=:{base64.b64encode(self.sha256).decode()}:"


def _line(rel: str, size: int, tag: str) -> bytes:
    return f"{rel}\0{size}\0{tag}\n".encode()


def fingerprint(files: list[Listed]) -> str:
    """A short hash of the files' relative paths, sizes and version tags (a file's modification
    time, an object's ETag)."""
    digest = hashlib.sha256()
    for listed in files:
        digest.update(_line(listed.path, listed.size, listed.tag))
    return digest.hexdigest()[:32]


class _Changed(Exception):
    """The files changed while they were listed or read: build again from a new listing."""


class ArchiveCache:
    """Builds and keeps task archives under ``cache_dir/archives``.

    Args:
        cache_dir: The cache folder (never inside a task folder).
    """

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(cache_dir) / "archives"

    def get(self, ref: TaskRef, files: Callable[[], list[Listed]], opener: Opener) -> Archive:
        """The archive of ``files`` for task ``ref``, built if it is not in the cache yet.

        See :meth:`open`; this one closes the archive at once.
        """
        archive, opened = self.open(ref, files, opener)
        opened.close()
        return archive

    def open(self, ref: TaskRef, files: Callable[[], list[Listed]], opener: Opener) -> tuple[Archive, OpenFile]:
        """The archive of task ``ref``, opened for reading, built first if it is not in the cache.

        Args:
            ref: The task.
            files: Lists its result files (called again when they change during a build).
            opener: Opens one of them, by its path relative to ``output/`` (the store's
                ``open_output_file``); raises ``NotInStore`` when it is gone.

        Raises:
            OutputChanging: when the files kept changing over :data:`MAX_BUILDS` builds.
        """
        folder = self.folder / ref.project_id / ref.job_id / ref.task_id
        for _ in range(MAX_BUILDS):
            current = files()
            key = fingerprint(current)
            found = _open_built(folder, key)
            if found is not None:
                return found
            folder.mkdir(parents=True, exist_ok=True)
            with _exclusive(folder / f"{key}.lock"):
                found = _open_built(folder, key)  # another builder may have finished meanwhile
                if found is not None:
                    return found
                try:
                    built = _build(ref, current, opener, folder, key)
                except _Changed:
                    continue
            _remove_stale(folder, keep=built[0].path.name)
            return built
        raise OutputChanging(
            f"the output of {ref} kept changing while its archive was built ({MAX_BUILDS} tries); "
            "ask again once it is complete"
        )


def _open_built(folder: Path, key: str) -> tuple[Archive, OpenFile] | None:
    """The finished archive of ``key``, opened, or None when there is none (any more)."""
    try:
        names = sorted(entry.name for entry in folder.iterdir())
    except FileNotFoundError:
        return None
    for name in names:
        match = _ARCHIVE.fullmatch(name)
        if match is None or match["key"] != key or match["sha256"] is None:
            continue
        path = folder / name
        opened = open_inside(path, folder.resolve(), "application/gzip")
        if opened is not None:
            archive = Archive(path, f'"{key}"', opened.stat.st_size, bytes.fromhex(match["sha256"]))
            return archive, opened
    return None


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file ``path``; remove the file when done.

    A lock file may be removed by its holder (when done) or by a cleanup that could take it
    (nobody holds it): whoever then gets the lock of a removed file tries again on a new one,
    so two holders of one key never overlap.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while it is held: a waiter finds it removed and starts over
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk, held = path.stat(), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _remove_if_unheld(path: Path, *, older_than: float | None = None) -> None:
    """Remove a lock file or an abandoned build when no process holds its ``flock``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)  # held: a build is under way
        return
    try:
        young = older_than is not None and time.time() - os.fstat(fd).st_mtime < older_than
        if not young and _same_file(fd, path):
            path.unlink()
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _remove_stale(folder: Path, keep: str) -> None:
    """Remove finished archives other than ``keep``, and unheld locks and abandoned builds."""
    try:
        names = [entry.name for entry in folder.iterdir()]
    except FileNotFoundError:
        return
    for name in names:
        path = folder / name
        if _ARCHIVE.fullmatch(name) and name != keep:
            path.unlink(missing_ok=True)  # a download under way keeps its open file
        elif _LOCK.fullmatch(name):
            _remove_if_unheld(path)
        elif name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX):
            _remove_if_unheld(path, older_than=ABANDONED_AFTER)


class _Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


class _Hashing:
    """Writes through to ``raw`` and hashes what it writes."""

    def __init__(self, raw: _Sink) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes | memoryview, /) -> int:
        self.sha256.update(data)
        return self._raw.write(data)


class _Exact(io.RawIOBase):
    """Reads exactly ``opened.size`` bytes of an open store file; a shorter or changed one raises ``_Changed``."""

    def __init__(self, opened: StoreFile) -> None:
        super().__init__()
        self._chunks = opened.chunks(0, opened.size - 1, 1024 * 1024)
        self._left, self._buffer, self._at = opened.size, b"", 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._chunks.close()
        super().close()

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end), still left to read: one read serves both."""
        while len(self._buffer) - self._at < n and (chunk := next(self._chunks, b"")):
            self._buffer, self._at = self._buffer[self._at :] + chunk, 0
        return self._buffer[self._at : self._at + n]

    def read(self, n: int = -1, /) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        parts = []
        while n > 0:
            if self._at == len(self._buffer):
                self._buffer, self._at = next(self._chunks, b""), 0
                if not self._buffer:
                    raise _Changed
            part = self._buffer[self._at : self._at + n]
            self._at += len(part)
            self._left -= len(part)
            n -= len(part)
            parts.append(part)
        return b"".join(parts)


def _build(ref: TaskRef, files: list[Listed], opener: Opener, folder: Path, key: str) -> tuple[Archive, OpenFile]:
    """Build the archive of ``files`` into ``folder`` and publish it, opened, as ``KEY-SHA256.tar.gz``.

    Raises:
        _Changed: when what was read is not what was fingerprinted as ``key``.
    """
    started = time.perf_counter()
    fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=folder)
    tmp = Path(tmp_name)
    opened: OpenFile | None = None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a build under way: no cleanup removes it
        with open(fd, "wb", closefd=False) as raw:
            sink = _Hashing(raw)
            with (
                _GzipWriter(sink) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                read = _add_members(tar, gz, files, opener)
        if read != key:
            raise _Changed
        target = folder / f"{key}-{sink.sha256.hexdigest()}.tar.gz"
        opened = open_inside(tmp, folder.resolve(), "application/gzip")
        if opened is None:
            raise StoreError(f"the archive being built at {tmp} went away")
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if opened is not None:
            opened.close()
        raise
    finally:
        os.close(fd)
    log.info(
        "built the results archive of %s: %d files, %d bytes in %.2f s",
        ref,
        len(files),
        opened.stat.st_size,
        time.perf_counter() - started,
    )
    return Archive(target, f'"{key}"', opened.stat.st_size, sink.sha256.digest()), opened


def _add_members(tar: tarfile.TarFile, gz: _GzipWriter, files: list[Listed], opener: Opener) -> str:
    """Add every file, each read once from one open version; return the fingerprint of what was read.

    Raises:
        _Changed: when a file is gone, or changed while it was copied.
    """
    digest = hashlib.sha256()
    for listed in files:
        try:
            opened = opener(listed.path)
        except NotInStore:
            raise _Changed from None
        with opened:
            member = tarfile.TarInfo(f"output/{listed.path}")
            member.size, member.mtime, member.mode = opened.size, int(opened.mtime), 0o644
            with contextlib.closing(_Exact(opened)) as reader:
                gz.store = not compressible_sample(reader.peek(SAMPLE_BYTES))
                tar.addfile(member, reader)
            if not opened.unchanged():
                raise _Changed
            digest.update(_line(listed.path, opened.size, opened.tag))
    gz.store = False  # the end-of-archive blocks
    return digest.hexdigest()[:32]


SAMPLE_BYTES = 256 * 1024
INCOMPRESSIBLE = 0.95  # a file whose sample shrinks less than 5 % is stored, not compressed


def compressible(path: Path) -> bool:
    """Whether a file's first bytes shrink by 5 % or more under zlib."""
    with open(path, "rb") as f:
        return compressible_sample(f.read(SAMPLE_BYTES))


def compressible_sample(sample: bytes) -> bool:
    """Whether a file's first :data:`SAMPLE_BYTES` (``sample``) shrink by 5 % or more under zlib."""
    return len(sample) < 4096 or len(zlib.compress(sample, 1)) <= INCOMPRESSIBLE * len(sample)


class _GzipWriter(io.RawIOBase):
    """One gzip member whose deflate stream mixes compressed blocks and stored blocks.

    ``store = True`` writes what follows as stored (uncompressed) deflate blocks, at disk speed;
    ``store = False`` goes back to zlib. Before stored blocks the compressor is flushed with
    ``Z_FULL_FLUSH``: the stream is then byte-aligned and later blocks never refer back across
    the stored bytes, so the result is one ordinary gzip stream for every reader (streaming
    ``tarfile`` modes included, which stop after a first gzip member).
    """

    def __init__(self, raw: _Sink) -> None:
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
