"""RasterTileLayer in a real browser, in Voila and in JupyterLab: tiles appear inside the
Leaflet container, zooming asks for new tiles, hiding the layer hides them, changing bands
redraws them, a map shown twice gets the layer twice, and the page raises no error."""

from __future__ import annotations

from typing import Any

from tests.e2e.browser import open_in_lab, screenshot

LOADED = "img.jobtask-raster-tile[src^='blob:']"


def loaded_tiles(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        LOADED,
        """els => els.filter(e => e.complete && e.naturalWidth === 256).map(e => ({
            id: e.dataset.tileId, revision: e.dataset.revision,
            inMap: !!e.closest('.leaflet-container'),
            map: [...document.querySelectorAll('.leaflet-container')].indexOf(e.closest('.leaflet-container'))}))""",
    )


def wait_tiles(page: Any, condition: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        f"""() => {{
            const tiles = [...document.querySelectorAll("{LOADED}")].filter(e => e.complete && e.naturalWidth === 256);
            return {condition};
        }}""",
        timeout=timeout,
    )


def exercise(page: Any, name: str) -> None:
    wait_tiles(page, "new Set(tiles.map(e => e.closest('.leaflet-container'))).size >= 2")
    page.wait_for_selector("text=attached to 2 map views", timeout=30_000)
    first = loaded_tiles(page)
    assert first and all(t["inMap"] for t in first)
    assert {t["map"] for t in first} == {0, 1}  # the map shown twice has the layer twice
    assert {t["revision"] for t in first} == {"0"}
    screenshot(page, f"{name}-1-tiles")

    seen = {t["id"] for t in first}
    page.locator(".leaflet-control-zoom-in").first.click()
    wait_tiles(page, f"tiles.some(e => !{sorted(seen)!r}.includes(e.dataset.tileId))")
    zoomed = loaded_tiles(page)
    assert {t["id"] for t in zoomed} - seen  # new tiles were asked for and drawn
    screenshot(page, f"{name}-2-zoomed")

    page.get_by_role("checkbox", name="raster visible").click()
    page.wait_for_function("document.querySelectorAll('img.jobtask-raster-tile').length === 0", timeout=30_000)
    screenshot(page, f"{name}-3-hidden")
    page.get_by_role("checkbox", name="raster visible").click()
    wait_tiles(page, "tiles.length > 0")

    page.locator(".widget-dropdown select").first.select_option(label="near infrared")
    wait_tiles(page, "tiles.length > 0 && tiles.every(e => e.dataset.revision === '1')")
    redrawn = loaded_tiles(page)
    assert redrawn and {t["revision"] for t in redrawn} == {"1"}
    screenshot(page, f"{name}-4-nir")

    page.get_by_role("button", name="remove layer").click()  # closes the widget in the kernel
    page.wait_for_function("document.querySelectorAll('img.jobtask-raster-tile').length === 0", timeout=30_000)
    assert page.locator(".jobtask-raster-layer").count() == 0  # detached from both views
    assert page.errors == []


def test_voila(page: Any, voila_url: str) -> None:
    page.goto(f"{voila_url}/voila/render/raster_map.ipynb", timeout=120_000)
    exercise(page, "voila")


def test_jupyterlab(page: Any, lab_url: str) -> None:
    open_in_lab(page, lab_url, "raster_map.ipynb")
    exercise(page, "jupyterlab")
