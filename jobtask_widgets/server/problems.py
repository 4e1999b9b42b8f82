"""How every failure becomes the protocol's error envelope.

Every error answer is ``{"data": null, "error": {"code": ..., "message": ...}}`` with one of the
statuses of :data:`ERROR_CODES` (docs/architecture.md, "Errors"). Three kinds of failure get
there, each through one of the handlers of :func:`exception_handlers`:

- a :class:`Problem`, raised by a route or a dependency for a refusal it decides itself (a
  missing or bad token, a bad signed URL, a token request it cannot read);
- an exception of the modules below the routes (the store, the range check), mapped to its status
  by the one table :data:`ERROR_STATUS`;
- FastAPI's own errors (no such route, a method not allowed, a request it cannot read) and any
  other exception, which is a 500 that names only its type.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import StoreError
from .errors import NotInStore, OutputChanging, StoreUnreachable
from .ranges import MalformedRange, RangeNotSatisfiable

# The error codes of the job-task protocol, by HTTP status (docs/architecture.md, "Errors").
ERROR_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    416: "RANGE_NOT_SATISFIABLE",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

# The one table from the errors of the store and the range check to an answer: the status, and
# the message with ``{exc}`` standing for the error's own text. A subclass takes its nearest
# listed base's entry.
ERROR_STATUS: dict[type[Exception], tuple[int, str]] = {
    NotInStore: (404, "{exc}"),
    MalformedRange: (400, "{exc}"),
    RangeNotSatisfiable: (416, "{exc}"),
    StoreError: (500, "the store is broken: {exc}"),
    StoreUnreachable: (503, "{exc}"),
    OutputChanging: (503, "{exc}"),
}


def code_for(status: int) -> str:
    """The envelope error code for an HTTP status.

    Args:
        status: The HTTP status code.

    Returns:
        The protocol's code, or the standard name of another status, or ``"ERROR"``.
    """
    if status in ERROR_CODES:
        return ERROR_CODES[status]
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "ERROR"


class Problem(Exception):
    """An error answer: HTTP status, protocol code and a message that says what was wrong.

    Args:
        status: The HTTP status code.
        message: What was wrong, and what is accepted where that helps.
        headers: Extra response headers (e.g. ``WWW-Authenticate``).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code_for(status)
        self.message = message
        self.headers = headers or {}


def not_found(message: str) -> Problem:
    """A 404 ``NOT_FOUND`` problem, for what a token may not see (it is told it does not exist)."""
    return Problem(404, message)


def unauthorized(message: str) -> Problem:
    """A 401 ``UNAUTHORIZED`` problem that asks for a bearer token."""
    return Problem(401, message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> Problem:
    """A 403 ``FORBIDDEN`` problem."""
    return Problem(403, message)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The protocol's error envelope as a response.

    Args:
        status: The HTTP status code.
        message: The envelope's message.
        headers: Extra response headers.
    """
    body = {"data": None, "error": {"code": code_for(status), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def mapped_error(exc: Exception) -> JSONResponse:
    """The answer :data:`ERROR_STATUS` gives an exception (500 when it is not in the table).

    Args:
        exc: The exception; its ``headers`` attribute, when it has one, goes into the answer.
    """
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            status, message = ERROR_STATUS[cls]
            headers: Mapping[str, str] | None = getattr(exc, "headers", None)
            return error_response(status, message.format(exc=exc), headers)
    return error_response(500, f"internal server error ({type(exc).__name__})")


async def _problem(request: Request, exc: Problem) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.headers)


async def _mapped(request: Request, exc: Exception) -> JSONResponse:
    return mapped_error(exc)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = f"no such route: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed or 'none'}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
    return error_response(400, f"malformed request: {details}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, f"internal server error ({type(exc).__name__})")


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


def exception_handlers() -> dict[int | type[Exception], Handler]:
    """The app's exception handlers, for ``FastAPI(exception_handlers=...)``.

    Returns:
        One handler for :class:`Problem`, one for every class of :data:`ERROR_STATUS`, one for
        FastAPI's routing and validation errors and one for every other exception.
    """
    handlers: dict[int | type[Exception], Handler] = {Problem: _problem}
    handlers.update(dict.fromkeys(ERROR_STATUS, _mapped))
    handlers[StarletteHTTPException] = _http_error
    handlers[RequestValidationError] = _invalid
    handlers[Exception] = _unexpected
    return handlers


__all__ = [
    "ERROR_CODES",
    "ERROR_STATUS",
    "Problem",
    "code_for",
    "error_response",
    "exception_handlers",
    "forbidden",
    "mapped_error",
    "not_found",
    "unauthorized",
]
