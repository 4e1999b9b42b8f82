"""The widgets as VS Code notebooks draw them: VS Code's own widget renderer
(``@vscode/jupyter-ipywidgets8``) in Chromium over a real kernel, widget modules loaded from the
environment's ``share/jupyter/nbextensions/`` through requirejs, offline, every websocket frame through
a JSON + base64 relay (tests/e2e/vscodeharness.py). The same checks as in JupyterLab: tiles over
the widget channel, zoom, a band change, a popup, the layer toggles, the JobTaskWidget's download,
controls, quicklooks and plots, an inline plot; then VS Code's dark theme, and a widget module
missing from the kernel's environment."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tests.e2e.browser import (
    DOWNLOADED_RGB_TASK,
    MAP_NOTEBOOK,
    RESULTS_NOTEBOOK,
    open_popup,
    plot_in_widget,
    screenshot,
    wait_image,
)
from tests.e2e.vscodeharness import HERE, WITHOUT_LEAFLET, VSCodePage

FEATURES = ".leaflet-overlay-pane path.leaflet-interactive[stroke='#ff7800']"
TILES = "img.jobtask-raster-tile[src^='blob:']"
RASTER = "scene (landsat7_etm_rgb.tif)"
W = ".jobtask-widget"

# the map that RESULTS_NOTEBOOK showed, its raster drawn as band 1 through a colormap, from code
BAND_CHANGE = """
results_map = Out[max(Out)]
state = next(iter(results_map.view.rasters.values()))
state.set_style(bands=[1], colormap="viridis")
"""

WIDGET_NOTEBOOK = """
import jobtask_widgets as jw
from jobtask_widgets.demo import connect

