"""The HTTP client of the job-task API: configuration, token auth, retries, endpoint calls.

One ``requests.Session`` per :class:`Client`. Connection errors, 5xx and 429 answers are retried
by urllib3's ``Retry`` with exponential backoff, honouring ``Retry-After`` (capped), bounded in
count and time; every call has a timeout. The bearer token is renewed before it expires and once
on a 401. Failures are translated at this boundary by ``httperrors`` (shared with downloads)
into ``jobtask_widgets.errors``; each names the URL and carries the server's message and this
client's own retry count. Calls return plain dicts, lists and strings.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .errors import APIError, AuthenticationError
from .httperrors import RETRY_STATUSES, TIMEOUT, credentials_refused, error_for_exception, error_for_status
from .jsonfile import read_json_object
from .redaction import redact_library_logs

DEFAULT_API_URL = "http://127.0.0.1:8042"
ENV_API_URL = "JOBTASK_API_URL"
ENV_PROJECT_ID = "JOBTASK_PROJECT_ID"
ENV_PROJECT_API_KEY = "JOBTASK_PROJECT_API_KEY"

RETRIES = 5
BACKOFF = 0.5  # seconds, doubled each retry
BACKOFF_MAX = 10.0
RETRY_AFTER_MAX = 30.0  # a longer Retry-After is cut to this
READ_RETRIES = 2  # a read timeout is retried at most this often (downloads resume on their own)
TOKEN_MARGIN = 30.0  # renew the token this many seconds before it expires


class _CappedRetry(Retry):
    """urllib3's Retry with ``Retry-After`` capped, so the total wait stays bounded."""

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        return None if after is None else min(after, RETRY_AFTER_MAX)


@dataclass(frozen=True)
class Settings:
    """Where the API is and how to log in."""

    api_url: str
    project_id: str | None = None
    project_api_key: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def grant(self) -> str:
        return "password" if self.username else "client_credentials"


