"""JobTask.map_results in the kernel: layers, pairing, features with escaped popups, the AOI,
the fitted view, argument errors, and the static overlay where the tile layer cannot attach."""

from __future__ import annotations

import json
import time
from pathlib import Path

import ipyleaflet
import pytest
from shapely.geometry import box

import jobtask_widgets as jw
from jobtask_widgets import mapwidget
from jobtask_widgets.sample import Sample
from tests.helpers import Api, login


@pytest.fixture
def task(api: Api, sample: Sample, tmp_path: Path) -> jw.JobTask:
    login(api.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    task.download_results(tmp_path / "results", progress=False)
    return task


def test_map_results_of_local_files_only_needs_a_download(api: Api, sample: Sample) -> None:
    login(api.url, sample)
    with pytest.raises(ValueError, match=r"call download_results\(\) first, or pass remote=True"):
        jw.initialize_jobtask(sample.task_ids[0], sample.job_id).map_results(remote=False)


def test_the_map_holds_the_raster_the_features_and_the_aoi(task: jw.JobTask) -> None:
    aoi = box(-78.2, 24.4, -77.4, 25.0)
    m = task.map_results(aoi=aoi)
    assert isinstance(m, ipyleaflet.Map)
    assert list(m.raster_layers) == ["scene (landsat7_etm_rgb.tif)"]  # paired by up42.data_path
    layer = m.raster_layers["scene (landsat7_etm_rgb.tif)"]
    assert layer.map is m and layer.bands == (1, 2, 3)
    labels = [f["properties"]["_label"] for f in m.feature_layer.data["features"]]
    assert labels == ["scene", "det-001", "det-002", "det-003", "det-004", "det-005"]
    assert m.aoi_layer is not None and m.aoi_layer.style["dashArray"]
    (lat, lon), zoom = m.center, m.zoom
    assert 24.0 < lat < 25.1 and -78.5 < lon < -77.2 and zoom == 8  # fitted in Python
    kinds = {type(c).__name__ for c in m.controls}
    assert {"FullScreenControl", "ScaleControl", "WidgetControl"} <= kinds


def test_popups_are_escaped_tables(task: jw.JobTask) -> None:
    m = task.map_results()
    feature = next(f for f in m.feature_layer.data["features"] if f["properties"]["_label"] == "det-004")
    m.feature_layer._handle_mouse_events(None, {"event": "click", "feature": feature}, [])
    text = m.feature_layer.popup.value
    assert text.startswith("<b>det-004</b><table") and ">style<" not in text
    assert "Check &lt;N/E&gt; edge &amp; haze" in text and "<N/E>" not in text


def test_arguments(task: jw.JobTask) -> None:
    assert task.map_results(show_images=False).raster_layers == {}
    blank = ipyleaflet.TileLayer(url="data:image/png;base64,", name="blank")
    assert blank in task.map_results(basemap=blank).layers
    assert task.map_results(show_features=False).feature_layer is None
    single = task.map_results(bands=[2])
    assert next(iter(single.raster_layers.values())).bands == (2,)
    assert any("jobtask-colour-bar" in getattr(c.widget, "value", "") for c in single.controls
               if isinstance(c, ipyleaflet.WidgetControl))  # fmt: skip
    with pytest.raises(ValueError, match=r"band 5 is not in the file: landsat7_etm_rgb\.tif has bands 1 \(red\)"):
        task.map_results(bands=[5])
    with pytest.raises(ValueError, match="aoi must be a GeoDataFrame"):
        task.map_results(aoi=42)
    with pytest.warns(UserWarning, match="no property 'name'"):
        named = task.map_results(name_column="name")
    assert "labelled by their index" in named.note
    assert [f["properties"]["_label"] for f in named.feature_layer.data["features"]][:2] == ["0", "1"]


def test_many_features_are_thinned_and_the_map_says_so(task: jw.JobTask, tmp_path: Path) -> None:
    data = Path(next(p for p in task.results if p.endswith("data.json")))
    collection = json.loads(data.read_text())
    point = collection["features"][4]
    collection["features"] += [point] * 6000
    data.write_text(json.dumps(collection))
    m = task.map_results(show_images=False)
    assert len(m.feature_layer.data["features"]) == 5000
    assert "showing 5,000 of 6,006 features" in m.note


def test_a_raster_that_cannot_attach_is_shown_as_a_static_overlay(
    task: jw.JobTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mapwidget, "FALLBACK_AFTER", 0.05)
    m = task.map_results()
    layer = next(iter(m.raster_layers.values()))
    west, south, east, north = layer.source.bounds_4326
    m.set_trait("pixel_bounds", ((1000, 2000), (1640, 2480)))  # a 640 x 480 px view
    m.set_trait("bounds", ((south, west), (north, east)))  # what the front end reports once shown
    deadline = time.monotonic() + 20
    while not m.static_overlays and time.monotonic() < deadline:
        time.sleep(0.05)
    (overlay,) = m.static_overlays.values()
    assert overlay in m.layers and overlay.url.startswith("data:image/png;base64,")
    import base64
    import io

    from PIL import Image

    png = Image.open(io.BytesIO(base64.b64decode(overlay.url.split(",", 1)[1])))
    assert png.size == (640, 480)  # rendered at the screen's size
    assert [tuple(c) for c in overlay.bounds] == [tuple(c) for c in m.bounds]
    layer.set_trait("attached", 1)  # the tile layer attached after all
    assert m.static_overlays == {} and overlay not in m.layers


def test_a_blocks_geojson_is_shown_instead_of_data_json(task: jw.JobTask) -> None:
    folder = Path(task.results[0]).parent.parent
    own = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-77.8, 24.6]}, "properties": {"uid": "mine"}}
    ]}  # fmt: skip
    (folder / "detections.geojson").write_text(json.dumps(own))
    task.results = [*task.results, str(folder / "detections.geojson")]
    m = task.map_results()
    assert [f["properties"]["_label"] for f in m.feature_layer.data["features"]] == ["mine"]
    assert list(m.raster_layers) == ["scene (landsat7_etm_rgb.tif)"]  # still paired through data.json


def test_properties_named_like_ipyleaflets_own_keys_stay_data(task: jw.JobTask) -> None:
    data = Path(next(p for p in task.results if p.endswith("data.json")))
    collection = json.loads(data.read_text())
    collection["features"][4]["properties"].update(style="bold; not a style", hover_style=3, popup="<i>x</i>")
    data.write_text(json.dumps(collection))
    m = task.map_results()
    drawn = next(f for f in m.feature_layer.data["features"] if f["properties"]["_label"] == "det-004")
    # ipyleaflet gets no property of the data (it puts its own "style" dict on what it draws)
    assert set(drawn["properties"]) <= {"_label", "_index", "style"} and isinstance(
        drawn["properties"].get("style", {}), dict
    )
    m.feature_layer._handle_mouse_events(None, {"event": "click", "feature": drawn}, [])
    text = m.feature_layer.popup.value
    assert ">style</th><td" in text and "bold; not a style" in text and "&lt;i&gt;x&lt;/i&gt;" in text
