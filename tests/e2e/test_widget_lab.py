"""JobTaskWidget in JupyterLab, through the shipped quickstart notebook run as a user runs it:
download through the button, tiles on the map, band mode, colormap and stretch changes redraw
them, the features toggle hides and shows them, and a plot lands in the widget's Plots tab."""

from __future__ import annotations

from typing import Any

from tests.e2e.browser import open_in_lab, plot_in_widget, screenshot, wait_image

W = ".jobtask-widget"
TILES = f"{W} .leaflet-container img.jobtask-raster-tile[src^='blob:']"
FEATURES = f"{W} .leaflet-overlay-pane path.leaflet-interactive[stroke='#ff7800']"


def tiles_at(revision: int) -> str:
    return (
        f"() => [...document.querySelectorAll({TILES!r})]"
        f".filter(e => e.complete && e.naturalWidth === 256 && e.dataset.revision === '{revision}').length >= 2"
    )


def count(selector: str, test: str) -> str:
    return f"() => document.querySelectorAll({selector!r}).length {test}"


def test_the_widget_in_jupyterlab_through_the_quickstart(page: Any, lab_url: str) -> None:
    open_in_lab(page, lab_url, "quickstart.ipynb")
    widget = page.locator(W)
    widget.wait_for(timeout=240_000)
    widget.scroll_into_view_if_needed()
    assert "landsat-7-etm-rgb:1" in widget.locator(".jobtask-header").inner_text()

    # the quickstart's task already holds results, so the widget first maps those (its buttons
    # stay disabled meanwhile: the click below waits for them); the download then maps anew
    widget.get_by_role("button", name="Download results").click(timeout=120_000)
    page.wait_for_selector(f"{W} .progress-bar-success[style*='width: 100%']", timeout=120_000)
    # the new download's files are listed relative to the widget's folder: data.json alone
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{W} .jobtask-files li code')].some(c => c.innerText === 'data.json')",
        timeout=120_000,
    )
    page.locator(W, has_text="raster(s) on the map").wait_for(timeout=120_000)  # the new map is in place
    # the results and the quicklook that the quickstart downloaded before, all listed
    page.wait_for_function(count(f"{W} .jobtask-files li", "=== 3"), timeout=60_000)
    page.wait_for_function(tiles_at(0), timeout=120_000)
    widget.locator(".leaflet-container").scroll_into_view_if_needed()
    screenshot(page, "lab-widget-1-map")

    controls = widget.locator(".jobtask-layer-controls")
    controls.get_by_role("button", name="single band").click()
    page.wait_for_function(tiles_at(1), timeout=60_000)
    page.wait_for_function(count(f"{W} .jobtask-colour-bar", "=== 1"), timeout=30_000)
    controls.get_by_label("colormap", exact=True).select_option("magma")
    page.wait_for_function(tiles_at(2), timeout=60_000)
    controls.get_by_label("stretch", exact=True).select_option(label="min-max")
    page.wait_for_function(tiles_at(3), timeout=60_000)
    screenshot(page, "lab-widget-2-single-band-magma-minmax")

    # the quickstart passes an AOI: the widget shows its toggle beside the features'
    page.wait_for_function(count(FEATURES, ">= 6"), timeout=60_000)
    controls.get_by_role("checkbox", name="features").uncheck()
    page.wait_for_function(count(FEATURES, "=== 0"), timeout=30_000)
    controls.get_by_role("checkbox", name="AOI").uncheck()
    page.wait_for_function(count(f"{W} .leaflet-overlay-pane path[stroke-dasharray='6 4']", "=== 0"), timeout=30_000)
    screenshot(page, "lab-widget-3-features-and-aoi-hidden")
    controls.get_by_role("checkbox", name="features").check()
    page.wait_for_function(count(FEATURES, ">= 6"), timeout=30_000)

    plot_in_widget(page, "Plot results")
    screenshot(page, "lab-widget-4-plot")
    assert page.errors == []


def test_the_widget_on_the_multiband_task_in_jupyterlab(page: Any, lab_url: str) -> None:
    open_in_lab(page, lab_url, "multiband_widget.ipynb")
    widget = page.locator(W)
    widget.wait_for(timeout=240_000)
    assert "surface-reflectance-bgrn:1" in widget.locator(".jobtask-header").inner_text()

    widget.get_by_role("button", name="Download results").click()
    page.wait_for_function(tiles_at(0), timeout=120_000)
    controls = widget.locator(".jobtask-layer-controls")
    red = controls.get_by_label("red", exact=True)
    labels = [text.replace("\xa0", " ") for text in red.locator("option").all_inner_texts()]  # ipywidgets: nbsp
    assert labels == ["1 (blue)", "2 (green)", "3 (red)", "4 (nir)"]
    red.select_option(label="4 (nir)")  # false colour: vegetation turns red
    page.wait_for_function(tiles_at(1), timeout=60_000)
    widget.locator(".leaflet-container").scroll_into_view_if_needed()
    screenshot(page, "lab-multiband-1-false-colour")

    controls.get_by_label("stretch", exact=True).select_option(label="custom")
    page.wait_for_function(tiles_at(2), timeout=60_000)
    controls.get_by_label("max", exact=True).fill("1500")
    controls.get_by_label("max", exact=True).press("Enter")
    page.wait_for_function(tiles_at(3), timeout=60_000)
    screenshot(page, "lab-multiband-2-custom-range")

    controls.get_by_role("checkbox", name="scene (reflectance_bgrn.tif)").uncheck()
    page.wait_for_function(count(f"{W} img.jobtask-raster-tile", "=== 0"), timeout=30_000)
    controls.get_by_role("checkbox", name="scene (reflectance_bgrn.tif)").check()
    page.wait_for_function(tiles_at(3), timeout=60_000)

    widget.get_by_role("button", name="Download quicklooks").click()
    wait_image(page, f"{W} img.widget-image")
    plot_in_widget(page, "Plot quicklooks")
    screenshot(page, "lab-multiband-3-quicklook-plot")
    assert page.errors == []
