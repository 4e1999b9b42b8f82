"""The sample job-task store: what the demo serves and the tests run against.

``write_sample(root)`` writes, deterministically and with fixed ids, ``ROOT/credentials.json``
and one project with one job holding three job tasks, every raster a Cloud-Optimized GeoTIFF
(deflate, internal overviews), so the server's file URLs can be read in place by range:

- ``SAMPLE_RGB_TASK``: real Landsat 7 imagery (``data/RGB.byte.tif``, CC0, see
  ``data/README.md``), a data.json with the scene's footprint (naming the raster in
  ``up42.data_path``) and detections (polygons and points), and a PNG quicklook;
- ``SAMPLE_MULTIBAND_TASK``: a synthetic 2000 x 2000, 4-band uint16 surface-reflectance
  raster (blue, green, red, NIR; a nodata border), its data.json and a quicklook;
- ``SAMPLE_NDVI_TASK``: the NDVI of that scene at 20 m, one float32 band in -1...1 with NaN as
  nodata (single-band colormaps, floats and NaN), its footprint and a colormapped quicklook.

The ids of the first task and of the job are those of the documented API's example, so the
documentation's snippets run against the sample as they are.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import xy
from rasterio.warp import transform as transform_xy
from rio_tiler.colormap import cmap

from .cog import write_cog
from .credentials import Credentials, hash_secret
from .footprint import footprint_4326
from .storelayout import write_json
from .stretch import band_ranges, to_unit

SAMPLE_PROJECT_ID = "7b2ee4c5-1c0e-4a7a-9d54-1f1a6c9f2e31"
SAMPLE_JOB_ID = "de5806aa-5ef1-4dc9-ab1d-06d7ec1a5021"
SAMPLE_RGB_TASK = "3f772637-09aa-4164-bded-692fcd746d20"
SAMPLE_MULTIBAND_TASK = "9c41d0e2-6b7a-4f35-8e2d-5a0b3c7d1e84"
SAMPLE_NDVI_TASK = "b5e2c7d1-8f3a-4d6e-b9a0-1c2d3e4f5a6b"
SAMPLE_API_KEY = "sample-api-key-not-a-secret"
SAMPLE_USERS = {"analyst": "sample-password"}

RGB_SCENE_ID = "a1f3c5e7-2b4d-4f60-8a9c-0e1d2c3b4a59"
MULTIBAND_SCENE_ID = "0d9e8f7a-6b5c-4d3e-9f21-3a4b5c6d7e8f"
MULTIBAND_SIZE = 2000


@dataclass(frozen=True)
class Sample:
    """Where the sample store is and what it holds."""

    root: Path
    project_id: str = SAMPLE_PROJECT_ID
    job_id: str = SAMPLE_JOB_ID
    task_ids: tuple[str, ...] = (SAMPLE_RGB_TASK, SAMPLE_MULTIBAND_TASK, SAMPLE_NDVI_TASK)
    project_api_key: str = SAMPLE_API_KEY

    def task_dir(self, task_id: str) -> Path:
        """The folder of one sample task."""
        return self.root / "projects" / self.project_id / "jobs" / self.job_id / "tasks" / task_id


def sample_login() -> Credentials:
    """The sample store's documented login, as version 2 credentials (hashed, a fresh salt each time)."""
    login = Credentials({SAMPLE_PROJECT_ID: hash_secret(SAMPLE_API_KEY)})
    for name, password in SAMPLE_USERS.items():
        login = login.with_user(name, password, None)
    return login


