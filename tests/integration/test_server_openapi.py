"""The server's OpenAPI document, and answers that must pass through the response models unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from jobtask_widgets.sample import Sample
from tests.helpers import Api, error_of

TASK = "/projects/{project_id}/jobs/{job_id}/tasks/{task_id}"
ARCHIVE = "/archives/{project_id}/{job_id}/{task_id}/output.tar.gz"
FILE = "/files/{project_id}/{job_id}/{task_id}/{path}"
QUICKLOOK = "/quicklooks/{project_id}/{job_id}/{task_id}/{name}"
ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}

# Every operation of the protocol, with the error statuses it answers.
OPERATIONS: dict[tuple[str, str], set[str]] = {
    ("get", "/"): {"500"},
    ("post", "/oauth/token"): {"400", "401", "429", "500"},
    ("get", "/users/me"): {"401", "500"},
    ("get", "/projects/{project_id}/jobs/{job_id}/tasks/"): {"401", "404", "500"},
    ("get", TASK + "/outputs/data-json/"): {"401", "404", "500"},
    ("get", TASK + "/downloads/results/"): {"401", "404", "500"},
    ("get", ARCHIVE): {"400", "403", "404", "416", "500", "503"},
    ("head", ARCHIVE): {"400", "403", "404", "416", "500", "503"},
    ("get", TASK + "/outputs/quicklooks/"): {"401", "404", "500"},
    ("get", TASK + "/outputs/quicklooks/{name}"): {"401", "404", "500"},
    ("get", TASK + "/outputs/files/"): {"401", "404", "500"},
    ("get", FILE): {"400", "403", "404", "416", "500"},
    ("head", FILE): {"400", "403", "404", "416", "500"},
    ("get", QUICKLOOK): {"400", "403", "404", "416", "500"},
    ("head", QUICKLOOK): {"400", "403", "404", "416", "500"},
    ("get", TASK + "/stac/"): {"401", "404", "500"},
    ("get", "/projects/{project_id}/jobs/{job_id}/stac/"): {"401", "404", "500"},
}


@pytest.fixture(scope="module")
def openapi(api: Api) -> dict[str, Any]:
    answer = requests.get(f"{api.url}/openapi.json", timeout=30)  # no token needed
    assert answer.status_code == 200
    return answer.json()


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def test_every_path_of_the_protocol_is_described(openapi: dict[str, Any]) -> None:
    described = {(method, path) for path, operations in openapi["paths"].items() for method in operations}
    assert described == set(OPERATIONS)
    ids = [op["operationId"] for operations in openapi["paths"].values() for op in operations.values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_each_route_lists_its_errors_with_the_error_envelope(openapi: dict[str, Any], method: str, path: str) -> None:
    responses = openapi["paths"][path][method]["responses"]
    errors = {status for status in responses if int(status) >= 400}
    assert errors == OPERATIONS[method, path]
    for status in errors:
        assert responses[status]["content"] == {"application/json": {"schema": ENVELOPE}}, status
        assert responses[status]["description"]
    assert "422" not in responses  # a request the server cannot read is a 400 in the envelope
    if "401" in errors:
        assert "WWW-Authenticate" in responses["401"]["headers"]
    if "401" in errors and path != "/oauth/token":
        assert openapi["paths"][path][method]["security"] == [{"HTTPBearer": []}]
    if "416" in errors:
        assert "Content-Range" in responses["416"]["headers"]
        validators = {"ETag", "Repr-Digest"} if path == ARCHIVE else {"ETag", "Accept-Ranges"}
        assert validators <= set(responses["200"]["headers"]) & set(responses["206"]["headers"])


def test_the_error_envelope_schema(openapi: dict[str, Any]) -> None:
    envelope = openapi["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["properties"]) == {"data", "error"}
    assert envelope["properties"]["data"]["type"] == "null"
    detail = resolve(openapi, envelope["properties"]["error"])
    assert set(detail["required"]) == {"code", "message"}
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
    for name in ("NoSuchRoute", "MethodNotAllowed"):  # answers of any path
        assert openapi["components"]["responses"][name]["content"]["application/json"]["schema"] == ENVELOPE


@pytest.mark.parametrize(
    ("path", "model", "data"),
    [
        ("/", "IndexAnswer", "Service"),
        ("/users/me", "UserAnswer", "User"),
        ("/projects/{project_id}/jobs/{job_id}/tasks/", "TaskListAnswer", None),
        (TASK + "/downloads/results/", "ResultsUrlAnswer", "ResultsUrl"),
        (TASK + "/outputs/quicklooks/", "QuicklookNamesAnswer", None),
    ],
)
def test_every_envelope_answer_has_its_model(openapi: dict[str, Any], path: str, model: str, data: str | None) -> None:
    schema = openapi["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": f"#/components/schemas/{model}"}
    answer = openapi["components"]["schemas"][model]
    assert set(answer["properties"]) == {"data", "error"}
    assert answer["properties"]["error"]["type"] == "null"
    if data:
        assert answer["properties"]["data"] == {"$ref": f"#/components/schemas/{data}"}


def test_token_feature_collection_and_binary_answers_are_described(openapi: dict[str, Any]) -> None:
    token = openapi["paths"]["/oauth/token"]["post"]
    assert token["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenAnswer"
    }
    assert set(openapi["components"]["schemas"]["TokenAnswer"]["properties"]) == {
        "access_token",
        "token_type",
        "expires_in",
    }
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    data_json = openapi["paths"][TASK + "/outputs/data-json/"]["get"]["responses"]["200"]["content"]
    assert data_json["application/json"]["schema"]["title"] == "FeatureCollection"
    for method in ("get", "head"):
        archive = openapi["paths"][ARCHIVE][method]["responses"]
        assert archive["200"]["content"]["application/gzip"]["schema"]["format"] == "binary"
        assert "application/gzip" in archive["206"]["content"]
    quicklook = openapi["paths"][TASK + "/outputs/quicklooks/{name}"]["get"]["responses"]["200"]["content"]
    assert {"image/png", "image/jpeg"} <= set(quicklook)


def test_info_json_passes_through_with_its_order_extra_keys_and_nulls(own_api: Api, own_sample: Sample) -> None:
    task = own_sample.task_ids[1]
    path = own_sample.task_dir(task) / "info.json"
    info = json.loads(path.read_text())
    odd = {"zeta": None, "nested": {"n": None, "l": [1, None, 2.5, True]}, "unicode": "Zürich ☃", "big": 1e16}
    info = {"name": info.pop("name"), **odd, **info}  # id no longer first
    path.write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    answer = own_api.get(f"{own_api.job}/tasks/")
    assert answer.status_code == 200
    listed = json.loads(answer.content, object_pairs_hook=list)  # keeps every key, in order
    assert listed[0] == ("data", listed[0][1])
    assert listed[1] == ("error", None)
    on_disk = json.loads(json.dumps(info), object_pairs_hook=list)
    assert on_disk in listed[0][1]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bytes=0-9,20-29", 206),
        ("bytes=0-1 , ,3-4", 206),
        ("Bytes=-5", 206),
        ("bytes=0 - 1", 400),  # whitespace inside a range is not RFC 9110's
        ("bytes=0-1;2-3", 400),
        ("bytes=0-1,999999999-", 416),
    ],
)
def test_the_range_check_and_file_response_agree(api: Api, header: str, status: int) -> None:
    url = api.get(f"{api.task()}/downloads/results/").json()["data"]["url"]
    answer = requests.get(url, headers={"Range": header}, timeout=60)
    assert answer.status_code == status
    if status != 206:
        error_of(answer)  # in the envelope, never FileResponse's plain text


def test_a_bad_range_with_a_last_modified_if_range_is_answered_in_the_envelope(api: Api) -> None:
    url = api.get(f"{api.task()}/downloads/results/").json()["data"]["url"]
    last_modified = requests.head(url, timeout=60).headers["last-modified"]
    answer = requests.get(url, headers={"Range": "bytes=999999999-", "If-Range": last_modified}, timeout=60)
    assert answer.status_code == 416
    assert error_of(answer)["code"] == "RANGE_NOT_SATISFIABLE"
