"""The overview cache: overviews for rasters that have none, built once, beside a VRT copy.

The user's files are never touched: the cache holds a VRT that points at the user's raster and
names one GeoTIFF per overview level as its overviews. Entries are keyed by the raster's absolute
path, size and modification time, so an edited raster gets new overviews. The cache lives in
``$JOBTASK_WIDGETS_CACHE``, default ``~/.cache/jobtask-widgets``; an entry is a folder::

    overviews/<key>/<stem>.first.vrt   every level, the large ones still uncompressed (first view)
    overviews/<key>/<stem>.vrt         the finished entry: every level compressed
    overviews/<key>/ovr-<factor>.tif   one file per level
    overviews/<key>.lock, <key>.finish.lock

The build has two steps, so a large raster shows within seconds (docs/architecture.md, "Overview
cache"): :func:`first_overviews` writes every level in one strip-wise pass over the raster (the
levels larger than ``COMPRESS_LATER`` pixels uncompressed, which is what makes the pass fast) and
publishes the entry with one rename; :func:`finish_overviews`, run in the background by
:data:`FINISHER` (it outlives the source that asked), compresses those levels with GDAL's threads
and then writes ``<stem>.vrt``. Each step runs
in a child process (``python -m jobtask_widgets.overviewbuild``) with its GDAL options in that
child's environment only: GDAL's block cache size is process-wide and sticky (docs/architecture.md,
"GDAL state"), so the kernel's GDAL configuration is never changed, and the build's memory goes back
to the system when the child ends. Each step holds a lock file, so two kernels showing the same
raster at once build it once: the second waits for the first step, then for the second.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET  # reads our own VRTs only
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import RasterError

CACHE_ENV = "JOBTASK_WIDGETS_CACHE"
OVERVIEW_MIN_SIZE = 2048  # a raster wider or taller than this gets overviews when it has none
FIRST_SHARE = 0.75  # the part of the progress that the first step stands for
LOCK_POLL = 0.1  # seconds between looks at a lock held by another kernel, or at a cancel

BUILD_OPTIONS = {  # GDAL options of the build's child process (its environment, nobody else's)
    "GDAL_CACHEMAX": "64",  # MB of block cache: strips are read whole, the cache only gets in the way
    "GDAL_NUM_THREADS": "ALL_CPUS",
}

OverviewProgress = Callable[[float], None]


def cache_root() -> Path:
    """The cache folder: ``$JOBTASK_WIDGETS_CACHE`` or ``~/.cache/jobtask-widgets``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "jobtask-widgets")


def needs_overviews(width: int, height: int, has_overviews: bool) -> bool:
    """Whether a raster should get cached overviews before display."""
    return not has_overviews and max(width, height) > OVERVIEW_MIN_SIZE


def _key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]


class _Entry:
    """Where one raster's overviews live in the cache."""

    def __init__(self, path: Path) -> None:
        self.source = path.resolve()
        self.key = _key(path)
        self.root = cache_root() / "overviews"
        self.folder = self.root / self.key
        self.final = self.folder / f"{path.stem}.vrt"
        self.first = self.folder / f"{path.stem}.first.vrt"

    def complete(self) -> bool:
        return self.final.is_file()


def first_overviews(path: str | os.PathLike[str], progress: OverviewProgress | None = None) -> tuple[Path, bool]:
    """The VRT to display ``path`` through now, building the entry's first step if needed.

    Args:
        path: The raster (without overviews of its own).
        progress: Called with 0.0 when a build starts, a fraction up to ``FIRST_SHARE`` after
            each strip of the raster, and ``FIRST_SHARE`` (or 1.0, for a raster whose levels
            are all small) when the VRT can be shown. Not called when the entry exists.

    Returns:
        The VRT, and whether the entry is finished (``False``: call :func:`finish_overviews`).

    Raises:
        RasterError: when the raster cannot be read while building.
    """
    entry = _Entry(Path(path))
    if entry.complete():
        return entry.final, True
    if entry.first.is_file():
        return entry.first, False
    entry.root.mkdir(parents=True, exist_ok=True)
    with _locked(entry.root / f"{entry.key}.lock"):
        if entry.complete():
            return entry.final, True
        if entry.first.is_file():
            return entry.first, False
        _build_first(entry, progress)
    return (entry.final, True) if entry.complete() else (entry.first, False)


