"""What the routes need, as FastAPI dependencies: the server's settings, the bearer token's claims
and the task a request may see.

:func:`create_app <.app.create_app>` puts one :class:`ServerSettings` on ``app.state.settings``;
:func:`server_settings` is the one place that reads it, and every other dependency derives from
it, so a test can swap the whole server state with ``app.dependency_overrides[server_settings]``.

The dependencies are ``async def``: each is a few attribute reads or one HMAC, and FastAPI runs a
plain ``def`` dependency in its thread pool, a hand-off that cost about 0.5 ms of CPU each (seven
per task request) in ``benchmarks/bench_server_load.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .accesslog import mark_subject
from .archive import ArchiveCache
from .auth import Claims, Credentials, Signer
from .outputs import FileFacts
from .problems import not_found, unauthorized
from .ratelimit import LoginLimiter
from .storebase import TaskRef, TaskStore


@dataclass(frozen=True)
class ServerSettings:
    """Everything a route of one app reads, built once by ``create_app``.

    Attributes:
        store: The store (a folder or object storage), checked at start.
        credentials: The projects' keys and the users the token endpoint accepts.
        signer: Issues and checks tokens and signed archive URLs.
        archives: Builds and keeps the results archives.
        facts: The digests and raster fields of result files, once per file version.
        token_ttl: Seconds an access token lives.
        url_ttl: Seconds a signed archive URL lives.
        public_url: The base of signed URLs behind a proxy, or ``None`` for the request's own.
        limiter: Failed logins per client address and name (429 over the limit).
        redirect_downloads: Whether signed file URLs redirect to the object store's own.
    """

    store: TaskStore
    credentials: Credentials
    signer: Signer
    archives: ArchiveCache
    facts: FileFacts
    token_ttl: int
    url_ttl: int
    public_url: str | None = None
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    redirect_downloads: bool = False


async def server_settings(request: Request) -> ServerSettings:
    """The settings of the app that serves ``request``.

    Raises:
        RuntimeError: when the app was not built by ``create_app``.
    """
    settings = getattr(request.app.state, "settings", None)
    if not isinstance(settings, ServerSettings):
        raise RuntimeError("the app has no ServerSettings on app.state.settings; build it with create_app")
    return settings


Settings = Annotated[ServerSettings, Depends(server_settings)]


async def store_of(settings: Settings) -> TaskStore:
    """The app's store."""
    return settings.store


async def signer_of(settings: Settings) -> Signer:
    """The app's token and URL signer."""
    return settings.signer


async def archives_of(settings: Settings) -> ArchiveCache:
    """The app's archive cache."""
    return settings.archives


async def facts_of(settings: Settings) -> FileFacts:
    """The app's cache of result-file facts."""
    return settings.facts


StoreDep = Annotated[TaskStore, Depends(store_of)]
SignerDep = Annotated[Signer, Depends(signer_of)]
ArchivesDep = Annotated[ArchiveCache, Depends(archives_of)]
FactsDep = Annotated[FileFacts, Depends(facts_of)]

BEARER = HTTPBearer(
    auto_error=False,  # a missing token is answered by bearer(), in the envelope
    description="An access token from POST /oauth/token, as `Authorization: Bearer <token>`.",
)


async def bearer(
    request: Request,
    signer: SignerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Claims:
    """The claims of the request's bearer token.

    Raises:
        Problem: 401 when the token is missing, not valid or expired.
    """
    if credentials is None:
        raise unauthorized("an Authorization: Bearer <access token> header is required")
    claims, reason = signer.read_token(credentials.credentials)
    if claims is None:
        raise unauthorized(reason)
    mark_subject(request.scope, claims.subject)
    return claims


Auth = Annotated[Claims, Depends(bearer)]


async def visible_job(claims: Auth, project_id: str, job_id: str) -> tuple[str, str]:
    """The project and job ids of the path, once the token may open the project.

    Raises:
        Problem: 404 when the token is bound to another project (it is told the project is unknown).
    """
    if not claims.may_open(project_id):
        raise not_found(f"unknown project {project_id!r}")
    return project_id, job_id


JobIds = Annotated[tuple[str, str], Depends(visible_job)]


async def visible_task(job: JobIds, task_id: str) -> TaskRef:
    """The task of the path, once the token may open its project (see :func:`visible_job`)."""
    return TaskRef(*job, task_id)


VisibleTask = Annotated[TaskRef, Depends(visible_task)]
