"""open_stac: STAC Items (the server's, a pystac object, a static catalog on disk) as job tasks."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pystac
import pytest
import requests

import jobtask_widgets as jw
from jobtask_widgets.errors import DownloadError
from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK, SAMPLE_NDVI_TASK, SAMPLE_RGB_TASK, Sample
from tests.helpers import Api, store_output

matplotlib.use("Agg")


def auth(api: Api) -> dict[str, str]:
    return {"Authorization": str(api.session.headers["Authorization"])}


def test_the_servers_item_url_is_a_task_with_info_results_json_and_downloads(
    api: Api, sample: Sample, tmp_path: Path
) -> None:
    task = jw.open_stac(f"{api.task(SAMPLE_MULTIBAND_TASK)}/stac/", headers=auth(api))
    assert isinstance(task, jw.JobTask) and task.jobtask_id == SAMPLE_MULTIBAND_TASK
    info = task.info
    assert info["name"] == "surface-reflectance-bgrn:1" and info["status"] == "SUCCEEDED"
    assert info["startedAt"].startswith("2026-11-02T09:16:42") and len(info["bbox"]) == 4
    assert "surface-reflectance-bgrn:1" in repr(task)
    data = task.get_results_json()
    assert data == api.get(f"{api.task(SAMPLE_MULTIBAND_TASK)}/outputs/data-json/").json()  # its data.json asset
    frame = task.get_results_json(as_dataframe=True)
    assert frame.crs.to_epsg() == 4326 and len(frame) == 1
    files = task.download_results(tmp_path / "dl", progress=False)
    on_disk = store_output(sample, SAMPLE_MULTIBAND_TASK)
    got = {Path(f).relative_to(tmp_path / "dl").as_posix(): Path(f).read_bytes() for f in files}
    assert got == on_disk  # every file, bytes equal, each checked against file:checksum
    shown = sorted(p.relative_to(tmp_path / "dl").as_posix() for p in (tmp_path / "dl").rglob("*")
                   if p.is_file() and not p.name.startswith("."))  # fmt: skip
    assert shown == sorted(on_disk)  # nothing else visible: transfer's state is in hidden files
    again = task.download_results(tmp_path / "dl", progress=False)  # verified copies are kept, not fetched anew
    assert sorted(again) == sorted(files)
    quicklooks = task.download_quicklooks(tmp_path / "ql", progress=False)
    assert [Path(q).name for q in quicklooks] == ["quicklook_preview.png"]
    assert (
        Path(quicklooks[0]).read_bytes()
        == (sample.task_dir(SAMPLE_MULTIBAND_TASK) / "quicklooks" / "preview.png").read_bytes()
    )


def test_a_file_that_is_not_its_checksum_is_not_kept(api: Api, sample: Sample, tmp_path: Path) -> None:
    raw = api.get(f"{api.task(SAMPLE_RGB_TASK)}/stac/").json()
    raw["assets"]["data.json"]["file:checksum"] = "1220" + "0" * 64
    task = jw.open_stac(raw)
    with pytest.raises(DownloadError, match=r"'data.json' .*SHA-256 is not the Item's file:checksum"):
        task.download_results(tmp_path / "dl", progress=False)
    dl = tmp_path / "dl"
    left = sorted(p.name for p in dl.rglob("*") if p.is_file() and not p.name.startswith(".")) if dl.exists() else []
    assert left == []  # nothing of this call is kept in sight
    assert not [p for p in dl.rglob(".data.json*")]  # the file that failed its checksum is gone entirely


def test_the_job_item_collection_is_a_list_of_tasks_mapped_from_the_server(api: Api, sample: Sample) -> None:
    tasks = jw.open_stac(f"{api.job}/stac/", headers=auth(api))
    assert isinstance(tasks, list) and [t.jobtask_id for t in tasks] == sorted(sample.task_ids)
    ndvi = next(t for t in tasks if t.jobtask_id == SAMPLE_NDVI_TASK)
    with ndvi.results_view() as view:  # nothing downloaded: read in place
        (state,) = view.rasters.values()
        assert state.source.remote is not None and state.source.count == 1
        tile = state.source.tile_rgba(view.zoom, *_a_tile(state, view.zoom), state.style)
        assert tile is not None and tile[3].any()
    before = plt.get_fignums()
    ndvi.plot_results(figsize=(5, 4))
    assert len(plt.get_fignums()) == len(before) + 1
    plt.close("all")


def _a_tile(state: object, zoom: int) -> tuple[int, int]:
    import morecantile

    west, south, east, north = state.source.require_crs("x")  # type: ignore[attr-defined]
    tile = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, zoom)
    return tile.x, tile.y


def test_a_pystac_item_with_headers_reaches_gdal_too(api: Api, sample: Sample) -> None:
    item = pystac.Item.from_dict(api.get(f"{api.task(SAMPLE_RGB_TASK)}/stac/").json())
    task = jw.open_stac(item, headers={"X-Team": "analysts"})
    assert isinstance(task, jw.JobTask)
    (raster,) = [f for f in task.remote_files() if f.path.endswith(".tif")]
    assert raster.headers == {"X-Team": "analysts"}
    with task.results_view() as view:
        assert list(view.rasters) == ["scene (landsat7_etm_rgb.tif)"]  # paired with its footprint by data path


def test_a_static_catalog_on_disk_with_relative_hrefs(sample: Sample, tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    output = sample.task_dir(SAMPLE_MULTIBAND_TASK) / "output"
    shutil.copytree(output, folder / "files")
    tif = next((folder / "files").rglob("*.tif"))
    item = pystac.Item("scene-1", {"type": "Polygon", "coordinates": [[[13.2, 52.4], [13.6, 52.4], [13.6, 52.6],
                       [13.2, 52.6], [13.2, 52.4]]]}, [13.2, 52.4, 13.6, 52.6], datetime(2026, 6, 21, tzinfo=UTC),
                       {"title": "my scene"})  # fmt: skip
    item.add_asset("visual", pystac.Asset(f"./files/{tif.relative_to(folder / 'files').as_posix()}",
                                          media_type=pystac.MediaType.COG, roles=["data"]))  # fmt: skip
    sha = hashlib.sha256(tif.read_bytes()).hexdigest()
    item.assets["visual"].extra_fields["file:checksum"] = "1220" + sha
    item.set_self_href(str(folder / "item.json"))
    item.make_asset_hrefs_relative()
    item.save_object(include_self_link=False)
    assert json.loads((folder / "item.json").read_text())["assets"]["visual"]["href"].startswith("./files/")

    task = jw.open_stac(folder / "item.json")
    assert isinstance(task, jw.JobTask) and task.info["name"] == "my scene"
    assert task.get_results_json()["features"][0]["id"] == "scene-1"  # no data.json: the Item itself
    files = task.download_results(tmp_path / "dl", progress=False)
    assert [Path(f).name for f in files] == [tif.name] and Path(files[0]).read_bytes() == tif.read_bytes()
    with task.results_view(remote=True) as view:
        (state,) = view.rasters.values()
        assert state.source.count == 4
        preview = state.source.preview(128)
        assert np.ma.count(preview.array) > 0


def test_documents_that_are_not_stac_say_what_they_are(api: Api, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"is a 'Point' document, not a STAC Item, ItemCollection or Collection"):
        jw.open_stac({"type": "Point", "coordinates": [0, 0]})
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"holds a JSON list, not a STAC document"):
        jw.open_stac(tmp_path / "list.json")
    with pytest.raises(ValueError, match=r"open_stac takes a pystac Item"):
        jw.open_stac(42)  # type: ignore[arg-type]
    with pytest.raises(DownloadError, match=r"HTTP 401"):
        jw.open_stac(f"{api.task()}/stac/")  # no token: the server says 401
    assert requests.get(f"{api.task()}/stac/", headers=auth(api), timeout=30).status_code == 200


def test_the_widget_of_a_stac_item_shows_the_map_before_anything_is_downloaded(api: Api, tmp_path: Path) -> None:
    task = jw.open_stac(f"{api.task(SAMPLE_MULTIBAND_TASK)}/stac/", headers=auth(api))
    assert isinstance(task, jw.JobTask)
    widget = task.widget(output_directory=tmp_path / "dl")
    try:
        assert widget.wait(timeout=120)
        assert widget.map is not None and list(widget.map.raster_layers) == ["scene (reflectance_bgrn.tif)"]
        (state,) = widget.map.view.rasters.values()
        assert state.source.remote is not None and "read from the server" in widget.status.value
        assert "surface-reflectance-bgrn:1" in widget.header.value
        widget.download_results_button.click()
        assert widget.wait(timeout=120) and widget.errors == []
        assert state.source.remote is None and state.source.path.is_file()  # the same map, now local
    finally:
        widget.close()


def test_headers_go_to_the_items_own_origin_only_and_web_items_name_no_local_files(
    api: Api, sample: Sample, tmp_path: Path
) -> None:
    from jobtask_widgets.stacsource import StacSource

    raw = api.get(f"{api.task(SAMPLE_RGB_TASK)}/stac/").json()
    item = pystac.Item.from_dict(raw)
    source = StacSource(item, headers={"Authorization": "Bearer secret"}, url=f"{api.task(SAMPLE_RGB_TASK)}/stac/")
    assert source.headers_for(f"{api.url}/files/x") == {"Authorization": "Bearer secret"}
    assert source.headers_for("https://cdn.example.org/x.tif") == {}  # another host never sees the token
    item.assets["secret"] = pystac.Asset("/etc/passwd", roles=["data"])
    source.item = item
    source._url = None  # read as given, then as if from the web:
    assert "passwd" in {f["path"] for f in source.result_files()}  # a local Item may name local files
    with_url = StacSource(item, url=f"{api.task(SAMPLE_RGB_TASK)}/stac/")
    with_url._current = lambda: item  # type: ignore[method-assign]  # the Item as served, plus the local href
    assert "passwd" not in {f["path"] for f in with_url.result_files()}
    with pytest.raises(DownloadError, match="is not an http"):
        with_url._fetch_one(
            "passwd", tmp_path / "passwd", None, lambda d, t: None, __import__("threading").Event(), False
        )
    assert not (tmp_path / "passwd").exists()
