"""PixelInspector in the kernel: the values protocol driven message by message over real rasters,
its errors, the popup's rows, and the message kinds agreeing with the front end (js/tilelayer.js,
whose own tests run under node in test_tilelayer)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipyleaflet
import numpy as np
import pytest
import rasterio
import rasterio.warp

from jobtask_widgets import inspector
from jobtask_widgets.errors import RasterError
from jobtask_widgets.inspector import KINDS, PixelInspector, ValuesAt, popup_rows
from jobtask_widgets.pixels import PixelValues, pixel_values
from jobtask_widgets.raster import RasterSource
from jobtask_widgets.tilelayer import ESM
from jobtask_widgets.view import ResultsView
from tests import rasters

NODATA = 2005  # the grid's pixel (row 2, column 5) is its nodata


class RecordingInspector(PixelInspector):
    """The inspector with its outgoing messages recorded (there is no front end in a unit test)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.answers: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        super().__init__(*args, **kwargs)

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:  # type: ignore[override]
        with self.arrived:
            self.answers.append(content)
            self.arrived.notify_all()

    def wait(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.answers) >= count, timeout), self.answers
            return list(self.answers)

    def settle(self) -> list[dict[str, Any]]:
        """Every answer the inspector will ever send (its worker has ended)."""
        self._pool.shutdown(wait=True)
        return list(self.answers)


def pixel_centre(path: Path, row: int, col: int) -> tuple[float, float]:
    """The (lat, lon) of the centre of pixel (row, col)."""
    with rasterio.open(path) as ds:
        x, y = ds.xy(row, col)
        (lon,), (lat,) = rasterio.warp.transform(ds.crs, "EPSG:4326", [x], [y])
    return lat, lon


def query(query_id: str, lat: float, lon: float) -> dict[str, Any]:
    return {"kind": KINDS["VALUES"], "id": query_id, "lat": lat, "lon": lon}


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    return rasters.grid(tmp_path / "g.tif", "uint32", nodata=NODATA)


@pytest.fixture
def view(grid: Path) -> Iterator[ResultsView]:
    with ResultsView.from_files([grid]) as opened:
        yield opened


def make_inspector(values_at: ValuesAt) -> RecordingInspector:
    return RecordingInspector(ipyleaflet.Map(), values_at)


@pytest.fixture
def inspect(view: ResultsView) -> Iterator[RecordingInspector]:
    created = make_inspector(view.values_at)
    yield created
    created.close()


def test_the_message_kinds_agree_with_the_front_end() -> None:
    text = ESM.read_text(encoding="utf-8")
    block = re.search(r"export const INSPECT_KINDS = \{([^}]*)\}", text)
    assert block is not None
    js_kinds = dict(re.findall(r'(\w+):\s*"([^"]+)"', block.group(1)))
    assert js_kinds == KINDS == {"VALUES": "values", "ERROR": "values-error"}
    # each side's comment names the other's file
    assert "jobtask_widgets/inspector.py" in text
    assert "js/tilelayer.js" in Path(inspector.__file__).read_text(encoding="utf-8")
    assert "role" in PixelInspector.class_trait_names(sync=True)  # what the shared module dispatches on


def test_answers_carry_each_pixels_value_where_the_user_clicked(grid: Path, inspect: RecordingInspector) -> None:
    pixels = [(0, 0), (7, 13), (59, 79), (31, 42)]
    for row, col in pixels:
        inspect._on_msg(None, query(f"{row}-{col}", *pixel_centre(grid, row, col)), [])
    answers = {answer["id"]: answer for answer in inspect.wait(len(pixels))}
    assert sorted(answers) == sorted(f"{row}-{col}" for row, col in pixels)
    for row, col in pixels:
        lat, lon = pixel_centre(grid, row, col)
        assert answers[f"{row}-{col}"] == {
            "kind": "values",
            "id": f"{row}-{col}",
            "lat": lat,
            "lon": lon,
            "layers": [{"name": "g.tif", "bands": [["band 1", str(row * 1000 + col)]], "inside": True}],
        }


def test_nodata_outside_and_hidden_rasters(grid: Path, view: ResultsView, inspect: RecordingInspector) -> None:
    inspect._on_msg(None, query("nodata", *pixel_centre(grid, 2, 5)), [])
    inspect._on_msg(None, query("outside", 10.0, 100.0), [])
    answers = {answer["id"]: answer for answer in inspect.wait(2)}
    assert answers["nodata"]["layers"] == [{"name": "g.tif", "bands": [["band 1", "nodata"]], "inside": True}]
    assert answers["outside"]["kind"] == "values"
    assert answers["outside"]["layers"] == [{"name": "g.tif", "bands": [["band 1", "nodata"]], "inside": False}]
    view.rasters["g.tif"].visible = False  # a hidden raster is not read
    inspect._on_msg(None, query("hidden", *pixel_centre(grid, 7, 13)), [])
    hidden = inspect.wait(3)[2]
    assert hidden["id"] == "hidden" and hidden["kind"] == "values" and hidden["layers"] == []


def test_a_scaled_raster_names_the_stored_value(tmp_path: Path) -> None:
    path = rasters.grid(tmp_path / "s.tif", "uint16")
    with rasterio.open(path, "r+") as ds:
        ds.scales, ds.offsets = (0.5,), (10.0,)
    with ResultsView.from_files([path]) as view:
        inspect = make_inspector(view.values_at)
        try:
            inspect._on_msg(None, query("s", *pixel_centre(path, 3, 9)), [])
            (answer,) = inspect.wait(1)
        finally:
            inspect.close()
    assert answer["layers"] == [{"name": "s.tif", "bands": [["band 1", "1514.5 (stored 3009)"]], "inside": True}]


