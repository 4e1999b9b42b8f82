"""Where a job task's results come from: the job-task API, or a STAC Item (``stacsource.py``).

``JobTask`` is one class over a small interface, :class:`TaskSource`: its metadata, its
data.json, its result files at URLs (read in place), and downloads of its results and
quicklooks. :class:`ApiSource` speaks the job-task API through a ``Client``; the STAC source
reads an Item's assets. The documented API (``initialize_jobtask``, ``JobTask.*``) is the same
over both.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from . import transfer
from .client import Client
from .errors import DownloadCancelled, DownloadError, NotFoundError
from .unpack import unpack


class TaskSource(Protocol):
    """What a ``JobTask`` reads its task through."""

    def headers_for(self, url: str) -> Mapping[str, str]:
        """HTTP headers a request for one of the task's files carries (GDAL's included)."""
        ...

    def info(self) -> dict[str, Any]:
        """The task's metadata, fetched anew.

        Raises:
            NotFoundError: when the task is unknown.
        """
        ...

    def data_json(self) -> bytes:
        """The raw bytes of the task's data.json (a GeoJSON FeatureCollection)."""
        ...

    def result_files(self) -> list[dict[str, Any]]:
        """The task's result files: ``path``, ``size``, ``media_type``, ``sha256`` and ``url`` of each."""
        ...

    def download_results(
        self,
        folder: Path,
        *,
        progress: transfer.Progress,
        cancel: threading.Event | None,
        max_unpacked_bytes: int | None,
    ) -> list[Path]:
        """Download the results into ``folder``; the absolute paths of the files."""
        ...

    def download_quicklooks(
        self, folder: Path, *, progress: transfer.Progress, cancel: threading.Event | None
    ) -> list[Path]:
        """Download the quicklooks into ``folder`` as ``quicklook_{name}``; their absolute paths."""
        ...


class ApiSource:
    """A task of the job-task API.

    Args:
        client: The logged-in client.
        project_id: The project's id.
        job_id: The job's id.
        task_id: The task's id.
    """

    def __init__(self, client: Client, project_id: str, job_id: str, task_id: str) -> None:
        self.client = client
        self.project_id, self.job_id, self.task_id = project_id, job_id, task_id

    def headers_for(self, url: str) -> Mapping[str, str]:
        """None: the file URLs are signed, they need no header."""
        return {}

    def info(self) -> dict[str, Any]:
        """The task's ``info.json``, from the job's task list.

        Raises:
            NotFoundError: when the project, job or task is unknown.
        """
        for task in self.client.list_tasks(self.project_id, self.job_id):
            if task.get("id") == self.task_id:
                return task
        raise NotFoundError(
            f"unknown job task {self.task_id!r} in job {self.job_id!r} of project {self.project_id!r}",
            status=404,
            code="NOT_FOUND",
            url=self.client.settings.api_url + self.client.job_path(self.project_id, self.job_id) + "/tasks/",
        )

    def data_json(self) -> bytes:
        """The task's data.json, from the data-json endpoint."""
        return self.client.data_json(self.project_id, self.job_id, self.task_id)

    def result_files(self) -> list[dict[str, Any]]:
        """The server's file list (``outputs/files/``), each file at a signed URL."""
        return self.client.result_files(self.project_id, self.job_id, self.task_id)

    def download_results(
        self,
        folder: Path,
        *,
        progress: transfer.Progress,
        cancel: threading.Event | None,
        max_unpacked_bytes: int | None,
    ) -> list[Path]:
        """The results archive, downloaded, verified and unpacked (see ``JobTask.download_results``)."""
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder / f".results_{self.task_id}.archive"
        got = transfer.download(
            self.client.session,
            lambda: self.client.results_url(self.project_id, self.job_id, self.task_id),
            archive,
            progress=progress,
            timeout=self.client.timeout,
            description=f"results {self.task_id[:8]}",
            cancel=cancel,
        )
        if cancel is not None and cancel.is_set():
            raise DownloadCancelled(f"results {self.task_id[:8]}: cancelled")
        try:
            files = unpack(got.path, folder, max_unpacked_bytes=max_unpacked_bytes)
        except (DownloadError, ValueError):
            transfer.discard(got.path)  # damaged or refused: never kept, never reused
            raise
        transfer.mark_verified(got.path)  # it unpacked cleanly (CRC, and the digest if stated)
        return list(files)

    def download_quicklooks(
        self, folder: Path, *, progress: transfer.Progress, cancel: threading.Event | None
    ) -> list[Path]:
        """Each quicklook image of the task, as ``quicklook_{name}``; the ones written are removed on cancel."""
        names = self.client.quicklook_names(self.project_id, self.job_id, self.task_id)
        paths: list[Path] = []
        if names:
            folder.mkdir(parents=True, exist_ok=True)
        try:
            for name in names:
                target = folder / f"quicklook_{Path(name).name}"
                path = self.client.quicklook_path(self.project_id, self.job_id, self.task_id, name)
                transfer.fetch_small(self.client.request("GET", path, stream=True), target, progress, cancel)
                paths.append(target.resolve())
        except DownloadCancelled:
            for done in paths:
                done.unlink(missing_ok=True)
            raise
        return paths


__all__ = ["ApiSource", "TaskSource"]
