"""Benchmark: plots and map tiles of a Sentinel-2-sized raster (10,980 x 10,980, 4-band uint16).

Writes, in a temporary folder, a tiled, deflated GeoTIFF (EPSG:32633, nodata 0 along a swath
edge, bands blue/green/red/nir) made of the mirrored synthetic sample scene plus seeded noise,
once without overviews and once with internal overviews (2-32, average); the generation is
timed apart and not counted. Then, in a fresh process per variant and run, interleaved:

- ``ours-plot``:   ``plotting.results_figure([tif], figsize=(14, 8), bands=[3, 2, 1])`` saved
  as PNG, what ``JobTask.plot_results(bands=[3, 2, 1])`` draws (raster with overviews);
- ``naive-plot``:  ``rasterio.open(tif).read([3, 2, 1])`` at full resolution, then
  ``rasterio.plot.show(array, transform=..., ax=ax, adjust=True)`` saved as PNG, what the
  original SDK did (raster with overviews);
- ``ours-tile``:   ``RasterSource(tif)``, then every 256 px Web Mercator tile of the first view
  (the largest zoom whose tiles covering the raster fit in a 1000 x 600 px map), statistics
  included in the first tile (raster with overviews);
- ``naive-overlay``: what the original SDK's folium map did (raster with overviews):
  ``rasterio.open(tif).read([3, 2, 1])`` at full resolution, ``rasterio.warp.reproject`` of the
  whole array to EPSG:3857 (``calculate_default_transform`` at full resolution), a 2-98 %
  percentile stretch to uint8 computed on the full array, and ONE RGBA PNG for an ImageOverlay;
- ``first-display-no-overviews``: on the raster without overviews, with a fresh overview cache
  (``JOBTASK_WIDGETS_CACHE``): ``RasterSource(tif).display_path(progress=...)`` (the one-off
  overview build), then the plot and the tiles in the same process;
- ``second-display-no-overviews``: a new process on the same cache: the plot and the tiles again.

Targets: ours-plot under 1 s and under 300 MB peak RSS of the whole process (medians); the
first view of ours-tile (statistics and every tile) under 1 s in total and under 300 MB peak RSS
of the whole process (medians); a tile (after the first) under 60 ms (median); the second display
without overviews within 1.5 x the plot time and the tile median on the raster with overviews.
The naive variants are printed beside ours for comparison. Prints every run and a summary; exits
1 when a target fails. ``--only`` runs a subset of the variants (and checks the targets they
make), e.g. ``--only ours-tile,naive-overlay`` for the tile layer's acceptance.

    python benchmarks/bench_raster.py [--runs 3] [--size 10980] [--no-naive] [--only VARIANT,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MB = 1_000_000
SIZE = 10_980  # a Sentinel-2 tile at 10 m
BLOCK = 512  # GeoTIFF tiles; generation writes strips of this many rows
SCENE = 2048  # multiband_array(SCENE), cropped to its fully valid middle and mirrored
NOISE = 40  # +- this much seeded uniform noise on top of the mirrored scene
OVERVIEWS = (2, 4, 8, 16, 32)
MAP_PX = (1000, 600)  # the map's first view, width x height in pixels
TILE_PX = 256
BANDS = (3, 2, 1)  # red, green, blue of a blue/green/red/nir raster
FIGSIZE = (14, 8)
NAIVE_BYTES_PER_PX = 110  # the naive plot peaked at ~98 bytes of RSS per pixel (11.9 GB at 10,980²), plus margin
NAIVE_OVERLAY_BYTES_PER_PX = 90  # the naive overlay peaked at ~76 bytes of RSS per pixel (9.3 GB at 10,980²)
TARGET_PLOT_S = 1.0
TARGET_PLOT_MB = 300.0
TARGET_TILE_MS = 60.0
TARGET_VIEW_S = 1.0  # the first view of the map: statistics and every tile
TARGET_VIEW_MB = 300.0
TARGET_WARM_RATIO = 1.5

VARIANTS = (  # in the order they run, interleaved
    "ours-plot",
    "naive-plot",
    "ours-tile",
    "naive-overlay",
    "first-display-no-overviews",
    "second-display-no-overviews",
)
NAIVE = ("naive-plot", "naive-overlay")

HEADER = (
    f"{'variant':27} {'run':>3} {'step':7} {'seconds':>8} {'first ms':>9} {'median ms':>9} {'max ms':>8}"
    f" {'tiles':>5} {'step peak MB':>12} {'process peak MB':>15}"
)


# -- the child: one variant in a fresh process ------------------------------------------------------
def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


class Meter:
    """Peak RSS per step (``/proc/self/clear_refs`` + ``VmHWM``) and of the whole process."""

    def __init__(self) -> None:
        self.process_peak_kb = 0

    @contextlib.contextmanager
    def step(self, into: dict[str, Any]) -> Iterator[None]:
        self.process_peak_kb = max(self.process_peak_kb, _status_kb("VmHWM"))  # before the reset wipes it
        with contextlib.suppress(OSError):  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
        before = _status_kb("VmRSS")
        started = time.perf_counter()
        yield
        into["seconds"] = time.perf_counter() - started
        peak = _status_kb("VmHWM")
        self.process_peak_kb = max(self.process_peak_kb, peak)
        into["growth_mb"] = (peak - before) * 1024 / MB
        into["peak_mb"] = peak * 1024 / MB
        into["process_peak_mb"] = self.process_peak_kb * 1024 / MB


def _ours_plot(path: str) -> int:
    from io import BytesIO

    from jobtask_widgets.plotting import results_figure

    fig = results_figure([Path(path)], figsize=FIGSIZE, bands=list(BANDS))
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.tell()


def _naive_plot(path: str) -> int:
    from io import BytesIO

    import matplotlib.pyplot as plt
    import rasterio
    from rasterio.plot import show

    with rasterio.open(path) as src:
        array = src.read(list(BANDS))
        transform = src.transform
    fig, ax = plt.subplots(figsize=FIGSIZE)
    show(array, transform=transform, ax=ax, adjust=True)
    buffer = BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.tell()


def _naive_overlay(path: str, into: dict[str, Any]) -> None:
    """The original SDK's map: the full raster warped to Web Mercator, stretched and encoded as one PNG."""
    from io import BytesIO

    import numpy as np
    import rasterio
    from PIL import Image
    from rasterio.warp import calculate_default_transform, reproject, transform_bounds

    dst_crs = "EPSG:3857"
    stages: dict[str, float] = {}  # seconds since the start at the end of each stage
    started = time.perf_counter()
    with rasterio.open(path) as src:
        array = src.read(list(BANDS))
        src_crs, src_transform, nodata = src.crs, src.transform, src.nodata
        transform, width, height = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds)
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    stages["read"] = time.perf_counter() - started
    warped = np.zeros((len(BANDS), height, width), dtype=array.dtype)
    reproject(
        array, warped, src_transform=src_transform, src_crs=src_crs, src_nodata=nodata,
        dst_transform=transform, dst_crs=dst_crs, dst_nodata=nodata,
    )  # fmt: skip
    stages["warp"] = time.perf_counter() - started
    valid = warped != nodata
    low = np.array([np.percentile(band[ok], 2) for band, ok in zip(warped, valid, strict=True)])
    high = np.array([np.percentile(band[ok], 98) for band, ok in zip(warped, valid, strict=True)])
    scaled = (warped - low[:, None, None]) / (high - low)[:, None, None] * 255
    rgb = np.clip(scaled, 0, 255).astype(np.uint8)
    alpha = valid.any(axis=0).astype(np.uint8) * 255
    rgba = np.dstack([rgb[0], rgb[1], rgb[2], alpha])
    stages["stretch"] = time.perf_counter() - started
    buffer = BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    stages["png"] = time.perf_counter() - started
    bounds = [[south, west], [north, east]]  # what folium.raster_layers.ImageOverlay takes
    into.update(png_bytes=buffer.tell(), width=width, height=height, bounds=bounds, stages=stages)


