"""Tasks, data.json, quicklooks, routing and the envelope, over real HTTP."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from jobtask_widgets.sample import Sample
from tests.helpers import Api, error_of


def raw_get(api: Api, path: str, token: bool = True) -> tuple[int, dict]:
    """A GET whose path goes on the wire exactly as written (no dot-segment clean-up)."""
    parts = urlsplit(api.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Authorization": api.session.headers["Authorization"]} if token else {}
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    try:
        return answer.status, json.loads(body)
    except ValueError:
        return answer.status, {"raw": body[:200]}


def test_tasks_are_the_info_json_files_in_the_envelope(api: Api, sample: Sample) -> None:
    answer = api.get(f"{api.job}/tasks/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["error"] is None
    on_disk = [json.loads((sample.task_dir(t) / "info.json").read_text()) for t in sorted(sample.task_ids)]
    assert body["data"] == on_disk
    for task in body["data"]:
        assert {"id", "name", "status", "startedAt", "finishedAt", "block", "blockVersion"} <= set(task)
        assert set(task["block"]) >= {"name", "displayName"}


def test_data_json_is_the_bare_feature_collection(api: Api, sample: Sample) -> None:
    for task in sample.task_ids:
        answer = api.get(f"{api.task(task)}/outputs/data-json/")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json() == json.loads((sample.task_dir(task) / "output" / "data.json").read_text())
        assert answer.json()["type"] == "FeatureCollection"


def test_quicklooks_are_listed_and_served_with_their_media_type(api: Api, sample: Sample) -> None:
    answer = api.get(f"{api.task()}/outputs/quicklooks/")
    assert answer.json() == {"data": ["preview.png"], "error": None}
    image = api.get(f"{api.task()}/outputs/quicklooks/preview.png")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == (sample.task_dir(sample.task_ids[0]) / "quicklooks" / "preview.png").read_bytes()


def test_jpeg_quicklooks_and_a_task_without_quicklooks(own_api: Api, own_sample: Sample) -> None:
    folder = own_sample.task_dir(own_sample.task_ids[1]) / "quicklooks"
    (folder / "scene.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    listed = own_api.get(f"{own_api.task(own_sample.task_ids[1])}/outputs/quicklooks/").json()["data"]
    assert listed == ["preview.png", "scene.jpg"]
    jpeg = own_api.get(f"{own_api.task(own_sample.task_ids[1])}/outputs/quicklooks/scene.jpg")
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert own_api.get(f"{own_api.task(own_sample.task_ids[1])}/outputs/quicklooks/notes.txt").status_code == 404
    for path in (folder / "preview.png", folder / "scene.jpg", folder / "notes.txt"):
        path.unlink()
    folder.rmdir()
    assert own_api.get(f"{own_api.task(own_sample.task_ids[1])}/outputs/quicklooks/").json() == {
        "data": [],
        "error": None,
    }


def test_every_get_accepts_an_empty_json_body(api: Api) -> None:
    """The original client sends {} with Content-Type: application/json on every GET."""
    urls = [
        f"{api.url}/users/me",
        f"{api.job}/tasks/",
        f"{api.task()}/outputs/data-json/",
        f"{api.task()}/downloads/results/",
        f"{api.task()}/outputs/quicklooks/",
        f"{api.task()}/outputs/quicklooks/preview.png",
    ]
    for url in urls:
        answer = api.session.get(url, json={}, timeout=30)
        assert answer.status_code == 200, (url, answer.text)
        assert answer.request.headers["Content-Type"] == "application/json"
        assert answer.request.body == b"{}"
    signed = api.session.get(urls[3], json={}, timeout=30).json()["data"]["url"]
    archive = requests.get(signed, json={}, timeout=30)
    assert archive.status_code == 200
    assert archive.content[:2] == b"\x1f\x8b"


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/projects/nope/jobs/{j}/tasks/", "project"),
        ("/projects/{p}/jobs/nope/tasks/", "job"),
        ("/projects/{p}/jobs/{j}/tasks/nope/outputs/data-json/", "task"),
        ("/projects/{p}/jobs/{j}/tasks/nope/downloads/results/", "task"),
        ("/projects/{p}/jobs/{j}/tasks/nope/outputs/quicklooks/", "task"),
        ("/projects/{p}/jobs/{j}/tasks/{t}/outputs/quicklooks/nope.png", "quicklook"),
        ("/projects/{p}/jobs/{j}/tasks/{t}/outputs/quicklooks/info.json", "quicklook"),
        ("/projects/{p}/jobs/{j}/tasks/-bad-/outputs/data-json/", "task"),
        ("/projects/{p}/jobs/{j}/tasks/{long}/outputs/data-json/", "task"),
    ],
)
def test_unknown_and_malformed_ids_are_404_naming_them(api: Api, sample: Sample, path: str, what: str) -> None:
    path = path.format(p=sample.project_id, j=sample.job_id, t=sample.task_ids[0], long="a" * 129)
    answer = api.get(path)
    assert answer.status_code == 404
    error = error_of(answer)
    assert error["code"] == "NOT_FOUND"
    assert what in error["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/projects/{p}/jobs/{j}/tasks/../../../../credentials.json",
        "/projects/{p}/jobs/{j}/tasks/%2e%2e/%2e%2e/outputs/data-json/",
        "/projects/{p}/jobs/{j}/tasks/{t}/outputs/quicklooks/..%2f..%2finfo.json",
        "/projects/{p}/jobs/{j}/tasks/{t}/outputs/quicklooks/%2e%2e",
        "/projects/{p}/jobs/{j}/tasks/{t}/outputs/quicklooks/%2Fetc%2Fpasswd",
        "/projects/{p}/jobs/{j}/tasks/{t}/outputs/quicklooks//etc/passwd",
        "/projects/%2e%2e/jobs/{j}/tasks/",
        "/projects/..%2F..%2F..%2Fetc/jobs/{j}/tasks/",
        "//etc/passwd",
        "/projects/{p}/jobs/{j}/tasks/{t}/outputs/quicklooks/.%2e%2Finfo.json",
    ],
)
def test_traversal_attempts_read_nothing_outside(api: Api, sample: Sample, path: str) -> None:
    status, body = raw_get(api, path.format(p=sample.project_id, j=sample.job_id, t=sample.task_ids[0]))
    assert status == 404, body
    assert body["error"]["code"] == "NOT_FOUND"
    assert body["data"] is None


def test_symlinks_that_leave_the_root_are_refused(own_api: Api, own_sample: Sample, tmp_path: Path) -> None:
    secret = tmp_path / "outside.png"
    secret.write_bytes(b"\x89PNG secret outside the store")
    task = own_sample.task_dir(own_sample.task_ids[0])
    (task / "quicklooks" / "escape.png").symlink_to(secret)
    (task / "quicklooks" / "inside.png").symlink_to(task / "quicklooks" / "preview.png")
    listed = own_api.get(f"{own_api.task()}/outputs/quicklooks/").json()["data"]
    assert listed == ["inside.png", "preview.png"]
    assert own_api.get(f"{own_api.task()}/outputs/quicklooks/escape.png").status_code == 404
    assert own_api.get(f"{own_api.task()}/outputs/quicklooks/inside.png").status_code == 200
    # a whole quicklooks folder that is a link out of the root
    other = own_sample.task_dir(own_sample.task_ids[1])
    (other / "quicklooks").rename(tmp_path / "moved-out")
    (other / "quicklooks").symlink_to(tmp_path / "moved-out")
    assert own_api.get(f"{own_api.task(own_sample.task_ids[1])}/outputs/quicklooks/").json()["data"] == []
    assert own_api.get(f"{own_api.task(own_sample.task_ids[1])}/outputs/quicklooks/preview.png").status_code == 404


def test_unknown_routes_and_methods_answer_in_the_envelope(api: Api) -> None:
    answer = api.get("/no/such/route")
    assert answer.status_code == 404
    assert error_of(answer) == {"code": "NOT_FOUND", "message": "no such route: GET /no/such/route"}
    answer = api.session.post(f"{api.job}/tasks/", timeout=30)
    assert answer.status_code == 405
    error = error_of(answer)
    assert error["code"] == "METHOD_NOT_ALLOWED"
    assert "allowed: GET" in error["message"]
    answer = requests.get(f"{api.url}/oauth/token", timeout=30)
    assert answer.status_code == 405
    assert error_of(answer)["code"] == "METHOD_NOT_ALLOWED"


def test_the_trailing_slashes_of_the_protocol(api: Api) -> None:
    answer = api.get(f"{api.job}/tasks", allow_redirects=False)
    assert answer.status_code in (307, 308)
    assert answer.headers["location"].endswith("/tasks/")
    assert api.get(f"{api.job}/tasks").status_code == 200  # a redirect-following client still gets there
