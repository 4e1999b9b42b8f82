"""GeoJSON read from files and bytes, and FeatureCollections as GeoDataFrames.

``load_geojson`` and ``read_feature_collection`` are the one place a GeoJSON document is parsed
and checked (data.json, a block's GeoJSON, an AOI file).

``to_geodataframe`` gives the same rows, property columns and geometries as
``GeoDataFrame.from_features`` (EPSG:4326), but parses with GDAL's GeoJSON driver through
pyogrio, with no per-feature Python loop. Collections GDAL would type differently (nested
objects, lists, a column mixing types) go the exact, slower way.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import geopandas


def load_geojson(source: bytes | str | os.PathLike[str], what: str | None = None) -> dict[str, Any]:
    """The GeoJSON object (a dict) in a file or in bytes.

    Args:
        source: A path, or the document's bytes.
        what: How messages name the document; default the path, or ``"GeoJSON"``.

    Raises:
        ValueError: when it cannot be read, is not JSON, or is not a JSON object.
    """
    if isinstance(source, bytes):
        label = what or "GeoJSON"
        try:
            value = json.loads(source)
        except ValueError as exc:
            raise ValueError(f"{label} is not valid JSON: {exc}") from exc
    else:
        label = what or str(source)
        try:
            value = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{label} cannot be read as GeoJSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{label} holds a JSON {type(value).__name__}, not a GeoJSON object")
    return value


def read_feature_collection(source: bytes | str | os.PathLike[str], what: str | None = None) -> dict[str, Any]:
    """The FeatureCollection in a file or in bytes, with only dict features kept.

    Raises:
        ValueError: when it is not a GeoJSON FeatureCollection (naming ``what`` or the path).
    """
    collection = load_geojson(source, what)
    if collection.get("type") != "FeatureCollection":
        label = what or (str(source) if not isinstance(source, bytes) else "GeoJSON")
        raise ValueError(f"{label} is not a GeoJSON FeatureCollection (its type is {collection.get('type')!r})")
    features = collection.get("features") or []
    return {**collection, "features": [f for f in features if isinstance(f, dict)]}


def to_geodataframe(data: bytes) -> geopandas.GeoDataFrame:
    """A GeoDataFrame (EPSG:4326, geometry first) of a FeatureCollection's bytes.

    Raises:
        ValueError: when the bytes are not a GeoJSON FeatureCollection.
    """
    import geopandas
    import pyogrio
    from pandas.api.types import infer_dtype

    if b'"FeatureCollection"' not in data:
        return _exact(data)  # which says what is wrong
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # pyogrio warns on a column it cannot type
            frame = pyogrio.read_dataframe(io.BytesIO(data), DATE_AS_STRING="YES")
    except (UserWarning, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        return _exact(data)
    if len(frame) == 0:
        return _exact(data)
    for column in frame.columns.drop(frame.geometry.name):
        values = frame[column]
        if values.dtype == object and infer_dtype(values, skipna=True) != "string":
            return _exact(data)  # nested objects, lists, mixed types or all null: GDAL types them its own way
        if values.dtype.kind in "iu":
            frame[column] = values.astype("int64")
    columns = [frame.geometry.name, *frame.columns.drop(frame.geometry.name)]
    frame = frame[columns]
    frame = frame.set_crs(4326, allow_override=True)
    return geopandas.GeoDataFrame(frame, geometry=frame.geometry.name)


def _exact(data: bytes) -> geopandas.GeoDataFrame:
    import geopandas

    collection = read_feature_collection(data, "data.json")
    return geopandas.GeoDataFrame.from_features(collection, crs="EPSG:4326")
