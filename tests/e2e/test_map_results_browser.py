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
