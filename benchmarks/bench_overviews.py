"""The overview cache's one-off build: in a child process (ours) against the same build inside the kernel.

Both variants build the same VRT + overviews of one large 4-band uint16 GeoTIFF without overviews,
interleaved, each run in a fresh process that stands for the kernel, ``--runs`` times:

- ``child``: ``overviews.cached_overviews`` (what the package does, both steps): GDAL's options live in the children's
  environment, the kernel's GDAL state is untouched;
- ``in-kernel``: the build the package did before, with ``rasterio.Env(GDAL_CACHEMAX=256, ...)``
  around it in the kernel's own process.

Per run: seconds, the kernel process's peak RSS growth during the build, and whether its
``GDAL_CACHEMAX`` is the same after the build as before. Usage::

    python benchmarks/bench_overviews.py [--runs 3] [--size 8000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from rasterio._env import get_gdal_config

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0

variant, source, vrt = sys.argv[1:4]
import rasterio, rasterio.shutil
from rasterio.enums import Resampling
from jobtask_widgets import overviews
from jobtask_widgets.overviewbuild import overview_factors
cache_before = get_gdal_config("GDAL_CACHEMAX")
Path("/proc/self/clear_refs").write_text("5")
rss = status("VmRSS")
started = time.perf_counter()
if variant == "child":
    import os
    os.environ["JOBTASK_WIDGETS_CACHE"] = str(Path(vrt).parent / "cache")
    overviews.cached_overviews(Path(source))
else:
    rasterio.shutil.copy(source, vrt, driver="VRT")
    env = rasterio.Env(GDAL_TIFF_OVR_BLOCKSIZE=512, COMPRESS_OVERVIEW="DEFLATE", GDAL_NUM_THREADS="ALL_CPUS",
                       GDAL_CACHEMAX=256)
    with env, rasterio.open(vrt, "r+") as dst:
        dst.build_overviews(overview_factors(dst.width, dst.height), Resampling.average)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "growth_mb": (status("VmHWM") - rss) / 2**20,
                  "cache_kept": get_gdal_config("GDAL_CACHEMAX") == cache_before}))
"""


def write_raster(path: Path, size: int) -> None:
    import numpy as np
    import rasterio
    from affine import Affine

    transform = Affine(10, 0, 390_000, 0, -10, 5_820_000)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16", "tiled": True,
               "compress": "deflate", "crs": "EPSG:32633", "transform": transform}  # fmt: skip
    rng = np.random.default_rng(7)
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 1024):
            height = min(1024, size - row)
            block = rng.integers(0, 4000, (4, height, size), dtype="uint16")
            dst.write(block, window=rasterio.windows.Window(0, row, size, height))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=8000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overviews-") as folder:
        source = Path(folder) / "large.tif"
        write_raster(source, args.size)
        print(f"{source.name}: {args.size} x {args.size} x 4 uint16, {source.stat().st_size / 2**20:.0f} MB on disk")
        results: dict[str, list[dict[str, float]]] = {"child": [], "in-kernel": []}
        for run in range(args.runs):
            for variant in results:
                vrt = Path(folder) / f"{variant}-{run}.vrt"
                done = subprocess.run([sys.executable, "-c", CHILD, variant, str(source), str(vrt)],
                                      capture_output=True, text=True, check=True)  # fmt: skip
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[variant].append(result)
                print(f"{variant:10} run {run + 1}: {result['seconds']:6.2f} s  kernel RSS growth "
                      f"{result['growth_mb']:7.1f} MB  GDAL_CACHEMAX kept: {result['cache_kept']}")  # fmt: skip
        print()
        for variant, runs in results.items():
            print(f"{variant:10} median {statistics.median(r['seconds'] for r in runs):6.2f} s, "
                  f"kernel RSS growth median {statistics.median(r['growth_mb'] for r in runs):7.1f} MB")  # fmt: skip
        child = statistics.median(r["seconds"] for r in results["child"])
        kernel = statistics.median(r["seconds"] for r in results["in-kernel"])
        print(f"child / in-kernel time (medians): {child / kernel:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
