"""ResultsMap: the ipyleaflet map of a ``ResultsView``.

Raster results are ``RasterTileLayer``s (tiles over the widget channel), each drawing one of the
view's ``RasterState``s; while a layer reports no attached map view for a while after the map is
shown, the map shows that raster as a static ``ImageOverlay`` rendered at screen size for the
current view, so the user always sees it. Features get escaped popups and a hover label; the AOI
is drawn dashed; single-band rasters get a colour bar that follows their style; the map's
optional layer panel is a ``LayerPanel`` of the same view. The view is fitted in Python.
"""

from __future__ import annotations

import base64
import html
import threading
from collections.abc import Callable
from typing import Any

import ipyleaflet
import ipywidgets as w

from . import mapping
from .errors import RasterError
from .inspector import PixelInspector
from .layerpanel import LayerPanel
from .pixels import PixelValues
from .plaintext import WHERE, PlainTextRepr
from .raster import encode
from .tilelayer import RasterTileLayer
from .view import FeatureState, RasterState, ResultsView

FALLBACK_AFTER = 4.0  # seconds a shown map waits for a tile layer to attach before the static overlay


class ResultsMap(PlainTextRepr, ipyleaflet.Map):
    """The results of a job task on an interactive map: one ``ResultsView`` drawn.

    Args:
        view: What to show.
        basemap: An ipyleaflet layer or xyzservices provider; default OpenStreetMap.
        panel: Whether the map holds its own layer panel (a ``LayerPanel`` of the view).
        owns_view: Whether :meth:`close` closes the view (and so its rasters).

    Attributes:
        view: The view drawn.
        raster_layers: The raster layers by name.
        feature_layer: The features (data.json or the block's GeoJSON), or ``None``.
        aoi_layer: The area of interest, or ``None``.
        panel: The layer panel, or ``None``.
        inspector: The inspect control (a button in the map's corner): click to read pixel values.
        note: What the map says about itself (thinned features, a missing name column).
    """

    def __init__(self, view: ResultsView, *, basemap: Any = None, panel: bool = True, owns_view: bool = False) -> None:
        options: dict[str, Any] = {"center": view.center, "zoom": view.zoom, "scroll_wheel_zoom": True}
        if basemap is not None:
            options["basemap"] = basemap
        super().__init__(**options)
        self.view = view
        self._owns_view = owns_view
        self.layout.height = "600px"
        self.raster_layers: dict[str, RasterTileLayer] = {}
        self._overlays: dict[str, ipyleaflet.ImageOverlay] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._unsubscribe: list[Callable[[], None]] = []  # what close() undoes on the view's states
        self.panel: LayerPanel | None = None
        self.feature_layer: ipyleaflet.GeoJSON | None = None
        self.aoi_layer: ipyleaflet.GeoJSON | None = None
        self.inspector: PixelInspector | None = None
        try:
            for name, state in view.rasters.items():
                layer = RasterTileLayer(self, state)
                self.raster_layers[name] = layer
                layer.observe(lambda change, n=name: self._check_fallback(n), "attached")
            self.feature_layer = self._features(view.features) if view.features is not None else None
            self.aoi_layer = self._geojson(view.aoi, style=mapping.AOI_STYLE) if view.aoi is not None else None
            for extra in (self.feature_layer, self.aoi_layer):
                if extra is not None:
                    self.add(extra)
            self.note = view.note
            self.panel = LayerPanel(view) if panel else None
            self._add_controls()
            self.inspector = PixelInspector(self, self.values_at) if view.rasters else None
        except BaseException:
            self._owns_view = False  # the caller still holds the view and closes it
            self.close()
            raise
        self.observe(self._view_moved, "bounds")

    def _view_moved(self, _: Any) -> None:
        for name in self.raster_layers:
            self._check_fallback(name)

    def values_at(self, lat: float, lon: float) -> dict[str, PixelValues]:
        """Every visible raster layer's values at a point: ``{layer name: {band name: value}}``.

        Args:
            lat: Latitude in degrees.
            lon: Longitude in degrees.
        """
        return self.view.values_at(lat, lon)

    @property
    def toggles(self) -> dict[str, w.Checkbox]:
        """The map's layer panel's check boxes by label (empty without a panel)."""
        return self.panel.toggles if self.panel is not None else {}

    @property
    def opacities(self) -> dict[str, w.FloatSlider]:
        """The map's layer panel's opacity sliders by raster name (empty without a panel)."""
        return self.panel.opacities if self.panel is not None else {}

    def _geojson(self, state: FeatureState, **options: Any) -> ipyleaflet.GeoJSON:
        layer = ipyleaflet.GeoJSON(data=drawn(state.data), name=state.name, visible=state.visible, **options)
        # GeoJSON's own ``visible`` clears and redraws its features in place; removing the layer
        # instead makes ipyleaflet's front end throw when its popup was never opened
        link = w.dlink((state, "visible"), (layer, "visible"))
        self._unsubscribe.append(link.unlink)
        return layer

    # -- features ------------------------------------------------------------------------------
    def _features(self, state: FeatureState) -> ipyleaflet.GeoJSON:
        popup = w.HTML()
        self._hover = w.HTML()
        layer = self._geojson(
            state,
            style=mapping.FEATURE_STYLE,
            hover_style=mapping.FEATURE_HOVER_STYLE,
            point_style=mapping.POINT_STYLE,
            popup=popup,
            **{f"popup_{key}": value for key, value in mapping.POPUP_SIZE.items()},
        )

        def on_click(feature: dict[str, Any] | None = None, **_: Any) -> None:
            # the drawn feature carries only its label and index; the popup shows the view's own data
            index = ((feature or {}).get("properties") or {}).get("_index")
            if not isinstance(index, int) or not 0 <= index < len(state.data["features"]):
                return
            properties = dict(state.data["features"][index].get("properties") or {})
            label = properties.pop("_label", "")
            popup.value = f"<b>{html.escape(str(label))}</b>" + mapping.popup_html(properties)

        def on_hover(feature: dict[str, Any] | None = None, **_: Any) -> None:
            self._hover.value = html.escape(str(((feature or {}).get("properties") or {}).get("_label", "")))

        layer.on_click(on_click)
        layer.on_hover(on_hover)
        return layer

    # -- controls ------------------------------------------------------------------------------------
    def _add_controls(self) -> None:
        if self.panel is not None and self.panel.toggles:
            self.add(ipyleaflet.WidgetControl(widget=self.panel, position="topright"))
        self.add(ipyleaflet.FullScreenControl())
        self.add(ipyleaflet.ScaleControl(position="bottomleft"))
        self._bars: dict[str, tuple[w.HTML, ipyleaflet.WidgetControl]] = {}
        for name, state in self.view.rasters.items():
            bar = w.HTML()
            self._bars[name] = (bar, ipyleaflet.WidgetControl(widget=bar, position="bottomright"))
            self._refresh_bar(name)
            self._follow(state, name)
        if self.feature_layer is not None:
            self.add(ipyleaflet.WidgetControl(widget=self._hover, position="bottomleft"))
        if self.note:
            self.add(ipyleaflet.WidgetControl(widget=w.HTML(html.escape(self.note)), position="bottomleft"))

    def _follow(self, state: RasterState, name: str) -> None:
        def restyled(_: Any) -> None:
            self._refresh_bar(name)

        state.observe(restyled, "style")
        self._unsubscribe.append(lambda: state.unobserve(restyled, "style"))

    def _refresh_bar(self, name: str) -> None:
        """Show a one-band layer's colour bar with its current stretch; none for RGB."""
        bar, control = self._bars[name]
        bar.value = colour_bar_html(self.view.rasters[name])
        if bar.value and control not in self.controls:
            self.add(control)
        elif not bar.value and control in self.controls:
            self.remove(control)

    # -- static fallback ---------------------------------------------------------------------------------
    def _check_fallback(self, name: str) -> None:
        layer = self.raster_layers[name]
        if layer.attached > 0:
            self._drop_overlay(name)
        elif self.bounds and name not in self._timers:  # shown (the front end reported bounds)
            timer = threading.Timer(FALLBACK_AFTER, self._fallback, args=(name,))
            timer.daemon = True
            self._timers[name] = timer
            timer.start()
        elif name in self._overlays:
            self._fallback(name)  # the view moved: render the overlay again

    def _fallback(self, name: str) -> None:
        layer, state = self.raster_layers[name], self.view.rasters[name]
        if layer.attached > 0 or not self.bounds or not state.visible or state.source.closed:
            return
        (south, west), (north, east) = self.bounds
        width, height = screen_size(self.pixel_bounds)
        source = state.source
        try:
            rgba = state.render((west, south, east, north), width, height)
        except RasterError:
            if source.closed:  # the map was closed while this timer rendered
                return
            raise
        url = "data:image/png;base64," + base64.b64encode(encode(rgba)).decode()
        overlay = self._overlays.get(name)
        if overlay is None:
            overlay = ipyleaflet.ImageOverlay(url=url, bounds=self.bounds, name=f"{name} (static)")
            self._overlays[name] = overlay
            self.add(overlay)
        else:
            overlay.url, overlay.bounds = url, self.bounds

    def _drop_overlay(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        overlay = self._overlays.pop(name, None)
        if overlay is not None and overlay in self.layers:
            self.remove(overlay)

    @property
    def static_overlays(self) -> dict[str, ipyleaflet.ImageOverlay]:
        """The static overlays shown where a tile layer could not attach."""
        return dict(self._overlays)

    def plain_text(self) -> str:
        """What the map shows, a line a layer, as text."""
        return "\n".join(["ResultsMap:", *(f"  {line}" for line in self.view.summary()), WHERE])

    def close(self) -> None:
        """Close the map, its layers and panel, and the view when the map owns it."""
        for name in list(getattr(self, "_timers", {})):  # absent when __init__ raised; __del__ closes too
            self._drop_overlay(name)
        undo, self._unsubscribe = getattr(self, "_unsubscribe", []), []
        for step in undo:
            step()
        for layer in getattr(self, "raster_layers", {}).values():
            layer.close()
        inspector = getattr(self, "inspector", None)
        if inspector is not None:
            inspector.close()
        # the GeoJSON layers are left to the map: closing one in a shown map makes ipyleaflet's front
        # end throw "Widget is not attached" (seen in JupyterLab); their links to the view are gone
        panel = getattr(self, "panel", None)
        if panel is not None:
            panel.close()
        if getattr(self, "_owns_view", False):
            self.view.close()
        super().close()


def screen_size(pixel_bounds: Any, default: tuple[int, int] = (1024, 768)) -> tuple[int, int]:
    """The map's size in screen pixels from ipyleaflet's ``pixel_bounds``, capped at 2048."""
    try:
        (x0, y0), (x1, y1) = pixel_bounds
        width, height = round(x1 - x0), round(y1 - y0)
    except (TypeError, ValueError):
        return default
    if width <= 0 or height <= 0:
        return default
    return min(width, 2048), min(height, 2048)


def drawn(collection: dict[str, Any]) -> dict[str, Any]:
    """What ipyleaflet gets of a FeatureCollection: geometries, each feature's label and index.

    ipyleaflet reads keys of its own (``style``, ...) from a feature's properties, so the data's
    properties never reach it: a property named ``style`` stays data, shown in the popup.
    """
    features = []
    for index, feature in enumerate(collection.get("features") or []):
        label = (feature.get("properties") or {}).get("_label")
        properties: dict[str, Any] = {"_index": index} if label is None else {"_index": index, "_label": label}
        features.append({"type": "Feature", "geometry": feature.get("geometry"), "properties": properties})
    return {"type": "FeatureCollection", "features": features}


def colour_bar_html(state: RasterState) -> str:
    """A small HTML colour bar with the stretch's ends for a one-band raster; ``""`` for RGB."""
    bar = state.colour_bar()
    if bar is None:
        return ""
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in bar.stops)
    return (
        f'<div class="jobtask-colour-bar" style="background:white;padding:4px;font-size:11px">'
        f"{html.escape(state.name)} band {bar.band}"
        f'<div style="width:160px;height:10px;background:linear-gradient(to right, {stops})"></div>'
        f'<span style="float:left">{bar.low:g}</span><span style="float:right">{bar.high:g}</span></div>'
    )
