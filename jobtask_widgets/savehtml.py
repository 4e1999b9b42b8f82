"""``map_results(save_html=...)``: one self-contained page that opens offline, with no kernel.

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
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import mapping
from .raster import encode

if TYPE_CHECKING:
    from .mapwidget import ResultsMap

LEAFLET = Path(__file__).parent / "static" / "leaflet"
OVERLAY_PIXELS = 1600  # the longest side of a raster's PNG in the page


def target_path(save_html: str | os.PathLike[str]) -> Path:
    """A file path as given, or ``map.html`` in a folder."""
    path = Path(save_html)
    return path / "map.html" if path.is_dir() or str(save_html).endswith(("/", os.sep)) else path


def save_map(results_map: ResultsMap, save_html: str | os.PathLike[str], title: str = "Job task results") -> Path:
    """Write the page; return its path."""
    path = target_path(save_html)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "center": list(results_map.center),
        "zoom": results_map.zoom,
        "rasters": [_raster(name, layer) for name, layer in results_map.raster_layers.items() if layer.visible],
        "features": _features(results_map),
        "aoi": aoi.data if (aoi := results_map.aoi_layer) is not None and aoi.visible else None,
        "note": results_map.note,
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


def _raster(name: str, layer: Any) -> dict[str, Any]:
    west, south, east, north = layer.source.bounds_4326
    aspect = (east - west) / max(_merc(north) - _merc(south), 1e-12) * math.pi / 180
    width = OVERLAY_PIXELS if aspect >= 1 else max(1, round(OVERLAY_PIXELS * aspect))
    height = OVERLAY_PIXELS if aspect < 1 else max(1, round(OVERLAY_PIXELS / aspect))
    rgba = layer.source.part_rgba((west, south, east, north), width, height, layer.style)
    url = "data:image/png;base64," + base64.b64encode(encode(rgba)).decode()
    return {"name": html.escape(name), "url": url, "bounds": [[south, west], [north, east]], "opacity": layer.opacity}


def _merc(lat: float) -> float:
    return math.log(math.tan(math.pi / 4 + math.radians(max(min(lat, 85.0511), -85.0511)) / 2))


def _features(results_map: Any) -> dict[str, Any] | None:
    layer = results_map.feature_layer
    if layer is None or not layer.visible:  # the page shows what the map shows
        return None
    features = []
    for feature in layer.data["features"]:
        properties = dict(feature.get("properties") or {})
        label = str(properties.pop("_label", ""))
        popup = f"<b>{html.escape(label)}</b>" + mapping.popup_html(properties, hidden=("style",))
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
    style: { color: "#ff7800", weight: 2, fillOpacity: 0.0 },
    pointToLayer: (f, latlng) =>
      L.circleMarker(latlng, { radius: 6, color: "#ff7800", fillColor: "#ffb366", fillOpacity: 0.9 }),
    onEachFeature: (f, layer) => {
      layer.bindPopup(f.properties._popup, { minWidth: 260, maxWidth: 440, maxHeight: 320 });
      layer.bindTooltip(f.properties._label);
    },
  }).addTo(map);
}
if (data.aoi) {
  const style = { color: "#1f5fd6", weight: 3, dashArray: "6 4", fillOpacity: 0 };
  overlays["AOI"] = L.geoJSON(data.aoi, { style }).addTo(map);
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
