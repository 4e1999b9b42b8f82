"""Helpers of the real-browser tests (the fixtures are in conftest.py): Chromium (Debian's, driven by
Playwright) against Voila and JupyterLab.

In CI (``CI=true``) a missing browser fails the run; elsewhere these tests skip with the reason,
since ``.ci/run`` is what installs Chromium. Every request that leaves 127.0.0.1 is blocked, as on
an offline machine. Screenshots go to ``artifacts/screenshots/`` on every run.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "file:")
BLANK_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)

MAP_NOTEBOOK = f"""
import tempfile
from pathlib import Path

import ipyleaflet
import ipywidgets as w
from IPython.display import display

from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK, write_sample
from jobtask_widgets.tilelayer import RasterTileLayer

sample = write_sample(Path(tempfile.mkdtemp()) / "store")
tif = next((sample.task_dir(SAMPLE_MULTIBAND_TASK) / "output").rglob("*.tif"))
blank = ipyleaflet.TileLayer(url="{BLANK_PNG}", name="blank")
m = ipyleaflet.Map(center=(52.52, 13.42), zoom=11, basemap=blank, layout=w.Layout(width="700px", height="420px"))
layer = RasterTileLayer(m, tif)
visible = w.Checkbox(value=True, description="raster visible")
w.link((visible, "value"), (layer, "visible"))
bands = w.Dropdown(options=[("true colour", (3, 2, 1)), ("near infrared", (4,))], description="bands")
bands.observe(lambda change: layer.set_style(bands=change["new"]), "value")
status = w.Label()
w.dlink((layer, "attached"), (status, "value"), lambda n: f"attached to {{n}} map views")
remove = w.Button(description="remove layer")
remove.on_click(lambda _: layer.close())
display(w.VBox([m, visible, bands, status, remove]))
"""


# the sample served in the kernel, its RGB task downloaded: the start of the notebooks below
DOWNLOADED_RGB_TASK = """
import tempfile
from pathlib import Path

import jobtask_widgets as jw
from jobtask_widgets.sample import SAMPLE_RGB_TASK, write_sample
from jobtask_widgets.server import BackgroundServer, create_app

folder = Path(tempfile.mkdtemp())
sample = write_sample(folder / "store")
server = BackgroundServer(create_app(sample.root)).start()
jw.authenticate(api_url=server.url, project_id=sample.project_id, project_api_key=sample.project_api_key)
task = jw.initialize_jobtask(SAMPLE_RGB_TASK, sample.job_id)
_ = task.download_results(folder / "results", progress=False)
"""

RESULTS_NOTEBOOK = (
    DOWNLOADED_RGB_TASK
    + """from shapely.geometry import box

task.map_results(bands=[3, 2, 1], aoi=box(-78.2, 24.4, -77.4, 25.0), save_html="saved_map.html")
"""
)


MULTIBAND_WIDGET_NOTEBOOK = """
import jobtask_widgets as jw
from jobtask_widgets.demo import connect
from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK

connection = connect()
jobtask = jw.initialize_jobtask(SAMPLE_MULTIBAND_TASK, connection.job_id)
jobtask.widget(output_directory=connection.downloads / "multiband")
"""


def require_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"Chromium is not installed at {CHROMIUM} (.ci/run installs it with apt)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def start(args: list[str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    log = open(cwd / f"server-{port}.log", "wb")  # noqa: SIM115  closed with the process
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, proc)
    return proc


def open_in_lab(page: Any, lab_url: str, notebook: str) -> None:
    """Open ``notebook`` in a fresh JupyterLab workspace and run all its cells once its kernel is idle."""
    open_lab_notebook(page, lab_url, notebook)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.wait_for_timeout(400)  # Leaflet fades new tiles in over 200 ms
    page.screenshot(path=str(path), full_page=True)
    return path


def open_popup(page: Any, features: str, index: int = 4) -> str:
    """Click a feature until its popup shows (its content comes from the kernel); the popup's text."""
    for attempt in range(3):
        page.locator(features).nth(index).click(force=True)
        try:
            page.wait_for_selector(".leaflet-popup-content table.jobtask-popup", timeout=10_000)
            break
        except Exception:
            if attempt == 2:
                raise
    return page.locator(".leaflet-popup-content").inner_text()


