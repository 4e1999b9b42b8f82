"""The one place where HTTP answers and network failures become ``jobtask_widgets.errors``.

The client (API calls) and transfer (downloads) both translate here, so the same failure
reads the same from either: the error answer's envelope (``{"error": {"code", "message"}}``)
is parsed once, statuses map to errors through ``STATUS_ERRORS``, and a network failure is
named by the type of its cause (``NETWORK_REASONS``), never by matching its text. Messages
carry the retry count of the client that gave up, not a module constant.
"""

from __future__ import annotations

import socket
from typing import Any

import requests
import urllib3

from .errors import APIError, AuthenticationError, DownloadError, JobTaskError, NotFoundError
from .redaction import redact

TIMEOUT = (10.0, 60.0)  # seconds to connect, and to wait for each read, on every request
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})  # answers worth another try

# Error answers that have an error class of their own; any other status >= 400 is an APIError.
STATUS_ERRORS: dict[int, type[APIError]] = {404: NotFoundError}

# The cause of a network failure, by type, in words (the first match along the cause chain wins).
NETWORK_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (socket.gaierror, "the host name cannot be resolved"),
    (requests.exceptions.ConnectTimeout, "timed out while connecting"),
    (requests.exceptions.ReadTimeout, "timed out waiting for an answer"),
    (urllib3.exceptions.ReadTimeoutError, "timed out waiting for an answer"),
    (TimeoutError, "timed out"),
    (ConnectionResetError, "the connection was reset"),
    (urllib3.exceptions.ProtocolError, "the connection broke off"),
    (requests.exceptions.ChunkedEncodingError, "the connection broke off"),
)


READ_TIMEOUTS = (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)


def envelope_error(answer: requests.Response) -> tuple[str | None, str]:
    """The ``(code, message)`` of an error answer's envelope; the HTTP reason when it has none."""
    try:
        body: Any = answer.json()
        error = body.get("error") or {}
        return error.get("code"), str(error.get("message") or answer.reason)
    except (ValueError, AttributeError):
        text = answer.text[:200].strip()
        return None, f"{answer.reason}: {text}" if text else str(answer.reason or answer.status_code)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything that caused it."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < 16:
        link = todo.pop(0)
        if any(link is seen for seen in chain):
            continue
        chain.append(link)
        # requests and urllib3 keep causes as __cause__, as MaxRetryError.reason, or as an argument
        causes = [link.__cause__, link.__context__, getattr(link, "reason", None), *link.args]
        todo += [c for c in causes if isinstance(c, BaseException)]
    return chain


def network_reason(exc: BaseException) -> str:
    """What went wrong on the network, from the types of ``exc`` and of everything that caused it."""
    chain = _causes(exc)
    for kind, words in NETWORK_REASONS:
        if any(isinstance(link, kind) for link in chain):
            return words
    return redact(str(exc))[:200] or type(exc).__name__


def error_for_status(answer: requests.Response, url: str, *, retries: int) -> JobTaskError | None:
    """The error an answer stands for (``None`` below 400); the answer is closed when it is one.

    Args:
        answer: The last answer, after any retries.
        url: The URL that was asked for (named in the message).
        retries: How many times the caller retried (named for statuses that are retried).
    """
    if answer.status_code < 400:
        return None
    code, message = envelope_error(answer)
    answer.close()
    if answer.status_code == 401:
        return AuthenticationError(f"{url} refused the token: {message}")
    if answer.status_code in RETRY_STATUSES:
        message = f"{message} (after {retries} retries)"
    kind = STATUS_ERRORS.get(answer.status_code, APIError)
    return kind(message, status=answer.status_code, code=code, url=url)


def credentials_refused(answer: requests.Response, url: str) -> AuthenticationError | None:
    """The error of a token request the server refused (400, 401 or 403), else ``None``."""
    if answer.status_code not in (400, 401, 403):
        return None
    message = envelope_error(answer)[1]
    answer.close()
    return AuthenticationError(f"{url} refused the credentials: {message}")


def download_refused(answer: requests.Response, url: str) -> DownloadError:
    """The error of a download answered with neither 200 nor 206 (the URL named without its signature)."""
    return DownloadError(f"{url.split('?')[0]} answered {answer.status_code}: {envelope_error(answer)[1]}")


def error_for_exception(
    exc: requests.RequestException, url: str, *, retries: int, read_retries: int | None = None
) -> APIError:
    """The ``APIError`` (no status: no answer came) of a request that failed on the network.

    Args:
        exc: What requests raised.
        url: The URL that was asked for.
        retries: How many times the client retries a failed call.
        read_retries: How many of those a read timeout gets, when fewer (urllib3's ``Retry.read``).
    """
    if read_retries is not None and any(isinstance(c, READ_TIMEOUTS) for c in _causes(exc)):
        retries = read_retries
    if isinstance(exc, requests.exceptions.RetryError):
        return APIError(f"gave up after {retries} retries: {network_reason(exc)}", status=None, url=url)
    return APIError(
        f"cannot reach the job-task API: {network_reason(exc)} (after {retries} retries)", status=None, url=url
    )
