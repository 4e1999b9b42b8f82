"""GeoJSON FeatureCollections as GeoDataFrames, read by GDAL rather than feature by feature.

``to_geodataframe`` gives the same rows, property columns and geometries as
``GeoDataFrame.from_features`` (EPSG:4326), but parses with GDAL's GeoJSON driver through
pyogrio, with no per-feature Python loop. Collections GDAL would type differently (nested
objects, lists, a column mixing types) go the exact, slower way.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import geopandas


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

    try:
        collection: Any = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"data.json is not valid JSON: {exc}") from exc
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise ValueError("data.json is not a GeoJSON FeatureCollection")
    return geopandas.GeoDataFrame.from_features(collection, crs="EPSG:4326")
