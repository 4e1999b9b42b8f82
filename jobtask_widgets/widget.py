"""JobTaskWidget: one job task's header, info, downloads, map, quicklooks and plots in one widget.

Composition only: every action is a call into the core (``JobTask``, its ``ResultsView``);
the HTML comes from ``taskinfo`` (escaped there); the map is a ``ResultsMap`` of the view and
its controls are ``LayerControls`` of the same view. Downloads and map building run on one
background thread at a time, so the kernel stays responsive; the buttons are disabled meanwhile
and a second click starts nothing.
Errors appear inside the widget in plain words, with the detail one click away.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from . import taskinfo
from .browsersave import BrowserSave, Entry, entry
from .errors import DownloadCancelled, NotFoundError, explain
from .layercontrols import LayerControls
from .mapwidget import ResultsMap
from .overviews import FIRST_SHARE
from .plaintext import WHERE, PlainTextRepr

if TYPE_CHECKING:
    from .jobtask import JobTask
    from .view import ResultsView

PROGRESS_EVERY = 0.1  # seconds between progress bar updates
MAX_ERRORS = 5  # error cards kept on screen, newest first
SPINNER = '<i class="fa fa-spinner fa-spin"></i> '
TAB_INFO, TAB_QUICKLOOKS, TAB_PLOTS = 0, 1, 2
REMOTE_MAP_WAIT = 30.0  # seconds a download's map waits for the map still being read from the server
REMOTE_NOTE = (
    '<span class="jobtask-remote-note">The rasters are read from the server as you look; '
    "download the results to keep them.</span>"
)


class JobTaskWidget(PlainTextRepr, w.VBox):
    """A job task in a notebook or a Voila dashboard.

    Args:
        jobtask: The job task to show.
        output_directory: Where downloads go; default the task's usual folder under the current one.
        aoi: An area of interest for the map (anything ``map_results`` accepts).
        basemap: The map's basemap (see ``map_results``).
        map_height: The map's CSS height.

    Attributes:
        jobtask: The job task.
        map: The results map once results are downloaded, else ``None``.
        controls: The map's :class:`LayerControls`, else ``None``.
        errors: Every error shown so far (the newest last).
    """

    def __init__(
        self,
        jobtask: JobTask,
        *,
        output_directory: str | os.PathLike[str] | None = None,
        aoi: Any = None,
        basemap: Any = None,
        map_height: str = "560px",
    ) -> None:
        self.jobtask = jobtask
        self.aoi, self.basemap, self.map_height = aoi, basemap, map_height
        self.map: ResultsMap | None = None
        self.controls: LayerControls | None = None
        self.errors: list[BaseException] = []
        self._info: dict[str, Any] = {}  # the metadata shown, for the text fallback
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._last_progress = 0.0
        self._map_shown = True  # False while _show_map waits for a raster's first overview step
        self._actions = 0  # actions started (downloads, ...): the map from the server leaves their status be
        self._map_lock = threading.Lock()  # one map installed at a time; the local one wins
        self._map_is_remote = False  # whether the map shown reads the server's files
        self._remote_note = w.HTML(REMOTE_NOTE, layout=w.Layout(display="none"))  # shown under a map from the server
        self._remote_thread: threading.Thread | None = None

        self.header = w.HTML()
        self.error_box = w.VBox()
        self.info_panel = w.HTML()
        folder = output_directory if output_directory is not None else jobtask.default_directory
        self.folder = w.Text(
            value=str(folder), description="Output folder", style={"description_width": "initial"},
            layout=w.Layout(flex="1 1 auto", min_width="200px"),
        )  # fmt: skip
        wide = w.Layout(width="auto", min_width="fit-content")
        self.download_results_button = w.Button(
            description="Download results", icon="download", button_style="primary", layout=wide
        )
        self.download_quicklooks_button = w.Button(description="Download quicklooks", icon="image", layout=wide)
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True, layout=wide)
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="50%"))
        self.status = w.HTML()
        self.files = w.HTML(layout=w.Layout(max_height="160px", overflow="auto"))
        self.save = BrowserSave()  # links that save the downloaded files on the user's computer
        self.map_area = w.HBox(
            [w.HTML("<i>Download the results to see them on the map.</i>" if jobtask.results else "")],
            layout=w.Layout(width="100%", min_height="40px"),
        )
        self.gallery = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.plot_results_button = w.Button(description="Plot results", icon="area-chart", disabled=True, layout=wide)
        self.plot_quicklooks_button = w.Button(description="Plot quicklooks", icon="image", disabled=True, layout=wide)
        self.plots = w.Output()
        self.tabs = w.Tab(
            children=[
                self.info_panel,
                self.gallery,
                w.VBox([w.HBox([self.plot_results_button, self.plot_quicklooks_button]), self.plots]),
            ],
            titles=["Info", "Quicklooks", "Plots"],
        )
        buttons = [self.download_results_button, self.download_quicklooks_button, self.cancel_button]
        downloads = w.VBox(
            [
                w.HBox([self.folder, *buttons]),
                w.HBox([self.progress, self.status], layout=w.Layout(align_items="center")),
                self.files,
                self.save,
            ]
        )
        super().__init__(
            [self.header, self.error_box, downloads, self.map_area, self.tabs],
            layout=w.Layout(width="100%"),
        )
        self.add_class("jobtask-widget")
        self.download_results_button.on_click(lambda _: self.download_results())
        self.download_quicklooks_button.on_click(lambda _: self.download_quicklooks())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.plot_results_button.on_click(lambda _: self.plot("results"))
        self.plot_quicklooks_button.on_click(lambda _: self.plot("quicklooks"))
        self._show_info()
        if jobtask.results or jobtask.quicklooks:
            self._list_files()
        if jobtask.results:
            self._start("Showing the map", self._show_map)
        else:  # at once, from the server: the rasters are read in place, nothing is downloaded
            self.map_area.children = [w.HTML(SPINNER + "Reading the rasters from the server...")]
            self._remote_thread = threading.Thread(target=self._show_remote_map, daemon=True, name="jobtask-map")
            self._remote_thread.start()
        if jobtask.quicklooks:
            self._show_quicklooks(jobtask.quicklooks)

    # -- info ------------------------------------------------------------------------------------------
    def _show_info(self) -> None:
        try:
            info = self.jobtask.info
        except Exception as exc:  # shown in the widget, never lost
            self.header.value = taskinfo.header_html({}, self.jobtask.jobtask_id)
            self.info_panel.value = "<i>The task's metadata could not be fetched.</i>"
            self.show_error(exc, "Fetching the task's metadata")
            return
        self._info = info
        self.header.value = taskinfo.header_html(info, self.jobtask.jobtask_id)
        self.info_panel.value = taskinfo.info_table_html(info)

    def plain_text(self) -> str:
        """The task, its status, what was downloaded and what the map shows, as text (no request made)."""
        name = self._info.get("name") or "(metadata not fetched)"
        lines = [
            f"JobTaskWidget: task {name} ({self.jobtask.jobtask_id}), status {self._info.get('status', 'unknown')}"
        ]
        results, quicklooks = self.jobtask.results or [], self.jobtask.quicklooks or []
        if results or quicklooks:
            where = self.folder.value.strip()
            lines.append(f"{len(results)} result files and {len(quicklooks)} quicklooks downloaded in {where}")
        else:
            lines.append("nothing downloaded yet")
        lines += [f"map: {line}" for line in self.map.view.summary()] if self.map is not None else ["no map yet"]
        return "\n".join([*lines, WHERE])

    # -- background work -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a download or a map build is running."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running work (and the first map from the server) to end; ``True`` when nothing runs any more."""
        if self._remote_thread is not None:
            self._remote_thread.join(timeout)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def _start(self, action: str, work: Callable[[], None]) -> bool:
        with self._lock:
            if self.busy:
                return False
            self._cancel = threading.Event()
            self._actions += 1  # its outcome owns the status line from now on
            self._set_busy(True)
            self._thread = threading.Thread(target=self._run, args=(action, work), daemon=True, name="jobtask-widget")
            self._thread.start()
        return True

    def _run(self, action: str, work: Callable[[], None]) -> None:
        try:
            work()
        except DownloadCancelled as exc:
            self.progress.bar_style = "warning"
            self.status.value = html.escape(explain(exc))
        except Exception as exc:  # shown in the widget, never lost
            self.progress.bar_style = "danger"
            self.status.value = f"{html.escape(action)} failed (see above)."
            self.show_error(exc, action)
        finally:
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.download_results_button.disabled = busy
        self.download_quicklooks_button.disabled = busy
        self.folder.disabled = busy
        self.cancel_button.disabled = not busy
        self.plot_results_button.disabled = busy or not self.jobtask.results
        self.plot_quicklooks_button.disabled = busy or not self.jobtask.quicklooks

    def cancel(self) -> None:
        """Stop the running download; nothing partial is kept."""
        if self.busy:
            self._cancel.set()
            self.status.value = "Cancelling..."

    def _phase(self, text: str) -> None:
        self.progress.value, self.progress.bar_style = 0.0, "info"
        self.status.value = SPINNER + html.escape(text)

    def _on_progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if total is not None and done < total and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        if total:
            self.progress.value = min(done / total, 1.0)
            text = f"{taskinfo.size_text(done)} of {taskinfo.size_text(total)}"
        else:
            text = taskinfo.size_text(done)
        self.status.value = SPINNER + html.escape(text)

    def _folder(self) -> Path:
        text = self.folder.value.strip()
        if not text:
            raise ValueError("the output folder is empty: give a folder path")
        return Path(text).expanduser()

    # -- downloads ---------------------------------------------------------------------------------
    def download_results(self) -> bool:
        """Download and unpack the results in the background, then show the map.

        Returns:
            ``False`` when other work is running (nothing is started).
        """
        return self._start("Downloading the results", self._download_results)

    def _download_results(self) -> None:
        folder = self._folder()
        self._phase("Downloading the results")
        files = self.jobtask.download_results(folder, progress=self._on_progress, cancel=self._cancel)
        self.progress.value, self.progress.bar_style = 1.0, "success"
        self._list_files()
        self.status.value = html.escape(f"{len(files)} files in {folder}")
        self._show_map()

    def download_quicklooks(self) -> bool:
        """Download the quicklooks in the background, then show them in the gallery.

        Returns:
            ``False`` when other work is running (nothing is started).
        """
        return self._start("Downloading the quicklooks", self._download_quicklooks)

    def _download_quicklooks(self) -> None:
        folder = self._folder() / "quicklooks"
        self._phase("Downloading the quicklooks")
        files = self.jobtask.download_quicklooks(folder, progress=self._on_progress, cancel=self._cancel)
        self.progress.value, self.progress.bar_style = 1.0, "success"
        self.status.value = html.escape(f"{len(files)} quicklooks in {folder}")
        self._list_files()
        self._show_quicklooks(files)
        self.tabs.selected_index = TAB_QUICKLOOKS

    def _list_files(self) -> None:
        """List every downloaded file, results then quicklooks, relative to the output folder."""
        files = [*(self.jobtask.results or []), *(self.jobtask.quicklooks or [])]
        self.files.value = taskinfo.files_html(files, self.folder.value.strip() or None)
        self.save.set_entries(self._save_entries())

    def _save_entries(self) -> list[Entry]:
        """All results as one ZIP, then each listed file on its own (a file removed since is left out)."""
        results = [p for p in self.jobtask.results or [] if Path(p).is_file()]
        quicklooks = [p for p in self.jobtask.quicklooks or [] if Path(p).is_file()]
        entries = []
        if results:
            name = results_zip_name(self._info.get("name") or self.jobtask.jobtask_id)
            entries.append(entry(results, name, label=f"all results ({name})"))
        entries += [entry(p, label=Path(p).name) for p in [*results, *quicklooks]]
        return entries

    def _show_quicklooks(self, files: list[str]) -> None:
        cards = []
        for path in map(Path, files):
            if not path.is_file():  # removed since the download
                cards.append(w.Label(f"{path.name}: missing"))
                continue
            image = w.Image(value=path.read_bytes(), format=path.suffix.lstrip(".").lower() or "png")
            image.layout = w.Layout(max_width="360px", object_fit="contain")
            cards.append(w.VBox([image, w.Label(path.name)], layout=w.Layout(margin="4px")))
        self.gallery.children = cards or [w.HTML("<i>This task has no quicklooks.</i>")]

    # -- the map ---------------------------------------------------------------------------------------
    def _show_map(self) -> None:
        self.cancel_button.disabled = True  # only downloads can be cancelled
        if self._remote_thread is not None:  # its map, if any, takes the downloaded files below
            self._remote_thread.join(REMOTE_MAP_WAIT)  # still reading? its map is dropped: results are here
        results = self.jobtask.results or []
        self._phase("Drawing the map")
        # one view for the map and its controls; the overview cache reports only when it builds
        self._map_shown = False
        view = self.jobtask.results_view(aoi=self.aoi, progress=self._overviews, remote=False)
        if not self._adopt(view):
            self._install_map(view)
        self._map_shown = True
        self.progress.value, self.progress.bar_style = 1.0, "success"
        count = len(self.map.raster_layers) if self.map is not None else 0
        shown = self.map.view.rasters.values() if self.map is not None else ()
        pending = [s.source.name for s in shown if s.source.overviews_pending]
        packing = f"; overviews of {', '.join(pending)} being compressed in the background" if pending else ""
        self.status.value = html.escape(f"{len(results)} files; {count} raster(s) on the map{packing}")

    def _show_remote_map(self) -> None:
        """The map of the rasters read in place from the server, before anything is downloaded."""
        actions = self._actions
        try:
            view = self.jobtask.results_view(aoi=self.aoi, remote=True)
        except NotFoundError:  # a server without a file list: the map waits for the download
            self.map_area.children = [w.HTML("<i>Download the results to see them on the map.</i>")]
            return
        except Exception as exc:  # shown in the widget, never lost
            self.map_area.children = [w.HTML("<i>Download the results to see them on the map.</i>")]
            self.show_error(exc, "Reading the rasters from the server")
            return
        try:
            if not self._install_map(view, remote=True):
                return
        except Exception as exc:  # its controls read the statistics: a failing server shows here
            if not getattr(self, "_closing", False):
                self.show_error(exc, "Reading the rasters from the server")
            return
        count = len(self.map.raster_layers) if self.map is not None else 0
        if actions == self._actions:  # no download since (its outcome, e.g. "cancelled", stays in sight)
            self.status.value = html.escape(
                f"{count} raster(s) on the map, read from the server: nothing is downloaded yet"
            )

    def _adopt(self, view: ResultsView) -> bool:
        """Draw the downloaded files in the map read from the server, in place: the same layers,
        styles and view, so nothing moves; ``False`` when the map shows other rasters."""
        with self._map_lock:
            if getattr(self, "_closing", False):
                view.close()
                return True  # closed meanwhile: nothing to draw
            if self.map is None or not self._map_is_remote or not self.map.view.adopt_sources(view):
                return False
            self._map_is_remote = False
            self._remote_note.layout.display = "none"
        view.close()  # the sources read from the server, given up
        return True

    def _install_map(self, view: ResultsView, *, remote: bool = False) -> bool:
        """Show ``view`` in a new map with its controls, in place of the current one.

        A local map that replaces one read from the server keeps its centre, zoom and each
        layer's style, visibility and opacity, so the switch does not show. A map from the
        server is not installed once results are downloaded (``False``; the view is closed).
        """
        with self._map_lock:
            if getattr(self, "_closing", False) or (remote and self.jobtask.results):
                view.close()
                return False
            old, old_controls = self.map, self.controls
            if old is not None:
                for name, state in view.rasters.items():
                    before = old.view.rasters.get(name)
                    if before is None:
                        continue
                    state.visible, state.opacity = before.visible, before.opacity
                    try:
                        state.source.check_bands(before.style.bands)  # the style fits this file's bands
                    except ValueError:
                        continue
                    state.style = before.style
            try:
                results_map = ResultsMap(view, basemap=self.basemap, panel=False, owns_view=True)
            except BaseException:
                view.close()
                raise
            results_map.layout = w.Layout(height=self.map_height, flex="1 1 auto", min_width="0")
            if old is not None:
                results_map.center, results_map.zoom = old.center, old.zoom
            try:
                controls = LayerControls(view, on_error=self.show_error)
            except BaseException:
                results_map.close()  # and its view
                raise
            self.map, self.controls = results_map, controls
            self._map_is_remote = remote
            self._remote_note.layout.display = None if remote else "none"
            column = w.VBox([results_map, self._remote_note], layout=w.Layout(flex="1 1 auto", min_width="0"))
            self.map_area.children = [column, self.controls]
        if old_controls is not None:
            old_controls.close()
        if old is not None:
            old.close()  # its layers and its view (so its rasters) too
        return True

    def _overviews(self, name: str, fraction: float) -> None:
        """A raster's one-off overview build: its first step while the map waits, then the rest in the
        background (``FIRST_SHARE`` to 1.0) while the map is shown; a download's progress comes first."""
        if fraction == 0.0:
            self._phase(f"Building overviews of {name} (once; later views are fast)")
        if fraction <= FIRST_SHARE and not self._map_shown:
            self.progress.value = fraction
            return
        if self.busy:  # a download runs meanwhile: its progress bar is the one that counts
            return
        self.progress.value = fraction
        if fraction < 1.0:
            self.progress.bar_style = "info"
            self.status.value = SPINNER + html.escape(
                f"{name} is on the map; its overviews are being compressed in the background ({fraction:.0%})"
            )
        else:
            self.progress.bar_style = "success"
            self.status.value = html.escape(f"{name}: overviews finished and compressed in the cache")

    def close(self) -> None:
        """Stop a running download, close the map, its controls and their rasters, then the widget."""
        cancel = getattr(self, "_cancel", None)
        if cancel is not None:
            cancel.set()
        lock = getattr(self, "_map_lock", None)
        with lock if lock is not None else contextlib.nullcontext():
            self._closing = True  # a map built meanwhile (from the server) is closed, never shown
            parts = (getattr(self, "controls", None), getattr(self, "map", None), getattr(self, "save", None))
            self.map = self.controls = None
        for part in parts:
            if part is not None:
                part.close()
        super().close()

    # -- plots -------------------------------------------------------------------------------------------
    def plot(self, what: str) -> None:
        """Plot the results or the quicklooks into the Plots tab (``"results"`` or ``"quicklooks"``)."""
        calls: dict[str, Callable[[], None]] = {
            "results": self.jobtask.plot_results,
            "quicklooks": self.jobtask.plot_quicklooks,
        }
        if what not in calls:
            raise ValueError(f"what must be 'results' or 'quicklooks' (got {what!r})")
        self.plots.clear_output()
        failed: Exception | None = None
        with self.plots:
            try:
                calls[what]()
            except Exception as exc:  # shown in the widget
                failed = exc
        self.tabs.selected_index = TAB_PLOTS
        if failed is not None:
            self.show_error(failed, f"Plotting the {what}")

    # -- errors ------------------------------------------------------------------------------------------
    def show_error(self, exc: BaseException, action: str) -> None:
        """Show an error in plain words at the top of the widget, its detail one click away."""
        self.errors.append(exc)
        dismiss = w.Button(description="Dismiss", layout=w.Layout(width="90px"))
        card = w.HBox([w.HTML(taskinfo.error_html(exc, action), layout=w.Layout(flex="1 1 auto")), dismiss])

        def drop(_: Any) -> None:
            self.error_box.children = [c for c in self.error_box.children if c is not card]

        dismiss.on_click(drop)
        self.error_box.children = [card, *self.error_box.children][:MAX_ERRORS]


def results_zip_name(task_name: str) -> str:
    """``<task name>-results.zip``, the name kept to letters, digits, ``.``, ``_`` and ``-``.

    Browsers and file systems refuse or rewrite other characters (``:`` in ``name:1`` on Windows).
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", task_name).strip("._") or "task"
    return f"{safe}-results.zip"
