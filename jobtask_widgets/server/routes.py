"""The protocol's routes, on one module-level :data:`router` that ``create_app`` includes.

Every route reads the server's state through the dependencies of :mod:`.dependencies`, answers
with a model of :mod:`.models` (or a file opened once, sent by :func:`.files.file_response`), and
lists its error answers in ``responses=`` with :class:`~.models.ErrorEnvelope`, so
``/openapi.json`` describes all of them. A route raises a
:class:`~.problems.Problem` for a refusal it decides itself; the store's and the range check's
errors become answers through ``problems.ERROR_STATUS`` (docs/architecture.md, "Errors").
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qs, unquote_plus, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from .accesslog import mark_subject
from .auth import archive_resource
from .dependencies import ArchivesDep, Auth, JobIds, Settings, SignerDep, StoreDep, VisibleTask
from .files import OpenFileResponse, file_response
from .models import (
    ARCHIVE_CONTENT,
    ARCHIVE_PARTS_CONTENT,
    FEATURE_COLLECTION_CONTENT,
    QUICKLOOK_CONTENT,
    ErrorEnvelope,
    IndexAnswer,
    QuicklookNamesAnswer,
    ResultsUrl,
    ResultsUrlAnswer,
    Service,
    TaskListAnswer,
    TokenAnswer,
    TokenForm,
    User,
    UserAnswer,
)
from .problems import Problem, unauthorized
from .signed import Signing, require_signature
from .store import TaskRef

TASK = "/projects/{project_id}/jobs/{job_id}/tasks/{task_id}"
ARCHIVE = "/archives/{project_id}/{job_id}/{task_id}/output.tar.gz"

_HEADER = {"schema": {"type": "string"}}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {**_HEADER, "description": "Always `Bearer`."}},
    416: {"Content-Range": {**_HEADER, "description": "`bytes */SIZE`: the archive's size."}},
}
_UNAUTHORIZED = "The bearer token is missing, not valid or expired."
_NOT_FOUND_TASK = "Unknown project, job or task (or one the token may not open), or a malformed id."


def errors(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route's error answers, each the error envelope; 500 is always one.

    Args:
        statuses: Each error status of the route, with what it means there.
    """
    answers: dict[int | str, dict[str, Any]] = {}
    for status, text in {**statuses, 500: "The store is broken, or the server failed; the message says which."}.items():
        answers[status] = {"model": ErrorEnvelope, "description": text}
        if status in _ERROR_HEADERS:
            answers[status]["headers"] = _ERROR_HEADERS[status]
    return answers


router = APIRouter()


@router.get("/", summary="What this server is", responses=errors({}))
def index() -> IndexAnswer:
    """The service's name and where to ask for tokens; no token needed."""
    return IndexAnswer(data=Service(service="jobtask-widgets reference server", token_url="/oauth/token"))


@router.post(
    "/oauth/token",
    summary="Issue an access token",
    response_model=TokenAnswer,
    responses={
        200: {
            "description": "The token, as OAuth 2 answers it (no envelope).",
            "headers": {"Cache-Control": {**_HEADER, "description": "Always `no-store`."}},
        },
        **errors(
            {
                400: "An unsupported grant_type, or a body that is not a UTF-8 form.",
                401: "Missing or wrong project key, HTTP Basic credentials, user or password.",
                429: "Too many failed logins for this client address, user name or project id (10 in 60 s); "
                "`Retry-After` says when to try again.",
            }
        ),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": TokenForm.model_json_schema()}},
        }
    },
)
async def token(request: Request, settings: Settings) -> JSONResponse:
    """A bearer token for a project key (``client_credentials``) or a user (``password``)."""
    form = _read_form(await request.body(), request.headers.get("content-type", ""))
    grant = form.get("grant_type", "")
    if grant == "client_credentials":
        client_id, client_secret = _basic_auth(request) or (form.get("client_id"), form.get("client_secret"))
        if not client_id or not client_secret:
            raise unauthorized("client_credentials needs HTTP Basic auth with the project id and API key")
        attempt = settings.limiter.attempt(_client(request), f"project:{client_id}")
        if not await run_in_threadpool(settings.credentials.check_project_key, client_id, client_secret):
            attempt.failed()
            raise unauthorized("the project id or API key is wrong")
        access = settings.signer.issue_token(f"project:{client_id}", client_id, settings.token_ttl)
    elif grant == "password":
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password:
            raise unauthorized("the password grant needs username and password")
        attempt = settings.limiter.attempt(_client(request), f"user:{username}")
        if not await run_in_threadpool(settings.credentials.check_user, username, password):
            attempt.failed()
            raise unauthorized("the username or password is wrong")
        scope = settings.credentials.user_projects(username)
        access = settings.signer.issue_token(f"user:{username}", None, settings.token_ttl, projects=scope)
    else:
        raise Problem(400, f"grant_type {grant!r} is not supported; use client_credentials or password")
    mark_subject(request.scope, f"project:{client_id}" if grant == "client_credentials" else f"user:{username}")
    answer = TokenAnswer(access_token=access, token_type="bearer", expires_in=settings.token_ttl)
    # a JSONResponse of our own carries Cache-Control: no-store; response_model= still documents the body
    return JSONResponse(answer.model_dump(), headers={"Cache-Control": "no-store"})


