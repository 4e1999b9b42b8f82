"""The commands as a new user runs them: serve, demo (and its printed curl walk), errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobtask_widgets.sample import Sample
from jobtask_widgets.server.run import free_port
from tests.helpers import COMMAND, Api, Running


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for run in started:
        run.stop()


def test_serve_prints_the_url_and_credentials_and_the_api_walks_through(
    own_sample: Sample, running: list[Running], tmp_path: Path
) -> None:
    run = Running(["serve", str(own_sample.root), "--port", "0", "--cache-dir", str(tmp_path / "cache")])
    running.append(run)
    url = run.wait_for("API: ").removeprefix("API: ")
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith(":0")
    accepts = run.wait_for("Accepts:")
    assert own_sample.project_id in accepts and own_sample.project_api_key not in accepts
    assert f"their API keys ({own_sample.root / 'credentials.json'})" in accepts
    assert "analyst" in run.wait_for("         password grant")
    # token -> tasks -> data-json -> signed URL -> archive -> quicklook
    token = requests.post(
        f"{url}/oauth/token", data={"grant_type": "client_credentials"},
        auth=(own_sample.project_id, own_sample.project_api_key), timeout=30,
    ).json()["access_token"]  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    job = f"{url}/projects/{own_sample.project_id}/jobs/{own_sample.job_id}"
    tasks = requests.get(f"{job}/tasks/", headers=auth, timeout=30).json()["data"]
    task = f"{job}/tasks/{tasks[0]['id']}"
    assert requests.get(f"{task}/outputs/data-json/", headers=auth, timeout=30).json()["type"] == "FeatureCollection"
    signed = requests.get(f"{task}/downloads/results/", headers=auth, timeout=30).json()["data"]["url"]
    assert signed.startswith(url)
    archive = tmp_path / "results.tar.gz"
    archive.write_bytes(requests.get(signed, timeout=60).content)
    with tarfile.open(archive) as tar:
        assert "output/data.json" in tar.getnames()
    names = requests.get(f"{task}/outputs/quicklooks/", headers=auth, timeout=30).json()["data"]
    image = requests.get(f"{task}/outputs/quicklooks/{names[0]}", headers=auth, timeout=30)
    assert image.content[:4] == b"\x89PNG"
    assert run.interrupt() == 0
    assert list((tmp_path / "cache").rglob("*.tar.gz"))


def test_serve_names_the_broken_task_and_exits(own_sample: Sample) -> None:
    info = own_sample.task_dir(own_sample.task_ids[1]) / "info.json"
    info.write_text(json.dumps({"id": "wrong"}))
    result = subprocess.run(COMMAND + ["serve", str(own_sample.root), "--port", "0"],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2
    assert own_sample.task_ids[1] in result.stderr
    assert "info.json has id 'wrong'" in result.stderr
    assert "API:" not in result.stdout


def test_serve_says_when_the_port_is_taken_or_an_option_is_bad(own_sample: Sample) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(COMMAND + ["serve", str(own_sample.root), "--port", str(port)],
                                capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port 0" in result.stderr
    result = subprocess.run(COMMAND + ["serve", str(own_sample.root), "--token-ttl", "10"],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2
    assert "token_ttl must be at least 300" in result.stderr


def test_demo_serves_the_sample_and_its_printed_curl_walk_works(running: list[Running], tmp_path: Path) -> None:
    run = Running(["demo", "--no-browser", "--port", "0", "--api-port", "0"])
    running.append(run)
    url = run.wait_for("API: ").removeprefix("API: ")
    store = Path(run.wait_for("Sample store: ").removeprefix("Sample store: "))
    dashboard = run.wait_for("Dashboard: ", timeout=180).removeprefix("Dashboard: ")
    run.wait_for("Press Ctrl-C")
    assert requests.get(dashboard + "api/kernelspecs", timeout=30, allow_redirects=False).status_code < 500
    start = run.lines.index("Walk the API with curl:") + 1
    walk = "\n".join(line.removeprefix("  ") for line in run.lines[start : run.lines.index(f"Dashboard: {dashboard}")])
    assert walk.count(url) == 6
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", walk], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"FeatureCollection"' in result.stdout
    assert "output/data.json" in result.stdout
    assert '{"data":["preview.png"],"error":null}' in result.stdout
    assert (tmp_path / "preview.png").read_bytes()[:4] == b"\x89PNG"
    with tarfile.open(tmp_path / "results.tar.gz") as tar:
        assert any(name.endswith(".tif") for name in tar.getnames())
    start = run.lines.index("In Python or a notebook:") + 1
    snippet = "\n".join(
        line.removeprefix("  ") for line in run.lines[start : run.lines.index("Walk the API with curl:")]
    )
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "status: SUCCEEDED" in result.stdout
    assert store.is_dir()
    assert run.interrupt() == 0
    assert not store.exists()  # the temporary store is cleaned up


def test_the_demo_moves_off_taken_ports_and_says_where_it_is(running: list[Running]) -> None:
    with socket.socket() as api_taken, socket.socket() as dashboard_taken:
        for taken in (api_taken, dashboard_taken):
            taken.bind(("127.0.0.1", 0))
            taken.listen()
        api_port, dashboard_port = api_taken.getsockname()[1], dashboard_taken.getsockname()[1]
        run = Running(["demo", "--no-browser", "--port", str(dashboard_port), "--api-port", str(api_port)])
        running.append(run)
        api = run.wait_for("API: ").removeprefix("API: ")
        dashboard = run.wait_for("Dashboard: ", timeout=180).removeprefix("Dashboard: ")
        assert not api.endswith(f":{api_port}") and not dashboard.endswith(f":{dashboard_port}/")
        assert requests.get(api + "/", timeout=30).json()["data"]["service"] == "jobtask-widgets reference server"
        assert requests.get(dashboard + "api/kernelspecs", timeout=30, allow_redirects=False).status_code < 500
    assert run.interrupt() == 0


def test_import_stays_light() -> None:
    heavy = ("fastapi", "uvicorn", "rasterio", "requests", "numpy")
    code = f"import sys, jobtask_widgets; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_readme_quickstart_runs_against_the_served_sample(api: Api, tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    check = """
