"""`jobtask-widgets publish`: a folder of outputs becomes a task that every endpoint serves."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pystac
import rasterio
import requests
from rasterio.transform import from_origin
from rasterio.windows import Window
from stac_pydantic import Item as ItemModel

from jobtask_widgets.cog import is_cog
from jobtask_widgets.credentials import Credentials
from jobtask_widgets.sample import SAMPLE_API_KEY, Sample
from jobtask_widgets.server.store import Store
from jobtask_widgets.storelayout import write_private_json
from tests.helpers import COMMAND, Api

TASK = "my-task-1"


def leftovers(root: Path) -> list[str]:
    """What publishing left in the store's staging folder besides its lock file."""
    staging = root / ".publishing"
    return sorted(p.name for p in staging.iterdir() if p.name != ".lock") if staging.exists() else []


def outputs_folder(folder: Path) -> Path:
    """A user's folder: a plain (striped, no overviews) GeoTIFF, a GeoJSON and a text file."""
    (folder / "scene").mkdir(parents=True)
    data = (np.random.default_rng(7).random((3, 1200, 1500)) * 3000).astype("uint16")
    data[:, :100, :] = 0  # a nodata strip
    profile = {"driver": "GTiff", "width": 1500, "height": 1200, "count": 3, "dtype": "uint16", "nodata": 0,
               "crs": "EPSG:32632", "transform": from_origin(500_000, 5_600_000, 20, 20)}  # fmt: skip
    with rasterio.open(folder / "scene" / "classified result.tif", "w", **profile) as dst:
        dst.write(data)
    point = {
        "type": "Feature",
        "properties": {"crop": "wheat"},
        "geometry": {"type": "Point", "coordinates": [9.0, 50.5]},
    }
    (folder / "fields.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [point]}))
    (folder / "README.txt").write_text("made by our pipeline\n")
    return folder


def run_publish(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, "publish", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_publish_makes_a_task_every_endpoint_serves(own_api: Api, own_sample: Sample, tmp_path: Path) -> None:
    source = outputs_folder(tmp_path / "mine")
    result = run_publish(source, own_sample.root, "--project", own_sample.project_id, "--job", own_sample.job_id,
                         "--task", TASK, "--name", "field classification")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "converting to a Cloud-Optimized GeoTIFF" in result.stderr  # progress, per file
    assert f"Task {TASK}: 4 files, 1 converted to COGs, 1 quicklooks" in result.stdout
    task_dir = own_sample.task_dir(TASK)
    assert is_cog(task_dir / "output" / "scene" / "classified result.tif")
    assert leftovers(own_sample.root) == []
    Store(own_sample.root).check()  # the store stays valid

    tasks = own_api.get(f"{own_api.job}/tasks/").json()["data"]
    info = next(t for t in tasks if t["id"] == TASK)
    assert info["name"] == "field classification" and info["status"] == "SUCCEEDED"
    assert info["block"] == {"name": "field classification", "displayName": "field classification"}
    assert info["startedAt"] <= info["finishedAt"]

    features = own_api.get(f"{own_api.task(TASK)}/outputs/data-json/").json()["features"]
    footprint = next(f for f in features if f["properties"].get("up42.data_path") == "scene/classified result.tif")
    assert footprint["geometry"]["type"] in ("Polygon", "MultiPolygon")
    lon, lat = np.array(footprint["geometry"]["coordinates"][0]).reshape(-1, 2).mean(axis=0)
    assert 8.9 < lon < 9.5 and 50.4 < lat < 50.6  # where the raster is (UTM 32N, near Frankfurt)

    assert own_api.get(f"{own_api.task(TASK)}/outputs/quicklooks/").json()["data"] == ["classified_result.png"]
    png = own_api.get(f"{own_api.task(TASK)}/outputs/quicklooks/classified_result.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

    archive_url = own_api.get(f"{own_api.task(TASK)}/downloads/results/").json()["data"]["url"]
    with tarfile.open(fileobj=io.BytesIO(requests.get(archive_url, timeout=60).content)) as tar:
        assert sorted(tar.getnames()) == [
            "output/README.txt", "output/data.json", "output/fields.geojson", "output/scene/classified result.tif",
        ]  # fmt: skip

    files = {f["path"]: f for f in own_api.get(f"{own_api.task(TASK)}/outputs/files/").json()["data"]}
    assert files["fields.geojson"]["media_type"] == "application/geo+json"
    assert files["README.txt"]["media_type"] == "text/plain"
    assert requests.get(files["README.txt"]["url"], timeout=30).text == "made by our pipeline\n"
    url = files["scene/classified result.tif"]["url"]
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(url) as remote:
        window = remote.read(window=Window(300, 400, 128, 128))
    with rasterio.open(source / "scene" / "classified result.tif") as original:
        assert np.array_equal(window, original.read(window=Window(300, 400, 128, 128)))  # converted losslessly

    raw = own_api.get(f"{own_api.task(TASK)}/stac/").json()
    ItemModel.model_validate(raw)
    item = pystac.Item.from_dict(raw)
    assert sorted(item.assets) == ["README.txt", "data.json", "fields.geojson", "quicklook:classified_result.png",
                                   "scene/classified result.tif"]  # fmt: skip
    assert item.assets["scene/classified result.tif"].media_type == pystac.MediaType.COG
    assert item.assets["fields.geojson"].roles == ["data"]


def test_publish_refuses_to_overwrite_unless_replace(own_sample: Sample, tmp_path: Path) -> None:
    source = outputs_folder(tmp_path / "mine")
    ids = ("--project", own_sample.project_id, "--job", own_sample.job_id, "--task", TASK)
    assert run_publish(source, own_sample.root, *ids).returncode == 0
    info = (own_sample.task_dir(TASK) / "info.json").read_text()
    (source / "README.txt").write_text("second run\n")
    refused = run_publish(source, own_sample.root, *ids)
    assert refused.returncode == 2
    assert f"task {TASK} already exists" in refused.stderr and "--replace" in refused.stderr
    assert (own_sample.task_dir(TASK) / "info.json").read_text() == info  # untouched
    replaced = run_publish(source, own_sample.root, *ids, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert (own_sample.task_dir(TASK) / "output" / "README.txt").read_text() == "second run\n"
    assert leftovers(own_sample.root) == []


def test_a_broken_geotiff_fails_the_publish_and_leaves_nothing(own_sample: Sample, tmp_path: Path) -> None:
    source = outputs_folder(tmp_path / "mine")
    (source / "broken.tif").write_bytes(b"II*\x00 this is not a GeoTIFF")
    result = run_publish(source, own_sample.root, "--project", own_sample.project_id, "--job", own_sample.job_id,
                         "--task", TASK)  # fmt: skip
    assert result.returncode == 2
    assert "broken.tif" in result.stderr and "Cloud-Optimized GeoTIFF" in result.stderr
    assert not own_sample.task_dir(TASK).exists()
    assert leftovers(own_sample.root) == []


def test_bad_ids_and_a_missing_folder_are_refused_clearly(own_sample: Sample, tmp_path: Path) -> None:
    bad_id = run_publish(tmp_path, own_sample.root, "--project", "../escape", "--job", "j")
    assert bad_id.returncode == 2 and "project id '../escape' is not accepted" in bad_id.stderr
    missing = run_publish(tmp_path / "nope", own_sample.root, "--project", "p", "--job", "j")
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_a_new_store_gets_private_credentials_and_a_task_id(tmp_path: Path) -> None:
    source = outputs_folder(tmp_path / "mine")
    root = tmp_path / "store"
    result = run_publish(source, root, "--project", "team", "--job", "run-7")
    assert result.returncode == 0, result.stderr
    credentials = root / "credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    key = result.stdout.split("project id team, API key ")[1].split()[0]
    assert len(key) >= 32 and key not in credentials.read_text()  # shown once, stored hashed
    assert Credentials.load(credentials).check_project_key("team", key)
    (task,) = Store(root).check()
    assert len(task.task_id) == 36  # a new UUID


def test_publishing_into_a_store_of_another_project_adds_that_project(own_sample: Sample, tmp_path: Path) -> None:
    source = outputs_folder(tmp_path / "mine")
    result = run_publish(source, own_sample.root, "--project", "another-project", "--job", "j1", "--task", TASK)
    assert result.returncode == 0, result.stderr
    key = result.stdout.split("project id another-project, API key ")[1].split()[0]
    login = Credentials.load(own_sample.root / "credentials.json")
    assert login.check_project_key("another-project", key)
    assert login.check_project_key(own_sample.project_id, SAMPLE_API_KEY)  # the sample's key still opens its own


def test_a_version_1_store_is_left_as_it_is_and_the_note_says_how_to_add_the_project(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_private_json(root / "credentials.json", {"project_id": "old", "project_api_key": "k" * 20, "users": {}})
    result = run_publish(outputs_folder(tmp_path / "mine"), root, "--project", "team", "--job", "j1")
    assert result.returncode == 0, result.stderr
    assert "API key" not in result.stdout and "jobtask-widgets project add team" in result.stdout
    assert json.loads((root / "credentials.json").read_text())["project_id"] == "old"
