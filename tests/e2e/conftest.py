"""Real-browser tests: Chromium (Debian's, driven by Playwright) against Voila and JupyterLab.

In CI (``CI=true``) a missing browser fails the run; elsewhere these tests skip with the reason,
since ``.ci/run`` is what installs Chromium. Every request that leaves 127.0.0.1 is blocked, as on
an offline machine. Screenshots go to ``artifacts/screenshots/`` on every run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jobtask_widgets.demo import notebook_path

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


RESULTS_NOTEBOOK = """
import tempfile
from pathlib import Path

from shapely.geometry import box

import jobtask_widgets as jw
from jobtask_widgets.sample import SAMPLE_RGB_TASK, write_sample
from jobtask_widgets.server import BackgroundServer, create_app

folder = Path(tempfile.mkdtemp())
sample = write_sample(folder / "store")
server = BackgroundServer(create_app(sample.root)).start()
jw.authenticate(api_url=server.url, project_id=sample.project_id, project_api_key=sample.project_api_key)
task = jw.initialize_jobtask(SAMPLE_RGB_TASK, sample.job_id)
_ = task.download_results(folder / "results", progress=False)
task.map_results(bands=[3, 2, 1], aoi=box(-78.2, 24.4, -77.4, 25.0), save_html="saved_map.html")
"""


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


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    require_browser()
    flags = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": flags}


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A page that reaches nothing but 127.0.0.1, and that records page errors."""
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL) else route.abort())
    page = context.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def notebook_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notebooks")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(MAP_NOTEBOOK), nbformat.v4.new_code_cell("display(m)  # the map, twice")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "raster_map.ipynb")
    results = nbformat.v4.new_notebook()
    results.cells = [nbformat.v4.new_code_cell(RESULTS_NOTEBOOK)]
    results.metadata["kernelspec"] = nb.metadata["kernelspec"]
    nbformat.write(results, folder / "map_results.ipynb")
    shutil.copy(notebook_path("quickstart.ipynb"), folder / "quickstart.ipynb")  # Lab autosaves: a copy
    multiband = nbformat.v4.new_notebook(metadata=nb.metadata)
    multiband.cells = [nbformat.v4.new_code_cell(MULTIBAND_WIDGET_NOTEBOOK)]
    nbformat.write(multiband, folder / "multiband_widget.ipynb")
    return folder


def start(args: list[str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    log = open(cwd / f"server-{port}.log", "wb")  # noqa: SIM115  closed with the process
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, proc)
    return proc


@pytest.fixture(scope="session")
def voila_url(notebook_dir: Path) -> Iterator[str]:
    require_browser()
    port = free_port()
    proc = start(["voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"], notebook_dir, port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def lab_url(notebook_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    port = free_port()
    args = ["jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={notebook_dir}",
            "--LabApp.expose_app_in_browser=True", "--allow-root"]  # fmt: skip
    env_dir = tmp_path_factory.mktemp("lab-settings")
    os.environ.setdefault("JUPYTERLAB_SETTINGS_DIR", str(env_dir / "settings"))
    os.environ.setdefault("JUPYTERLAB_WORKSPACES_DIR", str(env_dir / "workspaces"))
    # every cell stays in the page: with windowing, Lab detaches cells scrolled out of view
    tracker = Path(os.environ["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    proc = start(args, notebook_dir, port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def open_in_lab(page: Any, lab_url: str, notebook: str) -> None:
    """Open ``notebook`` in a fresh JupyterLab workspace and run all its cells once its kernel is idle."""
    page.goto(f"{lab_url}/lab/tree/{notebook}?reset", timeout=120_000)  # ?reset: no tabs from an earlier test
    page.wait_for_function(
        f"""() => {{ const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   return w && w.context && w.context.path === {notebook!r} && w.sessionContext
                       && w.sessionContext.session && w.sessionContext.session.kernel
                       && w.sessionContext.session.kernel.status === 'idle'; }}""",
        timeout=120_000,
    )
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
