"""Streamed, resumable downloads and safe unpacking of results archives.

Downloads stream to a hidden ``.part`` file beside the target, with a small ``.json`` sidecar
holding the server's ETag; an interrupted transfer resumes with ``Range`` + ``If-Range``; the
size is checked against what the server announced; the file is renamed into place only when
complete; a complete file whose ETag and size still match is not fetched again. Memory stays
flat: the body is copied in 1 MiB chunks.

Archives are never trusted: every member is checked before a byte of it is written, into a
temporary folder beside the destination, and moved into place only when all went well.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

import requests
import urllib3

from .errors import DownloadCancelled, DownloadError, UnsafeArchiveError
from .httperrors import TIMEOUT, download_refused, network_reason

ProgressCallback = Callable[[int, int | None], None]
Progress = bool | ProgressCallback

CHUNK = 1 << 20
RESUMES = 5  # how many times a cut transfer is resumed before giving up
RESUME_BACKOFF = 0.5
MAX_UNPACKED_BYTES = 200 * (1 << 30)  # 200 GiB
MAX_RATIO = 1000  # unpacked bytes per archive byte
TRANSIENT = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
)


# -- progress -------------------------------------------------------------------------------------


class _Reporter:
    """Turns ``progress`` (True, False or a callable) into updates."""

    def __init__(self, progress: Progress, description: str, cancel: threading.Event | None = None) -> None:
        self._callback = progress if callable(progress) else None
        self._bar: Any = None
        self._show = progress is True
        self._description = description
        self._cancel = cancel

    def check(self) -> None:
        """Raise ``DownloadCancelled`` when the caller asked to stop."""
        if self._cancel is not None and self._cancel.is_set():
            raise DownloadCancelled(f"{self._description}: cancelled")

    def __call__(self, done: int, total: int | None) -> None:
        self.check()
        if self._callback is not None:
            self._callback(done, total)
        elif self._show:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=self._description)
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- downloads --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Downloaded:
    """A completed download."""

    path: Path
    size: int
    etag: str | None
    fetched: bool  # False when the file on disk was already complete and current


def part_path(target: Path) -> Path:
    """The hidden partial file of ``target``."""
    return target.with_name(f".{target.name.lstrip('.')}.part")


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(_meta_path(path).read_text())
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_meta(path: Path, **meta: Any) -> None:
    _meta_path(path).write_text(json.dumps(meta))


def _total_of(answer: requests.Response) -> int | None:
    if answer.status_code == 206:
        total = answer.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = answer.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download(
    session: requests.Session,
    get_url: Callable[[], str],
    target: str | os.PathLike[str],
    *,
    progress: Progress = False,
    timeout: tuple[float, float] = TIMEOUT,
    description: str = "download",
    cancel: threading.Event | None = None,
) -> Downloaded:
    """Download a (signed) URL to ``target``, resuming and verifying; see the module docstring.

    Args:
        session: The HTTP session (no bearer token is sent: signed URLs need none).
        get_url: Returns a fresh URL; called once at the start and once more if it expired.
        target: The file to write.
        progress: ``True`` for a tqdm bar, ``False``, or ``callback(done_bytes, total_or_None)``.
        timeout: Seconds to connect and to wait for each read.
        description: The progress bar's label.
        cancel: Set it (from any thread) to stop the transfer within one chunk.

    Raises:
        DownloadCancelled: when ``cancel`` was set; the partial file is removed.
        DownloadError: when the transfer fails after its resumes, the URL expired twice, or
            the size differs from the announced one.
    """
    target = Path(target)
    part = part_path(target)
    try:
        return _download(session, get_url, target, part, _Reporter(progress, description, cancel), timeout)
    except DownloadCancelled:
        part.unlink(missing_ok=True)
        _meta_path(part).unlink(missing_ok=True)
        raise


def _download(
    session: requests.Session,
    get_url: Callable[[], str],
    target: Path,
    part: Path,
    report: _Reporter,
    timeout: tuple[float, float],
) -> Downloaded:
    report.check()
    url, renewed, failures = get_url(), False, 0
    try:
        existing = _current_copy(session, url, target, timeout)
        if existing is not None:
            report(existing.size, existing.size)
            return existing
        while True:
            headers = {}
            part_meta = _read_meta(part)
            have = part.stat().st_size if part.exists() else 0
            if have and part_meta.get("etag"):
                headers = {"Range": f"bytes={have}-", "If-Range": part_meta["etag"]}
            try:
                answer = session.get(url, headers=headers, stream=True, timeout=timeout)
            except TRANSIENT as exc:
                failures = _count_failure(failures, url, exc)
                continue
            with answer:
                if answer.status_code == 403 and not renewed:
                    url, renewed = get_url(), True  # the signed URL expired: ask for a new one, once
                    continue
                if answer.status_code == 416:  # our partial file is no prefix of this archive
                    part.unlink(missing_ok=True)
                    failures = _count_failure(failures, url, DownloadError("range not satisfiable"))
                    continue
                if answer.status_code not in (200, 206):
                    raise download_refused(answer, url)
                etag, total = answer.headers.get("ETag"), _total_of(answer)
                offset = have if answer.status_code == 206 else 0
                _write_meta(part, etag=etag, total=total)
                try:
                    done = _copy_body(answer, part, offset, total, report)
                except TRANSIENT as exc:
                    failures = _count_failure(failures, url, exc)
                    continue
            if total is not None and done < total:
                failures = _count_failure(failures, url, DownloadError(f"cut at {done} of {total} bytes"))
                continue
            if total is not None and done != total:
                part.unlink(missing_ok=True)
                raise DownloadError(f"{url.split('?')[0]}: received {done} bytes, the server announced {total}")
            part.replace(target)
            _meta_path(part).unlink(missing_ok=True)
            _write_meta(target, etag=etag, total=done)
            return Downloaded(target, done, etag, fetched=True)
    finally:
        report.close()


def _current_copy(session: requests.Session, url: str, target: Path, timeout: tuple[float, float]) -> Downloaded | None:
    """``target`` when it is complete and a HEAD shows the same ETag and size on the server."""
    meta = _read_meta(target)
    if not target.is_file() or not meta.get("etag") or meta.get("total") != target.stat().st_size:
        return None
    try:
        head = session.head(url, timeout=timeout)
    except TRANSIENT:
        return None
    if head.status_code == 200 and head.headers.get("ETag") == meta["etag"] and _total_of(head) == meta["total"]:
        return Downloaded(target, meta["total"], meta["etag"], fetched=False)
    return None


def _copy_body(answer: requests.Response, part: Path, offset: int, total: int | None, report: _Reporter) -> int:
    done = offset
    report(done, total)
    with open(part, "r+b" if offset else "wb") as out:
        out.seek(offset)
        out.truncate()
        # read1 hands over whatever has arrived, so a cut loses nothing that reached us
        while chunk := answer.raw.read1(CHUNK):
            out.write(chunk)
            done += len(chunk)
            report(done, total)
    return done


def _count_failure(failures: int, url: str, exc: Exception) -> int:
    failures += 1
    if failures > RESUMES:
        reason = network_reason(exc) if not isinstance(exc, DownloadError) else str(exc)
        raise DownloadError(f"{url.split('?')[0]}: transfer failed after {RESUMES} resumes: {reason}") from exc
    time.sleep(min(RESUME_BACKOFF * 2 ** (failures - 1), 8.0))
    return failures


# -- unpacking -----------------------------------------------------------------------------------------

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
        UnsafeArchiveError: for absolute paths, ``..``, drive letters, backslashes, NUL bytes.
    """
    if not name or "\x00" in name or "\\" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has an unsafe name")
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