@router.get("/users/me", summary="Who the token speaks for", responses=errors({401: _UNAUTHORIZED}))
def users_me(claims: Auth) -> UserAnswer:
    """The project of a project-key token, or the user of a password token."""
    kind, _, name = claims.subject.partition(":")
    return UserAnswer(data=User(id=name, kind="user" if kind == "user" else "project"))


@router.get(
    "/projects/{project_id}/jobs/{job_id}/tasks/",
    summary="List a job's tasks",
    responses=errors({401: _UNAUTHORIZED, 404: "Unknown project or job (or a project the token may not open)."}),
)
def list_tasks(job: JobIds, store: StoreDep) -> TaskListAnswer:
    """Every task's ``info.json``, sorted by task id."""
    return TaskListAnswer(data=store.list_tasks(*job))


@router.get(
    TASK + "/outputs/data-json/",
    summary="A task's features",
    response_class=OpenFileResponse,
    status_code=200,  # FastAPI reads a default status from a response class's __init__; ours has none
    responses={
        200: {"description": "The bare FeatureCollection (no envelope).", "content": FEATURE_COLLECTION_CONTENT},
        **errors({401: _UNAUTHORIZED, 404: _NOT_FOUND_TASK + " Or a task without output/data.json."}),
    },
)
def data_json(ref: VisibleTask, store: StoreDep, request: Request) -> OpenFileResponse:
    """The task's ``output/data.json``, as stored, sent from the file opened once."""
    return file_response(store.open_data_json(ref), request.headers)


@router.get(
    TASK + "/downloads/results/",
    summary="A signed URL of a task's results archive",
    responses=errors({401: _UNAUTHORIZED, 404: _NOT_FOUND_TASK}),
)
def results_url(ref: VisibleTask, request: Request, settings: Settings) -> ResultsUrlAnswer:
    """A URL that opens this task's archive only, without a token, for ``url_ttl`` seconds."""
    settings.store.require_task(ref)
    signing = Signing(request, settings)
    query = urlencode(settings.signer.sign_archive(ref.project_id, ref.job_id, ref.task_id, signing.expires))
    path = ARCHIVE.format(project_id=ref.project_id, job_id=ref.job_id, task_id=ref.task_id)
    return ResultsUrlAnswer(data=ResultsUrl(url=f"{signing.base}{path}?{query}"))


_ARCHIVE_HEADERS: dict[str, Any] = {
    "ETag": {**_HEADER, "description": "The archive's version: a changed output gets another."},
    "Repr-Digest": {
        **_HEADER,
        "description": "RFC 9530: `sha-256=:<base64>:`, the SHA-256 of the whole archive (on 206 too).",
    },
}
_ARCHIVE_OPTIONS: dict[str, Any] = dict(
    summary="A task's results archive",
    response_class=OpenFileResponse,
    status_code=200,  # FastAPI reads a default status from a response class's __init__; ours has none
    responses={
        200: {
            "description": "The whole archive: output/ as a .tar.gz.",
            "content": ARCHIVE_CONTENT,
            "headers": _ARCHIVE_HEADERS,
        },
        206: {
            "description": "The ranges asked for (If-Range honoured).",
            "content": ARCHIVE_PARTS_CONTENT,
            "headers": _ARCHIVE_HEADERS,
        },
        **errors(
            {
                400: "A malformed Range header; the message lists the accepted forms.",
                403: "The URL is not signed, its signature is not this archive's, it has expired, "
                "or it repeats a parameter.",
                404: "The task is gone since the URL was signed.",
                416: "A range that starts at or beyond the end of the archive.",
                503: "The task's output kept changing while its archive was built; ask again later.",
            }
        ),
    },
)


