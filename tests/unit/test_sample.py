"""The sample store: deterministic, realistic, and what later issues rely on."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, Compression
from shapely.geometry import shape

from jobtask_widgets.cog import is_cog
from jobtask_widgets.credentials import Credentials
from jobtask_widgets.sample import (
    SAMPLE_API_KEY,
    SAMPLE_JOB_ID,
    SAMPLE_NDVI_TASK,
    SAMPLE_RGB_TASK,
    Sample,
    write_sample,
)


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_two_runs_write_the_same_bytes(own_sample: Sample, tmp_path: Path) -> None:
    again = write_sample(tmp_path / "again")
    ours, theirs = digests(own_sample.root), digests(again.root)
    salted = {name for name in ours if name.endswith("credentials.json")}  # hashes with a fresh salt each
    assert {k: v for k, v in ours.items() if k not in salted} == {k: v for k, v in theirs.items() if k not in salted}
    assert len(ours) == 13 and len(salted) == 1  # credentials; 4 files per task


def test_the_ids_are_those_of_the_documented_example(own_sample: Sample) -> None:
    assert own_sample.job_id == SAMPLE_JOB_ID == "de5806aa-5ef1-4dc9-ab1d-06d7ec1a5021"
    assert own_sample.task_ids[0] == SAMPLE_RGB_TASK == "3f772637-09aa-4164-bded-692fcd746d20"
    creds = json.loads((own_sample.root / "credentials.json").read_text())
    assert creds["version"] == 2 and list(creds["projects"]) == [own_sample.project_id]
    assert list(creds["users"]) == ["analyst"] and creds["users"]["analyst"]["projects"] == "*"
    text = (own_sample.root / "credentials.json").read_text()
    assert SAMPLE_API_KEY not in text and "sample-password" not in text  # hashed
    login = Credentials.load(own_sample.root / "credentials.json")
    assert login.check_project_key(own_sample.project_id, SAMPLE_API_KEY)
    assert login.check_user("analyst", "sample-password") and not login.check_user("analyst", "wrong")


def features(sample: Sample, task: str) -> list[dict]:
    return json.loads((sample.task_dir(task) / "output" / "data.json").read_text())["features"]


def test_each_task_names_its_raster_in_data_json(own_sample: Sample) -> None:
    for task in own_sample.task_ids:
        info = json.loads((own_sample.task_dir(task) / "info.json").read_text())
        assert info["id"] == task
        assert info["status"] == "SUCCEEDED"
        assert {"name", "startedAt", "finishedAt", "blockVersion"} <= set(info)
        assert {"name", "displayName"} <= set(info["block"])
        footprint = features(own_sample, task)[0]
        raster = own_sample.task_dir(task) / "output" / footprint["properties"]["up42.data_path"]
        assert raster.is_file()
        with rasterio.open(raster) as src:
            west, south, east, north = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        fp = shape(footprint["geometry"])
        assert fp.is_valid
        assert not fp.interiors
        minx, miny, maxx, maxy = fp.bounds
        assert west - 0.01 <= minx < maxx <= east + 0.01
        assert south - 0.01 <= miny < maxy <= north + 0.01
        assert (own_sample.task_dir(task) / "quicklooks" / "preview.png").read_bytes()[:4] == b"\x89PNG"


def test_the_rgb_task_has_detections_inside_its_footprint(own_sample: Sample) -> None:
    footprint, *detections = features(own_sample, SAMPLE_RGB_TASK)
    area = shape(footprint["geometry"])
    kinds = {d["geometry"]["type"] for d in detections}
    assert kinds == {"Polygon", "Point"}
    for det in detections:
        assert {"uid", "class", "confidence"} <= set(det["properties"])
        assert area.contains(shape(det["geometry"])), det["properties"]["uid"]
    assert len({d["properties"]["uid"] for d in detections}) == len(detections)
    with rasterio.open(
        own_sample.task_dir(SAMPLE_RGB_TASK) / "output" / footprint["properties"]["up42.data_path"]
    ) as src:
        assert (src.count, src.dtypes[0], src.width, src.height) == (3, "uint8", 791, 718)


def test_the_multiband_raster_is_4_band_uint16_tiled_deflate_with_a_nodata_border(own_sample: Sample) -> None:
    footprint = features(own_sample, own_sample.task_ids[1])[0]
    path = own_sample.task_dir(own_sample.task_ids[1]) / "output" / footprint["properties"]["up42.data_path"]
    with rasterio.open(path) as src:
        assert (src.count, src.width, src.height) == (4, 2000, 2000)
        assert set(src.dtypes) == {"uint16"}
        assert src.nodata == 0
        assert src.profile["tiled"]
        assert src.block_shapes[0] == (512, 512)
        assert src.compression == Compression.deflate
        assert src.descriptions == ("blue", "green", "red", "nir")
        assert src.colorinterp == (ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.nir)
        assert src.overviews(1) == [2, 4]  # down to one 512 px tile
        assert src.crs.to_epsg() == 32633
        small = src.read(out_shape=(4, 250, 250), masked=True)  # decimated, from the overviews
    valid = ~small.mask[0]
    assert valid[0, 0] == valid[-1, -1] == False  # noqa: E712  the corners are nodata
    assert 0.6 < valid.mean() < 0.95
    ndvi = (small[3].astype(float) - small[2]) / (small[3] + small[2])
    assert ndvi.max() > 0.6  # vegetation
    assert ndvi.min() < 0.0  # water
    assert np.ma.median(small[3]) > np.ma.median(small[0])  # NIR brighter than blue: stretch per band matters


def test_every_sample_raster_is_a_cog(own_sample: Sample) -> None:
    tifs = [p for t in own_sample.task_ids for p in (own_sample.task_dir(t) / "output").rglob("*.tif")]
    assert len(tifs) == 3 and all(is_cog(p) for p in tifs)


def test_the_ndvi_raster_is_one_float32_band_in_minus_one_to_one_with_nan_as_nodata(own_sample: Sample) -> None:
    footprint = features(own_sample, SAMPLE_NDVI_TASK)[0]
    assert footprint["geometry"]["type"] == "Polygon"
    path = own_sample.task_dir(SAMPLE_NDVI_TASK) / "output" / footprint["properties"]["up42.data_path"]
    with rasterio.open(path) as src:
        assert (src.count, src.dtypes[0], src.width, src.height) == (1, "float32", 1000, 1000)
        assert np.isnan(src.nodata) and src.descriptions == ("ndvi",)
        values = src.read(1, out_shape=(250, 250))
    valid = np.isfinite(values)
    assert not valid[0, 0] and 0.6 < valid.mean() < 0.95  # NaN outside the swath
    assert -1 <= values[valid].min() < 0 < 0.6 < values[valid].max() <= 1  # water and vegetation
    assert (own_sample.task_dir(SAMPLE_NDVI_TASK) / "quicklooks" / "preview.png").is_file()


def test_the_sample_command_writes_the_store(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jobtask_widgets.cli", "sample", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Sample store written to" in result.stdout
    assert len(digests(tmp_path / "s")) == 13  # credentials; 4 files per task
