"""authenticate, initialize_jobtask, list_jobtasks, JobTask metadata and the session's resilience,
against the real server (through a fault-injecting proxy where the network must misbehave)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import geopandas as gpd
import pytest
from geopandas.testing import assert_geodataframe_equal

import jobtask_widgets as jw
from jobtask_widgets.client import Client, resolve_settings
from jobtask_widgets.credentials import Credentials, hash_secret
from jobtask_widgets.errors import APIError, AuthenticationError, NotFoundError
from jobtask_widgets.sample import SAMPLE_USERS, Sample
from jobtask_widgets.server import BackgroundServer, create_app
from tests.helpers import Api, login
from tests.proxy import FaultProxy


def test_authenticate_and_initialize_a_jobtask(api: Api, sample: Sample) -> None:
    client = login(api.url, sample)
    assert client.project_id == sample.project_id
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    assert isinstance(task, jw.JobTask)
    on_disk = json.loads((sample.task_dir(sample.task_ids[0]) / "info.json").read_text())
    assert task.info == on_disk
    assert task.results is None and task.quicklooks is None
    text = repr(task)
    for value in (on_disk["name"], on_disk["status"], on_disk["block"]["name"], sample.task_ids[0]):
        assert value in text


def test_list_jobtasks_gives_every_task_with_its_info(api: Api, sample: Sample) -> None:
    login(api.url, sample)
    tasks = jw.list_jobtasks(sample.job_id)
    assert [t.jobtask_id for t in tasks] == sorted(sample.task_ids)
    assert all(t.info["status"] == "SUCCEEDED" for t in tasks)
    assert jw.list_jobtasks(sample.job_id, project_id=sample.project_id)[0].project_id == sample.project_id


def test_info_is_fetched_once_and_refresh_info_fetches_again(proxy: FaultProxy, sample: Sample) -> None:
    login(proxy.url, sample)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    before = len(proxy.requests_to("/tasks/", "GET"))
    assert task.info["id"] == task.info["id"] == sample.task_ids[0]
    assert len(proxy.requests_to("/tasks/", "GET")) == before
    task.refresh_info()
    assert len(proxy.requests_to("/tasks/", "GET")) == before + 1


def test_password_grant_needs_a_project_id(api: Api, sample: Sample) -> None:
    (name, password), = SAMPLE_USERS.items()  # fmt: skip
    client = jw.authenticate(api_url=api.url, username=name, password=password)
    assert client.project_id is None
    with pytest.raises(ValueError, match="project_id is required"):
        jw.initialize_jobtask(sample.task_ids[0], sample.job_id)
    task = jw.initialize_jobtask(sample.task_ids[0], sample.job_id, project_id=sample.project_id)
    assert task.info["id"] == sample.task_ids[0]


def test_bad_credentials_raise_at_once(api: Api, sample: Sample) -> None:
    with pytest.raises(AuthenticationError, match="project id or API key is wrong"):
        jw.authenticate(api_url=api.url, project_id=sample.project_id, project_api_key="wrong")
    with pytest.raises(AuthenticationError, match="username or password is wrong"):
        jw.authenticate(api_url=api.url, username="analyst", password="wrong")
    with pytest.raises(AuthenticationError, match=r"call jobtask_widgets\.authenticate"):
        jw.initialize_jobtask(sample.task_ids[0], sample.job_id)


def test_unknown_ids_raise_not_found_naming_them(api: Api, sample: Sample) -> None:
    login(api.url, sample)
    with pytest.raises(NotFoundError, match="unknown job task 'no-such-task'") as info:
        jw.initialize_jobtask("no-such-task", sample.job_id)
    assert info.value.status == 404
    with pytest.raises(NotFoundError, match="unknown job 'no-such-job'") as info:
        jw.initialize_jobtask(sample.task_ids[0], "no-such-job")
    assert info.value.url.endswith("/jobs/no-such-job/tasks/")
    with pytest.raises(NotFoundError, match="unknown project"):
        jw.list_jobtasks(sample.job_id, project_id="other-project")


def test_settings_come_from_arguments_then_cfg_file_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"project_id": "from-file", "project_api_key": "file-key", "api_url": "http://file:1/"}))
    monkeypatch.setenv("JOBTASK_API_URL", "http://env:2")
    monkeypatch.setenv("JOBTASK_PROJECT_ID", "from-env")
    monkeypatch.setenv("JOBTASK_PROJECT_API_KEY", "env-key")
    s = resolve_settings(project_id="from-arg", cfg_file=cfg)
    assert (s.api_url, s.project_id, s.project_api_key) == ("http://file:1", "from-arg", "file-key")
    s = resolve_settings()
    assert (s.api_url, s.project_id, s.project_api_key) == ("http://env:2", "from-env", "env-key")
    monkeypatch.delenv("JOBTASK_API_URL")
    assert resolve_settings().api_url == "http://127.0.0.1:8042"
    monkeypatch.delenv("JOBTASK_PROJECT_API_KEY")
    with pytest.raises(ValueError, match="no credentials: give project_id and project_api_key"):
        resolve_settings()
    with pytest.raises(ValueError, match="does not exist"):
        resolve_settings(cfg_file=tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ValueError, match="holds a list, not a JSON object"):
        resolve_settings(cfg_file=tmp_path / "bad.json")
    with pytest.raises(ValueError, match="without password"):
        resolve_settings(username="ana")


def test_the_environment_alone_logs_in(api: Api, sample: Sample, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBTASK_API_URL", api.url)
    monkeypatch.setenv("JOBTASK_PROJECT_ID", sample.project_id)
    monkeypatch.setenv("JOBTASK_PROJECT_API_KEY", sample.project_api_key)
    assert jw.initialize_jobtask(sample.task_ids[1], sample.job_id).info["id"] == sample.task_ids[1]


def test_the_token_is_renewed_before_expiry_and_once_on_a_401(proxy: FaultProxy, sample: Sample) -> None:
    client = login(proxy.url, sample)
    client._token_expires = time.time() + 5  # inside the renewal margin
    client.list_tasks(sample.project_id, sample.job_id)
    assert client._token_expires > time.time() + 3000  # a new token, from a new grant
    assert len(proxy.requests_to("/oauth/token")) == 2
    assert not [s for s in proxy.seen if s.status == 401]
    proxy.add(path="/tasks/", status=401)  # the server forgets the token once
    assert len(client.list_tasks(sample.project_id, sample.job_id)) == len(sample.task_ids)
    assert len(proxy.requests_to("/oauth/token")) == 3
    proxy.add(path="/tasks/", status=401, times=2)  # refused even after renewal
    with pytest.raises(AuthenticationError, match="refused the token"):
        client.list_tasks(sample.project_id, sample.job_id)


def test_503_and_429_bursts_are_retried_honouring_retry_after(proxy: FaultProxy, sample: Sample) -> None:
    login(proxy.url, sample)
    proxy.add(path="/tasks/", status=503, times=3)
    tasks = jw.list_jobtasks(sample.job_id)
    assert len(tasks) == len(sample.task_ids)
    assert [s.status for s in proxy.requests_to("/tasks/")] == [503, 503, 503, 200]
    proxy.add(path="/data-json/", status=429, times=2, headers={"Retry-After": "1"})
    data = tasks[0].get_results_json()
    assert data["type"] == "FeatureCollection"
    seen = proxy.requests_to("/data-json/")
    assert [s.status for s in seen] == [429, 429, 200]
    assert seen[1].at - seen[0].at >= 0.9  # waited as Retry-After said
    assert seen[2].at - seen[1].at >= 0.9


def test_retries_run_out_with_a_clear_error(proxy: FaultProxy, sample: Sample) -> None:
    client = Client(resolve_settings(api_url=proxy.url, project_id=sample.project_id,
                                     project_api_key=sample.project_api_key), retries=2, backoff=0.01)  # fmt: skip
    proxy.add(path="/tasks/", status=503, times=10)
    with pytest.raises(APIError) as info:
        client.list_tasks(sample.project_id, sample.job_id)
    assert info.value.status == 503
    assert "/tasks/" in info.value.url
    assert "injected 503" in str(info.value)
    assert len(proxy.requests_to("/tasks/")) == 3  # the call and 2 retries


def test_an_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nobody listens there
    with pytest.raises(APIError, match="cannot reach the job-task API") as info:
        Client(resolve_settings(api_url=f"http://127.0.0.1:{port}", project_id="p", project_api_key="k"),
               retries=1, backoff=0.01)  # fmt: skip
    assert info.value.status is None
    assert f"127.0.0.1:{port}" in str(info.value)


def test_results_json_as_dict_and_as_the_same_geodataframe_as_from_features(api: Api, sample: Sample) -> None:
    login(api.url, sample)
    for task_id in sample.task_ids:
        task = jw.initialize_jobtask(task_id, sample.job_id)
        raw = json.loads((sample.task_dir(task_id) / "output" / "data.json").read_text())
        assert task.get_results_json() == raw
        frame = task.get_results_json(as_dataframe=True)
        assert isinstance(frame, gpd.GeoDataFrame)
        assert frame.crs.to_epsg() == 4326
        assert_geodataframe_equal(frame, gpd.GeoDataFrame.from_features(raw, crs="EPSG:4326"), check_like=True)


@pytest.mark.parametrize("key", ["key+with+plus", "100%real", "a b&c=d:e/f"])
def test_api_keys_with_form_characters_log_in(own_sample: Sample, tmp_path: Path, key: str) -> None:
    Credentials({own_sample.project_id: hash_secret(key)}).save(own_sample.root / "credentials.json")
    with BackgroundServer(create_app(own_sample.root, cache_dir=tmp_path / "cache")) as server:
        client = Client(resolve_settings(api_url=server.url, project_id=own_sample.project_id, project_api_key=key))
        assert client.list_tasks(own_sample.project_id, own_sample.job_id)  # logged in with the key as it is
        with pytest.raises(AuthenticationError, match="project id or API key is wrong"):
            Client(resolve_settings(api_url=server.url, project_id=own_sample.project_id, project_api_key=key + "x"))
