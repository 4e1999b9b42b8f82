"""The one exception the server's routes raise: an HTTP status with an envelope error code.

The app's exception handlers (``app.py``) turn it, and FastAPI's own errors, into
``{"data": null, "error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from http import HTTPStatus

# The error codes of the job-task protocol, by HTTP status (DESIGN.md, "Errors").
ERROR_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    416: "RANGE_NOT_SATISFIABLE",
    500: "INTERNAL_SERVER_ERROR",
}


def code_for(status: int) -> str:
    """The envelope error code for an HTTP status."""
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
    """A 404 ``NOT_FOUND`` problem."""
    return Problem(404, message)


def unauthorized(message: str) -> Problem:
    """A 401 ``UNAUTHORIZED`` problem that asks for a bearer token."""
    return Problem(401, message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> Problem:
    """A 403 ``FORBIDDEN`` problem."""
    return Problem(403, message)
