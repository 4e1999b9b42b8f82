"""The overview build's child process: overview levels of a raster written in one strip-wise pass.

``python -m jobtask_widgets.overviewbuild levels SOURCE FOLDER --vrt NAME`` writes
``FOLDER/ovr-<factor>.tif`` for each overview level that ``overviews.plan`` gives (the large ones
uncompressed) and a VRT of ``SOURCE`` naming them as its overviews; ``... compress FOLDER --factors
2,4`` compresses those large ones in place. Both print ``progress DONE TOTAL`` after each step
(a strip, a level), so the kernel can show the build's progress.

Why not GDAL's ``BuildOverviews``: it reads a large pixel-interleaved raster band by band through
its overview machinery, about 6.5 s for a 10,980² 4-band deflate GeoTIFF on two cores whatever the
compression, while decoding the whole file in strips takes 1.6 s. Here strips of ``STRIP_ROWS``
full-resolution rows are decoded by a pool of threads (one dataset each, so the decoding runs on
every core), and each strip is downsampled by GDAL itself: an in-memory copy read back smaller with
average resampling (nearest for a paletted raster), which leaves out nodata as GDAL's overviews
do; each coarser level is derived from the one before, as GDAL does. Level rows that fill whole
file blocks are written as their strip is done; the small levels are kept in memory and written at
the end. The kernel (``overviews.py``) decides which levels, publishes the files, and owns this
process.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import xml.etree.ElementTree as ET  # writes a VRT GDAL just made
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

STRIP_ROWS = 1024  # full-resolution rows decoded at a time (a power of two, so every level's rows align)
OVERVIEW_SMALLEST = 256  # overviews go down until the raster fits in this many pixels
COMPRESS_LATER = 2048  # levels wider or taller than this are compressed after the first view
LEVEL_BLOCK = 128  # the level files' tile size as written strip by strip (GDAL's own default for overviews)
MEMORY_BUDGET = 1536 * 2**20  # bytes of strips (and their copies) the decoding threads may hold at once
PACKED_BLOCK = 256  # their tile size once compressed (fewer, larger tiles: faster to pack and to read)
LEVEL_OPTIONS = {"compress": "zstd", "zstd_level": 1, "num_threads": "ALL_CPUS"}  # GDAL compresses on every core


def overview_factors(width: int, height: int) -> list[int]:
    """2, 4, 8, ... until the raster fits in ``OVERVIEW_SMALLEST`` pixels."""
    factors, factor = [], 2
    while max(width, height) / (factor // 2) > OVERVIEW_SMALLEST:
        factors.append(factor)
        factor *= 2
    return factors


def plan(width: int, height: int) -> tuple[list[int], list[int]]:
    """The overview factors of a raster, and those among them compressed after the first view."""
    factors = overview_factors(width, height)
    return factors, [f for f in factors if max(level_size(width, height, f)) > COMPRESS_LATER]


def with_overviews(vrt_text: bytes, factors: Sequence[int], raw: Sequence[int]) -> bytes:
    """A VRT's text with each level file named as an overview of every band.

    The level files' names are relative to the VRT; the levels still uncompressed are listed in
    the VRT's metadata, so the second step knows what is left to do.
    """
    root = ET.fromstring(vrt_text)
    for band in root.findall("VRTRasterBand"):  # the bands, not the VRTRasterBand of a <MaskBand>
        for factor in sorted(factors):
            overview = ET.SubElement(band, "Overview")
            ET.SubElement(overview, "SourceFilename", relativeToVRT="1").text = level_name(factor)
            ET.SubElement(overview, "SourceBand").text = band.get("band", "1")
    metadata = ET.SubElement(root, "Metadata", domain="jobtask-widgets")
    ET.SubElement(metadata, "MDI", key="uncompressed").text = ",".join(map(str, raw))
    return ET.tostring(root)


def level_name(factor: int) -> str:
    """The file of one overview level."""
    return f"ovr-{factor}.tif"


def level_size(width: int, height: int, factor: int) -> tuple[int, int]:
    """An overview level's width and height (rounded up, as GDAL sizes its overviews)."""
    return -(-width // factor), -(-height // factor)


@dataclass
class _Level:
    factor: int
    width: int
    height: int
    streamed: bool  # written strip by strip (its rows fill whole blocks), else kept in memory
    lock: threading.Lock = field(default_factory=threading.Lock)
    dataset: Any = None
    array: np.ndarray | None = None


def build_levels(
    source: str, folder: Path, factors: Sequence[int], *, raw: Sequence[int] = (), workers: int | None = None
) -> None:
    """Write one tiled GeoTIFF per factor of ``source``'s overviews into ``folder``.

    Args:
        source: The raster.
        folder: Where the ``ovr-<factor>.tif`` files go.
        factors: Powers of two, ascending; the first is averaged from full resolution, each next
            one from the one before.
        raw: The factors whose files are written uncompressed (``compress_levels`` later).
        workers: Threads decoding strips; default one per CPU (at most 4).
    """
    import rasterio
    from rasterio.enums import ColorInterp, Resampling

    factors = sorted(factors)
    with rasterio.open(source) as src:
        width, height, count, dtype, nodata = src.width, src.height, src.count, src.dtypes[0], src.nodata
        paletted = src.colorinterp[0] == ColorInterp.palette
        colormap = src.colormap(1) if paletted else None
        crs, transform = src.crs, src.transform
    resampling = Resampling.nearest if paletted else Resampling.average
    levels = []
    for factor in factors:
        level_width, level_height = level_size(width, height, factor)
        streamed = factor <= STRIP_ROWS and (STRIP_ROWS // factor) % LEVEL_BLOCK == 0
        levels.append(_Level(factor, level_width, level_height, streamed))
    per_strip = [level for level in levels if level.factor <= STRIP_ROWS]  # a strip gives whole rows of these
    after = [level for level in levels if level.factor > STRIP_ROWS]  # from the coarsest of those, at the end
    strips = list(range(0, height, STRIP_ROWS))
    strip_bytes = STRIP_ROWS * width * count * np.dtype(dtype).itemsize
    workers = workers or max(1, min(4, os.cpu_count() or 1, MEMORY_BUDGET // (3 * strip_bytes)))
    done = 0
    done_lock = threading.Lock()
    local = threading.local()

    with ExitStack() as stack:
        opened: list[Any] = []  # every thread's dataset, closed on the way out
        stack.callback(lambda: [dataset.close() for dataset in opened])
        for level in levels:
            profile = {
                "driver": "GTiff", "width": level.width, "height": level.height, "count": count, "dtype": dtype,
                "nodata": nodata, "tiled": True, "blockxsize": LEVEL_BLOCK, "blockysize": LEVEL_BLOCK,
                "crs": crs, "transform": transform * transform.scale(width / level.width, height / level.height),
            }  # fmt: skip
            if level.factor not in raw:
                profile.update(_compression(dtype))
            level.dataset = stack.enter_context(rasterio.open(folder / level_name(level.factor), "w", **profile))
            if colormap is not None:
                level.dataset.write_colormap(1, colormap)
            if not level.streamed:
                level.array = np.full((count, level.height, level.width), nodata or 0, dtype=dtype)

        def reader() -> Any:
            if getattr(local, "dataset", None) is None:
                local.dataset = rasterio.open(source)
                with done_lock:
                    opened.append(local.dataset)
            return local.dataset

        def strip(row: int) -> None:
            nonlocal done
            from rasterio.windows import Window

            rows = min(STRIP_ROWS, height - row)
            data = reader().read(window=Window(0, row, width, rows))
            previous = data
            for level in per_strip:
                out_rows = -(-rows // level.factor)
                data = _downsample(previous, out_rows, level.width, nodata, resampling)
                previous = data
                first = row // level.factor
                if level.streamed:
                    with level.lock:
                        level.dataset.write(data, window=Window(0, first, level.width, out_rows))
                else:
                    assert level.array is not None
                    level.array[:, first : first + out_rows] = data
            with done_lock:
                done += 1
                print(f"progress {done} {len(strips)}", flush=True)

        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            for future in [pool.submit(strip, row) for row in strips]:
                future.result()
        finally:  # on a failure, the strips not begun are dropped
            pool.shutdown(wait=True, cancel_futures=True)
        previous_level = per_strip[-1] if per_strip else None
        for level in after:  # each from the one before, the whole level at once (they are small)
            assert previous_level is not None and previous_level.array is not None
            level.array = _downsample(previous_level.array, level.height, level.width, nodata, resampling)
            previous_level = level
        for level in levels:
            if level.array is not None:
                level.dataset.write(level.array)


def _compression(dtype: str) -> dict[str, Any]:
    return {**LEVEL_OPTIONS, "predictor": 3 if np.dtype(dtype).kind == "f" else 2}


def compress_levels(folder: Path, factors: Sequence[int]) -> None:
    """Compress the uncompressed level files of ``factors`` in place (each written beside, then renamed)."""
    import rasterio
    import rasterio.shutil

    for number, factor in enumerate(factors, start=1):
        path = folder / level_name(factor)
        packed = folder / f".{path.name}.packing"
        with rasterio.open(path) as src:
            dtype = src.dtypes[0]
        rasterio.shutil.copy(path, packed, driver="GTiff", tiled=True, blockxsize=PACKED_BLOCK,
                             blockysize=PACKED_BLOCK, **_compression(dtype))  # fmt: skip
        packed.replace(path)
        print(f"progress {number} {len(factors)}", flush=True)


def _downsample(data: np.ndarray, rows: int, width: int, nodata: float | None, resampling: Any) -> np.ndarray:
    """``data`` ``(bands, h, w)`` read back at ``(bands, rows, width)`` by GDAL (nodata left out).

    GDAL's MEM driver wraps the array without a copy (rasterio's ``MemoryDataset``, what its own
    ``reproject`` uses); where that is missing, an in-memory GeoTIFF does the same at twice the cost.
    """
    try:
        from rasterio._io import MemoryDataset
    except ImportError:  # pragma: no cover - a rasterio without it
        return _downsample_via_file(data, rows, width, nodata, resampling)
    with MemoryDataset(data) as scratch:
        if nodata is not None:
            scratch.nodata = nodata
        result: np.ndarray = scratch.read(out_shape=(data.shape[0], rows, width), resampling=resampling)
        return result


def _downsample_via_file(data: np.ndarray, rows: int, width: int, nodata: float | None, resampling: Any) -> np.ndarray:
    from rasterio.io import MemoryFile

    count, height, full_width = data.shape
    profile = {"driver": "GTiff", "width": full_width, "height": height, "count": count, "dtype": data.dtype.name,
               "nodata": nodata, "interleave": "pixel"}  # fmt: skip
    with MemoryFile() as memory, memory.open(**profile) as scratch:
        scratch.write(data)
        result: np.ndarray = scratch.read(out_shape=(count, rows, width), resampling=resampling)
        return result


def has_dataset_mask(src: Any) -> bool:
    """Whether a raster has a mask of its own (an internal or ``.msk`` mask), not alpha or nodata."""
    from rasterio.enums import MaskFlags

    flags = src.mask_flag_enums[0] if src.count else ()
    return MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags and MaskFlags.nodata not in flags


def build_with_gdal(source: str, vrt: Path, factors: Sequence[int]) -> None:
    """A VRT of ``source`` with every level in a ``.vrt.ovr`` by GDAL's ``BuildOverviews`` (masks included)."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    rasterio.shutil.copy(source, vrt, driver="VRT")
    with rasterio.open(vrt, "r+") as dst:
        dst.build_overviews(list(factors), Resampling.average)
    print("progress 1 1", flush=True)


def write_vrt(source: str, vrt: Path, factors: Sequence[int], raw: Sequence[int]) -> None:
    """A VRT of ``source`` (its bands, nodata, palette and georeferencing) with the level files as overviews."""
    import rasterio.shutil

    plain = vrt.with_name(f".{vrt.name}.plain")
    rasterio.shutil.copy(source, plain, driver="VRT")
    try:
        vrt.write_bytes(with_overviews(plain.read_bytes(), factors, raw))
    finally:
        plain.unlink(missing_ok=True)


def main(argv: Sequence[str]) -> int:
    """The child's command line; see the module docstring."""
    import rasterio

    from .gdalerrors import GDAL_ERRORS, gdal_reason

    parser = argparse.ArgumentParser(prog="python -m jobtask_widgets.overviewbuild")
    steps = parser.add_subparsers(dest="step", required=True)
    levels = steps.add_parser("levels", help="write every level and a VRT naming them")
    levels.add_argument("source")
    levels.add_argument("folder", type=Path)
    levels.add_argument("--vrt", required=True, help="the VRT's name in FOLDER")
    compress = steps.add_parser("compress", help="compress level files in place")
    compress.add_argument("folder", type=Path)
    compress.add_argument("--factors", required=True, help="comma-separated, e.g. 2,4")
    args = parser.parse_args(argv)
    try:
        if args.step == "levels":
            with rasterio.open(args.source) as src:
                factors, raw = plan(src.width, src.height)
                masked = has_dataset_mask(src)
            if masked:  # level files carry no mask: GDAL's own build, whose .ovr does, in one step
                build_with_gdal(args.source, args.folder / args.vrt, factors)
            else:
                build_levels(args.source, args.folder, factors, raw=raw)
                write_vrt(args.source, args.folder / args.vrt, factors, raw)
        else:
            compress_levels(args.folder, [int(f) for f in args.factors.split(",") if f])
    except GDAL_ERRORS as exc:
        print(gdal_reason(exc).replace("\n", " "), file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
