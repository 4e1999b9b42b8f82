"""ResultsMap: the ipyleaflet map of ``JobTask.map_results``.

Raster results are ``RasterTileLayer``s (tiles over the widget channel); while a layer reports no
attached map view for a while after the map is shown, the map shows that raster as a static
``ImageOverlay`` rendered at screen size for the current view, so the user always sees it.
Features get escaped popups and a hover label; the AOI is drawn dashed; a panel toggles each
layer; single-band rasters get a colour bar. The view is computed in Python from the results.
"""

from __future__ import annotations

import base64
import html
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipyleaflet
import ipywidgets as w

from . import mapping
from .raster import RasterSource, encode
from .tilelayer import RasterTileLayer

FALLBACK_AFTER = 4.0  # seconds a shown map waits for a tile layer to attach before the static overlay
FEATURE_STYLE = {"color": "#ff7800", "weight": 2, "fillOpacity": 0.0}  # no tint over the imagery; still clickable
AOI_STYLE = {"color": "#1f5fd6", "weight": 3, "dashArray": "6 4", "fillOpacity": 0.0}
POINT_STYLE = {"radius": 6, "color": "#ff7800", "fillColor": "#ffb366", "fillOpacity": 0.9, "weight": 2}


class ResultsMap(ipyleaflet.Map):
    """The results of a job task on an interactive map.

    Attributes:
        raster_layers: The raster layers by name.
        feature_layer: The features (data.json or the block's GeoJSON), or ``None``.
        aoi_layer: The area of interest, or ``None``.
        toggles: The layer panel's check boxes by label (each raster's name, ``"features"``,
            ``"AOI"``); other controls can link to them.
        opacities: The layer panel's opacity sliders by raster name.
        note: What the map says about itself (thinned features, a missing name column).
    """

    def __init__(
        self,
        *,
        rasters: Sequence[tuple[Path, dict[str, Any] | None]],
        features: Sequence[dict[str, Any]],
        aoi: dict[str, Any] | None,
        bands: Sequence[int] | None,
        name_column: str,
        basemap: Any = None,
    ) -> None:
        sources = [(RasterSource(path), feature) for path, feature in rasters]
        for source, _ in sources:
            source.require_crs("the map")
            source.check_bands(bands)  # bad bands raise before anything is drawn
        boxes = [s.bounds_4326 for s, _ in sources if s.bounds_4326 is not None]
        boxes += [b for b in (_collection_bounds(features), _collection_bounds((aoi or {}).get("features", []))) if b]
        centre, zoom = mapping.fit_view(mapping.union_bounds(boxes)) if boxes else ((0.0, 0.0), 2)
        options: dict[str, Any] = {"center": centre, "zoom": zoom, "scroll_wheel_zoom": True}
        if basemap is not None:
            options["basemap"] = basemap
        super().__init__(**options)
        self.layout.height = "600px"
        self.raster_layers: dict[str, RasterTileLayer] = {}
        self._overlays: dict[str, ipyleaflet.ImageOverlay] = {}
        self._timers: dict[str, threading.Timer] = {}
        notes: list[str] = []
        for source, feature in sources:
            name = mapping.layer_name(source.path, feature, name_column)
            layer = RasterTileLayer(self, source, bands=bands, name=name)
            self.raster_layers[name] = layer
            layer.observe(lambda change, n=name: self._check_fallback(n), "attached")
        self.feature_layer = self._features(features, name_column, notes) if features else None
        self.aoi_layer = ipyleaflet.GeoJSON(data=aoi, style=AOI_STYLE, name="AOI") if aoi else None
        for extra in (self.feature_layer, self.aoi_layer):
            if extra is not None:
                self.add(extra)
        self.note = "; ".join(notes)
        self._add_controls()
        self.observe(lambda _: [self._check_fallback(n) for n in self.raster_layers], "bounds")

    # -- features ------------------------------------------------------------------------------
    def _features(self, features: Sequence[dict[str, Any]], name_column: str, notes: list[str]) -> ipyleaflet.GeoJSON:
        kept, thinned = mapping.thin_features(features)
        if thinned:
            notes.append(thinned)
        has_column = any(name_column in (f.get("properties") or {}) for f in kept)
        if not has_column:
            message = f"the features have no property {name_column!r}: they are labelled by their index"
            notes.append(message)
            warnings.warn(message, stacklevel=4)
        labelled = []
        for index, feature in enumerate(kept):
            properties = dict(feature.get("properties") or {})
            label = properties.get(name_column) if has_column else index
            labelled.append({**feature, "properties": {**properties, "_label": str(label)}})
        popup = w.HTML()
        self._hover = w.HTML()
        layer = ipyleaflet.GeoJSON(
            data={"type": "FeatureCollection", "features": labelled},
            style=FEATURE_STYLE,
            hover_style={"weight": 4, "fillOpacity": 0.2},
            point_style=POINT_STYLE,
            popup=popup,
            popup_min_width=280,
            popup_max_width=440,
            popup_max_height=320,
            name="features",
        )

        def on_click(feature: dict[str, Any] | None = None, **_: Any) -> None:
            properties = dict((feature or {}).get("properties") or {})
            label = properties.pop("_label", "")
            # ipyleaflet adds each feature's "style"; it is not the data's
            popup.value = f"<b>{html.escape(str(label))}</b>" + mapping.popup_html(properties, hidden=("style",))

        def on_hover(feature: dict[str, Any] | None = None, **_: Any) -> None:
            self._hover.value = html.escape(str(((feature or {}).get("properties") or {}).get("_label", "")))

        layer.on_click(on_click)
        layer.on_hover(on_hover)
        return layer

    # -- controls ------------------------------------------------------------------------------------
    def _add_controls(self) -> None:
        rows: list[w.Widget] = []
        self.toggles: dict[str, w.Checkbox] = {}
        self.opacities: dict[str, w.FloatSlider] = {}
        self._bars: dict[str, tuple[w.HTML, ipyleaflet.WidgetControl]] = {}
        for name, layer in self.raster_layers.items():
            box = w.Checkbox(value=True, description=name, indent=False, layout=w.Layout(width="auto"))
            w.link((box, "value"), (layer, "visible"))
            opacity = w.FloatSlider(
                value=1.0, min=0, max=1, step=0.05, readout=False, tooltip="opacity",
                layout=w.Layout(width="90px"),
            )  # fmt: skip
            w.link((opacity, "value"), (layer, "opacity"))
            self.toggles[name], self.opacities[name] = box, opacity
            rows.append(w.HBox([box, opacity], layout=w.Layout(width="auto", align_items="center")))
        for label, extra in (("features", self.feature_layer), ("AOI", self.aoi_layer)):
            if extra is not None:
                self.toggles[label] = self._toggle(label, extra)
                rows.append(self.toggles[label])
        if rows:
            panel = w.VBox([w.HTML("<b>Layers</b>"), *rows], layout=w.Layout(width="auto", padding="0 6px"))
            self.add(ipyleaflet.WidgetControl(widget=panel, position="topright"))
        self.add(ipyleaflet.FullScreenControl())
        self.add(ipyleaflet.ScaleControl(position="bottomleft"))
        for name, layer in self.raster_layers.items():
            bar = w.HTML()
            self._bars[name] = (bar, ipyleaflet.WidgetControl(widget=bar, position="bottomright"))
            self._refresh_bar(name)
            layer.observe(lambda _, n=name: self._refresh_bar(n), "revision")
        if self.feature_layer is not None:
            self.add(ipyleaflet.WidgetControl(widget=self._hover, position="bottomleft"))
        if self.note:
            self.add(ipyleaflet.WidgetControl(widget=w.HTML(html.escape(self.note)), position="bottomleft"))

    def _refresh_bar(self, name: str) -> None:
        """Show a one-band layer's colour bar with its current stretch; none for RGB."""
        bar, control = self._bars[name]
        bar.value = colour_bar(self.raster_layers[name])
        if bar.value and control not in self.controls:
            self.add(control)
        elif not bar.value and control in self.controls:
            self.remove(control)

    def _toggle(self, label: str, layer: ipyleaflet.GeoJSON) -> w.Checkbox:
        # GeoJSON's own ``visible`` clears and redraws its features in place; removing the layer
        # instead makes ipyleaflet's front end throw when its popup was never opened
        box = w.Checkbox(value=layer.visible, description=label, indent=False, layout=w.Layout(width="auto"))
        w.link((box, "value"), (layer, "visible"))
        return box

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
        layer = self.raster_layers[name]
        if layer.attached > 0 or not self.bounds or not layer.visible:
            return
        (south, west), (north, east) = self.bounds
        width, height = screen_size(self.pixel_bounds)
        rgba = layer.source.part_rgba((west, south, east, north), width, height, layer.style)
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


