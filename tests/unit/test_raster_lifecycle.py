"""Who owns an open raster, what a damaged one raises, and that no read or build changes GDAL's state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jobtask_widgets.errors import RasterError
from jobtask_widgets.overviews import CACHE_ENV
from jobtask_widgets.raster import RasterSource
from tests import rasters

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_source_is_a_context_manager_that_closes_every_threads_reader(tmp_path: Path) -> None:
    path = rasters.reflectance(tmp_path / "r.tif")
    with RasterSource(path) as source:
        source.preview(64)
        readers = []
        all_read = threading.Barrier(3)  # alive together, so no two threads share an ident

        def read_in_a_thread() -> None:
            source.preview(32)
            readers.append(source._readers.readers[(threading.get_ident(), str(path))])
            all_read.wait(timeout=30)

        threads = [threading.Thread(target=read_in_a_thread) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        opened = [*source._readers.readers.values()]
        assert len(opened) == 4  # the main thread's and the three others'
    assert source.closed and source._readers.readers == {}
    assert all(reader.dataset.closed for reader in opened)  # the other threads' readers too
    with pytest.raises(RasterError, match=r"r\.tif: the raster source is closed"):
        source.preview(16)
    source.close()  # twice is fine


def test_a_failed_read_leaves_no_reader_open_once_closed(tmp_path: Path) -> None:
    source = RasterSource(rasters.damaged_pixels(tmp_path / "d.tif"))
    with source, pytest.raises(RasterError):
        source.preview(256)
    assert source._readers.readers == {}


def test_cut_overview_directories_raise_a_raster_error_naming_the_file(tmp_path: Path) -> None:
    from jobtask_widgets import plotting

    path = rasters.cut_overviews(tmp_path / "cut.tif")
    with pytest.raises(RasterError, match=r"cut\.tif cannot be read: .*TIFFReadDirectory") as opened:
        RasterSource(path)
    assert type(opened.value.__cause__).__name__ == "CPLE_AppDefinedError"  # GDAL's own, kept as the cause
    with pytest.raises(RasterError, match=r"cut\.tif"):
        plotting.results_figure([path])


def test_an_overview_build_of_a_damaged_raster_raises_a_raster_error(tmp_path: Path) -> None:
    big = rasters.large_plain(tmp_path / "big.tif", size=2100)
    source = RasterSource(big)
    raw = big.read_bytes()
    big.write_bytes(raw[: len(raw) // 2])  # cut after it was opened: the build meets the damage
    with pytest.raises(RasterError, match=r"big\.tif: overviews could not be built: .+"):
        source.display_path()
    assert not list((tmp_path / "cache").rglob("*.vrt"))  # nothing half-built is kept


# The scenario of the leak, in a fresh interpreter so that no earlier test has changed GDAL's state:
# a preview of raster A, then a raster whose pixels are damaged (its failed read keeps a reader, and so
# rasterio's default environment, alive), a dataset the user keeps open, an overview build, and the same
# preview of A again. Before the fix the second preview was hundreds of times slower (GDAL_CACHEMAX of
# the build stayed in force); the check compares the two in the same process, with a wide margin.
LEAK_SCRIPT = """
import json, sys, time
from pathlib import Path
import rasterio
from rasterio._env import get_gdal_config
from jobtask_widgets.errors import RasterError
from jobtask_widgets.raster import RasterSource
from tests import rasters

folder = Path(sys.argv[1])
a = rasters.write(folder / "a.tif", __import__("numpy").random.default_rng(1).integers(0, 4000, (4, 1024, 1024))
                  .astype("uint16"), tiled=True, compress="deflate")

def preview_time():
    best = float("inf")
    for _ in range(3):
        source = RasterSource(a)
        try:
            started = time.perf_counter()
            source.read_preview(1024, [1, 2, 3, 4])
            best = min(best, time.perf_counter() - started)
        finally:
            source.close()
    return best

cache_before = get_gdal_config("GDAL_CACHEMAX")
before = preview_time()
damaged = RasterSource(rasters.damaged_pixels(folder / "damaged.tif"))
try:
    damaged.preview(256)
except RasterError:
    pass
users_own = rasterio.open(a)  # a dataset the user keeps open in the same kernel
RasterSource(rasters.large_plain(folder / "big.tif", size=2100)).display_path()
after = preview_time()
print(json.dumps({"before": before, "after": after, "cache_before": cache_before,
                  "cache_after": get_gdal_config("GDAL_CACHEMAX")}))
"""


def test_a_bad_raster_then_an_overview_build_leave_later_reads_as_fast(tmp_path: Path, _cache: Path) -> None:
    env = {**os.environ, CACHE_ENV: str(_cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", LEAK_SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cache_after"] == result["cache_before"]  # GDAL's block cache size is untouched
    assert result["after"] < 5 * result["before"] + 0.05, result  # it was 400x slower before the fix


# Readers closed while other threads read through them: GDAL crashes (a segfault, so the check runs
# in a child) unless close() leaves each busy reader to the read that holds it.
CLOSE_UNDER_READS = """
import sys, threading
from pathlib import Path
from jobtask_widgets.errors import RasterError
from jobtask_widgets.raster import RasterSource
from tests import rasters

folder = Path(sys.argv[1])
path = rasters.halves_rgb(folder / "h.tif", size=1500)
for round in range(15):
    source = RasterSource(path)
    west, south, east, north = source.bounds_4326
    reading, outcomes = threading.Event(), []

    def read():
        for _ in range(40):
            reading.set()
            try:
                source.part_rgba((west, south, east, north), 512, 512)
                source.preview(400)
            except RasterError as exc:
                assert "the raster source is closed" in str(exc), exc
                outcomes.append("closed")
                return
        outcomes.append("done")

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    reading.wait()  # reads are under way in the threads
    source.close()
    for thread in threads:
        thread.join()
    readers = source._readers
    assert len(outcomes) == 6 and readers.readers == {} and readers.leftover == {} and readers.busy == {}
print("ok")
"""


def test_closing_a_source_while_threads_read_through_it_crashes_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_UNDER_READS, str(tmp_path)], env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])


def test_the_overview_child_runs_this_package_whatever_the_working_folder_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = tmp_path / "work" / "jobtask_widgets"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("")
    for module in ("overviews.py", "overviewbuild.py"):
        (decoy / module).write_text("raise SystemExit('a stale copy of the package ran')\n")
    monkeypatch.chdir(tmp_path / "work")
    source = RasterSource(rasters.large_plain(tmp_path / "big.tif", size=2100))
    assert source.display_path().suffix == ".vrt"
