"""Maps and plots straight from the server: rasters read in place through the signed file URLs."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import morecantile
import numpy as np
import pytest

import jobtask_widgets as jw
from jobtask_widgets.errors import RasterError
from jobtask_widgets.raster import RasterSource, Style
from jobtask_widgets.remote import RENEW_MARGIN, RemoteFile
from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK, SAMPLE_NDVI_TASK, Sample
from jobtask_widgets.view import ResultsView
from tests.helpers import Api, login, start_api, store_output

matplotlib.use("Agg")


@pytest.fixture
def task(api: Api, sample: Sample) -> jw.JobTask:
    login(api.url, sample)
    return jw.initialize_jobtask(SAMPLE_MULTIBAND_TASK, sample.job_id)


def test_list_files_is_the_servers_file_list(task: jw.JobTask, sample: Sample) -> None:
    files = {f["path"]: f for f in task.list_files()}
    assert sorted(files) == sorted(store_output(sample, SAMPLE_MULTIBAND_TASK))
    raster = next(f for p, f in files.items() if p.endswith(".tif"))
    assert raster["media_type"].endswith("profile=cloud-optimized") and raster["url"].startswith("http")
    remote = task.remote_files()
    assert [r.path for r in remote] == [f["path"] for f in task.list_files()]
    assert all(r.renew is not None and "signature=" in r.url and "signature" not in r.public_url for r in remote)


def tiles_of(view: ResultsView) -> dict[tuple[int, int, int], np.ndarray]:
    (state,) = view.rasters.values()
    z = view.zoom
    west, south, east, north = state.source.require_crs("tiles")
    tiles = list(morecantile.tms.get("WebMercatorQuad").tiles(west, south, east, north, [z]))
    return {(t.z, t.x, t.y): state.source.tile_rgba(t.z, t.x, t.y, state.style) for t in tiles[:6]}


def test_map_results_with_nothing_downloaded_reads_the_server_with_the_same_pixels(
    task: jw.JobTask, tmp_path: Path
) -> None:
    with task.results_view() as remote_view:  # nothing downloaded: from the server
        (state,) = remote_view.rasters.values()
        assert state.source.remote is not None and state.name.startswith("scene (reflectance_bgrn.tif)")
        assert state.feature is not None and remote_view.features is not None  # data.json from the API
        remote_tiles = tiles_of(remote_view)
    task.download_results(tmp_path / "dl", progress=False)
    with task.results_view() as local_view:  # downloaded: the local files
        assert next(iter(local_view.rasters.values())).source.remote is None
        local_tiles = tiles_of(local_view)
    assert remote_tiles.keys() == local_tiles.keys() and len(remote_tiles) >= 4
    for key, tile in remote_tiles.items():
        assert tile is not None and np.array_equal(tile, local_tiles[key]), key
    with task.results_view(remote=True) as forced:
        assert next(iter(forced.rasters.values())).source.remote is not None


def test_map_results_returns_a_map_of_the_server_rasters(task: jw.JobTask) -> None:
    m = task.map_results()
    try:
        assert list(m.raster_layers) == ["scene (reflectance_bgrn.tif)"]
        layer = m.raster_layers["scene (reflectance_bgrn.tif)"]
        assert layer.state.source.remote is not None
    finally:
        m.close()


def test_remote_false_needs_a_download(task: jw.JobTask) -> None:
    with pytest.raises(ValueError, match=r"no results to map: call download_results\(\) first, or pass remote=True"):
        task.map_results(remote=False)
    with pytest.raises(ValueError, match=r"no results to plot: call download_results\(\) first, or pass remote=True"):
        task.plot_results(remote=False)


def test_plot_results_with_nothing_downloaded_plots_the_server_rasters(api: Api, sample: Sample) -> None:
    login(api.url, sample)
    ndvi = jw.initialize_jobtask(SAMPLE_NDVI_TASK, sample.job_id)
    before = plt.get_fignums()
    ndvi.plot_results(figsize=(6, 4))
    assert plt.get_fignums() == before + [max(before, default=0) + 1]
    fig = plt.figure(plt.get_fignums()[-1])
    ax = next(ax for ax in fig.axes if ax.get_visible())
    assert ax.get_title() == "ndvi.tif"
    data = ax.images[0].get_array()
    assert 0.5 < np.ma.count(data) / data.size < 0.95  # NaN outside the swath stays transparent
    plt.close("all")


def test_a_url_about_to_expire_is_renewed_before_the_read(sample: Sample, tmp_path: Path) -> None:
    server, api = start_api(sample.root, tmp_path / "cache", url_ttl=8)  # renewed within 4 s of expiry
    try:
        login(api.url, sample)
        task = jw.initialize_jobtask(SAMPLE_MULTIBAND_TASK, sample.job_id)
        (raster,) = [f for f in task.remote_files() if f.path.endswith(".tif")]
        renewals: list[str] = []

        def renew() -> str:
            assert raster.renew is not None
            renewals.append(raster.renew())
            return renewals[-1]

        local = sample.task_dir(SAMPLE_MULTIBAND_TASK) / "output" / raster.path
        with RasterSource(RemoteFile(raster.path, raster.url, renew=renew)) as source, RasterSource(local) as ref:
            style = Style(stretch="minmax")
            first = source.preview(256)
            assert renewals == []
            time.sleep(4.5)  # now within half the URL's lifetime of its expiry: the next read renews first
            assert RENEW_MARGIN > 4
            part = source.part_rgba(ref.require_crs("x"), 300, 300, style)
            assert len(renewals) == 1 and renewals[0] != raster.url
            assert np.array_equal(part, ref.part_rgba(ref.require_crs("x"), 300, 300, style))
            assert np.array_equal(first.array, ref.preview(256).array)
    finally:
        server.stop()


def test_a_refused_url_is_renewed_once_and_the_read_goes_on(task: jw.JobTask) -> None:
    (raster,) = [f for f in task.remote_files() if f.path.endswith(".tif")]
    forged = raster.url.split("signature=")[0] + "signature=" + "0" * 64  # the server answers 403
    renewals: list[str] = []

    def renew() -> str:
        assert raster.renew is not None
        renewals.append(raster.renew())
        return renewals[-1]

    with RasterSource(RemoteFile(raster.path, forged, renew=renew)) as source:
        assert len(renewals) == 1  # the open was refused, renewed once, and opened
        assert source.count == 4 and source.read_preview(64, [1, 2, 3, 4]).array.shape[0] == 4
    never = RemoteFile(raster.path, forged, renew=lambda: forged)  # renewing does not help: a clear error
    with pytest.raises(RasterError, match="cannot be read"):
        RasterSource(never)


def test_an_unreadable_remote_file_names_its_url_without_the_signature(task: jw.JobTask) -> None:
    (raster,) = [f for f in task.remote_files() if f.path.endswith(".tif")]
    gone = RemoteFile("scene/missing.tif", raster.url.replace("reflectance_bgrn.tif", "missing.tif"))
    with pytest.raises(RasterError) as caught:
        RasterSource(gone)
    message = str(caught.value)
    assert "scene/missing.tif" in message and gone.public_url in message
    assert "signature" not in message and "expires" not in message


def test_a_short_lived_url_is_not_renewed_on_every_read(sample: Sample, tmp_path: Path) -> None:
    server, api = start_api(sample.root, tmp_path / "cache", url_ttl=6)  # shorter than RENEW_MARGIN
    try:
        login(api.url, sample)
        task = jw.initialize_jobtask(SAMPLE_MULTIBAND_TASK, sample.job_id)
        (raster,) = [f for f in task.remote_files() if f.path.endswith(".tif")]
        renewals: list[str] = []

        def renew() -> str:
            assert raster.renew is not None
            renewals.append(raster.renew())
            return renewals[-1]

        with RasterSource(RemoteFile(raster.path, raster.url, renew=renew)) as source:
            for size in (64, 96, 128, 160, 192):
                source.preview(size)
        assert renewals == []  # five reads well within the URL's 6 s
    finally:
        server.stop()


def test_gdals_message_about_a_remote_file_never_shows_its_signature(task: jw.JobTask) -> None:
    (data_json,) = [f for f in task.remote_files() if f.path == "data.json"]
    assert "signature=" in data_json.url
    with pytest.raises(RasterError) as caught:
        RasterSource(RemoteFile("scene/data.tif", data_json.url))  # JSON, not a raster: GDAL names the URL
    message = str(caught.value)
    assert data_json.public_url in message
    assert "signature" not in message and "expires=" not in message