def _tiles(path: str, tiles: list[tuple[int, int, int]], into: dict[str, Any]) -> None:
    """Every tile of the first view, from a new ``RasterSource``; the first one computes the statistics."""
    from jobtask_widgets.raster import RasterSource, Style

    style = Style(bands=BANDS)
    source = RasterSource(path)
    times, empty = [], 0
    for z, x, y in tiles:
        started = time.perf_counter()
        png = source.tile(z, x, y, style)
        times.append(time.perf_counter() - started)
        empty += png is None
    source.close()
    into.update(first_ms=times[0] * 1e3, rest_ms=[t * 1e3 for t in times[1:]], tiles=len(tiles), empty=empty)


def child(variant: str, path: str, tiles_arg: str) -> None:
    """Run one variant in this process; print its steps (seconds, peak RSS, tile times) as JSON."""
    import matplotlib

    matplotlib.use("Agg")
    started = time.perf_counter()
    import matplotlib.pyplot
    import rasterio.plot  # noqa: F401

    from jobtask_widgets import plotting, raster  # noqa: F401

    tiles = [tuple(int(v) for v in t.split("/")) for t in tiles_arg.split(",")]
    out: dict[str, Any] = {"import_s": time.perf_counter() - started, "import_mb": _status_kb("VmRSS") * 1024 / MB}
    out["steps"] = {}
    meter = Meter()

    def step(name: str, call: Callable[[dict[str, Any]], Any]) -> None:
        result: dict[str, Any] = {}
        with meter.step(result):
            call(result)
        out["steps"][name] = result

    if variant == "first-display-no-overviews":
        from jobtask_widgets.raster import RasterSource

        progress: list[tuple[float, float]] = []
        build_started = time.perf_counter()

        def build(result: dict[str, Any]) -> None:
            source = RasterSource(path)
            display = source.display_path(progress=lambda f: progress.append((f, time.perf_counter() - build_started)))
            result.update(progress=progress, display=str(display))

        step("build", build)
    if variant in ("ours-plot", "first-display-no-overviews", "second-display-no-overviews"):
        step("plot", lambda r: r.update(png_bytes=_ours_plot(path)))
    if variant == "naive-plot":
        step("plot", lambda r: r.update(png_bytes=_naive_plot(path)))
    if variant == "naive-overlay":
        step("overlay", lambda r: _naive_overlay(path, r))
    if variant in ("ours-tile", "first-display-no-overviews", "second-display-no-overviews"):
        step("tiles", lambda r: _tiles(path, tiles, r))
    print(json.dumps(out))