def colour_bar(layer: RasterTileLayer) -> str:
    """A small HTML colour bar with the stretch's ends, for a one-band layer."""
    lut = layer.source.lut(layer.style)
    ranges = layer.source.ranges(layer.style)
    if lut is None:
        return ""
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b, _ in [*lut[::32].tolist(), lut[-1].tolist()])
    low, high = ranges[0] if ranges else (0, 255)
    return (
        f'<div class="jobtask-colour-bar" style="background:white;padding:4px;font-size:11px">'
        f"{html.escape(layer.name)} band {layer.bands[0]}"
        f'<div style="width:160px;height:10px;background:linear-gradient(to right, {stops})"></div>'
        f'<span style="float:left">{low:g}</span><span style="float:right">{high:g}</span></div>'
    )


def _collection_bounds(features: Sequence[dict[str, Any]]) -> tuple[float, float, float, float] | None:
    coords: list[tuple[float, float]] = []

    def walk(value: Any) -> None:
        if isinstance(value, (list, tuple)) and len(value) >= 2 and all(isinstance(v, (int, float)) for v in value[:2]):
            coords.append((float(value[0]), float(value[1])))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    for feature in features:
        geometry = feature.get("geometry") or {}
        walk(geometry.get("coordinates"))
        for part in geometry.get("geometries") or []:
            walk(part.get("coordinates"))
    if not coords:
        return None
    xs, ys = zip(*coords, strict=True)
    return min(xs), min(ys), max(xs), max(ys)
