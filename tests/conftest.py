"""Shared fixtures: a sample store on disk and the reference server over it on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtask_widgets.sample import Sample, write_sample
from tests.helpers import Api, start_api
from tests.logscan import pytest_sessionfinish, pytest_sessionstart, pytest_terminal_summary  # noqa: F401
from tests.proxy import FaultProxy


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