def unpack(
    archive: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    strip_prefix: str = "output/",
    max_bytes: int = MAX_UNPACKED_BYTES,
    max_ratio: float = MAX_RATIO,
) -> list[Path]:
    """Unpack a results archive safely; return the unpacked files in archive order.

    Members are checked before they are written: absolute paths, ``..``, links, devices and
    anything but regular files and folders raise; the unpacked total may not exceed ``max_bytes``
    nor ``max_ratio`` times the archive's size. Everything is written to a temporary folder
    beside ``destination`` and moved into place at the end, so a refused archive leaves nothing.

    Raises:
        UnsafeArchiveError: for a member that must not be unpacked, or a bomb.
        DownloadError: when the archive is damaged.
    """
    archive, destination = Path(archive), Path(destination)
    kind = sniff(archive)
    size = archive.stat().st_size
    limit = min(max_bytes, int(max_ratio * max(size, 1)))
    why = (
        f"{archive.name} unpacks to more than {limit} bytes, the cap for this archive "
        f"({max_ratio:g}x its {size} bytes, at most {max_bytes} bytes): refused as a possible archive bomb"
    )
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=destination))
    try:
        budget = _Budget(limit, why)
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


class _Budget:
    """The bytes an archive may still unpack to."""

    def __init__(self, limit: int, why: str) -> None:
        self.left, self.why = limit, why

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise UnsafeArchiveError(self.why)


