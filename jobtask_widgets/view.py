"""ResultsView: the widget-free model of what a results map shows.

Built once from a download's files, a view owns the open :class:`RasterSource` of every result
raster (it is a context manager; ``close()`` closes them all) and holds, for each raster, its
style, visibility and opacity (a :class:`RasterState`), the paired, thinned and labelled
features, the AOI, the notes (thinned features, a missing name column) and the view fitted to
the results. Everything that shows results renders one view: the ipyleaflet ``ResultsMap``,
its ``LayerPanel`` and ``LayerControls``, and the offline page of ``savehtml``. Changing a state
(``state.set_style(...)``, ``state.visible = False``) is seen by every renderer through
traitlets' observers, so there is one source of truth and no controls kept in step by links.

No widget library is imported here (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import traitlets as t

from . import mapping
from .bands import Style
from .cog import GEOTIFF_SUFFIXES
from .features import read_feature_collection
from .pixels import PixelValues
from .raster import RasterSource
from .remote import RemoteFile
from .stretch import STRETCHES, Histogram, Stretch

# called with a raster's file name and 0.0 when its one-off overview build starts, 1.0 when done
ViewProgress = Callable[[str, float], None]


def checked_style(
    source: RasterSource,
    bands: Sequence[int] | None,
    stretch: str = "auto",
    colormap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Style:
    """A :class:`Style` for ``source``, every part checked.

    Raises:
        ValueError: for bands not in the file, an unknown stretch or colormap, or a range whose
            low end is not below its high end.
    """
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)} (got {stretch!r})")
    if vmin is not None and vmax is not None and not float(vmin) < float(vmax):
        raise ValueError(f"a custom range needs vmin < vmax (got {vmin!r}, {vmax!r})")
    style = Style(
        bands=source.check_bands(bands),
        stretch=cast(Stretch, stretch),  # checked against STRETCHES just above
        colormap=colormap,
        vmin=None if vmin is None else float(vmin),
        vmax=None if vmax is None else float(vmax),
    )
    source.lut(style)  # an unknown colormap raises here, not later in a tile worker
    return style


@dataclass(frozen=True)
class ColourBar:
    """What a one-band raster's colour bar shows: colour stops and the stretch's ends."""

    band: int
    stops: list[tuple[int, int, int]]
    low: float
    high: float


class RasterState(t.HasTraits):
    """One raster as shown: its source, style, visibility and opacity.

    Args:
        source: The open raster (owned by whoever opened it: the view, or the caller).
        name: The layer's name.
        feature: Its data.json feature, if any.
        bands: 1 or 3 band numbers; default from the file.
        stretch: ``"auto"``, ``"percentile"`` or ``"minmax"``.
        colormap: A colormap name for one band.
        opacity: 0..1.
    """

    style = t.Instance(Style)
    visible = t.Bool(True)
    opacity = t.Float(1.0, min=0.0, max=1.0)

    def __init__(
        self,
        source: RasterSource,
        *,
        name: str | None = None,
        feature: dict[str, Any] | None = None,
        bands: Sequence[int] | None = None,
        stretch: str = "auto",
        colormap: str | None = None,
        opacity: float = 1.0,
    ) -> None:
        self.source = source  # a view may swap it (for the downloaded copy of a file read from the server)
        self.name = name or source.name
        self.feature = feature
        super().__init__(style=checked_style(source, bands, stretch, colormap), opacity=opacity)

    def histogram(self) -> Histogram:
        """The shown bands' histograms on one axis, from the statistics' decimated read."""
        return self.source.histogram(self.bands)

    def __repr__(self) -> str:
        style = self.style
        custom = (
            f", range=({style.vmin:g}, {style.vmax:g})" if style.vmin is not None and style.vmax is not None else ""
        )
        colormap = f", colormap={style.colormap!r}" if style.colormap else ""
        return (
            f"RasterState({self.name!r}, bands={self.bands}, stretch={style.stretch!r}{custom}{colormap}, "
            f"visible={self.visible}, opacity={self.opacity:g})"
        )

    @property
    def bands(self) -> tuple[int, ...]:
        """The shown bands."""
        return self.source.check_bands(self.style.bands)

    def set_style(
        self,
        *,
        bands: Sequence[int] | None = None,
        stretch: str | None = None,
        colormap: str | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
    ) -> bool:
        """Change bands, stretch, range or colormap; ``True`` when the style changed.

        Args:
            bands: 1 or 3 band numbers of the file.
            stretch: ``"auto"``, ``"percentile"`` or ``"minmax"``; giving it drops a custom range.
            colormap: A colormap name for one band.
            vmin: The low end of a custom range for every band (with ``vmax``).
            vmax: The high end of a custom range for every band.

        Raises:
            ValueError: for bands not in the file, an unknown stretch or colormap, or a range
                whose low end is not below its high end.
        """
        current = self.style
        custom = vmin is not None or vmax is not None
        keep_range = stretch is None and not custom
        style = checked_style(
            self.source,
            bands if bands is not None else current.bands,
            stretch if stretch is not None else current.stretch,
            colormap if colormap is not None else current.colormap,
            vmin if custom else (current.vmin if keep_range else None),
            vmax if custom else (current.vmax if keep_range else None),
        )
        if style == current:
            return False
        self.style = style
        return True

    def ranges(self) -> list[tuple[float, float]] | None:
        """Each shown band's stretch now; ``None`` where a palette shows its own colours."""
        return self.source.ranges(self.style)

    def colour_bar(self) -> ColourBar | None:
        """The colour bar of a one-band style; ``None`` for RGB."""
        lut = self.source.lut(self.style)
        if lut is None:
            return None
        ranges = self.ranges()
        low, high = ranges[0] if ranges else (0.0, 255.0)
        stops = [(int(r), int(g), int(b)) for r, g, b, _ in [*lut[::32].tolist(), lut[-1].tolist()]]
        return ColourBar(self.bands[0], stops, float(low), float(high))

    def render(self, bounds: tuple[float, float, float, float], width: int, height: int) -> np.ndarray:
        """The raster inside ``bounds`` (west, south, east, north in degrees) as Web-Mercator RGBA."""
        return self.source.part_rgba(bounds, width, height, self.style)


