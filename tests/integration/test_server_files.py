"""Every result file at a signed URL: the list, HEAD, GET, ranges, If-Range, refusals and GDAL reading in place."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import numpy as np
import rasterio
import requests
from rasterio.windows import Window

from jobtask_widgets.sample import SAMPLE_MULTIBAND_TASK, SAMPLE_NDVI_TASK, Sample
from jobtask_widgets.server.auth import Signer, file_resource
from tests.helpers import SECRET, Api, error_of, store_output

COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def listed(api: Api, task: str | None = None) -> dict[str, dict[str, object]]:
    answer = api.get(f"{api.task(task)}/outputs/files/")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["error"] is None
    return {entry["path"]: entry for entry in body["data"]}


def url_of(api: Api, path: str, task: str | None = None) -> str:
    return str(listed(api, task)[path]["url"])


def resigned(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def test_the_list_holds_every_output_file_with_size_type_digest_and_its_own_url(api: Api, sample: Sample) -> None:
    for task in sample.task_ids:
        files = listed(api, task)
        on_disk = store_output(sample, task)
        assert sorted(files) == sorted(on_disk)
        for path, entry in files.items():
            assert set(entry) == {"path", "size", "media_type", "sha256", "url"}
            assert entry["size"] == len(on_disk[path])
            assert entry["sha256"] == hashlib.sha256(on_disk[path]).hexdigest()
            prefix = f"{api.url}/files/{sample.project_id}/{sample.job_id}/{task}/{quote(path)}?expires="
            assert str(entry["url"]).startswith(prefix)
        rasters = [p for p in files if p.endswith(".tif")]
        assert rasters and all(files[p]["media_type"] == COG for p in rasters)  # the sample's rasters are COGs
        assert files["data.json"]["media_type"] == "application/geo+json"


def test_a_file_url_answers_head_and_get_with_the_files_bytes_and_validators(api: Api, sample: Sample) -> None:
    path = next(p for p in store_output(sample, SAMPLE_NDVI_TASK) if p.endswith(".tif"))
    url = url_of(api, path, SAMPLE_NDVI_TASK)
    body = store_output(sample, SAMPLE_NDVI_TASK)[path]
    head = requests.head(url, timeout=30)  # no bearer token: the signature opens it
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(body)
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["etag"].startswith('"')
    assert head.headers["content-type"] == "image/tiff; application=geotiff"
    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200 and whole.content == body
    assert whole.headers["etag"] == head.headers["etag"]
    assert whole.headers["content-disposition"] == "inline; filename*=UTF-8''ndvi.tif"


def test_ranges_first_middle_suffix_and_unsatisfiable(api: Api, sample: Sample) -> None:
    path = next(p for p in store_output(sample, SAMPLE_MULTIBAND_TASK) if p.endswith(".tif"))
    url = url_of(api, path, SAMPLE_MULTIBAND_TASK)
    body = store_output(sample, SAMPLE_MULTIBAND_TASK)[path]
    size = len(body)
    for header, (first, last) in {
        "bytes=0-16383": (0, 16383),
        "bytes=5000000-5099999": (5_000_000, 5_099_999),
        "bytes=-1000": (size - 1000, size - 1),
    }.items():
        part = requests.get(url, headers={"Range": header}, timeout=30)
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == body[first : last + 1]
    beyond = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=30)
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    assert error_of(beyond)["code"] == "RANGE_NOT_SATISFIABLE"


def test_if_range_with_a_stale_etag_gets_the_whole_new_file(own_api: Api, own_sample: Sample) -> None:
    task = own_sample.task_ids[0]
    url = url_of(own_api, "data.json", task)
    first = requests.get(url, headers={"Range": "bytes=0-9"}, timeout=30)
    assert first.status_code == 206
    etag = first.headers["etag"]
    current = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=30)
    assert current.status_code == 206 and current.content == first.content
    data_json = own_sample.task_dir(task) / "output" / "data.json"
    new = b'{"type": "FeatureCollection", "features": []}\n'
    staged = data_json.with_name("data.json.new")
    staged.write_bytes(new)
    staged.replace(data_json)
    stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=30)
    assert stale.status_code == 200 and stale.content == new  # the file changed: all of it, not a mix
    assert stale.headers["etag"] != etag
    relisted = listed(own_api, task)["data.json"]
    assert relisted["sha256"] == hashlib.sha256(new).hexdigest()  # a new version gets a new digest


def test_forged_expired_other_file_and_unsigned_urls_are_403_in_the_envelope(api: Api, sample: Sample) -> None:
    files = listed(api, SAMPLE_MULTIBAND_TASK)
    raster = next(p for p in files if p.endswith(".tif"))
    url = str(files[raster]["url"])
    data_json_url = str(files["data.json"]["url"])
    forged = resigned(url, signature="0" * 64)
    other_file = f"{data_json_url.split('?')[0]}?{urlsplit(url).query}"  # the raster's signature on data.json
    expired_at = int(time.time()) - 5
    resource = file_resource(sample.project_id, sample.job_id, SAMPLE_MULTIBAND_TASK, "output", raster)
    expired = resigned(url, **Signer(SECRET).sign(resource, expired_at))
    unsigned = url.split("?")[0]
    repeated = url + "&signature=" + parse_qs(urlsplit(url).query)["signature"][0]
    messages = {}
    for label, bad in {
        "forged": forged,
        "other": other_file,
        "expired": expired,
        "unsigned": unsigned,
        "repeated": repeated,
    }.items():
        answer = requests.get(bad, timeout=30)
        assert answer.status_code == 403, label
        messages[label] = error_of(answer)["message"]
        assert error_of(answer)["code"] == "FORBIDDEN"
    assert "not valid for this file" in messages["forged"] and "not valid for this file" in messages["other"]
    assert "expired" in messages["expired"] and "outputs/files/" in messages["expired"]
    assert "not signed" in messages["unsigned"]
    assert requests.get(url, timeout=30).status_code == 200  # the good one still opens


def raw_get(api: Api, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (requests and urllib would remove dot segments first)."""
    host, port = urlsplit(api.url).hostname, urlsplit(api.url).port
    connection = http.client.HTTPConnection(str(host), port, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_traversal_and_non_plain_paths_are_unknown_files_even_when_signed(api: Api, sample: Sample) -> None:
    signer = Signer(SECRET)
    expires = int(time.time()) + 600
    task = sample.task_ids[0]
    base = f"/files/{sample.project_id}/{sample.job_id}/{task}/"
    for path, sent in {
        "../info.json": "../info.json",
        "a/../../info.json": "a/../../info.json",
        "./data.json": "./data.json",
        "sub//data.json": "sub//data.json",
        "../../../../credentials.json": "../../../../credentials.json",
        "../info.json ": "%2E%2E/info.json",  # percent-encoded dots reach the route as '..'
    }.items():
        path = path.strip()
        query = urlencode(signer.sign(file_resource(sample.project_id, sample.job_id, task, "output", path), expires))
        status, body = raw_get(api, f"{base}{sent}?{query}")
        assert status == 404, (path, status, body[:200])  # signed for that very path, and still unknown
        assert json.loads(body)["error"]["code"] == "NOT_FOUND"


def test_a_signature_opens_its_own_file_of_its_own_task_and_kind_only(api: Api, sample: Sample) -> None:
    signer = Signer(SECRET)
    expires = int(time.time()) + 600
    first, second = sample.task_ids[0], sample.task_ids[1]
    signed_for_first = signer.sign(
        file_resource(sample.project_id, sample.job_id, first, "output", "data.json"), expires
    )
    other_task = f"{api.url}/files/{sample.project_id}/{sample.job_id}/{second}/data.json?{urlencode(signed_for_first)}"
    assert requests.get(other_task, timeout=30).status_code == 403
    as_quicklook = signer.sign(
        file_resource(sample.project_id, sample.job_id, first, "quicklook", "data.json"), expires
    )
    other_kind = f"{api.url}/files/{sample.project_id}/{sample.job_id}/{first}/data.json?{urlencode(as_quicklook)}"
    assert requests.get(other_kind, timeout=30).status_code == 403
    own = f"{api.url}/files/{sample.project_id}/{sample.job_id}/{first}/data.json?{urlencode(signed_for_first)}"
    assert requests.get(own, timeout=30).status_code == 200


def test_the_list_needs_a_token_and_the_right_project(api: Api, sample: Sample) -> None:
    assert requests.get(f"{api.task()}/outputs/files/", timeout=30).status_code == 401
    assert (
        api.get(f"{api.url}/projects/other/jobs/{sample.job_id}/tasks/{sample.task_ids[0]}/outputs/files/").status_code
        == 404
    )


def signed_file(api: Api, sample: Sample, task: str, path: str) -> str:
    resource = file_resource(sample.project_id, sample.job_id, task, "output", path)
    query = urlencode(Signer(SECRET).sign(resource, int(time.time()) + 600))
    return f"{api.url}/files/{sample.project_id}/{sample.job_id}/{task}/{quote(path)}?{query}"


def test_a_linked_folder_inside_output_is_neither_listed_nor_served(own_api: Api, own_sample: Sample) -> None:
    task = own_sample.task_ids[1]
    output = own_sample.task_dir(task) / "output"
    (output / "linked").symlink_to(next(p for p in output.iterdir() if p.is_dir()), target_is_directory=True)
    raster = next(p.name for p in (output / "linked").iterdir() if p.suffix == ".tif")
    assert not [p for p in listed(own_api, task) if p.startswith("linked/")]
    answer = requests.get(signed_file(own_api, own_sample, task, f"linked/{raster}"), timeout=30)
    assert answer.status_code == 404


def test_a_vrt_named_tif_is_never_opened_by_gdal(own_api: Api, own_sample: Sample) -> None:
    task = own_sample.task_ids[0]
    output = own_sample.task_dir(task) / "output"
    secret = own_sample.root / "credentials.json"
    (output / "sneaky.tif").write_text(
        f'<VRTDataset rasterXSize="40" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1">'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{secret}</SourceFilename></SimpleSource>'
        f"</VRTRasterBand></VRTDataset>"
    )
    files = listed(own_api, task)
    assert files["sneaky.tif"]["media_type"] == "image/tiff; application=geotiff"  # by its name; not a COG
    item = own_api.get(f"{own_api.task(task)}/stac/").json()
    asset = item["assets"]["sneaky.tif"]
    assert "raster:bands" not in asset and "proj:shape" not in asset  # GDAL never read it
    assert "sample-api-key" not in json.dumps(item)


def test_pages_and_scripts_among_the_results_are_sent_as_attachments_never_run(
    own_api: Api, own_sample: Sample
) -> None:
    task = own_sample.task_ids[0]
    output = own_sample.task_dir(task) / "output"
    (output / "report.html").write_text("<script>alert(document.cookie)</script>")
    (output / "chart.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    for name in ("report.html", "chart.svg"):
        answer = requests.get(url_of(own_api, name, task), timeout=30)
        assert answer.status_code == 200
        assert answer.headers["content-disposition"].startswith("attachment;")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-security-policy"].startswith("sandbox")
    data = requests.get(url_of(own_api, "data.json", task), timeout=30)
    assert data.headers["content-disposition"].startswith("inline;")  # data to look at stays inline


def test_a_name_that_is_not_utf8_is_left_out_and_the_rest_listed(own_api: Api, own_sample: Sample) -> None:
    task = own_sample.task_ids[0]
    output = own_sample.task_dir(task) / "output"
    (output.parent / "output").joinpath(os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name")
    files = listed(own_api, task)
    assert "data.json" in files and not [p for p in files if p.startswith("caf")]
    assert own_api.get(f"{own_api.task(task)}/stac/").status_code == 200


def test_a_rewrite_in_place_with_the_same_size_and_time_is_a_new_version(own_api: Api, own_sample: Sample) -> None:
    task = own_sample.task_ids[0]
    data_json = own_sample.task_dir(task) / "output" / "data.json"
    before = listed(own_api, task)["data.json"]
    url = str(before["url"])
    etag = requests.head(url, timeout=30).headers["etag"]
    st = data_json.stat()
    body = data_json.read_bytes()
    changed = body.replace(b"scene", b"SCENE", 1)
    assert len(changed) == len(body) and changed != body
    with open(data_json, "r+b") as f:  # as rsync --inplace -t does: same size, the old times put back
        f.write(changed)
    os.utime(data_json, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = listed(own_api, task)["data.json"]
    assert after["sha256"] == hashlib.sha256(changed).hexdigest() != before["sha256"]
    stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=30)
    assert stale.status_code == 200 and stale.content == changed  # never a range of the old version


def test_a_link_out_of_output_is_neither_listed_nor_served(own_api: Api, own_sample: Sample, tmp_path: Path) -> None:
    task = own_sample.task_ids[0]
    output = own_sample.task_dir(task) / "output"
    (output / "secrets.json").symlink_to(own_sample.root / "credentials.json")
    files = listed(own_api, task)
    assert "secrets.json" not in files
    signer = Signer(SECRET)
    resource = file_resource(own_sample.project_id, own_sample.job_id, task, "output", "secrets.json")
    query = urlencode(signer.sign(resource, int(time.time()) + 600))
    answer = requests.get(
        f"{own_api.url}/files/{own_sample.project_id}/{own_sample.job_id}/{task}/secrets.json?{query}", timeout=30
    )
    assert answer.status_code == 404 and "project_api_key" not in answer.text


def test_gdal_reads_a_window_of_a_cog_through_the_signed_url_by_ranges(api: Api, sample: Sample) -> None:
    path = next(p for p in store_output(sample, SAMPLE_MULTIBAND_TASK) if p.endswith(".tif"))
    url = url_of(api, path, SAMPLE_MULTIBAND_TASK)
    local = sample.task_dir(SAMPLE_MULTIBAND_TASK) / "output" / path
    window = Window(700, 900, 256, 256)
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(url) as remote:
        assert remote.driver == "GTiff" and remote.count == 4
        assert remote.descriptions == ("blue", "green", "red", "nir")
        read = remote.read(window=window)
        overview = remote.read(1, out_shape=(250, 250))  # from an overview, not the whole band
    with rasterio.open(local) as src:
        assert np.array_equal(read, src.read(window=window))
        assert np.array_equal(overview, src.read(1, out_shape=(250, 250)))
    ndvi_path = next(p for p in store_output(sample, SAMPLE_NDVI_TASK) if p.endswith(".tif"))
    with (
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open(url_of(api, ndvi_path, SAMPLE_NDVI_TASK)) as remote,
    ):
        values = remote.read(1)
        assert remote.dtypes[0] == "float32" and np.isnan(remote.nodata)
    assert np.isnan(values).any() and np.nanmin(values) >= -1 and np.nanmax(values) <= 1


def test_a_signed_quicklook_url_serves_the_image_without_a_token(api: Api, sample: Sample) -> None:
    item = api.get(f"{api.task()}/stac/").json()
    href = item["assets"]["quicklook:preview.png"]["href"]
    assert href.startswith(
        f"{api.url}/quicklooks/{sample.project_id}/{sample.job_id}/{sample.task_ids[0]}/preview.png?"
    )
    answer = requests.get(href, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.content == (sample.task_dir(sample.task_ids[0]) / "quicklooks" / "preview.png").read_bytes()
    assert requests.get(resigned(href, signature="f" * 64), timeout=30).status_code == 403
