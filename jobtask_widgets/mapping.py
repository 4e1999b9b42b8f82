"""Pure map helpers: no widgets, no I/O beyond reading data.json and an AOI file.

Pairing each result raster with its data.json feature, Web-Mercator maths and the view that
fits the results (computed in Python, so it is right before any browser reports its size),
escaped popup tables, the AOI in every accepted form, thinning of very large feature sets, and
the map styles that both the live map and the saved page use. ``view.ResultsView`` is built on
these; the widgets render it.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .cog import GEOTIFF_SUFFIXES
from .features import load_geojson, read_feature_collection
from .remote import RemoteFile

DATA_PATH = "up42.data_path"
MAX_FEATURES = 5000
MAX_ZOOM = 18
TILE = 256
GEOMETRY_TYPES = {
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection",
}  # fmt: skip

# The map's styles, used by the live map (ipyleaflet) and by the saved page (Leaflet) alike.
FEATURE_STYLE = {"color": "#ff7800", "weight": 2, "fillOpacity": 0.0}  # no tint over the imagery; still clickable
FEATURE_HOVER_STYLE = {"weight": 4, "fillOpacity": 0.2}
POINT_STYLE = {"radius": 6, "color": "#ff7800", "fillColor": "#ffb366", "fillOpacity": 0.9, "weight": 2}
AOI_STYLE = {"color": "#1f5fd6", "weight": 3, "dashArray": "6 4", "fillOpacity": 0.0}
POPUP_SIZE = {"min_width": 280, "max_width": 440, "max_height": 320}  # pixels


def match_features(keys: Sequence[str | None], features: Sequence[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The data.json feature of each raster: the one whose ``up42.data_path`` is the raster's key
    (its path relative to data.json's folder; None when it has none); when no feature names a
    data path at all, the features in order (the original platform's way)."""
    by_path = {
        str(f.get("properties", {}).get(DATA_PATH)).lstrip("./"): f
        for f in features
        if isinstance(f.get("properties"), dict) and f["properties"].get(DATA_PATH)
    }
    unclaimed = [f for f in features if f not in by_path.values()]
    matched: list[dict[str, Any] | None] = []
    for key in keys:
        feature = by_path.get(key) if key is not None else None
        if feature is None and not by_path and unclaimed:
            feature = unclaimed.pop(0)
        matched.append(feature)
    return matched


def pair_rasters(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, dict[str, Any] | None]]:
    """Each result GeoTIFF with its data.json feature: by ``up42.data_path``, else by order.

    ``paths`` are a download's files (``JobTask.results``); ``up42.data_path`` is relative to the
    folder that holds data.json.
    """
    files = [Path(p) for p in paths]
    rasters = [p for p in files if p.suffix.lower() in GEOTIFF_SUFFIXES]
    data_json = next((p for p in files if p.name == "data.json"), None)
    features = read_feature_collection(data_json)["features"] if data_json is not None else []
    keys = [
        r.relative_to(data_json.parent).as_posix()
        if data_json is not None and r.is_relative_to(data_json.parent)
        else None
        for r in rasters
    ]
    return list(zip(rasters, match_features(keys, features), strict=True))


def layer_name(raster: Path | RemoteFile, feature: Mapping[str, Any] | None, name_column: str) -> str:
    """A raster layer's name: its feature's ``name_column`` value, else the file name."""
    properties = (feature or {}).get("properties") or {}
    value = properties.get(name_column)
    return f"{value} ({raster.name})" if value not in (None, "") else raster.name


def mercator_y(lat: float) -> float:
    """Web-Mercator y of a latitude, in radians of the unit sphere (clamped to the projection's edge)."""
    lat = max(min(lat, 85.0511), -85.0511)
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def fit_view(
    bounds: tuple[float, float, float, float], width: int = 1000, height: int = 600, padding: int = 20
) -> tuple[tuple[float, float], int]:
    """The centre ``(lat, lon)`` and the largest zoom at which ``bounds`` fit ``width x height`` px.

    Args:
        bounds: ``(west, south, east, north)`` in degrees.
        width: The map's width in pixels.
        height: The map's height in pixels.
        padding: Pixels kept free on each side.
    """
    west, south, east, north = bounds
    if not (west <= east and south <= north):
        raise ValueError(f"bounds must be (west, south, east, north) with west <= east and south <= north: {bounds}")
    centre_y = (mercator_y(south) + mercator_y(north)) / 2
    centre_lat = math.degrees(2 * math.atan(math.exp(centre_y)) - math.pi / 2)
    centre = (centre_lat, (west + east) / 2)
    span_x = max((east - west) / 360.0, 1e-9)  # fraction of the world's width
    span_y = max((mercator_y(north) - mercator_y(south)) / (2 * math.pi), 1e-9)
    usable_w, usable_h = max(width - 2 * padding, 1), max(height - 2 * padding, 1)
    zoom = math.floor(math.log2(min(usable_w / (TILE * span_x), usable_h / (TILE * span_y))))
    return centre, max(0, min(MAX_ZOOM, zoom))


