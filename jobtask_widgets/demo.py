"""Connecting a notebook or a dashboard to a job-task API, and finding the shipped notebooks.

``connect()`` logs in from the ``JOBTASK_*`` variables; when none is set it writes the sample
store to a temporary folder, serves it with the reference server in a background thread and
logs in to that, so the notebooks run top to bottom on a fresh machine.

Variables: ``JOBTASK_API_URL``, ``JOBTASK_PROJECT_ID``, ``JOBTASK_PROJECT_API_KEY`` (the
login, see ``authenticate``), ``JOBTASK_JOB_ID`` (the job to show; default the sample's),
``JOBTASK_JOBTASK_ID`` (the task the quickstart opens; default the job's first) and
``JOBTASK_DOWNLOAD_DIR`` (where downloads go).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .client import authenticate
from .sample import SAMPLE_JOB_ID, SAMPLE_RGB_TASK

LOGIN_VARS = ("JOBTASK_API_URL", "JOBTASK_PROJECT_ID", "JOBTASK_PROJECT_API_KEY")
JOB_VAR, TASK_VAR, DOWNLOADS_VAR = "JOBTASK_JOB_ID", "JOBTASK_JOBTASK_ID", "JOBTASK_DOWNLOAD_DIR"
NOTEBOOKS = ("quickstart.ipynb", "dashboard.ipynb")


@dataclass
class Connection:
    """Where a notebook's job tasks come from.

    Attributes:
        api_url: The job-task API.
        project_id: The project.
        job_id: The job to show.
        jobtask_id: The task to open first.
        downloads: Where downloads go.
        served_sample: Whether this process serves the sample store (no ``JOBTASK_*`` set).
    """

    api_url: str
    project_id: str
    job_id: str
    jobtask_id: str
    downloads: Path
    served_sample: bool = False
    _server: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the sample server, if this connection started one."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __str__(self) -> str:
        where = "the sample store, served in the background" if self.served_sample else "JOBTASK_* variables"
        return f"Job {self.job_id} of project {self.project_id} at {self.api_url} ({where})"


def connect() -> Connection:
    """Log in from the ``JOBTASK_*`` variables, or serve the sample store and log in to it.

    Raises:
        AuthenticationError: when the variables' credentials are refused.
        APIError: when the variables' server cannot be reached.
    """
    downloads = os.environ.get(DOWNLOADS_VAR)
    if any(os.environ.get(var) for var in LOGIN_VARS):
        client = authenticate()
        job = os.environ.get(JOB_VAR) or SAMPLE_JOB_ID
        project = client.project_id or ""
        task = os.environ.get(TASK_VAR) or _first_task(client, project, job)
        folder = Path(downloads) if downloads else Path.cwd() / "jobtask-downloads"
        return Connection(client.settings.api_url, project, job, task, folder)
    from .sample import write_sample
    from .server import BackgroundServer, create_app

    folder = Path(tempfile.mkdtemp(prefix="jobtask-widgets-sample-"))
    sample = write_sample(folder / "store")
    server = BackgroundServer(create_app(sample.root)).start()
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    atexit.register(server.stop)
    authenticate(api_url=server.url, project_id=sample.project_id, project_api_key=sample.project_api_key)
    return Connection(
        server.url, sample.project_id, sample.job_id, os.environ.get(TASK_VAR) or SAMPLE_RGB_TASK,
        Path(downloads) if downloads else folder / "downloads", served_sample=True, _server=server,
    )  # fmt: skip


def _first_task(client: Any, project: str, job: str) -> str:
    tasks = client.list_tasks(project, job)
    return str(tasks[0]["id"]) if tasks else ""


def notebook_path(name: str) -> Path:
    """A shipped notebook: inside the installed package, or in ``notebooks/`` beside it in a clone.

    Raises:
        ValueError: for a name that is not a shipped notebook.
        FileNotFoundError: when the notebook is in neither place.
    """
    if name not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {name!r}; shipped: {', '.join(NOTEBOOKS)}")
    inside = Path(str(resources.files("jobtask_widgets"))) / "notebooks" / name
    beside = Path(__file__).resolve().parents[1] / "notebooks" / name
    for path in (inside, beside):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name} is neither in {inside.parent} nor in {beside.parent}")


# -- the demo dashboard: the sample served, the dashboard in Voila ---------------------------------------

READY_TIMEOUT = 120.0  # seconds Voila gets to answer
STOP_TIMEOUT = 15.0  # seconds Voila gets to shut its kernels down before it is killed


def run_dashboard(
    *, host: str = "127.0.0.1", port: int = 8866, api_port: int = 8042, open_browser: bool = True, banner: Any = None
) -> int:
    """Serve the sample store and the dashboard in Voila until Ctrl-C or SIGTERM; then clean up.

    Prints ``API: <url>``, then ``Dashboard: <url>`` once Voila answers. Stopping ends Voila, its
    kernels and the API server, and removes the temporary folder.

    Args:
        host: The address both servers listen on.
        port: The dashboard's port; a free one when it is taken or ``0``.
        api_port: The API's port; a free one when it is taken or ``0``.
        open_browser: Whether to open the dashboard in the default browser.
        banner: ``banner(api_url, sample) -> str``, printed after the API's URL.

    Returns:
        0 after a requested stop, 1 when Voila could not start or ended by itself.
    """
    import importlib.util
    import signal
    import subprocess
    import sys
    import webbrowser

    from .sample import write_sample
    from .server import BackgroundServer, create_app
    from .server.run import bind, free_port

    missing = [name for name in ("voila", "ipykernel") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: the dashboard needs {' and '.join(missing)}: pip install 'jobtask-widgets[demo]'",
              file=sys.stderr)  # fmt: skip
        return 1

    def stop_on_signal(*_: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM (a service manager) and SIGHUP (a closed terminal) stop the demo as Ctrl-C does;
    # a signal the caller ignores (nohup, a background job) stays ignored
    stops = [sig for sig in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(sig) is not signal.SIG_IGN]
    previous = {sig: signal.signal(sig, stop_on_signal) for sig in stops}
    folder = Path(tempfile.mkdtemp(prefix="jobtask-widgets-demo-"))
    api = voila = None
    try:
        sample = write_sample(folder / "store")
        # the API's socket is bound here and kept: its port cannot be taken before it serves
        api = BackgroundServer(create_app(sample.root), sock=bind(host, api_port, fallback=True)).start()
        print(f"API: {api.url}", flush=True)
        if banner is not None:
            print(banner(api.url, sample), flush=True)
        notebooks = folder / "dashboard"
        notebooks.mkdir()
        shutil.copy(notebook_path("dashboard.ipynb"), notebooks / "dashboard.ipynb")
        # a start for Voila, which binds by itself and moves to a nearby port if this one is taken meanwhile
        port = free_port(host, port)
        env = {**os.environ, "JOBTASK_API_URL": api.url, "JOBTASK_PROJECT_ID": sample.project_id,
               "JOBTASK_PROJECT_API_KEY": sample.project_api_key, JOB_VAR: sample.job_id,
               DOWNLOADS_VAR: str(folder / "downloads")}  # fmt: skip
        log = folder / "voila.log"
        with open(log, "wb") as out:
            voila = subprocess.Popen(
                [sys.executable, "-m", "voila", "dashboard.ipynb", "--no-browser", f"--port={port}",
                 f"--Voila.ip={host}", "--show_tracebacks=True"],
                cwd=notebooks, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        listening = _voila_port(log, voila, READY_TIMEOUT)
        url = f"http://{host}:{listening}/"
        if listening is None or not _answers(url + "api/kernelspecs", voila, READY_TIMEOUT):
            print(f"error: Voila did not start; its log:\n{_tail(log)}", file=sys.stderr, flush=True)
            return 1
        print(f"Dashboard: {url}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        if open_browser:
            webbrowser.open(url)
        voila.wait()
        print(f"error: Voila ended by itself; its log:\n{_tail(log)}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("Stopping...", flush=True)
        return 0
    finally:
        if voila is not None:
            _stop_process_tree(voila)
        if api is not None:
            api.stop()
        shutil.rmtree(folder, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


VOILA_LISTENS = re.compile(r"Voil\S* is running at:\s*\S*?://[^\s/]*:(\d+)")


def _voila_port(log: Path, proc: Any, timeout: float) -> int | None:
    """The port Voila says it listens on (it may have moved on from the one it was given)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = VOILA_LISTENS.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    return None


def _answers(url: str, proc: Any, timeout: float) -> bool:
    import time

    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            requests.get(url, timeout=5, allow_redirects=False)
            return True
        except requests.RequestException:
            time.sleep(0.25)
    return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from ``/proc``; empty where there is none)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_process_tree(proc: Any) -> None:
    """SIGTERM Voila (it shuts its kernels down), then kill whatever of its tree is left."""
    import signal
    import subprocess

    tree = descendants(proc.pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
