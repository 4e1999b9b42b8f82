"""The overview cache: overviews for rasters that have none, built once, beside a VRT copy.

GDAL only finds external overviews beside the file it opens, and the user's files are never
touched, so the cache holds a VRT that points at the user's raster, with a ``.vrt.ovr`` built on
it. Entries are keyed by the raster's absolute path, size and modification time, so an edited
raster gets new overviews. The cache lives in ``$JOBTASK_WIDGETS_CACHE``, default
``~/.cache/jobtask-widgets``.

The build runs in a child process (``python -m jobtask_widgets.overviews SRC VRT``) with its
GDAL options (block cache, threads, compression) in that child's environment only: GDAL's
block cache size is process-wide and sticky, and a ``rasterio.Env(GDAL_CACHEMAX=...)`` in the
kernel outlives its block whenever any dataset in the process holds rasterio's default
environment (docs/architecture.md, "GDAL state"). The kernel's GDAL configuration is never
changed, and the build's memory goes back to the system when the child ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import RasterError
from .gdalerrors import GDAL_ERRORS, gdal_reason

CACHE_ENV = "JOBTASK_WIDGETS_CACHE"
OVERVIEW_MIN_SIZE = 2048  # a raster wider or taller than this gets overviews when it has none
OVERVIEW_SMALLEST = 256  # overviews go down until the raster fits in this many pixels

BUILD_OPTIONS = {  # GDAL options of the build's child process (its environment, nobody else's)
    "GDAL_CACHEMAX": "256",  # MB of block cache while building
    "GDAL_NUM_THREADS": "ALL_CPUS",
    "GDAL_TIFF_OVR_BLOCKSIZE": "512",
    "COMPRESS_OVERVIEW": "DEFLATE",
}

OverviewProgress = Callable[[float], None]


def cache_root() -> Path:
    """The cache folder: ``$JOBTASK_WIDGETS_CACHE`` or ``~/.cache/jobtask-widgets``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "jobtask-widgets")


def overview_factors(width: int, height: int) -> list[int]:
    """2, 4, 8, ... until the raster fits in ``OVERVIEW_SMALLEST`` pixels."""
    factors, factor = [], 2
    while max(width, height) / (factor // 2) > OVERVIEW_SMALLEST:
        factors.append(factor)
        factor *= 2
    return factors


def needs_overviews(width: int, height: int, has_overviews: bool) -> bool:
    """Whether a raster should get cached overviews before display."""
    return not has_overviews and max(width, height) > OVERVIEW_MIN_SIZE


def _key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:24]


def cached_overviews(path: str | os.PathLike[str], progress: OverviewProgress | None = None) -> Path:
    """The VRT with overviews for ``path``, building it the first time.

    Args:
        path: The raster.
        progress: Called with 0.0 when a build starts and 1.0 when it is done (GDAL builds
            every level in one pass and reports no steps through rasterio).

    Raises:
        RasterError: when the raster cannot be read while building.
    """
    path = Path(path)
    folder = cache_root() / "overviews" / _key(path)
    vrt = folder / f"{path.stem}.vrt"
    if vrt.is_file():
        return vrt
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not vrt.is_file():
            _build(path, folder, vrt.name, progress)
    return vrt


def _build(path: Path, folder: Path, name: str, progress: OverviewProgress | None) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        if progress:
            progress(0.0)
        build_in_child(path.resolve(), staging / name)
        if progress:
            progress(1.0)
        staging.replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_in_child(source: Path, vrt: Path) -> None:
    """Write ``vrt`` (a VRT of ``source`` with overviews) in a child process.

    Raises:
        RasterError: when the child cannot build them (with GDAL's reason).
    """
    package_parent = str(Path(__file__).resolve().parents[1])  # the child imports this very package
    env = {**os.environ, **BUILD_OPTIONS}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        # -P: the kernel's working directory is not put on the child's path, so a folder named
        # jobtask_widgets there cannot stand in for this package
        [sys.executable, "-P", "-m", "jobtask_widgets.overviews", str(source), str(vrt)],
        env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise RasterError(f"{source}: overviews could not be built: {reason}")


def _build_here(source: str, vrt: str) -> None:
    """The child's work: a VRT of ``source`` and its overviews, every level in one GDAL pass."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    rasterio.shutil.copy(source, vrt, driver="VRT")
    with rasterio.open(vrt, "r+") as dst:
        # one call: GDAL reads the full resolution once and derives each level from the last
        dst.build_overviews(overview_factors(dst.width, dst.height), Resampling.average)


def main(argv: Sequence[str]) -> int:
    """``python -m jobtask_widgets.overviews SOURCE VRT``: build in this (child) process."""
    if len(argv) != 2:
        print("usage: python -m jobtask_widgets.overviews SOURCE VRT", file=sys.stderr)
        return 2
    try:
        _build_here(*argv)
    except GDAL_ERRORS as exc:
        print(gdal_reason(exc).replace("\n", " "), file=sys.stderr)
        return 1
    return 0


def cache_size() -> int:
    """The cache's size in bytes."""
    root = cache_root()
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def clear_cache() -> int:
    """Remove every cached overview; return the bytes freed."""
    size = cache_size()
    shutil.rmtree(cache_root() / "overviews", ignore_errors=True)
    return size


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
