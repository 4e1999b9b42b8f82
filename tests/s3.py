"""A real S3 API on 127.0.0.1 for the object-storage tests: moto in server mode (``moto[server]``),
started as a process of its own on a free port, with a bucket per test that asks for one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

from jobtask_widgets.server.run import free_port

# moto accepts any credentials; these only have to be present, as a real deployment's would be
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "moto-test-key",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3:
    """A moto S3 server: its endpoint and a way to make buckets."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def bucket(self) -> str:
        """A new empty bucket; its name."""
        name = f"jobtask-{uuid.uuid4().hex[:12]}"
        answer = requests.put(f"{self.endpoint}/{name}", timeout=30)  # CreateBucket
        answer.raise_for_status()
        return name


@contextmanager
def moto_server() -> Iterator[S3]:
    """Start ``moto.server`` on 127.0.0.1; stop it on the way out."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **AWS_ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start (exit code {process.poll()})") from None
                time.sleep(0.2)
        yield S3(endpoint, process)
    finally:
        process.terminate()
        process.wait(timeout=30)