def wait_image(page: Any, selector: str, timeout: float = 60_000) -> None:
    """Wait until an ``img`` matching ``selector`` has loaded a picture."""
    page.wait_for_function(
        f"() => [...document.querySelectorAll({selector!r})].some(i => i.complete && i.naturalWidth > 0)",
        timeout=timeout,
    )


def plot_in_widget(page: Any, button: str) -> None:
    """Open the JobTaskWidget's Plots tab, click ``button`` and wait for the figure to show."""
    widget = page.locator(".jobtask-widget")
    widget.locator(".lm-TabBar-tab", has_text="Plots").click()
    widget.get_by_role("button", name=button).click()
    wait_image(page, ".jobtask-widget .widget-output img")
    widget.locator(".widget-output img").first.scroll_into_view_if_needed()


def open_lab_notebook(page: Any, lab_url: str, notebook: str) -> None:
    """Open ``notebook`` in a fresh JupyterLab workspace and wait until its kernel is idle (run nothing)."""
    page.goto(f"{lab_url}/lab/tree/{notebook}?reset", timeout=120_000)  # ?reset: no tabs from an earlier test
    page.wait_for_function(
        f"""() => {{ const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   return w && w.context && w.context.path === {notebook!r} && w.sessionContext
                       && w.sessionContext.session && w.sessionContext.session.kernel
                       && w.sessionContext.session.kernel.status === 'idle'; }}""",
        timeout=120_000,
    )


def run_cell(page: Any, index: int) -> None:
    """Run cell ``index`` of the open notebook, as Shift+Enter on it would (without waiting for it)."""
    page.evaluate(
        f"""() => {{ const w = window.jupyterapp.shell.currentWidget;
                   w.content.activeCellIndex = {index};
                   return window.jupyterapp.commands.execute('notebook:run-cell'); }}"""
    )


def cell_output(page: Any, index: int, contains: str, timeout: float = 120_000) -> str:
    """The text output of cell ``index`` once it holds ``contains``."""
    selector = f".jp-Notebook .jp-Cell:nth-child({index + 1}) .jp-OutputArea-output"
    page.wait_for_function(
        f"() => [...document.querySelectorAll({selector!r})].some(o => o.innerText.includes({contains!r}))",
        timeout=timeout,
    )
    return str(page.locator(selector).all_inner_texts())


