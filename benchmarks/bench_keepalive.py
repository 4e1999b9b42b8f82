"""Benchmark: JSON requests per second on one kept-alive connection, without and with TCP_NODELAY.

Serves the sample store from four child processes at once, the same app in each, and on each
times ``GET /projects/{p}/jobs/{j}/tasks/`` (the JSON task listing, with a bearer token from
``/oauth/token``) ``--requests`` times on one kept-alive ``http.client.HTTPConnection``, then as
many times with a new connection per request, for reference:

- ``before``: the server as it was: uvicorn's own h11 protocol on a listening socket made with
  ``socket.socket(AF_INET, SOCK_STREAM)``, protocol 0, so asyncio never sets TCP_NODELAY on
  the connections it accepts and each answer waits for the client's delayed ACK;
- ``after``: ``make_server`` on ``bind()``, as shipped (``proto=IPPROTO_TCP``, and the protocol
  sets TCP_NODELAY itself);
- ``uvicorn-tcp``: uvicorn's own protocol on an ``IPPROTO_TCP`` socket (the socket fix alone);
- ``ours-proto0``: ``make_server`` on a protocol-0 socket (the protocol's own setsockopt alone).

Variants are interleaved run by run, so drifting noise hits them alike. Every answer is checked
(status 200, the envelope, every task listed).
Targets (best runs): ``after`` >= 10 x ``before`` on one kept-alive connection, and ``after`` on
one kept-alive connection >= 0.9 x ``after`` with a new connection per request (keeping a
connection costs nothing; the listing's own work dominates both, so they are close). Exits 1 when
one fails.

    python benchmarks/bench_keepalive.py [--requests 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from support import stop_server

VARIANTS = ("before", "after", "uvicorn-tcp", "ours-proto0")
TARGET_SPEEDUP = 10.0
TARGET_VERSUS_NEW = 0.9  # no worse than reconnecting, give or take noise: the listing's own work dominates


def serve(variant: str, root: str) -> None:
    """Child: serve ``root`` as ``variant`` says on a free loopback port; print ``API: <url>``."""
    import uvicorn

    from jobtask_widgets.server import create_app
    from jobtask_widgets.server.run import make_server, url_of

    app = create_app(root, cache_dir=Path(root).parent / f"cache-{variant}")
    proto = socket.IPPROTO_TCP if variant in {"after", "uvicorn-tcp"} else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)  # connections wait in the backlog until uvicorn serves; asyncio listens again
    if variant in {"before", "uvicorn-tcp"}:  # what run.make_server did before issue 13
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    else:
        server = make_server(app, sock)
    print(f"API: {url_of(sock)}", flush=True)
    server.run(sockets=[sock])


def start(variant: str, root: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_serve", variant, str(root)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("API: "):
        stop_server(proc)
        raise RuntimeError(f"the {variant} server exited before it listened")
    return proc, line.split()[1]


def token(host: str, port: int) -> str:
    from jobtask_widgets.sample import SAMPLE_API_KEY, SAMPLE_PROJECT_ID

    basic = base64.b64encode(f"{SAMPLE_PROJECT_ID}:{SAMPLE_API_KEY}".encode()).decode()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/oauth/token", body="grant_type=client_credentials", headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"/oauth/token: {answer.status} {body[:200]!r}")
        return str(json.loads(body)["access_token"])
    finally:
        conn.close()


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str], tasks: int) -> None:
    conn.request("GET", path, headers=headers)
    answer = conn.getresponse()
    body = json.loads(answer.read())
    if answer.status != 200 or body["error"] is not None or len(body["data"]) != tasks:
        raise RuntimeError(f"GET {path}: {answer.status} {body}")


def measure(url: str, requests: int) -> tuple[float, float]:
    """Requests per second on one kept-alive connection, and with a new connection per request."""
    from jobtask_widgets.sample import SAMPLE_JOB_ID, SAMPLE_PROJECT_ID

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = {"Authorization": f"Bearer {token(host, port)}"}
    path = f"/projects/{SAMPLE_PROJECT_ID}/jobs/{SAMPLE_JOB_ID}/tasks/"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        get(conn, path, headers, 2)  # connects, outside the timer
        started = time.perf_counter()
        for _ in range(requests):
            get(conn, path, headers, 2)
        kept = requests / (time.perf_counter() - started)
    finally:
        conn.close()
    started = time.perf_counter()
    for _ in range(requests):
        new = http.client.HTTPConnection(host, port, timeout=30)
        try:
            get(new, path, headers, 2)
        finally:
            new.close()
    return kept, requests / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per run and variant")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on kill as on Ctrl-C
    from jobtask_widgets.sample import write_sample

    t0 = time.perf_counter()
    kept: dict[str, list[float]] = {v: [] for v in VARIANTS}
    fresh: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-keepalive-") as tmp:
        sample = write_sample(Path(tmp) / "store")
        assert sample.task_ids
        servers: dict[str, tuple[subprocess.Popen[str], str]] = {}
        try:
            for variant in VARIANTS:
                servers[variant] = start(variant, sample.root)
            print(f"{args.requests} GET .../tasks/ per run (JSON, {len(sample.task_ids)} tasks)\n")
            print(f"{'variant':12} {'run':>3} {'kept-alive req/s':>17} {'new conn req/s':>15}")
            for i in range(1, args.runs + 1):
                for variant in VARIANTS:
                    k, f = measure(servers[variant][1], args.requests)
                    kept[variant].append(k)
                    fresh[variant].append(f)
                    print(f"{variant:12} {i:>3} {k:17.0f} {f:15.0f}", flush=True)
        finally:
            for proc, _ in servers.values():
                stop_server(proc)
    print(f"\n{'variant':12} {'kept-alive best':>16} {'median':>8} {'ms/req':>7} {'new conn best':>14} {'median':>8}")
    for v in VARIANTS:
        median, new = statistics.median(kept[v]), fresh[v]
        row = f"{max(kept[v]):16.0f} {median:8.0f} {1e3 / median:7.2f} {max(new):14.0f} {statistics.median(new):8.0f}"
        print(f"{v:12} {row}")
    speedup = max(kept["after"]) / max(kept["before"])
    versus_new = max(kept["after"]) / max(fresh["after"])
    ok_speedup, ok_new = speedup >= TARGET_SPEEDUP, versus_new >= TARGET_VERSUS_NEW
    verdict = {True: "PASS", False: "FAIL"}
    print(f"\nafter / before, kept-alive: {speedup:.1f}x  target: >= {TARGET_SPEEDUP:g}x  {verdict[ok_speedup]}")
    target = f"target: >= {TARGET_VERSUS_NEW:g}"
    print(f"after, kept-alive / new connection per request: {versus_new:.2f}  {target}  {verdict[ok_new]}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if ok_speedup and ok_new else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_serve":
        serve(*sys.argv[2:])
    else:
        sys.exit(main())
