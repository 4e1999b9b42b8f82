"""What the benchmark scripts share: the reference server in a subprocess on a free port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
