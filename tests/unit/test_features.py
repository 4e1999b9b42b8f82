"""data.json to GeoDataFrame: the same frame as GeoDataFrame.from_features, fast or exact."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import geopandas as gpd
import pytest
from geopandas.testing import assert_geodataframe_equal

from jobtask_widgets.features import to_geodataframe

DATA = Path(__file__).parent.parent / "data"


def reference(collection: dict) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame.from_features(collection, crs="EPSG:4326")


def test_the_original_platforms_data_json() -> None:
    with tarfile.open(DATA / "up42_result_tif.tgz") as tar:
        data = tar.extractfile("output/data.json").read()  # type: ignore[union-attr]
    frame = to_geodataframe(data)
    assert_geodataframe_equal(frame, reference(json.loads(data)), check_like=True)
    assert frame.columns[0] == "geometry"
    assert "up42.data_path" in frame.columns


def feature(geometry: dict | None, **properties: object) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


POINT = {"type": "Point", "coordinates": [13.4, 52.5]}
SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
CASES = {
    "flat": [feature(POINT, uid="a", n=1, x=0.5, day="2026-06-21"), feature(SQUARE, uid="b", n=2, x=None, extra="e")],
    "missing geometry": [feature(None, uid="a"), feature(POINT, uid="b")],
    "all null column": [feature(POINT, uid="a", note=None), feature(POINT, uid="b", note=None)],
    "nested and lists": [feature(POINT, meta={"k": 1}, tags=["x", "y"]), feature(POINT, meta={"k": 2}, tags=[])],
    "mixed types": [feature(POINT, v=1), feature(POINT, v="one")],
    "big ints": [feature(POINT, v=2**40), feature(POINT, v=3)],
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_frame_as_from_features(case: str) -> None:
    collection = {"type": "FeatureCollection", "features": CASES[case]}
    frame = to_geodataframe(json.dumps(collection).encode())
    assert_geodataframe_equal(frame, reference(collection), check_like=True)
    assert frame.crs.to_epsg() == 4326


def test_an_empty_collection_and_not_a_collection() -> None:
    empty = to_geodataframe(b'{"type": "FeatureCollection", "features": []}')
    assert len(empty) == 0
    with pytest.raises(ValueError, match="not valid JSON"):
        to_geodataframe(b"<html>")
    with pytest.raises(ValueError, match="not a GeoJSON FeatureCollection"):
        to_geodataframe(b'{"type": "Feature"}')
