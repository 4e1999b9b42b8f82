"""HistogramRange: a small histogram of a raster's shown bands, with two handles that set the stretch.

The counts come from the kernel (``RasterSource.histogram``: the statistics' decimated read); the
front end (``js/histogram.js``) draws them on one value axis, marks each band's current stretch,
and lets the user drag the two handles of the range. Only the end of a drag is sent, so the map
redraws once per drag:

- browser → kernel: ``{"kind": "range", "low", "high"}``.

``LayerControls`` turns that into a custom range on the raster's state, which every map of the
view draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from .plaintext import WHERE, PlainTextRepr
from .stretch import Histogram

# The message kinds of the histogram. The front end names them in js/histogram.js (KINDS);
# tests/unit/test_histogram.py checks that both sides agree.
KINDS = {"RANGE": "range"}

ESM = Path(__file__).parent / "js" / "histogram.js"
RGB_COLOURS = ("#d62728", "#2ca02c", "#1f77b4")  # red, green, blue bands
SINGLE_COLOUR = "#555555"

RangeHandler = Callable[[float, float], None]


class HistogramRange(PlainTextRepr, anywidget.AnyWidget):
    """The histograms of a raster's shown bands and the stretch range's two handles."""

    _esm = ESM
    bands = t.List(t.Dict(), default_value=[]).tag(sync=True)  # [{"label", "colour", "counts"}]
    axis = t.List(t.Float(), default_value=[0.0, 1.0]).tag(sync=True)  # the value axis: low, high
    ranges = t.List(t.List(t.Float()), default_value=[]).tag(sync=True)  # each band's stretch now
    integer = t.Bool(False).tag(sync=True)  # whether the handles snap to whole values

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handlers: list[RangeHandler] = []
        self.on_msg(self._on_msg)

    def show(
        self,
        histogram: Histogram,
        labels: Sequence[str],
        ranges: Sequence[tuple[float, float]] | None,
        *,
        integer: bool = False,
    ) -> None:
        """Draw ``histogram`` (one entry per label) with each band's stretch ``ranges`` marked."""
        colours = RGB_COLOURS if len(labels) == 3 else (SINGLE_COLOUR,) * len(labels)
        low = min([histogram.low, *(r[0] for r in ranges or [])])
        high = max([histogram.high, *(r[1] for r in ranges or [])])
        with self.hold_sync():
            self.bands = [
                {"label": label, "colour": colour, "counts": counts}
                for label, colour, counts in zip(labels, colours, histogram.counts, strict=True)
            ]
            self.axis = [float(low), float(high)]
            self.ranges = [[float(a), float(b)] for a, b in ranges or []]
            self.integer = integer

    def on_range(self, handler: RangeHandler) -> None:
        """Call ``handler(low, high)`` when the user lets go of a handle."""
        self._handlers.append(handler)

    def _on_msg(self, _: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        if not isinstance(content, dict) or content.get("kind") != KINDS["RANGE"]:
            return
        try:
            low, high = float(content["low"]), float(content["high"])
        except (KeyError, TypeError, ValueError):
            return
        if not low < high:
            return
        for handler in list(self._handlers):
            handler(low, high)

    def plain_text(self) -> str:
        """The bands and their ranges, as text."""
        shown = ", ".join(b.get("label", "?") for b in self.bands) or "no bands"
        return f"HistogramRange of {shown}, ranges {self.ranges}\n{WHERE}"
