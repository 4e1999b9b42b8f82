"""Accounts a team can run: hashed credentials (version 2), users limited to their projects, and
failed logins limited per client address and name; all over real HTTP against the real server."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from jobtask_widgets.credentials import Credentials
from jobtask_widgets.publish import publish
from jobtask_widgets.sample import SAMPLE_API_KEY, SAMPLE_RGB_TASK, Sample
from jobtask_widgets.server.ratelimit import LIMIT
from jobtask_widgets.storelayout import write_private_json
from tests.helpers import COMMAND, Running, start_api

OTHER_PROJECT, OTHER_JOB, OTHER_TASK = "field-team", "survey-2", "plot-1"


def command(root: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args, "--root", str(root)], input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def token(url: str, *, user: str | None = None, password: str = "", project: str = "", key: str = "",
          source: str = "127.0.0.1") -> tuple[int, dict[str, str], dict[str, object]]:  # fmt: skip
    """POST /oauth/token from the loopback address ``source``: status, headers and body."""
    if user is not None:
        body, headers = urlencode({"grant_type": "password", "username": user, "password": password}), {}
    else:
        import base64

        basic = base64.b64encode(f"{project}:{key}".encode()).decode()
        body, headers = "grant_type=client_credentials", {"Authorization": f"Basic {basic}"}
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30, source_address=(source, 0))
    try:
        connection.request("POST", "/oauth/token", body=body,
                           headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, json.loads(answer.read() or b"{}")
    finally:
        connection.close()


@pytest.fixture
def team_store(own_sample: Sample, tmp_path: Path) -> Sample:
    """The sample store with a second project (published), and users: alice (the sample's project),
    bob (the other project), carol (every project)."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "notes.txt").write_text("field notes\n")
    publish(outputs, own_sample.root, project_id=OTHER_PROJECT, job_id=OTHER_JOB, task_id=OTHER_TASK)
    for name, projects in (("alice", own_sample.project_id), ("bob", OTHER_PROJECT), ("carol", "*")):
        done = command(own_sample.root, "user", "add", name, "--projects", projects, stdin=f"{name}-secret-pw\n")
        assert done.returncode == 0, done.stderr
    return own_sample


def test_the_file_holds_no_secret_in_plain_text_and_logins_check_the_hashes(team_store: Sample, tmp_path: Path) -> None:
    added = command(team_store.root, "project", "add", "new-project")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1].strip()
    path = team_store.root / "credentials.json"
    text = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    for secret in (key, SAMPLE_API_KEY, "alice-secret-pw", "bob-secret-pw", "sample-password"):
        assert secret not in text
    stored = json.loads(text)
    assert stored["version"] == 2 and stored["users"]["alice"]["projects"] == [team_store.project_id]
    assert all(p["api_key"].startswith("scrypt$") for p in stored["projects"].values())
    server, api = start_api(team_store.root, tmp_path / "cache")
    try:
        assert token(api.url, project="new-project", key=key)[0] == 200
        assert token(api.url, project="new-project", key=key + "x")[0] == 401
        assert token(api.url, user="alice", password="alice-secret-pw")[0] == 200
        assert token(api.url, user="alice", password="bob-secret-pw")[0] == 401
        assert token(api.url, user="nobody", password="alice-secret-pw")[0] == 401
    finally:
        server.stop()
    removed = command(team_store.root, "user", "remove", "alice")
    assert removed.returncode == 0 and "alice" not in Credentials.load(path).users
    assert command(team_store.root, "user", "remove", "alice").returncode == 2
    assert (
        "unknown project" in command(team_store.root, "user", "add", "dave", "--projects", "nope", stdin="pw\n").stderr
    )


def test_an_unknown_user_costs_the_same_hash_work_as_a_wrong_password(team_store: Sample) -> None:
    login = Credentials.load(team_store.root / "credentials.json")

    def seconds(name: str) -> float:
        started = time.perf_counter()
        for _ in range(5):
            assert not login.check_user(name, "wrong")
        return time.perf_counter() - started

    known, unknown = seconds("alice"), seconds("nobody-at-all")
    assert 0.5 < unknown / known < 2.0  # both run scrypt (a plain lookup would be 1000x faster)


