"""The shipped notebooks, executed top to bottom in a real kernel with nbclient.

The quickstart runs as on a fresh machine (no ``JOBTASK_*`` login: it serves the sample itself);
the dashboard runs against the test server through the ``JOBTASK_*`` variables, then a task is
chosen and driven through its widget in the same kernel, plots into the widget's Output included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from jobtask_widgets.demo import notebook_path
from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK, SAMPLE_RGB_TASK, Sample
from tests.helpers import Api

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def run(nb: Any, cwd: Path) -> Any:
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}, store_widget_state=True
    )
    client.execute()
    return nb


def outputs(cell: Any) -> list[dict[str, Any]]:
    return [o for o in cell.outputs if o.output_type != "stream" or o.name != "stderr"]


def mimes(cell: Any) -> set[str]:
    return {m for o in cell.outputs for m in o.get("data", {})}


def text(cell: Any) -> str:
    parts = [o.get("text", "") for o in cell.outputs if o.output_type == "stream"]
    parts += [o.get("data", {}).get("text/plain", "") for o in cell.outputs]
    return "".join(parts)


def test_the_quickstart_runs_every_documented_call_on_a_fresh_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBTASK_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.setenv("JOBTASK_WIDGETS_CACHE", str(tmp_path / "cache"))
    nb = run(nbformat.read(notebook_path("quickstart.ipynb"), as_version=4), tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    sources = "\n".join(c.source for c in code)
    for call in ("initialize_jobtask(jobtask_id=", "jobtask.info", "get_results_json(as_dataframe=",
                 "download_results(output_directory=", "download_quicklooks(output_directory=",
                 "plot_results(", "figsize=", "bands=", "titles=", "filepaths=", "plot_file_format=",
                 "plot_quicklooks(", "map_results(", "aoi=", "show_images=", "show_features=",
                 "name_column=", "save_html=", ".widget("):  # fmt: skip
        assert call in sources, call
    assert "the sample store, served in the background" in text(code[0])
    assert "Landsat" in text(code[2]) and "'status': 'SUCCEEDED'" in text(code[2])
    assert "6 features" in text(code[3])
    downloads = tmp_path / "downloads"
    assert (downloads / "data.json").is_file() and list(downloads.rglob("landsat7_etm_rgb.tif"))
    assert (downloads / "quicklooks" / "quicklook_preview.png").is_file()
    plots = [c for c in code if "plot_" in c.source]
    assert len(plots) == 3 and all("image/png" in mimes(c) for c in plots)
    maps = [c for c in code if "map_results(" in c.source]
    assert len(maps) == 2 and all(WIDGET_VIEW in mimes(c) for c in maps)
    assert (downloads / "map.html").is_file()  # save_html=downloads
    assert WIDGET_VIEW in mimes(code[-1]) and ".widget(" in code[-1].source
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models = {m["model_name"] for m in state.values()}
    assert {"LeafletMapModel", "AnyModel", "TabModel", "HTMLModel"} <= models, models


def test_the_dashboard_lists_the_job_and_drives_a_task_through_its_widget(
    api: Api, sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBTASK_API_URL", api.url)
    monkeypatch.setenv("JOBTASK_PROJECT_ID", sample.project_id)
    monkeypatch.setenv("JOBTASK_PROJECT_API_KEY", sample.project_api_key)
    monkeypatch.setenv("JOBTASK_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    nb = nbformat.read(notebook_path("dashboard.ipynb"), as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            f"""import json
print(json.dumps({{"api": connection.api_url, "served": connection.served_sample,
                  "options": [value for _, value in picker.options]}}))
picker.value = {SAMPLE_MULTIBAND_TASK!r}
widget = shown.children[0]
assert widget.download_results()
assert widget.wait(120)
widget.download_quicklooks()
assert widget.wait(120)
widget.plot("results")
layer = next(iter(widget.map.raster_layers.values()))
widget.controls.mode.value = "single band"
picker.value = {SAMPLE_RGB_TASK!r}
picker.value = {SAMPLE_MULTIBAND_TASK!r}
print(json.dumps({{"same": shown.children[0] is widget, "files": len(widget.jobtask.results),
                  "bands": list(layer.bands), "gallery": len(widget.gallery.children),
                  "errors": [str(e) for e in widget.errors]}}))"""
        )
    )
    plotted = "print(json.dumps([o.get('output_type') for o in widget.plots.outputs]))"
    nb.cells.append(nbformat.v4.new_code_cell(plotted))
    nb = run(nb, tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert WIDGET_VIEW in mimes(code[0])
    first, second = (json.loads(line) for line in text(code[1]).splitlines())
    assert first == {"api": api.url, "served": False, "options": list(sample.task_ids)}
    assert second == {"same": True, "files": 2, "bands": [3], "gallery": 1, "errors": []}
    assert (tmp_path / "downloads" / SAMPLE_MULTIBAND_TASK / "data.json").is_file()
    assert json.loads(text(code[2])) == ["display_data"]  # the plot went into the widget's Output
