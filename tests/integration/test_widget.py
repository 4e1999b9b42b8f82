"""JobTaskWidget without a browser: built on the sample tasks over the real server, every button
clicked and every control changed, with assertions on the widgets, the files on disk and the map."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import ipyleaflet
import ipywidgets as w
import pytest
from shapely.geometry import box

import jobtask_widgets as jw
from jobtask_widgets import transfer
from jobtask_widgets.errors import AuthenticationError, RasterError, UnsafeArchiveError
from jobtask_widgets.plaintext import WHERE
from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK, SAMPLE_RGB_TASK, Sample
from jobtask_widgets.taskinfo import flatten
from tests.helpers import UNSAFE, Api, login, quick_client, start_api, store_output, visible
from tests.proxy import FaultProxy

RGB_LAYER = "scene (landsat7_etm_rgb.tif)"


def build(url: str, sample: Sample, task_id: str, folder: Path, **options: object) -> jw.JobTaskWidget:
    login(url, sample)
    return jw.initialize_jobtask(task_id, sample.job_id).widget(output_directory=folder, **options)


def finish(widget: jw.JobTaskWidget) -> None:
    assert widget.wait(timeout=120), "the widget's work did not end"


def colour_bars(m: ipyleaflet.Map) -> list[str]:
    values = [getattr(getattr(x, "widget", None), "value", "") for x in m.controls]
    return [v for v in values if isinstance(v, str) and "jobtask-colour-bar" in v]


def reads_the_server(widget: jw.JobTaskWidget) -> bool:
    """Whether the widget's map shows rasters read in place from the server (nothing downloaded)."""
    rasters = widget.map.view.rasters.values() if widget.map is not None else []
    return bool(rasters) and all(state.source.remote is not None for state in rasters)


def error_text(widget: jw.JobTaskWidget) -> str:
    return " ".join(card.children[0].value for card in widget.error_box.children)


@pytest.mark.parametrize("task_id", [SAMPLE_RGB_TASK, SAMPLE_MULTIBAND_TASK])
def test_header_and_info_panel_show_the_whole_info(api: Api, sample: Sample, tmp_path: Path, task_id: str) -> None:
    widget = build(api.url, sample, task_id, tmp_path)
    info = json.loads((sample.task_dir(task_id) / "info.json").read_text())
    header = widget.header.value
    for text in (info["name"], info["status"], info["block"]["displayName"], info["blockVersion"],
                 info["startedAt"], info["finishedAt"], "took "):  # fmt: skip
        assert text in header
    for key, value in flatten(info):
        assert f">{key}</th>" in widget.info_panel.value
        assert str(value) in widget.info_panel.value or json.dumps(value) in widget.info_panel.value
    finish(widget)  # the first map, from the server
    assert reads_the_server(widget) and "read from the server" in widget.status.value
    note = widget.map_area.children[0].children[1]
    assert "read from the server as you look" in note.value and note.layout.display != "none"
    assert widget.plot_results_button.disabled and widget.plot_quicklooks_button.disabled
    assert widget.error_box.children == ()


def test_strings_from_the_server_are_escaped(own_api: Api, own_sample: Sample, tmp_path: Path) -> None:
    info_path = own_sample.task_dir(SAMPLE_RGB_TASK) / "info.json"
    info = json.loads(info_path.read_text())
    info.update(name="<img src=x onerror=alert(1)>", blockVersion="<b>1</b>", extra={"<script>": "a&b"})
    info_path.write_text(json.dumps(info))
    widget = build(own_api.url, own_sample, SAMPLE_RGB_TASK, tmp_path)
    for html in (widget.header.value, widget.info_panel.value):
        assert "<img" not in html and "<script>" not in html and "<b>1</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in widget.header.value
    assert "extra.&lt;script&gt;" in widget.info_panel.value and "a&amp;b" in widget.info_panel.value


