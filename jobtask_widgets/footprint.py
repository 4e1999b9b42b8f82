"""Footprints: the outline of a raster's valid data, as a GeoJSON geometry in EPSG:4326.

Pure functions on a mask array (no file handles): whoever reads the raster reads its mask,
decimated, and passes it in with the matching transform.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rasterio.features import shapes
from rasterio.warp import transform_geom
from shapely.geometry import MultiPolygon, Polygon, mapping, shape


def footprint_4326(
    mask: np.ndarray, transform: Any, crs: Any, tolerance: float, *, largest_only: bool = True
) -> dict[str, Any] | None:
    """The outline of the valid data in ``mask`` (non-zero = valid), in EPSG:4326.

    Args:
        mask: A 2-D array, non-zero where the raster has data.
        transform: The mask's affine transform.
        crs: The raster's CRS.
        tolerance: Simplification tolerance, in the CRS's units.
        largest_only: The largest area only, without holes (a scene's outline); else every
            area (holes kept) as a MultiPolygon when there are several.

    Returns:
        A GeoJSON Polygon or MultiPolygon with coordinates rounded to 6 decimals; None when the
        mask has no valid pixel.
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    polygons = [shape(geom) for geom, value in shapes(mask, mask=mask > 0, transform=transform) if value]
    if not polygons:
        return None
    if largest_only:
        outline: Polygon | MultiPolygon = Polygon(max(polygons, key=lambda p: p.area).exterior)
    else:
        outline = polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)
    geom = transform_geom(crs, "EPSG:4326", mapping(outline.simplify(tolerance)), precision=6)
    return {"type": geom["type"], "coordinates": geom["coordinates"]}


__all__ = ["footprint_4326"]
