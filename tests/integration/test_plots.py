"""JobTask.plot_results and plot_quicklooks: arguments, errors, and inline display in a notebook."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import pytest
from nbclient import NotebookClient

import jobtask_widgets as jw
from jobtask_widgets.sample import Sample
from tests import rasters
from tests.helpers import Api, login

matplotlib.use("Agg")


@pytest.fixture
def task(api: Api, sample: Sample) -> jw.JobTask:
    login(api.url, sample)
    return jw.initialize_jobtask(sample.task_ids[1], sample.job_id)


def test_plot_results_of_local_files_only_needs_a_download_first(task: jw.JobTask) -> None:
    with pytest.raises(ValueError, match=r"call download_results\(\) first, or pass remote=True"):
        task.plot_results(remote=False)
    with pytest.raises(ValueError, match=r"call download_quicklooks\(\) first"):
        task.plot_quicklooks()


def test_plot_results_of_the_last_download_returns_none(task: jw.JobTask, tmp_path: Path) -> None:
    task.download_results(tmp_path, progress=False)
    before = plt.get_fignums()
    assert task.plot_results(figsize=(6, 4)) is None
    assert plt.get_fignums() == before + [max(before, default=0) + 1]  # one pyplot figure, shown once
    fig = plt.figure(plt.get_fignums()[-1])
    assert tuple(fig.get_size_inches()) == (6.0, 4.0)  # (width, height), as the original SDK did
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["reflectance_bgrn.tif"]  # data.json left out
    plt.close("all")


def test_filepaths_formats_bands_and_titles(task: jw.JobTask, tmp_path: Path) -> None:
    tif = rasters.reflectance(tmp_path / "r.TIFF")
    png = rasters.halves_rgb(tmp_path / "h.png.tif").rename(tmp_path / "h.png")
    task.plot_results(filepaths={"a": str(tif), "b": [png]}, plot_file_format=[".tif"])
    assert [ax.get_title() for ax in plt.gcf().axes if ax.get_visible()] == ["r.TIFF"]
    with pytest.raises(ValueError, match=r"none of the files \(h\.png\) has a suffix in plot_file_format"):
        task.plot_results(filepaths=png)
    with pytest.raises(ValueError, match=r"band 7 is not in the file: r\.TIFF has bands 1 \(blue\)"):
        task.plot_results(filepaths=[tif], bands=[7])
    with pytest.raises(ValueError, match="2 titles for 1 files"):
        task.plot_results(filepaths=[tif], titles=["a", "b"])
    with pytest.raises(ValueError, match=r"figsize must be \(width, height\)"):
        task.plot_results(filepaths=[tif], figsize=(0, 3))
    task.plot_results(filepaths=[tif], bands=[4], titles=["NIR"], cmap="magma")
    image = plt.gcf().axes[0].images[0]
    assert image.cmap.name == "magma" and plt.gcf().axes[0].get_title() == "NIR"
    plt.close("all")


def test_plot_quicklooks_of_the_last_download(task: jw.JobTask, tmp_path: Path) -> None:
    task.download_quicklooks(tmp_path, progress=False)
    assert task.plot_quicklooks(titles=["preview"]) is None
    assert [ax.get_title() for ax in plt.gcf().axes if ax.get_visible()] == ["preview"]
    plt.close("all")


def test_in_a_notebook_each_plot_shows_inline_exactly_once(api: Api, sample: Sample, tmp_path: Path) -> None:
    setup = f"""
import jobtask_widgets as jw
jw.authenticate(api_url={api.url!r}, project_id={sample.project_id!r}, project_api_key={sample.project_api_key!r})
task = jw.initialize_jobtask({sample.task_ids[0]!r}, {sample.job_id!r})
_ = task.download_results({str(tmp_path / "r")!r}, progress=False)
_ = task.download_quicklooks({str(tmp_path / "q")!r}, progress=False)
"""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (setup, "task.plot_results()", "task.plot_quicklooks()")]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells[1:]:
        outputs = cell.outputs
        images = [o for o in outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, json.dumps(outputs)[:500]
        assert not [o for o in outputs if o.get("output_type") == "execute_result"]  # returns None, prints nothing
        assert not [o for o in outputs if o.get("output_type") == "error"]


def test_import_of_the_core_does_not_load_matplotlib() -> None:
    import subprocess

    code = "import sys, jobtask_widgets as jw; jw.JobTask; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "MPLBACKEND": "Agg"})  # fmt: skip
    assert result.stdout.strip() == "False"