def test_a_query_without_lat_and_lon_gets_an_error_answer(inspect: RecordingInspector) -> None:
    inspect._on_msg(None, {"kind": "values", "id": "no-lat", "lon": 13.4}, [])
    inspect._on_msg(None, {"kind": "values", "id": "text", "lat": "north", "lon": 13.4}, [])
    inspect._on_msg(None, {"kind": "values", "id": 7, "lat": None, "lon": 13.4}, [])
    answers = {answer["id"]: answer for answer in inspect.wait(3)}
    assert sorted(answers) == ["7", "no-lat", "text"]  # the id comes back as text
    for answer in answers.values():
        assert answer["kind"] == "values-error"
        assert answer["message"].startswith("a values query needs lat and lon: ")
        assert set(answer) == {"kind", "id", "message"}
    assert "'id': 'no-lat'" in answers["no-lat"]["message"]


def test_other_kinds_and_non_dicts_get_no_answer(inspect: RecordingInspector) -> None:
    inspect._on_msg(None, {"kind": "tile", "id": "t", "z": 1, "x": 0, "y": 0, "revision": 0}, [])
    inspect._on_msg(None, {"kind": "values-error", "id": "e", "message": "echo"}, [])
    inspect._on_msg(None, "not a dict", [])  # type: ignore[arg-type]
    inspect._on_msg(None, {"kind": "values", "id": "real", "lat": 10.0, "lon": 100.0}, [])
    assert [answer["id"] for answer in inspect.settle()] == ["real"]


def test_a_raster_that_cannot_be_read_gets_an_error_answer_with_its_message(tmp_path: Path) -> None:
    source = RasterSource(rasters.damaged_pixels(tmp_path / "d.tif"))
    west, south, east, north = source.bounds_4326
    lat, lon = (south + north) / 2, (west + east) / 2
    with pytest.raises(RasterError, match="the pixel value cannot be read") as failed:
        source.values_at(lon, lat)
    inspect = make_inspector(lambda la, lo: {"d.tif": source.values_at(lo, la)})
    try:
        inspect._on_msg(None, query("d", lat, lon), [])
        (answer,) = inspect.wait(1)
    finally:
        inspect.close()
        source.close()
    assert answer == {"kind": "values-error", "id": "d", "message": str(failed.value)}
    assert "d.tif" in answer["message"]


def test_a_closed_view_and_a_value_error_answer_as_errors(grid: Path) -> None:
    view = ResultsView.from_files([grid])
    view.close()
    closed = make_inspector(view.values_at)

    def refuse(lat: float, lon: float) -> dict[str, PixelValues]:
        raise ValueError(f"no values at {lat}, {lon}")

    refusing = make_inspector(refuse)
    try:
        closed._on_msg(None, query("c", 52.5, 13.4), [])
        refusing._on_msg(None, query("r", 1.5, 2.5), [])
        (from_closed,) = closed.wait(1)
        (from_refusing,) = refusing.wait(1)
    finally:
        closed.close()
        refusing.close()
    assert from_closed["kind"] == "values-error" and from_closed["id"] == "c"
    assert from_closed["message"].endswith("g.tif: the raster source is closed")
    assert from_refusing == {"kind": "values-error", "id": "r", "message": "no values at 1.5, 2.5"}


def test_answers_come_from_the_worker_thread_not_the_caller(view: ResultsView) -> None:
    release = threading.Event()
    callers: list[str] = []

    def slow(lat: float, lon: float) -> dict[str, PixelValues]:
        callers.append(threading.current_thread().name)
        assert release.wait(30)
        return view.values_at(lat, lon)

    inspect = make_inspector(slow)
    try:
        inspect._on_msg(None, query("slow", 10.0, 100.0), [])  # returns while the read waits
        assert inspect.answers == []
        release.set()
        (answer,) = inspect.wait(1)
    finally:
        inspect.close()
    assert answer["id"] == "slow" and answer["kind"] == "values"
    assert callers and callers[0].startswith("jobtask-inspect")


def test_popup_rows_show_nodata_and_stored_values() -> None:
    scaled = pixel_values(
        ["red", "nir", "mask"],
        np.ma.MaskedArray(np.array([15, 200, 0], dtype="uint16"), mask=[False, False, True]),
        [0.1, 1.0, 0.1],
        [0.0, 0.0, 0.0],
        lon=13.4,
        lat=52.5,
    )
    plain = PixelValues({"band 1": 2.25, "band 2": None}, {"band 1": 2.25, "band 2": None}, lon=0, lat=0, inside=True)
    outside = pixel_values(["band 1"], None, [1.0], [0.0], lon=100.0, lat=10.0)
    rows = popup_rows({"a.tif": scaled, "b.tif": plain, "c.tif": outside})
    assert rows == [
        {"name": "a.tif", "bands": [["red", "1.5 (stored 15)"], ["nir", "200"], ["mask", "nodata"]], "inside": True},
        {"name": "b.tif", "bands": [["band 1", "2.25"], ["band 2", "nodata"]], "inside": True},
        {"name": "c.tif", "bands": [["band 1", "nodata"]], "inside": False},
    ]
    assert popup_rows({}) == []


def test_the_text_repr_says_whether_it_is_on(view: ResultsView) -> None:
    inspect = RecordingInspector(ipyleaflet.Map(), view.values_at, active=True)
    try:
        assert repr(inspect).startswith("PixelInspector (on): click the map")
        inspect.active = False
        assert repr(inspect).startswith("PixelInspector (off)")
        assert inspect.role == "inspector"
    finally:
        inspect.close()
