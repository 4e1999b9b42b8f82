"""A task as a STAC 1.1 Item, built with pystac from the task's info.json, data.json and files.

- ``id``: the task id.
- ``geometry``: the union of the data.json footprints (the features that name a raster in
  ``up42.data_path``), else the union of the rasters' bounds in EPSG:4326, else null.
- ``bbox``: the bounds of the geometry *and* of every raster, so a client that chooses by
  bbox finds every pixel of the task (a footprint leaves out a raster's nodata border).
- ``datetime`` / ``start_datetime`` / ``end_datetime``: ``finishedAt`` / ``startedAt`` /
  ``finishedAt`` (the interval only when both are there and in order; without either time,
  the time info.json was written); ``title`` and ``description`` from ``name`` and ``description``; every other
  info.json field under the ``jobtask:`` prefix.
- ``jobtask:hrefs_expire``: when the signed asset hrefs stop working (ask again for new ones).
- one asset per result file, keyed by its path relative to ``output/``: the signed file URL,
  its media type (the COG profile for a Cloud-Optimized GeoTIFF), roles (``data`` for rasters
  and vectors, ``metadata`` for data.json), ``file:size`` and ``file:checksum`` (SHA-256
  multihash); a raster's projection, ``raster:bands`` and ``eo:bands`` fields, read by rio-stac
  and kept per asset, since the rasters of one task may differ.
- one asset per quicklook, keyed ``quicklook:NAME``: role ``overview``, the first also
  ``thumbnail``.

The building is pure: the routes pass in what the store holds and the URLs they signed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pystac
from pystac.extensions.file import FileExtension
from rio_stac.stac import EO_EXT_VERSION, RASTER_EXT_VERSION
from shapely.errors import ShapelyError
from shapely.geometry import box, mapping, shape
from shapely.ops import unary_union

from .. import timestamps
from .outputs import Facts, finite

PREFIX = "jobtask:"
EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",  # outputs.py writes v2's names
    "raster": f"https://stac-extensions.github.io/raster/{RASTER_EXT_VERSION}/schema.json",
    "eo": f"https://stac-extensions.github.io/eo/{EO_EXT_VERSION}/schema.json",
}
_CONSUMED = {"id", "name", "description", "startedAt", "finishedAt"}  # fields with a STAC place of their own


@dataclass(frozen=True)
class ResultAsset:
    """One result file as the Item lists it."""

    path: str
    facts: Facts
    href: str


@dataclass(frozen=True)
class QuicklookAsset:
    """One quicklook as the Item lists it."""

    name: str
    media_type: str
    href: str


def parse_time(value: Any) -> datetime | None:
    """An info.json time as an aware datetime (UTC when it names no zone), or None when it is not one."""
    parsed = timestamps.parse_time(value)
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def footprints(features: Sequence[dict[str, Any]]) -> list[Any]:
    """The shapely geometries of the data.json features that name a raster (``up42.data_path``)."""
    shapes = []
    for feature in features:
        props = feature.get("properties") or {}
        geometry = feature.get("geometry")
        if isinstance(props, dict) and props.get("up42.data_path") and isinstance(geometry, dict):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # shapely on NaN coordinates, left out below
                    found = shape(geometry)
                if found.is_empty or found.geom_type not in ("Polygon", "MultiPolygon"):
                    continue
                if not all(math.isfinite(v) for v in found.bounds):
                    continue  # NaN or infinite coordinates (Python's json reads NaN)
                shapes.append(found if found.is_valid else found.buffer(0))
            except (ValueError, TypeError, AttributeError, KeyError, IndexError, ShapelyError):
                continue
    return shapes


def task_item(
    info: dict[str, Any],
    features: Sequence[dict[str, Any]],
    files: Sequence[ResultAsset],
    quicklooks: Sequence[QuicklookAsset],
    *,
    self_href: str,
    hrefs_expire: datetime,
    fallback_time: datetime,
) -> pystac.Item:
    """The STAC Item of one task (see the module's docstring for each field).

    Args:
        info: The task's info.json (with ``id``).
        features: The features of its data.json (empty without one).
        files: Its result files with their facts and signed URLs.
        quicklooks: Its quicklooks with their signed URLs.
        self_href: The Item's own URL.
        hrefs_expire: When the signed URLs expire.
        fallback_time: The Item's datetime when info.json has neither startedAt nor finishedAt.
    """
    raster_boxes = [box(*f.facts.raster.bbox) for f in files if f.facts.raster and f.facts.raster.bbox]
    found = footprints(features) or raster_boxes
    geometry = unary_union(found) if found else None
    bounds = unary_union([geometry, *raster_boxes]).bounds if geometry is not None else None
    started, finished = parse_time(info.get("startedAt")), parse_time(info.get("finishedAt"))
    if started is not None and finished is not None and started > finished:
        started = None  # a start after the end is no interval: the end alone is the Item's time
    properties: dict[str, Any] = {f"{PREFIX}{k}": v for k, v in info.items() if k not in _CONSUMED}
    if isinstance(info.get("name"), str):
        properties["title"] = info["name"]
    if isinstance(info.get("description"), str):
        properties["description"] = info["description"]
    properties[f"{PREFIX}hrefs_expire"] = hrefs_expire.astimezone(UTC).isoformat().replace("+00:00", "Z")
    item = pystac.Item(
        id=str(info["id"]),
        geometry=mapping(geometry) if geometry is not None else None,
        bbox=list(bounds) if bounds is not None else None,
        datetime=finished or started or fallback_time,
        properties=finite(properties),
        start_datetime=started if started and finished else None,
        end_datetime=finished if started and finished else None,
    )
    item.add_link(pystac.Link(pystac.RelType.SELF, self_href, media_type="application/geo+json"))
    used: set[str] = set()
    for result in files:
        asset = pystac.Asset(
            href=result.href,
            title=result.path.rsplit("/", 1)[-1],
            media_type=result.facts.media_type,
            roles=list(result.facts.roles) or None,
        )
        if result.facts.raster is not None:
            asset.extra_fields.update(result.facts.raster.fields)
            used.update(key.split(":", 1)[0] for key in result.facts.raster.fields if ":" in key)
        file_ext = FileExtension.ext(asset, add_if_missing=False)
        file_ext.size, file_ext.checksum = result.facts.size, result.facts.multihash
        item.add_asset(result.path, asset)
    for number, quicklook in enumerate(quicklooks):
        key = f"quicklook:{quicklook.name}"
        if key not in item.assets:
            roles = ["thumbnail", "overview"] if number == 0 else ["overview"]
            item.add_asset(
                key, pystac.Asset(quicklook.href, quicklook.name, media_type=quicklook.media_type, roles=roles)
            )
    FileExtension.add_to(item)
    item.stac_extensions.extend(EXTENSIONS[name] for name in sorted(used) if name in EXTENSIONS)
    return item


def item_dict(item: pystac.Item) -> dict[str, Any]:
    """The Item as JSON, with absolute links and no NaN."""
    return finite(item.to_dict(include_self_link=True, transform_hrefs=False))  # type: ignore[no-any-return]


__all__ = ["PREFIX", "QuicklookAsset", "ResultAsset", "footprints", "item_dict", "parse_time", "task_item"]
