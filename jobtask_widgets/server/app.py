"""The reference job-task server's app: :func:`create_app` checks the store, builds the one
:class:`~.dependencies.ServerSettings` and includes the protocol's router.

Every JSON answer but the FeatureCollection and a successful token is the envelope
``{"data": ..., "error": null}``; every error, FastAPI's own included, is
``{"data": null, "error": {"code": ..., "message": ...}}`` (docs/architecture.md, "Errors").
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ..redaction import redact_library_logs
from .accesslog import AccessLog
from .archive import ArchiveCache
from .auth import MIN_TOKEN_TTL, Credentials, Signer
from .dependencies import ServerSettings
from .fileroutes import router as file_router
from .objectstore import ObjectStore, is_store_url
from .outputs import FileFacts
from .problems import exception_handlers
from .ratelimit import WINDOW, LoginLimiter
from .routes import router
from .stacroutes import router as stac_router
from .store import Store
from .storebase import TaskStore

TITLE = "jobtask-widgets reference server"
DESCRIPTION = """The job-task protocol over a store of task results (a folder or object storage).

Every JSON answer but the FeatureCollection of `data-json/` and a successful token is the
envelope `{"data": ..., "error": null}`; every error is `{"data": null, "error": {"code": ...,
"message": ...}}`. Besides the errors each operation lists, any path answers 404 (`NoSuchRoute`)
when no route matches it and 405 (`MethodNotAllowed`) for a method its route does not allow,
both in the error envelope. A path without its trailing slash is redirected (307) to the one
with it."""

_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
ROUTING_ERRORS: dict[str, dict[str, Any]] = {
    "NoSuchRoute": {"description": "404: no route matches the path.", "content": _ENVELOPE},
    "MethodNotAllowed": {
        "description": "405: the route does not allow the method; the message lists those it does.",
        "content": _ENVELOPE,
        "headers": {"Allow": {"schema": {"type": "string"}, "description": "The allowed methods."}},
    },
}


class ServerApp(FastAPI):
    """The server's FastAPI app, whose OpenAPI document tells the protocol's errors as they are.

    FastAPI lists a 422 answer for every route with parameters; this server answers a request it
    cannot read with 400 in the envelope instead, so the 422s are left out, and the routing
    errors that any path can answer are added as ``components.responses``.
    """

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document, built once."""
        if self.openapi_schema is None:
            schema = super().openapi()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.setdefault("components", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(name, None)
            components.setdefault("responses", {}).update(ROUTING_ERRORS)
        return self.openapi_schema or {}


OPTIONS_ENV = "JOBTASK_SERVE_OPTIONS"  # create_app's arguments (JSON) for each worker of ``serve --workers N``


def app_from_environment() -> FastAPI:
    """The app of one worker of ``serve --workers N``: ``create_app(**json $JOBTASK_SERVE_OPTIONS)``,
    its secret from ``JOBTASK_SERVER_SECRET`` (shared by every worker)."""
    return create_app(**json.loads(os.environ[OPTIONS_ENV]))


def create_app(
    root: str | os.PathLike[str],
    *,
    credentials_file: str | os.PathLike[str] | None = None,
    token_ttl: int = 3600,
    url_ttl: int = 600,
    secret: str | bytes | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    public_url: str | None = None,
    login_window: float = WINDOW,
    endpoint_url: str | None = None,
    redirect_downloads: bool = False,
) -> FastAPI:
    """Build the server's app over a store: a folder, or object storage.

    Args:
        root: The store's root folder, or its URL in object storage (``s3://bucket/prefix``,
            ``gs://``, ``az://``; docs/architecture.md, "Store layout" and "Object storage").
        credentials_file: The accepted credentials; default the store's ``credentials.json``.
        login_window: Seconds over which failed logins are counted (``ratelimit.LIMIT`` of them
            for one client address or name, then 429 until the window passes).
        token_ttl: Seconds an access token lives, at least 300.
        url_ttl: Seconds a signed archive URL lives.
        secret: The HMAC secret of tokens and signed URLs; default ``JOBTASK_SERVER_SECRET``
            or a random one for this process.
        cache_dir: Where built archives go; default ``ROOT/.cache`` for a folder, and
            ``~/.cache/jobtask-widgets/server/<hash of the URL>`` for object storage.
        public_url: The base of signed URLs behind a proxy; default the request's own.
        endpoint_url: The endpoint of an S3-compatible store (MinIO, Ceph, moto).
        redirect_downloads: Answer a signed file URL with a redirect (307) to the object
            store's own presigned URL instead of sending the bytes (object storage only).

    Returns:
        The app, with its :class:`~.dependencies.ServerSettings` on ``app.state.settings``.

    Raises:
        StoreError: when the store or the credentials file is broken (names the task), or
            object storage cannot be read (``StoreUnreachable``).
        ValueError: when a lifetime is out of range, the store URL is not usable, or an
            option needs object storage.
    """
    if token_ttl < MIN_TOKEN_TTL:
        raise ValueError(f"token_ttl must be at least {MIN_TOKEN_TTL} s (got {token_ttl})")
    if url_ttl < 1:
        raise ValueError(f"url_ttl must be at least 1 s (got {url_ttl})")
    redact_library_logs()  # GDAL reads presigned URLs for the STAC fields of objects
    store: TaskStore
    if is_store_url(root):
        store = ObjectStore(str(root), endpoint_url=endpoint_url)
        default_cache = Path.home() / ".cache" / "jobtask-widgets" / "server" / _url_key(str(root), endpoint_url)
    else:
        if endpoint_url or redirect_downloads:
            raise ValueError(f"--endpoint-url and --redirect-downloads need a store in object storage, not {root}")
        folder = Store(root)
        store, default_cache = folder, folder.root / ".cache"
    store.check()
    settings = ServerSettings(
        store=store,
        credentials=Credentials.load(credentials_file) if credentials_file else store.credentials(),
        signer=Signer(secret),
        archives=ArchiveCache(cache_dir or default_cache),
        facts=FileFacts(),
        token_ttl=token_ttl,
        url_ttl=url_ttl,
        public_url=public_url,
        limiter=LoginLimiter(window=login_window),
        redirect_downloads=redirect_downloads,
    )
    app = ServerApp(
        title=TITLE,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        exception_handlers=exception_handlers(),
    )
    app.state.settings = settings
    app.add_middleware(AccessLog)
    app.include_router(router)
    app.include_router(file_router)
    app.include_router(stac_router)
    return app


def _url_key(url: str, endpoint_url: str | None) -> str:
    return hashlib.sha256(f"{endpoint_url or ''} {url.rstrip('/')}".encode()).hexdigest()[:16]


__all__ = ["ServerApp", "create_app"]
