"""Safe unpacking of results archives (``.tar.gz``, ``.tar``, ``.zip``): archives are never trusted.

Every member is checked before a byte of it is written: its name (no absolute path, no ``..``,
no drive, backslash, NUL, control or bidi character, no duplicate), its kind (regular files and
folders only: no links, devices or FIFOs) and its declared size. Before a member is written, the
declared sizes so far must fit

- the free space of the output disk, less a margin (``DISK_MARGIN``);
- ``max_unpacked_bytes``: when given (or ``$JOBTASK_MAX_UNPACKED_BYTES`` is set) exactly that;
  otherwise the smaller of ``MAX_UNPACKED_BYTES`` and ``MAX_RATIO`` times the archive's size, a
  ratio real results do not reach (a gzip bomb reaches about 1,029x; results of GeoTIFFs and
  GeoJSON stay far below 100x). Giving ``max_unpacked_bytes`` is how a caller admits more;

and no member may write more than it declared; at most ``max_members`` members. Everything is
written into a temporary folder beside the destination; the move into place is all or nothing:
every target is checked first, files it replaces are set aside and put back if any step fails,
so a refused or failed archive leaves the destination exactly as it was. A gzip stream is read
to its end, so its CRC and length are checked even where the archive carries no digest.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from .errors import DownloadError, UnsafeArchiveError

CHUNK = 1 << 20
MAX_UNPACKED_BYTES = 200 * (1 << 30)  # 200 GiB
MAX_RATIO = 100  # unpacked bytes per archive byte, unless max_unpacked_bytes is given
MAX_MEMBERS = 20_000
DISK_MARGIN = 256 << 20  # bytes of the output disk left free
ENV_MAX_UNPACKED_BYTES = "JOBTASK_MAX_UNPACKED_BYTES"
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

ArchiveKind = Literal["tar.gz", "tar", "zip"]


def sniff(path: Path) -> ArchiveKind:
    """The archive's kind from its first bytes, not its name.

    Raises:
        UnsafeArchiveError: when it is none of .tar.gz, .tar or .zip.
    """
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    raise UnsafeArchiveError(f"{path.name} is not a .tar.gz, .tar or .zip archive (starts with {head[:8]!r})")


def safe_member_path(name: str, strip_prefix: str = "output/") -> PurePosixPath:
    """The relative path a member may be written to (``strip_prefix`` removed once, if leading).

    Raises:
        UnsafeArchiveError: for absolute paths, ``..``, drive letters, backslashes, NUL, control or
            bidi characters.
    """
    if not name or "\\" in name or any(_unprintable(c) for c in name):
        raise UnsafeArchiveError(f"archive member {name!r} has an unsafe name (control, bidi or path characters)")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"archive member {name!r} would be written outside the output folder")
    text = path.as_posix()
    if strip_prefix and text.startswith(strip_prefix):
        text = text[len(strip_prefix) :]
    rel = PurePosixPath(text)
    if text in ("", ".") or rel.parts[0] == ".":
        raise UnsafeArchiveError(f"archive member {name!r} has no file name")
    return rel


def _unprintable(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS


def unpack_limit(archive_size: int, max_unpacked_bytes: int | None = None) -> tuple[int, str]:
    """The bytes an archive of ``archive_size`` may unpack to, and what that cap is, in words."""
    given = max_unpacked_bytes
    if given is None and os.environ.get(ENV_MAX_UNPACKED_BYTES):
        text = os.environ[ENV_MAX_UNPACKED_BYTES]
        if not text.isdigit():
            raise ValueError(f"{ENV_MAX_UNPACKED_BYTES} must be a number of bytes (got {text!r})")
        given = int(text)
    if given is not None:
        if given < 0:
            raise ValueError(f"max_unpacked_bytes must be a number of bytes >= 0 (got {given})")
        return given, f"max_unpacked_bytes={given}"
    limit = min(MAX_UNPACKED_BYTES, MAX_RATIO * max(archive_size, 1))
    return limit, (
        f"{MAX_RATIO}x its {archive_size} bytes, at most {MAX_UNPACKED_BYTES} bytes; pass max_unpacked_bytes= for more"
    )


class _Budget:
    """What an archive may still unpack to: bytes, members and names."""

    def __init__(self, archive: Path, limit: int, why: str, free: int, max_members: int) -> None:
        self.archive, self.left, self.why, self.free, self.max_members = archive, limit, why, free, max_members
        self.names: set[PurePosixPath] = set()

    def admit(self, rel: PurePosixPath, name: str, declared: int) -> None:
        """Check one more member before any byte of it is written."""
        if rel in self.names:
            raise UnsafeArchiveError(f"archive member {name!r} appears twice in {self.archive.name}")
        self.names.add(rel)
        if len(self.names) > self.max_members:
            raise UnsafeArchiveError(
                f"{self.archive.name} holds more than {self.max_members} members: refused as a possible archive bomb"
            )
        if declared > self.free:
            raise UnsafeArchiveError(
                f"{self.archive.name} does not fit the output disk: {name!r} needs {declared} more bytes, "
                f"{self.free} are free (less a margin of {DISK_MARGIN})"
            )
        if declared > self.left:
            raise UnsafeArchiveError(
                f"{self.archive.name} unpacks to more than the cap for this archive ({self.why}): "
                "refused as a possible archive bomb"
            )
        self.left -= declared
        self.free -= declared


def unpack(
    archive: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    strip_prefix: str = "output/",
    max_unpacked_bytes: int | None = None,
    max_members: int = MAX_MEMBERS,
) -> list[Path]:
    """Unpack a results archive safely; return the unpacked files in archive order.

    See the module docstring for the checks.

    Raises:
        UnsafeArchiveError: for a member that must not be unpacked, a bomb, or too little disk.
        DownloadError: when the archive is damaged (a cut, a bad CRC).
        ValueError: for a bad ``max_unpacked_bytes`` (or ``$JOBTASK_MAX_UNPACKED_BYTES``).
    """
    archive, destination = Path(archive), Path(destination)
    kind = sniff(archive)
    limit, why = unpack_limit(archive.stat().st_size, max_unpacked_bytes)
    destination.mkdir(parents=True, exist_ok=True)
    free = max(shutil.disk_usage(destination).free - DISK_MARGIN, 0)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=destination))
    try:
        budget = _Budget(archive, limit, why, free, max_members)
        if kind == "zip":
            members = _unpack_zip(archive, staging, strip_prefix, budget)
        else:
            members = _unpack_tar(archive, kind, staging, strip_prefix, budget)
        return _move_into_place(staging, destination, members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, UnsafeArchiveError):
            raise
        raise DownloadError(f"the archive {archive.name} is damaged: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_capped(src: IO[bytes], dst_path: Path, declared: int, name: str) -> None:
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dst_path, "wb") as dst:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > declared:
                raise UnsafeArchiveError(f"archive member {name!r} holds more than the {declared} bytes it declared")
            dst.write(chunk)


def _unpack_tar(archive: Path, kind: ArchiveKind, staging: Path, strip: str, budget: _Budget) -> list[PurePosixPath]:
    members = []
    with ExitStack() as files:
        raw = files.enter_context(open(archive, "rb"))
        # gzip.GzipFile checks the CRC and length at the end of the stream; tarfile's own "r|gz" does not
        stream: Any = files.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")) if kind == "tar.gz" else raw
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = safe_member_path(member.name, strip)
                if member.isdir():
                    continue
                if not member.isreg():
                    kind_name = "link" if member.issym() or member.islnk() else "device or special file"
                    raise UnsafeArchiveError(
                        f"archive member {member.name!r} is a {kind_name}; only regular files are accepted"
                    )
                budget.admit(rel, member.name, member.size)
                source = tar.extractfile(member)
                if source is None:
                    raise UnsafeArchiveError(f"archive member {member.name!r} has no data")
                _copy_capped(source, staging / rel, member.size, member.name)
                members.append(rel)
        while stream.read(CHUNK):  # to the gzip trailer: its CRC and length are checked there
            pass
    return members


def _unpack_zip(archive: Path, staging: Path, strip: str, budget: _Budget) -> list[PurePosixPath]:
    members = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check every member before writing any
            rel = safe_member_path(info.filename, strip)
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip names no type: a plain file
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                kind_name = "link" if file_type == stat.S_IFLNK else "device or special file"
                raise UnsafeArchiveError(
                    f"archive member {info.filename!r} is a {kind_name}; only regular files are accepted"
                )
            if not info.is_dir():
                budget.admit(rel, info.filename, info.file_size)
        for info in infos:
            if info.is_dir():
                continue
            rel = safe_member_path(info.filename, strip)
            with zf.open(info) as source:  # zipfile checks each member's CRC as it is read
                _copy_capped(source, staging / rel, info.file_size, info.filename)
            members.append(rel)
    return members


def _move_into_place(staging: Path, destination: Path, members: list[PurePosixPath]) -> list[Path]:
    """Move the staged members into ``destination``: all of them, or none (see the module docstring)."""
    root = destination.resolve()
    for rel in members:  # every target checked before anything moves
        final = destination / rel
        parent = final.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.resolve().is_relative_to(root):
            raise UnsafeArchiveError(f"archive member {rel} would be written through a link out of {destination}")
        if final.is_dir() and not final.is_symlink():
            raise UnsafeArchiveError(f"archive member {rel} would replace the folder {final}")
        for ancestor in _ancestors(destination, rel):
            if ancestor.exists() and not ancestor.is_dir():
                raise UnsafeArchiveError(f"archive member {rel} needs a folder where the file {ancestor} is")
    aside = staging / ".replaced"
    done: list[tuple[Path, Path | None]] = []  # (moved in, the file it replaced, set aside)
    made: list[Path] = []  # folders created for the move
    try:
        for rel in members:
            final = destination / rel
            for ancestor in _ancestors(destination, rel):
                if not ancestor.exists():
                    ancestor.mkdir()
                    made.append(ancestor)
            kept = None
            if final.exists() or final.is_symlink():
                kept = aside / rel
                kept.parent.mkdir(parents=True, exist_ok=True)
                final.replace(kept)
            done.append((final, kept))
            (staging / rel).replace(final)
    except BaseException:
        for final, kept in reversed(done):
            final.unlink(missing_ok=True)
            if kept is not None:
                kept.replace(final)
        for folder in reversed(made):
            folder.rmdir()
        raise
    return [final.resolve() for final, _ in done]


def _ancestors(destination: Path, rel: PurePosixPath) -> Iterator[Path]:
    """The folders between ``destination`` and a member, outermost first."""
    current = destination
    for part in rel.parts[:-1]:
        current = current / part
        yield current
