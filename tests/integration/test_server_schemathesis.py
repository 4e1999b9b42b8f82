"""schemathesis against the real server's ``/openapi.json``, over real HTTP: every documented operation,
with a bounded number of generated requests each (path ids, queries, forms, headers), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from jobtask_widgets.sample import Sample
from tests.helpers import start_api, token_for

EXAMPLES = 20  # generated requests per operation


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from jobtask_widgets.sample import write_sample

    sample: Sample = write_sample(tmp_path_factory.mktemp("schemathesis") / "store")
    server, api = start_api(sample.root, tmp_path_factory.mktemp("schemathesis-cache"))
    try:
        yield api.url, token_for(api.url, sample)
    finally:
        server.stop()


def test_no_generated_request_gets_a_server_error(served: tuple[str, str]) -> None:
    url, token = served
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every documented operation is exercised
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            response = case.call()
            calls.append(response.status_code)
            assert response.status_code < 500, (
                case.method, case.formatted_path, response.status_code, response.text[:500]
            )  # fmt: skip

        check()
    assert len(calls) >= len(operations) and any(code < 300 for code in calls) and any(code >= 400 for code in calls)