def test_download_results_button_downloads_once_lists_files_and_shows_the_map(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    widget = build(proxy.url, sample, SAMPLE_RGB_TASK, tmp_path / "out")
    proxy.add(path="/archives/", rate=4_000_000)  # slow enough to click again while it runs
    widget.download_results_button.click()
    assert widget.busy and widget.download_results_button.disabled and widget.download_quicklooks_button.disabled
    assert not widget.cancel_button.disabled
    widget.download_results_button.click()  # a second click starts nothing
    widget.download_quicklooks_button.click()
    finish(widget)
    assert len(proxy.requests_to("/archives/", "GET")) == 1
    assert proxy.requests_to("/quicklooks/", "GET") == []
    assert widget.progress.value == 1.0 and widget.progress.bar_style == "success"
    expected = store_output(sample, SAMPLE_RGB_TASK)
    assert visible(tmp_path / "out") == sorted({*expected, *(str(Path(r).parent) for r in expected if "/" in r)})
    for rel in expected:
        assert f"<code>{rel}</code>" in widget.files.value
    assert not widget.download_results_button.disabled and widget.cancel_button.disabled
    assert not widget.plot_results_button.disabled
    assert isinstance(widget.map, ipyleaflet.Map) and list(widget.map.raster_layers) == [RGB_LAYER]
    column, controls = widget.map_area.children
    assert column.children[0] is widget.map and controls is widget.controls
    assert not reads_the_server(widget) and all(s.source.path.is_file() for s in widget.map.view.rasters.values())
    assert widget.map.feature_layer in widget.map.layers and widget.map.feature_layer.visible
    assert widget.error_box.children == ()


def test_the_output_folder_is_editable(api: Api, sample: Sample, tmp_path: Path) -> None:
    widget = build(api.url, sample, SAMPLE_RGB_TASK, tmp_path / "first")
    assert widget.folder.value == str(tmp_path / "first")
    widget.folder.value = str(tmp_path / "chosen")
    widget.download_results_button.click()
    finish(widget)
    assert all(Path(p).is_relative_to(tmp_path / "chosen") for p in widget.jobtask.results)
    assert not (tmp_path / "first").exists()
    widget.folder.value = "   "
    widget.download_quicklooks_button.click()
    finish(widget)
    assert "the output folder is empty" in error_text(widget)


def test_cancel_stops_the_download_and_leaves_nothing(proxy: FaultProxy, sample: Sample, tmp_path: Path) -> None:
    widget = build(proxy.url, sample, SAMPLE_MULTIBAND_TASK, tmp_path / "out")
    proxy.add(path="/archives/", rate=1_000_000)  # about 13 s for the whole archive
    widget.download_results_button.click()
    deadline = time.monotonic() + 30
    while widget.progress.value == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 0 < widget.progress.value < 1
    widget.cancel_button.click()
    finish(widget)
    assert widget.progress.bar_style == "warning" and "cancelled" in widget.status.value
    assert list((tmp_path / "out").iterdir()) == []
    assert widget.jobtask.results is None and reads_the_server(widget)  # the map from the server stays
    assert not widget.download_results_button.disabled and widget.cancel_button.disabled
    assert widget.error_box.children == ()  # a cancel is no error


def test_every_map_control_changes_the_live_map(api: Api, sample: Sample, tmp_path: Path) -> None:
    aoi = box(13.3, 52.45, 13.5, 52.6)
    widget = build(api.url, sample, SAMPLE_MULTIBAND_TASK, tmp_path, aoi=aoi)
    widget.download_results_button.click()
    finish(widget)
    m, c = widget.map, widget.controls
    assert m is not None and c is not None
    (name,) = m.raster_layers
    layer = m.raster_layers[name]
    assert c.raster.value == name and c.mode.value == "RGB" and layer.bands == (3, 2, 1)
    assert [label for label, _ in c.red.options] == ["1 (blue)", "2 (green)", "3 (red)", "4 (nir)"]
    revision = layer.revision

    c.red.value, c.green.value, c.blue.value = 4, 3, 2  # false colour
    assert layer.bands == (4, 3, 2) and layer.revision > revision
    assert colour_bars(m) == []

    c.mode.value = "single band"
    c.band.value = 4
    c.colormap.value = "magma"
    assert layer.bands == (4,) and layer.style.colormap == "magma"
    bars = colour_bars(m)
    assert len(bars) == 1 and "band 4" in bars[0]  # the colour bar follows the style

    c.stretch.value = "minmax"
    assert layer.style.stretch == "minmax" and layer.style.vmin is None
    low, high = layer.source.ranges(layer.style)[0]
    assert (c.vmin.value, c.vmax.value) == (low, high)  # the custom range starts from what is drawn
    c.stretch.value = "custom"
    c.vmin.value, c.vmax.value = 500.0, 3000.0
    assert (layer.style.vmin, layer.style.vmax) == (500.0, 3000.0)
    assert layer.source.ranges(layer.style) == [(500.0, 3000.0)]
    c.stretch.value = "percentile"
    assert layer.style.stretch == "percentile" and layer.style.vmin is None

    view = m.view
    assert c.view is view and m.panel is None  # one model; the widget's one panel of toggles is beside the map
    c.opacity.value = 0.4
    assert layer.opacity == 0.4 and view.rasters[name].opacity == 0.4

    c.toggles[name].value = False
    assert layer.visible is False and view.rasters[name].visible is False
    c.toggles["features"].value = False
    assert m.feature_layer.visible is False and view.features.visible is False
    c.toggles["features"].value = True
    assert m.feature_layer.visible is True
    c.toggles["AOI"].value = False
    assert m.aoi_layer.visible is False
    view.aoi.visible = True  # a change of the model from code shows in the controls and on the map
    assert c.toggles["AOI"].value is True and m.aoi_layer.visible is True
    view.rasters[name].set_style(bands=[2])
    assert layer.bands == (2,) and (c.mode.value, c.band.value) == ("single band", 2)  # the controls follow
    view.rasters[name].set_style(bands=[3, 2, 1])
    assert (c.mode.value, c.red.value, c.green.value, c.blue.value) == ("RGB", 3, 2, 1)
    assert m.feature_layer in m.layers and m.aoi_layer in m.layers  # hidden in place, never rebuilt

    assert widget.error_box.children == ()
    c.stretch.value = "custom"
    c.vmin.value, c.vmax.value = 500.0, 3000.0
    c.vmin.value = 5000.0  # above the high end: refused, shown in the widget, the map keeps its style
    assert "Restyling" in error_text(widget) and "vmin &lt; vmax" in error_text(widget)
    assert (layer.style.vmin, layer.style.vmax) == (500.0, 3000.0)
    assert widget.map is m and m.raster_layers[name] is layer  # every change went to the live map


def test_the_controls_follow_the_chosen_raster(api: Api, sample: Sample, tmp_path: Path) -> None:
    widget = build(api.url, sample, SAMPLE_RGB_TASK, tmp_path)
    widget.download_results_button.click()
    finish(widget)
    c = widget.controls
    assert c is not None and c.raster.options == (RGB_LAYER,) and c.raster.disabled
    assert (c.red.value, c.green.value, c.blue.value) == (1, 2, 3)
    assert [label for label, _ in c.red.options] == ["1 (red)", "2 (green)", "3 (blue)"]
    assert c.stretch.value == "auto" and c._range_box.layout.display == "none"


def test_quicklooks_button_fills_the_gallery(api: Api, sample: Sample, tmp_path: Path) -> None:
    widget = build(api.url, sample, SAMPLE_RGB_TASK, tmp_path)
    widget.download_quicklooks_button.click()
    finish(widget)
    (path,) = widget.jobtask.quicklooks
    assert Path(path) == tmp_path / "quicklooks" / "quicklook_preview.png"
    assert Path(path).read_bytes() == (sample.task_dir(SAMPLE_RGB_TASK) / "quicklooks" / "preview.png").read_bytes()
    (card,) = widget.gallery.children
    image, label = card.children
    assert isinstance(image, w.Image) and image.value == Path(path).read_bytes() and image.format == "png"
    assert label.value == "quicklook_preview.png"
    assert "<code>quicklooks/quicklook_preview.png</code>" in widget.files.value
    assert widget.tabs.selected_index == 1 and not widget.plot_quicklooks_button.disabled
    assert reads_the_server(widget)  # quicklooks alone change no map


def test_a_task_with_results_already_shows_its_map(api: Api, sample: Sample, tmp_path: Path) -> None:
    login(api.url, sample)
    task = jw.initialize_jobtask(SAMPLE_RGB_TASK, sample.job_id)
    task.download_results(tmp_path, progress=False)
    task.download_quicklooks(tmp_path / "quicklooks", progress=False)
    widget = jw.JobTaskWidget(task)
    finish(widget)
    assert widget.map is not None and list(widget.map.raster_layers) == [RGB_LAYER]
    assert len(widget.gallery.children) == 1
    Path(task.quicklooks[0]).unlink()  # a quicklook removed since: the widget still opens
    again = jw.JobTaskWidget(task)
    finish(again)
    (card,) = again.gallery.children
    assert card.value == "quicklook_preview.png: missing"


def test_overviews_are_built_with_progress_the_first_time(
    own_api: Api, own_sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.rasters import large_plain

    monkeypatch.setenv("JOBTASK_WIDGETS_CACHE", str(tmp_path / "cache"))
    tif = next((own_sample.task_dir(SAMPLE_MULTIBAND_TASK) / "output").rglob("*.tif"))
    large_plain(tif, size=4400)  # no overviews of its own; its 2x level is left to the background step
    widget = build(own_api.url, own_sample, SAMPLE_MULTIBAND_TASK, tmp_path / "out")
    statuses: list[str] = []
    widget.status.observe(lambda change: statuses.append(change["new"]), "value")
    widget.download_results_button.click()
    finish(widget)
    assert any("Building overviews of reflectance_bgrn.tif" in s for s in statuses)
    assert widget.map is not None and widget.error_box.children == ()
    layer = next(iter(widget.map.raster_layers.values()))
    source = layer.source
    revision = layer.revision
    assert source.display_path().name == "reflectance_bgrn.first.vrt"  # the map shows before the build ends
    assert source.wait_for_overviews(120)
    assert source.display_path().name == "reflectance_bgrn.vrt" and layer.revision == revision  # no redraw
    assert "reflectance_bgrn.tif: overviews finished and compressed in the cache" in statuses[-1]
    assert widget.progress.value == 1.0 and widget.progress.bar_style == "success"
    widget._overviews("other.tif", 0.8)  # a step of a background build while nothing else runs
    assert "other.tif is on the map; its overviews are being compressed in the background (80%)" in widget.status.value
    assert widget.progress.value == 0.8
    assert list((tmp_path / "cache" / "overviews").rglob("ovr-2.tif"))


# -- errors in the widget ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _quick_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "RESUME_BACKOFF", 0.01)


def test_a_refusing_server_shows_in_the_widget(proxy: FaultProxy, sample: Sample, tmp_path: Path) -> None:
    task = jw.JobTask(SAMPLE_RGB_TASK, sample.job_id, sample.project_id, client=quick_client(proxy.url, sample))
    widget = task.widget(output_directory=tmp_path)
    proxy.add(path="/downloads/results/", status=503, times=20)
    widget.download_results_button.click()
    finish(widget)
    text = error_text(widget)
    assert "Downloading the results failed." in text and "The server failed while answering" in text
    assert "<details><summary>Details</summary>" in text and "503" in text
    assert widget.progress.bar_style == "danger" and reads_the_server(widget)
    assert not widget.download_results_button.disabled  # the user can try again
    dismiss = widget.error_box.children[0].children[1]
    dismiss.click()
    assert widget.error_box.children == ()
    assert len(widget.errors) == 1  # dismissed from the screen, still kept


def test_refused_credentials_show_in_the_widget(proxy: FaultProxy, sample: Sample, tmp_path: Path) -> None:
    widget = build(proxy.url, sample, SAMPLE_RGB_TASK, tmp_path)
    proxy.add(path="/downloads/results/", status=401, times=5)
    proxy.add(path="/oauth/token", status=401, times=5)
    widget.download_results_button.click()
    finish(widget)
    assert isinstance(widget.errors[-1], AuthenticationError)
    assert "The server refused the credentials" in error_text(widget)


def test_an_unsafe_archive_shows_in_the_widget_and_nothing_is_unpacked(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    body, message = UNSAFE["tar dot-dot"]
    widget = build(proxy.url, sample, SAMPLE_RGB_TASK, tmp_path / "out")
    proxy.add(path="/archives/", body=body)
    widget.download_results_button.click()
    finish(widget)
    assert isinstance(widget.errors[-1], UnsafeArchiveError)
    text = error_text(widget)
    assert "The results archive is unsafe, so nothing was unpacked." in text and message in text
    assert visible(tmp_path / "out") == [] and not (tmp_path / "evil.txt").exists()
    assert reads_the_server(widget)


def test_a_bad_raster_shows_in_the_widget(own_api: Api, own_sample: Sample, tmp_path: Path) -> None:
    tif = next((own_sample.task_dir(SAMPLE_RGB_TASK) / "output").rglob("*.tif"))
    tif.write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header and nothing else
    widget = build(own_api.url, own_sample, SAMPLE_RGB_TASK, tmp_path)
    widget.download_results_button.click()
    finish(widget)
    assert isinstance(widget.errors[-1], RasterError)
    assert "A result raster cannot be read." in error_text(widget) and "landsat7_etm_rgb.tif" in error_text(widget)
    assert widget.files.value.count("<li>") == 2  # the download itself worked and is listed


def test_an_unreachable_server_shows_in_the_header_and_errors(own_sample: Sample, tmp_path: Path) -> None:
    server, api = start_api(own_sample.root, tmp_path / "cache")
    task = jw.JobTask(
        SAMPLE_RGB_TASK, own_sample.job_id, own_sample.project_id, client=quick_client(api.url, own_sample)
    )
    server.stop()  # the server goes away before the widget asks for the task's metadata
    widget = task.widget(output_directory=tmp_path / "out")
    assert SAMPLE_RGB_TASK in widget.header.value and "could not be fetched" in widget.info_panel.value
    assert "Fetching the task&#x27;s metadata failed." in error_text(widget)
    assert "The server could not be reached." in error_text(widget)


def test_the_map_from_the_server_draws_the_downloaded_files_in_place(api: Api, sample: Sample, tmp_path: Path) -> None:
    widget = build(api.url, sample, SAMPLE_MULTIBAND_TASK, tmp_path)
    finish(widget)
    remote_map = widget.map
    assert remote_map is not None and reads_the_server(widget)
    ((name, state),) = remote_map.view.rasters.items()
    remote_source = state.source
    state.set_style(bands=[4], colormap="greens", stretch="minmax")  # as the controls do
    state.opacity = 0.6
    remote_map.zoom, remote_map.center = remote_map.zoom + 2, (52.5, 13.4)
    zoom = remote_map.zoom
    widget.download_results_button.click()
    finish(widget)
    assert widget.map is remote_map and not reads_the_server(widget)  # the same map, its layers now local
    assert remote_source.closed  # the sources read from the server are closed
    local_state = remote_map.view.rasters[name]
    assert local_state is state and state.source.remote is None and state.source.path.is_file()
    assert state.bands == (4,) and state.style.colormap == "greens" and state.opacity == 0.6
    assert (remote_map.zoom, tuple(remote_map.center)) == (zoom, (52.5, 13.4))  # the view does not move
    layer = remote_map.raster_layers[name]
    assert layer.source is state.source  # new tiles come from the downloaded file
    assert "raster(s) on the map" in widget.status.value
    assert widget.map_area.children[0].children[1].layout.display == "none"  # the note is gone


def test_without_a_file_list_on_the_server_the_map_waits_for_the_download(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    proxy.add(path="/outputs/files/", status=404, times=5)
    widget = build(proxy.url, sample, SAMPLE_RGB_TASK, tmp_path)
    finish(widget)
    assert widget.map is None and "Download the results" in widget.map_area.children[0].value
    assert widget.error_box.children == ()  # an older server is no error


def test_a_replaced_map_and_a_closed_widget_close_their_rasters(api: Api, sample: Sample, tmp_path: Path) -> None:
    widget = build(api.url, sample, SAMPLE_RGB_TASK, tmp_path)
    widget.download_results_button.click()
    finish(widget)
    first = widget.map
    assert first is not None
    first_sources = [s.source for s in first.view.rasters.values()]
    widget.download_results_button.click()  # the same results again: a new map replaces the first
    finish(widget)
    assert widget.map is not first and all(s.closed for s in first_sources)
    current = [s.source for s in widget.map.view.rasters.values()]
    assert not any(s.closed for s in current)
    widget.close()
    assert widget.map is None and all(s.closed for s in current)


def test_every_widget_has_a_whole_plain_text_fallback(api: Api, sample: Sample, tmp_path: Path) -> None:
    widget = build(api.url, sample, SAMPLE_RGB_TASK, tmp_path / "out")
    before = widget._repr_mimebundle_()
    assert before["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    text = before["text/plain"]
    assert text.startswith(f"JobTaskWidget: task landsat-7-etm-rgb:1 ({SAMPLE_RGB_TASK}), status SUCCEEDED\n")
    assert "\nnothing downloaded yet\nno map yet\n" in text
    assert text.endswith(WHERE) and repr(widget) == text  # whole: ipywidgets' own cut it at 110 characters
    widget.download_results_button.click()
    finish(widget)
    assert widget.map is not None and widget.controls is not None
    text = widget._repr_mimebundle_()["text/plain"]
    count = len(store_output(sample, SAMPLE_RGB_TASK))
    assert f"\n{count} result files and 0 quicklooks downloaded in {tmp_path / 'out'}\n" in text
    assert f"\nmap: raster {RGB_LAYER}: bands 1, 2, 3, stretch auto, shown, opacity 1\n" in text
    assert "\nmap: area of interest" not in text and "features, shown\n" in text
    widget.map.view.rasters[RGB_LAYER].visible = False
    assert f"raster {RGB_LAYER}: bands 1, 2, 3, stretch auto, hidden" in repr(widget.map)
    for part in (widget.map, widget.controls, widget.controls.panel, widget.map.raster_layers[RGB_LAYER]):
        bundle = part._repr_mimebundle_()
        bundle = bundle[0] if isinstance(bundle, tuple) else bundle  # anywidget's is (data, metadata)
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert bundle["text/plain"].endswith(WHERE) and len(bundle["text/plain"]) > 110
    assert RGB_LAYER in repr(widget.controls.panel) and "landsat7_etm_rgb.tif" in repr(
        widget.map.raster_layers[RGB_LAYER]
    )


def test_save_to_my_computer_offers_all_results_as_one_zip_and_each_file(
    api: Api, sample: Sample, tmp_path: Path
) -> None:
    widget = build(api.url, sample, SAMPLE_RGB_TASK, tmp_path / "out")
    assert widget.save.entries == []  # nothing downloaded yet
    widget.download_results_button.click()
    finish(widget)
    widget.download_quicklooks_button.click()
    finish(widget)
    results, quicklooks = widget.jobtask.results or [], widget.jobtask.quicklooks or []
    labels = [e["label"] for e in widget.save.entries]
    assert labels == [
        "all results (landsat-7-etm-rgb_1-results.zip)",
        *(Path(p).name for p in [*results, *quicklooks]),
    ]
    assert widget.save.entries[0]["files"] == len(results) >= 2
    assert widget.save.entries[0]["size"] == sum(Path(p).stat().st_size for p in results)
    # the whole transfer, the test playing the browser's part
    sent: list[tuple[dict[str, object], list[bytes]]] = []
    widget.save.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))  # type: ignore[method-assign]
    widget.save._on_msg(widget.save, {"kind": "start", "id": "s", "entry": 0}, [])
    seq = 0
    while sent[-1][0]["kind"] not in {"end", "error"}:
        widget.save._on_msg(widget.save, {"kind": "next", "id": "s", "seq": seq}, [])
        seq += 1
    body = b"".join(b for content, buffers in sent if content["kind"] == "chunk" for b in buffers)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        base = Path(os.path.commonpath([Path(p).parent for p in results]))
        assert sorted(archive.namelist()) == sorted(Path(p).relative_to(base).as_posix() for p in results)
        for path in results:
            assert archive.read(Path(path).relative_to(base).as_posix()) == Path(path).read_bytes()
    assert "BrowserSave" not in repr(widget) and widget.save.status == "sending"
    widget.close()
    assert widget.save.status == "cancelled" and not widget.save.busy


def test_a_widget_closed_while_its_map_is_read_from_the_server_shows_and_keeps_nothing(
    proxy: FaultProxy, sample: Sample, tmp_path: Path
) -> None:
    proxy.add(path="/outputs/data-json/", rate=2_000, times=1)  # the first map takes a while to come
    widget = build(proxy.url, sample, SAMPLE_MULTIBAND_TASK, tmp_path)
    widget.close()  # before the map from the server is built
    finish(widget)
    assert widget.map is None and widget.controls is None
    assert widget._remote_thread is not None and not widget._remote_thread.is_alive()
