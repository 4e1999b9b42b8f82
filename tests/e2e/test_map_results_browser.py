"""map_results in a real browser (Voila, offline): the imagery as tiles, the features and the
AOI are drawn, the basemap fails quietly, and the page raises no error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.browser import open_in_lab, open_popup, screenshot, wait_image

FEATURES = ".leaflet-overlay-pane path.leaflet-interactive[stroke='#ff7800']"
TILES = "img.jobtask-raster-tile[src^='blob:']"
RASTER = "scene (landsat7_etm_rgb.tif)"


def wait_count(page: Any, selector: str, test: str, timeout: float = 60_000) -> None:
    page.wait_for_function(f"() => document.querySelectorAll({selector!r}).length {test}", timeout=timeout)


def exercise_results_map(page: Any, name: str) -> None:
    page.wait_for_function(
        f"() => [...document.querySelectorAll({TILES!r})].filter(e => e.complete && e.naturalWidth === 256).length",
        timeout=90_000,
    )
    dashes = page.eval_on_selector_all(
        ".leaflet-overlay-pane path", "els => els.map(e => e.getAttribute('stroke-dasharray'))"
    )
    assert "6 4" in dashes  # the AOI, dashed
    wait_count(page, FEATURES, ">= 6")  # the footprint, 3 boxes and 2 points
    popup = open_popup(page, FEATURES)  # its content arrives from the kernel after the click
    assert "det-" in popup and "class" in popup
    screenshot(page, f"{name}-1-popup")
    page.get_by_role("checkbox", name=RASTER).uncheck()
    wait_count(page, "img.jobtask-raster-tile", "=== 0", 30_000)
    page.get_by_role("checkbox", name="features").uncheck()
    wait_count(page, FEATURES, "=== 0", 30_000)
    screenshot(page, f"{name}-2-toggled-off")
    page.get_by_role("checkbox", name=RASTER).check()
    page.get_by_role("checkbox", name="features").check()
    wait_count(page, TILES, "> 0")
    wait_count(page, FEATURES, ">= 6")
    screenshot(page, f"{name}-3-toggled-on")
    assert page.errors == []


def test_map_results_in_voila(page: Any, voila_url: str, notebook_dir: Path) -> None:
    page.goto(f"{voila_url}/voila/render/map_results.ipynb", timeout=120_000)
    exercise_results_map(page, "voila-map-results")
    saved = notebook_dir / "saved_map.html"
    assert saved.is_file() and "jobtask-data" in saved.read_text()


def test_map_results_in_jupyterlab(page: Any, lab_url: str, notebook_dir: Path) -> None:
    open_in_lab(page, lab_url, "map_results.ipynb")
    exercise_results_map(page, "jupyterlab-map-results")
    # the saved page, opened offline, shows the same raster, features and AOI
    page.goto((notebook_dir / "saved_map.html").as_uri())
    wait_image(page, "img.jobtask-raster", timeout=30_000)
    strokes = page.eval_on_selector_all(".leaflet-overlay-pane path", "els => els.map(e => e.getAttribute('stroke'))")
    assert strokes.count("#ff7800") >= 6 and "#1f5fd6" in strokes
    screenshot(page, "jupyterlab-saved-map")


def test_the_saved_page_opens_offline_and_shows_raster_and_features(
    page: Any, api: Any, sample: Any, tmp_path: Any
) -> None:
    from pathlib import Path

    from shapely.geometry import box

    import jobtask_widgets as jw
    from tests.helpers import login

    login(api.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    task.download_results(tmp_path / "results", progress=False)
    (tmp_path / "out").mkdir()
    task.map_results(aoi=box(-78.2, 24.4, -77.4, 25.0), save_html=tmp_path / "out")
    saved = tmp_path / "out" / "map.html"
    text = saved.read_text()
    assert "<script src=" not in text and "<link" not in text  # nothing to fetch
    assert "Check <N/E>" not in text  # escaped, even inside the data block
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(Path(saved).as_uri())
    wait_image(page, "img.jobtask-raster", timeout=30_000)
    strokes = page.eval_on_selector_all(".leaflet-overlay-pane path", "els => els.map(e => e.getAttribute('stroke'))")
    assert strokes.count("#ff7800") >= 6 and "#1f5fd6" in strokes
    page.locator(".leaflet-overlay-pane path[stroke='#ff7800']").nth(4).click(force=True)
    page.wait_for_selector(".leaflet-popup-content table.jobtask-popup", timeout=10_000)
    assert "Check <N/E> edge & haze" in page.locator(".leaflet-popup-content").inner_text()
    screenshot(page, "saved-map")
    assert all(u.startswith(("file:", "data:", "blob:")) or "tile.openstreetmap.org" in u for u in requested)
    assert page.errors == []
