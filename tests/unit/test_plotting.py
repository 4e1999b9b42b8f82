"""The figures of plot_results and plot_quicklooks: values of rendered pixels, not just "no error"."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from jobtask_widgets.plotting import collect_paths, filter_formats, quicklooks_figure, results_figure
from jobtask_widgets.sample import Sample
from tests import rasters

matplotlib.use("Agg")


def pixel(ax: object, fx: float, fy: float) -> np.ndarray:
    """The RGBA (0..1) that the axes' image gives at a fraction of its width and height."""
    image = ax.images[0]  # type: ignore[attr-defined]
    data = image.get_array()
    rows, cols = data.shape[:2]
    r, c = int(fy * (rows - 1)), int(fx * (cols - 1))
    if data.ndim == 3:
        return np.asarray(data[r, c], dtype="float64")
    return np.asarray(image.to_rgba(data[r : r + 1, c : c + 1])[0, 0], dtype="float64")


def test_rgb_keeps_its_colours_and_nodata_is_transparent(tmp_path: Path) -> None:
    fig = results_figure([rasters.halves_rgb(tmp_path / "h.tif")], figsize=(4, 4))
    ax = fig.axes[0]
    assert pixel(ax, 0.3, 0.5) == pytest.approx([200 / 255, 0, 0, 1], abs=0.01)
    assert pixel(ax, 0.7, 0.5) == pytest.approx([0, 0, 200 / 255, 1], abs=0.01)
    assert pixel(ax, 0.0, 0.0)[3] == 0  # the nodata border
    assert ax.get_title() == "h.tif"
    assert ax.get_aspect() == 1.0


def test_16_bit_data_is_stretched_so_it_is_never_black(tmp_path: Path) -> None:
    fig = results_figure([rasters.reflectance(tmp_path / "r.tif")], figsize=(4, 4))
    data = fig.axes[0].images[0].get_array()
    valid = data[..., 3] > 0
    assert data[..., :3][valid].mean() == pytest.approx(0.5, abs=0.1)
    assert data[..., :3][valid].max() == 1.0
    assert (data[: data.shape[0] // 20, :, 3] == 0).all()  # the nodata rows on top


def test_one_band_uses_a_colormap_and_kwargs_override_the_defaults(tmp_path: Path) -> None:
    path = rasters.signed(tmp_path / "s.tif")
    image = results_figure([path], figsize=(4, 4)).axes[0].images[0]
    assert image.cmap.name == "viridis"
    assert image.norm.vmin < -900 and image.norm.vmax > 900  # negative values stretched too
    image = results_figure([path], figsize=(4, 4), cmap="gray", vmin=0, vmax=10).axes[0].images[0]
    assert image.cmap.name == "gray" and (image.norm.vmin, image.norm.vmax) == (0, 10)
    refl = rasters.reflectance(tmp_path / "r.tif")
    nir = results_figure([refl], figsize=(4, 4), bands=[4]).axes[0].images[0]
    assert nir.get_array().shape == (200, 200)


def test_nan_is_transparent_and_a_palette_keeps_its_colours(tmp_path: Path) -> None:
    fig = results_figure([rasters.float_nan(tmp_path / "f.tif"), rasters.paletted(tmp_path / "p.tif")], figsize=(8, 4))
    nan_ax, pal_ax = fig.axes[:2]
    assert pixel(nan_ax, 0.05, 0.05)[3] == 0 and pixel(nan_ax, 0.8, 0.8)[3] == 1
    assert pixel(pal_ax, 0.5, 0.5) == pytest.approx([0, 160 / 255, 0, 1], abs=0.01)
    assert pixel(pal_ax, 0.9, 0.5) == pytest.approx([250 / 255, 220 / 255, 0, 1], abs=0.01)


def test_an_alpha_band_becomes_transparency_and_a_raster_without_crs_plots_in_pixels(tmp_path: Path) -> None:
    fig = results_figure([rasters.rgba(tmp_path / "a.tif"), rasters.no_crs(tmp_path / "n.tif")], figsize=(8, 4))
    assert pixel(fig.axes[0], 0.1, 0.5)[3] == 0 and pixel(fig.axes[0], 0.9, 0.5)[3] == 1
    assert "no coordinate reference system" in fig.axes[1].get_xlabel()


def test_many_files_lay_out_in_a_grid_with_unused_axes_hidden(tmp_path: Path) -> None:
    paths = [rasters.halves_rgb(tmp_path / f"{i}.tif") for i in range(4)]
    fig = results_figure(paths, figsize=(9, 6), titles=["a", "b", "c", "d"])
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 6 and len(visible) == 4
    assert [ax.get_title() for ax in visible] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="3 titles for 4 files"):
        results_figure(paths, titles=["a", "b", "c"])


def test_reads_are_decimated_to_the_figure_size(sample: Sample) -> None:
    tif = next((sample.task_dir(sample.task_ids[1]) / "output").rglob("*.tif"))  # 2000 x 2000
    fig = results_figure([tif], figsize=(3, 3))
    shape = fig.axes[0].images[0].get_array().shape
    assert max(shape[:2]) <= 300  # 3 inches at 100 dpi, not 2000 px


def test_the_sample_rasters_plot_with_their_default_bands(sample: Sample, tmp_path: Path) -> None:
    tifs = sorted(p for t in sample.task_ids[:2] for p in (sample.task_dir(t) / "output").rglob("*.tif"))  # RGB, 4-band
    fig = results_figure(tifs, figsize=(10, 5))
    for ax in fig.axes[:2]:
        data = ax.images[0].get_array()
        assert data.shape[-1] == 4
        valid = data[..., 3] > 0
        assert 0.6 < valid.mean() < 0.98
        assert data[..., :3][valid].mean() > 0.15  # not black
    fig.savefig(tmp_path / "sample.png")


def test_quicklooks_figure(sample: Sample) -> None:
    pngs = [sample.task_dir(t) / "quicklooks" / "preview.png" for t in sample.task_ids]
    fig = quicklooks_figure(pngs, figsize=(8, 4), titles=["one", "two", "three"])
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["one", "two", "three"]
    data = fig.axes[0].images[0].get_array()
    assert data.shape[-1] == 4 and data[0, 0, 3] == 0 and data[120, 130, 3] == 1


def test_filepaths_and_formats() -> None:
    assert collect_paths("a.tif") == [Path("a.tif")]
    assert collect_paths(["a.tif", Path("b.TIFF")]) == [Path("a.tif"), Path("b.TIFF")]
    assert collect_paths({"x": "a.tif", "y": ["b.tif", "c.png"]}) == [Path("a.tif"), Path("b.tif"), Path("c.png")]
    with pytest.raises(ValueError, match="a path, a list of paths, or a dict"):
        collect_paths(42)  # type: ignore[arg-type]
    kept = filter_formats([Path("a.TIF"), Path("b.tiff"), Path("c.png"), Path("data.json")], [".tif"])
    assert kept == [Path("a.TIF"), Path("b.tiff")]
    assert filter_formats([Path("c.png")], ["PNG"]) == [Path("c.png")]
