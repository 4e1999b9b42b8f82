"""Matplotlib figures of results and quicklooks: pure functions that return a ``Figure``.

Rasters are read decimated to the size of their axes in pixels (``RasterSource.preview``), so
memory does not grow with the raster. One band shows through a colormap, three as RGB; nodata
is transparent; non-8-bit data is stretched (2-98 %) so it is never black. ``show`` puts a
figure on screen exactly once: inline in a notebook, ``plt.show()`` elsewhere.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .bands import Style
from .raster import RasterSource
from .remote import RemoteFile
from .stretch import to_rgba

PathLike = str | os.PathLike[str]


class Named(Protocol):
    """A local or remote file as plots name and filter it."""

    @property
    def name(self) -> str: ...

    @property
    def suffix(self) -> str: ...


P = TypeVar("P", bound=Named)
FilePaths = PathLike | Sequence[PathLike] | Mapping[Any, PathLike | Sequence[PathLike]]
MAX_COLUMNS = 3


def collect_paths(filepaths: FilePaths) -> list[Path]:
    """A path, a list of paths, or a dict whose values are paths or lists, as one flat list.

    Raises:
        ValueError: for anything else.
    """
    accepted = "a path, a list of paths, or a dict whose values are paths or lists of paths"
    if isinstance(filepaths, (str, os.PathLike)):
        return [Path(filepaths)]
    values: list[Any] = []
    if isinstance(filepaths, Mapping):
        for value in filepaths.values():
            values.extend([value] if isinstance(value, (str, os.PathLike)) else list(value))
    elif isinstance(filepaths, Sequence):
        values = list(filepaths)
    else:
        raise ValueError(f"filepaths must be {accepted} (got {type(filepaths).__name__})")
    if not all(isinstance(v, (str, os.PathLike)) for v in values):
        raise ValueError(f"filepaths must be {accepted}")
    return [Path(v) for v in values]


def filter_formats(paths: Sequence[P], formats: Sequence[str]) -> list[P]:
    """The paths whose suffix is in ``formats`` (case-insensitive; ``.tif`` admits ``.tiff``)."""
    if isinstance(formats, str):
        formats = [formats]
    wanted = {f.lower() if f.startswith(".") else f".{f.lower()}" for f in formats}
    if ".tif" in wanted:
        wanted.add(".tiff")
    return [p for p in paths if p.suffix.lower() in wanted]


def check_titles(titles: Sequence[str] | None, paths: Sequence[Path | RemoteFile]) -> list[str]:
    """The titles, defaulting to the file names.

    Raises:
        ValueError: when the count differs from the number of files.
    """
    if titles is None:
        return [p.name for p in paths]
    if isinstance(titles, str) or len(titles) != len(paths):
        count = 1 if isinstance(titles, str) else len(titles)
        raise ValueError(f"{count} titles for {len(paths)} files: give one title per file, in order")
    return [str(t) for t in titles]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure ready for ``show``: pyplot-managed outside a notebook, plain inside one."""
    if not (isinstance(figsize, Sequence) and len(figsize) == 2 and all(v > 0 for v in figsize)):
        raise ValueError(f"figsize must be (width, height) in inches, both positive (got {figsize!r})")
    size = (float(figsize[0]), float(figsize[1]))
    if _in_kernel():
        return Figure(figsize=size, layout="constrained")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=size, layout="constrained")


def _grid(fig: Figure, count: int) -> list[Any]:
    ncols = min(count, MAX_COLUMNS)
    nrows = math.ceil(count / ncols)
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[count:]:
        ax.set_visible(False)
    return axes[:count]


def _axes_pixels(fig: Figure, ax: Any, width: int, height: int) -> int:
    """The longest side, in pixels, of a ``width`` x ``height`` image fitted into ``ax``."""
    nrows, ncols = ax.get_subplotspec().get_gridspec().get_geometry()
    box_w, box_h = fig.get_size_inches() * fig.dpi / (ncols, nrows)
    scale = float(min(box_w / width, box_h / height))
    return max(64, math.ceil(max(width, height) * scale))