def mercator_aspect(bounds: tuple[float, float, float, float]) -> float:
    """Width over height of ``(west, south, east, north)`` as drawn in Web Mercator."""
    west, south, east, north = bounds
    return math.radians(east - west) / max(mercator_y(north) - mercator_y(south), 1e-12)


def union_bounds(boxes: Sequence[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """The box around several ``(west, south, east, north)`` boxes."""
    if not boxes:
        raise ValueError("no bounds to join")
    wests, souths, easts, norths = zip(*boxes, strict=True)
    return min(wests), min(souths), max(easts), max(norths)


POPUP_TABLE = 'class="jobtask-popup" style="border-collapse:collapse;font-size:12px;line-height:1.3"'
POPUP_KEY = 'style="text-align:left;vertical-align:top;padding:1px 8px 1px 0;white-space:nowrap"'
POPUP_VALUE = 'style="padding:1px 0;word-break:break-word"'


def popup_html(properties: Mapping[str, Any], hidden: Sequence[str] = ()) -> str:
    """An HTML table of a feature's properties; every key and value is escaped."""
    rows = []
    for key, value in properties.items():
        if key in hidden:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        if len(text) > 300:
            text = text[:300] + "…"
        rows.append(f"<tr><th {POPUP_KEY}>{html.escape(str(key))}</th><td {POPUP_VALUE}>{html.escape(text)}</td></tr>")
    return f"<table {POPUP_TABLE}>" + "".join(rows) + "</table>"


def thin_features(features: Sequence[dict[str, Any]], limit: int = MAX_FEATURES) -> tuple[list[dict[str, Any]], str]:
    """At most ``limit`` features (an even subsample), and a note saying so when thinned."""
    if len(features) <= limit:
        return list(features), ""
    step = len(features) / limit
    kept = [features[int(i * step)] for i in range(limit)]
    return kept, f"showing {limit:,} of {len(features):,} features (every {step:.1f}th), so the map stays responsive"


def aoi_geojson(aoi: Any) -> dict[str, Any]:
    """The AOI as a GeoJSON FeatureCollection in EPSG:4326.

    Accepts a GeoDataFrame (reprojected to EPSG:4326), a path to a GeoJSON file, a GeoJSON dict
    (geometry, Feature or FeatureCollection) or a shapely geometry.

    Raises:
        ValueError: for anything else, saying what is accepted.
    """
    accepted = "a GeoDataFrame, a path to a GeoJSON file, a GeoJSON dict or a shapely geometry"
    if isinstance(aoi, (str, os.PathLike)):
        path = Path(aoi)
        if not path.is_file():
            raise ValueError(f"aoi {str(aoi)!r} is not a file; aoi must be {accepted}")
        try:
            value = load_geojson(path, f"aoi file {path}")
        except ValueError as exc:
            raise ValueError(f"{exc}; aoi must be {accepted}") from exc
        return _from_dict(value, accepted)
    if isinstance(aoi, Mapping):
        return _from_dict(dict(aoi), accepted)
    if hasattr(aoi, "to_crs") and hasattr(aoi, "to_json"):  # a GeoDataFrame or GeoSeries
        frame = aoi.to_crs(4326) if getattr(aoi, "crs", None) is not None else aoi
        return dict(json.loads(frame.to_json()))
    if hasattr(aoi, "__geo_interface__") and hasattr(aoi, "geom_type"):  # a shapely geometry
        return _from_dict(json.loads(json.dumps(aoi.__geo_interface__)), accepted)  # tuples become lists
    raise ValueError(f"aoi must be {accepted} (got {type(aoi).__name__})")


def _from_dict(value: dict[str, Any], accepted: str) -> dict[str, Any]:
    kind = value.get("type")
    if kind == "FeatureCollection":
        return value
    if kind == "Feature":
        return {"type": "FeatureCollection", "features": [value]}
    if kind in GEOMETRY_TYPES:
        return {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": value, "properties": {}}]}
    raise ValueError(f"aoi dict has type {kind!r}, not GeoJSON; aoi must be {accepted}")


def collection_bounds(features: Sequence[dict[str, Any]]) -> tuple[float, float, float, float] | None:
    """The ``(west, south, east, north)`` around every coordinate of some GeoJSON features."""
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
