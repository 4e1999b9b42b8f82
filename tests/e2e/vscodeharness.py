"""The VS Code notebook harness of the browser tests: VS Code's own widget renderer
(``@vscode/jupyter-ipywidgets8``, the npm package its Jupyter extension loads into a notebook's
output webview) in headless Chromium, over a kernel of a real Jupyter server.

- npm packages (pinned below) go to a cache folder outside the repository, once per package list;
  ``esbuild`` bundles ``@jupyterlab/services`` for the page (``vscode/entry.js``). No CDN.
- A static server of ours on 127.0.0.1 serves the page (``vscode/index.html``, ``harness.js``), the
  bundle, the npm files, and the environment's ``share/jupyter/nbextensions/`` as VS Code serves a
  local kernel's widget modules; ``nbextensions-without-leaflet/`` is the same folder without
  ``jupyter-leaflet/index.js``, the negative control.
- A Jupyter server (token auth, 127.0.0.1) runs the test environment's python3 kernel; the page
  talks to it cross-origin, every websocket frame crossing a JSON + base64 relay in both directions.

In CI (``CI=true``) a missing npm or Chromium fails the run; elsewhere the tests skip with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from jobtask_widgets.server.run import free_port
from tests.e2e.browser import start

HERE = Path(__file__).parent / "vscode"
# What VS Code's Jupyter extension draws widgets with, and the page's kernel client; JupyterLab 4.6's
# server speaks the protocol of @jupyterlab/services 7.x
NPM_PACKAGES = ["requirejs@2.3.7", "@vscode/jupyter-ipywidgets8@1.0.9", "@jupyterlab/services@7.6.6", "esbuild@0.28.2"]
NBEXTENSIONS = Path(sys.prefix) / "share" / "jupyter" / "nbextensions"
WITHOUT_LEAFLET = "nbextensions-without-leaflet"


def require_npm() -> str:
    npm = shutil.which("npm")
    if npm:
        return npm
    message = "npm is not installed (on Debian: apt-get install npm; .ci/run must install it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def npm_cache() -> Path:
    """The cache folder of the npm packages, keyed by the package list; outside the repository."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256("\n".join(NPM_PACKAGES).encode()).hexdigest()[:12]
    return base / "jobtask-widgets-tests" / f"vscode-npm-{key}"


def install_npm_packages() -> Path:
    """Install the pinned packages into the cache (skipped when they are there); their node_modules."""
    npm = require_npm()
    folder = npm_cache()
    if _installed(folder):
        return folder / "node_modules"
    # installed beside, then moved into place whole: a run that stops halfway, or a second run at
    # the same time, never leaves a half-filled cache behind
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    args = [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(partial), *NPM_PACKAGES]
    result = subprocess.run(args, cwd=partial, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"npm install failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    (partial / "installed.json").write_text(json.dumps(NPM_PACKAGES))
    if folder.exists() and not _installed(folder):
        shutil.rmtree(folder, ignore_errors=True)  # an older layout or a broken copy
    try:
        partial.rename(folder)
    except OSError:  # another run put its copy there first
        shutil.rmtree(partial, ignore_errors=True)
    if not _installed(folder):
        raise RuntimeError(f"the npm packages are not in {folder}")
    return folder / "node_modules"


def _installed(folder: Path) -> bool:
    done = folder / "installed.json"
    return done.is_file() and json.loads(done.read_text()) == NPM_PACKAGES and (folder / "node_modules").is_dir()


def bundle(node_modules: Path, out: Path) -> None:
    """Bundle vscode/entry.js (@jupyterlab/services for the page) into ``out`` with esbuild."""
    esbuild = node_modules / ".bin" / "esbuild"
    args = [str(esbuild), str(HERE / "entry.js"), "--bundle", "--format=esm", "--platform=browser",
            "--target=es2020", f"--outfile={out}", "--log-level=warning"]  # fmt: skip
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=node_modules.parent)
    if result.returncode != 0:
        raise RuntimeError(f"esbuild failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def site(root: Path, node_modules: Path) -> Path:
    """Lay out what the static server serves under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("index.html", "harness.js", "harness.css"):
        shutil.copy(HERE / name, root / name)
    (root / "npm").symlink_to(node_modules, target_is_directory=True)
    (root / "nbextensions").symlink_to(NBEXTENSIONS, target_is_directory=True)
    shutil.copytree(NBEXTENSIONS, root / WITHOUT_LEAFLET, ignore=lambda d, names: _leaflet_index(d, names))
    assert not (root / WITHOUT_LEAFLET / "jupyter-leaflet" / "index.js").exists()
    bundle(node_modules, root / "bundle" / "services.js")
    return root


def _leaflet_index(folder: str, names: list[str]) -> list[str]:
    return ["index.js"] if Path(folder).name == "jupyter-leaflet" else []


class _Handler(SimpleHTTPRequestHandler):
    def guess_type(self, path: str | os.PathLike[str]) -> str:
        return "text/javascript" if str(path).endswith(".js") else super().guess_type(path)  # module scripts

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_server(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 from a thread; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(_Handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="vscode-harness-static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def jupyter_server(root_dir: Path, allow_origin: str) -> Iterator[tuple[str, str]]:
    """A Jupyter server with token auth on 127.0.0.1 whose kernel is this environment's python3."""
    port = free_port()
    token = secrets.token_hex(16)
    args = ["jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}", "--ServerApp.password=", f"--ServerApp.root_dir={root_dir}",
            f"--ServerApp.allow_origin={allow_origin}", "--allow-root"]  # fmt: skip
    proc = start(args, root_dir, port)
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass(frozen=True)
class VSCodeSite:
    url: str  # the static server: the page, the bundle, npm files, nbextensions
    server: str  # the Jupyter server
    token: str
    kernel_cwd: Path


class VSCodePage:
    """A Playwright page showing the harness: a VS Code notebook's outputs, one kernel per ``open``."""

    def __init__(self, page: Any, site: VSCodeSite) -> None:
        self.page = page
        self.site = site
        self.opened = False

    def open(self, *, nbextensions: str = "nbextensions", theme: str = "light") -> None:
        query = urlencode({"server": self.site.server, "token": self.site.token, "nbext": nbextensions, "theme": theme})
        self.page.goto(f"{self.site.url}/index.html?{query}", timeout=60_000)
        self.page.wait_for_function(
            "() => document.body.classList.contains('harness-ready') || window.harness.startError", timeout=90_000
        )
        assert self.page.evaluate("window.harness.startError || ''") == ""
        self.opened = True

    def run(self, code: str, timeout: float = 240_000) -> None:
        """Run ``code`` as a cell; fails on a Python error (its outputs stay drawn in the page)."""
        reply = self.page.evaluate(
            """([code, ms]) => Promise.race([window.runCell(code),
                 new Promise((_, reject) => setTimeout(() => reject(new Error(`the cell ran over ${ms} ms`)), ms))])""",
            [code, timeout],
        )
        assert reply["status"] == "ok", f"{reply['ename']}: {reply['evalue']}"

    def frames(self) -> dict[str, dict[str, int]]:
        """Websocket frames that crossed the relay, by direction and kind."""
        frames: dict[str, dict[str, int]] = self.page.evaluate("window.harness.frames")
        return frames

    def load_errors(self) -> list[str]:
        errors: list[str] = self.page.evaluate("window.harness.loadErrors")
        return errors

    def close(self) -> None:
        if self.opened:
            with suppress(Exception):  # the page may be gone; the server ends its kernels when it stops
                self.page.evaluate("window.shutdownKernel()")
