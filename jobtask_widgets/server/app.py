"""The reference job-task server: DESIGN.md's endpoints over a store folder.

Every JSON answer but the FeatureCollection and a successful token is the envelope
``{"data": ..., "error": null}``; every error, FastAPI's own included, is
``{"data": null, "error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote_plus, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from ..errors import StoreError
from .archive import ArchiveCache
from .auth import MIN_TOKEN_TTL, Claims, Credentials, Signer
from .problems import Problem, code_for, forbidden, not_found, unauthorized
from .store import Store, TaskRef

TASK = "/projects/{project_id}/jobs/{job_id}/tasks/{task_id}"
ARCHIVE = "/archives/{project_id}/{job_id}/{task_id}/output.tar.gz"
RANGE_FORMS = "bytes=START-END, bytes=START- or bytes=-SUFFIX"


def envelope(data: Any) -> dict[str, Any]:
    """The protocol's success envelope."""
    return {"data": data, "error": None}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The protocol's error envelope as a response."""
    body = {"data": None, "error": {"code": code_for(status), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    root: str | os.PathLike[str],
    *,
    credentials_file: str | os.PathLike[str] | None = None,
    token_ttl: int = 3600,
    url_ttl: int = 600,
    secret: str | bytes | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """Build the server's app over a store folder.

    Args:
        root: The store's root folder (DESIGN.md, "Store layout").
        credentials_file: The accepted credentials; default ``ROOT/credentials.json``.
        token_ttl: Seconds an access token lives, at least 300.
        url_ttl: Seconds a signed archive URL lives.
        secret: The HMAC secret of tokens and signed URLs; default ``JOBTASK_SERVER_SECRET``
            or a random one for this process.
        cache_dir: Where built archives go; default ``ROOT/.cache``.
        public_url: The base of signed URLs behind a proxy; default the request's own.

    Raises:
        StoreError: when the store or the credentials file is broken (names the task).
        ValueError: when a lifetime is out of range.
    """
    if token_ttl < MIN_TOKEN_TTL:
        raise ValueError(f"token_ttl must be at least {MIN_TOKEN_TTL} s (got {token_ttl})")
    if url_ttl < 1:
        raise ValueError(f"url_ttl must be at least 1 s (got {url_ttl})")
    store = Store(root)
    store.check()
    credentials = Credentials.load(credentials_file or store.root / "credentials.json")
    signer = Signer(secret)
    archives = ArchiveCache(cache_dir or store.root / ".cache")

    app = FastAPI(title="jobtask-widgets reference server", docs_url=None, redoc_url=None)
    app.state.store, app.state.credentials, app.state.signer = store, credentials, signer
    _install_error_handlers(app)

    def task_ref(claims: Claims, project_id: str, job_id: str, task_id: str = "") -> TaskRef:
        if not claims.may_open(project_id):
            raise not_found(f"unknown project {project_id!r}")
        return TaskRef(project_id, job_id, task_id)

    @app.get("/")
    def index() -> dict[str, Any]:
        return envelope({"service": "jobtask-widgets reference server", "token_url": "/oauth/token"})

    @app.post("/oauth/token")
    async def token(request: Request) -> JSONResponse:
        form = _read_form(await request.body(), request.headers.get("content-type", ""))
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            client_id, client_secret = _basic_auth(request) or (form.get("client_id"), form.get("client_secret"))
            if not client_id or not client_secret:
                raise unauthorized("client_credentials needs HTTP Basic auth with the project id and API key")
            if not credentials.check_project_key(client_id, client_secret):
                raise unauthorized("the project id or API key is wrong")
            access = signer.issue_token(f"project:{client_id}", client_id, token_ttl)
        elif grant == "password":
            username, password = form.get("username", ""), form.get("password", "")
            if not username or not password:
                raise unauthorized("the password grant needs username and password")
            if not credentials.check_user(username, password):
                raise unauthorized("the username or password is wrong")
            access = signer.issue_token(f"user:{username}", None, token_ttl)
        else:
            raise Problem(400, f"grant_type {grant!r} is not supported; use client_credentials or password")
        body = {"access_token": access, "token_type": "bearer", "expires_in": token_ttl}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/users/me")
    def users_me(claims: Auth) -> dict[str, Any]:
        return envelope({"id": claims.subject.partition(":")[2], "kind": claims.subject.partition(":")[0]})

    @app.get("/projects/{project_id}/jobs/{job_id}/tasks/")
    def list_tasks(claims: Auth, project_id: str, job_id: str) -> dict[str, Any]:
        task_ref(claims, project_id, job_id)
        return envelope(store.list_tasks(project_id, job_id))

    @app.get(TASK + "/outputs/data-json/")
    def data_json(claims: Auth, project_id: str, job_id: str, task_id: str) -> FileResponse:
        path = store.data_json(task_ref(claims, project_id, job_id, task_id))
        return FileResponse(path, media_type="application/json")

    @app.get(TASK + "/downloads/results/")
    def results_url(claims: Auth, request: Request, project_id: str, job_id: str, task_id: str) -> dict[str, Any]:
        store.task_dir(task_ref(claims, project_id, job_id, task_id))
        base = (public_url or str(request.base_url)).rstrip("/")
        query = urlencode(signer.sign_archive(project_id, job_id, task_id, int(time.time()) + url_ttl))
        return envelope({"url": f"{base}{ARCHIVE.format(**request.path_params)}?{query}"})

    @app.api_route(ARCHIVE, methods=["GET", "HEAD"])
    def archive(request: Request, project_id: str, job_id: str, task_id: str) -> Response:
        q = request.query_params
        refusal = signer.check_archive(project_id, job_id, task_id, q.get("expires", ""), q.get("signature", ""))
        if refusal:
            raise forbidden(refusal)
        ref = TaskRef(project_id, job_id, task_id)
        built = archives.get(ref, store.output_files(ref))
        headers = {"ETag": built.etag, "Cache-Control": "private, no-transform"}
        _check_range(request, built.etag, built.size)
        return FileResponse(built.path, media_type="application/gzip", headers=headers, filename=f"{task_id}.tar.gz")

    @app.get(TASK + "/outputs/quicklooks/")
    def quicklooks(claims: Auth, project_id: str, job_id: str, task_id: str) -> dict[str, Any]:
        return envelope(store.quicklook_names(task_ref(claims, project_id, job_id, task_id)))

    @app.get(TASK + "/outputs/quicklooks/{name}")
    def quicklook(claims: Auth, project_id: str, job_id: str, task_id: str, name: str) -> FileResponse:
        path, media_type = store.quicklook(task_ref(claims, project_id, job_id, task_id), name)
        return FileResponse(path, media_type=media_type)

    return app


def bearer(request: Request) -> Claims:
    """The claims of the request's bearer token (401 problem when missing, bad or expired)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("an Authorization: Bearer <access token> header is required")
    claims, reason = request.app.state.signer.read_token(token.strip())
    if claims is None:
        raise unauthorized(reason)
    return claims


Auth = Annotated[Claims, Depends(bearer)]


def _read_form(body: bytes, content_type: str) -> dict[str, str]:
    if content_type and not content_type.startswith("application/x-www-form-urlencoded"):
        raise Problem(400, f"send the token request as application/x-www-form-urlencoded, not {content_type}")
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise Problem(400, "the token request's form is not UTF-8") from exc
    return {k: v[0] for k, v in pairs.items()}


def _basic_auth(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise unauthorized("the HTTP Basic credentials are not valid base64 of 'project_id:api_key'") from exc
    if not sep:
        raise unauthorized("the HTTP Basic credentials must be 'project_id:api_key'")
    return unquote_plus(user), unquote_plus(password)


def _check_range(request: Request, etag: str, size: int) -> None:
    """Answer bad ranges in the envelope; FileResponse serves the good ones (and If-Range)."""
    http_range, if_range = request.headers.get("range"), request.headers.get("if-range")
    if http_range is None or (if_range is not None and if_range != etag):
        return  # no range, or a stale If-Range: the whole archive
    try:
        FileResponse._parse_range_header(http_range, size)
    except RangeNotSatisfiable as exc:
        raise Problem(
            416,
            f"the range {http_range!r} lies outside the archive's {size} bytes",
            {"Content-Range": f"bytes */{size}"},
        ) from exc
    except MalformedRangeHeader as exc:
        raise Problem(400, f"malformed Range header {http_range!r}: use {RANGE_FORMS}") from exc


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no such route: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed or 'none'}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return error_response(400, f"malformed request: {details}")

    @app.exception_handler(StoreError)
    async def broken_store(request: Request, exc: StoreError) -> JSONResponse:
        return error_response(500, f"the store is broken: {exc}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal server error ({type(exc).__name__})")


__all__ = ["create_app", "envelope", "error_response"]
