"""LayerControls: the panel beside a ``ResultsMap`` that restyles its rasters and toggles its layers.

Band mode (RGB with three band pickers, or one band with a colormap), stretch (auto,
percentile, min-max or a custom range), opacity, and a toggle for each raster, the features and
the AOI. Every change goes to the live map (``RasterTileLayer.set_style``, the layer's traits and
the map's own toggles), never through a rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .mapwidget import ResultsMap
from .tilelayer import RasterTileLayer

COLORMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "greys", "terrain", "rdylgn", "spectral", "rdbu")
STRETCH_OPTIONS = (  # auto: 8-bit data as it is, anything else 2-98 %
    ("auto", "auto"),
    ("2-98 %", "percentile"),
    ("min-max", "minmax"),
    ("custom", "custom"),
)
RGB, SINGLE = "RGB", "single band"
ErrorHandler = Callable[[BaseException, str], None]


class LayerControls(w.VBox):
    """Controls for the rasters, features and AOI of a :class:`ResultsMap`.

    Args:
        results_map: The map to control.
        on_error: Called with the error and what was tried when the map refuses a change.

    Attributes:
        raster: Which raster the style controls apply to.
        mode: ``"RGB"`` or ``"single band"``.
        red, green, blue: The RGB band pickers (band labels from the file).
        band: The single-band picker.
        colormap: The single band's colormap.
        stretch: ``auto``, ``percentile``, ``minmax`` or ``custom``.
        vmin, vmax: The custom range.
        opacity: The chosen raster's opacity.
        toggles: A check box per raster, ``"features"`` and ``"AOI"``, linked to the map's panel.
    """

    def __init__(self, results_map: ResultsMap, on_error: ErrorHandler | None = None) -> None:
        self.map = results_map
        self._on_error = on_error
        self._syncing = False
        names = list(results_map.raster_layers)
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
        self.opacity = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="opacity", layout=narrow)
        self.toggles = {label: self._linked_toggle(label, box) for label, box in results_map.toggles.items()}
        self._rgb_box = w.VBox([self.red, self.green, self.blue])
        self._single_box = w.VBox([self.band, self.colormap])
        self._range_box = w.VBox([self.vmin, self.vmax])
        self._opacity_link: w.link | None = None
        style_rows: list[w.Widget] = []
        if names:
            style_rows = [w.HTML("<b>Raster style</b>"), self.raster, self.mode, self._rgb_box, self._single_box,
                          self.stretch, self._range_box, self.opacity]  # fmt: skip
        super().__init__(
            [*style_rows, w.HTML("<b>Show</b>"), *self.toggles.values()],
            layout=w.Layout(width="260px", min_width="260px", padding="0 0 0 8px"),
        )
        self.add_class("jobtask-layer-controls")
        pickers = (self.mode, self.red, self.green, self.blue, self.band, self.colormap)
        for control in (*pickers, self.stretch, self.vmin, self.vmax):
            control.observe(lambda _: self._apply(), "value")
        self.raster.observe(lambda _: self._sync(), "value")
        if names:
            self._sync()

    @property
    def layer(self) -> RasterTileLayer:
        """The raster layer the style controls apply to."""
        return self.map.raster_layers[self.raster.value]

    def _linked_toggle(self, label: str, box: w.Checkbox) -> w.Checkbox:
        mine = w.Checkbox(value=box.value, description=label, indent=False, layout=w.Layout(width="250px"))
        w.link((mine, "value"), (box, "value"))
        return mine

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

    def _fill_range(self) -> None:
        """The custom range starts from the range the layer is drawn with now."""
        ranges = self.layer.source.ranges(self.layer.style) or [(0.0, 255.0)]
        self.vmin.value = min(low for low, _ in ranges)
        self.vmax.value = max(high for _, high in ranges)

    def _show_rows(self) -> None:
        single = self.mode.value == SINGLE
        self._rgb_box.layout.display = "none" if single else ""
        self._single_box.layout.display = "" if single else "none"
        self._range_box.layout.display = "" if self.stretch.value == "custom" else "none"

    def _apply(self) -> None:
        if self._syncing:
            return
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