import geopandas, os
assert isinstance(info, dict) and info["status"] == "SUCCEEDED"
assert results_json["type"] == "FeatureCollection"
assert isinstance(frame, geopandas.GeoDataFrame) and len(frame) == len(results_json["features"])
assert all(isinstance(p, str) and os.path.isfile(p) for p in results) and len(results) == 2
assert [os.path.basename(p) for p in quicklooks] == ["quicklook_preview.png"]
print("quickstart ok")
"""
    env = {**os.environ, "JOBTASK_API_URL": api.url}  # the demo's default URL, here the test server's
    result = subprocess.run([sys.executable, "-c", block + check], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "quickstart ok" in result.stdout
    assert (tmp_path / "project_7b2ee4c5-1c0e-4a7a-9d54-1f1a6c9f2e31").is_dir()


def test_sigterm_stops_the_demo_its_voila_and_kernels_and_removes_the_folder(running: list[Running]) -> None:
    from jobtask_widgets.demo import descendants

    run = Running(["demo", "--no-browser", "--port", "0", "--api-port", "0"])
    running.append(run)
    api = run.wait_for("API: ").removeprefix("API: ")
    store = Path(run.wait_for("Sample store: ").removeprefix("Sample store: "))
    dashboard = run.wait_for("Dashboard: ", timeout=180).removeprefix("Dashboard: ")
    page = requests.get(dashboard, timeout=120)  # renders the dashboard: Voila starts a kernel for it
    assert page.status_code == 200 and "jupyter-widgets" in page.text
    tree = descendants(run.proc.pid)
    assert len(tree) >= 2  # Voila and the dashboard's kernel
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0
    assert not store.parent.exists()
    assert [pid for pid in tree if Path(f"/proc/{pid}").exists()] == []
    for url in (api, dashboard):
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "doctor", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def test_doctor_passes_in_this_environment_and_names_each_missing_piece(tmp_path: Path, api: Api) -> None:
    ready = doctor(JOBTASK_API_URL=api.url)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert ready.stdout.splitlines()[-1].endswith("checks passed: ready")
    assert f"ok    API: {api.url} answers" in ready.stdout
    assert "ok    jupyter-leaflet nbextension" in ready.stdout and "ok    GDAL drivers: GTiff and COG" in ready.stdout

    # a copy of this environment's front-end files with jupyter-leaflet's nbextension removed
    source = Path(sys.prefix) / "share" / "jupyter"
    shutil.copytree(source, tmp_path / "share" / "jupyter", ignore=shutil.ignore_patterns("*.map"))
    (tmp_path / "share" / "jupyter" / "nbextensions" / "jupyter-leaflet" / "index.js").unlink()
    (tmp_path / "file").write_text("not a folder")
    broken = doctor(
        "--prefix", str(tmp_path),
        JOBTASK_API_URL=f"http://127.0.0.1:{free_port()}", GDAL_SKIP="COG",
        JOBTASK_WIDGETS_CACHE=str(tmp_path / "file" / "cache"),
    )  # fmt: skip
    assert broken.returncode == 1
    lines = broken.stdout.splitlines()
    assert "FAIL  jupyter-leaflet nbextension: missing" in broken.stdout
    assert "ok    jupyter-leaflet lab extension" in broken.stdout and "ok    anywidget nbextension" in broken.stdout
    assert "FAIL  GDAL drivers: COG missing" in lines
    assert any(line.startswith("FAIL  overview cache:") and "is not writable" in line for line in lines)
    assert any(line.startswith("FAIL  API: http://127.0.0.1:") and "did not answer" in line for line in lines)
    assert lines[-1] == "4 of 8 checks passed"