def test_a_version_1_file_still_loads_and_serve_warns_naming_user_add(own_sample: Sample) -> None:
    write_private_json(own_sample.root / "credentials.json", {"project_id": own_sample.project_id,
                       "project_api_key": SAMPLE_API_KEY, "users": {"analyst": "sample-password"}})  # fmt: skip
    run = Running(["serve", str(own_sample.root), "--port", "0"])
    try:
        url = run.wait_for("API: ", timeout=60).removeprefix("API: ")
        assert token(url, project=own_sample.project_id, key=SAMPLE_API_KEY)[0] == 200
        assert token(url, user="analyst", password="sample-password")[0] == 200
        warning = next(line for line in run.lines if line.startswith("warning:"))
        assert "plain text (version 1)" in warning and "jobtask-widgets user add NAME" in warning
    finally:
        run.stop()


def test_a_user_opens_only_their_projects_and_a_project_key_only_its_own(team_store: Sample, tmp_path: Path) -> None:
    server, api = start_api(team_store.root, tmp_path / "cache")
    sample_task = f"{api.url}/projects/{team_store.project_id}/jobs/{team_store.job_id}/tasks/{SAMPLE_RGB_TASK}"
    other_task = f"{api.url}/projects/{OTHER_PROJECT}/jobs/{OTHER_JOB}/tasks/{OTHER_TASK}"

    def get(url: str, access: str) -> int:
        return requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=30).status_code

    try:
        logins = {
            name: token(api.url, user=name, password=f"{name}-secret-pw")[2] for name in ("alice", "bob", "carol")
        }
        access = {name: str(body["access_token"]) for name, body in logins.items()}
        for path in ("/downloads/results/", "/outputs/files/", "/outputs/data-json/", "/stac/"):
            assert get(sample_task + path, access["alice"]) == 200, path
            assert get(other_task + path, access["alice"]) == 404, path  # told it does not exist
            assert get(sample_task + path, access["bob"]) == 404, path
            assert get(other_task + path, access["carol"]) == 200, path
        files = requests.get(other_task + "/outputs/files/", headers={"Authorization": f"Bearer {access['bob']}"},
                             timeout=30).json()["data"]  # fmt: skip
        notes = next(f for f in files if f["path"].endswith("notes.txt"))
        assert requests.get(notes["url"], timeout=30).content == b"field notes\n"  # bob's own file, signed
        assert get(f"{api.url}/projects/{OTHER_PROJECT}/jobs/{OTHER_JOB}/tasks/", access["alice"]) == 404
        project_token = str(token(api.url, project=team_store.project_id, key=SAMPLE_API_KEY)[2]["access_token"])
        assert get(sample_task + "/stac/", project_token) == 200 and get(other_task + "/stac/", project_token) == 404
    finally:
        server.stop()


def test_failed_logins_are_limited_per_address_and_name_and_others_go_on(team_store: Sample, tmp_path: Path) -> None:
    window = 3.0
    server, api = start_api(team_store.root, tmp_path / "cache", login_window=window)
    try:
        started = time.monotonic()
        for _ in range(LIMIT):
            assert token(api.url, user="alice", password="wrong")[0] == 401
        status, headers, body = token(api.url, user="alice", password="alice-secret-pw")  # right, but too late
        assert status == 429 and body["error"]["code"] == "TOO_MANY_REQUESTS", body  # type: ignore[index]
        assert 1 <= int(headers["retry-after"]) <= window and "try again in" in body["error"]["message"]  # type: ignore[index]
        assert token(api.url, user="bob", password="bob-secret-pw", source="127.0.0.2")[0] == 200  # another client
        assert token(api.url, user="alice", password="alice-secret-pw", source="127.0.0.3")[0] == 429  # her name
        assert token(api.url, user="bob", password="bob-secret-pw")[0] == 429  # this address
        time.sleep(max(0.0, window - (time.monotonic() - started)) + 0.2)  # the window passes
        assert token(api.url, user="alice", password="alice-secret-pw")[0] == 200
        for _ in range(LIMIT):  # a project id is limited as a user name is
            assert token(api.url, project=team_store.project_id, key="wrong", source="127.0.0.4")[0] == 401
        assert token(api.url, project=team_store.project_id, key=SAMPLE_API_KEY, source="127.0.0.5")[0] == 429
    finally:
        server.stop()
