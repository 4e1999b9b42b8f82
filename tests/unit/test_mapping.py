"""The pure pieces of map_results: pairing, the fitted view, popups, the AOI, thinning."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point, box

from jobtask_widgets.mapping import aoi_geojson, fit_view, layer_name, pair_rasters, popup_html, thin_features
from jobtask_widgets.sample import Sample

DATA = Path(__file__).parent.parent / "data"


def test_pairing_by_data_path_on_the_original_platforms_archive(tmp_path: Path) -> None:
    with tarfile.open(DATA / "up42_result_tif.tgz") as tar:
        tar.extractall(tmp_path, filter="data")
    out = tmp_path / "output"
    paths = sorted(str(p) for p in out.rglob("*") if p.is_file())
    (raster, feature), = pair_rasters(paths)  # fmt: skip
    assert raster.name == "7e17f023-a8e3-43bd-aaac-5bbef749c7f4_0-0.tif"
    assert feature is not None
    assert feature["properties"]["up42.data_path"] == raster.relative_to(out).as_posix()
    assert layer_name(raster, feature, "uid") == f"21ac03b7-1b1e-43c8-b385-56fde04610aa ({raster.name})"
    assert layer_name(raster, feature, "missing") == raster.name


def test_pairing_on_the_sample_and_by_order_without_data_paths(sample: Sample, tmp_path: Path) -> None:
    out = sample.task_dir(sample.task_ids[0]) / "output"
    pairs = pair_rasters([str(p) for p in out.rglob("*") if p.is_file()])
    assert [(r.name, f["properties"]["uid"]) for r, f in pairs] == [("landsat7_etm_rgb.tif", "scene")]
    (tmp_path / "a.tif").write_bytes(b"")
    (tmp_path / "b.tif").write_bytes(b"")
    plain = [{"type": "Feature", "geometry": None, "properties": {"uid": u}} for u in ("first", "second")]
    (tmp_path / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": plain}))
    pairs = pair_rasters([tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "data.json"])
    assert [f["properties"]["uid"] for _, f in pairs] == ["first", "second"]
    assert pair_rasters([tmp_path / "a.tif"]) == [(tmp_path / "a.tif", None)]


def test_the_view_fits_the_bounds_into_the_map() -> None:
    (lat, lon), zoom = fit_view((13.27, 52.43, 13.57, 52.61), 1000, 600)
    assert lat == pytest.approx(52.52, abs=0.01) and lon == pytest.approx(13.42)
    assert zoom == 11  # 0.3 degrees across: 1000 px hold it at zoom 11, not 12
    _, world = fit_view((-180, -85, 180, 85), 1000, 600)
    assert world == 1
    _, point = fit_view((13.4, 52.5, 13.4, 52.5))
    assert point == 18
    with pytest.raises(ValueError, match="west <= east"):
        fit_view((14, 52, 13, 53))


def test_popups_escape_every_key_and_value() -> None:
    text = popup_html({"<b>key</b>": "<script>alert(1)</script>", "nested": {"a": "<i>"}, "n": 3})
    assert "<script>" not in text and "<b>key" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;key&lt;/b&gt;" in text
    assert ">n</th>" in text and ">3</td>" in text
    cut = popup_html({"long": "x" * 1000})
    assert "x" * 300 + "…" in cut and "x" * 301 not in cut  # long values are cut


def test_the_aoi_in_every_accepted_form(tmp_path: Path) -> None:
    square = box(13.3, 52.4, 13.5, 52.6)
    from_geometry = aoi_geojson(square)
    assert from_geometry["features"][0]["geometry"]["type"] == "Polygon"
    frame = gpd.GeoDataFrame({"name": ["x"]}, geometry=[square], crs=4326).to_crs(32633)
    from_frame = aoi_geojson(frame)
    west, south, east, north = gpd.GeoDataFrame.from_features(from_frame["features"]).total_bounds
    assert (west, south, east, north) == pytest.approx((13.3, 52.4, 13.5, 52.6), abs=1e-6)  # back in EPSG:4326
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps(from_geometry))
    assert aoi_geojson(path) == from_geometry == aoi_geojson(str(path))
    assert aoi_geojson(Point(1, 2).__geo_interface__)["features"][0]["geometry"]["type"] == "Point"
    assert aoi_geojson({"type": "Feature", "geometry": None, "properties": {}})["type"] == "FeatureCollection"
    for bad in (42, "missing.geojson", {"type": "Nope"}, [1, 2]):
        with pytest.raises(ValueError, match="aoi must be a GeoDataFrame, a path to a GeoJSON file"):
            aoi_geojson(bad)


def test_large_feature_sets_are_thinned_and_say_so() -> None:
    features = [{"type": "Feature", "properties": {"i": i}, "geometry": None} for i in range(12_000)]
    kept, note = thin_features(features)
    assert len(kept) == 5000 and kept[0]["properties"]["i"] == 0
    assert "showing 5,000 of 12,000 features" in note
    assert thin_features(features[:10]) == (features[:10], "")
