"""ResultsView without any widget: what it holds, how its states change, who closes its rasters,
and the saved page drawn from it alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobtask_widgets.errors import RasterError
from jobtask_widgets.savehtml import save_map
from jobtask_widgets.view import ResultsView
from tests import rasters


def results(folder: Path, *, with_no_crs: bool = False) -> list[Path]:
    """Two rasters and a data.json that names one of them, as a download leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    a = rasters.halves_rgb(folder / "a.tif", size=200)
    b = rasters.reflectance(folder / "b.tif")
    data = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.41, 52.5]},
         "properties": {"uid": "scene-b", "up42.data_path": "b.tif", "note": "<b>bold</b>"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.42, 52.51]}, "properties": {"uid": "x"}},
    ]}  # fmt: skip
    (folder / "data.json").write_text(json.dumps(data))
    paths = [a, b, folder / "data.json"]
    if with_no_crs:
        paths.insert(1, rasters.no_crs(folder / "n.tif"))
    return paths


def test_the_view_holds_paired_rasters_labelled_features_and_a_fitted_view(tmp_path: Path) -> None:
    with ResultsView.from_files(results(tmp_path), aoi={"type": "Point", "coordinates": [13.4, 52.5]}) as view:
        assert list(view.rasters) == ["a.tif", "scene-b (b.tif)"]
        assert view.rasters["scene-b (b.tif)"].feature["properties"]["uid"] == "scene-b"
        assert view.rasters["a.tif"].bands == (1, 2, 3) and view.rasters["scene-b (b.tif)"].bands == (3, 2, 1)
        labels = [f["properties"]["_label"] for f in view.features.data["features"]]
        assert labels == ["scene-b", "x"]
        assert list(view.toggles) == ["a.tif", "scene-b (b.tif)", "features", "AOI"]
        (lat, lon), zoom = view.center, view.zoom
        assert 52.4 < lat < 52.6 and 13.3 < lon < 13.5 and zoom >= 10
        assert "2 rasters" in repr(view) and "bands=(3, 2, 1)" in repr(view.rasters["scene-b (b.tif)"])
        sources = [s.source for s in view.rasters.values()]
    assert all(source.closed for source in sources)  # the view closed what it opened


def test_states_change_in_one_place_and_observers_see_it(tmp_path: Path) -> None:
    with ResultsView.from_files(results(tmp_path)) as view:
        state = view.rasters["scene-b (b.tif)"]
        seen: list[object] = []
        state.observe(lambda change: seen.append(change["new"]), "style")
        assert state.set_style(bands=[4], colormap="magma") is True
        assert state.bands == (4,) and state.colour_bar() is not None and state.colour_bar().band == 4
        assert state.set_style(bands=[4]) is False  # nothing changed: no redraw
        state.set_style(vmin=100, vmax=900)
        assert state.ranges() == [(100.0, 900.0)]
        state.set_style(colormap="viridis")  # keeps the custom range
        assert (state.style.vmin, state.style.vmax) == (100.0, 900.0)
        state.set_style(stretch="minmax")  # a stretch drops it
        assert state.style.vmin is None and state.style.stretch == "minmax"
        assert len(seen) == 4
        with pytest.raises(ValueError, match=r"b\.tif has bands 1 \(blue\)"):
            state.set_style(bands=[7])
        with pytest.raises(ValueError, match="vmin < vmax"):
            state.set_style(vmin=5, vmax=1)
        state.visible, state.opacity = False, 0.3
        assert (view.toggles["scene-b (b.tif)"].visible, state.opacity) == (False, 0.3)


def test_a_raster_that_cannot_be_mapped_closes_the_ones_already_opened(tmp_path: Path) -> None:
    import gc

    from jobtask_widgets.raster import RasterSource

    with pytest.raises(RasterError, match=r"n\.tif has no coordinate reference system") as failed:
        ResultsView.from_files(results(tmp_path, with_no_crs=True))
    # the sources the view opened are still reachable from the traceback's frames
    opened = [o for o in gc.get_objects() if isinstance(o, RasterSource) and o.path.parent == tmp_path]
    assert sorted(o.name for o in opened) == ["a.tif", "n.tif"] and all(o.closed for o in opened)
    del failed


def test_bands_are_checked_for_every_raster_before_anything_is_kept(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"band 4 is not in the file: a\.tif has bands"):
        ResultsView.from_files(results(tmp_path), bands=[4])


def test_the_saved_page_draws_the_view_as_it_is_now(tmp_path: Path) -> None:
    with ResultsView.from_files(results(tmp_path / "r")) as view:
        view.rasters["a.tif"].visible = False
        view.rasters["scene-b (b.tif)"].opacity = 0.5
        page = save_map(view, tmp_path / "out", title="<script>x</script>").read_text()
    data = json.loads(re.search(r'id="jobtask-data">(.*?)</script>', page, re.S).group(1))
    assert [r["name"] for r in data["rasters"]] == ["scene-b (b.tif)"] and data["rasters"][0]["opacity"] == 0.5
    assert data["styles"]["point"]["weight"] == 2 and data["styles"]["popup"]["minWidth"] == 280
    popup = data["features"]["features"][0]["properties"]["_popup"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in popup and "<b>bold</b>" not in popup
    assert "<title>&lt;script&gt;x&lt;/script&gt;</title>" in page


def test_an_empty_collection_has_no_features_and_the_view_fits_every_feature(tmp_path: Path) -> None:
    paths = results(tmp_path)
    (tmp_path / "data.json").write_text('{"type": "FeatureCollection", "features": []}')
    with ResultsView.from_files(paths) as view:
        assert view.features is None and "features" not in view.toggles
    far = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.0 + i / 1000, 52.0]},
            "properties": {"uid": str(i)}} for i in range(6001)]  # fmt: skip
    far[-1]["geometry"]["coordinates"] = [20.0, 60.0]  # thinned out, but the view must still hold it
    (tmp_path / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": far}))
    with ResultsView.from_files(paths, show_images=False) as view:
        assert len(view.features.data["features"]) == 5000 and far[-1] not in view.features.data["features"]
        (lat, lon), zoom = view.center, view.zoom
        assert 55 < lat < 57 and 16 < lon < 17 and zoom <= 5


def test_the_maps_notifiers_on_the_view_go_when_the_map_is_closed(tmp_path: Path) -> None:
    from jobtask_widgets.mapwidget import ResultsMap

    with ResultsView.from_files(results(tmp_path), aoi={"type": "Point", "coordinates": [13.4, 52.5]}) as view:
        states = [*view.rasters.values(), view.features, view.aoi]

        def notifiers() -> list[int]:
            return [len(s._trait_notifiers.get(name, {}).get("change", [])) for s in states for name in s.trait_names()]

        before = notifiers()
        m = ResultsMap(view)
        assert notifiers() != before
        m.close()
        assert notifiers() == before  # nothing of the closed map is left listening on the view
        assert not any(s.source.closed for s in view.rasters.values())  # the view was not the map's to close
