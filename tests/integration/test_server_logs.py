"""No secrets in what the server prints or in world-readable files: `serve` run as a user runs it,
every kind of credential used against it, then its whole output scanned."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import stat
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import rasterio
import rasterio.errors
import requests

from jobtask_widgets.httperrors import network_reason
from jobtask_widgets.redaction import redact
from jobtask_widgets.remote import gdal_http_options
from jobtask_widgets.sample import SAMPLE_API_KEY, SAMPLE_USERS, Sample, write_sample
from jobtask_widgets.server.logs import log_config
from tests.helpers import Api, Running, quick_client


def test_redact_replaces_the_values_of_secret_parameters_only() -> None:
    line = '127.0.0.1:5 - "GET /archives/p/j/t/output.tar.gz?expires=1700000000&signature=ab12cd HTTP/1.1" 200'
    assert redact(line) == line.replace("ab12cd", "REDACTED")
    assert redact("/x?access_token=t0k&Password=pw&keep=1") == "/x?access_token=REDACTED&Password=REDACTED&keep=1"
    assert redact("/no/secret?expires=5") == "/no/secret?expires=5"


def test_the_log_of_a_served_session_holds_no_key_password_token_or_signature(
    own_sample: Sample, tmp_path: Path
) -> None:
    run = Running(["serve", str(own_sample.root), "--port", "0", "--log-level", "info", "--cache-dir", str(tmp_path)])
    try:
        url = run.wait_for("API: ").removeprefix("API: ")
        run.wait_for("Press Ctrl-C")
        ((user, password),) = SAMPLE_USERS.items()
        by_key = requests.post(
            f"{url}/oauth/token", data={"grant_type": "client_credentials"},
            auth=(own_sample.project_id, own_sample.project_api_key), timeout=30,
        ).json()["access_token"]  # fmt: skip
        by_password = requests.post(
            f"{url}/oauth/token", data={"grant_type": "password", "username": user, "password": password}, timeout=30
        ).json()["access_token"]
        wrong = requests.post(
            f"{url}/oauth/token", data={"grant_type": "client_credentials"},
            auth=(own_sample.project_id, own_sample.project_api_key + "x"), timeout=30,
        )  # fmt: skip
        assert wrong.status_code == 401
        task = f"{url}/projects/{own_sample.project_id}/jobs/{own_sample.job_id}/tasks/{own_sample.task_ids[0]}"
        auth = {"Authorization": f"Bearer {by_key}"}
        signed = requests.get(f"{task}/downloads/results/", headers=auth, timeout=30).json()["data"]["url"]
        assert requests.get(signed, timeout=60).status_code == 200
        signature = parse_qs(urlsplit(signed).query)["signature"][0]
        # secrets a careless client puts in the query string
        careless = requests.get(f"{task}/outputs/data-json/?access_token={by_password}&password={password}", timeout=30)
        assert careless.status_code == 401
        requests.get(f"{task}/outputs/data-json/", headers={"Authorization": f"Bearer {by_password}"}, timeout=30)
    finally:
        status = run.interrupt()
    output = run.output()
    assert status == 0
    assert "output.tar.gz?expires=" in output and "signature=REDACTED" in output  # the request was logged
    assert "access_token=REDACTED" in output and "password=REDACTED" in output
    for label, secret in {
        "API key": own_sample.project_api_key,
        "password": password,
        "token from the key": by_key,
        "token from the password": by_password,
        "URL signature": signature,
    }.items():
        assert secret not in output, f"the {label} is in the server's output:\n{output}"
    assert f"their API keys ({own_sample.root / 'credentials.json'})" in output  # the banner says where it is


def test_the_sample_credentials_are_written_owner_only_and_a_readable_file_is_warned_about(tmp_path: Path) -> None:
    sample = write_sample(tmp_path / "store")
    credentials = sample.root / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    credentials.chmod(0o644)
    write_sample(sample.root)  # written again over a readable one: owner-only again
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    credentials.chmod(0o644)
    run = Running(["serve", str(sample.root), "--port", "0", "--cache-dir", str(tmp_path / "cache")])
    try:
        warning = run.wait_for("WARNING")
    finally:
        run.interrupt()
    assert f"credentials file {credentials} can be read by other users (mode 644)" in warning
    assert "chmod 600" in warning


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_access_log_has_a_line_per_request_with_who_what_status_bytes_and_time(
    own_sample: Sample, tmp_path: Path, log_format: str
) -> None:
    run = Running(["serve", str(own_sample.root), "--port", "0", "--log-format", log_format, "--cache-dir",
                   str(tmp_path)])  # fmt: skip
    try:
        url = run.wait_for("API: ").removeprefix("API: ")
        run.wait_for("Press Ctrl-C")
        ((user, password),) = SAMPLE_USERS.items()
        by_password = requests.post(
            f"{url}/oauth/token", data={"grant_type": "password", "username": user, "password": password}, timeout=30
        ).json()["access_token"]
        task = f"{url}/projects/{own_sample.project_id}/jobs/{own_sample.job_id}/tasks/{own_sample.task_ids[0]}"
        data = requests.get(
            f"{task}/outputs/data-json/", headers={"Authorization": f"Bearer {by_password}"}, timeout=30
        )
        signed = requests.get(f"{task}/downloads/results/", headers={"Authorization": f"Bearer {by_password}"},
                              timeout=30).json()["data"]["url"]  # fmt: skip
        archive = requests.get(signed, headers={"Range": "bytes=0-99"}, timeout=60)
        assert archive.status_code == 206
        assert requests.get(f"{task}/outputs/data-json/", timeout=30).status_code == 401
    finally:
        assert run.interrupt() == 0
    output = run.output()
    lines = [line for line in output.splitlines() if "/outputs/data-json/" in line or "output.tar.gz" in line]
    assert len(lines) == 3, output
    # a line is written when its answer's last byte is sent: a ranged archive answer may be logged
    # after the next request's, so each is found by what it is, not by its place
    archive_line = next(line for line in lines if "output.tar.gz" in line)
    refused_line = next(line for line in lines if '" 401 ' in line or '"status": 401' in line)
    served_line = next(line for line in lines if line not in (archive_line, refused_line))
    if log_format == "json":
        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert all("time" in r for r in records)  # every line of the log is JSON, the server's own too
        served, signed_get, refused = (json.loads(line) for line in (served_line, archive_line, refused_line))
        assert served["subject"] == f"user:{user}" and served["status"] == 200 and served["method"] == "GET"
        assert served["bytes"] == len(data.content) and served["ms"] >= 0 and served["client"] == "127.0.0.1"
        assert signed_get["subject"] == "signed" and signed_get["status"] == 206 and signed_get["bytes"] == 100
        assert "signature=REDACTED" in signed_get["path"]
        assert refused["subject"] == "-" and refused["status"] == 401
        login = next(r for r in records if r.get("path") == "/oauth/token")
        assert login["subject"] == f"user:{user}" and login["method"] == "POST"
    else:
        assert re.fullmatch(
            rf'127\.0\.0\.1 user:{user} "GET /projects/\S+/outputs/data-json/ HTTP/1\.1" 200 {len(data.content)} B '
            r"[0-9.]+ ms",
            served_line,
        ), served_line
        assert archive_line.startswith('127.0.0.1 signed "GET /') and '" 206 100 B ' in archive_line
        assert " - " in refused_line and '" 401 ' in refused_line
    for secret in (password, by_password, parse_qs(urlsplit(signed).query)["signature"][0], SAMPLE_API_KEY):
        assert secret not in output


def test_the_client_never_logs_or_shows_a_signature_when_the_network_fails(
    api: Api, sample: Sample, caplog: pytest.LogCaptureFixture
) -> None:
    client = quick_client(api.url, sample)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    signed = f"http://127.0.0.1:{port}/archives/p/j/t/output.tar.gz?expires=1&signature=abab1234cdcd"
    presigned = f"http://127.0.0.1:{port}/b/k.tif?X-Amz-Credential=AKIA1234&X-Amz-Signature=feed5678beef"
    for url, secrets in ((signed, ["abab1234cdcd"]), (presigned, ["feed5678beef", "AKIA1234"])):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="urllib3"), pytest.raises(requests.ConnectionError) as info:
            client.session.get(url, timeout=5)
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "Retrying" in logged and "REDACTED" in logged  # urllib3 warned, with the URL redacted
        shown = network_reason(info.value)
        for secret in secrets:
            assert secret not in logged and secret not in shown


def test_redact_knows_the_object_stores_signatures() -> None:
    url = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12&x-amz-security-token=T0K&keep=1"
    assert redact(url) == (
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"
        "&x-amz-security-token=REDACTED&keep=1"
    )


def test_log_level_warning_quiets_the_servers_own_info_lines() -> None:
    assert log_config(level="warning")["loggers"]["jobtask_widgets.server"]["level"] == "WARNING"
    assert log_config(level="info")["loggers"]["jobtask_widgets.server"]["level"] == "INFO"
    assert log_config(level="debug")["loggers"]["jobtask_widgets.server"]["level"] == "INFO"


def test_gdals_http_errors_never_log_a_signature(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as listener:  # a server that is always busy: GDAL retries, and says so
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]

        def busy() -> None:
            with contextlib.suppress(OSError):
                while True:
                    connection = listener.accept()[0]
                    with connection:
                        connection.recv(65536)
                        connection.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=busy, daemon=True).start()
        url = f"http://127.0.0.1:{port}/files/p/j/t/a.tif?expires=1&signature=5ec7e7abcdef"
        with (
            caplog.at_level(logging.DEBUG, logger="rasterio"),
            rasterio.Env(**gdal_http_options()),
            pytest.raises(rasterio.errors.RasterioIOError),
        ):
            rasterio.open(f"/vsicurl/{url}")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"127.0.0.1:{port}" in logged  # GDAL named the URL ("HTTP error code: 503 - http://...")
    assert "5ec7e7abcdef" not in logged and "signature=REDACTED" in logged
