"""Signed URLs at the route boundary: making them for an answer, and refusing those that are not good.

A signed URL opens one thing (an archive, a result file, a quicklook: see
:func:`~.auth.archive_resource` and :func:`~.auth.file_resource`) without a bearer token, until
it expires. :class:`Signing` makes the URLs of one answer (one base, one expiry);
:func:`require_signature` turns a refusal into a 403 in the error envelope.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlencode

from fastapi import Request

from .accesslog import mark_subject
from .auth import Signer, file_resource
from .dependencies import ServerSettings
from .problems import forbidden
from .store import TaskRef


class Signing:
    """Signs the file URLs of one answer: one base URL, one expiry.

    Args:
        request: The request answered (its base URL, unless the server has a public URL).
        settings: The server's settings (signer, ``url_ttl``, ``public_url``).
    """

    def __init__(self, request: Request, settings: ServerSettings) -> None:
        self.base = (settings.public_url or str(request.base_url)).rstrip("/")
        self.expires = int(time.time()) + settings.url_ttl
        self._signer = settings.signer

    def url(self, ref: TaskRef, kind: str, path: str) -> str:
        """The signed URL of one output file (``kind="output"``) or quicklook (``"quicklook"``)."""
        resource = file_resource(ref.project_id, ref.job_id, ref.task_id, kind, path)
        query = urlencode(self._signer.sign(resource, self.expires))
        folder, safe = ("files", "/") if kind == "output" else ("quicklooks", "")
        return f"{self.base}/{folder}/{ref.project_id}/{ref.job_id}/{ref.task_id}/{quote(path, safe=safe)}?{query}"


def require_signature(
    request: Request, signer: Signer, resource: str, expires: str, signature: str, *, what: str, thing: str, ask: str
) -> None:
    """Refuse a request whose URL is not signed for ``resource`` (or repeats a parameter).

    Args:
        request: The request (its query, for repeated parameters).
        signer: The server's signer.
        resource: What the URL asked for.
        expires: The URL's ``expires``.
        signature: The URL's ``signature``.
        what: What the URL is, for the message ("download URL", "file URL").
        thing: What it opens, for the message ("this archive", "this file").
        ask: Where a fresh one comes from, for the message.

    Raises:
        Problem: 403 with the reason.
    """
    if any(len(request.query_params.getlist(name)) > 1 for name in ("expires", "signature")):
        raise forbidden(f"the {what} repeats expires or signature; ask {ask} for a new one")
    refusal = signer.check(resource, expires, signature, what=what, thing=thing, ask=ask)
    if refusal:
        raise forbidden(refusal)
    mark_subject(request.scope, "signed")


__all__ = ["Signing", "require_signature"]
