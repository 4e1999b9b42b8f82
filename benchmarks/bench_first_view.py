"""A large raster without overviews, cold: the first map view, the first plot and the overview build,
ours (two steps: every level in one strip-wise pass, the large levels compressed in the background)
against the build the package did before (one GDAL ``BuildOverviews`` pass over a VRT, in a child
process, before anything shows), and pixel-value latency. Side by side in one run; see README.md.

Usage::

    python benchmarks/bench_first_view.py [--runs 3] [--size 10980] [--clicks 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_raster import BANDS, FIGSIZE, first_view, write_rasters

TARGET_VIEW_S = 5.0
TARGET_PLOT_S = 5.0
TARGET_BUILD_RATIO = 0.5
TARGET_CLICK_MS = 30.0
VARIANTS = ("ours-view", "before-view", "ours-plot", "before-build-1-thread")


def _child(variant: str, path: str, tiles_arg: str) -> None:
    """One variant in this fresh process (its own empty overview cache); print its figures as JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    from jobtask_widgets import overviews, plotting
    from jobtask_widgets.raster import RasterSource, Style

    tiles = [tuple(int(v) for v in t.split("/")) for t in tiles_arg.split(",")]
    out: dict[str, Any] = {}
    started = time.perf_counter()
    if variant == "ours-view":  # what a map does: the first tile asks for the display file, then the rest
        steps: list[tuple[float, float]] = []
        with RasterSource(path) as source:
            source.display_path(progress=lambda f: steps.append((round(f, 3), time.perf_counter() - started)))
            style = Style(bands=BANDS)
            for z, x, y in tiles:
                source.tile(z, x, y, style)
            out["view_s"] = time.perf_counter() - started
            source.wait_for_overviews()
            out["build_s"] = time.perf_counter() - started
            out["progress"] = steps
            out["first_step_s"] = next(t for f, t in steps if f >= overviews.FIRST_SHARE)
    elif variant == "ours-plot":
        from io import BytesIO

        figure = plotting.results_figure([Path(path)], figsize=FIGSIZE, bands=list(BANDS))
        figure.savefig(BytesIO(), format="png")
        out["plot_s"] = time.perf_counter() - started
    elif variant in ("before-view", "before-build-1-thread"):  # the wave-1 build, then the view
        folder = overviews.cache_root() / "before"
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GDAL_CACHEMAX": "256", "GDAL_TIFF_OVR_BLOCKSIZE": "512", "COMPRESS_OVERVIEW": "DEFLATE"}
        if variant == "before-view":
            env["GDAL_NUM_THREADS"] = "ALL_CPUS"
        subprocess.run([sys.executable, __file__, "_before", path, str(folder / "before.vrt")], env=env, check=True)
        out["build_s"] = time.perf_counter() - started
        if variant == "before-view":
            with RasterSource(folder / "before.vrt") as source:
                style = Style(bands=BANDS)
                for z, x, y in tiles:
                    source.tile(z, x, y, style)
            out["view_s"] = time.perf_counter() - started
    print(json.dumps(out))