def screen_point(page: Any, tiles: str, lon: float, lat: float) -> tuple[float, float]:
    """Where ``lon, lat`` is on the screen: found through the loaded tile that holds it (each tile
    says its z, x and y; Web Mercator does the rest)."""
    shown = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].filter(t => t.complete && t.naturalWidth === 256)
              .map(t => { const r = t.getBoundingClientRect();
                          return [+t.dataset.z, +t.dataset.x, +t.dataset.y, r.left, r.top, r.width]; })""",
        tiles,
    )
    for z, x, y, left, top, width in shown:
        n = 2**z
        world_x = (lon + 180.0) / 360.0 * n
        world_y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n
        if x <= world_x < x + 1 and y <= world_y < y + 1:
            point = left + (world_x - x) * width, top + (world_y - y) * width
            script = (
                "([x, y]) => { const e = document.elementFromPoint(x, y); return !!e?.closest('.leaflet-container'); }"
            )
            on_map = page.evaluate(script, list(point))
            assert on_map, f"{lon}, {lat} is at {point}, outside the map's visible part"
            return point
    raise AssertionError(f"no loaded tile holds {lon}, {lat}: {shown}")


def tile_brightness(page: Any, tiles: str, revision: int) -> float:
    """The mean of R + G + B over the opaque pixels of the loaded tiles drawn at ``revision``."""
    return float(
        page.evaluate(
            """([sel, revision]) => {
                const canvas = document.createElement("canvas");
                canvas.width = canvas.height = 256;
                const g = canvas.getContext("2d");
                let sum = 0, count = 0;
                for (const tile of document.querySelectorAll(sel)) {
                    const drawn = tile.complete && tile.naturalWidth === 256;
                    if (!drawn || tile.dataset.revision !== String(revision)) continue;
                    g.clearRect(0, 0, 256, 256);
                    g.drawImage(tile, 0, 0);
                    const d = g.getImageData(0, 0, 256, 256).data;
                    for (let k = 0; k < d.length; k += 4) {
                        if (d[k + 3] > 0) { sum += d[k] + d[k + 1] + d[k + 2]; count++; }
                    }
                }
                return count ? sum / count : -1;
            }""",
            [tiles, revision],
        )
    )


def tile_revision(page: Any, tiles: str) -> int:
    """The newest revision among the loaded tiles."""
    return int(
        page.evaluate(
            "(sel) => Math.max(-1, ...[...document.querySelectorAll(sel)].filter(t => t.complete)"
            ".map(t => +t.dataset.revision))",
            tiles,
        )
    )


def tiles_at(tiles: str, revision: int, at_least: int = 2) -> str:
    """A page function: at least ``at_least`` tiles drawn at ``revision`` have loaded."""
    return (
        f"() => [...document.querySelectorAll({tiles!r})]"
        f".filter(e => e.complete && e.naturalWidth === 256 && e.dataset.revision === '{revision}')"
        f".length >= {at_least}"
    )


# ---- the pixel inspector and the histogram: a raster whose every pixel says where it is ----
GRID_SIZE = (40, 60)  # rows, columns of 100 m: each pixel is several screen pixels wide at the fitted view
GRID_FEATURE = "feature-1"  # the one feature of data.json, over columns 42..56


def write_grid_results(folder: Path) -> Path:
    """``grid.tif`` (uint32, value = row * 1000 + col, 100 m pixels in UTM 33N near Berlin) and a
    ``data.json`` with one feature over part of it, in ``folder``; returns the raster."""
    import json

    import rasterio
    from rasterio.warp import transform as warp_transform

    from tests import rasters

    rows, cols = GRID_SIZE
    from affine import Affine

    transform = Affine(100.0, 0.0, 390_000.0, 0.0, -100.0, 5_820_000.0)
    path = rasters.grid(folder / "grid.tif", "uint32", height=rows, width=cols, transform=transform)
    with rasterio.open(path) as ds:
        corners = [ds.xy(r, c) for r, c in ((6, 42), (6, 56), (34, 56), (34, 42), (6, 42))]
        lons, lats = warp_transform(ds.crs, "EPSG:4326", [x for x, _ in corners], [y for _, y in corners])
    ring = [[lon, lat] for lon, lat in zip(lons, lats, strict=True)]
    feature = {"type": "Feature", "properties": {"uid": GRID_FEATURE, "score": 0.9},
               "geometry": {"type": "Polygon", "coordinates": [ring]}}  # fmt: skip
    (folder / "data.json").write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


INSPECT_NOTEBOOK = f"""
from pathlib import Path

import ipyleaflet
import ipywidgets as w
from IPython.display import display

from jobtask_widgets.layercontrols import LayerControls
from jobtask_widgets.mapwidget import ResultsMap
from jobtask_widgets.view import ResultsView

view = ResultsView.from_files([Path("grid.tif"), Path("data.json")])
blank = ipyleaflet.TileLayer(url="{BLANK_PNG}", name="blank")
m = ResultsMap(view, basemap=blank, panel=False)
m.layout = w.Layout(width="440px", height="400px")  # beside the controls in Lab's narrower output too
controls = LayerControls(view)
display(w.HBox([m, controls]))
"""
