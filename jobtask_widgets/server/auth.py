"""Access tokens and signed URLs (the credentials they are issued for are in ``credentials.py``).

Tokens and signed URLs are stateless: an HMAC-SHA256 over their claims with the server's one
secret, so several workers that share the secret agree, and nothing is stored.

- token: ``base64url(json claims) "." base64url(hmac)``; claims ``sub`` (who), ``pid`` (the
  project a project-key token is bound to, or null for a user), ``prj`` (a user's projects, a
  list, or absent for every project), ``exp`` (epoch seconds).
- signed URL: the query ``expires=<epoch>&signature=<hex hmac>`` over what it opens (an
  archive, or one result file or quicklook: kind, project, job and task ids, path) and the
  expiry, so it opens that one thing only, until then.

Both are read strictly: one spelling only. A token is ``[A-Za-z0-9_-]+`` "." and the exact 43
characters of its MAC, without padding or anything after it (a base64 decoder that skips
characters outside its alphabet, or ignores the unused low bits of the last one, would accept
other spellings of one token); ``expires`` is 1 to 12 ASCII digits and ``signature`` 64
lower-case hex digits, so no Unicode digit or huge number reaches ``int()``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ..credentials import Credentials

log = logging.getLogger("jobtask_widgets.server")

SECRET_ENV = "JOBTASK_SERVER_SECRET"
MIN_TOKEN_TTL = 300  # the original client reuses a token for 299 s whatever expires_in says
_TOKEN = re.compile(r"(?P<payload>[A-Za-z0-9_-]{1,4096})\.(?P<signature>[A-Za-z0-9_-]{43})")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Claims:
    """What a valid token says."""

    subject: str
    project_id: str | None
    expires: int
    projects: tuple[str, ...] | None = None  # a user's projects; None: every project

    def may_open(self, project_id: str) -> bool:
        """A project-key token opens its own project only; a user's token the user's projects."""
        if self.project_id is not None:
            return self.project_id == project_id
        return self.projects is None or project_id in self.projects


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Issues and checks tokens and signed URLs with one secret.

    Args:
        secret: The HMAC key; ``None`` takes ``JOBTASK_SERVER_SECRET`` or, failing that, a
            random one for this process.
    """

    def __init__(self, secret: str | bytes | None = None) -> None:
        secret = secret if secret is not None else os.environ.get(SECRET_ENV) or secrets.token_bytes(32)
        self._key = secret.encode() if isinstance(secret, str) else secret

    def _mac(self, message: str) -> bytes:
        return hmac.new(self._key, message.encode(), hashlib.sha256).digest()

    # -- access tokens ------------------------------------------------------------------------
    def issue_token(
        self,
        subject: str,
        project_id: str | None,
        ttl: int,
        *,
        now: float | None = None,
        projects: tuple[str, ...] | None = None,
    ) -> str:
        """A token for ``subject`` that expires ``ttl`` seconds after ``now``; a user's token carries
        the user's ``projects`` (``None``: every project)."""
        exp = int((time.time() if now is None else now) + ttl)
        claims: dict[str, Any] = {"sub": subject, "pid": project_id, "exp": exp}
        if projects is not None:
            claims["prj"] = list(projects)
        payload = _b64(json.dumps(claims, sort_keys=True).encode())
        return f"{payload}.{_b64(self._mac('token:' + payload))}"

    def read_token(self, token: str) -> tuple[Claims | None, str]:
        """The token's claims, or ``None`` with the reason it is refused."""
        match = _TOKEN.fullmatch(token)
        good = match is not None and hmac.compare_digest(
            match["signature"].encode(), _b64(self._mac("token:" + match["payload"])).encode()
        )
        claims: dict[str, Any] = {}
        if match is not None and good:
            try:
                loaded = json.loads(_unb64(match["payload"]))
            except (ValueError, UnicodeDecodeError):
                loaded = None
            good = isinstance(loaded, dict)
            claims = loaded if isinstance(loaded, dict) else {}
        if not good:
            return None, "the access token is not valid"
        if not isinstance(claims.get("exp"), int) or not isinstance(claims.get("sub"), str):
            return None, "the access token is not valid"
        if claims["exp"] <= time.time():
            return None, "the access token has expired; ask /oauth/token for a new one"
        scope = claims.get("prj")
        projects = tuple(p for p in scope if isinstance(p, str)) if isinstance(scope, list) else None
        return Claims(claims["sub"], claims.get("pid"), claims["exp"], projects), ""

    # -- signed URLs ------------------------------------------------------------------------------
    def sign(self, resource: str, expires: int) -> dict[str, str]:
        """The query parameters of a URL that opens ``resource`` only, until ``expires``.

        Args:
            resource: What the URL opens, as :func:`archive_resource` or :func:`file_resource`
                name it.
            expires: When it expires, in epoch seconds.
        """
        return {"expires": str(expires), "signature": self._mac(f"{resource}:{expires}").hex()}

    def check(self, resource: str, expires: str, signature: str, *, what: str, thing: str, ask: str) -> str:
        """Why a signed URL for ``resource`` is refused, or ``""`` when it is good.

        Args:
            resource: What the URL asked for, named as when it was signed.
            expires: The URL's ``expires``.
            signature: The URL's ``signature``.
            what: What the URL is, for the message ("download URL", "file URL").
            thing: What it opens, for the message ("this archive").
            ask: Where a fresh one comes from, for the message ("downloads/results/").
        """
        if not expires and not signature:
            return f"the {what} is not signed; ask {ask} for a new one"
        if _EXPIRES.fullmatch(expires) is None or _SIGNATURE.fullmatch(signature) is None:
            return f"the {what} is not signed as {ask} signs it; ask it for a new one"
        expected = self._mac(f"{resource}:{int(expires)}").hex()
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return f"the {what}'s signature is not valid for {thing}"
        if int(expires) <= time.time():
            return f"the {what} has expired; ask {ask} for a new one"
        return ""

    def sign_archive(self, project_id: str, job_id: str, task_id: str, expires: int) -> dict[str, str]:
        """The query parameters of a signed URL for one task's archive."""
        return self.sign(archive_resource(project_id, job_id, task_id), expires)


def archive_resource(project_id: str, job_id: str, task_id: str) -> str:
    """What a signed archive URL opens: one task's results archive."""
    return f"archive:{project_id}/{job_id}/{task_id}"


def file_resource(project_id: str, job_id: str, task_id: str, kind: str, path: str) -> str:
    """What a signed file URL opens: one file of a task's ``output/`` or ``quicklooks/``.

    Args:
        kind: ``"output"`` or ``"quicklook"``.
        path: The file's path relative to that folder, ``/``-separated.
    """
    return f"{kind}:{project_id}/{job_id}/{task_id}/{path}"


__all__ = ["Claims", "Credentials", "Signer", "archive_resource", "file_resource"]  # Credentials: credentials.py
