"""Token grants and bearer checks, over real HTTP."""

from __future__ import annotations

import base64
import json
import time

import requests

from jobtask_widgets.sample import SAMPLE_USERS
from jobtask_widgets.server.auth import Signer
from tests.helpers import SECRET, Api, error_of


def post_token(api: Api, **kwargs: object) -> requests.Response:
    return requests.post(f"{api.url}/oauth/token", timeout=30, **kwargs)  # type: ignore[arg-type]


def test_client_credentials_grant_gives_a_bearer_token_that_opens_the_project(api: Api) -> None:
    answer = post_token(
        api, data={"grant_type": "client_credentials"}, auth=(api.sample.project_id, "sample-api-key-not-a-secret")
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert answer.headers["cache-control"] == "no-store"
    me = requests.get(f"{api.url}/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=30)
    assert me.json() == {"data": {"id": api.sample.project_id, "kind": "project"}, "error": None}
    tasks = requests.get(f"{api.job}/tasks/", headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=30)
    assert tasks.status_code == 200


def test_password_grant_for_a_user_of_the_credentials_file(api: Api) -> None:
    ((name, password),) = SAMPLE_USERS.items()
    answer = post_token(api, data={"grant_type": "password", "username": name, "password": password})
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    me = requests.get(f"{api.url}/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert me.json()["data"] == {"id": name, "kind": "user"}
    tasks = requests.get(f"{api.job}/tasks/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert [t["id"] for t in tasks.json()["data"]] == sorted(api.sample.task_ids)


def test_client_id_and_secret_in_the_form_are_accepted_too(api: Api) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": api.sample.project_id,
        "client_secret": api.sample.project_api_key,
    }
    assert post_token(api, data=form).status_code == 200


def test_wrong_credentials_are_401_in_the_envelope(api: Api) -> None:
    cases = [
        {"data": {"grant_type": "client_credentials"}, "auth": (api.sample.project_id, "wrong-key")},
        {"data": {"grant_type": "client_credentials"}, "auth": ("other-project", api.sample.project_api_key)},
        {"data": {"grant_type": "client_credentials"}},
        {"data": {"grant_type": "password", "username": "analyst", "password": "wrong"}},
        {"data": {"grant_type": "password", "username": "nobody", "password": "sample-password"}},
        {"data": {"grant_type": "password", "username": "analyst"}},
        {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic !!not-base64!!"}},
        {"data": {"grant_type": "client_credentials"},
         "headers": {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}},
    ]  # fmt: skip
    for case in cases:
        answer = post_token(api, **case)
        assert answer.status_code == 401, case
        assert error_of(answer)["code"] == "UNAUTHORIZED"


def test_bad_grant_and_bad_body_are_400(api: Api) -> None:
    answer = post_token(api, data={"grant_type": "implicit"})
    assert answer.status_code == 400
    error = error_of(answer)
    assert error["code"] == "BAD_REQUEST"
    assert "client_credentials or password" in error["message"]
    answer = post_token(api, json={"grant_type": "client_credentials"})
    assert answer.status_code == 400
    assert "x-www-form-urlencoded" in error_of(answer)["message"]


def test_missing_bad_forged_and_expired_tokens_are_401(api: Api) -> None:
    signer = Signer(SECRET)
    expired = signer.issue_token(f"project:{api.sample.project_id}", api.sample.project_id, 300, now=time.time() - 301)
    good = signer.issue_token(f"project:{api.sample.project_id}", api.sample.project_id, 300)
    payload, _, signature = good.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 10**6
    longer = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    other_secret = Signer("another-secret").issue_token("project:x", api.sample.project_id, 300)
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {good}"},
        "empty": {"Authorization": "Bearer "},
        "garbage": {"Authorization": "Bearer garbage"},
        "tampered": {"Authorization": f"Bearer {longer}.{signature}"},
        "other secret": {"Authorization": f"Bearer {other_secret}"},
        "expired": {"Authorization": f"Bearer {expired}"},
    }
    for label, headers in cases.items():
        answer = requests.get(f"{api.job}/tasks/", headers=headers, timeout=30)
        assert answer.status_code == 401, label
        assert answer.headers["www-authenticate"] == "Bearer"
        error = error_of(answer)
        assert error["code"] == "UNAUTHORIZED", label
        if label == "expired":
            assert "expired" in error["message"]
    fine = requests.get(f"{api.job}/tasks/", headers={"Authorization": f"Bearer {good}"}, timeout=30)
    assert fine.status_code == 200


def test_a_project_key_token_opens_only_its_own_project(api: Api) -> None:
    token = Signer(SECRET).issue_token("project:other", "other-project", 300)
    answer = requests.get(f"{api.job}/tasks/", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 404
    assert api.sample.project_id in error_of(answer)["message"]
