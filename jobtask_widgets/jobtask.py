"""``JobTask``: the documented API over one job task's results.

It delegates: where the task comes from to a ``TaskSource`` (``sources.py``: the job-task API
through ``client``, or a STAC Item), downloads and unpacking to ``transfer``, the GeoDataFrame to
``features``, figures to ``plotting``, the model of a map to ``view`` (``ResultsView``) and its
drawing to the widget layer, which is imported only when a map or a widget is asked for.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import transfer
from .client import Client, default_client
from .errors import APIError, NotFoundError
from .remote import RemoteFile
from .sources import ApiSource, TaskSource

if TYPE_CHECKING:
    import geopandas

    from . import plotting
    from .mapwidget import ResultsMap
    from .view import ResultsView, ViewProgress
    from .widget import JobTaskWidget


class JobTask:
    """The results of one job task: metadata, data.json, result files and quicklooks.

    Create it with :func:`initialize_jobtask` (or :func:`list_jobtasks`).

    Attributes:
        project_id: The project's id.
        job_id: The job's id.
        jobtask_id: The task's id.
        results: The files of the last ``download_results`` (``None`` before any).
        quicklooks: The files of the last ``download_quicklooks`` (``None`` before any).
    """

    def __init__(
        self,
        jobtask_id: str,
        job_id: str,
        project_id: str,
        *,
        client: Client | None = None,
        info: dict[str, Any] | None = None,
        source: TaskSource | None = None,
    ) -> None:
        if source is None:
            if client is None:
                raise ValueError("JobTask needs a client (the job-task API) or a source (e.g. a STAC Item)")
            source = ApiSource(client, project_id, job_id, jobtask_id)
        self.jobtask_id = jobtask_id
        self.job_id = job_id
        self.project_id = project_id
        self.results: list[str] | None = None
        self.quicklooks: list[str] | None = None
        self.source = source
        self._info = info

    # -- metadata -------------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """The task's metadata (its ``info.json``), fetched once; see :meth:`refresh_info`."""
        return self._info if self._info is not None else self.refresh_info()

    def refresh_info(self) -> dict[str, Any]:
        """Fetch the task's metadata again.

        Raises:
            NotFoundError: when the project, job or task is unknown.
        """
        self._info = self.source.info()
        return self._info

    def __repr__(self) -> str:
        try:
            info = self.info
        except APIError:
            return f"JobTask(jobtask_id: {self.jobtask_id}, job_id: {self.job_id}, info unavailable)"
        block = info.get("block") or {}
        return (
            f"JobTask(name: {info.get('name')}, jobtask_id: {self.jobtask_id}, status: {info.get('status')}, "
            f"startedAt: {info.get('startedAt')}, finishedAt: {info.get('finishedAt')}, "
            f"block_name: {block.get('name')}, block_version: {info.get('blockVersion')})"
        )

    # -- data.json -------------------------------------------------------------------------------
    def get_results_json(self, as_dataframe: bool = False) -> dict[str, Any] | geopandas.GeoDataFrame:
        """The task's data.json.

        Args:
            as_dataframe: ``True`` for a GeoDataFrame in EPSG:4326, ``False`` for the
                FeatureCollection dict.
        """
        data = self.source.data_json()
        if as_dataframe:
            from .features import to_geodataframe

            return to_geodataframe(data)
        return dict(json.loads(data))

    # -- result files on the server ----------------------------------------------------------------
    def list_files(self) -> list[dict[str, Any]]:
        """The task's result files on the server, each read in place at its own signed URL.

        Returns:
            One dict per file under the task's ``output/``: ``path`` (relative to it), ``size``,
            ``media_type``, ``sha256`` and ``url`` (signed; it expires, ask again for a new one).
        """
        return self.source.result_files()

    def remote_files(self) -> list[RemoteFile]:
        """:meth:`list_files` as ``RemoteFile``s whose URLs renew themselves when they expire."""
        return [
            RemoteFile(
                str(f["path"]),
                str(f["url"]),
                f.get("size"),
                f.get("media_type"),
                f.get("sha256"),
                renew=functools.partial(self._fresh_url, str(f["path"])),
                headers=self.source.headers_for(str(f["url"])),
            )
            for f in self.list_files()
        ]

    def _fresh_url(self, path: str) -> str:
        """A new signed URL of one result file.

        Raises:
            NotFoundError: when the file is no longer among the task's results.
        """
        for listed in self.list_files():
            if listed["path"] == path:
                return str(listed["url"])
        raise NotFoundError(
            f"result file {path!r} of job task {self.jobtask_id} is no longer on the server",
            status=404,
            code="NOT_FOUND",
        )

    def _reads_remotely(self, remote: bool | None, what: str) -> bool:
        """Whether a map or plot reads the server's files: ``None`` when nothing is downloaded.

        Raises:
            ValueError: when ``remote=False`` and nothing is downloaded.
        """
        if remote is None:
            return not self.results
        if not remote and not self.results:
            raise ValueError(f"no results to {what}: call download_results() first, or pass remote=True")
        return bool(remote)

    # -- downloads -------------------------------------------------------------------------------
    @property
    def default_directory(self) -> Path:
        """Where downloads go by default: ``project_{p}/job_{j}/jobtask_{t}/`` under the current folder."""
        return Path.cwd() / f"project_{self.project_id}" / f"job_{self.job_id}" / f"jobtask_{self.jobtask_id}"

    def download_results(
        self,
        output_directory: str | os.PathLike[str] | None = None,
        *,
        progress: transfer.Progress = True,
        cancel: threading.Event | None = None,
        max_unpacked_bytes: int | None = None,
    ) -> list[str]:
        """Download, verify and unpack the task's results.

        Args:
            output_directory: Where to unpack; default ``project_{p}/job_{j}/jobtask_{t}/``
                under the current folder.
            progress: ``True`` for a progress bar, ``False`` for none, or a callable
                ``(done_bytes, total_bytes_or_None)``.
            cancel: An event that stops the download when set (from any thread).
            max_unpacked_bytes: How many bytes the archive may unpack to; default
                ``$JOBTASK_MAX_UNPACKED_BYTES``, else 100 times the archive's size (at most
                200 GiB): give it for results that compress better than that.

        Returns:
            The absolute paths of the unpacked files, in archive order (``output/`` removed).

        Raises:
            DownloadCancelled: when ``cancel`` was set before the files were unpacked; nothing
                partial is left.
            DownloadError: when the transfer fails after its retries, what arrived does not match
                the server's SHA-256 twice, or the archive is damaged (nothing damaged is kept).
            UnsafeArchiveError: when the archive holds a member that must not be unpacked, or would
                not fit (the output folder is left as it was).
        """
        folder = Path(output_directory) if output_directory is not None else self.default_directory
        files = self.source.download_results(
            folder, progress=progress, cancel=cancel, max_unpacked_bytes=max_unpacked_bytes
        )
        self.results = [str(p) for p in files]
        return self.results

    def download_quicklooks(
        self,
        output_directory: str | os.PathLike[str] | None = None,
        *,
        progress: transfer.Progress = True,
        cancel: threading.Event | None = None,
    ) -> list[str]:
        """Download the task's quicklook images as ``quicklook_{name}``.

        Args:
            output_directory: Where to put them; default
                ``project_{p}/job_{j}/jobtask_{t}/quicklooks/`` under the current folder.
            progress: ``True`` for a progress bar, ``False`` for none, or a callable
                ``(done_bytes, total_bytes_or_None)``, called for each image in turn.
            cancel: An event that stops the download when set; the images this call wrote
                are removed.

        Returns:
            The absolute paths of the images; ``[]`` when the task has none.
        """
        folder = Path(output_directory) if output_directory is not None else self.default_directory / "quicklooks"
        paths = [str(p) for p in self.source.download_quicklooks(folder, progress=progress, cancel=cancel)]
        self.quicklooks = paths
        return paths

    # -- plots -----------------------------------------------------------------------------------
    def plot_results(
        self,
        figsize: tuple[float, float] = (14, 8),
        bands: list[int] | None = None,
        titles: list[str] | None = None,
        filepaths: plotting.FilePaths | None = None,
        plot_file_format: list[str] | None = None,
        *,
        remote: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Plot result rasters inline (decimated to the figure's size, never full resolution).

        Args:
            figsize: (width, height) in inches.
            bands: 1 or 3 band numbers (red, green, blue); default from each file.
            titles: One title per file; default the file names.
            filepaths: A path, a list, or a dict of paths or lists; default the last download.
            plot_file_format: Suffixes to plot, default ``[".tif"]`` (which admits ``.tiff``).
            remote: ``None`` plots the downloaded files when there are some, else the task's
                rasters read in place from the server (a few range requests, no download);
                ``True`` always from the server; ``False`` downloaded files only. Ignored when
                ``filepaths`` is given.
            **kwargs: Passed to ``rasterio.plot.show`` (e.g. ``cmap``, ``vmin``, ``vmax``).

        Raises:
            ValueError: when nothing is downloaded (with ``remote=False``) or left to plot, or
                for bad bands or titles.
            RasterError: for a file that cannot be read.
        """
        from . import plotting

        paths: Sequence[Path | RemoteFile]
        if filepaths is None and self._reads_remotely(remote, "plot"):
            paths = self.remote_files()
        else:
            paths = self._plot_paths(filepaths, self.results, "results", "download_results()")
        formats = plot_file_format if plot_file_format is not None else [".tif"]
        kept: list[Path | RemoteFile] = plotting.filter_formats(paths, formats)
        if not kept:
            names = ", ".join(p.name for p in paths[:5]) + (", ..." if len(paths) > 5 else "") or "no files"
            raise ValueError(f"none of the files ({names}) has a suffix in plot_file_format={list(formats)!r}")
        fig = plotting.new_figure(figsize)
        try:
            plotting.results_figure(kept, figsize=figsize, bands=bands, titles=titles, fig=fig, **kwargs)
        except BaseException:
            plotting.discard(fig)
            raise
        plotting.show(fig)

    def plot_quicklooks(
        self,
        figsize: tuple[float, float] = (8, 8),
        filepaths: plotting.FilePaths | None = None,
        titles: list[str] | None = None,
    ) -> None:
        """Plot quicklook images inline.

        Args:
            figsize: (width, height) in inches.
            filepaths: A path, a list, or a dict of paths or lists; default the last download.
            titles: One title per image; default the file names.

        Raises:
            ValueError: when no quicklooks are downloaded or given, or for bad titles.
        """
        from . import plotting

        paths = self._plot_paths(filepaths, self.quicklooks, "quicklooks", "download_quicklooks()")
        fig = plotting.new_figure(figsize)
        try:
            plotting.quicklooks_figure(paths, figsize=figsize, titles=titles, fig=fig)
        except BaseException:
            plotting.discard(fig)
            raise
        plotting.show(fig)

    def results_view(
        self,
        bands: list[int] | None = None,
        aoi: Any = None,
        show_images: bool = True,
        show_features: bool = True,
        name_column: str = "uid",
        *,
        progress: ViewProgress | None = None,
        remote: bool | None = None,
    ) -> ResultsView:
        """The widget-free model of the task's map (see :meth:`map_results`).

        The view owns the rasters it opens: close it (or use it in a ``with`` block) when done.

        Args:
            bands: 1 or 3 band numbers for every raster; default from each file.
            aoi: A GeoDataFrame, a GeoJSON path or dict, or a shapely geometry.
            show_images: Whether to show the result rasters.
            show_features: Whether to show the features (a block's GeoJSON, else data.json).
            name_column: The feature property that labels each feature.
            progress: Called with a raster's name and 0.0 / 1.0 around its one-off overview build.
            remote: ``None`` maps the downloaded files when there are some, else the server's;
                ``True`` always the server's; ``False`` downloaded files only.

        Raises:
            ValueError: when nothing is downloaded (with ``remote=False``), for bad bands or a bad aoi.
        """
        from .view import ResultsView

        if self._reads_remotely(remote, "map"):
            try:
                features = self.get_results_json() if show_features or show_images else None
            except NotFoundError:  # a task without data.json: rasters only
                features = None
            return ResultsView.from_remote(
                self.remote_files(), features if isinstance(features, dict) else None, bands=bands, aoi=aoi,
                show_images=show_images, show_features=show_features, name_column=name_column,
            )  # fmt: skip
        assert self.results is not None
        return ResultsView.from_files(
            self.results, bands=bands, aoi=aoi, show_images=show_images, show_features=show_features,
            name_column=name_column, progress=progress,
        )  # fmt: skip

    def map_results(
        self,
        bands: list[int] | None = None,
        aoi: Any = None,
        show_images: bool = True,
        show_features: bool = True,
        name_column: str = "uid",
        save_html: str | os.PathLike[str] | None = None,
        *,
        basemap: Any = None,
        remote: bool | None = None,
    ) -> ResultsMap:
        """An interactive map of the task's results (a ``ResultsMap``, shown inline).

        Args:
            bands: 1 or 3 band numbers for every raster; default from each file.
            aoi: A GeoDataFrame, a GeoJSON path or dict, or a shapely geometry, drawn dashed.
            show_images: Whether to show the result rasters.
            show_features: Whether to show the features (a block's GeoJSON, else data.json).
            name_column: The feature property that labels each feature.
            save_html: A file path, or a folder (then ``map.html`` in it): a self-contained page
                that opens offline with no kernel.
            basemap: An ipyleaflet layer or xyzservices provider; default OpenStreetMap, which
                fails quietly (grey) offline.
            remote: ``None`` maps the downloaded files when there are some, else the task's
                rasters read in place from the server (tiles from a few range requests each, no
                download); ``True`` always from the server; ``False`` downloaded files only.

        Raises:
            ValueError: when nothing is downloaded (with ``remote=False``), for bad bands or a bad aoi.
        """
        from .mapwidget import ResultsMap

        view = self.results_view(bands, aoi, show_images, show_features, name_column, remote=remote)
        try:
            if save_html is not None:
                from .savehtml import save_map

                name = self.info.get("name") or self.jobtask_id
                save_map(view, save_html, title=f"Job task {name}")
            return ResultsMap(view, basemap=basemap, owns_view=True)
        except BaseException:
            view.close()
            raise

    def widget(self, **options: Any) -> JobTaskWidget:
        """This task in a :class:`JobTaskWidget` (info, downloads, map, quicklooks, plots).

        Args:
            **options: Passed to ``JobTaskWidget`` (``output_directory``, ``aoi``, ``basemap``,
                ``map_height``).
        """
        from .widget import JobTaskWidget

        return JobTaskWidget(self, **options)

    @staticmethod
    def _plot_paths(filepaths: Any, last: list[str] | None, what: str, call: str) -> list[Path]:
        from . import plotting

        if filepaths is None:
            if not last:
                raise ValueError(f"no {what} to plot: call {call} first, or pass filepaths")
            filepaths = last
        paths = plotting.collect_paths(filepaths)
        if not paths:
            raise ValueError(f"filepaths is empty: give at least one file of {what}")
        return paths


def initialize_jobtask(jobtask_id: str, job_id: str, project_id: str | None = None) -> JobTask:
    """The job task ``jobtask_id`` of job ``job_id``, checked to exist.

    Args:
        jobtask_id: The task's id.
        job_id: The job's id.
        project_id: The project's id; default the project of the credentials.

    Raises:
        AuthenticationError: when nobody is logged in (see :func:`authenticate`).
        NotFoundError: when the project, job or task is unknown.
        ValueError: when ``project_id`` is missing under a password login.
    """
    client = default_client()
    task = JobTask(jobtask_id, job_id, _project(client, project_id), client=client)
    task.refresh_info()
    return task


def list_jobtasks(job_id: str, project_id: str | None = None) -> list[JobTask]:
    """Every job task of job ``job_id``, for dashboards.

    Raises:
        NotFoundError: when the project or job is unknown.
        ValueError: when ``project_id`` is missing under a password login.
    """
    client = default_client()
    project = _project(client, project_id)
    return [
        JobTask(str(info["id"]), job_id, project, client=client, info=info)
        for info in client.list_tasks(project, job_id)
    ]


def _project(client: Client, project_id: str | None) -> str:
    project = project_id or client.project_id
    if not project:
        raise ValueError(
            "project_id is required: the login used a username and password, which names no project; "
            "pass project_id=... or log in with project_id and project_api_key"
        )
    return project
