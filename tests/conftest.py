"""Shared fixtures: a sample store on disk and the reference server over it on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from jobtask_widgets.sample import Sample, write_sample
from jobtask_widgets.server import BackgroundServer, create_app
from tests.proxy import FaultProxy

SECRET = "test-secret-shared-by-the-tests"


@dataclass
class Api:
    """A live server and a logged-in session for talking to it over real HTTP."""

    url: str
    sample: Sample
    session: requests.Session
    cache_dir: Path

    @property
    def job(self) -> str:
        return f"{self.url}/projects/{self.sample.project_id}/jobs/{self.sample.job_id}"

    def task(self, task_id: str | None = None) -> str:
        return f"{self.job}/tasks/{task_id or self.sample.task_ids[0]}"

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url if url.startswith("http") else self.url + url, timeout=30, **kwargs)


def token_for(url: str, sample: Sample) -> str:
    answer = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(sample.project_id, sample.project_api_key),
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def start_api(root: Path, cache_dir: Path, **options: Any) -> tuple[BackgroundServer, Api]:
    """Start a server over ``root``; the caller stops it."""
    sample = Sample(root)
    server = BackgroundServer(create_app(root, secret=SECRET, cache_dir=cache_dir, **options)).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token_for(server.url, sample)}"
    return server, Api(server.url, sample, session, cache_dir)


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """The sample store, written once for the session; tests must not change it."""
    return write_sample(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def api(sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The reference server over the session's sample store."""
    server, api = start_api(sample.root, tmp_path_factory.mktemp("cache"))
    yield api
    server.stop()


@pytest.fixture
def own_sample(tmp_path: Path) -> Sample:
    """A sample store of the test's own, free to change."""
    return write_sample(tmp_path / "store")


@pytest.fixture
def own_api(own_sample: Sample, tmp_path: Path) -> Iterator[Api]:
    """A server of the test's own over its own sample store."""
    server, api = start_api(own_sample.root, tmp_path / "cache")
    yield api
    server.stop()


def error_of(answer: requests.Response) -> dict[str, Any]:
    """The error of an envelope answer, checking the envelope's shape."""
    body = answer.json()
    assert set(body) == {"data", "error"}, body
    assert body["data"] is None
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]


@pytest.fixture
def proxy(api: Api) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's server."""
    proxy = FaultProxy(api.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture(autouse=True)
def _no_default_login(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts logged out, with no JOBTASK_* variables."""
    from jobtask_widgets import client

    for var in ("JOBTASK_API_URL", "JOBTASK_PROJECT_ID", "JOBTASK_PROJECT_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(client, "_default", None)
    yield


def login(url: str, sample: Sample, **kwargs: Any) -> Any:
    """``authenticate`` against ``url`` with the sample's project key."""
    import jobtask_widgets as jw

    return jw.authenticate(api_url=url, project_id=sample.project_id, project_api_key=sample.project_api_key, **kwargs)