def _copy_capped(src: IO[bytes], dst_path: Path, budget: _Budget) -> None:
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    with open(dst_path, "wb") as dst:
        while chunk := src.read(CHUNK):
            budget.spend(len(chunk))
            dst.write(chunk)


def _unpack_tar(archive: Path, kind: ArchiveKind, staging: Path, strip: str, budget: _Budget) -> list[PurePosixPath]:
    members = []
    with tarfile.open(archive, mode="r|gz" if kind == "tar.gz" else "r|") as tar:
        for member in tar:
            rel = safe_member_path(member.name, strip)
            if member.isdir():
                continue
            if not member.isreg():
                kind_name = "link" if member.issym() or member.islnk() else "device or special file"
                raise UnsafeArchiveError(
                    f"archive member {member.name!r} is a {kind_name}; only regular files are accepted"
                )
            if member.size > budget.left:
                budget.spend(member.size)  # refuse on the header, before writing
            source = tar.extractfile(member)
            if source is None:
                raise UnsafeArchiveError(f"archive member {member.name!r} has no data")
            _copy_capped(source, staging / rel, budget)
            members.append(rel)
    return members


def _unpack_zip(archive: Path, staging: Path, strip: str, budget: _Budget) -> list[PurePosixPath]:
    members = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check every member before writing any
            safe_member_path(info.filename, strip)
            file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip names no type: a plain file
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                kind_name = "link" if file_type == stat.S_IFLNK else "device or special file"
                raise UnsafeArchiveError(
                    f"archive member {info.filename!r} is a {kind_name}; only regular files are accepted"
                )
        budget.spend(0)
        if sum(i.file_size for i in infos) > budget.left:
            budget.spend(budget.left + 1)  # the headers already tell: refuse before writing
        for info in infos:
            if info.is_dir():
                continue
            rel = safe_member_path(info.filename, strip)
            with zf.open(info) as source:
                _copy_capped(source, staging / rel, budget)
            members.append(rel)
    return members


def _move_into_place(staging: Path, destination: Path, members: list[PurePosixPath]) -> list[Path]:
    root = destination.resolve()
    placed = []
    for rel in dict.fromkeys(members):  # in archive order, once each
        final = destination / rel
        if not final.parent.resolve().is_relative_to(root):
            raise UnsafeArchiveError(f"archive member {rel} would be written through a link out of {destination}")
        if final.is_dir() and not final.is_symlink():
            raise UnsafeArchiveError(f"archive member {rel} would replace the folder {final}")
        final.parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).replace(final)
        placed.append(final.resolve())
    return placed


def fetch_small(
    answer: requests.Response, target: Path, progress: Progress = False, cancel: threading.Event | None = None
) -> Path:
    """Write an already-open answer (a quicklook) to ``target`` through a hidden ``.part`` file.

    Raises:
        DownloadCancelled: when ``cancel`` was set; the partial file is removed.
        DownloadError: when the transfer breaks or the size differs from the announced one.
    """
    part = part_path(target)
    report = _Reporter(progress, target.name, cancel)
    try:
        with answer:
            total = _total_of(answer)
            done = _copy_body(answer, part, 0, total, report)
    except DownloadCancelled:
        part.unlink(missing_ok=True)
        raise
    except TRANSIENT as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{answer.url}: transfer failed: {network_reason(exc)}") from exc
    finally:
        report.close()
    if total is not None and done != total:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{answer.url}: received {done} bytes, the server announced {total}")
    part.replace(target)
    return target