connection = connect()
jobtask = jw.initialize_jobtask(jobtask_id=connection.jobtask_id, job_id=connection.job_id)
jobtask.widget(output_directory=connection.downloads / "widget")
"""

PLOT_NOTEBOOK = DOWNLOADED_RGB_TASK + "task.plot_results()\n"

# WCAG contrast of an element's text against what is really behind it (ancestors' backgrounds,
# translucent ones blended), in the page
CONTRAST = """el => {
  const rgba = (text) => {
    const m = text.match(/[\\d.]+/g).map(Number);
    return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1];
  };
  const over = (top, bottom) => top.slice(0, 3).map((c, i) => c * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const layers = [];
  for (let node = el; node; node = node.parentElement) {
    const bg = rgba(getComputedStyle(node).backgroundColor);
    if (bg[3] > 0) layers.push(bg);
    if (bg[3] === 1) break;
  }
  let back = [255, 255, 255, 1];
  for (const layer of layers.reverse()) back = over(layer, back);
  const fore = over(rgba(getComputedStyle(el).color), back);
  const linear = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const lum = (c) => 0.2126 * linear(c[0]) + 0.7152 * linear(c[1]) + 0.0722 * linear(c[2]);
  const [a, b] = [lum(fore), lum(back)];
  return {ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), color: getComputedStyle(el).color,
          background: `rgb(${back.slice(0, 3).map(Math.round).join(',')})`, text: el.innerText.slice(0, 40)};
}"""


def wait_count(page: Any, selector: str, test: str, timeout: float = 60_000) -> None:
    page.wait_for_function(f"() => document.querySelectorAll({selector!r}).length {test}", timeout=timeout)


def tiles_at(revision: int, selector: str = TILES, at_least: int = 2) -> str:
    return (
        f"() => [...document.querySelectorAll({selector!r})]"
        f".filter(e => e.complete && e.naturalWidth === 256 && e.dataset.revision === '{revision}')"
        f".length >= {at_least}"
    )


def settled(revision: int, selector: str = TILES) -> str:
    """Every tile of the layer drawn at ``revision`` (none pending, none older), at least 2 of them."""
    every = selector.replace("[src^='blob:']", "")
    return (
        f"() => {{ const all = [...document.querySelectorAll({every!r})].filter(e => e.style.visibility !== 'hidden');"
        f" return all.length >= 2 && all.every(e => e.complete && e.naturalWidth === 256"
        f" && e.src.startsWith('blob:') && e.dataset.revision === '{revision}'"
        f" && e.classList.contains('leaflet-tile-loaded')); }}"
    )


def tile_numbers(page: Any) -> list[int]:
    """The request numbers of the drawn tiles (each tile request gets the next number)."""
    numbers: list[int] = page.eval_on_selector_all(
        TILES, "els => els.filter(e => e.complete && e.naturalWidth === 256).map(e => +e.dataset.tileId.split('-')[1])"
    )
    return numbers


def assert_loaded_the_vscode_way(vscode: VSCodePage, modules: list[str]) -> None:
    """Each module came from the served nbextensions folder through requirejs, none failed."""
    logs = vscode.page.evaluate("window.harness.logs")
    for module in modules:
        source = f"/nbextensions/{module}/index.js"
        assert any(line.startswith(f"registered {module}@") and source in line for line in logs)
    assert vscode.load_errors() == []


def test_map_results_in_vscode(vscode: VSCodePage) -> None:
    vscode.open()
    page = vscode.page
    vscode.run(RESULTS_NOTEBOOK)
    page.wait_for_function(tiles_at(0, at_least=1), timeout=90_000)
    assert page.locator(f".cell-output-ipywidget-background .leaflet-container {TILES}").count() > 0
    dashes = page.eval_on_selector_all(
        ".leaflet-overlay-pane path", "els => els.map(e => e.getAttribute('stroke-dasharray'))"
    )
    assert "6 4" in dashes  # the AOI, dashed
    wait_count(page, FEATURES, ">= 6")  # the footprint, 3 boxes and 2 points
    page.wait_for_function(settled(0), timeout=60_000)
    screenshot(page, "vscode-map-results-1-tiles")
    # the tiles' bytes crossed the relay as base64 in JSON, and were rebuilt into images; with the
    # kernel protocol the server chose, every message is a binary frame, both ways
    assert page.evaluate("window.harness.protocols") == ["v1.kernel.websocket.jupyter.org"]
    frames = vscode.frames()
    assert frames["fromKernel"]["binary"] >= len(tile_numbers(page)) and frames["toKernel"]["binary"] > 0

    popup = open_popup(page, FEATURES)  # its content arrives from the kernel after the click
    assert "det-" in popup and "class" in popup
    screenshot(page, "vscode-map-results-2-popup")
    page.locator(".leaflet-popup-close-button").click()

    last = max(tile_numbers(page))
    page.locator(".leaflet-control-zoom-in").click()  # new tiles, asked for after the zoom
    page.wait_for_function(
        f"""() => [...document.querySelectorAll({TILES!r})].filter(e => e.complete && e.naturalWidth === 256
                 && +e.dataset.tileId.split('-')[1] > {last}).length >= 2""",
        timeout=60_000,
    )

    vscode.run(BAND_CHANGE)  # a band change from code redraws every tile at the next revision
    page.wait_for_function(tiles_at(1), timeout=60_000)
    wait_count(page, ".leaflet-container .jobtask-colour-bar", "=== 1", 30_000)
    page.wait_for_function(settled(1), timeout=60_000)
    screenshot(page, "vscode-map-results-3-zoomed-band-1-viridis")

    page.get_by_role("checkbox", name=RASTER).uncheck()
    wait_count(page, "img.jobtask-raster-tile", "=== 0", 30_000)
    page.get_by_role("checkbox", name="features").uncheck()
    wait_count(page, FEATURES, "=== 0", 30_000)
    screenshot(page, "vscode-map-results-4-toggled-off")
    page.get_by_role("checkbox", name=RASTER).check()
    page.get_by_role("checkbox", name="features").check()
    page.wait_for_function(tiles_at(1), timeout=60_000)
    wait_count(page, FEATURES, ">= 6")
    assert_loaded_the_vscode_way(vscode, ["jupyter-leaflet", "anywidget"])
    assert page.errors == []


def test_one_raster_layer_in_two_outputs_in_vscode(vscode: VSCodePage) -> None:
    """VS Code draws each output of a model as its own view: the tile layer follows both maps."""
    vscode.open()
    page = vscode.page
    vscode.run(MAP_NOTEBOOK)
    vscode.run("display(m)  # the map, again, in another cell")
    page.get_by_text("attached to 2 map views").wait_for(timeout=60_000)
    wait_count(page, ".cell .leaflet-container", "=== 2")
    for n in (0, 1):
        page.wait_for_function(settled(0, f".cell:nth-child({n + 1}) {TILES}"), timeout=60_000)
    page.get_by_label("bands").select_option(label="near infrared")  # one band: each map redraws
    for n in (0, 1):
        page.wait_for_function(settled(1, f".cell:nth-child({n + 1}) {TILES}"), timeout=60_000)
    screenshot(page, "vscode-raster-layer-two-views-nir")
    page.get_by_role("button", name="remove layer").click()
    wait_count(page, "img.jobtask-raster-tile", "=== 0", 30_000)
    assert_loaded_the_vscode_way(vscode, ["jupyter-leaflet", "anywidget"])
    assert page.errors == []


def test_the_widget_in_vscode(vscode: VSCodePage) -> None:
    vscode.open()
    page = vscode.page
    vscode.run(WIDGET_NOTEBOOK)
    widget = page.locator(f".cell-output-ipywidget-background {W}")
    widget.wait_for(timeout=120_000)
    assert "landsat-7-etm-rgb:1" in widget.locator(".jobtask-header").inner_text()
    assert widget.locator("table.jobtask-info").is_visible()

    widget.get_by_role("button", name="Download results").click(timeout=120_000)
    page.wait_for_selector(f"{W} .progress-bar-success[style*='width: 100%']", timeout=120_000)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{W} .jobtask-files li code')].some(c => c.innerText === 'data.json')",
        timeout=120_000,
    )
    assert any(name.endswith(".tif") for name in widget.locator(".jobtask-files li code").all_inner_texts())
    page.locator(W, has_text="raster(s) on the map").wait_for(timeout=120_000)
    page.wait_for_function(tiles_at(0, f"{W} .leaflet-container {TILES}"), timeout=120_000)
    wait_count(page, f"{W} {FEATURES}", ">= 6")
    page.wait_for_function(settled(0, f"{W} {TILES}"), timeout=60_000)
    screenshot(page, "vscode-widget-1-map")

    controls = widget.locator(".jobtask-layer-controls")
    controls.get_by_role("button", name="single band").click()
    page.wait_for_function(tiles_at(1, f"{W} {TILES}"), timeout=60_000)
    wait_count(page, f"{W} .jobtask-colour-bar", "=== 1", 30_000)
    controls.get_by_label("colormap", exact=True).select_option("magma")
    page.wait_for_function(tiles_at(2, f"{W} {TILES}"), timeout=60_000)
    controls.get_by_role("checkbox", name="features").uncheck()
    wait_count(page, f"{W} {FEATURES}", "=== 0", 30_000)
    page.wait_for_function(settled(2, f"{W} {TILES}"), timeout=60_000)
    screenshot(page, "vscode-widget-2-single-band-magma")
    controls.get_by_role("checkbox", name="features").check()
    wait_count(page, f"{W} {FEATURES}", ">= 6", 30_000)

    widget.get_by_role("button", name="Download quicklooks").click()
    wait_image(page, f"{W} img.widget-image")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{W} .lm-TabBar-tab.lm-mod-current')]"
        ".some(t => t.innerText.includes('Quicklooks'))",
        timeout=30_000,
    )
    screenshot(page, "vscode-widget-3-quicklooks")

    plot_in_widget(page, "Plot results")
    box = widget.locator(".widget-output img").first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 150
    screenshot(page, "vscode-widget-4-plot")
    assert_loaded_the_vscode_way(vscode, ["jupyter-leaflet", "anywidget"])
    assert page.errors == []


def test_plot_results_in_a_cell_in_vscode(vscode: VSCodePage) -> None:
    vscode.open()
    page = vscode.page
    vscode.run(PLOT_NOTEBOOK)
    wait_image(page, ".cell-outputs img.cell-output-image", timeout=30_000)
    size = page.eval_on_selector(".cell-outputs img.cell-output-image", "i => [i.naturalWidth, i.naturalHeight]")
    assert size[0] > 300 and size[1] > 200
    screenshot(page, "vscode-plot-results")
    assert page.errors == []


def test_the_widget_in_vscode_dark_theme(vscode: VSCodePage) -> None:
    vscode.open(theme="dark")
    page = vscode.page
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(30, 30, 30)"
    assert page.evaluate("getComputedStyle(document.body).color") == "rgb(212, 212, 212)"  # --vscode-editor-foreground
    # the page defines no --jp-* variable: those there come from VS Code's renderer bundle (light values), as in VS Code
    assert not re.search(r"--jp-[\w-]+\s*:", (HERE / "harness.css").read_text())
    vscode.run(WIDGET_NOTEBOOK)
    widget = page.locator(f".cell-output-ipywidget-background {W}")
    widget.wait_for(timeout=120_000)
    widget.get_by_role("button", name="Download results").click(timeout=120_000)
    page.wait_for_function(tiles_at(0, f"{W} .leaflet-container {TILES}"), timeout=120_000)
    widget.locator(".lm-TabBar-tab", has_text="Info").click()
    page.locator(f"{W} table.jobtask-info td").first.wait_for()

    checks = {
        "info table key": f"{W} table.jobtask-info th",
        "info table value": f"{W} table.jobtask-info td",
        "header title": f"{W} .jobtask-header span",
        "file list": f"{W} .jobtask-files li code",
        "control label": f"{W} .jobtask-layer-controls .widget-label",
        "checkbox label": f"{W} .jobtask-layer-controls .widget-checkbox label",
        "dropdown": f"{W} .jobtask-layer-controls select",
        "button": f"{W} button.jupyter-button:not(.mod-primary)",
        "save links": f"{W} .jobtask-save-links",
        "save link": f"{W} a.jobtask-save-link",
        # the selected tab; the others are ipywidgets' own grey (rgba(0,0,0,.5) on #eee, 3.9:1, as in JupyterLab)
        "tab title": f"{W} .lm-TabBar-tab.lm-mod-current",
    }
    unreadable = []
    for what, selector in checks.items():
        results = page.locator(selector).evaluate_all(f"els => els.map({CONTRAST})")
        assert results, f"nothing matches {selector} ({what})"
        unreadable += [(what, result) for result in results if result["ratio"] < 4.5]
    page.wait_for_function(settled(0, f"{W} {TILES}"), timeout=60_000)
    screenshot(page, "vscode-dark-widget")
    assert unreadable == [], "\n".join(f"{what}: {result}" for what, result in unreadable)
    # the check sees the theme: VS Code's foreground on its dark editor, and the white it puts behind widgets
    body = page.locator("body").evaluate(CONTRAST)
    assert body["background"] == "rgb(30,30,30)" and body["ratio"] > 10
    assert page.locator(f"{W} table.jobtask-info td").first.evaluate(CONTRAST)["background"] == "rgb(255,255,255)"
    assert page.errors == []


def test_a_widget_module_missing_from_the_environment_shows_a_load_error(vscode: VSCodePage) -> None:
    """The negative control: without jupyter-leaflet/index.js, VS Code (offline) cannot draw the map."""
    vscode.open(nbextensions=WITHOUT_LEAFLET)
    page = vscode.page
    vscode.run(RESULTS_NOTEBOOK)
    # in the cell: ipywidgets' error widget where the map would be, as VS Code shows it
    page.locator(".cell .cell-output-ipywidget-background .jupyter-widgets-error-widget").first.wait_for(timeout=60_000)
    # and the script loader's failure, shown by the harness as VS Code's notification would
    error = page.locator("#widget-load-errors .widget-load-error").first
    error.wait_for(timeout=30_000)
    assert "No version of module jupyter-leaflet is registered" in error.inner_text()
    assert all("jupyter-leaflet" in e for e in vscode.load_errors())
    assert page.locator(".leaflet-container").count() == 0
    # the other module still loads from the same folder: only the missing file is missing
    logs = page.evaluate("window.harness.logs")
    assert any(line.startswith("registered anywidget@") and f"/{WITHOUT_LEAFLET}/anywidget/" in line for line in logs)
    screenshot(page, "vscode-missing-module-error")


SAVE_NOTEBOOK = """
import hashlib
from pathlib import Path
import jobtask_widgets as jw

