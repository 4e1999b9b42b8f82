"""The demo dashboard end to end: ``jobtask-widgets demo`` started as a user starts it, then driven
in Chromium (offline): the task list, a task's header and info, the results download with its
progress bar and file list, raster tiles on the map, a band change, the features toggle, a popup,
the quicklook gallery; then Ctrl-C stops Voila, its kernels and the API and removes the folder."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobtask_widgets.demo import descendants
from jobtask_widgets.sample import SAMPLE_RGB_TASK, Sample
from tests.e2e.browser import open_popup, plot_in_widget, require_browser, screenshot, wait_image
from tests.helpers import Running, store_output

RGB_TASK = "landsat-7-etm-rgb:1"
OTHER_TASK = "surface-reflectance-bgrn:1"
W = ".jobtask-widget"
TILES = f"{W} .leaflet-container img.jobtask-raster-tile[src^='blob:']"
FEATURES = f"{W} .leaflet-overlay-pane path.leaflet-interactive[stroke='#ff7800']"


@pytest.fixture(scope="module")
def demo() -> Iterator[dict[str, Any]]:
    require_browser()
    run = Running(["demo", "--no-browser", "--port", "0", "--api-port", "0"])
    try:
        api = run.wait_for("API: ", timeout=120).removeprefix("API: ")
        store = Path(run.wait_for("Sample store: ").removeprefix("Sample store: "))
        url = run.wait_for("Dashboard: ", timeout=180).removeprefix("Dashboard: ")
        yield {"run": run, "api": api, "url": url, "store": store}
    finally:
        run.stop()  # as a user stops it, so Voila takes its kernels along


def loaded_tiles(page: Any, revision: int | None = None) -> str:
    test = "e.complete && e.naturalWidth === 256" + (f" && e.dataset.revision === '{revision}'" if revision else "")
    return f"() => [...document.querySelectorAll({TILES!r})].filter(e => {test}).length >= 2"


def choose_task(page: Any, name: str) -> None:
    select = page.locator(".widget-select select")
    label = next(text for text in select.locator("option").all_inner_texts() if text.startswith(name))
    select.select_option(label=label)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.jobtask-header')].some(h => h.innerText.includes({name!r}))",
        timeout=60_000,
    )


def test_the_demo_dashboard_end_to_end(page: Any, demo: dict[str, Any]) -> None:
    page.goto(demo["url"], timeout=180_000)
    page.wait_for_selector(".widget-select select option", timeout=120_000)
    options = page.locator(".widget-select select option").all_inner_texts()
    assert len(options) == 3 and options[0].startswith(RGB_TASK) and options[1].startswith(OTHER_TASK)
    assert options[2].startswith("ndvi:1")  # the one-band float task
    assert all("SUCCEEDED" in text for text in options)
    screenshot(page, "dashboard-1-tasks")

    choose_task(page, RGB_TASK)
    header = page.locator(f"{W} .jobtask-header").inner_text()
    assert "SUCCEEDED" in header and "took " in header
    info = page.locator(f"{W} table.jobtask-info").inner_text()
    assert "block.displayName" in info and "3f772637-09aa-4164-bded-692fcd746d20" in info
    screenshot(page, "dashboard-2-task-chosen")
    # nothing downloaded yet: the map reads the rasters in place from the server
    page.wait_for_function(loaded_tiles(page), timeout=120_000)
    assert "read from the server as you look" in page.locator(f"{W} .jobtask-remote-note").inner_text()
    page.locator(f"{W} .leaflet-container").scroll_into_view_if_needed()
    screenshot(page, "dashboard-2b-map-from-the-server")

    page.locator(W).get_by_role("button", name="Download results").click()
    page.wait_for_selector(f"{W} .progress-bar-success[style*='width: 100%']", timeout=120_000)
    page.wait_for_function(f"() => document.querySelectorAll('{W} .jobtask-files li').length === 2", timeout=60_000)
    files = page.locator(f"{W} .jobtask-files").inner_text()
    assert "data.json" in files and "landsat7_etm_rgb.tif" in files
    page.wait_for_function(loaded_tiles(page), timeout=120_000)
    assert page.locator(f"{W} .jobtask-remote-note").is_hidden()  # the same map, now of the downloaded files
    page.locator(f"{W} .leaflet-container").scroll_into_view_if_needed()
    screenshot(page, "dashboard-3-downloaded-map")

    controls = page.locator(".jobtask-layer-controls")
    controls.get_by_label("red", exact=True).select_option(label="3 (blue)")
    controls.get_by_label("blue", exact=True).select_option(label="1 (red)")
    page.wait_for_function(loaded_tiles(page, revision=2), timeout=60_000)
    screenshot(page, "dashboard-4-bands-swapped")

    page.wait_for_function(f"() => document.querySelectorAll({FEATURES!r}).length >= 6", timeout=60_000)
    controls.get_by_role("checkbox", name="features").uncheck()
    page.wait_for_function(f"() => document.querySelectorAll({FEATURES!r}).length === 0", timeout=30_000)
    screenshot(page, "dashboard-5-features-hidden")
    controls.get_by_role("checkbox", name="features").check()
    page.wait_for_function(f"() => document.querySelectorAll({FEATURES!r}).length >= 6", timeout=30_000)

    assert "det-" in open_popup(page, FEATURES)
    screenshot(page, "dashboard-6-popup")

    page.locator(W).get_by_role("button", name="Download quicklooks").click()
    wait_image(page, f"{W} img.widget-image")
    # the gallery fills before the Quicklooks tab is selected: wait for the tab, not the image
    page.wait_for_function(
        f"() => document.querySelector('{W} .widget-tab').innerText.includes('quicklook_preview.png')",
        timeout=30_000,
    )
    assert page.locator(f"{W} .widget-tab").inner_text().count("quicklook_preview.png") == 1
    page.locator(f"{W} img.widget-image").first.scroll_into_view_if_needed()
    screenshot(page, "dashboard-7-quicklooks")

    plot_in_widget(page, "Plot results")
    screenshot(page, "dashboard-8-plot")

    choose_task(page, OTHER_TASK)  # the other task gets its own widget; nothing downloaded there yet
    assert page.locator(f"{W} .jobtask-files li").count() == 0
    choose_task(page, "ndvi:1")  # never downloaded: its one float band is drawn from the server at once
    page.wait_for_function(loaded_tiles(page), timeout=120_000)
    assert page.locator(f"{W} .jobtask-remote-note").is_visible()
    assert "1 raster(s) on the map, read from the server" in page.locator(W).inner_text()
    page.locator(f"{W} .leaflet-container").scroll_into_view_if_needed()
    screenshot(page, "dashboard-9-ndvi-from-the-server")
    choose_task(page, RGB_TASK)  # back: its downloads and map are still there
    assert page.locator(f"{W} .jobtask-files li").count() == 3
    page.wait_for_function(loaded_tiles(page), timeout=60_000)
    assert page.errors == []


def test_ctrl_c_stops_voila_its_kernels_and_the_api_and_removes_the_folder(demo: dict[str, Any]) -> None:
    import requests

    run = demo["run"]
    tree = descendants(run.proc.pid)
    assert tree, "Voila runs below the demo"
    assert requests.get(demo["api"] + "/", timeout=10).status_code == 200
    assert run.interrupt() == 0
    assert not demo["store"].exists()
    alive = [pid for pid in tree if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    assert alive == [], [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in alive]
    with pytest.raises(requests.ConnectionError):
        requests.get(demo["api"] + "/", timeout=5)
    with pytest.raises(requests.ConnectionError):
        requests.get(demo["url"], timeout=5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


NO_PICKER = 'Object.defineProperty(window, "showSaveFilePicker", { configurable: true, value: undefined });'


def test_save_to_my_computer_in_the_dashboard(page: Any, demo: dict[str, Any], tmp_path: Path) -> None:
    # headless Chromium answers the file picker with AbortError: the download link is tested here
    page.add_init_script(NO_PICKER)
    page.goto(demo["url"], timeout=180_000)
    page.wait_for_selector(".widget-select select option", timeout=120_000)
    choose_task(page, RGB_TASK)
    widget = page.locator(W)
    assert widget.locator("a.jobtask-save-link").count() == 0  # nothing downloaded: nothing to save
    widget.get_by_role("button", name="Download results").click()
    zip_link = widget.locator("a.jobtask-save-link", has_text="all results")
    zip_link.wait_for(timeout=120_000)
    screenshot(page, "dashboard-9-save-links")
    with page.expect_download(timeout=120_000) as event:
        zip_link.click()
    download = event.value
    assert download.suggested_filename == "landsat-7-etm-rgb_1-results.zip"
    download.save_as(tmp_path / download.suggested_filename)
    expected = store_output(Sample(demo["store"]), SAMPLE_RGB_TASK)
    with zipfile.ZipFile(tmp_path / download.suggested_filename) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(expected)
        for name, data in expected.items():
            assert archive.read(name) == data
    page.wait_for_function(
        f"() => document.querySelector('{W} .jobtask-save').dataset.state === 'saved'", timeout=60_000
    )
    assert widget.locator(".jobtask-save-message").inner_text() == "Saved landsat-7-etm-rgb_1-results.zip"

    widget.get_by_role("button", name="Download quicklooks").click()
    quicklook = widget.locator("a.jobtask-save-link", has_text="quicklook_preview.png")
    quicklook.wait_for(timeout=120_000)
    with page.expect_download(timeout=120_000) as event:
        quicklook.click()
    saved = tmp_path / "quicklook.png"
    event.value.save_as(saved)
    assert event.value.suggested_filename == "quicklook_preview.png"
    stored = Sample(demo["store"]).task_dir(SAMPLE_RGB_TASK) / "quicklooks" / "preview.png"  # served as quicklook_*
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(stored.read_bytes()).digest()
    screenshot(page, "dashboard-10-saved")
    assert page.errors == []


def test_pixel_values_and_the_histogram_in_the_dashboard(page: Any, demo: dict[str, Any]) -> None:
    """As a new user: click a pixel of the RGB task in the demo dashboard and read its band values (read
    from the server, nothing downloaded; the scene's footprint, a feature over the whole raster, opens
    no popup while the inspector is on), then drag the histogram's handle and watch the map follow."""
    import rasterio
    from rasterio.warp import transform as warp_transform

    from tests.e2e.browser import screen_point, tile_brightness, tile_revision, tiles_at

    page.goto(demo["url"], timeout=180_000)
    page.wait_for_selector(".widget-select select option", timeout=120_000)
    choose_task(page, "ndvi:1")  # away and back: the RGB task's widget
    choose_task(page, RGB_TASK)
    page.wait_for_function(loaded_tiles(page), timeout=120_000)
    tif = next(demo["store"].rglob("landsat7_etm_rgb.tif"))
    with rasterio.open(tif) as ds:  # a pixel near the middle (300 m pixels: half a screen pixel at this zoom)
        x, y = ds.xy(ds.height // 2 + 7, ds.width // 2 - 11)
        lons, lats = warp_transform(ds.crs, "EPSG:4326", [x], [y])
    map_ = page.locator(f"{W} .leaflet-container")
    map_.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.locator(f"{W} .jobtask-inspect-button").click()
    page.mouse.click(*screen_point(page, TILES, lons[0], lats[0]))
    page.wait_for_selector(".leaflet-popup-content .jobtask-values table", timeout=60_000)
    popup = page.locator(".leaflet-popup-content .jobtask-values")
    bands = popup.locator(".jobtask-values-band").all_inner_texts()
    values = popup.locator(".jobtask-values-value").all_inner_texts()
    where = popup.locator(".jobtask-values-where").inner_text()  # "lat, lon" where the user clicked
    lat, lon = (float(v) for v in where.split(","))
    assert abs(lat - lats[0]) < 0.01 and abs(lon - lons[0]) < 0.01, where
    with rasterio.open(tif) as ds:  # the file's own values there
        xs, ys = warp_transform("EPSG:4326", ds.crs, [lon], [lat])
        expected = [int(v) for v in next(ds.sample([(xs[0], ys[0])]))]
    assert bands == ["red", "green", "blue"] and values == [str(v) for v in expected], (bands, values, where)
    screenshot(page, "dashboard-11-pixel-values")
    page.locator(".leaflet-popup-close-button").click()

    controls = page.locator(".jobtask-layer-controls")
    high = controls.locator(".jobtask-histogram-high")
    revision = tile_revision(page, TILES)
    before = tile_brightness(page, TILES, revision)
    box = high.bounding_box()
    page.mouse.move(box["x"] + 4, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - 60, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function(tiles_at(TILES, revision + 1), timeout=60_000)
    assert controls.get_by_label("stretch", exact=True).evaluate("s => s.options[s.selectedIndex].text") == "custom"
    assert tile_brightness(page, TILES, revision + 1) > before + 20
    screenshot(page, "dashboard-12-histogram-dragged")
    assert page.errors == []
