"""Files as a stream of chunks, one file as it is or several as a ZIP built while it is read.

``BrowserSave`` (the widget layer) sends these chunks to the browser; this module holds no widget.
A :class:`SaveStream` reads at most one chunk ahead: a ZIP is written by ``zipfile`` to a sink
that is not seekable (so each member gets a data descriptor and nothing is written twice) and the
sink is drained after every piece, so memory stays at a few chunks whatever the size.

Every file is checked as it is sent: it must still be the file that was listed (same size and
modification time when opened, the same bytes count read, still there at the end); otherwise
the stream ends with a :class:`~jobtask_widgets.errors.SaveError` that names the file. Members
are stored, not compressed: results are mostly compressed rasters already, and storing keeps the
kernel's CPU for the reads.
"""

from __future__ import annotations

import io
import os
import stat
import time
import zipfile
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import SaveError

CHUNK = 2 << 20
"""Bytes per chunk: 2 MiB (1 MiB made the transfer about a fifth slower; see bench_browsersave)."""


@dataclass(frozen=True)
class Member:
    """One file to send, as it was when listed.

    Attributes:
        path: The file.
        arcname: Its name in the ZIP (``/``-separated, relative to the base folder).
        size: Its size in bytes when listed.
        mtime_ns: Its modification time when listed.
    """

    path: Path
    arcname: str
    size: int
    mtime_ns: int


def plan(paths: Iterable[str | os.PathLike[str]], base: str | os.PathLike[str] | None = None) -> list[Member]:
    """The files to send, checked: regular files, named relative to ``base``, no name twice.

    Args:
        paths: The files.
        base: The folder the ZIP's member names are relative to; default the files' common folder.

    Raises:
        ValueError: when no path is given, a path is not a regular file, lies outside ``base``,
            or two files would get the same name.
    """
    files = [Path(p).absolute() for p in paths]
    if not files:
        raise ValueError("save needs at least one file; got none")
    infos = []
    for path in files:
        try:
            info = path.stat()
        except OSError as exc:
            raise ValueError(f"cannot save {path}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"cannot save {path}: only regular files can be saved")
        infos.append(info)
    root = Path(base).absolute() if base is not None else Path(os.path.commonpath([p.parent for p in files]))
    members: list[Member] = []
    seen: set[str] = set()
    for path, info in zip(files, infos, strict=True):
        try:
            arcname = PurePosixPath(*path.relative_to(root).parts).as_posix()
        except ValueError as exc:
            raise ValueError(f"cannot save {path}: it is not inside the base folder {root}") from exc
        if arcname in seen:
            raise ValueError(f"cannot save {path}: the name {arcname!r} is given twice")
        seen.add(arcname)
        members.append(Member(path, arcname, info.st_size, info.st_mtime_ns))
    return members


class _Sink(io.RawIOBase):
    """Where ``zipfile`` writes: keeps what it got until :meth:`take`; not seekable."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self.pending = 0
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]  # zipfile writes bytes
        self._parts.append(bytes(data))
        self.pending += len(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.pending = 0
        return data


class SaveStream:
    """The chunks of one file, or of a ZIP of several; iterate it, close it when done.

    Args:
        members: The files (from :func:`plan`).
        as_zip: Whether to send a ZIP; one file is sent as it is otherwise.
        chunk: Bytes per chunk.

    Attributes:
        total: The bytes the files hold (a ZIP adds its headers on top).
        content_sent: File bytes read so far.

    Raises (while iterating):
        SaveError: when a file changed, vanished or could not be read.
    """

    def __init__(self, members: list[Member], *, as_zip: bool, chunk: int = CHUNK) -> None:
        if not as_zip and len(members) != 1:
            raise ValueError(f"several files are sent as one ZIP; got {len(members)} files without as_zip")
        if chunk <= 0:
            raise ValueError(f"chunk must be a positive number of bytes; got {chunk}")
        self.members, self.as_zip, self.chunk = members, as_zip, chunk
        self.total = sum(m.size for m in members)
        self.content_sent = 0
        self._open: IO[bytes] | None = None
        self._chunks: Generator[bytes, None, None] = self._zip() if as_zip else self._file(members[0])

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def __enter__(self) -> SaveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether no file is open any more."""
        return self._open is None

    def close(self) -> None:
        """Stop: the open file, if any, is closed (also when the stream was not read to its end)."""
        self._chunks.close()  # runs the generators' cleanup: the open file is closed there
        if self._open is not None:
            self._open.close()
            self._open = None

    def _pieces(self, member: Member) -> Iterator[bytes]:
        """The bytes of one member, checked to be the file that was listed."""
        try:
            f = open(member.path, "rb")  # noqa: SIM115  # closed below, on every path
        except FileNotFoundError as exc:
            raise SaveError(f"{member.path} vanished before it was sent") from exc
        except OSError as exc:
            raise SaveError(f"{member.path} could not be opened: {exc.strerror or exc}") from exc
        self._open = f
        try:
            info = os.fstat(f.fileno())
            if (info.st_size, info.st_mtime_ns) != (member.size, member.mtime_ns):
                raise SaveError(f"{member.path} changed after the save started ({info.st_size} bytes now)")
            read = 0
            while piece := f.read(self.chunk):
                read += len(piece)
                if read > member.size:
                    raise SaveError(f"{member.path} grew while it was sent")
                self.content_sent += len(piece)
                yield piece
            after = os.fstat(f.fileno())
            if read != member.size or (after.st_size, after.st_mtime_ns) != (member.size, member.mtime_ns):
                raise SaveError(f"{member.path} changed while it was sent")
            try:
                still = member.path.stat()
            except FileNotFoundError as exc:
                raise SaveError(f"{member.path} vanished while it was sent") from exc
            if (still.st_ino, still.st_dev) != (info.st_ino, info.st_dev):
                raise SaveError(f"{member.path} was replaced while it was sent")
        except OSError as exc:
            raise SaveError(f"{member.path} could not be read: {exc.strerror or exc}") from exc
        finally:
            f.close()
            self._open = None

    def _file(self, member: Member) -> Generator[bytes, None, None]:
        yield from self._pieces(member)

    def _zip(self) -> Generator[bytes, None, None]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for member in self.members:
                info = zipfile.ZipInfo(member.arcname, _date_time(member.mtime_ns))
                info.file_size = member.size  # lets zipfile choose ZIP64 up front
                info.external_attr = 0o644 << 16
                with archive.open(info, "w") as out:
                    for piece in self._pieces(member):
                        out.write(piece)
                        if sink.pending >= self.chunk:
                            yield sink.take()
        if sink.pending:  # the last data, the descriptors and the central directory
            yield sink.take()


def _date_time(mtime_ns: int) -> tuple[int, int, int, int, int, int]:
    t = time.localtime(mtime_ns / 1e9)
    # a ZIP holds the years 1980 to 2107 only; a file time outside them is clamped, not refused
    return (min(max(t.tm_year, 1980), 2107), t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


__all__ = ["CHUNK", "Member", "SaveStream", "plan"]