# -- the parent ------------------------------------------------------------------------------------------
def mirror_index(count: int, period: int) -> Any:
    """0, 1, ..., period-1, period-1, ..., 0, 0, 1, ... for ``count`` positions (seamless tiling)."""
    import numpy as np

    index = np.arange(count) % (2 * period)
    return np.where(index < period, index, 2 * period - 1 - index)


def write_rasters(folder: Path, size: int, seed: int, *, overviews: bool = True) -> tuple[Path, Path]:
    """The raster without overviews and a copy with internal overviews, written in strips.

    With ``overviews=False`` only the first is written (the second path is returned, absent).
    """
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.enums import ColorInterp, Resampling
    from rasterio.windows import Window

    from jobtask_widgets.sample import multiband_array

    scene = multiband_array(SCENE)  # (4, 2048, 2048) uint16, 0 outside a swath tilted by 12 degrees
    half = int(SCENE * 0.36)  # the largest centred square inside that swath
    middle = scene[:, SCENE // 2 - half : SCENE // 2 + half, SCENE // 2 - half : SCENE // 2 + half].copy()
    del scene
    if not (middle > 0).all():
        raise RuntimeError("the middle of the sample scene has nodata pixels")
    index = mirror_index(size, middle.shape[1])
    columns = np.arange(size)
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "uint16", "crs": "EPSG:32633",
        "transform": Affine(10.0, 0.0, 399_960.0, 0.0, -10.0, 5_900_040.0), "nodata": 0, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "predictor": 2, "interleave": "pixel",
    }  # fmt: skip
    plain, with_overviews = folder / "s2_like_no_overviews.tif", folder / "s2_like_overviews.tif"
    env = rasterio.Env(GDAL_PAM_ENABLED="NO", GDAL_NUM_THREADS="ALL_CPUS", GDAL_TIFF_OVR_BLOCKSIZE=BLOCK)
    with env:
        with rasterio.open(plain, "w", **profile) as dst:
            for row in range(0, size, BLOCK):
                height = min(BLOCK, size - row)
                strip = middle[:, index[row : row + height]][:, :, index].astype(np.int32)
                strip += rng.integers(-NOISE, NOISE + 1, size=strip.shape, dtype=np.int32)
                data = np.clip(strip, 1, 10_000).astype(np.uint16)
                del strip
                # nodata 0 west of a slanted swath edge, as on a Sentinel-2 tile at the edge of an orbit
                edge = 0.2 * size - 0.15 * np.arange(row, row + height)
                data[:, columns[None, :] < edge[:, None]] = 0
                dst.write(data, window=Window(0, row, size, height))
            dst.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.nir]
            for band, name in enumerate(("blue", "green", "red", "nir"), start=1):
                dst.set_band_description(band, name)
        if not overviews:
            return plain, with_overviews
        shutil.copyfile(plain, with_overviews)
        with rasterio.open(with_overviews, "r+") as dst:
            dst.build_overviews(list(OVERVIEWS), Resampling.average)
    return plain, with_overviews


