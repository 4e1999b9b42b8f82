"""Tokens, signed URLs and credentials, as pure functions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jobtask_widgets.errors import StoreError
from jobtask_widgets.server.auth import Credentials, Signer, archive_resource, file_resource


def test_a_token_carries_its_claims_until_it_expires() -> None:
    signer = Signer("s")
    claims, reason = signer.read_token(signer.issue_token("user:ana", None, 300))
    assert reason == ""
    assert claims is not None
    assert (claims.subject, claims.project_id) == ("user:ana", None)
    assert claims.expires == pytest.approx(time.time() + 300, abs=2)
    assert claims.may_open("any-project")
    old = signer.issue_token("user:ana", None, 300, now=time.time() - 400)
    assert signer.read_token(old) == (None, "the access token has expired; ask /oauth/token for a new one")


def test_a_token_from_another_secret_is_refused_and_the_env_secret_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Signer("a").read_token(Signer("b").issue_token("x", None, 300))[0] is None
    monkeypatch.setenv("JOBTASK_SERVER_SECRET", "shared")
    token = Signer().issue_token("project:p", "p", 300)
    assert Signer("shared").read_token(token)[0] is not None
    monkeypatch.delenv("JOBTASK_SERVER_SECRET")
    assert Signer().read_token(token)[0] is None  # a random secret per process


def test_signed_urls_are_bound_to_one_resource_and_expire() -> None:
    signer = Signer("s")
    later = int(time.time()) + 60
    archive, other = archive_resource("p", "j", "t"), archive_resource("p", "j", "other")
    params = signer.sign(archive, later)

    def check(resource: str, expires: str, signature: str) -> str:
        return signer.check(resource, expires, signature, what="download URL", thing="this archive", ask="x/")

    assert check(archive, params["expires"], params["signature"]) == ""
    assert "not valid for this archive" in check(other, params["expires"], params["signature"])
    assert "not valid" in check(archive, str(later + 1), params["signature"])
    assert "not signed" in check(archive, "", "")
    output = file_resource("p", "j", "t", "output", "preview.png")
    quicklook = file_resource("p", "j", "t", "quicklook", "preview.png")
    file_params = signer.sign(output, later)
    assert check(output, file_params["expires"], file_params["signature"]) == ""
    assert "not valid" in check(quicklook, file_params["expires"], file_params["signature"])  # kinds never mix
    assert "not valid" in check(archive, file_params["expires"], file_params["signature"])
    past = int(time.time()) - 1
    old = signer.sign(archive, past)
    assert "expired" in check(archive, old["expires"], old["signature"])
    assert signer.sign_archive("p", "j", "t", later) == params  # the archive URL's query, as before


def test_credentials_check_keys_and_passwords(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"project_id": "p", "project_api_key": "k", "users": {"ana": "pw"}}))
    creds = Credentials.load(path)
    assert creds.check_project_key("p", "k")
    assert not creds.check_project_key("p", "K")
    assert not creds.check_project_key("q", "k")
    assert creds.check_user("ana", "pw")
    assert not creds.check_user("ana", "")
    assert not creds.check_user("bob", "pw")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no credentials file"),
        ("{not json", "cannot be read"),
        ("[]", "holds a list, not a JSON object; it must hold"),
        ('{"project_id": "p"}', "needs non-empty project_id and project_api_key"),
        ('{"project_id": "p", "project_api_key": "k", "users": {"ana": ""}}', "non-empty passwords"),
    ],
)
def test_broken_credentials_files_say_what_is_expected(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "credentials.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(StoreError, match=message) as info:
        Credentials.load(path)
    assert str(path) in str(info.value)