def results_figure(
    paths: Sequence[Path | RemoteFile],
    *,
    figsize: tuple[float, float] = (14, 8),
    bands: Sequence[int] | None = None,
    titles: Sequence[str] | None = None,
    fig: Figure | None = None,
    **kwargs: Any,
) -> Figure:
    """A grid of the rasters in ``paths``; ``kwargs`` go to ``rasterio.plot.show``.

    ``fig`` is drawn on when given (see ``new_figure``), else a new ``Figure(figsize)``.

    Raises:
        ValueError: for bad bands (naming the file's bands), titles or figsize.
        RasterError: for a file that cannot be read.
    """
    names = check_titles(titles, paths)
    with ExitStack() as stack:  # every raster opened here is closed here, on every path
        sources = [stack.enter_context(RasterSource(p)) for p in paths]
        chosen = [s.check_bands(bands) for s in sources]  # bad bands raise before anything is drawn
        fig = fig if fig is not None else Figure(figsize=figsize, layout="constrained")
        for source, band_set, title, ax in zip(sources, chosen, names, _grid(fig, len(sources)), strict=True):
            _plot_raster(fig, ax, source, band_set, title, kwargs)
    return fig


def _plot_raster(fig: Figure, ax: Any, source: RasterSource, band_set: tuple[int, ...], title: str,
                 kwargs: dict[str, Any]) -> None:  # fmt: skip
    from rasterio.plot import show
    from rasterio.transform import from_bounds

    image = source.preview(_axes_pixels(fig, ax, source.width, source.height), band_set)
    array, options = _plot_array(source, image.array, band_set, kwargs)
    height, width = array.shape[-2:]
    transform = None
    if source.georeferenced and image.bounds is not None:
        west, south, east, north = image.bounds
        transform = from_bounds(west, south, east, north, width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        show(array, transform=transform, ax=ax, title=title, adjust=False, **options)
    if not source.georeferenced:
        ax.set_xlabel("pixels (no coordinate reference system)")


def _plot_array(source: RasterSource, data: np.ma.MaskedArray, bands: tuple[int, ...], kwargs: dict[str, Any]) -> tuple[
    np.ndarray, dict[str, Any]
]:  # fmt: skip
    style = Style(bands=bands, vmin=kwargs.get("vmin"), vmax=kwargs.get("vmax"))
    if len(bands) == 3:
        rgba = to_rgba(data, source.ranges(style))
        options = {k: v for k, v in kwargs.items() if k not in ("vmin", "vmax", "cmap")}
        return rgba.astype("float32") / 255.0, options
    if source.palette is not None and "cmap" not in kwargs:
        table = np.array([source.palette.get(i, (0, 0, 0, 0)) for i in range(256)], dtype="float32") / 255.0
        options = {"cmap": ListedColormap(table), "vmin": 0, "vmax": 255, "interpolation": "nearest", **kwargs}
        return data[0], options
    low, high = (source.ranges(style) or [(0.0, 255.0)])[0]  # a palette's indices, with the caller's cmap
    options = {"cmap": "viridis", "vmin": low, "vmax": high, **kwargs}
    return data[0], options


def quicklooks_figure(
    paths: Sequence[Path],
    *,
    figsize: tuple[float, float] = (8, 8),
    titles: Sequence[str] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """A grid of quicklook images (PNG/JPEG), read decimated to their axes' size."""
    names = check_titles(titles, paths)
    fig = fig if fig is not None else Figure(figsize=figsize, layout="constrained")
    axes = _grid(fig, len(paths))
    for path, title, ax in zip(paths, names, axes, strict=True):
        with RasterSource(path) as source:
            size = _axes_pixels(fig, ax, source.width, source.height)
            image = source.read_preview(size, range(1, min(source.count, 4) + 1))
        data = image.array
        if data.shape[0] == 1:
            ax.imshow(data[0], cmap="gray")
        else:
            rgb = np.moveaxis(data[:3].filled(0), 0, -1).astype("float32") / 255.0
            alpha = (~np.ma.getmaskarray(data[:3]).all(axis=0)).astype("float32")
            if data.shape[0] == 4:
                alpha *= data[3].filled(0).astype("float32") / 255.0
            ax.imshow(np.dstack([rgb, alpha]))
        ax.set_title(title)
        ax.set_axis_off()
    return fig


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def discard(fig: Figure) -> None:
    """Drop a figure from ``new_figure`` that will not be shown (pyplot keeps a reference)."""
    if not _in_kernel():
        import matplotlib.pyplot as plt

        plt.close(fig)


def show(fig: Figure) -> None:
    """Show a figure from ``new_figure`` once: inline in a Jupyter kernel, else ``plt.show()``."""
    if _in_kernel():
        from IPython.display import Image, display

        # a PNG, whatever the kernel's matplotlib backend (a bare Figure has no inline formatter)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=fig.dpi)
        display(Image(data=buffer.getvalue(), format="png"))
        return
    import matplotlib.pyplot as plt

    plt.show()