def write_sample(root: str | os.PathLike[str]) -> Sample:
    """Write the sample store into ``root`` (created if needed; sample files are replaced).

    Its ``credentials.json`` (version 2, hashed) accepts the documented sample login: project
    ``SAMPLE_PROJECT_ID`` with API key ``SAMPLE_API_KEY``, and user ``analyst`` with password
    ``sample-password``.

    Returns:
        The sample's ids and root.
    """
    sample = Sample(Path(root).resolve())
    sample.root.mkdir(parents=True, exist_ok=True)
    sample_login().save(sample.root / "credentials.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        _write_rgb_task(sample.task_dir(SAMPLE_RGB_TASK))
        data = multiband_array()
        _write_multiband_task(sample.task_dir(SAMPLE_MULTIBAND_TASK), data)
        _write_ndvi_task(sample.task_dir(SAMPLE_NDVI_TASK), data)
    for sidecar in sample.root.rglob("*.aux.xml"):  # GDAL's statistics sidecars are no results
        sidecar.unlink()
    return sample


# -- task 1: Landsat RGB ---------------------------------------------------------------------------


def _write_rgb_task(task: Path) -> None:
    _fresh(task)
    rel = f"{RGB_SCENE_ID}/landsat7_etm_rgb.tif"
    tif = task / "output" / rel
    tif.parent.mkdir(parents=True)
    with resources.as_file(resources.files("jobtask_widgets") / "data" / "RGB.byte.tif") as source:
        write_cog(source, tif)
    with rasterio.open(tif) as src:
        mask = src.dataset_mask()
        footprint = _footprint(mask, src.transform, src.crs, tolerance=900.0)
        detections = _rgb_detections(src)
        _write_quicklook(src.read(out_shape=(3, 240, 264)), src.read_masks(1, out_shape=(240, 264)), task)
    footprint_props = {
        "up42.data_path": rel,
        "uid": "scene",
        "sceneId": RGB_SCENE_ID,
        "sensor": "Landsat 7 ETM+",
        "bands": "red, green, blue",
        "resolution_m": 300,
        "acquisitionDate": "1999-11-12",
    }
    write_json(task / "output" / "data.json", _collection([_feature(footprint, footprint_props), *detections]))
    write_json(
        task / "info.json",
        _info(
            SAMPLE_RGB_TASK,
            name="landsat-7-etm-rgb:1",
            block=("landsat-7-etm-rgb", "Landsat 7 ETM+ RGB scene"),
            version="1.4.2",
            started="2026-11-02T09:14:03.512Z",
            finished="2026-11-02T09:16:41.907Z",
            description="Full scene, bands 3-2-1, with cloud and vessel detections",
        ),
    )


def _rgb_detections(src: rasterio.DatasetReader) -> list[dict[str, Any]]:
    """A few detections at fixed pixel positions inside the scene's valid data."""
    boxes = [  # (uid, class, confidence, col, row, half-width, half-height) in pixels
        ("det-001", "cloud", 0.93, 450, 105, 40, 25),
        ("det-002", "cloud", 0.81, 385, 185, 45, 35),
        ("det-003", "shallow reef", 0.67, 135, 330, 25, 40),
    ]
    points = [("det-004", "vessel", 0.88, 180, 470), ("det-005", "vessel", 0.74, 620, 520)]
    feats = []
    for uid, cls, conf, col, row, hw, hh in boxes:
        ring = [(col - hw, row - hh), (col + hw, row - hh), (col + hw, row + hh), (col - hw, row + hh)]
        xs, ys = xy(src.transform, [r for _, r in ring], [c for c, _ in ring], offset="ul")
        lon, lat = transform_xy(src.crs, "EPSG:4326", xs, ys)
        coords = [[round(x, 6), round(y, 6)] for x, y in zip(lon, lat, strict=True)]
        area = (2 * hw * src.res[0]) * (2 * hh * src.res[1]) / 1e6
        props = {"uid": uid, "class": cls, "confidence": conf, "area_km2": round(area, 2)}
        feats.append(_feature({"type": "Polygon", "coordinates": [[*coords, coords[0]]]}, props))
    for uid, cls, conf, col, row in points:
        x, y = xy(src.transform, row, col, offset="ul")
        (lon,), (lat,) = transform_xy(src.crs, "EPSG:4326", [x], [y])
        props = {"uid": uid, "class": cls, "confidence": conf, "note": "Check <N/E> edge & haze"}
        feats.append(_feature({"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}, props))
    return feats


# -- task 2: synthetic 4-band surface reflectance ----------------------------------------------------


def multiband_array(size: int = MULTIBAND_SIZE, seed: int = 42) -> np.ndarray:
    """The synthetic scene: (4, size, size) uint16 reflectance x 10000, 0 outside the swath.

    Fields, forest, a river, a town and bare soil with texture, so that band choice and
    stretch visibly matter (vegetation is bright in NIR, water dark everywhere).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # land cover classes: 0 water, 1 forest, 2 green crop, 3 ripe crop, 4 bare soil, 5 town
    parcel = rng.integers(2, 5, size=(size // 90 + 2, size // 130 + 2))
    rows = (np.arange(size) + 37) // 90
    cols = (np.arange(size) + 11) // 130
    cover = parcel[rows][:, cols].astype(np.uint8)
    cover[_smooth_noise(rng, size, 6) > 0.62] = 1
    town = (xx - 0.68) ** 2 + (yy - 0.3) ** 2 < 0.012 + 0.01 * _smooth_noise(rng, size, 12)
    cover[town] = 5
    river_y = 0.55 + 0.08 * np.sin(xx * 9.0) + 0.03 * np.sin(xx * 23.0 + 1.0)
    cover[np.abs(yy - river_y) < 0.009 + 0.004 * np.sin(xx * 31.0)] = 0
    #                      blue  green  red   nir
    signature = np.array(
        [
            [450, 650, 400, 250],
            [280, 520, 310, 3300],
            [420, 880, 540, 4600],
            [760, 1150, 1450, 3000],
            [1150, 1420, 1850, 2500],
            [1250, 1300, 1380, 1900],
        ],
        dtype=np.float32,
    )
    texture = 0.85 + 0.3 * _smooth_noise(rng, size, 120) + rng.normal(0.0, 0.03, (size, size)).astype(np.float32)
    data = signature[cover].transpose(2, 0, 1) * texture
    # a swath tilted by 12 degrees: outside it there is no data
    angle = np.deg2rad(12.0)
    u = (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle)
    v = -(xx - 0.5) * np.sin(angle) + (yy - 0.5) * np.cos(angle)
    valid = (np.abs(u) < 0.43) & (np.abs(v) < 0.46)
    out = np.clip(data, 1, 10000).astype(np.uint16)
    out[:, ~valid] = 0
    return out


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random (cells+1)² grid, smoothly interpolated to size²."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    t = np.linspace(0, cells, size, endpoint=False, dtype=np.float32)
    i = t.astype(int)
    f = t - i
    f = f * f * (3 - 2 * f)
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return np.asarray(rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :], dtype=np.float32)


MULTIBAND_TRANSFORM = Affine(10.0, 0.0, 383_000.0, 0.0, -10.0, 5_830_000.0)  # near Berlin, 10 m pixels


def _write_multiband_task(task: Path, data: np.ndarray) -> None:
    _fresh(task)
    rel = f"{MULTIBAND_SCENE_ID}/reflectance_bgrn.tif"
    tif = task / "output" / rel
    tif.parent.mkdir(parents=True)
    transform = MULTIBAND_TRANSFORM
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": 4, "dtype": "uint16",
        "crs": "EPSG:32633", "transform": transform, "nodata": 0,
    }  # fmt: skip
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
            dst.colorinterp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.nir]
            for band, (name, wavelength) in enumerate([("blue", 490), ("green", 560), ("red", 665), ("nir", 842)], 1):
                dst.set_band_description(band, name)
                dst.update_tags(band, wavelength_nm=str(wavelength))
            dst.update_tags(scale="0.0001", unit="surface reflectance")
        write_cog(memory.name, tif)
    valid = (data[0] > 0).astype(np.uint8) * 255
    footprint = _footprint(valid, transform, "EPSG:32633", tolerance=40.0)
    step = 4
    small = data[:, ::step, ::step]
    rgb = _stretch_to_byte(small[[2, 1, 0]], small[0] > 0)
    _write_quicklook(rgb, (small[0] > 0).astype(np.uint8) * 255, task)
    props = {
        "up42.data_path": rel,
        "uid": "scene",
        "sceneId": MULTIBAND_SCENE_ID,
        "sensor": "synthetic 4-band (B, G, R, NIR)",
        "resolution_m": 10,
        "cloudCoverage": 0.0,
        "acquisitionDate": "2026-06-21",
    }
    write_json(task / "output" / "data.json", _collection([_feature(footprint, props)]))
    write_json(
        task / "info.json",
        _info(
            SAMPLE_MULTIBAND_TASK,
            name="surface-reflectance-bgrn:1",
            block=("surface-reflectance-bgrn", "4-band surface reflectance (B, G, R, NIR)"),
            version="2.0.1",
            started="2026-11-02T09:16:42.118Z",
            finished="2026-11-02T09:21:05.406Z",
            description="Analysis-ready 4-band reflectance, scaled by 10000, nodata 0",
        ),
    )


# -- task 3: NDVI, one float32 band with NaN as nodata ------------------------------------------------


def ndvi_array(data: np.ndarray, step: int = 2) -> np.ndarray:
    """The NDVI of the multiband scene, decimated by ``step``: float32 in -1...1, NaN outside the swath."""
    red, nir = (data[i, ::step, ::step].astype(np.float32) for i in (2, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
    ndvi[(red == 0) | (nir == 0)] = np.nan
    return np.clip(ndvi, -1.0, 1.0).astype(np.float32)


def _write_ndvi_task(task: Path, data: np.ndarray, step: int = 2) -> None:
    _fresh(task)
    rel = f"{MULTIBAND_SCENE_ID}/ndvi.tif"
    tif = task / "output" / rel
    tif.parent.mkdir(parents=True)
    ndvi = ndvi_array(data, step)
    transform = MULTIBAND_TRANSFORM @ Affine.scale(step)
    profile = {
        "driver": "GTiff", "width": ndvi.shape[1], "height": ndvi.shape[0], "count": 1, "dtype": "float32",
        "crs": "EPSG:32633", "transform": transform, "nodata": float("nan"),
    }  # fmt: skip
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(ndvi, 1)
            dst.set_band_description(1, "ndvi")
            dst.update_tags(unit="NDVI", formula="(nir - red) / (nir + red)")
        write_cog(memory.name, tif)
    valid = np.isfinite(ndvi)
    footprint = _footprint(valid.astype(np.uint8) * 255, transform, "EPSG:32633", tolerance=40.0)
    small, small_valid = ndvi[::2, ::2], valid[::2, ::2]
    lut = np.array([cmap.get("rdylgn")[i][:3] for i in range(256)], dtype=np.uint8)
    index = np.round((np.nan_to_num(small, nan=0.0) + 1.0) * 127.5).astype(np.uint8)
    _write_quicklook(lut[index].transpose(2, 0, 1), small_valid.astype(np.uint8) * 255, task)
    props = {
        "up42.data_path": rel,
        "uid": "scene",
        "sceneId": MULTIBAND_SCENE_ID,
        "product": "NDVI",
        "resolution_m": 10 * step,
        "valueRange": [-1, 1],
        "acquisitionDate": "2026-06-21",
    }
    write_json(task / "output" / "data.json", _collection([_feature(footprint, props)]))
    write_json(
        task / "info.json",
        _info(
            SAMPLE_NDVI_TASK,
            name="ndvi:1",
            block=("ndvi", "NDVI (normalised difference vegetation index)"),
            version="1.0.3",
            started="2026-11-02T09:21:05.611Z",
            finished="2026-11-02T09:21:39.052Z",
            description="NDVI from the 4-band reflectance at 20 m, float32, NaN as nodata",
        ),
    )


def _stretch_to_byte(bands: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The quicklook's bytes: each band stretched 2-98 % over its valid pixels, 0 elsewhere."""
    masked = np.ma.MaskedArray(bands, mask=np.broadcast_to(~valid, bands.shape))
    unit = to_unit(masked, band_ranges(masked, "percentile", (2.0, 98.0)))
    return np.round(unit.filled(0) * 255).astype(np.uint8)


# -- shared pieces -------------------------------------------------------------------------------------


def _footprint(mask: np.ndarray, transform: Any, crs: Any, tolerance: float) -> dict[str, Any]:
    """The outline of the largest valid area of a sample raster, in EPSG:4326."""
    geometry = footprint_4326(mask, transform, crs, tolerance)
    if geometry is None:
        raise ValueError("a sample raster has no valid pixel")
    return geometry


def _write_quicklook(rgb: np.ndarray, alpha: np.ndarray, task: Path) -> None:
    folder = task / "quicklooks"
    folder.mkdir(parents=True)
    rgba = np.concatenate([rgb.astype(np.uint8), alpha[None].astype(np.uint8)])
    _, height, width = rgba.shape
    with rasterio.open(folder / "preview.png", "w", driver="PNG", width=width, height=height, count=4,
                       dtype="uint8") as dst:  # fmt: skip
        dst.write(rgba)


def _feature(geometry: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def _info(
    task_id: str, *, name: str, block: tuple[str, str], version: str, started: str, finished: str, description: str
) -> dict[str, Any]:
    return {
        "id": task_id,
        "name": name,
        "status": "SUCCEEDED",
        "startedAt": started,
        "finishedAt": finished,
        "block": {"name": block[0], "displayName": block[1]},
        "blockVersion": version,
        "jobId": SAMPLE_JOB_ID,
        "projectId": SAMPLE_PROJECT_ID,
        "progress": 100,
        "tag": name.rsplit(":", 1)[-1],
        "description": description,
    }


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
