"""The server over object storage: the sample store uploaded to a real S3 API on 127.0.0.1 (moto in
server mode), served from ``s3://bucket/prefix``, and every answer compared with the same store
served from its folder."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest
import rasterio
import requests
from rasterio.windows import Window

from jobtask_widgets.errors import StoreError
from jobtask_widgets.sample import SAMPLE_USERS, Sample, write_sample
from jobtask_widgets.server import BackgroundServer, create_app
from jobtask_widgets.server.errors import StoreUnreachable
from jobtask_widgets.server.objectstore import ObjectStore, open_object_store
from jobtask_widgets.server.store import TaskRef
from jobtask_widgets.server.upload import upload_store
from tests.helpers import SECRET, Api, Running, error_of, token_for
from tests.integration.test_original_client import SCRIPT, up42_python
from tests.s3 import AWS_ENV, S3, moto_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    try:
        with moto_server() as server:
            yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def store_url(s3: S3, sample: Sample) -> str:
    """The session's sample store, uploaded under a prefix of a new bucket."""
    url = f"s3://{s3.bucket()}/team/results"
    done = upload_store(sample.root, url, endpoint_url=s3.endpoint)
    assert done.tasks == len(sample.task_ids)
    return url


def _serve(url: str, s3: S3, sample: Sample, cache: Path, **options: object) -> tuple[BackgroundServer, Api]:
    app = create_app(url, secret=SECRET, cache_dir=cache, endpoint_url=s3.endpoint, **options)  # type: ignore[arg-type]
    server = BackgroundServer(app).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token_for(server.url, sample)}"
    return server, Api(server.url, sample, session, cache)


