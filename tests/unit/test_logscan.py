"""The session-wide log scan (tests/logscan.py) finds secrets in log lines and leaves clean ones alone."""

from __future__ import annotations

import logging

import pytest

from jobtask_widgets.sample import SAMPLE_API_KEY, SAMPLE_USERS
from jobtask_widgets.server.auth import Signer
from jobtask_widgets.server.logs import redact
from tests import logscan
from tests.helpers import SECRET

TOKEN = Signer("k").issue_token("project:p", "p", 600)
SIGNATURE = "ab" * 32
PASSWORD = next(iter(SAMPLE_USERS.values()))

LEAKS = {
    "a remembered token": (f"INFO [jobtask_widgets.server] renewed {TOKEN}", "access token"),
    "a signature": (f'127.0.0.1 signed "GET /archives/p/j/t/output.tar.gz?expires=1&signature={SIGNATURE}"', "secret"),
    "a token in a query": ("GET /x?access_token=abc123def&keep=1 HTTP/1.1", "secret parameter"),
    "a password in a query": (f"GET /x?password={PASSWORD}", "password"),
    "a password in JSON": ('{"username": "u", "password": "hunter22"}', "secret field"),
    "the sample API key": (f"client credentials {SAMPLE_API_KEY} refused", "API key"),
    "an api_key parameter": ("settings api_key=k3y-v4lue", "secret parameter"),
    "the test server secret": (f"secret is {SECRET}", "server secret"),
    "an Authorization header": ("headers: {'Authorization': 'Bearer abcdefghijklmnopqrstuvwxyz'}", "authorization"),
    "a bearer token in text": ("sent Bearer abcdefghijklmnop0123456789 to the server", "bearer token"),
    "HTTP Basic": ("Authorization: Basic cHJvamVjdDprZXk=", "authorization header"),
    "a token shaped like the server's": (f"got {Signer('other').issue_token('user:x', None, 60)}", "access token"),
}
CLEAN = [
    '127.0.0.1 signed "GET /archives/p/j/t/output.tar.gz?expires=1700000000&signature=REDACTED HTTP/1.1" 206',
    "GET /x?access_token=REDACTED&password=REDACTED&keep=1",
    redact(f"/x?signature={SIGNATURE}&api_key=k&token=t"),
    '{"time": "2024-01-01T00:00:00.000+00:00", "level": "INFO", "message": "Uvicorn running on http://127.0.0.1:5"}',
    "WARNING [jobtask_widgets.server] the credentials file /tmp/c.json can be read by other users (mode 644)",
    "Accepts: client_credentials with the project ids p and their API keys (/tmp/credentials.json)",
    '  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:5/projects/p/jobs/j/tasks/',
    "a Bearer token is refused: the access token has expired; ask /oauth/token for a new one",
    '127.0.0.1 user:analyst "GET /projects/p/outputs/data-json/ HTTP/1.1" 200 1234 B 3.1 ms',
    "",
]


@pytest.fixture
def secrets() -> dict[str, str]:
    return {TOKEN: "access token", SAMPLE_API_KEY: "API key", SECRET: "server secret", PASSWORD: "password"}


@pytest.mark.parametrize("name", LEAKS)
def test_a_line_with_a_secret_is_found_and_reported_without_it(name: str, secrets: dict[str, str]) -> None:
    line, kind = LEAKS[name]
    ((finding, clean),) = logscan.scan([line], "src", secrets)
    assert kind in finding.kind and finding.source == "src" and finding.number == 1
    for secret in [*secrets, SIGNATURE, "abc123def", "hunter22", "k3y-v4lue", "abcdefghijklmnop", "cHJvamVjdDprZXk="]:
        assert secret not in finding.snippet and secret not in clean and secret not in str(finding)
    assert "redacted>" in finding.snippet


def test_clean_lines_are_not_flagged(secrets: dict[str, str]) -> None:
    assert list(logscan.scan(CLEAN, "src", secrets)) == []


def test_findings_are_numbered_by_line_among_clean_ones(secrets: dict[str, str]) -> None:
    lines = [CLEAN[0], LEAKS["a signature"][0], CLEAN[1], LEAKS["the sample API key"][0]]
    assert [finding.number for finding, _ in logscan.scan(lines, "src", secrets)] == [2, 4]


def test_the_session_log_hears_a_logger_that_does_not_propagate_with_arguments_and_exceptions() -> None:
    log = logging.getLogger("tests.logscan.silent")
    log.propagate, log.disabled = False, False
    heard = logscan.SessionLog()
    uninstall = heard.install()
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            log.error("failed for %s", "someone", exc_info=True)
    finally:
        uninstall()
        logscan._outputs.remove(heard.output)
    text = "\n".join(heard.output.lines)
    assert "failed for someone" in text and "ValueError: boom" in text and "Traceback" in text


def test_only_the_demo_banner_may_show_the_documented_sample_key() -> None:
    banner = f"Credentials: project id p, API key {SAMPLE_API_KEY}"
    assert logscan.allowed("jobtask-widgets demo --no-browser (pid 1)", banner)
    assert not logscan.allowed("jobtask-widgets serve /x (pid 1)", banner)
    assert not logscan.allowed("jobtask-widgets demo (pid 1)", f"Credentials: project id p, API key {TOKEN}")
    assert not logscan.allowed("jobtask-widgets demo (pid 1)", f"API key {SAMPLE_API_KEY}")
