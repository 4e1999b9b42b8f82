"""The overview cache's two steps: a first view before the build ends, the rest in the background, once."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import ipyleaflet
import numpy as np
import pytest
import rasterio
from rasterio._env import get_gdal_config
from rasterio.enums import Resampling

from jobtask_widgets import overviews
from jobtask_widgets.overviews import CACHE_ENV, FIRST_SHARE
from jobtask_widgets.raster import RasterSource
from jobtask_widgets.tilelayer import RasterTileLayer
from jobtask_widgets.view import RasterState
from tests import rasters

ROOT = Path(__file__).parents[2]
SIZE = 4400  # level 2 (2200 px) is over COMPRESS_LATER: it is left to the background step


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4400² uint16 raster without overviews: smooth values, nodata 0 in a corner triangle."""
    rows = np.arange(SIZE, dtype="uint32")[:, None]
    cols = np.arange(SIZE, dtype="uint32")[None, :]
    data = (1 + (rows * 7 + cols * 3) % 4000).astype("uint16")
    data[rows + cols < 900] = 0
    path = tmp_path_factory.mktemp("cold") / "cold.tif"
    return rasters.write(path, data[None], nodata=0, tiled=True, blockxsize=512, blockysize=512,
                         compress="deflate", predictor=2)  # fmt: skip


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def compression(path: Path) -> str | None:
    with rasterio.open(path) as ds:
        return ds.compression.value if ds.compression else None


def test_the_first_view_comes_before_the_build_ends_and_the_rest_follows(cold: Path, cache: Path) -> None:
    gdal_cache = get_gdal_config("GDAL_CACHEMAX")
    steps: list[float] = []
    finished = threading.Event()
    with RasterSource(cold) as source:
        source.on_display_change(lambda s: finished.set())
        shown = source.display_path(progress=steps.append)
        at_first_view = list(steps)
        first_level = shown.parent / "ovr-2.tif"
        assert shown.name == "cold.first.vrt" and shown.is_relative_to(cache)
        assert at_first_view[0] == 0.0 and at_first_view[-1] == FIRST_SHARE and len(at_first_view) >= 6
        assert at_first_view == sorted(at_first_view)  # a step a strip of rows, in order
        with rasterio.open(shown) as vrt:
            assert vrt.overviews(1) == [2, 4, 8, 16, 32]
        assert source.preview(256).array.shape[1:] == (256, 256)  # the first view reads now
        assert source.wait_for_overviews(120) and finished.is_set() and source.overview_error is None
        assert steps[-1] == 1.0 and all(s > FIRST_SHARE for s in steps[len(at_first_view) :])
        final = source.display_path()
        assert final.name == "cold.vrt" and final.parent == shown.parent
        assert compression(first_level) == "ZSTD"  # compressed in the background
        assert compression(shown.parent / "ovr-8.tif") == "ZSTD"  # small levels compressed at once
        assert source.preview(256).array.shape[1:] == (256, 256)  # read again, through the finished VRT
    assert get_gdal_config("GDAL_CACHEMAX") == gdal_cache  # the build ran in child processes