def finish_overviews(
    path: str | os.PathLike[str],
    progress: OverviewProgress | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Finish the entry that :func:`first_overviews` made: compress its large levels, write its VRT.

    Waits while another kernel finishes it. Meant for a background thread.

    Args:
        path: The raster.
        progress: Called with fractions from ``FIRST_SHARE`` to 1.0 as each level is compressed.
        cancel: Set it to stop: the build's child is killed and the entry stays unfinished
            (usable; the next display finishes it).

    Returns:
        The finished VRT.

    Raises:
        RasterError: when the build fails, or was cancelled.
    """
    entry = _Entry(Path(path))
    if entry.complete():
        return entry.final
    if not entry.first.is_file():
        first, complete = first_overviews(path)
        if complete:
            return first
    with _locked(entry.root / f"{entry.key}.finish.lock", cancel):
        if not entry.complete():
            factors = _raw_factors(entry.first)
            _run_child(["compress", str(entry.folder), "--factors", ",".join(map(str, factors))],
                       _scaled(progress, FIRST_SHARE, 1.0), cancel, entry.source)  # fmt: skip
            _publish(entry.first.read_bytes(), entry.final)
    return entry.final


FinishListener = Callable[[Path | RasterError], None]


class _Job:
    """One entry being finished: its thread and who listens."""

    def __init__(self) -> None:
        self.subscribers: list[tuple[FinishListener, OverviewProgress | None]] = []
        self.thread: threading.Thread | None = None

    def report(self, fraction: float) -> None:
        for _, progress in list(self.subscribers):
            if progress is not None:
                progress(fraction)


class Finisher:
    """Finishes entries in background threads (``jobtask-overviews``), one per entry for the whole process.

    A finish outlives the source that asked for it (a plot closes its source at once, and its
    overviews still get finished); whoever asked only stops listening. The finisher owns its
    threads and their children: at the interpreter's exit it kills the children and joins the threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._stop = threading.Event()
        atexit.register(self.stop)

    def submit(
        self, path: Path, on_done: FinishListener, progress: OverviewProgress | None = None
    ) -> Callable[[], None]:
        """Finish ``path``'s entry in the background; ``on_done(final VRT or RasterError)`` when it ends,
        ``progress`` meanwhile. Returns the function that stops listening (the finish goes on)."""
        key = _key(path)
        subscriber = (on_done, progress)
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = _Job()
                job.thread = threading.Thread(target=self._run, args=(key, path, job), name="jobtask-overviews",
                                              daemon=True)  # fmt: skip
                job.subscribers.append(subscriber)
                job.thread.start()
            else:
                job.subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in job.subscribers:
                    job.subscribers.remove(subscriber)

        return unsubscribe

    def _run(self, key: str, path: Path, job: _Job) -> None:
        result: Path | RasterError = RasterError(f"{path}: the overview build ended without a result")
        try:
            result = finish_overviews(path, job.report, cancel=self._stop)
        except RasterError as exc:
            result = exc
        except Exception as exc:  # this thread's boundary: every listener is told, none waits forever
            result = RasterError(f"{path}: the overviews could not be finished: {exc}")
        finally:
            with self._lock:
                del self._jobs[key]
                subscribers = list(job.subscribers)
        for on_done, _ in subscribers:
            try:
                on_done(result)
            except Exception:  # one listener's failure does not keep the others from hearing
                log.exception("a listener of the overview build of %s failed", path)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every finish running now has ended; ``False`` if some still run after ``timeout`` s."""
        with self._lock:
            threads = [job.thread for job in self._jobs.values() if job.thread is not None]
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def stop(self) -> None:
        """Kill the builds' children and join their threads (at the interpreter's exit)."""
        self._stop.set()
        with self._lock:
            threads = [job.thread for job in self._jobs.values() if job.thread is not None]
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)


log = logging.getLogger(__name__)
FINISHER = Finisher()


def cached_overviews(path: str | os.PathLike[str], progress: OverviewProgress | None = None) -> Path:
    """The finished VRT with overviews for ``path``, both steps built here if needed."""
    first, complete = first_overviews(path, progress)
    return first if complete else finish_overviews(path, progress)


def _build_first(entry: _Entry, progress: OverviewProgress | None) -> None:
    shutil.rmtree(entry.folder, ignore_errors=True)  # a half-made entry (no VRT) left by a killed kernel
    for stale in entry.root.glob(f".{entry.key}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.key}-", dir=entry.root))
    try:
        if progress:
            progress(0.0)
        # the child plans the levels from the raster's size (``overviewbuild.plan``) and names them
        # in the VRT (or, for a raster with a mask of its own, has GDAL build them beside it)
        _run_child(["levels", str(entry.source), str(staging), "--vrt", entry.final.name],
                   _scaled(progress, 0.0, FIRST_SHARE), None, entry.source)  # fmt: skip
        raw = _raw_factors(staging / entry.final.name)
        if raw:  # not finished yet: the first view's name
            (staging / entry.final.name).replace(staging / entry.first.name)
        staging.replace(entry.folder)
        if progress and not raw:  # finished in one step (the last strip said FIRST_SHARE)
            progress(1.0)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _raw_factors(vrt: Path) -> list[int]:
    """The levels of a first-step VRT still uncompressed."""
    root = ET.fromstring(vrt.read_bytes())
    for metadata in root.findall("Metadata"):  # the VRT's own, not a band's
        if metadata.get("domain") == "jobtask-widgets":
            for item in metadata.findall("MDI"):
                if item.get("key") == "uncompressed":
                    return [int(f) for f in (item.text or "").split(",") if f]
    return []


def _publish(text: bytes, target: Path) -> None:
    """Write ``target`` whole or not at all (a temporary file renamed into place)."""
    scratch = target.with_name(f".{target.name}.writing")
    scratch.write_bytes(text)
    scratch.replace(target)


def _scaled(progress: OverviewProgress | None, low: float, high: float) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(low + (high - low) * done / max(total, 1))

    return report


@contextmanager
def _locked(path: Path, cancel: threading.Event | None = None) -> Iterator[None]:
    """Hold the lock file ``path``; with ``cancel``, wait for it in steps and give up when it is set."""
    with open(path, "w") as lock:
        if cancel is None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancel.wait(LOCK_POLL):
                        raise RasterError("the overview build was cancelled") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_child(
    args: Sequence[str],
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    source: Path,
) -> None:
    """Run ``python -m jobtask_widgets.overviewbuild ARGS``, passing its progress lines on.

    Raises:
        RasterError: when the child fails (with GDAL's reason) or ``cancel`` is set (the child is killed).
    """
    package_parent = str(Path(__file__).resolve().parents[1])  # the child imports this very package
    env = {**os.environ, **BUILD_OPTIONS}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    with tempfile.TemporaryFile("w+") as errors, subprocess.Popen(
        # -P: the kernel's working directory is not put on the child's path, so a folder named
        # jobtask_widgets there cannot stand in for this package
        [sys.executable, "-P", "-m", "jobtask_widgets.overviewbuild", *args],
        env=env, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, text=True,
    ) as child:  # fmt: skip
        watcher = _Watcher(child, cancel)
        try:
            _follow(child.stdout, progress)
        finally:
            child.wait()
            watcher.stop()
        if watcher.killed:
            raise RasterError(f"{source}: the overview build was cancelled")
        if child.returncode != 0:
            errors.seek(0)
            lines = errors.read().strip().splitlines()
            reason = lines[-1] if lines else f"exit status {child.returncode}"
            raise RasterError(f"{source}: overviews could not be built: {reason}")


def _follow(stdout: IO[str] | None, progress: Callable[[int, int], None] | None) -> None:
    for line in stdout or ():
        found = re.fullmatch(r"progress (\d+) (\d+)\s*", line)
        if found and progress is not None:
            progress(int(found[1]), int(found[2]))


class _Watcher:
    """Kills a child when ``cancel`` is set; its thread ends with the child."""

    def __init__(self, child: subprocess.Popen[str], cancel: threading.Event | None) -> None:
        self.child, self.cancel, self.killed = child, cancel, False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if cancel is not None:
            self._thread = threading.Thread(target=self._watch, name="jobtask-overviews-cancel", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        assert self.cancel is not None
        while not self._done.is_set():
            if self.cancel.wait(LOCK_POLL):
                if self.child.poll() is None:
                    self.killed = True
                    self.child.kill()
                return

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def cache_size() -> int:
    """The cache's size in bytes."""
    root = cache_root()
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def clear_cache() -> int:
    """Remove every cached overview; return the bytes freed."""
    size = cache_size()
    shutil.rmtree(cache_root() / "overviews", ignore_errors=True)
    return size
