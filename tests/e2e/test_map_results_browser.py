"""map_results in a real browser (Voila, offline): the imagery as tiles, the features and the
AOI are drawn, the basemap fails quietly, and the page raises no error."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import screenshot


def test_map_results_in_voila(page: Any, voila_url: str) -> None:
    page.goto(f"{voila_url}/voila/render/map_results.ipynb", timeout=120_000)
    page.wait_for_function(
        """() => [...document.querySelectorAll("img.jobtask-raster-tile[src^='blob:']")]
                 .filter(e => e.complete && e.naturalWidth === 256).length > 0""",
        timeout=90_000,
    )
    paths = page.eval_on_selector_all(
        ".leaflet-overlay-pane path.leaflet-interactive",
        "els => els.map(e => ({dash: e.getAttribute('stroke-dasharray'), stroke: e.getAttribute('stroke')}))",
    )
    assert any(p["dash"] == "6 4" for p in paths)  # the AOI, dashed
    assert sum(p["stroke"] == "#ff7800" for p in paths) >= 6  # footprint, 3 boxes and 2 points
    assert page.get_by_role("checkbox", name="scene (landsat7_etm_rgb.tif)").is_checked()
    page.locator(".leaflet-overlay-pane path.leaflet-interactive[stroke='#ff7800']").nth(4).click(force=True)
    page.wait_for_selector(".leaflet-popup-content table.jobtask-popup", timeout=30_000)
    popup = page.locator(".leaflet-popup-content").inner_text()
    assert "det-" in popup
    screenshot(page, "voila-map-results")
    assert page.errors == []


def test_the_saved_page_opens_offline_and_shows_raster_and_features(
    page: Any, api: Any, sample: Any, tmp_path: Any
) -> None:
    from pathlib import Path

    from shapely.geometry import box

    import jobtask_widgets as jw
    from tests.conftest import login

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
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.jobtask-raster')].some(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )
    strokes = page.eval_on_selector_all(".leaflet-overlay-pane path", "els => els.map(e => e.getAttribute('stroke'))")
    assert strokes.count("#ff7800") >= 6 and "#1f5fd6" in strokes
    page.locator(".leaflet-overlay-pane path[stroke='#ff7800']").nth(4).click(force=True)
    page.wait_for_selector(".leaflet-popup-content table.jobtask-popup", timeout=10_000)
    assert "Check <N/E> edge & haze" in page.locator(".leaflet-popup-content").inner_text()
    screenshot(page, "saved-map")
    assert all(u.startswith(("file:", "data:", "blob:")) or "tile.openstreetmap.org" in u for u in requested)
    assert page.errors == []
