"""The tasks as STAC: the Item of each task and the job's ItemCollection, validated offline and read with pystac."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import numpy as np
import pystac
import rasterio
import requests
from rasterio.warp import transform_bounds
from stac_pydantic import Item as ItemModel
from stac_pydantic import ItemCollection as ItemCollectionModel

from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK, SAMPLE_NDVI_TASK, SAMPLE_RGB_TASK, Sample
from tests.helpers import Api, error_of, store_output

COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def item_of(api: Api, task: str) -> dict:
    answer = api.get(f"{api.task(task)}/stac/")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/geo+json"
    return answer.json()


def test_every_task_is_a_valid_stac_1_1_item_with_one_asset_per_file(api: Api, sample: Sample) -> None:
    for task in sample.task_ids:
        raw = item_of(api, task)
        ItemModel.model_validate(raw)  # stac-pydantic: the core Item schema, offline
        item = pystac.Item.from_dict(raw)
        assert item.id == task and raw["stac_version"] == "1.1.0"
        info = api.get(f"{api.job}/tasks/").json()["data"]
        info = next(i for i in info if i["id"] == task)
        assert item.properties["title"] == info["name"]
        assert item.properties["jobtask:status"] == "SUCCEEDED"
        assert item.properties["jobtask:block"] == info["block"]
        assert item.properties["jobtask:blockVersion"] == info["blockVersion"]
        started = datetime.fromisoformat(info["startedAt"].replace("Z", "+00:00"))
        finished = datetime.fromisoformat(info["finishedAt"].replace("Z", "+00:00"))
        assert item.common_metadata.start_datetime == started
        assert item.common_metadata.end_datetime == finished and item.datetime == finished
        expire = datetime.fromisoformat(item.properties["jobtask:hrefs_expire"].replace("Z", "+00:00"))
        assert 0 < (expire - datetime.now(UTC)).total_seconds() <= 600
        on_disk = store_output(sample, task)
        results = {k: a for k, a in item.assets.items() if not k.startswith("quicklook:")}
        assert sorted(results) == sorted(on_disk)
        for path, asset in results.items():
            assert asset.extra_fields["file:size"] == len(on_disk[path])
            assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(on_disk[path]).hexdigest()
            assert requests.get(asset.href, timeout=30).content == on_disk[path]  # the href is the signed file URL
        assert results["data.json"].roles == ["metadata"]
        assert item.assets["quicklook:preview.png"].roles == ["thumbnail", "overview"]
        assert item.assets["quicklook:preview.png"].media_type == "image/png"
        assert item.get_self_href() == f"{api.task(task)}/stac/"
        assert "https://stac-extensions.github.io/file/v2.1.0/schema.json" in item.stac_extensions
        assert any("/projection/" in ext for ext in item.stac_extensions)


def test_raster_assets_carry_cog_type_projection_and_band_fields(api: Api, sample: Sample) -> None:
    raw = item_of(api, SAMPLE_MULTIBAND_TASK)
    assert "https://stac-extensions.github.io/projection/v2.0.0/schema.json" in raw["stac_extensions"]
    item = pystac.Item.from_dict(raw)
    raster = next(a for k, a in item.assets.items() if k.endswith(".tif"))
    assert raster.media_type == COG and raster.roles == ["data"]
    assert raster.extra_fields["proj:code"] == "EPSG:32633"
    assert raster.extra_fields["proj:transform"][:6] == [10.0, 0.0, 383000.0, 0.0, -10.0, 5830000.0]
    assert raster.extra_fields["proj:shape"] == [2000, 2000]
    bands = raster.extra_fields["raster:bands"]
    assert [b["data_type"] for b in bands] == ["uint16"] * 4 and bands[0]["nodata"] == 0
    assert 0 < bands[3]["statistics"]["mean"] < 10000
    assert [b["description"] for b in raster.extra_fields["eo:bands"]] == ["blue", "green", "red", "nir"]
    ndvi = pystac.Item.from_dict(item_of(api, SAMPLE_NDVI_TASK))
    band = next(a for k, a in ndvi.assets.items() if k.endswith(".tif")).extra_fields["raster:bands"][0]
    assert band["data_type"] == "float32" and band["nodata"] == "nan"  # NaN as the raster extension spells it
    assert -1 <= band["statistics"]["minimum"] < band["statistics"]["maximum"] <= 1


def test_geometry_is_the_footprint_union_and_bbox_holds_every_raster(api: Api, sample: Sample) -> None:
    for task in sample.task_ids:
        item = pystac.Item.from_dict(item_of(api, task))
        west, south, east, north = item.bbox
        footprint = next(
            f
            for f in api.get(f"{api.task(task)}/outputs/data-json/").json()["features"]
            if "up42.data_path" in f["properties"]
        )
        assert item.geometry["type"] == footprint["geometry"]["type"]
        assert item.geometry["coordinates"][0][0] == footprint["geometry"]["coordinates"][0][0]
        for path in (p for p in store_output(sample, task) if p.endswith(".tif")):
            with rasterio.open(sample.task_dir(task) / "output" / path) as src:
                w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
            assert west <= w + 1e-6 and south <= s + 1e-6 and east >= e - 1e-6 and north >= n - 1e-6, (task, path)


def test_the_job_is_an_item_collection_of_its_tasks(api: Api, sample: Sample) -> None:
    answer = api.get(f"{api.job}/stac/")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/geo+json"
    raw = answer.json()
    ItemCollectionModel.model_validate(raw)
    collection = pystac.ItemCollection.from_dict(raw)
    assert [item.id for item in collection] == sorted(sample.task_ids)
    assert {SAMPLE_RGB_TASK, SAMPLE_MULTIBAND_TASK, SAMPLE_NDVI_TASK} == {item.id for item in collection}
    assert raw["links"][0] == {"rel": "self", "href": f"{api.job}/stac/", "type": "application/geo+json"}


def test_stac_needs_a_token_and_knows_no_other_task(api: Api, sample: Sample) -> None:
    assert requests.get(f"{api.task()}/stac/", timeout=30).status_code == 401
    unknown = api.get(f"{api.job}/tasks/no-such-task/stac/")
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "NOT_FOUND"
    assert api.get(f"{api.url}/projects/{sample.project_id}/jobs/no-such-job/stac/").status_code == 404


def test_odd_metadata_still_gives_a_valid_item(own_api: Api, own_sample: Sample) -> None:
    task = own_sample.task_ids[0]
    folder = own_sample.task_dir(task)
    info = json.loads((folder / "info.json").read_text())
    (folder / "info.json").write_text(
        json.dumps({**info, "startedAt": info["finishedAt"], "finishedAt": info["startedAt"]})
    )
    collection = json.loads((folder / "output" / "data.json").read_text())
    collection["features"][0]["geometry"]["coordinates"][0][1] = [float("nan"), 52.0]  # Python's json writes NaN
    (folder / "output" / "data.json").write_text(json.dumps(collection))
    with rasterio.open(
        folder / "output" / "plain.tif", "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8"
    ) as dst:  # no CRS, no transform
        dst.write(np.full((1, 8, 8), 7, dtype="uint8"))
    raw = item_of(own_api, task)
    ItemModel.model_validate(raw)
    item = pystac.Item.from_dict(raw)
    assert "start_datetime" not in raw["properties"]  # a start after the end is no interval
    assert item.datetime == datetime.fromisoformat(info["startedAt"].replace("Z", "+00:00"))
    assert item.bbox is not None and all(np.isfinite(item.bbox))  # the NaN footprint is left out: the raster's bounds
    plain = raw["assets"]["plain.tif"]
    assert "proj:code" not in plain and plain["raster:bands"][0]["data_type"] == "uint8"
    (folder / "info.json").write_text(
        json.dumps({k: v for k, v in info.items() if k not in ("startedAt", "finishedAt")})
    )
    timeless = pystac.Item.from_dict(item_of(own_api, task))
    mtime = datetime.fromtimestamp((folder / "info.json").stat().st_mtime, UTC)
    assert abs((timeless.datetime - mtime).total_seconds()) < 1  # when info.json was written
