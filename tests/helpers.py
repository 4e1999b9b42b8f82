"""Helpers shared by the tests (fixtures stay in the conftest files): a live server and a session
for it, logins, clients with short retries, archives built for the unpacking tests, and commands
run in the background."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from jobtask_widgets.client import Client, resolve_settings
from jobtask_widgets.sample import Sample
from jobtask_widgets.server import BackgroundServer, create_app
from tests import logscan

SECRET = "test-secret-shared-by-the-tests"
COMMAND = [sys.executable, "-m", "jobtask_widgets.cli"]


@dataclass
class Api:
    """A live server and a logged-in session for talking to it over real HTTP."""

    url: str
    sample: Sample
    session: requests.Session
    cache_dir: Path

    @property
    def job(self) -> str:
        return f"{self.url}/projects/{self.sample.project_id}/jobs/{self.sample.job_id}"

    def task(self, task_id: str | None = None) -> str:
        return f"{self.job}/tasks/{task_id or self.sample.task_ids[0]}"

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url if url.startswith("http") else self.url + url, timeout=30, **kwargs)


def token_for(url: str, sample: Sample) -> str:
    answer = requests.post(
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(sample.project_id, sample.project_api_key),
        timeout=30,
    )
    answer.raise_for_status()
    token = str(answer.json()["access_token"])
    logscan.remember("access token", token)
    return token


def start_api(root: Path, cache_dir: Path, **options: Any) -> tuple[BackgroundServer, Api]:
    """Start a server over ``root``; the caller stops it."""
    sample = Sample(root)
    server = BackgroundServer(create_app(root, secret=SECRET, cache_dir=cache_dir, **options)).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token_for(server.url, sample)}"
    return server, Api(server.url, sample, session, cache_dir)


def error_of(answer: requests.Response) -> dict[str, Any]:
    """The error of an envelope answer, checking the envelope's shape."""
    body = answer.json()
    assert set(body) == {"data", "error"}, body
    assert body["data"] is None
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]


def login(url: str, sample: Sample, **kwargs: Any) -> Any:
    """``authenticate`` against ``url`` with the sample's project key."""
    import jobtask_widgets as jw

    client = jw.authenticate(
        api_url=url, project_id=sample.project_id, project_api_key=sample.project_api_key, **kwargs
    )
    logscan.remember("access token", client._token)
    return client


def quick_client(url: str, sample: Sample) -> Client:
    """A client of the sample's project with one quick retry, for tests of failures (no 15 s backoff)."""
    settings = resolve_settings(api_url=url, project_id=sample.project_id, project_api_key=sample.project_api_key)
    client = Client(settings, retries=1, backoff=0.01)
    logscan.remember("access token", client._token)
    return client


# -- files and archives ----------------------------------------------------------------------------------


def visible(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.name.startswith("."))


def store_output(sample: Sample, task_id: str) -> dict[str, bytes]:
    out = sample.task_dir(task_id) / "output"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def zip_bytes(*entries: tuple[str, bytes, int | None], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


GOOD = (member("output/data.json"), b'{"type": "FeatureCollection", "features": []}')
UNSAFE = {
    "tar absolute": (tar_bytes(GOOD, (member("/tmp/evil.txt"), b"x")), "outside the output folder"),
    "tar dot-dot": (tar_bytes(GOOD, (member("output/../../evil.txt"), b"x")), "outside the output folder"),
    "tar symlink": (tar_bytes(GOOD, (member("output/link", tarfile.SYMTYPE, "/etc/passwd"), None)), "is a link"),
    "tar hardlink": (tar_bytes(GOOD, (member("output/hard", tarfile.LNKTYPE, "output/data.json"), None)), "is a link"),
    "tar device": (tar_bytes(GOOD, (member("output/dev", tarfile.CHRTYPE), None)), "device or special file"),
    "tar fifo": (tar_bytes((member("output/fifo", tarfile.FIFOTYPE), None), gz=False), "device or special file"),
    "zip dot-dot": (zip_bytes(("output/../../evil.txt", b"x", None)), "outside the output folder"),
    "zip absolute": (zip_bytes(("/tmp/evil.txt", b"x", None)), "outside the output folder"),
    "zip symlink": (zip_bytes(("output/link", b"/etc/passwd", stat.S_IFLNK | 0o777)), "is a link"),
    "zip bomb": (zip_bytes(("output/zeros.bin", bytes(64 << 20), None), method=zipfile.ZIP_LZMA), "archive bomb"),
    "not an archive": (b"<html><body>Service unavailable</body></html>", "is not a .tar.gz, .tar or .zip"),
    "tar.gz bomb": (tar_bytes(GOOD, (member("output/zeros"), bytes(64 << 20))), "archive bomb"),
    "too many members": (
        tar_bytes(GOOD, *[(member(f"output/{i}"), b"") for i in range(20_001)]),
        "more than 20000 members",
    ),
    "newline name": (tar_bytes(GOOD, (member("output/a\nb.tif"), b"x")), "unsafe name"),
    "right-to-left override": (tar_bytes(GOOD, (member("output/evil\u202egnp.exe"), b"x")), "unsafe name"),
    "duplicate names": (
        tar_bytes(GOOD, (member("output/a.tif"), b"1"), (member("output/a.tif"), b"2")),
        "appears twice",
    ),
}


# -- commands in the background ----------------------------------------------------------------------


class Running:
    """A command running in the background whose output lines can be awaited."""

    def __init__(self, args: list[str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            COMMAND + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
        )
        self.lines: list[str] = []
        # every line the pump reads also goes to the session's log scan (tests/logscan.py)
        self._recorded = logscan.command_output(f"jobtask-widgets {' '.join(args)} (pid {self.proc.pid})")
        if "--secret" in args[:-1]:
            logscan.remember("server secret", args[args.index("--secret") + 1])
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for read in self.proc.stdout:
            line = read.rstrip("\n")
            self._recorded.lines.append(line)
            self._queue.put(line)
        self._recorded.ended.set()
        self._queue.put(None)

    def _lines(self, timeout: float) -> Iterator[str]:
        """Each next line as it comes (kept in ``lines``), until the output ends or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if line is None:
                return
            self.lines.append(line)
            yield line

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        for line in self._lines(timeout):
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting with {prefix!r}; output so far:\n" + "\n".join(self.lines))

    def output(self, timeout: float = 30) -> str:
        """Every line it printed, once it has ended (stop or interrupt it first)."""
        for _ in self._lines(timeout):
            pass
        return "\n".join(self.lines)

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop it as a user would (Ctrl-C); kill what is left of its process tree if that fails."""
        from jobtask_widgets.demo import descendants

        if self.proc.poll() is not None:
            return
        tree = descendants(self.proc.pid)
        try:
            self.interrupt()
        except subprocess.TimeoutExpired:
            for pid in [self.proc.pid, *tree]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()
