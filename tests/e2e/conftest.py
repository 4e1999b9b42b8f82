"""Fixtures of the real-browser tests: Chromium launched offline, a page that reaches only
127.0.0.1, the test notebooks, and Voila and JupyterLab serving them (helpers in browser.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jobtask_widgets.demo import notebook_path
from jobtask_widgets.server.run import free_port
from tests.e2e.browser import (
    CHROMIUM,
    INSPECT_NOTEBOOK,
    LOCAL,
    MAP_NOTEBOOK,
    MULTIBAND_WIDGET_NOTEBOOK,
    RESULTS_NOTEBOOK,
    require_browser,
    start,
    write_grid_results,
)
from tests.e2e.vscodeharness import VSCodePage, VSCodeSite, install_npm_packages, jupyter_server, site, static_server


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
    write_grid_results(folder)
    inspect = nbformat.v4.new_notebook(metadata=nb.metadata)
    inspect.cells = [nbformat.v4.new_code_cell(INSPECT_NOTEBOOK)]
    nbformat.write(inspect, folder / "inspect_map.ipynb")
    return folder


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


# ---- the VS Code harness (tests/e2e/vscodeharness.py): VS Code's widget renderer over a real kernel ----


@pytest.fixture(scope="session")
def vscode_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VSCodeSite]:
    """The harness's page, served on 127.0.0.1, and a Jupyter server whose kernels it uses."""
    require_browser()
    node_modules = install_npm_packages()
    root = tmp_path_factory.mktemp("vscode")
    site(root / "site", node_modules)
    (root / "kernel-cwd").mkdir()
    with static_server(root / "site") as url, jupyter_server(root / "kernel-cwd", url) as (server, token):
        yield VSCodeSite(url, server, token, root / "kernel-cwd")


@pytest.fixture
def vscode(page: Any, vscode_site: VSCodeSite) -> Iterator[VSCodePage]:
    """``page`` as a VS Code notebook: ``vscode.open(...)`` then ``vscode.run(code)``; its kernel shut down after."""
    notebook = VSCodePage(page, vscode_site)
    yield notebook
    notebook.close()
