"""Looking closer in Chromium, in Voila and in JupyterLab: pixel values on click (the map's inspect
control), feature popups when it is off, and the histogram's handles restyling the live layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rasterio
from rasterio.warp import transform as warp_transform

from tests.e2e.browser import (
    GRID_FEATURE,
    open_in_lab,
    screen_point,
    screenshot,
    tile_brightness,
    tile_revision,
    tiles_at,
)

TILES = ".leaflet-container img.jobtask-raster-tile[src^='blob:']"
FEATURES = ".leaflet-overlay-pane path.leaflet-interactive[stroke='#ff7800']"
BUTTON = ".jobtask-inspect-button"
VALUES = ".leaflet-popup-content .jobtask-values"
# rows and columns, known values row * 1000 + col; in the middle rows, so no popup opens past the map's
# edge (Leaflet then pans the map, and another pixel may leave the map's visible part)
PIXELS = [(22, 20), (30, 40), (18, 31), (25, 48)]  # the last one under the feature: no feature popup


def pixel_lonlat(raster: Path, row: int, col: int) -> tuple[float, float]:
    with rasterio.open(raster) as ds:
        x, y = ds.xy(row, col)
        lons, lats = warp_transform(ds.crs, "EPSG:4326", [x], [y])
    return lons[0], lats[0]


def click_pixel(page: Any, raster: Path, row: int, col: int) -> str:
    """Click the centre of a pixel with the inspector on; the popup's text once its values came."""
    close_popups(page)
    page.locator(".leaflet-container").first.evaluate("e => e.scrollIntoView({block: 'center'})")  # all of it
    x, y = screen_point(page, TILES, *pixel_lonlat(raster, row, col))
    page.mouse.click(x, y)
    try:
        page.wait_for_function(
            f"() => {{ const p = document.querySelector({VALUES!r}); return p && p.querySelector('table'); }}",
            timeout=30_000,
        )
    except Exception:
        screenshot(page, f"failed-click-{row}-{col}")
        raise
    return str(page.locator(VALUES).inner_text())


def close_popups(page: Any) -> None:
    """Close the open popup, if any, and wait until it has faded out of the page."""
    if page.locator(".leaflet-popup").count():
        page.locator(".leaflet-popup-close-button").first.click()
    page.wait_for_function("() => document.querySelectorAll('.leaflet-popup').length === 0", timeout=10_000)


def check_inspect_and_histogram(page: Any, raster: Path, shot: str) -> None:
    page.wait_for_function(tiles_at(TILES, 0), timeout=120_000)
    page.locator(".leaflet-container").first.scroll_into_view_if_needed()
    button = page.locator(BUTTON).first
    assert button.get_attribute("aria-pressed") == "false"
    button.click()
    page.wait_for_function(f"() => document.querySelector({BUTTON!r}).getAttribute('aria-pressed') === 'true'")
    for row, col in PIXELS:
        text = click_pixel(page, raster, row, col)
        assert "grid.tif" in text and "band 1" in text, text
        assert page.locator(f"{VALUES} .jobtask-values-value").inner_text() == str(row * 1000 + col), text
        if (row, col) == PIXELS[0]:
            screenshot(page, f"{shot}-1-pixel-values")
    # off again: a click on the feature opens its popup as before, and no values are asked for
    button.click()
    page.wait_for_function(f"() => document.querySelector({BUTTON!r}).getAttribute('aria-pressed') === 'false'")
    close_popups(page)
    page.locator(FEATURES).first.click(force=True)
    page.wait_for_selector(".leaflet-popup-content table.jobtask-popup", timeout=30_000)
    assert GRID_FEATURE in page.locator(".leaflet-popup-content").inner_text()
    assert page.locator(VALUES).count() == 0
    screenshot(page, f"{shot}-2-feature-popup")
    close_popups(page)

    # the histogram: drag the high handle down; one redraw, brighter tiles (viridis), "custom"
    controls = page.locator(".jobtask-layer-controls")
    high = controls.locator(".jobtask-histogram-high")
    high.wait_for(timeout=30_000)
    high_label = controls.locator(".jobtask-histogram-range span").nth(1)
    auto_high = high_label.inner_text()
    revision = tile_revision(page, TILES)
    before = tile_brightness(page, TILES, revision)
    box = high.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    for step in range(1, 11):  # a drag of many moves is one restyle, when the button is let go
        page.mouse.move(box["x"] + box["width"] / 2 - 8 * step, box["y"] + box["height"] / 2)
    page.mouse.up()
    page.wait_for_function(tiles_at(TILES, revision + 1), timeout=60_000)
    page.wait_for_timeout(500)
    assert tile_revision(page, TILES) == revision + 1  # one redraw for the whole drag
    stretch = controls.get_by_label("stretch", exact=True)
    assert stretch.evaluate("s => s.options[s.selectedIndex].text") == "custom"
    assert float(high_label.inner_text()) < float(auto_high)
    after = tile_brightness(page, TILES, revision + 1)
    assert after > before + 20, (before, after)
    screenshot(page, f"{shot}-3-histogram-dragged")
    stretch.select_option(label="auto")  # the handles go back
    page.wait_for_function(tiles_at(TILES, revision + 2), timeout=60_000)
    page.wait_for_function(
        "([sel, text]) => document.querySelectorAll(sel)[1].textContent === text",
        arg=[".jobtask-histogram-range span", auto_high],
        timeout=30_000,
    )
    assert tile_brightness(page, TILES, revision + 2) < after - 20  # the full stretch again: darker
    screenshot(page, f"{shot}-4-histogram-auto")
    assert page.errors == []


def test_pixel_values_and_histogram_in_voila(page: Any, voila_url: str, notebook_dir: Path) -> None:
    page.goto(f"{voila_url}/voila/render/inspect_map.ipynb", timeout=180_000)
    check_inspect_and_histogram(page, notebook_dir / "grid.tif", "voila-inspect")


def test_pixel_values_and_histogram_in_jupyterlab(page: Any, lab_url: str, notebook_dir: Path) -> None:
    open_in_lab(page, lab_url, "inspect_map.ipynb")
    page.wait_for_selector(".jp-OutputArea-output .leaflet-container", timeout=120_000)
    # the whole map in sight: Lab puts a tall output in a scrolled box of its own
    page.evaluate("window.jupyterapp.commands.execute('notebook:disable-output-scrolling')")
    check_inspect_and_histogram(page, notebook_dir / "grid.tif", "lab-inspect")
