"""The histogram of a raster's shown bands: its maths (stretch.histogram), the HistogramRange widget,
LayerControls turning a drag's end into a custom stretch on a real view, and the message kinds
agreeing with the front end (js/histogram.js, whose own tests run under node in test_tilelayer)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipyleaflet
import numpy as np
import pytest

from jobtask_widgets import histogram as histogram_module
from jobtask_widgets.histogram import ESM, KINDS, RGB_COLOURS, SINGLE_COLOUR, HistogramRange
from jobtask_widgets.layercontrols import LayerControls
from jobtask_widgets.stretch import Histogram, histogram
from jobtask_widgets.tilelayer import RasterTileLayer
from jobtask_widgets.view import RasterState, ResultsView
from tests import rasters


def test_the_message_kinds_agree_with_the_front_end() -> None:
    text = ESM.read_text(encoding="utf-8")
    block = re.search(r"export const KINDS = \{([^}]*)\}", text)
    assert block is not None
    js_kinds = dict(re.findall(r'(\w+):\s*"([^"]+)"', block.group(1)))
    assert js_kinds == KINDS == {"RANGE": "range"}
    # each side's comment names the other's file
    assert "jobtask_widgets/histogram.py" in text
    assert "js/histogram.js" in Path(histogram_module.__file__).read_text(encoding="utf-8")


# -- stretch.histogram ---------------------------------------------------------------------------------


def test_counts_cover_the_valid_pixels_on_one_axis_from_min_to_max() -> None:
    data = np.array(
        [
            [[0.0, 1.0, 2.0], [3.0, 4.0, np.nan]],  # NaN left out
            [[5.0, 6.0, 7.0], [-99.0, 9.0, np.inf]],  # -99 is nodata (masked), inf left out
        ]
    )
    array = np.ma.masked_equal(data, -99.0)
    result = histogram(array, bins=9)
    assert isinstance(result, Histogram)
    assert (result.low, result.high) == (0.0, 9.0)  # the smallest and largest valid value of any band
    assert [sum(counts) for counts in result.counts] == [5, 4]
    assert all(len(counts) == 9 for counts in result.counts)
    assert result.counts[0] == [1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert result.counts[1] == [0, 0, 0, 0, 0, 1, 1, 1, 1]  # 9 falls in the last bin, edge included
    assert all(isinstance(count, int) for counts in result.counts for count in counts)


def test_a_band_without_valid_pixels_counts_zeros() -> None:
    data = np.ma.MaskedArray(np.arange(2 * 4 * 4, dtype="uint16").reshape(2, 4, 4), mask=False)
    data[1] = np.ma.masked
    result = histogram(data, bins=4)
    assert (result.low, result.high) == (0.0, 15.0)  # only band 1's values make the axis
    assert result.counts == [[4, 4, 4, 4], [0, 0, 0, 0]]


def test_an_array_without_valid_pixels_and_a_constant_one() -> None:
    empty = histogram(np.ma.masked_all((1, 3, 3), dtype="float32"), bins=2)
    assert (empty.low, empty.high, empty.counts) == (0.0, 1.0, [[0, 0]])
    constant = histogram(np.ma.MaskedArray(np.full((1, 2, 5), 7, dtype="uint8")), bins=3)
    assert (constant.low, constant.high) == (7.0, 8.0)
    assert constant.counts == [[10, 0, 0]]
    with pytest.raises(ValueError, match="bins must be at least 1"):
        histogram(np.ma.MaskedArray(np.zeros((1, 2, 2))), bins=0)


# -- HistogramRange ------------------------------------------------------------------------------


def test_show_colours_three_bands_as_rgb_and_one_in_grey() -> None:
    widget = HistogramRange()
    try:
        rgb = Histogram(10.0, 20.0, [[1, 2], [3, 4], [5, 6]])
        widget.show(rgb, ["red", "green", "blue"], [(11.0, 19.0), (12.0, 18.0), (13.0, 17.0)], integer=True)
        assert widget.bands == [
            {"label": "red", "colour": RGB_COLOURS[0], "counts": [1, 2]},
            {"label": "green", "colour": RGB_COLOURS[1], "counts": [3, 4]},
            {"label": "blue", "colour": RGB_COLOURS[2], "counts": [5, 6]},
        ]
        assert RGB_COLOURS == ("#d62728", "#2ca02c", "#1f77b4")
        assert widget.axis == [10.0, 20.0]  # the ranges lie inside the histogram's axis
        assert widget.ranges == [[11.0, 19.0], [12.0, 18.0], [13.0, 17.0]]
        assert widget.integer is True
        widget.show(Histogram(0.0, 1.0, [[9, 9, 9]]), ["nir"], [(0.2, 0.8)])
        assert widget.bands == [{"label": "nir", "colour": SINGLE_COLOUR, "counts": [9, 9, 9]}]
        assert SINGLE_COLOUR == "#555555"
        assert (widget.axis, widget.ranges, widget.integer) == ([0.0, 1.0], [[0.2, 0.8]], False)
        assert "HistogramRange of nir, ranges [[0.2, 0.8]]" in repr(widget)
    finally:
        widget.close()


def test_show_widens_the_axis_to_hold_every_range() -> None:
    widget = HistogramRange()
    try:
        widget.show(Histogram(10.0, 20.0, [[1], [1], [1]]), ["r", "g", "b"], [(5.0, 15.0), (12.0, 25.0), (11.0, 14.0)])
        assert widget.axis == [5.0, 25.0]
        widget.show(Histogram(10.0, 20.0, [[1]]), ["band 1"], None)
        assert (widget.axis, widget.ranges) == ([10.0, 20.0], [])
    finally:
        widget.close()


def test_a_range_message_calls_the_handlers_only_when_it_is_a_range() -> None:
    widget = HistogramRange()
    seen: list[tuple[float, float]] = []
    widget.on_range(lambda low, high: seen.append((low, high)))
    try:
        widget._on_msg(None, {"kind": "range", "low": 3, "high": "7.5"}, [])
        for bad in (
            {"kind": "range", "low": 5, "high": 5},  # not low < high
            {"kind": "range", "low": 6, "high": 5},
            {"kind": "range", "low": 1},
            {"kind": "range", "low": "a", "high": 2},
            {"kind": "range", "low": None, "high": 2},
            {"kind": "other", "low": 1, "high": 2},
            "not a dict",
        ):
            widget._on_msg(None, bad, [])  # type: ignore[arg-type]
    finally:
        widget.close()
    assert seen == [(3.0, 7.5)]
    assert all(isinstance(v, float) for v in seen[0])


# -- LayerControls: a drag's end becomes a custom stretch -----------------------------------------


class Drawn:
    """A view of one raster with its controls and a tile layer drawing it; counts style changes."""

    def __init__(self, path: Path) -> None:
        self.view = ResultsView.from_files([path])
        self.controls = LayerControls(self.view)
        self.state: RasterState = self.view.rasters[path.name]
        self.tiles = RasterTileLayer(ipyleaflet.Map(), self.state)
        self.styles: list[Any] = []
        self.state.observe(lambda change: self.styles.append(change["new"]), "style")

    def drag(self, low: Any, high: Any) -> None:
        self.controls.histogram._on_msg(None, {"kind": KINDS["RANGE"], "low": low, "high": high}, [])

    def close(self) -> None:
        self.tiles.close()
        self.controls.close()
        self.view.close()


@pytest.fixture
def drawn(tmp_path: Path) -> Iterator[Drawn]:
    made = Drawn(rasters.reflectance(tmp_path / "r.tif"))  # uint16, shown as RGB bands 3, 2, 1
    yield made
    made.close()


def test_the_histogram_starts_from_the_rasters_auto_stretch(drawn: Drawn) -> None:
    histogram_widget, state = drawn.controls.histogram, drawn.state
    assert histogram_widget.layout.display == ""
    assert [band["label"] for band in histogram_widget.bands] == ["red", "green", "blue"]
    assert [band["colour"] for band in histogram_widget.bands] == list(RGB_COLOURS)
    assert histogram_widget.integer is True  # uint16
    auto = state.ranges()
    assert auto is not None and len(auto) == 3
    assert histogram_widget.ranges == [list(r) for r in auto]
    counts = state.histogram().counts
    assert [band["counts"] for band in histogram_widget.bands] == counts
    low, high = histogram_widget.axis
    assert 300 <= low < 400 and 4900 < high < 5000  # the valid values 300..4999 (nodata 0 left out)
    assert drawn.controls.stretch.value == "auto"


def test_a_drag_end_sets_a_custom_range_redrawn_once(drawn: Drawn) -> None:
    controls, state = drawn.controls, drawn.state
    revision = drawn.tiles.revision
    drawn.drag(1000, 3000)
    assert (state.style.vmin, state.style.vmax) == (1000.0, 3000.0)
    assert state.bands == (3, 2, 1)  # the bands stay
    assert state.ranges() == [(1000.0, 3000.0)] * 3
    assert controls.stretch.value == "custom"
    assert (controls.vmin.value, controls.vmax.value) == (1000.0, 3000.0)
    assert controls._range_box.layout.display == ""
    assert len(drawn.styles) == 1
    assert drawn.tiles.revision == revision + 1
    assert controls.histogram.ranges == [[1000.0, 3000.0]] * 3


def test_a_stretch_drops_the_custom_range_and_the_histogram_follows(drawn: Drawn) -> None:
    controls, state = drawn.controls, drawn.state
    auto = state.ranges()
    drawn.drag(1000, 3000)
    controls.stretch.value = "auto"
    assert state.style.vmin is None and state.style.vmax is None and state.style.stretch == "auto"
    assert state.ranges() == auto
    assert controls.histogram.ranges == [list(r) for r in auto]
    assert controls._range_box.layout.display == "none"
    assert len(drawn.styles) == 2


def test_integer_data_rounds_a_dragged_range_to_whole_values(drawn: Drawn) -> None:
    drawn.drag(1000.4, 1000.6)
    assert (drawn.state.style.vmin, drawn.state.style.vmax) == (1000.0, 1001.0)
    assert len(drawn.styles) == 1


def test_a_range_whose_low_is_not_below_its_high_changes_nothing(drawn: Drawn) -> None:
    controls, state = drawn.controls, drawn.state
    style, revision, ranges = state.style, drawn.tiles.revision, controls.histogram.ranges
    drawn.drag(3000, 3000)
    drawn.drag(3000, 1000)
    assert state.style == style
    assert drawn.styles == [] and drawn.tiles.revision == revision
    assert controls.stretch.value == "auto"
    assert controls.histogram.ranges == ranges


def test_a_float_raster_keeps_the_dragged_range_as_it_is(tmp_path: Path) -> None:
    made = Drawn(rasters.float_nan(tmp_path / "f.tif"))
    try:
        assert made.controls.histogram.integer is False
        assert [band["colour"] for band in made.controls.histogram.bands] == [SINGLE_COLOUR]
        made.drag(0.125, 0.625)
        assert (made.state.style.vmin, made.state.style.vmax) == (0.125, 0.625)
        assert made.controls.histogram.ranges == [[0.125, 0.625]]
        assert len(made.styles) == 1
    finally:
        made.close()


def test_a_paletted_raster_hides_the_histogram(tmp_path: Path) -> None:
    made = Drawn(rasters.paletted(tmp_path / "p.tif"))
    try:
        assert made.state.ranges() is None  # its palette colours it
        assert made.controls.histogram.layout.display == "none"
    finally:
        made.close()
