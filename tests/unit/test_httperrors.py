"""One translation of HTTP failures for the client and for downloads: by status table and by cause type."""

from __future__ import annotations

import socket

import pytest
import requests

from jobtask_widgets.client import Client, resolve_settings
from jobtask_widgets.errors import APIError, AuthenticationError, NotFoundError
from jobtask_widgets.httperrors import error_for_exception, error_for_status, network_reason


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once we leave: nobody listens there


def real_failure(url: str) -> requests.RequestException:
    try:
        requests.get(url, timeout=5)
    except requests.RequestException as exc:
        return exc
    raise AssertionError(f"{url} answered")


def test_a_refused_connection_is_named_by_its_cause_not_its_text() -> None:
    exc = real_failure(f"http://127.0.0.1:{free_port()}/")
    assert network_reason(exc) == "connection refused"
    error = error_for_exception(exc, "http://x/", retries=3)
    assert isinstance(error, APIError) and error.status is None
    assert "cannot reach the job-task API: connection refused (after 3 retries)" in str(error)


def test_an_unknown_host_is_named() -> None:
    exc = real_failure("http://no-such-host.invalid/")
    assert network_reason(exc) == "the host name cannot be resolved"


def test_the_clients_own_retry_count_is_in_its_messages() -> None:
    with pytest.raises(APIError, match=r"connection refused \(after 1 retries\)"):
        Client(resolve_settings(api_url=f"http://127.0.0.1:{free_port()}", project_id="p", project_api_key="k"),
               retries=1, backoff=0.01)  # fmt: skip


def answer(status: int, body: bytes, reason: str = "") -> requests.Response:
    response = requests.Response()
    response.status_code, response._content, response.reason = status, body, reason
    return response


def test_statuses_map_through_the_table_with_the_envelopes_message() -> None:
    envelope = b'{"data": null, "error": {"code": "NOT_FOUND", "message": "unknown task \'t\'"}}'
    missing = error_for_status(answer(404, envelope), "http://x/t", retries=2)
    assert isinstance(missing, NotFoundError) and missing.code == "NOT_FOUND" and missing.message == "unknown task 't'"
    refused = error_for_status(answer(401, b"{}", "Unauthorized"), "http://x/", retries=2)
    assert isinstance(refused, AuthenticationError) and "refused the token: Unauthorized" in str(refused)
    busy = error_for_status(answer(503, b"<html>down</html>", "Service Unavailable"), "http://x/", retries=4)
    assert type(busy) is APIError and busy.status == 503
    assert busy.message == "Service Unavailable: <html>down</html> (after 4 retries)"
    assert error_for_status(answer(200, b"{}"), "http://x/", retries=1) is None


def test_a_read_timeout_names_the_retries_a_read_timeout_gets() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(APIError, match=r"timed out waiting for an answer \(after 2 retries\)"):
            Client(resolve_settings(api_url=url, project_id="p", project_api_key="k"), timeout=(2.0, 0.2),
                   retries=5, backoff=0.01)  # fmt: skip