def test_the_levels_equal_gdals_own_average_overviews(cold: Path, cache: Path, tmp_path: Path) -> None:
    final = overviews.cached_overviews(cold)
    reference = tmp_path / "reference.tif"
    shutil.copyfile(cold, reference)
    with rasterio.open(reference, "r+") as dst:
        dst.build_overviews([2, 4, 8, 16, 32], Resampling.average)
    for factor in (2, 4, 16):
        with rasterio.open(final.parent / f"ovr-{factor}.tif") as ours, rasterio.open(reference) as ref:
            mine = ours.read(1, masked=True)
            theirs = ref.read(1, out_shape=mine.shape, masked=True)  # GDAL picks the overview of that size
            assert mine.shape == (-(-SIZE // factor),) * 2
            assert (np.ma.getmaskarray(mine) == np.ma.getmaskarray(theirs)).mean() > 0.999
            both = ~(np.ma.getmaskarray(mine) | np.ma.getmaskarray(theirs))
            difference = np.abs(mine.data.astype(int) - theirs.data.astype(int))[both]
            assert np.percentile(difference, 99) <= 1 + factor, factor  # averages of the same pixels
            assert ours.nodata == 0 and ours.crs == ref.crs


def test_a_second_display_uses_the_finished_cache(cold: Path, cache: Path) -> None:
    final = overviews.cached_overviews(cold)
    built = final.stat().st_mtime_ns
    steps: list[float] = []
    with RasterSource(cold) as source:
        assert source.display_path(progress=steps.append) == final
        assert steps == [] and not source.overviews_pending
    assert final.stat().st_mtime_ns == built


def test_closing_a_source_does_not_wait_for_its_background_step_which_still_finishes(cold: Path, cache: Path) -> None:
    first, complete = overviews.first_overviews(cold)
    assert not complete
    lock_path = first.parent.parent / f"{first.parent.name}.finish.lock"
    told: list[RasterSource] = []
    with open(lock_path, "w") as held:  # another kernel finishing the same raster
        fcntl.flock(held, fcntl.LOCK_EX)
        source = RasterSource(cold)
        source.on_display_change(told.append)
        assert source.display_path() == first and source.overviews_pending
        source.close()  # returns although the finish waits for the lock
        assert not source.overviews_pending
        assert not (first.parent / "cold.vrt").exists()
    assert overviews.FINISHER.wait(120)  # the finish went on once the lock was free
    assert (first.parent / "cold.vrt").is_file() and told == []  # the closed source is not told
    with RasterSource(cold) as again:
        assert again.display_path() == first.parent / "cold.vrt" and not again.overviews_pending


def test_a_plot_that_closes_its_source_at_once_still_gets_the_overviews_finished(cold: Path, cache: Path) -> None:
    from jobtask_widgets import plotting

    figure = plotting.results_figure([cold], figsize=(4, 4))
    plotting.discard(figure)
    assert overviews.FINISHER.wait(120)
    assert len(list(cache.glob("overviews/*/cold.vrt"))) == 1


def test_the_finished_entry_is_read_from_then_on_without_a_redraw(cold: Path, cache: Path) -> None:
    first, _ = overviews.first_overviews(cold)
    lock_path = first.parent.parent / f"{first.parent.name}.finish.lock"
    told: list[RasterSource] = []
    with RasterSource(cold) as source:
        source.on_display_change(told.append)
        layer = RasterTileLayer(ipyleaflet.Map(), RasterState(source))
        try:
            with open(lock_path, "w") as held:  # hold the finish back until the layer has drawn
                fcntl.flock(held, fcntl.LOCK_EX)
                assert source.display_path() == first
                before = source.preview(128).array
                revision = layer.revision
            assert source.wait_for_overviews(120) and told == [source]
            assert source.display_path() == first.parent / "cold.vrt"
            # the levels were only compressed, losslessly: the same pixels, so no redraw
            np.testing.assert_array_equal(source.preview(128).array, before)
            assert layer.revision == revision
        finally:
            layer.close()


KERNEL = """
import json, sys, time
from pathlib import Path
from jobtask_widgets.raster import RasterSource
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
steps = []
with RasterSource(sys.argv[1]) as source:
    shown = source.display_path(progress=steps.append)
    source.wait_for_overviews(300)
    print(json.dumps({"shown": str(shown), "final": str(source.display_path()), "steps": steps}))
"""


def test_two_kernels_showing_the_same_raster_build_it_once(cold: Path, cache: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", KERNEL, str(cold), str(go)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    kernels = [subprocess.Popen(command, env=env, **pipes) for _ in range(2)]  # type: ignore[call-overload]
    go.touch()  # both start together
    reports = []
    for kernel in kernels:
        out, err = kernel.communicate(timeout=300)
        assert kernel.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    built_first = [r for r in reports if 0.0 in r["steps"]]
    finished = [r for r in reports if any(s > FIRST_SHARE for s in r["steps"])]
    assert len(built_first) == 1 and len(finished) == 1  # one build of each step
    assert {r["final"] for r in reports} == {
        str(cache / "overviews" / Path(reports[0]["final"]).parent.name / "cold.vrt")
    }
    assert len([p for p in (cache / "overviews").iterdir() if p.is_dir()]) == 1  # one entry, no staging left


def test_a_raster_with_a_mask_of_its_own_keeps_it_at_every_zoom(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "masked.tif"
    data = np.full((3, 3000, 3000), 90, dtype="uint8")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
        path, "w", driver="GTiff", width=3000, height=3000, count=3, dtype="uint8", crs="EPSG:32633",
        transform=rasters.BERLIN_UTM, tiled=True, blockxsize=256, blockysize=256,
    ) as dst:  # fmt: skip
        dst.write(data)
        mask = np.zeros((3000, 3000), dtype="uint8")
        mask[:, 1500:] = 255  # the left half masked out
        dst.write_mask(mask)
    with RasterSource(path) as source:
        assert source.display_path().name == "masked.vrt"  # GDAL's build, in one step: the mask goes along
        preview = source.preview(256).array
        masked = np.ma.getmaskarray(preview)[0]
        assert 0.45 < masked.mean() < 0.55 and masked[:, :100].all() and not masked[:, -100:].any()


def test_levels_coarser_than_a_strip_are_averages_of_the_level_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobtask_widgets import overviewbuild

    monkeypatch.setattr(overviewbuild, "STRIP_ROWS", 16)  # so levels 32 and 64 are coarser than a strip
    ramp = (np.arange(128, dtype="float32")[:, None] * 1000 + np.arange(256, dtype="float32")[None, :])[None]
    source = rasters.write(tmp_path / "ramp.tif", ramp)
    overviewbuild.build_levels(str(source), tmp_path, [2, 4, 8, 16, 32, 64], workers=2)
    for factor in (16, 32, 64):
        with rasterio.open(tmp_path / f"ovr-{factor}.tif") as level:
            got = level.read(1)
        expected = ramp[0].reshape(128 // factor, factor, 256 // factor, factor).mean(axis=(1, 3))
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_failure_while_finishing_is_told_and_nothing_stays_pending(cold: Path, cache: Path) -> None:
    first, _ = overviews.first_overviews(cold)
    lock_path = first.parent.parent / f"{first.parent.name}.finish.lock"
    with RasterSource(cold) as source:
        with open(lock_path, "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            assert source.display_path() == first and source.overviews_pending
            first.write_text("<VRTDataset")  # damaged under the waiting finish: it cannot be read
        assert source.wait_for_overviews(60) and not source.overviews_pending
        assert source.overview_error is not None and "could not be finished" in str(source.overview_error)
    assert overviews.FINISHER.wait(60)
