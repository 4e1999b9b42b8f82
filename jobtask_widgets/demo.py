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
import os
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