def resolve_settings(
    api_url: str | None = None,
    project_id: str | None = None,
    project_api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    cfg_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Merge the arguments, then ``cfg_file`` (JSON), then ``JOBTASK_*`` variables, then defaults.

    Raises:
        ValueError: when ``cfg_file`` cannot be read, or no credentials are given anywhere.
    """
    given = {
        "api_url": api_url,
        "project_id": project_id,
        "project_api_key": project_api_key,
        "username": username,
        "password": password,
    }
    if cfg_file is not None:
        for key, value in _read_cfg(Path(cfg_file)).items():
            if given.get(key) is None:
                given[key] = value
    env = {"api_url": ENV_API_URL, "project_id": ENV_PROJECT_ID, "project_api_key": ENV_PROJECT_API_KEY}
    for key, var in env.items():
        if given[key] is None and os.environ.get(var):
            given[key] = os.environ[var]
    settings = Settings(
        api_url=(given["api_url"] or DEFAULT_API_URL).rstrip("/"),
        project_id=given["project_id"],
        project_api_key=given["project_api_key"],
        username=given["username"],
        password=given["password"],
    )
    if settings.username:
        if not settings.password:
            raise ValueError("username given without password: the password grant needs both")
    elif not (settings.project_id and settings.project_api_key):
        raise ValueError(
            "no credentials: give project_id and project_api_key (or username and password) as arguments, "
            f"in cfg_file, or as {ENV_PROJECT_ID} and {ENV_PROJECT_API_KEY}"
        )
    return settings


def _read_cfg(path: Path) -> dict[str, str]:
    accepted = "a JSON object with project_id, project_api_key (or username, password) and optionally api_url"
    try:
        raw = read_json_object(path)
    except FileNotFoundError as exc:
        raise ValueError(f"cfg_file {path} does not exist; it should hold {accepted}") from exc
    except ValueError as exc:
        raise ValueError(f"cfg_file {path} {exc}; it should hold {accepted}") from exc
    keys = ("api_url", "project_id", "project_api_key", "username", "password")
    return {k: str(raw[k]) for k in keys if raw.get(k) is not None}


class Client:
    """A logged-in session with the job-task API.

    Args:
        settings: Where the API is and the credentials.
        timeout: Seconds to connect and to wait for each read.
        retries: How many times a failed call is retried.
        backoff: The first retry's wait in seconds; it doubles each retry.

    Raises:
        AuthenticationError: when the credentials are refused.
        APIError: when the API cannot be reached.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: tuple[float, float] = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.retries = retries
        self.read_retries = min(retries, READ_RETRIES)
        redact_library_logs()  # urllib3's retry warnings and GDAL's messages name URLs, signatures and all
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "jobtask-widgets"
        retry = _CappedRetry(
            total=retries,
            read=self.read_retries,
            backoff_factor=backoff,
            backoff_max=BACKOFF_MAX,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # every method: the token POST is safe to repeat
            respect_retry_after_header=True,
            raise_on_status=False,  # the last answer comes back, to be translated below
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        self._renew_token()

    @property
    def project_id(self) -> str | None:
        """The project of the credentials (``None`` for a password grant)."""
        return self.settings.project_id if self.settings.grant == "client_credentials" else None

    # -- token ------------------------------------------------------------------------------------
    def _renew_token(self) -> None:
        s = self.settings
        if s.grant == "password":
            form = {"grant_type": "password", "username": s.username, "password": s.password}
            auth = None
        else:
            # OAuth (RFC 6749, 2.3.1) form-encodes the client id and secret before HTTP Basic
            form = {"grant_type": "client_credentials"}
            auth = (quote_plus(s.project_id or ""), quote_plus(s.project_api_key or ""))
        url = f"{s.api_url}/oauth/token"
        answer = self._send("POST", url, data=form, auth=auth)
        refused = credentials_refused(answer, url)
        if refused is not None:
            raise refused
        self._raise_for_status(answer, url)
        try:
            body = answer.json()
            token, ttl = body["access_token"], float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthenticationError(f"{url} answered without an access token: {answer.text[:200]!r}") from exc
        self._token, self._token_expires = token, time.time() + ttl

    def _bearer(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._token_expires - TOKEN_MARGIN:
                self._renew_token()
            return f"Bearer {self._token}"

    # -- requests ----------------------------------------------------------------------------------
    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, url, **kwargs)
        except (requests.exceptions.RetryError, requests.ConnectionError, requests.Timeout) as exc:
            raise error_for_exception(exc, url, retries=self.retries, read_retries=self.read_retries) from exc

    def _raise_for_status(self, answer: requests.Response, url: str) -> None:
        error = error_for_status(answer, url, retries=self.retries)
        if error is not None:
            raise error

    def request(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> requests.Response:
        """An authenticated call; a 401 renews the token once; errors raise.

        Args:
            method: The HTTP method.
            path: A path under the API URL (or an absolute URL).
            stream: Whether to leave the body unread (for downloads).
        """
        url = path if path.startswith(("http://", "https://")) else self.settings.api_url + path
        headers = {**kwargs.pop("headers", {}), "Authorization": self._bearer()}
        answer = self._send(method, url, headers=headers, stream=stream, **kwargs)
        if answer.status_code == 401:
            answer.close()
            with self._lock:
                self._renew_token()
            headers["Authorization"] = f"Bearer {self._token}"
            answer = self._send(method, url, headers=headers, stream=stream, **kwargs)
        self._raise_for_status(answer, url)
        return answer

    def get_data(self, path: str) -> Any:
        """The ``data`` of an enveloped JSON answer."""
        answer = self.request("GET", path)
        try:
            return answer.json()["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise APIError(f"not an enveloped JSON answer: {answer.text[:200]!r}", status=answer.status_code,
                           url=answer.url) from exc  # fmt: skip

    # -- endpoints ---------------------------------------------------------------------------------
    @staticmethod
    def job_path(project_id: str, job_id: str) -> str:
        return f"/projects/{project_id}/jobs/{job_id}"

    def list_tasks(self, project_id: str, job_id: str) -> list[dict[str, Any]]:
        """Every task of a job, as its info dict."""
        return list(self.get_data(f"{self.job_path(project_id, job_id)}/tasks/"))

    def data_json(self, project_id: str, job_id: str, task_id: str) -> bytes:
        """The raw bytes of a task's data.json (a GeoJSON FeatureCollection)."""
        return self.request("GET", f"{self.job_path(project_id, job_id)}/tasks/{task_id}/outputs/data-json/").content

    def results_url(self, project_id: str, job_id: str, task_id: str) -> str:
        """A fresh signed URL of a task's results archive."""
        data = self.get_data(f"{self.job_path(project_id, job_id)}/tasks/{task_id}/downloads/results/")
        return str(data["url"])

    def result_files(self, project_id: str, job_id: str, task_id: str) -> list[dict[str, Any]]:
        """A task's result files: ``path``, ``size``, ``media_type``, ``sha256`` and a signed ``url`` of each.

        Raises:
            APIError: when the server's answer is not such a list.
        """
        path = f"{self.job_path(project_id, job_id)}/tasks/{task_id}/outputs/files/"
        data = self.get_data(path)
        if not isinstance(data, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("url"), str) for f in data
        ):
            raise APIError(
                f"the server's file list of task {task_id} is not a list of {{path, url, ...}} objects",
                status=200,
                url=self.settings.api_url + path,
            )
        return [dict(f) for f in data]

    def quicklook_names(self, project_id: str, job_id: str, task_id: str) -> list[str]:
        """The names of a task's quicklooks."""
        return [
            str(n) for n in self.get_data(f"{self.job_path(project_id, job_id)}/tasks/{task_id}/outputs/quicklooks/")
        ]

    def quicklook_path(self, project_id: str, job_id: str, task_id: str, name: str) -> str:
        """The API path of one quicklook image."""
        return f"{self.job_path(project_id, job_id)}/tasks/{task_id}/outputs/quicklooks/{name}"


_default: Client | None = None
_default_lock = threading.Lock()


def authenticate(
    api_url: str | None = None,
    project_id: str | None = None,
    project_api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    cfg_file: str | os.PathLike[str] | None = None,
) -> Client:
    """Log in to the job-task API; later calls use this session.

    Each setting comes from the arguments, then ``cfg_file`` (a JSON file that may also hold
    ``api_url``), then ``JOBTASK_API_URL``, ``JOBTASK_PROJECT_ID`` and
    ``JOBTASK_PROJECT_API_KEY``; the API URL defaults to ``http://127.0.0.1:8042``.

    Returns:
        The client, also kept as the default for ``initialize_jobtask``.

    Raises:
        AuthenticationError: when the server refuses the credentials.
        APIError: when the server cannot be reached.
        ValueError: when no credentials are given, or ``cfg_file`` is unreadable.
    """
    global _default
    client = Client(resolve_settings(api_url, project_id, project_api_key, username, password, cfg_file))
    with _default_lock:
        _default = client
    return client


def default_client() -> Client:
    """The client of the last ``authenticate``; from ``JOBTASK_*`` variables when there is none.

    Raises:
        AuthenticationError: when nobody logged in and the environment holds no credentials.
    """
    if _default is not None:
        return _default
    if os.environ.get(ENV_PROJECT_ID) and os.environ.get(ENV_PROJECT_API_KEY):
        return authenticate()
    raise AuthenticationError(
        "not authenticated: call jobtask_widgets.authenticate(...) first, "
        f"or set {ENV_PROJECT_ID} and {ENV_PROJECT_API_KEY}"
    )
