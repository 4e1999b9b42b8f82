"""``map_results(save_html=...)``: one ``ResultsView`` as a self-contained page that opens offline.

The page shows what the view shows now (visible rasters with their style and opacity, visible
features and AOI, the notes), with the same map styles as the live map (``mapping``'s styles,
passed to the page's script as data, so the two cannot drift apart). No widget is involved:
it needs no kernel to write or to open.

Leaflet's JS and CSS are inlined from the copy shipped in this package (``static/leaflet``);
features and the AOI are inline GeoJSON; each raster is a PNG data URL rendered at screen size
(never full resolution) and placed as an image overlay. Every string from a file or a server is
escaped: popup tables are built escaped in Python, and the JSON data block cannot close its
``<script>`` element.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from . import mapping
from .raster import encode
from .view import RasterState, ResultsView

LEAFLET = Path(__file__).parent / "static" / "leaflet"
OVERLAY_PIXELS = 1600  # the longest side of a raster's PNG in the page


def target_path(save_html: str | os.PathLike[str]) -> Path:
    """A file path as given, or ``map.html`` in a folder."""
    path = Path(save_html)
    return path / "map.html" if path.is_dir() or str(save_html).endswith(("/", os.sep)) else path


def save_map(view: ResultsView, save_html: str | os.PathLike[str], title: str = "Job task results") -> Path:
    """Write the page of ``view``; return its path."""
    path = target_path(save_html)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "center": list(view.center),
        "zoom": view.zoom,
        "rasters": [_raster(state) for state in view.rasters.values() if state.visible],
        "features": _features(view),
        "aoi": view.aoi.data if view.aoi is not None and view.aoi.visible else None,
        "note": view.note,
        "styles": {
            "feature": mapping.FEATURE_STYLE,
            "point": mapping.POINT_STYLE,
            "aoi": mapping.AOI_STYLE,
            "popup": {
                "minWidth": mapping.POPUP_SIZE["min_width"],
                "maxWidth": mapping.POPUP_SIZE["max_width"],
                "maxHeight": mapping.POPUP_SIZE["max_height"],
            },
        },
    }
    page = PAGE.format(
        title=html.escape(title),
        css=(LEAFLET / "leaflet.css").read_text(encoding="utf-8"),
        js=(LEAFLET / "leaflet.js").read_text(encoding="utf-8"),
        data=_script_json(data),
        app=APP,
    )
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def _raster(state: RasterState) -> dict[str, Any]:
    bounds = state.source.bounds_4326
    if bounds is None:
        raise ValueError(f"{state.name} has no coordinate reference system and cannot be placed on a map")
    west, south, east, north = bounds
    aspect = mapping.mercator_aspect(bounds)
    width = OVERLAY_PIXELS if aspect >= 1 else max(1, round(OVERLAY_PIXELS * aspect))
    height = OVERLAY_PIXELS if aspect < 1 else max(1, round(OVERLAY_PIXELS / aspect))
    url = "data:image/png;base64," + base64.b64encode(encode(state.render(bounds, width, height))).decode()
    return {"name": html.escape(state.name), "url": url, "bounds": [[south, west], [north, east]],
            "opacity": state.opacity}  # fmt: skip


def _features(view: ResultsView) -> dict[str, Any] | None:
    if view.features is None or not view.features.visible:  # the page shows what the map shows
        return None
    features = []
    for feature in view.features.data["features"]:
        properties = dict(feature.get("properties") or {})
        label = str(properties.pop("_label", ""))
        popup = f"<b>{html.escape(label)}</b>" + mapping.popup_html(properties)
        features.append({**feature, "properties": {"_popup": popup, "_label": html.escape(label)}})
    return {"type": "FeatureCollection", "features": features}


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no ``</``, no ``<!--``."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


APP = """
const data = JSON.parse(document.getElementById("jobtask-data").textContent);
const map = L.map("map", { center: data.center, zoom: data.zoom, preferCanvas: false });
L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png",
  { maxZoom: 19, attribution: "&copy; OpenStreetMap contributors" }).addTo(map);  // fails quietly offline
const overlays = {};
for (const r of data.rasters) {
  overlays[r.name] = L.imageOverlay(r.url, r.bounds, { opacity: r.opacity, className: "jobtask-raster" }).addTo(map);
}
if (data.features) {
  overlays["features"] = L.geoJSON(data.features, {
    style: data.styles.feature,
    pointToLayer: (f, latlng) => L.circleMarker(latlng, data.styles.point),
    onEachFeature: (f, layer) => {
      layer.bindPopup(f.properties._popup, data.styles.popup);
      layer.bindTooltip(f.properties._label);
    },
  }).addTo(map);
}
if (data.aoi) {
  overlays["AOI"] = L.geoJSON(data.aoi, { style: data.styles.aoi }).addTo(map);
}
L.control.layers(null, overlays, { collapsed: false }).addTo(map);
L.control.scale().addTo(map);
if (data.note) {
  const note = L.control({ position: "bottomleft" });
  note.onAdd = () => { const d = L.DomUtil.create("div", "jobtask-note"); d.textContent = data.note; return d; };
  note.addTo(map);
}
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<style>html, body, #map {{ height: 100%; margin: 0; }} .jobtask-note {{ background: white; padding: 2px 6px; }}</style>
<script>{js}</script>
</head>
<body>
<div id="map"></div>
<script type="application/json" id="jobtask-data">{data}</script>
<script>{app}</script>
</body>
</html>
"""
