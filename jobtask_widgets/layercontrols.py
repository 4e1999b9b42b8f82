"""LayerControls: the panel beside a results map that restyles a ``ResultsView``'s rasters.

Band mode (RGB with three band pickers, or one band with a colormap), stretch (auto,
percentile, min-max or a custom range), a histogram of the shown bands whose two handles drag the
range (``HistogramRange``; one restyle when a drag ends, and the stretch selector says "custom"),
opacity, and the view's ``LayerPanel`` of toggles for
each raster, the features and the AOI. Every change goes to the view's state
(``RasterState.set_style``, ``opacity``, ``visible``), which every map of the view draws at once,
never through a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .errors import JobTaskError
from .histogram import HistogramRange
from .layerpanel import LayerPanel
from .plaintext import WHERE, PlainTextRepr
from .view import RasterState, ResultsView

COLORMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "greys", "terrain", "rdylgn", "spectral", "rdbu")
STRETCH_OPTIONS = (  # auto: 8-bit data as it is, anything else 2-98 %
    ("auto", "auto"),
    ("2-98 %", "percentile"),
    ("min-max", "minmax"),
    ("custom", "custom"),
)
RGB, SINGLE = "RGB", "single band"
ErrorHandler = Callable[[BaseException, str], None]


class LayerControls(PlainTextRepr, w.VBox):
    """Controls for the rasters, features and AOI of a :class:`ResultsView`.

    Args:
        view: The view to control.
        on_error: Called with the error and what was tried when the map refuses a change.

    Attributes:
        raster: Which raster the style controls apply to.
        mode: ``"RGB"`` or ``"single band"``.
        red, green, blue: The RGB band pickers (band labels from the file).
        band: The single-band picker.
        colormap: The single band's colormap.
        stretch: ``auto``, ``percentile``, ``minmax`` or ``custom``.
        vmin, vmax: The custom range.
        histogram: The shown bands' histograms with the range's two handles.
        opacity: The chosen raster's opacity.
        panel: The view's toggles (a ``LayerPanel``).
        toggles: A check box per raster, ``"features"`` and ``"AOI"``.
    """

    def __init__(self, view: ResultsView, on_error: ErrorHandler | None = None) -> None:
        self.view = view
        self._on_error = on_error
        self._syncing = False
        names = list(view.rasters)
        narrow = w.Layout(width="240px")
        self.raster = w.Dropdown(options=names, description="raster", layout=narrow, disabled=len(names) < 2)
        self.mode = w.ToggleButtons(options=[RGB, SINGLE], style={"button_width": "100px"})
        self.red = w.Dropdown(description="red", layout=narrow)
        self.green = w.Dropdown(description="green", layout=narrow)
        self.blue = w.Dropdown(description="blue", layout=narrow)
        self.band = w.Dropdown(description="band", layout=narrow)
        self.colormap = w.Dropdown(options=COLORMAPS, description="colormap", layout=narrow)
        self.stretch = w.Dropdown(options=STRETCH_OPTIONS, description="stretch", layout=narrow)
        self.vmin = w.FloatText(description="min", layout=w.Layout(width="240px"))
        self.vmax = w.FloatText(description="max", layout=w.Layout(width="240px"))
        self.histogram = HistogramRange(layout=w.Layout(margin="2px 0 4px 8px"))
        self.opacity = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="opacity", layout=narrow)
        self.panel = LayerPanel(view, opacity=False, title="Show")
        self.toggles = self.panel.toggles
        self._rgb_box = w.VBox([self.red, self.green, self.blue])
        self._single_box = w.VBox([self.band, self.colormap])
        self._range_box = w.VBox([self.vmin, self.vmax])
        self._opacity_link: w.link | None = None
        style_rows: list[w.Widget] = []
        if names:
            style_rows = [w.HTML("<b>Raster style</b>"), self.raster, self.mode, self._rgb_box, self._single_box,
                          self.stretch, self.histogram, self._range_box, self.opacity]  # fmt: skip
        super().__init__(
            [*style_rows, self.panel],
            layout=w.Layout(width="260px", min_width="260px", padding="0 0 0 8px"),
        )
        self.add_class("jobtask-layer-controls")
        pickers = (self.mode, self.red, self.green, self.blue, self.band, self.colormap)
        for control in (*pickers, self.stretch, self.vmin, self.vmax):
            control.observe(lambda _: self._apply(), "value")
        self.raster.observe(lambda _: self._sync(), "value")
        self.histogram.on_range(self._dragged)
        self._applying = False
        self._closed = False
        for state in view.rasters.values():
            state.observe(self._restyled, "style")
        if names:
            self._sync()

    @property
    def layer(self) -> RasterState:
        """The state of the raster the style controls apply to."""
        return self.view.rasters[self.raster.value]

    def _sync(self) -> None:
        """Show the chosen raster's current style in the controls, without applying anything."""
        layer = self.layer
        source, style, bands = layer.source, layer.style, layer.bands
        options = [(b.label, b.index) for b in source.bands]
        self._syncing = True
        try:
            for picker in (self.red, self.green, self.blue, self.band):
                picker.options = options
            self.mode.value = RGB if len(bands) == 3 else SINGLE
            self.mode.disabled = source.count < 3
            if len(bands) == 3:
                self.red.value, self.green.value, self.blue.value = bands
                self.band.value = bands[0]
            else:
                self.band.value = bands[0]
                defaults = source.default_bands() if source.count >= 3 else (1, 1, 1)
                self.red.value, self.green.value, self.blue.value = (list(defaults) * 3)[:3]
            self.colormap.value = style.colormap if style.colormap in COLORMAPS else COLORMAPS[0]
            custom = style.vmin is not None and style.vmax is not None
            self.stretch.value = "custom" if custom else style.stretch
            self._fill_range()
            if self._opacity_link is not None:
                self._opacity_link.unlink()
            self.opacity.value = layer.opacity
            self._opacity_link = w.link((self.opacity, "value"), (layer, "opacity"))
        finally:
            self._syncing = False
        self._show_rows()
        self._refresh_histogram()

    def _refresh_histogram(self) -> None:
        """Draw the chosen raster's shown bands and their stretch now; hidden where a palette colours it."""
        layer = self.layer
        try:
            ranges = layer.ranges()
            histogram = layer.histogram() if ranges is not None else None
        except (JobTaskError, ValueError) as exc:
            histogram = None
            if self._on_error is not None:
                self._on_error(exc, f"Reading the histogram of {layer.name}")
        self.histogram.layout.display = "none" if histogram is None else ""
        if histogram is not None:
            names = layer.source.band_names
            integer = layer.source.bands[layer.bands[0] - 1].dtype.startswith(("int", "uint"))
            self.histogram.show(histogram, [names[b - 1] for b in layer.bands], ranges, integer=integer)

    def _dragged(self, low: float, high: float) -> None:
        """The histogram's handles were let go: the range they mark becomes the custom stretch."""
        if self.histogram.integer:  # whole values for integer data (the handle not dragged keeps its own)
            low, high = float(round(low)), float(round(high))
            high = max(high, low + 1.0)
        self._syncing = True
        try:
            self.stretch.value = "custom"
            self.vmin.value, self.vmax.value = low, high
        finally:
            self._syncing = False
        self._apply()

    def _fill_range(self) -> None:
        """The custom range starts from the range the layer is drawn with now."""
        ranges = self.layer.ranges() or [(0.0, 255.0)]
        self.vmin.value = min(low for low, _ in ranges)
        self.vmax.value = max(high for _, high in ranges)

    def _show_rows(self) -> None:
        single = self.mode.value == SINGLE
        self._rgb_box.layout.display = "none" if single else ""
        self._single_box.layout.display = "" if single else "none"
        self._range_box.layout.display = "" if self.stretch.value == "custom" else "none"

    def _restyled(self, change: Any) -> None:
        """A style changed elsewhere (code, another control): show it, if it is the chosen raster's."""
        if not self._applying and change["owner"] is self.layer:
            self._sync()

    def _apply(self) -> None:
        if self._syncing:
            return
        self._applying = True
        try:
            self._apply_controls()
        finally:
            self._applying = False

    def _apply_controls(self) -> None:
        self._show_rows()
        single = self.mode.value == SINGLE
        bands = (self.band.value,) if single else (self.red.value, self.green.value, self.blue.value)
        options: dict[str, Any] = {"bands": bands, "colormap": self.colormap.value if single else None}
        if self.stretch.value == "custom":
            options.update(vmin=self.vmin.value, vmax=self.vmax.value)
        else:
            options["stretch"] = self.stretch.value
        try:
            self.layer.set_style(**options)
        except ValueError as exc:
            if self._on_error is None:
                raise
            self._on_error(exc, f"Restyling {self.layer.name}")
            return
        if self.stretch.value != "custom":
            self._syncing = True
            try:
                self._fill_range()
            finally:
                self._syncing = False
        self._refresh_histogram()

    def plain_text(self) -> str:
        """The rasters and layers it controls, as text."""
        return "\n".join(["LayerControls for a map of:", *(f"  {line}" for line in self.view.summary()), WHERE])

    def close(self) -> None:
        """Unlink from the view and close the controls."""
        link = getattr(self, "_opacity_link", None)
        if link is not None:
            link.unlink()
            self._opacity_link = None
        if getattr(self, "_closed", True) is False:  # close() runs again from __del__
            self._closed = True
            for state in self.view.rasters.values():
                state.unobserve(self._restyled, "style")
        if hasattr(self, "panel"):
            self.panel.close()
        if hasattr(self, "histogram"):
            self.histogram.close()
        super().close()