class FeatureState(t.HasTraits):
    """A set of map features as shown: a FeatureCollection and its visibility."""

    visible = t.Bool(True)

    def __init__(self, data: dict[str, Any], name: str) -> None:
        self.data = data
        self.name = name
        super().__init__()


class ResultsView:
    """What a map of a task's results shows; see the module docstring.

    Build it with :meth:`from_files`. Attributes:

    Attributes:
        rasters: The raster states by layer name, in file order.
        features: The labelled, thinned features (data.json or the block's GeoJSON), or ``None``.
        aoi: The area of interest, or ``None``.
        notes: What the map says about itself.
        center: The fitted view's centre ``(lat, lon)``.
        zoom: The fitted view's zoom.
    """

    def __init__(
        self,
        rasters: Sequence[RasterState],
        features: FeatureState | None = None,
        aoi: FeatureState | None = None,
        notes: Sequence[str] = (),
        *,
        owned: Sequence[RasterSource] = (),
        fit: Sequence[tuple[float, float, float, float]] = (),
    ) -> None:
        """See :meth:`from_files`; ``owned`` are the sources :meth:`close` closes, ``fit`` boxes
        (west, south, east, north) the fitted view must hold besides the layers'."""
        self.rasters = {state.name: state for state in rasters}
        self.features = features
        self.aoi = aoi
        self.notes = list(notes)
        self._owned = list(owned)
        boxes = [s.source.bounds_4326 for s in rasters if s.source.bounds_4326 is not None] + list(fit)
        for extra in (features, aoi):
            box = mapping.collection_bounds(extra.data.get("features", [])) if extra is not None else None
            if box is not None:
                boxes.append(box)
        self.center, self.zoom = mapping.fit_view(mapping.union_bounds(boxes)) if boxes else ((0.0, 0.0), 2)

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        *,
        bands: Sequence[int] | None = None,
        aoi: Any = None,
        show_images: bool = True,
        show_features: bool = True,
        name_column: str = "uid",
        progress: ViewProgress | None = None,
    ) -> ResultsView:
        """The view of a download's files (``JobTask.results``); see ``JobTask.map_results``.

        Args:
            paths: The files: result rasters, data.json, a block's GeoJSON, others (ignored).
            bands: 1 or 3 band numbers for every raster; default from each file.
            aoi: Anything ``mapping.aoi_geojson`` accepts.
            show_images: Whether to show the rasters.
            show_features: Whether to show the features (a block's GeoJSON, else data.json).
            name_column: The feature property that labels each feature.
            progress: Told when a raster's one-off overview build starts and ends.

        Raises:
            ValueError: for bad bands (naming the file's bands), a bad aoi or feature file.
            RasterError: for a raster that cannot be read or placed on a map.
        """
        files = [Path(p) for p in paths]
        feature_file = next((p for p in files if p.suffix.lower() == ".geojson"), None) or next(
            (p for p in files if p.name == "data.json"), None
        )
        every = read_feature_collection(feature_file)["features"] if show_features and feature_file else None
        pairs = mapping.pair_rasters(files) if show_images else []
        return cls._assemble(pairs, every, bands, aoi, name_column, progress)

    @classmethod
    def from_remote(
        cls,
        files: Sequence[RemoteFile],
        features: dict[str, Any] | None,
        *,
        bands: Sequence[int] | None = None,
        aoi: Any = None,
        show_images: bool = True,
        show_features: bool = True,
        name_column: str = "uid",
    ) -> ResultsView:
        """The view of a task's files read in place from the server (see ``JobTask.map_results``).

        Args:
            files: The task's result files at their URLs; its GeoTIFFs are mapped.
            features: The task's data.json (a FeatureCollection), or None.
            bands: 1 or 3 band numbers for every raster; default from each file.
            aoi: Anything ``mapping.aoi_geojson`` accepts.
            show_images: Whether to show the rasters.
            show_features: Whether to show the features of data.json.
            name_column: The feature property that labels each feature.

        Raises:
            ValueError: for bad bands (naming the file's bands) or a bad aoi.
            RasterError: for a raster that cannot be read (naming it and its URL without the
                signature) or placed on a map.
        """
        every = list((features or {}).get("features") or []) if show_features else None
        rasters = [f for f in files if f.suffix.lower() in GEOTIFF_SUFFIXES] if show_images else []
        matched = mapping.match_features(
            [f.path.lstrip("./") for f in rasters], list((features or {}).get("features") or [])
        )
        return cls._assemble(list(zip(rasters, matched, strict=True)), every, bands, aoi, name_column, None)

    @classmethod
    def _assemble(
        cls,
        pairs: Sequence[tuple[Path | RemoteFile, dict[str, Any] | None]],
        every: list[dict[str, Any]] | None,
        bands: Sequence[int] | None,
        aoi: Any,
        name_column: str,
        progress: ViewProgress | None,
    ) -> ResultsView:
        """The view of rasters (each with its feature, or None) and of features (None: no layer)."""
        aoi_state = FeatureState(mapping.aoi_geojson(aoi), "AOI") if aoi is not None else None
        notes: list[str] = []
        features = None
        fit = []
        if every:  # an empty collection gets no layer and no toggle
            features = FeatureState(label_features(every, name_column, notes), "features")
            box = mapping.collection_bounds(every)  # the view fits every feature, not only those kept
            fit = [box] if box is not None else []
        with ExitStack() as opened:  # on any error, every raster opened so far is closed again
            states = []
            for raster, feature in pairs:
                source = opened.enter_context(RasterSource(raster))
                source.require_crs("the map")
                name = mapping.layer_name(raster, feature, name_column)
                states.append(RasterState(source, name=name, feature=feature, bands=bands))
                if progress is not None:
                    source.display_path(progress=_named(progress, source.name))
            owned = [s.source for s in states]
            opened.pop_all()  # from here on the view owns them
        return cls(states, features, aoi_state, notes, owned=owned, fit=fit)

    def __repr__(self) -> str:
        features = len(self.features.data["features"]) if self.features is not None else 0
        return (
            f"ResultsView({len(self.rasters)} rasters {list(self.rasters)!r}, {features} features, "
            f"aoi={self.aoi is not None}, zoom {self.zoom} at {self.center[0]:.4f}, {self.center[1]:.4f})"
        )

    def summary(self) -> list[str]:
        """What the view shows, a line a layer, in plain words (the maps' text fallback)."""
        lines = []
        for name, state in self.rasters.items():
            style = state.style
            how = f"band {state.bands[0]}" if len(state.bands) == 1 else "bands " + ", ".join(map(str, state.bands))
            how += f", {style.colormap}" if style.colormap else ""
            shown = "shown" if state.visible else "hidden"
            lines.append(f"raster {name}: {how}, stretch {style.stretch}, {shown}, opacity {state.opacity:g}")
        if self.features is not None:
            count = len(self.features.data["features"])
            lines.append(f"{count} features, {'shown' if self.features.visible else 'hidden'}")
        if self.aoi is not None:
            lines.append(f"area of interest, {'shown' if self.aoi.visible else 'hidden'}")
        return lines or ["nothing to show"]

    @property
    def toggles(self) -> dict[str, RasterState | FeatureState]:
        """Everything that can be shown or hidden, by label: each raster, ``"features"``, ``"AOI"``."""
        shown: dict[str, RasterState | FeatureState] = dict(self.rasters)
        for extra in (self.features, self.aoi):
            if extra is not None:
                shown[extra.name] = extra
        return shown

    def values_at(self, lat: float, lon: float) -> dict[str, PixelValues]:
        """Every shown raster's values at a point: ``{layer name: {band name: value}}``.

        See :meth:`RasterSource.values_at` for the values (``None`` where masked or outside).
        """
        return {name: state.source.values_at(lon, lat) for name, state in self.rasters.items() if state.visible}

    @property
    def note(self) -> str:
        """The notes as one line."""
        return "; ".join(self.notes)

    def adopt_sources(self, other: ResultsView) -> bool:
        """Draw ``other``'s rasters in place of this view's, keeping every state (style, visibility,
        opacity) and so every layer and control: the downloaded copies of files read from the
        server, without a visible change.

        Only when both views show the same rasters: the same names, sizes and bands. The sources
        this view gives up go to ``other``, which the caller closes.

        Returns:
            Whether the sources were taken (``False``: nothing changed).
        """
        if set(self.rasters) != set(other.rasters):
            return False
        for name, state in self.rasters.items():
            mine, theirs = state.source, other.rasters[name].source
            if (mine.width, mine.height, mine.bands) != (theirs.width, theirs.height, theirs.bands):
                return False
        for name, state in self.rasters.items():
            state.source, other.rasters[name].source = other.rasters[name].source, state.source
        self._owned, other._owned = other._owned, self._owned
        return True

    def close(self) -> None:
        """Close every raster this view opened."""
        for source in self._owned:
            source.close()

    def __enter__(self) -> ResultsView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _named(progress: ViewProgress, name: str) -> Callable[[float], None]:
    def report(fraction: float) -> None:
        progress(name, fraction)

    return report


def label_features(features: Sequence[dict[str, Any]], name_column: str, notes: list[str]) -> dict[str, Any]:
    """A FeatureCollection of at most ``mapping.MAX_FEATURES`` features, each with ``_label``.

    The label is the feature's ``name_column`` value, or its index when no feature has one (a
    note and a warning say so); a note says when the features were thinned.
    """
    kept, thinned = mapping.thin_features(features)
    if thinned:
        notes.append(thinned)
    has_column = any(name_column in (f.get("properties") or {}) for f in kept)
    if kept and not has_column:
        message = f"the features have no property {name_column!r}: they are labelled by their index"
        notes.append(message)
        warnings.warn(message, stacklevel=4)
    labelled = []
    for index, feature in enumerate(kept):
        properties = dict(feature.get("properties") or {})
        label = properties.get(name_column) if has_column else index
        labelled.append({**feature, "properties": {**properties, "_label": str(label)}})
    return {"type": "FeatureCollection", "features": labelled}
