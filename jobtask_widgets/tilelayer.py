"""RasterTileLayer: raster tiles sent over the widget channel to a Leaflet grid layer.

The front end (``js/tilelayer.js``, a plain ES module shipped in this package) adds a Leaflet
``GridLayer`` to every view of an ``ipyleaflet.Map`` and asks the kernel for each tile:

- browser → kernel: ``{"kind": "tile", "id", "z", "x", "y", "revision"}`` and
  ``{"kind": "cancel", "id"}`` for a tile that left the view;
- kernel → browser: ``{"kind": "tile", "id", "media_type", "revision"}`` with the bytes as the
  message's one buffer, ``{"kind": "tile", "id", "empty": true, "revision"}`` outside the raster,
  or ``{"kind": "error", "id", "message", "revision"}``. A cancelled id gets no answer; the
  front end never draws an answer for an old ``revision``.

Tiles render in a thread pool (one rio-tiler reader per thread) and an LRU cache keeps recent
ones, so the kernel's main thread never waits. No HTTP port, no proxy: it works wherever a
widget works.

The layer draws one ``view.RasterState``: its ``opacity`` and ``visible`` traits are linked to
the state's, and a change of the state's style bumps ``revision``, so whoever changes the state
(``LayerControls``, code) redraws every map that shows it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anywidget
import ipyleaflet
import traitlets as t
from ipywidgets import widget_serialization

from .bands import Style
from .errors import JobTaskError
from .plaintext import WHERE, PlainTextRepr
from .raster import RasterSource
from .view import RasterState

# The message kinds of the tile protocol. The front end names them in js/tilelayer.js (KINDS);
# tests/unit/test_tilelayer.py checks that both sides agree.
KINDS = {"TILE": "tile", "CANCEL": "cancel", "ERROR": "error"}

ESM = Path(__file__).parent / "js" / "tilelayer.js"
CACHE_TILES = 512
WORKERS = 4


class RasterTileLayer(PlainTextRepr, anywidget.AnyWidget):
    """A raster on an ipyleaflet map, as tiles rendered in the kernel and sent over the widget channel.

    Args:
        map: The ``ipyleaflet.Map`` whose every view gets the layer.
        source: A :class:`RasterState` (of a ``ResultsView``), a :class:`RasterSource` or a path
            to a raster; a raster the layer opens itself is closed by :meth:`close`.
        bands: 1 or 3 band numbers; default from the file (not with a ``RasterState``).
        stretch: ``"auto"``, ``"percentile"`` or ``"minmax"``.
        colormap: A colormap name for one band.
        opacity: 0..1.
        name: The layer's name; default the file name.
    """

    _esm = ESM
    map = t.Instance(ipyleaflet.Map, allow_none=True).tag(sync=True, **widget_serialization)
    name = t.Unicode("raster").tag(sync=True)
    opacity = t.Float(1.0, min=0.0, max=1.0).tag(sync=True)
    visible = t.Bool(True).tag(sync=True)
    bounds = t.List(t.List(t.Float()), default_value=[]).tag(sync=True)
    min_zoom = t.Int(0).tag(sync=True)
    max_zoom = t.Int(24).tag(sync=True)
    revision = t.Int(0).tag(sync=True)
    attached = t.Int(0, read_only=True).tag(sync=True)

    def __init__(
        self,
        map: ipyleaflet.Map,
        source: RasterState | RasterSource | str | Path,
        *,
        bands: Sequence[int] | None = None,
        stretch: str = "auto",
        colormap: str | None = None,
        opacity: float = 1.0,
        name: str | None = None,
    ) -> None:
        self._owned: RasterSource | None = None
        if isinstance(source, RasterState):
            self.state = source
        else:
            raster = source if isinstance(source, RasterSource) else RasterSource(source)
            self._owned = None if raster is source else raster
            try:
                self.state = RasterState(raster, name=name, bands=bands, stretch=stretch, colormap=colormap,
                                         opacity=opacity)  # fmt: skip
            except BaseException:
                if self._owned is not None:
                    self._owned.close()
                raise
        west, south, east, north = self.source.require_crs("tiles")
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="jobtask-tiles")
        self._cache: OrderedDict[tuple[Any, ...], tuple[str, bytes | None]] = OrderedDict()
        self._futures: dict[str, Future[None]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        super().__init__(
            map=map,
            name=name or self.state.name,
            opacity=self.state.opacity,
            visible=self.state.visible,
            bounds=[[south, west], [north, east]],
        )
        self._links = [
            t.link((self, "opacity"), (self.state, "opacity")),
            t.link((self, "visible"), (self.state, "visible")),
        ]
        self.state.observe(self._restyled, "style")
        self.on_msg(self._on_msg)

    # -- style --------------------------------------------------------------------------------
    @property
    def source(self) -> RasterSource:
        """The raster drawn: its state's source, read at each tile (a view may swap it, e.g. for the
        downloaded copy of a file read from the server)."""
        return self.state.source

    @property
    def style(self) -> Style:
        """The bands, stretch and colormap the tiles are drawn with."""
        return self.state.style

    @property
    def bands(self) -> tuple[int, ...]:
        """The shown bands."""
        return self.state.bands

    def set_style(
        self,
        *,
        bands: Sequence[int] | None = None,
        stretch: str | None = None,
        colormap: str | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
    ) -> None:
        """Change bands, stretch, range or colormap; the layer redraws (a new ``revision``).

        See :meth:`RasterState.set_style` for the arguments and errors.
        """
        self.state.set_style(bands=bands, stretch=stretch, colormap=colormap, vmin=vmin, vmax=vmax)

    def _restyled(self, _: Any) -> None:
        self.revision += 1

    # -- the protocol ------------------------------------------------------------------------------
    def _on_msg(self, _: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == KINDS["CANCEL"]:
            self._cancel(str(content.get("id")))
        elif kind == KINDS["TILE"]:
            self._request(content)

    def _request(self, content: dict[str, Any]) -> None:
        tile_id, revision = str(content.get("id")), content.get("revision", self.revision)
        try:
            z, x, y = (int(content[k]) for k in ("z", "x", "y"))
        except (KeyError, TypeError, ValueError):
            self._answer(tile_id, revision, error=f"a tile request needs integer z, x and y: {content!r}")
            return
        style = self.style
        key = (style, z, x, y)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is not None:
            self._answer(tile_id, revision, tile=cached)
            return
        future = self._pool.submit(self._render, tile_id, revision, style, key)
        with self._lock:
            self._futures[tile_id] = future
        future.add_done_callback(lambda _: self._forget(tile_id))

    def _render(self, tile_id: str, revision: int, style: Style, key: tuple[Any, ...]) -> None:
        _, z, x, y = key
        source = self.source
        try:
            try:
                data = source.tile(z, x, y, style)
            except JobTaskError:
                if self.source is source:
                    raise
                data = self.source.tile(z, x, y, style)  # the view swapped the source under this read
        except (JobTaskError, ValueError) as exc:
            self._answer(tile_id, revision, error=str(exc))
            return
        tile = ("image/png", data)
        with self._lock:
            self._cache[key] = tile
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_TILES:
                self._cache.popitem(last=False)
        self._answer(tile_id, revision, tile=tile)

    def _answer(
        self, tile_id: str, revision: int, *, tile: tuple[str, bytes | None] | None = None, error: str | None = None
    ) -> None:
        with self._lock:
            if tile_id in self._cancelled:
                self._cancelled.discard(tile_id)
                return
        if error is not None:
            self.send({"kind": KINDS["ERROR"], "id": tile_id, "message": error, "revision": revision})
        elif tile is None or tile[1] is None:
            self.send({"kind": KINDS["TILE"], "id": tile_id, "empty": True, "revision": revision})
        else:
            media_type, data = tile
            answer = {"kind": KINDS["TILE"], "id": tile_id, "media_type": media_type, "revision": revision}
            self.send(answer, buffers=[data])

    def _cancel(self, tile_id: str) -> None:
        with self._lock:
            future = self._futures.pop(tile_id, None)
        # outside the lock: a successful cancel runs the done callback (_forget) right here
        if future is not None and not future.cancel():
            with self._lock:
                self._cancelled.add(tile_id)  # already rendering: drop its answer

    def _forget(self, tile_id: str) -> None:
        with self._lock:
            self._futures.pop(tile_id, None)

    def plain_text(self) -> str:
        """The raster and its style, as text."""
        return f"RasterTileLayer of {self.state.source.path}: {self.state!r}\n{WHERE}"

    def close(self) -> None:
        """Detach from every map view and stop rendering; close the raster if the layer opened it."""
        pool = getattr(self, "_pool", None)  # absent when __init__ raised
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        links, self._links = getattr(self, "_links", []), []  # close() runs again from __del__
        for link in links:
            link.unlink()
        state = getattr(self, "state", None)
        if links and state is not None:
            state.unobserve(self._restyled, "style")
        owned = getattr(self, "_owned", None)
        if owned is not None:
            owned.close()
        super().close()
