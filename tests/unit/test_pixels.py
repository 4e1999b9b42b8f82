"""Pixel values: ``RasterSource.values_at`` against rasterio's own ``sample``, on every kind of raster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_transform

from jobtask_widgets.errors import RasterError
from jobtask_widgets.pixels import PixelValues, format_value, pixel_values
from jobtask_widgets.raster import RasterSource
from jobtask_widgets.view import ResultsView
from tests import rasters

UTM = Affine(10.0, 0.0, 390_000.0, 0.0, -10.0, 5_820_000.0)
CASES: dict[str, dict[str, Any]] = {
    "uint32 UTM": {"dtype": "uint32"},
    "float32 UTM": {"dtype": "float32"},
    "rotated": {"transform": UTM * Affine.rotation(25)},
    "EPSG:4326": {"crs": "EPSG:4326", "transform": Affine(0.001, 0.0, 13.3, 0.0, -0.001, 52.5)},
    "no EPSG code": {
        "crs": "+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m +no_defs",
        "transform": Affine(10.0, 0.0, 4_400_000.0, 0.0, -10.0, 3_300_000.0),
    },
    "nodata": {"nodata": 5005},  # row 5, column 5
}
PIXELS = [(0, 0), (5, 5), (17, 42), (59, 79), (30, 1)]


def lonlat_of(ds: rasterio.DatasetReader, row: int, col: int) -> tuple[float, float]:
    x, y = ds.xy(row, col)
    lons, lats = warp_transform(ds.crs, "EPSG:4326", [x], [y])
    return lons[0], lats[0]


def sampled(ds: rasterio.DatasetReader, lon: float, lat: float) -> Any:
    """rasterio's own value at a point: ``sample`` at the point put back in the raster's CRS, masked."""
    xs, ys = warp_transform("EPSG:4326", ds.crs, [lon], [lat])
    return next(ds.sample([(xs[0], ys[0])], masked=True))[0]


@pytest.mark.parametrize("case", list(CASES))
def test_values_at_pixel_centres_equal_rasterios_sample(tmp_path: Path, case: str) -> None:
    options = dict(CASES[case])
    path = rasters.grid(tmp_path / "g.tif", options.pop("dtype", "uint32"), **options)
    with RasterSource(path) as source, rasterio.open(path) as ds:
        for row, col in PIXELS:
            lon, lat = lonlat_of(ds, row, col)
            values = source.values_at(lon, lat)
            expected = sampled(ds, lon, lat)
            assert isinstance(values, PixelValues) and list(values) == ["band 1"] and values.inside
            if case == "nodata" and (row, col) == (5, 5):
                assert expected is np.ma.masked and values["band 1"] is None
                continue
            assert values["band 1"] == expected == row * 1000 + col, (case, row, col)
            assert type(values["band 1"]) is (float if ds.dtypes[0] == "float32" else int)


@pytest.mark.parametrize("case", list(CASES))
def test_values_outside_the_raster_are_none(tmp_path: Path, case: str) -> None:
    options = dict(CASES[case])
    path = rasters.grid(tmp_path / "g.tif", options.pop("dtype", "uint32"), **options)
    with RasterSource(path) as source, rasterio.open(path) as ds:
        lon, lat = lonlat_of(ds, -3, -3)  # three pixels beyond the first one, up and to the left
        values = source.values_at(lon, lat)
    assert dict(values) == {"band 1": None} and not values.inside


def test_nan_is_none_and_its_neighbours_are_values(tmp_path: Path) -> None:
    path = rasters.float_nan(tmp_path / "n.tif")  # NaN in the top-left 20 x 20, no nodata declared
    with RasterSource(path) as source, rasterio.open(path) as ds:
        assert source.values_at(*lonlat_of(ds, 3, 3))["band 1"] is None
        lon, lat = lonlat_of(ds, 50, 50)
        assert source.values_at(lon, lat)["band 1"] == pytest.approx(float(sampled(ds, lon, lat)))


def test_scale_and_offset_are_applied_and_the_stored_value_kept(tmp_path: Path) -> None:
    path = rasters.grid(tmp_path / "s.tif", "uint16", nodata=0)
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (0.0001,), (-0.1,)
    with RasterSource(path) as source, rasterio.open(path) as ds:
        values = source.values_at(*lonlat_of(ds, 12, 34))
        assert values.raw == {"band 1": 12034}
        assert values["band 1"] == pytest.approx(12034 * 0.0001 - 0.1) and values.scaled
        assert source.values_at(*lonlat_of(ds, 0, 0)) == {"band 1": None}  # nodata stays None, unscaled
        assert "raw=" in repr(values)


def test_a_paletted_raster_gives_its_class(tmp_path: Path) -> None:
    path = rasters.paletted(tmp_path / "p.tif")  # classes 0 | 1 | 2 in column thirds
    with RasterSource(path) as source, rasterio.open(path) as ds:
        assert [source.values_at(*lonlat_of(ds, 30, col))["band 1"] for col in (5, 25, 50)] == [0, 1, 2]


def test_band_names_come_from_the_file(tmp_path: Path) -> None:
    path = rasters.reflectance(tmp_path / "r.tif")  # descriptions blue, green, red, nir; nodata in rows < 20
    with RasterSource(path) as source, rasterio.open(path) as ds:
        values = source.values_at(*lonlat_of(ds, 100, 100))
        expected = list(next(ds.sample([ds.xy(100, 100)])))
        assert list(values) == ["blue", "green", "red", "nir"]
        assert list(values.values()) == expected
        assert list(source.values_at(*lonlat_of(ds, 5, 5)).values()) == [None] * 4


def test_values_read_the_raster_itself_never_its_overviews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBTASK_WIDGETS_CACHE", str(tmp_path / "cache"))
    path = rasters.large_plain(tmp_path / "big.tif")  # needs cached overviews for display
    with RasterSource(path) as source, rasterio.open(path) as ds:
        lon, lat = lonlat_of(ds, 1234, 2001)
        assert source.values_at(lon, lat)["band 1"] == (1234 + 2001) % 251
    assert not (tmp_path / "cache").exists()  # no overview build for a pixel


def test_a_raster_without_a_crs_says_why_it_has_no_values(tmp_path: Path) -> None:
    with RasterSource(rasters.no_crs(tmp_path / "x.tif")) as source, pytest.raises(RasterError, match="pixel values"):
        source.values_at(13.4, 52.5)


def test_a_view_gives_every_visible_rasters_values(tmp_path: Path) -> None:
    a = rasters.grid(tmp_path / "a.tif")
    b = rasters.grid(tmp_path / "b.tif", "float32", height=30, width=30)
    with ResultsView.from_files([a, b]) as view, rasterio.open(a) as ds:
        lon, lat = lonlat_of(ds, 10, 20)
        assert view.values_at(lat, lon) == {"a.tif": {"band 1": 10020}, "b.tif": {"band 1": 10020.0}}
        view.rasters["b.tif"].visible = False
        assert view.values_at(lat, lon) == {"a.tif": {"band 1": 10020}}
        lon, lat = lonlat_of(ds, 50, 70)  # on a, beyond b's 30 x 30
        view.rasters["b.tif"].visible = True
        assert view.values_at(lat, lon) == {"a.tif": {"band 1": 50070}, "b.tif": {"band 1": None}}


def test_pixel_values_maths() -> None:
    array = np.ma.MaskedArray(np.array([7, 0, 3], dtype="int16"), mask=[False, True, False])
    values = pixel_values(["a", "b", "c"], array, (1.0, 1.0, 2.0), (0.0, 0.0, 1.0), lon=1.0, lat=2.0)
    assert dict(values) == {"a": 7, "b": None, "c": 7.0} and values.raw == {"a": 7, "b": None, "c": 3}
    assert (values.lon, values.lat) == (1.0, 2.0)
    assert [format_value(v) for v in (None, 3, 0.123456789, 1e-9)] == ["nodata", "3", "0.123457", "1e-09"]


def test_a_longitude_from_another_copy_of_the_world_reads_the_same_pixel(tmp_path: Path) -> None:
    transform = Affine(0.001, 0.0, 13.3, 0.0, -0.001, 52.6)
    with RasterSource(rasters.grid(tmp_path / "g.tif", crs="EPSG:4326", transform=transform)) as source:
        here = source.values_at(13.3405, 52.5695)
        assert here == {"band 1": 30040}
        assert source.values_at(13.3405 + 360, 52.5695) == here == source.values_at(13.3405 - 720, 52.5695)


def test_an_rgba_raster_gives_all_four_bands(tmp_path: Path) -> None:
    path = rasters.rgba(tmp_path / "a.tif")  # grey 128, alpha 0 in the left 30 columns
    with RasterSource(path) as source, rasterio.open(path) as ds:
        inside = source.values_at(*lonlat_of(ds, 10, 45))
        assert dict(inside) == {"red": 128, "green": 128, "blue": 128, "alpha": 255}
        assert dict(source.values_at(*lonlat_of(ds, 10, 5))) == dict.fromkeys(inside)  # transparent: masked
