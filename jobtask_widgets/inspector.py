"""PixelInspector: the map's inspect control, reading every visible raster's values where the user clicks.

The front end (the inspector part of ``js/tilelayer.js``, which also draws the tile layers and so
shares their way of following a map's views) adds a button to the corner of every view of an
``ipyleaflet.Map``. While it is on, the map's cursor is a crosshair and a click opens a popup that
asks the kernel for the values there:

- browser → kernel: ``{"kind": "values", "id", "lat", "lon"}``;
- kernel → browser: ``{"kind": "values", "id", "lat", "lon", "layers": [{"name", "bands": [[band,
  text], ...]}]}`` (the text is ``nodata`` where masked; a scaled value names its stored value),
  or ``{"kind": "values-error", "id", "message"}``.

Values are read in a worker thread (rio-tiler's point read, in ``RasterSource.values_at``), so the
kernel's main thread never waits. The popup is built from text nodes: no value reaches the page as
HTML. While the control is on, clicks pass through the map's features to the map (the features
show, but open no popup); when it is off, the feature popups work as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anywidget
import ipyleaflet
import traitlets as t
from ipywidgets import widget_serialization

from .errors import JobTaskError
from .pixels import PixelValues, format_value
from .plaintext import WHERE, PlainTextRepr
from .tilelayer import ESM

# The message kinds of the inspect protocol. The front end names them in js/tilelayer.js
# (INSPECT_KINDS); tests/unit/test_inspector.py checks that both sides agree.
KINDS = {"VALUES": "values", "ERROR": "values-error"}

ValuesAt = Callable[[float, float], Mapping[str, PixelValues]]


class PixelInspector(PlainTextRepr, anywidget.AnyWidget):
    """The inspect control of a map: click to read pixel values.

    Args:
        map: The ``ipyleaflet.Map`` whose every view gets the control.
        values_at: ``values_at(lat, lon)`` → ``{layer name: PixelValues}`` for the rasters shown
            (``ResultsMap.values_at``).
        active: Whether the control starts on.
    """

    _esm = ESM
    role = t.Unicode("inspector", read_only=True).tag(sync=True)
    map = t.Instance(ipyleaflet.Map, allow_none=True).tag(sync=True, **widget_serialization)
    active = t.Bool(False).tag(sync=True)
    attached = t.Int(0, read_only=True).tag(sync=True)

    def __init__(self, map: ipyleaflet.Map, values_at: ValuesAt, *, active: bool = False) -> None:
        self._values_at = values_at
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobtask-inspect")
        super().__init__(map=map, active=active)
        self.on_msg(self._on_msg)

    def _on_msg(self, _: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        if isinstance(content, dict) and content.get("kind") == KINDS["VALUES"]:
            self._pool.submit(self._answer, content)

    def _answer(self, content: dict[str, Any]) -> None:
        query_id = str(content.get("id"))
        try:
            lat, lon = float(content["lat"]), float(content["lon"])
        except (KeyError, TypeError, ValueError):
            self.send(
                {"kind": KINDS["ERROR"], "id": query_id, "message": f"a values query needs lat and lon: {content!r}"}
            )
            return
        try:
            layers = self._values_at(lat, lon)
        except (JobTaskError, ValueError) as exc:
            self.send({"kind": KINDS["ERROR"], "id": query_id, "message": str(exc)})
            return
        except Exception as exc:  # this thread's boundary: the popup says so rather than wait forever
            self.send({"kind": KINDS["ERROR"], "id": query_id, "message": f"{type(exc).__name__}: {exc}"})
            raise
        self.send({"kind": KINDS["VALUES"], "id": query_id, "lat": lat, "lon": lon, "layers": popup_rows(layers)})

    def plain_text(self) -> str:
        """What the control is, as text."""
        return f"PixelInspector ({'on' if self.active else 'off'}): click the map to read pixel values\n{WHERE}"

    def close(self) -> None:
        """Stop answering and close."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        super().close()


def popup_rows(layers: Mapping[str, PixelValues]) -> list[dict[str, Any]]:
    """What the popup lists: each layer's name and its bands' values as text."""
    rows = []
    for name, values in layers.items():
        bands = []
        for band, value in values.items():
            text = format_value(value)
            if value is not None and values.raw.get(band) != value:
                text += f" (stored {format_value(values.raw[band])})"
            bands.append([band, text])
        rows.append({"name": name, "bands": bands, "inside": values.inside})
    return rows
