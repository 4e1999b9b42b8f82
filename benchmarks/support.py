"""What the benchmark scripts share: the reference server in a subprocess on a free port."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any


def start_server(root: Path, cache: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``jobtask-widgets serve`` on a free loopback port; return the process and its API URL."""
    cmd = [sys.executable, "-m", "jobtask_widgets.cli", "serve", str(root), "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--cache-dir", str(cache), "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("API: "):
            return proc, line.split()[1]
    stop_server(proc)
    raise RuntimeError("the server exited before it listened")


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Stop the server and wait for it."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


class Counting:
    """An ASGI wrapper in front of the server's app: counts the requests whose path starts with
    ``prefix`` and the body bytes sent for them, and waits ``delay`` seconds before every request
    (a network's round trip, as a proxy that adds latency would).
    """

    def __init__(self, app: Any, *, prefix: str = "/", delay: float = 0.0) -> None:
        self.app = app
        self.prefix = prefix
        self.delay = delay
        self.requests = 0
        self.bytes = 0

    def reset(self) -> None:
        self.requests, self.bytes = 0, 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        if not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        self.requests += 1

        async def counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                self.bytes += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counted)
