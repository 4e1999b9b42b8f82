"""Streamed, resumable, verified downloads of results archives.

Downloads stream to a hidden ``.part`` file beside the target, with a small ``.json`` sidecar
holding the server's ETag; an interrupted transfer resumes with ``Range`` + ``If-Range``; the
size is checked against what the server announced; the file is renamed into place only when
complete. Memory stays flat: the body is copied in 1 MiB chunks.

Every download is hashed (SHA-256) while it streams. When the server states the digest of what
it serves (RFC 9530 ``Repr-Digest: sha-256=:<base64>:``), a mismatch discards the file and it is
fetched once more from the start; a second mismatch raises ``DownloadError``. A complete file is
reused without fetching it again only when the caller marked it verified (``mark_verified``,
after it unpacked cleanly), the server's ETag, size and digest still match it, and its bytes,
hashed again, are the ones verified; ``discard``
removes a file that failed its checks, so damaged bytes are never kept or reused. Unpacking is
``unpack.py``'s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3

from .errors import DownloadCancelled, DownloadError
from .httperrors import TIMEOUT, download_refused, network_reason
from .remote import public_url

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
    fetched: bool  # False when the file on disk was already complete, verified and current
    sha256: str  # hex digest of the bytes on disk
    digest_checked: bool  # True when the server stated a digest and the bytes matched it


DIGEST = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/]{43}=):\s*(?=,|$)")


def stated_sha256(answer: requests.Response) -> str | None:
    """The hex SHA-256 a ``Repr-Digest`` header states, or ``None`` without a (well-formed) one."""
    found = DIGEST.search(answer.headers.get("Repr-Digest", ""))
    return base64.b64decode(found.group(1)).hex() if found else None


def mark_verified(path: str | os.PathLike[str]) -> None:
    """Record that a downloaded file passed the caller's checks (e.g. it unpacked cleanly): it may be reused."""
    path = Path(path)
    meta = _read_meta(path)
    if meta.get("total") == path.stat().st_size:
        _write_meta(path, **{**meta, "verified": True})


def discard(path: str | os.PathLike[str]) -> None:
    """Remove a downloaded file (and its sidecar and partial file) that failed its checks."""
    path = Path(path)
    for leftover in (path, _meta_path(path), part_path(path), _meta_path(part_path(path))):
        leftover.unlink(missing_ok=True)


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
    url, renewed, failures, mismatches = get_url(), False, 0, 0
    try:
        existing = _current_copy(session, url, target, timeout)
        if existing is not None:
            report(existing.size, existing.size)
            return existing
        target.unlink(missing_ok=True)  # not verified, or no longer the server's: fetched anew
        _meta_path(target).unlink(missing_ok=True)
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
                etag, total, stated = answer.headers.get("ETag"), _total_of(answer), stated_sha256(answer)
                offset = have if answer.status_code == 206 else 0
                _write_meta(part, etag=etag, total=total)
                digest = _hash_prefix(part, offset)
                try:
                    done = _copy_body(answer, part, offset, total, report, digest)
                except TRANSIENT as exc:
                    failures = _count_failure(failures, url, exc)
                    continue
            if total is not None and done < total:
                failures = _count_failure(failures, url, DownloadError(f"cut at {done} of {total} bytes"))
                continue
            if total is not None and done != total:
                part.unlink(missing_ok=True)
                _meta_path(part).unlink(missing_ok=True)
                raise DownloadError(f"{url.split('?')[0]}: received {done} bytes, the server announced {total}")
            if stated is not None and digest.hexdigest() != stated:
                part.unlink(missing_ok=True)  # damaged on the way: never kept
                _meta_path(part).unlink(missing_ok=True)
                mismatches += 1
                if mismatches > 1:
                    raise DownloadError(
                        f"{url.split('?')[0]}: what arrived does not match the SHA-256 the server states "
                        "(Repr-Digest), twice; nothing was kept"
                    )
                continue  # once more, from the start
            part.replace(target)
            _meta_path(part).unlink(missing_ok=True)
            _write_meta(target, etag=etag, total=done, sha256=digest.hexdigest(), verified=False)
            return Downloaded(target, done, etag, fetched=True, sha256=digest.hexdigest(),
                              digest_checked=stated is not None)  # fmt: skip
    finally:
        report.close()


def _current_copy(session: requests.Session, url: str, target: Path, timeout: tuple[float, float]) -> Downloaded | None:
    """``target`` when it was verified and a HEAD shows the same ETag, size and digest on the server."""
    meta = _read_meta(target)
    if not target.is_file() or not meta.get("verified") or not meta.get("etag"):
        return None
    if meta.get("total") != target.stat().st_size:
        return None
    try:
        head = session.head(url, timeout=timeout)
    except TRANSIENT:
        return None
    stated = stated_sha256(head)
    same = head.headers.get("ETag") == meta["etag"] and _total_of(head) == meta["total"]
    if head.status_code != 200 or not same or (stated is not None and stated != meta.get("sha256")):
        return None
    # the bytes on disk are hashed again: a copy damaged since it was verified is fetched anew
    if _hash_prefix(target, meta["total"]).hexdigest() != meta.get("sha256"):
        return None
    return Downloaded(target, meta["total"], meta["etag"], fetched=False, sha256=str(meta["sha256"]),
                      digest_checked=stated is not None)  # fmt: skip


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a whole file, read in chunks."""
    size = Path(path).stat().st_size
    return str(_hash_prefix(Path(path), size).hexdigest())


def _hash_prefix(part: Path, offset: int) -> Any:
    """A SHA-256 of the first ``offset`` bytes of ``part`` (what a resumed download already holds)."""
    digest = hashlib.sha256()
    if offset:
        with open(part, "rb") as kept:
            left = offset
            while left and (chunk := kept.read(min(CHUNK, left))):
                digest.update(chunk)
                left -= len(chunk)
    return digest


def _copy_body(
    answer: requests.Response, part: Path, offset: int, total: int | None, report: _Reporter, digest: Any = None
) -> int:
    done = offset
    report(done, total)
    with open(part, "r+b" if offset else "wb") as out:
        out.seek(offset)
        out.truncate()
        # read1 hands over whatever has arrived, so a cut loses nothing that reached us
        while chunk := answer.raw.read1(CHUNK):
            out.write(chunk)
            if digest is not None:
                digest.update(chunk)
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
        raise DownloadError(f"{public_url(answer.url)}: transfer failed: {network_reason(exc)}") from exc
    finally:
        report.close()
    if total is not None and done != total:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{public_url(answer.url)}: received {done} bytes, the server announced {total}")
    part.replace(target)
    return target
