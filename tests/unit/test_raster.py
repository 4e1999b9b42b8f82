"""RasterSource on every kind of raster: metadata, default bands, statistics, overviews, tiles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import morecantile
import numpy as np
import pytest
from PIL import Image

from jobtask_widgets.errors import RasterError
from jobtask_widgets.overviews import CACHE_ENV, cache_size
from jobtask_widgets.raster import RasterSource, Style
from jobtask_widgets.stretch import band_ranges, to_rgba
from tests import rasters

TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def centre_tile(source: RasterSource, zoom: int) -> tuple[int, int, int]:
    west, south, east, north = source.bounds_4326
    tile = TMS.tile((west + east) / 2, (south + north) / 2, zoom)
    return tile.z, tile.x, tile.y


def test_metadata_and_default_bands(tmp_path: Path) -> None:
    refl = RasterSource(rasters.reflectance(tmp_path / "r.tif"))
    assert (refl.count, refl.width, refl.height, refl.nodata) == (4, 200, 200, 0)
    assert [b.dtype for b in refl.bands] == ["uint16"] * 4
    assert refl.band_labels == "1 (blue), 2 (green), 3 (red), 4 (nir)"
    assert refl.default_bands() == (3, 2, 1)  # red, green, blue by colour interpretation
    assert refl.crs.to_epsg() == 32633 and refl.georeferenced
    west, south, east, north = refl.bounds_4326
    assert 13.3 < west < east < 13.5 and 52.4 < south < north < 52.6
    assert not refl.has_overviews
    assert RasterSource(rasters.two_bands(tmp_path / "2.tif")).default_bands() == (1,)
    assert RasterSource(rasters.rgba(tmp_path / "a.tif")).default_bands() == (1, 2, 3)
    assert RasterSource(rasters.rgba(tmp_path / "a.tif")).alpha_band == 4
    assert RasterSource(rasters.signed(tmp_path / "s.tif")).default_bands() == (1,)


def test_bad_bands_name_the_files_bands(tmp_path: Path) -> None:
    refl = RasterSource(rasters.reflectance(tmp_path / "r.tif"))
    for bad in ([5], [1, 2], [1, 2, 3, 4], [0], "123", [1.5]):
        with pytest.raises(ValueError, match=r"r\.tif has bands 1 \(blue\), 2 \(green\), 3 \(red\), 4 \(nir\)"):
            refl.check_bands(bad)  # type: ignore[arg-type]
    assert refl.check_bands([4]) == (4,)
    assert refl.check_bands([4, 3, 2]) == (4, 3, 2)


def test_statistics_are_percentiles_of_a_decimated_read_and_cached(tmp_path: Path) -> None:
    refl = RasterSource(rasters.reflectance(tmp_path / "r.tif"))
    first = refl.statistics((3, 2, 1), "percentile")
    for low, high in first:
        assert 300 <= low < 600 and 4700 < high <= 5000  # uniform 300..5000: ~2 % and ~98 %, nodata left out
    assert refl.statistics((3, 2, 1), "percentile") is first
    low, high = refl.statistics((1,), "minmax")[0]
    assert (low, high) == (300, 4999)
    assert refl.ranges(Style(bands=(1,), vmin=0, vmax=10)) == [(0, 10)]
    halves = RasterSource(rasters.halves_rgb(tmp_path / "h.tif"))
    assert halves.ranges(Style()) == [(0.0, 255.0)] * 3  # 8-bit shows as it is by default


def test_stretch_maths() -> None:
    data = np.ma.masked_equal(np.array([[[0, 10, 20], [30, 40, 0]]], dtype="uint16"), 0)
    assert band_ranges(data, "minmax") == [(10.0, 40.0)]
    rgba = to_rgba(data, [(10.0, 40.0)])
    assert rgba.shape == (4, 2, 3)
    assert rgba[3].tolist() == [[0, 255, 255], [255, 255, 0]]
    assert rgba[0, 0, 1] == 0 and rgba[0, 1, 1] == 255  # grey ramp: low end black, high end white
    with pytest.raises(ValueError, match="stretch must be one of"):
        band_ranges(data, "log")  # type: ignore[arg-type]


def test_tiles_keep_colours_and_make_nodata_transparent(tmp_path: Path) -> None:
    halves = RasterSource(rasters.halves_rgb(tmp_path / "h.tif", size=512))
    z, x, y = centre_tile(halves, 11)  # the whole raster inside one tile, with its nodata border
    rgba = halves.tile_rgba(z, x, y)
    assert rgba is not None and rgba.shape == (4, 256, 256)
    opaque = rgba[3] == 255
    colours = {tuple(int(v) for v in rgba[:3, r, c]) for r, c in zip(*np.nonzero(opaque), strict=True)}
    assert (200, 0, 0) in colours and (0, 0, 200) in colours
    assert (rgba[3] == 0).any()  # the nodata border, or outside the raster
    png = halves.tile(z, x, y)
    assert png is not None and png[:4] == b"\x89PNG"
    image = Image.open(__import__("io").BytesIO(png))
    assert image.mode == "RGBA" and image.size == (256, 256)
    assert halves.tile(z, x, y, img_format="WEBP")[:4] == b"RIFF"  # type: ignore[index]
    far = TMS.tile(-120.0, 40.0, 14)
    assert halves.tile(far.z, far.x, far.y) is None


def test_every_dtype_renders(tmp_path: Path) -> None:
    cases = {
        "signed": rasters.signed(tmp_path / "s.tif"),
        "float_nan": rasters.float_nan(tmp_path / "f.tif"),
        "rgba": rasters.rgba(tmp_path / "a.tif"),
        "paletted": rasters.paletted(tmp_path / "p.tif"),
        "two_bands": rasters.two_bands(tmp_path / "2.tif"),
        "custom_crs": rasters.custom_crs(tmp_path / "c.tif"),
    }
    out = {}
    for name, path in cases.items():
        source = RasterSource(path)
        image = source.preview(64)
        out[name] = source.rgba(image, Style())
    signed = RasterSource(cases["signed"]).statistics((1,))[0]
    assert signed[0] < -900 and signed[1] > 900
    assert (out["float_nan"][3, :12, :12] == 0).all() and (out["float_nan"][3, 20:, 20:] == 255).all()
    assert (out["rgba"][3][:, :15] == 0).all() and (out["rgba"][3][:, 40:] == 255).all()
    assert tuple(out["paletted"][:, 10, 30]) == (0, 160, 0, 255)  # its own colour for class 1
    assert tuple(out["paletted"][:, 10, 50]) == (250, 220, 0, 255)
    assert out["two_bands"].shape[0] == 4
    custom = RasterSource(cases["custom_crs"])
    assert custom.crs.to_epsg() is None
    west, south, east, north = custom.bounds_4326
    assert 13.3 < west < 13.4 < east < 13.5 and 52.4 < south < 52.5 < north < 52.6
    z, x, y = centre_tile(custom, 13)
    assert custom.tile_rgba(z, x, y) is not None


def test_a_raster_without_crs_plots_but_cannot_be_mapped(tmp_path: Path) -> None:
    source = RasterSource(rasters.no_crs(tmp_path / "n.tif"))
    assert not source.georeferenced and source.bounds_4326 is None
    assert source.preview(32).array.shape[0] == 1
    with pytest.raises(RasterError, match=r"has no coordinate reference system.*plots still work"):
        source.tile_rgba(0, 0, 0)


def test_unreadable_files_raise_raster_error_naming_file_and_reason(tmp_path: Path) -> None:
    (tmp_path / "junk.tif").write_bytes(b"this is not a raster")
    with pytest.raises(RasterError, match=r"junk\.tif cannot be read: .*not recognized"):
        RasterSource(tmp_path / "junk.tif")
    with pytest.raises(RasterError, match=r"missing\.tif cannot be read"):
        RasterSource(tmp_path / "missing.tif")
    damaged = RasterSource(rasters.damaged_pixels(tmp_path / "d.tif"))  # the header is fine
    with pytest.raises(RasterError, match=r"d\.tif: the preview cannot be read: .*(TIFFReadEncodedTile|Decod)"):
        damaged.preview(256)


def test_a_large_raster_without_overviews_gets_them_once_in_the_cache(tmp_path: Path, _cache: Path) -> None:
    path = rasters.large_plain(tmp_path / "big.tif")
    before = sorted(tmp_path.glob("big*"))
    source = RasterSource(path)
    assert not source.has_overviews
    steps: list[float] = []
    display = source.display_path(progress=steps.append)
    assert display.suffix == ".vrt" and display.is_relative_to(_cache)
    assert steps[0] == 0.0 and steps[-1] == 1.0 and len(steps) > 2 and steps == sorted(steps)  # a step a strip
    assert not source.overviews_pending  # its levels are all small: one step, nothing left to compress
    import rasterio

    with rasterio.open(display) as vrt:
        assert vrt.overviews(1) == [2, 4, 8, 16]
    built, reported = display.stat().st_mtime_ns, len(steps)
    again = RasterSource(path).display_path(progress=steps.append)
    assert again == display and display.stat().st_mtime_ns == built  # not rebuilt
    assert len(steps) == reported  # no second build, no second report
    assert sorted(tmp_path.glob("big*")) == before  # the user's folder is untouched
    image = source.preview(300)
    assert max(image.array.shape[1:]) == 300
    assert cache_size() > 0


def test_small_rasters_and_rasters_with_overviews_are_read_as_they_are(own_sample: object, tmp_path: Path) -> None:
    small = RasterSource(rasters.reflectance(tmp_path / "r.tif"))
    assert small.display_path() == small.path


def test_the_cache_command_shows_and_clears_the_cache(tmp_path: Path, _cache: Path) -> None:
    RasterSource(rasters.large_plain(tmp_path / "big.tif", size=2100)).display_path()
    env = {**os.environ, CACHE_ENV: str(_cache)}
    shown = subprocess.run([sys.executable, "-m", "jobtask_widgets.cli", "cache"], env=env, capture_output=True,
                           text=True, timeout=60, check=True)  # fmt: skip
    assert str(_cache) in shown.stdout and "MB" in shown.stdout
    cleared = subprocess.run([sys.executable, "-m", "jobtask_widgets.cli", "cache", "--clear"], env=env,
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert "cleared" in cleared.stdout
    assert cache_size() == 0


def test_part_renders_the_view_warped_to_web_mercator(tmp_path: Path) -> None:
    halves = RasterSource(rasters.halves_rgb(tmp_path / "h.tif", size=400))
    west, south, east, north = halves.bounds_4326
    rgba = halves.part_rgba((west, south, east, north), 300, 200)
    assert rgba.shape == (4, 200, 300)
    left, right = rgba[:, 100, 90], rgba[:, 100, 210]
    assert tuple(left) == (200, 0, 0, 255) and tuple(right) == (0, 0, 200, 255)
    assert rgba[3, 2, 2] == 0  # the nodata border
    explicit = halves.part_rgba((west, south, east, north), 30, 20, Style(bands=(1,), vmin=0, vmax=200))
    assert explicit.shape == (4, 20, 30)
    with pytest.raises(RasterError, match="no coordinate reference system"):
        RasterSource(rasters.no_crs(tmp_path / "n.tif")).part_rgba((0, 0, 1, 1), 10, 10)
