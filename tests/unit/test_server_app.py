"""The app's one error table and its one settings dependency, in process."""

from __future__ import annotations

import dataclasses
import json

import pytest
from fastapi.testclient import TestClient

from jobtask_widgets.errors import StoreError
from jobtask_widgets.sample import Sample
from jobtask_widgets.server import create_app
from jobtask_widgets.server.dependencies import ServerSettings, server_settings
from jobtask_widgets.server.errors import NotInStore, OutputChanging, StoreUnreachable
from jobtask_widgets.server.problems import ERROR_STATUS, mapped_error
from jobtask_widgets.server.ranges import MalformedRange, RangeNotSatisfiable


def body(exc: Exception) -> tuple[int, dict[str, object], dict[str, str]]:
    answer = mapped_error(exc)
    return answer.status_code, json.loads(bytes(answer.body)), dict(answer.headers)


def test_the_table_maps_store_and_range_errors_to_statuses() -> None:
    assert body(NotInStore("unknown task 't'"))[:2] == (
        404,
        {"data": None, "error": {"code": "NOT_FOUND", "message": "unknown task 't'"}},
    )
    status, answer, _ = body(StoreError("no info.json"))
    assert (status, answer["error"]) == (
        500,
        {"code": "INTERNAL_SERVER_ERROR", "message": "the store is broken: no info.json"},
    )
    status, answer, _ = body(MalformedRange("lines=1-2"))
    assert (status, answer["error"]["code"]) == (400, "BAD_REQUEST")
    assert "bytes=START-END" in answer["error"]["message"]
    status, answer, headers = body(RangeNotSatisfiable("bytes=50-", 10, "archive"))
    assert (status, answer["error"]["code"], headers["content-range"]) == (416, "RANGE_NOT_SATISFIABLE", "bytes */10")


def test_a_subclass_takes_its_base_entry_and_anything_else_is_500() -> None:
    class Gone(NotInStore):
        pass

    assert body(Gone("unknown quicklook 'x'"))[0] == 404
    status, answer, _ = body(KeyError("x"))
    assert (status, answer["error"]["message"]) == (500, "internal server error (KeyError)")
    assert not issubclass(NotInStore, StoreError)  # a missing thing is no broken store
    assert set(ERROR_STATUS) == {
        NotInStore,
        MalformedRange,
        RangeNotSatisfiable,
        StoreError,
        OutputChanging,
        StoreUnreachable,
    }
    status, answer, _ = body(StoreUnreachable("cannot read the store s3://b/p: connection refused"))
    assert (status, answer["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert answer["error"]["message"] == "cannot read the store s3://b/p: connection refused"


def test_a_store_broken_after_the_start_is_500_in_the_envelope(own_sample: Sample) -> None:
    app = create_app(own_sample.root, secret="s", cache_dir=own_sample.root.parent / "cache")
    client = TestClient(app, raise_server_exceptions=False)
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(own_sample.project_id, own_sample.project_api_key),
    ).json()["access_token"]
    (own_sample.task_dir(own_sample.task_ids[1]) / "info.json").write_text("{oops")
    answer = client.get(
        f"/projects/{own_sample.project_id}/jobs/{own_sample.job_id}/tasks/",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["code"] == "INTERNAL_SERVER_ERROR"
    assert error["message"].startswith("the store is broken: info.json cannot be read")


def test_one_frozen_settings_object_is_read_by_one_dependency(own_sample: Sample) -> None:
    app = create_app(own_sample.root, secret="s", cache_dir=own_sample.root.parent / "cache", url_ttl=60)
    settings = app.state.settings
    assert isinstance(settings, ServerSettings)
    assert (settings.token_ttl, settings.url_ttl, settings.public_url) == (3600, 60, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.url_ttl = 1  # type: ignore[misc]  # the point of the test
    client = TestClient(app)
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(own_sample.project_id, own_sample.project_api_key),
    ).json()["access_token"]
    app.dependency_overrides[server_settings] = lambda: dataclasses.replace(
        settings, public_url="https://proxy.example"
    )
    url = client.get(
        f"/projects/{own_sample.project_id}/jobs/{own_sample.job_id}/tasks/{own_sample.task_ids[0]}/downloads/results/",
        headers={"Authorization": f"Bearer {token}"},
    ).json()["data"]["url"]
    assert url.startswith("https://proxy.example/archives/")