@router.get(ARCHIVE, operation_id="archive_get", **_ARCHIVE_OPTIONS)
@router.head(ARCHIVE, operation_id="archive_head", **_ARCHIVE_OPTIONS)
def archive(
    request: Request,
    signer: SignerDep,
    store: StoreDep,
    archives: ArchivesDep,
    project_id: str,
    job_id: str,
    task_id: str,
    expires: Annotated[str, Query(description="When the URL expires, in epoch seconds.")] = "",
    signature: Annotated[str, Query(description="The URL's HMAC, as downloads/results/ gave it.")] = "",
) -> OpenFileResponse:
    """The ``.tar.gz`` of the task's ``output/``, at a signed URL; ranges and ``If-Range`` resume it."""
    resource = archive_resource(project_id, job_id, task_id)
    require_signature(
        request,
        signer,
        resource,
        expires,
        signature,
        what="download URL",
        thing="this archive",
        ask="downloads/results/",
    )
    ref = TaskRef(project_id, job_id, task_id)
    built, opened = archives.open(ref, lambda: store.output_files(ref), lambda path: store.open_output_file(ref, path))
    headers = {
        "cache-control": "private, no-transform",
        "repr-digest": built.repr_digest,
        "content-disposition": f'attachment; filename="{task_id}.tar.gz"',
    }
    return file_response(opened, request.headers, etag=built.etag, headers=headers, what="archive")


@router.get(
    TASK + "/outputs/quicklooks/",
    summary="List a task's quicklooks",
    responses=errors({401: _UNAUTHORIZED, 404: _NOT_FOUND_TASK}),
)
def quicklooks(ref: VisibleTask, store: StoreDep) -> QuicklookNamesAnswer:
    """The names of the task's quicklook images, sorted; ``[]`` when it has none."""
    return QuicklookNamesAnswer(data=store.quicklook_names(ref))


@router.get(
    TASK + "/outputs/quicklooks/{name}",
    summary="One quicklook image",
    response_class=OpenFileResponse,
    status_code=200,  # FastAPI reads a default status from a response class's __init__; ours has none
    responses={
        200: {"description": "The image, with its media type.", "content": QUICKLOOK_CONTENT},
        **errors({401: _UNAUTHORIZED, 404: _NOT_FOUND_TASK + " Or an unknown quicklook, or a name not an image's."}),
    },
)
def quicklook(ref: VisibleTask, store: StoreDep, request: Request, name: str) -> OpenFileResponse:
    """One quicklook image of the task, sent from the file opened once."""
    return file_response(store.open_quicklook(ref, name), request.headers)


def _read_form(body: bytes, content_type: str) -> dict[str, str]:
    """The token request's form fields (the first value of each).

    Raises:
        Problem: 400 when the body is not a UTF-8 ``application/x-www-form-urlencoded`` form.
    """
    if content_type and not content_type.startswith("application/x-www-form-urlencoded"):
        raise Problem(400, f"send the token request as application/x-www-form-urlencoded, not {content_type}")
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise Problem(400, "the token request's form is not UTF-8") from exc
    return {k: v[0] for k, v in pairs.items()}


def _client(request: Request) -> str:
    """The client's address as the server sees it (a proxy's, behind one)."""
    return request.client.host if request.client is not None else "unknown"


def _basic_auth(request: Request) -> tuple[str, str] | None:
    """The user and password of HTTP Basic auth, or ``None`` when the request has none.

    Raises:
        Problem: 401 when the credentials are not base64 of ``user:password``.
    """
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


__all__ = ["ARCHIVE", "TASK", "errors", "router"]