def _before(source: str, vrt: str) -> None:
    """The package's build before this change: a VRT and every level in one GDAL call."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    from jobtask_widgets.overviewbuild import overview_factors

    rasterio.shutil.copy(source, vrt, driver="VRT")
    with rasterio.open(vrt, "r+") as dst:
        dst.build_overviews(overview_factors(dst.width, dst.height), Resampling.average)


def spawn(variant: str, path: Path, tiles: str, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "MPLBACKEND": "Agg", "JOBTASK_WIDGETS_CACHE": str(cache)}
    done = subprocess.run([sys.executable, __file__, "_child", variant, str(path), tiles], stdout=subprocess.PIPE,
                          text=True, env=env, check=True)  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def clicks(path: Path, count: int, cache: Path) -> list[float]:
    """``values_at`` at ``count`` seeded points inside the raster, in this process: milliseconds each."""
    import random

    os.environ["JOBTASK_WIDGETS_CACHE"] = str(cache)
    from jobtask_widgets.raster import RasterSource

    rng = random.Random(5)
    with RasterSource(path) as source:
        assert source.bounds_4326 is not None
        west, south, east, north = source.bounds_4326
        source.values_at((west + east) / 2, (south + north) / 2)  # the reader opens once, as on the first click
        times = []
        for _ in range(count):
            lon, lat = rng.uniform(west, east), rng.uniform(south, north)
            started = time.perf_counter()
            source.values_at(lon, lat)
            times.append((time.perf_counter() - started) * 1e3)
    return times


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=10_980)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clicks", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-first-view-"))
    try:
        started = time.perf_counter()
        tif, _ = write_rasters(work, args.size, args.seed, overviews=False)
        print(f"wrote {tif.name}: {args.size}² x 4 uint16 deflate, no overviews, "
              f"{tif.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s (not counted)")  # fmt: skip
        zoom, tiles = first_view(tif)
        tiles_arg = ",".join(f"{z}/{x}/{y}" for z, x, y in tiles)
        print(f"first view: zoom {zoom}, {len(tiles)} tiles; {os.cpu_count()} CPUs")
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for run in range(1, args.runs + 1):
            for variant in VARIANTS:
                cache = work / f"cache-{variant}-{run}"
                result = spawn(variant, tif, tiles_arg, cache)
                results[variant].append(result)
                shutil.rmtree(cache, ignore_errors=True)
                shown = ", ".join(f"{k} {v:.2f}" for k, v in result.items() if isinstance(v, float))
                print(f"run {run} {variant:<22} {shown}", flush=True)
        progress = results["ours-view"][0]["progress"]
        print("ours-view progress steps (fraction, s):", ", ".join(f"{f:g}@{t:.1f}" for f, t in progress))

        def median(variant: str, key: str) -> float:
            return statistics.median(r[key] for r in results[variant])

        ours_view, before_view = median("ours-view", "view_s"), median("before-view", "view_s")
        ours_build, before_build = median("ours-view", "build_s"), median("before-view", "build_s")
        plot = median("ours-plot", "plot_s")
        times = clicks(tif, args.clicks, work / "cache-clicks")
        click_median = statistics.median(times)
        print()
        print(f"first map view: ours {ours_view:.2f} s, before {before_view:.2f} s ({before_view / ours_view:.1f}x); "
              f"target < {TARGET_VIEW_S} s: {verdict(ours_view < TARGET_VIEW_S)}")  # fmt: skip
        print(f"first plot: ours {plot:.2f} s; target < {TARGET_PLOT_S} s: {verdict(plot < TARGET_PLOT_S)}")
        print(f"full overview build: ours {ours_build:.2f} s (first step {median('ours-view', 'first_step_s'):.2f} s), "
              f"before {before_build:.2f} s with GDAL's threads, "
              f"{median('before-build-1-thread', 'build_s'):.2f} s on one thread; ours / before "
              f"{ours_build / before_build:.2f}, target <= {TARGET_BUILD_RATIO}: "
              f"{verdict(ours_build / before_build <= TARGET_BUILD_RATIO)}")  # fmt: skip
        print(f"values_at: median {click_median:.1f} ms, p95 {sorted(times)[int(len(times) * 0.95) - 1]:.1f} ms, "
              f"max {max(times):.1f} ms over {len(times)} clicks; target median < {TARGET_CLICK_MS} ms: "
              f"{verdict(click_median < TARGET_CLICK_MS)}")  # fmt: skip
        ok = (ours_view < TARGET_VIEW_S and plot < TARGET_PLOT_S and ours_build / before_build <= TARGET_BUILD_RATIO
              and click_median < TARGET_CLICK_MS)  # fmt: skip
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_before":
        _before(*sys.argv[2:4])
    else:
        sys.exit(main())
