"""The results archive: signed URLs, the cache, ranges and If-Range, over real HTTP."""

from __future__ import annotations

import io
import logging
import tarfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from jobtask_widgets.sample import Sample
from jobtask_widgets.server.auth import Signer
from tests.helpers import SECRET, Api, error_of, start_api


def signed_url(api: Api, task: str | None = None) -> str:
    answer = api.get(f"{api.task(task)}/downloads/results/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["error"] is None
    return body["data"]["url"]


def tree(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_archive_holds_the_output_files_under_output(api: Api, sample: Sample) -> None:
    url = signed_url(api)
    assert url.startswith(f"{api.url}/archives/{sample.project_id}/{sample.job_id}/{sample.task_ids[0]}/")
    answer = requests.get(url, timeout=60)  # no bearer token needed
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/gzip"
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert answer.headers["etag"].startswith('"')
    assert answer.headers["accept-ranges"] == "bytes"
    output = sample.task_dir(sample.task_ids[0]) / "output"
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as tar:
        members = tar.getmembers()
        assert all(m.isreg() for m in members)
        names = [m.name for m in members]
        assert names == sorted(f"output/{rel}" for rel in tree(output))
        for member in members:
            assert tar.extractfile(member).read() == (output / member.name.removeprefix("output/")).read_bytes()


def test_the_archive_is_built_once_into_the_cache_never_into_the_store(api: Api, sample: Sample) -> None:
    before = tree(sample.root)
    first = requests.get(signed_url(api, sample.task_ids[1]), timeout=60)
    second = requests.get(signed_url(api, sample.task_ids[1]), timeout=60)
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert tree(sample.root) == before
    cached = list(api.cache_dir.rglob("*.tar.gz"))
    assert any(sample.task_ids[1] in p.parts for p in cached)
    assert not list(api.cache_dir.rglob(".building-*"))


class Heard(logging.Handler):
    """Keeps the messages of the records it handles."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_concurrent_first_requests_build_the_archive_once(
    own_api: Api, own_sample: Sample, caplog: pytest.LogCaptureFixture
) -> None:
    # uvicorn's log config may stop the server's logger from propagating: listen on it directly
    server_logger = logging.getLogger("jobtask_widgets.server")
    heard = Heard()
    server_logger.addHandler(heard)
    caplog.set_level(logging.INFO, logger="jobtask_widgets.server")
    url = signed_url(own_api, own_sample.task_ids[1])
    barrier = threading.Barrier(6)
    bodies: list[bytes] = []

    def fetch() -> None:
        barrier.wait()
        bodies.append(requests.get(url, timeout=120).content)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server_logger.removeHandler(heard)
    assert len(bodies) == 6
    assert len(set(bodies)) == 1
    built = [m for m in heard.messages if m.startswith("built the results archive")]
    assert len(built) == 1, built
    assert len(list(own_api.cache_dir.rglob("*.tar.gz"))) == 1


def test_a_changed_output_gets_a_new_archive_and_etag(own_api: Api, own_sample: Sample) -> None:
    first = requests.get(signed_url(own_api), timeout=60)
    (own_sample.task_dir(own_sample.task_ids[0]) / "output" / "extra.geojson").write_text(
        '{"type": "FeatureCollection", "features": []}'
    )
    second = requests.get(signed_url(own_api), timeout=60)
    assert second.headers["etag"] != first.headers["etag"]
    with tarfile.open(fileobj=io.BytesIO(second.content), mode="r:gz") as tar:
        assert "output/extra.geojson" in tar.getnames()
    assert len(list(own_api.cache_dir.rglob("*.tar.gz"))) == 1  # the stale one is gone


def test_ranges_first_middle_suffix_and_open_ended(api: Api) -> None:
    url = signed_url(api)
    whole = requests.get(url, timeout=60).content
    size = len(whole)
    cases = {"bytes=0-99": (0, 99), "bytes=1000-1999": (1000, 1999), "bytes=-500": (size - 500, size - 1),
             f"bytes={size - 10}-": (size - 10, size - 1), f"bytes=5-{size + 100}": (5, size - 1)}  # fmt: skip
    for header, (start, end) in cases.items():
        answer = requests.get(url, headers={"Range": header}, timeout=60)
        assert answer.status_code == 206, header
        assert answer.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert int(answer.headers["content-length"]) == end - start + 1
        assert answer.content == whole[start : end + 1]


def test_an_unsatisfiable_range_is_416_in_the_envelope(api: Api) -> None:
    url = signed_url(api)
    size = int(requests.head(url, timeout=60).headers["content-length"])
    answer = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=60)
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{size}"
    error = error_of(answer)
    assert error["code"] == "RANGE_NOT_SATISFIABLE"
    assert str(size) in error["message"]
    malformed = requests.get(url, headers={"Range": "lines=1-2"}, timeout=60)
    assert malformed.status_code == 400
    assert "bytes=START-END" in error_of(malformed)["message"]


def test_if_range_with_the_current_etag_resumes_and_a_stale_one_gets_everything(api: Api) -> None:
    url = signed_url(api)
    whole = requests.get(url, timeout=60)
    etag = whole.headers["etag"]
    resumed = requests.get(url, headers={"Range": "bytes=100-", "If-Range": etag}, timeout=60)
    assert resumed.status_code == 206
    assert resumed.content == whole.content[100:]
    stale = requests.get(url, headers={"Range": "bytes=100-", "If-Range": '"stale-etag"'}, timeout=60)
    assert stale.status_code == 200
    assert stale.content == whole.content
    assert stale.headers["etag"] == etag
    stale_unsatisfiable = requests.get(url, headers={"Range": "bytes=999999999-", "If-Range": '"old"'}, timeout=60)
    assert stale_unsatisfiable.status_code == 200


def test_head_gives_size_and_etag_without_a_body(api: Api) -> None:
    url = signed_url(api)
    head = requests.head(url, timeout=60)
    get = requests.get(url, timeout=60)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]


def test_forged_expired_unsigned_and_other_archive_urls_are_403(api: Api, sample: Sample) -> None:
    url = signed_url(api)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    other_task = base.replace(sample.task_ids[0], sample.task_ids[1])
    past = int(time.time()) - 5
    expired = Signer(SECRET).sign_archive(sample.project_id, sample.job_id, sample.task_ids[0], past)
    other_secret = Signer("x").sign_archive(sample.project_id, sample.job_id, sample.task_ids[0], past + 600)
    forged_signature = {**query, "signature": "0" * 64}
    longer = {**query, "expires": str(int(query["expires"]) + 3600)}
    cases = {
        "forged": f"{base}?{urlencode(forged_signature)}",
        "extended": f"{base}?{urlencode(longer)}",
        "other archive": f"{other_task}?{parts.query}",
        "unsigned": base,
        "expired": f"{base}?{urlencode(expired)}",
        "other secret": f"{base}?{urlencode(other_secret)}",
    }
    for label, bad in cases.items():
        answer = requests.get(bad, timeout=60)
        assert answer.status_code == 403, label
        error = error_of(answer)
        assert error["code"] == "FORBIDDEN"
        if label == "expired":
            assert "expired" in error["message"]
    assert requests.get(url, timeout=60).status_code == 200


def test_signed_urls_use_the_public_url_behind_a_proxy(own_sample: Sample, tmp_path: Path) -> None:
    server, api = start_api(own_sample.root, tmp_path / "cache", public_url="https://results.example.org/api/")
    try:
        url = signed_url(api)
    finally:
        server.stop()
    assert url.startswith(f"https://results.example.org/api/archives/{own_sample.project_id}/")


def test_url_ttl_sets_the_signed_url_expiry(own_sample: Sample, tmp_path: Path) -> None:
    server, api = start_api(own_sample.root, tmp_path / "cache", url_ttl=42)
    try:
        url = signed_url(api)
    finally:
        server.stop()
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert expires == pytest.approx(time.time() + 42, abs=3)
