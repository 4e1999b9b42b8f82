"""LayerPanel: the one set of show/hide toggles (and opacity sliders) of a ``ResultsView``.

Each check box and slider is linked straight to the view's state (``RasterState.visible`` and
``opacity``, ``FeatureState.visible``), never to another control: the map's panel and the
panel inside ``LayerControls`` are two views of one model.
"""

from __future__ import annotations

import html

import ipywidgets as w

from .plaintext import WHERE, PlainTextRepr
from .view import ResultsView


class LayerPanel(PlainTextRepr, w.VBox):
    """Toggles for each raster, the features and the AOI of a view.

    Args:
        view: The view whose layers to toggle.
        opacity: Whether each raster gets an opacity slider beside its toggle.
        title: The panel's heading.

    Attributes:
        toggles: The check boxes by label (each raster's name, ``"features"``, ``"AOI"``).
        opacities: The opacity sliders by raster name (empty without ``opacity``).
    """

    def __init__(self, view: ResultsView, *, opacity: bool = True, title: str = "Layers") -> None:
        self.toggles: dict[str, w.Checkbox] = {}
        self.opacities: dict[str, w.FloatSlider] = {}
        self._links: list[w.link] = []
        rows: list[w.Widget] = []
        for label, state in view.toggles.items():
            box = w.Checkbox(value=state.visible, description=label, indent=False, layout=w.Layout(width="auto"))
            self._links.append(w.link((box, "value"), (state, "visible")))
            self.toggles[label] = box
            row: w.Widget = box
            if opacity and label in view.rasters:
                slider = w.FloatSlider(
                    value=view.rasters[label].opacity, min=0, max=1, step=0.05, readout=False, tooltip="opacity",
                    layout=w.Layout(width="90px"),
                )  # fmt: skip
                self._links.append(w.link((slider, "value"), (view.rasters[label], "opacity")))
                self.opacities[label] = slider
                row = w.HBox([box, slider], layout=w.Layout(width="auto", align_items="center"))
            rows.append(row)
        super().__init__(
            [w.HTML(f"<b>{html.escape(title)}</b>"), *rows], layout=w.Layout(width="auto", padding="0 6px")
        )
        self.add_class("jobtask-layer-panel")

    def plain_text(self) -> str:
        """The layers it toggles, as text."""
        return f"LayerPanel: toggles for {', '.join(self.toggles) or 'nothing'}\n{WHERE}"

    def close(self) -> None:
        """Unlink from the view and close the controls."""
        links, self._links = self._links, []  # close() runs again from __del__
        for link in links:
            link.unlink()
        for control in [*self.toggles.values(), *self.opacities.values()]:
            control.close()
        super().close()
