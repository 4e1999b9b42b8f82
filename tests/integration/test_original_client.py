"""The original SDK's client, PyPI ``up42-py`` 0.37.2, unchanged, against our server on every sample task.

``scripts/check_original_client.py`` runs in a venv of its own that holds up42-py (installed once
into a cache folder outside the repository, from the package registry); the script starts our
server with this environment's Python and drives the documented calls for each sample task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from jobtask_widgets.sample import Sample

UP42 = "up42-py==0.37.2"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_original_client.py"


def up42_python() -> Path:
    """The Python of a venv that holds the original client; made once per cache folder."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "jobtask-widgets-tests" / "up42-py-0.37.2"
    python = folder / "bin" / "python"
    if (folder / ".complete").exists():
        return python
    venv.EnvBuilder(clear=True, with_pip=False).create(folder)  # no ensurepip needed: this pip installs into it
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", UP42],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0:
        message = f"cannot install {UP42} from the package registry: {install.stderr[-800:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    (folder / ".complete").write_text("ok\n")
    return python


def test_the_original_client_passes_on_every_sample_task(sample: Sample) -> None:
    env = {**os.environ, "SERVER_PYTHON": sys.executable}
    result = subprocess.run(
        [str(up42_python()), str(SCRIPT)], capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASS")]
    assert not [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    for task in sample.task_ids:  # each documented call on each sample task
        calls = {line.split("]")[1].split(":")[0].strip() for line in passed if line.startswith(f"PASS [{task[:8]}]")}
        assert {"initialize_jobtask", "info", "get_results_json()", "download_results", "download_quicklooks"} <= calls
    assert result.stdout.rstrip().endswith("ALL PASS")
