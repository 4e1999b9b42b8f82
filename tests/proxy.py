"""A fault-injecting HTTP proxy in front of the real server, for the client's tests.

It forwards every request to the upstream server unchanged (Host header included, so signed
URLs point back at the proxy) and records what it saw. Rules, consumed in order, make it answer
a status of its own (503, 429 with Retry-After), cut a response after some bytes, forward it
slowly, flip one byte of it, drop some of its headers, or serve other bytes in place of an archive: the
misbehaving network and servers a real client meets.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Rule:
    """What to do with the next ``times`` requests whose path contains ``path``."""

    path: str
    times: int = 1
    status: int | None = None  # answer this status with an envelope error
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # forward only this many body bytes, then drop the connection
    body: bytes | None = None  # serve these bytes (200) instead of forwarding
    rate: int | None = None  # forward the body at this many bytes per second (a slow network)
    flip_at: int | None = None  # flip the bits of the body byte at this offset (negative: from the end), length kept
    drop_headers: tuple[str, ...] = ()  # answer headers not forwarded (e.g. a server that states no digest)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    at: float
    status: int = 0


class FaultProxy:
    """Start with ``FaultProxy(upstream_url).start()``; ``url`` is where clients point."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, **kwargs: object) -> None:
        with self._lock:
            self.rules.append(Rule(**kwargs))  # type: ignore[arg-type]

    def requests_to(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if path in s.path and (method is None or s.method == method)]

    def _take_rule(self, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.path in path and rule.times > 0:
                    rule.times -= 1
                    return rule
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        seen = Seen(h.command, h.path, dict(h.headers.items()), time.monotonic())
        self.seen.append(seen)
        rule = self._take_rule(h.path)
        if rule is not None and rule.status is not None:
            seen.status = rule.status
            payload = json.dumps({"data": None, "error": {"code": "INJECTED", "message": f"injected {rule.status}"}})
            h.send_response(rule.status)
            for key, value in {"Content-Type": "application/json", **rule.headers}.items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload.encode())
            return
        if rule is not None and rule.body is not None:
            seen.status = 200
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(rule.body)))
            h.send_header("ETag", f'"injected-{len(rule.body)}"')
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(rule.body)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(h.command, h.path, body=body or None, headers=headers)
        answer = conn.getresponse()
        seen.status = answer.status
        h.send_response(answer.status)
        dropped = {name.lower() for name in (rule.drop_headers if rule is not None else ())}
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP | dropped:
                h.send_header(key, value)
        h.end_headers()
        sent, limit = 0, rule.cut_after if rule is not None else None
        flip = rule.flip_at if rule is not None else None
        if flip is not None and flip < 0:
            flip += int(answer.getheader("Content-Length") or 0)
        while chunk := answer.read(64 * 1024):
            if flip is not None and sent <= flip < sent + len(chunk):
                chunk = chunk[: flip - sent] + bytes([chunk[flip - sent] ^ 0xFF]) + chunk[flip - sent + 1 :]
            if limit is not None and sent + len(chunk) >= limit:
                h.wfile.write(chunk[: limit - sent])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)  # drop the connection mid-body
                break
            h.wfile.write(chunk)
            sent += len(chunk)
            if rule is not None and rule.rate:
                time.sleep(len(chunk) / rule.rate)
        conn.close()