def first_view(path: Path) -> tuple[int, list[tuple[int, int, int]]]:
    """The largest zoom whose tiles covering the raster fit in ``MAP_PX``, and those tiles."""
    import morecantile

    from jobtask_widgets.raster import RasterSource

    tms = morecantile.tms.get("WebMercatorQuad")
    bounds = RasterSource(path).bounds_4326
    assert bounds is not None
    west, south, east, north = bounds
    for zoom in range(22, -1, -1):  # corners first: listing every tile at zoom 22 would take GBs
        top_left, bottom_right = tms.tile(west, north, zoom), tms.tile(east, south, zoom)
        across = (bottom_right.x - top_left.x + 1) * TILE_PX
        down = (bottom_right.y - top_left.y + 1) * TILE_PX
        if across <= MAP_PX[0] and down <= MAP_PX[1]:
            return zoom, [(t.z, t.x, t.y) for t in tms.tiles(*bounds, zooms=[zoom])]
    raise RuntimeError(f"no zoom fits {bounds} in {MAP_PX}")


def spawn(variant: str, path: Path, tiles: str, cache: Path) -> dict[str, Any]:
    """Run one variant in a fresh process with the overview cache in ``cache``; return its JSON."""
    env = {**os.environ, "MPLBACKEND": "Agg", "JOBTASK_WIDGETS_CACHE": str(cache)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", variant, str(path), tiles]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} exited with {done.returncode}")
    return dict(json.loads(done.stdout.splitlines()[-1]))


def mem_available_mb() -> float:
    match = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return int(match.group(1)) * 1024 / MB if match else float("inf")