@pytest.fixture(scope="module")
def s3_api(store_url: str, s3: S3, sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server, api = _serve(store_url, s3, sample, tmp_path_factory.mktemp("s3cache"))
    yield api
    server.stop()


@pytest.fixture(scope="module")
def redirecting(store_url: str, s3: S3, sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server, api = _serve(store_url, s3, sample, tmp_path_factory.mktemp("s3cache2"), redirect_downloads=True)
    yield api
    server.stop()


def _same_without_signatures(value: object) -> object:
    """``value`` with every URL's host and query left out (signed URLs differ by server and time)."""
    if isinstance(value, dict):
        return {k: _same_without_signatures(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_without_signatures(v) for v in value]
    if isinstance(value, str) and value.startswith("http://127.0.0.1:"):
        return value.split("/", 3)[-1].split("?")[0]
    return value


def test_upload_puts_the_layout_in_the_bucket(store_url: str, s3: S3, sample: Sample) -> None:
    store = open_object_store(store_url, endpoint_url=s3.endpoint)
    keys = {str(meta["path"]) for page in obstore.list(store) for meta in page}
    on_disk = {
        p.relative_to(sample.root).as_posix()
        for p in sample.root.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(sample.root).parts
    }
    assert keys == on_disk
    assert "credentials.json" in keys
    for task in sample.task_ids:
        key = f"projects/{sample.project_id}/jobs/{sample.job_id}/tasks/{task}/info.json"
        assert bytes(obstore.get(store, key).bytes()) == (sample.task_dir(task) / "info.json").read_bytes()


def test_every_json_answer_equals_the_folders(s3_api: Api, api: Api, sample: Sample) -> None:
    paths = [
        "/",
        "/users/me",
        f"{s3_api.job.removeprefix(s3_api.url)}/tasks/",
        f"{s3_api.job.removeprefix(s3_api.url)}/stac/",
    ]
    for task in sample.task_ids:
        base = s3_api.task(task).removeprefix(s3_api.url)
        paths += [f"{base}/outputs/data-json/", f"{base}/outputs/quicklooks/", f"{base}/outputs/files/"]
        paths += [f"{base}/stac/"]
    for path in paths:
        ours, folder = s3_api.get(path), api.get(path)
        assert ours.status_code == folder.status_code == 200, (path, ours.text[:300])
        assert ours.headers["content-type"] == folder.headers["content-type"], path
        if path.endswith("/stac/"):  # the same Items, but for datetimes taken from the store's own times
            a, b = ours.json(), folder.json()
            for item in a.get("features", [a]) + b.get("features", [b]):
                for when in ("created", "updated", "jobtask:hrefs_expire"):  # the second each answer was made
                    item["properties"].pop(when, None)
                for asset in item["assets"].values():
                    asset.pop("created", None), asset.pop("updated", None)
            assert _same_without_signatures(a) == _same_without_signatures(b), path
        elif path.endswith("/files/"):
            assert _same_without_signatures(ours.json()) == _same_without_signatures(folder.json()), path
            assert len(ours.json()["data"]) >= 2
        else:
            assert ours.json() == folder.json(), path


def test_quicklooks_and_unknown_names(s3_api: Api, sample: Sample) -> None:
    for task in sample.task_ids:
        names = s3_api.get(f"{s3_api.task(task)}/outputs/quicklooks/").json()["data"]
        assert names == sorted(p.name for p in (sample.task_dir(task) / "quicklooks").iterdir())
        for name in names:
            image = s3_api.get(f"{s3_api.task(task)}/outputs/quicklooks/{name}")
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            assert image.content == (sample.task_dir(task) / "quicklooks" / name).read_bytes()
        item = s3_api.get(f"{s3_api.task(task)}/stac/").json()
        signed = [a for a in item["assets"].values() if "/quicklooks/" in a["href"] and "signature=" in a["href"]]
        assert signed, item["assets"]
        for asset in signed:  # the Item's thumbnails and overviews: signed quicklook URLs, no token
            image = requests.get(asset["href"], timeout=60)
            name = asset["href"].split("?")[0].rsplit("/", 1)[-1]
            assert (
                image.status_code == 200 and image.content == (sample.task_dir(task) / "quicklooks" / name).read_bytes()
            )
    for path in ("/tasks/no-such-task/", "/tasks/no-such-task/outputs/data-json/", "/tasks/..%2Finfo.json/"):
        answer = s3_api.get(s3_api.job + path)
        assert answer.status_code == 404, path
        error_of(answer)
    missing = s3_api.get(f"{s3_api.task()}/outputs/quicklooks/missing.png")
    assert missing.status_code == 404 and "missing.png" in error_of(missing)["message"]
    unknown_job = s3_api.get(f"{s3_api.url}/projects/{sample.project_id}/jobs/nojob/tasks/")
    assert unknown_job.status_code == 404 and "nojob" in error_of(unknown_job)["message"]


def _members(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_the_archive_is_built_from_the_objects_and_served_with_ranges(s3_api: Api, sample: Sample) -> None:
    task = sample.task_ids[1]
    url = s3_api.get(f"{s3_api.task(task)}/downloads/results/").json()["data"]["url"]
    whole = requests.get(url, timeout=120)
    assert whole.status_code == 200
    output = sample.task_dir(task) / "output"
    expected = {f"output/{p.relative_to(output).as_posix()}": p.read_bytes() for p in output.rglob("*") if p.is_file()}
    assert _members(whole.content) == expected
    digest = hashlib.sha256(whole.content).digest()
    assert whole.headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    part = requests.get(url, headers={"Range": "bytes=1000-1999", "If-Range": whole.headers["etag"]}, timeout=60)
    assert part.status_code == 206 and part.content == whole.content[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(whole.content)}"
    again = requests.get(url, timeout=60)
    assert again.content == whole.content and again.headers["etag"] == whole.headers["etag"]  # built once


def _files(api: Api, task: str) -> dict[str, dict[str, object]]:
    return {f["path"]: f for f in api.get(f"{api.task(task)}/outputs/files/").json()["data"]}


def test_file_urls_are_proxied_with_ranges(s3_api: Api, sample: Sample) -> None:
    task = sample.task_ids[1]
    for path, entry in _files(s3_api, task).items():
        local = (sample.task_dir(task) / "output" / path).read_bytes()
        url = str(entry["url"])
        whole = requests.get(url, timeout=60)
        assert whole.status_code == 200 and whole.content == local, path
        assert entry["sha256"] == hashlib.sha256(local).hexdigest() and entry["size"] == len(local)
        assert whole.headers["accept-ranges"] == "bytes" and whole.headers["x-content-type-options"] == "nosniff"
        last = len(local) - 1
        part = requests.get(url, headers={"Range": f"bytes=10-19,{last - 4}-{last}"}, timeout=60)
        assert part.status_code == 206 and part.headers["content-type"].startswith("multipart/byteranges")
        assert local[10:20] in part.content and local[last - 4 :] in part.content
        head = requests.head(url, timeout=60)
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(local)
        stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another-version"'}, timeout=60)
        assert stale.status_code == 200 and stale.content == local


def test_gdal_reads_a_cog_through_a_proxied_file_url(s3_api: Api, sample: Sample) -> None:
    task = sample.task_ids[1]
    path, entry = next((p, e) for p, e in _files(s3_api, task).items() if p.endswith(".tif"))
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(f"/vsicurl/{entry['url']}") as remote:
        window = Window(100, 200, 64, 32)
        got = remote.read(window=window)
    with rasterio.open(sample.task_dir(task) / "output" / path) as local:
        assert (got == local.read(window=window)).all()


def test_redirect_downloads_sends_file_urls_to_the_stores_presigned_urls(
    redirecting: Api, s3: S3, sample: Sample
) -> None:
    task = sample.task_ids[1]
    files = _files(redirecting, task)
    for path, entry in files.items():
        local = (sample.task_dir(task) / "output" / path).read_bytes()
        answer = requests.get(str(entry["url"]), allow_redirects=False, timeout=60)
        assert answer.status_code == 307, path
        location = answer.headers["location"]
        assert location.startswith(f"{s3.endpoint}/") and "X-Amz-Signature=" in location
        assert requests.get(location, timeout=60).content == local
        part = requests.get(location, headers={"Range": "bytes=5-9"}, timeout=60)
        assert part.status_code == 206 and part.content == local[5:10]
        assert requests.get(str(entry["url"]), timeout=60).content == local  # a client that follows redirects
    # GDAL follows the redirect and reads the COG by ranges from the store itself
    path, entry = next((p, e) for p, e in files.items() if p.endswith(".tif"))
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(f"/vsicurl/{entry['url']}") as remote:
        got = remote.read(1, window=Window(0, 0, 50, 50))
    with rasterio.open(sample.task_dir(task) / "output" / path) as local_src:
        assert (got == local_src.read(1, window=Window(0, 0, 50, 50))).all()
    # an unsigned or unknown file is refused before any redirect
    forged = str(next(iter(files.values()))["url"]).replace("signature=", "signature=00")
    assert requests.get(forged, allow_redirects=False, timeout=60).status_code == 403
    archive = requests.get(
        redirecting.get(f"{redirecting.task(task)}/downloads/results/").json()["data"]["url"], timeout=60
    )
    assert archive.status_code == 200 and archive.content[:2] == b"\x1f\x8b"  # archives are served, not redirected


def test_a_replaced_object_is_another_version(s3: S3, sample: Sample, tmp_path: Path) -> None:
    own = write_sample(tmp_path / "store")
    url = f"s3://{s3.bucket()}/replaced"
    upload_store(own.root, url, endpoint_url=s3.endpoint)
    server, api = _serve(url, s3, own, tmp_path / "cache")
    try:
        task = own.task_ids[0]
        before = _files(api, task)["data.json"]
        body = requests.get(str(before["url"]), timeout=60)
        archive_url = api.get(f"{api.task(task)}/downloads/results/").json()["data"]["url"]
        first = requests.get(archive_url, timeout=60)
        time.sleep(1.1)  # S3 times have whole seconds
        store = open_object_store(url, endpoint_url=s3.endpoint)
        key = f"projects/{own.project_id}/jobs/{own.job_id}/tasks/{task}/output/data.json"
        new = b'{"type": "FeatureCollection", "features": []}'
        obstore.put(store, key, new)
        after = _files(api, task)["data.json"]
        assert after["sha256"] == hashlib.sha256(new).hexdigest() != before["sha256"]
        resumed = requests.get(
            str(after["url"]), headers={"Range": "bytes=0-9", "If-Range": body.headers["etag"]}, timeout=60
        )
        assert resumed.status_code == 200 and resumed.content == new  # the old ETag does not join two versions
        second = requests.get(archive_url, timeout=60)
        assert second.headers["etag"] != first.headers["etag"]
        assert _members(second.content)["output/data.json"] == new
    finally:
        server.stop()


def test_an_unreachable_store_fails_at_start_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StoreUnreachable, match="cannot read the store s3://nowhere/x now"):
        ObjectStore("s3://nowhere/x", endpoint_url="http://127.0.0.1:9").check()
    with pytest.raises(ValueError, match="need a store in object storage"):
        create_app(write_sample(tmp_path / "store").root, redirect_downloads=True)


def test_an_empty_bucket_is_not_a_store(s3: S3) -> None:
    with pytest.raises(StoreError, match="is not a job-task store"):
        create_app(f"s3://{s3.bucket()}/empty", endpoint_url=s3.endpoint)


def test_upload_and_serve_with_workers_as_the_readme_says(s3: S3, tmp_path: Path) -> None:
    own = write_sample(tmp_path / "store")
    url = f"s3://{s3.bucket()}/team"
    upload = subprocess.run(
        [sys.executable, "-m", "jobtask_widgets.cli", "upload", str(own.root), url, "--endpoint-url", s3.endpoint],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert upload.returncode == 0, upload.stderr
    assert f"of 3 tasks to {url}" in upload.stdout and "credentials.json" in upload.stdout
    cache = str(tmp_path / "cache")
    run = Running(["serve", url, "--endpoint-url", s3.endpoint, "--port", "0", "--workers", "2",
                   "--secret", "readme-secret", "--redirect-downloads", "--cache-dir", cache])  # fmt: skip
    try:
        api_url = run.wait_for("API: ").removeprefix("API: ")
        run.wait_for("Press Ctrl-C")
        ((user, password),) = SAMPLE_USERS.items()
        token = requests.post(
            f"{api_url}/oauth/token",
            data={"grant_type": "password", "username": user, "password": password},
            timeout=30,
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        job = f"{api_url}/projects/{own.project_id}/jobs/{own.job_id}"
        for _ in range(6):  # new connections: both workers answer
            tasks = requests.get(f"{job}/tasks/", headers=auth, timeout=30).json()["data"]
            assert sorted(t["id"] for t in tasks) == sorted(own.task_ids)
        files = requests.get(f"{job}/tasks/{own.task_ids[0]}/outputs/files/", headers=auth, timeout=30).json()["data"]
        first = requests.get(files[0]["url"], allow_redirects=False, timeout=30)
        assert first.status_code == 307 and first.headers["location"].startswith(s3.endpoint)
    finally:
        status = run.interrupt()
    assert status == 0
    assert f"API: {api_url}" in run.output()


def test_the_original_client_passes_against_an_s3_store(s3: S3) -> None:
    env = {**os.environ, **AWS_ENV, "SERVER_PYTHON": sys.executable}
    url = f"s3://{s3.bucket()}/original"
    result = subprocess.run(
        [str(up42_python()), str(SCRIPT), "--store-url", url, "--endpoint-url", s3.endpoint],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert not [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert sum(line.startswith("PASS") for line in result.stdout.splitlines()) >= 20
    assert result.stdout.rstrip().endswith("ALL PASS")


def test_upload_copies_only_what_the_folder_serves(s3: S3, tmp_path: Path) -> None:
    own = write_sample(tmp_path / "store")
    first, second = own.task_ids[:2]
    output = own.task_dir(first) / "output"
    (output / "creds.json").symlink_to(own.root / "credentials.json")  # the folder's server never serves these
    (output / "other.json").symlink_to(own.task_dir(second) / "output" / "data.json")
    (output / "copy.json").symlink_to(output / "data.json")  # a link inside the task's output/ is served
    url = f"s3://{s3.bucket()}/linked"
    upload_store(own.root, url, endpoint_url=s3.endpoint)
    store = open_object_store(url, endpoint_url=s3.endpoint)
    keys = {str(meta["path"]) for page in obstore.list(store) for meta in page}
    prefix = f"projects/{own.project_id}/jobs/{own.job_id}/tasks/{first}/output/"
    assert prefix + "copy.json" in keys and prefix + "data.json" in keys
    assert prefix + "creds.json" not in keys and prefix + "other.json" not in keys
    copied = bytes(obstore.get(store, prefix + "copy.json").bytes())
    assert copied == (output / "data.json").read_bytes()


def test_head_of_a_redirected_file_url_is_answered_here(redirecting: Api, sample: Sample) -> None:
    task = sample.task_ids[1]
    path, entry = next(iter(_files(redirecting, task).items()))
    head = requests.head(str(entry["url"]), allow_redirects=False, timeout=60)
    assert head.status_code == 200  # a URL presigned for GET refuses HEAD on a real S3
    assert int(head.headers["content-length"]) == (sample.task_dir(task) / "output" / path).stat().st_size
    assert head.headers["etag"] and head.headers["accept-ranges"] == "bytes"


def _raw_put(s3: S3, url: str, key: str, body: bytes) -> None:
    """Put an object exactly as named (obstore would normalise the key)."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    answer = requests.put(f"{s3.endpoint}/{bucket}/{prefix}/{key}", data=body, timeout=30)
    answer.raise_for_status()


def test_folder_markers_are_no_files_and_a_double_slash_key_is_named(s3: S3, tmp_path: Path) -> None:
    own = write_sample(tmp_path / "store")
    url = f"s3://{s3.bucket()}/markers"
    upload_store(own.root, url, endpoint_url=s3.endpoint)
    task = own.task_ids[0]
    key = f"projects/{own.project_id}/jobs/{own.job_id}/tasks/{task}/output"
    _raw_put(s3, url, f"{key}/scenes/", b"")  # what S3 consoles make for a "folder"
    server, api = _serve(url, s3, own, tmp_path / "cache")
    try:
        paths = set(_files(api, task))
        assert "scenes" not in paths and "data.json" in paths
        archive_url = api.get(f"{api.task(task)}/downloads/results/").json()["data"]["url"]
        archive = requests.get(archive_url, timeout=60)
        assert archive.status_code == 200
        assert set(_members(archive.content)) == {f"output/{p}" for p in paths}
    finally:
        server.stop()
    _raw_put(s3, url, f"{key}/a//b.txt", b"x")
    with pytest.raises(StoreError, match=r"empty path segment \(//\)"):
        ObjectStore(url, endpoint_url=s3.endpoint).check()


def test_an_object_replaced_after_it_was_opened_is_never_read(s3: S3, tmp_path: Path) -> None:
    own = write_sample(tmp_path / "store")
    url = f"s3://{s3.bucket()}/replaced-open"
    upload_store(own.root, url, endpoint_url=s3.endpoint)
    store = ObjectStore(url, endpoint_url=s3.endpoint)
    ref = TaskRef(own.project_id, own.job_id, own.task_ids[0])
    with store.open_output_file(ref, "data.json") as opened:
        assert b"".join(opened.chunks(0, 9)) == (own.task_dir(ref.task_id) / "output" / "data.json").read_bytes()[:10]
        obstore.put(store.store, f"{ref.key}/output/data.json", b"{}")
        assert b"".join(opened.chunks()) == b""  # If-Match on the ETag it was opened with
        assert not opened.unchanged()


def test_a_store_that_goes_away_answers_503_without_its_internals(sample: Sample, tmp_path: Path) -> None:
    with moto_server() as own_s3:
        url = f"s3://{own_s3.bucket()}/going"
        upload_store(sample.root, url, endpoint_url=own_s3.endpoint)
        server, api = _serve(url, own_s3, sample, tmp_path / "cache")
    try:  # moto has stopped: the next reads fail
        answer = api.get(f"{api.task()}/outputs/data-json/")
        assert answer.status_code == 503
        error = error_of(answer)
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert error["message"] == f"cannot read the store {url} now (the server's log says why); ask again later"
        assert own_s3.endpoint not in answer.text
    finally:
        server.stop()