path = Path("vscode-save.bin").resolve()
with open(path, "wb") as f:
    for i in range(24):
        f.write(hashlib.shake_256(str(i).encode()).digest(1 << 20))
print("sha256", hashlib.sha256(path.read_bytes()).hexdigest())
jw.save_to_browser(path)
"""


def test_save_to_my_computer_through_vscodes_renderer(vscode: VSCodePage, tmp_path: Any) -> None:
    page = vscode.page
    # headless Chromium answers the file picker with AbortError: the download link is what is tested
    page.add_init_script('Object.defineProperty(window, "showSaveFilePicker", {configurable: true, value: undefined});')
    vscode.open()
    with page.expect_download(timeout=120_000) as event:
        vscode.run(SAVE_NOTEBOOK)
        page.wait_for_function("() => document.querySelector('.jobtask-save')?.dataset.state === 'saved'")
    download = event.value
    assert download.suggested_filename == "vscode-save.bin"
    download.save_as(tmp_path / "saved.bin")
    printed = re.search(r"sha256 ([0-9a-f]{64})", page.locator("body").inner_text())
    assert printed is not None
    assert hashlib.sha256((tmp_path / "saved.bin").read_bytes()).hexdigest() == printed.group(1)
    assert page.locator(".jobtask-save-message").inner_text() == "Saved vscode-save.bin"
    screenshot(page, "vscode-save")
    assert page.errors == []