def row(variant: str, run: int, name: str, step: dict[str, Any]) -> str:
    line = f"{variant:27} {run:>3} {name:7} {step['seconds']:8.3f}"
    if "first_ms" in step:
        rest = step["rest_ms"] or [float("nan")]
        line += f" {step['first_ms']:9.1f} {statistics.median(rest):9.1f} {max(rest):8.1f} {step['tiles']:>5}"
    else:
        line += f" {'':9} {'':9} {'':8} {'':>5}"
    return line + f" {step['peak_mb']:12.1f} {step['process_peak_mb']:15.1f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def variant_list(text: str) -> tuple[str, ...]:
    """``--only``'s comma-separated variant names, checked, in the order they run."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names.difference(VARIANTS)
    if unknown or not names:
        given = f"unknown variant(s) {', '.join(sorted(unknown))}" if unknown else "no variant given"
        raise argparse.ArgumentTypeError(f"{given}; known: {', '.join(VARIANTS)}")
    if "second-display-no-overviews" in names and "first-display-no-overviews" not in names:
        raise argparse.ArgumentTypeError(
            "second-display-no-overviews needs first-display-no-overviews: it reads the cache that one builds"
        )
    return tuple(v for v in VARIANTS if v in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant")
    parser.add_argument("--size", type=int, default=SIZE, help="width and height of the raster in pixels")
    parser.add_argument("--seed", type=int, default=20261102)
    parser.add_argument(
        "--no-naive", action="store_true", help="skip the (slow, memory-hungry) naive-plot and naive-overlay"
    )
    parser.add_argument(
        "--only", type=variant_list, default=VARIANTS, metavar="VARIANT,...",
        help=f"run only these variants (default: all of {', '.join(VARIANTS)})",
    )  # fmt: skip
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill as on Ctrl-C
    import rasterio
    import rio_tiler

    t0 = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {}
    notes: dict[str, list[str]] = {}  # why a naive variant's runs were skipped
    variants = [v for v in args.only if not (args.no_naive and v in NAIVE)]
    for variant in set(args.only).difference(variants):
        notes[variant] = ["skipped (--no-naive)"] * args.runs
    with tempfile.TemporaryDirectory(prefix="bench-raster-") as tmp_name:
        tmp = Path(tmp_name)
        free = shutil.disk_usage(tmp).free
        needed = args.size**2 * 4 * 2 * 2  # two rasters at most as large as raw, and a cache
        if free < needed:
            raise SystemExit(f"{tmp} has {free / 1e9:.1f} GB free; the rasters need about {needed / 1e9:.1f} GB")
        print(f"writing two {args.size} x {args.size} 4-band uint16 GeoTIFFs into {tmp} ...", flush=True)
        started = time.perf_counter()
        plain, with_overviews = write_rasters(tmp, args.size, args.seed)
        print(
            f"generated in {time.perf_counter() - started:.1f} s (not counted): {plain.name} "
            f"{plain.stat().st_size / MB:.0f} MB, {with_overviews.name} {with_overviews.stat().st_size / MB:.0f} MB "
            f"(overviews {', '.join(map(str, OVERVIEWS))})"
        )
        zoom, tiles = first_view(with_overviews)
        tiles_arg = ",".join(f"{z}/{x}/{y}" for z, x, y in tiles)
        print(f"first view of a {MAP_PX[0]} x {MAP_PX[1]} px map: zoom {zoom}, {len(tiles)} tiles ({tiles_arg})")
        print(
            f"GDAL {rasterio.__gdal_version__}, rasterio {rasterio.__version__}, rio-tiler {rio_tiler.__version__}, "
            f"{os.cpu_count()} CPUs, {mem_available_mb():.0f} MB available; files in the page cache (just written)"
        )
        print(f"variants: {', '.join(variants) or '(none)'}")
        need_mb = {
            "naive-plot": args.size**2 * NAIVE_BYTES_PER_PX / MB,
            "naive-overlay": args.size**2 * NAIVE_OVERLAY_BYTES_PER_PX / MB,
        }
        print("\n" + HEADER, flush=True)
        for i in range(1, args.runs + 1):
            cache = tmp / f"cache-{i}"  # a fresh overview cache for each run's first display
            path_of = {"first-display-no-overviews": plain, "second-display-no-overviews": plain}
            for variant in variants:  # interleaved, so drifting noise hits every variant alike
                if variant in need_mb and (available := mem_available_mb()) < need_mb[variant]:
                    note = f"skipped: it needs about {need_mb[variant]:.0f} MB, {available:.0f} MB available"
                    notes.setdefault(variant, []).append(note)
                    print(f"{variant:27} {i:>3} {note}", flush=True)
                    continue
                run = spawn(variant, path_of.get(variant, with_overviews), tiles_arg, cache)
                runs.setdefault(variant, []).append(run)
                for name, step in run["steps"].items():
                    print(row(variant, i, name, step), flush=True)
                    if name == "build":
                        steps = ", ".join(f"{f:.0%} {s:.1f} s" for f, s in step["progress"])
                        print(f"{'':32} overview build progress: {steps}", flush=True)
                    if name == "overlay":
                        (south, west), (north, east) = step["bounds"]
                        done_at = ", ".join(f"{stage} {at:.1f} s" for stage, at in step["stages"].items())
                        print(
                            f"{'':32} one {step['width']} x {step['height']} px EPSG:3857 PNG of"
                            f" {step['png_bytes'] / MB:.0f} MB, bounds [[{south:.4f}, {west:.4f}],"
                            f" [{north:.4f}, {east:.4f}]]; stages done at: {done_at}",
                            flush=True,
                        )
            shutil.rmtree(cache, ignore_errors=True)
    return summary(runs, notes, zoom, args.runs, t0)


def summary(runs: dict[str, list[dict[str, Any]]], notes: dict[str, list[str]], zoom: int, n: int, t0: float) -> int:
    def seconds(variant: str, step: str) -> list[float]:
        return [r["steps"][step]["seconds"] for r in runs.get(variant, [])]

    def peaks(variant: str, step: str) -> list[float]:
        return [r["steps"][step]["process_peak_mb"] for r in runs.get(variant, [])]

    def rest(variant: str) -> list[float]:
        return [ms for r in runs[variant] for ms in r["steps"]["tiles"]["rest_ms"]]

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def skipped(variant: str) -> str:
        why = notes.get(variant, [])
        return f"{variant}: {len(why)} of {n} runs {why[-1]}" if why else ""

    print(
        f"\n{'variant':27} {'step':7} {'median s':>9} {'best s':>8} {'worst s':>8} {'median process peak MB':>23}"
        f" {'RSS after imports MB':>21}"
    )
    for variant, rs in runs.items():
        imports = statistics.median(r["import_mb"] for r in rs)
        for name in rs[0]["steps"]:
            secs, pk = seconds(variant, name), peaks(variant, name)
            print(
                f"{variant:27} {name:7} {statistics.median(secs):9.3f} {min(secs):8.3f} {max(secs):8.3f}"
                f" {statistics.median(pk):23.1f} {imports:21.1f}"
            )
    tiled = [v for v in ("ours-tile", "first-display-no-overviews", "second-display-no-overviews") if v in runs]
    if tiled:
        print(
            f"\n{'tiles after the first':34} {'count':>5} {'median ms':>10} {'max ms':>8} {'first tile median ms':>21}"
        )
    for variant in tiled:
        ms = rest(variant) or [float("nan")]
        first = statistics.median(r["steps"]["tiles"]["first_ms"] for r in runs[variant])
        print(f"{variant:34} {len(rest(variant)):5} {statistics.median(ms):10.1f} {max(ms):8.1f} {first:21.1f}")

    checks: list[tuple[str, bool]] = []
    plot_s = median(seconds("ours-plot", "plot"))
    plot_mb = median(peaks("ours-plot", "plot"))
    tile_ms = median(rest("ours-tile")) if "ours-tile" in runs else float("nan")
    view_s = median(seconds("ours-tile", "tiles"))
    view_mb = median(peaks("ours-tile", "tiles"))
    if "ours-plot" in runs:
        checks += [
            (f"ours-plot time (median): {plot_s:.3f} s  target < {TARGET_PLOT_S:.0f} s", plot_s < TARGET_PLOT_S),
            (
                f"ours-plot peak RSS of the process (median): {plot_mb:.1f} MB  target < {TARGET_PLOT_MB:.0f} MB",
                plot_mb < TARGET_PLOT_MB,
            ),
        ]
    if "ours-tile" in runs:
        checks += [
            (
                f"ours-tile first view, statistics + every tile (median): {view_s:.3f} s"
                f"  target < {TARGET_VIEW_S:.0f} s",
                view_s < TARGET_VIEW_S,
            ),
            (
                f"ours-tile first view, peak RSS of the process, imports included (median): {view_mb:.1f} MB"
                f"  target < {TARGET_VIEW_MB:.0f} MB",
                view_mb < TARGET_VIEW_MB,
            ),
            (
                f"ours-tile per tile after the first (median): {tile_ms:.1f} ms  target < {TARGET_TILE_MS:.0f} ms",
                tile_ms < TARGET_TILE_MS,
            ),
        ]
    if "second-display-no-overviews" in runs and "ours-plot" in runs:
        warm_plot = statistics.median(seconds("second-display-no-overviews", "plot")) / plot_s
        checks.append(
            (
                f"second display without overviews, plot / ours-plot (medians): {warm_plot:.2f}"
                f"  target <= {TARGET_WARM_RATIO}",
                warm_plot <= TARGET_WARM_RATIO,
            )
        )
    if "second-display-no-overviews" in runs and "ours-tile" in runs:
        warm_tile = median(rest("second-display-no-overviews")) / tile_ms
        checks.append(
            (
                f"second display without overviews, tile median / ours-tile tile median: {warm_tile:.2f}"
                f"  target <= {TARGET_WARM_RATIO}",
                warm_tile <= TARGET_WARM_RATIO,
            )
        )
    print()
    if "naive-plot" in runs and "ours-plot" in runs:
        naive_s = statistics.median(seconds("naive-plot", "plot"))
        naive_mb = statistics.median(peaks("naive-plot", "plot"))
        print(
            f"naive-plot (for comparison, median of {len(runs['naive-plot'])}): {naive_s:.2f} s, process peak RSS"
            f" {naive_mb:.0f} MB; ours / naive: time {plot_s / naive_s:.3f}, peak RSS {plot_mb / naive_mb:.3f}"
        )
    if skipped("naive-plot"):
        print(skipped("naive-plot"))
    if "ours-tile" in runs or "naive-overlay" in runs:
        tile_count = runs["ours-tile"][0]["steps"]["tiles"]["tiles"] if "ours-tile" in runs else 0
        overlay = runs["naive-overlay"][0]["steps"]["overlay"] if "naive-overlay" in runs else None
        over_s, over_mb = median(seconds("naive-overlay", "overlay")), median(peaks("naive-overlay", "overlay"))
        print(
            f"first view of a {MAP_PX[0]} x {MAP_PX[1]} px map, side by side (medians):\n"
            f"  {'variant':15} {'runs':>4} {'seconds':>9} {'process peak MB':>16}  what"
        )
        if "ours-tile" in runs:
            print(
                f"  {'ours-tile':15} {len(runs['ours-tile']):4} {view_s:9.3f} {view_mb:16.1f}"
                f"  RasterSource + statistics + {tile_count} tiles of zoom {zoom} (256 px PNG)"
            )
        if overlay is not None:
            print(
                f"  {'naive-overlay':15} {len(runs['naive-overlay']):4} {over_s:9.3f} {over_mb:16.1f}"
                f"  full read + warp to EPSG:3857 + 2-98 % stretch + one"
                f" {overlay['width']} x {overlay['height']} px PNG ({overlay['png_bytes'] / MB:.0f} MB)"
            )
        if overlay is not None and "ours-tile" in runs:
            print(
                f"  naive / ours: time {over_s / view_s:.1f} x, peak RSS {over_mb / view_mb:.1f} x"
                f"  (ours / naive: {view_s / over_s:.4f}, {view_mb / over_mb:.4f})"
            )
        if skipped("naive-overlay"):
            print(f"  {skipped('naive-overlay')}")
    if "first-display-no-overviews" in runs:
        build = statistics.median(seconds("first-display-no-overviews", "build"))
        print(f"one-off overview build of the raster without overviews (median): {build:.1f} s")
    for text, ok in checks:
        print(f"{text}  {verdict(ok)}")
    if not checks:
        print("no target among the variants run")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        child(*sys.argv[2:])
    else:
        sys.exit(main())
